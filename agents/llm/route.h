/* Model routes: which provider endpoints serve a model alias, in what order,
 * what they cost, and the retry policy over them.
 *
 * A routes file (or the same object embedded in the server's config):
 *
 *   {"routes": {"fast": [
 *       {"provider": "openai", "base_url": "http://127.0.0.1:9999/a/v1",
 *        "model": "gpt-4o-mini", "key_env": "OPENAI_API_KEY", "region": "a",
 *        "timeout_ms": {"connect": 5000, "first_byte": 60000, "idle": 30000, "total": 300000}},
 *       {"provider": "anthropic", "model": "claude-3-5-haiku-latest",
 *        "key_env": "ANTHROPIC_API_KEY"}]},
 *    "prices": {"gpt-4o-mini": {"prompt_per_mtok": 0.15, "completion_per_mtok": 0.6}},
 *    "limits": {"max_prompt_tokens": 128000, "max_completion_tokens": 8192},
 *    "retry": {"max_attempts": 4, "base_ms": 250, "max_backoff_ms": 8000, "max_total_ms": 60000},
 *    "breaker": {"failures": 5, "cooldown_ms": 30000},
 *    "cache": {"ttl_s": 43200, "max_bytes": 67108864, "max_entries": 100000,
 *              "entry_max_bytes": 1048576,
 *              "routes": {"fast": {"ttl_s": 3600, "always": true}}}}
 *
 * Only "routes" is required (at least one alias, 1..TT_ROUTE_MAX_TARGETS
 * targets each, tried in order by retry.h). In a target, "provider" and
 * "model" are required; "base_url" defaults to the provider's public API
 * (http:// or https://, trailing '/' dropped); "key_env" names the
 * environment variable holding the key, read once at load (omit it for a
 * local server that wants no key); "region" is a label for logs and metrics;
 * each timeout has a default (TT_ROUTE_TIMEOUT_*).
 *
 * "provider": "bedrock" is AWS Bedrock's Converse API (bedrock.h): "model"
 * is the model or inference-profile ID; "region" is the signing region
 * (default AWS_REGION, then AWS_DEFAULT_REGION; one is required), so region
 * failover is one target per region; "base_url" defaults to
 * https://bedrock-runtime.<region>.amazonaws.com; "key_env" is refused (the
 * credentials come from aws_creds.h, read at load, and a route without any
 * is refused with where they were looked for). Unknown keys, wrong types
 * and values out of range are refused with a message naming the JSON path
 * ("routes.fast[0].provider: ..."); nothing is half-loaded.
 *
 * "cache" sets the exact response cache (cache.h): "enabled" (default true),
 * the default "ttl_s" (43200: 12 h), the store's caps ("max_bytes",
 * "max_entries"; LRU eviction past them) and the largest answer kept
 * ("entry_max_bytes"); "routes" names configured aliases, each with its own
 * "ttl_s", "always" (cache its calls whatever their temperature: an opt-in
 * for routes whose answers may be reused) and "enabled" (false: never cached).
 *
 * "semantic_cache" (route_semcache.c, semcache.h; absent: off):
 * {"embed_route": "<alias>", "dimensions": 256, "threshold": 0.92,
 *  "ttl_s": 43200, "max_entries": 100000, "lookup_timeout_ms": 2000,
 *  "routes": {"<alias>": {"enabled": true, "threshold": 0.95, "ttl_s": 3600,
 *                         "multi_turn": false, "tools": false}}}: a route
 * named with "enabled": true is looked up by meaning; "enabled": false
 * refuses an assistant's opt-in too.
 *
 * "redact" (route_redact.c, redact.h): {"routes": {"<alias>": true},
 * "patterns": {"LABEL": "<PCRE2>"}}: the e-mail addresses, phone numbers,
 * card numbers, IBANs and pattern matches of those routes' prompts are
 * replaced by placeholders before they are sent, and put back in the reply.
 * Without a routes file, tt_routes_from_env() builds the route "default" from
 * OPENAI_API_KEY and/or ANTHROPIC_API_KEY. */
#ifndef TT_ROUTE_H
#define TT_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/llm/llm.h"
#include "agents/llm/retry.h"

#define TT_ROUTE_MAX_TARGETS TT_RETRY_MAX_TARGETS
#define TT_ROUTE_MAX_ROUTES 256
#define TT_ROUTE_MAX_PRICES 1024
#define TT_ROUTE_ALIAS_MAX 64  /* bytes of an alias: A-Z a-z 0-9 . _ - : / */
#define TT_ROUTE_MODEL_MAX 256 /* bytes of a provider's model name */
#define TT_ROUTE_URL_MAX 2048
#define TT_ROUTE_REGION_MAX 64

/* Default timeouts, and the largest any may be (one hour). */
#define TT_ROUTE_TIMEOUT_CONNECT 10000
#define TT_ROUTE_TIMEOUT_FIRST_BYTE 120000 /* a long prompt can take a while to start */
#define TT_ROUTE_TIMEOUT_IDLE 60000        /* between two received chunks */
#define TT_ROUTE_TIMEOUT_TOTAL 600000
#define TT_ROUTE_TIMEOUT_MAX 3600000

#define TT_ROUTE_OPENAI_BASE "https://api.openai.com/v1"
#define TT_ROUTE_OPENAI_MODEL "gpt-4o-mini"
#define TT_ROUTE_ANTHROPIC_BASE "https://api.anthropic.com"
#define TT_ROUTE_ANTHROPIC_MODEL "claude-3-5-haiku-latest"
#define TT_ROUTE_DEFAULT_ALIAS "default"

typedef struct tt_route_timeouts {
    int64_t connect_ms;    /* TCP + TLS established */
    int64_t first_byte_ms; /* from the request sent to the first response byte */
    int64_t idle_ms;       /* longest silence between two chunks */
    int64_t total_ms;      /* the whole attempt */
} tt_route_timeouts;

/* One provider endpoint. Every string is owned by the tt_routes it is in. */
typedef struct tt_route_target {
    tt_llm_provider provider;
    char *base_url; /* no trailing '/'; the adapter appends tt_llm_path() */
    char *model;    /* the provider's model name */
    char *key_env;  /* "" when no key */
    char *api_key;  /* the key's value, "" when none; wiped by tt_routes_free(); never log it */
    char *region;   /* "" when not given; Bedrock: the signing region, never "" */
    tt_route_timeouts timeouts;
    /* Bedrock only (else NULL): credentials read at load (aws_creds.h),
     * wiped by tt_routes_free(); never log them. */
    char *aws_key_id, *aws_secret, *aws_token;
} tt_route_target;

typedef struct tt_route {
    char *alias;
    tt_route_target *targets; /* n_targets, in the order they are tried */
    size_t n_targets;
    /* Runtime state, one breaker per target, closed at load. Mutated by the
     * call layer from the loop thread; reloading routes resets them. */
    tt_breaker *breakers;
    /* The response cache ("cache.routes.<alias>"): -1 never, 0 deterministic
     * calls only (temperature 0), 1 always; its TTL (0: the default). */
    int cache_mode;
    int64_t cache_ttl_s;
    /* "redact.routes.<alias>": PII replaced in prompts, restored in
     * replies, by these detectors (tt_routes.redactor); NULL: not redacted */
    const struct tt_redact *redact;
    /* The semantic cache ("semantic_cache.routes.<alias>", route_semcache.c):
     * -1 never (not even for an assistant's opt-in), 0 off unless the request
     * opts in, 1 on; its threshold and TTL (0: the defaults); multi-turn
     * conversations and calls with tools opted in. */
    int sem_mode;
    double sem_threshold;
    int64_t sem_ttl_s;
    int sem_multi_turn, sem_tools;
} tt_route;

typedef struct tt_route_price {
    char *model;
    double prompt_per_mtok;     /* USD per million prompt tokens */
    double completion_per_mtok; /* USD per million completion tokens */
} tt_route_price;

typedef struct tt_route_prices {
    tt_route_price *items;
    size_t n;
} tt_route_prices;

/* The exact response cache's settings (the "cache" object). */
typedef struct tt_route_cache {
    int enabled;             /* [1] */
    int64_t ttl_s;           /* [TT_ROUTE_CACHE_TTL_S] */
    int64_t max_bytes;       /* [TT_ROUTE_CACHE_MAX_BYTES] keys, headers and answers */
    int64_t max_entries;     /* [TT_ROUTE_CACHE_MAX_ENTRIES] */
    int64_t entry_max_bytes; /* [TT_ROUTE_CACHE_ENTRY_MAX] a larger answer is not kept */
} tt_route_cache;
#define TT_ROUTE_CACHE_TTL_S 43200
#define TT_ROUTE_CACHE_TTL_MAX (366 * 86400)
#define TT_ROUTE_CACHE_MAX_BYTES ((int64_t)64 << 20)
#define TT_ROUTE_CACHE_MAX_ENTRIES 100000
#define TT_ROUTE_CACHE_ENTRY_MAX ((int64_t)1 << 20)

/* The semantic cache's settings (the "semantic_cache" object,
 * route_semcache.c; semcache.h). */
typedef struct tt_route_semcache {
    int configured;                           /* the object is there */
    char embed_route[TT_ROUTE_ALIAS_MAX + 1]; /* the route asked for embeddings */
    int64_t dimensions;                       /* [0: not sent] "dimensions" of the request */
    double threshold;                         /* [TT_ROUTE_SEMCACHE_THRESHOLD] cosine */
    int64_t ttl_s;                            /* [TT_ROUTE_CACHE_TTL_S] */
    int64_t max_entries;                      /* [TT_ROUTE_SEMCACHE_MAX_ENTRIES] all tenants */
    int64_t lookup_timeout_ms; /* [TT_ROUTE_SEMCACHE_LOOKUP_MS] then the call goes on: a miss */
} tt_route_semcache;
#define TT_ROUTE_SEMCACHE_THRESHOLD 0.92
#define TT_ROUTE_SEMCACHE_MAX_ENTRIES 100000
#define TT_ROUTE_SEMCACHE_LOOKUP_MS 2000

typedef struct tt_routes {
    tt_route *routes;
    size_t n_routes; /* 0: no model configured */
    tt_route_prices prices;
    int64_t max_prompt_tokens;     /* [128000] a longer prompt is trimmed or refused */
    int64_t max_completion_tokens; /* [8192] cap on max_tokens asked of a provider */
    tt_retry_policy retry; /* "retry" and "breaker"; defaults from tt_retry_policy_default() */
    tt_route_cache cache;
    struct tt_redact *redactor; /* "redact": the detectors, extra patterns included; or NULL */
    tt_route_semcache semcache;
} tt_routes;

#define TT_ROUTE_DEFAULT_MAX_PROMPT 128000
#define TT_ROUTE_DEFAULT_MAX_COMPLETION 8192

/* "redact" (route_redact.c): sets out->redactor and each named route's
 * redact; TT_EINVAL with the message in err. Routes must be parsed. */
int tt_route_redact_parse(tt_routes *out, const json_t *v, const char *path, char *err, size_t n);
/* "semantic_cache" (route_semcache.c): out->semcache and each named route's
 * sem_*; TT_EINVAL with the message in err. Routes must be parsed. */
int tt_route_semcache_parse(tt_routes *out, const json_t *v, const char *path, char *err, size_t n);

/* Parse a routes object. envp (NULL-terminated "NAME=value" strings, as
 * main() receives them) supplies the keys named by key_env; a variable that
 * is unset or empty is refused, naming it. where prefixes every path in
 * messages ("llm" gives "llm.routes.fast[0]..."; NULL or "" for none).
 * Returns 0 and fills out (caller frees with tt_routes_free()), or TT_EINVAL
 * with a message in err (size n) and out empty, or TT_ENOMEM. */
int tt_routes_parse(const json_t *obj, const char *where, char **envp, tt_routes *out, char *err,
                    size_t n) __attribute__((warn_unused_result));

/* As tt_routes_parse(), from a JSON file (duplicate keys refused); messages
 * start with the file's path. */
int tt_routes_load_file(const char *path, char **envp, tt_routes *out, char *err, size_t n)
    __attribute__((warn_unused_result));

/* Routes from the environment alone: the alias "default" with an OpenAI
 * target when OPENAI_API_KEY is set (OPENAI_BASE_URL, default
 * TT_ROUTE_OPENAI_BASE; model OPENAI_MODEL, default TT_ROUTE_OPENAI_MODEL),
 * then an Anthropic target when ANTHROPIC_API_KEY is set (ANTHROPIC_BASE_URL,
 * default TT_ROUTE_ANTHROPIC_BASE; model ANTHROPIC_MODEL, default
 * TT_ROUTE_ANTHROPIC_MODEL), so with both the
 * second is the first's failover. Empty variables count as unset. With
 * neither key: 0 and zero routes. Prices of the two default models are
 * filled in (list prices when written; a routes file overrides). Returns 0,
 * TT_EINVAL for a bad *_BASE_URL (named in err), or TT_ENOMEM. Caller frees
 * with tt_routes_free(). */
int tt_routes_from_env(char **envp, tt_routes *out, char *err, size_t n)
    __attribute__((warn_unused_result));

/* Free everything out owns, wiping keys; out is left empty (freeing twice
 * is harmless). */
void tt_routes_free(tt_routes *r);

/* The route for an alias, or NULL. Borrowed from r. */
tt_route *tt_routes_find(const tt_routes *r, const char *alias);

/* The alias of the first route with a target of model, or NULL. */
const char *tt_routes_alias_of_model(const tt_routes *routes, const char *model);

/* Every route as {"alias", "targets": [{"provider", "model"}]}: a new array. */
json_t *tt_routes_describe(const tt_routes *routes);

/* Cost in USD of a call to a provider model: tokens / 1e6 * price per
 * million. Negative counts (-1: not reported) count as 0. Unknown model: 0,
 * and *priced (when not NULL) is set to 0; otherwise 1. */
double tt_route_cost(const tt_route_prices *prices, const char *model, int64_t prompt_tokens,
                     int64_t completion_tokens, int *priced);

#endif
