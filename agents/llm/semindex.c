/* The semantic cache's vectors in memory (see semindex.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agents/llm/semindex.h"
#include "protocol/errors.h"

#define BUCKETS 4096 /* partitions by the first bytes of their key (a SHA-256) */
#define LANES 8

typedef struct part {
    unsigned char key[TT_SEM_KEY_LEN];
    size_t dim, n, cap;
    float *vecs; /* n rows of dim floats, contiguous */
    unsigned char (*ids)[TT_SEM_KEY_LEN];
    int64_t *expires, *used;
    struct part *next; /* in its bucket */
} part;

struct tt_semindex {
    uv_mutex_t lock;
    size_t max_entries, entries, parts;
    part *buckets[BUCKETS];
};

void tt_semindex_gone_free(tt_semindex_gone *g)
{
    free(g->ids);
    g->ids = NULL;
    g->n = 0;
}

static void gone_add(tt_semindex_gone *g, const unsigned char *id)
{
    if (!g)
        return;
    void *p = realloc(g->ids, (g->n + 1) * sizeof *g->ids);
    if (!p)
        return; /* the storage keeps it until its TTL ends: a get refuses it then */
    g->ids = p;
    memcpy(g->ids[g->n++], id, TT_SEM_KEY_LEN);
}

int tt_semindex_new(size_t max_entries, tt_semindex **out)
{
    if (max_entries == 0)
        return TT_EINVAL;
    tt_semindex *ix = calloc(1, sizeof *ix);
    if (!ix)
        return TT_ENOMEM;
    if (uv_mutex_init(&ix->lock) != 0) {
        free(ix);
        return TT_ENOMEM;
    }
    ix->max_entries = max_entries;
    *out = ix;
    return 0;
}

static void part_free(part *p)
{
    free(p->vecs);
    free(p->ids);
    free(p->expires);
    free(p->used);
    free(p);
}

void tt_semindex_free(tt_semindex *ix)
{
    if (!ix)
        return;
    for (size_t b = 0; b < BUCKETS; b++)
        for (part *p = ix->buckets[b], *next; p; p = next) {
            next = p->next;
            part_free(p);
        }
    uv_mutex_destroy(&ix->lock);
    free(ix);
}

/* ---- the arithmetic ---------------------------------------------------------- */

int tt_semindex_normalise(float *v, size_t dim)
{
    double sum = 0;
    for (size_t i = 0; i < dim; i++)
        sum += (double)v[i] * v[i];
    if (!(sum > 0) || !isfinite(sum))
        return TT_EINVAL;
    float inv = (float)(1.0 / sqrt(sum));
    for (size_t i = 0; i < dim; i++)
        v[i] *= inv;
    return 0;
}

/* Eight partial sums, each over every eighth element: independent, so the
 * compiler turns the inner loop into one vector multiply-add per step without
 * reassociating a float sum (which it may not do without -ffast-math). */
float tt_semindex_dot(const float *restrict a, const float *restrict b, size_t dim)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= dim; i += LANES)
        for (size_t j = 0; j < LANES; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < dim; i++)
        s += a[i] * b[i];
    for (size_t j = 0; j < LANES; j++)
        s += acc[j];
    return s;
}

long tt_semindex_best(const float *vecs, size_t n, size_t dim, const float *q, float *score)
{
    long best = -1;
    float top = -2;
    for (size_t r = 0; r < n; r++) {
        float d = tt_semindex_dot(vecs + r * dim, q, dim);
        if (d > top) {
            top = d;
            best = (long)r;
        }
    }
    *score = top;
    return best;
}

/* ---- partitions ---------------------------------------------------------------- */

static size_t bucket_of(const unsigned char *key)
{
    return ((size_t)key[0] << 8 | key[1]) % BUCKETS;
}

static part *find_part(tt_semindex *ix, const unsigned char *key)
{
    for (part *p = ix->buckets[bucket_of(key)]; p; p = p->next)
        if (memcmp(p->key, key, TT_SEM_KEY_LEN) == 0)
            return p;
    return NULL;
}

static void drop_part(tt_semindex *ix, part *p)
{
    part **pp = &ix->buckets[bucket_of(p->key)];
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    ix->entries -= p->n;
    ix->parts--;
    part_free(p);
}

/* Remove row r (the last row takes its place); an empty partition goes. */
static void remove_row(tt_semindex *ix, part *p, size_t r)
{
    size_t last = p->n - 1;
    if (r != last) {
        memcpy(p->vecs + r * p->dim, p->vecs + last * p->dim, p->dim * sizeof *p->vecs);
        memcpy(p->ids[r], p->ids[last], TT_SEM_KEY_LEN);
        p->expires[r] = p->expires[last];
        p->used[r] = p->used[last];
    }
    p->n--;
    ix->entries--;
    if (p->n == 0)
        drop_part(ix, p);
}

static int grow(part *p)
{
    size_t cap = p->cap ? p->cap * 2 : 16;
    float *v = realloc(p->vecs, cap * p->dim * sizeof *v);
    if (v)
        p->vecs = v;
    void *ids = realloc(p->ids, cap * sizeof *p->ids);
    if (ids)
        p->ids = ids;
    int64_t *e = realloc(p->expires, cap * sizeof *e);
    if (e)
        p->expires = e;
    int64_t *u = realloc(p->used, cap * sizeof *u);
    if (u)
        p->used = u;
    if (!v || !ids || !e || !u)
        return TT_ENOMEM;
    p->cap = cap;
    return 0;
}

/* The least recently used entry of all partitions goes. */
static void evict_one(tt_semindex *ix, tt_semindex_gone *gone)
{
    part *victim = NULL;
    size_t row = 0;
    for (size_t b = 0; b < BUCKETS; b++)
        for (part *p = ix->buckets[b]; p; p = p->next)
            for (size_t r = 0; r < p->n; r++)
                if (!victim || p->used[r] < victim->used[row]) {
                    victim = p;
                    row = r;
                }
    if (!victim)
        return;
    gone_add(gone, victim->ids[row]);
    remove_row(ix, victim, row);
}

/* ---- operations -------------------------------------------------------------- */

int tt_semindex_search(tt_semindex *ix, const unsigned char key[TT_SEM_KEY_LEN], const float *q,
                       size_t dim, float threshold, int64_t now_ms,
                       unsigned char id[TT_SEM_KEY_LEN], float *score, tt_semindex_gone *gone)
{
    uv_mutex_lock(&ix->lock);
    int rc = TT_ENOTFOUND;
    *score = -2;
    part *p = find_part(ix, key);
    while (p && p->dim == dim && rc == TT_ENOTFOUND) {
        long r = tt_semindex_best(p->vecs, p->n, dim, q, score);
        if (r < 0 || *score < threshold)
            break;
        if (p->expires[r] <= now_ms) { /* expired: it goes, and the next best is looked at */
            gone_add(gone, p->ids[r]);
            int last = p->n == 1;
            remove_row(ix, p, (size_t)r);
            if (last)
                p = NULL;
            continue;
        }
        p->used[r] = now_ms;
        memcpy(id, p->ids[r], TT_SEM_KEY_LEN);
        rc = 0;
    }
    uv_mutex_unlock(&ix->lock);
    return rc;
}

/* A new, empty partition for key: NULL when out of memory. */
static part *new_part(tt_semindex *ix, const unsigned char *key, size_t dim)
{
    part *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->key, key, TT_SEM_KEY_LEN);
    p->dim = dim;
    size_t b = bucket_of(key);
    p->next = ix->buckets[b];
    ix->buckets[b] = p;
    ix->parts++;
    return p;
}

int tt_semindex_insert(tt_semindex *ix, const unsigned char key[TT_SEM_KEY_LEN],
                       const unsigned char id[TT_SEM_KEY_LEN], const float *q, size_t dim,
                       int64_t expires_ms, int64_t now_ms, tt_semindex_gone *gone)
{
    if (dim == 0 || dim > TT_SEM_DIM_MAX)
        return TT_EINVAL;
    uv_mutex_lock(&ix->lock);
    part *p = find_part(ix, key);
    if (p && p->dim != dim) { /* another embeddings model: its vectors cannot be compared */
        for (size_t r = 0; r < p->n; r++)
            gone_add(gone, p->ids[r]);
        drop_part(ix, p);
        p = NULL;
    }
    size_t r = 0;
    while (p && r < p->n && memcmp(p->ids[r], id, TT_SEM_KEY_LEN) != 0)
        r++;
    int rc = 0;
    if (!p || r == p->n) { /* a new entry: room first (the eviction may empty p and free it) */
        while (ix->entries >= ix->max_entries && ix->entries > 0)
            evict_one(ix, gone);
        p = find_part(ix, key);
        if (!p)
            p = new_part(ix, key, dim);
        if (!p || (p->n == p->cap && grow(p) != 0)) {
            rc = TT_ENOMEM;
        } else {
            r = p->n++;
            ix->entries++;
        }
    }
    if (rc == 0) {
        memcpy(p->vecs + r * dim, q, dim * sizeof *q);
        memcpy(p->ids[r], id, TT_SEM_KEY_LEN);
        p->expires[r] = expires_ms;
        p->used[r] = now_ms;
    } else if (p && p->n == 0) {
        drop_part(ix, p);
    }
    uv_mutex_unlock(&ix->lock);
    return rc;
}

int tt_semindex_load(tt_semindex *ix, const unsigned char key[TT_SEM_KEY_LEN],
                     const unsigned char id[TT_SEM_KEY_LEN], const float *q, size_t dim,
                     int64_t expires_ms)
{
    if (dim == 0 || dim > TT_SEM_DIM_MAX)
        return TT_EINVAL;
    uv_mutex_lock(&ix->lock);
    int rc = 0;
    part *p = find_part(ix, key);
    if (ix->entries >= ix->max_entries)
        rc = TT_EFULL;
    else if (p && p->dim != dim)
        rc = TT_EINVAL; /* the partition keeps the dimension read first */
    else if (!p && !(p = new_part(ix, key, dim)))
        rc = TT_ENOMEM;
    else if (p->n == p->cap && grow(p) != 0)
        rc = TT_ENOMEM;
    if (rc == 0) {
        size_t r = p->n++;
        ix->entries++;
        memcpy(p->vecs + r * dim, q, dim * sizeof *q);
        memcpy(p->ids[r], id, TT_SEM_KEY_LEN);
        p->expires[r] = expires_ms;
        p->used[r] = 0;
    } else if (p && p->n == 0) {
        drop_part(ix, p);
    }
    uv_mutex_unlock(&ix->lock);
    return rc;
}

int tt_semindex_remove(tt_semindex *ix, const unsigned char id[TT_SEM_KEY_LEN])
{
    uv_mutex_lock(&ix->lock);
    int found = 0;
    for (size_t b = 0; b < BUCKETS && !found; b++)
        for (part *p = ix->buckets[b]; p && !found; p = p->next)
            for (size_t r = 0; r < p->n; r++)
                if (memcmp(p->ids[r], id, TT_SEM_KEY_LEN) == 0) {
                    remove_row(ix, p, r);
                    found = 1;
                    break;
                }
    uv_mutex_unlock(&ix->lock);
    return found;
}

size_t tt_semindex_size(tt_semindex *ix)
{
    uv_mutex_lock(&ix->lock);
    size_t n = ix->entries;
    uv_mutex_unlock(&ix->lock);
    return n;
}

size_t tt_semindex_partitions(tt_semindex *ix)
{
    uv_mutex_lock(&ix->lock);
    size_t n = ix->parts;
    uv_mutex_unlock(&ix->lock);
    return n;
}
