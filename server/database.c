/* PostgreSQL for the server (see database.h). */
#include <inttypes.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/database.h"
#include "server/logging.h"
#include "server/server.h"

static void pg_state_hook(tt_pg_state from, tt_pg_state to, const char *why, void *ud)
{
    tt_server *srv = ud;
    tt_log(to == TT_PG_DOWN ? TT_WARN : TT_INFO, "database",
           json_pack("{s:s, s:s, s:s}", "from", tt_pg_state_name(from), "to", tt_pg_state_name(to),
                     "error", why ? why : "none"));
    if (to == TT_PG_UP)
        tt_archive_kick(srv->archive);
}

/* A statement the database refused (the archive sends it again later). */
static void pg_query_failed_hook(const char *why, void *ud)
{
    static tt_log_throttle throttle;
    tt_server *srv = ud;
    tt_log_throttled(&throttle, uv_now(&srv->loop), TT_WARN, "database refused a statement",
                     json_pack("{s:s}", "error", why));
}

int tt_database_start(tt_server *srv)
{
    if (!srv->cfg.database_url[0])
        return 0;
    tt_archive_options ao = {0};
    int rc = tt_archive_new(&srv->loop, srv->store, &ao, &srv->archive);
    if (rc) {
        tt_log(TT_ERROR, "cannot read the archive's markers",
               json_pack("{s:s}", "error", tt_strerror(rc)));
        return rc;
    }
    tt_pg_options po = {
        .url = srv->cfg.database_url,
        .migrations = tt_archive_migrations,
        .n_migrations = tt_archive_n_migrations,
        .connect_timeout_ms = TT_DB_CONNECT_TIMEOUT_MS,
        .query_timeout_ms = (uint64_t)srv->cfg.database_timeout_ms,
    };
    tt_pg_hooks hooks = {.ud = srv, .state = pg_state_hook, .query_failed = pg_query_failed_hook};
    rc = tt_pg_new(&srv->loop, &po, &hooks, &srv->pg);
    if (rc)
        return rc;
    tt_archive_set_pg(srv->archive, srv->pg);
    tt_registry_set_archive(srv->reg, srv->archive);
    /* The first attempt ends in "up" or in a failure within its timeout. */
    const tt_pg_stats *ps = tt_pg_stats_get(srv->pg);
    while (!ps->ever_up && ps->connect_failures == 0)
        uv_run(&srv->loop, UV_RUN_ONCE);
    if (!ps->ever_up) {
        tt_log(TT_ERROR, "cannot use the database (--database-url); refusing to start",
               json_pack("{s:s}", "error", tt_pg_last_error(srv->pg)));
        return TT_EIO;
    }
    return 0;
}

void tt_database_close(tt_server *srv)
{
    if (srv->reg)
        tt_registry_set_archive(srv->reg, NULL);
    tt_pg_close(srv->pg);
    srv->pg = NULL;
    tt_archive_free(srv->archive);
    srv->archive = NULL;
}

int tt_database_readyz(const tt_server *srv, tt_buf *out)
{
    if (!srv->pg || !srv->archive)
        return 0;
    uint64_t lag = 0;
    double secs = 0;
    tt_archive_lag(srv->archive, uv_now((uv_loop_t *)&srv->loop), &lag, &secs);
    const char *err = tt_pg_last_error(srv->pg);
    return tt_buf_appendf(out,
                          "database: %s\ndurability: local\narchive_lag_events: %" PRIu64
                          "\narchive_lag_seconds: %.3f\ndatabase_error: %s\n",
                          tt_pg_state_name(tt_pg_state_get(srv->pg)), lag, secs,
                          err[0] ? err : "none");
}

static int metric(tt_buf *out, const char *name, const char *type, const char *help, uint64_t v)
{
    return tt_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name,
                          type, name, v);
}

int tt_database_metrics(const tt_server *srv, tt_buf *out)
{
    if (!srv->pg || !srv->archive)
        return 0;
    const tt_pg_stats *ps = tt_pg_stats_get(srv->pg);
    const tt_archive_stats *as = tt_archive_stats_get(srv->archive);
    uint64_t lag = 0;
    double secs = 0;
    tt_archive_lag(srv->archive, uv_now((uv_loop_t *)&srv->loop), &lag, &secs);
    int rc = 0;
    rc |= metric(out, "tether_db_up", "gauge", "1 when PostgreSQL is connected and migrated",
                 ps->state == TT_PG_UP);
    rc |= metric(out, "tether_db_state", "gauge", "PostgreSQL: 0 down, 1 connecting, 2 up",
                 ps->state);
    rc |= metric(out, "tether_db_state_changes_total", "counter",
                 "Changes of tether_db_state (each one is logged)", ps->state_changes);
    rc |= metric(out, "tether_db_reconnects_total", "counter",
                 "Connection attempts after the first", ps->reconnects);
    rc |= metric(out, "tether_db_connect_failures_total", "counter",
                 "Connection attempts that did not come up", ps->connect_failures);
    rc |= metric(out, "tether_db_query_failures_total", "counter",
                 "Queries that failed (error, timeout, connection lost)", ps->query_failures);
    rc |= metric(out, "tether_archive_events_total", "counter",
                 "Events written to PostgreSQL's events table", as->events);
    rc |= metric(out, "tether_archive_duplicates_total", "counter",
                 "Events sent again that PostgreSQL already held", as->duplicates);
    rc |= metric(out, "tether_archive_batches_total", "counter", "Archive batches committed",
                 as->batches);
    rc |= metric(out, "tether_archive_batch_failures_total", "counter",
                 "Archive batches that failed (sent again)", as->batch_failures);
    rc |= metric(out, "tether_archive_lost_events_total", "counter",
                 "Events trimmed from LMDB (--retain-events) before they were archived",
                 as->lost_events);
    rc |=
        metric(out, "tether_archive_lag_events", "gauge", "Committed events not yet archived", lag);
    rc |= tt_buf_appendf(out,
                         "# HELP tether_archive_lag_seconds Age of the oldest committed event "
                         "not yet archived\n# TYPE tether_archive_lag_seconds gauge\n"
                         "tether_archive_lag_seconds %.3f\n",
                         secs);
    return rc ? TT_ENOMEM : 0;
}
