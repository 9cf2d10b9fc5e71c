/* The semantic cache's storage (see semstore.h): a queue of puts and deletes
 * in memory, written in one write transaction. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/semstore.h"
#include "state/store_private.h"

#define KEY_LEN (1 + TT_SEMSTORE_KEY_LEN)
#define VHEAD (8 + TT_SEMSTORE_KEY_LEN + 4)

typedef struct op {
    unsigned char id[TT_SEMSTORE_KEY_LEN];
    int put;
    int64_t expires_ms;
    unsigned char *vrec; /* put: the 'v' record */
    size_t vlen;
    char *data; /* put: the answer */
    size_t len;
} op;

struct tt_semstore {
    tt_store *st;
    op *queue; /* TT_SEMSTORE_QUEUE_MAX, allocated once */
    size_t n;
    tt_semstore_stats stats;
};

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void key_of(unsigned char out[KEY_LEN], char kind, const unsigned char *id)
{
    out[0] = (unsigned char)kind;
    memcpy(out + 1, id, TT_SEMSTORE_KEY_LEN);
}

int tt_semstore_new(tt_store *st, tt_semstore **out)
{
    if (!st)
        return TT_EINVAL;
    tt_semstore *s = calloc(1, sizeof *s);
    if (s)
        s->queue = calloc(TT_SEMSTORE_QUEUE_MAX, sizeof *s->queue);
    if (!s || !s->queue) {
        free(s);
        return TT_ENOMEM;
    }
    s->st = st;
    *out = s;
    return 0;
}

static void op_clear(op *o)
{
    free(o->vrec);
    free(o->data);
    o->vrec = NULL;
    o->data = NULL;
}

void tt_semstore_free(tt_semstore *s)
{
    if (!s)
        return;
    (void)tt_semstore_flush(s);
    for (size_t i = 0; i < s->n; i++)
        op_clear(&s->queue[i]);
    free(s->queue);
    free(s);
}

static int enqueue(tt_semstore *s, const op *o)
{
    if (s->n == TT_SEMSTORE_QUEUE_MAX) { /* the store refuses writes: the oldest goes */
        op_clear(&s->queue[0]);
        memmove(s->queue, s->queue + 1, (s->n - 1) * sizeof *s->queue);
        s->n--;
        s->stats.dropped++;
    }
    s->queue[s->n++] = *o;
    return s->n == TT_SEMSTORE_QUEUE_MAX;
}

int tt_semstore_put(tt_semstore *s, const unsigned char id[TT_SEMSTORE_KEY_LEN],
                    const unsigned char part[TT_SEMSTORE_KEY_LEN], int64_t expires_ms,
                    const float *vec, size_t dim, const char *data, size_t len)
{
    if (!s || dim == 0 || dim > TT_SEMSTORE_DIM_MAX || !vec || (!data && len))
        return TT_EINVAL;
    if (len > TT_SEMSTORE_ANSWER_MAX)
        return TT_ETOOLARGE;
    op o = {.put = 1, .expires_ms = expires_ms, .vlen = VHEAD + dim * sizeof(float), .len = len};
    memcpy(o.id, id, TT_SEMSTORE_KEY_LEN);
    o.vrec = malloc(o.vlen);
    o.data = malloc(len ? len : 1);
    if (!o.vrec || !o.data) {
        op_clear(&o);
        return TT_ENOMEM;
    }
    be64(o.vrec, (uint64_t)expires_ms);
    memcpy(o.vrec + 8, part, TT_SEMSTORE_KEY_LEN);
    for (int i = 0; i < 4; i++)
        o.vrec[8 + TT_SEMSTORE_KEY_LEN + i] = (unsigned char)(dim >> (24 - 8 * i));
    memcpy(o.vrec + VHEAD, vec, dim * sizeof(float));
    memcpy(o.data, data ? data : "", len);
    return enqueue(s, &o);
}

int tt_semstore_del(tt_semstore *s, const unsigned char id[TT_SEMSTORE_KEY_LEN])
{
    if (!s)
        return TT_EINVAL;
    op o = {.put = 0};
    memcpy(o.id, id, TT_SEMSTORE_KEY_LEN);
    return enqueue(s, &o);
}

static int copy_out(const void *src, size_t len, char **data, size_t *n)
{
    *data = malloc(len ? len : 1);
    if (!*data)
        return TT_ENOMEM;
    memcpy(*data, src, len);
    *n = len;
    return 0;
}

int tt_semstore_get(tt_semstore *s, const unsigned char id[TT_SEMSTORE_KEY_LEN], int64_t now_ms,
                    char **data, size_t *len)
{
    if (!s)
        return TT_ENOTFOUND;
    for (size_t i = s->n; i-- > 0;) /* the newest queued operation on id wins */
        if (memcmp(s->queue[i].id, id, TT_SEMSTORE_KEY_LEN) == 0) {
            const op *o = &s->queue[i];
            if (!o->put || o->expires_ms <= now_ms)
                return TT_ENOTFOUND;
            return copy_out(o->data, o->len, data, len);
        }
    MDB_txn *t;
    int rc = tt_store_rd_begin(s->st, &t);
    if (rc)
        return rc;
    unsigned char vk[KEY_LEN], ak[KEY_LEN];
    key_of(vk, 'v', id);
    key_of(ak, 'a', id);
    MDB_val k = {KEY_LEN, vk}, v;
    int mrc = mdb_get(t, s->st->semcache, &k, &v);
    if (mrc == 0 && (v.mv_size < VHEAD || (int64_t)rd64(v.mv_data) <= now_ms))
        mrc = MDB_NOTFOUND;
    k.mv_data = ak;
    if (mrc == 0 && (mrc = mdb_get(t, s->st->semcache, &k, &v)) == 0)
        rc = copy_out(v.mv_data, v.mv_size, data, len);
    tt_store_rd_end(s->st, t);
    if (rc == 0 && mrc)
        rc = mrc == MDB_NOTFOUND ? TT_ENOTFOUND : tt_store_from_mdb(mrc);
    return rc;
}

int tt_semstore_chunk_begin(tt_semstore *s, tt_semstore_chunk *c)
{
    if (s->st->broken)
        return TT_EIO;
    MDB_txn *t;
    int rc = mdb_txn_begin(s->st->env, NULL, MDB_RDONLY, &t);
    if (rc)
        return tt_store_from_mdb(rc);
    s->st->readers++; /* no map growth while it is open (store.c) */
    c->txn = t;
    return 0;
}

void tt_semstore_chunk_end(tt_semstore *s, tt_semstore_chunk *c)
{
    if (!c->txn)
        return;
    mdb_txn_abort(c->txn);
    c->txn = NULL;
    s->st->readers--;
}

/* Touches nothing of s but its store's environment and database handles,
 * which do not change while it is open: safe on a thread of the pool. */
int tt_semstore_chunk_read(tt_semstore *s, tt_semstore_chunk *c, size_t max,
                           tt_semstore_entry_fn fn, void *ud)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->txn, s->st->semcache, &cur);
    if (rc)
        return tt_store_from_mdb(rc);
    unsigned char from[KEY_LEN];
    key_of(from, 'v', c->after);
    MDB_val k = {c->started ? KEY_LEN : 1, from}, v;
    float *vec = malloc(TT_SEMSTORE_DIM_MAX * sizeof *vec);
    int mrc = vec ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    if (mrc == 0 && c->started && k.mv_size == KEY_LEN && memcmp(k.mv_data, from, KEY_LEN) == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* read in the chunk before */
    rc = vec ? 0 : TT_ENOMEM;
    size_t n = 0;
    for (; rc == 0 && mrc == 0 && n < max; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
        const unsigned char *kp = k.mv_data, *p = v.mv_data;
        if (k.mv_size < 1 || kp[0] != 'v')
            break;
        if (k.mv_size != KEY_LEN)
            continue;
        memcpy(c->after, kp + 1, TT_SEMSTORE_KEY_LEN);
        c->started = 1;
        if (v.mv_size < VHEAD)
            continue;
        size_t dim = (size_t)p[40] << 24 | (size_t)p[41] << 16 | (size_t)p[42] << 8 | p[43];
        if (dim == 0 || dim > TT_SEMSTORE_DIM_MAX || v.mv_size != VHEAD + dim * sizeof(float))
            continue;
        memcpy(vec, p + VHEAD, dim * sizeof(float)); /* aligned */
        rc = fn(kp + 1, p + 8, (int64_t)rd64(p), vec, dim, ud);
    }
    free(vec);
    if (rc == 0 && (mrc != 0 || n < max || k.mv_size < 1 || ((unsigned char *)k.mv_data)[0] != 'v'))
        c->done = 1;
    mdb_cursor_close(cur);
    return rc == 0 && mrc && mrc != MDB_NOTFOUND ? tt_store_from_mdb(mrc) : rc;
}

int tt_semstore_load(tt_semstore *s, tt_semstore_entry_fn fn, void *ud)
{
    tt_semstore_chunk c = {0};
    int rc = tt_semstore_chunk_begin(s, &c);
    if (rc == 0)
        rc = tt_semstore_chunk_read(s, &c, SIZE_MAX, fn, ud); /* all of it, in one chunk */
    tt_semstore_chunk_end(s, &c);
    return rc;
}

size_t tt_semstore_queued(const tt_semstore *s)
{
    return s ? s->n : 0;
}

static int del_ok(tt_store_txn *txn, const unsigned char *k)
{
    MDB_val key = {KEY_LEN, (void *)k};
    int rc = mdb_del(txn->mdb, txn->st->semcache, &key, NULL);
    return rc && rc != MDB_NOTFOUND ? tt_store_txn_fail(txn, rc) : 0;
}

static int fill(tt_store_txn *txn, void *ctx)
{
    tt_semstore *s = ctx;
    int rc = tt_store_txn_ready(txn);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const op *o = &s->queue[i];
        unsigned char vk[KEY_LEN], ak[KEY_LEN];
        key_of(vk, 'v', o->id);
        key_of(ak, 'a', o->id);
        if (!o->put) {
            rc = del_ok(txn, vk);
            if (rc == 0)
                rc = del_ok(txn, ak);
            continue;
        }
        rc = tt_store_txn_put(txn, txn->st->semcache, vk, KEY_LEN, o->vrec, o->vlen);
        if (rc == 0)
            rc = tt_store_txn_put(txn, txn->st->semcache, ak, KEY_LEN, o->data, o->len);
    }
    return rc;
}

int tt_semstore_flush(tt_semstore *s)
{
    if (!s || s->n == 0)
        return 0;
    int rc = tt_store_write(s->st, fill, s);
    if (rc) {
        s->stats.flush_errors++;
        return rc;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->queue[i].put)
            s->stats.puts++;
        else
            s->stats.dels++;
        op_clear(&s->queue[i]);
    }
    s->n = 0;
    return 0;
}

void tt_semstore_stats_get(const tt_semstore *s, tt_semstore_stats *out)
{
    *out = s ? s->stats : (tt_semstore_stats){0};
}
