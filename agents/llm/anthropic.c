/* The Anthropic Messages wire format.
 *
 * Requests: system messages move to the top-level "system"; every turn is a
 * list of content blocks; tool results are tool_result blocks in a user turn
 * (consecutive ones merged, ahead of any text, as the API requires). A
 * response_schema becomes a forced tool named "output".
 *
 * Streams are named SSE events: message_start (input tokens),
 * content_block_start / _delta / _stop, message_delta (stop reason, output
 * tokens), message_stop, ping, error. Content blocks are streamed one after
 * another, so only the open block is tracked. A tool_use block's index among
 * the tool_use blocks (0, 1, ...) is its tool_index, the numbering OpenAI
 * callers see. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

#define DEFAULT_MAX_TOKENS 1024
#define OUTPUT_TOOL "output"

/* ---- request body ------------------------------------------------------- */

static int add_blocks(json_t *msgs, const tt_llm_message *m)
{
    int has_text = m->content && *m->content;
    if (strcmp(m->role, "user") == 0) {
        if (!has_text)
            return 0; /* the API refuses empty text blocks */
        json_t *blocks = tt_llm_turn_for(msgs, "user");
        if (!blocks || json_array_append_new(
                           blocks, json_pack("{s:s, s:s}", "type", "text", "text", m->content)))
            return TT_ENOMEM;
        return 0;
    }
    if (strcmp(m->role, "tool") == 0) {
        if (!m->tool_call_id)
            return TT_EINVAL;
        json_t *b = json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id", m->tool_call_id);
        if (b && has_text)
            json_object_set_new(b, "content", json_string(m->content));
        json_t *blocks = tt_llm_turn_for(msgs, "user");
        if (!b || !blocks) {
            json_decref(b);
            return TT_ENOMEM;
        }
        /* tool_result blocks must lead their turn. */
        size_t at = 0;
        while (at < json_array_size(blocks) &&
               strcmp(json_string_value(json_object_get(json_array_get(blocks, at), "type")),
                      "tool_result") == 0)
            at++;
        return json_array_insert_new(blocks, at, b);
    }
    if (strcmp(m->role, "assistant") != 0)
        return TT_EINVAL;
    if (!has_text && json_array_size(m->tool_calls) == 0)
        return 0;
    json_t *blocks = tt_llm_turn_for(msgs, "assistant");
    if (!blocks)
        return TT_ENOMEM;
    if (has_text &&
        json_array_append_new(blocks, json_pack("{s:s, s:s}", "type", "text", "text", m->content)))
        return TT_ENOMEM;
    size_t i;
    json_t *c;
    json_array_foreach(m->tool_calls, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *input = tt_llm_tool_input(json_object_get(c, "arguments"));
        if (!id || !name || !input) {
            json_decref(input);
            return TT_EINVAL;
        }
        if (json_array_append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use",
                                                    "id", id, "name", name, "input", input)))
            return TT_ENOMEM;
    }
    return 0;
}

/* System messages joined by blank lines into *out, NULL when there are none. */
static int system_text(const tt_llm_request *req, char **out)
{
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const tt_llm_message *m = &req->messages[i];
        if (m->role && strcmp(m->role, "system") == 0 && m->content && *m->content)
            n += strlen(m->content) + 2;
    }
    if (n == 0)
        return 0;
    char *s = malloc(n + 1);
    if (!s)
        return TT_ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const tt_llm_message *m = &req->messages[i];
        if (!m->role || strcmp(m->role, "system") != 0 || !m->content || !*m->content)
            continue;
        if (at > 0) {
            memcpy(s + at, "\n\n", 2);
            at += 2;
        }
        size_t k = strlen(m->content);
        memcpy(s + at, m->content, k);
        at += k;
    }
    s[at] = '\0';
    *out = s;
    return 0;
}

static json_t *tool_json(const char *name, const char *description, json_t *schema)
{
    json_t *t = json_pack("{s:s, s:O}", "name", name, "input_schema", schema);
    if (t && description)
        json_object_set_new(t, "description", json_string(description));
    return t;
}

static int build_body(const tt_llm_request *req, json_t **out)
{
    int64_t max_tokens = req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS;
    json_t *root = json_pack("{s:s, s:[], s:I, s:b}", "model", req->model, "messages", "max_tokens",
                             (json_int_t)max_tokens, "stream", req->stream != 0);
    json_t *empty_schema = json_pack("{s:s, s:{}}", "type", "object", "properties");
    char *system = NULL;
    int rc = root && empty_schema ? system_text(req, &system) : TT_ENOMEM;
    json_t *msgs = json_object_get(root, "messages");
    for (size_t i = 0; i < req->n_messages && rc == 0; i++) {
        const tt_llm_message *m = &req->messages[i];
        if (!m->role)
            rc = TT_EINVAL;
        else if (strcmp(m->role, "system") != 0)
            rc = add_blocks(msgs, m);
    }
    if (rc == 0 && system)
        rc = json_object_set_new(root, "system", json_string(system)) ? TT_EINVAL : 0;
    if (rc == 0 && (req->n_tools > 0 || req->response_schema)) {
        json_t *tools = json_array();
        rc = json_object_set_new(root, "tools", tools) ? TT_ENOMEM : 0;
        for (size_t i = 0; i < req->n_tools && rc == 0; i++) {
            const tt_llm_tool *t = &req->tools[i];
            json_t *schema = t->parameters ? t->parameters : empty_schema;
            if (!t->name ||
                json_array_append_new(tools, tool_json(t->name, t->description, schema)))
                rc = TT_EINVAL;
        }
        /* Structured output: the model must call "output" with the answer
         * as its input, which the schema then constrains. */
        if (rc == 0 && req->response_schema) {
            json_t *t = tool_json(OUTPUT_TOOL, "Respond with the output, matching this schema.",
                                  req->response_schema);
            if (json_array_append_new(tools, t) ||
                json_object_set_new(root, "tool_choice",
                                    json_pack("{s:s, s:s}", "type", "tool", "name", OUTPUT_TOOL)))
                rc = TT_ENOMEM;
        }
    }
    /* Anthropic takes 0..1 where OpenAI takes 0..2: clamp, so that a request
     * written for either fails over to the other. */
    if (rc == 0 && req->temperature >= 0)
        json_object_set_new(root, "temperature",
                            json_real(req->temperature > 1 ? 1 : req->temperature));
    free(system);
    json_decref(empty_schema);
    if (rc != 0) {
        json_decref(root);
        return rc;
    }
    *out = root;
    return 0;
}

/* ---- events ------------------------------------------------------------- */

static void emit_error(tt_llm_sink *s, json_t *root)
{
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_ERROR);
    tt_llm_classify_json(TT_LLM_ANTHROPIC, 0, root, &ev.error);
    tt_llm_sink_emit(s, &ev);
}

/* All input tokens: cache writes and reads are billed and fill the window. */
static int64_t input_tokens(json_t *usage)
{
    json_t *in = json_object_get(usage, "input_tokens");
    if (!json_is_integer(in))
        return -1;
    return json_integer_value(in) +
           json_integer_value(json_object_get(usage, "cache_creation_input_tokens")) +
           json_integer_value(json_object_get(usage, "cache_read_input_tokens"));
}

/* With structured output, the forced "output" tool is how the model stops. */
static const char *finish_name(const char *stop, int structured_output)
{
    if (!stop || strcmp(stop, "end_turn") == 0 || strcmp(stop, "stop_sequence") == 0)
        return "stop";
    if (strcmp(stop, "max_tokens") == 0 || strcmp(stop, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop, "tool_use") == 0)
        return structured_output ? "stop" : "tool_calls";
    if (strcmp(stop, "refusal") == 0)
        return "content_filter";
    return "stop"; /* pause_turn and whatever comes next */
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

/* ---- streams ------------------------------------------------------------ */

typedef enum block_kind { BLOCK_OTHER, BLOCK_TEXT, BLOCK_TOOL, BLOCK_OUTPUT } block_kind;

typedef struct an_stream {
    int64_t prompt_tokens, completion_tokens;
    int have_usage;   /* message_start was seen */
    char stop[40];    /* stop_reason from message_delta */
    int open;         /* a content block is open */
    json_int_t block; /* its index */
    block_kind kind;
    int tool;        /* BLOCK_TOOL: its tool_index */
    size_t args_len; /* BLOCK_TOOL / OUTPUT: input bytes passed on */
    int n_tools;     /* tool_use blocks so far */
    int output_used; /* the "output" tool was called */
} an_stream;

/* Input JSON of the open tool block: arguments, or text for "output". */
static void block_input(tt_llm_sink *s, an_stream *st, const char *json, size_t len)
{
    if (len == 0)
        return;
    st->args_len += len;
    if (st->kind == BLOCK_OUTPUT)
        tt_llm_sink_text(s, json, len);
    else
        tt_llm_sink_tool(s, st->tool, NULL, NULL, json, len);
}

static int block_start(tt_llm_sink *s, an_stream *st, json_t *root)
{
    json_t *b = json_object_get(root, "content_block");
    const char *type = json_string_value(json_object_get(b, "type"));
    const char *name = json_string_value(json_object_get(b, "name"));
    st->open = 1;
    st->block = json_integer_value(json_object_get(root, "index"));
    st->kind = BLOCK_OTHER; /* thinking, server tools, ...: not passed on */
    st->args_len = 0;
    if (type && strcmp(type, "text") == 0) {
        st->kind = BLOCK_TEXT;
        json_t *t = json_object_get(b, "text");
        tt_llm_sink_text(s, json_string_value(t), json_string_length(t));
    } else if (type && strcmp(type, "tool_use") == 0) {
        const char *id = json_string_value(json_object_get(b, "id"));
        if (!id || !name) {
            tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "tool_use block without id or name");
            return 1;
        }
        if (is_output(s, name)) {
            st->kind = BLOCK_OUTPUT;
            st->output_used = 1;
        } else {
            st->kind = BLOCK_TOOL;
            st->tool = st->n_tools++;
            tt_llm_sink_tool(s, st->tool, id, name, "", 0);
        }
        /* The input is normally {} here and streamed as deltas. */
        json_t *input = json_object_get(b, "input");
        if (json_object_size(input) > 0) {
            char *t = json_dumps(input, JSON_COMPACT);
            if (t)
                block_input(s, st, t, strlen(t));
            free(t);
        }
    }
    return 0;
}

static int block_delta(tt_llm_sink *s, an_stream *st, json_t *root)
{
    if (!st->open || json_integer_value(json_object_get(root, "index")) != st->block) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "delta for a content block that is not open");
        return 1;
    }
    json_t *d = json_object_get(root, "delta");
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type)
        return 0;
    if (st->kind == BLOCK_TEXT && strcmp(type, "text_delta") == 0) {
        json_t *t = json_object_get(d, "text");
        tt_llm_sink_text(s, json_string_value(t), json_string_length(t));
    } else if ((st->kind == BLOCK_TOOL || st->kind == BLOCK_OUTPUT) &&
               strcmp(type, "input_json_delta") == 0) {
        json_t *t = json_object_get(d, "partial_json");
        block_input(s, st, json_string_value(t), json_string_length(t));
    }
    return 0;
}

static void block_stop(tt_llm_sink *s, an_stream *st)
{
    /* A call without arguments streams no input: say {} as OpenAI does. */
    if ((st->kind == BLOCK_TOOL || st->kind == BLOCK_OUTPUT) && st->args_len == 0)
        block_input(s, st, "{}", 2);
    st->open = 0;
}

static int stream_event(tt_llm_sink *s, void *state, const char *name, size_t name_len,
                        const char *data, size_t len)
{
    an_stream *st = state;
    /* The common event, a text block's delta, without a jansson tree
     * (fastjson.h); anything else is parsed below as it always was. */
    tt_fastjson_delta fast;
    long long index;
    if (st->open && st->kind == BLOCK_TEXT &&
        tt_fastjson_anthropic_text(data, len, &index, &fast) && index == st->block &&
        tt_llm_sink_fast_text(s, &fast.text))
        return s->failed;
    json_t *root = tt_llm_sink_json(s, data, len);
    if (!root)
        return 1;
    /* The data names its own type; the SSE event name says the same. */
    char ev_name[64];
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type) {
        tt_utf8_copyn(ev_name, sizeof ev_name, name, name_len);
        type = ev_name;
    }
    if (strcmp(type, "message_start") == 0) {
        json_t *usage = json_object_get(json_object_get(root, "message"), "usage");
        st->have_usage = 1;
        st->prompt_tokens = input_tokens(usage);
        st->completion_tokens = -1;
    } else if (strcmp(type, "content_block_start") == 0) {
        block_start(s, st, root);
    } else if (strcmp(type, "content_block_delta") == 0) {
        block_delta(s, st, root);
    } else if (strcmp(type, "content_block_stop") == 0) {
        block_stop(s, st);
    } else if (strcmp(type, "message_delta") == 0) {
        const char *stop =
            json_string_value(json_object_get(json_object_get(root, "delta"), "stop_reason"));
        if (stop)
            tt_utf8_copy(st->stop, sizeof st->stop, stop);
        json_t *usage = json_object_get(root, "usage");
        if (json_is_object(usage)) {
            /* output_tokens here is the running total; input_tokens may
             * appear too (server tools) and then replaces message_start's. */
            int64_t in = input_tokens(usage);
            if (in >= 0)
                st->prompt_tokens = in;
            tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_USAGE);
            ev.prompt_tokens = st->have_usage || in >= 0 ? st->prompt_tokens : -1;
            json_t *out = json_object_get(usage, "output_tokens");
            ev.completion_tokens = json_is_integer(out) ? json_integer_value(out) : -1;
            tt_llm_sink_emit(s, &ev);
        }
    } else if (strcmp(type, "message_stop") == 0) {
        emit_finish(s, st->stop[0] ? st->stop : NULL, st->output_used && st->n_tools == 0);
    } else if (strcmp(type, "error") == 0) {
        emit_error(s, root);
    } /* ping, and event types added later, are ignored as the API asks */
    json_decref(root);
    return s->failed;
}

/* ---- plain bodies ------------------------------------------------------- */

static void parse_body(tt_llm_sink *s, json_t *root)
{
    const char *type = json_string_value(json_object_get(root, "type"));
    if ((type && strcmp(type, "error") == 0) || json_object_get(root, "error")) {
        emit_error(s, root);
        return;
    }
    json_t *content = json_object_get(root, "content");
    if (!json_is_array(content)) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "response has no content");
        return;
    }
    int n_tools = 0, output_used = 0;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        const char *bt = json_string_value(json_object_get(b, "type"));
        if (bt && strcmp(bt, "text") == 0) {
            json_t *t = json_object_get(b, "text");
            tt_llm_sink_text(s, json_string_value(t), json_string_length(t));
        } else if (bt && strcmp(bt, "tool_use") == 0) {
            const char *name = json_string_value(json_object_get(b, "name"));
            json_t *input = json_object_get(b, "input");
            char *args = input ? json_dumps(input, JSON_COMPACT) : strdup("{}");
            if (!args) {
                tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "tool_use input is not JSON");
                return;
            }
            if (is_output(s, name)) {
                output_used = 1;
                tt_llm_sink_text(s, args, strlen(args));
            } else {
                tt_llm_sink_tool(s, n_tools++, json_string_value(json_object_get(b, "id")), name,
                                 args, strlen(args));
            }
            free(args);
        }
    }
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_USAGE);
        ev.prompt_tokens = input_tokens(usage);
        json_t *out = json_object_get(usage, "output_tokens");
        ev.completion_tokens = json_is_integer(out) ? json_integer_value(out) : -1;
        tt_llm_sink_emit(s, &ev);
    }
    emit_finish(s, json_string_value(json_object_get(root, "stop_reason")),
                output_used && n_tools == 0);
}

const tt_llm_wire tt_llm_wire_anthropic = {
    .build_body = build_body,
    .stream_state_size = sizeof(an_stream),
    .stream_event = stream_event,
    .parse_body = parse_body,
};
