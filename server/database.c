/* PostgreSQL for the server (see database.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"
#include "agents/retrieval/pgindex.h"
#include "server/database.h"
#include "server/logging.h"
#include "server/server.h"
#include "state/cluster.h"
#include "state/registry.h"
#include "state/replica.h"
#include "state/usage_archive.h"

static void pg_state_hook(tt_pg_state from, tt_pg_state to, const char *why, void *ud)
{
    tt_server *srv = ud;
    tt_log(to == TT_PG_DOWN ? TT_WARN : TT_INFO, "database",
           json_pack("{s:s, s:s, s:s}", "from", tt_pg_state_name(from), "to", tt_pg_state_name(to),
                     "error", why ? why : "none"));
    if (to == TT_PG_UP) {
        tt_archive_kick(srv->archive);
        tt_replica_kick(srv->replica);
        tt_usage_archive_kick(srv->usage_archive);
    }
}

/* A statement the database refused (the archive sends it again later). */
static void pg_query_failed_hook(const char *why, void *ud)
{
    static tt_log_throttle throttle;
    tt_server *srv = ud;
    tt_log_throttled(&throttle, uv_now(&srv->loop), TT_WARN, "database refused a statement",
                     json_pack("{s:s}", "error", why));
}

/* The archive's schema, the replicated mode's tables, the usage table, then
 * retrieval's: one numbering (a new migration goes last). */
static const char *migrations[16];
static size_t n_migrations;

static void collect_migrations(void)
{
    n_migrations = 0;
    for (size_t i = 0; i < tt_archive_n_migrations; i++)
        migrations[n_migrations++] = tt_archive_migrations[i];
    for (size_t i = 0; i < tt_replica_n_migrations; i++)
        migrations[n_migrations++] = tt_replica_migrations[i];
    migrations[n_migrations++] = tt_usage_archive_migration;
    for (size_t i = 0; i < tt_rpg_n_migrations; i++)
        migrations[n_migrations++] = tt_rpg_migrations[i];
}

static int replicated(const tt_server *srv)
{
    return strcmp(srv->cfg.durability, "replicated") == 0;
}

/* Wait for the first attempt of pg: "up", or a failure within its timeout. */
static int wait_first(tt_server *srv, tt_pg *pg)
{
    const tt_pg_stats *ps = tt_pg_stats_get(pg);
    while (!ps->ever_up && ps->connect_failures == 0)
        uv_run(&srv->loop, UV_RUN_ONCE);
    if (!ps->ever_up) {
        tt_log(TT_ERROR, "cannot use the database (--database-url); refusing to start",
               json_pack("{s:s}", "error", tt_pg_last_error(pg)));
        return TT_EIO;
    }
    return 0;
}

static void cluster_notify(const char *payload, void *ud)
{
    tt_server *srv = ud;
    if (srv->cluster)
        tt_cluster_notify(payload, srv->cluster);
}

static int open_pg(tt_server *srv, const char *listen, tt_pg **out)
{
    tt_pg_options po = {
        .url = srv->cfg.database_url,
        .migrations = migrations,
        .n_migrations = n_migrations,
        .connect_timeout_ms = TT_DB_CONNECT_TIMEOUT_MS,
        .query_timeout_ms = (uint64_t)srv->cfg.database_timeout_ms,
        .listen = listen,
    };
    tt_pg_hooks hooks = {.ud = srv, .state = pg_state_hook, .query_failed = pg_query_failed_hook};
    if (listen)
        hooks.notify = cluster_notify; /* to the cluster, once it exists */
    int rc = tt_pg_new(&srv->loop, &po, &hooks, out);
    return rc ? rc : wait_first(srv, *out);
}

/* Replicated mode: the replica on the first connection, the cluster on a
 * second one that LISTENs for ownership changes. */
static int start_replicated(tt_server *srv)
{
    uint64_t lease = (uint64_t)srv->cfg.lease_ms;
    tt_replica_options ro = {.node_id = srv->cfg.node_id, .lease_ms = lease};
    tt_replica_hooks rh = {.ud = srv->reg,
                           .durable = tt_registry_durable,
                           .fenced = tt_registry_fenced,
                           .passes_done = tt_registry_passes_done};
    int rc = tt_replica_new(&srv->loop, srv->pg, &ro, &rh, &srv->replica);
    if (rc == 0)
        rc = open_pg(srv, TT_CLUSTER_CHANNEL, &srv->owner_pg);
    if (rc)
        return rc;
    tt_cluster_options co = {.node_id = srv->cfg.node_id, .lease_ms = lease};
    tt_cluster_hooks ch = {.ud = srv->reg,
                           .moved = tt_registry_moved,
                           .adopted = tt_registry_adopted,
                           .held = tt_registry_held};
    rc = tt_cluster_new(&srv->loop, srv->owner_pg, srv->store, &co, &ch, &srv->cluster);
    if (rc)
        return rc;
    tt_registry_set_replica(srv->reg, srv->replica, srv->cluster);
    tt_cluster_start(srv->cluster);
    tt_log(TT_INFO, "replicated mode",
           json_pack("{s:s, s:I}", "node", srv->cfg.node_id, "lease_ms", (json_int_t)lease));
    return 0;
}

/* The ledger's rows to the `usage` table, on a connection of their own (the
 * events' batches never wait for them, nor they for the events'). */
static int start_usage_archive(tt_server *srv)
{
    if (!srv->usage.ledger)
        return 0;
    tt_usage_archive_options uo = {0};
    int rc =
        tt_usage_archive_new(&srv->loop, srv->store, srv->usage.ledger, &uo, &srv->usage_archive);
    if (rc) {
        tt_log(TT_ERROR, "cannot read the usage archive's marker",
               json_pack("{s:s}", "error", tt_strerror(rc)));
        return rc;
    }
    rc = open_pg(srv, NULL, &srv->usage_pg);
    if (rc)
        return rc;
    tt_usage_archive_set_pg(srv->usage_archive, srv->usage_pg);
    tt_usage_archive_kick(srv->usage_archive);
    return 0;
}

int tt_database_start(tt_server *srv)
{
    if (!srv->cfg.database_url[0])
        return 0;
    collect_migrations();
    int rc = open_pg(srv, NULL, &srv->pg);
    if (rc == 0) /* retrieval's statements on their own connection (documents.c) */
        rc = open_pg(srv, NULL, &srv->docs_pg);
    if (rc == 0)
        rc = start_usage_archive(srv);
    if (rc)
        return rc;
    if (replicated(srv))
        return start_replicated(srv);
    tt_archive_options ao = {0};
    rc = tt_archive_new(&srv->loop, srv->store, &ao, &srv->archive);
    if (rc) {
        tt_log(TT_ERROR, "cannot read the archive's markers",
               json_pack("{s:s}", "error", tt_strerror(rc)));
        return rc;
    }
    tt_archive_set_pg(srv->archive, srv->pg);
    tt_registry_set_archive(srv->reg, srv->archive);
    tt_archive_kick(srv->archive); /* the connection came up before the archive existed */
    return 0;
}

void tt_database_close(tt_server *srv)
{
    if (srv->reg) {
        tt_registry_set_archive(srv->reg, NULL);
        tt_registry_set_replica(srv->reg, NULL, NULL);
    }
    tt_pg_close(srv->pg);
    tt_pg_close(srv->owner_pg);
    tt_pg_close(srv->usage_pg); /* its batch in flight fails now, before the archive goes */
    tt_pg_close(srv->docs_pg);
    srv->pg = srv->owner_pg = srv->usage_pg = srv->docs_pg = NULL;
    tt_usage_archive_free(srv->usage_archive);
    srv->usage_archive = NULL;
    tt_archive_free(srv->archive);
    tt_replica_free(srv->replica);
    tt_cluster_free(srv->cluster);
    srv->archive = NULL;
    srv->replica = NULL;
    srv->cluster = NULL;
}

static int events_readyz(const tt_server *srv, tt_buf *out)
{
    if (!srv->pg)
        return 0;
    const char *err = tt_pg_last_error(srv->pg);
    if (srv->replica) {
        const tt_replica_stats *rs = tt_replica_stats_get(srv->replica);
        return tt_buf_appendf(out,
                              "database: %s\nownership_database: %s\ndurability: replicated\n"
                              "node: %s\nreplica_staged_bytes: %" PRIu64 "\ndatabase_error: %s\n",
                              tt_pg_state_name(tt_pg_state_get(srv->pg)),
                              tt_pg_state_name(tt_pg_state_get(srv->owner_pg)), srv->cfg.node_id,
                              rs->staged_bytes, err[0] ? err : "none");
    }
    if (!srv->archive)
        return 0;
    uint64_t lag = 0;
    double secs = 0;
    tt_archive_lag(srv->archive, uv_now((uv_loop_t *)&srv->loop), &lag, &secs);
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

static int replicated_metrics(const tt_server *srv, tt_buf *out)
{
    const tt_pg_stats *ps = tt_pg_stats_get(srv->pg);
    const tt_replica_stats *rs = tt_replica_stats_get(srv->replica);
    const tt_cluster_stats *cs = tt_cluster_stats_get(srv->cluster);
    int rc = 0;
    rc |= metric(out, "tether_db_up", "gauge", "1 when PostgreSQL is connected and migrated",
                 ps->state == TT_PG_UP);
    rc |= metric(out, "tether_db_query_failures_total", "counter",
                 "Queries that failed (error, timeout, connection lost)", ps->query_failures);
    rc |= metric(out, "tether_replica_batches_total", "counter",
                 "Replicated batches PostgreSQL committed", rs->batches);
    rc |= metric(out, "tether_replica_batch_failures_total", "counter",
                 "Replicated batches that failed (sent again)", rs->batch_failures);
    rc |= metric(out, "tether_replica_events_total", "counter", "Events committed to PostgreSQL",
                 rs->events);
    rc |= metric(out, "tether_replica_fenced_total", "counter",
                 "Sessions whose batch the ownership fence refused", rs->fenced);
    rc |= metric(out, "tether_replica_deleted_total", "counter",
                 "Sessions deleted for good in PostgreSQL", rs->deleted);
    rc |= metric(out, "tether_replica_delete_refused_total", "counter",
                 "Deletes the ownership fence refused", rs->delete_refused);
    rc |= metric(out, "tether_replica_staged_bytes", "gauge",
                 "Staged for PostgreSQL, not committed yet", rs->staged_bytes);
    rc |=
        metric(out, "tether_cluster_acquires_total", "counter", "Sessions acquired", cs->acquires);
    rc |= metric(out, "tether_cluster_acquire_failures_total", "counter", "Acquires that failed",
                 cs->acquire_failures);
    rc |= metric(out, "tether_cluster_moved_total", "counter",
                 "Ownership notifications from other nodes", cs->moved);
    rc |= metric(out, "tether_cluster_adopted_total", "counter",
                 "Running sessions of silent nodes taken over", cs->adopted);
    rc |= metric(out, "tether_cluster_lease_renewals_total", "counter", "Lease renewals committed",
                 cs->renewals);
    double sum = rs->latency_sum;
    uint64_t total = 0;
    rc |=
        tt_buf_appendf(out, "# HELP tether_replica_commit_seconds Stage-to-commit latency of "
                            "replicated batches\n# TYPE tether_replica_commit_seconds histogram\n");
    for (size_t i = 0; i < 12; i++) {
        total += rs->latency_buckets[i];
        rc |= tt_buf_appendf(out, "tether_replica_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                             tt_commit_bucket_bounds[i], total);
    }
    rc |= tt_buf_appendf(
        out,
        "tether_replica_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64
        "\ntether_replica_commit_seconds_sum %.6f\ntether_replica_commit_seconds_count "
        "%" PRIu64 "\n",
        rs->batches, sum, rs->batches);
    return rc ? TT_ENOMEM : 0;
}

static int events_metrics(const tt_server *srv, tt_buf *out)
{
    if (!srv->pg)
        return 0;
    if (srv->replica)
        return replicated_metrics(srv, out);
    if (!srv->archive)
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

int tt_database_readyz(const tt_server *srv, tt_buf *out)
{
    int rc = events_readyz(srv, out);
    if (rc || !srv->usage_archive)
        return rc;
    uint64_t rows = 0;
    double secs = 0;
    tt_usage_archive_lag(srv->usage_archive, tt_wall_ms(), &rows, &secs);
    return tt_buf_appendf(out,
                          "usage_database: %s\nusage_archive_lag_rows: %" PRIu64
                          "\nusage_archive_lag_seconds: %.3f\n",
                          tt_pg_state_name(tt_pg_state_get(srv->usage_pg)), rows, secs);
}

int tt_database_metrics(const tt_server *srv, tt_buf *out)
{
    int rc = events_metrics(srv, out);
    if (rc || !srv->usage_archive)
        return rc;
    const tt_usage_archive_stats *us = tt_usage_archive_stats_get(srv->usage_archive);
    uint64_t rows = 0;
    double secs = 0;
    tt_usage_archive_lag(srv->usage_archive, tt_wall_ms(), &rows, &secs);
    rc |= metric(out, "tether_usage_archive_rows_total", "counter",
                 "Ledger rows written to PostgreSQL's usage table", us->rows);
    rc |= metric(out, "tether_usage_archive_duplicates_total", "counter",
                 "Ledger rows sent again that PostgreSQL already held", us->duplicates);
    rc |= metric(out, "tether_usage_archive_batches_total", "counter",
                 "Usage archive batches committed", us->batches);
    rc |= metric(out, "tether_usage_archive_batch_failures_total", "counter",
                 "Usage archive batches that failed (sent again)", us->batch_failures);
    rc |= metric(out, "tether_usage_archive_lag_rows", "gauge",
                 "Ledger rows written and not yet archived", rows);
    rc |= tt_buf_appendf(out,
                         "# HELP tether_usage_archive_lag_seconds Age of the oldest ledger row "
                         "not yet archived\n# TYPE tether_usage_archive_lag_seconds gauge\n"
                         "tether_usage_archive_lag_seconds %.3f\n",
                         secs);
    return rc ? TT_ENOMEM : 0;
}
