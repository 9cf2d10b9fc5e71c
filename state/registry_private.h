/* The registry's insides, shared by registry.c (sessions in memory, loading,
 * eviction) and commit.c (the group commit). Private to state/. */
#ifndef TT_REGISTRY_PRIVATE_H
#define TT_REGISTRY_PRIVATE_H

#include "state/map.h"
#include "protocol/buf.h"
#include "state/registry.h"

struct tt_archive;
struct tt_replica;
struct tt_cluster;

struct tt_registry {
    uv_loop_t *loop;
    tt_store *store;
    tt_registry_options opt;
    tt_registry_hooks hooks;
    tt_map sessions;
    tt_session *dirty;     /* singly linked through next_dirty */
    tt_session *discarded; /* dropped at the end of the pass; also through next_dirty */
    tt_registry_stats stats;
    tt_store_health health; /* only through set_health() */
    int closing;
    int open_handles;
    uv_check_t commit_check; /* commits at the end of each loop pass */
    uv_idle_t commit_idle;   /* keeps poll from blocking while anything is dirty */
    uv_timer_t maintenance;  /* eviction and periodic fsync */
    int64_t last_sync_ms;
    int syncing;                /* a periodic fsync is in the thread pool: never two at once */
    struct tt_archive *archive; /* archive mode: told of every commit; NULL without a database */
    struct tt_replica *replica; /* replicated mode: each pass goes there; NULL otherwise */
    struct tt_cluster *cluster; /* replicated mode: acquires sessions not in memory */
    uint64_t passes;            /* commit passes so far (replies are held for a pass) */
    uint64_t done_pass;         /* passes up to here are committed for good */
    int force_pass;             /* the next check makes a pass even with nothing dirty */
    tt_session *deliver;        /* replicated mode: durable in the batch being reported */
    struct acquire_wait *acquiring; /* replicated mode: callers waiting for an acquire */
    struct list_wait *listing;      /* replicated mode: listings waiting for the database */
    tt_buf records; /* commit.c: the pass's session records, one after another (kept between
                       passes up to RECORDS_KEEP: no allocation per record per pass) */
};

/* The records' buffer: its cap (a record past it is written alone) and
 * what is kept allocated between passes. */
#define TT_RECORDS_CAP ((size_t)256 << 20)
#define TT_RECORDS_KEEP ((size_t)1 << 20)

/* commit.c: the check handle commits each pass; the idle handle keeps the
 * poll from blocking while anything is dirty. */
void tt_commit_on_check(uv_check_t *h);
void tt_commit_on_idle(uv_idle_t *h);
/* commit.c: free the sessions discarded during this pass. */
void tt_commit_drop_discarded(tt_registry *reg);
/* commit.c: s was taken over by another node (replicated mode). */
void tt_commit_session_moved(tt_registry *reg, tt_session *s);
/* registry.c: unbind s and free it. */
void tt_registry_session_drop(tt_registry *reg, tt_session *s);

#endif
