/* The registry: every session held in memory, the group commit, eviction.
 *
 * Group commit: tt_session_emit() only appends in memory and puts the
 * session on the dirty list. A uv_check handle (with a uv_idle handle keeping
 * the poll from blocking while anything is dirty) commits all dirty sessions
 * in one LMDB write transaction per loop pass, then hands the new events to
 * each attached cursor through hooks.deliver.
 *
 * Sessions not used for idle_evict_ms (no cursors, nothing uncommitted, agent
 * not running) are freed and loaded back from the store on demand. Start-up
 * reads only the small "active" index, to resume agents that were working. */
#ifndef TT_REGISTRY_H
#define TT_REGISTRY_H

#include <uv.h>

#include "state/session.h"
#include "state/store.h"

typedef struct tt_registry_options {
    size_t headroom;          /* bytes reserved in front of each frame (LWS_PRE) */
    size_t memory_events;     /* committed events kept in memory per session */
    uint64_t retain_events;   /* events kept in the store per session; 0 = all */
    uint64_t max_lag_events;  /* a cursor further behind gets a snapshot instead */
    int64_t idle_evict_ms;    /* evict sessions unused this long */
    size_t transcript_max;    /* transcript entries kept (memory and store) */
    int64_t sync_interval_ms; /* fsync period under TT_SYNC_PERIODIC; 0 = none */
} tt_registry_options;

typedef struct tt_registry_hooks {
    void *ud;
    /* A session was created or loaded: attach its agent runtime. `resumed` is 1
     * when it was loaded from the store. Non-zero refuses the session. */
    int (*bind)(tt_session *s, int resumed, void *ud);
    /* The session is about to be freed: release the agent runtime. */
    void (*unbind)(tt_session *s, void *ud);
    /* c has committed events to send. */
    void (*deliver)(tt_cursor *c, void *ud);
    /* A commit just succeeded (called before its events are delivered): replies
     * held until their changes were durable may go out now. May be NULL. */
    void (*committed)(void *ud);
} tt_registry_hooks;

/* Counters, read by /metrics. */
typedef struct tt_registry_stats {
    uint64_t sessions_memory;
    uint64_t events_appended;
    uint64_t commits;
    uint64_t commit_failures;
    uint64_t sessions_loaded;
    uint64_t sessions_evicted;
    /* commit latency histogram: counts of commits <= bound (cumulative at render) */
    uint64_t commit_buckets[12];
    double commit_seconds_sum;
} tt_registry_stats;

extern const double tt_commit_bucket_bounds[12]; /* seconds */

int tt_registry_new(uv_loop_t *loop, tt_store *store, const tt_registry_options *opt,
                    const tt_registry_hooks *hooks, tt_registry **out);

/* Flush, unbind and free every session, stop the handles. The registry is
 * freed once its handles are closed (uv_run must run again). */
void tt_registry_close(tt_registry *reg);

/* Create a session for user; agent binding happens through hooks.bind. */
int tt_registry_create(tt_registry *reg, const char *user, const char *tenant, const char *agent,
                       json_t *input, json_t *metadata, tt_session **out);

/* Find a session in memory or load it from the store. TT_ENOTFOUND if absent. */
int tt_registry_get(tt_registry *reg, const char *sid, tt_session **out);

/* The sessions of owner (see tt_owner_key) as a JSON array of summaries (new reference). */
int tt_registry_list(tt_registry *reg, const char *owner, json_t **out);

/* Commit everything dirty now (normally done once per loop pass). */
int tt_registry_flush(tt_registry *reg);

/* Load every session marked active in the store, so their agents resume. */
int tt_registry_resume_active(tt_registry *reg, size_t *resumed);

/* 1 while some change waits for the next commit. */
int tt_registry_dirty(const tt_registry *reg);

/* The session changed and must be committed this pass. */
void tt_registry_mark_dirty(tt_registry *reg, tt_session *s);

const tt_registry_stats *tt_registry_stats_get(const tt_registry *reg);
const tt_registry_options *tt_registry_options_get(const tt_registry *reg);
uv_loop_t *tt_registry_loop(const tt_registry *reg);
tt_store *tt_registry_store(const tt_registry *reg);
/* 1 while the last commit failed (the server is not ready). */
int tt_registry_failing(const tt_registry *reg);

/* Visit every session held in memory (the registry must not change meanwhile). */
void tt_registry_foreach(tt_registry *reg, void (*fn)(tt_session *s, void *ud), void *ud);

#endif
