/* Session ownership across nodes (replicated mode): who may append to a
 * session, and how a session changes hands.
 *
 * PostgreSQL's `owners` table holds, per session, the node that owns it, an
 * epoch and a lease. A node serves a session only after acquiring it:
 * `tt_cluster_acquire` raises the epoch and makes this node the owner, in
 * one statement that also notifies the other nodes (NOTIFY tether_owner,
 * payload "<session> <epoch> <node>"). It then reads the session back (its record,
 * its transcript, its last opt.import_events events) in a second statement,
 * which sees everything the previous owner committed (its batches and the
 * acquire serialise on the owners row), and writes it into this node's
 * LMDB in place of whatever stale copy was there, so the registry loads it
 * as usual.
 *
 * The previous owner hears the notification and drops the session (closing
 * its sockets so clients reconnect); if it is paused or partitioned and does
 * not hear it, its next batch fails the fence (replica.h) and it drops the
 * session then: nothing it appended after losing the session reaches a
 * client. Acquires asked while one is in flight go out together in the next
 * one; several waiters for one session share it.
 *
 * Leases: each replicated batch renews its sessions' leases; a timer renews
 * every lease this node holds (one statement every lease/3). A session whose
 * agent is running (owners.active) and whose lease has expired is an orphan
 * (its node died): a timer looks for them every opt.scan_ms and acquires up
 * to a few at a time, then tells hooks.adopted, which loads it so its agent
 * resumes. Renewal extends only leases still running, and a node starting
 * ends the leases it held before (it holds nothing in memory yet), so its
 * running sessions are adopted again, by it or by another node. A client asking for a session
 * acquires it whether or not its lease has expired: a session follows its clients (the load
 * balancer routes by session id, so they normally land on one node).
 *
 * Uses its own PostgreSQL connection (with LISTEN), so acquires never wait
 * behind a batch. Used from the loop thread only. */
#ifndef TT_CLUSTER_H
#define TT_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "state/pg.h"
#include "state/store.h"

#define TT_CLUSTER_CHANNEL "tether_owner"

typedef struct tt_cluster_options {
    const char *node_id;    /* copied */
    uint64_t lease_ms;      /* 0: 10000 */
    uint64_t scan_ms;       /* orphan scan period; 0: lease_ms / 2 */
    uint64_t import_events; /* events read back on acquire; 0: 1000 */
    size_t max_waiting;     /* acquires waiting at once; 0: 10000 */
} tt_cluster_options;

typedef struct tt_cluster_hooks {
    void *ud;
    /* Another node acquired sid at epoch (a notification): drop it if held
     * at a lower epoch (a late notification of an older acquire changes nothing). */
    void (*moved)(const char *sid, uint64_t epoch, void *ud);
    /* An orphan was acquired and imported: load it so its agent resumes. */
    void (*adopted)(const char *sid, uint64_t epoch, void *ud);
    /* 1 when sid is in this node's memory (never adopted: it is being served). */
    int (*held)(const char *sid, void *ud);
} tt_cluster_hooks;

typedef struct tt_cluster_stats {
    uint64_t acquires;         /* sessions acquired */
    uint64_t acquire_failures; /* acquires that failed (database away, import failed) */
    uint64_t not_found;        /* acquires of sessions the database does not hold */
    uint64_t moved;            /* notifications that took a session from this node */
    uint64_t adopted;          /* orphans taken over */
    uint64_t renewals;         /* lease renewals committed */
} tt_cluster_stats;

typedef struct tt_cluster tt_cluster;

/* pg: a connection opened with listen = TT_CLUSTER_CHANNEL and hooks.notify
 * calling tt_cluster_notify. */
int tt_cluster_new(uv_loop_t *loop, tt_pg *pg, tt_store *store, const tt_cluster_options *opt,
                   const tt_cluster_hooks *hooks, tt_cluster **out);
/* Fails every waiting acquire with TT_EIO; freed once the timers closed. */
void tt_cluster_free(tt_cluster *c);

/* The acquire's end: 0 and the epoch (the session is in LMDB, owned by this
 * node at that epoch), TT_ENOTFOUND (the database has no such session), or
 * TT_EIO / TT_EFULL (the database is away / too many waiting). */
typedef void (*tt_cluster_acquired_fn)(int err, const char *sid, uint64_t epoch, void *ud);
/* Acquire sid; cb runs later, never from inside this call. */
int tt_cluster_acquire(tt_cluster *c, const char *sid, tt_cluster_acquired_fn cb, void *ud);
/* Forget the waiters (acquires and lists) of ud: their cb never runs. */
void tt_cluster_cancel(tt_cluster *c, void *ud);

/* One page of the sessions of tenant and user, in id order after `after`
 * ("" for the first), at most limit: cb gets the rows (session, record
 * JSON, head) of the whole cluster, or an error (TT_EIO: the database is
 * away). cb runs later, never from inside this call. */
typedef void (*tt_cluster_list_fn)(int err, const PGresult *res, void *ud);
int tt_cluster_list(tt_cluster *c, const char *tenant, const char *user, const char *after,
                    size_t limit, tt_cluster_list_fn cb, void *ud);

/* The pg hook: a notification's payload. */
void tt_cluster_notify(const char *payload, void *ud);
/* Start the lease and orphan timers (once the server serves). */
void tt_cluster_start(tt_cluster *c);

const tt_cluster_stats *tt_cluster_stats_get(const tt_cluster *c);

#endif
