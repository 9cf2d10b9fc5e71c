/* Spending budgets in USD per tenant, user, API key, agent and feature,
 * per UTC day and per UTC month, and caps per session and per run (the
 * spend since the session's latest turn began: a runaway agent loop
 * stops), with reservation: before a model call starts, what it may cost at
 * most (agents/llm/gate.h) is reserved against every budget of its scopes;
 * the call starts only if each has room for it (spent + reserved + the
 * estimate <= the budget), all or nothing. Each provider attempt's real cost
 * is then added to the spend (the usage hook), and the call's reservation
 * is released when it ends. Everything runs on the loop, so a check and its
 * reservation are one step: 100 concurrent calls against room for 10 start
 * exactly 10, and the spend never passes a budget by more than the
 * estimate's error (an estimate below the real cost: a model whose reply
 * outgrew max_tokens, a prompt built to defeat the conservative token
 * estimate).
 *
 * A refusal: `budget_exceeded` (TT_EBUDGET): 429 with an OpenAI-shaped error
 * on the gateway, an `error` (reply or event) with code budget_exceeded on a
 * socket. Sums are kept in nano-USD (integers: ten calls of a tenth of a
 * budget fit exactly). The day and month sums are read back from the cost
 * ledger at start-up (a restart does not reset them); session and run sums
 * start at zero after a restart. At most TT_SCOPES_CAP scopes with a budget
 * and TT_BUDGET_HOLDS_MAX calls in flight with a reservation are tracked; a
 * scope holding a reservation is never replaced, and a call that finds no
 * room in the tables is refused (budget_exceeded, "too many"). */
#ifndef TT_BUDGETS_H
#define TT_BUDGETS_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/llm.h"
#include "server/limits_conf.h"
#include "server/scopes.h"
#include "state/ledger.h"

#define TT_BUDGET_HOLDS_MAX 16384 /* a power of two */
#define TT_BUDGET_SCOPES 7        /* tenant, user, key, agent, feature, session, run */

typedef struct tt_budget_hold {
    uint64_t id; /* 0: free */
    int64_t nusd;
    uint32_t n;
    uint32_t scope[TT_BUDGET_SCOPES]; /* indexes into the table */
} tt_budget_hold;

typedef struct tt_budgets {
    const tt_limits_conf *conf; /* borrowed */
    int any[TT_SCOPE__LAST];    /* a kind with a budget somewhere */
    tt_scopes tab;
    tt_budget_hold *holds; /* TT_BUDGET_HOLDS_MAX */
    uint64_t next_hold;
    size_t n_holds;
    uint64_t refused, reserved_calls;
    char why[320]; /* the latest refusal, in words */
} tt_budgets;

/* Set up and read this month's spend from the ledger (as of today). */
int tt_budgets_init(tt_budgets *b, const tt_limits_conf *conf, tt_ledger *ledger, int64_t today);
void tt_budgets_free(tt_budgets *b);

/* Reserve nusd for a call of a (today, now_ms: for the tables): 0 and
 * *hold (0 when no budget applies), or TT_EBUDGET with the reason in b->why.
 * hold NULL: only check that nothing is spent already (nusd 0), reserve
 * nothing. */
int tt_budgets_reserve(tt_budgets *b, const tt_llm_attribution *a, int64_t nusd, int64_t today,
                       uint64_t now_ms, uint64_t *hold);

/* Give a reservation back (its call ended). Unknown or 0: nothing. */
void tt_budgets_release(tt_budgets *b, uint64_t hold);

/* Add what a provider attempt of a really cost, made today. */
void tt_budgets_spend(tt_budgets *b, const tt_llm_attribution *a, int64_t nusd, int64_t today,
                      uint64_t now_ms);

/* A new turn of session began: its run's spend starts again from zero. */
void tt_budgets_run_begin(tt_budgets *b, const char *session);

/* Every tracked budget of tenant, with spend and reservations:
 * [{scope, name, daily_usd?, monthly_usd?, usd?, spent_today_usd,
 *   spent_month_usd, spent_usd, reserved_usd}] (new reference). */
json_t *tt_budgets_list(tt_budgets *b, const char *tenant, int64_t today);

/* year*12 + month-1 of a day number. */
int64_t tt_budgets_month_of(int64_t day);

#endif
