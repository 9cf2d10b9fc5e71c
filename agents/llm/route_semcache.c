/* The semantic cache's settings in the routes file ("semantic_cache",
 * route.h; what they do: semcache.h). Bad values, unknown keys and unknown
 * aliases are refused with a message naming the JSON path. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agents/llm/route.h"
#include "protocol/errors.h"

static int bad(char *err, size_t n, const char *path, const char *key, const char *what)
{
    snprintf(err, n, "%s%s%s: %s", path, key ? "." : "", key ? key : "", what);
    return TT_EINVAL;
}

static int only_keys(const json_t *v, const char *const *keys, const char *path, char *err,
                     size_t n)
{
    const char *k;
    json_t *x;
    if (!json_is_object(v))
        return bad(err, n, path, NULL, "must be an object");
    json_object_foreach((json_t *)v, k, x)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k) != 0)
            i++;
        if (!keys[i]) {
            char m[160];
            snprintf(m, sizeof m, "unknown key \"%.64s\"", k);
            return bad(err, n, path, NULL, m);
        }
    }
    return 0;
}

static int opt_num(const json_t *v, const char *key, double min, double max, double *out,
                   const char *path, char *err, size_t n)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    double d = json_number_value(x);
    if (!json_is_number(x) || !isfinite(d) || d < min || d > max) {
        char m[96];
        snprintf(m, sizeof m, "must be a number from %g to %g", min, max);
        return bad(err, n, path, key, m);
    }
    *out = d;
    return 0;
}

static int opt_int(const json_t *v, const char *key, int64_t min, int64_t max, int64_t *out,
                   const char *path, char *err, size_t n)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max) {
        char m[96];
        snprintf(m, sizeof m, "must be an integer from %lld to %lld", (long long)min,
                 (long long)max);
        return bad(err, n, path, key, m);
    }
    *out = json_integer_value(x);
    return 0;
}

static int opt_flag(const json_t *v, const char *key, int *out, const char *path, char *err,
                    size_t n)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    if (!json_is_boolean(x))
        return bad(err, n, path, key, "must be true or false");
    *out = json_is_true(x);
    return 0;
}

/* "routes.<alias>": that route's settings. */
static int parse_one(tt_route *r, const json_t *v, const char *path, char *err, size_t n)
{
    static const char *const keys[] = {"enabled",    "threshold", "ttl_s",
                                       "multi_turn", "tools",     NULL};
    int enabled = 1, rc;
    if ((rc = only_keys(v, keys, path, err, n)) ||
        (rc = opt_flag(v, "enabled", &enabled, path, err, n)) ||
        (rc = opt_num(v, "threshold", 0.5, 1.0, &r->sem_threshold, path, err, n)) ||
        (rc = opt_int(v, "ttl_s", 1, TT_ROUTE_CACHE_TTL_MAX, &r->sem_ttl_s, path, err, n)) ||
        (rc = opt_flag(v, "multi_turn", &r->sem_multi_turn, path, err, n)) ||
        (rc = opt_flag(v, "tools", &r->sem_tools, path, err, n)))
        return rc;
    r->sem_mode = enabled ? 1 : -1;
    return 0;
}

int tt_route_semcache_parse(tt_routes *out, const json_t *v, const char *path, char *err, size_t n)
{
    static const char *const keys[] = {"embed_route", "dimensions",        "threshold", "ttl_s",
                                       "max_entries", "lookup_timeout_ms", "routes",    NULL};
    tt_route_semcache *s = &out->semcache;
    *s = (tt_route_semcache){.configured = 1,
                             .threshold = TT_ROUTE_SEMCACHE_THRESHOLD,
                             .ttl_s = TT_ROUTE_CACHE_TTL_S,
                             .max_entries = TT_ROUTE_SEMCACHE_MAX_ENTRIES,
                             .lookup_timeout_ms = TT_ROUTE_SEMCACHE_LOOKUP_MS};
    int rc;
    if ((rc = only_keys(v, keys, path, err, n)) ||
        (rc = opt_int(v, "dimensions", 1, 4096, &s->dimensions, path, err, n)) ||
        (rc = opt_num(v, "threshold", 0.5, 1.0, &s->threshold, path, err, n)) ||
        (rc = opt_int(v, "ttl_s", 1, TT_ROUTE_CACHE_TTL_MAX, &s->ttl_s, path, err, n)) ||
        (rc = opt_int(v, "max_entries", 1, 10000000, &s->max_entries, path, err, n)) ||
        (rc = opt_int(v, "lookup_timeout_ms", 10, 60000, &s->lookup_timeout_ms, path, err, n)))
        return rc;
    const json_t *er = json_object_get(v, "embed_route");
    const tt_route *e = json_is_string(er) ? tt_routes_find(out, json_string_value(er)) : NULL;
    if (!e)
        return bad(err, n, path, "embed_route", "must name a route");
    size_t t = 0;
    while (t < e->n_targets && e->targets[t].provider != TT_LLM_OPENAI)
        t++;
    if (t == e->n_targets)
        return bad(err, n, path, "embed_route", "the route has no OpenAI-format target");
    snprintf(s->embed_route, sizeof s->embed_route, "%s", e->alias);
    const json_t *routes = json_object_get(v, "routes");
    if (routes && !json_is_object(routes))
        return bad(err, n, path, "routes", "must be an object");
    const char *alias;
    json_t *x;
    json_object_foreach((json_t *)routes, alias, x)
    {
        char p[512];
        snprintf(p, sizeof p, "%s.routes.%.64s", path, alias);
        tt_route *r = tt_routes_find(out, alias);
        if (!r)
            return bad(err, n, p, NULL, "not a route");
        if ((rc = parse_one(r, x, p, err, n)))
            return rc;
    }
    return 0;
}
