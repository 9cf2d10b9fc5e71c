/* The registry's insides, shared by registry.c (sessions in memory, loading,
 * eviction) and commit.c (the group commit). Private to state/. */
#ifndef TT_REGISTRY_PRIVATE_H
#define TT_REGISTRY_PRIVATE_H

#include "state/map.h"
#include "state/registry.h"

struct tt_archive;

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
    tt_archive *archive; /* archive mode: told of every commit; NULL without a database */
};

/* commit.c: the check handle commits each pass; the idle handle keeps the
 * poll from blocking while anything is dirty. */
void tt_commit_on_check(uv_check_t *h);
void tt_commit_on_idle(uv_idle_t *h);
/* commit.c: free the sessions discarded during this pass. */
void tt_commit_drop_discarded(tt_registry *reg);
/* registry.c: unbind s and free it. */
void tt_registry_session_drop(tt_registry *reg, tt_session *s);

#endif
