/* Configuration: every option once, in one table (config.c), read from the
 * command line, TETHER_* environment variables and an optional JSON file, in
 * that order of precedence, over built-in defaults. `tether --help` prints
 * the table. Bad values are refused at start-up with a message naming the
 * option; nothing starts. */
#ifndef TT_CONFIG_H
#define TT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define TT_CONFIG_MAX_KEYS 64
#define TT_NODE_ID_MAX 64 /* --node-id: 1-64 of [A-Za-z0-9._-] */

typedef struct tt_config {
    char host[256];
    int port;
    char data_dir[1024];
    char web_dir[1024];
    char tls_cert[1024]; /* PEM chain; empty: plain HTTP */
    char tls_key[1024];
    char config_file[1024];
    /* auth */
    char *api_keys[TT_CONFIG_MAX_KEYS]; /* clear keys ("KEY[:tenant]"), wiped after use */
    size_t n_api_keys;
    char *api_key_hashes[TT_CONFIG_MAX_KEYS]; /* "SHA256HEX[:tenant]" */
    size_t n_api_key_hashes;
    char jwt_secret[256];
    int64_t token_max_ttl_s;
    char *allowed_origins[TT_CONFIG_MAX_KEYS]; /* "scheme://host[:port]" (server/origin.h) */
    size_t n_allowed_origins;
    /* protocol limits */
    int64_t max_frame_bytes;
    int heartbeat_s;
    int64_t max_lag_events;
    int64_t backpressure_hold_ms; /* server/flow.h */
    int rate_msgs_per_s;
    int rate_burst;
    int64_t key_requests_per_min, key_tokens_per_min; /* 0: no limit (limits.h) */
    int64_t tenant_requests_per_min, tenant_tokens_per_min;
    int64_t usage_flush_ms; /* the ledger's batch interval (usage.h) */
    int64_t key_daily_budget_cents, key_monthly_budget_cents; /* 0: none (budgets.h) */
    int64_t tenant_daily_budget_cents, tenant_monthly_budget_cents;
    char limits_file[1024];   /* --limits: limits_conf.h; "" none */
    int64_t max_output_bytes; /* replies queued on one socket before it is dropped */
    int64_t rate_bytes_per_s; /* client bytes per second per socket (token bucket) */
    int64_t rate_bytes_burst;
    int64_t max_connections;      /* open sockets (HTTP and WebSocket); 0: from RLIMIT_NOFILE */
    int64_t gateway_max_messages; /* messages in one POST /v1/chat/completions */
    char gateway_models[1024];    /* models passed through to the default route: a,b | * | "" */
    int64_t max_body_memory;      /* HTTP request bodies buffered at once, all requests */
    /* storage */
    char sync[16]; /* commit | periodic | none */
    int64_t sync_interval_ms;
    int64_t map_size_mb;
    int64_t map_size_max_mb;
    int64_t retain_events;
    int64_t memory_events;
    int64_t idle_evict_s;
    int64_t transcript_max;
    int64_t max_sessions_per_user;    /* per tenant and user; 0: no cap */
    char database_url[1024];          /* PostgreSQL (libpq URI or key=value); "": LMDB alone */
    int64_t database_timeout_ms;      /* one archive statement; longer drops the connection */
    char durability[16];              /* local (archive mode) | replicated (state/replica.h) */
    int64_t lease_ms;                 /* replicated: a session's ownership lease */
    char node_id[TT_NODE_ID_MAX + 1]; /* never empty after load: given, or <hostname>-<pid> */
    /* agents and models */
    int echo_delay_ms;
    char routes_file[1024];
    char prompts_dir[1024];
    char tokenizer_dir[1024];
    char photos_root[1024];
    int64_t wait_expiry_s;
    char tools_file[1024];
    char agents_file[1024];
    /* retrieval (agents/retrieval/retrieval.h, server/documents.c) */
    char retrieval_route[128];       /* embeddings route; "": the first; "none": keyword only */
    int64_t retrieval_chunk_tokens;  /* default chunk size in tokens */
    int64_t retrieval_chunk_overlap; /* default overlap in tokens */
    int64_t max_document_bytes;      /* one document's bytes, decoded */
    /* operations */
    char log_level[16]; /* debug | info | warn | error */
    char log_redact[8]; /* on | off: PII in log lines replaced (server/logging.c) */
    int64_t shutdown_grace_ms;
    char takeover[8];         /* off | on: take the port and data directory over (upgrade.c) */
    int64_t upgrade_grace_ms; /* an old process's time to finish turns when handing over */
} tt_config;

/* Fill cfg from defaults, then file, env and argv (argv[0] skipped). Returns
 * 0, or TT_EINVAL with a message in err (size n). *exit_now is set when
 * --help or --version was handled (the text is printed to stdout). */
int tt_config_load(tt_config *cfg, int argc, char **argv, char **envp, int *exit_now, char *err,
                   size_t n);

/* This node's id in a cluster (--node-id, else <hostname>-<pid>): 1-64 of
 * [A-Za-z0-9._-], set once by tt_config_load(). Announced in welcome.node,
 * /readyz ("node: ID") and the X-Tether-Node header of HTTP answers. */
const char *tt_config_node_id(const tt_config *cfg);

/* Free the key strings (clear keys are wiped first). */
void tt_config_free(tt_config *cfg);

/* Print --help. */
void tt_config_usage(const char *prog);

#endif
