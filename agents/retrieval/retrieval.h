/* Retrieval: a tenant's documents, cut into chunks, embedded, and searched
 * by keywords and by meaning (agents/retrieval/README.md).
 *
 * Where it sits: in the agents layer (tether_agents), because it needs the
 * providers below it (the BPE tokenizer to count chunk tokens, the
 * embeddings adapter of agents/llm/embed.h) and the store below them
 * (state/chunks.h: documents and chunks in LMDB), and because agents use
 * it (the built-in `retrieve` tool). The server above calls it for the
 * Documents API (server/documents.c). Nothing below calls it.
 *
 *   server/documents.c      POST/GET/DELETE /v1/documents, per API key tenant
 *        |
 *   agents/retrieval/       retrieval.c: ingest jobs, index cache, search jobs
 *        |                  extract.c (text, HTML, PDF), chunker.c, index.c
 *   agents/llm/             tokenizer (counts), embed.c (vectors)
 *        |
 *   state/chunks.c          LMDB "documents" and "chunks"
 *
 * Threads: everything here runs on the loop except three pieces of work
 * that go to libuv's thread pool: parsing an ingest request (JSON, base64),
 * extracting and chunking it (pdftotext runs there too), and building an
 * index and searching it. LMDB is read and written on the loop only.
 *
 * Ingest (tt_retrieval_ingest): request parsed and checked, text extracted,
 * chunked by tokens (thread pool) -> chunk texts embedded in batches of
 * TT_RETRIEVAL_EMBED_BATCH through the embeddings route, one call at a time
 * (loop) -> the document's record and chunks written in one transaction,
 * replacing what the document had -> the collection's cached index is
 * dropped. A failure at any stage changes nothing and answers why.
 *
 * Search (tt_retrieval_search): the query embedded (when the collection's
 * chunks have vectors) -> the collection's index from the cache, or loaded
 * from LMDB on the loop, TT_RETRIEVAL_LOAD_BATCH chunks a pass (LMDB is
 * read on the loop only: its map may grow under another thread's reader),
 * and built (thread pool) -> BM25 + cosine + RRF in the
 * thread pool (agents/retrieval/index.h) -> hits with their document's
 * title and the chunk's position. The index of one (tenant, collection)
 * holds only that pair's chunks: no query can reach another tenant's. */
#ifndef TT_RETRIEVAL_H
#define TT_RETRIEVAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "agents/llm/call.h"
#include "agents/retrieval/chunker.h"
#include "agents/retrieval/extract.h"
#include "state/store.h"

#define TT_RETRIEVAL_DOC_BYTES_DEFAULT (8u << 20) /* a document's bytes (decoded) */
#define TT_RETRIEVAL_TEXT_MAX (4u << 20)          /* its extracted text */
#define TT_RETRIEVAL_BODY_MAX (12u << 20)         /* a POST body (base64 PDF of 8 MiB) */
#define TT_RETRIEVAL_TITLE_MAX 200
#define TT_RETRIEVAL_EMBED_BATCH 64 /* chunk texts per embeddings call */
/* Attempts of one batch: a network failure, 429 or 5xx is tried again after
 * 250 ms, then 1 s (a query's embedding is asked once: its caller retries). */
#define TT_RETRIEVAL_EMBED_ATTEMPTS 3
#define TT_RETRIEVAL_TOP_K_DEFAULT 5
#define TT_RETRIEVAL_MIN_SIMILARITY_DEFAULT 0.7f
#define TT_RETRIEVAL_QUERY_MAX 4096  /* bytes of a query */
#define TT_RETRIEVAL_INDEXES_MAX 64  /* (tenant, collection) indexes kept in memory */
#define TT_RETRIEVAL_LOAD_BATCH 2000 /* chunks read from LMDB per loop pass */
#define TT_RETRIEVAL_COLLECTION_DEFAULT "default"

typedef struct tt_retrieval tt_retrieval;
typedef struct tt_retrieval_job tt_retrieval_job;

typedef struct tt_retrieval_opts {
    uv_loop_t *loop;
    tt_store *store;
    tt_llm_service *llm;       /* NULL: no embeddings (keyword search only) */
    const char *embed_route;   /* route alias; NULL or "": the first; "none": no embeddings */
    const char *tokenizer_dir; /* BPE ranks; NULL or "": estimated token counts */
    tt_chunk_opts chunk;       /* defaults for a request that names none */
    size_t max_doc_bytes;      /* 0: TT_RETRIEVAL_DOC_BYTES_DEFAULT */
} tt_retrieval_opts;

int tt_retrieval_new(const tt_retrieval_opts *o, tt_retrieval **out);
/* Ends every job not cancelled with a 503 ("the server is stopping"; one
 * running in the thread pool when it comes back) and frees what is cached
 * once the last job is back. */
void tt_retrieval_free(tt_retrieval *r);

/* The end of a job, exactly once unless it was cancelled: an HTTP status
 * (200/201 with the answer, else 400/404/413/422/502/503/500 with
 * {"error": {"code", "message"}}) and the answer (a new reference the
 * callee takes). */
typedef void (*tt_retrieval_done_fn)(int status, json_t *answer, void *ud);

/* Ingest a document for tenant: body is the POST's JSON (copied)
 *   {"collection"?: name (default "default"), "id"?: name, "title": text,
 *    "type": "text"|"markdown"|"html"|"pdf", "content"?: string,
 *    "content_base64"?: string (one of the two; PDF needs base64),
 *    "chunk_tokens"?: 16..8192, "chunk_overlap"?: 0..chunk_tokens/2}
 * An id left out is "d_" + 16 hex digits of SHA-256 of the title, so a
 * title ingested again replaces its document. The answer (201) is the
 * document's record plus "replaced": bool. */
int tt_retrieval_ingest(tt_retrieval *r, const char *tenant, const char *body, size_t len,
                        tt_retrieval_done_fn done, void *ud, tt_retrieval_job **out);

/* The search. The answer (200): {"hits": [{"document_id", "title",
 * "collection", "position", "text", "score", "bm25", "cosine"}]} best
 * first; cosine is null for a hit that only BM25 found. */
typedef struct tt_retrieval_query {
    const char *tenant, *collection; /* collection NULL: "default" */
    const char *text;
    uint32_t k;           /* 0: TT_RETRIEVAL_TOP_K_DEFAULT; at most TT_RINDEX_K_MAX */
    float min_similarity; /* < 0: TT_RETRIEVAL_MIN_SIMILARITY_DEFAULT */
    /* Who pays for the query's embedding (its ledger row; copied): NULL, as
     * for an ingestion, is the tenant with agent and feature "documents". */
    const tt_llm_attribution *attr;
} tt_retrieval_query;
int tt_retrieval_search(tt_retrieval *r, const tt_retrieval_query *q, tt_retrieval_done_fn done,
                        void *ud, tt_retrieval_job **out);

/* Counters since the start, and the cached indexes now (for /metrics). */
typedef struct tt_retrieval_stats {
    uint64_t documents_ingested, chunks_written, ingest_failures;
    uint64_t searches, search_failures, embedding_calls;
    uint64_t index_loads; /* collections read from the store and built */
    uint64_t indexes_cached, index_chunks, index_bytes;
} tt_retrieval_stats;
void tt_retrieval_get_stats(const tt_retrieval *r, tt_retrieval_stats *out);

/* Stop a job: its callback is not called. */
void tt_retrieval_cancel(tt_retrieval_job *job);

/* On the loop, at once: the tenant's documents ({"documents": [record...]}),
 * of one collection or of all (collection NULL). 0 or a store error. */
int tt_retrieval_list(tt_retrieval *r, const char *tenant, const char *collection, json_t **out);
/* Delete a document and its chunks: 0 (*found says whether it existed),
 * TT_EINVAL for bad names, or a store error. */
int tt_retrieval_delete(tt_retrieval *r, const char *tenant, const char *collection, const char *id,
                        int *found);

/* On the loop, at once: one passage, the chunk at position of a document
 * ({"document_id", "title", "collection", "position", "chunks", "tokens",
 * "text"}: what a citation names). 0, TT_ENOTFOUND (no such document or
 * position), TT_EINVAL for bad names, or a store error. */
int tt_retrieval_passage(tt_retrieval *r, const char *tenant, const char *collection,
                         const char *id, uint32_t position, json_t **out);

/* The tenant's documents most similar to a text (the document analyst's
 * "related documents"): the text's first TT_RETRIEVAL_SIMILAR_TEXT_MAX
 * bytes embedded, each document's vector (the unit mean of its chunks',
 * kept with it since this was added) compared by cosine, the best k at or
 * above min_similarity. The answer (200): {"documents": [{"document_id",
 * "title", "collection", "similarity"}]} best first. Without PostgreSQL at
 * most TT_RETRIEVAL_SIMILAR_DOCS_MAX documents are read. 0; TT_EINVAL;
 * TT_ENOTFOUND when no embeddings route can embed the text (done not
 * called); TT_ENOMEM. */
#define TT_RETRIEVAL_SIMILAR_TEXT_MAX 8192
#define TT_RETRIEVAL_SIMILAR_DOCS_MAX 5000
typedef struct tt_retrieval_similar_q {
    const char *tenant;
    const char *text;
    uint32_t k; /* 1..TT_RINDEX_K_MAX */
    float min_similarity;
    const tt_llm_attribution
        *attr; /* who pays for the embedding (tenant kept); NULL: "documents" */
} tt_retrieval_similar_q;
int tt_retrieval_similar(tt_retrieval *r, const tt_retrieval_similar_q *q,
                         tt_retrieval_done_fn done, void *ud, tt_retrieval_job **out);

/* PostgreSQL as the index every node shares (pgindex.h; README
 * "PostgreSQL"): pg is borrowed and must outlive r. After it, ingests write
 * PostgreSQL then LMDB, searches and the jobs below read PostgreSQL.
 * TT_EINVAL when already set. */
struct tt_pg;
int tt_retrieval_set_pg(tt_retrieval *r, struct tt_pg *pg);
int tt_retrieval_has_pg(const tt_retrieval *r);

/* List and delete as jobs, for the Documents API: with PostgreSQL they
 * read and write it (a delete removes the document from LMDB too); without,
 * they answer from LMDB at once, through done, before returning (*out
 * NULL). Answers: {"documents": [record...]} (200; at most 10,000), and
 * {"id", "collection", "deleted": true} (200) or 404; 400 for bad names,
 * 503 when the database is away. 0, or TT_ENOMEM (done not called). */
int tt_retrieval_list_job(tt_retrieval *r, const char *tenant, const char *collection,
                          tt_retrieval_done_fn done, void *ud, tt_retrieval_job **out);
int tt_retrieval_delete_job(tt_retrieval *r, const char *tenant, const char *collection,
                            const char *id, tt_retrieval_done_fn done, void *ud,
                            tt_retrieval_job **out);
/* A citation's passage as a job, the same way: with PostgreSQL read from
 * rag_chunks and rag_documents (any node's ingest; "tokens" null for a
 * chunk written before the column existed), without it
 * tt_retrieval_passage at once. 200 with tt_retrieval_passage's answer, 404
 * (no such document or position for this tenant and collection), 400 for
 * bad names, 503 when the database is away, 500. 0, or TT_ENOMEM. */
int tt_retrieval_passage_job(tt_retrieval *r, const char *tenant, const char *collection,
                             const char *id, uint32_t position, tt_retrieval_done_fn done, void *ud,
                             tt_retrieval_job **out);

#endif
