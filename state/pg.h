/* PostgreSQL on the loop: one libpq connection driven by a uv_poll_t on
 * PQsocket, with the asynchronous API only (PQconnectStart/PQconnectPoll,
 * PQsendQuery/PQsendQueryParams, PQflush, PQconsumeInput, PQisBusy,
 * PQgetResult): nothing here blocks the loop.
 *
 * The connection reconnects by itself with capped exponential backoff and
 * jitter. Its state (down, connecting, up) changes only through one function
 * in pg.c, which counts the change and tells hooks.state. "up" means
 * connected and migrated: after each connection the schema's migrations
 * (opt.migrations, numbered from 1) that the database's `schema_version`
 * table does not list yet run, each in its own transaction under an
 * advisory lock, so two servers starting at once migrate once. A database
 * whose schema_version is newer than this build knows stays down (an
 * incompatible schema is never written to).
 *
 * One query at a time (tt_pg_query): the archive sends one batch, waits for
 * its result, sends the next. A query that takes longer than
 * opt.query_timeout_ms (a stopped or partitioned database) drops the
 * connection, fails the query, and reconnects.
 *
 * With opt.listen, each connection LISTENs on that channel before it is
 * "up", and notifications reach hooks.notify (a connection lost meanwhile
 * may miss some: a listener re-checks what it cares about when it is up).
 *
 * Used from the loop thread only. */
#ifndef TT_PG_H
#define TT_PG_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <uv.h>

typedef enum tt_pg_state {
    TT_PG_DOWN,       /* no connection; the next attempt is scheduled */
    TT_PG_CONNECTING, /* connecting, or migrating the schema */
    TT_PG_UP,         /* connected and migrated: queries run */
    TT_PG_STATE__LAST
} tt_pg_state;

typedef struct tt_pg_options {
    const char *url;               /* libpq connection string or URI (copied) */
    const char *const *migrations; /* migration i+1 is migrations[i] (SQL, no parameters) */
    size_t n_migrations;
    uint64_t connect_timeout_ms; /* one connection attempt, migrations included; 0: 5000 */
    uint64_t query_timeout_ms;   /* one query; 0: 10000 */
    uint64_t backoff_min_ms;     /* first retry delay; 0: 100 */
    uint64_t backoff_max_ms;     /* retry delay cap; 0: 5000 */
    const char *listen; /* LISTEN on this channel after each connection (copied); NULL: none */
} tt_pg_options;

typedef struct tt_pg_hooks {
    void *ud;
    /* The state changed; why is the error that took it down (NULL otherwise). */
    void (*state)(tt_pg_state from, tt_pg_state to, const char *why, void *ud);
    /* A query failed while the connection stayed up (the database refused
     * the statement): why is the database's message. May be NULL. */
    void (*query_failed)(const char *why, void *ud);
    /* A NOTIFY on opt.listen arrived (payload valid during the call). May be NULL. */
    void (*notify)(const char *payload, void *ud);
} tt_pg_hooks;

typedef struct tt_pg_stats {
    uint64_t state;            /* gauge: a tt_pg_state */
    uint64_t state_changes;    /* transitions */
    uint64_t connects;         /* connection attempts */
    uint64_t reconnects;       /* attempts after the first */
    uint64_t connect_failures; /* attempts that did not reach "up" */
    uint64_t queries;          /* queries sent */
    uint64_t query_failures;   /* queries that failed (error, timeout, connection lost) */
    uint64_t ever_up;          /* 1 once the first connection came up */
} tt_pg_stats;

typedef struct tt_pg tt_pg;

/* 0 when url parses as a libpq connection string or URI; else TT_EINVAL with
 * libpq's reason in err. Reaches nothing on the network. */
int tt_pg_check_url(const char *url, char *err, size_t n);

/* Start connecting (TT_EINVAL for an unparsable url). Free with tt_pg_close. */
int tt_pg_new(uv_loop_t *loop, const tt_pg_options *opt, const tt_pg_hooks *hooks, tt_pg **out);

/* Drop the connection (a query in flight fails with TT_EIO) and close the
 * handles; pg is freed once they are closed (uv_run must run). NULL: no-op. */
void tt_pg_close(tt_pg *pg);

tt_pg_state tt_pg_state_get(const tt_pg *pg);
const char *tt_pg_state_name(tt_pg_state s);
/* Why the last attempt or query failed ("" when none did). */
const char *tt_pg_last_error(const tt_pg *pg);
const tt_pg_stats *tt_pg_stats_get(const tt_pg *pg);
/* 1 while a query is in flight. */
int tt_pg_busy(const tt_pg *pg);

/* The query's end: err 0 and res the last result (a PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK; valid only during the call), or a tt_err with res NULL
 * and msg saying why. */
typedef void (*tt_pg_result_fn)(int err, const PGresult *res, const char *msg, void *ud);

/* Send one parameterised statement (text parameters; lengths may be NULL
 * for NUL-terminated values). TT_ECONFLICT when not up or a query is in
 * flight; the callback runs later, never from inside this call. */
int tt_pg_query(tt_pg *pg, const char *sql, int n_params, const char *const *values,
                tt_pg_result_fn cb, void *ud);

/* The delay before retry `attempt` (1: the first retry): min doubled per
 * attempt, capped at max, then jittered down by up to a quarter with rnd
 * (any 32-bit value). Never 0, never above max. */
uint64_t tt_pg_backoff_ms(unsigned attempt, uint64_t min, uint64_t max, uint32_t rnd);

#endif
