/* POST /v1/chat/completions bodies (gateway.c): OpenAI's request in, a
 * tt_llm_request out, or the 400 that says what is wrong. Pure (no loop, no
 * server, no lws): the gateway runs it in libuv's thread pool when the body
 * is larger than TT_GATEWAY_PARSE_INLINE_MAX, since parsing and converting
 * megabytes of JSON takes tens of milliseconds. */
#ifndef TT_GATEWAY_PARSE_H
#define TT_GATEWAY_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/llm/llm.h"
#include "protocol/buf.h"

/* Bodies up to this size are parsed on the loop (jansson parses ~100 MB/s in
 * a RelWithDebInfo build: 32 KiB is well under a millisecond, about what
 * the pool's round trip costs). */
#define TT_GATEWAY_PARSE_INLINE_MAX (32 * 1024)

typedef struct tt_gateway_parsed {
    int status;    /* 0: parsed into req; else the HTTP status of the refusal in error */
    json_t *error; /* OpenAI's error object for status (owned) */
    char model[128];
    int stream, include_usage;
    tt_llm_request req; /* its strings and values point into the fields below */
    json_t *root;
    tt_llm_message *msgs;
    tt_llm_tool *tools;
    char **texts; /* each message's text */
    size_t n_texts;
    json_t *calls; /* converted assistant tool calls */
} tt_gateway_parsed;

/* Parse body[0..len) (a request of at most max_messages messages) into out,
 * which the caller releases with tt_gateway_parsed_free(). Any thread. */
void tt_gateway_parse(const char *body, size_t len, int64_t max_messages, tt_gateway_parsed *out);
void tt_gateway_parsed_free(tt_gateway_parsed *p);

/* Is model on list (comma-separated names; "*" is any, "" none)? */
int tt_gateway_model_allowed(const char *list, const char *model);

/* GET /v1/models: OpenAI's list ({object: "list", data: [{id, object:
 * "model", created, owned_by, tether: {...}}]}) of every route alias, every
 * model behind a route, and each name the allow-list spells out. routes is
 * tt_llm_service_models(); new reference. */
json_t *tt_gateway_models_list(json_t *routes, const char *allow, int64_t created);

/* A plain answer without tool calls, written into out directly (no json_t):
 * the bytes json_dumps(JSON_COMPACT) gives for {"id", "object":
 * "chat.completion", "created", "model", "choices": [{"index": 0, "message":
 * {"role": "assistant", "content"}, "finish_reason"}], "usage":
 * {"prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"
 * (absent when not finite, as json_real refuses it), "cached": true (only
 * when cached)}}; content NULL is null. 0, or TT_EINVAL for a string that
 * is not valid UTF-8 (which jansson refuses too), or out's error; out is
 * left as it was on failure. */
int tt_gateway_plain_answer(tt_buf *out, const char *id, const char *model, int64_t created,
                            const char *content, const char *finish, int64_t prompt_tokens,
                            int64_t completion_tokens, double cost_usd, int cached);

/* A streamed text delta's chunk, written into out directly: the bytes of
 * {"id", "object": "chat.completion.chunk", "created", "model", "choices":
 * [{"index": 0, "delta": {"content": text[0..len), "role": "assistant" (with
 * role only)}, "finish_reason": null}]} dumped compact. 0, TT_EINVAL (text
 * not UTF-8, as jansson refuses it), or out's error; out as it was then. */
int tt_gateway_text_chunk(tt_buf *out, const char *id, const char *model, int64_t created,
                          const char *text, size_t len, int with_role);

/* OpenAI's error object: {"error": {message, type, param: null, code}} (new reference). */
json_t *tt_gateway_error(const char *message, const char *type, const char *code);

#endif
