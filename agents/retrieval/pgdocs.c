/* Documents in PostgreSQL (pgindex.h): write, list, delete and read a
 * passage, and the list, delete and passage jobs of retrieval.h that use
 * them (LMDB alone without a database). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "agents/retrieval/retrieval_private.h"

#define PUT_SQL_MAX (512u << 20) /* bytes of one document's statement (text and vectors) */
#define LIST_MAX 10000           /* documents one list answers */

/* $1 tenant, $2 collection, $3 id, $4 title, $5 record, $6 the document's
 * mean embedding (real[] or NULL), $7 chunks [[pos, text, real[] | null, tokens]],
 * $8 their count. Chunks past the new count go; the rest are upserted (no
 * statement touches a row twice); the collection's version grows. One
 * statement: one transaction. */
static const char PUT_SQL[] =
    "WITH prev AS (SELECT 1 FROM rag_documents WHERE tenant = $1 AND collection = $2 AND id = $3), "
    "gone AS (DELETE FROM rag_chunks WHERE tenant = $1 AND collection = $2 AND document = $3 "
    "AND pos >= $8::int), "
    "doc AS (INSERT INTO rag_documents (tenant, collection, id, title, record, embedding) "
    "VALUES ($1, $2, $3, $4, $5::json, $6::real[]) ON CONFLICT (tenant, collection, id) DO UPDATE "
    "SET title = EXCLUDED.title, record = EXCLUDED.record, embedding = EXCLUDED.embedding, "
    "updated_at = now()), "
    "ins AS (INSERT INTO rag_chunks (tenant, collection, document, pos, title, text, tsv, "
    "embedding, tokens) SELECT $1, $2, $3, (c->>0)::int, $4, c->>1, to_tsvector('english', c->>1), "
    "(c->>2)::real[], (c->>3)::int FROM json_array_elements($7::json) c "
    "ON CONFLICT (tenant, collection, document, pos) DO UPDATE SET title = EXCLUDED.title, "
    "text = EXCLUDED.text, tsv = EXCLUDED.tsv, embedding = EXCLUDED.embedding, "
    "tokens = EXCLUDED.tokens), "
    "ver AS (INSERT INTO rag_collections (tenant, collection) VALUES ($1, $2) "
    "ON CONFLICT (tenant, collection) DO UPDATE SET version = rag_collections.version + 1) "
    "SELECT EXISTS (SELECT 1 FROM prev)";

static const char DELETE_SQL[] =
    "WITH c AS (DELETE FROM rag_chunks WHERE tenant = $1 AND collection = $2 AND document = $3), "
    "d AS (DELETE FROM rag_documents WHERE tenant = $1 AND collection = $2 AND id = $3 "
    "RETURNING 1), "
    "v AS (UPDATE rag_collections SET version = version + 1 WHERE tenant = $1 AND "
    "collection = $2) "
    "SELECT count(*) FROM d";

static const char LIST_SQL[] = "SELECT record FROM rag_documents WHERE tenant = $1 AND "
                               "($2 = '' OR collection = $2) ORDER BY collection, id LIMIT 10000";

void tt_retrieval_mean(const float *vecs, size_t n, uint32_t dims, float *out)
{
    memset(out, 0, dims * sizeof *out);
    for (size_t i = 0; i < n; i++)
        for (uint32_t d = 0; d < dims; d++)
            out[d] += vecs[i * dims + d];
    double norm = 0;
    for (uint32_t d = 0; d < dims; d++)
        norm += (double)out[d] * out[d];
    norm = sqrt(norm);
    for (uint32_t d = 0; norm > 0 && d < dims; d++)
        out[d] = (float)(out[d] / norm);
}

/* v, scaled to unit length, as "{x,y,...}" (the buffer's error, or 0). */
static int real_array_to(tt_buf *b, const float *v, uint32_t dims)
{
    double norm = 0;
    for (uint32_t d = 0; d < dims; d++)
        norm += (double)v[d] * v[d];
    norm = norm > 0 ? sqrt(norm) : 1;
    int rc = tt_buf_append(b, "{", 1);
    for (uint32_t d = 0; rc == 0 && d < dims; d++)
        rc = tt_buf_appendf(b, "%s%.7g", d ? "," : "", (double)v[d] / norm);
    return rc ? rc : tt_buf_append(b, "}", 1);
}

char *tt_retrieval_real_array(const float *v, uint32_t dims)
{
    tt_buf b;
    tt_buf_init(&b, (size_t)dims * 16 + 8);
    char *s = real_array_to(&b, v, dims) == 0 ? strndup(tt_buf_str(&b), b.len) : NULL;
    tt_buf_free(&b);
    return s;
}

static void put_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database refused the document"))
        return;
    j->pg_written = 1;
    j->pg_replaced = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    tt_retrieval_write_document(j); /* now LMDB */
}

/* The chunks as JSON text [[pos, text, real[] | null, tokens], ...], in a buffer
 * capped at PUT_SQL_MAX. */
static int chunks_json(tt_retrieval_job *j, tt_buf *b)
{
    const char *text = tt_buf_str(&j->text);
    int rc = tt_buf_append(b, "[", 1);
    for (size_t i = 0; rc == 0 && i < j->nspans; i++) {
        json_t *t = json_stringn(text + j->spans[i].off, j->spans[i].len);
        char *enc = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
        json_decref(t);
        if (!enc)
            return TT_ENOMEM;
        rc = tt_buf_appendf(b, "%s[%zu,%s,", i ? "," : "", i, enc);
        free(enc);
        if (rc == 0 && j->dims) {
            rc = tt_buf_append(b, "\"", 1);
            rc = rc ? rc : real_array_to(b, j->vecs + i * j->dims, j->dims);
            rc = rc ? rc : tt_buf_append(b, "\"", 1);
        } else if (rc == 0) {
            rc = tt_buf_append(b, "null", 4);
        }
        rc = rc ? rc : tt_buf_appendf(b, ",%u]", (unsigned)j->spans[i].tokens);
    }
    return rc ? rc : tt_buf_append(b, "]", 1);
}

int tt_retrieval_pg_put(tt_retrieval_job *j)
{
    tt_buf chunks;
    tt_buf_init(&chunks, PUT_SQL_MAX);
    char *mean = NULL, count[24];
    int rc = chunks_json(j, &chunks);
    if (rc == 0 && j->dims) {
        float *m = malloc(j->dims * sizeof *m);
        if (m)
            tt_retrieval_mean(j->vecs, j->nspans, j->dims, m);
        mean = m ? tt_retrieval_real_array(m, j->dims) : NULL;
        free(m);
        rc = mean ? 0 : TT_ENOMEM;
    }
    snprintf(count, sizeof count, "%zu", j->nspans);
    const char *v[] = {j->tenant, j->collection, j->id, j->title, j->record, mean, NULL, count};
    if (rc == 0) {
        v[6] = tt_buf_str(&chunks);
        rc = tt_rpg_send(j->r->pg, PUT_SQL, 8, v, put_done, j, &j->pgop);
    }
    free(mean);
    tt_buf_free(&chunks);
    return rc;
}

/* ---- list ------------------------------------------------------------------ */

static void list_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database could not list"))
        return;
    json_t *docs = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *rec = json_loads(PQgetvalue(res, i, 0), 0, NULL);
        if (rec)
            json_array_append_new(docs, rec);
    }
    tt_retrieval_job_answer(j, 200, json_pack("{s:o}", "documents", docs));
}

/* An answer at once, through done, before the call returns. */
static int answer_now(tt_retrieval_done_fn done, void *ud, int status, json_t *answer)
{
    done(status, answer, ud);
    return 0;
}

static json_t *error_json(int status, const char *msg)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", tt_retrieval_code(status), "message", msg);
}

int tt_retrieval_list_job(tt_retrieval *r, const char *tenant, const char *collection,
                          tt_retrieval_done_fn done, void *ud, tt_retrieval_job **out)
{
    *out = NULL;
    if (tt_chunks_names_check(tenant, collection ? collection : "x", NULL) != 0)
        return answer_now(done, ud, 400,
                          error_json(400, "collection must be 1-64 bytes of plain text"));
    if (!r->pg) {
        json_t *a = NULL;
        int rc = tt_retrieval_list(r, tenant, collection, &a);
        return rc ? answer_now(done, ud, 500, error_json(500, "the documents could not be read"))
                  : answer_now(done, ud, 200, a);
    }
    tt_retrieval_job *j = tt_retrieval_job_new(r, JOB_OTHER, tenant, done, ud);
    if (!j)
        return TT_ENOMEM;
    const char *v[] = {tenant, collection ? collection : ""};
    int rc = tt_rpg_send(r->pg, LIST_SQL, 2, v, list_done, j, &j->pgop);
    if (rc) {
        tt_retrieval_job_free(j);
        return answer_now(done, ud, 503, error_json(503, "the database is not reachable"));
    }
    *out = j;
    return 0;
}

/* ---- delete ---------------------------------------------------------------- */

static json_t *deleted_json(const char *id, const char *collection)
{
    return json_pack("{s:s, s:s, s:b}", "id", id, "collection", collection, "deleted", 1);
}

static void delete_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database refused the delete"))
        return;
    /* PostgreSQL decides whether it existed; this node's LMDB copy goes too
     * (another node's copy stays, unused while the database is configured) */
    int in_pg = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0, in_lmdb = 0;
    int rc = tt_retrieval_delete(j->r, j->tenant, j->collection, j->doc_id, &in_lmdb);
    if (rc) {
        tt_retrieval_job_fail(j, 500, "the store refused the delete");
        return;
    }
    tt_retrieval_invalidate(j->r, j->tenant, j->collection);
    if (!in_pg)
        tt_retrieval_job_fail(j, 404, "no such document in this collection");
    else
        tt_retrieval_job_answer(j, 200, deleted_json(j->doc_id, j->collection));
}

int tt_retrieval_delete_job(tt_retrieval *r, const char *tenant, const char *collection,
                            const char *id, tt_retrieval_done_fn done, void *ud,
                            tt_retrieval_job **out)
{
    *out = NULL;
    if (!id || tt_chunks_names_check(tenant, collection, id) != 0)
        return answer_now(done, ud, 400,
                          error_json(400, "the document id or collection is not a usable name"));
    if (!r->pg) {
        int found = 0, rc = tt_retrieval_delete(r, tenant, collection, id, &found);
        if (rc)
            return answer_now(
                done, ud, rc == TT_EFULL ? 503 : 500,
                error_json(rc == TT_EFULL ? 503 : 500, "the store refused the delete"));
        return found ? answer_now(done, ud, 200, deleted_json(id, collection))
                     : answer_now(done, ud, 404,
                                  error_json(404, "no such document in this collection"));
    }
    tt_retrieval_job *j = tt_retrieval_job_new(r, JOB_OTHER, tenant, done, ud);
    if (!j)
        return TT_ENOMEM;
    snprintf(j->collection, sizeof j->collection, "%s", collection);
    snprintf(j->doc_id, sizeof j->doc_id, "%s", id);
    const char *v[] = {tenant, collection, id};
    int rc = tt_rpg_send(r->pg, DELETE_SQL, 3, v, delete_done, j, &j->pgop);
    if (rc) {
        tt_retrieval_job_free(j);
        return answer_now(done, ud, 503, error_json(503, "the database is not reachable"));
    }
    *out = j;
    return 0;
}

/* ---- passage --------------------------------------------------------------- */

/* $1 tenant, $2 collection, $3 id, $4 position: the chunk's text, token
 * count and position, with its document's record (title, chunks). */
static const char PASSAGE_SQL[] =
    "SELECT d.record, c.text, c.tokens, c.pos FROM rag_chunks c JOIN rag_documents d "
    "ON d.tenant = c.tenant AND d.collection = c.collection AND d.id = c.document "
    "WHERE c.tenant = $1 AND c.collection = $2 AND c.document = $3 AND c.pos = $4::bigint";

static void passage_done(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_retrieval_job *j = ud;
    if (tt_retrieval_job_pg_failed(j, err, msg, "the database could not read the passage"))
        return;
    if (PQntuples(res) != 1) {
        tt_retrieval_job_fail(j, 404, "no such document or position in this collection");
        return;
    }
    json_t *rec = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *title = json_object_get(rec, "title"), *chunks = json_object_get(rec, "chunks");
    json_t *tokens = PQgetisnull(res, 0, 2)
                         ? json_null() /* a row written before tokens */
                         : json_integer(strtoll(PQgetvalue(res, 0, 2), NULL, 10));
    json_t *a = json_pack("{s:s, s:O, s:s, s:I, s:O, s:o, s:s%}", "document_id", j->doc_id, "title",
                          title ? title : json_null(), "collection", j->collection, "position",
                          (json_int_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10), "chunks",
                          chunks ? chunks : json_null(), "tokens", tokens, "text",
                          PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    json_decref(rec);
    if (!a)
        tt_retrieval_job_fail(j, 500, "the passage could not be read");
    else
        tt_retrieval_job_answer(j, 200, a);
}

/* Without a database: LMDB, at once. */
static int passage_lmdb(tt_retrieval *r, const char *tenant, const char *collection, const char *id,
                        uint32_t position, tt_retrieval_done_fn done, void *ud)
{
    json_t *a = NULL;
    int rc = tt_retrieval_passage(r, tenant, collection, id, position, &a);
    if (rc == 0)
        return answer_now(done, ud, 200, a);
    if (rc == TT_ENOTFOUND)
        return answer_now(done, ud, 404,
                          error_json(404, "no such document or position in this collection"));
    return rc == TT_EINVAL
               ? answer_now(done, ud, 400,
                            error_json(400, "the document id or collection is not a usable name"))
               : answer_now(done, ud, 500, error_json(500, "the passage could not be read"));
}

int tt_retrieval_passage_job(tt_retrieval *r, const char *tenant, const char *collection,
                             const char *id, uint32_t position, tt_retrieval_done_fn done, void *ud,
                             tt_retrieval_job **out)
{
    *out = NULL;
    if (!id || tt_chunks_names_check(tenant, collection, id) != 0)
        return answer_now(done, ud, 400,
                          error_json(400, "the document id or collection is not a usable name"));
    if (!r->pg)
        return passage_lmdb(r, tenant, collection, id, position, done, ud);
    tt_retrieval_job *j = tt_retrieval_job_new(r, JOB_OTHER, tenant, done, ud);
    if (!j)
        return TT_ENOMEM;
    snprintf(j->collection, sizeof j->collection, "%s", collection);
    snprintf(j->doc_id, sizeof j->doc_id, "%s", id);
    char pos[16];
    snprintf(pos, sizeof pos, "%u", (unsigned)position);
    const char *v[] = {tenant, collection, id, pos};
    int rc = tt_rpg_send(r->pg, PASSAGE_SQL, 4, v, passage_done, j, &j->pgop);
    if (rc) {
        tt_retrieval_job_free(j);
        return answer_now(done, ud, 503, error_json(503, "the database is not reachable"));
    }
    *out = j;
    return 0;
}

int tt_retrieval_set_pg(tt_retrieval *r, tt_pg *pg)
{
    if (r->pg || !pg)
        return TT_EINVAL;
    return tt_rpg_new(pg, &r->pg);
}

int tt_retrieval_has_pg(const tt_retrieval *r)
{
    return r && r->pg != NULL;
}
