/* The OpenAI-compatible gateway (see gateway.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/call.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/gateway.h"
#include "server/server.h"
#include "state/session.h"

#define OUT_PAUSE_BYTES (64 * 1024) /* pause the upstream while this much waits */
#define WRITE_CHUNK (16 * 1024)

struct tt_gateway_req {
    tt_server *srv;
    struct lws *wsi;
    tt_llm_call *call;
    int stream, include_usage;
    char id[40];
    char model[128];
    int64_t created;
    /* what goes out: status, headers once, then body bytes */
    int status;
    int headers_sent;
    char *out;
    size_t out_len, out_cap, out_pos;
    int complete; /* no more bytes will be queued */
    int paused;
    int sent_role;
    /* plain responses are built at the end */
    char *text;
    size_t text_len, text_cap;
    json_t *tool_calls; /* [{id, type, function:{name, arguments}}] */
};

static int out_append(tt_gateway_req *g, const char *s, size_t n)
{
    if (g->out_pos > 0 && g->out_pos == g->out_len)
        g->out_pos = g->out_len = 0;
    if (g->out_len + n > g->out_cap) {
        size_t cap = (g->out_len + n) * 2 + 256;
        char *grown = realloc(g->out, LWS_PRE + cap);
        if (!grown)
            return TT_ENOMEM;
        g->out = grown;
        g->out_cap = cap;
    }
    memcpy(g->out + LWS_PRE + g->out_len, s, n);
    g->out_len += n;
    lws_callback_on_writable(g->wsi);
    return 0;
}

/* A whole response: status and a JSON body (consumed). */
static void respond(tt_gateway_req *g, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    g->status = status;
    g->stream = 0;
    g->out_len = g->out_pos = 0;
    if (text)
        out_append(g, text, strlen(text));
    free(text);
    g->complete = 1;
    lws_callback_on_writable(g->wsi);
}

static json_t *openai_error(const char *message, const char *type, const char *code)
{
    return json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message, "type", type,
                     "param", "code", code);
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
    if (g->out_len - g->out_pos > OUT_PAUSE_BYTES && !g->paused && g->call) {
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

static void text_append(tt_gateway_req *g, const char *s, size_t n)
{
    if (g->text_len + n + 1 > g->text_cap) {
        size_t cap = (g->text_len + n + 1) * 2;
        char *grown = realloc(g->text, cap);
        if (!grown)
            return;
        g->text = grown;
        g->text_cap = cap;
    }
    memcpy(g->text + g->text_len, s, n);
    g->text_len += n;
    g->text[g->text_len] = '\0';
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    tt_gateway_req *g = ud;
    if (ev->kind == TT_LLM_EV_TEXT) {
        if (!g->stream) {
            text_append(g, ev->text, ev->text_len);
            return;
        }
        json_t *delta = json_pack("{s:s%}", "content", ev->text, ev->text_len);
        if (!g->sent_role)
            json_object_set_new(delta, "role", json_string("assistant"));
        g->sent_role = 1;
        sse(g, chunk(g, delta, NULL));
    } else if (ev->kind == TT_LLM_EV_TOOL_CALL) {
        json_t *fn = json_pack("{s:s%}", "arguments", ev->args ? ev->args : "", ev->args_len);
        if (ev->tool_name)
            json_object_set_new(fn, "name", json_string(ev->tool_name));
        if (!g->stream) {
            json_t *call = json_array_get(g->tool_calls, (size_t)ev->tool_index);
            if (!call) {
                call = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", ev->tool_id ? ev->tool_id : "",
                                 "type", "function", "function", "name",
                                 ev->tool_name ? ev->tool_name : "", "arguments", "");
                json_array_append_new(g->tool_calls, call);
            }
            json_t *f = json_object_get(call, "function");
            const char *old = json_string_value(json_object_get(f, "arguments"));
            size_t olen = old ? strlen(old) : 0;
            char *joined = malloc(olen + ev->args_len + 1);
            if (joined) {
                memcpy(joined, old ? old : "", olen);
                memcpy(joined + olen, ev->args ? ev->args : "", ev->args_len);
                joined[olen + ev->args_len] = '\0';
                json_object_set_new(f, "arguments", json_string(joined));
                free(joined);
            }
            json_decref(fn);
            return;
        }
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
    if (r->error.cls == TT_LLM_ERR_CANCELLED) {
        g->complete = 1;
        return;
    }
    if (r->error.cls != TT_LLM_ERR_NONE) {
        char msg[320];
        tt_utf8_snprintf(msg, sizeof msg, "upstream %s: %s", tt_llm_error_name(r->error.cls),
                         r->error.message);
        if (!g->headers_sent && g->out_len == 0) {
            respond(g, status_for(r->error.cls),
                    openai_error(msg, "upstream_error", tt_llm_error_name(r->error.cls)));
        } else {
            sse(g, openai_error(msg, "upstream_error", tt_llm_error_name(r->error.cls)));
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
    json_t *message = json_pack("{s:s, s:s?}", "role", "assistant", "content", g->text);
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

/* OpenAI content: a string, or an array of parts of which text parts count. */
static char *content_text(json_t *content)
{
    if (json_is_string(content))
        return strdup(json_string_value(content));
    if (!json_is_array(content))
        return NULL;
    size_t cap = 1, len = 0, i;
    json_t *part;
    json_array_foreach(content, i, part) cap += json_string_length(json_object_get(part, "text"));
    char *out = malloc(cap);
    if (!out)
        return NULL;
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");
        memcpy(out + len, json_string_value(t) ? json_string_value(t) : "", json_string_length(t));
        len += json_string_length(t);
    }
    out[len] = '\0';
    return out;
}

/* The top-level fields' types and the message cap: on a violation, a 400
 * response and 1. */
static int refuse_malformed(tt_gateway_req *g, json_t *root)
{
    json_t *messages = json_object_get(root, "messages");
    json_t *stream = json_object_get(root, "stream");
    json_t *tools = json_object_get(root, "tools");
    json_t *max = json_object_get(root, "max_completion_tokens");
    if (!max)
        max = json_object_get(root, "max_tokens");
    json_t *temp = json_object_get(root, "temperature");
    if (!json_string_value(json_object_get(root, "model")) || !json_is_array(messages) ||
        json_array_size(messages) == 0 || (stream && !json_is_boolean(stream)) ||
        (tools && !json_is_array(tools)) || (max && !json_is_integer(max)) ||
        (temp && !json_is_number(temp))) {
        respond(g, 400,
                openai_error("model (string) and messages (non-empty array) are required; "
                             "stream boolean, tools array, max_tokens integer",
                             "invalid_request_error", NULL));
        return 1;
    }
    /* Every message is converted, copied and counted on the loop: bounded. */
    if (json_array_size(messages) > (size_t)g->srv->cfg.gateway_max_messages) {
        char msg[160];
        snprintf(msg, sizeof msg, "too many messages: at most %lld per request",
                 (long long)g->srv->cfg.gateway_max_messages);
        respond(g, 400, openai_error(msg, "invalid_request_error", "too_many_messages"));
        return 1;
    }
    return 0;
}

/* OpenAI messages into msgs (texts[i] holds message i's text, calls the
 * converted tool calls; the caller frees both). Non-zero: a bad role. */
static int convert_messages(json_t *messages, tt_llm_message *msgs, char **texts, json_t *calls)
{
    size_t n = json_array_size(messages);
    int bad = 0;
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && strcmp(role, "developer") == 0)
            role = "system";
        bad = !role || (strcmp(role, "system") && strcmp(role, "user") &&
                        strcmp(role, "assistant") && strcmp(role, "tool"));
        texts[i] = content_text(json_object_get(m, "content"));
        msgs[i] =
            (tt_llm_message){.role = role,
                             .content = texts[i],
                             .tool_call_id = json_string_value(json_object_get(m, "tool_call_id"))};
        json_t *tcs = json_object_get(m, "tool_calls");
        if (!bad && json_is_array(tcs)) {
            json_t *conv = json_array();
            size_t k;
            json_t *tc;
            json_array_foreach(tcs, k, tc)
            {
                json_t *fn = json_object_get(tc, "function");
                json_array_append_new(conv, json_pack("{s:O?, s:O?, s:O?}", "id",
                                                      json_object_get(tc, "id"), "name",
                                                      json_object_get(fn, "name"), "arguments",
                                                      json_object_get(fn, "arguments")));
            }
            json_array_append_new(calls, conv);
            msgs[i].tool_calls = conv;
        }
    }
    return bad;
}

/* Parse the OpenAI request and start the call; on bad input, an error response. */
static void start_call(tt_gateway_req *g, json_t *root)
{
    if (refuse_malformed(g, root))
        return;
    json_t *messages = json_object_get(root, "messages");
    const char *model = json_string_value(json_object_get(root, "model"));
    json_t *stream = json_object_get(root, "stream");
    json_t *tools = json_object_get(root, "tools");
    json_t *max = json_object_get(root, "max_completion_tokens");
    if (!max)
        max = json_object_get(root, "max_tokens");
    json_t *temp = json_object_get(root, "temperature");
    tt_utf8_copy(g->model, sizeof g->model, model);
    g->stream = json_is_true(stream);
    g->include_usage =
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
    size_t n = json_array_size(messages), nt = json_array_size(tools);
    tt_llm_message *msgs = calloc(n, sizeof *msgs);
    tt_llm_tool *tl = calloc(nt + 1, sizeof *tl);
    char **texts = calloc(n, sizeof *texts);
    json_t *calls = json_array(); /* converted assistant tool_calls, kept alive here */
    int bad = !msgs || !tl || !texts || !calls;
    bad = bad || convert_messages(messages, msgs, texts, calls) != 0;
    for (size_t i = 0; !bad && i < nt; i++) {
        json_t *fn = json_object_get(json_array_get(tools, i), "function");
        tl[i] = (tt_llm_tool){json_string_value(json_object_get(fn, "name")),
                              json_string_value(json_object_get(fn, "description")),
                              json_object_get(fn, "parameters")};
        bad = !tl[i].name;
    }
    if (bad) {
        respond(g, 400,
                openai_error("each message needs a role of system, developer, user, "
                             "assistant or tool; each tool a function name",
                             "invalid_request_error", NULL));
    } else {
        tt_llm_request req = {.model = model,
                              .messages = msgs,
                              .n_messages = n,
                              .tools = tl,
                              .n_tools = nt,
                              .max_tokens = max ? json_integer_value(max) : 0,
                              .temperature = temp ? json_number_value(temp) : -1,
                              .stream = 1,
                              .tag = "gateway"};
        int rc = tt_llm_call_start(g->srv->agent_env.llm, model, &req, &hooks, g, &g->call);
        if (rc == TT_ENOTFOUND) {
            char msg[200];
            snprintf(msg, sizeof msg, "The model `%.*s` does not exist: no route has that alias",
                     tt_utf8_cut(model, 64), model);
            respond(g, 404, openai_error(msg, "invalid_request_error", "model_not_found"));
        } else if (rc) {
            respond(g, 500, openai_error("the call could not start", "server_error", NULL));
        }
    }
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(msgs);
    free(tl);
    json_decref(calls);
}

tt_gateway_req *tt_gateway_start(tt_server *srv, struct lws *wsi, const char *body, size_t len)
{
    tt_gateway_req *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->srv = srv;
    g->wsi = wsi;
    g->created = tt_wall_ms() / 1000;
    g->tool_calls = json_array();
    tt_new_id("chatcmpl", g->id, sizeof g->id);
    if (srv->stopping) {
        /* No new call may start once the stop has begun: it would only be cut. */
        respond(g, 503,
                openai_error("the server is shutting down; retry shortly", "server_error",
                             "shutting_down"));
        return g;
    }
    if (!srv->agent_env.llm || !tt_llm_service_configured(srv->agent_env.llm)) {
        respond(g, 503,
                openai_error("no model is configured: set OPENAI_API_KEY or "
                             "ANTHROPIC_API_KEY, or give --routes FILE",
                             "server_error", "no_model_configured"));
        return g;
    }
    json_error_t jerr;
    json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(root))
        respond(g, 400,
                openai_error("the body must be a JSON object", "invalid_request_error", NULL));
    else
        start_call(g, root);
    json_decref(root);
    return g;
}

int tt_gateway_writeable(tt_gateway_req *g)
{
    struct lws *wsi = g->wsi;
    if (!g->headers_sent) {
        if (!g->complete && g->out_len == 0)
            return 0; /* nothing decided yet: an early failure can still pick the status */
        unsigned char hdr[LWS_PRE + 512];
        unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
        int streaming = g->stream && g->status == 0;
        if (lws_add_http_common_headers(
                wsi, streaming ? 200 : (unsigned)g->status,
                streaming ? "text/event-stream" : "application/json",
                streaming ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)g->out_len, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (const unsigned char *)"no-store", 8, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        g->headers_sent = 1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    size_t pending = g->out_len - g->out_pos;
    size_t n = pending > WRITE_CHUNK ? WRITE_CHUNK : pending;
    int last = g->complete && n == pending;
    if (n > 0 || last) {
        if (lws_write(wsi, (unsigned char *)g->out + LWS_PRE + g->out_pos, n,
                      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
            return -1;
        g->out_pos += n;
    }
    if (last)
        return 1;
    if (g->paused && g->out_len - g->out_pos < OUT_PAUSE_BYTES / 2 && g->call) {
        g->paused = 0;
        tt_llm_call_pause(g->call, 0);
    }
    if (g->out_pos < g->out_len)
        lws_callback_on_writable(wsi);
    return 0;
}

void tt_gateway_free(tt_gateway_req *g)
{
    if (!g)
        return;
    if (g->call) {
        tt_llm_call *c = g->call;
        g->call = NULL;
        g->complete = 1;
        tt_llm_call_cancel(c);
    }
    json_decref(g->tool_calls);
    free(g->out);
    free(g->text);
    free(g);
}
