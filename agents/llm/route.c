/* Routes files: strict decoding into tt_routes, keys from the environment,
 * the default route from OPENAI_API_KEY / ANTHROPIC_API_KEY, and prices
 * (see route.h).
 *
 * Decoding is done by hand rather than with json_unpack_ex() so that every
 * refusal names the JSON path of the offending value. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "agents/llm/adapter.h"
#include "agents/llm/aws_creds.h"
#include "agents/llm/redact.h"
#include "agents/llm/route.h"
#include "protocol/env.h"
#include "protocol/errors.h"

#define PATH_MAX_LEN 512

typedef struct parse_ctx {
    char **envp;
    char *err;
    size_t n;
} parse_ctx;

/* A user-supplied string made safe to quote in a message: control bytes
 * become '?', long strings are cut. */
static const char *show(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[i] = '\0';
    if (s[i] && n > 4)
        memcpy(buf + n - 4, "...", 4);
    return buf;
}

__attribute__((format(printf, 3, 4))) static int fail(parse_ctx *cx, const char *path,
                                                      const char *fmt, ...)
{
    if (!cx->err || cx->n == 0)
        return TT_EINVAL;
    int w = snprintf(cx->err, cx->n, "%s: ", path[0] ? path : "top level");
    if (w < 0 || (size_t)w >= cx->n)
        return TT_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cx->err + w, cx->n - (size_t)w, fmt, ap);
    va_end(ap);
    return TT_EINVAL;
}

/* A JSON path for messages; a path too long for the buffer is cut short,
 * which only shortens an error message. */
static void path_key(char *out, const char *base, const char *key)
{
    int w = snprintf(out, PATH_MAX_LEN, "%s", base);
    if (w >= 0 && w < PATH_MAX_LEN)
        snprintf(out + w, PATH_MAX_LEN - (size_t)w, "%s%s", base[0] ? "." : "", key);
}

/* Refuse keys of obj that are not in allowed (NULL-terminated). */
static int check_keys(parse_ctx *cx, const json_t *obj, const char *path,
                      const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            char b[80];
            return fail(cx, path, "unknown key \"%s\"", show(key, b, sizeof b));
        }
    }
    return 0;
}

static int want_object(parse_ctx *cx, const json_t *v, const char *path)
{
    return json_is_object(v) ? 0 : fail(cx, path, "must be an object");
}

/* An optional integer member in [min, max]; *out is left alone when absent. */
static int opt_int(parse_ctx *cx, const json_t *obj, const char *path, const char *key, int64_t min,
                   int64_t max, int64_t *out, int *given)
{
    const json_t *v = json_object_get(obj, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return 0;
    char p[PATH_MAX_LEN];
    path_key(p, path, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return fail(cx, p, "must be an integer from %lld to %lld", (long long)min, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

static int req_price(parse_ctx *cx, const json_t *obj, const char *path, const char *key,
                     double *out)
{
    const json_t *v = json_object_get(obj, key);
    char p[PATH_MAX_LEN];
    path_key(p, path, key);
    if (!v)
        return fail(cx, p, "is required");
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || d < 0 || d > 1e6)
        return fail(cx, p, "must be a number of USD from 0 to 1000000");
    *out = d;
    return 0;
}

/* A string member; NULL in *out when absent and not required. */
static int get_str(parse_ctx *cx, const json_t *obj, const char *path, const char *key,
                   int required, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    char p[PATH_MAX_LEN];
    path_key(p, path, key);
    *out = NULL;
    if (!v)
        return required ? fail(cx, p, "is required") : 0;
    if (!json_is_string(v))
        return fail(cx, p, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* Printable, no spaces, 1..max bytes: model names ("llama3:8b",
 * "accounts/x/models/y"). */
static int valid_token(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c <= 0x20 || *c == 0x7f)
            return 0;
    }
    return 1;
}

/* 1..max bytes from [A-Za-z0-9] and the characters of extra. */
static int valid_name(const char *s, size_t max, const char *extra)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return 0;
    for (const char *c = s; *c; c++) {
        int alnum =
            (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
        if (!alnum && !strchr(extra, *c))
            return 0;
    }
    return 1;
}

/* http:// or https://, a non-empty host, no spaces or control bytes. */
static int valid_url(const char *s)
{
    const char *rest = NULL;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    if (!rest || !*rest || *rest == '/' || *rest == ':' || *rest == '?' || *rest == '#')
        return 0;
    return valid_token(s, TT_ROUTE_URL_MAX);
}

static char *dup_url(const char *s)
{
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '/')
        len--;
    return strndup(s, len);
}

static int parse_timeouts(parse_ctx *cx, const json_t *v, const char *path, tt_route_timeouts *t)
{
    static const char *const keys[] = {"connect", "first_byte", "idle", "total", NULL};
    int rc = want_object(cx, v, path);
    if (rc == 0)
        rc = check_keys(cx, v, path, keys);
    int64_t *slot[] = {&t->connect_ms, &t->first_byte_ms, &t->idle_ms, &t->total_ms};
    int given[4] = {0};
    for (int i = 0; rc == 0 && i < 4; i++)
        rc = opt_int(cx, v, path, keys[i], 1, TT_ROUTE_TIMEOUT_MAX, slot[i], &given[i]);
    /* A timeout left to its default shrinks to fit the total; one given
     * larger than the total is a mistake. */
    for (int i = 0; rc == 0 && i < 3; i++) {
        if (*slot[i] <= t->total_ms)
            continue;
        if (!given[i]) {
            *slot[i] = t->total_ms;
            continue;
        }
        char p[PATH_MAX_LEN];
        path_key(p, path, keys[i]);
        rc = fail(cx, p, "must not exceed total (%lld)", (long long)t->total_ms);
    }
    return rc;
}

static int parse_provider(parse_ctx *cx, const char *path, const char *name, tt_llm_provider *out)
{
    if (strcmp(name, "openai") == 0) {
        *out = TT_LLM_OPENAI;
        return 0;
    }
    if (strcmp(name, "anthropic") == 0) {
        *out = TT_LLM_ANTHROPIC;
        return 0;
    }
    if (strcmp(name, "bedrock") == 0) {
        *out = TT_LLM_BEDROCK;
        return 0;
    }
    char p[PATH_MAX_LEN], b[80];
    path_key(p, path, "provider");
    return fail(cx, p, "must be \"openai\", \"anthropic\" or \"bedrock\", not \"%s\"",
                show(name, b, sizeof b));
}

/* The shapes of a target's base_url (optional), model and region (optional). */
static int check_target_names(parse_ctx *cx, const char *path, const char *base_url,
                              const char *model, const char *region)
{
    char p[PATH_MAX_LEN], b[80];
    if (base_url && !valid_url(base_url)) {
        path_key(p, path, "base_url");
        return fail(cx, p,
                    "must be an http:// or https:// URL with a host, without spaces, "
                    "at most %d bytes, not \"%s\"",
                    TT_ROUTE_URL_MAX, show(base_url, b, sizeof b));
    }
    if (!valid_token(model, TT_ROUTE_MODEL_MAX)) {
        path_key(p, path, "model");
        return fail(cx, p, "must be 1 to %d bytes without spaces or control characters",
                    TT_ROUTE_MODEL_MAX);
    }
    if (region && region[0] && !valid_name(region, TT_ROUTE_REGION_MAX, "._-")) {
        path_key(p, path, "region");
        return fail(cx, p, "must be at most %d bytes of A-Z a-z 0-9 . _ -, not \"%s\"",
                    TT_ROUTE_REGION_MAX, show(region, b, sizeof b));
    }
    return 0;
}

/* The defaults, overridden by the target's optional "timeout_ms" object. */
static int parse_target_timeouts(parse_ctx *cx, const json_t *v, const char *path,
                                 tt_route_timeouts *t)
{
    *t = (tt_route_timeouts){TT_ROUTE_TIMEOUT_CONNECT, TT_ROUTE_TIMEOUT_FIRST_BYTE,
                             TT_ROUTE_TIMEOUT_IDLE, TT_ROUTE_TIMEOUT_TOTAL};
    const json_t *tv = json_object_get(v, "timeout_ms");
    if (!tv)
        return 0;
    char p[PATH_MAX_LEN];
    path_key(p, path, "timeout_ms");
    return parse_timeouts(cx, tv, p, t);
}

/* A Bedrock target: its region, default URL and credentials. */
static int bedrock_target(parse_ctx *cx, const char *path, const char *key_env, const char **region,
                          const char **base_url, char *url, size_t url_n, tt_route_target *t)
{
    char p[PATH_MAX_LEN], b[80];
    if (key_env) {
        path_key(p, path, "key_env");
        return fail(cx, p,
                    "is not used by bedrock (AWS credentials come from AWS_ACCESS_KEY_ID "
                    "and AWS_SECRET_ACCESS_KEY or the shared credentials file)");
    }
    if (!*region || !**region)
        *region = tt_aws_region_env(cx->envp);
    path_key(p, path, "region");
    if (!*region)
        return fail(cx, p, "is required for bedrock (or set AWS_REGION)");
    if (!valid_name(*region, TT_ROUTE_REGION_MAX, "-"))
        return fail(cx, p, "must be an AWS region such as us-east-1, not \"%s\"",
                    show(*region, b, sizeof b));
    tt_aws_creds c;
    char why[400] = "";
    int rc = tt_aws_creds_load(cx->envp, &c, why, sizeof why);
    if (rc == TT_ENOMEM)
        return rc;
    if (rc)
        return fail(cx, path, "%s", why);
    t->aws_key_id = c.key_id;
    t->aws_secret = c.secret;
    t->aws_token = c.token;
    if (!*base_url) {
        snprintf(url, url_n, "https://bedrock-runtime.%s.amazonaws.com", *region);
        *base_url = url;
    }
    return 0;
}

static int parse_target(parse_ctx *cx, const json_t *v, const char *path, tt_route_target *t)
{
    static const char *const keys[] = {"provider", "base_url",   "model", "key_env",
                                       "region",   "timeout_ms", NULL};
    char p[PATH_MAX_LEN], b[80];
    const char *provider, *base_url, *model, *key_env, *region;
    char br_url[TT_ROUTE_URL_MAX];
    int rc = want_object(cx, v, path);
    if (rc == 0)
        rc = check_keys(cx, v, path, keys);
    if (rc == 0)
        rc = get_str(cx, v, path, "provider", 1, &provider);
    if (rc == 0)
        rc = get_str(cx, v, path, "base_url", 0, &base_url);
    if (rc == 0)
        rc = get_str(cx, v, path, "model", 1, &model);
    if (rc == 0)
        rc = get_str(cx, v, path, "key_env", 0, &key_env);
    if (rc == 0)
        rc = get_str(cx, v, path, "region", 0, &region);
    if (rc == 0)
        rc = parse_provider(cx, path, provider, &t->provider);
    if (rc == 0)
        rc = check_target_names(cx, path, base_url, model, region);
    if (rc == 0 && t->provider == TT_LLM_BEDROCK)
        rc = bedrock_target(cx, path, key_env, &region, &base_url, br_url, sizeof br_url, t);
    if (rc)
        return rc;
    if (!base_url)
        base_url = t->provider == TT_LLM_OPENAI ? TT_ROUTE_OPENAI_BASE : TT_ROUTE_ANTHROPIC_BASE;
    const char *key = "";
    if (key_env) {
        path_key(p, path, "key_env");
        if (!tt_env_name_valid(key_env))
            return fail(cx, p,
                        "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), "
                        "not \"%s\"",
                        show(key_env, b, sizeof b));
        key = tt_env_get(cx->envp, key_env);
        if (!key)
            return fail(cx, p, "environment variable %s is not set", key_env);
        if (!key[0])
            return fail(cx, p, "environment variable %s is empty", key_env);
    }
    rc = parse_target_timeouts(cx, v, path, &t->timeouts);
    if (rc)
        return rc;
    t->base_url = dup_url(base_url);
    t->model = strdup(model);
    t->key_env = strdup(key_env ? key_env : "");
    t->api_key = strdup(key);
    t->region = strdup(region ? region : "");
    if (!t->base_url || !t->model || !t->key_env || !t->api_key || !t->region)
        return TT_ENOMEM;
    return 0;
}

static int parse_route(parse_ctx *cx, const char *alias, const json_t *v, const char *path,
                       tt_route *r)
{
    char b[80], p[PATH_MAX_LEN];
    if (!valid_name(alias, TT_ROUTE_ALIAS_MAX, "._-:/"))
        return fail(cx, path, "alias \"%s\" must be 1 to %d bytes of A-Z a-z 0-9 . _ - : /",
                    show(alias, b, sizeof b), TT_ROUTE_ALIAS_MAX);
    path_key(p, path, alias);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TT_ROUTE_MAX_TARGETS)
        return fail(cx, p, "must be an array of 1 to %d targets", TT_ROUTE_MAX_TARGETS);
    size_t n = json_array_size(v);
    r->alias = strdup(alias);
    r->targets = calloc(n, sizeof *r->targets);
    r->breakers = calloc(n, sizeof *r->breakers);
    if (!r->alias || !r->targets || !r->breakers)
        return TT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char tp[PATH_MAX_LEN];
        if (snprintf(tp, sizeof tp, "%s[%zu]", p, i) >= (int)sizeof tp)
            tp[sizeof tp - 1] = '\0'; /* a cut path still locates the error */
        r->n_targets++; /* counted first so tt_routes_free() sees a half-built target */
        int rc = parse_target(cx, json_array_get(v, i), tp, &r->targets[i]);
        if (rc)
            return rc;
        char name[TT_BREAKER_NAME_MAX];
        const tt_route_target *tg = &r->targets[i];
        snprintf(name, sizeof name, "%s[%zu] %s/%s", alias, i, tt_llm_provider_name(tg->provider),
                 tg->model); /* cut when long: a name for the log */
        tt_breaker_init(&r->breakers[i], name);
    }
    return 0;
}

static int parse_prices(parse_ctx *cx, const json_t *v, const char *path, tt_route_prices *pr)
{
    static const char *const keys[] = {"prompt_per_mtok", "completion_per_mtok", NULL};
    char b[80];
    int rc = want_object(cx, v, path);
    if (rc)
        return rc;
    if (json_object_size(v) > TT_ROUTE_MAX_PRICES)
        return fail(cx, path, "at most %d models", TT_ROUTE_MAX_PRICES);
    pr->items = calloc(json_object_size(v) + 1, sizeof *pr->items);
    if (!pr->items)
        return TT_ENOMEM;
    const char *model;
    json_t *m;
    json_object_foreach((json_t *)v, model, m)
    {
        if (!valid_token(model, TT_ROUTE_MODEL_MAX))
            return fail(cx, path, "model \"%s\" must be 1 to %d bytes without spaces",
                        show(model, b, sizeof b), TT_ROUTE_MODEL_MAX);
        char p[PATH_MAX_LEN];
        path_key(p, path, model);
        tt_route_price *it = &pr->items[pr->n];
        if ((rc = want_object(cx, m, p)) || (rc = check_keys(cx, m, p, keys)) ||
            (rc = req_price(cx, m, p, keys[0], &it->prompt_per_mtok)) ||
            (rc = req_price(cx, m, p, keys[1], &it->completion_per_mtok)))
            return rc;
        it->model = strdup(model);
        if (!it->model)
            return TT_ENOMEM;
        pr->n++;
    }
    return 0;
}

/* An optional boolean member; *out is left alone when absent. */
static int opt_bool(parse_ctx *cx, const json_t *obj, const char *path, const char *key, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char p[PATH_MAX_LEN];
    path_key(p, path, key);
    if (!json_is_boolean(v))
        return fail(cx, p, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* "cache": the response cache's settings, and each route's (by alias). */
static int parse_cache(parse_ctx *cx, const json_t *v, const char *path, tt_routes *out)
{
    static const char *const keys[] = {"enabled",         "ttl_s",  "max_bytes", "max_entries",
                                       "entry_max_bytes", "routes", NULL};
    static const char *const per_route[] = {"enabled", "ttl_s", "always", NULL};
    tt_route_cache *c = &out->cache;
    int rc;
    if ((rc = want_object(cx, v, path)) || (rc = check_keys(cx, v, path, keys)) ||
        (rc = opt_bool(cx, v, path, "enabled", &c->enabled)) ||
        (rc = opt_int(cx, v, path, "ttl_s", 1, TT_ROUTE_CACHE_TTL_MAX, &c->ttl_s, NULL)) ||
        (rc = opt_int(cx, v, path, "max_bytes", 4096, (int64_t)1 << 40, &c->max_bytes, NULL)) ||
        (rc = opt_int(cx, v, path, "max_entries", 1, 100000000, &c->max_entries, NULL)) ||
        (rc = opt_int(cx, v, path, "entry_max_bytes", 256, (int64_t)64 << 20, &c->entry_max_bytes,
                      NULL)))
        return rc;
    const json_t *routes = json_object_get(v, "routes");
    char p[PATH_MAX_LEN], rp[PATH_MAX_LEN], b[80];
    path_key(p, path, "routes");
    if (routes && (rc = want_object(cx, routes, p)))
        return rc;
    const char *alias;
    json_t *r;
    json_object_foreach((json_t *)routes, alias, r)
    {
        tt_route *route = tt_routes_find(out, alias);
        path_key(rp, p, alias);
        if (!route)
            return fail(cx, p, "\"%s\" is not a route", show(alias, b, sizeof b));
        int enabled = 1, always = 0;
        if ((rc = want_object(cx, r, rp)) || (rc = check_keys(cx, r, rp, per_route)) ||
            (rc = opt_bool(cx, r, rp, "enabled", &enabled)) ||
            (rc = opt_bool(cx, r, rp, "always", &always)) ||
            (rc =
                 opt_int(cx, r, rp, "ttl_s", 1, TT_ROUTE_CACHE_TTL_MAX, &route->cache_ttl_s, NULL)))
            return rc;
        route->cache_mode = !enabled ? -1 : always;
    }
    return 0;
}

/* "redact" and "cache", which name routes already parsed. */
static int parse_after_routes(parse_ctx *cx, const json_t *obj, const char *where, tt_routes *out)
{
    char p[PATH_MAX_LEN];
    const json_t *v;
    int rc;
    if ((v = json_object_get(obj, "redact"))) {
        path_key(p, where, "redact");
        if ((rc = tt_route_redact_parse(out, v, p, cx->err, cx->n)))
            return rc;
    }
    if ((v = json_object_get(obj, "semantic_cache"))) {
        path_key(p, where, "semantic_cache");
        if ((rc = tt_route_semcache_parse(out, v, p, cx->err, cx->n)))
            return rc;
    }
    if (!(v = json_object_get(obj, "cache")))
        return 0;
    path_key(p, where, "cache");
    return parse_cache(cx, v, p, out);
}

static int parse_all(parse_ctx *cx, const json_t *obj, const char *where, tt_routes *out)
{
    static const char *const top[] = {"routes", "prices", "limits",         "retry", "breaker",
                                      "cache",  "redact", "semantic_cache", NULL};
    static const char *const limits[] = {"max_prompt_tokens", "max_completion_tokens", NULL};
    static const char *const retry[] = {"max_attempts", "base_ms", "max_backoff_ms", "max_total_ms",
                                        NULL};
    static const char *const breaker[] = {"failures", "cooldown_ms", NULL};
    char p[PATH_MAX_LEN];
    int rc = want_object(cx, obj, where);
    if (rc == 0)
        rc = check_keys(cx, obj, where, top);
    if (rc)
        return rc;

    path_key(p, where, "routes");
    const json_t *routes = json_object_get(obj, "routes");
    if (!routes)
        return fail(cx, p, "is required");
    if (!json_is_object(routes) || json_object_size(routes) == 0 ||
        json_object_size(routes) > TT_ROUTE_MAX_ROUTES)
        return fail(cx, p, "must be an object of 1 to %d model aliases", TT_ROUTE_MAX_ROUTES);
    out->routes = calloc(json_object_size(routes), sizeof *out->routes);
    if (!out->routes)
        return TT_ENOMEM;
    const char *alias;
    json_t *targets;
    json_object_foreach((json_t *)routes, alias, targets)
    {
        out->n_routes++;
        rc = parse_route(cx, alias, targets, p, &out->routes[out->n_routes - 1]);
        if (rc)
            return rc;
    }

    const json_t *v;
    if ((v = json_object_get(obj, "prices"))) {
        path_key(p, where, "prices");
        if ((rc = parse_prices(cx, v, p, &out->prices)))
            return rc;
    }
    if ((v = json_object_get(obj, "limits"))) {
        path_key(p, where, "limits");
        if ((rc = want_object(cx, v, p)) || (rc = check_keys(cx, v, p, limits)) ||
            (rc = opt_int(cx, v, p, limits[0], 1, 100000000, &out->max_prompt_tokens, NULL)) ||
            (rc = opt_int(cx, v, p, limits[1], 1, 10000000, &out->max_completion_tokens, NULL)))
            return rc;
    }
    tt_retry_policy *rp = &out->retry;
    if ((v = json_object_get(obj, "retry"))) {
        int64_t attempts = rp->max_attempts;
        path_key(p, where, "retry");
        if ((rc = want_object(cx, v, p)) || (rc = check_keys(cx, v, p, retry)) ||
            (rc = opt_int(cx, v, p, retry[0], 1, TT_RETRY_MAX_ATTEMPTS, &attempts, NULL)) ||
            (rc = opt_int(cx, v, p, retry[1], 0, 600000, &rp->base_ms, NULL)) ||
            (rc =
                 opt_int(cx, v, p, retry[2], 0, TT_ROUTE_TIMEOUT_MAX, &rp->max_backoff_ms, NULL)) ||
            (rc = opt_int(cx, v, p, retry[3], 1, 86400000, &rp->max_total_ms, NULL)))
            return rc;
        rp->max_attempts = (int)attempts;
        if (rp->max_backoff_ms < rp->base_ms) {
            char q[PATH_MAX_LEN];
            path_key(q, p, "max_backoff_ms");
            return fail(cx, q, "must not be below base_ms (%lld)", (long long)rp->base_ms);
        }
    }
    if ((v = json_object_get(obj, "breaker"))) {
        int64_t failures = rp->breaker_failures;
        path_key(p, where, "breaker");
        if ((rc = want_object(cx, v, p)) || (rc = check_keys(cx, v, p, breaker)) ||
            (rc = opt_int(cx, v, p, breaker[0], 1, 1000, &failures, NULL)) ||
            (rc = opt_int(cx, v, p, breaker[1], 1, 86400000, &rp->breaker_cooldown_ms, NULL)))
            return rc;
        rp->breaker_failures = (int)failures;
    }
    return parse_after_routes(cx, obj, where, out);
}

static void routes_defaults(tt_routes *out)
{
    memset(out, 0, sizeof *out);
    out->max_prompt_tokens = TT_ROUTE_DEFAULT_MAX_PROMPT;
    out->max_completion_tokens = TT_ROUTE_DEFAULT_MAX_COMPLETION;
    tt_retry_policy_default(&out->retry);
    out->cache = (tt_route_cache){.enabled = 1,
                                  .ttl_s = TT_ROUTE_CACHE_TTL_S,
                                  .max_bytes = TT_ROUTE_CACHE_MAX_BYTES,
                                  .max_entries = TT_ROUTE_CACHE_MAX_ENTRIES,
                                  .entry_max_bytes = TT_ROUTE_CACHE_ENTRY_MAX};
}

int tt_routes_parse(const json_t *obj, const char *where, char **envp, tt_routes *out, char *err,
                    size_t n)
{
    parse_ctx cx = {envp, err, n};
    char w[PATH_MAX_LEN];
    snprintf(w, sizeof w, "%s", where ? where : "");
    routes_defaults(out);
    int rc = parse_all(&cx, obj, w, out);
    if (rc) {
        if (rc == TT_ENOMEM && err && n)
            snprintf(err, n, "out of memory loading routes");
        tt_routes_free(out);
    }
    return rc;
}

int tt_routes_load_file(const char *path, char **envp, tt_routes *out, char *err, size_t n)
{
    json_error_t jerr;
    routes_defaults(out);
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, n, "routes file %s: %s (line %d)", path, jerr.text, jerr.line);
        return TT_EINVAL;
    }
    char msg[512] = "";
    int rc = tt_routes_parse(root, NULL, envp, out, msg, sizeof msg);
    json_decref(root);
    if (rc)
        snprintf(err, n, "routes file %s: %s", path, msg);
    return rc;
}

/* One default target, as a routes-file entry (so it goes through the same
 * checks). */
static int env_target(json_t *list, char **envp, const char *provider, const char *key_env,
                      const char *url_env, const char *def_url, const char *model_env,
                      const char *model, char *err, size_t n)
{
    const char *key = tt_env_get(envp, key_env);
    if (!key || !key[0])
        return 0;
    const char *m = tt_env_get(envp, model_env); /* OPENAI_MODEL, ANTHROPIC_MODEL */
    if (m && m[0])
        model = m;
    const char *url = tt_env_get(envp, url_env);
    if (!url || !url[0])
        url = def_url;
    if (!valid_url(url)) {
        char b[80];
        snprintf(err, n, "%s: must be an http:// or https:// URL with a host, not \"%s\"", url_env,
                 show(url, b, sizeof b));
        return TT_EINVAL;
    }
    json_t *t = json_pack("{s:s, s:s, s:s, s:s}", "provider", provider, "base_url", url, "model",
                          model, "key_env", key_env);
    if (!t || json_array_append_new(list, t) != 0)
        return TT_ENOMEM;
    return 0;
}

int tt_routes_from_env(char **envp, tt_routes *out, char *err, size_t n)
{
    routes_defaults(out);
    json_t *list = json_array();
    if (!list)
        return TT_ENOMEM;
    int rc = env_target(list, envp, "openai", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                        TT_ROUTE_OPENAI_BASE, "OPENAI_MODEL", TT_ROUTE_OPENAI_MODEL, err, n);
    if (rc == 0)
        rc = env_target(list, envp, "anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                        TT_ROUTE_ANTHROPIC_BASE, "ANTHROPIC_MODEL", TT_ROUTE_ANTHROPIC_MODEL, err,
                        n);
    if (rc || json_array_size(list) == 0) {
        json_decref(list);
        return rc;
    }
    /* List prices per million tokens when this was written (USD). */
    json_t *obj = json_pack(
        "{s:{s:o}, s:{s:{s:f, s:f}, s:{s:f, s:f}}}", "routes", TT_ROUTE_DEFAULT_ALIAS, list,
        "prices", TT_ROUTE_OPENAI_MODEL, "prompt_per_mtok", 0.15, "completion_per_mtok", 0.60,
        TT_ROUTE_ANTHROPIC_MODEL, "prompt_per_mtok", 0.80, "completion_per_mtok", 4.00);
    if (!obj)
        return TT_ENOMEM;
    rc = tt_routes_parse(obj, NULL, envp, out, err, n);
    json_decref(obj);
    return rc;
}

void tt_routes_free(tt_routes *r)
{
    for (size_t i = 0; r->routes && i < r->n_routes; i++) {
        tt_route *rt = &r->routes[i];
        for (size_t j = 0; rt->targets && j < rt->n_targets; j++) {
            tt_route_target *t = &rt->targets[j];
            if (t->api_key) {
                OPENSSL_cleanse(t->api_key, strlen(t->api_key));
                free(t->api_key);
            }
            free(t->base_url);
            free(t->model);
            free(t->key_env);
            free(t->region);
            char *aws[3] = {t->aws_key_id, t->aws_secret, t->aws_token};
            for (int k = 0; k < 3; k++) {
                if (aws[k])
                    OPENSSL_cleanse(aws[k], strlen(aws[k]));
                free(aws[k]);
            }
        }
        free(rt->targets);
        free(rt->breakers);
        free(rt->alias);
    }
    free(r->routes);
    for (size_t i = 0; r->prices.items && i < r->prices.n; i++)
        free(r->prices.items[i].model);
    free(r->prices.items);
    tt_redact_free(r->redactor);
    memset(r, 0, sizeof *r);
}

tt_route *tt_routes_find(const tt_routes *r, const char *alias)
{
    for (size_t i = 0; alias && i < r->n_routes; i++) {
        if (strcmp(r->routes[i].alias, alias) == 0)
            return &r->routes[i];
    }
    return NULL;
}

double tt_route_cost(const tt_route_prices *prices, const char *model, int64_t prompt_tokens,
                     int64_t completion_tokens, int *priced)
{
    for (size_t i = 0; prices && model && i < prices->n; i++) {
        const tt_route_price *pr = &prices->items[i];
        if (strcmp(pr->model, model) != 0)
            continue;
        if (priced)
            *priced = 1;
        double pt = prompt_tokens > 0 ? (double)prompt_tokens : 0;
        double ct = completion_tokens > 0 ? (double)completion_tokens : 0;
        return pt / 1e6 * pr->prompt_per_mtok + ct / 1e6 * pr->completion_per_mtok;
    }
    if (priced)
        *priced = 0;
    return 0;
}

const char *tt_routes_alias_of_model(const tt_routes *routes, const char *model)
{
    for (size_t i = 0; model && i < routes->n_routes; i++) {
        const tt_route *r = &routes->routes[i];
        for (size_t j = 0; j < r->n_targets; j++)
            if (strcmp(r->targets[j].model, model) == 0)
                return r->alias;
    }
    return NULL;
}

json_t *tt_routes_describe(const tt_routes *routes)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < routes->n_routes; i++) {
        const tt_route *r = &routes->routes[i];
        json_t *targets = json_array();
        for (size_t j = 0; targets && j < r->n_targets; j++)
            json_array_append_new(targets, json_pack("{s:s, s:s}", "provider",
                                                     tt_llm_provider_name(r->targets[j].provider),
                                                     "model", r->targets[j].model));
        json_array_append_new(arr, json_pack("{s:s, s:o}", "alias", r->alias, "targets", targets));
    }
    return arr;
}
