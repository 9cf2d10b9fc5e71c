/* The semantic cache's storage (agents/llm/semcache.h): per entry (a 32-byte
 * id), its partition key, expiry, vector and answer, in the named database
 * `semcache` (created when missing: no schema change):
 *   'v' + id -> expires (ms since the epoch, big-endian, 8) + partition (32)
 *               + dim (big-endian, 4) + dim floats (host order: the store
 *               is this machine's)
 *   'a' + id -> the answer (cache.h's encoding)
 * The entries in memory, their caps and eviction are the cache's (semindex.h);
 * this keeps them across restarts: tt_semstore_load() hands every entry back
 * at start-up.
 *
 * Writes never cost a transaction each: puts and deletes are queued in
 * memory and written by tt_semstore_flush() in one write transaction (the
 * server flushes on a timer, when the queue is full and at shutdown). A get
 * sees the puts still queued. */
#ifndef TT_SEMSTORE_H
#define TT_SEMSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define TT_SEMSTORE_KEY_LEN 32
#define TT_SEMSTORE_QUEUE_MAX 1024 /* queued operations before a flush is asked for */
#define TT_SEMSTORE_DIM_MAX 4096
#define TT_SEMSTORE_ANSWER_MAX ((size_t)64 << 20)

typedef struct tt_semstore tt_semstore;

typedef struct tt_semstore_stats {
    uint64_t puts, dels; /* written */
    uint64_t dropped;    /* queued operations lost while the store refused writes */
    uint64_t flush_errors;
} tt_semstore_stats;

int tt_semstore_new(tt_store *st, tt_semstore **out);
/* Write what is queued, then free. NULL is a no-op. */
void tt_semstore_free(tt_semstore *s);

/* Queue an entry (copied). 1 when the queue is full and the caller should
 * flush now, else 0; TT_EINVAL (dim 0 or over the max), TT_ETOOLARGE (an
 * answer over TT_SEMSTORE_ANSWER_MAX), TT_ENOMEM. */
int tt_semstore_put(tt_semstore *s, const unsigned char id[TT_SEMSTORE_KEY_LEN],
                    const unsigned char part[TT_SEMSTORE_KEY_LEN], int64_t expires_ms,
                    const float *vec, size_t dim, const char *data, size_t len);
/* Queue a delete: 1 when the queue is full, else 0. */
int tt_semstore_del(tt_semstore *s, const unsigned char id[TT_SEMSTORE_KEY_LEN]);
/* The answer of id when it has not expired at now_ms: 0 and *data (malloc'd)
 * and *len; TT_ENOTFOUND. */
int tt_semstore_get(tt_semstore *s, const unsigned char id[TT_SEMSTORE_KEY_LEN], int64_t now_ms,
                    char **data, size_t *len);

/* Every stored entry (flushed ones), in one read transaction (one chunk of
 * the reader below): fn returns 0 to go on; an entry that does not decode is skipped. Returns a
 * store error. */
typedef int (*tt_semstore_entry_fn)(const unsigned char *id, const unsigned char *part,
                                    int64_t expires_ms, const float *vec, size_t dim, void *ud);
int tt_semstore_load(tt_semstore *s, tt_semstore_entry_fn fn, void *ud);

/* The same, in chunks, off the loop (the server's start-up does not wait for
 * the entries: a lookup before they are in memory misses). Per chunk:
 * _chunk_begin on the loop takes a read transaction (counted as a reader, so
 * the map does not grow under it: keep chunks short); _chunk_read, on any one
 * thread, hands up to max entries after the last one read to fn and sets
 * c->done after the last entry; _chunk_end, on the loop, ends the
 * transaction. Both return a store error. */
typedef struct tt_semstore_chunk {
    void *txn;                                /* the chunk's read transaction */
    unsigned char after[TT_SEMSTORE_KEY_LEN]; /* the id of the last entry read */
    int started;                              /* after is set */
    int done;                                 /* every entry was read */
} tt_semstore_chunk;
int tt_semstore_chunk_begin(tt_semstore *s, tt_semstore_chunk *c);
int tt_semstore_chunk_read(tt_semstore *s, tt_semstore_chunk *c, size_t max,
                           tt_semstore_entry_fn fn, void *ud);
void tt_semstore_chunk_end(tt_semstore *s, tt_semstore_chunk *c);

size_t tt_semstore_queued(const tt_semstore *s);
/* Write every queued operation in one write transaction. On failure they stay
 * queued (the oldest are dropped past TT_SEMSTORE_QUEUE_MAX). */
int tt_semstore_flush(tt_semstore *s);
void tt_semstore_stats_get(const tt_semstore *s, tt_semstore_stats *out);

#endif
