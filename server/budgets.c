/* Spending budgets per API key and tenant (see budgets.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/budgets.h"

int64_t tt_budgets_month_of(int64_t day)
{
    char s[16];
    tt_ledger_day_format(day, s, sizeof s);
    return atoll(s) * 12 + atoll(s + 5) - 1;
}

/* name's spend in t, rolled to today (found, a free entry, or the entry
 * with the oldest day; never NULL). */
static tt_spend *spend_of(tt_spend *t, const char *name, int64_t today)
{
    tt_spend *pick = &t[0];
    for (size_t i = 0; i < TT_BUDGETS_MAX; i++) {
        if (t[i].name[0] && strcmp(t[i].name, name) == 0) {
            pick = &t[i];
            goto roll;
        }
        if (pick->name[0] && (!t[i].name[0] || t[i].day < pick->day))
            pick = &t[i];
    }
    *pick = (tt_spend){.day = today, .month = tt_budgets_month_of(today)};
    tt_utf8_copy(pick->name, sizeof pick->name, name);
roll:
    if (pick->day != today) {
        pick->day = today;
        pick->day_usd = 0;
    }
    if (pick->month != tt_budgets_month_of(today)) {
        pick->month = tt_budgets_month_of(today);
        pick->month_usd = 0;
    }
    return pick;
}

/* Add a query's groups (field: "key" or "tenant") to t's day or month sums. */
static void load(tt_spend *t, json_t *res, const char *field, int64_t today, int month)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(res, "groups"), i, g)
    {
        const char *name = json_string_value(json_object_get(g, field));
        double usd = json_real_value(json_object_get(g, "cost_usd"));
        if (!name)
            continue;
        tt_spend *s = spend_of(t, name, today);
        if (month)
            s->month_usd += usd;
        else
            s->day_usd += usd;
    }
}

int tt_budgets_init(tt_budgets *b, const tt_budget_limits *lim, tt_ledger *ledger, int64_t today)
{
    memset(b, 0, sizeof *b);
    b->lim = *lim;
    if (!ledger)
        return 0;
    char s[16];
    tt_ledger_day_format(today, s, sizeof s);
    int64_t first = today - (atoll(s + 8) - 1);
    for (int month = 0; month < 2; month++) {
        for (int by = 0; by < 2; by++) {
            json_t *res = NULL;
            int rc = tt_ledger_query(ledger, month ? first : today, today, NULL,
                                     by ? TT_LEDGER_BY_TENANT : TT_LEDGER_BY_KEY, &res);
            if (rc)
                return rc;
            load(by ? b->tenants : b->keys, res, by ? "tenant" : "key", today, month);
            json_decref(res);
        }
    }
    return 0;
}

static int over(const tt_spend *s, double daily, double monthly, const char *what, char *why,
                size_t n)
{
    if (daily > 0 && s->day_usd >= daily) {
        snprintf(why, n, "%s %.64s has spent $%.4f of its daily budget of $%.4f", what, s->name,
                 s->day_usd, daily);
        return 1;
    }
    if (monthly > 0 && s->month_usd >= monthly) {
        snprintf(why, n, "%s %.64s has spent $%.4f of its monthly budget of $%.4f", what, s->name,
                 s->month_usd, monthly);
        return 1;
    }
    return 0;
}

int tt_budgets_admit(tt_budgets *b, const char *tenant, const char *key_id, int64_t today,
                     char *why, size_t n)
{
    const tt_budget_limits *l = &b->lim;
    if ((l->key_daily_usd > 0 || l->key_monthly_usd > 0) &&
        over(spend_of(b->keys, key_id, today), l->key_daily_usd, l->key_monthly_usd, "API key", why,
             n)) {
        b->refused++;
        return TT_ELIMIT;
    }
    if ((l->tenant_daily_usd > 0 || l->tenant_monthly_usd > 0) &&
        over(spend_of(b->tenants, tenant, today), l->tenant_daily_usd, l->tenant_monthly_usd,
             "tenant", why, n)) {
        b->refused++;
        return TT_ELIMIT;
    }
    return 0;
}

void tt_budgets_spend(tt_budgets *b, const char *tenant, const char *key_id, double usd,
                      int64_t today)
{
    if (usd <= 0)
        return;
    tt_spend *k = spend_of(b->keys, key_id, today);
    k->day_usd += usd;
    k->month_usd += usd;
    tt_spend *t = spend_of(b->tenants, tenant, today);
    t->day_usd += usd;
    t->month_usd += usd;
}
