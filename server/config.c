/* The option table and its three sources (see config.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "protocol/env.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/config.h"
#include "server/origin.h"
#include "state/pg.h"

typedef enum opt_kind { K_STR, K_INT, K_I64, K_ENUM, K_LIST, K_FLAG } opt_kind;

typedef struct opt {
    const char *name; /* --name, TETHER_NAME (upper-cased, '-' -> '_'), "name" in the file */
    opt_kind kind;
    size_t offset;
    size_t size;         /* K_STR: buffer size; K_LIST: offset of the count */
    int64_t min, max;    /* K_INT, K_I64 */
    const char *choices; /* K_ENUM: "a|b|c" */
    const char *def;
    const char *help;
} opt;

#define O(f) offsetof(tt_config, f)
#define S(f) sizeof(((tt_config *)0)->f)

static const opt options[] = {
    {"host", K_STR, O(host), S(host), 0, 0, NULL, "127.0.0.1",
     "addresses to listen on, comma-separated (IPv4, IPv6 as ::1 or [::1], names: every "
     "address they resolve to); nothing else is bound"},
    {"port", K_INT, O(port), 0, 1, 65535, NULL, "8080", "TCP port"},
    {"data-dir", K_STR, O(data_dir), S(data_dir), 0, 0, NULL, "./data",
     "LMDB directory (created if missing)"},
    {"tls-cert", K_STR, O(tls_cert), S(tls_cert), 0, 0, NULL, "",
     "PEM certificate chain: serve HTTPS and wss:// (TLS 1.2+) on --port; reread on SIGHUP"},
    {"tls-key", K_STR, O(tls_key), S(tls_key), 0, 0, NULL, "",
     "PEM private key of --tls-cert; reread with it on SIGHUP"},
    {"web-dir", K_STR, O(web_dir), S(web_dir), 0, 0, NULL, "",
     "static files served under /; empty: found next to the binary (server/paths.h)"},
    {"config", K_STR, O(config_file), S(config_file), 0, 0, NULL, "",
     "JSON file of options (keys as the long names here)"},
    {"api-key", K_LIST, O(api_keys), O(n_api_keys), 0, 0, NULL, "",
     "API key KEY[:tenant] allowed to mint tokens; repeatable (env: comma-separated); a tenant "
     "is 1-63 bytes of UTF-8 without control, bidi or invisible characters. "
     "None: open mode, loopback clients only"},
    {"api-key-hash", K_LIST, O(api_key_hashes), O(n_api_key_hashes), 0, 0, NULL, "",
     "as --api-key, given as the key's SHA-256 in hex (see `tether hash-key`)"},
    {"jwt-secret", K_STR, O(jwt_secret), S(jwt_secret), 0, 0, NULL, "",
     "token signing secret, 32 to 64 bytes; empty: generated once and kept in the store"},
    {"allowed-origin", K_LIST, O(allowed_origins), O(n_allowed_origins), 0, 0, NULL, "",
     "browser origin (scheme://host[:port]) allowed besides same-origin pages to open "
     "/v1/ws and POST; repeatable (env: comma-separated)"},
    {"token-max-ttl-s", K_I64, O(token_max_ttl_s), 0, 1, 31 * 86400, NULL, "86400",
     "longest token lifetime POST /v1/tokens grants"},
    {"max-frame-bytes", K_I64, O(max_frame_bytes), 0, 1024, 64 << 20, NULL, "1048576",
     "largest client frame; larger gets too_large, 8x larger closes with 1009"},
    {"heartbeat-s", K_INT, O(heartbeat_s), 0, 1, 3600, NULL, "25",
     "ping interval; a socket silent for 3 intervals is closed"},
    {"max-lag-events", K_I64, O(max_lag_events), 0, 1, INT64_MAX, NULL, "10000",
     "a socket this far behind is dropped; attaching this far back gets a snapshot"},
    {"backpressure-hold-ms", K_I64, O(backpressure_hold_ms), 0, 1, 3600000, NULL, "10000",
     "a socket holding a paused model call back this long is dropped (4008)"},
    {"rate-msgs-per-s", K_INT, O(rate_msgs_per_s), 0, 1, 1000000, NULL, "50",
     "client messages per second per socket (token bucket)"},
    {"rate-burst", K_INT, O(rate_burst), 0, 1, 1000000, NULL, "200", "token bucket size"},
    {"key-requests-per-min", K_I64, O(key_requests_per_min), 0, 0, 100000000, NULL, "0",
     "model requests (gateway POSTs; session.open, say, answer, decide) per minute per API key, "
     "across every socket and the gateway; over it: 429 / rate_limited. 0: no limit"},
    {"key-tokens-per-min", K_I64, O(key_tokens_per_min), 0, 0, INT64_MAX / 2, NULL, "0",
     "model tokens (prompt + completion) per minute per API key; 0: no limit"},
    {"tenant-requests-per-min", K_I64, O(tenant_requests_per_min), 0, 0, 100000000, NULL, "0",
     "the same per tenant (all its keys together); 0: no limit"},
    {"tenant-tokens-per-min", K_I64, O(tenant_tokens_per_min), 0, 0, INT64_MAX / 2, NULL, "0",
     "model tokens per minute per tenant; 0: no limit"},
    {"key-daily-budget-cents", K_I64, O(key_daily_budget_cents), 0, 0, INT64_MAX / 2, NULL, "0",
     "US cents an API key may spend on models per UTC day; then its model requests are refused "
     "(429 budget_exceeded, limit_exceeded on a socket) until the day turns. 0: no budget"},
    {"key-monthly-budget-cents", K_I64, O(key_monthly_budget_cents), 0, 0, INT64_MAX / 2, NULL, "0",
     "the same per UTC month"},
    {"tenant-daily-budget-cents", K_I64, O(tenant_daily_budget_cents), 0, 0, INT64_MAX / 2, NULL,
     "0", "US cents a tenant (all its keys) may spend per UTC day; 0: no budget"},
    {"tenant-monthly-budget-cents", K_I64, O(tenant_monthly_budget_cents), 0, 0, INT64_MAX / 2,
     NULL, "0", "the same per UTC month"},
    {"limits", K_STR, O(limits_file), S(limits_file), 0, 0, NULL, "",
     "JSON file of rate limits and budgets per tenant, user, key, agent, feature, session, run "
     "and IP (server/limits_conf.h); over the flags above; checked at start-up"},
    {"usage-flush-ms", K_I64, O(usage_flush_ms), 0, 10, 60000, NULL, "250",
     "how often the usage ledger's queued rows are written (one transaction for all)"},
    {"max-output-bytes", K_I64, O(max_output_bytes), 0, 4096, INT64_MAX, NULL, "1048576",
     "replies queued on a socket that does not read before it is closed"},
    {"rate-bytes-per-s", K_I64, O(rate_bytes_per_s), 0, 1024, INT64_MAX, NULL, "1048576",
     "client bytes per second per socket (token bucket, counted as they arrive, before "
     "parsing); a frame over it gets rate_limited, a client far over it is closed with 1008"},
    {"rate-bytes-burst", K_I64, O(rate_bytes_burst), 0, 1024, INT64_MAX, NULL, "16777216",
     "byte bucket size; keep it above 8x --max-frame-bytes so a frame far over the size "
     "limit is closed as too large (1009) rather than as too fast"},
    {"max-connections", K_I64, O(max_connections), 0, 0, 10000000, NULL, "0",
     "open sockets (HTTP and WebSocket); more are answered 503 and closed. 0: the open-file "
     "limit (RLIMIT_NOFILE) less a reserve for storage, provider calls and files"},
    {"gateway-max-messages", K_I64, O(gateway_max_messages), 0, 1, 1000000, NULL, "2048",
     "messages in one POST /v1/chat/completions; more get a 400"},
    {"gateway-models", K_STR, O(gateway_models), S(gateway_models), 0, 0, NULL, "*",
     "models a gateway request may name besides the route aliases, comma-separated; such a "
     "model goes to the route 'default' (else the first) under its own name. '*': any model; "
     "empty: route aliases only"},
    {"max-body-memory", K_I64, O(max_body_memory), 0, 65536, INT64_MAX, NULL, "67108864",
     "bytes of HTTP request bodies held at once across all requests; over it: 503"},
    {"sync", K_ENUM, O(sync), S(sync), 0, 0, "commit|periodic|none", "periodic",
     "fsync policy: every commit, every --sync-interval-ms, or never (process-crash safe)"},
    {"sync-interval-ms", K_I64, O(sync_interval_ms), 0, 1, 3600000, NULL, "1000",
     "fsync period for --sync periodic"},
    {"map-size-mb", K_I64, O(map_size_mb), 0, 1, 1 << 20, NULL, "64",
     "initial LMDB map size; it doubles when full"},
    {"map-size-max-mb", K_I64, O(map_size_max_mb), 0, 1, 1 << 30, NULL, "1048576",
     "the map never grows past this"},
    {"retain-events", K_I64, O(retain_events), 0, 0, INT64_MAX, NULL, "100000",
     "events kept per session (0: all); older attaches get a snapshot"},
    {"memory-events", K_I64, O(memory_events), 0, 16, 1 << 20, NULL, "256",
     "recent events per session kept in memory for fast replay"},
    {"idle-evict-s", K_I64, O(idle_evict_s), 0, 0, INT64_MAX / 1000, NULL, "300",
     "unused sessions leave memory after this (0: never)"},
    {"max-sessions-per-user", K_I64, O(max_sessions_per_user), 0, 0, INT64_MAX, NULL, "1000",
     "sessions one user (of one tenant) may keep, closed ones included; more get "
     "limit_exceeded (0: no cap)"},
    {"database-url", K_STR, O(database_url), S(database_url), 0, 0, NULL, "",
     "PostgreSQL connection (postgresql://user:pass@host:port/db or libpq key=value): "
     "committed events are archived there (tables sessions, events); empty: LMDB alone"},
    {"database-timeout-ms", K_I64, O(database_timeout_ms), 0, 100, 600000, NULL, "10000",
     "longest wait for one statement; a database that does not answer sooner (stopped, "
     "partitioned) is disconnected and connected again with backoff"},
    {"durability", K_ENUM, O(durability), S(durability), 0, 0, "local|replicated", "local",
     "with --database-url: local (LMDB commits, PostgreSQL archives after the fact) or "
     "replicated (PostgreSQL is the system of record: clients see only what it committed; "
     "sessions are owned per node with epochs, so several nodes can share one database)"},
    {"node-id", K_STR, O(node_id), S(node_id), 0, 0, NULL, "",
     "this node's name in a cluster: 1-64 of A-Z a-z 0-9 . _ -; shown in welcome.node, /readyz "
     "and the X-Tether-Node header; empty: <hostname>-<pid>"},
    {"lease-ms", K_I64, O(lease_ms), 0, 500, 3600000, NULL, "10000",
     "replicated mode: how long a node's ownership of a session lasts without renewal; a "
     "running session of a node silent this long is taken over by another node"},
    {"transcript-max", K_I64, O(transcript_max), 0, 1, 1 << 20, NULL, "1000",
     "turns kept in a session's snapshot transcript"},
    {"routes", K_STR, O(routes_file), S(routes_file), 0, 0, NULL, "",
     "JSON file of model routes, prices, limits and retry policy (agents/llm/route.h); "
     "empty: a route 'default' from OPENAI_API_KEY / ANTHROPIC_API_KEY when set"},
    {"prompts-dir", K_STR, O(prompts_dir), S(prompts_dir), 0, 0, NULL, "",
     "prompt template files; empty: found next to the binary (server/paths.h)"},
    {"tokenizer-dir", K_STR, O(tokenizer_dir), S(tokenizer_dir), 0, 0, NULL, "",
     "BPE rank files (o200k_base.tiktoken, cl100k_base.tiktoken) for exact prompt token "
     "counts of OpenAI models; empty: found next to the binary (made at build time); "
     "missing: conservative estimates"},
    {"tools", K_STR, O(tools_file), S(tools_file), 0, 0, NULL, "",
     "JSON file of HTTP tools models may call (agents/tools.h); built-in tools are always there"},
    {"retrieval-route", K_STR, O(retrieval_route), S(retrieval_route), 0, 0, NULL, "",
     "model route whose OpenAI-format target embeds documents and queries; empty: the first "
     "route; none: keyword search only (agents/retrieval/README.md)"},
    {"retrieval-chunk-tokens", K_I64, O(retrieval_chunk_tokens), 0, 16, 8192, NULL, "1000",
     "tokens per document chunk when POST /v1/documents names none"},
    {"retrieval-chunk-overlap", K_I64, O(retrieval_chunk_overlap), 0, 0, 4096, NULL, "200",
     "tokens repeated from the chunk before (at most half the chunk size)"},
    {"max-document-bytes", K_I64, O(max_document_bytes), 0, 1024, 8 << 20, NULL, "8388608",
     "bytes of one document (decoded) POST /v1/documents accepts; more get a 413"},
    {"agents", K_STR, O(agents_file), S(agents_file), 0, 0, NULL, "",
     "JSON file of assistants: chat agents with their own prompt, route and tools "
     "(agents/agent.h)"},
    {"wait-expiry-s", K_I64, O(wait_expiry_s), 0, 1, 365LL * 86400, NULL, "604800",
     "how long an agent waits for an answer or an approval before the run expires"},
    {"photos-root", K_STR, O(photos_root), S(photos_root), 0, 0, NULL, "./photos",
     "photo libraries for the photo-organizer agent: ROOT/<tenant>/<user>, or ROOT/<user> "
     "for a user without a tenant (open mode, keys without one); nothing outside it is read "
     "or written"},
    {"echo-delay-ms", K_INT, O(echo_delay_ms), 0, 0, 60000, NULL, "50",
     "the echo agent's pause between words"},
    {"log-level", K_ENUM, O(log_level), S(log_level), 0, 0, "debug|info|warn|error", "info",
     "least severe log level printed (JSON lines on stderr)"},
    {"log-redact", K_ENUM, O(log_redact), S(log_redact), 0, 0, "on|off", "on",
     "replace e-mail addresses, phone numbers, card numbers and IBANs in log lines by "
     "placeholders (agents/llm/redact.h)"},
    {"shutdown-grace-ms", K_I64, O(shutdown_grace_ms), 0, 0, 60000, NULL, "2000",
     "time given to sockets to close on SIGTERM"},
    {"takeover", K_ENUM, O(takeover), S(takeover), 0, 0, "off|on", "off",
     "an upgrade: bind the port beside the running tether of --data-dir, ask it to hand over "
     "(SIGUSR2), wait for its data directory, then serve (server/README.md)"},
    {"upgrade-grace-ms", K_I64, O(upgrade_grace_ms), 0, 0, 600000, NULL, "30000",
     "on SIGUSR2 (a --takeover), how long turns in flight may run before the sockets are "
     "closed with 1012 and the process exits"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static void env_name(const opt *o, char *out, size_t n)
{
    int w = snprintf(out, n, "TETHER_");
    for (const char *p = o->name; *p && (size_t)w + 1 < n; p++)
        out[w++] = (*p == '-') ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[w] = '\0';
    if (o->kind == K_LIST && (size_t)w + 3 < n) /* TETHER_API_KEYS, TETHER_API_KEY_HASHES */
        strcat(out, out[w - 1] == 'H' ? "ES" : "S");
}

static const opt *find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static void list_clear(tt_config *cfg, const opt *o)
{
    char **items = (char **)((char *)cfg + o->offset);
    size_t *count = (size_t *)((char *)cfg + o->size);
    for (size_t i = 0; i < *count; i++) {
        OPENSSL_cleanse(items[i], strlen(items[i]));
        free(items[i]);
        items[i] = NULL;
    }
    *count = 0;
}

static int set_value(tt_config *cfg, const opt *o, const char *val, const char *src, char *err,
                     size_t n)
{
    char *slot = (char *)cfg + o->offset;
    char *end;
    switch (o->kind) {
    case K_STR:
    case K_ENUM:
        if (strlen(val) >= o->size) {
            snprintf(err, n, "%s: --%s is longer than %zu bytes", src, o->name, o->size - 1);
            return TT_EINVAL;
        }
        if (o->kind == K_ENUM) {
            size_t len = strlen(val);
            const char *c = o->choices;
            int ok = 0;
            while (c && *c && !ok) {
                size_t clen = strcspn(c, "|");
                ok = len > 0 && clen == len && strncmp(c, val, len) == 0;
                c += clen + (c[clen] == '|');
            }
            if (!ok) {
                snprintf(err, n, "%s: --%s must be one of %s, not '%.*s'", src, o->name, o->choices,
                         tt_utf8_cut(val, 64), val);
                return TT_EINVAL;
            }
        }
        memcpy(slot, val, strlen(val) + 1);
        return 0;
    case K_INT:
    case K_I64: {
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end || v < o->min || v > o->max) {
            snprintf(err, n,
                     "%s: --%s must be an integer from %" PRId64 " to %" PRId64 ", not '%.*s'", src,
                     o->name, o->min, o->max, tt_utf8_cut(val, 64), val);
            return TT_EINVAL;
        }
        if (o->kind == K_INT)
            *(int *)slot = (int)v;
        else
            *(int64_t *)slot = (int64_t)v;
        return 0;
    }
    case K_LIST: {
        char **items = (char **)slot;
        size_t *count = (size_t *)((char *)cfg + o->size);
        if (*val == '\0')
            return 0;
        if (*count >= TT_CONFIG_MAX_KEYS) {
            snprintf(err, n, "%s: at most %d values for --%s", src, TT_CONFIG_MAX_KEYS, o->name);
            return TT_EINVAL;
        }
        items[*count] = strdup(val);
        if (!items[*count])
            return TT_ENOMEM;
        (*count)++;
        return 0;
    }
    case K_FLAG:
        break;
    }
    return TT_EINTERNAL;
}

/* A list option set by a source replaces what lower sources gave it. */
static int set_from_source(tt_config *cfg, const opt *o, const char *val, const char *src,
                           unsigned char *seen, char *err, size_t n)
{
    size_t idx = (size_t)(o - options);
    if (o->kind == K_LIST && !seen[idx])
        list_clear(cfg, o);
    seen[idx] = 1;
    return set_value(cfg, o, val, src, err, n);
}

static int load_file(tt_config *cfg, const char *path, char *err, size_t n)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, n, "config file %s: %s (line %d)", path, jerr.text, jerr.line);
        return TT_EINVAL;
    }
    int rc = 0;
    unsigned char seen[N_OPTIONS] = {0};
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        snprintf(err, n, "config file %s: must hold a JSON object", path);
        rc = TT_EINVAL;
    }
    json_object_foreach(root, key, v)
    {
        if (rc)
            break;
        const opt *o = find(key, strlen(key));
        if (!o || strcmp(key, "config") == 0) {
            snprintf(err, n, "config file %s: unknown option '%.*s'", path, tt_utf8_cut(key, 64),
                     key);
            rc = TT_EINVAL;
            break;
        }
        json_t *items = json_is_array(v) && o->kind == K_LIST ? v : NULL;
        size_t count = items ? json_array_size(items) : 1;
        for (size_t i = 0; rc == 0 && i < count; i++) {
            json_t *item = items ? json_array_get(items, i) : v;
            char buf[64];
            const char *val = json_string_value(item);
            if (json_is_integer(item)) {
                snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(item));
                val = buf;
            }
            if (!val) {
                snprintf(err, n, "config file %s: '%s' must be a string or an integer", path, key);
                rc = TT_EINVAL;
                break;
            }
            rc = set_from_source(cfg, o, val, "config file", seen, err, n);
        }
    }
    json_decref(root);
    return rc;
}

static int load_env(tt_config *cfg, char **envp, char *err, size_t n)
{
    unsigned char seen[N_OPTIONS] = {0};
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt *o = &options[i];
        char name[64];
        env_name(o, name, sizeof name);
        const char *val = tt_env_get(envp, name);
        if (!val)
            continue;
        if (o->kind != K_LIST) {
            int rc = set_from_source(cfg, o, val, name, seen, err, n);
            if (rc)
                return rc;
            continue;
        }
        char *copy = strdup(val);
        if (!copy)
            return TT_ENOMEM;
        int rc = 0;
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
             tok = strtok_r(NULL, ",", &save))
            rc = set_from_source(cfg, o, tok, name, seen, err, n);
        OPENSSL_cleanse(copy, strlen(val));
        free(copy);
        if (rc)
            return rc;
    }
    return 0;
}

void tt_config_usage(const char *prog)
{
    printf("Usage: %s [options]\n       %s hash-key KEY\n\n"
           "Tether: a WebSocket server for stateful, resumable AI agents.\n"
           "Each option can also be set as an environment variable (shown) or as a key\n"
           "in the JSON file given by --config. Precedence: flags, environment, file.\n\n",
           prog, prog);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt *o = &options[i];
        char env[64];
        env_name(o, env, sizeof env);
        printf("  --%-20s %s\n  %-22s env %s, default: %s\n", o->name, o->help, "", env,
               o->def[0] ? o->def : "(none)");
    }
    printf("  --%-20s print this help\n  --%-20s print the version\n", "help", "version");
    printf("  --%-20s print what would be used, found where, and exit (0: it would start)\n",
           "check-config");
}

/* --database-url parses as libpq's; --durability replicated needs it. */
static int check_database(const tt_config *cfg, char *err, size_t n)
{
    char why[256];
    if (cfg->database_url[0] && tt_pg_check_url(cfg->database_url, why, sizeof why) != 0) {
        snprintf(err, n, "--database-url is not a PostgreSQL connection string: %s", why);
        return TT_EINVAL;
    }
    if (strcmp(cfg->durability, "replicated") == 0 && !cfg->database_url[0]) {
        snprintf(err, n,
                 "--durability replicated needs --database-url (PostgreSQL is the "
                 "system of record in that mode)");
        return TT_EINVAL;
    }
    return 0;
}

static int node_id_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* --node-id as given (1-64 of [A-Za-z0-9._-]), or <hostname>-<pid> with any
 * other character of the host name made '-' and the name cut to fit. */
static int check_node_id(tt_config *cfg, char *err, size_t n)
{
    char *id = cfg->node_id;
    if (id[0]) {
        for (const char *p = id; *p; p++) {
            if (!node_id_char(*p)) {
                snprintf(err, n,
                         "--node-id '%.*s' may hold only A-Z a-z 0-9 . _ - (1 to %d of them)",
                         tt_utf8_cut(id, 64), id, TT_NODE_ID_MAX);
                return TT_EINVAL;
            }
        }
        return 0;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "node");
    char pid[24];
    int plen = snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    int hlen = (int)strnlen(host, sizeof host);
    if (hlen > TT_NODE_ID_MAX - plen)
        hlen = TT_NODE_ID_MAX - plen;
    for (int i = 0; i < hlen; i++)
        id[i] = node_id_char(host[i]) ? host[i] : '-';
    memcpy(id + hlen, pid, (size_t)plen + 1);
    return 0;
}

/* The checks of values against each other, after every source was read. */
static int check_values(tt_config *cfg, char *err, size_t n)
{
    int rc = check_database(cfg, err, n);
    if (rc == 0)
        rc = check_node_id(cfg, err, n);
    if (rc == 0 && cfg->map_size_max_mb < cfg->map_size_mb) {
        snprintf(err, n, "--map-size-max-mb must not be below --map-size-mb");
        rc = TT_EINVAL;
    }
    return rc;
}

const char *tt_config_node_id(const tt_config *cfg)
{
    return cfg->node_id;
}

int tt_config_load(tt_config *cfg, int argc, char **argv, char **envp, int *exit_now, char *err,
                   size_t n)
{
    memset(cfg, 0, sizeof *cfg);
    *exit_now = 0;
    unsigned char seen[N_OPTIONS] = {0};
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (set_value(cfg, &options[i], options[i].def, "default", err, n) != 0)
            return TT_EINTERNAL;
    }
    /* The file's path may come from the environment or the command line. */
    const char *file = tt_env_get(envp, "TETHER_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
    }
    int rc = 0;
    if (file && *file)
        rc = load_file(cfg, file, err, n);
    if (rc == 0)
        rc = load_env(cfg, envp, err, n);
    for (int i = 1; rc == 0 && i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            tt_config_usage(argv[0]);
            *exit_now = 1;
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("tether %s\n", TETHER_VERSION);
            *exit_now = 1;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, n, "unexpected argument '%.*s' (see --help)", tt_utf8_cut(arg, 64), arg);
            return TT_EINVAL;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = find(name, nlen);
        if (!o) {
            snprintf(err, n, "unknown option '%.*s' (see --help)", tt_utf8_cut(arg, 64), arg);
            return TT_EINVAL;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, n, "option --%s needs a value", o->name);
                return TT_EINVAL;
            }
            val = argv[++i];
        }
        rc = set_from_source(cfg, o, val, "command line", seen, err, n);
    }
    size_t secret_len = strlen(cfg->jwt_secret);
    if (rc == 0 && secret_len && (secret_len < 32 || secret_len > 64)) {
        snprintf(err, n, "--jwt-secret must be 32 to 64 bytes");
        rc = TT_EINVAL;
    }
    for (size_t i = 0; rc == 0 && i < cfg->n_allowed_origins; i++) {
        if (!tt_origin_valid(cfg->allowed_origins[i])) {
            snprintf(err, n,
                     "--allowed-origin '%.64s' must be http:// or https://, a host and an "
                     "optional port, nothing after",
                     cfg->allowed_origins[i]);
            rc = TT_EINVAL;
        }
    }
    if (rc == 0)
        rc = check_values(cfg, err, n);
    if (rc)
        tt_config_free(cfg);
    return rc;
}

void tt_config_free(tt_config *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].kind == K_LIST)
            list_clear(cfg, &options[i]);
    }
    OPENSSL_cleanse(cfg->jwt_secret, sizeof cfg->jwt_secret);
}
