/* The OpenAI-compatible gateway (see gateway.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/call.h"
#include "agents/llm/embed.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/cors.h"
#include "server/gateway.h"
#include "server/gateway_parse.h"
#include "server/server.h"
#include "state/session.h"

#define OUT_PAUSE_BYTES (64 * 1024) /* pause the upstream while this much waits */
/* A streamed response's unsent bytes: the pause threshold plus what one
 * upstream read already in hand turns into (it is not cut short). */
#define OUT_STREAM_MAX (1024 * 1024)
#define WRITE_CHUNK (16 * 1024)
#define HEAD_MAX 1024                     /* the status line and headers */
#define TEXT_MAX TT_SESSION_STREAMING_MAX /* a plain response's text */
#define ARGS_MAX (1024 * 1024)            /* one tool call's arguments */
#define TOOL_CALLS_MAX 128                /* tool calls in a plain response */
/* A streamed text event's JSON: at most what a stream's queue takes
 * (OUT_STREAM_MAX), escaped at worst 6x, and the rest; a larger one goes
 * jansson's way and overflows the queue, as before. */
#define EVENT_MAX (6 * OUT_STREAM_MAX + 4096)

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
    tt_llm_embed *embed; /* POST /v1/embeddings in flight */
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
    int ended;    /* a stream's terminating chunk is queued */
    int asked;    /* a writable callback is asked for and has not come yet */
    tt_buf event; /* a streamed event's JSON, reused (EVENT_MAX) */
    /* plain responses are built at the end */
    gathered text;
    json_t *tool_calls;   /* [{id, type, function:{name, arguments}}] */
    gathered_call *calls; /* each tool call's index and arguments, in tool_calls' order */
    size_t n_calls;       /* = the size of tool_calls, at most TOOL_CALLS_MAX */
};

/* Ask lws for a writable callback once until it comes: lws on libuv turns
 * every ask into a uv_poll_start (an epoll_ctl), and a streamed answer
 * queues many events from one upstream read. */
static void want_write(tt_gateway_req *g)
{
    if (!g->asked) {
        g->asked = 1;
        tt_server_want_writable(g->srv, g->wsi);
    }
}

/* Past a cap the call is stopped and the response fails (on_done). */

static void overflow(tt_gateway_req *g)
{
    g->overflow = 1;
    if (g->call)
        tt_llm_call_cancel(g->call);
}

/* Queue bytes of a stream (the caller asks for a writable callback once). */
static void out_append(tt_gateway_req *g, const char *s, size_t n)
{
    if (g->out_pos > 0 && g->out_pos * 2 >= g->out.len) {
        tt_buf_consume(&g->out, g->out_pos); /* what was sent goes: O(1) a byte */
        g->out_pos = 0;
    }
    if (tt_buf_append(&g->out, s, n) != 0)
        overflow(g);
}

static size_t out_pending(const tt_gateway_req *g)
{
    return g->out.len - g->out_pos;
}

/* A whole response: status and a JSON body (consumed). */
static void respond_text(tt_gateway_req *g, int status, const char *text, size_t n)
{
    g->status = status;
    g->stream = 0;
    /* The whole response at once: its own size is its cap (what it is made
     * of is capped: TEXT_MAX, ARGS_MAX, the error messages, an embeddings
     * answer's TT_LLM_BODY_MAX). */
    tt_buf_free(&g->out);
    tt_buf_init_headroom(&g->out, n, LWS_PRE + HEAD_MAX);
    g->out_pos = 0;
    if (text && tt_buf_append(&g->out, text, n) != 0)
        g->status = 500; /* no memory: an empty 500 */
    g->complete = 1;
    want_write(g);
}

static void respond(tt_gateway_req *g, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    respond_text(g, status, text, text ? strlen(text) : 0);
    free(text);
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

/* A streamed response goes out with chunked transfer encoding (so the
 * connection stays open for the next request): each SSE event is framed as
 * one HTTP chunk when it is queued. */
static void chunk_append(tt_gateway_req *g, const char *a, size_t na, const char *b, size_t nb,
                         const char *c, size_t nc)
{
    char head[24];
    int nh = snprintf(head, sizeof head, "%zx\r\n", na + nb + nc);
    out_append(g, head, (size_t)nh);
    out_append(g, a, na);
    out_append(g, b, nb);
    out_append(g, c, nc);
    out_append(g, "\r\n", 2);
    want_write(g);
}

/* The stream's last bytes: [DONE], then the zero-length chunk that ends the body. */
static void stream_end(tt_gateway_req *g)
{
    chunk_append(g, "data: [DONE]\n\n", 14, "", 0, "", 0);
    out_append(g, "0\r\n\r\n", 5);
    g->complete = 1;
    g->ended = 1;
    want_write(g);
}

/* One SSE event of JSON text; the upstream is paused past OUT_PAUSE_BYTES. */
static void sse_text(tt_gateway_req *g, const char *text, size_t n)
{
    chunk_append(g, "data: ", 6, text, n, "\n\n", 2);
    if (out_pending(g) > OUT_PAUSE_BYTES && !g->paused && g->call) {
        g->paused = 1;
        tt_llm_call_pause(g->call, 1);
    }
}

static void sse(tt_gateway_req *g, json_t *chunk)
{
    char *text = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (!text)
        return;
    sse_text(g, text, strlen(text));
    free(text);
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
    if (!g->sent_role) /* the model of the attempt that answers (failover may change it) */
        tt_utf8_copy(g->model, sizeof g->model, tt_llm_call_model(c));
    if (ev->kind == TT_LLM_EV_TEXT) {
        if (!g->stream) {
            gather(g, &g->text, ev->text, ev->text_len);
            return;
        }
        /* written directly (no JSON values); jansson's way only for text
         * that is not UTF-8 (which it refuses: nothing is sent, as before) */
        tt_buf_reset(&g->event);
        if (tt_gateway_text_chunk(&g->event, g->id, g->model, g->created, ev->text, ev->text_len,
                                  !g->sent_role) == 0) {
            g->sent_role = 1;
            sse_text(g, tt_buf_data(&g->event), g->event.len);
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

/* A plain answer without tool calls, written directly (no JSON values built:
 * the same bytes as the json_pack below); not 0 when it cannot be (a string
 * that is not UTF-8, no memory): on_done builds it with jansson then, as
 * before. */
static int respond_plain(tt_gateway_req *g, const tt_llm_result *r, const char *finish)
{
    tt_buf b;
    /* escaping at most sextuples a byte (\u00XX); the rest is well under 2 KiB */
    tt_buf_init_headroom(&b, g->text.len * 6 + 2048, LWS_PRE + HEAD_MAX);
    if (tt_buf_reserve(&b, g->text.len + 512) != 0 ||
        tt_gateway_plain_answer(&b, g->id, g->model, g->created, tt_buf_data(&g->text), finish,
                                r->prompt_tokens, r->completion_tokens, r->cost_usd,
                                r->cached) != 0) {
        tt_buf_free(&b);
        return -1;
    }
    tt_buf_free(&g->out);
    g->out = b;
    g->out_pos = 0;
    g->status = 200;
    g->complete = 1;
    want_write(g);
    return 0;
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    tt_gateway_req *g = ud;
    g->call = NULL;
    if (r->model[0])
        tt_utf8_copy(g->model, sizeof g->model, r->model);
    /* Over a cap: a stream was stopped there; a plain body (parsed whole,
     * so the call may still succeed) is refused all the same. */
    if (g->overflow) {
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
        /* The provider's 404 (a model it does not serve) stays a 404. */
        int status = r->error.cls == TT_LLM_ERR_BAD_REQUEST && r->error.http_status == 404
                         ? 404
                         : status_for(r->error.cls);
        if (!g->headers_sent && g->out.len == 0) {
            respond(g, status,
                    tt_gateway_error(msg, "upstream_error", tt_llm_error_name(r->error.cls)));
        } else {
            sse(g, tt_gateway_error(msg, "upstream_error", tt_llm_error_name(r->error.cls)));
            stream_end(g);
        }
        return;
    }
    const char *finish = r->finish_reason ? r->finish_reason : "stop";
    if (!g->stream && g->n_calls == 0 && respond_plain(g, r, finish) == 0)
        return;
    json_t *usage = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)r->prompt_tokens,
                              "completion_tokens", (json_int_t)r->completion_tokens, "total_tokens",
                              (json_int_t)(r->prompt_tokens + r->completion_tokens));
    json_object_set_new(usage, "cost_usd", json_real(r->cost_usd));
    if (r->cached) /* answered by the response cache: no provider call, cost 0 */
        json_object_set_new(usage, "cached", json_true());
    if (g->stream) {
        sse(g, chunk(g, json_object(), finish));
        if (g->include_usage)
            sse(g, json_pack("{s:s, s:s, s:I, s:s, s:[], s:O}", "id", g->id, "object",
                             "chat.completion.chunk", "created", (json_int_t)g->created, "model",
                             g->model, "choices", "usage", usage));
        stream_end(g);
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
    respond(g, 200,
            json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s}], s:o}", "id", g->id, "object",
                      "chat.completion", "created", (json_int_t)g->created, "model", g->model,
                      "choices", "index", 0, "message", message, "finish_reason", finish, "usage",
                      usage));
}

static const tt_llm_call_hooks hooks = {on_event, NULL, on_done};

/* The route a request's model names: a route alias; a model behind a route
 * (that route, as configured: its failover targets keep their own models); a
 * name --gateway-models lets through (the route "default", else the first,
 * every target asked for that model). TT_ENOTFOUND otherwise. */
static int start_call(tt_gateway_req *g, tt_llm_service *llm, const tt_llm_request *req)
{
    const char *model = req->model;
    if (tt_llm_service_has_route(llm, model))
        return tt_llm_call_start(llm, model, req, &hooks, g, &g->call);
    const char *alias = tt_llm_service_route_of_model(llm, model);
    if (alias)
        return tt_llm_call_start(llm, alias, req, &hooks, g, &g->call);
    if (!tt_gateway_model_allowed(g->srv->cfg.gateway_models, model))
        return TT_ENOTFOUND;
    alias = tt_llm_service_has_route(llm, "default") ? "default" : NULL;
    int rc = tt_llm_call_start_model(llm, alias, model, req, &hooks, g, &g->call);
    return rc == TT_EINVAL ? TT_ENOTFOUND : rc; /* a name of 128 bytes or more */
}

/* Start the call a parsed request asks for; on a refusal, the error response. */
static void start_parsed(tt_gateway_req *g, tt_gateway_parsed *p)
{
    tt_llm_service *llm = g->srv->agent_env.llm;
    if (p->status) {
        respond(g, p->status, p->error);
        p->error = NULL;
        return;
    }
    g->stream = p->stream;
    g->include_usage = p->include_usage;
    p->req.attr = &g->attr;
    int rc = llm ? start_call(g, llm, &p->req) : TT_EFULL;
    if (rc == 0 && g->call) /* (a call can end before this returns) */
        tt_utf8_copy(g->model, sizeof g->model, tt_llm_call_model(g->call));
    if (rc == TT_ENOTFOUND) {
        char msg[240];
        snprintf(msg, sizeof msg,
                 "The model `%.*s` does not exist: no route has that alias or model, and "
                 "--gateway-models does not let it through",
                 tt_utf8_cut(p->req.model, 64), p->req.model);
        respond(g, 404, tt_gateway_error(msg, "invalid_request_error", "model_not_found"));
    } else if (rc == TT_EBUDGET) { /* the budgets' reservation refused it (budgets.h) */
        tt_metrics_error(&g->srv->metrics, tt_err_wire(rc));
        respond(
            g, 429,
            tt_gateway_error(g->srv->usage.budgets.why, "insufficient_quota", "budget_exceeded"));
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

/* A new request; *refused is set when it already holds a 503 (stopping, or
 * no model configured). NULL on OOM. */
static tt_gateway_req *req_new(tt_server *srv, struct lws *wsi, const tt_llm_attribution *attr,
                               int *refused)
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
    tt_buf_init_headroom(&g->out, OUT_STREAM_MAX, LWS_PRE + HEAD_MAX);
    tt_buf_init(&g->text, TEXT_MAX);
    tt_buf_init(&g->event, EVENT_MAX);
    tt_new_id("chatcmpl", g->id, sizeof g->id);
    *refused = 1;
    if (srv->stopping) /* no new call may start once the stop has begun: it would only be cut */
        respond(g, 503,
                tt_gateway_error("the server is shutting down; retry shortly", "server_error",
                                 "shutting_down"));
    else if (!srv->agent_env.llm || !tt_llm_service_configured(srv->agent_env.llm))
        respond(g, 503,
                tt_gateway_error("no model is configured: set OPENAI_API_KEY or "
                                 "ANTHROPIC_API_KEY, or give --routes FILE",
                                 "server_error", "no_model_configured"));
    else
        *refused = 0;
    return g;
}

tt_gateway_req *tt_gateway_start(tt_server *srv, struct lws *wsi, const char *body, size_t len)
{
    return tt_gateway_start_as(srv, wsi, body, len, NULL);
}

tt_gateway_req *tt_gateway_start_as(tt_server *srv, struct lws *wsi, const char *body, size_t len,
                                    const tt_llm_attribution *attr)
{
    int refused;
    tt_gateway_req *g = req_new(srv, wsi, attr, &refused);
    if (!g || refused)
        return g;
    if (body && len > TT_GATEWAY_PARSE_INLINE_MAX && parse_in_pool(g, body, len) == 0)
        return g; /* the answer waits for the job (parse_after) */
    tt_gateway_parsed parsed;
    tt_gateway_parse(body, len, srv->cfg.gateway_max_messages, &parsed);
    start_parsed(g, &parsed);
    tt_gateway_parsed_free(&parsed);
    return g;
}

/* ---- POST /v1/embeddings ------------------------------------------------------ */

static void embed_done(int status, const char *body, size_t len, const char *model, void *ud)
{
    tt_gateway_req *g = ud;
    g->embed = NULL;
    if (status == 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "upstream: %.*s", (int)len, body);
        respond(g, 502, tt_gateway_error(msg, "upstream_error", "network"));
    } else if (status == 401 || status == 403) {
        respond(g, 502,
                tt_gateway_error("upstream refused this gateway's key", "upstream_error", "auth"));
    } else {
        respond_text(g, status, body, len); /* the provider's answer or error, as it is */
    }
}

/* The route and model an embeddings request names, as start_call() picks
 * them for chat; 0, or TT_ENOTFOUND. */
static int embed_route(tt_gateway_req *g, const char *name, const char **alias, const char **model)
{
    tt_llm_service *llm = g->srv->agent_env.llm;
    *alias = name;
    *model = NULL;
    if (tt_llm_service_has_route(llm, name))
        return 0;
    *model = name;
    if ((*alias = tt_llm_service_route_of_model(llm, name)))
        return 0;
    if (!tt_gateway_model_allowed(g->srv->cfg.gateway_models, name))
        return TT_ENOTFOUND;
    *alias = tt_llm_service_has_route(llm, "default") ? "default" : NULL;
    return 0;
}

tt_gateway_req *tt_gateway_embeddings_start(tt_server *srv, struct lws *wsi, const char *body,
                                            size_t len, const tt_llm_attribution *attr)
{
    int refused;
    tt_gateway_req *g = req_new(srv, wsi, attr, &refused); /* attr: the call's ledger row */
    if (!g || refused)
        return g;
    json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *name = json_string_value(json_object_get(root, "model"));
    json_t *input = json_object_get(root, "input");
    const char *alias, *model;
    int rc = TT_EINVAL;
    if (!name || !(json_is_string(input) || json_array_size(input) > 0))
        respond(g, 400,
                tt_gateway_error("model (string) and input (a string or a non-empty array) "
                                 "are required",
                                 "invalid_request_error", NULL));
    else if ((rc = embed_route(g, name, &alias, &model)) == 0)
        rc = tt_llm_embed_start_as(srv->agent_env.llm, alias, model, root, &g->attr, embed_done, g,
                                   &g->embed);
    if (rc == TT_ENOTFOUND || rc == TT_ETOOLARGE)
        respond(g, 404,
                tt_gateway_error("no route has that alias or model, and --gateway-models does "
                                 "not let it through",
                                 "invalid_request_error", "model_not_found"));
    else if (rc == TT_EINVAL && name && !g->complete)
        respond(g, 400,
                tt_gateway_error("the route for this model has no OpenAI-compatible target: "
                                 "no embeddings there",
                                 "invalid_request_error", "embeddings_unsupported"));
    else if (rc && !g->complete)
        respond(g, 500, tt_gateway_error("the call could not start", "server_error", NULL));
    json_decref(root);
    return g;
}

/* The status line and headers into [*p, end): a whole JSON response has its
 * length, a stream is chunked (the connection is kept for the next request;
 * lws 4.1's lws_add_http_common_headers() would mark a response without a
 * length "connection: close"). */
static int build_headers(tt_gateway_req *g, unsigned char **p, unsigned char *end)
{
    struct lws *wsi = g->wsi;
    static const char sse_type[] = "text/event-stream", chunked[] = "chunked";
    int rc;
    if (g->stream && g->status == 0)
        rc = lws_add_http_header_status(wsi, 200, p, end) ||
             lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                          (const unsigned char *)sse_type, sizeof sse_type - 1, p,
                                          end) ||
             lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING,
                                          (const unsigned char *)chunked, sizeof chunked - 1, p,
                                          end);
    else
        rc = lws_add_http_common_headers(wsi, (unsigned)g->status, "application/json",
                                         (lws_filepos_t)g->out.len, p, end);
    if (rc ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, p, end) ||
        tt_cors_add_headers(g->srv, wsi, p, end) || lws_finalize_http_header(wsi, p, end))
        return -1;
    return 0;
}

/* The headers go out in the same write as the first body bytes when they fit
 * in the room kept in front of them (out's headroom past LWS_PRE): a whole
 * answer is one send(), with no writable callback between its parts. */
static int write_headers(tt_gateway_req *g, unsigned char **data, size_t *n)
{
    unsigned char hdr[LWS_PRE + HEAD_MAX];
    unsigned char *start = hdr + LWS_PRE, *p = start;
    if (build_headers(g, &p, hdr + sizeof hdr - 1) != 0)
        return -1;
    size_t hl = (size_t)(p - start);
    g->headers_sent = 1;
    if (g->out.len > 0 && g->out_pos == 0 && g->out.headroom >= LWS_PRE + hl) {
        *data -= hl;
        memcpy(*data, start, hl);
        *n += hl;
        return (int)hl;
    }
    return lws_write(g->wsi, start, hl, LWS_WRITE_HTTP_HEADERS) < 0 ? -1 : 0;
}

int tt_gateway_writeable(tt_gateway_req *g)
{
    g->asked = 0;
    if (!g->headers_sent && !g->complete && g->out.len == 0)
        return 0; /* nothing decided yet: an early failure can still pick the status */
    /* A stream cut short must not look finished: the connection closes. */
    int cut = g->stream && (g->overflow || (g->complete && !g->ended));
    if (g->headers_sent && cut)
        return -1;
    size_t pending = out_pending(g);
    size_t n = pending > WRITE_CHUNK ? WRITE_CHUNK : pending;
    int last = !cut && g->complete && n == pending;
    /* lws may write its framing into the LWS_PRE bytes in front: sent
     * bytes, or the headroom. */
    unsigned char none[LWS_PRE + 1];
    unsigned char *data =
        g->out.len ? (unsigned char *)tt_buf_data(&g->out) + g->out_pos : none + LWS_PRE;
    int hl = g->headers_sent ? 0 : write_headers(g, &data, &n);
    if (hl < 0)
        return -1;
    if (n > 0 || last) {
        if (lws_write(g->wsi, data, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
            return -1;
        g->out_pos += n - (size_t)hl;
    }
    if (last)
        return 1;
    if (g->paused && out_pending(g) < OUT_PAUSE_BYTES / 2 && g->call) {
        g->paused = 0;
        tt_llm_call_pause(g->call, 0);
    }
    if (out_pending(g) > 0 || cut)
        want_write(g);
    return 0;
}

int tt_gateway_send_now(tt_gateway_req *g)
{
    int rc = 0;
    for (int pass = 0; pass < 3 && rc == 0 && (g->complete || out_pending(g) > 0); pass++) {
        if (lws_send_pipe_choked(g->wsi))
            break; /* the rest from WRITEABLE (tt_gateway_writeable asked for it) */
        rc = tt_gateway_writeable(g);
    }
    return rc;
}

void tt_gateway_free(tt_gateway_req *g)
{
    if (!g)
        return;
    if (g->parsing)
        g->parsing->g = NULL; /* the job frees itself when it is back */
    tt_llm_embed_cancel(g->embed);
    if (g->call) {
        tt_llm_call *c = g->call;
        g->call = NULL;
        g->complete = 1;
        tt_llm_call_cancel(c);
    }
    json_decref(g->tool_calls);
    tt_buf_free(&g->out);
    tt_buf_free(&g->text);
    tt_buf_free(&g->event);
    for (size_t i = 0; i < g->n_calls; i++)
        tt_buf_free(&g->calls[i].args);
    free(g->calls);
    free(g);
}
