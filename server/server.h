/* The server context: the one piece of mutable state shared by the server's
 * files, passed explicitly (no globals). main.c builds it; server.c runs it. */
#ifndef TT_SERVER_H
#define TT_SERVER_H

#include <stdio.h>
#include <uv.h>
#include <libwebsockets.h>

#include "agents/agent.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "state/archive.h"
#include "state/pg.h"
#include "server/paths.h"
#include "server/respcache.h"
#include "server/usage.h"
#include "state/registry.h"
#include "state/store.h"

typedef struct tt_conn tt_conn;

typedef struct tt_server {
    tt_config cfg;
    uv_loop_t loop;
    struct lws_context *lws;
    tt_store *store;
    tt_registry *reg;
    tt_pg *pg;                  /* --database-url: the connection (server/database.c), or NULL */
    tt_archive *archive;        /* archive mode: committed events copied to PostgreSQL, or NULL */
    tt_pg *owner_pg;            /* replicated mode: the ownership connection (LISTEN), or NULL */
    tt_pg *docs_pg;             /* --database-url: retrieval's connection (documents.c), or NULL */
    struct tt_replica *replica; /* replicated mode: passes to PostgreSQL behind the fence */
    tt_pg *usage_pg;            /* --database-url: the usage archive's own connection, or NULL */
    struct tt_usage_archive *usage_archive; /* the ledger's rows to PostgreSQL's `usage` */
    struct tt_cluster *cluster;             /* replicated mode: session ownership */
    tt_auth auth;
    tt_agent_env agent_env;
    tt_metrics metrics;
    tt_listener listener; /* our listening socket and its limits (listener.c) */
    tt_paths paths;       /* where the web page, prompts and ranks were found (paths.h) */
    tt_conn *conns;       /* every WebSocket connection (ws.c) */
    tt_conn *held;        /* connections with replies waiting for a commit */
    int ready;            /* serving; /readyz says 200 */
    int stopping;
    int released;     /* every pending operation was ended (server.c, release_all) */
    int loop_open;    /* uv_loop_init() succeeded; uv_loop_close() not yet called */
    int signals_open; /* sigint, sigterm and stop_timer are initialised and not closed */
    uv_signal_t sigint, sigterm, sighup; /* SIGHUP: reread the TLS pair (tls.h) */
    void *tls_ctx;                       /* the vhost's SSL_CTX when TLS is on */
    uv_timer_t stop_timer;
    uv_timer_t heartbeat;  /* heartbeat.c: walks conns for pings, silence, token expiry */
    uv_timer_t warm_timer; /* server.c: what the first welcome does not need, loaded after */
    uv_work_t warm_work;
    int warm_open; /* warm_timer initialised and not closed */
    int heartbeat_open;
    uint64_t stop_deadline; /* loop time when shutdown stops waiting for sockets */
    uint64_t started_ns;
    int64_t started_wall_s; /* Unix time of the start (GET /v1/models' "created") */
    /* upgrades (upgrade.c) */
    uv_signal_t sigusr2;      /* a new process asks this one to hand over */
    uv_timer_t upgrade_timer; /* counts running turns while handing over */
    int upgrade_open;         /* sigusr2 and upgrade_timer are initialised and not closed */
    int handing_over;         /* SIGUSR2 came: not accepting, finishing turns */
    uint64_t handover_started, handover_deadline; /* loop times */
    uint64_t handover_deferred; /* requests left to the new process (requests.c) */
    long takeover_from;         /* --takeover: the pid that handed over (0: none) */
    uint64_t owner_epoch;       /* this process's "owner_epoch" in the store's meta */
    int exit_code; /* a start-up failure's documented exit code (datadir.h); 0: the default 1 */
    /* The API key id of the session.open being served (requests.c): the new
     * session's key_id, set by the bind hook before its agent starts. */
    const char *opening_key_id;
    const char *opening_ip; /* and its client IP (the session's client_ip) */
    tt_usage usage;         /* the cost ledger, its counters, the key and tenant limits */
    tt_respcache respcache; /* the exact response cache (respcache.h) */
    unsigned thumb_jobs;    /* photo thumbnails being read (photos_thumb.c) */
} tt_server;

/* Open storage, auth, the registry and the listener; on success the loop
 * serves until tt_server_stop(). Errors are logged and returned. */
int tt_server_start(tt_server *srv);

/* The start-up banner in plain words (URL, mode, data directory, model
 * routes) on f; tt_server_start() prints it on stderr once listening. */
void tt_server_banner(const tt_server *srv, FILE *f);

/* Begin a graceful stop: refuse new work, close sockets with 1001, wait for
 * them (at most --shutdown-grace-ms), commit, then cancel every call, timer
 * and thread-pool job and close every handle, so uv_run() returns. */
void tt_server_stop(tt_server *srv);
/* The same with another close code for the WebSockets (1012 at an upgrade). */
void tt_server_stop_code(tt_server *srv, int code, const char *reason);

#define TT_CLOSE_SERVICE_RESTART 1012 /* WebSocket close code: an upgrade hands over */

/* Upgrades (upgrade.c, server/README.md). With --takeover on and a live
 * tether holding --data-dir: bind the port beside it, send it SIGUSR2 and
 * say how long tt_store_open() is to wait for its lock; else 0 and no wait. */
int tt_upgrade_prepare(tt_server *srv, int64_t *lock_wait_ms);
/* Take the next owner epoch in the store's meta (after the store opened). */
int tt_upgrade_claim(tt_server *srv);
/* Watch SIGUSR2: hand over to a new process (tt_upgrade_close closes it). */
int tt_upgrade_watch(tt_server *srv);
void tt_upgrade_close(tt_server *srv);

/* Release what tt_server_start() created, also after a start that failed
 * half-way: runs the loop until every close callback has come back, then
 * frees the lws context (its second destroy call, on a foreign loop). */
void tt_server_free(tt_server *srv);

/* The lws protocol callbacks (ws.c / http.c) and http.c's per-request size. */
extern const size_t tt_http_psd_size;
/* The WebSocket protocol's lws buffers (server.c): received messages come in
 * pieces of at most TT_WS_RX_BUFFER bytes (ws.c reassembles them); a write
 * sends at most TT_WS_TX_PACKET bytes at once, lws keeps the rest. */
#define TT_WS_RX_BUFFER 256u
#define TT_WS_TX_PACKET (16u * 1024)
/* The most lws sends of one HTTP answer per write (its tx_packet_size). */
#define TT_HTTP_TX_PACKET_MAX (1u << 20)
int tt_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
int tt_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);
/* 1 when path (no query) is served by one of our HTTP endpoints (http.c),
 * 0 when it goes to the web page's file mount. */
int tt_server_is_endpoint(const char *path);
/* Host and Origin of the request on wsi against the origin policy
 * (origin.h): 0, or TT_EFORBIDDEN with the reason in why (size n). */
int tt_http_origin_check(tt_server *srv, struct lws *wsi, char *why, size_t n);
/* For a WebSocket upgrade: 0 if the policy allows it, else 1 after writing a
 * 403 with a JSON error (the caller then refuses the upgrade). */
int tt_http_refuse_foreign_upgrade(tt_server *srv, struct lws *wsi);

/* Registry hooks (ws.c, server.c). */
void tt_ws_deliver(tt_cursor *c, void *ud);
/* Close every WebSocket with code (1001 at shutdown). */
void tt_ws_close_all(tt_server *srv, int code, const char *reason);

/* Is addr a loopback address (127.0.0.0/8, ::1, or v4-mapped 127/8)? */
int tt_addr_is_loopback(const struct sockaddr_storage *addr);

/* Ask lws for a writable callback on wsi. lws refuses (< 0) only for a
 * connection it is already closing, which never writes again: counted in
 * tether_writable_refused_total, nothing to undo. */
void tt_server_want_writable(tt_server *srv, struct lws *wsi);

#endif
