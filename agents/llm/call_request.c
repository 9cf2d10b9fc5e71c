/* The request copy behind a model call, its preparation for an attempt, and
 * the token cache they count through (see call_request.h). */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agents/llm/adapter.h"
#include "agents/llm/cache.h"
#include "agents/llm/call_request.h"
#include "agents/llm/redact.h"
#include "protocol/base64.h"
#include "protocol/errors.h"

/* Bytes of text in v: its strings and keys (what counting and encoding read). */
static size_t json_text_bytes(json_t *v)
{
    size_t n = 0, i;
    const char *key;
    json_t *item;
    if (json_is_string(v))
        return json_string_length(v);
    if (json_is_array(v))
        json_array_foreach(v, i, item) n += json_text_bytes(item);
    else if (json_is_object(v))
        json_object_foreach(v, key, item) n += strlen(key) + json_text_bytes(item);
    return n;
}

/* A deep copy (jansson copies strings without re-checking them), or NULL for NULL. */
static int copy_json(json_t *in, json_t **out)
{
    *out = in ? json_deep_copy(in) : NULL;
    return in && !*out ? TT_ENOMEM : 0;
}

/* The message as the call keeps it. The content is copied at memory speed
 * (no UTF-8 check here: the body is built, and any invalid text refused, in
 * the preparation, call.c); tool calls are deep copies, never shared. */
static json_t *copy_message(const tt_llm_message *m, size_t *bytes)
{
    json_t *o = json_pack("{s:s, s:s?}", "role", m->role, "tool_call_id", m->tool_call_id);
    json_t *calls = NULL;
    if (!o || copy_json(m->tool_calls, &calls) != 0)
        goto fail;
    size_t len = m->content ? strlen(m->content) : 0;
    if (m->content && json_object_set_new(o, "content", json_stringn_nocheck(m->content, len)))
        goto fail;
    if (calls && json_object_set_new(o, "tool_calls", calls)) {
        calls = NULL;
        goto fail;
    }
    *bytes += len + json_text_bytes(calls);
    return o;
fail:
    json_decref(calls);
    json_decref(o);
    return NULL;
}

int tt_call_request_copy(const tt_llm_request *in, tt_call_request *out)
{
    memset(out, 0, sizeof *out);
    out->messages = json_array();
    out->tools = json_array();
    if (!out->messages || !out->tools)
        goto fail;
    for (size_t i = 0; i < in->n_messages; i++) {
        json_t *o = copy_message(&in->messages[i], &out->text_bytes);
        if (!o || json_array_append_new(out->messages, o) != 0)
            goto fail;
    }
    for (size_t i = 0; i < in->n_tools; i++) {
        const tt_llm_tool *t = &in->tools[i];
        json_t *params = NULL;
        json_t *o = copy_json(t->parameters, &params) == 0
                        ? json_pack("{s:s, s:s?, s:o?}", "name", t->name, "description",
                                    t->description, "parameters", params)
                        : NULL;
        if (!o || json_array_append_new(out->tools, o) != 0)
            goto fail;
        out->text_bytes += json_text_bytes(o);
    }
    if (copy_json(in->response_schema, &out->response_schema) != 0)
        goto fail;
    out->max_tokens = in->max_tokens;
    out->temperature = in->temperature;
    out->stream = in->stream;
    out->tag = in->tag ? strdup(in->tag) : NULL;
    out->redact_map = tt_redact_map_ref(in->redact_map);
    out->redactor = in->redactor;
    return 0;
fail:
    tt_call_request_free(out);
    return TT_ENOMEM;
}

void tt_call_request_free(tt_call_request *r)
{
    json_decref(r->messages);
    json_decref(r->tools);
    json_decref(r->response_schema);
    free(r->tag);
    tt_redact_map_free(r->redact_map);
    memset(r, 0, sizeof *r);
}

int tt_call_request_view(const tt_call_request *r, const char *model, int64_t cap,
                         tt_llm_request *out)
{
    memset(out, 0, sizeof *out);
    size_t n = json_array_size(r->messages), nt = json_array_size(r->tools);
    tt_llm_message *msgs = calloc(n ? n : 1, sizeof *msgs);
    tt_llm_tool *tools = calloc(nt ? nt : 1, sizeof *tools);
    if (!msgs || !tools) {
        free(msgs);
        free(tools);
        return TT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(r->messages, i);
        msgs[i] = (tt_llm_message){
            .role = json_string_value(json_object_get(m, "role")),
            .content = json_string_value(json_object_get(m, "content")),
            .tool_calls = json_object_get(m, "tool_calls"),
            .tool_call_id = json_string_value(json_object_get(m, "tool_call_id")),
        };
    }
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(r->tools, i);
        tools[i] = (tt_llm_tool){json_string_value(json_object_get(t, "name")),
                                 json_string_value(json_object_get(t, "description")),
                                 json_object_get(t, "parameters")};
    }
    int64_t max = r->max_tokens;
    if (cap > 0 && (max <= 0 || max > cap))
        max = cap;
    *out = (tt_llm_request){.model = model,
                            .messages = msgs,
                            .n_messages = n,
                            .tools = tools,
                            .n_tools = nt,
                            .max_tokens = max,
                            .temperature = r->temperature,
                            .stream = r->stream,
                            .response_schema = r->response_schema,
                            .tag = r->tag};
    return 0;
}

void tt_call_request_view_free(tt_llm_request *view)
{
    free((void *)view->messages);
    free((void *)view->tools);
    memset(view, 0, sizeof *view);
}

void tt_call_request_hash(const tt_call_request *r, char out[65])
{
    json_t *norm = json_pack("{s:O, s:O, s:O?, s:I, s:b}", "messages", r->messages, "tools",
                             r->tools, "response_schema", r->response_schema, "max_tokens",
                             (json_int_t)r->max_tokens, "stream", r->stream);
    char *text = norm ? json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(norm);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(text ? text : ""), text ? strlen(text) : 0, md);
    free(text);
    tt_hex_encode(md, SHA256_DIGEST_LENGTH, out);
}

static int64_t count_json(const tt_tokenizer *tok, tt_token_cache *cache, json_t *v)
{
    if (!v || json_is_null(v))
        return 0;
    char *text = json_dumps(v, JSON_COMPACT);
    int64_t n = text ? tt_token_cache_count(cache, tok, text, strlen(text)) : 0;
    free(text);
    return n;
}

/* The tokens one message adds: framing, role, content and tool calls. */
static int64_t message_tokens(const tt_tokenizer *tok, tt_token_cache *cache, json_t *m)
{
    int per_message = tok ? TT_TOKENIZER_TOKENS_PER_MESSAGE : TT_TOKENIZER_ESTIMATE_PER_MESSAGE;
    json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
    return per_message +
           tt_token_cache_count(cache, tok, json_string_value(role), json_string_length(role)) +
           tt_token_cache_count(cache, tok, json_string_value(content),
                                json_string_length(content)) +
           count_json(tok, cache, json_object_get(m, "tool_calls"));
}

/* Everything but the messages: the reply primer and the tool definitions. */
static int64_t fixed_tokens(const tt_call_request *r, const tt_tokenizer *tok,
                            tt_token_cache *cache)
{
    int64_t total = tok ? TT_TOKENIZER_REPLY_PRIMER : TT_TOKENIZER_ESTIMATE_REPLY_PRIMER;
    if (json_array_size(r->tools) > 0)
        total += count_json(tok, cache, r->tools);
    return total;
}

int64_t tt_call_request_tokens(const tt_call_request *r, const tt_tokenizer *tok,
                               tt_token_cache *cache)
{
    int64_t total = fixed_tokens(r, tok, cache);
    size_t i;
    json_t *m;
    json_array_foreach(r->messages, i, m) total += message_tokens(tok, cache, m);
    return total;
}

static int is_role(json_t *m, const char *role)
{
    const char *have = json_string_value(json_object_get(m, "role"));
    return have && strcmp(have, role) == 0;
}

/* Keep messages [0, from) and [to, n): one pass, one new array. */
static int cut(tt_call_request *r, size_t from, size_t to)
{
    size_t n = json_array_size(r->messages);
    json_t *kept = json_array();
    for (size_t i = 0; kept && i < n; i++) {
        if ((i < from || i >= to) && json_array_append(kept, json_array_get(r->messages, i)) != 0) {
            json_decref(kept);
            kept = NULL;
        }
    }
    if (!kept)
        return TT_ENOMEM;
    json_decref(r->messages);
    r->messages = kept;
    return 0;
}

/* Drop the oldest turns while the count is above goal_tokens (goal_tokens
 * < 0: num/den of the count), and at least one turn when at_least_one. A turn
 * is the first message after the system ones, then everything up to the next
 * user message, so the conversation still starts with a user turn (Anthropic
 * refuses anything else) and no tool result is left without the call that
 * asked for it. The latest user turn never goes. Each message is counted
 * once and the dropped ones leave in one cut: linear in the messages.
 * Returns messages removed (0: nothing could go, or out of memory). */
static size_t drop_turns(tt_call_request *r, const tt_tokenizer *tok, tt_token_cache *cache,
                         int64_t goal_tokens, int num, int den, int at_least_one)
{
    size_t n = json_array_size(r->messages), last_user = n, first = 0;
    for (size_t i = n; i-- > 0;) {
        if (is_role(json_array_get(r->messages, i), "user")) {
            last_user = i;
            break;
        }
    }
    while (first < n && is_role(json_array_get(r->messages, first), "system"))
        first++;
    if (first >= last_user)
        return 0;
    int64_t *cost = malloc(n * sizeof *cost);
    if (!cost)
        return 0;
    int64_t total = fixed_tokens(r, tok, cache);
    for (size_t i = 0; i < n; i++)
        total += cost[i] = message_tokens(tok, cache, json_array_get(r->messages, i));
    int64_t goal = goal_tokens >= 0 ? goal_tokens : total * num / den;
    size_t end = first;
    if (at_least_one || total > goal) {
        do {
            total -= cost[end++];
            while (end < last_user && !is_role(json_array_get(r->messages, end), "user"))
                total -= cost[end++];
        } while (end < last_user && total > goal);
    }
    free(cost);
    return end > first && cut(r, first, end) == 0 ? end - first : 0;
}

size_t tt_call_request_trim(tt_call_request *r, const tt_tokenizer *tok, tt_token_cache *cache,
                            int num, int den)
{
    return drop_turns(r, tok, cache, -1, num, den, 1);
}

size_t tt_call_request_fit(tt_call_request *r, const tt_tokenizer *tok, tt_token_cache *cache,
                           int64_t max_tokens)
{
    return max_tokens > 0 ? drop_turns(r, tok, cache, max_tokens, 1, 1, 0) : 0;
}

/* ---- Preparing an attempt ---- */

/* The hex SHA-256 of a body (65 bytes with the NUL), which a Bedrock
 * signature needs: computed here, off the loop for a large body. */
static void hex_sha256(const char *body, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)body, len, d);
    tt_hex_encode(d, sizeof d, out);
}

/* The tool calls' arguments (JSON text) with the PII of their strings
 * replaced; arguments that are not JSON are redacted as text. */
static int redact_tool_calls(tt_call_request *r, json_t *calls)
{
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call)
    {
        json_t *args = json_object_get(call, "arguments");
        if (!json_is_string(args))
            continue;
        json_t *v = json_loadb(json_string_value(args), json_string_length(args),
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        char *text = NULL;
        tt_buf b;
        tt_buf_init(&b, 2 * (size_t)TT_REDACT_INPUT_MAX);
        int n = v ? tt_redact_json(r->redactor, r->redact_map, v, 0)
                  : tt_redact_text(r->redactor, r->redact_map, json_string_value(args),
                                   json_string_length(args), &b);
        if (n > 0)
            text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : tt_buf_take(&b, NULL);
        json_decref(v);
        tt_buf_free(&b);
        if (n < 0 ||
            (n > 0 && (!text || json_object_set_new(call, "arguments", json_string(text)))))
            n = -1;
        free(text);
        if (n < 0)
            return -1;
    }
    return 0;
}

/* The messages' content with its PII replaced (redact.h), in place, before
 * the request is hashed: the cache key and every attempt use the redacted
 * text. TT_ETOOLARGE (nothing sent) when a text is over the caps. */
static int redact_request(tt_call_request *r)
{
    size_t i;
    json_t *m;
    json_array_foreach(r->messages, i, m)
    {
        json_t *content = json_object_get(m, "content");
        if (redact_tool_calls(r, json_object_get(m, "tool_calls")) != 0)
            return TT_ETOOLARGE;
        if (!json_is_string(content))
            continue;
        tt_buf b;
        tt_buf_init(&b, 2 * (size_t)TT_REDACT_INPUT_MAX);
        int n = tt_redact_text(r->redactor, r->redact_map, json_string_value(content),
                               json_string_length(content), &b);
        if (n > 0 &&
            json_object_set_new(m, "content", json_stringn_nocheck(tt_buf_data(&b), b.len)))
            n = -1;
        tt_buf_free(&b);
        if (n < 0)
            return TT_ETOOLARGE;
    }
    return 0;
}

void tt_call_prep_run(tt_call_prep *p)
{
    p->rc = 0;
    if ((p->steps & TT_PREP_HASH) && p->req->redact_map && (p->rc = redact_request(p->req)) != 0)
        return; /* nothing else: no key, no body, so nothing is looked up or sent */
    if (p->steps & TT_PREP_HASH) {
        tt_call_request_hash(p->req, p->input_hash);
        tt_llm_cache_call_key(p->req->cache, p->req); /* cache.h: before FIT changes it */
    }
    if (p->steps & TT_PREP_FIT)
        p->dropped = tt_call_request_fit(p->req, p->tok, p->cache, p->max_prompt_tokens);
    if (p->steps & TT_PREP_TRIM)
        p->dropped = tt_call_request_trim(p->req, p->tok, p->cache, 3, 4);
    if (p->steps & TT_PREP_BODY) {
        tt_llm_request view;
        p->rc = tt_call_request_view(p->req, p->model, p->max_completion_tokens, &view);
        if (p->rc == 0)
            p->rc = tt_llm_build_body(p->provider, &view, &p->body, &p->body_len);
        tt_call_request_view_free(&view);
        p->body_sha256[0] = '\0';
        if (p->rc == 0 && p->provider == TT_LLM_BEDROCK)
            hex_sha256(p->body, p->body_len, p->body_sha256);
    }
}

int tt_call_prep_offloaded(const tt_call_request *req)
{
    return req->text_bytes > TT_CALL_PREPARE_INLINE_MAX;
}

/* ---- The token cache ---- */

typedef struct slot {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    int32_t encoding1; /* tt_tokenizer_encoding + 1; 0: empty, as calloc left it */
    int64_t tokens;
} slot;

struct tt_token_cache {
    uv_mutex_t lock;
    tt_token_cache_stats stats;
    slot slots[TT_TOKEN_CACHE_SLOTS];
};

int tt_token_cache_new(tt_token_cache **out)
{
    /* calloc'd and not written: its 192 KiB stay untouched zero pages until
     * used (start-up: tests/bench/README.md, "Cold start"). */
    tt_token_cache *c = calloc(1, sizeof *c);
    if (!c)
        return TT_ENOMEM;
    if (uv_mutex_init(&c->lock) != 0) {
        free(c);
        return TT_ENOMEM;
    }
    *out = c;
    return 0;
}

void tt_token_cache_free(tt_token_cache *c)
{
    if (!c)
        return;
    uv_mutex_destroy(&c->lock);
    free(c);
}

static int64_t count_now(const tt_tokenizer *tok, const char *text, size_t len)
{
    size_t n = 0;
    if (tok && tt_tokenizer_count(tok, text, len, &n) == 0)
        return (int64_t)n;
    return (int64_t)tt_tokenizer_estimate(text, len);
}

int64_t tt_token_cache_count(tt_token_cache *c, const tt_tokenizer *tok, const char *text,
                             size_t len)
{
    if (!c || len < TT_TOKEN_CACHE_MIN_BYTES)
        return count_now(tok, text, len);
    int32_t enc = tok ? (int32_t)tt_tokenizer_get_encoding(tok) : TT_TOKENIZER_ESTIMATE;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, len, digest);
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    slot *s = &c->slots[(h ^ (uint64_t)enc) % TT_TOKEN_CACHE_SLOTS];
    uv_mutex_lock(&c->lock);
    if (s->encoding1 == enc + 1 && memcmp(s->digest, digest, sizeof digest) == 0) {
        int64_t tokens = s->tokens;
        c->stats.hits++;
        uv_mutex_unlock(&c->lock);
        return tokens;
    }
    uv_mutex_unlock(&c->lock);
    int64_t tokens = count_now(tok, text, len); /* outside the lock: the slow part */
    uv_mutex_lock(&c->lock);
    memcpy(s->digest, digest, sizeof digest);
    s->encoding1 = enc + 1;
    s->tokens = tokens;
    c->stats.misses++;
    c->stats.miss_bytes += len;
    uv_mutex_unlock(&c->lock);
    return tokens;
}

void tt_token_cache_stats_get(tt_token_cache *c, tt_token_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    uv_mutex_lock(&c->lock);
    *out = c->stats;
    uv_mutex_unlock(&c->lock);
}
