/* The limits and budgets of every scope (scopes.h): defaults per kind of
 * scope, from the flags (--key-requests-per-min, --key-daily-budget-cents,
 * ...) and the "default" object of a --limits file, and overrides for
 * named tenants, users, keys, agents, features and IPs from the file.
 *
 *   {"default": {
 *      "ip":      {"rpm": 100},
 *      "key":     {"rpm": 600, "tpm": 200000, "daily_usd": 5, "monthly_usd": 100},
 *      "user":    {"rpm": 60, "daily_usd": 1},
 *      "tenant":  {"tpm": 2000000, "monthly_usd": 1000},
 *      "agent":   {"daily_usd": 20}, "feature": {"daily_usd": 10},
 *      "session": {"usd": 2}, "run": {"usd": 0.5}},
 *    "tenants":  {"acme": {"rpm": 1200, "daily_usd": 50}},
 *    "users":    {"acme/alice": {"daily_usd": 3}},
 *    "keys":     {"k_0123456789ab": {"rpm": 10}},
 *    "agents":   {"chat": {"daily_usd": 40}},
 *    "features": {"search": {"monthly_usd": 30}},
 *    "ips":      {"10.1.2.3": {"rpm": 1000}}}
 *
 * Every key is optional. rpm and tpm (tenant, user, key, ip): positive
 * integers, at most 1e9. daily_usd and monthly_usd (tenant, user, key,
 * agent, feature) and usd (session, run): positive numbers, at most 1e6.
 * A user is named "tenant/user"; an agent's or feature's limit applies to
 * it in each tenant separately. An override replaces the default of its
 * kind field by field (a field it does not name keeps the default). At most
 * TT_LIMITS_OVERRIDES_MAX overrides, names of 1-127 bytes. Anything else is
 * refused with the JSON path ("limits.tenants.acme.rpm: must be a positive
 * integer"); nothing is half-loaded. */
#ifndef TT_LIMITS_CONF_H
#define TT_LIMITS_CONF_H

#include <stddef.h>
#include <jansson.h>

#include "server/scopes.h"

#define TT_LIMITS_OVERRIDES_MAX 4096
#define TT_NUSD_PER_USD 1000000000.0

typedef struct tt_limits_override {
    uint8_t kind;
    char name[TT_SCOPE_NAME_MAX];
    tt_scope_limits lim;
} tt_limits_override;

typedef struct tt_limits_conf {
    tt_scope_limits defaults[TT_SCOPE__LAST];
    tt_limits_override *over; /* sorted by kind, then name */
    size_t n_over;
} tt_limits_conf;

/* Read path (the defaults already set from the flags are kept where the
 * file does not name them). TT_EINVAL with the reason in err (size n). */
int tt_limits_conf_load(tt_limits_conf *c, const char *path, char *err, size_t n);

/* The same from a parsed object (tests). */
int tt_limits_conf_parse(tt_limits_conf *c, const json_t *root, char *err, size_t n);

void tt_limits_conf_free(tt_limits_conf *c);

/* The limits of (kind, name): the override, else the default. Never NULL. */
const tt_scope_limits *tt_limits_conf_get(const tt_limits_conf *c, tt_scope_kind k,
                                          const char *name);

/* Does any scope of kind k have a rate limit (rpm or tpm)? A budget? */
int tt_limits_conf_any_rate(const tt_limits_conf *c, tt_scope_kind k);
int tt_limits_conf_any_budget(const tt_limits_conf *c, tt_scope_kind k);

#endif
