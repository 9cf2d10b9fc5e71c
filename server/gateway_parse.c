/* POST /v1/chat/completions bodies (see gateway_parse.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/jsonw.h"
#include "protocol/utf8.h"
#include "server/gateway_parse.h"

json_t *tt_gateway_error(const char *message, const char *type, const char *code)
{
    return json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message, "type", type,
                     "param", "code", code);
}

/* A literal's bytes (no NUL). */
#define LIT(b, s) tt_buf_append((b), (s), sizeof(s) - 1)

/* What an answer and a chunk begin with: {"id":..,"object":..,"created":..,
 * "model":..,"choices":[{"index":0, */
static int answer_head(tt_buf *out, const char *id, const char *object, const char *model,
                       int64_t created)
{
    int rc = LIT(out, "{\"id\":");
    rc = rc ? rc : tt_jw_str(out, id);
    rc = rc ? rc : LIT(out, ",\"object\":");
    rc = rc ? rc : tt_jw_str(out, object);
    rc = rc ? rc : LIT(out, ",\"created\":");
    rc = rc ? rc : tt_jw_i64(out, created);
    rc = rc ? rc : LIT(out, ",\"model\":");
    rc = rc ? rc : tt_jw_str(out, model);
    return rc ? rc : LIT(out, ",\"choices\":[{\"index\":0,");
}

int tt_gateway_plain_answer(tt_buf *out, const char *id, const char *model, int64_t created,
                            const char *content, const char *finish, int64_t prompt_tokens,
                            int64_t completion_tokens, double cost_usd, int cached)
{
    size_t before = out->len;
    int rc = answer_head(out, id, "chat.completion", model, created);
    rc = rc ? rc : LIT(out, "\"message\":{\"role\":\"assistant\",\"content\":");
    rc = rc ? rc : content ? tt_jw_str(out, content) : LIT(out, "null");
    rc = rc ? rc : LIT(out, "},\"finish_reason\":");
    rc = rc ? rc : tt_jw_str(out, finish);
    rc = rc ? rc : LIT(out, "}],\"usage\":{\"prompt_tokens\":");
    rc = rc ? rc : tt_jw_i64(out, prompt_tokens);
    rc = rc ? rc : LIT(out, ",\"completion_tokens\":");
    rc = rc ? rc : tt_jw_i64(out, completion_tokens);
    rc = rc ? rc : LIT(out, ",\"total_tokens\":");
    rc = rc ? rc : tt_jw_i64(out, prompt_tokens + completion_tokens);
    if (isfinite(cost_usd)) {
        rc = rc ? rc : LIT(out, ",\"cost_usd\":");
        rc = rc ? rc : tt_jw_real(out, cost_usd);
    }
    if (cached)
        rc = rc ? rc : LIT(out, ",\"cached\":true");
    rc = rc ? rc : LIT(out, "}}");
    if (rc)
        tt_buf_truncate(out, before);
    return rc;
}

int tt_gateway_text_chunk(tt_buf *out, const char *id, const char *model, int64_t created,
                          const char *text, size_t len, int with_role)
{
    size_t before = out->len;
    int rc = answer_head(out, id, "chat.completion.chunk", model, created);
    rc = rc ? rc : LIT(out, "\"delta\":{\"content\":");
    rc = rc ? rc : tt_jw_strn(out, text, len);
    if (with_role)
        rc = rc ? rc : LIT(out, ",\"role\":\"assistant\"");
    rc = rc ? rc : LIT(out, "},\"finish_reason\":null}]}");
    if (rc)
        tt_buf_truncate(out, before);
    return rc;
}

static void refuse(tt_gateway_parsed *p, int status, json_t *error)
{
    p->status = status;
    p->error = error;
}

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
 * and 1. */
static int refuse_malformed(tt_gateway_parsed *p, json_t *root, int64_t max_messages)
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
        refuse(p, 400,
               tt_gateway_error("model (string) and messages (non-empty array) are required; "
                                "stream boolean, tools array, max_tokens integer",
                                "invalid_request_error", NULL));
        return 1;
    }
    /* Every message is converted, copied and counted: bounded. */
    if (json_array_size(messages) > (size_t)max_messages) {
        char msg[160];
        snprintf(msg, sizeof msg, "too many messages: at most %lld per request",
                 (long long)max_messages);
        refuse(p, 400, tt_gateway_error(msg, "invalid_request_error", "too_many_messages"));
        return 1;
    }
    return 0;
}

/* An assistant message's OpenAI tool_calls as the call wants them. */
static json_t *convert_tool_calls(json_t *tcs)
{
    json_t *conv = json_array();
    size_t k;
    json_t *tc;
    json_array_foreach(tcs, k, tc)
    {
        json_t *fn = json_object_get(tc, "function");
        json_array_append_new(conv, json_pack("{s:O?, s:O?, s:O?}", "id", json_object_get(tc, "id"),
                                              "name", json_object_get(fn, "name"), "arguments",
                                              json_object_get(fn, "arguments")));
    }
    return conv;
}

/* OpenAI messages into p->msgs (p->texts[i] holds message i's text, p->calls
 * the converted tool calls). Non-zero: a bad role. */
static int convert_messages(tt_gateway_parsed *p, json_t *messages)
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
        p->texts[i] = content_text(json_object_get(m, "content"));
        p->msgs[i] =
            (tt_llm_message){.role = role,
                             .content = p->texts[i],
                             .tool_call_id = json_string_value(json_object_get(m, "tool_call_id"))};
        json_t *tcs = json_object_get(m, "tool_calls");
        if (!bad && json_is_array(tcs)) {
            json_t *conv = convert_tool_calls(tcs);
            json_array_append_new(p->calls, conv);
            p->msgs[i].tool_calls = conv;
        }
    }
    return bad;
}

/* The request's tools (function name, description, parameters). Non-zero: a tool without a name. */
static int convert_tools(tt_gateway_parsed *p, json_t *tools)
{
    for (size_t i = 0; i < json_array_size(tools); i++) {
        json_t *fn = json_object_get(json_array_get(tools, i), "function");
        p->tools[i] = (tt_llm_tool){json_string_value(json_object_get(fn, "name")),
                                    json_string_value(json_object_get(fn, "description")),
                                    json_object_get(fn, "parameters")};
        if (!p->tools[i].name)
            return 1;
    }
    return 0;
}

/* A root that passed refuse_malformed() into p->req. */
static void convert(tt_gateway_parsed *p, json_t *root)
{
    json_t *messages = json_object_get(root, "messages"), *tools = json_object_get(root, "tools");
    json_t *max = json_object_get(root, "max_completion_tokens");
    if (!max)
        max = json_object_get(root, "max_tokens");
    json_t *temp = json_object_get(root, "temperature");
    const char *model = json_string_value(json_object_get(root, "model"));
    tt_utf8_copy(p->model, sizeof p->model, model);
    p->stream = json_is_true(json_object_get(root, "stream"));
    p->include_usage =
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
    size_t n = json_array_size(messages), nt = json_array_size(tools);
    p->msgs = calloc(n, sizeof *p->msgs);
    p->tools = calloc(nt + 1, sizeof *p->tools);
    p->texts = calloc(n, sizeof *p->texts);
    p->calls = json_array();
    p->n_texts = p->texts ? n : 0;
    if (!p->msgs || !p->tools || !p->texts || !p->calls) {
        refuse(p, 500, tt_gateway_error("out of memory", "server_error", NULL));
        return;
    }
    if (convert_messages(p, messages) != 0 || convert_tools(p, tools) != 0) {
        refuse(p, 400,
               tt_gateway_error("each message needs a role of system, developer, user, "
                                "assistant or tool; each tool a function name",
                                "invalid_request_error", NULL));
        return;
    }
    p->req = (tt_llm_request){.model = model,
                              .messages = p->msgs,
                              .n_messages = n,
                              .tools = p->tools,
                              .n_tools = nt,
                              .max_tokens = max ? json_integer_value(max) : 0,
                              .temperature = temp ? json_number_value(temp) : -1,
                              .stream = p->stream, /* a plain request is a plain call */
                              .tag = "gateway"};
}

void tt_gateway_parse(const char *body, size_t len, int64_t max_messages, tt_gateway_parsed *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    out->root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(out->root))
        refuse(out, 400,
               tt_gateway_error("the body must be a JSON object", "invalid_request_error", NULL));
    else if (!refuse_malformed(out, out->root, max_messages))
        convert(out, out->root);
}

void tt_gateway_parsed_free(tt_gateway_parsed *p)
{
    for (size_t i = 0; i < p->n_texts; i++)
        free(p->texts[i]);
    free(p->texts);
    free(p->msgs);
    free(p->tools);
    json_decref(p->calls);
    json_decref(p->error);
    json_decref(p->root);
    memset(p, 0, sizeof *p);
}

int tt_gateway_model_allowed(const char *list, const char *model)
{
    size_t n = strlen(model);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if ((len == 1 && *p == '*') || (len == n && n > 0 && memcmp(p, model, n) == 0))
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* One entry of OpenAI's model list (its id unique in seen). */
static void list_add(json_t *data, json_t *seen, const char *id, const char *owner, int64_t created,
                     json_t *extra)
{
    if (json_object_get(seen, id)) {
        json_decref(extra);
        return;
    }
    json_object_set_new(seen, id, json_true());
    json_t *m = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                          (json_int_t)created, "owned_by", owner);
    if (m && extra)
        json_object_set_new(m, "tether", extra);
    else
        json_decref(extra);
    json_array_append_new(data, m);
}

json_t *tt_gateway_models_list(json_t *routes, const char *allow, int64_t created)
{
    json_t *data = json_array(), *seen = json_object();
    size_t i, j;
    json_t *r, *t;
    json_array_foreach(routes, i, r)
    {
        list_add(
            data, seen, json_string_value(json_object_get(r, "alias")), "tether", created,
            json_pack("{s:s, s:O}", "kind", "route", "targets", json_object_get(r, "targets")));
    }
    json_array_foreach(routes, i, r)
    {
        json_array_foreach(json_object_get(r, "targets"), j, t)
        {
            list_add(
                data, seen, json_string_value(json_object_get(t, "model")),
                json_string_value(json_object_get(t, "provider")), created,
                json_pack("{s:s, s:O}", "kind", "model", "route", json_object_get(r, "alias")));
        }
    }
    /* Names the allow-list spells out (not '*') are served by the default route. */
    for (const char *p = allow; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[128];
        int n = snprintf(name, sizeof name, "%.*s", (int)len, p);
        char *s = name, *e = name + (n < (int)sizeof name ? n : (int)sizeof name - 1);
        while (*s == ' ')
            s++;
        while (e > s && e[-1] == ' ')
            *--e = '\0';
        if (*s && strcmp(s, "*") != 0 && (size_t)n < sizeof name)
            list_add(data, seen, s, "tether", created,
                     json_pack("{s:s, s:s}", "kind", "pass-through", "route", "default"));
        p = end ? end + 1 : NULL;
    }
    json_decref(seen);
    return json_pack("{s:s, s:o}", "object", "list", "data", data);
}
