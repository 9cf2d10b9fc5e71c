/* The Documents API (see documents.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "agents/retrieval/index.h"
#include "agents/retrieval/retrieval.h"
#include "state/chunks.h"
#include "server/documents.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/sse_out.h"

static const char PATH[] = "/v1/documents";

tt_docs_route tt_documents_route(const char *path)
{
    size_t n = sizeof PATH - 1;
    if (strncmp(path, PATH, n) != 0)
        return TT_DOCS_NONE;
    if (path[n] == '\0')
        return TT_DOCS_COLLECTION;
    if (path[n] != '/' || !path[n + 1])
        return TT_DOCS_NONE;
    return strcmp(path + n + 1, "search") == 0 ? TT_DOCS_SEARCH : TT_DOCS_ONE;
}

size_t tt_documents_body_max(tt_docs_route route)
{
    return route == TT_DOCS_COLLECTION ? TT_RETRIEVAL_BODY_MAX
           : route == TT_DOCS_SEARCH   ? TT_DOCUMENTS_SEARCH_BODY_MAX
                                       : 0;
}

int tt_documents_start(tt_server *srv)
{
    tt_retrieval_opts o = {
        .loop = &srv->loop,
        .store = srv->store,
        .llm = srv->agent_env.llm && tt_llm_service_configured(srv->agent_env.llm)
                   ? srv->agent_env.llm
                   : NULL,
        .embed_route = srv->cfg.retrieval_route,
        .tokenizer_dir = srv->cfg.tokenizer_dir,
        .chunk = {.size = (uint32_t)srv->cfg.retrieval_chunk_tokens,
                  .overlap = (uint32_t)srv->cfg.retrieval_chunk_overlap},
        .max_doc_bytes = (size_t)srv->cfg.max_document_bytes,
    };
    int rc = tt_retrieval_new(&o, &srv->agent_env.retrieval);
    if (rc == 0 && srv->docs_pg) /* PostgreSQL: the index every node shares */
        rc = tt_retrieval_set_pg(srv->agent_env.retrieval, srv->docs_pg);
    if (rc)
        tt_log(TT_ERROR, "cannot start retrieval",
               json_pack("{s:s, s:s}", "error", tt_strerror(rc), "hint",
                         "--retrieval-chunk-overlap must be at most half of "
                         "--retrieval-chunk-tokens"));
    return rc;
}

void tt_documents_stop(tt_server *srv)
{
    tt_retrieval_free(srv->agent_env.retrieval);
    srv->agent_env.retrieval = NULL;
}

static json_t *error(const char *code, const char *msg)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

static void collection_arg(struct lws *wsi, char *out, size_t n)
{
    char buf[TT_CHUNKS_COLLECTION_MAX + 16];
    const char *v = lws_get_urlarg_by_name(wsi, "collection=", buf, sizeof buf);
    snprintf(out, n, "%s", v ? v : "");
}

int tt_documents_token(tt_server *srv, const char *path, const char *authorization, char *tenant,
                       size_t tenant_n, char *user, size_t user_n)
{
    tt_http_who who;
    if (!tt_documents_route(path) || tt_http_who_get(srv, authorization, &who) != 0)
        return 0;
    snprintf(tenant, tenant_n, "%s", who.tenant);
    snprintf(user, user_n, "%s", who.user);
    tt_http_who_clear(&who);
    return 1;
}

static void on_done(int status, json_t *answer, void *ud)
{
    tt_docs_wait *w = ud;
    w->job = NULL;
    w->done = 1;
    w->status = status;
    w->answer = answer;
    tt_server_want_writable(w->srv, w->wsi);
}

int tt_documents_passage(tt_server *srv, struct lws *wsi, const char *tenant, const char *path,
                         tt_docs_wait *w, json_t **answer)
{
    char coll[TT_CHUNKS_COLLECTION_MAX + 16], pos[32];
    collection_arg(wsi, coll, sizeof coll);
    const char *v = lws_get_urlarg_by_name(wsi, "position=", pos, sizeof pos);
    char *end = NULL;
    unsigned long p = v && *v >= '0' && *v <= '9' ? strtoul(v, &end, 10) : 0;
    if (!end || *end || p > UINT32_MAX) {
        *answer = error("bad_request", "position must be a chunk's place in its document, from 0");
        return 400;
    }
    w->srv = srv;
    w->wsi = wsi;
    int rc = tt_retrieval_passage_job(srv->agent_env.retrieval, tenant,
                                      coll[0] ? coll : TT_RETRIEVAL_COLLECTION_DEFAULT,
                                      path + sizeof PATH, (uint32_t)p, on_done, w, &w->job);
    if (w->done) /* answered at once (LMDB alone, a bad name, no database) */
        w->job = NULL;
    if (rc) {
        *answer = error("internal", "out of memory");
        return 500;
    }
    return 0;
}

/* {query, collection?, k?, min_similarity?} into a search. */
static int search(tt_server *srv, const char *tenant, const char *body, size_t len, tt_docs_wait *w,
                  json_t **answer)
{
    json_error_t err;
    json_t *b = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    const char *query = NULL, *coll = NULL;
    json_int_t k = 0;
    double floor = -1;
    if (!b ||
        json_unpack_ex(b, &err, JSON_STRICT, "{s:s, s?s, s?I, s?F}", "query", &query, "collection",
                       &coll, "k", &k, "min_similarity", &floor) != 0 ||
        k < 0 || k > TT_RINDEX_K_MAX || floor > 1 || (floor < 0 && floor != -1)) {
        json_decref(b);
        *answer = error("bad_request", "body must be {query: string, collection?: string, "
                                       "k?: 1-50, min_similarity?: 0-1}");
        return 400;
    }
    tt_retrieval_query q = {.tenant = tenant,
                            .collection = coll,
                            .text = query,
                            .k = (uint32_t)k,
                            .min_similarity = (float)floor};
    w->srv = srv;
    int rc = tt_retrieval_search(srv->agent_env.retrieval, &q, on_done, w, &w->job);
    json_decref(b);
    if (rc == TT_EINVAL) {
        *answer = error("bad_request", "query must be 1-4096 bytes, collection a usable name");
        return 400;
    }
    if (rc) {
        *answer = error("internal", "the search could not start");
        return 500;
    }
    if (w->done) /* answered at once (keyword only, an error) */
        w->job = NULL;
    return 0;
}

int tt_documents_get(tt_server *srv, struct lws *wsi, const char *tenant, int is_delete,
                     const char *path, tt_docs_wait *w)
{
    char coll[TT_CHUNKS_COLLECTION_MAX + 16];
    collection_arg(wsi, coll, sizeof coll);
    w->srv = srv;
    w->wsi = wsi;
    tt_retrieval *r = srv->agent_env.retrieval;
    int rc =
        is_delete
            ? tt_retrieval_delete_job(r, tenant, coll[0] ? coll : TT_RETRIEVAL_COLLECTION_DEFAULT,
                                      path + sizeof PATH, on_done, w, &w->job)
            : tt_retrieval_list_job(r, tenant, coll[0] ? coll : NULL, on_done, w, &w->job);
    if (w->done) /* answered at once (LMDB alone, a bad name, no database) */
        w->job = NULL;
    return rc;
}

int tt_documents_post(tt_server *srv, struct lws *wsi, const char *tenant, const char *path,
                      const char *body, size_t len, tt_docs_wait *w, json_t **answer)
{
    w->srv = srv;
    w->wsi = wsi;
    if (tt_documents_route(path) == TT_DOCS_SEARCH)
        return search(srv, tenant, body, len, w, answer);
    int rc = tt_retrieval_ingest(srv->agent_env.retrieval, tenant, body, len, on_done, w, &w->job);
    if (rc) {
        *answer = error("internal", "the document could not be queued");
        return 500;
    }
    return 0;
}

void tt_docs_wait_clear(tt_docs_wait *w)
{
    if (w->job)
        tt_retrieval_cancel(w->job);
    json_decref(w->answer);
    memset(w, 0, sizeof *w);
}
