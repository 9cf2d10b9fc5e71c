/* LMDB storage for sessions and their event logs.
 *
 * One environment (a directory), named databases:
 *   meta      "schema_version" -> "2"; other small keys (e.g. "jwt_secret")
 *   sessions  session id -> session record (JSON text, owned by state/session.c)
 *   events    id length (1 byte) + session id + 8-byte big-endian seq -> event
 *             (JSON text, the exact frame clients receive); the length byte
 *             keeps "s_1" and "s_10" in separate key ranges
 *   transcript  the same key with the entry's index (from 1) in place of the
 *             seq -> transcript entry (JSON): written once, when the entry
 *             is added, and deleted from the front when the transcript is
 *             trimmed; the session record keeps only the transcript's bounds
 *   owners    owner key (tt_owner_key: tenant 0x1f user) + '\0' + session
 *             id -> "" (lists one user's sessions without reading every
 *             stored session)
 *   active    session id -> "" (sessions whose agent was working; resumed at
 *             start-up, so start-up never scans every session)
 *
 * A full map (at map_size_max) and a full disk are both TT_EFULL.
 * Schema 2 added "transcript"; a schema-1 store is upgraded in place at open
 * (its records still carry their transcript inline: state/session.c reads
 * both and writes the new form).
 *
 * Writes happen in one write transaction per loop pass (group commit): the
 * caller passes a fill callback to tt_store_write(), which runs it inside a
 * transaction. When the map is full the transaction is aborted, the map grows
 * and the callback runs again from the start, so it must be replayable (it
 * must not clear its dirty state until tt_store_write() returned 0).
 *
 * Read callbacks (read_events, list_user) run inside a read transaction and
 * get pointers into the map. LMDB remaps the file to grow it, so while any
 * read callback runs the map does not grow: a tt_store_write() from inside one
 * that needs more room returns TT_EFULL (retry later). list_active copies the
 * ids first, so its callback may write freely.
 *
 * The store is used from the loop thread only. */
#ifndef TT_STORE_H
#define TT_STORE_H

#include <stddef.h>
#include <stdint.h>

#define TT_STORE_SCHEMA_VERSION 2
#define TT_SESSION_ID_MAX 64 /* bytes, excluding the terminator */

typedef struct tt_store tt_store;
typedef struct tt_store_txn tt_store_txn;

typedef enum tt_sync_policy {
    TT_SYNC_COMMIT,   /* fsync every commit: survives OS crash */
    TT_SYNC_PERIODIC, /* fsync from a timer (tt_store_sync): bounded loss on OS crash */
    TT_SYNC_NONE      /* never fsync: survives a process crash only */
} tt_sync_policy;

typedef struct tt_store_options {
    const char *path;    /* directory; created (mode 0700) if missing */
    size_t map_size;     /* initial map size in bytes; 0 means 64 MiB */
    size_t map_size_max; /* growth stops here (TT_EFULL); 0 means 1 TiB */
    tt_sync_policy sync;
    int64_t lock_wait_ms; /* wait up to this long for a lock another process holds
                             (an upgrade: the old process is handing over); 0: refuse */
} tt_store_options;

typedef struct tt_store_stats {
    uint64_t sessions;  /* entries in "sessions" */
    uint64_t events;    /* entries in "events" */
    size_t map_size;    /* current map size in bytes */
    size_t used_bytes;  /* pages in use * page size */
    uint64_t map_grows; /* times the map grew since open */
} tt_store_stats;

/* Open (creating if needed) the environment at opt->path. Refuses with
 * TT_ESCHEMA a store whose schema_version is neither TT_STORE_SCHEMA_VERSION
 * nor 1 (upgraded to TT_STORE_SCHEMA_VERSION), and
 * TT_EIO when the directory cannot be used: its parent is missing, it is not
 * a directory, or another open store (this process or another) holds its
 * lock file "tether.lock". TT_EINVAL when map_size > map_size_max. An existing
 * store keeps the map size it grew to. Caller closes with tt_store_close(). */
int tt_store_open(const tt_store_options *opt, tt_store **out);

/* The pid of the live process whose store holds the lock of the data
 * directory at path (written in "tether.lock" when it took it): 0, or
 * TT_ENOTFOUND when no process holds it, TT_EIO when the file holds no pid
 * (a lock taken by an older version). */
int tt_store_lock_holder(const char *path, long *pid);

/* Close the environment (after an fsync when the policy is not NONE). NULL is a no-op. */
void tt_store_close(tt_store *st);

/* Force data to disk, on the calling thread; used at shutdown. */
int tt_store_sync(tt_store *st);

/* The periodic sync in two halves, so the loop never waits for the disk.
 * tt_store_sync_fd (loop thread): the data file's descriptor to sync, or
 * TT_EIO when the store is broken. tt_store_fdsync (any thread, e.g. the
 * libuv pool): fdatasync that descriptor, which is what mdb_env_sync(env, 1)
 * does for an environment opened without MDB_WRITEMAP (ours) once it has
 * read the current meta page; the descriptor stays the same when the map
 * grows (mdb_env_set_mapsize remaps, and a meta read racing it on another
 * thread could touch the unmapped map, which is why the pool does not call
 * mdb_env_sync itself). Write transactions may commit meanwhile: under
 * MDB_NOSYNC LMDB never syncs by itself, so the fdatasync makes durable at
 * least what was committed before it began. The descriptor must stay open
 * until the fdatasync returns: tt_store_close only after it. */
int tt_store_sync_fd(tt_store *st, int *fd);
int tt_store_fdsync(int fd);

/* Run fill(txn, ctx) inside one write transaction and commit it. If fill
 * returns non-zero the transaction is aborted and that value returned. On
 * MDB_MAP_FULL the map grows (doubling, up to map_size_max) and fill runs
 * again; TT_EFULL when it cannot grow. An operation that failed in LMDB
 * spoils the transaction: it is aborted and that error returned even if fill
 * returned 0. Calling tt_store_write() from inside fill is TT_EINTERNAL.
 * Returns 0 on commit. */
typedef int (*tt_store_fill_fn)(tt_store_txn *txn, void *ctx);
int tt_store_write(tt_store *st, tt_store_fill_fn fill, void *ctx);

/* Operations valid only inside a fill callback (TT_EINTERNAL outside). Each
 * returns 0 or a tt_err; a fill callback should return the first error it
 * gets. TT_EINVAL (bad sid: empty or over TT_SESSION_ID_MAX) leaves the
 * transaction usable. */
int tt_store_put_event(tt_store_txn *txn, const char *sid, uint64_t seq, const char *json,
                       size_t len);
/* Write the record of sid and index it under user. A session's user never
 * changes: an owners entry is never moved. */
int tt_store_put_session(tt_store_txn *txn, const char *sid, const char *user, const char *json,
                         size_t len);
/* Delete every event of sid with seq < before (retention). */
int tt_store_trim_events(tt_store_txn *txn, const char *sid, uint64_t before);
/* Write transcript entry number index (from 1) of sid. */
int tt_store_put_transcript(tt_store_txn *txn, const char *sid, uint64_t index, const char *json,
                            size_t len);
/* Delete every transcript entry of sid with index < before. */
int tt_store_trim_transcript(tt_store_txn *txn, const char *sid, uint64_t before);
/* Mark or unmark sid as having a working agent. */
int tt_store_set_active(tt_store_txn *txn, const char *sid, int active);
/* Delete sid for good: its record, its owners entry under user, its active
 * mark, every event and every transcript entry. Absent pieces are no error. */
int tt_store_delete_session(tt_store_txn *txn, const char *sid, const char *user);
/* Put a meta key (small values only). */
int tt_store_put_meta(tt_store_txn *txn, const char *key, const char *val, size_t len);
/* Delete a meta key (absent: 0). store_meta.c. */
int tt_store_del_meta(tt_store_txn *txn, const char *key);

/* Read the session record of sid. *json is malloc'd and NUL-terminated;
 * caller frees it. TT_ENOTFOUND when absent. */
int tt_store_get_session(tt_store *st, const char *sid, char **json, size_t *len);

/* Call fn for every event of sid with seq > after, in order, at most max of
 * them (0 = no limit). fn's text is not NUL-terminated and is valid only
 * during the call; fn returns non-zero to stop early (that value is
 * returned). Returns 0 when done. */
typedef int (*tt_store_event_fn)(uint64_t seq, const char *json, size_t len, void *ctx);
int tt_store_read_events(tt_store *st, const char *sid, uint64_t after, size_t max,
                         tt_store_event_fn fn, void *ctx);

/* The same for the transcript entries of sid with index > after (seq in fn
 * is the entry's index). */
int tt_store_read_transcript(tt_store *st, const char *sid, uint64_t after, size_t max,
                             tt_store_event_fn fn, void *ctx);

/* The highest stored seq of sid into *seq (0 when it has no events). */
int tt_store_last_seq(tt_store *st, const char *sid, uint64_t *seq);

/* Call fn with the record of each session owned by user (order: session id).
 * sid is NUL-terminated; json is not, and is valid only during the call. */
typedef int (*tt_store_session_fn)(const char *sid, const char *json, size_t len, void *ctx);
int tt_store_list_user(tt_store *st, const char *user, tt_store_session_fn fn, void *ctx);

/* The same, for the sessions whose id sorts strictly after `after` (NULL or
 * "": from the first): pages of a listing. TT_EINVAL for a bad `after`. */
int tt_store_list_user_after(tt_store *st, const char *user, const char *after,
                             tt_store_session_fn fn, void *ctx);

/* How many sessions user owns, counting no further than max. */
int tt_store_count_user(tt_store *st, const char *user, uint64_t max, uint64_t *count);

/* Call fn with the id of each active session. json is NULL, len 0. */
int tt_store_list_active(tt_store *st, tt_store_session_fn fn, void *ctx);

/* Call fn with each meta key starting with prefix (in key order) and its
 * value; the key is NUL-terminated, the value is not and is valid only during
 * the call (a read transaction is open: fn must not write). store_meta.c. */
int tt_store_list_meta(tt_store *st, const char *prefix, tt_store_session_fn fn, void *ctx);

/* Read a meta key into a malloc'd NUL-terminated copy. TT_ENOTFOUND when absent. */
int tt_store_get_meta(tt_store *st, const char *key, char **val, size_t *len);

int tt_store_stats_get(tt_store *st, tt_store_stats *out);

#endif
