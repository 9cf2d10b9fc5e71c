/* The exact response cache's server side (see respcache.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/logging.h"
#include "server/respcache.h"
#include "server/server.h"

static void flush(tt_respcache *rc)
{
    int err = tt_semstore_flush(rc->semstore);
    if (err)
        tt_log(TT_WARN, "semantic cache not written; kept queued",
               json_pack("{s:s}", "error", tt_strerror(err)));
    if (!rc->store)
        return;
    err = tt_rcache_flush(rc->store);
    if (err)
        tt_log(TT_WARN, "response cache not written; kept queued",
               json_pack("{s:s}", "error", tt_strerror(err)));
}

static int store_get(void *ud, const unsigned char key[TT_LLM_CACHE_KEY_LEN], int64_t now_ms,
                     char **data, size_t *len)
{
    tt_respcache *rc = ud;
    if (!rc->store)
        return TT_ENOTFOUND;
    int err = tt_rcache_get(rc->store, key, now_ms, data, len);
    if (tt_rcache_queued(rc->store) >= TT_RCACHE_QUEUE_MAX)
        flush(rc); /* the hits queued fill it: written now, never dropped */
    return err;
}

static int store_put(void *ud, const unsigned char key[TT_LLM_CACHE_KEY_LEN], int64_t now_ms,
                     int64_t ttl_ms, const char *data, size_t len)
{
    tt_respcache *rc = ud;
    if (!rc->store)
        return TT_EFULL;
    int err = tt_rcache_put(rc->store, key, now_ms, ttl_ms, data, len);
    if (err == 1) {
        flush(rc);
        err = 0;
    }
    return err;
}

static int64_t now_ms(void *ud)
{
    (void)ud;
    return tt_wall_ms();
}

/* ---- the semantic cache's storage ---- */

static int sem_get(void *ud, const unsigned char id[TT_SEM_KEY_LEN], int64_t now_ms, char **data,
                   size_t *len)
{
    tt_respcache *rc = ud;
    return rc->semstore ? tt_semstore_get(rc->semstore, id, now_ms, data, len) : TT_ENOTFOUND;
}

static int sem_put(void *ud, const unsigned char id[TT_SEM_KEY_LEN],
                   const unsigned char part[TT_SEM_KEY_LEN], int64_t expires_ms, const float *vec,
                   size_t dim, const char *data, size_t len)
{
    tt_respcache *rc = ud;
    int err = rc->semstore
                  ? tt_semstore_put(rc->semstore, id, part, expires_ms, vec, dim, data, len)
                  : TT_EFULL;
    if (err == 1)
        flush(rc);
    return err == 1 ? 0 : err;
}

static void sem_del(void *ud, const unsigned char id[TT_SEM_KEY_LEN])
{
    tt_respcache *rc = ud;
    if (rc->semstore && tt_semstore_del(rc->semstore, id) == 1)
        flush(rc);
}

int tt_respcache_new(tt_server *srv, tt_respcache *rc)
{
    rc->srv = srv;
    tt_llm_cache_store ops = {.get = store_get, .put = store_put, .ud = rc, .now_ms = now_ms};
    tt_llm_semcache_store sops = {
        .get = sem_get, .put = sem_put, .del = sem_del, .ud = rc, .now_ms = now_ms};
    int err = tt_llm_cache_new(&ops, &rc->llm);
    if (err == 0)
        err = tt_llm_semcache_new(&sops, &rc->sem);
    tt_llm_cache_set_semantic(rc->llm, rc->sem);
    return err;
}

/* Reading the entries back: one chunk per pool job, each in a read
 * transaction begun and ended on the loop (semstore.h). The index takes
 * entries from the pool thread under its own lock; the ids to delete
 * (expired, unusable) are queued on the loop, where the store's queue is. */
typedef struct sem_loader {
    tt_respcache *rc;
    uv_work_t req;
    tt_semstore_chunk chunk;
    int err;
    size_t loaded, n_gone;
    unsigned char gone[TT_SEM_LOAD_CHUNK][TT_SEMSTORE_KEY_LEN];
} sem_loader;

static int sem_loaded(const unsigned char *id, const unsigned char *part, int64_t expires_ms,
                      const float *vec, size_t dim, void *ud)
{
    sem_loader *l = ud;
    if (tt_llm_semcache_load(l->rc->sem, id, part, expires_ms, vec, dim) == 0)
        l->loaded++;
    else if (l->n_gone < TT_SEM_LOAD_CHUNK) /* expired or unusable: deleted on the loop */
        memcpy(l->gone[l->n_gone++], id, TT_SEMSTORE_KEY_LEN);
    return 0;
}

static void sem_load_work(uv_work_t *req)
{
    sem_loader *l = req->data;
    l->err = tt_semstore_chunk_read(l->rc->semstore, &l->chunk, TT_SEM_LOAD_CHUNK, sem_loaded, l);
}

static void sem_load_done(uv_work_t *req, int status);

static int sem_load_next(sem_loader *l)
{
    int err = tt_semstore_chunk_begin(l->rc->semstore, &l->chunk);
    if (err == 0 && uv_queue_work(&l->rc->srv->loop, &l->req, sem_load_work, sem_load_done) != 0) {
        tt_semstore_chunk_end(l->rc->semstore, &l->chunk);
        err = TT_EINTERNAL;
    }
    return err;
}

static void sem_load_done(uv_work_t *req, int status)
{
    sem_loader *l = req->data;
    tt_respcache *rc = l->rc;
    tt_semstore_chunk_end(rc->semstore, &l->chunk);
    for (size_t i = 0; i < l->n_gone; i++) /* no write in the scan: queued */
        if (tt_semstore_del(rc->semstore, l->gone[i]) == 1)
            flush(rc);
    l->n_gone = 0;
    int err = status ? TT_EINTERNAL : l->err;
    if (err == 0 && !l->chunk.done && !rc->stopping && (err = sem_load_next(l)) == 0)
        return;
    tt_llm_semcache_stats st;
    tt_llm_semcache_stats_get(rc->sem, &st);
    if (err)
        tt_log(
            TT_WARN, "semantic cache not read back whole",
            json_pack("{s:s, s:I}", "error", tt_strerror(err), "entries", (json_int_t)st.entries));
    else
        tt_log(TT_INFO, "semantic cache ready",
               json_pack("{s:I, s:s}", "entries", (json_int_t)st.entries, "embed_route",
                         tt_llm_cache_semantic_settings(rc->llm)->embed_route));
    rc->loader = NULL;
    free(l);
}

/* Bind the semantic cache and start reading its entries back (the routes
 * file has "semantic_cache", a store is open). */
static int sem_start(tt_respcache *rc)
{
    const tt_route_semcache *set = tt_llm_cache_semantic_settings(rc->llm);
    if (!set || !rc->srv->store || !rc->srv->agent_env.llm)
        return 0;
    int err = tt_semstore_new(rc->srv->store, &rc->semstore);
    if (err == 0)
        err = tt_llm_semcache_bind(rc->sem, &rc->srv->loop, rc->srv->agent_env.llm, set);
    sem_loader *l = err ? NULL : calloc(1, sizeof *l);
    if (err == 0 && !l)
        err = TT_ENOMEM;
    if (err == 0) {
        l->rc = rc;
        l->req.data = l;
        err = sem_load_next(l);
    }
    if (err)
        free(l);
    else
        rc->loader = l;
    return err;
}

static void on_timer(uv_timer_t *t)
{
    tt_respcache *rc = t->data;
    if (tt_rcache_queued(rc->store) > 0 || tt_semstore_queued(rc->semstore) > 0)
        flush(rc);
}

int tt_respcache_start(tt_respcache *rc)
{
    const tt_route_cache *set = tt_llm_cache_settings(rc->llm);
    if (!set || !rc->srv->store)
        return 0; /* no model service or no store: every lookup misses */
    int serr = sem_start(rc);
    if (serr)
        return serr;
    tt_rcache_limits lim = {.max_bytes = (uint64_t)set->max_bytes,
                            .max_entries = (uint64_t)set->max_entries,
                            .entry_max_bytes = (uint64_t)set->entry_max_bytes};
    int err = tt_rcache_new(rc->srv->store, &lim, &rc->store);
    if (err)
        return err;
    (void)uv_timer_init(&rc->srv->loop, &rc->timer); /* only fills the struct */
    rc->timer.data = rc;
    rc->timer_open = 1;
    uint64_t every = (uint64_t)rc->srv->cfg.usage_flush_ms;
    return uv_timer_start(&rc->timer, on_timer, every, every) ? TT_EINTERNAL : 0;
}

void tt_respcache_stop(tt_respcache *rc)
{
    rc->stopping = 1; /* a loader still reading stops after its chunk */
    if (rc->timer_open) {
        uv_close((uv_handle_t *)&rc->timer, NULL);
        rc->timer_open = 0;
    }
    if (rc->store || rc->semstore)
        flush(rc);
}

void tt_respcache_free(tt_respcache *rc)
{
    tt_rcache_free(rc->store); /* writes what is queued */
    rc->store = NULL;
    tt_semstore_free(rc->semstore);
    rc->semstore = NULL;
    tt_llm_cache_set_semantic(rc->llm, NULL);
    tt_llm_semcache_free(rc->sem); /* its pool jobs came back: the loop ran to its end */
    rc->sem = NULL;
    tt_llm_cache_free(rc->llm);
    rc->llm = NULL;
}

static int metric(tt_buf *out, const char *name, const char *type, const char *help, uint64_t v)
{
    return tt_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
                          name, (unsigned long long)v);
}

/* Hits and misses per route: the routes file's aliases, a bounded set. */
static int per_route(const tt_llm_cache *c, tt_buf *out, int hits)
{
    const char *name = hits ? "tether_cache_hits_total" : "tether_cache_misses_total";
    int err =
        tt_buf_appendf(out, "# HELP %s Exact response cache %s, by route\n# TYPE %s counter\n",
                       name, hits ? "hits" : "misses", name);
    for (size_t i = 0; err == 0 && i < tt_llm_cache_n_routes(c); i++) {
        uint64_t h, m;
        tt_llm_cache_route_stats(c, i, &h, &m);
        err = tt_buf_appendf(out, "%s{route=\"%s\"} %llu\n", name, tt_llm_cache_route_alias(c, i),
                             (unsigned long long)(hits ? h : m));
    }
    return err;
}

static int sem_metrics(const tt_respcache *rc, tt_buf *out)
{
    tt_llm_semcache_stats s;
    tt_llm_semcache_stats_get(rc->sem, &s);
    int err =
        metric(out, "tether_semcache_loading", "gauge",
               "1 while the semantic cache's entries are being read back", rc->loader != NULL);
    if (err == 0)
        err = metric(out, "tether_semcache_hits_total", "counter",
                     "Semantic cache hits (answered by a question asked in other words)", s.hits);
    if (err == 0)
        err = metric(out, "tether_semcache_misses_total", "counter",
                     "Semantic cache lookups that found nothing close enough", s.misses);
    if (err == 0)
        err = metric(out, "tether_semcache_entries", "gauge", "Semantic cache entries in memory",
                     s.entries);
    if (err == 0)
        err = metric(out, "tether_semcache_stored_total", "counter",
                     "Answers handed to the semantic cache", s.stored);
    if (err == 0)
        err = metric(out, "tether_semcache_removed_total", "counter",
                     "Semantic cache entries expired or evicted", s.removed);
    if (err == 0)
        err = metric(out, "tether_semcache_embed_errors_total", "counter",
                     "Semantic cache lookups whose embedding failed (counted as misses)",
                     s.embed_errors);
    if (err == 0)
        err =
            metric(out, "tether_semcache_timeouts_total", "counter",
                   "Semantic cache lookups over lookup_timeout_ms (counted as misses)", s.timeouts);
    return err;
}

int tt_respcache_metrics(const tt_respcache *rc, tt_buf *out)
{
    tt_llm_cache_stats ls;
    tt_rcache_stats ss;
    tt_llm_cache_stats_get(rc->llm, &ls);
    tt_rcache_stats_get(rc->store, &ss);
    int err = per_route(rc->llm, out, 1);
    if (err == 0)
        err = per_route(rc->llm, out, 0);
    if (err == 0)
        err = metric(out, "tether_cache_entries", "gauge", "Exact response cache entries stored",
                     ss.entries);
    if (err == 0)
        err = metric(out, "tether_cache_bytes", "gauge",
                     "Exact response cache bytes stored (answers, keys, headers)", ss.bytes);
    if (err == 0)
        err = metric(out, "tether_cache_evictions_total", "counter",
                     "Exact response cache entries evicted (LRU, over a cap)", ss.evictions);
    if (err == 0)
        err = metric(out, "tether_cache_expired_total", "counter",
                     "Exact response cache entries removed after their TTL", ss.expired);
    if (err == 0)
        err = metric(out, "tether_cache_stored_total", "counter",
                     "Answers handed to the exact response cache", ls.stored);
    if (err == 0)
        err = metric(out, "tether_cache_not_stored_total", "counter",
                     "Answers not kept (too large, or the store refused)", ls.not_stored);
    if (err == 0)
        err = metric(out, "tether_cache_dropped_total", "counter",
                     "Cache writes dropped while the store refused them", ss.dropped);
    return err ? err : sem_metrics(rc, out);
}
