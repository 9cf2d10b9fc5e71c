/* A model call's own copy of its request (call.c): kept as JSON so retries,
 * failover to another model and trimming need nothing from the caller, and
 * turned into a tt_llm_request view for each attempt. */
#ifndef TT_CALL_REQUEST_H
#define TT_CALL_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/llm/llm.h"

typedef struct tt_call_request {
    json_t *messages; /* [{role, content?, tool_calls?, tool_call_id?}] */
    json_t *tools;    /* [{name, description?, parameters?}] */
    json_t *response_schema;
    int64_t max_tokens;
    double temperature;
    int stream;
    char *tag;        /* may be NULL */
} tt_call_request;

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

/* A conservative prompt token estimate: a byte is never less than a third of
 * a token for the BPE vocabularies in use, plus 4 tokens per message. */
int64_t tt_call_request_estimate(const tt_call_request *r);

/* Drop the oldest turns (never a system message, never the latest user
 * turn; tool results go with the assistant turn that asked for them) until
 * the estimate is at most num/den of what it was, at least one turn.
 * Returns the number of messages dropped (0: nothing could go). */
size_t tt_call_request_trim(tt_call_request *r, int num, int den);

/* Drop the oldest turns while the estimate exceeds max_tokens. */
size_t tt_call_request_fit(tt_call_request *r, int64_t max_tokens);

#endif
