/* Ingest jobs (retrieval.h): parse, extract and chunk in the thread pool,
 * embed in batches on the loop, write in one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "protocol/base64.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "agents/retrieval/retrieval_private.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int fail(tt_retrieval_job *j, int status, const char *why)
{
    j->status = status;
    j->why = why;
    return status;
}

/* The request's fields into the job (pool). */
static int parse_fields(tt_retrieval_job *j, json_t *body, const char **content, size_t *clen,
                        int *b64)
{
    json_error_t err;
    const char *coll = TT_RETRIEVAL_COLLECTION_DEFAULT, *id = NULL, *title = NULL, *type = NULL;
    const char *c = NULL, *c64 = NULL;
    json_int_t size = j->opts.size, overlap = j->opts.overlap;
    if (!body || json_unpack_ex(body, &err, JSON_STRICT, "{s?s, s?s, s:s, s:s, s?s, s?s, s?I, s?I}",
                                "collection", &coll, "id", &id, "title", &title, "type", &type,
                                "content", &c, "content_base64", &c64, "chunk_tokens", &size,
                                "chunk_overlap", &overlap) != 0) {
        snprintf(j->msg, sizeof j->msg,
                 "body must be {collection?, id?, title, type, content | content_base64, "
                 "chunk_tokens?, chunk_overlap?}: %.100s",
                 body ? err.text : "not JSON");
        return fail(j, 400, j->msg);
    }
    if (tt_doc_type_parse(type, &j->type) != 0)
        return fail(j, 400, "type must be text, markdown, html or pdf");
    if (!c == !c64)
        return fail(j, 400, "give the document as content (a string) or content_base64");
    if (j->type == TT_DOC_PDF && !c64)
        return fail(j, 400, "a PDF is sent as content_base64");
    if (tt_name_check(coll, TT_CHUNKS_COLLECTION_MAX, NULL) != 0)
        return fail(j, 400, "collection must be 1-64 bytes of plain text");
    if (tt_name_check(title, TT_RETRIEVAL_TITLE_MAX, NULL) != 0)
        return fail(j, 400, "title must be 1-200 bytes of plain text");
    if (id && tt_name_check(id, TT_CHUNKS_DOC_ID_MAX, NULL) != 0)
        return fail(j, 400, "id must be 1-128 bytes of plain text");
    if (size < TT_CHUNK_TOKENS_MIN || size > TT_CHUNK_TOKENS_MAX || overlap < 0 ||
        overlap > size / 2)
        return fail(j, 400, "chunk_tokens must be 16-8192 and chunk_overlap 0 to half of it");
    j->opts = (tt_chunk_opts){.size = (uint32_t)size, .overlap = (uint32_t)overlap};
    snprintf(j->collection, sizeof j->collection, "%s", coll);
    snprintf(j->title, sizeof j->title, "%s", title);
    if (id) {
        snprintf(j->id, sizeof j->id, "%s", id);
    } else {
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)title, strlen(title), d);
        memcpy(j->id, "d_", 2);
        hex(d, 8, j->id + 2);
    }
    *b64 = c64 != NULL;
    *content = c ? c : c64;
    *clen = c ? json_string_length(json_object_get(body, "content"))
              : json_string_length(json_object_get(body, "content_base64"));
    return 0;
}

/* Decoded bytes of the document (pool); *owned to free. */
static int document_bytes(tt_retrieval_job *j, const char *content, size_t clen, int b64,
                          const char **bytes, size_t *n, unsigned char **owned)
{
    size_t max = j->r->max_doc_bytes;
    *owned = NULL;
    if (!b64) {
        if (clen > max)
            return fail(j, 413, "the document is over the size limit (--max-document-bytes)");
        *bytes = content;
        *n = clen;
        return 0;
    }
    if (TT_B64_DECODED_MAX(clen) > max + 3)
        return fail(j, 413, "the document is over the size limit (--max-document-bytes)");
    *owned = malloc(TT_B64_DECODED_MAX(clen) + 1);
    if (!*owned)
        return fail(j, 500, "out of memory");
    if (tt_b64_decode(content, clen, *owned, TT_B64_DECODED_MAX(clen) + 1, n) != 0)
        return fail(j, 400, "content_base64 is not valid base64");
    if (*n > max)
        return fail(j, 413, "the document is over the size limit (--max-document-bytes)");
    *bytes = (const char *)*owned;
    return 0;
}

static void extract_and_chunk(tt_retrieval_job *j, const char *bytes, size_t n)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)bytes, n, d);
    hex(d, sizeof d, j->sha256);
    j->nbytes = n;
    const char *why = "";
    tt_buf_init(&j->text, TT_RETRIEVAL_TEXT_MAX);
    int rc = tt_extract(j->type, bytes, n, &j->text, &why);
    if (rc == TT_ETOOLARGE && j->type != TT_DOC_PDF)
        why = "the document's text is over 4 MiB";
    if (rc) {
        snprintf(j->msg, sizeof j->msg, "%s", why && why[0] ? why : tt_strerror(rc));
        fail(j,
             rc == TT_ETOOLARGE   ? 413
             : rc == TT_ENOTFOUND ? 503
             : rc == TT_EINVAL    ? 422
                                  : 500,
             j->msg);
        return;
    }
    if (!j->tok && j->r->tokenizer_dir[0] &&
        tt_tokenizer_load(TT_TOKENIZER_O200K_BASE, j->r->tokenizer_dir, &j->tok) == 0)
        j->tok_loaded = 1;
    rc = tt_chunk_text(j->tok, tt_buf_str(&j->text), j->text.len, &j->opts, &j->spans, &j->nspans);
    if (rc == TT_ETOOLARGE)
        fail(j, 413, "the document makes more than 20000 chunks");
    else if (rc)
        fail(j, 500, "the document could not be chunked");
    else if (j->nspans == 0)
        fail(j, 422, "the document holds no text");
    for (size_t i = 0; i < j->nspans; i++)
        j->tokens += j->spans[i].tokens;
}

static void ingest_work(uv_work_t *w)
{
    tt_retrieval_job *j = w->data;
    json_error_t err;
    json_t *body = json_loadb(j->body, j->body_len, JSON_REJECT_DUPLICATES, &err);
    const char *content = NULL, *bytes = NULL;
    size_t clen = 0, n = 0;
    int b64 = 0;
    unsigned char *owned = NULL;
    if (parse_fields(j, body, &content, &clen, &b64) == 0 &&
        document_bytes(j, content, clen, b64, &bytes, &n, &owned) == 0)
        extract_and_chunk(j, bytes, n);
    free(owned);
    json_decref(body);
    free(j->body);
    j->body = NULL;
}

/* ---- embeddings ---------------------------------------------------------- */

static void embed_next(tt_retrieval_job *j);

static void on_retry(uv_timer_t *t)
{
    embed_next(t->data);
}

/* A batch that failed in a way worth repeating is asked again after a
 * pause: 1 when a retry is set up. */
static int retry_later(tt_retrieval_job *j, int status)
{
    int retryable = status == 0 || status == 429 || (status >= 500 && status <= 599);
    if (!retryable || j->attempt >= TT_RETRIEVAL_EMBED_ATTEMPTS)
        return 0;
    if (!j->retry) {
        j->retry = malloc(sizeof *j->retry);
        if (!j->retry || uv_timer_init(j->r->loop, j->retry) != 0) {
            free(j->retry);
            j->retry = NULL;
            return 0;
        }
        j->retry->data = j;
    }
    uint64_t delay = j->attempt == 1 ? 250 : 1000;
    return uv_timer_start(j->retry, on_retry, delay, 0) == 0;
}

static void on_embedded(int status, const char *body, size_t len, const char *model, void *ud)
{
    tt_retrieval_job *j = ud;
    j->embed = NULL;
    size_t n = j->nspans - j->embedded;
    n = n > TT_RETRIEVAL_EMBED_BATCH ? TT_RETRIEVAL_EMBED_BATCH : n;
    char why[200];
    if (status != 200 && retry_later(j, status))
        return;
    if (status != 200) {
        snprintf(j->msg, sizeof j->msg, "the embeddings call failed (%s %d): %.*s",
                 status ? "status" : "no answer", status, (int)(len > 160 ? 160 : len), body);
        tt_retrieval_job_fail(j, 502, j->msg);
        return;
    }
    if (tt_retrieval_parse_vectors(body, len, n, &j->vecs, j->embedded, j->nspans, &j->dims, why,
                                   sizeof why) != 0) {
        snprintf(j->msg, sizeof j->msg, "the embeddings answer of %s is unusable: %s", model, why);
        tt_retrieval_job_fail(j, 502, j->msg);
        return;
    }
    j->embedded += n;
    j->attempt = 0;
    if (j->embedded < j->nspans)
        embed_next(j);
    else
        tt_retrieval_write_document(j);
}

static void embed_next(tt_retrieval_job *j)
{
    size_t n = j->nspans - j->embedded;
    n = n > TT_RETRIEVAL_EMBED_BATCH ? TT_RETRIEVAL_EMBED_BATCH : n;
    json_t *input = json_array();
    const char *text = tt_buf_str(&j->text);
    for (size_t i = 0; i < n; i++) {
        const tt_chunk_span *s = &j->spans[j->embedded + i];
        json_array_append_new(input, json_stringn(text + s->off, s->len));
    }
    json_t *req = json_pack("{s:o}", "input", input);
    j->attempt++;
    int rc = req ? tt_llm_embed_start_as(j->r->llm, j->r->embed_route[0] ? j->r->embed_route : NULL,
                                         NULL, req, &j->attr, on_embedded, j, &j->embed)
                 : TT_ENOMEM;
    json_decref(req);
    j->r->stats.embedding_calls += rc == 0;
    if (rc == TT_ENOTFOUND)
        tt_retrieval_job_fail(j, 503, "the embeddings route (--retrieval-route) does not exist");
    else if (rc == TT_EINVAL)
        tt_retrieval_job_fail(j, 503,
                              "the embeddings route has no OpenAI-format target (set "
                              "--retrieval-route to one, or none for keyword search only)");
    else if (rc)
        tt_retrieval_job_fail(j, 500, "the embeddings call could not start");
}

/* ---- the write ----------------------------------------------------------- */

typedef struct write_ctx {
    tt_retrieval_job *j;
    const char *record;
    tt_chunk_rec *recs;
    int replaced;
} write_ctx;

static int fill(tt_store_txn *txn, void *ud)
{
    write_ctx *w = ud;
    tt_retrieval_job *j = w->j;
    return tt_chunks_put(txn, j->tenant, j->collection, j->id, w->record, strlen(w->record),
                         w->recs, j->nspans, &w->replaced);
}

/* The record of the document (JSON), kept in j->record for both writes. */
static json_t *make_record(tt_retrieval_job *j)
{
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "id", j->id, "title", j->title,
        "collection", j->collection, "type", tt_doc_type_name(j->type), "bytes",
        (json_int_t)j->nbytes, "chunks", (json_int_t)j->nspans, "tokens", (json_int_t)j->tokens,
        "dims", (json_int_t)j->dims, "created_ms", (json_int_t)wall_ms(), "sha256", j->sha256);
    if (rec && !j->record)
        j->record = json_dumps(rec, JSON_COMPACT);
    return rec;
}

/* The LMDB record: j->record plus "embedding", the unit mean of the chunks'
 * vectors (NULL without vectors or memory: the record alone). */
static char *local_record(const tt_retrieval_job *j)
{
    json_t *rec = j->dims ? json_loads(j->record, 0, NULL) : NULL;
    float *m = rec ? malloc(j->dims * sizeof *m) : NULL;
    json_t *emb = m ? json_array() : NULL;
    char *out = NULL;
    if (emb) {
        tt_retrieval_mean(j->vecs, j->nspans, j->dims, m);
        for (uint32_t d = 0; d < j->dims; d++)
            json_array_append_new(emb, json_real(m[d]));
        json_object_set_new(rec, "embedding", emb);
        out = json_dumps(rec, JSON_COMPACT);
    }
    free(m);
    json_decref(rec);
    return out;
}

void tt_retrieval_write_document(tt_retrieval_job *j)
{
    json_t *rec = j->record ? json_loads(j->record, 0, NULL) : make_record(j);
    tt_chunk_rec *recs = calloc(j->nspans, sizeof *recs);
    if (!rec || !j->record || !recs) {
        free(recs);
        json_decref(rec);
        tt_retrieval_job_fail(j, 500, "out of memory");
        return;
    }
    if (j->r->pg && !j->pg_written) { /* PostgreSQL first: a refusal there changes nothing */
        free(recs);
        json_decref(rec);
        int rc = tt_retrieval_pg_put(j);
        if (rc)
            tt_retrieval_job_fail(j,
                                  rc == TT_ECONFLICT   ? 503
                                  : rc == TT_ETOOLARGE ? 413
                                                       : 500,
                                  rc == TT_ECONFLICT ? "the database is not reachable"
                                  : rc == TT_ETOOLARGE
                                      ? "the document's chunks and vectors are over 512 MiB"
                                      : "the document could not be sent to the database");
        return;
    }
    const char *t = tt_buf_str(&j->text);
    for (size_t i = 0; i < j->nspans; i++)
        recs[i] = (tt_chunk_rec){.pos = (uint32_t)i,
                                 .tokens = j->spans[i].tokens,
                                 .dims = j->dims,
                                 .vec = j->dims ? j->vecs + i * j->dims : NULL,
                                 .text = t + j->spans[i].off,
                                 .text_len = j->spans[i].len};
    char *local = local_record(j); /* with the document's vector (similar.c) */
    write_ctx w = {.j = j, .record = local ? local : j->record, .recs = recs};
    int rc = tt_store_write(j->r->st, fill, &w);
    free(local);
    free(recs);
    if (rc) {
        json_decref(rec);
        tt_retrieval_job_fail(j, rc == TT_EFULL ? 503 : 500,
                              rc == TT_EFULL ? "the store is full" : "the store refused the write");
        return;
    }
    tt_retrieval_invalidate(j->r, j->tenant, j->collection);
    j->r->stats.documents_ingested++;
    j->r->stats.chunks_written += j->nspans;
    json_object_set_new(rec, "replaced", json_boolean(w.replaced || j->pg_replaced));
    tt_retrieval_job_answer(j, 201, rec);
}

static void ingest_after(uv_work_t *w, int status)
{
    tt_retrieval_job *j = w->data;
    tt_retrieval *r = j->r;
    if (j->tok_loaded && !r->tok) { /* the first tokenizer loaded is kept for every job */
        r->tok = j->tok;
        j->tok_loaded = 0;
    }
    if (tt_retrieval_job_back(j, status))
        return;
    if (j->status) {
        tt_retrieval_job_fail(j, j->status, j->why);
        return;
    }
    if (r->embeddings && r->llm)
        embed_next(j);
    else
        tt_retrieval_write_document(j);
}

int tt_retrieval_ingest(tt_retrieval *r, const char *tenant, const char *body, size_t len,
                        tt_retrieval_done_fn done, void *ud, tt_retrieval_job **out)
{
    if (!r || !done || !out || len > TT_RETRIEVAL_BODY_MAX ||
        tt_name_check(tenant, TT_TENANT_MAX - 1, NULL) != 0)
        return TT_EINVAL;
    tt_retrieval_job *j = tt_retrieval_job_new(r, JOB_INGEST, tenant, done, ud);
    if (!j)
        return TT_ENOMEM;
    j->body = malloc(len + 1);
    if (!j->body) {
        tt_retrieval_job_free(j);
        return TT_ENOMEM;
    }
    memcpy(j->body, body, len);
    j->body_len = len;
    j->opts = r->chunk;
    j->tok = r->tok;
    j->work.data = j;
    if (uv_queue_work(r->loop, &j->work, ingest_work, ingest_after) != 0) {
        tt_retrieval_job_free(j);
        return TT_EIO;
    }
    j->in_pool = 1;
    *out = j;
    return 0;
}
