/* Token counts of long texts, remembered by content, so that a conversation
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
 * calls prepare their requests in libuv's thread pool, call.c). */
#ifndef TT_TOKEN_CACHE_H
#define TT_TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/tokenizer.h"

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

#endif
