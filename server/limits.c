/* Rate limits per API key and per tenant (see limits.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/limits.h"

void tt_limits_init(tt_limits *l, const tt_limit_rates *rates)
{
    memset(l, 0, sizeof *l);
    l->rates = *rates;
}

static void refill(tt_limit_bucket *b, int64_t rpm, int64_t tpm, uint64_t now)
{
    double dt = now > b->ms ? (double)(now - b->ms) : 0;
    b->requests = fmin((double)rpm, b->requests + dt * (double)rpm / 60000.0);
    b->tokens = fmin((double)tpm, b->tokens + dt * (double)tpm / 60000.0);
    b->ms = now;
}

/* name's bucket in table (found, or a fresh full one in the place of the
 * entry idle longest that is not in debt; NULL when every one is). */
static tt_limit_bucket *bucket(tt_limit_bucket *t, const char *name, int64_t rpm, int64_t tpm,
                               uint64_t now)
{
    tt_limit_bucket *free_slot = NULL;
    for (size_t i = 0; i < TT_LIMITS_MAX_BUCKETS; i++) {
        if (t[i].name[0] && strcmp(t[i].name, name) == 0) {
            refill(&t[i], rpm, tpm, now);
            return &t[i];
        }
        if (!t[i].name[0]) {
            if (!free_slot || free_slot->name[0])
                free_slot = &t[i];
        } else if (t[i].tokens >= 0 &&
                   (!free_slot || (free_slot->name[0] && t[i].ms < free_slot->ms))) {
            free_slot = &t[i];
        }
    }
    if (!free_slot)
        return NULL;
    tt_utf8_copy(free_slot->name, sizeof free_slot->name, name);
    free_slot->requests = (double)rpm;
    free_slot->tokens = (double)tpm;
    free_slot->ms = now;
    return free_slot;
}

/* Seconds until b passes (0: it passes now). */
static int64_t wait_s(const tt_limit_bucket *b, int64_t rpm, int64_t tpm, const char **what)
{
    double w = 0;
    if (rpm > 0 && b->requests < 1.0) {
        w = (1.0 - b->requests) * 60.0 / (double)rpm;
        *what = "requests";
    }
    if (tpm > 0 && b->tokens <= 0) {
        double t = (1.0 - b->tokens) * 60.0 / (double)tpm;
        if (t > w) {
            w = t;
            *what = "tokens";
        }
    }
    return w > 0 ? (int64_t)ceil(w) : 0;
}

int tt_limits_admit(tt_limits *l, const char *tenant, const char *key_id, uint64_t now_ms,
                    int64_t *retry_after_s, char *why, size_t n)
{
    const tt_limit_rates *r = &l->rates;
    tt_limit_bucket *k = NULL, *t = NULL;
    if (r->key_requests_per_min > 0 || r->key_tokens_per_min > 0)
        k = bucket(l->keys, key_id, r->key_requests_per_min, r->key_tokens_per_min, now_ms);
    if (r->tenant_requests_per_min > 0 || r->tenant_tokens_per_min > 0)
        t = bucket(l->tenants, tenant, r->tenant_requests_per_min, r->tenant_tokens_per_min,
                   now_ms);
    const char *kw = "", *tw = "";
    int64_t kwait = k ? wait_s(k, r->key_requests_per_min, r->key_tokens_per_min, &kw) : 0;
    int64_t twait = t ? wait_s(t, r->tenant_requests_per_min, r->tenant_tokens_per_min, &tw) : 0;
    if (kwait > 0 || twait > 0) {
        int by_key = kwait >= twait;
        *retry_after_s = by_key ? kwait : twait;
        snprintf(why, n, "%s %.64s is over its %s per minute; retry in %lld s",
                 by_key ? "API key" : "tenant", by_key ? key_id : tenant, by_key ? kw : tw,
                 (long long)*retry_after_s);
        l->refused++;
        return TT_ERATE;
    }
    if (k && r->key_requests_per_min > 0)
        k->requests -= 1.0;
    if (t && r->tenant_requests_per_min > 0)
        t->requests -= 1.0;
    return 0;
}

void tt_limits_charge(tt_limits *l, const char *tenant, const char *key_id, int64_t tokens,
                      uint64_t now_ms)
{
    const tt_limit_rates *r = &l->rates;
    if (tokens <= 0)
        return;
    if (r->key_tokens_per_min > 0) {
        tt_limit_bucket *k =
            bucket(l->keys, key_id, r->key_requests_per_min, r->key_tokens_per_min, now_ms);
        if (k)
            k->tokens -= (double)tokens;
    }
    if (r->tenant_tokens_per_min > 0) {
        tt_limit_bucket *t = bucket(l->tenants, tenant, r->tenant_requests_per_min,
                                    r->tenant_tokens_per_min, now_ms);
        if (t)
            t->tokens -= (double)tokens;
    }
}
