/* Start-up and shutdown: storage, auth, the registry, lws on our libuv loop.
 *
 * lws runs on a uv_loop_t we own (info.foreign_loops), so our timers, the
 * group commit and libcurl's transfers share one loop (ARCHITECTURE.md).
 * Shutdown on SIGINT/SIGTERM: refuse new work, close sockets with 1001
 * (1012 when handing over to a new process on SIGUSR2, upgrade.c),
 * wait for them (at most --shutdown-grace-ms), commit, then end every
 * pending operation exactly once (release_all); uv_run() returns when the
 * last handle is closed, and tt_server_free() finishes destroying lws. */
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/conn.h"
#include "server/database.h"
#include "server/documents.h"
#include "server/heartbeat.h"
#include "server/datadir.h"
#include "server/logging.h"
#include "server/server.h"
#include "state/replica.h"
#include "server/tls.h"
#include "agents/llm/curl_lazy.h"

#define SECRET_META_KEY "jwt_secret"

void tt_server_want_writable(tt_server *srv, struct lws *wsi)
{
    if (lws_callback_on_writable(wsi) < 0)
        srv->metrics.writable_refused++;
}

int tt_addr_is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static int bind_hook(tt_session *s, int resumed, void *ud)
{
    tt_server *srv = ud;
    if (!resumed && srv->opening_key_id)
        snprintf(s->key_id, sizeof s->key_id, "%s", srv->opening_key_id);
    if (!resumed && srv->opening_ip)
        snprintf(s->client_ip, sizeof s->client_ip, "%s", srv->opening_ip);
    return tt_agent_bind(s, &srv->agent_env, resumed);
}

static void unbind_hook(tt_session *s, void *ud)
{
    tt_agent_unbind(s);
}

static int put_secret(tt_store_txn *txn, void *ctx)
{
    return tt_store_put_meta(txn, SECRET_META_KEY, ctx, strlen(ctx));
}

/* The signing secret: from config, else the one kept in the store, else a
 * new random one that is then kept, so tokens survive restarts. */
static int setup_secret(tt_server *srv)
{
    if (srv->cfg.jwt_secret[0])
        return tt_auth_set_secret(&srv->auth, (const unsigned char *)srv->cfg.jwt_secret,
                                  strlen(srv->cfg.jwt_secret));
    char *hex = NULL;
    size_t len = 0;
    int rc = tt_store_get_meta(srv->store, SECRET_META_KEY, &hex, &len);
    if (rc == TT_ENOTFOUND) {
        unsigned char raw[32];
        char fresh[65];
        if (RAND_bytes(raw, sizeof raw) != 1)
            return TT_EINTERNAL;
        for (size_t i = 0; i < 32; i++)
            snprintf(fresh + 2 * i, 3, "%02x", raw[i]);
        rc = tt_store_write(srv->store, put_secret, fresh);
        if (rc == 0)
            rc = tt_auth_set_secret(&srv->auth, (const unsigned char *)fresh, 64);
        OPENSSL_cleanse(fresh, sizeof fresh);
        OPENSSL_cleanse(raw, sizeof raw);
        return rc;
    }
    if (rc)
        return rc;
    rc = tt_auth_set_secret(&srv->auth, (const unsigned char *)hex, len);
    OPENSSL_cleanse(hex, len);
    free(hex);
    return rc;
}

static int setup_auth(tt_server *srv)
{
    tt_config *cfg = &srv->cfg;
    srv->auth.max_ttl_s = cfg->token_max_ttl_s;
    for (size_t i = 0; i < cfg->n_api_keys + cfg->n_api_key_hashes; i++) {
        int hashed = i >= cfg->n_api_keys;
        int rc = hashed ? tt_auth_add_key_hash(&srv->auth, cfg->api_key_hashes[i - cfg->n_api_keys])
                        : tt_auth_add_key(&srv->auth, cfg->api_keys[i]);
        if (rc == 0)
            continue;
        const char *why = rc == TT_ECONFLICT ? "the same key is given twice with different tenants"
                          : rc == TT_EFULL   ? "too many API keys"
                          : hashed ? "use 64 hex digits, optionally :tenant (a tenant is 1-63 "
                                     "bytes of UTF-8 without control, bidi or invisible characters)"
                                   : "use KEY or KEY:tenant (a tenant is 1-63 bytes of UTF-8 "
                                     "without control, bidi or invisible characters)";
        tt_log(TT_ERROR, hashed ? "bad --api-key-hash" : "bad --api-key",
               json_pack("{s:s, s:i}", "why", why, "position", (int)i + 1));
        return TT_EINVAL;
    }
    if (srv->auth.n_keys == 0)
        tt_log(TT_WARN,
               "OPEN MODE: no API keys configured; only loopback clients are served, all as "
               "user 'local'. Set --api-key or TETHER_API_KEYS before exposing this server.",
               NULL);
    int rc = setup_secret(srv);
    if (rc)
        tt_log(TT_ERROR, "jwt secret unavailable", json_pack("{s:s}", "error", tt_strerror(rc)));
    return rc;
}

static void llm_log(json_t *line, void *ud)
{
    /* A successful attempt is a debug line (one per call: thousands a second
     * through the gateway); a failed one, a breaker change, info. */
    const char *outcome = json_string_value(json_object_get(line, "outcome"));
    tt_level level = outcome && strcmp(outcome, "ok") == 0 ? TT_DEBUG : TT_INFO;
    const char *name = json_string_value(json_object_get(line, "msg"));
    char msg[64];
    snprintf(msg, sizeof msg, "%s", name ? name : "llm");
    json_object_del(line, "msg");
    tt_log(level, msg, line); /* consumed */
}

/* Agents' own lines (a mode changing), at debug level: one per transition. */
static void agent_log(const char *msg, json_t *fields, void *ud)
{
    (void)ud;
    tt_log(TT_DEBUG, msg, fields);
}

/* A queued say starts its turn: a new run for the budgets (server/usage.h). */
static void agent_turn_begin(const tt_session *s, void *ud)
{
    tt_server *srv = ud;
    tt_usage_turn_begin(&srv->usage, s);
}

extern char **environ;

/* Model routes and the chat prompt. No route is not an error: the echo agent
 * works and the UI says how to add a model. */
static int setup_models(tt_server *srv)
{
    char err[512] = "";
    if (tt_respcache_new(srv, &srv->respcache) != 0)
        return TT_ENOMEM;
    tt_llm_service_options lo = {
        .loop = &srv->loop,
        .routes_file = srv->cfg.routes_file,
        .tokenizer_dir = srv->cfg.tokenizer_dir,
        .envp = environ,
        .log = llm_log,
        .log_ok = tt_log_enabled(TT_DEBUG),
        .usage = tt_usage_on_llm,
        .usage_ud = srv,
        .cache = srv->respcache.llm,
        .gate = {.reserve = tt_usage_gate_reserve, .release = tt_usage_gate_release, .ud = srv},
    };
    int rc = tt_llm_service_new(&lo, &srv->agent_env.llm, err, sizeof err);
    if (rc) {
        tt_log(TT_ERROR, "bad model routes", json_pack("{s:s}", "error", err));
        return rc;
    }
    if (!srv->cfg.prompts_dir[0]) {
        snprintf(err, sizeof err,
                 "no prompt templates next to the binary (looked in %.*s); give --prompts-dir",
                 tt_utf8_cut(srv->paths.looked[TT_PATH_PROMPTS], 400),
                 srv->paths.looked[TT_PATH_PROMPTS]);
        rc = TT_ENOTFOUND;
    } else
        rc = tt_agent_load_prompts(&srv->agent_env, srv->cfg.prompts_dir, err, sizeof err);
    if (rc == 0 && !tt_agent_prompt(&srv->agent_env, "chat.system")) {
        snprintf(err, sizeof err, "no chat.system prompt in %.*s",
                 tt_utf8_cut(srv->cfg.prompts_dir, 400), srv->cfg.prompts_dir);
        rc = TT_ENOTFOUND;
    }
    if (rc) {
        tt_log(TT_ERROR, "cannot load the prompt templates", json_pack("{s:s}", "error", err));
        return rc;
    }
    rc = tt_tools_load(srv->cfg.tools_file, environ, tt_llm_service_http(srv->agent_env.llm),
                       &srv->agent_env.tools, err, sizeof err);
    if (rc == 0)
        rc = tt_agent_load_assistants(&srv->agent_env, srv->cfg.agents_file, err, sizeof err);
    if (rc) {
        tt_log(TT_ERROR, "cannot load tools or agents", json_pack("{s:s}", "error", err));
        return rc;
    }
    json_t *aliases = tt_llm_service_aliases(srv->agent_env.llm);
    if (json_array_size(aliases) == 0)
        tt_log(TT_INFO,
               "no model configured: the chat agent is unavailable; set OPENAI_API_KEY "
               "or ANTHROPIC_API_KEY, or give --routes FILE",
               NULL);
    else
        tt_log(TT_INFO, "model routes", json_pack("{s:O}", "aliases", aliases));
    json_decref(aliases);
    return 0;
}

/* The store's health changed: the server is not ready while it fails. */
static void store_health_hook(tt_store_health from, tt_store_health to, int err, void *ud)
{
    (void)ud;
    tt_log(to == TT_STORE_HEALTHY ? TT_INFO : TT_WARN, "store health",
           json_pack("{s:s, s:s, s:s}", "from", tt_store_health_name(from), "to",
                     tt_store_health_name(to), "error", err ? tt_strerror(err) : "none"));
}

/* Open the store; a data directory that cannot be used is named with its
 * cause and documented exit code (datadir.h, srv->exit_code). */
static int open_store_explained(tt_server *srv, const tt_store_options *so)
{
    const tt_config *cfg = &srv->cfg;
    tt_datadir_report why;
    tt_datadir_check_new(cfg->data_dir, &why);
    int rc = why.state ? TT_EFULL : tt_store_open(so, &srv->store);
    if (rc == TT_EIO)
        tt_datadir_check(cfg->data_dir, &why);
    if (why.state == TT_DATADIR_OK)
        return rc;
    json_t *f = json_pack("{s:s, s:s, s:i}", "data_dir", cfg->data_dir, "path", why.path,
                          "exit_code", (int)why.state);
    if (why.pid > 0)
        json_object_set_new(f, "pid", json_integer(why.pid));
    tt_log(TT_ERROR, why.message, f);
    srv->exit_code = (int)why.state;
    return rc ? rc : TT_EIO;
}

static int setup_storage(tt_server *srv)
{
    tt_config *cfg = &srv->cfg;
    int64_t lock_wait_ms = 0;
    int rc = tt_upgrade_prepare(srv, &lock_wait_ms);
    if (rc)
        return rc;
    tt_store_options so = {
        .lock_wait_ms = lock_wait_ms,
        .path = cfg->data_dir,
        .map_size = (size_t)cfg->map_size_mb << 20,
        .map_size_max = (size_t)cfg->map_size_max_mb << 20,
        .sync = strcmp(cfg->sync, "commit") == 0     ? TT_SYNC_COMMIT
                : strcmp(cfg->sync, "periodic") == 0 ? TT_SYNC_PERIODIC
                                                     : TT_SYNC_NONE,
    };
    rc = open_store_explained(srv, &so);
    if (rc == 0)
        rc = tt_upgrade_claim(srv);
    if (rc && srv->exit_code)
        return rc;
    if (rc) {
        tt_log(TT_ERROR,
               rc == TT_ESCHEMA ? "the data directory holds an unsupported schema "
                                  "version; refusing to start"
                                : "cannot open the data directory",
               json_pack("{s:s, s:s}", "data_dir", cfg->data_dir, "error", tt_strerror(rc)));
        return rc;
    }
    tt_registry_options ro = {
        .headroom = LWS_PRE,
        .memory_events = (size_t)cfg->memory_events,
        .retain_events = (uint64_t)cfg->retain_events,
        .max_lag_events = (uint64_t)cfg->max_lag_events,
        .idle_evict_ms = cfg->idle_evict_s * 1000,
        .transcript_max = (size_t)cfg->transcript_max,
        .sync_interval_ms = so.sync == TT_SYNC_PERIODIC ? cfg->sync_interval_ms : 0,
        .max_sessions_per_owner = (uint64_t)cfg->max_sessions_per_user,
    };
    tt_registry_hooks hooks = {srv,           bind_hook,        unbind_hook,
                               tt_ws_deliver, tt_ws_committed,  tt_ws_discard,
                               tt_ws_moved,   store_health_hook};
    rc = tt_registry_new(&srv->loop, srv->store, &ro, &hooks, &srv->reg);
    srv->agent_env.reg = srv->reg;
    srv->agent_env.log = agent_log;
    srv->agent_env.log_ud = srv;
    srv->agent_env.turn_begin = agent_turn_begin;
    return rc;
}

static void on_signal(uv_signal_t *h, int signum)
{
    tt_server *srv = h->data;
    if (signum == SIGHUP) {
        tt_log(TT_INFO, "SIGHUP: rereading the TLS certificate", NULL);
        (void)tt_tls_reload(srv); /* logged either way */
        return;
    }
    tt_log(TT_INFO, "stopping", json_pack("{s:i}", "signal", signum));
    tt_server_stop(srv);
}

/* SIGINT and SIGTERM stop the server. uv_signal_init fails when the loop
 * cannot make its signal pipe (no descriptors left): start-up fails. */
static int setup_signals(tt_server *srv)
{
    int rc = uv_signal_init(&srv->loop, &srv->sigint);
    if (rc == 0 && (rc = uv_signal_init(&srv->loop, &srv->sigterm)) != 0)
        uv_close((uv_handle_t *)&srv->sigint, NULL);
    if (rc == 0 && (rc = uv_signal_init(&srv->loop, &srv->sighup)) != 0) {
        uv_close((uv_handle_t *)&srv->sigint, NULL);
        uv_close((uv_handle_t *)&srv->sigterm, NULL);
    }
    if (rc == 0) {
        srv->sigint.data = srv->sigterm.data = srv->sighup.data = srv;
        (void)uv_timer_init(&srv->loop, &srv->stop_timer); /* only fills the struct */
        srv->stop_timer.data = srv;
        srv->signals_open = 1; /* tt_server_free closes the three */
        if ((rc = uv_signal_start(&srv->sigint, on_signal, SIGINT)) == 0 &&
            (rc = uv_signal_start(&srv->sigterm, on_signal, SIGTERM)) == 0)
            rc = uv_signal_start(&srv->sighup, on_signal, SIGHUP);
    }
    if (rc) {
        tt_log(TT_ERROR, "cannot watch signals", json_pack("{s:s}", "error", uv_strerror(rc)));
        return TT_EIO;
    }
    uv_unref((uv_handle_t *)&srv->sigint);
    uv_unref((uv_handle_t *)&srv->sigterm);
    uv_unref((uv_handle_t *)&srv->sighup);
    if (tt_upgrade_watch(srv) != 0) {
        tt_log(TT_ERROR, "cannot watch SIGUSR2 (upgrades)", NULL);
        return TT_EIO;
    }
    return 0;
}

/* The HTTP endpoints (our callback; everything else is the web page). */
static const char *const endpoints[] = {"/healthz",        "/readyz",     "/metrics",
                                        "/v1/tokens",      "/v1/models",  "/v1/chat/completions",
                                        "/v1/embeddings",  "/v1/usage",   "/v1/ai-sdk/chat",
                                        "/v1/ag-ui",       "/v1/budgets", "/v1/documents",
                                        "/v1/photos/thumb"};

int tt_server_is_endpoint(const char *path)
{
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        size_t n = strlen(endpoints[i]);
        if (!strncmp(path, endpoints[i], n) && (path[n] == '\0' || path[n] == '/'))
            return 1; /* lws's mount match: the mount point, then the end or a '/' */
    }
    return 0;
}

/* The endpoints' mounts and the web page (an lws file mount of --web-dir;
 * none when it was found nowhere, rather than a mount of "/"). */
static const struct lws_http_mount *setup_mounts(tt_server *srv)
{
    enum { N_ENDPOINTS = sizeof endpoints / sizeof endpoints[0] };
    static struct lws_http_mount mounts[N_ENDPOINTS + 1];
    memset(mounts, 0, sizeof mounts);
    for (size_t i = 0; i < N_ENDPOINTS; i++) {
        mounts[i].mountpoint = endpoints[i];
        mounts[i].mountpoint_len = (unsigned char)strlen(endpoints[i]);
        mounts[i].origin = "tether-http";
        mounts[i].origin_protocol = LWSMPRO_CALLBACK;
        mounts[i].mount_next = &mounts[i + 1];
    }
    struct lws_http_mount *web = &mounts[N_ENDPOINTS];
    web->mountpoint = "/";
    web->mountpoint_len = 1;
    web->origin = srv->cfg.web_dir;
    web->def = "index.html";
    web->origin_protocol = LWSMPRO_FILE;
    if (!srv->cfg.web_dir[0])
        mounts[N_ENDPOINTS - 1].mount_next = NULL;
    return mounts;
}

static int setup_listener(tt_server *srv)
{
    /* No lws validity timers: heartbeat.c pings and hangs up from one timer
     * (one per socket costs an O(N) sorted insert in lws 4.1). Given, zeroed,
     * so that lws does not fall back to a default policy. */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};

    /* The first protocol is where a WebSocket client naming no subprotocol
     * lands; it also hears of every socket's creation and destruction. */
    static struct lws_protocols protocols[3];
    memset(protocols, 0, sizeof protocols);
    /* rx_buffer_size: lws hands a message over in pieces of at most this
     * size and ws.c reassembles them up to the frame limit, so it costs
     * callbacks, not a limit; lws allocates it per socket (16 KiB was the
     * largest part of an idle socket, 1 KiB a tenth of it: 256 bytes take a
     * hello with its token in two pieces). tx_packet_size: what one write tries
     * to send (0 would mean rx_buffer_size, 1 KiB writes). */
    protocols[0] = (struct lws_protocols){"tether.v1",
                                          tt_listener_first_protocol_callback,
                                          sizeof(tt_conn *),
                                          TT_WS_RX_BUFFER,
                                          0,
                                          NULL,
                                          TT_WS_TX_PACKET};
    /* tx_packet_size: without it lws 4.1 sends at most 4 KiB of an answer
     * per write and keeps the rest as a partial, which defers the end of the
     * transaction while lws goes on parsing a pipelined next request into it
     * (see http.c). With it, the socket takes the whole answer at once. */
    protocols[1] = (struct lws_protocols){
        "tether-http", tt_http_callback, tt_http_psd_size, 0, 0, NULL, TT_HTTP_TX_PACKET_MAX};

    void *foreign[1] = {&srv->loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* listener.c owns the socket; lws serves what it adopts. */
    int rc = tt_listener_open(srv);
    if (rc)
        return rc;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.mounts = setup_mounts(srv);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    info.foreign_loops = foreign;
    info.user = srv;
    info.retry_and_idle_policy = &no_validity;
    info.vhost_name = "tether";
    info.server_string = "tether";
    if ((rc = tt_tls_configure(srv, &info)) != 0) {
        tt_listener_close(srv);
        return rc;
    }
    /* libwebsockets' own log: its errors, and its warnings at debug level.
     * Its notice/info/debug lines describe lws internals (every poll change),
     * thousands a second, so no level of ours turns them on. */
    lws_set_log_level(strcmp(srv->cfg.log_level, "debug") == 0 ? LLL_ERR | LLL_WARN : LLL_ERR,
                      NULL);
    srv->lws = lws_create_context(&info);
    if (!srv->lws) {
        tt_log(TT_ERROR,
               "cannot start libwebsockets (is the libwebsockets-evlib-uv package "
               "installed?)",
               json_pack("{s:s, s:i}", "host", srv->cfg.host, "port", srv->cfg.port));
        tt_listener_close(srv);
        return TT_EIO;
    }
    if (srv->cfg.tls_cert[0] && !srv->tls_ctx) {
        tt_log(TT_ERROR, "libwebsockets did not set up TLS", NULL);
        return TT_EIO;
    }
    rc = tt_listener_start(srv, info.vhost_name);
    if (rc)
        tt_log(TT_ERROR, "cannot start accepting", NULL);
    return rc;
}

/* What the first welcome does not need is loaded once the server listens
 * (tests/bench/README.md, "Cold start"): libcurl, for model and tool calls
 * (agents/llm/curl_lazy.h; a call made before it is loaded loads it itself,
 * or waits for this load). In the thread pool, TT_WARM_DELAY_MS after the
 * listener opens, so that it does not take the CPU from the first clients. */
#define TT_WARM_DELAY_MS 100

static void warm_work(uv_work_t *w)
{
    (void)w;
    (void)tt_curl_load();
}

static void warm_done(uv_work_t *w, int status)
{
    (void)w;
    if (status == 0 && !tt_curl_loaded())
        tt_log(TT_WARN, "libcurl cannot be loaded: model and tool calls will fail",
               json_pack("{s:s}", "error", tt_curl_error()));
}

static void on_warm_timer(uv_timer_t *t)
{
    tt_server *srv = t->data;
    uv_close((uv_handle_t *)t, NULL);
    srv->warm_open = 0;
    if (!srv->stopping && uv_queue_work(&srv->loop, &srv->warm_work, warm_work, warm_done) != 0)
        tt_log(TT_DEBUG, "libcurl not preloaded: the first call loads it", NULL);
}

static void warm_later(tt_server *srv)
{
    (void)uv_timer_init(&srv->loop, &srv->warm_timer); /* only fills the struct */
    srv->warm_timer.data = srv;
    srv->warm_work.data = srv;
    srv->warm_open = 1;
    (void)uv_timer_start(&srv->warm_timer, on_warm_timer, TT_WARM_DELAY_MS, 0);
}

/* What agents need to know of the API keys: open mode, and the tenants they
 * name (a photo library of a user without a tenant must not be one's folder). */
static int setup_tenants(tt_server *srv)
{
    srv->agent_env.open_mode = srv->auth.n_keys == 0;
    srv->agent_env.key_tenants = json_object();
    if (!srv->agent_env.key_tenants)
        return TT_ENOMEM;
    for (size_t i = 0; i < srv->auth.n_keys; i++) {
        const char *t = srv->auth.keys[i].tenant;
        if (strcmp(t, "default") != 0 &&
            json_object_set_new(srv->agent_env.key_tenants, t, json_true()))
            return TT_ENOMEM;
    }
    return 0;
}

int tt_server_start(tt_server *srv)
{
    srv->started_ns = uv_hrtime();
    srv->started_wall_s = tt_wall_ms() / 1000;
    tt_paths_resolve(&srv->cfg, &srv->paths);
    int rc = uv_loop_init(&srv->loop);
    if (rc)
        return TT_EIO;
    srv->loop_open = 1;
    srv->agent_env.loop = &srv->loop;
    srv->agent_env.echo_delay_ms = srv->cfg.echo_delay_ms;
    srv->agent_env.photos_root = srv->cfg.photos_root;
    srv->agent_env.wait_expiry_ms = srv->cfg.wait_expiry_s * 1000;
    srv->agent_env.budget_why = srv->usage.budgets.why;
    if ((rc = setup_models(srv)) || (rc = setup_storage(srv)) || (rc = setup_auth(srv)))
        return rc;
    if ((rc = tt_usage_start(srv, &srv->usage)) != 0) {
        tt_log(TT_ERROR, "cannot open the usage ledger",
               json_pack("{s:s}", "error", tt_strerror(rc)));
        return rc;
    }
    if ((rc = tt_respcache_start(&srv->respcache)) != 0) {
        tt_log(TT_ERROR, "cannot open the response cache",
               json_pack("{s:s}", "error", tt_strerror(rc)));
        return rc;
    }
    if ((rc = setup_tenants(srv)) || (rc = tt_database_start(srv)) ||
        (rc = tt_documents_start(srv)))
        return rc;
    size_t resumed = 0; /* replicated: running sessions are the cluster's orphans, not ours */
    rc = srv->replica ? 0 : tt_registry_resume_active(srv->reg, &resumed);
    if (rc) {
        tt_log(TT_ERROR, "cannot resume sessions", json_pack("{s:s}", "error", tt_strerror(rc)));
        return rc;
    }
    if ((rc = setup_listener(srv)) || (rc = tt_heartbeat_start(srv)))
        return rc;
    if ((rc = setup_signals(srv)))
        return rc;
    warm_later(srv);
    srv->ready = 1;
    tt_log(TT_INFO, "files",
           json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "web_dir", srv->cfg.web_dir, "web",
                     srv->paths.how[TT_PATH_WEB], "prompts_dir", srv->cfg.prompts_dir, "prompts",
                     srv->paths.how[TT_PATH_PROMPTS], "tokenizer_dir", srv->cfg.tokenizer_dir,
                     "tokenizer", srv->paths.how[TT_PATH_TOKENIZER]));
    tt_log(TT_INFO, "listening",
           json_pack("{s:o, s:b, s:i, s:s, s:i, s:s, s:I, s:f}", "bound", tt_listener_bound(srv),
                     "tls", srv->tls_ctx != NULL, "port", srv->cfg.port, "data_dir",
                     srv->cfg.data_dir, "resumed_sessions", (int)resumed, "sync", srv->cfg.sync,
                     "max_connections", (json_int_t)srv->listener.max, "startup_ms",
                     (double)(uv_hrtime() - srv->started_ns) / 1e6));
    tt_server_banner(srv, stderr);
    return 0;
}

/* The end of a stop, or of a start that failed half-way: commit what is
 * dirty, then end every pending operation exactly once. lws closes its
 * sockets and starts closing its handles (the first half of destroying a
 * context on a foreign loop; tt_server_free() does the second); sessions
 * leave memory, so their agents cancel model and tool calls, timers and
 * thread-pool work (a job already running comes back cancelled); the HTTP
 * client cancels what is left. All of it closes asynchronously: the loop
 * runs on until the last close callback and pool job are back. */
static void release_all(tt_server *srv)
{
    if (srv->released)
        return;
    srv->released = 1;
    tt_heartbeat_stop(srv);
    if (srv->warm_open) {
        uv_close((uv_handle_t *)&srv->warm_timer, NULL);
        srv->warm_open = 0;
    }
    if (srv->reg)
        tt_registry_flush(srv->reg);
    if (!tt_registry_syncing(srv->reg)) /* else the registry syncs when that one ends */
        tt_store_sync(srv->store);
    tt_listener_close(srv);
    if (srv->lws)
        lws_context_destroy(srv->lws);
    tt_registry_close(srv->reg);
    tt_documents_stop(srv); /* after the sockets and sessions that used it */
    tt_database_close(srv); /* after the registry's last commit wrote its markers */
    srv->reg = srv->agent_env.reg = NULL;
    tt_llm_service_close(srv->agent_env.llm);
    srv->agent_env.llm = NULL;
    tt_usage_stop(&srv->usage); /* after the service: cancelled calls report too */
    tt_respcache_stop(&srv->respcache);
    if (srv->signals_open) {
        uv_close((uv_handle_t *)&srv->sigint, NULL);
        uv_close((uv_handle_t *)&srv->sigterm, NULL);
        uv_close((uv_handle_t *)&srv->sighup, NULL);
        uv_close((uv_handle_t *)&srv->stop_timer, NULL);
        srv->signals_open = 0;
    }
    tt_upgrade_close(srv);
}

/* Wait until every socket has closed, or the grace period is over. */
static void on_drain_check(uv_timer_t *t)
{
    tt_server *srv = t->data;
    int replicating = srv->replica && tt_replica_pending(srv->replica);
    if ((srv->conns == NULL && !replicating) || uv_now(&srv->loop) >= srv->stop_deadline) {
        uv_timer_stop(t);
        release_all(srv);
    }
}

void tt_server_stop(tt_server *srv)
{
    tt_server_stop_code(srv, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
}

void tt_server_stop_code(tt_server *srv, int code, const char *reason)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->ready = 0;
    tt_log(TT_INFO, "server mode",
           json_pack("{s:s, s:s}", "from", srv->handing_over ? "handing over" : "ready", "to",
                     "stopping"));
    (void)tt_registry_flush(srv->reg); /* a failure is logged (store health) and undone */
    tt_ws_close_all(srv, code, reason);
    srv->stop_deadline = uv_now(&srv->loop) + (uint64_t)srv->cfg.shutdown_grace_ms;
    (void)uv_timer_start(&srv->stop_timer, on_drain_check, 10, 10); /* open, not closing */
}

void tt_server_free(tt_server *srv)
{
    if (srv->loop_open) {
        release_all(srv);
        uv_run(&srv->loop, UV_RUN_DEFAULT); /* close callbacks; pool jobs coming back */
    }
    if (srv->lws)
        lws_context_destroy(srv->lws); /* now that its handles are closed, lws frees it */
    srv->lws = NULL;
    tt_usage_free(&srv->usage);
    tt_respcache_free(&srv->respcache);
    tt_store_close(srv->store);
    srv->store = NULL;
    if (srv->loop_open && uv_loop_close(&srv->loop) != 0)
        tt_log(TT_WARN, "loop closed with handles open", NULL);
    srv->loop_open = 0;
    tt_agent_free_assistants(&srv->agent_env);
    tt_tools_free(&srv->agent_env.tools);
    tt_agent_free_prompts(&srv->agent_env);
    json_decref(srv->agent_env.key_tenants);
    srv->agent_env.key_tenants = NULL;
    OPENSSL_cleanse(&srv->auth, sizeof srv->auth);
    tt_config_free(&srv->cfg);
}
