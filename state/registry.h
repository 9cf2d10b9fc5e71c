/* The registry: every session held in memory, the group commit, eviction.
 *
 * Group commit: tt_session_emit() only appends in memory and puts the
 * session on the dirty list. A uv_check handle (with a uv_idle handle keeping
 * the poll from blocking while anything is dirty) commits all dirty sessions
 * in one LMDB write transaction per loop pass, then hands the new events to
 * each attached cursor through hooks.deliver.
 *
 * One session never stops the others: a session whose record cannot be
 * encoded is left out of the batch, and when the batch's write fails each
 * session is written alone. A session that still cannot be stored has its
 * uncommitted changes discarded: hooks.discard fails the requests waiting on
 * them, and at the end of the loop pass the session leaves memory, so its
 * next use reloads the last committed state (clients never saw the discarded
 * events: cursors only hand out committed ones).
 *
 * A session committed at rest keeps its record and cursors in memory but
 * releases its ring (once its readers have every event) and its transcript's
 * entries, read back from the store when needed (session.h).
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
    size_t headroom;                 /* bytes reserved in front of each frame (LWS_PRE) */
    size_t memory_events;            /* committed events kept in memory per session */
    uint64_t retain_events;          /* events kept in the store per session; 0 = all */
    uint64_t max_lag_events;         /* a cursor further behind gets a snapshot instead */
    int64_t idle_evict_ms;           /* evict sessions unused this long */
    size_t transcript_max;           /* transcript entries kept (memory and store) */
    int64_t sync_interval_ms;        /* fsync period under TT_SYNC_PERIODIC; 0 = none */
    uint64_t max_sessions_per_owner; /* tt_registry_create refuses more (TT_ELIMIT); 0 = no cap */
    /* Tests: replaces tt_store_fdsync for the periodic sync (called in the
     * libuv pool, and once on the loop at close if a sync was in flight). */
    int (*sync_fn)(int fd);
} tt_registry_options;

/* Whether commits are reaching the store. Changed only by one function in
 * registry.c, which counts and reports each change through hooks.health. */
typedef enum tt_store_health {
    TT_STORE_HEALTHY, /* the last commit pass wrote everything */
    TT_STORE_FAILING, /* the last commit pass failed to write some session */
    TT_STORE_FULL,    /* ... because the store was full (map at its maximum, or disk) */
    TT_STORE_HEALTH__LAST
} tt_store_health;

const char *tt_store_health_name(tt_store_health h);

typedef struct tt_registry_hooks {
    void *ud;
    /* A session was created or loaded: attach its agent runtime. `resumed` is 1
     * when it was loaded from the store. Non-zero refuses the session. */
    int (*bind)(tt_session *s, int resumed, void *ud);
    /* The session is about to be freed: release the agent runtime. */
    void (*unbind)(tt_session *s, void *ud);
    /* c has committed events to send. */
    void (*deliver)(tt_cursor *c, void *ud);
    /* Every commit pass up to `pass` ended (called before its events are
     * delivered): every change made before it is committed or was discarded,
     * so the replies held for those passes (tt_registry_next_pass when they
     * were held) may go out. In replicated mode a pass ends when PostgreSQL
     * committed it. May be NULL. */
    void (*committed)(uint64_t pass, void *ud);
    /* s's uncommitted changes are being discarded with err (a tt_err): fail
     * the replies waiting on them and detach s's cursors. Called when the
     * commit fails (and before s is freed, if cursors were attached since).
     * May be NULL only when nothing holds replies or cursors. */
    void (*discard)(tt_session *s, int err, void *ud);
    /* Replicated mode: s was taken over by another node (fenced, or told so):
     * close its clients' sockets so they reconnect to the new owner, and drop
     * the replies held for it (the changes they confirm were refused). s is
     * freed at the end of the loop pass. May be NULL (hooks.discard is used). */
    void (*moved)(tt_session *s, void *ud);
    /* The store's health changed (err: the tt_err that made it fail, 0 when
     * healthy again): log it. May be NULL. */
    void (*health)(tt_store_health from, tt_store_health to, int err, void *ud);
} tt_registry_hooks;

/* Counters, read by /metrics. */
typedef struct tt_registry_stats {
    uint64_t sessions_memory;
    uint64_t events_appended;
    uint64_t commits;
    uint64_t commit_failures;    /* writes (batch or single session) that failed */
    uint64_t commit_store_full;  /* of those, failed because the store was full */
    uint64_t sessions_discarded; /* sessions whose uncommitted changes were thrown away */
    uint64_t sessions_loaded;
    uint64_t sessions_evicted;
    uint64_t
        sessions_rest_released; /* commits after which a session at rest released its transcript */
    /* commit latency histogram: counts of commits <= bound (cumulative at render) */
    uint64_t commit_buckets[12];
    double commit_seconds_sum;
    uint64_t store_health;         /* gauge: a tt_store_health */
    uint64_t store_health_changes; /* transitions between tt_store_health values */
    uint64_t syncs;                /* periodic fsyncs done (in the thread pool) */
    uint64_t sync_failures;        /* ... and failed */
    uint64_t sync_us_total;        /* time they took, in the pool (µs) */
    uint64_t sync_us_max;          /* the longest (µs) */
} tt_registry_stats;

extern const double tt_commit_bucket_bounds[12]; /* seconds */

int tt_registry_new(uv_loop_t *loop, tt_store *store, const tt_registry_options *opt,
                    const tt_registry_hooks *hooks, tt_registry **out);

/* Flush, unbind and free every session, stop the handles. The registry is
 * freed once its handles are closed (uv_run must run again). */
void tt_registry_close(tt_registry *reg);

/* Back-pressure (server/flow.h): the events appended to s, committed or not,
 * that its slowest WebSocket cursor has not handed out yet (a cursor whose
 * owner is closing counts for nothing); and the backlog
 * at which a model call writing into a session pauses:
 * min(TT_FLOW_PAUSE_LAG, max_lag_events / 2). */
#define TT_FLOW_PAUSE_LAG 512
uint64_t tt_session_backlog(const tt_session *s);
uint64_t tt_registry_pause_lag(const tt_registry *reg);

/* 1 while the periodic fsync runs in the thread pool (then the registry
 * syncs once more when it ends, if closing); 0 otherwise or for NULL. */
int tt_registry_syncing(const tt_registry *reg);

/* Create a session for user; agent binding happens through hooks.bind.
 * TT_ELIMIT when the owner already has max_sessions_per_owner sessions. */
int tt_registry_create(tt_registry *reg, const char *user, const char *tenant, const char *agent,
                       json_t *input, json_t *metadata, tt_session **out);

/* The same under a given id (1..TT_SESSION_ID_MAX bytes; the caller checks
 * its characters and that the store has no session of that id:
 * tt_registry_get() said TT_ENOTFOUND). TT_ECONFLICT when one is in memory. */
int tt_registry_create_id(tt_registry *reg, const char *id, const char *user, const char *tenant,
                          const char *agent, json_t *input, json_t *metadata, tt_session **out);

/* Find a session in memory or load it from the store. TT_ENOTFOUND if absent;
 * the discard error while its uncommitted changes are being thrown away. */
int tt_registry_get(tt_registry *reg, const char *sid, tt_session **out);

/* One page of the sessions of owner (see tt_owner_key), in session id order,
 * after the session id `after` (NULL or "": from the first): a JSON array of
 * summaries (new reference), at most limit of them and, beyond the first,
 * no more than max_bytes of encoded JSON. next gets the id to pass as
 * `after` for the following page, or "" when this page is the last. */
int tt_registry_list(tt_registry *reg, const char *owner, const char *after, size_t limit,
                     size_t max_bytes, json_t **out, char next[TT_SESSION_ID_MAX + 1]);

/* tt_registry_list for the sessions of tenant and user, also in replicated
 * mode, where the page comes from PostgreSQL (the whole cluster's sessions;
 * those this node holds described from memory). cb(err, sessions (the
 * callee's reference), next, re, ud) runs now in local mode, later in
 * replicated mode (TT_EIO: the database is away); re is copied.
 * tt_registry_acquire_cancel(reg, ud) forgets it. */
typedef void (*tt_registry_list_fn)(int err, json_t *sessions, const char *next, const char *re,
                                    void *ud);
int tt_registry_list_async(tt_registry *reg, const char *tenant, const char *user,
                           const char *after, size_t limit, size_t max_bytes, const char *re,
                           tt_registry_list_fn cb, void *ud);

/* Delete s for good: commit what waits (s's pending changes too), delete
 * everything the store holds of it in one transaction (it no longer counts
 * towards its owner's cap), then call detach(s, ud), which must detach every
 * cursor of s, and free s (its agent runtime is released through
 * hooks.unbind). On failure (the store error, or s's discard error) nothing
 * was deleted and s stays as it was. */
int tt_registry_delete(tt_registry *reg, tt_session *s, void (*detach)(tt_session *s, void *ud),
                       void *ud);

/* Commit everything dirty now (normally done once per loop pass). Returns 0
 * when everything committed, else the first error (the sessions concerned
 * are being discarded, see above). */
int tt_registry_flush(tt_registry *reg);

/* Load every session marked active in the store, so their agents resume. */
int tt_registry_resume_active(tt_registry *reg, size_t *resumed);

/* Archive mode (state/archive.h): every commit writes the archive's markers
 * in its transaction and tells it the committed seqs. NULL: none. */
struct tt_archive;
void tt_registry_set_archive(tt_registry *reg, struct tt_archive *archive);

/* Replicated mode: PostgreSQL is the system of record (state/replica.h) and
 * sessions are owned (state/cluster.h). Every pass written to LMDB is staged
 * in the replica; its events reach cursors, and hooks.committed runs, once
 * PostgreSQL committed it. A session not in memory must be acquired
 * (tt_registry_acquire) before tt_registry_get finds it; tt_registry_get
 * answers TT_EFULL (unavailable) until then. Resume at start-up is the
 * cluster's orphan scan, not tt_registry_resume_active. */
struct tt_replica;
struct tt_cluster;
void tt_registry_set_replica(tt_registry *reg, struct tt_replica *replica,
                             struct tt_cluster *cluster);
int tt_registry_replicated(const tt_registry *reg);
/* The replica's hooks (ud: the registry). */
void tt_registry_durable(const char *sid, uint64_t head, uint64_t epoch, void *ud);
void tt_registry_fenced(const char *sid, void *ud);
void tt_registry_passes_done(uint64_t pass, void *ud);
/* The cluster's hooks (ud: the registry). */
void tt_registry_moved(const char *sid, uint64_t epoch, void *ud);
void tt_registry_adopted(const char *sid, uint64_t epoch, void *ud);
int tt_registry_held(const char *sid, void *ud);

/* sid is ready for tt_registry_get: 1 now (in memory, or not replicated:
 * loaded on demand), else 0 and cb(err, sid, ud) runs later (err 0: loaded;
 * TT_ENOTFOUND; TT_EIO or TT_EFULL: the database is away or busy), or a
 * tt_err now. tt_registry_acquire_cancel(reg, ud) forgets ud's waits. */
typedef void (*tt_registry_ready_fn)(int err, const char *sid, void *ud);
int tt_registry_acquire(tt_registry *reg, const char *sid, tt_registry_ready_fn cb, void *ud);
void tt_registry_acquire_cancel(tt_registry *reg, void *ud);

/* The pass a reply to a change made before now must wait for (see
 * hooks.committed), or 0 when every such change is committed already. */
uint64_t tt_registry_reply_pass(const tt_registry *reg);

/* 1 while some change waits for the next commit. */
int tt_registry_dirty(const tt_registry *reg);

/* The session changed and must be committed this pass. */
void tt_registry_mark_dirty(tt_registry *reg, tt_session *s);

const tt_registry_stats *tt_registry_stats_get(const tt_registry *reg);
const tt_registry_options *tt_registry_options_get(const tt_registry *reg);
uv_loop_t *tt_registry_loop(const tt_registry *reg);
tt_store *tt_registry_store(const tt_registry *reg);
/* 1 while the last commit pass had a failure (the server is not ready). */
int tt_registry_failing(const tt_registry *reg);

/* Visit every session held in memory (the registry must not change meanwhile). */
void tt_registry_foreach(tt_registry *reg, void (*fn)(tt_session *s, void *ud), void *ud);

#endif
