/* The usage archive: the cost ledger's rows (ledger.h) copied to
 * PostgreSQL's `usage` table when a database is configured (archive and
 * replicated modes alike), so a team can query cost with SQL.
 *
 * Like the events archive (archive.h) it runs after the fact and never
 * holds up a call, a commit or a socket: a batch of at most
 * opt.batch_rows rows is read from LMDB (the `usage` database, after the
 * last key archived), sent as one parameterised statement, and the next
 * waits for its result. A database that is slow or away costs no memory
 * per row: the lag grows, then drains.
 *
 * Idempotent: each row's id in PostgreSQL is this store's id (random,
 * made once, kept in LMDB's meta) and the row's LMDB key, and the insert
 * is ON CONFLICT (id) DO NOTHING, so a batch sent again (after a failure,
 * a timeout whose commit went through, or a restart) never doubles a row
 * (the duplicates are counted). The last key archived is kept in meta
 * (`usage_archive\x1fdone`), written after each committed batch; at
 * start-up archiving resumes after it. Ledger keys only grow (ledger.h),
 * so "after the last key" is exactly "not archived yet".
 *
 * Used from the loop thread only. */
#ifndef TT_USAGE_ARCHIVE_H
#define TT_USAGE_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "state/ledger.h"
#include "state/pg.h"
#include "state/store.h"

/* The `usage` table (a migration: server/database.c numbers it after the
 * others). */
extern const char tt_usage_archive_migration[];

typedef struct tt_usage_archive_options {
    size_t batch_rows; /* rows per batch; 0: 1000 */
    uint64_t poll_ms;  /* how often new ledger rows are looked for; 0: 200 */
    uint64_t retry_ms; /* after a batch that failed; 0: 1000 */
} tt_usage_archive_options;

typedef struct tt_usage_archive_stats {
    uint64_t rows;            /* rows written by a batch (not there before) */
    uint64_t duplicates;      /* rows sent that the database already held */
    uint64_t batches;         /* batches committed */
    uint64_t batch_failures;  /* batches that failed (sent again) */
    uint64_t marker_failures; /* LMDB writes of the last key archived that failed */
} tt_usage_archive_stats;

typedef struct tt_usage_archive tt_usage_archive;

/* Read (or make) the store's id and the last key archived; count the rows
 * after it. pg may be NULL (nothing is sent until tt_usage_archive_set_pg). */
int tt_usage_archive_new(uv_loop_t *loop, tt_store *store, const tt_ledger *ledger,
                         const tt_usage_archive_options *opt, tt_usage_archive **out);
void tt_usage_archive_set_pg(tt_usage_archive *a, tt_pg *pg);
/* Close the timers; freed once closed. A batch in flight is abandoned (close
 * the pg connection first). NULL: no-op. */
void tt_usage_archive_free(tt_usage_archive *a);

/* Send the next batch if the database is up and none is in flight. */
void tt_usage_archive_kick(tt_usage_archive *a);

/* What kick sends (also for tests): the next batch as a malloc'd JSON text
 * [{"id": "<store id>-<key hex>", "row": <the ledger row>}, ...] and its
 * row count; NULL and 0 when nothing is pending. TT_ECONFLICT while a batch
 * is outstanding. */
int tt_usage_archive_batch_next(tt_usage_archive *a, char **rows, uint64_t *n_rows);
/* The outstanding batch's end: err 0 and the rows the database did not
 * hold yet, or a failure (sent again after opt.retry_ms). */
void tt_usage_archive_batch_done(tt_usage_archive *a, int err, uint64_t inserted);

const tt_usage_archive_stats *tt_usage_archive_stats_get(const tt_usage_archive *a);
/* Ledger rows not yet archived (queued in memory or written to LMDB), and
 * the age in seconds of the oldest in LMDB (0 when none) at now_ms (wall
 * clock, ms since the epoch). */
void tt_usage_archive_lag(const tt_usage_archive *a, int64_t now_ms, uint64_t *rows,
                          double *seconds);

#endif
