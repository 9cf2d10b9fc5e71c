/* Token counts remembered by content (see token_cache.h). */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agents/llm/token_cache.h"
#include "protocol/errors.h"

typedef struct slot {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    int32_t encoding; /* tt_tokenizer_encoding; -1: empty */
    int64_t tokens;
} slot;

struct tt_token_cache {
    uv_mutex_t lock;
    tt_token_cache_stats stats;
    slot slots[TT_TOKEN_CACHE_SLOTS];
};

int tt_token_cache_new(tt_token_cache **out)
{
    tt_token_cache *c = calloc(1, sizeof *c);
    if (!c)
        return TT_ENOMEM;
    if (uv_mutex_init(&c->lock) != 0) {
        free(c);
        return TT_ENOMEM;
    }
    for (size_t i = 0; i < TT_TOKEN_CACHE_SLOTS; i++)
        c->slots[i].encoding = -1;
    *out = c;
    return 0;
}

void tt_token_cache_free(tt_token_cache *c)
{
    if (!c)
        return;
    uv_mutex_destroy(&c->lock);
    free(c);
}

static int64_t count_now(const tt_tokenizer *tok, const char *text, size_t len)
{
    size_t n = 0;
    if (tok && tt_tokenizer_count(tok, text, len, &n) == 0)
        return (int64_t)n;
    return (int64_t)tt_tokenizer_estimate(text, len);
}

int64_t tt_token_cache_count(tt_token_cache *c, const tt_tokenizer *tok, const char *text,
                             size_t len)
{
    if (!c || len < TT_TOKEN_CACHE_MIN_BYTES)
        return count_now(tok, text, len);
    int32_t enc = tok ? (int32_t)tt_tokenizer_get_encoding(tok) : TT_TOKENIZER_ESTIMATE;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, len, digest);
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    slot *s = &c->slots[(h ^ (uint64_t)enc) % TT_TOKEN_CACHE_SLOTS];
    uv_mutex_lock(&c->lock);
    if (s->encoding == enc && memcmp(s->digest, digest, sizeof digest) == 0) {
        int64_t tokens = s->tokens;
        c->stats.hits++;
        uv_mutex_unlock(&c->lock);
        return tokens;
    }
    uv_mutex_unlock(&c->lock);
    int64_t tokens = count_now(tok, text, len); /* outside the lock: the slow part */
    uv_mutex_lock(&c->lock);
    memcpy(s->digest, digest, sizeof digest);
    s->encoding = enc;
    s->tokens = tokens;
    c->stats.misses++;
    c->stats.miss_bytes += len;
    uv_mutex_unlock(&c->lock);
    return tokens;
}

void tt_token_cache_stats_get(tt_token_cache *c, tt_token_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    uv_mutex_lock(&c->lock);
    *out = c->stats;
    uv_mutex_unlock(&c->lock);
}
