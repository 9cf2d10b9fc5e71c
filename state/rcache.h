/* The response cache's storage: opaque answers by a 32-byte key (the
 * SHA-256 of a canonical request, agents/llm/cache.h), with a time to live,
 * a hit counter per entry, and caps on bytes and entries enforced by
 * evicting the least recently used entries.
 *
 * Reads are a read transaction on the loop (the answer is copied out).
 * Writes never cost a transaction each: a put, a hit (its counter and its
 * place in the LRU order) and the removal of an expired entry are queued in
 * memory and written by tt_rcache_flush() in one write transaction, as the
 * ledger's rows are (the server flushes on a timer and when the queue is
 * full). A get sees the puts still queued.
 *
 * Three named databases, created when missing (no schema change):
 *   rcache       key -> header: created, expires, last used (ms since the
 *                epoch, big-endian), hits, answer bytes
 *   rcache_data  key -> the answer
 *   rcache_lru   big-endian last used + key -> "" (the eviction order), and
 *                one record TOTALS_KEY -> entries and bytes, kept in the
 *                transaction that changes them
 * An entry counts its key, header, LRU record and answer against max_bytes.
 * A flush evicts at most 4096 entries (caps lowered at a restart are
 * reached over the next flushes, never in one long transaction).
 * Expired entries are refused by a get and removed by the next flush; each
 * flush also removes expired entries from the head of the LRU order (at
 * most 64), and the caps evict the rest of those never asked for again. */
#ifndef TT_RCACHE_H
#define TT_RCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define TT_RCACHE_KEY_LEN 32
#define TT_RCACHE_QUEUE_MAX 1024 /* queued operations before a flush is asked for */
#define TT_RCACHE_ENTRY_OVERHEAD (3 * TT_RCACHE_KEY_LEN + 8 + 40)

typedef struct tt_rcache tt_rcache;

typedef struct tt_rcache_limits {
    uint64_t max_bytes;       /* evict past this (entries' bytes, see above) */
    uint64_t max_entries;     /* evict past this many entries */
    uint64_t entry_max_bytes; /* a larger answer is refused (TT_ETOOLARGE) */
} tt_rcache_limits;

typedef struct tt_rcache_stats {
    uint64_t entries, bytes; /* in the store, as of the last flush */
    uint64_t evictions;      /* entries removed to stay under the caps */
    uint64_t expired;        /* expired entries removed */
    uint64_t puts;           /* answers written */
    uint64_t dropped;        /* queued operations lost while the store refused writes */
    uint64_t flush_errors;
} tt_rcache_stats;

/* limits must be non-zero. TT_EINVAL, TT_ENOMEM, or a store error reading
 * the totals. */
int tt_rcache_new(tt_store *st, const tt_rcache_limits *limits, tt_rcache **out);
/* Write what is queued, then free. NULL is a no-op. */
void tt_rcache_free(tt_rcache *c);

/* The answer under key when it has not expired at now_ms: 0 and *data
 * (malloc'd copy, the caller frees) and *len; the hit is queued (the entry's
 * counter, its LRU place). TT_ENOTFOUND when absent or expired (an expired
 * one is queued for removal). */
int tt_rcache_get(tt_rcache *c, const unsigned char key[TT_RCACHE_KEY_LEN], int64_t now_ms,
                  char **data, size_t *len);

/* Queue an answer (copied) to keep until now_ms + ttl_ms. 1 when the queue
 * is full and the caller should flush now, else 0; TT_ETOOLARGE past
 * entry_max_bytes, TT_EINVAL for ttl_ms <= 0, TT_ENOMEM. */
int tt_rcache_put(tt_rcache *c, const unsigned char key[TT_RCACHE_KEY_LEN], int64_t now_ms,
                  int64_t ttl_ms, const char *data, size_t len);

/* The hits of an entry, as of the last flush: 0 and *hits, or TT_ENOTFOUND. */
int tt_rcache_hits(tt_rcache *c, const unsigned char key[TT_RCACHE_KEY_LEN], uint64_t *hits);

size_t tt_rcache_queued(const tt_rcache *c);
/* Write every queued operation, then evict past the caps, in one write
 * transaction. On failure the operations stay queued (the oldest are dropped
 * past TT_RCACHE_QUEUE_MAX) and the store's error is returned. */
int tt_rcache_flush(tt_rcache *c);
void tt_rcache_stats_get(const tt_rcache *c, tt_rcache_stats *out);

#endif
