/* Embeddings through the routes (see embed.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agents/llm/adapter.h"
#include "agents/llm/embed.h"
#include "agents/llm/http.h"
#include "agents/llm/redact.h"
#include "agents/llm/route.h"
#include "protocol/buf.h"
#include "protocol/errors.h"

#define EMBED_HEADERS_MAX 8

struct tt_llm_embed {
    tt_llm_service *svc;
    tt_llm_attribution attr; /* who pays: the call's usage row */
    char route[TT_ROUTE_ALIAS_MAX], target[160];
    uint64_t start_ms;
    tt_http_req *http;
    tt_llm_embed_done_fn done;
    void *ud;
    int status;
    int cancelled;
    tt_buf body; /* at most TT_LLM_BODY_MAX */
    char model[128];
};

static void on_headers(tt_http_req *r, int status, void *ud)
{
    tt_llm_embed *e = ud;
    e->status = status;
}

static int on_data(tt_http_req *r, const char *buf, size_t len, void *ud)
{
    tt_llm_embed *e = ud;
    return e->cancelled || tt_buf_append(&e->body, buf, len) != 0; /* past the cap: stop */
}

/* The call's usage row (the service's usage hook, like a chat call's
 * attempt): its prompt tokens from the answer's usage, priced by the routes. */
static void report(tt_llm_embed *e, tt_llm_error_class result)
{
    int64_t tokens = 0;
    tt_llm_error err = {.cls = result};
    if (result == TT_LLM_ERR_NONE && e->status / 100 == 2) {
        json_t *root = json_loadb(tt_buf_str(&e->body), e->body.len, 0, NULL);
        json_t *u = json_object_get(root, "usage");
        json_t *n = json_object_get(u, "prompt_tokens");
        tokens = json_integer_value(n ? n : json_object_get(u, "total_tokens"));
        json_decref(root);
    } else if (result == TT_LLM_ERR_NONE) {
        tt_llm_classify_http(TT_LLM_OPENAI, e->status, NULL, tt_buf_str(&e->body), e->body.len, 0,
                             &err);
    }
    const tt_routes *routes = tt_llm_service_routes(e->svc);
    tt_llm_usage u = {.attr = &e->attr,
                      .route = e->route,
                      .model = e->model,
                      .target = e->target,
                      .outcome = err.cls == TT_LLM_ERR_NONE ? "ok" : tt_llm_error_name(err.cls),
                      .prompt_tokens = tokens > 0 ? tokens : 0,
                      .latency_ms = (int64_t)(uv_hrtime() / 1000000 - e->start_ms),
                      .cost_usd = tokens > 0 && routes
                                      ? tt_route_cost(&routes->prices, e->model, tokens, 0, NULL)
                                      : 0};
    tt_llm_service_report(e->svc, &u);
}

static void on_done(tt_http_req *r, tt_llm_error_class result, const char *detail, void *ud)
{
    tt_llm_embed *e = ud;
    if (!e->cancelled)
        report(e, result);
    if (!e->cancelled) {
        if (result == TT_LLM_ERR_CANCELLED) /* only on_data stops it: the body was too large */
            e->done(0, "the embeddings response is too large", 36, e->model, e->ud);
        else if (result != TT_LLM_ERR_NONE)
            e->done(0, detail, strlen(detail), e->model, e->ud);
        else
            e->done(e->status, tt_buf_str(&e->body), e->body.len, e->model, e->ud);
    }
    tt_buf_free(&e->body);
    free(e);
}

/* The route's first OpenAI-format target, or NULL. */
static const tt_route_target *embed_target(const tt_route *route)
{
    for (size_t i = 0; i < route->n_targets; i++)
        if (route->targets[i].provider == TT_LLM_OPENAI)
            return &route->targets[i];
    return NULL;
}

/* A route that redacts its prompts ("redact", route_redact.c) redacts what it
 * embeds too: every string of the request's "input" (a copy) with its PII
 * replaced by placeholders; nothing comes back to restore. 0, or
 * TT_ETOOLARGE when a text is over what redaction takes. */
static int redact_input(const tt_route *route, json_t *req)
{
    if (!route->redact || !json_object_get(req, "input"))
        return 0;
    /* in a box of its own: tt_redact_json replaces strings inside containers */
    json_t *box = json_pack("{s:o}", "input", json_deep_copy(json_object_get(req, "input")));
    tt_redact_map *m = tt_redact_map_new();
    int n = box && m ? tt_redact_json(route->redact, m, box, 0) : -1;
    tt_redact_map_free(m);
    if (n >= 0 && json_object_set(req, "input", json_object_get(box, "input")) != 0)
        n = -1;
    json_decref(box);
    return n < 0 ? TT_ETOOLARGE : 0;
}

int tt_llm_embed_start_as(tt_llm_service *s, const char *alias, const char *model, json_t *request,
                          const tt_llm_attribution *attr, tt_llm_embed_done_fn done, void *ud,
                          tt_llm_embed **out)
{
    const tt_route *route = tt_llm_service_find_route(s, alias);
    if (!route)
        return TT_ENOTFOUND;
    const tt_route_target *t = embed_target(route);
    if (!t)
        return TT_EINVAL;
    if (!model)
        model = t->model;
    if (strlen(model) >= sizeof((tt_llm_embed *)0)->model)
        return TT_ETOOLARGE;
    tt_llm_embed *e = calloc(1, sizeof *e);
    json_t *req = json_copy(request); /* shallow: only "model" changes */
    char *text = NULL;
    char *headers[EMBED_HEADERS_MAX + 2] = {0};
    int rc = e && req ? redact_input(route, req) : TT_ENOMEM;
    if (rc == 0) {
        json_object_set_new(req, "model", json_string(model));
        text = json_dumps(req, JSON_COMPACT);
        rc = text ? tt_llm_headers(t->provider, t->api_key, headers, EMBED_HEADERS_MAX) : TT_ENOMEM;
    }
    if (rc == 0) {
        size_t h = 0;
        while (headers[h])
            h++;
        headers[h] = strdup("Content-Type: application/json");
        char url[TT_ROUTE_URL_MAX + 32];
        snprintf(url, sizeof url, "%s/embeddings", t->base_url);
        *e = (tt_llm_embed){.svc = s, .done = done, .ud = ud, .start_ms = uv_hrtime() / 1000000};
        if (attr)
            e->attr = *attr;
        snprintf(e->route, sizeof e->route, "%s", route->alias);
        snprintf(e->target, sizeof e->target, "openai%s%s", t->region[0] ? "/" : "", t->region);
        snprintf(e->model, sizeof e->model, "%s", model);
        tt_buf_init(&e->body, TT_LLM_BODY_MAX);
        tt_http_timeouts to = {t->timeouts.connect_ms, t->timeouts.first_byte_ms,
                               t->timeouts.idle_ms, t->timeouts.total_ms};
        static const tt_http_callbacks cb = {on_headers, on_data, on_done};
        rc = tt_http_start(tt_llm_service_http(s), "POST", url, (const char *const *)headers, text,
                           strlen(text), &to, &cb, e, &e->http);
    }
    tt_llm_headers_free(headers);
    free(text);
    json_decref(req);
    if (rc) {
        free(e);
        return rc;
    }
    if (out)
        *out = e;
    return 0;
}

void tt_llm_embed_cancel(tt_llm_embed *e)
{
    if (!e || e->cancelled)
        return;
    e->cancelled = 1;
    tt_http_cancel(e->http); /* on_done follows (now or after the callback) and frees */
}
