/* The OpenAI-compatible gateway (see gateway.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/call.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/gateway.h"
#include "server/gateway_parse.h"
#include "server/server.h"
#include "state/session.h"

#define OUT_PAUSE_BYTES (64 * 1024) /* pause the upstream while this much waits */
/* A streamed response's unsent bytes: the pause threshold plus what one
 * upstream read already in hand turns into (it is not cut short). */
#define OUT_STREAM_MAX (1024 * 1024)
#define WRITE_CHUNK (16 * 1024)
#define TEXT_MAX TT_SESSION_STREAMING_MAX /* a plain response's text */
#define ARGS_MAX (1024 * 1024)            /* one tool call's arguments */
#define TOOL_CALLS_MAX 128                /* tool calls in a plain response */

struct parse_job;

/* Text gathered from many fragments (a tool call's arguments may come a
 * few bytes at a time). */
typedef tt_buf gathered;

/* A plain response's tool call: the provider's index for it (not always
 * counted from 0) and its argument fragments, joined at the end. */
typedef struct gathered_call {
    int index;
    gathered args;
} gathered_call;

struct tt_gateway_req {
    tt_server *srv;
    struct lws *wsi;
    struct parse_job *parsing; /* the body is being parsed in the thread pool */
    tt_llm_call *call;
    int stream, include_usage;
    tt_llm_attribution attr; /* who pays (tt_gateway_start_as) */
    char id[40];
    char model[128];
    int64_t created;
    /* what goes out: status, headers once, then body bytes */
    int status;
    int headers_sent;
    tt_buf out;     /* LWS_PRE headroom; unsent bytes from out_pos */
    size_t out_pos; /* bytes of out already written */
    int complete;   /* no more bytes will be queued */
    int paused;
    int overflow; /* the upstream sent more than a cap: the call was stopped */
    int sent_role;
    /* plain responses are built at the end */
    gathered text;
    json_t *tool_calls;   /* [{id, type, function:{name, arguments}}] */
    gathered_call *calls; /* each tool call's index and arguments, in tool_calls' order */
    size_t n_calls;       /* = the size of tool_calls, at most TOOL_CALLS_MAX */
};

/* Past a cap the call is stopped and the response fails (on_done). */

static void overflow(tt_gateway_req *g)
{
    g->overflow = 1;
    if (g->call)
        tt_llm_call_cancel(g->call);
}

static void out_append(tt_gateway_req *g, const char *s, size_t n)
{
    if (g->out_pos > 0 && g->out_pos * 2 >= g->out.len) {
        tt_buf_consume(&g->out, g->out_pos); /* what was sent goes: O(1) a byte */
        g->out_pos = 0;
    }
    if (tt_buf_append(&g->out, s, n) != 0)
        overflow(g);
    tt_server_want_writable(g->srv, g->wsi);
}

static size_t out_pending(const tt_gateway_req *g)
{
    return g->out.len - g->out_pos;
}

/* A whole response: status and a JSON body (consumed). */
static void respond(tt_gateway_req *g, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    g->status = status;
    g->stream = 0;
    /* The whole response at once: its own size is its cap (what it is made
     * of is capped: TEXT_MAX, ARGS_MAX, the error messages). */
    size_t n = text ? strlen(text) : 0;
    tt_buf_free(&g->out);
    tt_buf_init_headroom(&g->out, n, LWS_PRE);
    g->out_pos = 0;
    if (text && tt_buf_append(&g->out, text, n) != 0)
        g->status = 500; /* no memory: an empty 500 */
    free(text);
    g->complete = 1;
    tt_server_want_writable(g->srv, g->wsi);
}

static int status_for(tt_llm_error_class cls)
{
    switch (cls) {
    case TT_LLM_ERR_RATE_LIMITED:
        return 429;
    case TT_LLM_ERR_TIMEOUT:
        return 504;
    case TT_LLM_ERR_BAD_REQUEST:
    case TT_LLM_ERR_CONTEXT_LENGTH:
    case TT_LLM_ERR_CONTENT_FILTER:
        return 400;
    case TT_LLM_ERR_AUTH:
        return 502; /* our upstream key failed, not the client's */
    default:
        return 502;
    }
}

static void sse(tt_gateway_req *g, json_t *chunk)
{
    char *text = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (!text)
        return;
    out_append(g, "data: ", 6);
    out_append(g, text, strlen(text));
    out_append(g, "\n\n", 2);
    free(text);
    if (out_pending(g) > OUT_PAUSE_BYTES && !g->paused && g->call) {
        g->paused = 1;
        tt_llm_call_pause(g->call, 1);
    }
}

static json_t *chunk(tt_gateway_req *g, json_t *delta, const char *finish)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s?}]}", "id", g->id, "object",
                     "chat.completion.chunk", "created", (json_int_t)g->created, "model", g->model,
                     "choices", "index", 0, "delta", delta, "finish_reason", finish);
}

static void gather(tt_gateway_req *g, gathered *b, const char *s, size_t n)
{
    if (tt_buf_append(b, s, n) != 0)
        overflow(g);
}

/* A plain response's tool call fragment: the call is made on the first
 * fragment with its index, the arguments are only gathered (set in on_done). */
static void gather_tool_call(tt_gateway_req *g, const tt_llm_event *ev)
{
    size_t i = 0;
    while (i < g->n_calls && g->calls[i].index != ev->tool_index)
        i++;
    if (i == g->n_calls) {
        if (g->n_calls == TOOL_CALLS_MAX) {
            overflow(g);
            return;
        }
        gathered_call *grown = realloc(g->calls, (g->n_calls + 1) * sizeof *grown);
        if (!grown)
            return;
        g->calls = grown;
        json_t *call = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", ev->tool_id ? ev->tool_id : "",
                                 "type", "function", "function", "name",
                                 ev->tool_name ? ev->tool_name : "", "arguments", "");
        if (!call || json_array_append_new(g->tool_calls, call) != 0)
            return;
        g->calls[i].index = ev->tool_index;
        tt_buf_init(&g->calls[i].args, ARGS_MAX);
        g->n_calls++;
    }
    gather(g, &g->calls[i].args, ev->args ? ev->args : "", ev->args_len);
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    tt_gateway_req *g = ud;
    if (ev->kind == TT_LLM_EV_TEXT) {
        if (!g->stream) {
            gather(g, &g->text, ev->text, ev->text_len);
            return;
        }
        json_t *delta = json_pack("{s:s%}", "content", ev->text, ev->text_len);
        if (!g->sent_role)
            json_object_set_new(delta, "role", json_string("assistant"));
        g->sent_role = 1;
        sse(g, chunk(g, delta, NULL));
    } else if (ev->kind == TT_LLM_EV_TOOL_CALL) {
        if (!g->stream) {
            gather_tool_call(g, ev);
            return;
        }
        json_t *fn = json_pack("{s:s%}", "arguments", ev->args ? ev->args : "", ev->args_len);
        if (ev->tool_name)
            json_object_set_new(fn, "name", json_string(ev->tool_name));
        json_t *tc = json_pack("{s:i, s:o}", "index", ev->tool_index, "function", fn);
        if (ev->tool_id) {
            json_object_set_new(tc, "id", json_string(ev->tool_id));
            json_object_set_new(tc, "type", json_string("function"));
        }
        json_t *delta = json_pack("{s:[o]}", "tool_calls", tc);
        if (!g->sent_role)
            json_object_set_new(delta, "role", json_string("assistant"));
        g->sent_role = 1;
        sse(g, chunk(g, delta, NULL));
    }
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    tt_gateway_req *g = ud;
    g->call = NULL;
    if (r->model[0])
        tt_utf8_copy(g->model, sizeof g->model, r->model);
    if (r->error.cls == TT_LLM_ERR_CANCELLED && g->overflow) {
        if (!g->headers_sent)
            respond(g, 502,
                    tt_gateway_error("the upstream response is larger than this gateway keeps",
                                     "upstream_error", "too_large"));
        else
            g->complete = 1; /* the stream is cut: tt_gateway_writeable closes it */
        return;
    }
    if (r->error.cls == TT_LLM_ERR_CANCELLED) {
        g->complete = 1;
        return;
    }
    if (r->error.cls != TT_LLM_ERR_NONE) {
        char msg[320];
        tt_utf8_snprintf(msg, sizeof msg, "upstream %s: %s", tt_llm_error_name(r->error.cls),
                         r->error.message);
        if (!g->headers_sent && g->out.len == 0) {
            respond(g, status_for(r->error.cls),
                    tt_gateway_error(msg, "upstream_error", tt_llm_error_name(r->error.cls)));
        } else {
            sse(g, tt_gateway_error(msg, "upstream_error", tt_llm_error_name(r->error.cls)));
            out_append(g, "data: [DONE]\n\n", 14);
            g->complete = 1;
        }
        return;
    }
    const char *finish = r->finish_reason ? r->finish_reason : "stop";
    json_t *usage = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)r->prompt_tokens,
                              "completion_tokens", (json_int_t)r->completion_tokens, "total_tokens",
                              (json_int_t)(r->prompt_tokens + r->completion_tokens));
    if (g->stream) {
        sse(g, chunk(g, json_object(), finish));
        if (g->include_usage)
            sse(g, json_pack("{s:s, s:s, s:I, s:s, s:[], s:O}", "id", g->id, "object",
                             "chat.completion.chunk", "created", (json_int_t)g->created, "model",
                             g->model, "choices", "usage", usage));
        out_append(g, "data: [DONE]\n\n", 14);
        g->complete = 1;
        json_decref(usage);
        return;
    }
    json_t *message =
        json_pack("{s:s, s:s?}", "role", "assistant", "content", tt_buf_data(&g->text));
    for (size_t i = 0; i < g->n_calls; i++)
        json_object_set_new(json_object_get(json_array_get(g->tool_calls, i), "function"),
                            "arguments",
                            json_stringn(tt_buf_str(&g->calls[i].args), g->calls[i].args.len));
    if (json_array_size(g->tool_calls) > 0)
        json_object_set(message, "tool_calls", g->tool_calls);
    json_object_set_new(usage, "cost_usd", json_real(r->cost_usd));
    respond(g, 200,
            json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s}], s:o}", "id", g->id, "object",
                      "chat.completion", "created", (json_int_t)g->created, "model", g->model,
                      "choices", "index", 0, "message", message, "finish_reason", finish, "usage",
                      usage));
}

static const tt_llm_call_hooks hooks = {on_event, NULL, on_done};

/* Start the call a parsed request asks for; on a refusal, the error response. */
static void start_parsed(tt_gateway_req *g, tt_gateway_parsed *p)
{
    tt_llm_service *llm = g->srv->agent_env.llm;
    if (p->status) {
        respond(g, p->status, p->error);
        p->error = NULL;
        return;
    }
    memcpy(g->model, p->model, sizeof g->model);
    g->stream = p->stream;
    g->include_usage = p->include_usage;
    p->req.attr = &g->attr;
    int rc = llm ? tt_llm_call_start(llm, p->req.model, &p->req, &hooks, g, &g->call) : TT_EFULL;
    if (rc == TT_ENOTFOUND) {
        char msg[200];
        snprintf(msg, sizeof msg, "The model `%.*s` does not exist: no route has that alias",
                 tt_utf8_cut(p->req.model, 64), p->req.model);
        respond(g, 404, tt_gateway_error(msg, "invalid_request_error", "model_not_found"));
    } else if (rc) {
        respond(g, 500, tt_gateway_error("the call could not start", "server_error", NULL));
    }
}

/* A large body is parsed in the thread pool; the job owns its copy of the
 * body and its result. The request may go (the client left) while the job
 * runs: then g is NULL and the job frees itself when it is back. */
typedef struct parse_job {
    uv_work_t work;
    tt_gateway_req *g;
    char *body;
    size_t len;
    int64_t max_messages;
    tt_gateway_parsed parsed;
} parse_job;

static void parse_work(uv_work_t *w)
{
    parse_job *j = w->data;
    tt_gateway_parse(j->body, j->len, j->max_messages, &j->parsed);
    free(j->body);
    j->body = NULL;
}

/* What the parse left behind (tens of thousands of JSON values, megabytes)
 * is freed in the pool too. */
static void release_work(uv_work_t *w)
{
    parse_job *j = w->data;
    tt_gateway_parsed_free(&j->parsed);
}

static void release_after(uv_work_t *w, int status)
{
    free(w->data);
}

static void parse_after(uv_work_t *w, int status)
{
    parse_job *j = w->data;
    tt_gateway_req *g = j->g;
    if (g) {
        g->parsing = NULL;
        if (status == 0)
            start_parsed(g, &j->parsed);
        else
            respond(g, 500,
                    tt_gateway_error("the request could not be parsed", "server_error", NULL));
    }
    free(j->body);
    if (uv_queue_work(w->loop, &j->work, release_work, release_after) != 0) {
        tt_gateway_parsed_free(&j->parsed);
        free(j);
    }
}

/* Parse the body in the pool; 0, or the job could not be queued. */
static int parse_in_pool(tt_gateway_req *g, const char *body, size_t len)
{
    parse_job *j = calloc(1, sizeof *j);
    char *copy = j ? malloc(len) : NULL;
    if (!copy) {
        free(j);
        return TT_ENOMEM;
    }
    memcpy(copy, body, len);
    *j = (parse_job){
        .g = g, .body = copy, .len = len, .max_messages = g->srv->cfg.gateway_max_messages};
    j->work.data = j;
    if (uv_queue_work(&g->srv->loop, &j->work, parse_work, parse_after) != 0) {
        free(copy);
        free(j);
        return TT_EINTERNAL;
    }
    g->parsing = j;
    return 0;
}

tt_gateway_req *tt_gateway_start(tt_server *srv, struct lws *wsi, const char *body, size_t len)
{
    return tt_gateway_start_as(srv, wsi, body, len, NULL);
}

tt_gateway_req *tt_gateway_start_as(tt_server *srv, struct lws *wsi, const char *body, size_t len,
                                    const tt_llm_attribution *attr)
{
    tt_gateway_req *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (attr)
        g->attr = *attr;
    g->srv = srv;
    g->wsi = wsi;
    g->created = tt_wall_ms() / 1000;
    g->tool_calls = json_array();
    tt_buf_init_headroom(&g->out, OUT_STREAM_MAX, LWS_PRE);
    tt_buf_init(&g->text, TEXT_MAX);
    tt_new_id("chatcmpl", g->id, sizeof g->id);
    if (srv->stopping) {
        /* No new call may start once the stop has begun: it would only be cut. */
        respond(g, 503,
                tt_gateway_error("the server is shutting down; retry shortly", "server_error",
                                 "shutting_down"));
        return g;
    }
    if (!srv->agent_env.llm || !tt_llm_service_configured(srv->agent_env.llm)) {
        respond(g, 503,
                tt_gateway_error("no model is configured: set OPENAI_API_KEY or "
                                 "ANTHROPIC_API_KEY, or give --routes FILE",
                                 "server_error", "no_model_configured"));
        return g;
    }
    if (body && len > TT_GATEWAY_PARSE_INLINE_MAX && parse_in_pool(g, body, len) == 0)
        return g; /* the answer waits for the job (parse_after) */
    tt_gateway_parsed parsed;
    tt_gateway_parse(body, len, srv->cfg.gateway_max_messages, &parsed);
    start_parsed(g, &parsed);
    tt_gateway_parsed_free(&parsed);
    return g;
}

int tt_gateway_writeable(tt_gateway_req *g)
{
    struct lws *wsi = g->wsi;
    if (!g->headers_sent) {
        if (!g->complete && g->out.len == 0)
            return 0; /* nothing decided yet: an early failure can still pick the status */
        unsigned char hdr[LWS_PRE + 512];
        unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
        int streaming = g->stream && g->status == 0;
        if (lws_add_http_common_headers(
                wsi, streaming ? 200 : (unsigned)g->status,
                streaming ? "text/event-stream" : "application/json",
                streaming ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)g->out.len, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (const unsigned char *)"no-store", 8, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        g->headers_sent = 1;
        tt_server_want_writable(g->srv, wsi);
        return 0;
    }
    if (g->overflow && g->stream)
        return -1; /* a stream cut short must not look finished */
    size_t pending = out_pending(g);
    size_t n = pending > WRITE_CHUNK ? WRITE_CHUNK : pending;
    int last = g->complete && n == pending;
    if (n > 0 || last) {
        /* lws may write its framing into the LWS_PRE bytes in front: sent
         * bytes, or the headroom. */
        unsigned char none[LWS_PRE + 1];
        unsigned char *data =
            g->out.len ? (unsigned char *)tt_buf_data(&g->out) + g->out_pos : none + LWS_PRE;
        if (lws_write(wsi, data, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
            return -1;
        g->out_pos += n;
    }
    if (last)
        return 1;
    if (g->paused && out_pending(g) < OUT_PAUSE_BYTES / 2 && g->call) {
        g->paused = 0;
        tt_llm_call_pause(g->call, 0);
    }
    if (out_pending(g) > 0)
        tt_server_want_writable(g->srv, wsi);
    return 0;
}

void tt_gateway_free(tt_gateway_req *g)
{
    if (!g)
        return;
    if (g->parsing)
        g->parsing->g = NULL; /* the job frees itself when it is back */
    if (g->call) {
        tt_llm_call *c = g->call;
        g->call = NULL;
        g->complete = 1;
        tt_llm_call_cancel(c);
    }
    json_decref(g->tool_calls);
    tt_buf_free(&g->out);
    tt_buf_free(&g->text);
    for (size_t i = 0; i < g->n_calls; i++)
        tt_buf_free(&g->calls[i].args);
    free(g->calls);
    free(g);
}
