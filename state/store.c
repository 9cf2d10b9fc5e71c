/* LMDB storage: the only file that talks to LMDB.
 *
 * Why it looks the way it does:
 * - Keys that must sort by seq are fixed-width big-endian. An events key is
 *   [id length, 1 byte][id bytes][seq, 8 bytes BE]: the length byte keeps ids
 *   that are prefixes of each other ("s_1", "s_10") in separate ranges, so a
 *   range scan never has to skip foreign keys. The logs keyed that way
 *   (events, transcript) live in store_log.c.
 * - Writes go through tt_store_write() only. An operation that hits
 *   MDB_MAP_FULL marks the transaction; tt_store_write() then aborts, doubles
 *   the map and replays the caller's fill callback from the start.
 * - LMDB unmaps and remaps the file when the map grows, so pointers handed to
 *   read callbacks would dangle if the map grew while one runs. The store
 *   counts open read transactions and refuses to grow (TT_EFULL, the caller
 *   retries later) while any is open.
 * - The environment is opened with MDB_NOTLS because a read callback may read
 *   again (list_user's callback asks for last_seq): each read is its own
 *   short read-only transaction, and one reset transaction is kept around to
 *   be renewed by the next read.
 * - A flock() on "tether.lock" keeps a second server (or a second open in the
 *   same process, which LMDB forbids) off the same directory. The file holds
 *   the pid of the process holding it: an upgrade's new process reads it to
 *   ask the old one to hand over, then waits for the lock (server/upgrade.c). */
#include "state/store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "state/store_private.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_MAP_SIZE_MAX ((size_t)1 << 40)
#define MAX_DBS 16 /* six today, room for cache/ledger/keys */
#define LOCK_NAME "tether.lock"
#define LOCK_POLL_MS 10 /* how often a start-up waiting for the lock tries again */

/* ---- helpers ---------------------------------------------------------- */

int tt_store_from_mdb(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return TT_ENOTFOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return TT_EFULL;
    case ENOSPC: /* the disk is full: as full as a map at its maximum */
    case EDQUOT:
        return TT_EFULL;
    case ENOMEM:
        return TT_ENOMEM;
    default:
        return TT_EIO;
    }
}

int tt_store_sid_check(const char *sid, size_t *len)
{
    if (!sid)
        return TT_EINVAL;
    size_t n = strnlen(sid, TT_SESSION_ID_MAX + 1);
    if (n == 0 || n > TT_SESSION_ID_MAX)
        return TT_EINVAL;
    *len = n;
    return 0;
}

/* ---- read transactions ------------------------------------------------ */

int tt_store_rd_begin(tt_store *st, MDB_txn **out)
{
    if (st->broken)
        return TT_EIO;
    MDB_txn *t = st->rd_idle;
    st->rd_idle = NULL;
    if (t && mdb_txn_renew(t) != 0) {
        mdb_txn_abort(t);
        t = NULL;
    }
    if (!t) {
        int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t);
        if (rc)
            return tt_store_from_mdb(rc);
    }
    st->readers++;
    *out = t;
    return 0;
}

void tt_store_rd_end(tt_store *st, MDB_txn *t)
{
    assert(st->readers > 0);
    st->readers--;
    if (st->rd_idle) {
        mdb_txn_abort(t);
        return;
    }
    mdb_txn_reset(t); /* void in LMDB */
    st->rd_idle = t;
}

int tt_store_rd_cursor(tt_store *st, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **cur)
{
    int rc = tt_store_rd_begin(st, txn);
    if (rc)
        return rc;
    rc = mdb_cursor_open(*txn, dbi, cur);
    if (rc) {
        tt_store_rd_end(st, *txn);
        return tt_store_from_mdb(rc);
    }
    return 0;
}

int tt_store_rd_cursor_end(tt_store *st, MDB_txn *txn, MDB_cursor *cur, int rc, int mrc)
{
    mdb_cursor_close(cur);
    tt_store_rd_end(st, txn);
    if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
        rc = tt_store_from_mdb(mrc);
    return rc;
}

static void rd_drop_idle(tt_store *st)
{
    if (st->rd_idle) {
        mdb_txn_abort(st->rd_idle);
        st->rd_idle = NULL;
    }
}

static int grow(tt_store *st);

/* ---- open / close ----------------------------------------------------- */

static int dir_prepare(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return TT_EIO;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return TT_EIO;
    return 0;
}

static int data_exists(const char *path)
{
    char name[4096];
    int n = snprintf(name, sizeof name, "%s/data.mdb", path);
    struct stat sb;
    return n > 0 && (size_t)n < sizeof name && stat(name, &sb) == 0;
}

static int lock_path(const char *path, char *name, size_t size)
{
    int n = snprintf(name, size, "%s/%s", path, LOCK_NAME);
    return n < 0 || (size_t)n >= size ? TT_EINVAL : 0;
}

/* The lock, waited for up to wait_ms while another process holds it (the
 * old process of an upgrade, closing; this runs at start-up, before the
 * loop). The holder's pid is written into the file, for the next upgrade
 * and for the message a second server gives. */
static int lock_take(const char *path, int64_t wait_ms, int *fd_out)
{
    char name[4096];
    if (lock_path(path, name, sizeof name))
        return TT_EINVAL;
    int fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return TT_EIO;
    struct timespec step = {.tv_sec = 0, .tv_nsec = LOCK_POLL_MS * 1000000L};
    for (int64_t waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += LOCK_POLL_MS) {
        if (errno != EWOULDBLOCK || waited >= wait_ms) {
            close(fd);
            return TT_EIO; /* another open store holds the directory */
        }
        (void)nanosleep(&step, NULL);
    }
    /* Our pid, for the message a second server gives (server/datadir.c);
     * a best effort: a full disk must not keep an existing store closed. */
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0)
        (void)!pwrite(fd, pid, (size_t)len, 0);
    *fd_out = fd;
    return 0;
}

int tt_store_lock_holder(const char *path, long *pid)
{
    char name[4096], text[24] = "";
    if (lock_path(path, name, sizeof name))
        return TT_EINVAL;
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return TT_ENOTFOUND;
    int rc = TT_ENOTFOUND;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        ssize_t n = pread(fd, text, sizeof text - 1, 0);
        char *end = NULL;
        long v = n > 0 ? strtol(text, &end, 10) : 0;
        rc = v > 1 && end && (*end == '\n' || *end == '\0') ? 0 : TT_EIO;
        *pid = rc == 0 ? v : 0;
    }
    close(fd); /* also drops a shared lock taken above */
    return rc;
}

/* A version-1 store is upgraded in place: version 2 only added the
 * transcript database; session.c still reads records that carry their
 * transcript inline, and moves it out when it next writes the record. */
static int schema_upgradable(const MDB_val *v)
{
    return v->mv_size == 1 && memcmp(v->mv_data, "1", 1) == 0;
}

/* Opens the named databases and checks or writes the schema version. */
static int schema_setup(tt_store *st)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(st->env, NULL, 0, &t);
    if (rc)
        return tt_store_from_mdb(rc);
    char want[24];
    int wlen = snprintf(want, sizeof want, "%d", TT_STORE_SCHEMA_VERSION);
    MDB_val k = {sizeof "schema_version" - 1, (void *)"schema_version"};
    MDB_val v;

    rc = mdb_dbi_open(t, "meta", MDB_CREATE, &st->meta);
    if (rc == 0) {
        rc = mdb_get(t, st->meta, &k, &v);
        int current =
            rc == 0 && v.mv_size == (size_t)wlen && !memcmp(v.mv_data, want, (size_t)wlen);
        if (rc == 0 && !current && !schema_upgradable(&v)) {
            mdb_txn_abort(t);
            return TT_ESCHEMA;
        }
        if ((rc == 0 && !current) || rc == MDB_NOTFOUND) {
            v.mv_size = (size_t)wlen;
            v.mv_data = want;
            rc = mdb_put(t, st->meta, &k, &v, 0);
        }
    }
    if (rc == 0)
        rc = mdb_dbi_open(t, "sessions", MDB_CREATE, &st->sessions);
    if (rc == 0)
        rc = mdb_dbi_open(t, "events", MDB_CREATE, &st->events);
    if (rc == 0)
        rc = mdb_dbi_open(t, "owners", MDB_CREATE, &st->owners);
    if (rc == 0)
        rc = mdb_dbi_open(t, "active", MDB_CREATE, &st->active);
    if (rc == 0)
        rc = mdb_dbi_open(t, "transcript", MDB_CREATE, &st->transcript);
    if (rc == 0)
        rc = mdb_dbi_open(t, "usage", MDB_CREATE, &st->usage);
    if (rc == 0)
        rc = mdb_dbi_open(t, "usage_days", MDB_CREATE, &st->usage_days);
    if (rc == 0) /* the response cache (store_rcache.c) */
        rc = mdb_dbi_open(t, "rcache", MDB_CREATE, &st->rcache);
    if (rc == 0)
        rc = mdb_dbi_open(t, "rcache_data", MDB_CREATE, &st->rcache_data);
    if (rc == 0)
        rc = mdb_dbi_open(t, "rcache_lru", MDB_CREATE, &st->rcache_lru);
    if (rc == 0) /* the semantic cache (store_semcache.c) */
        rc = mdb_dbi_open(t, "semcache", MDB_CREATE, &st->semcache);
    if (rc == 0)
        rc = mdb_dbi_open(t, "documents", MDB_CREATE, &st->documents);
    if (rc == 0)
        rc = mdb_dbi_open(t, "chunks", MDB_CREATE, &st->chunks);
    if (rc) {
        mdb_txn_abort(t);
        return rc == MDB_MAP_FULL ? TT_EFULL : TT_EIO;
    }
    rc = mdb_txn_commit(t);
    return rc == MDB_MAP_FULL ? TT_EFULL : rc ? TT_EIO : 0;
}

static size_t round_to_page(size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t p = pg > 0 ? (size_t)pg : 4096;
    return n % p ? n + (p - n % p) : n;
}

int tt_store_open(const tt_store_options *opt, tt_store **out)
{
    if (!opt || !out || !opt->path || !opt->path[0])
        return TT_EINVAL;
    size_t max = opt->map_size_max ? round_to_page(opt->map_size_max) : DEFAULT_MAP_SIZE_MAX;
    size_t initial = opt->map_size ? round_to_page(opt->map_size) : DEFAULT_MAP_SIZE;
    if (!opt->map_size && initial > max)
        initial = max;
    if (initial > max)
        return TT_EINVAL;
    if (opt->sync != TT_SYNC_COMMIT && opt->sync != TT_SYNC_PERIODIC && opt->sync != TT_SYNC_NONE)
        return TT_EINVAL;

    tt_store *st = calloc(1, sizeof *st);
    if (!st)
        return TT_ENOMEM;
    st->lock_fd = -1;
    st->sync = opt->sync;
    st->map_size_max = max;
    st->txn.st = st;

    int rc = dir_prepare(opt->path);
    if (rc == 0)
        rc = lock_take(opt->path, opt->lock_wait_ms, &st->lock_fd);
    if (rc)
        goto fail;
    rc = TT_EIO;
    if (mdb_env_create(&st->env) != 0) {
        st->env = NULL;
        goto fail;
    }
    if (mdb_env_set_maxdbs(st->env, MAX_DBS) != 0)
        goto fail;
    /* A new store starts at the configured size. An existing one is opened
     * without a size so that it keeps the size it grew to (raised to the
     * configured size if smaller) instead of growing again from scratch. */
    if (!data_exists(opt->path) && mdb_env_set_mapsize(st->env, initial) != 0)
        goto fail;
    unsigned flags = MDB_NOTLS | (opt->sync == TT_SYNC_COMMIT ? 0 : MDB_NOSYNC);
    if (mdb_env_open(st->env, opt->path, flags, 0600) != 0)
        goto fail;
    int dead;
    if (mdb_reader_check(st->env, &dead) != 0) /* slots left by a crashed process */
        goto fail;

    MDB_envinfo info;
    if (mdb_env_info(st->env, &info) != 0)
        goto fail;
    st->map_size = info.me_mapsize;
    if (st->map_size < initial) {
        if (mdb_env_set_mapsize(st->env, initial) != 0)
            goto fail;
        st->map_size = initial;
    }
    int mk = mdb_env_get_maxkeysize(st->env);
    st->maxkey = mk > 0 && (size_t)mk < KEY_BUF ? (size_t)mk : KEY_BUF;

    while ((rc = schema_setup(st)) == TT_EFULL && grow(st) == 0)
        ; /* a map too small even for the databases themselves */
    if (rc)
        goto fail;
    *out = st;
    return 0;

fail:
    if (st->env)
        mdb_env_close(st->env);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    free(st);
    return rc;
}

void tt_store_close(tt_store *st)
{
    if (!st)
        return;
    assert(st->readers == 0 && !st->txn.mdb);
    rd_drop_idle(st);
    if (st->sync != TT_SYNC_NONE && !st->broken)
        (void)mdb_env_sync(
            st->env, 1); /* at close no one is left to tell: a failure loses what a crash would */
    mdb_env_close(st->env);
    close(st->lock_fd);
    free(st);
}

int tt_store_sync(tt_store *st)
{
    if (!st)
        return TT_EINVAL;
    if (st->broken)
        return TT_EIO;
    return mdb_env_sync(st->env, 1) ? TT_EIO : 0;
}

int tt_store_sync_fd(tt_store *st, int *fd)
{
    if (!st || !fd)
        return TT_EINVAL;
    if (st->broken)
        return TT_EIO;
    mdb_filehandle_t h;
    if (mdb_env_get_fd(st->env, &h) != 0)
        return TT_EIO;
    *fd = h;
    return 0;
}

int tt_store_fdsync(int fd)
{
    int rc;
    do
        rc = fdatasync(fd);
    while (rc != 0 && errno == EINTR);
    return rc ? TT_EIO : 0;
}

/* ---- writes ----------------------------------------------------------- */

/* Doubles the map, up to map_size_max. Only when no transaction of this
 * process is open: LMDB remaps, and open readers would keep stale pointers. */
static int grow(tt_store *st)
{
    if (st->readers > 0 || st->map_size >= st->map_size_max)
        return TT_EFULL;
    size_t next = st->map_size > st->map_size_max / 2 ? st->map_size_max : st->map_size * 2;
    rd_drop_idle(st);
    int rc = mdb_env_set_mapsize(st->env, next);
    if (rc == EINVAL)
        return TT_EINTERNAL; /* a write transaction is open: nothing was unmapped */
    if (rc) {
        /* LMDB unmapped the old map before failing to map the new one. */
        st->broken = 1;
        return TT_EIO;
    }
    st->map_size = next;
    st->map_grows++;
    return 0;
}

int tt_store_write(tt_store *st, tt_store_fill_fn fill, void *ctx)
{
    if (!st || !fill)
        return TT_EINVAL;
    if (st->txn.mdb)
        return TT_EINTERNAL; /* called from inside a fill callback */
    if (st->broken)
        return TT_EIO;
    tt_store_txn *txn = &st->txn;
    for (;;) {
        txn->map_full = 0;
        txn->err = 0;
        int rc = mdb_txn_begin(st->env, NULL, 0, &txn->mdb);
        if (rc) {
            txn->mdb = NULL;
            return tt_store_from_mdb(rc);
        }
        int frc = fill(txn, ctx);
        if (frc || txn->map_full || txn->err) {
            mdb_txn_abort(txn->mdb);
            txn->mdb = NULL;
            if (!txn->map_full)
                return frc ? frc : txn->err;
        } else {
            rc = mdb_txn_commit(txn->mdb); /* frees the transaction, even on failure */
            txn->mdb = NULL;
            if (rc == 0)
                return 0;
            if (rc != MDB_MAP_FULL)
                return tt_store_from_mdb(rc);
        }
        rc = grow(st);
        if (rc)
            return rc;
    }
}

/* Records an LMDB failure in the transaction and returns its tt_err. */
int tt_store_txn_fail(tt_store_txn *txn, int rc)
{
    if (rc == MDB_MAP_FULL)
        txn->map_full = 1;
    else if (!txn->err)
        txn->err = tt_store_from_mdb(rc);
    return tt_store_from_mdb(rc);
}

int tt_store_txn_ready(tt_store_txn *txn)
{
    if (!txn || !txn->mdb)
        return TT_EINTERNAL; /* used outside a fill callback */
    if (txn->map_full)
        return TT_EFULL;
    return txn->err;
}

int tt_store_txn_put(tt_store_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v,
                     size_t vlen)
{
    MDB_val key = {klen, (void *)k};
    MDB_val val = {vlen, (void *)v};
    int rc = mdb_put(txn->mdb, dbi, &key, &val, 0);
    return rc ? tt_store_txn_fail(txn, rc) : 0;
}

int tt_store_put_session(tt_store_txn *txn, const char *sid, const char *user, const char *json,
                         size_t len)
{
    size_t n;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (tt_store_sid_check(sid, &n) || !user || (!json && len))
        return TT_EINVAL;
    size_t ulen = strlen(user);
    if (ulen + 1 + n > txn->st->maxkey)
        return TT_EINVAL;
    char k[KEY_BUF];
    memcpy(k, user, ulen);
    k[ulen] = '\0';
    memcpy(k + ulen + 1, sid, n);
    rc = tt_store_txn_put(txn, txn->st->sessions, sid, n, json ? json : "", len);
    if (rc == 0)
        rc = tt_store_txn_put(txn, txn->st->owners, k, ulen + 1 + n, "", 0);
    return rc;
}

int tt_store_set_active(tt_store_txn *txn, const char *sid, int active)
{
    size_t n;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (tt_store_sid_check(sid, &n))
        return TT_EINVAL;
    if (active)
        return tt_store_txn_put(txn, txn->st->active, sid, n, "", 0);
    MDB_val key = {n, (void *)sid};
    rc = mdb_del(txn->mdb, txn->st->active, &key, NULL);
    return rc && rc != MDB_NOTFOUND ? tt_store_txn_fail(txn, rc) : 0;
}

static int del_key(tt_store_txn *txn, MDB_dbi dbi, const void *k, size_t n)
{
    MDB_val key = {n, (void *)k};
    int rc = mdb_del(txn->mdb, dbi, &key, NULL);
    return rc && rc != MDB_NOTFOUND ? tt_store_txn_fail(txn, rc) : 0;
}

int tt_store_delete_session(tt_store_txn *txn, const char *sid, const char *user)
{
    size_t n;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (tt_store_sid_check(sid, &n) || !user)
        return TT_EINVAL;
    size_t ulen = strlen(user);
    if (ulen + 1 + n > txn->st->maxkey)
        return TT_EINVAL;
    char k[KEY_BUF];
    memcpy(k, user, ulen);
    k[ulen] = '\0';
    memcpy(k + ulen + 1, sid, n);
    rc = del_key(txn, txn->st->sessions, sid, n);
    if (rc == 0)
        rc = del_key(txn, txn->st->owners, k, ulen + 1 + n);
    if (rc == 0)
        rc = tt_store_set_active(txn, sid, 0);
    if (rc == 0)
        rc = tt_store_trim_events(txn, sid, UINT64_MAX);
    if (rc == 0)
        rc = tt_store_trim_transcript(txn, sid, UINT64_MAX);
    return rc;
}

int tt_store_put_meta(tt_store_txn *txn, const char *key, const char *val, size_t len)
{
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (!key || !key[0] || strlen(key) > txn->st->maxkey || (!val && len))
        return TT_EINVAL;
    return tt_store_txn_put(txn, txn->st->meta, key, strlen(key), val ? val : "", len);
}

/* ---- reads ------------------------------------------------------------ */

static int get_copy(tt_store *st, MDB_dbi dbi, const void *k, size_t klen, char **out, size_t *len)
{
    MDB_txn *t;
    int rc = tt_store_rd_begin(st, &t);
    if (rc)
        return rc;
    MDB_val key = {klen, (void *)k}, val;
    rc = tt_store_from_mdb(mdb_get(t, dbi, &key, &val));
    if (rc == 0) {
        char *copy = malloc(val.mv_size + 1);
        if (copy) {
            memcpy(copy, val.mv_data, val.mv_size);
            copy[val.mv_size] = '\0';
            *out = copy;
            if (len)
                *len = val.mv_size;
        } else {
            rc = TT_ENOMEM;
        }
    }
    tt_store_rd_end(st, t);
    return rc;
}

int tt_store_get_session(tt_store *st, const char *sid, char **json, size_t *len)
{
    size_t n;
    if (!st || !json || tt_store_sid_check(sid, &n))
        return TT_EINVAL;
    return get_copy(st, st->sessions, sid, n, json, len);
}

int tt_store_get_meta(tt_store *st, const char *key, char **val, size_t *len)
{
    if (!st || !val || !key || !key[0] || strlen(key) > st->maxkey)
        return TT_EINVAL;
    return get_copy(st, st->meta, key, strlen(key), val, len);
}

int tt_store_list_user(tt_store *st, const char *user, tt_store_session_fn fn, void *ctx)
{
    return tt_store_list_user_after(st, user, NULL, fn, ctx);
}

int tt_store_list_user_after(tt_store *st, const char *user, const char *after,
                             tt_store_session_fn fn, void *ctx)
{
    size_t alen = 0;
    if (!st || !user || !fn || (after && after[0] && tt_store_sid_check(after, &alen) != 0))
        return TT_EINVAL;
    size_t plen = strlen(user) + 1; /* the terminator ends the user part */
    if (plen + alen > st->maxkey)
        return TT_EINVAL;
    char start[KEY_BUF]; /* user, its terminator, then `after`: where the scan starts */
    memcpy(start, user, plen);
    memcpy(start + plen, after ? after : "", alen);

    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->owners, &t, &cur);
    if (rc)
        return rc;
    MDB_val key = {plen + alen, start}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (mrc == 0 && alen && key.mv_size == plen + alen &&
        memcmp(key.mv_data, start, plen + alen) == 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT); /* strictly after `after` */
    while (mrc == 0 && key.mv_size >= plen && memcmp(key.mv_data, start, plen) == 0) {
        size_t n = key.mv_size - plen;
        char sid[TT_SESSION_ID_MAX + 1];
        if (n >= 1 && n <= TT_SESSION_ID_MAX) {
            memcpy(sid, (const char *)key.mv_data + plen, n);
            sid[n] = '\0';
            MDB_val skey = {n, sid}, rec;
            mrc = mdb_get(t, st->sessions, &skey, &rec);
            if (mrc == 0) {
                rc = fn(sid, rec.mv_data, rec.mv_size, ctx);
                if (rc)
                    break;
            } else if (mrc != MDB_NOTFOUND) {
                break;
            } /* no record: a stale owner entry, skipped */
        }
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc);
}

typedef struct count_ctx {
    uint64_t n, max;
} count_ctx;

#define COUNT_REACHED 1 /* count_one's "stop here", not an error */

static int count_one(const char *sid, const char *json, size_t len, void *arg)
{
    count_ctx *cc = arg;
    return ++cc->n >= cc->max ? COUNT_REACHED : 0;
}

int tt_store_count_user(tt_store *st, const char *user, uint64_t max, uint64_t *count)
{
    count_ctx cc = {0, max};
    int rc = max ? tt_store_list_user_after(st, user, NULL, count_one, &cc) : 0;
    *count = cc.n;
    return rc == COUNT_REACHED ? 0 : rc;
}

/* The active set is small (sessions whose agent is working), and resuming
 * one does real work, possibly writes: so the ids are copied out and the
 * read transaction ended before fn runs. */
int tt_store_list_active(tt_store *st, tt_store_session_fn fn, void *ctx)
{
    if (!st || !fn)
        return TT_EINVAL;
    MDB_txn *t;
    int rc = tt_store_rd_begin(st, &t);
    if (rc)
        return rc;
    MDB_stat ms;
    MDB_cursor *cur = NULL;
    char(*ids)[TT_SESSION_ID_MAX + 1] = NULL;
    size_t count = 0;
    rc = mdb_stat(t, st->active, &ms);
    if (rc == 0)
        rc = mdb_cursor_open(t, st->active, &cur);
    if (rc) {
        tt_store_rd_end(st, t);
        return tt_store_from_mdb(rc);
    }
    ids = malloc((ms.ms_entries ? ms.ms_entries : 1) * sizeof *ids);
    if (!ids) {
        mdb_cursor_close(cur);
        tt_store_rd_end(st, t);
        return TT_ENOMEM;
    }
    MDB_val key, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (mrc == 0 && count < ms.ms_entries) {
        if (key.mv_size > 0 && key.mv_size <= TT_SESSION_ID_MAX) {
            memcpy(ids[count], key.mv_data, key.mv_size);
            ids[count][key.mv_size] = '\0';
            count++;
        }
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    tt_store_rd_end(st, t);
    rc = mrc && mrc != MDB_NOTFOUND ? tt_store_from_mdb(mrc) : 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = fn(ids[i], NULL, 0, ctx);
    free(ids);
    return rc;
}

int tt_store_stats_get(tt_store *st, tt_store_stats *out)
{
    if (!st || !out)
        return TT_EINVAL;
    MDB_txn *t;
    int rc = tt_store_rd_begin(st, &t);
    if (rc)
        return rc;
    MDB_stat ss, es, envst;
    MDB_envinfo info;
    rc = mdb_stat(t, st->sessions, &ss);
    if (rc == 0)
        rc = mdb_stat(t, st->events, &es);
    if (rc == 0)
        rc = mdb_env_stat(st->env, &envst);
    if (rc == 0)
        rc = mdb_env_info(st->env, &info);
    tt_store_rd_end(st, t);
    if (rc)
        return tt_store_from_mdb(rc);
    out->sessions = ss.ms_entries;
    out->events = es.ms_entries;
    out->map_size = info.me_mapsize;
    out->used_bytes = (info.me_last_pgno + 1) * (size_t)envst.ms_psize;
    out->map_grows = st->map_grows;
    return 0;
}
