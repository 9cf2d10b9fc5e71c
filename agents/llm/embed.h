/* Embeddings through the routes (POST /v1/embeddings of the gateway): one
 * request to the first OpenAI-format target of a route, its answer handed
 * back whole. No retry or failover: an embeddings call is cheap to repeat and
 * the client's SDK retries. */
#ifndef TT_EMBED_H
#define TT_EMBED_H

#include <stddef.h>
#include <jansson.h>

#include "agents/llm/call.h"

typedef struct tt_llm_embed tt_llm_embed;

/* The end, exactly once unless cancelled first: the provider's status and
 * body (at most TT_LLM_BODY_MAX bytes), or status 0 and a short reason
 * (network failure, timeout, a body over the cap) as body. model is the
 * model that was asked for. */
typedef void (*tt_llm_embed_done_fn)(int status, const char *body, size_t len, const char *model,
                                     void *ud);

/* Send request (the client's JSON object, borrowed; its "model" is replaced
 * by model, or the target's model when model is NULL) to route alias (NULL:
 * the first route). TT_ENOTFOUND: no such route; TT_EINVAL: the route has no
 * OpenAI-format target (Anthropic has no embeddings API); TT_ETOOLARGE: a
 * model name of 128 bytes or more. Every call that ends (not one cancelled)
 * is reported to the service's usage hook like a chat call's attempt
 * (call.h: the ledger's row, tokens from the answer's usage, priced by the
 * routes), attributed to attr (copied; NULL: all ""). */
int tt_llm_embed_start_as(tt_llm_service *s, const char *alias, const char *model, json_t *request,
                          const tt_llm_attribution *attr, tt_llm_embed_done_fn done, void *ud,
                          tt_llm_embed **out);

/* Abort; done is not called. */
void tt_llm_embed_cancel(tt_llm_embed *e);

#endif
