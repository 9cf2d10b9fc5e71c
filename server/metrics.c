/* Prometheus text rendering of the server's counters (see metrics.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "agents/retrieval/retrieval.h"
#include "server/database.h"
#include "server/metrics.h"
#include "server/server.h"

const char *const tt_wire_codes[TT_WIRE_CODES] = {
    "bad_request",  "unauthenticated", "forbidden",   "not_found", "conflict", "too_large",
    "rate_limited", "budget_exceeded", "unavailable", "timeout",   "internal", "limit_exceeded",
};

const char *const tt_refusal_names[TT_REFUSED__LAST] = {"max_connections", "fd_limit",
                                                        "remote_in_open_mode", "adopt_failed"};

void tt_metrics_error(tt_metrics *m, const char *code)
{
    for (int i = 0; i < TT_WIRE_CODES; i++) {
        if (strcmp(code, tt_wire_codes[i]) == 0) {
            m->errors[i]++;
            return;
        }
    }
}

/* The page is a few kilobytes; the cap only guards against a runaway label. */
#define METRICS_PAGE_MAX (256 * 1024)

typedef struct buf {
    tt_buf b;
    int failed; /* the first failed append fails the page: never a partial one */
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (tt_buf_vappendf(&b->b, fmt, ap) != 0)
        b->failed = 1;
    va_end(ap);
}

static void metric(buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
        (unsigned long long)v);
}

/* The commit latency histogram and the counters with labels. */
static void render_histograms(buf *b, const tt_metrics *m, const tt_registry_stats *rs)
{
    put(b, "# HELP tether_commit_seconds Group commit latency\n"
           "# TYPE tether_commit_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < 12; i++) {
        cum += rs->commit_buckets[i];
        put(b, "tether_commit_seconds_bucket{le=\"%g\"} %llu\n", tt_commit_bucket_bounds[i],
            (unsigned long long)cum);
    }
    put(b, "tether_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)rs->commits);
    put(b, "tether_commit_seconds_sum %.9f\ntether_commit_seconds_count %llu\n",
        rs->commit_seconds_sum, (unsigned long long)rs->commits);

    put(b,
        "# HELP tether_errors_total Error replies by code\n# TYPE tether_errors_total counter\n");
    for (int i = 0; i < TT_WIRE_CODES; i++)
        put(b, "tether_errors_total{code=\"%s\"} %llu\n", tt_wire_codes[i],
            (unsigned long long)m->errors[i]);
    put(b, "# HELP tether_connections_refused_total Connections closed at accept, by reason\n"
           "# TYPE tether_connections_refused_total counter\n");
    for (int i = 0; i < TT_REFUSED__LAST; i++)
        put(b, "tether_connections_refused_total{reason=\"%s\"} %llu\n", tt_refusal_names[i],
            (unsigned long long)m->refused[i]);
}

/* Issue 18: coalesced writes, model pauses for slow sockets, syncs off the loop. */
static void render_flow(buf *b, const tt_metrics *m, const tt_registry_stats *rs)
{
    metric(b, "tether_sockets_dropped_lagging_total", "counter",
           "Sockets dropped for falling too far behind", m->dropped_lagging);
    metric(b, "tether_socket_writes_total", "counter",
           "WebSocket writes (several frames coalesced into one write count once)", m->writes_out);
    metric(b, "tether_model_pauses_total", "counter",
           "Model call pauses for a socket of the session far behind (counted as each ends)",
           m->flow_pauses);
    metric(b, "tether_store_syncs_total", "counter",
           "Periodic fsyncs of the store (in the thread pool)", rs->syncs);
    metric(b, "tether_store_sync_failures_total", "counter", "Periodic fsyncs that failed",
           rs->sync_failures);
    metric(b, "tether_store_sync_microseconds_total", "counter",
           "Time the periodic fsyncs took in the thread pool (none of it on the loop)",
           rs->sync_us_total);
    metric(b, "tether_store_sync_max_microseconds", "gauge", "The longest periodic fsync",
           rs->sync_us_max);
}

/* Documents and their search (agents/retrieval/retrieval.h). */
static void render_retrieval(buf *b, const tt_server *srv)
{
    if (!srv->agent_env.retrieval)
        return;
    tt_retrieval_stats r;
    tt_retrieval_get_stats(srv->agent_env.retrieval, &r);
    metric(b, "tether_documents_ingested_total", "counter",
           "Documents stored by POST /v1/documents", r.documents_ingested);
    metric(b, "tether_document_chunks_written_total", "counter", "Chunks of those documents",
           r.chunks_written);
    metric(b, "tether_document_ingest_failures_total", "counter",
           "Documents refused or failed (bad file, embeddings, store)", r.ingest_failures);
    metric(b, "tether_retrieval_searches_total", "counter", "Searches answered", r.searches);
    metric(b, "tether_retrieval_search_failures_total", "counter", "Searches failed",
           r.search_failures);
    metric(b, "tether_retrieval_embedding_calls_total", "counter",
           "Embeddings calls for documents and queries", r.embedding_calls);
    metric(b, "tether_retrieval_index_loads_total", "counter",
           "Collections read from the store and indexed (one load serves the searches waiting)",
           r.index_loads);
    metric(b, "tether_retrieval_indexes", "gauge", "Collection indexes in memory",
           r.indexes_cached);
    metric(b, "tether_retrieval_index_chunks", "gauge", "Chunks in those indexes", r.index_chunks);
    metric(b, "tether_retrieval_index_bytes", "gauge", "Bytes those indexes hold", r.index_bytes);
}

static void render_sockets(buf *b, const tt_server *srv)
{
    const tt_metrics *m = &srv->metrics;
    metric(b, "tether_connections", "gauge", "WebSocket connections open", m->connections);
    metric(b, "tether_connections_total", "counter", "WebSocket connections accepted",
           m->connections_total);
    metric(b, "tether_sockets_open", "gauge", "Sockets open (HTTP and WebSocket)",
           srv->listener.open);
    metric(b, "tether_max_connections", "gauge", "Sockets allowed open (--max-connections)",
           srv->listener.max);
    metric(b, "tether_accept_errors_total", "counter", "accept() failures", m->accept_errors);
    metric(b, "tether_writable_refused_total", "counter",
           "Writable callbacks lws refused (the socket was closing)", m->writable_refused);
    metric(b, "tether_sockets_dropped_rate_bytes_total", "counter",
           "Sockets closed for sending far over --rate-bytes-per-s", m->dropped_rate_bytes);
    metric(b, "tether_sockets_closed_token_expired_total", "counter",
           "Sockets closed when their token expired", m->closed_token_expired);
    metric(b, "tether_sockets_closed_heartbeat_total", "counter",
           "Sockets dropped after three heartbeat intervals of silence", m->closed_heartbeat);
}

char *tt_metrics_render(const tt_server *srv, size_t *len)
{
    buf b = {0};
    tt_buf_init(&b.b, METRICS_PAGE_MAX);
    const tt_metrics *m = &srv->metrics;
    const tt_registry_stats *rs = tt_registry_stats_get(srv->reg);
    tt_store_stats ss = {0};
    tt_store_stats_get(srv->store, &ss);

    render_sockets(&b, srv);
    metric(&b, "tether_sessions_memory", "gauge", "Sessions held in memory", rs->sessions_memory);
    metric(&b, "tether_sessions_stored", "gauge", "Sessions in the store", ss.sessions);
    metric(&b, "tether_events_stored", "gauge", "Events in the store", ss.events);
    metric(&b, "tether_events_appended_total", "counter", "Events committed to session logs",
           rs->events_appended);
    metric(&b, "tether_sessions_loaded_total", "counter", "Sessions loaded from the store",
           rs->sessions_loaded);
    metric(&b, "tether_sessions_evicted_total", "counter", "Idle sessions evicted from memory",
           rs->sessions_evicted);
    metric(&b, "tether_sessions_rest_released_total", "counter",
           "Commits after which a session at rest released its transcript (read back when needed)",
           rs->sessions_rest_released);
    metric(&b, "tether_frames_in_total", "counter", "Client frames received", m->frames_in);
    metric(&b, "tether_frames_out_total", "counter", "Frames written to sockets", m->frames_out);
    metric(&b, "tether_bytes_in_total", "counter", "Client frame bytes received", m->bytes_in);
    metric(&b, "tether_bytes_out_total", "counter", "Frame bytes written", m->bytes_out);
    metric(&b, "tether_http_requests_total", "counter", "HTTP requests", m->http_requests);
    metric(&b, "tether_tokens_minted_total", "counter", "Tokens minted", m->tokens_minted);
    metric(&b, "tether_http_body_bytes", "gauge", "HTTP request body bytes held (max-body-memory)",
           m->http_body_bytes);
    metric(&b, "tether_sockets_dropped_output_total", "counter",
           "Sockets dropped for not reading replies", m->dropped_output);
    metric(&b, "tether_commit_failures_total", "counter",
           "Failed commit writes (a batch, or one session written alone)", rs->commit_failures);
    metric(&b, "tether_commit_store_full_total", "counter",
           "Failed commit writes because the store (map at its maximum, or disk) was full",
           rs->commit_store_full);
    metric(&b, "tether_store_health", "gauge",
           "Commits reaching the store: 0 healthy, 1 failing, 2 full", rs->store_health);
    metric(&b, "tether_store_health_changes_total", "counter",
           "Changes of tether_store_health (each one is logged)", rs->store_health_changes);
    metric(&b, "tether_sessions_discarded_total", "counter",
           "Sessions whose uncommitted changes could not be stored and were undone",
           rs->sessions_discarded);
    metric(&b, "tether_store_map_bytes", "gauge", "LMDB map size", ss.map_size);
    metric(&b, "tether_store_used_bytes", "gauge", "LMDB pages in use", ss.used_bytes);
    metric(&b, "tether_store_map_grows_total", "counter", "LMDB map growths", ss.map_grows);

    render_retrieval(&b, srv);
    render_flow(&b, m, rs);
    render_histograms(&b, m, rs);
    if (!b.failed && tt_database_metrics(srv, &b.b) != 0)
        b.failed = 1;
    if (!b.failed && tt_respcache_metrics(&srv->respcache, &b.b) != 0)
        b.failed = 1;
    char *usage = tt_usage_metrics_text(&srv->usage);
    if (usage)
        put(&b, "%s", usage);
    else
        b.failed = 1;
    free(usage);
    metric(&b, "tether_usage_ledger_dropped_total", "counter",
           "Ledger rows dropped while the store refused them",
           tt_ledger_dropped(srv->usage.ledger));
    if (b.failed) {
        tt_buf_free(&b.b);
        return NULL;
    }
    return tt_buf_take(&b.b, len);
}
