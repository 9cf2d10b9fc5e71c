/* The retrieval service: jobs, the index cache, search, list and delete
 * (see retrieval.h; ingest jobs are in ingest.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "agents/retrieval/retrieval_private.h"

int tt_retrieval_new(const tt_retrieval_opts *o, tt_retrieval **out)
{
    const char *why;
    if (!o || !o->loop || !o->store || !out || tt_chunk_opts_check(&o->chunk, &why) != 0)
        return TT_EINVAL;
    tt_retrieval *r = calloc(1, sizeof *r);
    if (!r)
        return TT_ENOMEM;
    r->loop = o->loop;
    r->st = o->store;
    r->llm = o->llm;
    r->embeddings = o->llm && !(o->embed_route && strcmp(o->embed_route, "none") == 0);
    snprintf(r->embed_route, sizeof r->embed_route, "%s", o->embed_route ? o->embed_route : "");
    snprintf(r->tokenizer_dir, sizeof r->tokenizer_dir, "%s",
             o->tokenizer_dir ? o->tokenizer_dir : "");
    r->chunk = o->chunk;
    r->max_doc_bytes = o->max_doc_bytes ? o->max_doc_bytes : TT_RETRIEVAL_DOC_BYTES_DEFAULT;
    *out = r;
    return 0;
}

static void snap_unref(ix_snap *s)
{
    if (!s || --s->refs > 0)
        return;
    tt_rindex_free(s->ix);
    for (size_t i = 0; i < s->ndocs; i++) {
        free(s->doc_ids[i]);
        free(s->titles[i]);
    }
    free(s->doc_ids);
    free(s->titles);
    free(s->doc_of);
    free(s->pos_of);
    free(s);
}

static void really_free(tt_retrieval *r)
{
    for (size_t i = 0; i < r->ncache; i++)
        snap_unref(r->cache[i].snap);
    tt_tokenizer_free(r->tok);
    tt_retrieval_pg_cache_free(r);
    tt_rpg_free(r->pg);
    free(r);
}

void tt_retrieval_free(tt_retrieval *r)
{
    if (!r)
        return;
    r->closing = 1;
    r->ending = 1; /* the jobs ended below must not free r under this loop */
    /* Every job still wanted ends now with a 503 (a tool call waiting for it
     * must hear back to let its session go); one in the pool ends when it
     * comes back. */
    for (tt_retrieval_job *j = r->jobs, *next; j; j = next) {
        next = j->next;
        if (j->embed) {
            tt_llm_embed_cancel(j->embed);
            j->embed = NULL;
        }
        if (j->in_pool)
            (void)uv_cancel((uv_req_t *)&j->work);
        else if (j->cancelled)
            tt_retrieval_job_free(j);
        else
            tt_retrieval_job_fail(j, 503, "the server is stopping");
    }
    r->ending = 0;
    if (!r->jobs)
        really_free(r);
}

tt_retrieval_job *tt_retrieval_job_new(tt_retrieval *r, int kind, const char *tenant,
                                       tt_retrieval_done_fn done, void *ud)
{
    tt_retrieval_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->r = r;
    j->kind = kind;
    j->done = done;
    j->ud = ud;
    snprintf(j->tenant, sizeof j->tenant, "%s", tenant);
    snprintf(j->attr.tenant, sizeof j->attr.tenant, "%s", tenant);
    snprintf(j->attr.agent, sizeof j->attr.agent, "documents");
    snprintf(j->attr.feature, sizeof j->attr.feature, "documents");
    j->next = r->jobs;
    if (r->jobs)
        r->jobs->prev = j;
    r->jobs = j;
    return j;
}

static void wake_waiters(tt_retrieval *r, const char *tenant, const char *collection);

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void tt_retrieval_job_free(tt_retrieval_job *j)
{
    tt_retrieval *r = j->r;
    int loader = j->load != NULL && !r->closing;
    char tenant[sizeof j->tenant], collection[sizeof j->collection];
    memcpy(tenant, j->tenant, sizeof tenant);
    memcpy(collection, j->collection, sizeof collection);
    if (j->prev)
        j->prev->next = j->next;
    else
        r->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    if (j->tok_loaded)
        tt_tokenizer_free(j->tok);
    free(j->body);
    tt_buf_free(&j->text);
    free(j->spans);
    free(j->vecs);
    free(j->query);
    free(j->qvec);
    free(j->load);
    snap_unref(j->snap);
    tt_rpg_cancel(j->pgop);
    free(j->record);
    tt_retrieval_pg_search_free(j);
    tt_retrieval_similar_free(j);
    if (j->retry) /* its callback never runs once closed; the handle goes in close's */
        uv_close((uv_handle_t *)j->retry, free_handle);
    free(j);
    if (loader) /* cached now (the waiters find it), or failed (one of them loads) */
        wake_waiters(r, tenant, collection);
    if (r->closing && !r->ending && !r->jobs)
        really_free(r);
}

const char *tt_retrieval_code(int status)
{
    switch (status) {
    case 400:
    case 422: /* a file that cannot be read: the message says why */
        return "bad_request";
    case 404:
        return "not_found";
    case 413:
        return "too_large";
    case 502: /* the embeddings provider failed: worth a retry */
    case 503:
        return "unavailable";
    case 429:
        return "rate_limited";
    default:
        return "internal";
    }
}

void tt_retrieval_get_stats(const tt_retrieval *r, tt_retrieval_stats *out)
{
    *out = r->stats;
    out->indexes_cached = r->ncache;
    out->index_chunks = out->index_bytes = 0;
    for (size_t i = 0; i < r->ncache; i++) {
        out->index_chunks += tt_rindex_size(r->cache[i].snap->ix);
        out->index_bytes += tt_rindex_memory(r->cache[i].snap->ix);
    }
}

void tt_retrieval_job_fail(tt_retrieval_job *j, int status, const char *msg)
{
    if (j->kind == JOB_INGEST)
        j->r->stats.ingest_failures++;
    else
        j->r->stats.search_failures++;
    json_t *a = json_pack("{s:{s:s, s:s}}", "error", "code", tt_retrieval_code(status), "message",
                          msg ? msg : "");
    tt_retrieval_job_answer(j, status, a);
}

int tt_retrieval_job_pg_failed(tt_retrieval_job *j, int err, const char *msg, const char *what)
{
    j->pgop = NULL;
    if (!err)
        return 0;
    snprintf(j->msg, sizeof j->msg, "%s: %.200s", what, msg ? msg : "");
    tt_retrieval_job_fail(j, 503, j->msg);
    return 1;
}

void tt_retrieval_job_answer(tt_retrieval_job *j, int status, json_t *answer)
{
    tt_retrieval_done_fn done = j->done;
    void *ud = j->ud;
    tt_retrieval_job_free(j);
    done(status, answer, ud);
}

int tt_retrieval_job_back(tt_retrieval_job *j, int status)
{
    j->in_pool = 0;
    if (j->cancelled) {
        tt_retrieval_job_free(j);
        return 1;
    }
    if (status == UV_ECANCELED || j->r->closing) {
        tt_retrieval_job_fail(j, 503, "the server is stopping");
        return 1;
    }
    return 0;
}

void tt_retrieval_cancel(tt_retrieval_job *j)
{
    if (!j || j->cancelled)
        return;
    j->cancelled = 1;
    if (j->embed) {
        tt_llm_embed_cancel(j->embed);
        j->embed = NULL;
    }
    if (j->in_pool && uv_cancel((uv_req_t *)&j->work) != 0)
        return; /* running: its after-work callback frees it */
    if (!j->in_pool)
        tt_retrieval_job_free(j);
    /* cancelled in the queue: the after-work callback comes with UV_ECANCELED */
}

int tt_retrieval_parse_vectors(const char *body, size_t len, size_t n, float **vecs, size_t at,
                               size_t total, uint32_t *dims, char *why, size_t wn)
{
    json_t *root = json_loadb(body, len, 0, NULL), *data = json_object_get(root, "data");
    int rc = TT_EINVAL;
    if (!json_is_array(data) || json_array_size(data) != n) {
        snprintf(why, wn, "expected data with %zu embeddings", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(data, i), *emb = json_object_get(item, "embedding");
        json_t *idx = json_object_get(item, "index");
        size_t slot = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i;
        size_t d = json_array_size(emb);
        if (!json_is_array(emb) || d == 0 || d > TT_CHUNKS_DIMS_MAX || slot >= n ||
            (*dims && d != *dims)) {
            snprintf(why, wn, "embedding %zu is not an array of 1-4096 numbers of one size", i);
            goto done;
        }
        if (!*vecs) {
            *dims = (uint32_t)d;
            *vecs = calloc(total * d, sizeof **vecs);
            if (!*vecs) {
                snprintf(why, wn, "out of memory");
                goto done;
            }
        }
        float *v = *vecs + (at + slot) * d;
        for (size_t k = 0; k < d; k++) {
            json_t *x = json_array_get(emb, k);
            if (!json_is_number(x) || !isfinite(json_number_value(x))) {
                snprintf(why, wn, "embedding %zu holds something other than numbers", i);
                goto done;
            }
            v[k] = (float)json_number_value(x);
        }
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- the index cache ------------------------------------------------------ */

static void cache_key(char *k, size_t n, const char *tenant, const char *collection)
{
    snprintf(k, n, "%s\x1f%s", tenant, collection);
}

static ix_entry *cache_find(tt_retrieval *r, const char *tenant, const char *collection)
{
    char k[sizeof r->cache[0].key];
    cache_key(k, sizeof k, tenant, collection);
    for (size_t i = 0; i < r->ncache; i++)
        if (strcmp(r->cache[i].key, k) == 0)
            return &r->cache[i];
    return NULL;
}

void tt_retrieval_invalidate(tt_retrieval *r, const char *tenant, const char *collection)
{
    r->gen++;
    ix_entry *e = cache_find(r, tenant, collection);
    if (!e)
        return;
    snap_unref(e->snap);
    *e = r->cache[--r->ncache];
}

static void cache_put(tt_retrieval *r, const char *tenant, const char *collection, ix_snap *s)
{
    ix_entry *e = cache_find(r, tenant, collection);
    if (!e && r->ncache == TT_RETRIEVAL_INDEXES_MAX) { /* the least recently used goes */
        size_t lru = 0;
        for (size_t i = 1; i < r->ncache; i++)
            if (r->cache[i].used < r->cache[lru].used)
                lru = i;
        snap_unref(r->cache[lru].snap);
        e = &r->cache[lru];
    } else if (!e) {
        e = &r->cache[r->ncache++];
    } else {
        snap_unref(e->snap);
    }
    cache_key(e->key, sizeof e->key, tenant, collection);
    e->snap = s;
    e->used = ++r->tick;
    s->refs++;
}

/* ---- loading an index from the store -------------------------------------- */

typedef struct load_ctx {
    ix_snap *s;
    size_t cap_docs, cap_chunks, n;
    size_t doc; /* chunks come in the order of their records: the one being read */
    int rc;
} load_ctx;

static int on_record(const char *rec, size_t len, void *ud)
{
    load_ctx *l = ud;
    ix_snap *s = l->s;
    json_t *j = json_loadb(rec, len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *title = json_string_value(json_object_get(j, "title"));
    int rc = 0;
    if (id && title) {
        if (s->ndocs == l->cap_docs) {
            size_t cap = l->cap_docs ? l->cap_docs * 2 : 16;
            char **a = realloc(s->doc_ids, cap * sizeof *a),
                 **b = a ? realloc(s->titles, cap * sizeof *b) : NULL;
            if (a)
                s->doc_ids = a;
            if (b)
                s->titles = b;
            if (!a || !b)
                rc = TT_ENOMEM;
            else
                l->cap_docs = cap;
        }
        if (rc == 0) {
            s->doc_ids[s->ndocs] = strdup(id);
            s->titles[s->ndocs] = strdup(title);
            s->ndocs++;
        }
    }
    json_decref(j);
    return rc;
}

static int on_chunk(const char *id, size_t id_len, const tt_chunk_rec *c, void *ud)
{
    load_ctx *l = ud;
    ix_snap *s = l->s;
    /* records and chunks are both in key order (an id's \x1f sorts below any
     * character a name may hold), so the record is the current one or later */
    size_t d = l->doc;
    while (d < s->ndocs && (strlen(s->doc_ids[d]) != id_len || memcmp(s->doc_ids[d], id, id_len)))
        d++;
    if (d == s->ndocs)
        return 0; /* a chunk without its record: not served */
    l->doc = d;
    if (l->n == l->cap_chunks) {
        size_t cap = l->cap_chunks ? l->cap_chunks * 2 : 256;
        uint32_t *a = realloc(s->doc_of, cap * sizeof *a);
        if (a)
            s->doc_of = a;
        uint32_t *b = a ? realloc(s->pos_of, cap * sizeof *b) : NULL;
        if (!a || !b)
            return TT_ENOMEM;
        s->pos_of = b;
        l->cap_chunks = cap;
    }
    float stack[256], *v = NULL;
    uint32_t dims = tt_rindex_dims(s->ix);
    if (dims && c->dims == dims) {
        v = dims <= 256 ? stack : malloc(dims * sizeof *v);
        if (!v)
            return TT_ENOMEM;
        memcpy(v, c->vec, dims * sizeof *v); /* the stored floats may be unaligned */
    }
    int rc = tt_rindex_add(s->ix, c->text, c->text_len, v);
    if (v && v != stack)
        free(v);
    if (rc)
        return rc;
    s->doc_of[l->n] = (uint32_t)d;
    s->pos_of[l->n++] = c->pos;
    return 0;
}

/* The dims of the collection's embeddings: those of its first record. */
static int on_dims(const char *rec, size_t len, void *ud)
{
    json_t *j = json_loadb(rec, len, 0, NULL);
    json_int_t d = json_integer_value(json_object_get(j, "dims"));
    json_decref(j);
    if (d > 0 && d <= TT_CHUNKS_DIMS_MAX) {
        *(uint32_t *)ud = (uint32_t)d;
        return 1; /* found: stop */
    }
    return 0;
}

/* A new snapshot for the job: the collection's records (titles) now, its
 * chunks later in batches (load_step). */
static int snap_begin(tt_retrieval *r, tt_retrieval_job *j)
{
    snap_unref(j->snap);
    j->snap = NULL;
    free(j->load);
    j->load = NULL;
    j->cursor_len = 0;
    j->gen = r->gen;
    uint32_t dims = 0;
    int rc = tt_chunks_list(r->st, j->tenant, j->collection, on_dims, &dims);
    if (rc < 0)
        return rc;
    ix_snap *s = calloc(1, sizeof *s);
    load_ctx *l = calloc(1, sizeof *l);
    if (!s || !l || !(s->ix = tt_rindex_new(dims))) {
        free(s);
        free(l);
        return TT_ENOMEM;
    }
    s->refs = 1;
    l->s = s;
    j->snap = s;
    j->load = l;
    j->snap_new = 1;
    r->stats.index_loads++;
    return tt_chunks_list(r->st, j->tenant, j->collection, on_record, l);
}

/* ---- search ----------------------------------------------------------------- */

static void search_work(uv_work_t *w)
{
    tt_retrieval_job *j = w->data;
    if (j->snap_new && tt_rindex_build(j->snap->ix) != 0) {
        j->status = 500;
        j->why = "the index could not be built (out of memory)";
        return;
    }
    j->nhits = tt_rindex_search(j->snap->ix, j->query, strlen(j->query), j->qvec, j->qdims,
                                j->floor, j->hits, j->k);
}

static json_t *hits_json(const tt_retrieval_job *j)
{
    json_t *hits = json_array();
    const ix_snap *s = j->snap;
    for (size_t i = 0; i < j->nhits; i++) {
        const tt_rindex_hit *h = &j->hits[i];
        size_t len;
        const char *text = tt_rindex_text(s->ix, h->chunk, &len);
        uint32_t d = s->doc_of[h->chunk];
        json_array_append_new(
            hits, json_pack("{s:s, s:s, s:s, s:I, s:s%, s:f, s:f, s:o}", "document_id",
                            s->doc_ids[d], "title", s->titles[d], "collection", j->collection,
                            "position", (json_int_t)s->pos_of[h->chunk], "text", text, len, "score",
                            (double)h->score, "bm25", (double)h->bm25, "cosine",
                            h->vector_rank ? json_real(h->cosine) : json_null()));
    }
    return json_pack("{s:o}", "hits", hits);
}

static void search_after(uv_work_t *w, int status)
{
    tt_retrieval_job *j = w->data;
    tt_retrieval *r = j->r;
    if (tt_retrieval_job_back(j, status))
        return;
    if (j->status) {
        tt_retrieval_job_fail(j, j->status, j->why);
        return;
    }
    if (j->snap_new && j->gen == r->gen && !r->closing)
        cache_put(r, j->tenant, j->collection, j->snap);
    json_t *a = hits_json(j);
    r->stats.searches++;
    tt_retrieval_job_answer(j, 200, a);
}

static int queue(tt_retrieval_job *j, uv_work_cb work, uv_after_work_cb after)
{
    j->work.data = j;
    if (uv_queue_work(j->r->loop, &j->work, work, after) != 0)
        return TT_EIO;
    j->in_pool = 1;
    return 0;
}

static void yield_work(uv_work_t *w)
{
    (void)w; /* nothing: a hop through the pool lets the loop serve others between batches */
}

/* One batch of a collection's chunks into the job's snapshot, on the loop;
 * the next batch after a pass of the loop, the search once all are read. A
 * write to the store meanwhile starts the load again (3 times at most; a
 * load that saw writes is used for this search only, never cached). */
static void load_step(uv_work_t *w, int status)
{
    tt_retrieval_job *j = w->data;
    tt_retrieval *r = j->r;
    if (tt_retrieval_job_back(j, status))
        return;
    int done = 0, rc = 0;
    if (j->gen != r->gen && j->restarts < 3) {
        j->restarts++;
        rc = snap_begin(r, j);
    }
    if (rc == 0)
        rc = tt_chunks_scan_batch(r->st, j->tenant, j->collection, j->cursor, &j->cursor_len,
                                  TT_RETRIEVAL_LOAD_BATCH, on_chunk, j->load, &done);
    if (rc)
        tt_retrieval_job_fail(j, 500, "the collection could not be read");
    else if (queue(j, done ? search_work : yield_work, done ? search_after : load_step) != 0)
        tt_retrieval_job_fail(j, 500, "the search could not be queued");
}

/* A search already reading (tenant, collection), other than j: one load
 * serves every search that comes meanwhile. */
static tt_retrieval_job *loader_of(tt_retrieval *r, const tt_retrieval_job *j)
{
    for (tt_retrieval_job *o = r->jobs; o; o = o->next)
        if (o != j && o->load && !o->cancelled && strcmp(o->tenant, j->tenant) == 0 &&
            strcmp(o->collection, j->collection) == 0)
            return o;
    return NULL;
}

static void search_index(tt_retrieval_job *j);

static void wake_waiters(tt_retrieval *r, const char *tenant, const char *collection)
{
    for (tt_retrieval_job *w = r->jobs; w; w = w->next)
        w->waking =
            w->waiting && strcmp(w->tenant, tenant) == 0 && strcmp(w->collection, collection) == 0;
    /* From the head after each (search_index may free jobs); a job that
     * waits again (another one became the loader) is not marked again. */
    for (int again = 1; again;) {
        again = 0;
        for (tt_retrieval_job *w = r->jobs; w; w = w->next)
            if (w->waking) {
                w->waking = w->waiting = 0;
                search_index(w);
                again = 1;
                break;
            }
    }
}

static void search_index(tt_retrieval_job *j)
{
    tt_retrieval *r = j->r;
    if (r->pg) {
        tt_retrieval_pg_search(j); /* PostgreSQL is the shared index (pgsearch.c) */
        return;
    }
    ix_entry *e = cache_find(r, j->tenant, j->collection);
    int rc;
    if (!e && loader_of(r, j)) {
        j->waiting = 1;
        return;
    }
    if (e) {
        j->snap = e->snap;
        j->snap->refs++;
        e->used = ++r->tick;
        rc = queue(j, search_work, search_after);
    } else {
        rc = snap_begin(r, j);
        if (rc == 0)
            rc = queue(j, yield_work, load_step);
    }
    if (rc)
        tt_retrieval_job_fail(j, 500, "the collection could not be read");
}

static void on_query_embedded(int status, const char *body, size_t len, const char *model, void *ud)
{
    tt_retrieval_job *j = ud;
    j->embed = NULL;
    char why[200];
    if (status != 200 ||
        tt_retrieval_parse_vectors(body, len, 1, &j->qvec, 0, 1, &j->qdims, why, sizeof why)) {
        snprintf(j->msg, sizeof j->msg, "the query's embedding failed (%s %d): %.*s",
                 status ? "status" : "no answer", status, (int)(len > 160 ? 160 : len), body);
        tt_retrieval_job_fail(j, 502, j->msg);
        return;
    }
    search_index(j);
}

int tt_retrieval_search(tt_retrieval *r, const tt_retrieval_query *q, tt_retrieval_done_fn done,
                        void *ud, tt_retrieval_job **out)
{
    const char *coll = q && q->collection ? q->collection : TT_RETRIEVAL_COLLECTION_DEFAULT;
    if (!r || !q || !done || !out || !q->text || !q->text[0] ||
        strlen(q->text) > TT_RETRIEVAL_QUERY_MAX || q->k > TT_RINDEX_K_MAX ||
        q->min_similarity > 1 || tt_chunks_names_check(q->tenant, coll, NULL) != 0)
        return TT_EINVAL;
    tt_retrieval_job *j = tt_retrieval_job_new(r, JOB_SEARCH, q->tenant, done, ud);
    if (!j || !(j->query = strdup(q->text))) {
        if (j)
            tt_retrieval_job_free(j);
        return TT_ENOMEM;
    }
    snprintf(j->collection, sizeof j->collection, "%s", coll);
    if (q->attr) { /* the tenant stays the query's */
        j->attr = *q->attr;
        snprintf(j->attr.tenant, sizeof j->attr.tenant, "%s", q->tenant);
    }
    j->k = q->k ? q->k : TT_RETRIEVAL_TOP_K_DEFAULT;
    j->floor = q->min_similarity < 0 ? TT_RETRIEVAL_MIN_SIMILARITY_DEFAULT : q->min_similarity;
    *out = j;
    if (!r->embeddings) {
        search_index(j); /* may call done before returning */
        return 0;
    }
    json_t *req = json_pack("{s:[s]}", "input", q->text);
    int rc = tt_llm_embed_start_as(r->llm, r->embed_route[0] ? r->embed_route : NULL, NULL, req,
                                   &j->attr, on_query_embedded, j, &j->embed);
    json_decref(req);
    r->stats.embedding_calls += rc == 0;
    if (rc)
        tt_retrieval_job_fail(j, 503, "the embeddings route cannot embed the query");
    return 0;
}

/* ---- list and delete ------------------------------------------------------- */

static int on_list(const char *rec, size_t len, void *ud)
{
    json_t *j = json_loadb(rec, len, 0, NULL);
    json_object_del(j, "embedding"); /* the document's vector (similar.c): not listed */
    if (j)
        json_array_append_new(ud, j);
    return 0;
}

int tt_retrieval_list(tt_retrieval *r, const char *tenant, const char *collection, json_t **out)
{
    json_t *docs = json_array();
    int rc = docs ? tt_chunks_list(r->st, tenant, collection, on_list, docs) : TT_ENOMEM;
    if (rc) {
        json_decref(docs);
        return rc;
    }
    *out = json_pack("{s:o}", "documents", docs);
    return *out ? 0 : TT_ENOMEM;
}

typedef struct del_ctx {
    const char *tenant, *collection, *id;
    int found;
} del_ctx;

static int del_fill(tt_store_txn *txn, void *ud)
{
    del_ctx *d = ud;
    return tt_chunks_delete(txn, d->tenant, d->collection, d->id, &d->found);
}

int tt_retrieval_delete(tt_retrieval *r, const char *tenant, const char *collection, const char *id,
                        int *found)
{
    if (tt_chunks_names_check(tenant, collection, id) != 0 || !id)
        return TT_EINVAL;
    del_ctx d = {.tenant = tenant, .collection = collection, .id = id};
    int rc = tt_store_write(r->st, del_fill, &d);
    if (rc == 0 && d.found)
        tt_retrieval_invalidate(r, tenant, collection);
    *found = d.found;
    return rc;
}

typedef struct passage_ctx {
    const char *collection, *id;
    json_t *out;
} passage_ctx;

static int on_passage(const char *record, size_t len, const tt_chunk_rec *c, void *ud)
{
    passage_ctx *p = ud;
    json_t *rec = json_loadb(record, len, 0, NULL);
    json_t *title = json_object_get(rec, "title"), *chunks = json_object_get(rec, "chunks");
    p->out = json_pack("{s:s, s:O, s:s, s:I, s:O, s:I, s:s%}", "document_id", p->id, "title",
                       title ? title : json_null(), "collection", p->collection, "position",
                       (json_int_t)c->pos, "chunks", chunks ? chunks : json_null(), "tokens",
                       (json_int_t)c->tokens, "text", c->text, c->text_len);
    json_decref(rec);
    return p->out ? 0 : TT_ENOMEM;
}

int tt_retrieval_passage(tt_retrieval *r, const char *tenant, const char *collection,
                         const char *id, uint32_t position, json_t **out)
{
    passage_ctx p = {.collection = collection, .id = id};
    int rc = tt_chunks_get(r->st, tenant, collection, id, position, on_passage, &p);
    if (rc)
        json_decref(p.out);
    else
        *out = p.out;
    return rc;
}
