/* PII redaction per route (route.h "redact", redact.h): the routes file's
 * settings, and the call start that hands the call a mapping (its first
 * preparation, call_request.c, redacts the messages' content and tool call
 * arguments into it, in the thread pool for a large request, before the
 * request is hashed) and restores the placeholders in the reply.
 *
 * The map lives as long as the call and its copy of the request. The
 * reply's TEXT fragments go through a tt_redact_stream, so a placeholder
 * cut between two fragments is held (at most TT_REDACT_PLACEHOLDER_MAX - 1
 * bytes) and restored whole; what is still held when the call ends
 * successfully is passed on before on_done; a restart (new attempt after
 * output) drops it with the rest. Tool calls' argument fragments go the
 * same way, one stream per call index (the first TOOL_STREAMS), the values
 * JSON-escaped. Tool definitions are sent as they are. */
#include <stdlib.h>
#include <string.h>

#include "agents/llm/call.h"
#include "agents/llm/call_request.h"
#include "agents/llm/redact.h"
#include "agents/llm/route.h"
#include "protocol/errors.h"

/* A reply fragment restored: its bytes, each placeholder in it up to
 * TT_REDACT_VALUE_MAX, well under this. */
#define RESTORED_MAX ((size_t)64 << 20)

static int bad(char *err, size_t n, const char *path, const char *what)
{
    snprintf(err, n, "%s: %s", path, what);
    return TT_EINVAL;
}

int tt_route_redact_parse(tt_routes *out, const json_t *v, const char *path, char *err, size_t n)
{
    const json_t *routes = json_object_get(v, "routes"), *pats = json_object_get(v, "patterns");
    if (!json_is_object(v) || json_object_size(v) != (size_t)(routes != NULL) + (pats != NULL))
        return bad(err, n, path, "must be an object with \"routes\" and \"patterns\" only");
    if ((routes && !json_is_object(routes)) || (pats && !json_is_object(pats)))
        return bad(err, n, path, "\"routes\" and \"patterns\" must be objects");
    if (json_object_size(pats) > TT_REDACT_EXTRA_MAX)
        return bad(err, n, path, "at most 16 patterns");
    const char *patterns[TT_REDACT_EXTRA_MAX], *labels[TT_REDACT_EXTRA_MAX];
    size_t np = 0;
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)pats, key, x)
    {
        if (!json_is_string(x))
            return bad(err, n, path, "each pattern must be a string");
        labels[np] = key;
        patterns[np++] = json_string_value(x);
    }
    char msg[256];
    out->redactor = tt_redact_new(patterns, labels, np, msg, sizeof msg);
    if (!out->redactor)
        return bad(err, n, path, msg);
    json_object_foreach((json_t *)routes, key, x)
    {
        tt_route *r = tt_routes_find(out, key);
        if (!r || !json_is_boolean(x)) {
            snprintf(err, n, "%s.routes.%s: must be a route's alias with true or false", path, key);
            return TT_EINVAL;
        }
        r->redact = json_is_true(x) ? out->redactor : NULL;
    }
    return 0;
}

/* Tool calls whose arguments are restored (by index); later ones pass as sent. */
#define TOOL_STREAMS 16

typedef struct redacting {
    tt_llm_call_hooks hooks;
    void *ud;
    tt_redact_map *map;
    tt_redact_stream stream;
    tt_redact_stream tools[TOOL_STREAMS]; /* JSON: values escaped */
    tt_buf out;
} redacting;

static void streams_init(redacting *w)
{
    tt_redact_stream_init(&w->stream, w->map);
    for (int i = 0; i < TOOL_STREAMS; i++)
        tt_redact_stream_init_json(&w->tools[i], w->map);
}

/* A tool call's argument fragment restored (its first fragment, with the
 * call's id and name, is passed on even when all of it is held). */
static void tool_event(redacting *w, tt_llm_call *c, const tt_llm_event *ev)
{
    if (ev->tool_index < 0 || ev->tool_index >= TOOL_STREAMS) {
        w->hooks.on_event(c, ev, w->ud);
        return;
    }
    tt_buf_reset(&w->out);
    tt_llm_event e = *ev;
    if (tt_redact_stream_feed(&w->tools[ev->tool_index], ev->args ? ev->args : "", ev->args_len,
                              &w->out) == 0) {
        e.args = tt_buf_data(&w->out) ? tt_buf_data(&w->out) : "";
        e.args_len = w->out.len;
    }
    if (e.args_len > 0 || e.tool_id || e.tool_name)
        w->hooks.on_event(c, &e, w->ud);
}

static void redacting_free(redacting *w)
{
    tt_buf_free(&w->out);
    tt_redact_map_free(w->map);
    free(w);
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    redacting *w = ud;
    if (ev->kind == TT_LLM_EV_TOOL_CALL) {
        tool_event(w, c, ev);
        return;
    }
    if (ev->kind != TT_LLM_EV_TEXT) {
        w->hooks.on_event(c, ev, w->ud);
        return;
    }
    tt_buf_reset(&w->out);
    tt_llm_event e = *ev;
    if (tt_redact_stream_feed(&w->stream, ev->text, ev->text_len, &w->out) == 0) {
        e.text = tt_buf_data(&w->out);
        e.text_len = w->out.len;
    } /* else (past RESTORED_MAX) the fragment goes on with its placeholders */
    if (e.text_len > 0)
        w->hooks.on_event(c, &e, w->ud);
}

static void on_restart(tt_llm_call *c, const tt_llm_error *why, void *ud)
{
    redacting *w = ud;
    streams_init(w);
    w->hooks.on_restart(c, why, w->ud);
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    redacting *w = ud;
    tt_buf_reset(&w->out);
    if (r->error.cls == TT_LLM_ERR_NONE && tt_redact_stream_end(&w->stream, &w->out) == 0 &&
        w->out.len > 0) {
        tt_llm_event e = {
            .kind = TT_LLM_EV_TEXT, .text = tt_buf_data(&w->out), .text_len = w->out.len};
        w->hooks.on_event(c, &e, w->ud);
    }
    for (int i = 0; i < TOOL_STREAMS && r->error.cls == TT_LLM_ERR_NONE; i++) {
        tt_buf_reset(&w->out);
        if (tt_redact_stream_end(&w->tools[i], &w->out) == 0 && w->out.len > 0) {
            tt_llm_event e = {.kind = TT_LLM_EV_TOOL_CALL,
                              .tool_index = i,
                              .args = tt_buf_data(&w->out),
                              .args_len = w->out.len};
            w->hooks.on_event(c, &e, w->ud);
        }
    }
    w->hooks.on_done(c, r, w->ud);
    redacting_free(w);
}

int tt_llm_call_start_model(tt_llm_service *s, const char *alias, const char *model,
                            const tt_llm_request *req, const tt_llm_call_hooks *hooks, void *ud,
                            tt_llm_call **out)
{
    const tt_route *route = tt_llm_service_find_route(s, alias);
    if (!route || !route->redact)
        return tt_llm_call_start_direct(s, alias, model, req, hooks, ud, out);
    redacting *w = calloc(1, sizeof *w);
    if (!w || !(w->map = tt_redact_map_new())) {
        free(w);
        return TT_ENOMEM;
    }
    tt_llm_call_hooks wrap = {.on_event = on_event,
                              .on_restart = hooks->on_restart ? on_restart : NULL,
                              .on_done = on_done};
    w->hooks = *hooks;
    w->ud = ud;
    streams_init(w);
    tt_buf_init(&w->out, RESTORED_MAX);
    /* the call's copy takes a reference: its first preparation (on the
     * loop, or in the pool for a large request) fills the map, which may
     * outlive on_done while a cancelled preparation is still running */
    tt_llm_request copy = *req;
    copy.redact_map = w->map;
    copy.redactor = route->redact;
    int rc = tt_llm_call_start_direct(s, alias, model, &copy, &wrap, w, out);
    if (rc != 0)
        redacting_free(w);
    return rc;
}
