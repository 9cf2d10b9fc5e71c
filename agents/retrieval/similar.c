/* Similar documents (retrieval.h, tt_retrieval_similar): a text's
 * embedding against each document's, the unit mean of its chunks' vectors
 * (written with the document: rag_documents.embedding in PostgreSQL, the
 * record's "embedding" in LMDB). Only the tenant's documents are read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "agents/retrieval/retrieval_private.h"

/* $1 tenant, $2 the query's vector (unit), $3 floor, $4 k, $5 dims. The dot
 * product in SQL: a tenant's documents are few next to its chunks. */
static const char SIMILAR_SQL[] =
    "SELECT id, title, collection, s FROM (SELECT id, title, collection, "
    "(SELECT sum(a * b) FROM unnest(embedding, $2::real[]) t(a, b)) AS s FROM rag_documents "
    "WHERE tenant = $1 AND array_length(embedding, 1) = $5::int) d "
    "WHERE s >= $3::real ORDER BY s DESC, collection, id LIMIT $4::int";

struct similar_ctx {
    char **recs; /* the records (LMDB), copied on the loop, scored in the pool */
    size_t n, cap;
    json_t *found; /* [{document_id, title, collection, similarity}] best first */
};

void tt_retrieval_similar_free(tt_retrieval_job *j)
{
    struct similar_ctx *c = j->sim;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->recs[i]);
    free(c->recs);
    json_decref(c->found);
    free(c);
    j->sim = NULL;
}

/* Insert {id, title, collection, similarity} into found, kept best first, k at most. */
static void keep_best(json_t *found, size_t k, json_t *item, double sim)
{
    size_t at = json_array_size(found);
    while (at > 0 &&
           json_real_value(json_object_get(json_array_get(found, at - 1), "similarity")) < sim)
        at--;
    if (at >= k) {
        json_decref(item);
        return;
    }
    json_array_insert_new(found, at, item);
    if (json_array_size(found) > k)
        json_array_remove(found, k);
}

static double score_record(const tt_retrieval_job *j, json_t *rec)
{
    json_t *emb = json_object_get(rec, "embedding");
    if (json_array_size(emb) != j->qdims)
        return -2; /* none, or of another model */
    double dot = 0, qn = 0;
    for (uint32_t d = 0; d < j->qdims; d++) {
        double x = json_number_value(json_array_get(emb, d));
        dot += x * j->qvec[d];
        qn += (double)j->qvec[d] * j->qvec[d];
    }
    return qn > 0 ? dot / sqrt(qn) : -2; /* the document's vector is unit length */
}

static void score_work(uv_work_t *w)
{
    tt_retrieval_job *j = w->data;
    struct similar_ctx *c = j->sim;
    for (size_t i = 0; i < c->n; i++) {
        json_t *rec = json_loads(c->recs[i], 0, NULL);
        double s = score_record(j, rec);
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *title = json_string_value(json_object_get(rec, "title"));
        const char *coll = json_string_value(json_object_get(rec, "collection"));
        if (id && title && coll && s >= j->floor)
            keep_best(c->found, j->k,
                      json_pack("{s:s, s:s, s:s, s:f}", "document_id", id, "title", title,
                                "collection", coll, "similarity", s),
                      s);
        json_decref(rec);
    }
}

static void score_after(uv_work_t *w, int status)
{
    tt_retrieval_job *j = w->data;
    if (tt_retrieval_job_back(j, status))
        return;
    json_t *found = j->sim->found;
    j->sim->found = NULL;
    tt_retrieval_job_answer(j, 200, json_pack("{s:o}", "documents", found));
}

static int copy_record(const char *rec, size_t len, void *ud)
{
    struct similar_ctx *c = ud;
    if (c->n == TT_RETRIEVAL_SIMILAR_DOCS_MAX)
        return 1; /* enough: the first ones in key order */
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **a = realloc(c->recs, cap * sizeof *a);
        if (!a)
            return TT_ENOMEM;
        c->recs = a;
        c->cap = cap;
    }
    if (!(c->recs[c->n] = strndup(rec, len)))
        return TT_ENOMEM;
    c->n++;
    return 0;
}

static void pg_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database could not be searched"))
        return;
    json_t *found = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            found, json_pack("{s:s, s:s, s:s, s:f}", "document_id", PQgetvalue(res, i, 0), "title",
                             PQgetvalue(res, i, 1), "collection", PQgetvalue(res, i, 2),
                             "similarity", strtod(PQgetvalue(res, i, 3), NULL)));
    tt_retrieval_job_answer(j, 200, json_pack("{s:o}", "documents", found));
}

static void pg_similar(tt_retrieval_job *j)
{
    char *vec = tt_retrieval_real_array(j->qvec, j->qdims), floor[32], k[16], dims[16];
    snprintf(floor, sizeof floor, "%.7g", (double)j->floor);
    snprintf(k, sizeof k, "%u", j->k);
    snprintf(dims, sizeof dims, "%u", j->qdims);
    const char *v[] = {j->tenant, vec, floor, k, dims};
    int rc = vec ? tt_rpg_send(j->r->pg, SIMILAR_SQL, 5, v, pg_done, j, &j->pgop) : TT_ENOMEM;
    free(vec);
    if (rc)
        tt_retrieval_job_fail(j, rc == TT_ENOMEM ? 500 : 503,
                              rc == TT_ENOMEM ? "out of memory" : "the database is not reachable");
}

static void on_embedded(int status, const char *body, size_t len, const char *model, void *ud)
{
    tt_retrieval_job *j = ud;
    j->embed = NULL;
    char why[200];
    (void)model;
    if (status != 200 ||
        tt_retrieval_parse_vectors(body, len, 1, &j->qvec, 0, 1, &j->qdims, why, sizeof why)) {
        snprintf(j->msg, sizeof j->msg, "the text's embedding failed (%s %d)",
                 status ? "status" : "no answer", status);
        tt_retrieval_job_fail(j, 502, j->msg);
        return;
    }
    if (j->r->pg) {
        pg_similar(j);
        return;
    }
    j->work.data = j;
    int rc = tt_chunks_list(j->r->st, j->tenant, NULL, copy_record, j->sim);
    if (rc < 0)
        tt_retrieval_job_fail(j, 500, "the documents could not be read");
    else if (uv_queue_work(j->r->loop, &j->work, score_work, score_after) != 0)
        tt_retrieval_job_fail(j, 500, "the search could not be queued");
    else
        j->in_pool = 1;
}

int tt_retrieval_similar(tt_retrieval *r, const tt_retrieval_similar_q *q,
                         tt_retrieval_done_fn done, void *ud, tt_retrieval_job **out)
{
    if (!r || !q || !q->text || !done || !out || q->k == 0 || q->k > TT_RINDEX_K_MAX ||
        tt_name_check(q->tenant, TT_TENANT_MAX - 1, NULL) != 0)
        return TT_EINVAL;
    if (!r->embeddings)
        return TT_ENOTFOUND;
    size_t len = strlen(q->text);
    if (len > TT_RETRIEVAL_SIMILAR_TEXT_MAX) { /* the start of a long text: never a cut UTF-8 */
        len = TT_RETRIEVAL_SIMILAR_TEXT_MAX;
        while (len > 0 && ((unsigned char)q->text[len] & 0xC0) == 0x80)
            len--;
    }
    tt_retrieval_job *j = tt_retrieval_job_new(r, JOB_OTHER, q->tenant, done, ud);
    if (!j)
        return TT_ENOMEM;
    j->sim = calloc(1, sizeof *j->sim);
    json_t *req = j->sim ? json_pack("{s:[s%]}", "input", q->text, len) : NULL;
    if (!req || !(j->sim->found = json_array())) {
        json_decref(req);
        tt_retrieval_job_free(j);
        return TT_ENOMEM;
    }
    j->k = q->k;
    j->floor = q->min_similarity;
    if (q->attr) { /* the tenant stays the query's */
        j->attr = *q->attr;
        snprintf(j->attr.tenant, sizeof j->attr.tenant, "%s", q->tenant);
    }
    int rc = tt_llm_embed_start_as(r->llm, r->embed_route[0] ? r->embed_route : NULL, NULL, req,
                                   &j->attr, on_embedded, j, &j->embed);
    json_decref(req);
    r->stats.embedding_calls += rc == 0;
    if (rc) {
        tt_retrieval_job_free(j);
        return TT_ENOTFOUND;
    }
    *out = j;
    return 0;
}
