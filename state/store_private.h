/* Inside the store: the handle and the helpers shared by store.c (the
 * environment, transactions, sessions, owners, active, meta) and
 * store_log.c (the per-session logs: events and transcript). Nothing outside
 * state/store*.c includes this. */
#ifndef TT_STORE_PRIVATE_H
#define TT_STORE_PRIVATE_H

#include <lmdb.h>

#include "state/store.h"

#define KEY_BUF 512 /* LMDB's default max key size is 511 */
#define EV_KEY_MAX (1 + TT_SESSION_ID_MAX + 8)

struct tt_store_txn {
    tt_store *st;
    MDB_txn *mdb; /* non-NULL only while a fill callback runs */
    int map_full; /* an operation hit MDB_MAP_FULL: grow and replay */
    int err;      /* first LMDB failure; the transaction cannot commit after it */
};

struct tt_store {
    MDB_env *env;
    MDB_dbi meta, sessions, events, owners, active, transcript;
    MDB_dbi usage, usage_days;               /* the cost ledger (state/ledger.h) */
    MDB_dbi rcache, rcache_data, rcache_lru; /* the response cache (state/rcache.h) */
    MDB_dbi documents, chunks;               /* retrieval's documents (state/chunks.h) */
    MDB_dbi semcache;                        /* the semantic cache (state/semstore.h) */
    tt_store_txn txn;                        /* the write transaction, embedded: one at a time */
    MDB_txn *rd_idle; /* a reset read transaction, renewed by the next read */
    unsigned readers; /* read transactions open (a callback may hold pointers) */
    size_t maxkey;    /* min(LMDB's max key size, KEY_BUF) */
    size_t map_size;  /* current map size */
    size_t map_size_max;
    uint64_t map_grows;
    tt_sync_policy sync;
    int lock_fd;
    int broken; /* a failed remap left no usable map */
};

/* An LMDB result as a tt_err. */
int tt_store_from_mdb(int rc);
/* 0 and *len when sid is a usable session id, else TT_EINVAL. */
int tt_store_sid_check(const char *sid, size_t *len);
/* A read transaction, counted in st->readers until tt_store_rd_end(). */
int tt_store_rd_begin(tt_store *st, MDB_txn **out);
void tt_store_rd_end(tt_store *st, MDB_txn *t);
/* A read transaction and a cursor on dbi in it; close the cursor with
 * mdb_cursor_close() and end the transaction with tt_store_rd_end(). */
int tt_store_rd_cursor(tt_store *st, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **cur);
/* The end of a scan with tt_store_rd_cursor(): closes both. Returns rc, or
 * when rc is 0 the scan's last LMDB result mrc as a tt error (MDB_NOTFOUND,
 * the end of the range, is success). */
int tt_store_rd_cursor_end(tt_store *st, MDB_txn *txn, MDB_cursor *cur, int rc, int mrc);
/* 0 when txn is inside a fill callback and still usable, else its error. */
int tt_store_txn_ready(tt_store_txn *txn);
/* Records an LMDB failure in the transaction and returns its tt_err. */
int tt_store_txn_fail(tt_store_txn *txn, int rc);
int tt_store_txn_put(tt_store_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v,
                     size_t vlen);

#endif
