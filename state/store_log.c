/* The per-session logs in LMDB: "events" (seq -> event) and "transcript"
 * (index -> transcript entry). Both use the same key, [id length, 1 byte]
 * [id bytes][seq or index, 8 bytes BE] (see store.c for why), and the same
 * operations: append, trim from the front, read in order. Below them, a
 * session's transcript as the group commit writes and a load reads it
 * (transcript.h). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/jsonw.h"
#include "state/store_private.h"
#include "state/transcript.h"

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

/* Delete sid's entries with from <= index < to. */
static int log_delete(tt_store_txn *txn, log_kind kind, const char *sid, uint64_t from, uint64_t to)
{
    size_t n;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (tt_store_sid_check(sid, &n))
        return TT_EINVAL;
    unsigned char k[EV_KEY_MAX];
    size_t klen = ev_key(k, sid, n, from);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn->mdb, log_dbi(txn->st, kind), &cur);
    if (rc)
        return tt_store_txn_fail(txn, rc);
    MDB_val key = {klen, k}, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && ev_key_is(&key, k, 1 + n) && ev_key_seq(&key) < to) {
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) /* after a delete, NEXT yields the item that followed */
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? tt_store_txn_fail(txn, rc) : 0;
}

static int log_trim(tt_store_txn *txn, log_kind kind, const char *sid, uint64_t before)
{
    return log_delete(txn, kind, sid, 0, before);
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

/* ---- A session's transcript in the store, append-only (transcript.h) ---- */

static uint64_t last_index(const tt_session *s)
{
    return s->transcript_first + tt_session_transcript_size(s) - 1;
}

int tt_transcript_prepare(const tt_session *s, tt_transcript_batch *b)
{
    assert(s->transcript_first >= 1 && s->transcript_stored_first <= s->transcript_first);
    assert(s->transcript_stored <= last_index(s));
    memset(b, 0, sizeof *b);
    b->first = s->transcript_first;
    b->end = last_index(s);
    b->stale = s->transcript_stale > b->end ? s->transcript_stale : 0;
    b->from = s->transcript_stored + 1 > s->transcript_first ? s->transcript_stored + 1
                                                             : s->transcript_first;
    uint64_t last = last_index(s);
    if (last < b->from)
        return 0;
    size_t n = (size_t)(last - b->from + 1);
    b->texts = calloc(n, sizeof *b->texts);
    b->lens = calloc(n, sizeof *b->lens);
    if (!b->texts || !b->lens)
        return TT_ENOMEM;
    /* Entries not stored yet are in memory: only stored ones are released. */
    if (b->from < s->transcript_mem_first)
        return TT_EINTERNAL;
    for (size_t i = 0; i < n; i++) {
        json_t *entry =
            json_array_get(s->transcript_mem, (size_t)(b->from - s->transcript_mem_first) + i);
        b->texts[i] = json_dumps(entry, JSON_COMPACT);
        if (!b->texts[i])
            return TT_ENOMEM;
        b->lens[i] = strlen(b->texts[i]);
        b->n++;
    }
    return 0;
}

int tt_transcript_write(tt_store_txn *txn, const tt_session *s, const tt_transcript_batch *b)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        rc = tt_store_put_transcript(txn, s->id, b->from + i, b->texts[i], b->lens[i]);
    if (rc == 0 && b->first > s->transcript_stored_first)
        rc = tt_store_trim_transcript(txn, s->id, b->first);
    if (rc == 0 && b->stale)
        rc = log_delete(txn, LOG_TRANSCRIPT, s->id, b->end + 1, b->stale + 1);
    return rc;
}

void tt_transcript_committed(tt_session *s, const tt_transcript_batch *b)
{
    if (b->n)
        s->transcript_stored = b->from + b->n - 1;
    s->transcript_stored_first = b->first;
    if (s->transcript_stale <= (b->stale ? b->stale : b->end))
        s->transcript_stale = 0; /* deleted, or written over */
}

void tt_transcript_batch_free(tt_transcript_batch *b)
{
    for (size_t i = 0; b->texts && i < b->n; i++)
        free(b->texts[i]);
    free(b->texts);
    free(b->lens);
    memset(b, 0, sizeof *b);
}

int tt_transcript_record_write(const tt_session *s, tt_buf *record)
{
    int rc = tt_buf_append(record, ",\"transcript_first\":", 20);
    if (rc == 0)
        rc = tt_jw_i64(record, (int64_t)s->transcript_first); /* json_int_t, as before */
    if (rc == 0)
        rc = tt_buf_append(record, ",\"transcript_count\":", 20);
    if (rc == 0)
        rc = tt_jw_i64(record, (int64_t)tt_session_transcript_size(s));
    return rc;
}

int tt_transcript_record_get(tt_session *s, json_t *record, int version)
{
    if (version == 1) {
        /* Inline (absent: empty), nothing in the transcript database yet. */
        json_t *inline_entries = json_object_get(record, "transcript");
        if (json_is_array(inline_entries)) {
            json_decref(s->transcript_mem);
            s->transcript_mem = json_incref(inline_entries);
            s->transcript_mem_bytes = tt_transcript_bytes(inline_entries);
        }
        s->transcript_first = s->transcript_stored_first = s->transcript_mem_first = 1;
        s->transcript_stored = 0;
        return 0;
    }
    json_int_t first = 0, count = -1;
    if (json_unpack(record, "{s:I, s:I}", "transcript_first", &first, "transcript_count", &count) !=
            0 ||
        first < 1 || count < 0 || first > INT64_MAX - count)
        return TT_EINVAL;
    json_array_clear(s->transcript_mem);
    s->transcript_mem_bytes = s->transcript_front_bytes = 0;
    s->transcript_first = s->transcript_stored_first = s->transcript_mem_first = (uint64_t)first;
    s->transcript_stored = (uint64_t)(first + count - 1);
    return 0;
}

typedef struct load_ctx {
    json_t *into;
    uint64_t next; /* the index the next entry must have */
} load_ctx;

static int load_one(uint64_t index, const char *json, size_t len, void *arg)
{
    load_ctx *lc = arg;
    json_t *entry = json_loadb(json, len, 0, NULL);
    if (index != lc->next || !json_is_object(entry)) {
        json_decref(entry);
        return TT_EINVAL;
    }
    lc->next++;
    return json_array_append_new(lc->into, entry) ? TT_ENOMEM : 0;
}

/* Entries [from, from + count) of s from the store, appended to into. */
static int read_entries(const tt_session *s, tt_store *st, uint64_t from, size_t count,
                        json_t *into)
{
    load_ctx lc = {into, from};
    size_t had = json_array_size(into);
    int rc = tt_store_read_transcript(st, s->id, from - 1, count, load_one, &lc);
    if (rc == 0 && json_array_size(into) != had + count)
        rc = TT_EINVAL;
    return rc;
}

int tt_transcript_load(tt_session *s, tt_store *st)
{
    if (s->transcript_stored < s->transcript_stored_first)
        return 0; /* empty, or a version-1 record (entries inline) */
    if (!s->transcript_mem && !(s->transcript_mem = json_array()))
        return TT_ENOMEM;
    size_t count = (size_t)(s->transcript_stored - s->transcript_stored_first + 1);
    int rc = read_entries(s, st, s->transcript_stored_first, count, s->transcript_mem);
    s->transcript_mem_bytes = tt_transcript_bytes(s->transcript_mem);
    return rc;
}

size_t tt_transcript_entry_bytes(const json_t *entry)
{
    return entry ? 64 + json_string_length(json_object_get(entry, "text")) : 0;
}

size_t tt_transcript_bytes(const json_t *entries)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(entries); i++)
        n += tt_transcript_entry_bytes(json_array_get(entries, i));
    return n;
}

int tt_transcript_read_front(const tt_session *s, tt_store *st, json_t **out)
{
    *out = json_array();
    if (!*out)
        return TT_ENOMEM;
    size_t count = (size_t)(s->transcript_mem_first - s->transcript_first);
    int rc = read_entries(s, st, s->transcript_first, count, *out);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
