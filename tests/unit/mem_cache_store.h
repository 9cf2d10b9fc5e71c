/* An in-memory store for the response cache of model calls
 * (agents/llm/cache.h tt_llm_cache_store) holding one entry, for the unit
 * tests of the cache and of calls through it: it counts gets and puts, keeps
 * the entry's expiry, and has a clock of its own (now) for mem_now. Static
 * helpers in a header because each test is its own program. */
#ifndef TT_TEST_MEM_CACHE_STORE_H
#define TT_TEST_MEM_CACHE_STORE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/cache.h"
#include "protocol/errors.h"

typedef struct mem {
    unsigned char key[TT_LLM_CACHE_KEY_LEN];
    char *data; /* the test frees it */
    size_t len;
    int64_t expires, now;
    int gets, puts;
} mem;

static inline int mem_get(void *ud, const unsigned char key[TT_LLM_CACHE_KEY_LEN], int64_t now,
                          char **data, size_t *len)
{
    mem *m = ud;
    m->gets++;
    if (!m->data || memcmp(key, m->key, sizeof m->key) != 0 || now >= m->expires)
        return TT_ENOTFOUND;
    *data = malloc(m->len);
    memcpy(*data, m->data, m->len);
    *len = m->len;
    return 0;
}

static inline int mem_put(void *ud, const unsigned char key[TT_LLM_CACHE_KEY_LEN], int64_t now,
                          int64_t ttl, const char *data, size_t len)
{
    mem *m = ud;
    m->puts++;
    free(m->data);
    memcpy(m->key, key, sizeof m->key);
    m->data = malloc(len);
    memcpy(m->data, data, len);
    m->len = len;
    m->expires = now + ttl;
    return 0;
}

static inline int64_t mem_now(void *ud)
{
    return ((mem *)ud)->now;
}

#endif
