/* The AWS Bedrock Converse wire format (Converse and ConverseStream).
 *
 * Requests: the model is in the path (bedrock.h), not the body. System
 * messages become the top-level "system" list of text blocks; every turn is
 * a list of content blocks ({"text"}, {"toolUse"}, {"toolResult"}), with
 * consecutive turns of one role merged as the API wants user and assistant
 * to alternate; tools are "toolConfig.tools[].toolSpec" with the schema
 * under "inputSchema.json"; max_tokens and temperature go to
 * "inferenceConfig". A response_schema becomes a forced tool named
 * "output", as for Anthropic.
 *
 * Streams are event-stream messages (eventstream.h) whose ":event-type"
 * names the JSON payload: messageStart, contentBlockStart (a toolUse's id
 * and name), contentBlockDelta (text, or toolUse input fragments),
 * contentBlockStop, messageStop (the stop reason), metadata (usage; the last
 * event, so FINISH is emitted there). A message of type "exception" (or
 * "error") ends the stream with an ERROR classified by its type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/llm/adapter.h"
#include "agents/llm/aws_creds.h"
#include "agents/llm/bedrock.h"
#include "agents/llm/http.h"
#include "agents/llm/route.h"
#include "agents/llm/eventstream.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

#define OUTPUT_TOOL "output"

/* ---- request body ------------------------------------------------------- */

static int add_tool_result(json_t *msgs, const tt_llm_message *m)
{
    if (!m->tool_call_id)
        return TT_EINVAL;
    /* Bedrock refuses an empty content list: say "" when the tool said nothing. */
    json_t *b = json_pack("{s:{s:s, s:[{s:s}]}}", "toolResult", "toolUseId", m->tool_call_id,
                          "content", "text", m->content ? m->content : "");
    json_t *blocks = tt_llm_turn_for(msgs, "user");
    if (!b || !blocks) {
        json_decref(b);
        return TT_ENOMEM;
    }
    size_t at = 0; /* tool results lead their turn */
    while (at < json_array_size(blocks) &&
           json_object_get(json_array_get(blocks, at), "toolResult"))
        at++;
    return json_array_insert_new(blocks, at, b) ? TT_ENOMEM : 0;
}

static int add_blocks(json_t *msgs, const tt_llm_message *m)
{
    int has_text = m->content && *m->content;
    if (strcmp(m->role, "tool") == 0)
        return add_tool_result(msgs, m);
    int user = strcmp(m->role, "user") == 0;
    if (!user && strcmp(m->role, "assistant") != 0)
        return TT_EINVAL;
    if (!has_text && (user || json_array_size(m->tool_calls) == 0))
        return 0; /* the API refuses empty text blocks */
    json_t *blocks = tt_llm_turn_for(msgs, m->role);
    if (!blocks)
        return TT_ENOMEM;
    if (has_text && json_array_append_new(blocks, json_pack("{s:s}", "text", m->content)))
        return TT_ENOMEM;
    size_t i;
    json_t *c;
    json_array_foreach(user ? NULL : m->tool_calls, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *input = tt_llm_tool_input(json_object_get(c, "arguments"));
        if (!id || !name || !input) {
            json_decref(input);
            return TT_EINVAL;
        }
        if (json_array_append_new(blocks, json_pack("{s:{s:s, s:s, s:o}}", "toolUse", "toolUseId",
                                                    id, "name", name, "input", input)))
            return TT_ENOMEM;
    }
    return 0;
}

static json_t *tool_spec(const char *name, const char *description, json_t *schema)
{
    json_t *t = json_pack("{s:s, s:{s:O}}", "name", name, "inputSchema", "json", schema);
    if (t && description && *description)
        json_object_set_new(t, "description", json_string(description));
    return t ? json_pack("{s:o}", "toolSpec", t) : NULL;
}

static int add_tools(json_t *root, const tt_llm_request *req)
{
    json_t *tools = json_array();
    json_t *cfg = json_pack("{s:o}", "tools", tools);
    json_t *empty = json_pack("{s:s, s:{}}", "type", "object", "properties");
    int rc = cfg && empty && !json_object_set_new(root, "toolConfig", cfg) ? 0 : TT_ENOMEM;
    for (size_t i = 0; i < req->n_tools && rc == 0; i++) {
        const tt_llm_tool *t = &req->tools[i];
        json_t *schema = t->parameters ? t->parameters : empty;
        if (!t->name || json_array_append_new(tools, tool_spec(t->name, t->description, schema)))
            rc = TT_EINVAL;
    }
    if (rc == 0 && req->response_schema) {
        json_t *t = tool_spec(OUTPUT_TOOL, "Respond with the output, matching this schema.",
                              req->response_schema);
        if (json_array_append_new(tools, t) ||
            json_object_set_new(cfg, "toolChoice",
                                json_pack("{s:{s:s}}", "tool", "name", OUTPUT_TOOL)))
            rc = TT_ENOMEM;
    }
    json_decref(empty);
    return rc;
}

static int build_body(const tt_llm_request *req, json_t **out)
{
    json_t *root = json_pack("{s:[], s:[], s:{}}", "messages", "system", "inferenceConfig");
    if (!root)
        return TT_ENOMEM;
    json_t *msgs = json_object_get(root, "messages");
    json_t *system = json_object_get(root, "system");
    json_t *inf = json_object_get(root, "inferenceConfig");
    int rc = 0;
    for (size_t i = 0; i < req->n_messages && rc == 0; i++) {
        const tt_llm_message *m = &req->messages[i];
        if (!m->role)
            rc = TT_EINVAL;
        else if (strcmp(m->role, "system") != 0)
            rc = add_blocks(msgs, m);
        else if (m->content && *m->content)
            rc = json_array_append_new(system, json_pack("{s:s}", "text", m->content)) ? TT_ENOMEM
                                                                                       : 0;
    }
    if (rc == 0 && json_array_size(system) == 0)
        json_object_del(root, "system");
    if (rc == 0 && (req->n_tools > 0 || req->response_schema))
        rc = add_tools(root, req);
    if (rc == 0 && req->max_tokens > 0)
        json_object_set_new(inf, "maxTokens", json_integer((json_int_t)req->max_tokens));
    /* Bedrock's models take 0..1 (Anthropic's do): clamp as anthropic.c does. */
    if (rc == 0 && req->temperature >= 0)
        json_object_set_new(inf, "temperature",
                            json_real(req->temperature > 1 ? 1 : req->temperature));
    if (rc == 0 && json_object_size(inf) == 0)
        json_object_del(root, "inferenceConfig");
    if (rc != 0) {
        json_decref(root);
        return rc;
    }
    *out = root;
    return 0;
}

/* ---- events ------------------------------------------------------------- */

static void emit_usage(tt_llm_sink *s, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    json_t *in = json_object_get(usage, "inputTokens");
    json_t *out = json_object_get(usage, "outputTokens");
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_USAGE);
    if (json_is_integer(in)) /* cache reads and writes fill the window too */
        ev.prompt_tokens = json_integer_value(in) +
                           json_integer_value(json_object_get(usage, "cacheReadInputTokens")) +
                           json_integer_value(json_object_get(usage, "cacheWriteInputTokens"));
    ev.completion_tokens = json_is_integer(out) ? json_integer_value(out) : -1;
    tt_llm_sink_emit(s, &ev);
}

static const char *finish_name(const char *stop, int structured_output)
{
    if (!stop || strcmp(stop, "end_turn") == 0 || strcmp(stop, "stop_sequence") == 0)
        return "stop";
    if (strcmp(stop, "max_tokens") == 0 || strcmp(stop, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop, "tool_use") == 0)
        return structured_output ? "stop" : "tool_calls";
    if (strcmp(stop, "guardrail_intervened") == 0 || strcmp(stop, "content_filtered") == 0)
        return "content_filter";
    return "stop";
}

static void emit_finish(tt_llm_sink *s, const char *stop, int structured_output)
{
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_FINISH);
    ev.finish_reason = finish_name(stop, structured_output);
    tt_llm_sink_emit(s, &ev);
}

static int is_output(const tt_llm_sink *s, const char *name)
{
    return s->structured && name && strcmp(name, OUTPUT_TOOL) == 0;
}

/* An exception's class by its type (the ":exception-type" header, or the
 * x-amzn-ErrorType name), as the other providers' are classified. */
tt_llm_error_class tt_bedrock_exception_class(const char *type, size_t n, const char *message)
{
    static const struct {
        const char *type;
        tt_llm_error_class cls;
    } map[] = {
        {"throttlingException", TT_LLM_ERR_RATE_LIMITED},
        {"serviceQuotaExceededException", TT_LLM_ERR_RATE_LIMITED},
        {"serviceUnavailableException", TT_LLM_ERR_OVERLOADED},
        {"modelNotReadyException", TT_LLM_ERR_OVERLOADED},
        {"internalServerException", TT_LLM_ERR_SERVER},
        {"modelStreamErrorException", TT_LLM_ERR_SERVER},
        {"modelErrorException", TT_LLM_ERR_SERVER},
        {"modelTimeoutException", TT_LLM_ERR_TIMEOUT},
        {"accessDeniedException", TT_LLM_ERR_AUTH},
        {"unrecognizedClientException", TT_LLM_ERR_AUTH},
        {"resourceNotFoundException", TT_LLM_ERR_BAD_REQUEST},
        {"validationException", TT_LLM_ERR_BAD_REQUEST},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        /* The first letter's case differs between the stream and HTTP headers. */
        if (strlen(map[i].type) != n || n == 0 || (type[0] | 0x20) != map[i].type[0] ||
            memcmp(type + 1, map[i].type + 1, n - 1) != 0)
            continue;
        if (map[i].cls == TT_LLM_ERR_BAD_REQUEST && message &&
            (strstr(message, "too long") || strstr(message, "too many input tokens") ||
             strstr(message, "context window")))
            return TT_LLM_ERR_CONTEXT_LENGTH;
        return map[i].cls;
    }
    return TT_LLM_ERR_NONE; /* not one we know */
}

static void emit_exception(tt_llm_sink *s, const tt_es_str *type, const char *payload, size_t len,
                           const tt_es_str *fallback_message)
{
    json_t *root = json_loadb(payload, len, 0, NULL);
    const char *msg = json_string_value(json_object_get(root, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(root, "Message"));
    char mbuf[256];
    if (!msg && fallback_message->p) {
        tt_utf8_copyn(mbuf, sizeof mbuf, fallback_message->p, fallback_message->len);
        msg = mbuf;
    }
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_ERROR);
    ev.error.cls = tt_bedrock_exception_class(type->p, type->len, msg);
    if (ev.error.cls == TT_LLM_ERR_NONE) /* an exception nobody told us about: the server's */
        ev.error.cls = TT_LLM_ERR_SERVER;
    ev.error.retry_after_ms = -1;
    if (msg && *msg)
        tt_utf8_copy(ev.error.message, sizeof ev.error.message, msg);
    else
        tt_utf8_copyn(ev.error.message, sizeof ev.error.message, type->p ? type->p : "exception",
                      type->p ? type->len : 9);
    json_decref(root);
    tt_llm_sink_emit(s, &ev);
}

/* ---- streams ------------------------------------------------------------ */

typedef enum block_kind { BLOCK_TEXT, BLOCK_TOOL, BLOCK_OUTPUT } block_kind;

typedef struct br_stream {
    tt_eventstream es;
    tt_llm_sink *sink; /* set at each feed */
    int started;       /* es is set up */
    char stop[40];     /* messageStop's stopReason */
    int stopped;       /* messageStop was seen */
    int open;          /* a toolUse block is open */
    json_int_t block;  /* its contentBlockIndex */
    block_kind kind;
    int tool;        /* BLOCK_TOOL: its tool_index */
    size_t args_len; /* input bytes passed on for the open block */
    int n_tools;
    int output_used;
} br_stream;

static int eq(const tt_es_str *s, const char *lit)
{
    return s->p && s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

static void block_input(tt_llm_sink *s, br_stream *st, const char *json, size_t len)
{
    if (len == 0)
        return;
    st->args_len += len;
    if (st->kind == BLOCK_OUTPUT)
        tt_llm_sink_text(s, json, len);
    else
        tt_llm_sink_tool(s, st->tool, NULL, NULL, json, len);
}

static void block_start(tt_llm_sink *s, br_stream *st, json_t *root)
{
    json_t *tu = json_object_get(json_object_get(root, "start"), "toolUse");
    if (!tu)
        return; /* text blocks need no start */
    const char *id = json_string_value(json_object_get(tu, "toolUseId"));
    const char *name = json_string_value(json_object_get(tu, "name"));
    if (!id || !name) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "toolUse block without toolUseId or name");
        return;
    }
    st->open = 1;
    st->block = json_integer_value(json_object_get(root, "contentBlockIndex"));
    st->args_len = 0;
    if (is_output(s, name)) {
        st->kind = BLOCK_OUTPUT;
        st->output_used = 1;
    } else {
        st->kind = BLOCK_TOOL;
        st->tool = st->n_tools++;
        tt_llm_sink_tool(s, st->tool, id, name, "", 0);
    }
}

static void block_delta(tt_llm_sink *s, br_stream *st, json_t *root)
{
    json_t *d = json_object_get(root, "delta");
    json_t *text = json_object_get(d, "text");
    if (json_is_string(text)) {
        tt_llm_sink_text(s, json_string_value(text), json_string_length(text));
        return;
    }
    json_t *tu = json_object_get(d, "toolUse");
    if (!tu)
        return; /* reasoning and other block kinds are not passed on */
    if (!st->open || json_integer_value(json_object_get(root, "contentBlockIndex")) != st->block) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "toolUse delta for a block that is not open");
        return;
    }
    json_t *in = json_object_get(tu, "input");
    block_input(s, st, json_string_value(in), json_string_length(in));
}

static void block_stop(tt_llm_sink *s, br_stream *st, json_t *root)
{
    if (!st->open || json_integer_value(json_object_get(root, "contentBlockIndex")) != st->block)
        return;            /* the end of a text block */
    if (st->args_len == 0) /* a call without arguments: {} as OpenAI says */
        block_input(s, st, "{}", 2);
    st->open = 0;
}

static void on_event(tt_llm_sink *s, br_stream *st, const tt_es_str *type, json_t *root)
{
    if (eq(type, "contentBlockStart")) {
        block_start(s, st, root);
    } else if (eq(type, "contentBlockDelta")) {
        block_delta(s, st, root);
    } else if (eq(type, "contentBlockStop")) {
        block_stop(s, st, root);
    } else if (eq(type, "messageStop")) {
        const char *stop = json_string_value(json_object_get(root, "stopReason"));
        tt_utf8_copy(st->stop, sizeof st->stop, stop ? stop : "");
        st->stopped = 1;
    } else if (eq(type, "metadata")) {
        if (!st->stopped) {
            tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "metadata before messageStop");
            return;
        }
        emit_usage(s, json_object_get(root, "usage"));
        emit_finish(s, st->stop[0] ? st->stop : NULL, st->output_used && st->n_tools == 0);
    } /* messageStart, and event types added later, carry nothing we need */
}

static int on_message(const tt_es_message *m, void *ud)
{
    br_stream *st = ud;
    tt_llm_sink *s = st->sink;
    if (eq(&m->message_type, "exception") || eq(&m->message_type, "error")) {
        const tt_es_str *type = m->exception_type.p ? &m->exception_type : &m->error_code;
        emit_exception(s, type, m->payload, m->payload_len, &m->error_message);
        return 1;
    }
    if (!eq(&m->message_type, "event")) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "stream message of unknown type");
        return 1;
    }
    json_t *root = tt_llm_sink_json(s, m->payload, m->payload_len);
    if (!root)
        return 1;
    on_event(s, st, &m->event_type, root);
    json_decref(root);
    return s->failed || s->done;
}

static int stream_feed(tt_llm_sink *s, void *state, const char *data, size_t len)
{
    br_stream *st = state;
    if (!st->started) {
        tt_eventstream_init(&st->es, TT_LLM_EVENT_MAX, on_message, st);
        st->started = 1;
    }
    st->sink = s;
    int rc = tt_eventstream_feed(&st->es, data, len);
    if (rc == TT_ETOOLARGE)
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "stream message too large");
    else if (rc == TT_ENOMEM)
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "out of memory");
    else if (rc < 0)
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED,
                         "stream message with a bad length, CRC or header");
    return s->failed;
}

static void stream_free(void *state)
{
    br_stream *st = state;
    if (st->started)
        tt_eventstream_free(&st->es);
}

/* ---- plain bodies ------------------------------------------------------- */

static void parse_body(tt_llm_sink *s, json_t *root)
{
    json_t *content =
        json_object_get(json_object_get(json_object_get(root, "output"), "message"), "content");
    if (!json_is_array(content)) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "response has no output.message.content");
        return;
    }
    int n_tools = 0, output_used = 0;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        json_t *text = json_object_get(b, "text");
        json_t *tu = json_object_get(b, "toolUse");
        if (json_is_string(text)) {
            tt_llm_sink_text(s, json_string_value(text), json_string_length(text));
        } else if (json_is_object(tu)) {
            const char *name = json_string_value(json_object_get(tu, "name"));
            json_t *input = json_object_get(tu, "input");
            char *args = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
            if (!args) {
                tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "toolUse input is not JSON");
                return;
            }
            if (is_output(s, name)) {
                output_used = 1;
                tt_llm_sink_text(s, args, strlen(args));
            } else {
                tt_llm_sink_tool(s, n_tools++, json_string_value(json_object_get(tu, "toolUseId")),
                                 name, args, strlen(args));
            }
            free(args);
        }
    }
    emit_usage(s, json_object_get(root, "usage"));
    emit_finish(s, json_string_value(json_object_get(root, "stopReason")),
                output_used && n_tools == 0);
}

const tt_llm_wire tt_llm_wire_bedrock = {
    .build_body = build_body,
    .stream_state_size = sizeof(br_stream),
    .stream_feed = stream_feed,
    .stream_free = stream_free,
    .parse_body = parse_body,
};

/* Bedrock: a session token, and the signature: libcurl's, or ours for a
 * path curl would sign wrong (bedrock.h). headers has room for 3 more. */
int tt_bedrock_sign(const tt_route_target *t, const char *url, const char *path,
                    const tt_bedrock_body *body, char **headers, size_t h, tt_http_aws *aws,
                    char *scope, size_t scope_n)
{
    char line[TT_AWS_CRED_MAX + 64];
    if (t->aws_token) {
        snprintf(line, sizeof line, "x-amz-security-token: %s", t->aws_token);
        if (!(headers[h++] = strdup(line)))
            return TT_ENOMEM;
    }
    if (!tt_bedrock_path_needs_own_signer(path)) {
        snprintf(scope, scope_n, "aws:amz:%s:bedrock", t->region);
        *aws = (tt_http_aws){.sigv4 = scope, .key_id = t->aws_key_id, .secret = t->aws_secret};
        return 0;
    }
    char host[512], date[17], auth[1024], full[TT_ROUTE_URL_MAX + 3 * TT_ROUTE_MODEL_MAX + 64];
    if (tt_bedrock_url_split(url, host, sizeof host, full, sizeof full) != 0)
        return TT_EINVAL;
    tt_sigv4_date((int64_t)time(NULL), date);
    tt_sigv4_request r = {.method = "POST",
                          .host = host,
                          .path = full,
                          .query = "",
                          .content_type = "application/json",
                          .body = body->data,
                          .body_len = body->len,
                          .body_sha256 = body->sha256,
                          .amz_date = date,
                          .region = t->region,
                          .service = "bedrock",
                          .key_id = t->aws_key_id,
                          .secret = t->aws_secret,
                          .token = t->aws_token};
    int rc = tt_sigv4_sign(&r, 1, auth, sizeof auth, NULL);
    if (rc)
        return rc;
    snprintf(line, sizeof line, "X-Amz-Date: %s", date);
    if (!(headers[h++] = strdup(line)))
        return TT_ENOMEM;
    snprintf(line, sizeof line, "Authorization: %s", auth);
    return (headers[h] = strdup(line)) ? 0 : TT_ENOMEM;
}
