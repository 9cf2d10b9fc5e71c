/* The per-session logs in LMDB: "events" (seq -> event) and "transcript"
 * (index -> transcript entry). Both use the same key, [id length, 1 byte]
 * [id bytes][seq or index, 8 bytes BE] (see store.c for why), and the same
 * operations: append, trim from the front, read in order. */
#include <assert.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/store_private.h"

static void be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Writes the events key of (sid, seq) into buf; returns its length. The
 * first 1 + n bytes are the prefix shared by every event of sid. */
static size_t ev_key(unsigned char *buf, const char *sid, size_t n, uint64_t seq)
{
    buf[0] = (unsigned char)n;
    memcpy(buf + 1, sid, n);
    be64_put(buf + 1 + n, seq);
    return 1 + n + 8;
}

/* An events key belongs to sid when it has sid's prefix and exactly the
 * length of an events key of sid. */
static int ev_key_is(const MDB_val *k, const unsigned char *prefix, size_t plen)
{
    return k->mv_size == plen + 8 && memcmp(k->mv_data, prefix, plen) == 0;
}

static uint64_t ev_key_seq(const MDB_val *k)
{
    return be64_get((const unsigned char *)k->mv_data + k->mv_size - 8);
}

/* events and transcript are both logs of one session: keys as in ev_key()
 * (seq or index), values JSON. */
typedef enum log_kind { LOG_EVENTS, LOG_TRANSCRIPT } log_kind;

static MDB_dbi log_dbi(const tt_store *st, log_kind kind)
{
    return kind == LOG_EVENTS ? st->events : st->transcript;
}

static int log_put(tt_store_txn *txn, log_kind kind, const char *sid, uint64_t seq,
                   const char *json, size_t len)
{
    size_t n;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (tt_store_sid_check(sid, &n) || (!json && len))
        return TT_EINVAL;
    unsigned char k[EV_KEY_MAX];
    size_t klen = ev_key(k, sid, n, seq);
    return tt_store_txn_put(txn, log_dbi(txn->st, kind), k, klen, json ? json : "", len);
}

int tt_store_put_event(tt_store_txn *txn, const char *sid, uint64_t seq, const char *json,
                       size_t len)
{
    return log_put(txn, LOG_EVENTS, sid, seq, json, len);
}

int tt_store_put_transcript(tt_store_txn *txn, const char *sid, uint64_t index, const char *json,
                            size_t len)
{
    return log_put(txn, LOG_TRANSCRIPT, sid, index, json, len);
}

static int log_trim(tt_store_txn *txn, log_kind kind, const char *sid, uint64_t before)
{
    size_t n;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (tt_store_sid_check(sid, &n))
        return TT_EINVAL;
    unsigned char k[EV_KEY_MAX];
    size_t klen = ev_key(k, sid, n, 0);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn->mdb, log_dbi(txn->st, kind), &cur);
    if (rc)
        return tt_store_txn_fail(txn, rc);
    MDB_val key = {klen, k}, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && ev_key_is(&key, k, 1 + n) && ev_key_seq(&key) < before) {
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) /* after a delete, NEXT yields the item that followed */
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? tt_store_txn_fail(txn, rc) : 0;
}

int tt_store_trim_events(tt_store_txn *txn, const char *sid, uint64_t before)
{
    return log_trim(txn, LOG_EVENTS, sid, before);
}

int tt_store_trim_transcript(tt_store_txn *txn, const char *sid, uint64_t before)
{
    return log_trim(txn, LOG_TRANSCRIPT, sid, before);
}

static int log_read(tt_store *st, log_kind kind, const char *sid, uint64_t after, size_t max,
                    tt_store_event_fn fn, void *ctx)
{
    size_t n;
    if (!st || !fn || tt_store_sid_check(sid, &n))
        return TT_EINVAL;
    if (after == UINT64_MAX)
        return 0;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, log_dbi(st, kind), &t, &cur);
    if (rc)
        return rc;
    unsigned char k[EV_KEY_MAX];
    MDB_val key = {ev_key(k, sid, n, after + 1), k}, val;
    size_t count = 0;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (mrc == 0 && ev_key_is(&key, k, 1 + n) && (max == 0 || count < max)) {
        rc = fn(ev_key_seq(&key), val.mv_data, val.mv_size, ctx);
        if (rc)
            break;
        count++;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc);
}

int tt_store_read_events(tt_store *st, const char *sid, uint64_t after, size_t max,
                         tt_store_event_fn fn, void *ctx)
{
    return log_read(st, LOG_EVENTS, sid, after, max, fn, ctx);
}

int tt_store_read_transcript(tt_store *st, const char *sid, uint64_t after, size_t max,
                             tt_store_event_fn fn, void *ctx)
{
    return log_read(st, LOG_TRANSCRIPT, sid, after, max, fn, ctx);
}

int tt_store_last_seq(tt_store *st, const char *sid, uint64_t *seq)
{
    size_t n;
    if (!st || !seq || tt_store_sid_check(sid, &n))
        return TT_EINVAL;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->events, &t, &cur);
    if (rc)
        return rc;
    /* Land on the first key past sid's range (or its very last one), then
     * step back into the range. */
    unsigned char k[EV_KEY_MAX];
    MDB_val key = {ev_key(k, sid, n, UINT64_MAX), k}, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc == 0 && !ev_key_is(&key, k, 1 + n))
        rc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    *seq = 0;
    if (rc == 0 && ev_key_is(&key, k, 1 + n))
        *seq = ev_key_seq(&key);
    return tt_store_rd_cursor_end(st, t, cur, 0, rc);
}
