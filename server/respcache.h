/* The exact response cache's server side: the model service's cache
 * (agents/llm/cache.h) kept in the store (state/rcache.h), its flush timer
 * and its Prometheus counters.
 *
 * The cache is made before the model service (which binds it and reads its
 * settings from the routes file's "cache"); its storage opens with the
 * store, with the routes file's caps. Until then, and when the store cannot
 * be opened, every lookup is a miss and nothing is kept. Queued writes go to
 * LMDB in one transaction every --usage-flush-ms (the ledger's period), at
 * once when TT_RCACHE_QUEUE_MAX wait, and at shutdown.
 *
 * The semantic cache (agents/llm/semcache.h) is made with it and handed to
 * it; with a "semantic_cache" in the routes file it is bound to the model
 * service at start and its writes flushed with the exact cache's; its
 * entries are read back from the store (state/semstore.h: expired ones
 * deleted) in the thread pool, TT_SEM_LOAD_CHUNK at a time, while the server
 * already serves: a lookup before an entry is back misses it (100,000 entries
 * took seconds to read back: tests/bench/README.md). tether_semcache_loading
 * is 1 until the last chunk is in. */
#ifndef TT_RESPCACHE_H
#define TT_RESPCACHE_H

#include <uv.h>

#include "agents/llm/cache.h"
#include "agents/llm/semcache.h"
#include "protocol/buf.h"
#include "state/rcache.h"
#include "state/semstore.h"

#define TT_SEM_LOAD_CHUNK 4096 /* entries read back per read transaction */

struct tt_server;

typedef struct tt_respcache {
    struct tt_server *srv;
    tt_llm_cache *llm; /* handed to the model service */
    tt_rcache *store;  /* NULL until tt_respcache_start() */
    /* the semantic cache (semcache.h), bound and read back from the store in
     * tt_respcache_start() when the routes file has "semantic_cache" */
    tt_llm_semcache *sem;
    tt_semstore *semstore;
    struct sem_loader *loader; /* reading the entries back; NULL when done */
    int stopping;              /* tt_respcache_stop() ran: the loader stops */
    uv_timer_t timer;
    int timer_open;
} tt_respcache;

/* Make the cache (before the model service). TT_ENOMEM. */
int tt_respcache_new(struct tt_server *srv, tt_respcache *rc);
/* Open its storage (after the store and the model service) and start the
 * flush timer. A store error is returned. */
int tt_respcache_start(tt_respcache *rc);
/* Stop the timer and write what is queued (after the model service closed). */
void tt_respcache_stop(tt_respcache *rc);
void tt_respcache_free(tt_respcache *rc);

/* Its lines of the /metrics page: 0, or TT_ENOMEM (the page fails whole). */
int tt_respcache_metrics(const tt_respcache *rc, tt_buf *out);

#endif
