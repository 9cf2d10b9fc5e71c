/* PostgreSQL on the loop (see pg.h). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/pg.h"

#define PG_ERR_MAX 256
#define MIGRATE_LOCK "7565746865720001" /* pg_advisory_xact_lock key: "tether" + 1 */

/* What the query in flight is for. */
typedef enum pg_job {
    JOB_NONE,
    JOB_USER,          /* tt_pg_query's */
    JOB_VERSION_TABLE, /* CREATE TABLE IF NOT EXISTS schema_version */
    JOB_VERSION_READ,  /* the highest version applied */
    JOB_MIGRATE,       /* migration number pg->migrating */
    JOB_LISTEN         /* LISTEN opt.listen */
} pg_job;

struct tt_pg {
    uv_loop_t *loop;
    tt_pg_options opt;
    char *url;
    char *listen;
    tt_pg_hooks hooks;
    tt_pg_stats stats;
    tt_pg_state state; /* only through set_state() */
    PGconn *conn;
    uv_poll_t *poll; /* on poll_fd; NULL when there is none */
    int poll_fd, poll_events;
    uv_timer_t timer; /* connect deadline, query deadline or retry delay */
    unsigned attempt; /* failed attempts since the last "up" */
    int connecting;   /* PQconnectPoll is still running */
    pg_job job;
    int flushing; /* PQflush has more to write */
    PGresult *result;
    char result_err[PG_ERR_MAX];
    tt_pg_result_fn cb;
    void *cb_ud;
    size_t migrating;
    int closing;
    int listening; /* LISTEN sent on this connection */
    char last_err[PG_ERR_MAX];
};

static const char VERSION_TABLE_SQL[] =
    "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
    "applied_at timestamptz NOT NULL DEFAULT now())";
static const char VERSION_READ_SQL[] = "SELECT coalesce(max(version), 0) FROM schema_version";

static void start_connect(tt_pg *pg);
static void on_poll(uv_poll_t *h, int status, int events);

const char *tt_pg_state_name(tt_pg_state s)
{
    switch (s) {
    case TT_PG_DOWN:
        return "down";
    case TT_PG_CONNECTING:
        return "connecting";
    case TT_PG_UP:
        return "up";
    default:
        return "unknown";
    }
}

uint64_t tt_pg_backoff_ms(unsigned attempt, uint64_t min, uint64_t max, uint32_t rnd)
{
    if (min == 0)
        min = 1;
    if (max < min)
        max = min;
    uint64_t d = min;
    for (unsigned i = 1; i < attempt && d < max; i++)
        d = d > max / 2 ? max : d * 2;
    if (d > max)
        d = max;
    uint64_t jitter = d / 4 ? rnd % (d / 4 + 1) : 0;
    return d - jitter > 0 ? d - jitter : 1;
}

int tt_pg_check_url(const char *url, char *err, size_t n)
{
    char *msg = NULL;
    PQconninfoOption *o = url && *url ? PQconninfoParse(url, &msg) : NULL;
    if (o) {
        PQconninfoFree(o);
        return 0;
    }
    size_t len = msg ? strlen(msg) : 0;
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    snprintf(err, n, "%.*s", (int)len, msg ? msg : "empty connection string");
    PQfreemem(msg);
    return TT_EINVAL;
}

/* libpq's messages end with a newline: keep one line. */
static void copy_err(char *dst, const char *src)
{
    snprintf(dst, PG_ERR_MAX, "%s", src && *src ? src : "unknown error");
    size_t len = strlen(dst);
    while (len && (dst[len - 1] == '\n' || dst[len - 1] == ' '))
        dst[--len] = '\0';
    for (char *p = dst; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

/* The one place the state changes: counted, then told to hooks.state. */
static void set_state(tt_pg *pg, tt_pg_state to, const char *why)
{
    assert(to < TT_PG_STATE__LAST);
    if (pg->state == to)
        return;
    tt_pg_state from = pg->state;
    pg->state = to;
    pg->stats.state = (uint64_t)to;
    pg->stats.state_changes++;
    if (to == TT_PG_UP)
        pg->stats.ever_up = 1;
    if (pg->hooks.state)
        pg->hooks.state(from, to, why, pg->hooks.ud);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void poll_release(tt_pg *pg)
{
    if (!pg->poll)
        return;
    uv_poll_stop(pg->poll);
    uv_close((uv_handle_t *)pg->poll, free_handle);
    pg->poll = NULL;
    pg->poll_fd = -1;
    pg->poll_events = 0;
}

/* Poll the connection's socket for events (it may change while connecting). */
static int watch(tt_pg *pg, int events)
{
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return TT_EIO;
    if (pg->poll && pg->poll_fd != fd)
        poll_release(pg);
    if (!pg->poll) {
        pg->poll = malloc(sizeof *pg->poll);
        if (!pg->poll)
            return TT_ENOMEM;
        if (uv_poll_init_socket(pg->loop, pg->poll, fd) != 0) {
            free(pg->poll);
            pg->poll = NULL;
            return TT_EIO;
        }
        pg->poll->data = pg;
        pg->poll_fd = fd;
        pg->poll_events = 0;
    }
    if (pg->poll_events == events)
        return 0;
    pg->poll_events = events;
    return uv_poll_start(pg->poll, events, on_poll) == 0 ? 0 : TT_EIO;
}

/* End the query in flight (if any) with err; the callback may send the next. */
static void finish_query(tt_pg *pg, int err, const char *msg)
{
    pg_job job = pg->job;
    tt_pg_result_fn cb = pg->cb;
    void *ud = pg->cb_ud;
    PGresult *res = pg->result;
    pg->job = JOB_NONE;
    pg->cb = NULL;
    pg->result = NULL;
    pg->flushing = 0;
    if (err)
        pg->stats.query_failures++;
    if (job == JOB_USER && cb)
        cb(err, err ? NULL : res, err ? msg : NULL, ud);
    PQclear(res);
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

/* The connection is gone (or never came): fail what was in flight, go down,
 * try again after the backoff. */
static void conn_lost(tt_pg *pg, const char *why)
{
    copy_err(pg->last_err, why);
    if (pg->state != TT_PG_UP && !pg->closing)
        pg->stats.connect_failures++;
    poll_release(pg);
    PQfinish(pg->conn);
    pg->conn = NULL;
    pg->connecting = 0;
    pg->listening = 0;
    uv_timer_stop(&pg->timer);
    if (!pg->closing) {
        pg->attempt++;
        uint64_t delay = tt_pg_backoff_ms(pg->attempt, pg->opt.backoff_min_ms,
                                          pg->opt.backoff_max_ms, (uint32_t)rand());
        (void)uv_timer_start(&pg->timer, on_retry, delay, 0);
        set_state(pg, TT_PG_DOWN, pg->last_err);
    }
    /* Last: down already, so a callback that sends again is refused. */
    if (pg->job != JOB_NONE)
        finish_query(pg, TT_EIO, pg->last_err);
}

static void on_deadline(uv_timer_t *t)
{
    tt_pg *pg = t->data;
    conn_lost(pg, pg->state == TT_PG_UP ? "query timed out" : "connection attempt timed out");
}

/* Send sql (parameterised unless it is a migration: those are several
 * statements and carry no values). */
static int send_sql(tt_pg *pg, pg_job job, const char *sql, int n, const char *const *values)
{
    int ok = job == JOB_MIGRATE ? PQsendQuery(pg->conn, sql)
                                : PQsendQueryParams(pg->conn, sql, n, NULL, values, NULL, NULL, 0);
    if (!ok)
        return TT_EIO;
    pg->job = job;
    pg->result_err[0] = '\0';
    pg->stats.queries++;
    int f = PQflush(pg->conn);
    if (f < 0)
        return TT_EIO;
    pg->flushing = f == 1;
    if (pg->state == TT_PG_UP) /* while connecting, the attempt's deadline runs on */
        (void)uv_timer_start(&pg->timer, on_deadline, pg->opt.query_timeout_ms, 0);
    return watch(pg, UV_READABLE | (pg->flushing ? UV_WRITABLE : 0));
}

static void send_or_lose(tt_pg *pg, pg_job job, const char *sql)
{
    if (send_sql(pg, job, sql, 0, NULL))
        conn_lost(pg, PQerrorMessage(pg->conn));
}

/* The next migration the database lacks, or up. */
static void migrate_next(tt_pg *pg)
{
    if (pg->migrating < pg->opt.n_migrations) {
        char *sql = NULL;
        size_t n = strlen(pg->opt.migrations[pg->migrating]) + 256;
        sql = malloc(n);
        if (!sql) {
            conn_lost(pg, "out of memory");
            return;
        }
        snprintf(sql, n,
                 "BEGIN; SELECT pg_advisory_xact_lock(%s); %s; INSERT INTO schema_version(version) "
                 "VALUES (%zu) ON CONFLICT DO NOTHING; COMMIT",
                 MIGRATE_LOCK, pg->opt.migrations[pg->migrating], pg->migrating + 1);
        send_or_lose(pg, JOB_MIGRATE, sql);
        free(sql);
        return;
    }
    if (pg->listen && pg->job != JOB_LISTEN && !pg->listening) {
        char *sql = PQescapeIdentifier(pg->conn, pg->listen, strlen(pg->listen));
        char cmd[PG_ERR_MAX];
        snprintf(cmd, sizeof cmd, "LISTEN %s", sql ? sql : "\"\"");
        PQfreemem(sql);
        pg->listening = 1;
        send_or_lose(pg, JOB_LISTEN, cmd);
        return;
    }
    uv_timer_stop(&pg->timer);
    pg->attempt = 0;
    pg->last_err[0] = '\0';
    set_state(pg, TT_PG_UP, NULL);
    if (pg->conn && pg->job == JOB_NONE && watch(pg, UV_READABLE))
        conn_lost(pg, "cannot poll the connection");
}

/* An internal query (version table, version, migration) came back. */
static void internal_done(tt_pg *pg, pg_job job, const PGresult *res)
{
    if (job == JOB_VERSION_TABLE) {
        send_or_lose(pg, JOB_VERSION_READ, VERSION_READ_SQL);
        return;
    }
    if (job == JOB_VERSION_READ) {
        long long v = PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : -1;
        if (v < 0 || (unsigned long long)v > pg->opt.n_migrations) {
            char why[PG_ERR_MAX];
            snprintf(why, sizeof why,
                     "the database schema is version %lld, this build knows 1 to %zu", v,
                     pg->opt.n_migrations);
            conn_lost(pg, why);
            return;
        }
        pg->migrating = (size_t)v;
        migrate_next(pg);
        return;
    }
    if (job == JOB_MIGRATE)
        pg->migrating++;
    migrate_next(pg);
}

/* Every result of the query is in: end it. */
static void query_done(tt_pg *pg)
{
    pg_job job = pg->job;
    if (pg->result_err[0]) {
        if (job == JOB_USER) {
            char msg[PG_ERR_MAX];
            memcpy(msg, pg->result_err, sizeof msg);
            memcpy(pg->last_err, msg, sizeof msg);
            if (pg->hooks.query_failed)
                pg->hooks.query_failed(msg, pg->hooks.ud);
            finish_query(pg, TT_EIO, msg);
        } else {
            char why[PG_ERR_MAX + 32];
            snprintf(why, sizeof why, "schema migration: %s", pg->result_err);
            conn_lost(pg, why);
        }
    } else if (job == JOB_USER) {
        finish_query(pg, 0, NULL);
    } else {
        PGresult *res = pg->result;
        pg->result = NULL;
        pg->job = JOB_NONE;
        internal_done(pg, job, res);
        PQclear(res);
    }
    if (pg->conn && pg->job == JOB_NONE) {
        if (pg->state == TT_PG_UP)
            uv_timer_stop(&pg->timer);
        if (watch(pg, UV_READABLE))
            conn_lost(pg, "cannot poll the connection");
    }
}

/* Read what arrived; collect results until the query is over. */
static void on_readable(tt_pg *pg)
{
    if (!PQconsumeInput(pg->conn) || PQstatus(pg->conn) == CONNECTION_BAD) {
        conn_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    PGnotify *nt;
    while (pg->conn && (nt = PQnotifies(pg->conn))) {
        if (pg->hooks.notify && pg->state == TT_PG_UP)
            pg->hooks.notify(nt->extra ? nt->extra : "", pg->hooks.ud);
        PQfreemem(nt);
    }
    if (!pg->conn)
        return;
    while (pg->job != JOB_NONE && !PQisBusy(pg->conn)) {
        PGresult *r = PQgetResult(pg->conn);
        if (!r) {
            query_done(pg);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !pg->result_err[0])
            copy_err(pg->result_err, PQresultErrorMessage(r));
        PQclear(pg->result);
        pg->result = r;
    }
}

static void connect_step(tt_pg *pg)
{
    PostgresPollingStatusType r = PQconnectPoll(pg->conn);
    if (r == PGRES_POLLING_FAILED) {
        conn_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (r == PGRES_POLLING_OK) {
        pg->connecting = 0;
        if (PQsetnonblocking(pg->conn, 1) != 0) {
            conn_lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        send_or_lose(pg, JOB_VERSION_TABLE, VERSION_TABLE_SQL);
        return;
    }
    if (watch(pg, r == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE))
        conn_lost(pg, "cannot poll the connection");
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    tt_pg *pg = h->data;
    if (pg->poll != h || !pg->conn)
        return;
    if (pg->connecting) {
        connect_step(pg);
        return;
    }
    if (status < 0) {
        conn_lost(pg, uv_strerror(status));
        return;
    }
    if (pg->flushing && (events & UV_WRITABLE)) {
        int f = PQflush(pg->conn);
        if (f < 0) {
            conn_lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        pg->flushing = f == 1;
        if (!pg->flushing && watch(pg, UV_READABLE)) {
            conn_lost(pg, "cannot poll the connection");
            return;
        }
    }
    if (events & UV_READABLE)
        on_readable(pg);
}

static void quiet(void *ud, const char *message)
{
    (void)ud;
    (void)message;
}

static void start_connect(tt_pg *pg)
{
    if (pg->closing)
        return;
    pg->stats.connects++;
    if (pg->stats.connects > 1)
        pg->stats.reconnects++;
    set_state(pg, TT_PG_CONNECTING, NULL);
    pg->conn = PQconnectStart(pg->url);
    if (!pg->conn) {
        conn_lost(pg, "out of memory");
        return;
    }
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        conn_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    PQsetNoticeProcessor(pg->conn, quiet, NULL); /* a NOTICE is no error: not to stderr */
    pg->connecting = 1;
    uv_timer_stop(&pg->timer);
    (void)uv_timer_start(&pg->timer, on_deadline, pg->opt.connect_timeout_ms, 0);
    /* As libpq says: first wait for the socket to be writable. */
    if (watch(pg, UV_WRITABLE))
        conn_lost(pg, "cannot poll the connection");
}

int tt_pg_new(uv_loop_t *loop, const tt_pg_options *opt, const tt_pg_hooks *hooks, tt_pg **out)
{
    char err[PG_ERR_MAX];
    if (tt_pg_check_url(opt->url, err, sizeof err))
        return TT_EINVAL;
    tt_pg *pg = calloc(1, sizeof *pg);
    if (!pg || !(pg->url = strdup(opt->url)) ||
        (opt->listen && !(pg->listen = strdup(opt->listen)))) {
        if (pg)
            free(pg->url);
        free(pg);
        return TT_ENOMEM;
    }
    pg->loop = loop;
    pg->opt = *opt;
    pg->opt.url = pg->url;
    pg->opt.listen = pg->listen;
    pg->opt.connect_timeout_ms = opt->connect_timeout_ms ? opt->connect_timeout_ms : 5000;
    pg->opt.query_timeout_ms = opt->query_timeout_ms ? opt->query_timeout_ms : 10000;
    pg->opt.backoff_min_ms = opt->backoff_min_ms ? opt->backoff_min_ms : 100;
    pg->opt.backoff_max_ms = opt->backoff_max_ms ? opt->backoff_max_ms : 5000;
    pg->hooks = *hooks;
    pg->poll_fd = -1;
    (void)uv_timer_init(loop, &pg->timer);
    pg->timer.data = pg;
    start_connect(pg);
    *out = pg;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    tt_pg *pg = h->data;
    free(pg->url);
    free(pg->listen);
    free(pg);
}

void tt_pg_close(tt_pg *pg)
{
    if (!pg || pg->closing)
        return;
    pg->closing = 1;
    pg->hooks.state = NULL;
    pg->hooks.query_failed = NULL;
    pg->hooks.notify = NULL;
    conn_lost(pg, "closed");
    uv_close((uv_handle_t *)&pg->timer, on_timer_closed);
}

int tt_pg_query(tt_pg *pg, const char *sql, int n_params, const char *const *values,
                tt_pg_result_fn cb, void *ud)
{
    if (pg->state != TT_PG_UP || pg->job != JOB_NONE || !pg->conn)
        return TT_ECONFLICT;
    pg->cb = cb;
    pg->cb_ud = ud;
    if (send_sql(pg, JOB_USER, sql, n_params, values)) {
        pg->cb = NULL; /* not sent: the caller hears it now, not through cb */
        pg->job = JOB_NONE;
        conn_lost(pg, PQerrorMessage(pg->conn));
        return TT_EIO;
    }
    return 0;
}

tt_pg_state tt_pg_state_get(const tt_pg *pg)
{
    return pg->state;
}

const char *tt_pg_last_error(const tt_pg *pg)
{
    return pg->last_err;
}

const tt_pg_stats *tt_pg_stats_get(const tt_pg *pg)
{
    return &pg->stats;
}

int tt_pg_busy(const tt_pg *pg)
{
    return pg->job != JOB_NONE;
}
