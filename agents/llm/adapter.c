/* The provider-neutral face of the adapters (adapter.h): paths, names,
 * headers, request bodies, and the response parser.
 *
 * Each wire format lives in its own file (openai.c, anthropic.c) behind a
 * tt_llm_wire table; this file picks the table and owns what they share: the
 * SSE parser for streams, the bounded buffer for plain bodies, and the sink
 * that guarantees an ERROR is the last event a caller ever sees. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "agents/llm/bedrock.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

/* Each provider's name, path and wire format: a provider is added here. */
static const struct provider {
    const char *name;
    const char *path;
    const tt_llm_wire *wire;
} providers[TT_LLM_PROVIDER__LAST] = {
    [TT_LLM_OPENAI] = {.name = "openai", .path = "/chat/completions", .wire = &tt_llm_wire_openai},
    [TT_LLM_ANTHROPIC] = {.name = "anthropic",
                          .path = "/v1/messages",
                          .wire = &tt_llm_wire_anthropic},
    /* then the model and the operation: tt_bedrock_path() */
    [TT_LLM_BEDROCK] = {.name = "bedrock", .path = "/model", .wire = &tt_llm_wire_bedrock},
};

static const struct provider *provider_of(tt_llm_provider p)
{
    return (unsigned)p < TT_LLM_PROVIDER__LAST && providers[p].name ? &providers[p] : NULL;
}

static const tt_llm_wire *wire_of(tt_llm_provider p)
{
    const struct provider *pr = provider_of(p);
    return pr ? pr->wire : NULL;
}

const char *tt_llm_path(tt_llm_provider p)
{
    const struct provider *pr = provider_of(p);
    return pr ? pr->path : NULL;
}

const char *tt_llm_provider_name(tt_llm_provider p)
{
    const struct provider *pr = provider_of(p);
    return pr ? pr->name : "unknown";
}

int tt_llm_provider_parse(const char *name, tt_llm_provider *out)
{
    if (!name)
        return TT_EINVAL;
    for (int i = 0; i < TT_LLM_PROVIDER__LAST; i++) {
        if (strcmp(name, tt_llm_provider_name((tt_llm_provider)i)) == 0) {
            *out = (tt_llm_provider)i;
            return 0;
        }
    }
    return TT_EINVAL;
}

/* ---- headers ------------------------------------------------------------ */

static int header_add(char **out, size_t n, size_t *i, const char *name, const char *value)
{
    if (*i + 1 >= n) /* keep room for the NULL */
        return TT_ETOOLARGE;
    size_t len = strlen(name) + 2 + strlen(value) + 1;
    char *h = malloc(len);
    if (!h)
        return TT_ENOMEM;
    snprintf(h, len, "%s: %s", name, value);
    out[(*i)++] = h;
    out[*i] = NULL;
    return 0;
}

int tt_llm_headers(tt_llm_provider p, const char *api_key, char **out, size_t n)
{
    if (!out || n == 0)
        return TT_EINVAL;
    out[0] = NULL;
    /* A key is pasted into a header line: a CR or LF would inject headers. */
    if (api_key && strpbrk(api_key, "\r\n"))
        return TT_EINVAL;
    int has_key = api_key && *api_key;
    size_t i = 0;
    int rc = 0;
    switch (p) {
    case TT_LLM_OPENAI:
        /* Local OpenAI-compatible servers (llama.cpp, Ollama) take no key. */
        if (has_key) {
            size_t len = strlen("Bearer ") + strlen(api_key) + 1;
            char *v = malloc(len);
            if (!v)
                return TT_ENOMEM;
            snprintf(v, len, "Bearer %s", api_key);
            rc = header_add(out, n, &i, "Authorization", v);
            free(v);
        }
        break;
    case TT_LLM_ANTHROPIC:
        if (has_key)
            rc = header_add(out, n, &i, "x-api-key", api_key);
        if (rc == 0)
            rc = header_add(out, n, &i, "anthropic-version", "2023-06-01");
        break;
    case TT_LLM_BEDROCK: /* signed by the transport (bedrock.h), no key header */
        break;
    default:
        return TT_EINVAL;
    }
    if (rc != 0)
        tt_llm_headers_free(out);
    return rc;
}

void tt_llm_headers_free(char **headers)
{
    if (!headers)
        return;
    for (size_t i = 0; headers[i]; i++) {
        free(headers[i]);
        headers[i] = NULL;
    }
}

/* ---- request body ------------------------------------------------------- */

int tt_llm_build_body(tt_llm_provider p, const tt_llm_request *req, char **body, size_t *len)
{
    const tt_llm_wire *w = wire_of(p);
    if (!w || !req || !req->model || !body)
        return TT_EINVAL;
    if (req->n_messages > 0 && !req->messages)
        return TT_EINVAL;
    if (req->n_tools > 0 && !req->tools)
        return TT_EINVAL;
    json_t *root = NULL;
    int rc = w->build_body(req, &root);
    if (rc != 0)
        return rc;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return TT_ENOMEM;
    *body = text;
    if (len)
        *len = strlen(text);
    return 0;
}

/* ---- the sink ----------------------------------------------------------- */

void tt_llm_sink_emit(tt_llm_sink *s, tt_llm_event *ev)
{
    if (s->failed || s->done)
        return;
    if (ev->kind == TT_LLM_EV_ERROR)
        s->failed = 1;
    else if (ev->kind == TT_LLM_EV_FINISH)
        s->done = 1;
    s->fn(ev, s->ud);
}

void tt_llm_sink_fail(tt_llm_sink *s, tt_llm_error_class c, const char *msg)
{
    tt_llm_event ev = {.kind = TT_LLM_EV_ERROR, .prompt_tokens = -1, .completion_tokens = -1};
    ev.error.cls = c;
    ev.error.retry_after_ms = -1;
    tt_utf8_copy(ev.error.message, sizeof ev.error.message, msg);
    tt_llm_sink_emit(s, &ev);
}

json_t *tt_llm_sink_json(tt_llm_sink *s, const char *data, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        tt_llm_sink_fail(s, TT_LLM_ERR_MALFORMED, "response is not a JSON object");
        return NULL;
    }
    return root;
}

/* ---- server-sent events --------------------------------------------------
 *
 * Providers (OpenAI, Anthropic, ...) stream completions as text/event-stream;
 * libcurl hands us the body in whatever pieces the network produced. This part
 * turns those pieces into whole events following the WHATWG "event stream
 * interpretation" algorithm, minus the parts EventSource needs and we do not
 * (last event id, reconnection time).
 *
 * Cost is amortised O(n): each input byte is looked at a constant number of
 * times (the scan for a line end never restarts, and the scan for the colon
 * stops at it). A line that arrives whole inside one piece is parsed in
 * place; only a line split across pieces is copied into p->line, each byte at
 * most once. Data bytes are copied once more into p->data. Both buffers grow
 * geometrically and never past max_event_bytes, so a hostile stream costs at
 * most 2 * max_event_bytes of memory.
 *
 * Invariants between calls: line_len <= max_event_bytes once past the BOM
 * (before, it counts BOM bytes matched, see skip_bom), data_len <=
 * max_event_bytes, name_len < sizeof name; after_cr is set only when the last
 * byte fed was CR; p->line never holds a line end. */

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

/* A parser error loses bytes of the stream, so it is sticky: p->started keeps
 * the code and every later tt_sse_feed() returns it. Callback values are not
 * errors and never pass through here. */
static int fail(tt_sse *p, int rc)
{
    p->started = rc;
    return rc;
}

void tt_sse_init(tt_sse *p, size_t max_event_bytes, tt_sse_fn fn, void *ud)
{
    memset(p, 0, sizeof *p);
    p->fn = fn;
    p->ud = ud;
    p->max_event_bytes = max_event_bytes;
}

void tt_sse_free(tt_sse *p)
{
    free(p->line);
    free(p->data);
    memset(p, 0, sizeof *p);
}

/* Make room for need bytes in *buf (capacity *cap). need never passes the
 * cap, checked by the caller, so the buffer never grows past it either. */
static int reserve(char **buf, size_t *cap, size_t need, size_t max)
{
    assert(need <= max);
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n = n > max / 2 ? max : n * 2;
    if (n > max)
        n = max;
    char *b = realloc(*buf, n);
    if (!b)
        return TT_ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

/* Append n bytes to the unfinished line, enforcing the per-line cap. */
static int line_append(tt_sse *p, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n > p->max_event_bytes - p->line_len)
        return fail(p, TT_ETOOLARGE);
    if (reserve(&p->line, &p->line_cap, p->line_len + n, p->max_event_bytes))
        return fail(p, TT_ENOMEM);
    memcpy(p->line + p->line_len, s, n);
    p->line_len += n;
    return 0;
}

/* A blank line: hand over the event if it has data, then start afresh. The
 * name is reset even when nothing is dispatched (an "event:" with no data
 * does not leak into the next event). */
static int dispatch(tt_sse *p)
{
    int rc = 0;
    if (p->has_data) {
        const char *name = p->name_len ? p->name : "message";
        size_t name_len = p->name_len ? p->name_len : 7;
        /* data may be NULL when every data line was empty; never hand the
         * callback a NULL pointer. */
        rc = p->fn(name, name_len, p->data ? p->data : "", p->data_len, p->ud);
    }
    p->has_data = 0;
    p->data_len = 0;
    p->name_len = 0;
    return rc;
}

static int add_data(tt_sse *p, const char *v, size_t n)
{
    size_t sep = p->has_data ? 1 : 0;
    size_t max = p->max_event_bytes;
    if (n > max || sep > max - n || p->data_len > max - n - sep)
        return fail(p, TT_ETOOLARGE);
    if (reserve(&p->data, &p->data_cap, p->data_len + sep + n, max))
        return fail(p, TT_ENOMEM);
    if (sep)
        p->data[p->data_len++] = '\n';
    if (n)
        memcpy(p->data + p->data_len, v, n);
    p->data_len += n;
    p->has_data = 1;
    return 0;
}

/* One complete line, without its terminator. s may point into the caller's
 * buffer or into p->line. */
static int process_line(tt_sse *p, const char *s, size_t n)
{
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0; /* comment; providers send ": keep-alive" */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0)
        return add_data(p, v, vlen);
    if (flen == 5 && memcmp(s, "event", 5) == 0) {
        if (vlen >= sizeof p->name)
            return fail(p, TT_ETOOLARGE);
        if (vlen)
            memcpy(p->name, v, vlen);
        p->name_len = vlen;
        return 0;
    }
    /* "id", "retry" and unknown fields are ignored, as the spec says. */
    return 0;
}

/* Before the first real byte: swallow a UTF-8 BOM, which may itself arrive
 * split. While !p->started, p->line_len counts the BOM bytes matched so far;
 * they are not stored, since they are known. The BOM is not part of any line
 * and does not count against the cap. On a mismatch the bytes matched are
 * content after all: BOM bytes are never CR or LF, so they simply begin the
 * first line, and only then are they counted. Returns the bytes consumed. */
static size_t skip_bom(tt_sse *p, const char *buf, size_t len, int *rc)
{
    size_t i = 0;
    *rc = 0;
    while (i < len && (unsigned char)buf[i] == BOM[p->line_len]) {
        i++;
        if (++p->line_len == sizeof BOM) {
            p->line_len = 0;
            p->started = 1;
            return i;
        }
    }
    if (i == len)
        return i; /* still a prefix of the BOM: wait for more */
    size_t matched = p->line_len;
    p->line_len = 0;
    p->started = 1;
    *rc = line_append(p, (const char *)BOM, matched);
    return i;
}

static int feed(tt_sse *p, const char *buf, size_t len)
{
    int rc = 0;
    size_t i = 0;
    if (!p->started) {
        i = skip_bom(p, buf, len, &rc);
        if (rc)
            return rc;
    }
    while (i < len) {
        if (p->after_cr) {
            p->after_cr = 0;
            if (buf[i] == '\n') {
                i++; /* the LF of a CRLF whose CR ended the previous line */
                continue;
            }
        }
        /* Find the next line end; the scan starts past what was already
         * seen, so no byte is scanned twice. */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (j == len)
            return line_append(p, buf + i, len - i); /* wait for the rest */
        if (p->line_len == 0) {
            /* The whole line is in buf: parse it where it lies. */
            if (j - i > p->max_event_bytes)
                return fail(p, TT_ETOOLARGE);
            rc = process_line(p, buf + i, j - i);
        } else {
            rc = line_append(p, buf + i, j - i);
            if (rc)
                return rc;
            rc = process_line(p, p->line, p->line_len);
            p->line_len = 0;
        }
        /* Keep the CR state right even when stopping here, so a caller that
         * goes on feeding after a callback's stop sees a consistent parser. */
        p->after_cr = buf[j] == '\r';
        if (rc)
            return rc;
        i = j + 1;
    }
    return 0;
}

int tt_sse_feed(tt_sse *p, const char *buf, size_t len)
{
    if (p->started < 0)
        return p->started; /* failed earlier: the stream has lost bytes */
    if (len == 0)
        return 0;
    return feed(p, buf, len);
}

/* ---- the parser --------------------------------------------------------- */

struct tt_llm_parser {
    const tt_llm_wire *wire;
    int stream;
    tt_llm_sink sink;
    tt_sse sse;  /* stream only */
    void *state; /* stream only: the wire's state */
    tt_buf body; /* plain body only, at most TT_LLM_BODY_MAX bytes */
};

static int on_sse(const char *name, size_t name_len, const char *data, size_t data_len, void *ud)
{
    tt_llm_parser *p = ud;
    if (p->sink.failed)
        return 1;
    if (p->sink.done) /* anything after the terminal event is ignored */
        return 0;
    return p->wire->stream_event(&p->sink, p->state, name, name_len, data, data_len) ? 1 : 0;
}

int tt_llm_parser_new(tt_llm_provider prov, int stream, tt_llm_event_fn fn, void *ud,
                      tt_llm_parser **out)
{
    const tt_llm_wire *w = wire_of(prov);
    if (!w || !fn || !out)
        return TT_EINVAL;
    tt_llm_parser *p = calloc(1, sizeof *p);
    if (!p)
        return TT_ENOMEM;
    p->wire = w;
    p->stream = stream != 0;
    p->sink.fn = fn;
    p->sink.ud = ud;
    tt_buf_init(&p->body, TT_LLM_BODY_MAX);
    if (p->stream) {
        p->state = calloc(1, w->stream_state_size);
        if (!p->state) {
            free(p);
            return TT_ENOMEM;
        }
        tt_sse_init(&p->sse, TT_LLM_EVENT_MAX, on_sse, p);
    }
    *out = p;
    return 0;
}

void tt_llm_parser_structured(tt_llm_parser *p)
{
    p->sink.structured = 1;
}

static int body_append(tt_llm_parser *p, const char *data, size_t len)
{
    int rc = tt_buf_append(&p->body, data, len);
    if (rc) {
        tt_llm_sink_fail(&p->sink, TT_LLM_ERR_MALFORMED,
                         rc == TT_ETOOLARGE ? "response body too large" : "out of memory");
        return 1;
    }
    return 0;
}

int tt_llm_parser_feed(tt_llm_parser *p, const char *data, size_t len)
{
    if (p->sink.failed)
        return 1;
    if (p->sink.done || len == 0)
        return 0;
    if (!p->stream)
        return body_append(p, data, len);
    if (p->wire->stream_feed)
        return p->wire->stream_feed(&p->sink, p->state, data, len);
    int rc = tt_sse_feed(&p->sse, data, len);
    if (rc == TT_ETOOLARGE)
        tt_llm_sink_fail(&p->sink, TT_LLM_ERR_MALFORMED, "stream event too large");
    else if (rc < 0)
        tt_llm_sink_fail(&p->sink, TT_LLM_ERR_MALFORMED, "out of memory");
    return p->sink.failed;
}

int tt_llm_parser_finish(tt_llm_parser *p)
{
    if (p->sink.failed)
        return 1;
    if (p->sink.done)
        return 0;
    if (p->stream) {
        tt_llm_sink_fail(&p->sink, TT_LLM_ERR_NETWORK, "stream ended early");
        return 1;
    }
    json_t *root = tt_llm_sink_json(&p->sink, tt_buf_str(&p->body), p->body.len);
    if (root) {
        p->wire->parse_body(&p->sink, root);
        json_decref(root);
    }
    tt_buf_free(&p->body);
    /* A body that parsed yet gave neither FINISH nor ERROR is a wire bug. */
    if (!p->sink.failed && !p->sink.done)
        tt_llm_sink_fail(&p->sink, TT_LLM_ERR_MALFORMED, "response has no result");
    return p->sink.failed;
}

void tt_llm_parser_free(tt_llm_parser *p)
{
    if (!p)
        return;
    if (p->stream)
        tt_sse_free(&p->sse);
    if (p->state && p->wire->stream_free)
        p->wire->stream_free(p->state);
    free(p->state);
    tt_buf_free(&p->body);
    free(p);
}

int tt_llm_request_path(tt_llm_provider p, const char *model, int stream, char *out, size_t n)
{
    if (p == TT_LLM_BEDROCK) /* Converse or ConverseStream, the model in the path */
        return tt_bedrock_path(model, stream, out, n);
    const char *path = tt_llm_path(p);
    if (!path)
        return TT_EINVAL;
    return (size_t)snprintf(out, n, "%s", path) < n ? 0 : TT_ETOOLARGE;
}

const char *tt_llm_accept_header(tt_llm_provider p, int stream)
{
    if (!stream)
        return "Accept: application/json";
    return p == TT_LLM_BEDROCK ? "Accept: application/vnd.amazon.eventstream"
                               : "Accept: text/event-stream";
}

void tt_llm_attribution_log(json_t *line, const tt_llm_attribution *a)
{
    json_object_set_new(line, "tenant", json_string(a->tenant));
    json_object_set_new(line, "user", json_string(a->user));
    json_object_set_new(line, "key_id", json_string(a->key_id));
    json_object_set_new(line, "agent", json_string(a->agent));
    json_object_set_new(line, "session", json_string(a->session));
    json_object_set_new(line, "feature", json_string(a->feature));
    json_object_set_new(line, "cache_hit", json_false());
}

tt_llm_event tt_llm_event_new(tt_llm_event_kind kind)
{
    tt_llm_event ev = {.kind = kind, .prompt_tokens = -1, .completion_tokens = -1};
    return ev;
}

void tt_llm_sink_text(tt_llm_sink *s, const char *text, size_t len)
{
    if (!text || len == 0)
        return;
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_TEXT);
    ev.text = text;
    ev.text_len = len;
    tt_llm_sink_emit(s, &ev);
}

int tt_llm_sink_fast_text(tt_llm_sink *s, const tt_fastjson_str *t)
{
    if (!t->escaped) {
        tt_llm_sink_text(s, t->raw, t->raw_len);
        return 1;
    }
    char small[512];
    char *buf = t->decoded_len <= sizeof small ? small : malloc(t->decoded_len);
    if (!buf)
        return 0;
    tt_fastjson_decode(t, buf);
    tt_llm_sink_text(s, buf, t->decoded_len);
    if (buf != small)
        free(buf);
    return 1;
}

void tt_llm_sink_tool(tt_llm_sink *s, int index, const char *id, const char *name, const char *args,
                      size_t len)
{
    tt_llm_event ev = tt_llm_event_new(TT_LLM_EV_TOOL_CALL);
    ev.tool_index = index;
    ev.tool_id = id;
    ev.tool_name = name;
    ev.args = args;
    ev.args_len = len;
    tt_llm_sink_emit(s, &ev);
}

json_t *tt_llm_tool_input(json_t *args)
{
    if (json_is_object(args))
        return json_incref(args);
    if (!args)
        return json_object();
    const char *t = json_string_value(args);
    if (!t)
        return NULL;
    if (t[strspn(t, " \t\r\n")] == '\0')
        return json_object();
    json_t *v = json_loads(t, 0, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *tt_llm_turn_for(json_t *msgs, const char *role)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    if (last && strcmp(json_string_value(json_object_get(last, "role")), role) == 0)
        return json_object_get(last, "content");
    json_t *turn = json_pack("{s:s, s:[]}", "role", role, "content");
    if (!turn || json_array_append_new(msgs, turn))
        return NULL;
    return json_object_get(turn, "content");
}
