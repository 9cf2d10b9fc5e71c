/* The cost ledger: one row per provider attempt and per cache hit, who it
 * was for (tenant, user, API key id, agent, session, feature) and what it
 * cost (tokens in and out, USD, latency, model, route target, outcome), kept
 * in LMDB and summed per UTC day.
 *
 * Rows are queued in memory (tt_ledger_add, no I/O) and written in batches:
 * tt_ledger_flush writes every queued row, and adds it to its day's sums, in
 * one write transaction. The server flushes on a timer and when the queue
 * is full, so a model call never costs a transaction of its own.
 *
 * Two named databases (state/store_usage.c):
 *   usage       big-endian day, ts_ms, seq -> the row as JSON (kept); keys only
 *               grow: a row is written at max(its own day and ts_ms, the last
 *               key's) with the next seq, so a clock that steps back or a
 *               restart never writes before (or over) an earlier row, and the
 *               usage archive (usage_archive.h) reads rows in written order
 *   usage_days  big-endian day + "tenant\x1fuser\x1fkey\x1fagent\x1ffeature\x1fmodel"
 *               -> tt_ledger_sums (each field cut to TT_LEDGER_DIM_MAX bytes)
 * A query reads usage_days only: its cost grows with days x distinct
 * (tenant, user, key, agent, feature, model), never with calls. */
#ifndef TT_LEDGER_H
#define TT_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "protocol/buf.h"
#include "state/store.h"

#define TT_LEDGER_FIELD_MAX 128
#define TT_LEDGER_DIM_MAX 80          /* bytes of each field in a day-sum key */
#define TT_LEDGER_QUEUE_MAX 4096      /* rows queued before a flush is forced */
#define TT_LEDGER_GROUPS_MAX 10000    /* groups in one answer (truncated past) */
#define TT_LEDGER_RANGE_DAYS_MAX 3660 /* days one query may span */
#define TT_LEDGER_KEY_LEN 20          /* a row's key in `usage`: day, ts_ms, seq */

typedef struct tt_ledger tt_ledger;

typedef struct tt_ledger_row {
    int64_t ts_ms; /* wall clock, ms since the epoch (UTC) */
    /* session: what the caller stores for it (the server: "sha256:" and 16
     * hex digits of the id, so a deleted session's id is not kept) */
    char tenant[TT_LEDGER_FIELD_MAX], user[TT_LEDGER_FIELD_MAX], key_id[TT_LEDGER_FIELD_MAX];
    char agent[TT_LEDGER_FIELD_MAX], session[TT_LEDGER_FIELD_MAX], feature[TT_LEDGER_FIELD_MAX];
    char model[TT_LEDGER_FIELD_MAX], route[TT_LEDGER_FIELD_MAX], target[TT_LEDGER_FIELD_MAX];
    char outcome[32]; /* "ok" or an error class */
    int64_t prompt_tokens, completion_tokens, latency_ms;
    double cost_usd;
    int cache_hit;
} tt_ledger_row;

/* One day's sums for one (tenant, user, key, agent, feature, model). */
typedef struct tt_ledger_sums {
    uint64_t calls;      /* provider attempts and cache hits */
    uint64_t errors;     /* attempts whose outcome was not "ok" */
    uint64_t cache_hits; /* answered from a cache (no provider call) */
    int64_t prompt_tokens, completion_tokens;
    int64_t latency_ms; /* summed: the average is latency_ms / calls */
    double cost_usd;
} tt_ledger_sums;

typedef enum tt_ledger_group {
    TT_LEDGER_BY_TENANT,
    TT_LEDGER_BY_USER, /* grouped by tenant and user: equal names of two tenants stay apart */
    TT_LEDGER_BY_KEY,
    TT_LEDGER_BY_AGENT,
    TT_LEDGER_BY_FEATURE,
    TT_LEDGER_BY_MODEL,
    TT_LEDGER_BY_DAY,
    TT_LEDGER_BY__LAST
} tt_ledger_group;

/* "tenant", "user", "key", "agent", "feature", "model", "day": 0 and *out,
 * or TT_EINVAL. */
int tt_ledger_group_parse(const char *s, tt_ledger_group *out);
const char *tt_ledger_group_name(tt_ledger_group g);

/* Days since 1970-01-01 (UTC) of "YYYY-MM-DD" (a real date): 0, or TT_EINVAL. */
int tt_ledger_day_parse(const char *s, int64_t *day);
/* "YYYY-MM-DD" of a day number into out (size >= 11). */
void tt_ledger_day_format(int64_t day, char *out, size_t n);
int64_t tt_ledger_day_of_ms(int64_t ts_ms);

int tt_ledger_new(tt_store *st, tt_ledger **out);
/* Write what is queued, then free. NULL is a no-op. */
void tt_ledger_free(tt_ledger *l);

/* Queue a row (copied). 1 when the queue has reached TT_LEDGER_QUEUE_MAX
 * and the caller should flush now, else 0; TT_ENOMEM if it could not be
 * queued. */
int tt_ledger_add(tt_ledger *l, const tt_ledger_row *row);

/* A row as it is stored: the JSON object {ts_ms, tenant, user, key_id,
 * agent, session, feature, model, route, target, outcome, prompt_tokens,
 * completion_tokens, latency_ms, cost_usd, cache_hit}, compact, appended to
 * out without a json_t (the bytes jansson's json_dumps gives for it). 0, or
 * TT_EINVAL for a field that is not valid UTF-8 or a cost that is not
 * finite (which jansson refuses too), or out's error; out as it was then. */
int tt_ledger_row_json(const tt_ledger_row *r, tt_buf *out);
/* Rows queued and not yet written. */
size_t tt_ledger_queued(const tt_ledger *l);
/* Write every queued row and its day sums in one transaction. On failure
 * the rows stay queued (up to the cap; the oldest are dropped past it and
 * counted) and the store's error is returned. */
int tt_ledger_flush(tt_ledger *l);
/* Rows dropped because the store refused them while the queue was full. */
uint64_t tt_ledger_dropped(const tt_ledger *l);

/* Sums of days [from, to] (day numbers), of tenant only unless tenant is
 * NULL, grouped by g, into *out (new reference):
 *   {"groups": [{<g's fields>, calls, errors, cache_hits, prompt_tokens,
 *                completion_tokens, cost_usd, latency_ms_avg}],
 *    "total": {calls, ...}, "truncated": bool}
 * Groups come sorted by their key. Queued rows are flushed first. */
int tt_ledger_query(tt_ledger *l, int64_t from, int64_t to, const char *tenant, tt_ledger_group g,
                    json_t **out);

/* Rows written since tt_ledger_new (the usage archive's lag counts them). */
uint64_t tt_ledger_written(const tt_ledger *l);

/* Store side (store_usage.c): used by the ledger (and the usage archive's reads). */
int tt_store_put_usage(tt_store_txn *txn, int64_t day, int64_t ts_ms, uint32_t seq,
                       const char *json, size_t len);
int tt_store_add_usage_day(tt_store_txn *txn, int64_t day, const char *dims, size_t dlen,
                           const tt_ledger_sums *add);
typedef int (*tt_store_usage_day_fn)(int64_t day, const char *dims, size_t dlen,
                                     const tt_ledger_sums *sums, void *ctx);
int tt_store_scan_usage_days(tt_store *st, int64_t from, int64_t to, tt_store_usage_day_fn fn,
                             void *ctx);

/* The last key in `usage` (*found 0 when empty). */
int tt_store_usage_last_key(tt_store *st, unsigned char key[TT_LEDGER_KEY_LEN], int *found);
/* fn with each row after key `after` (NULL: from the first), in key order,
 * at most max of them; fn's nonzero return stops the scan and is returned. */
typedef int (*tt_store_usage_row_fn)(const unsigned char *key, const char *json, size_t len,
                                     void *ctx);
int tt_store_read_usage(tt_store *st, const unsigned char *after, size_t max,
                        tt_store_usage_row_fn fn, void *ctx);

#endif
