/* The heavy part of getting a model call ready (call.c): hashing its
 * request for the log, counting its tokens to fit the route's budget or to
 * trim it after a context-length error, and building the provider's body.
 * All of it is linear in the request's text, and the text can be megabytes
 * (a gateway body, a long chat transcript): on a large request it runs in
 * libuv's thread pool, on a small one on the loop, where the pool's round
 * trip would cost more than the work.
 *
 * A job touches only itself, the request copy its call owns (which nothing
 * else reads or changes while the job runs), an immutable tokenizer and the
 * thread-safe token cache: it may run on any thread. */
#ifndef TT_CALL_PREPARE_H
#define TT_CALL_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/call_request.h"
#include "agents/llm/route.h"

/* Requests with at most this much text are prepared on the loop. Counting
 * BPE tokens runs at ~20 MB/s (RelWithDebInfo), so 16 KiB costs under a
 * millisecond; handing a job to the pool and back costs ~0.1 ms. */
#define TT_CALL_PREPARE_INLINE_MAX (16 * 1024)

typedef enum tt_call_prep_step {
    TT_PREP_HASH = 1, /* input_hash: SHA-256 of the request, for log lines */
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

#endif
