/* Inside retrieval: the service and job structures shared by retrieval.c
 * (the service, the index cache, search) and ingest.c (ingest jobs).
 * Nothing outside agents/retrieval/ includes this. */
#ifndef TT_RETRIEVAL_PRIVATE_H
#define TT_RETRIEVAL_PRIVATE_H

#include "agents/llm/embed.h"
#include "agents/llm/tokenizer.h"
#include "agents/retrieval/index.h"
#include "agents/retrieval/pgindex.h"
#include "agents/retrieval/retrieval.h"
#include "state/chunks.h"
#include "state/session.h"

/* One built index of a (tenant, collection), shared by the cache and the
 * searches using it; freed when its last reference goes (loop only). */
typedef struct ix_snap {
    tt_rindex *ix;
    int refs;
    uint32_t *doc_of; /* chunk -> document number */
    uint32_t *pos_of; /* chunk -> position in its document */
    char **doc_ids, **titles;
    size_t ndocs;
} ix_snap;

typedef struct ix_entry {
    char key[TT_TENANT_MAX + TT_CHUNKS_COLLECTION_MAX + 2]; /* tenant \x1f collection */
    ix_snap *snap;
    uint64_t used; /* r->tick when last used (least recently used goes first) */
} ix_entry;

struct tt_retrieval {
    uv_loop_t *loop;
    tt_store *st;
    tt_llm_service *llm;
    char embed_route[128]; /* "" : the first route */
    int embeddings;        /* 0: keyword only */
    char tokenizer_dir[1024];
    tt_tokenizer *tok; /* loaded by the first job that needed it */
    tt_chunk_opts chunk;
    size_t max_doc_bytes;
    ix_entry cache[TT_RETRIEVAL_INDEXES_MAX];
    size_t ncache;
    uint64_t tick;
    uint64_t gen;           /* grows at every write or delete: a load older than it is not cached */
    tt_retrieval_job *jobs; /* every live job */
    tt_retrieval_stats stats; /* the counters (the cache's figures are computed) */
    int closing;              /* tt_retrieval_free called; freed when the last job is back */
    int ending;               /* tt_retrieval_free is ending jobs: it frees r itself after */
    tt_rpg *pg;               /* --database-url: the PostgreSQL index (pgindex.h), or NULL */
    struct pg_cache *pgc;     /* its collections' vectors, loaded for searches (pgsearch.c) */
};

enum { JOB_INGEST, JOB_SEARCH, JOB_OTHER };

struct tt_retrieval_job {
    tt_retrieval *r;
    tt_retrieval_job *prev, *next;
    int kind;
    tt_retrieval_done_fn done;
    void *ud;
    int cancelled;
    int in_pool; /* uv_work_t queued and not back yet */
    uv_work_t work;
    tt_llm_embed *embed; /* an embeddings call in flight */
    uv_timer_t *retry;   /* the wait before a batch is asked again (closed by job_free) */
    int attempt;         /* of the current batch, from 1 */
    char tenant[TT_TENANT_MAX];
    tt_llm_attribution attr; /* who pays for its embeddings calls (the ledger) */
    char collection[TT_CHUNKS_COLLECTION_MAX + 1];
    int status;        /* an error decided in the pool (0: none) */
    const char *why;   /* its message (static) */
    char msg[256];     /* or a message made for it */
    tt_tokenizer *tok; /* r->tok when the job started, or one loaded in the pool */
    int tok_loaded;    /* tok was loaded by this job */
    /* ingest */
    char *body;
    size_t body_len;
    char id[TT_CHUNKS_DOC_ID_MAX + 1];
    char title[TT_RETRIEVAL_TITLE_MAX + 1];
    tt_doc_type type;
    tt_chunk_opts opts;
    size_t nbytes;
    char sha256[65];
    tt_buf text;
    tt_chunk_span *spans;
    size_t nspans;
    uint64_t tokens;
    float *vecs; /* nspans x dims */
    uint32_t dims;
    size_t embedded; /* chunks with a vector so far */
    /* search */
    char *query;
    uint32_t k;
    float floor;
    float *qvec;
    uint32_t qdims;
    ix_snap *snap;
    int snap_new;          /* loaded by this job: built in the pool, cached after */
    struct load_ctx *load; /* while its chunks are read in batches (retrieval.c) */
    char cursor[TT_CHUNKS_CURSOR_MAX];
    size_t cursor_len;
    int restarts;
    int waiting;  /* for another search's load of the same collection (retrieval.c) */
    int waking;   /* marked to be woken (wake_waiters) */
    uint64_t gen; /* r->gen when it was loaded */
    tt_rindex_hit hits[TT_RINDEX_K_MAX];
    size_t nhits;
    /* PostgreSQL (pgdocs.c, pgsearch.c) */
    tt_rpg_op *pgop;                       /* a statement in flight for this job */
    char *record;                          /* ingest: the document's record (JSON text) */
    int pg_written;                        /* ingest: PostgreSQL has the document */
    int pg_replaced;                       /* ingest: ... and had it before */
    struct pg_search *ps;                  /* search: its state (pgsearch.c) */
    char doc_id[TT_CHUNKS_DOC_ID_MAX + 1]; /* delete: the document */
    struct similar_ctx *sim;               /* similar documents (similar.c) */
};

/* A job linked into r->jobs (kind, tenant, done, ud set). */
tt_retrieval_job *tt_retrieval_job_new(tt_retrieval *r, int kind, const char *tenant,
                                       tt_retrieval_done_fn done, void *ud);
/* Unlink and free (and free r when it is closing and this was the last). */
void tt_retrieval_job_free(tt_retrieval_job *job);
/* Free the job, then call its done with (status, answer). */
void tt_retrieval_job_answer(tt_retrieval_job *job, int status, json_t *answer);
/* Call done with an error answer {"error": {code, message}}, then free. */
void tt_retrieval_job_fail(tt_retrieval_job *job, int status, const char *msg);
/* A PostgreSQL statement of job j came back (its operation is over): when
 * err, the job fails with 503 "<what>: <the database's message>" and 1 is
 * returned; else 0. */
int tt_retrieval_job_pg_failed(tt_retrieval_job *j, int err, const char *msg, const char *what);
/* Back on the loop from the job's pool work (status as uv_after_work_cb has
 * it): 1 when the job ended here (cancelled: freed; the server stopping:
 * answered 503), 0 when it goes on. */
int tt_retrieval_job_back(tt_retrieval_job *job, int status);
/* Drop the cached index of (tenant, collection); bump r->gen. */
void tt_retrieval_invalidate(tt_retrieval *r, const char *tenant, const char *collection);
/* The wire code of an HTTP status ("bad_request", "too_large", ...). */
const char *tt_retrieval_code(int status);
/* Parse an embeddings answer's n vectors into vecs (allocated at the first
 * batch with its dims, *dims set). 0, or a message in why. */
int tt_retrieval_parse_vectors(const char *body, size_t len, size_t n, float **vecs, size_t at,
                               size_t total, uint32_t *dims, char *why, size_t wn);

/* Write the ingest job's document (ingest.c): to PostgreSQL first when
 * configured, then to LMDB; answers the job. */
void tt_retrieval_write_document(tt_retrieval_job *j);
/* PostgreSQL (pgdocs.c): write the ingest job's document (record j->record,
 * j->spans, j->vecs); back in tt_retrieval_write_document with pg_written
 * set, or the job failed. 0, or an error (the job not touched). */
int tt_retrieval_pg_put(tt_retrieval_job *j);
/* The unit mean of n vectors of dims floats into out (dims floats). */
void tt_retrieval_mean(const float *vecs, size_t n, uint32_t dims, float *out);
/* A vector as a real[] literal ("{0.1,...}"), malloc'd; NULL when out of memory. */
char *tt_retrieval_real_array(const float *v, uint32_t dims);
/* Search a collection in PostgreSQL (pgsearch.c): j->query, j->qvec, j->k,
 * j->floor; answers the job. */
void tt_retrieval_pg_search(tt_retrieval_job *j);
/* The PostgreSQL search's cache (pgsearch.c). */
void tt_retrieval_pg_cache_free(tt_retrieval *r);
/* A similar-documents job's state (similar.c), freed with the job. */
void tt_retrieval_similar_free(tt_retrieval_job *j);
/* A job's PostgreSQL search state, freed with the job. */
void tt_retrieval_pg_search_free(tt_retrieval_job *j);

#endif
