/* A model call's own copy of its request (call.c): kept as JSON so retries,
 * failover to another model and trimming need nothing from the caller, and
 * turned into a tt_llm_request view for each attempt; and the preparation of
 * each attempt from it (token fit or trim, the provider's body), on the loop
 * or in the thread pool. */
#ifndef TT_CALL_REQUEST_H
#define TT_CALL_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/llm/call.h"
#include "agents/llm/llm.h"
#include "agents/llm/route.h"
#include "agents/llm/tokenizer.h"

/* ---- The token cache: token counts of long texts, remembered by content, so that a conversation
 * sent again counts only its new text: a chat session's next turn carries
 * the whole transcript, a gateway client resends its whole history, a retry
 * or failover recounts the same request.
 *
 * An entry is keyed by the encoding and the SHA-256 of the text (so no
 * crafted text can take another's count), in a fixed table of
 * TT_TOKEN_CACHE_SLOTS direct-mapped slots: a newer text in the same slot
 * replaces the older one, so memory never grows. Hashing runs at memory
 * speed, counting with BPE at a few tens of MB/s: a hit is ~100x cheaper.
 * Texts shorter than TT_TOKEN_CACHE_MIN_BYTES are counted each time (as
 * fast as hashing them). One mutex: any thread may count through it (model
 * calls prepare their requests in libuv's thread pool, call.c). ---- */

#define TT_TOKEN_CACHE_SLOTS 4096     /* 4096 x 48 bytes: 192 KiB per service */
#define TT_TOKEN_CACHE_MIN_BYTES 1024 /* shorter texts are not remembered */

typedef struct tt_token_cache tt_token_cache;

typedef struct tt_token_cache_stats {
    uint64_t hits;       /* counts answered from the table */
    uint64_t misses;     /* texts of at least TT_TOKEN_CACHE_MIN_BYTES counted */
    uint64_t miss_bytes; /* their bytes */
} tt_token_cache_stats;

/* An empty cache; free with tt_token_cache_free(). TT_ENOMEM. */
int tt_token_cache_new(tt_token_cache **out) __attribute__((warn_unused_result));
void tt_token_cache_free(tt_token_cache *c);

/* The tokens of text[0..len): counted with tok (NULL: tt_tokenizer_estimate)
 * or taken from the table. c may be NULL (no table). Never fails: a text the
 * tokenizer refuses is estimated. */
int64_t tt_token_cache_count(tt_token_cache *c, const tt_tokenizer *tok, const char *text,
                             size_t len);

/* What the cache did so far (for tests and metrics). */
void tt_token_cache_stats_get(tt_token_cache *c, tt_token_cache_stats *out);

/* ---- The request copy ---- */

typedef struct tt_call_request {
    json_t *messages; /* [{role, content?, tool_calls?, tool_call_id?}] */
    json_t *tools;    /* [{name, description?, parameters?}] */
    json_t *response_schema;
    int64_t max_tokens;
    double temperature;
    int stream;
    char *tag;                        /* may be NULL */
    size_t text_bytes;                /* the text it holds: what preparing it costs (call.c) */
    struct tt_llm_cache_call *cache;  /* borrowed (call.c): TT_PREP_HASH computes its key */
    struct tt_redact_map *redact_map; /* a reference (redact.h); TT_PREP_HASH redacts first */
    const struct tt_redact *redactor;
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

/* ---- Preparing an attempt: the heavy part of getting a model call ready: hashing its
 * request for the log, counting its tokens to fit the route's budget or to
 * trim it after a context-length error, and building the provider's body.
 * All of it is linear in the request's text, and the text can be megabytes
 * (a gateway body, a long chat transcript): on a large request it runs in
 * libuv's thread pool, on a small one on the loop, where the pool's round
 * trip would cost more than the work.
 *
 * A job touches only itself, the request copy its call owns (which nothing
 * else reads or changes while the job runs), an immutable tokenizer and the
 * thread-safe token cache: it may run on any thread. ---- */

/* Requests with at most this much text are prepared on the loop. Counting
 * BPE tokens runs at ~20 MB/s (RelWithDebInfo), so 16 KiB costs under a
 * millisecond; handing a job to the pool and back costs ~0.1 ms. */
#define TT_CALL_PREPARE_INLINE_MAX (16 * 1024)

typedef enum tt_call_prep_step {
    TT_PREP_HASH = 1, /* input_hash: SHA-256 of the request, for log lines; the cache key */
    TT_PREP_FIT = 2,  /* drop the oldest turns over max_prompt_tokens */
    TT_PREP_TRIM = 4, /* drop the oldest quarter of the tokens (a context-length error) */
    TT_PREP_BODY = 8, /* body: the request in provider's wire format for model */
} tt_call_prep_step;

typedef struct tt_call_prep {
    /* in, set on the loop */
    unsigned steps;          /* tt_call_prep_step bits */
    tt_call_request *req;    /* the call's copy: the job's alone while it runs */
    const tt_tokenizer *tok; /* the model's encoding, or NULL: estimates */
    tt_token_cache *cache;
    int64_t max_prompt_tokens;
    tt_llm_provider provider;
    char model[TT_ROUTE_MODEL_MAX + 1];
    int64_t max_completion_tokens;
    /* out */
    int rc; /* 0, or why the body could not be built (invalid UTF-8 included) */
    char input_hash[65];
    size_t dropped; /* messages FIT or TRIM removed */
    char *body;     /* BODY; the caller frees it */
    size_t body_len;
    char body_sha256[65]; /* BODY for Bedrock: the body's hex SHA-256, which its signature needs */
} tt_call_prep;

/* Run the steps of p, in the order of the enum. Any thread. */
void tt_call_prep_run(tt_call_prep *p);

/* Would preparing req be done in the pool? */
int tt_call_prep_offloaded(const tt_call_request *req);

/* tt_llm_call_start_model() without the route's PII redaction (call.c);
 * route_redact.c's tt_llm_call_start_model() wraps it. */
int tt_llm_call_start_direct(tt_llm_service *s, const char *alias, const char *model,
                             const tt_llm_request *req, const tt_llm_call_hooks *hooks, void *ud,
                             tt_llm_call **out);

#endif
