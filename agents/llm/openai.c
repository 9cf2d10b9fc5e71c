/* The OpenAI chat completions wire format (and its many compatible servers:
 * Azure-style deployments, vLLM, llama.cpp, Ollama), plus embeddings.
 *
 * Streams are SSE "data:" chunks of chat.completion.chunk objects ending in
 * "data: [DONE]". A tool call arrives as fragments keyed by index: the first
 * carries id and name, the rest only pieces of the arguments text, which are
 * passed on as they come. finish_reason arrives before the usage chunk, so it
 * is held and FINISH is emitted at [DONE], after USAGE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

/* ---- request body ------------------------------------------------------- */

/* tool_calls entries are {id, name, arguments}; arguments is JSON text (an
 * object is accepted and written out; none or "" becomes "{}"). */
static json_t *tool_calls_json(json_t *calls)
{
    json_t *out = json_array();
    if (!out)
        return NULL;
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *args = json_object_get(c, "arguments");
        if (!id || !name)
            goto fail;
        json_t *args_text;
        const char *t = json_string_value(args);
        if (t && t[strspn(t, " \t\r\n")] != '\0') {
            args_text = json_incref(args);
        } else if (json_is_object(args)) {
            char *dump = json_dumps(args, JSON_COMPACT);
            args_text = dump ? json_string(dump) : NULL;
            free(dump);
        } else { /* none, or "": a call without arguments */
            args_text = json_string("{}");
        }
        json_t *call = json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type", "function",
                                 "function", "name", name, "arguments", args_text);
        if (!call || json_array_append_new(out, call))
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *message_json(const tt_llm_message *m)
{
    const char *content = m->content ? m->content : "";
    if (!m->role)
        return NULL;
    if (strcmp(m->role, "system") == 0 || strcmp(m->role, "user") == 0)
        return json_pack("{s:s, s:s}", "role", m->role, "content", content);
    if (strcmp(m->role, "tool") == 0) {
        if (!m->tool_call_id)
            return NULL;
        return json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", m->tool_call_id,
                         "content", content);
    }
    if (strcmp(m->role, "assistant") != 0)
        return NULL;
    json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                            m->content ? json_string(m->content) : json_null());
    if (msg && json_array_size(m->tool_calls) > 0) {
        json_t *calls = tool_calls_json(m->tool_calls);
        if (!calls || json_object_set_new(msg, "tool_calls", calls)) {
            json_decref(msg);
            return NULL;
        }
    }
    return msg;
}

static int build_body(const tt_llm_request *req, json_t **out)
{
    json_t *root =
        json_pack("{s:s, s:[], s:b}", "model", req->model, "messages", "stream", req->stream != 0);
    if (!root)
        return TT_ENOMEM;
    json_t *msgs = json_object_get(root, "messages");
    for (size_t i = 0; i < req->n_messages; i++) {
        json_t *m = message_json(&req->messages[i]);
        if (!m || json_array_append_new(msgs, m))
            goto invalid;
    }
    if (req->n_tools > 0) {
        json_t *tools = json_array();
        if (!tools || json_object_set_new(root, "tools", tools))
            goto invalid;
        for (size_t i = 0; i < req->n_tools; i++) {
            const tt_llm_tool *t = &req->tools[i];
            if (!t->name)
                goto invalid;
            json_t *fn = json_pack("{s:s}", "name", t->name);
            if (!fn || json_array_append_new(
                           tools, json_pack("{s:s, s:o}", "type", "function", "function", fn)))
                goto invalid;
            if (t->description)
                json_object_set_new(fn, "description", json_string(t->description));
            json_object_set_new(fn, "parameters",
                                t->parameters
                                    ? json_incref(t->parameters)
                                    : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        }
    }
    if (req->max_tokens > 0)
        json_object_set_new(root, "max_tokens", json_integer(req->max_tokens));
    if (req->temperature >= 0)
        json_object_set_new(root, "temperature", json_real(req->temperature));
    if (req->stream)
        json_object_set_new(root, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (req->response_schema)
        json_object_set_new(root, "response_format",
                            json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema",
                                      "json_schema", "name", "output", "schema",
                                      req->response_schema, "strict", 1));
    *out = root;
    return 0;
invalid:
    json_decref(root);
    return TT_EINVAL;
}

/* ---- events ------------------------------------------------------------- */

static int64_t int_or(json_t *v, int64_t dflt)
{
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void emit_usage(tt_llm_sink *s, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_USAGE);
    ev.prompt_tokens = int_or(json_object_get(usage, "prompt_tokens"), -1);
    ev.completion_tokens = int_or(json_object_get(usage, "completion_tokens"), -1);
    tt_llm_sink_emit(s, &ev);
}

/* The provider's finish_reason as one of llm.h's static names: the event's
 * reason outlives the chunk it came in (tt_llm_result keeps it). Unknown
 * reasons are "stop"; "function_call" is the legacy name of "tool_calls". */
static const char *finish_name(const char *r)
{
    static const char *const names[] = {"stop", "length", "tool_calls", "content_filter"};
    if (r && strcmp(r, "function_call") == 0)
        return "tool_calls";
    for (size_t i = 0; r && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(r, names[i]) == 0)
            return names[i];
    return "stop";
}

static void emit_finish(tt_llm_sink *s, const char *reason)
{
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_FINISH);
    ev.finish_reason = finish_name(reason);
    tt_llm_sink_emit(s, &ev);
}

static void emit_error(tt_llm_sink *s, json_t *root)
{
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_ERROR);
    tt_llm_classify_json(TT_LLM_OPENAI, 0, root, &ev.error);
    tt_llm_sink_emit(s, &ev);
}

static void emit_text(tt_llm_sink *s, json_t *content)
{
    size_t n = json_string_length(content);
    if (!json_is_string(content) || n == 0)
        return;
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_TEXT);
    ev.text = json_string_value(content);
    ev.text_len = n;
    tt_llm_sink_emit(s, &ev);
}

/* The arguments text of a call: a string, or (some compatible servers) an
 * object, written out. *owned is set when the caller must free the result. */
static const char *args_text(json_t *args, size_t *len, char **owned)
{
    *owned = NULL;
    if (json_is_string(args)) {
        *len = json_string_length(args);
        return json_string_value(args);
    }
    if (json_is_object(args) && (*owned = json_dumps(args, JSON_COMPACT))) {
        *len = strlen(*owned);
        return *owned;
    }
    *len = 0;
    return "";
}

/* ---- streams ------------------------------------------------------------ */

#define ANNOUNCED_MAX 64

typedef struct oa_stream {
    char finish[32];                        /* the held finish_reason */
    unsigned char announced[ANNOUNCED_MAX]; /* the call's id and name were passed on */
    int n_calls;                            /* 1 + the highest index seen */
} oa_stream;

static int stream_tool_call(tt_llm_sink *s, oa_stream *st, json_t *tc)
{
    json_t *jidx = json_object_get(tc, "index");
    const char *id = json_string_value(json_object_get(tc, "id"));
    json_t *fn = json_object_get(tc, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    int64_t idx;
    if (json_is_integer(jidx))
        idx = json_integer_value(jidx);
    else /* some servers omit index: an id starts the next call */
        idx = id ? st->n_calls : (st->n_calls > 0 ? st->n_calls - 1 : 0);
    if (idx < 0 || idx > 1 << 16) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "tool call index out of range");
        return 1;
    }
    if (idx >= st->n_calls)
        st->n_calls = (int)idx + 1;
    if (idx < ANNOUNCED_MAX && st->announced[idx]) {
        id = NULL; /* some servers repeat them on every fragment */
        name = NULL;
    } else if (idx < ANNOUNCED_MAX && (id || name)) {
        st->announced[idx] = 1;
    }
    char *owned;
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_TOOL_CALL);
    ev.tool_index = (int)idx;
    ev.tool_id = id;
    ev.tool_name = name;
    ev.args = args_text(json_object_get(fn, "arguments"), &ev.args_len, &owned);
    if (id || name || ev.args_len > 0)
        tt_llm_sink_emit(s, &ev);
    free(owned);
    return 0;
}

static int stream_choice(tt_llm_sink *s, oa_stream *st, json_t *choice)
{
    json_t *delta = json_object_get(choice, "delta");
    emit_text(s, json_object_get(delta, "content"));
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
    {
        if (stream_tool_call(s, st, tc))
            return 1;
    }
    const char *reason = json_string_value(json_object_get(choice, "finish_reason"));
    if (reason)
        tt_utf8_copy(st->finish, sizeof st->finish, reason);
    return 0;
}

static int stream_event(tt_llm_sink *s, void *state, const char *name, size_t name_len,
                        const char *data, size_t len)
{
    oa_stream *st = state;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        emit_finish(s, st->finish);
        return 0;
    }
    /* The common chunk, a bit of text, without a jansson tree (fastjson.h);
     * anything else is parsed below as it always was. */
    tt_fastjson_delta fast;
    if (tt_fastjson_openai_delta(data, len, &fast) &&
        (!fast.has_text || tt_llm_sink_fast_text(s, &fast.text)))
        return s->failed;
    json_t *root = tt_llm_sink_json(s, data, len);
    if (!root)
        return 1;
    if (json_object_get(root, "error")) {
        emit_error(s, root);
        json_decref(root);
        return 1;
    }
    /* Only the first choice is followed (n is never above 1 here); Azure's
     * first chunk has none, only prompt_filter_results. */
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(root, "choices"), i, choice)
    {
        if (int_or(json_object_get(choice, "index"), 0) == 0 && stream_choice(s, st, choice))
            break;
    }
    emit_usage(s, json_object_get(root, "usage"));
    json_decref(root);
    return s->failed;
}

/* ---- plain bodies ------------------------------------------------------- */

static void parse_body(tt_llm_sink *s, json_t *root)
{
    if (json_object_get(root, "error")) {
        emit_error(s, root);
        return;
    }
    json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "response has no choices[0].message");
        return;
    }
    emit_text(s, json_object_get(msg, "content"));
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        json_t *fn = json_object_get(tc, "function");
        char *owned;
        tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_TOOL_CALL);
        ev.tool_index = (int)i;
        ev.tool_id = json_string_value(json_object_get(tc, "id"));
        ev.tool_name = json_string_value(json_object_get(fn, "name"));
        ev.args = args_text(json_object_get(fn, "arguments"), &ev.args_len, &owned);
        tt_llm_sink_emit(s, &ev);
        free(owned);
    }
    emit_usage(s, json_object_get(root, "usage"));
    emit_finish(s, json_string_value(json_object_get(choice, "finish_reason")));
}

const tt_llm_wire tt_llm_wire_openai = {
    .build_body = build_body,
    .stream_state_size = sizeof(oa_stream),
    .stream_event = stream_event,
    .parse_body = parse_body,
};

/* ---- embeddings --------------------------------------------------------- */

int tt_llm_build_embeddings_body(const char *model, const char *const *inputs, size_t n,
                                 char **body, size_t *len)
{
    if (!model || !body || (n > 0 && !inputs))
        return TT_EINVAL;
    json_t *arr = json_array();
    json_t *root = json_pack("{s:s, s:o}", "model", model, "input", arr);
    if (!root)
        return TT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i] || json_array_append_new(arr, json_string(inputs[i]))) {
            json_decref(root);
            return TT_EINVAL; /* NULL, or not UTF-8 */
        }
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return TT_ENOMEM;
    *body = text;
    if (len)
        *len = strlen(text);
    return 0;
}

/* Every vector present once, all of one length, placed by its "index". */
int tt_llm_parse_embeddings(const char *body, size_t len, size_t n_inputs, float **vectors,
                            size_t *dims, int64_t *prompt_tokens)
{
    if (!body || !vectors || !dims || n_inputs == 0)
        return TT_EINVAL;
    if (len > TT_LLM_BODY_MAX)
        return TT_ETOOLARGE;
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *data = json_object_get(root, "data");
    float *v = NULL;
    unsigned char *seen = calloc(n_inputs, 1);
    int rc = TT_EINVAL;
    size_t d = 0;
    if (!seen) {
        rc = TT_ENOMEM;
        goto done;
    }
    if (json_array_size(data) != n_inputs)
        goto done;
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item)
    {
        json_t *emb = json_object_get(item, "embedding");
        json_int_t idx = int_or(json_object_get(item, "index"), (json_int_t)i);
        if (!json_is_array(emb) || idx < 0 || (size_t)idx >= n_inputs || seen[idx])
            goto done;
        seen[idx] = 1;
        if (!v) {
            d = json_array_size(emb);
            if (d == 0 || d > TT_LLM_BODY_MAX / n_inputs)
                goto done;
            if (!(v = malloc(n_inputs * d * sizeof *v))) {
                rc = TT_ENOMEM;
                goto done;
            }
        }
        if (json_array_size(emb) != d)
            goto done;
        size_t k;
        json_t *x;
        json_array_foreach(emb, k, x)
        {
            if (!json_is_number(x))
                goto done;
            v[(size_t)idx * d + k] = (float)json_number_value(x);
        }
    }
    if (prompt_tokens)
        *prompt_tokens =
            int_or(json_object_get(json_object_get(root, "usage"), "prompt_tokens"), -1);
    *vectors = v;
    *dims = d;
    v = NULL;
    rc = 0;
done:
    free(v);
    free(seen);
    json_decref(root);
    return rc;
}
