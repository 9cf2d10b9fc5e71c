/* Replicated mode (--durability replicated): PostgreSQL is the system of
 * record and the output gate. The registry's group commit still writes each
 * pass to LMDB first (the node's local copy), then hands the pass here; an
 * event reaches a client, and the `ok` of a request that changed a session
 * goes out, only after PostgreSQL committed it. So no socket ever sees what
 * the database may lose.
 *
 * Fencing: every session has an owner row in PostgreSQL (node id, epoch,
 * lease). Every batch checks, in the same statement that writes the events,
 * that this node still owns each session at the epoch it acquired (new
 * sessions claim epoch 1 there). A session whose check fails was taken over
 * by another node: none of its rows in the batch are written, and the
 * registry drops it (hooks.fenced), closing its sockets so the clients
 * reconnect and resume by seq on the new owner.
 *
 * One batch at a time: passes staged while a batch is in flight go into the
 * next one (group commit at the database's pace). A batch that fails (the
 * database away, a timeout) is sent again, unchanged, once the connection is
 * up: every part of it is idempotent (ON CONFLICT), and the fence passes
 * again for the epoch that wrote it. Staged work is capped (opt.max_bytes);
 * the registry stops committing new passes while the cap is reached, so a
 * database that is away stops turns rather than memory.
 *
 * Used from the loop thread only. */
#ifndef TT_REPLICA_H
#define TT_REPLICA_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "state/pg.h"

typedef struct tt_replica_options {
    const char *node_id; /* this node's id in owners.node (copied) */
    uint64_t lease_ms;   /* each batch renews its sessions' leases by this; 0: 10000 */
    size_t max_bytes;    /* staged JSON beyond which tt_replica_full says so; 0: 64 MiB */
    uint64_t retry_ms;   /* after a batch the database refused; 0: 500 */
} tt_replica_options;

typedef struct tt_replica_hooks {
    void *ud;
    /* Events of sid up to head are committed in PostgreSQL at epoch. */
    void (*durable)(const char *sid, uint64_t head, uint64_t epoch, void *ud);
    /* sid is owned by another node now: nothing of it in the batch was written. */
    void (*fenced)(const char *sid, void *ud);
    /* Every pass up to `pass` is in PostgreSQL (or was fenced): replies held
     * for those passes may go out. Called after the batch's durable calls. */
    void (*passes_done)(uint64_t pass, void *ud);
} tt_replica_hooks;

typedef struct tt_replica_stats {
    uint64_t batches;        /* batches committed */
    uint64_t batch_failures; /* batches that failed and were sent again */
    uint64_t events;         /* events in committed batches */
    uint64_t fenced;         /* sessions refused by the fence */
    uint64_t staged_bytes;   /* gauge: JSON staged, not yet committed */
    uint64_t deleted;        /* sessions deleted for good */
    uint64_t delete_refused; /* deletes the fence refused (another node owns the session) */
    /* commit latency (stage to result) histogram, the registry's bounds */
    uint64_t latency_buckets[12];
    double latency_sum;
} tt_replica_stats;

typedef struct tt_replica tt_replica;

/* The schema additions (owners, records, transcript): appended to the
 * archive's migrations (state/archive.h), versions 2 and on. */
extern const char *const tt_replica_migrations[];
extern const size_t tt_replica_n_migrations;

int tt_replica_new(uv_loop_t *loop, tt_pg *pg, const tt_replica_options *opt,
                   const tt_replica_hooks *hooks, tt_replica **out);
/* Close the retry timer; freed once closed. A batch in flight is abandoned
 * (close the pg connection first). NULL: no-op. */
void tt_replica_free(tt_replica *r);

/* One session's share of a committed LMDB pass. */
typedef struct tt_replica_item {
    const char *sid, *tenant, *user, *agent;
    uint64_t epoch;     /* 0: a new session, claimed at epoch 1 */
    uint64_t head;      /* events up to here are staged */
    int active;         /* its agent is running (owners.active: taken over when orphaned) */
    const char *record; /* the session record (JSON), or NULL when unchanged */
    size_t record_len;
    const char *const *events; /* events[i] (JSON text) has seq from + i */
    const size_t *event_lens;
    uint64_t from, n_events;
    const char *const *entries; /* transcript entries, entries[i] has index tfrom + i */
    const size_t *entry_lens;
    uint64_t tfrom, n_entries;
} tt_replica_item;

/* Stage one session (copies everything). TT_ENOMEM only. */
int tt_replica_stage(tt_replica *r, const tt_replica_item *it);
/* Delete sid for good (owners, records, events, transcript, sessions),
 * behind the fence at epoch, after the batch holding its last changes. Its
 * pass is done once the delete ran. TT_ENOMEM only. */
int tt_replica_stage_delete(tt_replica *r, const char *sid, uint64_t epoch);
/* The pass numbered `pass` is staged whole: send when nothing is in flight. */
void tt_replica_pass_end(tt_replica *r, uint64_t pass);
/* 1 while staged work is at opt.max_bytes. */
int tt_replica_full(const tt_replica *r);
/* Send what is staged if the connection is up and nothing is in flight
 * (also called when the connection comes back). */
void tt_replica_kick(tt_replica *r);
/* 1 while anything is staged or in flight. */
int tt_replica_pending(const tt_replica *r);

const tt_replica_stats *tt_replica_stats_get(const tt_replica *r);

#endif
