/* Provider adapters: the wire formats of OpenAI-compatible chat completions
 * and embeddings, and of Anthropic Messages (see llm.h for the types).
 *
 * Nothing here does I/O: an adapter builds request bodies and headers, and
 * parses response bodies fed to it in whatever pieces the network delivers,
 * so every format is tested on recorded streams byte by byte. */
#ifndef TT_ADAPTER_H
#define TT_ADAPTER_H

#include <stddef.h>

#include "agents/llm/fastjson.h"
#include "agents/llm/llm.h"

#define TT_LLM_BODY_MAX (8u << 20)  /* a non-streamed response larger than this is malformed */
#define TT_LLM_EVENT_MAX (1u << 20) /* one SSE event larger than this is malformed */

/* The path appended to a target's base URL: "/chat/completions" (the base
 * carries "/v1", as OpenAI clients expect) or "/v1/messages" (Anthropic
 * base "https://api.anthropic.com"). */
const char *tt_llm_path(tt_llm_provider p);

/* The path of a request to provider p for model into out (n bytes): the
 * provider's path, or Bedrock's per-model Converse / ConverseStream path.
 * 0, TT_ETOOLARGE or TT_EINVAL. */
int tt_llm_request_path(tt_llm_provider p, const char *model, int stream, char *out, size_t n);

/* The Accept header line a request to p asks with (a stream or a body). */
const char *tt_llm_accept_header(tt_llm_provider p, int stream);

/* An attempt's attribution (tenant, user, key id, agent, session, feature)
 * added to its log line, with cache_hit. */
void tt_llm_attribution_log(json_t *line, const tt_llm_attribution *a);
const char *tt_llm_provider_name(tt_llm_provider p);
int tt_llm_provider_parse(const char *name, tt_llm_provider *out);

/* Request headers other than Content-Type, one "Name: value" per entry,
 * NULL-terminated, written into out (at most n entries, strings malloc'd;
 * free with tt_llm_headers_free). OpenAI: Authorization: Bearer KEY;
 * Anthropic: x-api-key, anthropic-version: 2023-06-01. n counts the NULL
 * (TT_ETOOLARGE when short); a NULL or empty key sends no key header; a key
 * with CR or LF is TT_EINVAL. */
int tt_llm_headers(tt_llm_provider p, const char *api_key, char **out, size_t n);
void tt_llm_headers_free(char **headers);

/* The JSON body for req (malloc'd text; caller frees). OpenAI streaming asks
 * for stream_options.include_usage. Anthropic: system messages go to the
 * top-level "system", max_tokens defaults to 1024, tool results become
 * tool_result blocks in a user turn. */
int tt_llm_build_body(tt_llm_provider p, const tt_llm_request *req, char **body, size_t *len);

/* Parses one response body (status 2xx) into events. For a streamed response
 * the bytes are SSE; otherwise one JSON document, parsed at finish. A stream
 * that ends without its terminal event ([DONE] / message_stop) yields an
 * ERROR event of class NETWORK ("stream ended early"); an unparseable chunk
 * yields MALFORMED. Tool-call argument fragments are passed on as they come. */
typedef struct tt_llm_parser tt_llm_parser;
int tt_llm_parser_new(tt_llm_provider p, int stream, tt_llm_event_fn fn, void *ud,
                      tt_llm_parser **out);
/* Returns 0, or non-zero once an ERROR event was emitted (stop feeding). */
int tt_llm_parser_feed(tt_llm_parser *p, const char *data, size_t len);
/* The body ended. Emits FINISH (after any USAGE) or ERROR. A stream's FINISH
 * comes as soon as its terminal event is fed; finish then only checks that
 * it came. Returns 0 after FINISH, non-zero after ERROR. */
int tt_llm_parser_finish(tt_llm_parser *p);
void tt_llm_parser_free(tt_llm_parser *p);
/* The request had a response_schema: call before the first feed. Anthropic's
 * forced "output" tool then comes out as TEXT (its input JSON) and its stop as
 * "stop", so structured output looks the same for every provider. */
void tt_llm_parser_structured(tt_llm_parser *p);

/* Classify a non-2xx response. retry_after is the Retry-After header value
 * (seconds or an HTTP-date; NULL when absent); now_ms is the wall clock for
 * HTTP-dates. The body is the provider's error JSON (or anything). */
void tt_llm_classify_http(tt_llm_provider p, int status, const char *retry_after, const char *body,
                          size_t len, int64_t now_ms, tt_llm_error *out);

/* Retry-After in milliseconds from now (seconds or HTTP-date); -1 when
 * unparseable; 0 for a date in the past. Dates are read by curl_getdate()
 * and accepted only in RFC 9110's three forms, exactly (classify.c). */
int64_t tt_llm_parse_retry_after(const char *value, int64_t now_ms);

/* OpenAI-compatible embeddings: body for {model, input:[...]} and the
 * vectors of a response (row-major, n_inputs x *dims floats; caller frees). */
int tt_llm_build_embeddings_body(const char *model, const char *const *inputs, size_t n,
                                 char **body, size_t *len);
int tt_llm_parse_embeddings(const char *body, size_t len, size_t n_inputs, float **vectors,
                            size_t *dims, int64_t *prompt_tokens);

/* ---- The stream framing: an incremental parser for server-sent events (the WHATWG EventSource
 * format, as providers stream it).
 *
 * Bytes arrive in arbitrary pieces; an event may be split anywhere, even in
 * the middle of a CRLF. Handled: LF, CR and CRLF line ends; "data:" lines
 * joined with "\n"; one optional space after the colon; "event:" names;
 * comment lines (":..."); fields without a colon; "id:" and "retry:" read and
 * ignored; a UTF-8 BOM at the very start. An event is dispatched at a blank
 * line when it has data. "[DONE]" is passed on as ordinary data: the adapter
 * decides what it means. Every line and every event's data is capped at
 * max_event_bytes; an event name at 63 bytes. Bytes are passed on as they came
 * (no UTF-8 check): the adapter's JSON decoder does that.
 *
 *     tt_sse p;
 *     tt_sse_init(&p, 1 << 20, on_event, ctx);
 *     ... for each body piece: rc = tt_sse_feed(&p, piece, n); stop on rc ...
 *     tt_sse_free(&p); ---- */

/* One event. name is "message" when the stream gave none (or an empty one).
 * Neither string is NUL-terminated; both are owned by the parser and valid
 * only during the call; data is never NULL, and "" for "data:" alone. Return
 * non-zero to stop parsing (tt_sse_feed returns that value). The callback
 * must not call tt_sse_free() on the parser that called it. */
typedef int (*tt_sse_fn)(const char *name, size_t name_len, const char *data, size_t data_len,
                         void *ud);

typedef struct tt_sse {
    tt_sse_fn fn;
    void *ud;
    size_t max_event_bytes;
    char *line; /* the current, unfinished line */
    size_t line_len, line_cap;
    char *data; /* data of the event being built */
    size_t data_len, data_cap;
    int has_data;
    char name[64];
    size_t name_len;
    int after_cr; /* the last byte seen was CR: a following LF is part of it */
    int started;  /* 0: before the optional BOM; 1: past it; a negative
                     tt_err once the parser failed (sticky) */
} tt_sse;

/* Set up p. Caller releases with tt_sse_free(). */
void tt_sse_init(tt_sse *p, size_t max_event_bytes, tt_sse_fn fn, void *ud);
/* Feed len bytes; the parser copies what it needs to keep. Returns 0;
 * TT_ETOOLARGE when a line or an event's data passes max_event_bytes or an
 * event name passes 63 bytes; TT_ENOMEM. Both errors are sticky: every later
 * call returns the same code. Or the callback's non-zero value: the rest of
 * buf is then not parsed, and the parser may be fed further bytes. */
int tt_sse_feed(tt_sse *p, const char *buf, size_t len);
/* End of stream: an unterminated event is dropped, as EventSource does.
 * Frees the buffers and zeroes p; calling it twice is harmless. */
void tt_sse_free(tt_sse *p);

/* ---- Private to agents/llm: the seam between adapter.c and each wire format.
 * Callers outside agents/llm/ use only the functions above. ---- */

/* Where a wire format delivers events. adapter.c owns it; once failed or done
 * it drops whatever else is emitted, so an ERROR is always the last event. */
typedef struct tt_llm_sink {
    tt_llm_event_fn fn;
    void *ud;
    int structured; /* see tt_llm_parser_structured */
    int failed;     /* an ERROR was emitted */
    int done;       /* the terminal event was seen and FINISH emitted */
} tt_llm_sink;

void tt_llm_sink_emit(tt_llm_sink *s, tt_llm_event *ev);

/* Anthropic and Bedrock request bodies: the input object of a tool call
 * from its arguments (a JSON object, or its text; "" is {}; anything else
 * NULL: the APIs refuse it), and the content list of the last turn when it
 * has role, else of a new one (user and assistant must alternate). */
json_t *tt_llm_tool_input(json_t *args);
json_t *tt_llm_turn_for(json_t *msgs, const char *role);

/* An event of kind with no token counts (-1) and nothing else set. */
tt_llm_event tt_llm_event_new(tt_llm_event_kind kind);

/* Emit a text delta (nothing for an empty one), or a tool call's fragment:
 * the wire formats' two most common events. */
void tt_llm_sink_text(tt_llm_sink *s, const char *text, size_t len);
/* A text the fast scan found (fastjson.h), unescaped if need be, as one TEXT
 * event (none when empty). 0: out of memory, nothing emitted (parse the chunk
 * with jansson instead). */
int tt_llm_sink_fast_text(tt_llm_sink *s, const tt_fastjson_str *t);
void tt_llm_sink_tool(tt_llm_sink *s, int index, const char *id, const char *name, const char *args,
                      size_t len);
/* Emit ERROR of class c with a static message (status 0, no retry-after). */
void tt_llm_sink_fail(tt_llm_sink *s, tt_llm_error_class c, const char *msg);
/* Parse one JSON document, or emit MALFORMED and return NULL. Caller decrefs. */
json_t *tt_llm_sink_json(tt_llm_sink *s, const char *data, size_t len);

/* One provider's wire format. The stream state is stream_state_size bytes,
 * zeroed by the caller, owning nothing. */
typedef struct tt_llm_wire {
    int (*build_body)(const tt_llm_request *req, json_t **out);
    size_t stream_state_size;
    /* One SSE event; non-zero to stop (the sink has failed). */
    int (*stream_event)(tt_llm_sink *s, void *st, const char *name, size_t name_len,
                        const char *data, size_t len);
    /* A whole non-streamed body (status 2xx), already parsed. */
    void (*parse_body)(tt_llm_sink *s, json_t *root);
    /* A stream that is not SSE: the raw body bytes instead of stream_event
     * (non-zero once the sink has failed), and the state's release. */
    int (*stream_feed)(tt_llm_sink *s, void *st, const char *data, size_t len);
    void (*stream_free)(void *st);
} tt_llm_wire;

extern const tt_llm_wire tt_llm_wire_openai;    /* openai.c */
extern const tt_llm_wire tt_llm_wire_anthropic; /* anthropic.c */
extern const tt_llm_wire tt_llm_wire_bedrock;   /* bedrock.c */

/* bedrock.c: the class of a Bedrock exception type (":exception-type", or
 * the x-amzn-ErrorType name; n bytes, first letter in either case), or
 * TT_LLM_ERR_NONE for a type it does not know. */
tt_llm_error_class tt_bedrock_exception_class(const char *type, size_t n, const char *message);

/* classify.c: the class and message of a provider's error JSON (a body, or an
 * in-stream error with status 0). retry_after_ms is left at -1. */
void tt_llm_classify_json(tt_llm_provider p, int status, json_t *root, tt_llm_error *out);

#endif
