/* Archive mode (--durability local): LMDB stays the first commit and the
 * clients' source of truth; every committed event is copied to PostgreSQL
 * (tables `sessions` and `events`, see state/README.md) in batches, after
 * the fact, idempotent by (session, seq).
 *
 * What is pending lives in one small entry per session with events not yet
 * archived (its id, the archived and committed seq, the commit times of the
 * pending events, at most ARCHIVE_MARKS of them): never the events' text.
 * A batch is built from LMDB (tt_store_read_events, after the archived seq,
 * at most opt.batch_events events and opt.batch_bytes bytes beyond the
 * first), sent as one parameterised statement (pg.h), and the next waits for
 * its result. So a slow or stopped database costs no memory per event and
 * never holds up a commit or a socket: the lag grows, then drains.
 *
 * Restart: a session with pending events has a meta key "archive\x1f<id>"
 * in LMDB, written in the same commit as its first pending events (value:
 * the seq archived then), rewritten (at most every marker_flush_ms) after
 * batches that leave some pending, deleted when the session is caught up. At start-up the entries
 * are rebuilt from those keys, so archiving resumes where it stopped (a
 * batch that was in flight is sent again; ON CONFLICT makes that harmless).
 *
 * Events trimmed from LMDB by --retain-events before they were archived are
 * skipped and counted (lost_events). Events committed before a database was
 * configured are not archived.
 *
 * Used from the loop thread only. */
#ifndef TT_ARCHIVE_H
#define TT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "state/pg.h"
#include "state/session.h"
#include "state/store.h"

/* The schema: migration i+1 is tt_archive_migrations[i] (pg.h runs them). */
extern const char *const tt_archive_migrations[];
extern const size_t tt_archive_n_migrations;

typedef struct tt_archive_options {
    size_t batch_events;      /* events per batch; 0: 1000 */
    size_t batch_bytes;       /* event bytes per batch beyond its first event; 0: 1 MiB */
    uint64_t retry_ms;        /* after a batch the database refused; 0: 1000 */
    uint64_t marker_flush_ms; /* markers written at most this often; 0: 200 */
} tt_archive_options;

typedef struct tt_archive_stats {
    uint64_t events;          /* events written by a batch (not there before) */
    uint64_t duplicates;      /* events sent that the database already held */
    uint64_t batches;         /* batches committed */
    uint64_t batch_failures;  /* batches that failed (the events are sent again) */
    uint64_t lost_events;     /* trimmed from LMDB before they were archived */
    uint64_t marker_failures; /* LMDB writes of the restart markers that failed */
} tt_archive_stats;

typedef struct tt_archive tt_archive;

/* Rebuild the pending entries from the store's markers. pg may be NULL
 * (nothing is sent until tt_archive_set_pg). Free with tt_archive_free. */
int tt_archive_new(uv_loop_t *loop, tt_store *store, const tt_archive_options *opt,
                   tt_archive **out);
void tt_archive_set_pg(tt_archive *a, tt_pg *pg);
/* Close the retry timer; a is freed once it is closed. NULL: no-op. A batch
 * in flight is abandoned (the pg connection must be closed first). */
void tt_archive_free(tt_archive *a);

/* Called by the registry inside its commit transaction for a session whose
 * events (committed, head] are being written: writes the session's marker
 * when it has none yet. Replayable (writes only). */
int tt_archive_fill(tt_archive *a, tt_store_txn *txn, const tt_session *s);
/* After that commit: events up to head of s are committed. */
void tt_archive_committed(tt_archive *a, const tt_session *s, uint64_t head);
/* Send the next batch if the database is up and none is in flight. */
void tt_archive_kick(tt_archive *a);

/* What tt_archive_kick does without a database (also for tests): the next
 * batch's two statement parameters, malloc'd JSON texts (events: [[session,
 * seq, event], ...]; sessions: [[id, tenant, user, agent, archived_seq],
 * ...]) and its event count; both NULL when nothing is pending. TT_ECONFLICT
 * while a batch is outstanding: one at a time. */
int tt_archive_batch_next(tt_archive *a, char **events, char **sessions, uint64_t *n_events);
/* The outstanding batch's end: err 0 and the events the database did not
 * hold yet (the rest were duplicates), or a failure (sent again after
 * opt.retry_ms, or when the database is up again). */
void tt_archive_batch_done(tt_archive *a, int err, uint64_t inserted);
/* Write the markers of the sessions archived since the last write (one LMDB
 * transaction; tt_archive_batch_done schedules it marker_flush_ms later, so
 * a busy archive costs a few writes a second, not one per batch); the
 * sessions caught up lose their marker and their entry. */
int tt_archive_flush_markers(tt_archive *a);

const tt_archive_stats *tt_archive_stats_get(const tt_archive *a);
/* Committed events not yet archived, and the age in seconds of the oldest of
 * them (0 when none), at now_ms (uv_now). O(sessions pending). */
void tt_archive_lag(const tt_archive *a, uint64_t now_ms, uint64_t *events, double *seconds);

#endif
