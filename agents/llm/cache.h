/* The exact response cache: a deterministic model call asked again gets the
 * answer it got before, replayed through the same stream, without a
 * provider call.
 *
 * Key: the SHA-256 of the canonical request: a JSON document with its keys
 * sorted at every depth and its numbers normalised (1.0 is 1, -0 is 0), of
 * the tenant (never shared across tenants), the route, the model asked for
 * (the gateway's pass-through, else ""), the messages (a tool call's
 * arguments text parsed as JSON when it is JSON, so its key order does not
 * count either), the tools, the response schema, the temperature and
 * max_tokens. Whether it is streamed is not in the key: a plain answer
 * serves a streamed request and the other way round. A request built with
 * its keys in another order has the same key. The key is computed with the
 * request's first preparation (in libuv's thread pool for a large request,
 * call_request.h), never linear work on the loop for a large request.
 *
 * Which calls: those of temperature 0, on routes where the cache is not
 * turned off; every call of a route with "always" (routes file "cache",
 * route.h) or of a request with cache = 1 (an assistant's opt-in, agent.h). A hit: the stored
 * events (text deltas, tool-call fragments, as the provider sent them) go to the caller in order,
 * then on_done with the stored token counts, cost 0 and cached = 1; the usage hook gets a row with
 * cache_hit = 1, tokens and cost 0 (nothing was spent), and a log line with
 * cache_hit true is written under the same rule as a successful attempt's.
 * A miss: the successful attempt's events are recorded (up to the cache's
 * entry_max_bytes; a larger answer is not kept) and stored with the route's
 * TTL. Storage is the caller's (tt_llm_cache_store): the server keeps
 * answers in LMDB (state/rcache.h), TTL, LRU and caps there.
 *
 * Everything here runs on the loop, except tt_llm_cache_call_key() (any
 * thread, on a call's own copy of its request). */
#ifndef TT_LLM_CACHE_H
#define TT_LLM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/call.h"
#include "agents/llm/call_request.h"
#include "agents/llm/route.h"

#define TT_LLM_CACHE_KEY_LEN 32

typedef struct tt_llm_cache_call tt_llm_cache_call;

/* Where answers are kept. get: 0 and *data (malloc'd; the cache frees it)
 * and *len, or an error (TT_ENOTFOUND: absent or expired). put: keep data
 * (copied) until now_ms + ttl_ms; an error only means it was not kept. */
typedef struct tt_llm_cache_store {
    int (*get)(void *ud, const unsigned char key[TT_LLM_CACHE_KEY_LEN], int64_t now_ms, char **data,
               size_t *len);
    int (*put)(void *ud, const unsigned char key[TT_LLM_CACHE_KEY_LEN], int64_t now_ms,
               int64_t ttl_ms, const char *data, size_t len);
    void *ud;
    int64_t (*now_ms)(void *ud); /* the wall clock (ms since the epoch); NULL: the system's */
} tt_llm_cache_store;

typedef struct tt_llm_cache_stats {
    uint64_t hits, misses;
    uint64_t stored;     /* answers handed to the store */
    uint64_t not_stored; /* answers too large, or refused by the store */
    uint64_t corrupt;    /* stored answers that could not be read (counted as misses) */
} tt_llm_cache_stats;

/* store is copied. TT_ENOMEM. */
int tt_llm_cache_new(const tt_llm_cache_store *store, tt_llm_cache **out);
void tt_llm_cache_free(tt_llm_cache *c);

/* The service (call.c) binds its cache at start: the log and usage hooks
 * and the routes' cache settings (route aliases are copied for counters). */
void tt_llm_cache_bind(tt_llm_cache *c, const tt_llm_service_options *opt, const tt_routes *routes);
/* The semantic cache asked after a miss (semcache.h; NULL: none). */
struct tt_llm_semcache;
void tt_llm_cache_set_semantic(tt_llm_cache *c, struct tt_llm_semcache *sem);
/* The routes file's "semantic_cache" bound, or NULL (none, or before a bind). */
const tt_route_semcache *tt_llm_cache_semantic_settings(const tt_llm_cache *c);
/* The settings bound (the routes file's "cache"), or NULL before a bind. */
const tt_route_cache *tt_llm_cache_settings(const tt_llm_cache *c);

void tt_llm_cache_stats_get(const tt_llm_cache *c, tt_llm_cache_stats *out);
/* Hit and miss counters per route, by the routes' order. */
size_t tt_llm_cache_n_routes(const tt_llm_cache *c);
const char *tt_llm_cache_route_alias(const tt_llm_cache *c, size_t i);
void tt_llm_cache_route_stats(const tt_llm_cache *c, size_t i, uint64_t *hits, uint64_t *misses);

/* The canonical text of a request (see above): 0 and *out (malloc'd), or
 * TT_ENOMEM. temperature < 0 (not sent) is null. */
int tt_llm_cache_canonical(const tt_call_request *r, const char *tenant, const char *route,
                           const char *model, char **out, size_t *len);
/* Its SHA-256. */
int tt_llm_cache_key(const tt_call_request *r, const char *tenant, const char *route,
                     const char *model, unsigned char key[TT_LLM_CACHE_KEY_LEN]);

/* ---- one call (call.c) ---- */

/* The cache's part of a call of route (the service's routes) asking for
 * model ("" or NULL: the route's own), or NULL when the call is not cached:
 * neither by the exact cache (no cache, the cache or the route turned off, a
 * temperature other than 0 on a route without "always" and req->cache 0)
 * nor by the semantic one (semcache.h). */
tt_llm_cache_call *tt_llm_cache_call_new(tt_llm_cache *c, const tt_routes *routes,
                                         const tt_route *route, const char *model,
                                         const tt_llm_request *req);
void tt_llm_cache_call_free(tt_llm_cache_call *cc);
/* Compute the key from the call's copy of its request (before it is fitted
 * or trimmed). Any thread. NULL is a no-op. */
void tt_llm_cache_call_key(tt_llm_cache_call *cc, const tt_call_request *r);
/* An event of attempt number `attempt` (a new number starts the record again). */
void tt_llm_cache_record(tt_llm_cache_call *cc, int attempt, const tt_llm_event *ev);
/* The call succeeded with r: keep what was recorded. */
void tt_llm_cache_store_result(tt_llm_cache_call *cc, const tt_llm_result *r);
/* Look the key up (once), then on a miss ask the semantic cache
 * (semcache.h); on a hit pass the stored events to on_event(call, ev, ud):
 * 1 when all were (or a hook cancelled the call meanwhile): r is filled and
 * the caller ends the call; 2 when the caller paused the replay
 * (tt_llm_cache_pause) before its end; 3 when a semantic lookup is in
 * flight: resume(call) follows from the loop (unless the call is cancelled
 * first) and the caller calls this again then (a hit is replayed, else 0).
 * 0: a miss (or no key, or looked up already, or cc NULL). */
int tt_llm_cache_replay(tt_llm_cache_call *cc, tt_llm_call *call,
                        void (*on_event)(tt_llm_call *, const tt_llm_event *, void *), void *ud,
                        tt_llm_result *r, void (*resume)(tt_llm_call *));
/* Pause or resume a replay (back-pressure: the gateway's output buffer).
 * Resumed, the rest is passed on now: 1 when the replay then ended (r, as
 * given to tt_llm_cache_replay, is filled: the caller ends the call), 0
 * otherwise (no replay waiting, a pause, or paused again). */
int tt_llm_cache_pause(tt_llm_cache_call *cc, int paused);
/* A cancel of the call: 1 when a replay is passing events on (it stops, and
 * whoever runs it ends the call), else 0 (the caller ends it). */
int tt_llm_cache_cancel(tt_llm_cache_call *cc);

#endif
