/* One logical model call over a route: attempts, retries, failover, token
 * budget, cost and log lines (see call.h).
 *
 * A call keeps its own copy of the request as JSON (so retries and trimming
 * need nothing from the caller) and runs attempts one at a time:
 *   plan (retry.h) -> wait -> prepare (call_request.h) -> breaker -> HTTP
 *   (http.h) -> adapter parser (adapter.h) -> events to the caller ->
 *   outcome -> plan again or finish.
 * Every attempt writes one JSON log line.
 *
 * Preparing a large request (token counts, the body) runs in libuv's thread
 * pool: the call waits in the PREPARING phase, and its copy of the request
 * belongs to the job until the job's completion runs on the loop. A cancel
 * meanwhile finishes the call at once (on_done, exactly once) but keeps its
 * memory until the job is back; the service, whose tokenizers and token
 * cache the job reads, likewise outlives every job.
 *
 * The (void) uv_timer_init/uv_timer_start calls cannot fail: init only fills
 * the struct, and start fails only on a closing handle or a NULL callback,
 * which the call's timer never is while the call lives.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "agents/llm/bedrock.h"
#include "agents/llm/cache.h"
#include "agents/llm/call.h"
#include "agents/llm/call_request.h"
#include "agents/llm/http.h"
#include "agents/llm/route.h"
#include "agents/llm/tokenizer_set.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

#define ERR_BODY_MAX (64 * 1024)
#define MAX_HEADERS 8

struct tt_llm_service {
    uv_loop_t *loop;
    tt_http *http;
    tt_routes routes;
    tt_llm_log_fn log;
    void *log_ud;
    int log_ok; /* successful attempts are logged too (else failures only) */
    tt_llm_usage_fn usage;
    void *usage_ud;
    tt_llm_gate gate; /* budgets: reserved before a call, released at its end (gate.h) */
    uint64_t rng;
    tt_llm_call *calls;
    int closing;
    int preparing;                /* jobs in the thread pool; the last one frees a closed service */
    tt_tokenizer_set *tokenizers; /* loaded in the pool after listening, or on first use */
    tt_token_cache *token_cache;
    tt_llm_cache *cache; /* the response cache (cache.h), or NULL */
};

struct tt_llm_call {
    tt_llm_service *svc;
    tt_route *route;
    tt_llm_call_hooks hooks;
    void *ud;
    tt_call_request req; /* the caller's request, copied */
    char model[128];     /* sent instead of each target's model when set */
    char input_hash[65];
    tt_llm_attribution attr; /* who pays: in every log line and usage report */
    uint64_t hold;           /* what the gate reserved (gate.h) */
    tt_retry_call retry;
    tt_llm_result result;
    /* the attempt in flight */
    size_t target;
    tt_http_req *http;
    tt_llm_parser *parser;
    int status;
    tt_buf err_body;    /* a failed attempt's body, up to ERR_BODY_MAX */
    int attempt_output; /* this attempt passed output to the caller */
    tt_llm_error attempt_error;
    const char *finish_reason;
    int64_t prompt_tokens, completion_tokens;
    uint64_t attempt_start_ms, first_token_ms, call_start_ms;
    int trimmed;             /* the one trim-and-retry after a context error is used */
    tt_retry_step trim_step; /* the give-up the trim may turn into a retry */
    uv_timer_t *timer;       /* the wait before the next attempt; closed asynchronously */
    int cancelled;
    int in_restart_hook; /* on_restart is running: a cancel only marks the call */
    /* preparation (call_request.h) */
    tt_call_prep prep;
    uv_work_t work;
    void (*prep_then)(tt_llm_call *c); /* what follows the preparation, on the loop */
    int preparing;                     /* the job is in the pool: it owns req */
    int done;                 /* on_done was called while preparing: free when the job is back */
    int prepared;             /* the request was hashed and fitted (the first preparation) */
    tt_llm_cache_call *cache; /* the response cache's part, or NULL: not cached */
    tt_llm_call *next, *prev;
};

static void plan_next(tt_llm_call *c);
static int start_http(tt_llm_call *c, const tt_route_target *t);

static uint64_t now_ms(const tt_llm_service *s)
{
    return uv_now(s->loop);
}

/* ---- the service ---------------------------------------------------------- */

/* Every circuit breaker change of the service's routes goes to its log. */
static void log_breaker(const tt_breaker_transition *t, void *ud)
{
    tt_llm_service *s = ud;
    json_t *line = s->log ? tt_breaker_transition_json(t) : NULL;
    if (line)
        s->log(line, s->log_ud);
}

int tt_llm_service_new(const tt_llm_service_options *opt, tt_llm_service **out, char *err, size_t n)
{
    tt_llm_service *s = calloc(1, sizeof *s);
    if (!s)
        return TT_ENOMEM;
    s->loop = opt->loop;
    s->log = opt->log;
    s->log_ud = opt->log_ud;
    s->log_ok = opt->log_ok;
    s->usage = opt->usage;
    s->usage_ud = opt->usage_ud;
    s->cache = opt->cache;
    s->gate = opt->gate;
    s->rng = uv_hrtime();
    s->tokenizers = tt_tokenizer_set_new(opt->tokenizer_dir);
    int rc = opt->routes_file && *opt->routes_file
                 ? tt_routes_load_file(opt->routes_file, opt->envp, &s->routes, err, n)
                 : tt_routes_from_env(opt->envp, &s->routes, err, n);
    if (rc == 0) {
        s->routes.retry.on_breaker = log_breaker;
        s->routes.retry.on_breaker_ud = s;
        rc = tt_token_cache_new(&s->token_cache);
    }
    if (rc == 0)
        rc = tt_http_new(opt->loop, &s->http);
    if (rc == 0 && !s->tokenizers)
        rc = TT_ENOMEM;
    if (rc) {
        tt_routes_free(&s->routes);
        tt_token_cache_free(s->token_cache);
        tt_tokenizer_set_release(s->tokenizers);
        free(s);
        return rc;
    }
    tt_llm_cache_bind(s->cache, opt, &s->routes);
    *out = s;
    return 0;
}

static void finish(tt_llm_call *c, tt_llm_error_class cls, const char *msg);
static const tt_tokenizer *tokenizer_for(tt_llm_service *s, const char *model);

/* Load every tokenizer a route target needs, in the thread pool: loading one
 * takes tens of milliseconds (hundreds in a debug build), too long for the
 * loop to spend before listening or on the first request (a call that needs
 * one meanwhile waits for that load: tokenizer_set.h). */
int tt_llm_service_preload(tt_llm_service *s)
{
    enum { MAX_MODELS = 64 };
    const char *models[MAX_MODELS];
    size_t n = 0;
    for (size_t r = 0; r < s->routes.n_routes; r++)
        for (size_t t = 0; t < s->routes.routes[r].n_targets && n < MAX_MODELS; t++)
            models[n++] = s->routes.routes[r].targets[t].model;
    return tt_tokenizer_set_preload(s->tokenizers, s->loop, models, n);
}

/* What jobs in the pool may still read goes last. */
static void service_free(tt_llm_service *s)
{
    tt_tokenizer_set_release(s->tokenizers); /* a preload still running keeps it */
    tt_token_cache_free(s->token_cache);
    free(s);
}

void tt_llm_service_close(tt_llm_service *s)
{
    if (!s)
        return;
    s->closing = 1;
    while (s->calls)
        tt_llm_call_cancel(s->calls);
    tt_http_close(s->http);
    tt_routes_free(&s->routes);
    if (s->preparing == 0)
        service_free(s); /* else the last job back frees it (prep_after) */
}

tt_token_cache *tt_llm_service_token_cache(tt_llm_service *s)
{
    return s ? s->token_cache : NULL;
}

/* The BPE tokenizer of model (loaded in the pool after listening for every
 * route target, see tt_llm_service_preload), or NULL when the model has none
 * or its rank file is missing (then estimates). */
static const tt_tokenizer *tokenizer_for(tt_llm_service *s, const char *model)
{
    tt_tokenizer_encoding enc = tt_tokenizer_encoding_for_model(model);
    int rc;
    const tt_tokenizer *tok = tt_tokenizer_set_get(s->tokenizers, enc, &rc);
    if (!tok && rc && s->log && tt_tokenizer_set_report_failure(s->tokenizers, enc))
        s->log(json_pack("{s:s, s:s, s:s, s:s}", "msg", "tokenizer unavailable: using estimates",
                         "encoding", tt_tokenizer_encoding_name(enc), "dir",
                         tt_tokenizer_set_dir(s->tokenizers), "error", tt_strerror(rc)),
               s->log_ud);
    return tok;
}

tt_http *tt_llm_service_http(tt_llm_service *s)
{
    return s->http;
}

void tt_llm_service_log(tt_llm_service *s, json_t *line)
{
    if (s && s->log && line)
        s->log(line, s->log_ud);
    else
        json_decref(line);
}

const struct tt_routes *tt_llm_service_routes(const tt_llm_service *s)
{
    return s ? &s->routes : NULL;
}

void tt_llm_service_report(tt_llm_service *s, const tt_llm_usage *u)
{
    if (s && s->usage)
        s->usage(u, s->usage_ud);
}

const struct tt_route *tt_llm_service_find_route(const tt_llm_service *s, const char *alias)
{
    if (!s || s->routes.n_routes == 0)
        return NULL;
    return alias ? tt_routes_find(&s->routes, alias) : &s->routes.routes[0];
}

const char *tt_llm_service_route_of_model(const tt_llm_service *s, const char *model)
{
    return s ? tt_routes_alias_of_model(&s->routes, model) : NULL;
}

json_t *tt_llm_service_models(const tt_llm_service *s)
{
    return s ? tt_routes_describe(&s->routes) : json_array();
}

/* The model an attempt at t asks for: the call's own, or the target's. */
static const char *model_of(const tt_llm_call *c, const tt_route_target *t)
{
    return c->model[0] ? c->model : t->model;
}

const char *tt_llm_call_model(const tt_llm_call *c)
{
    return model_of(c, &c->route->targets[c->target]);
}

/* ---- logging ---------------------------------------------------------------- */

/* One log line and one usage report per provider attempt. */
static void log_line(tt_llm_call *c, const tt_route_target *t, const char *outcome, uint64_t now,
                     double cost)
{
    tt_llm_service *s = c->svc;
    json_t *line = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:s, s:i, s:f, s:s?}", "msg",
        "llm call", "input_sha256", c->input_hash, "route", c->route->alias, "provider",
        tt_llm_provider_name(t->provider), "region", t->region, "model", model_of(c, t), "attempt",
        (int)c->retry.n_hist + 1, "prompt_tokens", (json_int_t)c->prompt_tokens,
        "completion_tokens", (json_int_t)c->completion_tokens, "ttft_ms",
        (json_int_t)(c->first_token_ms ? (int64_t)(c->first_token_ms - c->attempt_start_ms) : -1),
        "latency_ms", (json_int_t)(now - c->attempt_start_ms), "outcome", outcome, "http_status",
        c->status, "cost_usd", cost, "prompt", c->req.tag);
    if (line) {
        tt_llm_attribution_log(line, &c->attr);
        s->log(line, s->log_ud);
    }
}

static void report_usage(tt_llm_call *c, const tt_route_target *t, const char *outcome,
                         uint64_t now, double cost)
{
    char target[160];
    snprintf(target, sizeof target, "%s%s%s", tt_llm_provider_name(t->provider),
             t->region[0] ? "/" : "", t->region);
    tt_llm_usage u = {.attr = &c->attr,
                      .route = c->route->alias,
                      .model = model_of(c, t),
                      .target = target,
                      .outcome = outcome,
                      .prompt_tokens = c->prompt_tokens,
                      .completion_tokens = c->completion_tokens,
                      .latency_ms = (int64_t)(now - c->attempt_start_ms),
                      .cost_usd = cost};
    c->svc->usage(&u, c->svc->usage_ud);
}

/* Each attempt: its log line (a successful one only with log_ok: one line per
 * call is a cost at thousands of calls a second) and its usage row. */
static void log_attempt(tt_llm_call *c, const char *outcome)
{
    tt_llm_service *s = c->svc;
    int want_line = s->log && (s->log_ok || strcmp(outcome, "ok") != 0);
    if (!want_line && !s->usage)
        return;
    const tt_route_target *t = &c->route->targets[c->target];
    uint64_t now = now_ms(s);
    double cost = tt_route_cost(&s->routes.prices, model_of(c, t), c->prompt_tokens,
                                c->completion_tokens, NULL);
    if (want_line)
        log_line(c, t, outcome, now, cost);
    if (s->usage)
        report_usage(c, t, outcome, now, cost);
}

/* ---- finishing ------------------------------------------------------------- */

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void attempt_clear(tt_llm_call *c)
{
    tt_llm_parser_free(c->parser);
    c->parser = NULL;
    tt_buf_free(&c->err_body);
    c->http = NULL;
}

static void call_free(tt_llm_call *c)
{
    attempt_clear(c);
    free(c->prep.body);
    tt_call_request_free(&c->req);
    tt_llm_cache_call_free(c->cache);
    free(c);
}

static void finish(tt_llm_call *c, tt_llm_error_class cls, const char *msg)
{
    tt_llm_service *s = c->svc;
    tt_llm_result *r = &c->result;
    if (cls != TT_LLM_ERR_NONE && r->error.cls == TT_LLM_ERR_NONE) {
        r->error.cls = cls;
        r->error.retry_after_ms = -1;
        tt_utf8_copy(r->error.message, sizeof r->error.message, msg);
    }
    r->error.cls = cls;
    r->attempts = (int)c->retry.n_hist + (cls == TT_LLM_ERR_NONE ? 1 : 0);
    r->total_ms = (int64_t)(now_ms(s) - c->call_start_ms);
    if (c->timer) {
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *)c->timer, free_timer);
        c->timer = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    tt_llm_gate_release(&s->gate, c->hold);
    c->hooks.on_done(c, r, c->ud);
    if (c->preparing) {
        c->done = 1; /* the job still uses c->req: prep_after frees */
        return;
    }
    call_free(c);
}

/* ---- one attempt ------------------------------------------------------------ */

static void on_llm_event(const tt_llm_event *ev, void *ud)
{
    tt_llm_call *c = ud;
    tt_llm_cache_record(c->cache, (int)c->retry.n_hist, ev);
    switch (ev->kind) {
    case TT_LLM_EV_TEXT:
    case TT_LLM_EV_TOOL_CALL:
        if (!c->first_token_ms)
            c->first_token_ms = now_ms(c->svc);
        c->attempt_output = 1;
        if (!c->cancelled)
            c->hooks.on_event(c, ev, c->ud);
        break;
    case TT_LLM_EV_USAGE:
        if (ev->prompt_tokens >= 0)
            c->prompt_tokens = ev->prompt_tokens;
        if (ev->completion_tokens >= 0)
            c->completion_tokens = ev->completion_tokens;
        break;
    case TT_LLM_EV_FINISH:
        c->finish_reason = ev->finish_reason;
        break;
    case TT_LLM_EV_ERROR:
        c->attempt_error = ev->error;
        break;
    }
}

static void on_headers(tt_http_req *r, int status, void *ud)
{
    tt_llm_call *c = ud;
    c->status = status;
    if (status >= 200 && status < 300) {
        const tt_route_target *t = &c->route->targets[c->target];
        /* A plain request (stream 0) is answered with one JSON body. */
        if (tt_llm_parser_new(t->provider, c->req.stream, on_llm_event, c, &c->parser) != 0)
            c->attempt_error.cls = TT_LLM_ERR_MALFORMED;
    }
}

static int on_data(tt_http_req *r, const char *buf, size_t len, void *ud)
{
    tt_llm_call *c = ud;
    if (c->parser)
        return tt_llm_parser_feed(c->parser, buf, len) != 0 || c->cancelled;
    /* Past the cap: enough of an error body to classify it, the rest is skipped. */
    int rc = tt_buf_append(&c->err_body, buf, len);
    return rc != 0 && rc != TT_ETOOLARGE;
}

/* The outcome of the attempt in flight: record it and decide what follows. */
static void on_http_done(tt_http_req *r, tt_llm_error_class result, const char *detail, void *ud)
{
    tt_llm_call *c = ud;
    const tt_route_target *t = &c->route->targets[c->target];
    tt_llm_error e = c->attempt_error;
    if (c->cancelled) {
        e.cls = TT_LLM_ERR_CANCELLED;
    } else if (e.cls == TT_LLM_ERR_NONE && c->status > 0 && (c->status < 200 || c->status >= 300)) {
        tt_llm_classify_http(t->provider, c->status, tt_http_header(r, "retry-after"),
                             tt_buf_data(&c->err_body), c->err_body.len,
                             (int64_t)uv_now(c->svc->loop), &e);
        const char *et =
            t->provider == TT_LLM_BEDROCK ? tt_http_header(r, "x-amzn-errortype") : NULL;
        tt_llm_error_class k =
            et ? tt_bedrock_exception_class(et, strcspn(et, ":"), e.message) : TT_LLM_ERR_NONE;
        if (k != TT_LLM_ERR_NONE)
            e.cls = k;
    } else if (e.cls == TT_LLM_ERR_NONE && result != TT_LLM_ERR_NONE) {
        e.cls = result;
        e.retry_after_ms = -1;
        tt_utf8_copy(e.message, sizeof e.message, detail);
    } else if (e.cls == TT_LLM_ERR_NONE && c->parser) {
        tt_llm_parser_finish(c->parser); /* may report a stream that ended early */
        e = c->attempt_error;
    }
    tt_breaker_record(&c->route->breakers[c->target], &c->svc->routes.retry, e.cls,
                      (int64_t)now_ms(c->svc));
    log_attempt(c, e.cls == TT_LLM_ERR_NONE ? "ok" : tt_llm_error_name(e.cls));
    c->http = NULL;
    if (e.cls == TT_LLM_ERR_NONE) {
        tt_llm_result *res = &c->result;
        res->prompt_tokens = c->prompt_tokens;
        res->completion_tokens = c->completion_tokens;
        res->cost_usd = tt_route_cost(&c->svc->routes.prices, model_of(c, t), c->prompt_tokens,
                                      c->completion_tokens, NULL);
        tt_utf8_copy(res->model, sizeof res->model, model_of(c, t));
        snprintf(res->target, sizeof res->target, "%s%s%s", tt_llm_provider_name(t->provider),
                 t->region[0] ? "/" : "", t->region);
        res->finish_reason = c->finish_reason ? c->finish_reason : "stop";
        res->ttft_ms = c->first_token_ms ? (int64_t)(c->first_token_ms - c->call_start_ms) : -1;
        tt_llm_cache_store_result(c->cache, res);
        finish(c, TT_LLM_ERR_NONE, NULL);
        return;
    }
    if (e.cls == TT_LLM_ERR_CANCELLED) {
        finish(c, TT_LLM_ERR_CANCELLED, "cancelled");
        return;
    }
    c->result.error = e;
    tt_retry_call_record(&c->retry, c->target, &e, (int64_t)now_ms(c->svc));
    plan_next(c);
}

static const tt_http_callbacks http_callbacks = {on_headers, on_data, on_http_done};

/* ---- preparing an attempt ---------------------------------------------------- */

static void prep_work(uv_work_t *w)
{
    tt_llm_call *c = w->data;
    tt_call_prep_run(&c->prep);
}

static void prep_after(uv_work_t *w, int status)
{
    tt_llm_call *c = w->data;
    tt_llm_service *s = c->svc;
    c->preparing = 0;
    s->preparing--;
    if (c->done) { /* cancelled meanwhile: on_done was called then */
        call_free(c);
        if (s->closing && s->preparing == 0)
            service_free(s);
        return;
    }
    if (status != 0) { /* only a cancel uv_cancel()s the job, and it sets done */
        finish(c, TT_LLM_ERR_BAD_REQUEST, "the request could not be prepared");
        return;
    }
    c->prep_then(c);
}

/* Run steps (call_request.h) on c's request for target: in the thread pool
 * when the request is large, else now; then(c) follows on the loop unless
 * the call was cancelled meanwhile. */
static void prepare(tt_llm_call *c, unsigned steps, size_t target, void (*then)(tt_llm_call *))
{
    tt_llm_service *s = c->svc;
    const tt_route_target *t = &c->route->targets[target];
    free(c->prep.body);
    c->prep = (tt_call_prep){.steps = steps,
                             .req = &c->req,
                             .tok = tokenizer_for(s, model_of(c, t)),
                             .cache = s->token_cache,
                             .max_prompt_tokens = s->routes.max_prompt_tokens,
                             .provider = t->provider,
                             .max_completion_tokens = s->routes.max_completion_tokens};
    snprintf(c->prep.model, sizeof c->prep.model, "%s", model_of(c, t));
    c->prep_then = then;
    c->work.data = c;
    if (tt_call_prep_offloaded(&c->req) &&
        uv_queue_work(s->loop, &c->work, prep_work, prep_after) == 0) {
        c->preparing = 1;
        s->preparing++;
        return;
    }
    tt_call_prep_run(&c->prep);
    then(c);
}

/* The body is ready: take the breaker and send. */
static void send_attempt(tt_llm_call *c)
{
    tt_llm_service *s = c->svc;
    size_t target = c->target;
    const tt_route_target *t = &c->route->targets[target];
    if (!c->prepared) {
        c->prepared = 1;
        memcpy(c->input_hash, c->prep.input_hash, sizeof c->input_hash);
        c->result.dropped_messages += c->prep.dropped;
    } /* 2: paused, resumed by tt_llm_call_pause(); 3: a lookup, then send_attempt again */
    int hit = tt_llm_cache_replay(c->cache, c, c->hooks.on_event, c->ud, &c->result, send_attempt);
    if (hit == 1)
        finish(c, c->cancelled ? TT_LLM_ERR_CANCELLED : TT_LLM_ERR_NONE, "cancelled");
    if (hit)
        return;
    if (c->prep.rc) {
        finish(c, TT_LLM_ERR_BAD_REQUEST, "the request could not be built");
        return;
    }
    if (!tt_breaker_acquire(&c->route->breakers[target], &s->routes.retry, (int64_t)now_ms(s))) {
        /* Opened meanwhile: count it as an overload of that target and plan again. */
        tt_llm_error e = {.cls = TT_LLM_ERR_OVERLOADED, .retry_after_ms = -1};
        snprintf(e.message, sizeof e.message, "circuit breaker open");
        c->result.error = e;
        tt_retry_call_record(&c->retry, target, &e, (int64_t)now_ms(s));
        plan_next(c);
        return;
    }
    attempt_clear(c);
    c->status = 0;
    c->attempt_output = 0;
    c->attempt_error = (tt_llm_error){.cls = TT_LLM_ERR_NONE, .retry_after_ms = -1};
    c->finish_reason = NULL;
    c->prompt_tokens = c->completion_tokens = -1;
    c->first_token_ms = 0;
    c->attempt_start_ms = now_ms(s);

    int rc = start_http(c, t);
    free(c->prep.body);
    c->prep.body = NULL;
    c->prep.body_sha256[0] = '\0';
    if (rc) {
        tt_breaker_record(&c->route->breakers[target], &s->routes.retry, TT_LLM_ERR_CANCELLED,
                          (int64_t)now_ms(s));
        finish(c, TT_LLM_ERR_BAD_REQUEST, "the request could not be built");
    }
}

/* Start the attempt's transfer to t: URL, headers, and Bedrock's signature. */
static int start_http(tt_llm_call *c, const tt_route_target *t)
{
    tt_llm_service *s = c->svc;
    int bedrock = t->provider == TT_LLM_BEDROCK;
    char *headers[MAX_HEADERS + 6] = {0};
    char path[3 * TT_ROUTE_MODEL_MAX + 64], url[TT_ROUTE_URL_MAX + sizeof path];
    int rc = tt_llm_request_path(t->provider, model_of(c, t), c->req.stream, path, sizeof path);
    snprintf(url, sizeof url, "%s%s", t->base_url, path);
    if (rc == 0)
        rc = tt_llm_headers(t->provider, t->api_key, headers, MAX_HEADERS);
    size_t h = 0;
    while (rc == 0 && headers[h])
        h++;
    if (rc == 0) {
        headers[h++] = strdup("Content-Type: application/json");
        headers[h++] = strdup(tt_llm_accept_header(t->provider, c->req.stream));
        if (!headers[h - 1] || !headers[h - 2])
            rc = TT_ENOMEM;
    }
    tt_http_aws aws = {0};
    char scope[TT_ROUTE_REGION_MAX + 32];
    if (rc == 0 && bedrock)
        rc = tt_bedrock_sign(t, url, path,
                             &(tt_bedrock_body){.data = c->prep.body,
                                                .len = c->prep.body_len,
                                                .sha256 = c->prep.body_sha256},
                             headers, h, &aws, scope, sizeof scope);
    tt_http_timeouts to = {t->timeouts.connect_ms, t->timeouts.first_byte_ms, t->timeouts.idle_ms,
                           t->timeouts.total_ms};
    if (rc == 0 && aws.sigv4)
        rc = tt_http_start_aws(s->http, "POST", url, (const char *const *)headers, c->prep.body,
                               c->prep.body_len, &to, &aws, &http_callbacks, c, &c->http);
    else if (rc == 0)
        rc = tt_http_start(s->http, "POST", url, (const char *const *)headers, c->prep.body,
                           c->prep.body_len, &to, &http_callbacks, c, &c->http);
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        if (headers[i])
            OPENSSL_cleanse(headers[i], strlen(headers[i])); /* tokens and signatures */
        free(headers[i]);
    }
    return rc;
}

static void on_timer(uv_timer_t *t)
{
    tt_llm_call *c = t->data;
    /* The first preparation also hashes the request and fits it to the budget. */
    unsigned steps = TT_PREP_BODY | (c->prepared ? 0 : TT_PREP_HASH | TT_PREP_FIT);
    prepare(c, steps, c->target, send_attempt);
}

/* Schedule the attempt step says, or finish. */
static void plan_continue(tt_llm_call *c, const tt_retry_step *step)
{
    if (step->action == TT_RETRY_GIVE_UP) {
        finish(c, step->cls, step->why);
        return;
    }
    if (c->attempt_output) {
        if (!c->hooks.on_restart) {
            finish(c, c->result.error.cls, "failed after output was sent; not retried");
            return;
        }
        /* A cancel from inside the hook only marks the call: it is finished
         * here, after the hook returns, never under it. */
        c->in_restart_hook = 1;
        c->hooks.on_restart(c, &c->result.error, c->ud);
        c->in_restart_hook = 0;
        if (c->cancelled) {
            finish(c, TT_LLM_ERR_CANCELLED, "cancelled");
            return;
        }
    }
    c->target = step->target;
    (void)uv_timer_start(c->timer, on_timer, (uint64_t)(step->delay_ms > 0 ? step->delay_ms : 0),
                         0);
}

/* The trim after a context-length error is done: try again if it dropped anything. */
static void after_trim(tt_llm_call *c)
{
    tt_retry_step step = c->trim_step;
    if (c->prep.dropped > 0) {
        c->result.dropped_messages += c->prep.dropped;
        step.action = TT_RETRY_TRY;
        step.delay_ms = 0;
    }
    plan_continue(c, &step);
}

/* Decide and schedule the next attempt, or finish. */
static void plan_next(tt_llm_call *c)
{
    tt_llm_service *s = c->svc;
    tt_retry_step step;
    tt_retry_plan(&c->retry, c->route->breakers, (int64_t)now_ms(s), tt_retry_splitmix, &s->rng,
                  &step);
    if (step.action == TT_RETRY_GIVE_UP && step.trim && !c->trimmed) {
        /* Context too long: drop the oldest turns and try once more. */
        c->trimmed = 1;
        c->trim_step = step;
        prepare(c, TT_PREP_TRIM, step.target, after_trim);
        return;
    }
    plan_continue(c, &step);
}

/* ---- the public face -------------------------------------------------------- */

int tt_llm_call_start_direct(tt_llm_service *s, const char *alias, const char *model,
                             const tt_llm_request *req, const tt_llm_call_hooks *hooks, void *ud,
                             tt_llm_call **out)
{
    if (s->closing || s->routes.n_routes == 0)
        return TT_EFULL;
    if (model && (!model[0] || strlen(model) >= sizeof((tt_llm_call *)0)->model))
        return TT_EINVAL;
    tt_route *route = alias ? tt_routes_find(&s->routes, alias) : &s->routes.routes[0];
    if (!route)
        return TT_ENOTFOUND;
    tt_llm_call *c = calloc(1, sizeof *c);
    if (!c)
        return TT_ENOMEM;
    c->svc = s;
    c->route = route;
    if (model)
        snprintf(c->model, sizeof c->model, "%s", model);
    c->hooks = *hooks;
    c->ud = ud;
    if (req->attr)
        c->attr = *req->attr;
    c->call_start_ms = now_ms(s);
    c->result.error.retry_after_ms = -1;
    tt_buf_init(&c->err_body, ERR_BODY_MAX);
    c->timer = malloc(sizeof *c->timer);
    int rc = c->timer ? tt_call_request_copy(req, &c->req) : TT_ENOMEM;
    if (rc == 0)
        rc = tt_retry_call_init(&c->retry, &s->routes.retry, route->n_targets,
                                (int64_t)c->call_start_ms);
    if (rc == 0)
        rc = tt_llm_gate_reserve(&s->gate, &s->routes, route, model, req, &c->attr, &c->hold);
    if (rc) {
        tt_call_request_free(&c->req);
        free(c->timer);
        free(c);
        return rc;
    }
    c->req.cache = c->cache = tt_llm_cache_call_new(s->cache, &s->routes, route, model, req);
    (void)uv_timer_init(s->loop, c->timer);
    c->timer->data = c;
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    if (out)
        *out = c;
    plan_next(c); /* the first preparation hashes the request and fits it to the budget */
    return 0;
}

void tt_llm_call_cancel(tt_llm_call *c)
{
    if (!c || c->cancelled)
        return;
    c->cancelled = 1;
    if (c->http) {
        tt_http_cancel(c->http); /* on_http_done follows and finishes the call */
        return;
    }
    if (c->preparing)
        uv_cancel((uv_req_t *)&c->work); /* if it has not started; prep_after frees either way */
    if (c->in_restart_hook || tt_llm_cache_cancel(c->cache))
        return; /* plan_continue or the replay finishes the call once the hook returns */
    finish(c, TT_LLM_ERR_CANCELLED, "cancelled");
}

void tt_llm_call_pause(tt_llm_call *c, int paused)
{
    if (c && c->http)
        tt_http_pause(c->http, paused);
    else if (c && tt_llm_cache_pause(c->cache, paused) == 1) /* a replay ended */
        finish(c, c->cancelled ? TT_LLM_ERR_CANCELLED : TT_LLM_ERR_NONE, "cancelled");
}
