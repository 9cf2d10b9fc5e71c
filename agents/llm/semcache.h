/* The semantic cache: a question asked again in other words gets the answer
 * the first one got, replayed like an exact hit (cache.h), without a
 * provider call.
 *
 * Which calls: on routes with "semantic_cache.routes.<alias>.enabled", or of
 * a request that opts in (tt_llm_request.semantic: an assistant's
 * "semantic_cache" in the agents file); never on a route with "enabled":
 * false; only when the last message is the user's; not for a conversation
 * with more than one user message nor a call offering tools unless
 * "multi_turn" / "tools" opt in (route or request). The exact cache is
 * asked first; the semantic cache only on its miss.
 *
 * What is compared: the last user message's text (after PII redaction, at
 * most TT_SEMCACHE_TEXT_MAX bytes; a longer one is not looked up), embedded
 * through the routes file's "embed_route" (embed.h: the provider's
 * /embeddings, an HTTP transfer on the loop like every call), cosine
 * against the vectors of the same partition: the SHA-256 of the canonical
 * request (cache.h) without that last message, so the tenant (never
 * shared), route, model, the earlier messages (system prompt included),
 * tools, response schema, temperature and max_tokens must all be equal; a
 * hit is the best vector at or over the threshold ("threshold": the
 * request's, else the route's, else the file's, default 0.92).
 *
 * Where: the vectors in memory (semindex.h: one contiguous float array per
 * partition), parsed, normalised and searched in libuv's thread pool, never
 * on the loop; the answers and vectors in the caller's storage
 * (tt_llm_semcache_store: the server's LMDB, state/semstore.h), read back at
 * start-up. TTL per entry ("ttl_s"), a cap on entries of all tenants
 * ("max_entries"; the least recently used goes). */
#ifndef TT_LLM_SEMCACHE_H
#define TT_LLM_SEMCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agents/llm/call.h"
#include "agents/llm/call_request.h"
#include "agents/llm/route.h"
#include "agents/llm/semindex.h"

#define TT_SEMCACHE_TEXT_MAX (32 * 1024)

typedef struct tt_llm_semcache tt_llm_semcache;
typedef struct tt_llm_semcache_call tt_llm_semcache_call;

/* Where entries are kept. get: 0 and *data (malloc'd; the cache frees it)
 * and *len, or TT_ENOTFOUND (absent or expired). put: keep an entry
 * (copied); an error only means it was not kept. del: forget one. */
typedef struct tt_llm_semcache_store {
    int (*get)(void *ud, const unsigned char id[TT_SEM_KEY_LEN], int64_t now_ms, char **data,
               size_t *len);
    int (*put)(void *ud, const unsigned char id[TT_SEM_KEY_LEN],
               const unsigned char part[TT_SEM_KEY_LEN], int64_t expires_ms, const float *vec,
               size_t dim, const char *data, size_t len);
    void (*del)(void *ud, const unsigned char id[TT_SEM_KEY_LEN]);
    void *ud;
    int64_t (*now_ms)(void *ud); /* the wall clock; NULL: the system's */
} tt_llm_semcache_store;

typedef struct tt_llm_semcache_stats {
    uint64_t hits, misses;
    uint64_t stored;       /* answers handed to the store */
    uint64_t not_stored;   /* refused by the store, or the index out of memory */
    uint64_t embed_errors; /* lookups whose embedding failed (counted as misses) */
    uint64_t timeouts;     /* lookups over "lookup_timeout_ms" (counted as misses) */
    uint64_t removed;      /* entries expired or evicted from the index */
    uint64_t entries;      /* in the index now */
} tt_llm_semcache_stats;

/* store is copied. TT_ENOMEM. */
int tt_llm_semcache_new(const tt_llm_semcache_store *store, tt_llm_semcache **out);
/* Free now, or when the last thread-pool job is back (the loop must run). */
void tt_llm_semcache_free(tt_llm_semcache *s);
/* Bind to the model service (embeddings), its loop and the routes file's
 * settings (copied): 0, TT_EINVAL when set is not configured, TT_ENOMEM. */
int tt_llm_semcache_bind(tt_llm_semcache *s, uv_loop_t *loop, tt_llm_service *svc,
                         const tt_route_semcache *set);
int tt_llm_semcache_bound(const tt_llm_semcache *s);
/* An entry read back from storage (start-up, on the loop, before any call):
 * 0, or an error (the caller deletes it from storage): expired, over
 * max_entries, a vector that does not normalise or of another dimension
 * than its partition's. */
int tt_llm_semcache_load(tt_llm_semcache *s, const unsigned char id[TT_SEM_KEY_LEN],
                         const unsigned char part[TT_SEM_KEY_LEN], int64_t expires_ms,
                         const float *vec, size_t dim);
void tt_llm_semcache_stats_get(tt_llm_semcache *s, tt_llm_semcache_stats *out);

/* ---- one call (cache.c) ---- */

/* NULL when the call is not looked up by meaning (see above). */
tt_llm_semcache_call *tt_llm_semcache_call_new(tt_llm_semcache *s, const tt_route *route,
                                               const tt_llm_request *req);
/* Cancels a lookup in flight (its done is never called). NULL: a no-op. */
void tt_llm_semcache_call_free(tt_llm_semcache_call *sc);
/* The partition and the text from the call's copy of its request (redacted,
 * before it is fitted). Any thread. */
void tt_llm_semcache_call_key(tt_llm_semcache_call *sc, const tt_call_request *r,
                              const char *tenant, const char *route, const char *model);
/* Start the lookup: 1 when started (done follows on the loop, later, with
 * the stored answer (malloc'd, done frees it) on a hit, data NULL on a
 * miss); 0 when there is nothing to look up (no key, or looked up already).
 * The embedding's ledger row is attributed to attr (copied; NULL: none). */
int tt_llm_semcache_call_lookup(tt_llm_semcache_call *sc, const tt_llm_attribution *attr,
                                void (*done)(void *ud, char *data, size_t len), void *ud);
/* Keep the answer (copied) for the text looked up (its vector, when the
 * lookup embedded it): on a miss only. */
void tt_llm_semcache_call_store(tt_llm_semcache_call *sc, const char *data, size_t len);
/* The entry's id (SHA-256 of partition and text; the log line's cache_key). */
const unsigned char *tt_llm_semcache_call_id(const tt_llm_semcache_call *sc);
/* The hit's cosine (for the log line). */
double tt_llm_semcache_call_score(const tt_llm_semcache_call *sc);

#endif
