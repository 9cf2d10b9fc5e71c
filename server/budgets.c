/* Spending budgets with reservation (see budgets.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/budgets.h"

static const tt_scope_kind kinds[TT_BUDGET_SCOPES] = {
    TT_SCOPE_TENANT,  TT_SCOPE_USER,    TT_SCOPE_KEY, TT_SCOPE_AGENT,
    TT_SCOPE_FEATURE, TT_SCOPE_SESSION, TT_SCOPE_RUN};

int64_t tt_budgets_month_of(int64_t day)
{
    char s[16];
    tt_ledger_day_format(day, s, sizeof s);
    return atoll(s) * 12 + atoll(s + 5) - 1;
}

static double usd(int64_t nusd)
{
    return (double)nusd / TT_NUSD_PER_USD;
}

/* A scope's table name and the name its limits are looked up by. */
typedef struct ref {
    tt_scope_kind kind;
    char name[TT_SCOPE_NAME_MAX];
    const char *conf_name; /* NULL: the kind's default only */
} ref;

/* The scopes of a that have a budget somewhere (b->any). */
static size_t refs_of(const tt_budgets *b, const tt_llm_attribution *a, ref *out)
{
    const char *base[TT_BUDGET_SCOPES] = {a->tenant,  a->user,    a->key_id, a->agent,
                                          a->feature, a->session, a->session};
    size_t n = 0;
    for (int i = 0; i < TT_BUDGET_SCOPES; i++) {
        tt_scope_kind k = kinds[i];
        if (!b->any[k] || !base[i][0])
            continue;
        ref *r = &out[n++];
        r->kind = k;
        if (k == TT_SCOPE_USER || k == TT_SCOPE_AGENT || k == TT_SCOPE_FEATURE)
            tt_scope_join(r->name, sizeof r->name, a->tenant, base[i]);
        else
            tt_utf8_copy(r->name, sizeof r->name, base[i]);
        r->conf_name = k == TT_SCOPE_USER                           ? r->name
                       : k == TT_SCOPE_SESSION || k == TT_SCOPE_RUN ? NULL
                                                                    : base[i];
    }
    return n;
}

static int has_budget(const tt_scope_limits *l)
{
    return l->daily_nusd || l->monthly_nusd || l->total_nusd;
}

static int holding(const tt_scope *e, uint64_t now)
{
    (void)now;
    return e->reserved_nusd > 0;
}

/* r's scope rolled to today; NULL when it has no budget (*full set when it
 * has one but found no slot). */
static tt_scope *scope_of(tt_budgets *b, const ref *r, const char *tenant, int64_t today,
                          uint64_t now, int *full)
{
    tt_scope *e = tt_scopes_find(&b->tab, r->kind, r->name);
    if (!e) {
        const tt_scope_limits *lim = tt_limits_conf_get(b->conf, r->kind, r->conf_name);
        if (!has_budget(lim))
            return NULL;
        e = tt_scopes_get(&b->tab, r->kind, r->name, tenant, lim, now, holding);
        if (!e) {
            *full = 1;
            return NULL;
        }
        e->day = today;
        e->month = tt_budgets_month_of(today);
    }
    if (e->day != today) {
        int64_t m = tt_budgets_month_of(today);
        e->day = today;
        e->day_nusd = 0;
        if (e->month != m) {
            e->month = m;
            e->month_nusd = 0;
        }
    }
    return e;
}

static const char *label(tt_scope_kind k)
{
    return k == TT_SCOPE_KEY ? "API key" : tt_scope_kind_name(k);
}

/* Is there room for nusd more in e? Else the reason in b->why. */
static int room(tt_budgets *b, const tt_scope *e, int64_t nusd)
{
    const char *per[3] = {"daily", "monthly", "total"};
    int64_t lim[3] = {e->lim.daily_nusd, e->lim.monthly_nusd, e->lim.total_nusd};
    int64_t spent[3] = {e->day_nusd, e->month_nusd, e->total_nusd};
    for (int i = 0; i < 3; i++) {
        if (!lim[i])
            continue;
        int over = nusd > 0 ? spent[i] + e->reserved_nusd + nusd > lim[i] : spent[i] >= lim[i];
        if (!over)
            continue;
        int n = snprintf(b->why, sizeof b->why,
                         "%s %.128s has spent $%.4f (and reserved $%.4f) of its %s budget of $%.4f",
                         label(e->kind), e->name, usd(spent[i]), usd(e->reserved_nusd), per[i],
                         usd(lim[i]));
        if (nusd > 0 && n > 0 && (size_t)n < sizeof b->why)
            snprintf(b->why + n, sizeof b->why - (size_t)n, "; this call may cost up to $%.4f",
                     usd(nusd));
        return 0;
    }
    return 1;
}

static uint64_t hold_new(tt_budgets *b, tt_scope **s, size_t n, int64_t nusd)
{
    if (b->n_holds == TT_BUDGET_HOLDS_MAX)
        return 0;
    for (;;) {
        uint64_t id = ++b->next_hold;
        tt_budget_hold *h = &b->holds[id & (TT_BUDGET_HOLDS_MAX - 1)];
        if (h->id)
            continue;
        *h = (tt_budget_hold){.id = id, .nusd = nusd, .n = (uint32_t)n};
        for (size_t i = 0; i < n; i++) {
            h->scope[i] = (uint32_t)(s[i] - b->tab.t);
            s[i]->reserved_nusd += nusd;
        }
        b->n_holds++;
        b->reserved_calls++;
        return id;
    }
}

int tt_budgets_reserve(tt_budgets *b, const tt_llm_attribution *a, int64_t nusd, int64_t today,
                       uint64_t now_ms, uint64_t *hold)
{
    ref r[TT_BUDGET_SCOPES];
    tt_scope *s[TT_BUDGET_SCOPES];
    size_t n = b->holds ? refs_of(b, a, r) : 0, k = 0; /* none: not set up, or freed */
    int full = 0;
    if (hold)
        *hold = 0;
    for (size_t i = 0; i < n; i++) {
        tt_scope *e = scope_of(b, &r[i], a->tenant, today, now_ms, &full);
        if (full) {
            snprintf(b->why, sizeof b->why, "too many budgets in use at once (%d tracked)",
                     TT_SCOPES_CAP);
            b->refused++;
            return TT_EBUDGET;
        }
        if (e && !room(b, e, hold ? nusd : 0)) {
            b->refused++;
            return TT_EBUDGET;
        }
        if (e)
            s[k++] = e;
    }
    if (!hold || k == 0 || nusd <= 0)
        return 0;
    *hold = hold_new(b, s, k, nusd);
    if (*hold)
        return 0;
    snprintf(b->why, sizeof b->why, "too many calls with a reservation in flight (%d)",
             TT_BUDGET_HOLDS_MAX);
    b->refused++;
    return TT_EBUDGET;
}

void tt_budgets_release(tt_budgets *b, uint64_t hold)
{
    tt_budget_hold *h = hold && b->holds ? &b->holds[hold & (TT_BUDGET_HOLDS_MAX - 1)] : NULL;
    if (!h || h->id != hold)
        return;
    for (uint32_t i = 0; i < h->n; i++) {
        tt_scope *e = &b->tab.t[h->scope[i]];
        e->reserved_nusd -= h->nusd;
        if (e->reserved_nusd < 0)
            e->reserved_nusd = 0;
    }
    *h = (tt_budget_hold){0};
    b->n_holds--;
}

void tt_budgets_spend(tt_budgets *b, const tt_llm_attribution *a, int64_t nusd, int64_t today,
                      uint64_t now_ms)
{
    if (nusd <= 0)
        return;
    ref r[TT_BUDGET_SCOPES];
    size_t n = b->holds ? refs_of(b, a, r) : 0;
    for (size_t i = 0; i < n; i++) {
        int full = 0;
        tt_scope *e = scope_of(b, &r[i], a->tenant, today, now_ms, &full);
        if (!e)
            continue;
        e->day_nusd += nusd;
        e->month_nusd += nusd;
        e->total_nusd += nusd;
    }
}

void tt_budgets_run_begin(tt_budgets *b, const char *session)
{
    tt_scope *e = b->any[TT_SCOPE_RUN] ? tt_scopes_find(&b->tab, TT_SCOPE_RUN, session) : NULL;
    if (e)
        e->total_nusd = 0;
}

/* Add a ledger query's groups to their scopes' day or month sums. */
static void load_groups(tt_budgets *b, tt_scope_kind k, json_t *res, int64_t today, int month)
{
    size_t i;
    json_t *g;
    static const char *const field[TT_SCOPE__LAST] = {[TT_SCOPE_TENANT] = "tenant",
                                                      [TT_SCOPE_USER] = "user",
                                                      [TT_SCOPE_KEY] = "key",
                                                      [TT_SCOPE_AGENT] = "agent",
                                                      [TT_SCOPE_FEATURE] = "feature"};
    json_array_foreach(json_object_get(res, "groups"), i, g)
    {
        const char *name = json_string_value(json_object_get(g, field[k]));
        const char *tenant = json_string_value(json_object_get(g, "tenant"));
        int64_t nusd = llround(json_number_value(json_object_get(g, "cost_usd")) * TT_NUSD_PER_USD);
        if (!name || !tenant)
            continue;
        tt_llm_attribution a = {0};
        tt_utf8_copy(a.tenant, sizeof a.tenant, tenant);
        char *dst[TT_SCOPE__LAST] = {[TT_SCOPE_USER] = a.user,
                                     [TT_SCOPE_KEY] = a.key_id,
                                     [TT_SCOPE_AGENT] = a.agent,
                                     [TT_SCOPE_FEATURE] = a.feature};
        if (dst[k])
            tt_utf8_copy(dst[k], TT_ATTR_FIELD_MAX, name);
        ref r[TT_BUDGET_SCOPES];
        size_t n = refs_of(b, &a, r);
        for (size_t j = 0; j < n; j++) {
            int full = 0;
            tt_scope *e = r[j].kind == k ? scope_of(b, &r[j], tenant, today, 0, &full) : NULL;
            if (e && month)
                e->month_nusd += nusd;
            else if (e)
                e->day_nusd += nusd;
        }
    }
}

/* The day and month sums of kind k (of tenant, or all when NULL). */
static int load_kind(tt_budgets *b, tt_ledger *ledger, tt_scope_kind k, const char *tenant,
                     int64_t first, int64_t today)
{
    static const tt_ledger_group by[TT_SCOPE__LAST] = {[TT_SCOPE_TENANT] = TT_LEDGER_BY_TENANT,
                                                       [TT_SCOPE_USER] = TT_LEDGER_BY_USER,
                                                       [TT_SCOPE_KEY] = TT_LEDGER_BY_KEY,
                                                       [TT_SCOPE_AGENT] = TT_LEDGER_BY_AGENT,
                                                       [TT_SCOPE_FEATURE] = TT_LEDGER_BY_FEATURE};
    for (int month = 0; month < 2; month++) {
        json_t *res = NULL;
        int rc = tt_ledger_query(ledger, month ? first : today, today, tenant, by[k], &res);
        if (rc)
            return rc;
        if (tenant) /* groups of one tenant do not name it */
            for (size_t i = 0; i < json_array_size(json_object_get(res, "groups")); i++)
                json_object_set_new(json_array_get(json_object_get(res, "groups"), i), "tenant",
                                    json_string(tenant));
        load_groups(b, k, res, today, month);
        json_decref(res);
    }
    return 0;
}

/* Keys, agents and features: one query per tenant (their groups do not name it). */
static int load_per_tenant(tt_budgets *b, tt_ledger *ledger, int64_t first, int64_t today)
{
    json_t *res = NULL;
    int rc = tt_ledger_query(ledger, first, today, NULL, TT_LEDGER_BY_TENANT, &res);
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(res, "groups"), i, g)
    {
        const char *t = json_string_value(json_object_get(g, "tenant"));
        for (int k = TT_SCOPE_KEY; t && rc == 0 && k <= TT_SCOPE_FEATURE; k++)
            if (b->any[k])
                rc = load_kind(b, ledger, (tt_scope_kind)k, t, first, today);
    }
    json_decref(res);
    return rc;
}

int tt_budgets_init(tt_budgets *b, const tt_limits_conf *conf, tt_ledger *ledger, int64_t today)
{
    *b = (tt_budgets){.conf = conf, .holds = calloc(TT_BUDGET_HOLDS_MAX, sizeof(tt_budget_hold))};
    for (int k = 0; k < TT_SCOPE__LAST; k++)
        b->any[k] = k != TT_SCOPE_IP && tt_limits_conf_any_budget(conf, (tt_scope_kind)k);
    int rc = b->holds ? tt_scopes_init(&b->tab) : TT_ENOMEM;
    if (rc || !ledger)
        return rc;
    char s[16];
    tt_ledger_day_format(today, s, sizeof s);
    int64_t first = today - (atoll(s + 8) - 1);
    for (int k = TT_SCOPE_TENANT; rc == 0 && k <= TT_SCOPE_USER; k++)
        if (b->any[k])
            rc = load_kind(b, ledger, (tt_scope_kind)k, NULL, first, today);
    if (rc == 0 && (b->any[TT_SCOPE_KEY] || b->any[TT_SCOPE_AGENT] || b->any[TT_SCOPE_FEATURE]))
        rc = load_per_tenant(b, ledger, first, today);
    return rc;
}

void tt_budgets_free(tt_budgets *b)
{
    tt_scopes_free(&b->tab);
    free(b->holds);
    b->holds = NULL;
}

static json_t *scope_json(const tt_scope *e)
{
    json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "scope", tt_scope_kind_name(e->kind),
                          "name", e->name, "spent_today_usd", usd(e->day_nusd), "spent_month_usd",
                          usd(e->month_nusd), "spent_usd", usd(e->total_nusd), "reserved_usd",
                          usd(e->reserved_nusd));
    if (o && e->lim.daily_nusd)
        json_object_set_new(o, "daily_usd", json_real(usd(e->lim.daily_nusd)));
    if (o && e->lim.monthly_nusd)
        json_object_set_new(o, "monthly_usd", json_real(usd(e->lim.monthly_nusd)));
    if (o && e->lim.total_nusd)
        json_object_set_new(o, "usd", json_real(usd(e->lim.total_nusd)));
    return o;
}

json_t *tt_budgets_list(tt_budgets *b, const char *tenant, int64_t today)
{
    json_t *list = json_array();
    for (size_t i = 0; list && b->tab.t && i < TT_SCOPES_CAP; i++) {
        tt_scope *e = &b->tab.t[i];
        if (!e->used || strcmp(e->tenant, tenant) != 0)
            continue;
        if (e->day != today) { /* not touched today: its day sum is yesterday's */
            ref r = {.kind = (tt_scope_kind)e->kind};
            tt_utf8_copy(r.name, sizeof r.name, e->name);
            int full = 0;
            (void)scope_of(b, &r, tenant, today, e->seen_ms, &full);
        }
        json_array_append_new(list, scope_json(e));
    }
    return list;
}
