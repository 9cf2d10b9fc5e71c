/* Search with PostgreSQL as the index (pgindex.h; README "PostgreSQL").
 *
 *   1. keywords: PostgreSQL full-text search, ts_rank over the chunks' tsv
 *      matching any of the query's words (tenant and collection filtered),
 *      the best TT_RINDEX_CANDIDATES; the same statement reads the
 *      collection's version
 *   2. vectors: the collection's chunk vectors, loaded from PostgreSQL in
 *      batches of LOAD_BATCH rows (array_send: binary floats as hex, decoded
 *      in the thread pool) and cached
 *      per (tenant, collection) until its version changes (any node's write
 *      or delete bumps it), cosine over them in the thread pool — a scan of
 *      real[] in SQL took 0.8 s at 10k chunks of 256 dims, this takes ms
 *   3. the two lists fused by the index's RRF (tt_rindex_rrf), top k
 *   4. the hits' titles and texts read back in one statement
 * Every step is a callback on the loop or work in the pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "agents/retrieval/retrieval_private.h"

#define LOAD_BATCH 2000 /* vector rows per statement while loading */

static const char KW_SQL[] =
    "SELECT 'v', version::text, NULL::int, NULL::real FROM rag_collections "
    "WHERE tenant = $1 AND collection = $2 "
    "UNION ALL (SELECT 'k', document, pos, ts_rank(tsv, q) FROM rag_chunks, "
    "CAST(NULLIF(replace(plainto_tsquery('english', $3)::text, '&', '|'), '') AS tsquery) q "
    "WHERE tenant = $1 AND collection = $2 AND tsv @@ q "
    "ORDER BY 4 DESC, 2, 3 LIMIT 50)";

static const char LOAD_SQL[] =
    "SELECT document, pos, array_send(embedding) FROM rag_chunks WHERE tenant = $1 AND "
    "collection = $2 "
    "AND (document, pos) > ($3, $4::int) AND embedding IS NOT NULL "
    "ORDER BY document, pos LIMIT 2000";

static const char FETCH_SQL[] =
    "SELECT c.document, c.pos, c.title, c.text FROM json_array_elements($3::json) h "
    "JOIN rag_chunks c ON c.tenant = $1 AND c.collection = $2 AND c.document = h->>0 "
    "AND c.pos = (h->>1)::int";

/* One collection's vectors as of a version; chunks in (document, pos)
 * order, which is strcmp's (the columns are COLLATE "C"). */
typedef struct pg_snap {
    char key[TT_TENANT_MAX + TT_CHUNKS_COLLECTION_MAX + 2];
    char version[24];
    tt_rindex *ix; /* vectors only (no text) */
    char **docs;
    uint32_t *pos;
    size_t n, cap;
    int refs;
    uint64_t used;
} pg_snap;

typedef struct pg_cache {
    pg_snap *e[TT_RETRIEVAL_INDEXES_MAX];
    size_t n;
    uint64_t tick;
} pg_cache;

typedef struct pg_search {
    char version[24];
    size_t nkw;
    char *kw_doc[TT_RINDEX_CANDIDATES];
    uint32_t kw_pos[TT_RINDEX_CANDIDATES];
    float kw_rank[TT_RINDEX_CANDIDATES];
    pg_snap *snap;
    int snap_new;
    /* a batch being loaded: rows copied from the result */
    char **rows_doc, **rows_vec;
    uint32_t *rows_pos;
    size_t nrows;
    char last_doc[TT_CHUNKS_DOC_ID_MAX + 1];
    char last_pos[16];
    int bad; /* the pool ran out of memory */
} pg_search;

static void snap_unref(pg_snap *s)
{
    if (!s || --s->refs > 0)
        return;
    tt_rindex_free(s->ix);
    for (size_t i = 0; i < s->n; i++)
        free(s->docs[i]);
    free(s->docs);
    free(s->pos);
    free(s);
}

void tt_retrieval_pg_cache_free(tt_retrieval *r)
{
    pg_cache *c = r->pgc;
    for (size_t i = 0; c && i < c->n; i++)
        snap_unref(c->e[i]);
    free(c);
    r->pgc = NULL;
}

static void rows_free(pg_search *ps)
{
    for (size_t i = 0; i < ps->nrows; i++) {
        free(ps->rows_doc[i]);
        free(ps->rows_vec[i]);
    }
    free(ps->rows_doc);
    free(ps->rows_vec);
    free(ps->rows_pos);
    ps->rows_doc = ps->rows_vec = NULL;
    ps->rows_pos = NULL;
    ps->nrows = 0;
}

void tt_retrieval_pg_search_free(tt_retrieval_job *j)
{
    pg_search *ps = j->ps;
    if (!ps)
        return;
    for (size_t i = 0; i < ps->nkw; i++)
        free(ps->kw_doc[i]);
    rows_free(ps);
    snap_unref(ps->snap);
    free(ps);
    j->ps = NULL;
}

static void key_of(char *k, size_t n, const tt_retrieval_job *j)
{
    snprintf(k, n, "%s\x1f%s", j->tenant, j->collection);
}

/* The cached snapshot of j's collection at version (and the query's dims). */
static pg_snap *cache_get(tt_retrieval *r, const tt_retrieval_job *j, const char *version)
{
    char k[sizeof r->pgc->e[0]->key];
    key_of(k, sizeof k, j);
    for (size_t i = 0; r->pgc && i < r->pgc->n; i++) {
        pg_snap *s = r->pgc->e[i];
        if (strcmp(s->key, k) == 0 && strcmp(s->version, version) == 0 &&
            tt_rindex_dims(s->ix) == j->qdims) {
            s->used = ++r->pgc->tick;
            return s;
        }
    }
    return NULL;
}

/* Keep s (replacing its collection's older one, or the least used). */
static void cache_put(tt_retrieval *r, pg_snap *s)
{
    if (!r->pgc && !(r->pgc = calloc(1, sizeof *r->pgc)))
        return;
    pg_cache *c = r->pgc;
    size_t at = c->n;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i]->key, s->key) == 0)
            at = i;
    if (at == c->n && c->n == TT_RETRIEVAL_INDEXES_MAX) {
        at = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->e[i]->used < c->e[at]->used)
                at = i;
    }
    if (at < c->n)
        snap_unref(c->e[at]);
    else
        c->n++;
    c->e[at] = s;
    s->refs++;
    s->used = ++c->tick;
}

/* ---- 4. the hits' texts ------------------------------------------------------- */

static void hit_place(const pg_search *ps, uint32_t chunk, const char **doc, uint32_t *pos)
{
    if (ps->snap && chunk < ps->snap->n) {
        *doc = ps->snap->docs[chunk];
        *pos = ps->snap->pos[chunk];
    } else {
        size_t i = chunk - (ps->snap ? ps->snap->n : 0);
        *doc = ps->kw_doc[i];
        *pos = ps->kw_pos[i];
    }
}

static json_t *hit_json(const tt_retrieval_job *j, const tt_rindex_hit *h, const PGresult *res)
{
    const char *doc;
    uint32_t pos;
    hit_place(j->ps, h->chunk, &doc, &pos);
    for (int i = 0; i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, 0), doc) != 0 ||
            strtoul(PQgetvalue(res, i, 1), NULL, 10) != pos)
            continue;
        return json_pack("{s:s, s:s, s:s, s:I, s:s, s:f, s:f, s:o}", "document_id", doc, "title",
                         PQgetvalue(res, i, 2), "collection", j->collection, "position",
                         (json_int_t)pos, "text", PQgetvalue(res, i, 3), "score", (double)h->score,
                         "bm25", (double)h->bm25, "cosine",
                         h->vector_rank ? json_real(h->cosine) : json_null());
    }
    return NULL; /* deleted since: not served */
}

static void fetch_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database could not be searched"))
        return;
    json_t *hits = json_array();
    for (size_t i = 0; i < j->nhits; i++) {
        json_t *h = hit_json(j, &j->hits[i], res);
        if (h)
            json_array_append_new(hits, h);
    }
    j->r->stats.searches++;
    tt_retrieval_job_answer(j, 200, json_pack("{s:o}", "hits", hits));
}

static void send_or_fail(tt_retrieval_job *j, const char *sql, int n, const char *const *v,
                         tt_pg_result_fn cb)
{
    int rc = tt_rpg_send(j->r->pg, sql, n, v, cb, j, &j->pgop);
    if (rc)
        tt_retrieval_job_fail(j, 503,
                              rc == TT_EFULL ? "the database has too many statements waiting"
                                             : "the database is not reachable");
}

static void fetch(tt_retrieval_job *j)
{
    if (j->nhits == 0) {
        j->r->stats.searches++;
        tt_retrieval_job_answer(j, 200, json_pack("{s:[]}", "hits"));
        return;
    }
    json_t *want = json_array();
    for (size_t i = 0; i < j->nhits; i++) {
        const char *doc;
        uint32_t pos;
        hit_place(j->ps, j->hits[i].chunk, &doc, &pos);
        json_array_append_new(want, json_pack("[s, I]", doc, (json_int_t)pos));
    }
    char *w = json_dumps(want, JSON_COMPACT);
    json_decref(want);
    const char *v[] = {j->tenant, j->collection, w};
    if (w)
        send_or_fail(j, FETCH_SQL, 3, v, fetch_done);
    else
        tt_retrieval_job_fail(j, 500, "out of memory");
    free(w);
}

/* ---- 3. vectors and fusion, in the pool ------------------------------------------ */

/* The snapshot's chunk of (doc, pos), or n when it has none. */
static size_t find_chunk(const pg_snap *s, const char *doc, uint32_t pos)
{
    size_t lo = 0, hi = s ? s->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->docs[mid], doc);
        if (c == 0)
            c = s->pos[mid] < pos ? -1 : s->pos[mid] > pos;
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return s ? s->n : 0;
}

static void fuse_work(uv_work_t *w)
{
    tt_retrieval_job *j = w->data;
    pg_search *ps = j->ps;
    pg_snap *s = ps->snap;
    if (ps->snap_new && tt_rindex_build(s->ix) != 0) {
        ps->bad = 1;
        return;
    }
    tt_rindex_hit kw[TT_RINDEX_CANDIDATES], vec[TT_RINDEX_CANDIDATES];
    size_t base = s ? s->n : 0;
    for (size_t i = 0; i < ps->nkw; i++) {
        size_t c = find_chunk(s, ps->kw_doc[i], ps->kw_pos[i]);
        kw[i] = (tt_rindex_hit){
            .chunk = (uint32_t)(c < base ? c : base + i), .bm25 = ps->kw_rank[i], .cosine = -2};
    }
    size_t nvec =
        s && j->qvec ? tt_rindex_vector(s->ix, j->qvec, j->floor, vec, TT_RINDEX_CANDIDATES) : 0;
    j->nhits = tt_rindex_rrf(kw, ps->nkw, vec, nvec, j->hits, j->k);
}

static void fuse_after(uv_work_t *w, int status)
{
    tt_retrieval_job *j = w->data;
    if (tt_retrieval_job_back(j, status))
        return;
    if (j->ps->bad) {
        tt_retrieval_job_fail(j, 500, "the vectors could not be indexed (out of memory)");
        return;
    }
    if (j->ps->snap_new && !j->r->closing)
        cache_put(j->r, j->ps->snap);
    j->ps->snap_new = 0;
    fetch(j);
}

static int queue(tt_retrieval_job *j, uv_work_cb work, uv_after_work_cb after)
{
    j->work.data = j;
    if (uv_queue_work(j->r->loop, &j->work, work, after) != 0)
        return TT_EIO;
    j->in_pool = 1;
    return 0;
}

/* ---- 2. loading a collection's vectors ------------------------------------------ */

static int hex_byte(const char *t)
{
    int v = 0;
    for (int i = 0; i < 2; i++) {
        char c = t[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* n big-endian 32-bit words of hex text at t into w: 0, or -1. */
static int hex_words(const char *t, uint32_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t x = 0;
        for (int b = 0; b < 4; b++) {
            int v = hex_byte(t + 8 * i + 2 * b);
            if (v < 0)
                return -1;
            x = x << 8 | (uint32_t)v;
        }
        w[i] = x;
    }
    return 0;
}

/* array_send(real[]) as bytea text ("\\x" and hex: ndim, has nulls, element
 * type, then per dimension its size and lower bound, then per element its
 * length and the big-endian float) into v: 0, or -1 when it is not one
 * dimension of dims floats (another model's vector). A binary copy: no
 * float is printed by PostgreSQL or parsed here. */
static int parse_vec(const char *t, size_t len, float *v, uint32_t dims)
{
    uint32_t h[5], e[2];
    if (len != 2 + 2 * (20 + (size_t)8 * dims) || t[0] != '\\' || t[1] != 'x')
        return -1;
    t += 2;
    if (hex_words(t, h, 5) != 0 || h[0] != 1 || h[1] != 0 || h[3] != dims)
        return -1;
    t += 40;
    for (uint32_t d = 0; d < dims; d++, t += 16) {
        if (hex_words(t, e, 2) != 0 || e[0] != 4)
            return -1;
        memcpy(&v[d], &e[1], sizeof v[d]);
    }
    return 0;
}

static void parse_work(uv_work_t *w)
{
    tt_retrieval_job *j = w->data;
    pg_search *ps = j->ps;
    pg_snap *s = ps->snap;
    float *v = malloc(j->qdims * sizeof *v);
    if (!v || s->n + ps->nrows > s->cap) {
        size_t cap = s->cap * 2 > s->n + ps->nrows ? s->cap * 2 : s->n + ps->nrows + 256;
        char **d = realloc(s->docs, cap * sizeof *d);
        if (d)
            s->docs = d;
        uint32_t *p = d ? realloc(s->pos, cap * sizeof *p) : NULL;
        if (p)
            s->pos = p;
        if (!v || !d || !p) {
            free(v);
            ps->bad = 1;
            return;
        }
        s->cap = cap;
    }
    for (size_t i = 0; i < ps->nrows; i++) {
        if (parse_vec(ps->rows_vec[i], strlen(ps->rows_vec[i]), v, j->qdims) != 0)
            continue; /* embedded by another model: keywords only */
        if (tt_rindex_add(s->ix, "", 0, v) != 0) {
            ps->bad = 1;
            break;
        }
        s->docs[s->n] = ps->rows_doc[i];
        ps->rows_doc[i] = NULL;
        s->pos[s->n++] = ps->rows_pos[i];
    }
    free(v);
}

static void load_next(tt_retrieval_job *j);

static void parse_after(uv_work_t *w, int status)
{
    tt_retrieval_job *j = w->data;
    pg_search *ps = j->ps;
    if (tt_retrieval_job_back(j, status))
        return;
    size_t got = ps->nrows;
    rows_free(ps);
    if (ps->bad)
        tt_retrieval_job_fail(j, 500, "the vectors could not be indexed (out of memory)");
    else if (got == LOAD_BATCH)
        load_next(j);
    else if (queue(j, fuse_work, fuse_after) != 0)
        tt_retrieval_job_fail(j, 500, "the search could not be queued");
}

/* Copy a batch's rows out of the result (it lives during the callback only). */
static int copy_rows(pg_search *ps, const PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    ps->rows_doc = calloc(n + 1, sizeof *ps->rows_doc);
    ps->rows_vec = calloc(n + 1, sizeof *ps->rows_vec);
    ps->rows_pos = calloc(n + 1, sizeof *ps->rows_pos);
    if (!ps->rows_doc || !ps->rows_vec || !ps->rows_pos)
        return TT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ps->rows_doc[i] = strdup(PQgetvalue(res, (int)i, 0));
        ps->rows_pos[i] = (uint32_t)strtoul(PQgetvalue(res, (int)i, 1), NULL, 10);
        ps->rows_vec[i] = strdup(PQgetvalue(res, (int)i, 2));
        ps->nrows = i + 1;
        if (!ps->rows_doc[i] || !ps->rows_vec[i])
            return TT_ENOMEM;
    }
    if (n) {
        snprintf(ps->last_doc, sizeof ps->last_doc, "%s", ps->rows_doc[n - 1]);
        snprintf(ps->last_pos, sizeof ps->last_pos, "%u", ps->rows_pos[n - 1]);
    }
    return 0;
}

static void load_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database could not be searched"))
        return;
    if (copy_rows(j->ps, res) != 0)
        tt_retrieval_job_fail(j, 500, "out of memory");
    else if (queue(j, parse_work, parse_after) != 0)
        tt_retrieval_job_fail(j, 500, "the search could not be queued");
}

static void load_next(tt_retrieval_job *j)
{
    pg_search *ps = j->ps;
    const char *v[] = {j->tenant, j->collection, ps->last_doc, ps->last_pos};
    send_or_fail(j, LOAD_SQL, 4, v, load_done);
}

static int load_begin(tt_retrieval_job *j)
{
    pg_search *ps = j->ps;
    pg_snap *s = calloc(1, sizeof *s);
    if (!s || !(s->ix = tt_rindex_new(j->qdims))) {
        free(s);
        return TT_ENOMEM;
    }
    key_of(s->key, sizeof s->key, j);
    snprintf(s->version, sizeof s->version, "%s", ps->version);
    s->refs = 1;
    ps->snap = s;
    ps->snap_new = 1;
    ps->last_doc[0] = '\0';
    snprintf(ps->last_pos, sizeof ps->last_pos, "-1");
    j->r->stats.index_loads++;
    load_next(j);
    return 0;
}

/* ---- 1. keywords and the version ---------------------------------------------- */

static void kw_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    pg_search *ps = j->ps;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database could not be searched"))
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetvalue(res, i, 0)[0] == 'v') {
            snprintf(ps->version, sizeof ps->version, "%s", PQgetvalue(res, i, 1));
        } else if (ps->nkw < TT_RINDEX_CANDIDATES &&
                   (ps->kw_doc[ps->nkw] = strdup(PQgetvalue(res, i, 1)))) {
            ps->kw_pos[ps->nkw] = (uint32_t)strtoul(PQgetvalue(res, i, 2), NULL, 10);
            ps->kw_rank[ps->nkw++] = strtof(PQgetvalue(res, i, 3), NULL);
        }
    }
    pg_snap *s = j->qvec && ps->version[0] ? cache_get(j->r, j, ps->version) : NULL;
    int rc = 0;
    if (s) {
        ps->snap = s;
        s->refs++;
    } else if (j->qvec && ps->version[0]) {
        rc = load_begin(j);
        if (rc == 0)
            return;
    }
    if (rc || queue(j, fuse_work, fuse_after) != 0)
        tt_retrieval_job_fail(j, 500, "the search could not be queued");
}

void tt_retrieval_pg_search(tt_retrieval_job *j)
{
    if (!(j->ps = calloc(1, sizeof *j->ps))) {
        tt_retrieval_job_fail(j, 500, "out of memory");
        return;
    }
    const char *v[] = {j->tenant, j->collection, j->query};
    send_or_fail(j, KW_SQL, 3, v, kw_done);
}
