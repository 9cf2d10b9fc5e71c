/* The limits and budgets file (see limits_conf.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/limits_conf.h"

#define RATE_MAX 1000000000LL
#define USD_MAX 1000000.0

/* Which fields a kind takes: bit 0 rpm/tpm, bit 1 daily/monthly, bit 2 usd. */
static const int fields_of[TT_SCOPE__LAST] = {
    [TT_SCOPE_TENANT] = 3,  [TT_SCOPE_USER] = 3,    [TT_SCOPE_KEY] = 3, [TT_SCOPE_AGENT] = 2,
    [TT_SCOPE_FEATURE] = 2, [TT_SCOPE_SESSION] = 4, [TT_SCOPE_RUN] = 4, [TT_SCOPE_IP] = 1};

static const char *const plural[TT_SCOPE__LAST] = {
    [TT_SCOPE_TENANT] = "tenants", [TT_SCOPE_USER] = "users",       [TT_SCOPE_KEY] = "keys",
    [TT_SCOPE_AGENT] = "agents",   [TT_SCOPE_FEATURE] = "features", [TT_SCOPE_IP] = "ips"};

static int kind_named(const char *name, const char *const *table)
{
    for (int k = 0; k < TT_SCOPE__LAST; k++)
        if (table[k] && strcmp(table[k], name) == 0)
            return k;
    return -1;
}

static int fail(char *err, size_t n, const char *path, const char *why)
{
    snprintf(err, n, "%s: %s", path, why);
    return TT_EINVAL;
}

static int rate_field(const json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > RATE_MAX)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

static int usd_field(const json_t *v, int64_t *out)
{
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d > 0) || d > USD_MAX)
        return -1;
    *out = (int64_t)llround(d * TT_NUSD_PER_USD);
    return *out > 0 ? 0 : -1;
}

/* One {"rpm": ..} object at path onto lim. */
static int parse_one(int kind, const json_t *obj, const char *path, tt_scope_limits *lim, char *err,
                     size_t n)
{
    char p[512];
    if (!json_is_object(obj))
        return fail(err, n, path, "must be an object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        snprintf(p, sizeof p, "%s.%s", path, key);
        int f = fields_of[kind];
        int64_t *dst = NULL;
        int rate = 0;
        if ((f & 1) && (strcmp(key, "rpm") == 0 || strcmp(key, "tpm") == 0)) {
            dst = key[0] == 'r' ? &lim->rpm : &lim->tpm;
            rate = 1;
        } else if ((f & 2) && strcmp(key, "daily_usd") == 0) {
            dst = &lim->daily_nusd;
        } else if ((f & 2) && strcmp(key, "monthly_usd") == 0) {
            dst = &lim->monthly_nusd;
        } else if ((f & 4) && strcmp(key, "usd") == 0) {
            dst = &lim->total_nusd;
        } else {
            return fail(err, n, p, "unknown field for this kind of scope");
        }
        if (rate && rate_field(v, dst) != 0)
            return fail(err, n, p, "must be a positive integer (at most 1000000000)");
        if (!rate && usd_field(v, dst) != 0)
            return fail(err, n, p, "must be a positive number of US dollars (at most 1000000)");
    }
    return 0;
}

static int by_kind_name(const void *a, const void *b)
{
    const tt_limits_override *x = a, *y = b;
    return x->kind != y->kind ? (int)x->kind - (int)y->kind : strcmp(x->name, y->name);
}

/* "tenants": {"acme": {...}} into over[]. */
static int parse_named(tt_limits_conf *c, int kind, const json_t *obj, tt_limits_override *over,
                       size_t *n_over, char *err, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "limits.%s", plural[kind]);
    if (!json_is_object(obj))
        return fail(err, n, path, "must be an object of names");
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        snprintf(path, sizeof path, "limits.%s.%.200s", plural[kind], name);
        size_t len = strlen(name);
        if (len == 0 || len > 127)
            return fail(err, n, path, "a name must be 1-127 bytes");
        if (*n_over == TT_LIMITS_OVERRIDES_MAX)
            return fail(err, n, path, "more than 4096 named limits");
        tt_limits_override *o = &over[(*n_over)++];
        *o = (tt_limits_override){.kind = (uint8_t)kind, .lim = c->defaults[kind]};
        snprintf(o->name, sizeof o->name, "%s", name);
        int rc = parse_one(kind, v, path, &o->lim, err, n);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_defaults(tt_scope_limits *d, const json_t *obj, char *err, size_t n)
{
    char path[512];
    if (!json_is_object(obj))
        return fail(err, n, "limits.default", "must be an object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        snprintf(path, sizeof path, "limits.default.%.200s", key);
        static const char *const kinds[TT_SCOPE__LAST] = {"tenant",  "user",    "key", "agent",
                                                          "feature", "session", "run", "ip"};
        int k = kind_named(key, kinds);
        if (k < 0)
            return fail(err, n, path,
                        "unknown kind (tenant, user, key, agent, feature, session, run, ip)");
        int rc = parse_one(k, v, path, &d[k], err, n);
        if (rc)
            return rc;
    }
    return 0;
}

int tt_limits_conf_parse(tt_limits_conf *c, const json_t *root, char *err, size_t n)
{
    if (!json_is_object(root))
        return fail(err, n, "limits", "must be a JSON object");
    tt_scope_limits d[TT_SCOPE__LAST];
    memcpy(d, c->defaults, sizeof d);
    const json_t *def = json_object_get(root, "default");
    if (def && parse_defaults(d, def, err, n))
        return TT_EINVAL;
    tt_limits_conf next = {.over = calloc(TT_LIMITS_OVERRIDES_MAX, sizeof *next.over)};
    if (!next.over)
        return TT_ENOMEM;
    memcpy(next.defaults, d, sizeof d);
    const char *key;
    const json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "default") == 0)
            continue;
        int k = kind_named(key, plural);
        char path[512];
        snprintf(path, sizeof path, "limits.%.200s", key);
        rc = k < 0 ? fail(err, n, path,
                          "unknown field (default, tenants, users, keys, agents, features, ips)")
                   : parse_named(&next, k, v, next.over, &next.n_over, err, n);
        if (rc)
            break;
    }
    if (rc) {
        free(next.over);
        return rc;
    }
    qsort(next.over, next.n_over, sizeof *next.over, by_kind_name);
    tt_limits_override *fit = realloc(next.over, (next.n_over ? next.n_over : 1) * sizeof *fit);
    next.over = fit ? fit : next.over; /* what the file named, not the cap */
    tt_limits_conf_free(c);
    *c = next;
    return 0;
}

int tt_limits_conf_load(tt_limits_conf *c, const char *path, char *err, size_t n)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, n, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return TT_EINVAL;
    }
    char why[512];
    int rc = tt_limits_conf_parse(c, root, why, sizeof why);
    json_decref(root);
    if (rc)
        snprintf(err, n, "%s: %s", path, why);
    return rc;
}

void tt_limits_conf_free(tt_limits_conf *c)
{
    free(c->over);
    c->over = NULL;
    c->n_over = 0;
}

const tt_scope_limits *tt_limits_conf_get(const tt_limits_conf *c, tt_scope_kind k,
                                          const char *name)
{
    if (c->n_over && name) {
        tt_limits_override key = {.kind = (uint8_t)k};
        snprintf(key.name, sizeof key.name, "%s", name);
        const tt_limits_override *o =
            bsearch(&key, c->over, c->n_over, sizeof *c->over, by_kind_name);
        if (o)
            return &o->lim;
    }
    return &c->defaults[k];
}

static int any(const tt_limits_conf *c, tt_scope_kind k, int rate)
{
    const tt_scope_limits *d = &c->defaults[k];
    if (rate ? (d->rpm || d->tpm) : (d->daily_nusd || d->monthly_nusd || d->total_nusd))
        return 1;
    for (size_t i = 0; i < c->n_over; i++) {
        const tt_scope_limits *l = &c->over[i].lim;
        if (c->over[i].kind == k &&
            (rate ? (l->rpm || l->tpm) : (l->daily_nusd || l->monthly_nusd || l->total_nusd)))
            return 1;
    }
    return 0;
}

int tt_limits_conf_any_rate(const tt_limits_conf *c, tt_scope_kind k)
{
    return any(c, k, 1);
}

int tt_limits_conf_any_budget(const tt_limits_conf *c, tt_scope_kind k)
{
    return any(c, k, 0);
}
