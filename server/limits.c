/* Rate limits per API key, user, tenant and IP, by GCRA (see limits.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/limits.h"

#define MINUTE_MS 60000.0

int tt_limits_init(tt_limits *l, const tt_limits_conf *conf)
{
    *l = (tt_limits){.conf = conf};
    for (int k = 0; k < TT_SCOPE__LAST; k++)
        l->any[k] = tt_limits_conf_any_rate(conf, (tt_scope_kind)k);
    return tt_scopes_init(&l->tab);
}

void tt_limits_free(tt_limits *l)
{
    tt_scopes_free(&l->tab);
}

/* In use: replacing it would hand out a fresh allowance. */
static int busy(const tt_scope *e, uint64_t now)
{
    return e->req_tat > (double)now || e->tok_tat > (double)now;
}

/* The scopes of who that have a limit, in order key, user, tenant, ip. */
static size_t scopes_of(tt_limits *l, const tt_limits_who *w, uint64_t now, tt_scope **out)
{
    const char *names[4] = {w->key_id, w->user, w->tenant, w->ip};
    static const tt_scope_kind kinds[4] = {TT_SCOPE_KEY, TT_SCOPE_USER, TT_SCOPE_TENANT,
                                           TT_SCOPE_IP};
    char user[TT_SCOPE_NAME_MAX];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (!l->any[kinds[i]] || !names[i] || !names[i][0])
            continue;
        const char *name = names[i];
        if (kinds[i] == TT_SCOPE_USER) {
            tt_scope_join(user, sizeof user, w->tenant ? w->tenant : "", name);
            name = user;
        }
        tt_scope *e = tt_scopes_find(&l->tab, kinds[i], name);
        if (!e) {
            const tt_scope_limits *lim = tt_limits_conf_get(l->conf, kinds[i], name);
            if (!lim->rpm && !lim->tpm)
                continue;
            e = tt_scopes_get(&l->tab, kinds[i], name, w->tenant, lim, now, busy);
        }
        if (e)
            out[n++] = e;
    }
    return n;
}

/* Milliseconds until e passes (0: now), and which limit holds it. */
static double wait_ms(const tt_scope *e, double now, const char **what)
{
    double w = 0;
    if (e->lim.rpm > 0) {
        double t = MINUTE_MS / (double)e->lim.rpm;
        double over = e->req_tat - now - (MINUTE_MS - t);
        if (over > 0) {
            w = over;
            *what = "requests";
        }
    }
    if (e->lim.tpm > 0) {
        double over = e->tok_tat - now - (MINUTE_MS - MINUTE_MS / (double)e->lim.tpm);
        if (over > w) {
            w = over;
            *what = "tokens";
        }
    }
    return w;
}

int tt_limits_admit(tt_limits *l, const tt_limits_who *who, uint64_t now_ms, int64_t *retry_after_s,
                    char *why, size_t n)
{
    tt_scope *s[4];
    size_t k = scopes_of(l, who, now_ms, s);
    double now = (double)now_ms, worst = 0;
    const tt_scope *by = NULL;
    const char *what = "";
    for (size_t i = 0; i < k; i++) {
        const char *w = "";
        double ms = wait_ms(s[i], now, &w);
        if (ms > worst) {
            worst = ms;
            by = s[i];
            what = w;
        }
    }
    if (by) {
        *retry_after_s = (int64_t)ceil(worst / 1000.0);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
        static const char *const label[TT_SCOPE__LAST] = {[TT_SCOPE_KEY] = "API key",
                                                          [TT_SCOPE_USER] = "user",
                                                          [TT_SCOPE_TENANT] = "tenant",
                                                          [TT_SCOPE_IP] = "client IP"};
        snprintf(why, n, "%s %.128s is over its %s per minute; retry in %lld s", label[by->kind],
                 by->name, what, (long long)*retry_after_s);
        l->refused++;
        return TT_ERATE;
    }
    for (size_t i = 0; i < k; i++)
        if (s[i]->lim.rpm > 0)
            s[i]->req_tat = fmax(s[i]->req_tat, now) + MINUTE_MS / (double)s[i]->lim.rpm;
    return 0;
}

void tt_limits_charge(tt_limits *l, const tt_limits_who *who, int64_t tokens, uint64_t now_ms)
{
    if (tokens <= 0)
        return;
    tt_scope *s[4];
    size_t k = scopes_of(l, who, now_ms, s);
    for (size_t i = 0; i < k; i++)
        if (s[i]->lim.tpm > 0)
            s[i]->tok_tat = fmax(s[i]->tok_tat, (double)now_ms) +
                            (double)tokens * MINUTE_MS / (double)s[i]->lim.tpm;
}
