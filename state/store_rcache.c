/* The response cache's storage (see rcache.h): a queue of operations in
 * memory, written with the LRU order and the caps in one write transaction. */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/rcache.h"
#include "state/store_private.h"

#define HDR_LEN 40
#define SWEEP_MAX 64   /* expired entries looked for at the LRU head per flush */
#define EVICT_MAX 4096 /* entries evicted per flush (lowered caps: over a few flushes) */
#define LRU_KEY_LEN (8 + TT_RCACHE_KEY_LEN)
/* Sorts after every LRU key (no last-used time reaches 0xff...). */
static const unsigned char TOTALS_KEY[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 't',  'o',  't',  'a',  'l',  's'};

typedef enum op_kind { OP_PUT, OP_HIT, OP_EXPIRED } op_kind;

typedef struct op {
    op_kind kind;
    unsigned char key[TT_RCACHE_KEY_LEN];
    int64_t now_ms, ttl_ms;
    char *data; /* OP_PUT */
    size_t len;
} op;

typedef struct hdr {
    int64_t created_ms, expires_ms, used_ms;
    uint64_t hits, len;
} hdr;

typedef struct totals {
    uint64_t entries, bytes;
} totals;

struct tt_rcache {
    tt_store *st;
    tt_rcache_limits lim;
    op *queue; /* TT_RCACHE_QUEUE_MAX, allocated once */
    size_t n;
    tt_rcache_stats stats;
};

/* What one write transaction did: reset each time fill runs (it runs again
 * after the map grew), applied to the stats only after the commit. */
typedef struct fill_ctx {
    tt_rcache *c;
    totals t;
    uint64_t evicted, expired, puts;
} fill_ctx;

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

static void hdr_encode(const hdr *h, unsigned char out[HDR_LEN])
{
    be64(out, (uint64_t)h->created_ms);
    be64(out + 8, (uint64_t)h->expires_ms);
    be64(out + 16, (uint64_t)h->used_ms);
    be64(out + 24, h->hits);
    be64(out + 32, h->len);
}

static int hdr_decode(const MDB_val *v, hdr *h)
{
    if (v->mv_size != HDR_LEN)
        return TT_EINVAL;
    const unsigned char *p = v->mv_data;
    *h = (hdr){(int64_t)rd64(p), (int64_t)rd64(p + 8), (int64_t)rd64(p + 16), rd64(p + 24),
               rd64(p + 32)};
    return 0;
}

static void lru_key(unsigned char out[LRU_KEY_LEN], int64_t used_ms, const unsigned char *key)
{
    be64(out, (uint64_t)(used_ms > 0 ? used_ms : 0));
    memcpy(out + 8, key, TT_RCACHE_KEY_LEN);
}

static uint64_t entry_bytes(uint64_t len)
{
    return len + TT_RCACHE_ENTRY_OVERHEAD;
}

static int read_totals(MDB_txn *t, MDB_dbi lru, totals *out)
{
    MDB_val k = {sizeof TOTALS_KEY, (void *)TOTALS_KEY}, v;
    int rc = mdb_get(t, lru, &k, &v);
    *out = (totals){0};
    if (rc == 0 && v.mv_size == 16) {
        out->entries = rd64(v.mv_data);
        out->bytes = rd64((const unsigned char *)v.mv_data + 8);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int tt_rcache_new(tt_store *st, const tt_rcache_limits *limits, tt_rcache **out)
{
    if (!st || !limits || !limits->max_bytes || !limits->max_entries || !limits->entry_max_bytes)
        return TT_EINVAL;
    tt_rcache *c = calloc(1, sizeof *c);
    if (c)
        c->queue = calloc(TT_RCACHE_QUEUE_MAX, sizeof *c->queue);
    if (!c || !c->queue) {
        free(c);
        return TT_ENOMEM;
    }
    c->st = st;
    c->lim = *limits;
    MDB_txn *t;
    int rc = tt_store_rd_begin(st, &t);
    if (rc == 0) {
        totals tot;
        int mrc = read_totals(t, st->rcache_lru, &tot);
        tt_store_rd_end(st, t);
        rc = mrc ? tt_store_from_mdb(mrc) : 0;
        c->stats.entries = tot.entries;
        c->stats.bytes = tot.bytes;
    }
    if (rc) {
        free(c->queue);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void op_clear(op *o)
{
    free(o->data);
    o->data = NULL;
}

void tt_rcache_free(tt_rcache *c)
{
    if (!c)
        return;
    (void)tt_rcache_flush(c);
    for (size_t i = 0; i < c->n; i++)
        op_clear(&c->queue[i]);
    free(c->queue);
    free(c);
}

/* Queue o (its data is the queue's now): 1 when the queue is full. */
static int enqueue(tt_rcache *c, const op *o)
{
    if (c->n == TT_RCACHE_QUEUE_MAX) { /* the store refuses writes: the oldest goes */
        op_clear(&c->queue[0]);
        memmove(c->queue, c->queue + 1, (c->n - 1) * sizeof *c->queue);
        c->n--;
        c->stats.dropped++;
    }
    c->queue[c->n++] = *o;
    return c->n == TT_RCACHE_QUEUE_MAX;
}

size_t tt_rcache_queued(const tt_rcache *c)
{
    return c ? c->n : 0;
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

/* A put still queued for key (the newest), or NULL. */
static const op *queued_put(const tt_rcache *c, const unsigned char *key)
{
    for (size_t i = c->n; i-- > 0;)
        if (c->queue[i].kind == OP_PUT && memcmp(c->queue[i].key, key, TT_RCACHE_KEY_LEN) == 0)
            return &c->queue[i];
    return NULL;
}

static int get_stored(tt_rcache *c, const unsigned char *key, int64_t now_ms, char **data,
                      size_t *len)
{
    MDB_txn *t;
    int rc = tt_store_rd_begin(c->st, &t);
    if (rc)
        return rc;
    MDB_val k = {TT_RCACHE_KEY_LEN, (void *)key}, hv, dv;
    hdr h;
    int mrc = mdb_get(t, c->st->rcache, &k, &hv);
    if (mrc == 0 && hdr_decode(&hv, &h) != 0)
        mrc = MDB_NOTFOUND;
    if (mrc == 0 && h.expires_ms <= now_ms) {
        op gone = {.kind = OP_EXPIRED, .now_ms = now_ms};
        memcpy(gone.key, key, TT_RCACHE_KEY_LEN);
        (void)enqueue(c, &gone);
        rc = TT_ENOTFOUND;
    } else if (mrc == 0 && (mrc = mdb_get(t, c->st->rcache_data, &k, &dv)) == 0) {
        rc = copy_out(dv.mv_data, dv.mv_size, data, len);
    }
    tt_store_rd_end(c->st, t);
    if (rc == 0 && mrc)
        rc = mrc == MDB_NOTFOUND ? TT_ENOTFOUND : tt_store_from_mdb(mrc);
    return rc;
}

int tt_rcache_get(tt_rcache *c, const unsigned char key[TT_RCACHE_KEY_LEN], int64_t now_ms,
                  char **data, size_t *len)
{
    if (!c || !key || !data || !len)
        return TT_EINVAL;
    const op *q = queued_put(c, key);
    int rc;
    if (q && q->now_ms + q->ttl_ms > now_ms)
        rc = copy_out(q->data, q->len, data, len);
    else if (q)
        return TT_ENOTFOUND; /* written expired; the next flush writes it, a get refuses it */
    else
        rc = get_stored(c, key, now_ms, data, len);
    if (rc == 0) {
        op hit = {.kind = OP_HIT, .now_ms = now_ms};
        memcpy(hit.key, key, TT_RCACHE_KEY_LEN);
        (void)enqueue(c, &hit); /* a full queue asks for a flush on the next put or timer */
    }
    return rc;
}

int tt_rcache_put(tt_rcache *c, const unsigned char key[TT_RCACHE_KEY_LEN], int64_t now_ms,
                  int64_t ttl_ms, const char *data, size_t len)
{
    if (!c || !key || (!data && len) || ttl_ms <= 0)
        return TT_EINVAL;
    if (len > c->lim.entry_max_bytes || entry_bytes(len) > c->lim.max_bytes)
        return TT_ETOOLARGE;
    op o = {.kind = OP_PUT, .now_ms = now_ms, .ttl_ms = ttl_ms, .len = len};
    memcpy(o.key, key, TT_RCACHE_KEY_LEN);
    if (copy_out(data ? data : "", len, &o.data, &o.len) != 0)
        return TT_ENOMEM;
    return enqueue(c, &o);
}

int tt_rcache_hits(tt_rcache *c, const unsigned char key[TT_RCACHE_KEY_LEN], uint64_t *hits)
{
    MDB_txn *t;
    int rc = tt_store_rd_begin(c->st, &t);
    if (rc)
        return rc;
    MDB_val k = {TT_RCACHE_KEY_LEN, (void *)key}, hv;
    hdr h;
    int mrc = mdb_get(t, c->st->rcache, &k, &hv);
    if (mrc == 0 && hdr_decode(&hv, &h) == 0)
        *hits = h.hits;
    else
        rc = mrc == 0 || mrc == MDB_NOTFOUND ? TT_ENOTFOUND : tt_store_from_mdb(mrc);
    tt_store_rd_end(c->st, t);
    return rc;
}

void tt_rcache_stats_get(const tt_rcache *c, tt_rcache_stats *out)
{
    *out = c ? c->stats : (tt_rcache_stats){0};
}

/* ---- the write transaction ------------------------------------------------- */

static int del_ok(tt_store_txn *txn, MDB_dbi dbi, const void *k, size_t klen)
{
    MDB_val key = {klen, (void *)k};
    int rc = mdb_del(txn->mdb, dbi, &key, NULL);
    return rc && rc != MDB_NOTFOUND ? tt_store_txn_fail(txn, rc) : 0;
}

/* The header of key: 0, 1 when absent, or the transaction's error. */
static int get_hdr(tt_store_txn *txn, const unsigned char *key, hdr *h)
{
    MDB_val k = {TT_RCACHE_KEY_LEN, (void *)key}, v;
    int rc = mdb_get(txn->mdb, txn->st->rcache, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && hdr_decode(&v, h) != 0))
        return 1;
    return rc ? tt_store_txn_fail(txn, rc) : 0;
}

static int remove_entry(tt_store_txn *txn, const unsigned char *key, const hdr *h, totals *t)
{
    unsigned char lk[LRU_KEY_LEN];
    lru_key(lk, h->used_ms, key);
    int rc = del_ok(txn, txn->st->rcache, key, TT_RCACHE_KEY_LEN);
    if (rc == 0)
        rc = del_ok(txn, txn->st->rcache_data, key, TT_RCACHE_KEY_LEN);
    if (rc == 0)
        rc = del_ok(txn, txn->st->rcache_lru, lk, sizeof lk);
    if (t->entries > 0)
        t->entries--;
    uint64_t b = entry_bytes(h->len);
    t->bytes = t->bytes > b ? t->bytes - b : 0;
    return rc;
}

static int write_hdr(tt_store_txn *txn, const unsigned char *key, const hdr *h)
{
    unsigned char hv[HDR_LEN], lk[LRU_KEY_LEN];
    hdr_encode(h, hv);
    lru_key(lk, h->used_ms, key);
    int rc = tt_store_txn_put(txn, txn->st->rcache, key, TT_RCACHE_KEY_LEN, hv, sizeof hv);
    return rc ? rc : tt_store_txn_put(txn, txn->st->rcache_lru, lk, sizeof lk, "", 0);
}

static int apply(tt_store_txn *txn, fill_ctx *f, const op *o)
{
    hdr h;
    int rc = get_hdr(txn, o->key, &h);
    if (rc < 0)
        return rc;
    int present = rc == 0;
    if (o->kind == OP_PUT) {
        if (present && (rc = remove_entry(txn, o->key, &h, &f->t)) != 0)
            return rc;
        h = (hdr){o->now_ms, o->now_ms + o->ttl_ms, o->now_ms, 0, o->len};
        rc =
            tt_store_txn_put(txn, txn->st->rcache_data, o->key, TT_RCACHE_KEY_LEN, o->data, o->len);
        if (rc == 0)
            rc = write_hdr(txn, o->key, &h);
        f->t.entries++;
        f->t.bytes += entry_bytes(o->len);
        f->puts++;
        return rc;
    }
    if (!present)
        return 0;
    if (h.expires_ms <= o->now_ms) { /* a hit after it expired, or an expired get */
        f->expired++;
        return remove_entry(txn, o->key, &h, &f->t);
    }
    if (o->kind == OP_EXPIRED)
        return 0; /* written again since */
    unsigned char old[LRU_KEY_LEN];
    lru_key(old, h.used_ms, o->key);
    if ((rc = del_ok(txn, txn->st->rcache_lru, old, sizeof old)) != 0)
        return rc;
    h.hits++;
    if (o->now_ms > h.used_ms)
        h.used_ms = o->now_ms;
    return write_hdr(txn, o->key, &h);
}

/* The head of the LRU (the least recently used entry): its whole LRU key in
 * lk and its entry's key in key. 0 found, 1 when the LRU has no entry record
 * (empty, or the totals only), < 0 an error. */
static int lru_head(tt_store_txn *txn, unsigned char key[TT_RCACHE_KEY_LEN],
                    unsigned char lk[LRU_KEY_LEN])
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn->mdb, txn->st->rcache_lru, &cur);
    if (rc)
        return tt_store_txn_fail(txn, rc);
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    int found = rc == 0 && k.mv_size == LRU_KEY_LEN;
    if (found) {
        memcpy(lk, k.mv_data, LRU_KEY_LEN);
        memcpy(key, lk + 8, TT_RCACHE_KEY_LEN);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return tt_store_txn_fail(txn, rc);
    return found ? 0 : 1;
}

/* Remove the least recently used entries while over a cap. */
static int evict(tt_store_txn *txn, fill_ctx *f)
{
    const tt_rcache_limits *lim = &f->c->lim;
    for (int i = 0;
         i < EVICT_MAX && (f->t.bytes > lim->max_bytes || f->t.entries > lim->max_entries); i++) {
        unsigned char key[TT_RCACHE_KEY_LEN], lk[LRU_KEY_LEN];
        int rc = lru_head(txn, key, lk);
        if (rc < 0)
            return rc;
        if (rc == 1) { /* the totals disagree with what is there: trust what is there */
            f->t = (totals){0};
            return 0;
        }
        hdr h;
        rc = get_hdr(txn, key, &h);
        if (rc < 0)
            return rc;
        if (rc == 1) { /* an LRU record without its entry */
            if ((rc = del_ok(txn, txn->st->rcache_lru, lk, sizeof lk)) != 0)
                return rc;
            continue;
        }
        if ((rc = remove_entry(txn, key, &h, &f->t)) != 0)
            return rc;
        f->evicted++;
    }
    return 0;
}

/* The least recently used entries are the likeliest to have expired (an
 * entry's last use is at or after its creation): remove expired ones from
 * the LRU head, at most SWEEP_MAX, up to the first that has not. */
static int sweep(tt_store_txn *txn, fill_ctx *f, int64_t now_ms)
{
    for (int i = 0; i < SWEEP_MAX; i++) {
        unsigned char key[TT_RCACHE_KEY_LEN], lk[LRU_KEY_LEN];
        hdr h;
        int rc = lru_head(txn, key, lk);
        if (rc == 0)
            rc = get_hdr(txn, key, &h);
        if (rc != 0) /* nothing there, or an LRU record without its entry: stop */
            return rc < 0 ? rc : 0;
        if (h.expires_ms > now_ms)
            return 0;
        if ((rc = remove_entry(txn, key, &h, &f->t)) != 0)
            return rc;
        f->expired++;
    }
    return 0;
}

static int fill(tt_store_txn *txn, void *ctx)
{
    fill_ctx *f = ctx;
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    f->evicted = f->expired = f->puts = 0;
    rc = read_totals(txn->mdb, txn->st->rcache_lru, &f->t);
    if (rc)
        return tt_store_txn_fail(txn, rc);
    for (size_t i = 0; i < f->c->n && rc == 0; i++)
        rc = apply(txn, f, &f->c->queue[i]);
    if (rc == 0) /* the newest operation's time: flushes run only with some queued */
        rc = sweep(txn, f, f->c->queue[f->c->n - 1].now_ms);
    if (rc == 0)
        rc = evict(txn, f);
    unsigned char tv[16];
    be64(tv, f->t.entries);
    be64(tv + 8, f->t.bytes);
    return rc ? rc
              : tt_store_txn_put(txn, txn->st->rcache_lru, TOTALS_KEY, sizeof TOTALS_KEY, tv,
                                 sizeof tv);
}

int tt_rcache_flush(tt_rcache *c)
{
    if (!c || c->n == 0)
        return 0;
    fill_ctx f = {.c = c};
    int rc = tt_store_write(c->st, fill, &f);
    if (rc) {
        c->stats.flush_errors++;
        return rc;
    }
    for (size_t i = 0; i < c->n; i++)
        op_clear(&c->queue[i]);
    c->n = 0;
    c->stats.entries = f.t.entries;
    c->stats.bytes = f.t.bytes;
    c->stats.evictions += f.evicted;
    c->stats.expired += f.expired;
    c->stats.puts += f.puts;
    return 0;
}
