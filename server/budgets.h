/* Spending budgets in USD per API key and per tenant, per UTC day and per
 * UTC month: once what a key or tenant has spent (the cost ledger's sums,
 * state/ledger.h) reaches a budget, its requests that may call a model are
 * refused until the day or month turns: `429` with an OpenAI-shaped error
 * of code `budget_exceeded` on the gateway, an `error` with code
 * `limit_exceeded` and `reason: "budget_exceeded"` on a socket.
 *
 * The spend is counted in memory from each provider attempt's cost (the
 * usage hook) and read back from the ledger at start-up, so a restart does
 * not reset it. There is no reservation yet: calls already admitted when the
 * budget is reached finish, so the spend can pass a budget by what those
 * calls cost. At most TT_BUDGETS_MAX keys and as many tenants are tracked. */
#ifndef TT_BUDGETS_H
#define TT_BUDGETS_H

#include <stddef.h>
#include <stdint.h>

#include "state/ledger.h"

#define TT_BUDGETS_MAX 256

typedef struct tt_budget_limits {
    double key_daily_usd, key_monthly_usd; /* 0: none */
    double tenant_daily_usd, tenant_monthly_usd;
} tt_budget_limits;

typedef struct tt_spend {
    char name[128];
    int64_t day, month; /* the UTC day number and year*12+month the sums are of */
    double day_usd, month_usd;
} tt_spend;

typedef struct tt_budgets {
    tt_budget_limits lim;
    tt_spend keys[TT_BUDGETS_MAX], tenants[TT_BUDGETS_MAX];
    uint64_t refused;
} tt_budgets;

/* Set the limits and read this month's spend from the ledger (as of today). */
int tt_budgets_init(tt_budgets *b, const tt_budget_limits *lim, tt_ledger *ledger, int64_t today);

/* 0, or TT_ELIMIT with what is spent in why (size n). */
int tt_budgets_admit(tt_budgets *b, const char *tenant, const char *key_id, int64_t today,
                     char *why, size_t n);

/* Add the cost of a provider attempt made today. */
void tt_budgets_spend(tt_budgets *b, const char *tenant, const char *key_id, double usd,
                      int64_t today);

/* year*12 + month-1 of a day number. */
int64_t tt_budgets_month_of(int64_t day);

#endif
