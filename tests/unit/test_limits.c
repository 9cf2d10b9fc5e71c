/* Unit tests for server/limits.c (request and token buckets per key and
 * tenant) and server/budgets.c (daily and monthly spend, read back from the
 * ledger, rolled over at the turn of a day and of a month). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "server/budgets.h"
#include "server/limits.h"
#include "state/ledger.h"
#include "store_fixture.h"

#define DAY_MS 86400000LL
#define MAR1 20513 /* 2026-03-01 */

static void test_limits_requests_per_key_and_tenant(void **state)
{
    (void)state;
    static tt_limits l;
    tt_limits_init(&l, &(tt_limit_rates){.key_requests_per_min = 2, .tenant_requests_per_min = 3});
    char why[256];
    int64_t wait = 0;
    assert_int_equal(tt_limits_admit(&l, "acme", "k1", 1000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, "acme", "k1", 1000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, "acme", "k1", 1000, &wait, why, sizeof why), TT_ERATE);
    assert_int_equal(wait, 30); /* one request refills in 60/2 s */
    assert_non_null(strstr(why, "API key k1"));
    /* Another key of the same tenant: the tenant's third, then the tenant is over. */
    assert_int_equal(tt_limits_admit(&l, "acme", "k2", 1000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, "acme", "k2", 1000, &wait, why, sizeof why), TT_ERATE);
    assert_non_null(strstr(why, "tenant acme"));
    /* A refusal counts nothing: k2 passes once the tenant refills. */
    assert_int_equal(tt_limits_admit(&l, "acme", "k2", 1000 + 20000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, "other", "k3", 1000, &wait, why, sizeof why), 0);
    assert_int_equal(l.refused, 2);
}

static void test_limits_tokens_debt(void **state)
{
    (void)state;
    static tt_limits l;
    tt_limits_init(&l, &(tt_limit_rates){.key_tokens_per_min = 600});
    char why[256];
    int64_t wait = 0;
    assert_int_equal(tt_limits_admit(&l, "t", "k", 0, &wait, why, sizeof why), 0);
    tt_limits_charge(&l, "t", "k", 900, 0); /* 300 in debt */
    assert_int_equal(tt_limits_admit(&l, "t", "k", 0, &wait, why, sizeof why), TT_ERATE);
    assert_int_equal(wait, 31); /* (300 + 1) tokens at 10 a second */
    assert_non_null(strstr(why, "tokens per minute"));
    assert_int_equal(tt_limits_admit(&l, "t", "k", 31000, &wait, why, sizeof why), 0);
}

static int opened(void **state)
{
    int rc = setup(state);
    if (rc == 0)
        rc = open_with(*state, 0, 0, TT_SYNC_NONE);
    return rc;
}

static void test_budgets_read_back_and_roll_over(void **state)
{
    fx *f = *state;
    tt_ledger *led;
    assert_int_equal(tt_ledger_new(f->st, &led), 0);
    /* Spent on March 1st and 2nd: $1 by k1 each day; last month $50 (not counted). */
    int64_t days[] = {MAR1 - 1, MAR1, MAR1 + 1};
    double usd[] = {50, 1, 1};
    for (int i = 0; i < 3; i++) {
        tt_ledger_row r = {.ts_ms = days[i] * DAY_MS + 5, .cost_usd = usd[i]};
        snprintf(r.tenant, sizeof r.tenant, "acme");
        snprintf(r.key_id, sizeof r.key_id, "k1");
        snprintf(r.outcome, sizeof r.outcome, "ok");
        assert_int_equal(tt_ledger_add(led, &r), 0);
    }
    static tt_budgets b;
    tt_budget_limits lim = {.key_daily_usd = 1.5, .tenant_monthly_usd = 3};
    assert_int_equal(tt_budgets_init(&b, &lim, led, MAR1 + 1), 0);
    char why[256];
    assert_int_equal(tt_budgets_admit(&b, "acme", "k1", MAR1 + 1, why, sizeof why), 0);
    tt_budgets_spend(&b, "acme", "k1", 0.5, MAR1 + 1); /* the day: $1.5 */
    assert_int_equal(tt_budgets_admit(&b, "acme", "k1", MAR1 + 1, why, sizeof why), TT_ELIMIT);
    assert_non_null(strstr(why, "daily budget"));
    /* The next day the key passes; the tenant's month ($2.5) still has room. */
    assert_int_equal(tt_budgets_admit(&b, "acme", "k1", MAR1 + 2, why, sizeof why), 0);
    tt_budgets_spend(&b, "acme", "k2", 0.5, MAR1 + 2); /* the month: $3 */
    assert_int_equal(tt_budgets_admit(&b, "acme", "k1", MAR1 + 2, why, sizeof why), TT_ELIMIT);
    assert_non_null(strstr(why, "tenant acme"));
    assert_non_null(strstr(why, "monthly budget"));
    /* April 1st: a new month. */
    assert_int_equal(tt_budgets_admit(&b, "acme", "k1", MAR1 + 31, why, sizeof why), 0);
    assert_int_equal(tt_budgets_month_of(MAR1), 2026 * 12 + 2);
    assert_int_equal(b.refused, 2);
    tt_ledger_free(led);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_requests_per_key_and_tenant),
        cmocka_unit_test(test_limits_tokens_debt),
        cmocka_unit_test_setup_teardown(test_budgets_read_back_and_roll_over, opened, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
