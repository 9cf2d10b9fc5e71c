/* BM25, cosine similarity and reciprocal rank fusion (see index.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "agents/retrieval/index.h"

#define K1 1.2
#define B 0.75

typedef struct rchunk {
    size_t off;
    uint32_t len;
    uint32_t dl; /* terms in the chunk (BM25's document length) */
    int has_vec;
} rchunk;

typedef struct pair {
    uint32_t term, chunk, tf;
} pair;

struct tt_rindex {
    uint32_t dims;
    rchunk *c;
    size_t n, cap;
    char *text;
    size_t text_len, text_cap;
    float *vec; /* n x dims, unit length */
    /* terms: an open-addressing table of term ids (+1, 0: empty) */
    uint32_t *slots;
    size_t nslots;
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *term_off, *term_len;
    size_t nterms, terms_cap;
    /* postings, grouped by term in chunk order */
    uint32_t *post_start; /* nterms + 1 */
    uint32_t *post_chunk;
    float *post_w; /* BM25's term weight in the chunk, without the idf */
    size_t npost;
    /* the int8 copy the vector scan reads (quantise): one row per chunk
     * with a vector, row ~ q8 * q8_scale, in chunk order */
    int8_t *q8;
    float *q8_scale;
    uint32_t *q8_chunk;
    size_t nq8;
    double avgdl;
    int built;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return TT_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

tt_rindex *tt_rindex_new(uint32_t dims)
{
    tt_rindex *ix = calloc(1, sizeof *ix);
    if (ix)
        ix->dims = dims;
    return ix;
}

void tt_rindex_free(tt_rindex *ix)
{
    if (!ix)
        return;
    free(ix->c);
    free(ix->text);
    free(ix->vec);
    free(ix->slots);
    free(ix->arena);
    free(ix->term_off);
    free(ix->term_len);
    free(ix->post_start);
    free(ix->post_chunk);
    free(ix->post_w);
    free(ix->q8);
    free(ix->q8_scale);
    free(ix->q8_chunk);
    free(ix);
}

size_t tt_rindex_size(const tt_rindex *ix)
{
    return ix->n;
}

uint32_t tt_rindex_dims(const tt_rindex *ix)
{
    return ix->dims;
}

size_t tt_rindex_memory(const tt_rindex *ix)
{
    return sizeof *ix + ix->cap * sizeof *ix->c + ix->text_cap +
           ix->cap * (size_t)ix->dims * sizeof(float) + ix->nslots * sizeof(uint32_t) +
           ix->arena_cap + ix->terms_cap * 2 * sizeof(uint32_t) +
           (ix->nterms + 1) * sizeof(uint32_t) + ix->npost * 2 * sizeof(uint32_t) +
           ix->nq8 * ((size_t)ix->dims + sizeof(float) + sizeof(uint32_t));
}

const char *tt_rindex_text(const tt_rindex *ix, uint32_t chunk, size_t *len)
{
    if (chunk >= ix->n) {
        *len = 0;
        return "";
    }
    *len = ix->c[chunk].len;
    return ix->text + ix->c[chunk].off;
}

static void normalise(float *v, uint32_t dims)
{
    double s = 0;
    for (uint32_t i = 0; i < dims; i++)
        s += (double)v[i] * v[i];
    if (s <= 0)
        return;
    float inv = (float)(1.0 / sqrt(s));
    for (uint32_t i = 0; i < dims; i++)
        v[i] *= inv;
}

int tt_rindex_add(tt_rindex *ix, const char *text, size_t len, const float *vec)
{
    if (ix->built || len > UINT32_MAX)
        return TT_EINVAL;
    if (ix->n >= TT_RINDEX_CHUNKS_MAX)
        return TT_ETOOLARGE;
    size_t old_cap = ix->cap;
    if (grow((void **)&ix->c, &ix->cap, ix->n + 1, sizeof *ix->c) ||
        grow((void **)&ix->text, &ix->text_cap, ix->text_len + len + 1, 1))
        return TT_ENOMEM;
    if (ix->cap != old_cap && ix->dims) {
        float *v = realloc(ix->vec, ix->cap * (size_t)ix->dims * sizeof(float));
        if (!v) {
            ix->cap = old_cap; /* keep vec's size in step with cap */
            return TT_ENOMEM;
        }
        ix->vec = v;
    }
    rchunk *c = &ix->c[ix->n];
    *c = (rchunk){.off = ix->text_len, .len = (uint32_t)len, .has_vec = vec && ix->dims};
    memcpy(ix->text + ix->text_len, text, len);
    ix->text_len += len;
    ix->text[ix->text_len++] = '\0';
    if (ix->dims) {
        float *dst = ix->vec + ix->n * (size_t)ix->dims;
        if (vec) {
            memcpy(dst, vec, ix->dims * sizeof(float));
            normalise(dst, ix->dims);
        } else {
            memset(dst, 0, ix->dims * sizeof(float));
        }
    }
    ix->n++;
    return 0;
}

/* ---- terms ------------------------------------------------------------- */

static int term_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

void tt_rindex_terms(const char *text, size_t len, void (*fn)(const char *t, size_t n, void *ud),
                     void *ud)
{
    char t[TT_RINDEX_TERM_MAX];
    for (size_t i = 0; i < len;) {
        if (!term_byte((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t n = 0;
        for (; i < len && term_byte((unsigned char)text[i]); i++)
            if (n < sizeof t) {
                char c = text[i];
                t[n++] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
            }
        fn(t, n, ud);
    }
}

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The slot of term s: where it is, or the empty slot where it would go. */
static size_t slot_of(const tt_rindex *ix, const char *s, size_t n)
{
    size_t mask = ix->nslots - 1, i = (size_t)hash(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t id = ix->slots[i];
        if (!id ||
            (ix->term_len[id - 1] == n && memcmp(ix->arena + ix->term_off[id - 1], s, n) == 0))
            return i;
    }
}

static int rehash(tt_rindex *ix)
{
    size_t ns = ix->nslots ? ix->nslots * 2 : 1024;
    uint32_t *old = ix->slots;
    size_t on = ix->nslots;
    ix->slots = calloc(ns, sizeof *ix->slots);
    if (!ix->slots) {
        ix->slots = old;
        return TT_ENOMEM;
    }
    ix->nslots = ns;
    for (size_t i = 0; i < on; i++)
        if (old[i]) {
            uint32_t id = old[i] - 1;
            ix->slots[slot_of(ix, ix->arena + ix->term_off[id], ix->term_len[id])] = old[i];
        }
    free(old);
    return 0;
}

/* The id of term s, added when new: 0 and *id, or TT_ENOMEM. */
static int intern(tt_rindex *ix, const char *s, size_t n, uint32_t *id)
{
    if ((ix->nterms + 1) * 2 > ix->nslots && rehash(ix) != 0)
        return TT_ENOMEM;
    size_t i = slot_of(ix, s, n);
    if (ix->slots[i]) {
        *id = ix->slots[i] - 1;
        return 0;
    }
    size_t tc = ix->terms_cap;
    if (grow((void **)&ix->arena, &ix->arena_cap, ix->arena_len + n, 1) ||
        grow((void **)&ix->term_off, &tc, ix->nterms + 1, sizeof(uint32_t)))
        return TT_ENOMEM;
    tc = ix->terms_cap;
    if (grow((void **)&ix->term_len, &ix->terms_cap, ix->nterms + 1, sizeof(uint32_t)))
        return TT_ENOMEM;
    memcpy(ix->arena + ix->arena_len, s, n);
    ix->term_off[ix->nterms] = (uint32_t)ix->arena_len;
    ix->term_len[ix->nterms] = (uint32_t)n;
    ix->arena_len += n;
    *id = (uint32_t)ix->nterms++;
    ix->slots[i] = *id + 1;
    return 0;
}

/* The term ids of one chunk, gathered by tt_rindex_terms. */
typedef struct gather {
    tt_rindex *ix;
    uint32_t *ids;
    size_t n, cap;
    int rc;
} gather;

static void gather_term(const char *t, size_t n, void *ud)
{
    gather *g = ud;
    uint32_t id;
    if (g->rc || (g->rc = intern(g->ix, t, n, &id)) != 0 ||
        (g->rc = grow((void **)&g->ids, &g->cap, g->n + 1, sizeof *g->ids)) != 0)
        return;
    g->ids[g->n++] = id;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Every chunk's (term, chunk, tf) pairs, in chunk order. */
static int collect_pairs(tt_rindex *ix, pair **out, size_t *np)
{
    gather g = {.ix = ix};
    pair *p = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    for (size_t c = 0; c < ix->n && !g.rc; c++) {
        g.n = 0;
        tt_rindex_terms(ix->text + ix->c[c].off, ix->c[c].len, gather_term, &g);
        if (g.rc)
            break;
        ix->c[c].dl = (uint32_t)g.n;
        total += g.n;
        if (g.n) /* a chunk of punctuation only has no terms (and ids may be NULL) */
            qsort(g.ids, g.n, sizeof *g.ids, cmp_u32);
        for (size_t i = 0; i < g.n && !g.rc;) {
            size_t j = i;
            while (j < g.n && g.ids[j] == g.ids[i])
                j++;
            if ((g.rc = grow((void **)&p, &cap, n + 1, sizeof *p)) == 0)
                p[n++] = (pair){.term = g.ids[i], .chunk = (uint32_t)c, .tf = (uint32_t)(j - i)};
            i = j;
        }
    }
    free(g.ids);
    if (g.rc) {
        free(p);
        return g.rc;
    }
    ix->avgdl = ix->n ? (double)total / (double)ix->n : 0;
    *out = p;
    *np = n;
    return 0;
}

/* v (d floats) as int8 into out: the scale, v ~ out * scale (0: all zero). */
static float quantise_row(const float *v, uint32_t d, int8_t *out)
{
    float m = 0;
    for (uint32_t i = 0; i < d; i++)
        m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    float scale = m / 127.0f, inv = m > 0 ? 127.0f / m : 0;
    for (uint32_t i = 0; i < d; i++) {
        long q = lrintf(v[i] * inv);
        out[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
    return scale;
}

/* The int8 rows of the chunks that have a vector: the scan reads a quarter
 * of the float array's bytes (it is memory-bound), then re-scores its best
 * exactly (tt_rindex_vector). */
static int quantise(tt_rindex *ix)
{
    size_t d = ix->dims, nv = 0;
    if (!d || d > TT_RINDEX_DIMS_MAX)
        return 0; /* no vectors, or too long for the scan's stack: exact scan */
    for (size_t c = 0; c < ix->n; c++)
        nv += ix->c[c].has_vec != 0;
    ix->q8 = malloc(nv ? nv * d : 1);
    ix->q8_scale = malloc((nv ? nv : 1) * sizeof *ix->q8_scale);
    ix->q8_chunk = malloc((nv ? nv : 1) * sizeof *ix->q8_chunk);
    if (!ix->q8 || !ix->q8_scale || !ix->q8_chunk)
        return TT_ENOMEM;
    size_t r = 0;
    for (size_t c = 0; c < ix->n; c++) {
        if (!ix->c[c].has_vec)
            continue;
        ix->q8_scale[r] = quantise_row(ix->vec + c * d, (uint32_t)d, ix->q8 + r * d);
        ix->q8_chunk[r++] = (uint32_t)c;
    }
    ix->nq8 = nv;
    return 0;
}

int tt_rindex_build(tt_rindex *ix)
{
    if (ix->built)
        return 0;
    pair *p = NULL;
    size_t np = 0;
    int rc = ix->nslots ? 0 : rehash(ix);
    if (rc == 0)
        rc = collect_pairs(ix, &p, &np);
    if (rc)
        return rc;
    ix->post_start = calloc(ix->nterms + 1, sizeof *ix->post_start);
    ix->post_chunk = malloc((np ? np : 1) * sizeof *ix->post_chunk);
    ix->post_w = malloc((np ? np : 1) * sizeof *ix->post_w);
    if (!ix->post_start || !ix->post_chunk || !ix->post_w) {
        free(p);
        return TT_ENOMEM;
    }
    for (size_t i = 0; i < np; i++) /* counting sort by term, stable: chunk order kept */
        ix->post_start[p[i].term + 1]++;
    for (size_t t = 0; t < ix->nterms; t++)
        ix->post_start[t + 1] += ix->post_start[t];
    uint32_t *fill = calloc(ix->nterms ? ix->nterms : 1, sizeof *fill);
    if (!fill) {
        free(p);
        return TT_ENOMEM;
    }
    for (size_t i = 0; i < np; i++) {
        uint32_t at = ix->post_start[p[i].term] + fill[p[i].term]++;
        double tf = p[i].tf, dl = ix->c[p[i].chunk].dl;
        double norm = ix->avgdl > 0 ? dl / ix->avgdl : 1;
        ix->post_chunk[at] = p[i].chunk;
        ix->post_w[at] = (float)(tf * (K1 + 1) / (tf + K1 * (1 - B + B * norm)));
    }
    free(fill);
    free(p);
    ix->npost = np;
    if ((rc = quantise(ix)) != 0)
        return rc;
    ix->built = 1;
    return 0;
}

/* ---- search ------------------------------------------------------------ */

/* Insert h into the sorted top list (best first, ties by chunk). */
static void top_insert(tt_rindex_hit *top, size_t *n, size_t cap, tt_rindex_hit h, float key,
                       int by_bm25)
{
    size_t i = *n;
    while (i > 0) {
        float prev = by_bm25 ? top[i - 1].bm25 : top[i - 1].cosine;
        if (prev > key || (prev == key && top[i - 1].chunk < h.chunk))
            break;
        i--;
    }
    if (i >= cap)
        return;
    size_t last = *n < cap ? *n : cap - 1;
    memmove(top + i + 1, top + i, (last - i) * sizeof *top);
    top[i] = h;
    if (*n < cap)
        (*n)++;
}

typedef struct qterms {
    const tt_rindex *ix;
    uint32_t ids[64];
    size_t n;
} qterms;

static void query_term(const char *t, size_t n, void *ud)
{
    qterms *q = ud;
    if (q->n == sizeof q->ids / sizeof q->ids[0] || !q->ix->nslots)
        return;
    size_t s = slot_of(q->ix, t, n);
    if (!q->ix->slots[s])
        return;
    uint32_t id = q->ix->slots[s] - 1;
    for (size_t i = 0; i < q->n; i++)
        if (q->ids[i] == id)
            return;
    q->ids[q->n++] = id;
}

size_t tt_rindex_bm25(const tt_rindex *ix, const char *query, size_t qlen, tt_rindex_hit *hits,
                      size_t n)
{
    if (!ix->built || !ix->n || n == 0)
        return 0;
    qterms q = {.ix = ix};
    tt_rindex_terms(query, qlen, query_term, &q);
    if (!q.n)
        return 0;
    float *score = calloc(ix->n, sizeof *score);
    if (!score)
        return 0;
    double N = (double)ix->n;
    for (size_t t = 0; t < q.n; t++) {
        uint32_t a = ix->post_start[q.ids[t]], b = ix->post_start[q.ids[t] + 1];
        double df = b - a, idf = log(1.0 + (N - df + 0.5) / (df + 0.5));
        float w = (float)idf;
        for (uint32_t i = a; i < b; i++)
            score[ix->post_chunk[i]] += w * ix->post_w[i];
    }
    size_t got = 0;
    for (size_t c = 0; c < ix->n; c++) /* in chunk order: an equal score never displaces */
        if (score[c] > 0 && (got < n || score[c] > hits[got - 1].bm25))
            top_insert(hits, &got, n,
                       (tt_rindex_hit){.chunk = (uint32_t)c, .bm25 = score[c], .cosine = -2},
                       score[c], 1);
    free(score);
    for (size_t i = 0; i < got; i++)
        hits[i].bm25_rank = (int)i + 1;
    return got;
}

/* Eight independent sums, so the compiler can use vector registers without
 * -ffast-math (a single running sum fixes the order of the additions). */
static float dot_product(const float *v, const float *q, uint32_t d)
{
    float acc[8] = {0};
    uint32_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += v[i + (uint32_t)k] * q[i + (uint32_t)k];
    float dot = 0;
    for (; i < d; i++)
        dot += v[i] * q[i];
    for (int k = 0; k < 8; k++)
        dot += acc[k];
    return dot;
}

/* The int8 dot product of the scan: the compiler vectorises the widening
 * multiply-add (gcc only at -O3, so asked here; clang does at -O2), and on
 * x86-64 a second copy for AVX2 is chosen at load time when the CPU has it
 * (measured: 100k rows of 256 in 1.9 ms, against 11.7 ms with SSE2). */
#if defined(__GNUC__) && !defined(__clang__)
#define SCAN_VECTORISE __attribute__((optimize("tree-vectorize")))
#else
#define SCAN_VECTORISE
#endif
#if defined(__x86_64__) && defined(__GNUC__) && (!defined(__clang__) || __clang_major__ >= 14)
#define SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SCAN_CLONES
#endif
SCAN_CLONES SCAN_VECTORISE static void dots_i8(const int8_t *rows, size_t nrows, const int8_t *q,
                                               uint32_t d, int32_t *out)
{
    for (size_t r = 0; r < nrows; r++) { /* a block of rows a call: one indirect call each */
        const int8_t *a = rows + r * d;
        int32_t s = 0;
        for (uint32_t i = 0; i < d; i++)
            s += (int32_t)a[i] * (int32_t)q[i];
        out[r] = s;
    }
}

#define SCAN_BLOCK 256 /* rows whose dot products are taken in one call */

/* The scan's candidates: a min-heap on the approximate cosine. */
typedef struct cand {
    float approx;
    uint32_t chunk;
} cand;

static void heap_offer(cand *h, size_t *n, cand c)
{
    size_t i;
    if (*n < TT_RINDEX_RESCORE) { /* sift up */
        for (i = (*n)++; i > 0 && h[(i - 1) / 2].approx > c.approx; i = (i - 1) / 2)
            h[i] = h[(i - 1) / 2];
        h[i] = c;
        return;
    }
    if (c.approx <= h[0].approx)
        return;
    for (i = 0;;) { /* replace the root, sift down */
        size_t l = 2 * i + 1, m = l + 1 < *n && h[l + 1].approx < h[l].approx ? l + 1 : l;
        if (l >= *n || h[m].approx >= c.approx)
            break;
        h[i] = h[m];
        i = m;
    }
    h[i] = c;
}

/* The int8 rounding moves a cosine by far less than this (rows and query
 * of unit length, each component within half a step of 1/127 of the
 * largest): chunks this far under the floor are not candidates. */
#define SCAN_MARGIN 0.05f

/* Keep in hits (sorted, n at most) a chunk whose exact cosine is dot. */
static void keep_hit(tt_rindex_hit *hits, size_t *got, size_t n, uint32_t chunk, float dot,
                     float floor)
{
    if (dot >= floor && (*got < n || dot >= hits[*got - 1].cosine))
        top_insert(hits, got, n, (tt_rindex_hit){.chunk = chunk, .cosine = dot}, dot, 0);
}

size_t tt_rindex_vector(const tt_rindex *ix, const float *qvec, float floor, tt_rindex_hit *hits,
                        size_t n)
{
    uint32_t d = ix->dims;
    if (!d || !qvec || !ix->n || n == 0)
        return 0;
    size_t got = 0;
    if (!ix->q8 || d > TT_RINDEX_DIMS_MAX) { /* not built, or too long: every float row */
        float *q = malloc(d * sizeof *q);
        if (!q)
            return 0;
        memcpy(q, qvec, d * sizeof *q);
        normalise(q, d);
        for (size_t c = 0; c < ix->n; c++)
            if (ix->c[c].has_vec)
                keep_hit(hits, &got, n, (uint32_t)c, dot_product(ix->vec + c * (size_t)d, q, d),
                         floor);
        free(q);
    } else {
        float q[TT_RINDEX_DIMS_MAX];
        int8_t q8[TT_RINDEX_DIMS_MAX];
        cand heap[TT_RINDEX_RESCORE];
        size_t nh = 0;
        memcpy(q, qvec, d * sizeof *q);
        normalise(q, d);
        float qs = quantise_row(q, d, q8), low = floor - SCAN_MARGIN;
        int32_t dots[SCAN_BLOCK];
        for (size_t r0 = 0; r0 < ix->nq8; r0 += SCAN_BLOCK) {
            size_t nb = ix->nq8 - r0 < SCAN_BLOCK ? ix->nq8 - r0 : SCAN_BLOCK;
            dots_i8(ix->q8 + r0 * d, nb, q8, d, dots);
            for (size_t j = 0; j < nb; j++) {
                float approx = (float)dots[j] * qs * ix->q8_scale[r0 + j];
                if (approx >= low && (nh < TT_RINDEX_RESCORE || approx > heap[0].approx))
                    heap_offer(heap, &nh, (cand){.approx = approx, .chunk = ix->q8_chunk[r0 + j]});
            }
        }
        for (size_t i = 0; i < nh; i++)
            keep_hit(hits, &got, n, heap[i].chunk,
                     dot_product(ix->vec + heap[i].chunk * (size_t)d, q, d), floor);
    }
    for (size_t i = 0; i < got; i++)
        hits[i].vector_rank = (int)i + 1;
    return got;
}

size_t tt_rindex_rrf(const tt_rindex_hit *a, size_t na, const tt_rindex_hit *b, size_t nb,
                     tt_rindex_hit *out, size_t k)
{
    tt_rindex_hit all[2 * TT_RINDEX_CANDIDATES];
    size_t n = 0;
    na = na > TT_RINDEX_CANDIDATES ? TT_RINDEX_CANDIDATES : na;
    nb = nb > TT_RINDEX_CANDIDATES ? TT_RINDEX_CANDIDATES : nb;
    for (size_t i = 0; i < na; i++) {
        all[n] = a[i];
        all[n].bm25_rank = (int)i + 1;
        all[n].vector_rank = 0;
        all[n++].score = 1.0f / (float)(TT_RINDEX_RRF_K + i + 1);
    }
    for (size_t i = 0; i < nb; i++) {
        size_t j = 0;
        while (j < na && all[j].chunk != b[i].chunk)
            j++;
        if (j == na) {
            all[n] = b[i];
            all[n].bm25_rank = 0;
            all[n].bm25 = 0;
            j = n++;
            all[j].score = 0;
        }
        all[j].cosine = b[i].cosine;
        all[j].vector_rank = (int)i + 1;
        all[j].score += 1.0f / (float)(TT_RINDEX_RRF_K + i + 1);
    }
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        size_t at = got;
        while (at > 0 && (out[at - 1].score < all[i].score ||
                          (out[at - 1].score == all[i].score && out[at - 1].chunk > all[i].chunk)))
            at--;
        if (at >= k)
            continue;
        size_t last = got < k ? got : k - 1;
        memmove(out + at + 1, out + at, (last - at) * sizeof *out);
        out[at] = all[i];
        if (got < k)
            got++;
    }
    return got;
}

size_t tt_rindex_search(const tt_rindex *ix, const char *query, size_t qlen, const float *qvec,
                        uint32_t qdims, float min_similarity, tt_rindex_hit *out, size_t k)
{
    tt_rindex_hit a[TT_RINDEX_CANDIDATES], b[TT_RINDEX_CANDIDATES];
    if (k == 0)
        return 0;
    k = k > TT_RINDEX_K_MAX ? TT_RINDEX_K_MAX : k;
    size_t na = tt_rindex_bm25(ix, query, qlen, a, TT_RINDEX_CANDIDATES);
    size_t nb = qvec && qdims == ix->dims
                    ? tt_rindex_vector(ix, qvec, min_similarity, b, TT_RINDEX_CANDIDATES)
                    : 0;
    return tt_rindex_rrf(a, na, b, nb, out, k);
}
