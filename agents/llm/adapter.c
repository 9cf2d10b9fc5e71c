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
#include "agents/llm/sse.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

static const tt_llm_wire *wire_of(tt_llm_provider p)
{
    switch (p) {
    case TT_LLM_OPENAI:
        return &tt_llm_wire_openai;
    case TT_LLM_ANTHROPIC:
        return &tt_llm_wire_anthropic;
    case TT_LLM_BEDROCK:
        return &tt_llm_wire_bedrock;
    default:
        return NULL;
    }
}

const char *tt_llm_path(tt_llm_provider p)
{
    switch (p) {
    case TT_LLM_OPENAI:
        return "/chat/completions";
    case TT_LLM_ANTHROPIC:
        return "/v1/messages";
    case TT_LLM_BEDROCK:
        return "/model"; /* then the model and the operation: tt_bedrock_path() */
    default:
        return NULL;
    }
}

const char *tt_llm_provider_name(tt_llm_provider p)
{
    switch (p) {
    case TT_LLM_OPENAI:
        return "openai";
    case TT_LLM_ANTHROPIC:
        return "anthropic";
    case TT_LLM_BEDROCK:
        return "bedrock";
    default:
        return "unknown";
    }
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
