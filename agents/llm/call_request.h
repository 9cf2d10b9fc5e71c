/* A model call's own copy of its request (call.c): kept as JSON so retries,
 * failover to another model and trimming need nothing from the caller, and
 * turned into a tt_llm_request view for each attempt. */
#ifndef TT_CALL_REQUEST_H
#define TT_CALL_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/llm/llm.h"
#include "agents/llm/token_cache.h"
#include "agents/llm/tokenizer.h"

typedef struct tt_call_request {
    json_t *messages; /* [{role, content?, tool_calls?, tool_call_id?}] */
    json_t *tools;    /* [{name, description?, parameters?}] */
    json_t *response_schema;
    int64_t max_tokens;
    double temperature;
    int stream;
    char *tag;         /* may be NULL */
    size_t text_bytes; /* the text it holds: what preparing it costs (call.c) */
} tt_call_request;

/* Copy in (nothing of it is kept): strings at memory speed, without the
 * UTF-8 check (the body build refuses invalid text), JSON values deep. */
int tt_call_request_copy(const tt_llm_request *in, tt_call_request *out);
void tt_call_request_free(tt_call_request *r);

/* A view for one attempt with the target's model; max_tokens capped by cap
 * (0: no cap). Release with tt_call_request_view_free(). */
int tt_call_request_view(const tt_call_request *r, const char *model, int64_t cap,
                         tt_llm_request *out);
void tt_call_request_view_free(tt_llm_request *view);

/* SHA-256 (hex) of the normalized request, for log lines: equal requests
 * hash equal, and no text is logged. */
void tt_call_request_hash(const tt_call_request *r, char out[65]);

/* Prompt tokens: exact with tok (the target model's BPE encoding), else the
 * tokenizer's conservative estimate. Tool calls and tool definitions count
 * as their JSON text. Long texts are counted through cache (may be NULL),
 * so text counted before is not counted again. */
int64_t tt_call_request_tokens(const tt_call_request *r, const tt_tokenizer *tok,
                               tt_token_cache *cache);

/* Drop the oldest turns (never a system message, never the latest user
 * turn; tool results go with the assistant turn that asked for them) until
 * the count is at most num/den of what it was, at least one turn.
 * Returns the number of messages dropped (0: nothing could go). */
size_t tt_call_request_trim(tt_call_request *r, const tt_tokenizer *tok, tt_token_cache *cache,
                            int num, int den);

/* Drop the oldest turns while the count exceeds max_tokens. */
size_t tt_call_request_fit(tt_call_request *r, const tt_tokenizer *tok, tt_token_cache *cache,
                           int64_t max_tokens);

#endif
