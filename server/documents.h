/* The Documents API (agents/retrieval/retrieval.h), per the API key's tenant:
 *   POST   /v1/documents           ingest (JSON body, up to 12 MiB); 201
 *   GET    /v1/documents           list (?collection=: one collection, else all)
 *   DELETE /v1/documents/{id}      delete (?collection=, default "default")
 *   GET    /v1/documents/{id}?position=N   one passage (?collection=, default
 *                                  "default"): what a citation links to
 *   POST   /v1/documents/search    {query, collection?, k?, min_similarity?}
 * http.c judges the request on its headers (origin, key, size) and hands
 * the tenant and body here; an ingest or search (and with PostgreSQL a list,
 * delete or passage) answers later, through the request's tt_docs_wait. */
#ifndef TT_DOCUMENTS_H
#define TT_DOCUMENTS_H

#include <stddef.h>
#include <jansson.h>
#include <libwebsockets.h>

struct tt_server;
struct tt_retrieval_job;

#define TT_DOCUMENTS_SEARCH_BODY_MAX (64 * 1024)

typedef enum tt_docs_route {
    TT_DOCS_NONE,
    TT_DOCS_COLLECTION, /* /v1/documents */
    TT_DOCS_SEARCH,     /* /v1/documents/search */
    TT_DOCS_ONE,        /* /v1/documents/{id} */
} tt_docs_route;

/* A request waiting for its job: the answer, once done. */
typedef struct tt_docs_wait {
    struct tt_server *srv;
    struct lws *wsi;
    struct tt_retrieval_job *job;
    int done, status;
    json_t *answer;
} tt_docs_wait;

tt_docs_route tt_documents_route(const char *path);
/* The body cap of a POST to route (0: none is accepted). */
size_t tt_documents_body_max(tt_docs_route route);

/* The retrieval service into srv->agent_env.retrieval (after the store and
 * the models): 0, or an error logged. tt_documents_stop frees it. */
int tt_documents_start(struct tt_server *srv);
void tt_documents_stop(struct tt_server *srv);

/* GET /v1/documents (is_delete 0) or DELETE /v1/documents/{id} (path):
 * 0 with w->done set (answered at once: LMDB alone) or the job started
 * (PostgreSQL: w->done later, then the connection asked to write), or
 * TT_ENOMEM. */
int tt_documents_get(struct tt_server *srv, struct lws *wsi, const char *tenant, int is_delete,
                     const char *path, tt_docs_wait *w);
/* GET /v1/documents/{id}?position=N[&collection=]: the chunk's text with
 * its document's title (tt_retrieval_passage_job: PostgreSQL when
 * configured, so any node's document, else LMDB). 0 as tt_documents_get
 * (w->done at once or later: 200, 400, 404, 503 or 500), or a status with
 * *answer at once (400: a bad position; 500). */
int tt_documents_passage(struct tt_server *srv, struct lws *wsi, const char *tenant,
                         const char *path, tt_docs_wait *w, json_t **answer);
/* The documents routes take the web page's token as well as an API key:
 * 1 when path is one of them and authorization a token (or key) that
 * passes, with its tenant and user copied out; else 0. */
int tt_documents_token(struct tt_server *srv, const char *path, const char *authorization,
                       char *tenant, size_t tenant_n, char *user, size_t user_n);
/* A POST's body: 0 and the job started (w->done set later, then the
 * connection asked to write), or a status with *answer at once. */
int tt_documents_post(struct tt_server *srv, struct lws *wsi, const char *tenant, const char *path,
                      const char *body, size_t len, tt_docs_wait *w, json_t **answer);
/* Cancel a waiting job and drop an answer not sent. */
void tt_docs_wait_clear(tt_docs_wait *w);

#endif
