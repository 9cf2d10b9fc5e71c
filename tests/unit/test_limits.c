/* Unit tests for server/limits.c (GCRA per key, user, tenant and IP),
 * server/limits_conf.c (the --limits file: defaults, overrides, errors
 * naming the JSON path) and server/budgets.c (reservation before a call,
 * settlement after, read back from the ledger, rolled over at the turn of
 * a day and of a month, session and run caps). */
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
#include "server/limits_conf.h"
#include "state/ledger.h"
#include "store_fixture.h"

#define DAY_MS 86400000LL
#define MAR1 20513 /* 2026-03-01 */
#define USD(x) ((int64_t)((x)*1e9))

static int conf_from(tt_limits_conf *c, const char *text, char *err, size_t n)
{
    *c = (tt_limits_conf){0};
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    assert_non_null(root);
    int rc = tt_limits_conf_parse(c, root, err, n);
    json_decref(root);
    return rc;
}

static void test_limits_requests_per_key_and_tenant(void **state)
{
    (void)state;
    tt_limits_conf c = {0};
    c.defaults[TT_SCOPE_KEY].rpm = 2;
    c.defaults[TT_SCOPE_TENANT].rpm = 3;
    tt_limits l;
    assert_int_equal(tt_limits_init(&l, &c), 0);
    char why[256];
    int64_t wait = 0;
    tt_limits_who k1 = {.tenant = "acme", .key_id = "k1"}, k2 = {.tenant = "acme", .key_id = "k2"};
    assert_int_equal(tt_limits_admit(&l, &k1, 1000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, &k1, 1000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, &k1, 1000, &wait, why, sizeof why), TT_ERATE);
    assert_int_equal(wait, 30); /* GCRA: one request every 60/2 s */
    assert_non_null(strstr(why, "API key k1"));
    /* Another key of the same tenant: the tenant's third, then the tenant is over. */
    assert_int_equal(tt_limits_admit(&l, &k2, 1000, &wait, why, sizeof why), 0);
    assert_int_equal(tt_limits_admit(&l, &k2, 1000, &wait, why, sizeof why), TT_ERATE);
    assert_non_null(strstr(why, "tenant acme"));
    /* A refusal counts nothing: k2 passes once the tenant's interval (20 s) passed. */
    assert_int_equal(tt_limits_admit(&l, &k2, 1000 + 20000, &wait, why, sizeof why), 0);
    tt_limits_who other = {.tenant = "other", .key_id = "k3"};
    assert_int_equal(tt_limits_admit(&l, &other, 1000, &wait, why, sizeof why), 0);
    assert_int_equal(l.refused, 2);
    tt_limits_free(&l);
}

static void test_limits_tokens_debt(void **state)
{
    (void)state;
    tt_limits_conf c = {0};
    c.defaults[TT_SCOPE_KEY].tpm = 600;
    tt_limits l;
    assert_int_equal(tt_limits_init(&l, &c), 0);
    char why[256];
    int64_t wait = 0;
    tt_limits_who w = {.tenant = "t", .key_id = "k"};
    assert_int_equal(tt_limits_admit(&l, &w, 1, &wait, why, sizeof why), 0);
    tt_limits_charge(&l, &w, 900, 1); /* 300 in debt */
    assert_int_equal(tt_limits_admit(&l, &w, 1, &wait, why, sizeof why), TT_ERATE);
    assert_int_equal(wait, 31); /* (300 + 1) tokens at 10 a second */
    assert_non_null(strstr(why, "tokens per minute"));
    assert_int_equal(tt_limits_admit(&l, &w, 30101, &wait, why, sizeof why), 0);
    tt_limits_free(&l);
}

static void test_limits_per_ip_and_user_overrides(void **state)
{
    (void)state;
    tt_limits_conf c;
    char err[256];
    assert_int_equal(conf_from(&c,
                               "{\"default\": {\"ip\": {\"rpm\": 2}},"
                               " \"ips\": {\"10.0.0.9\": {\"rpm\": 5}},"
                               " \"users\": {\"acme/bob\": {\"rpm\": 1}}}",
                               err, sizeof err),
                     0);
    tt_limits l;
    assert_int_equal(tt_limits_init(&l, &c), 0);
    int64_t wait = 0;
    /* Two keys from one IP share it. */
    tt_limits_who a = {.tenant = "acme", .key_id = "k1", .ip = "127.0.0.1"};
    tt_limits_who b = {.tenant = "umbrella", .key_id = "k2", .ip = "127.0.0.1"};
    assert_int_equal(tt_limits_admit(&l, &a, 5, &wait, err, sizeof err), 0);
    assert_int_equal(tt_limits_admit(&l, &b, 5, &wait, err, sizeof err), 0);
    assert_int_equal(tt_limits_admit(&l, &b, 5, &wait, err, sizeof err), TT_ERATE);
    assert_non_null(strstr(err, "client IP 127.0.0.1 is over its requests per minute"));
    assert_int_equal(wait, 30);
    /* An IP with its own limit. */
    tt_limits_who v = {.ip = "10.0.0.9"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(tt_limits_admit(&l, &v, 5, &wait, err, sizeof err), 0);
    assert_int_equal(tt_limits_admit(&l, &v, 5, &wait, err, sizeof err), TT_ERATE);
    /* A user of a tenant, not the same name in another. */
    tt_limits_who bob = {.tenant = "acme", .user = "bob", .ip = "10.0.0.1"};
    tt_limits_who bob2 = {.tenant = "umbrella", .user = "bob", .ip = "10.0.0.2"};
    assert_int_equal(tt_limits_admit(&l, &bob, 5, &wait, err, sizeof err), 0);
    assert_int_equal(tt_limits_admit(&l, &bob2, 5, &wait, err, sizeof err), 0);
    assert_int_equal(tt_limits_admit(&l, &bob, 5, &wait, err, sizeof err), TT_ERATE);
    assert_non_null(strstr(err, "user acme/bob"));
    tt_limits_free(&l);
    tt_limits_conf_free(&c);
}

static void test_limits_conf_errors_name_the_path(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"tenants\": {\"acme\": {\"rpm\": 0}}}",
         "limits.tenants.acme.rpm: must be a positive integer"},
        {"{\"tenants\": {\"acme\": {\"rpm\": 1.5}}}",
         "limits.tenants.acme.rpm: must be a positive integer"},
        {"{\"keys\": {\"k\": {\"daily_usd\": -1}}}", "limits.keys.k.daily_usd: must be a positive"},
        {"{\"default\": {\"ip\": {\"daily_usd\": 1}}}",
         "limits.default.ip.daily_usd: unknown field"},
        {"{\"default\": {\"planet\": {}}}", "limits.default.planet: unknown kind"},
        {"{\"agents\": {\"chat\": {\"rpm\": 5}}}", "limits.agents.chat.rpm: unknown field"},
        {"{\"sessions\": {}}", "limits.sessions: unknown field"},
        {"{\"users\": []}", "limits.users: must be an object"},
        {"[]", "limits: must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_limits_conf c;
        char err[256] = "";
        assert_int_equal(conf_from(&c, bad[i].text, err, sizeof err), TT_EINVAL);
        if (!strstr(err, bad[i].want))
            fail_msg("%s: got \"%s\", want \"%s\"", bad[i].text, err, bad[i].want);
        tt_limits_conf_free(&c);
    }
}

static tt_llm_attribution attr(const char *tenant, const char *key, const char *session)
{
    tt_llm_attribution a = {0};
    snprintf(a.tenant, sizeof a.tenant, "%s", tenant);
    snprintf(a.key_id, sizeof a.key_id, "%s", key);
    snprintf(a.user, sizeof a.user, "alice");
    snprintf(a.agent, sizeof a.agent, "chat");
    snprintf(a.feature, sizeof a.feature, "support");
    snprintf(a.session, sizeof a.session, "%s", session);
    return a;
}

static void test_budgets_reservation_is_exact(void **state)
{
    (void)state;
    tt_limits_conf c = {0};
    c.defaults[TT_SCOPE_TENANT].daily_nusd = USD(1.0);
    static tt_budgets b;
    assert_int_equal(tt_budgets_init(&b, &c, NULL, MAR1), 0);
    tt_llm_attribution a = attr("acme", "k1", "");
    uint64_t holds[100];
    int passed = 0;
    /* 100 calls in flight at once, each may cost $0.1: exactly 10 start. */
    for (int i = 0; i < 100; i++)
        passed += tt_budgets_reserve(&b, &a, USD(0.1), MAR1, 1, &holds[i]) == 0;
    assert_int_equal(passed, 10);
    assert_non_null(strstr(b.why, "tenant acme has spent $0.0000 (and reserved $1.0000)"));
    /* Settled below their estimate: what they did not use is free again. */
    for (int i = 0; i < 10; i++) {
        tt_budgets_spend(&b, &a, USD(0.05), MAR1, 1);
        tt_budgets_release(&b, holds[i]);
    }
    tt_budgets_release(&b, holds[0]); /* twice: nothing */
    json_t *list = tt_budgets_list(&b, "acme", MAR1);
    json_t *t = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(t, "scope")), "tenant");
    assert_true(json_real_value(json_object_get(t, "spent_today_usd")) > 0.4999);
    assert_true(json_real_value(json_object_get(t, "reserved_usd")) == 0);
    json_decref(list);
    list = tt_budgets_list(&b, "other", MAR1);
    assert_int_equal(json_array_size(list), 0); /* another tenant sees nothing of acme */
    json_decref(list);
    passed = 0;
    for (int i = 0; i < 10; i++)
        passed += tt_budgets_reserve(&b, &a, USD(0.1), MAR1, 1, &holds[i]) == 0;
    assert_int_equal(passed, 5);
    /* Another tenant has its own. */
    tt_llm_attribution o = attr("other", "k2", "");
    uint64_t h;
    assert_int_equal(tt_budgets_reserve(&b, &o, USD(0.1), MAR1, 1, &h), 0);
    /* The next day, the spend starts again; the 5 calls in flight still hold $0.5. */
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.6), MAR1 + 1, 1, &h), TT_EBUDGET);
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.5), MAR1 + 1, 1, &h), 0);
    tt_budgets_free(&b);
}

static void test_budgets_session_and_run_caps(void **state)
{
    (void)state;
    tt_limits_conf c;
    char err[256];
    assert_int_equal(conf_from(&c,
                               "{\"default\": {\"session\": {\"usd\": 1}, \"run\": {\"usd\": 0.3}},"
                               " \"features\": {\"support\": {\"daily_usd\": 5}}}",
                               err, sizeof err),
                     0);
    static tt_budgets b;
    assert_int_equal(tt_budgets_init(&b, &c, NULL, MAR1), 0);
    tt_llm_attribution a = attr("acme", "k1", "s_1");
    uint64_t h;
    for (int i = 0; i < 3; i++) { /* a loop of calls in one run */
        assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.1), MAR1, 1, &h), 0);
        tt_budgets_spend(&b, &a, USD(0.1), MAR1, 1);
        tt_budgets_release(&b, h);
    }
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.1), MAR1, 1, &h), TT_EBUDGET);
    assert_non_null(strstr(b.why, "run s_1 has spent $0.3000"));
    tt_budgets_run_begin(&b, "s_1"); /* the next turn */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.1), MAR1, 1, &h), 0);
        tt_budgets_spend(&b, &a, USD(0.1), MAR1, 1);
        tt_budgets_release(&b, h);
    }
    tt_budgets_run_begin(&b, "s_1");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.1), MAR1, 1, &h), 0);
        tt_budgets_spend(&b, &a, USD(0.1), MAR1, 1);
        tt_budgets_release(&b, h);
    }
    tt_budgets_run_begin(&b, "s_1");
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.15), MAR1, 1, &h), TT_EBUDGET);
    assert_non_null(strstr(b.why, "session s_1 has spent $0.9000"));
    json_t *list = tt_budgets_list(&b, "acme", MAR1);
    assert_int_equal(json_array_size(list), 3); /* feature, session, run */
    json_decref(list);
    tt_budgets_free(&b);
    tt_limits_conf_free(&c);
}

static int opened(void **state)
{
    int rc = setup(state);
    if (rc == 0)
        rc = open_with(*state, 0, 0, TT_SYNC_NONE);
    return rc;
}

static void add_row(tt_ledger *led, int64_t day, const char *key, double usd)
{
    tt_ledger_row r = {.ts_ms = day * DAY_MS + 5, .cost_usd = usd};
    snprintf(r.tenant, sizeof r.tenant, "acme");
    snprintf(r.key_id, sizeof r.key_id, "%s", key);
    snprintf(r.agent, sizeof r.agent, "chat");
    snprintf(r.outcome, sizeof r.outcome, "ok");
    assert_int_equal(tt_ledger_add(led, &r), 0);
}

static void test_budgets_read_back_and_roll_over(void **state)
{
    fx *f = *state;
    tt_ledger *led;
    assert_int_equal(tt_ledger_new(f->st, &led), 0);
    /* Spent on March 1st and 2nd: $1 by k1 each day; last month $50 (not counted). */
    add_row(led, MAR1 - 1, "k1", 50);
    add_row(led, MAR1, "k1", 1);
    add_row(led, MAR1 + 1, "k1", 1);
    tt_limits_conf c = {0};
    c.defaults[TT_SCOPE_KEY].daily_nusd = USD(1.5);
    c.defaults[TT_SCOPE_TENANT].monthly_nusd = USD(3);
    c.defaults[TT_SCOPE_AGENT].monthly_nusd = USD(2.5);
    static tt_budgets b;
    assert_int_equal(tt_budgets_init(&b, &c, led, MAR1 + 1), 0);
    tt_llm_attribution a = attr("acme", "k1", "");
    uint64_t h;
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.5), MAR1 + 1, 1, &h), 0);
    tt_budgets_release(&b, h);
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.51), MAR1 + 1, 1, &h), TT_EBUDGET);
    assert_non_null(strstr(b.why, "daily budget"));
    /* The next day the key passes; the agent's month ($2 of 2.5) has room for $0.5. */
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(0.5), MAR1 + 2, 1, &h), 0);
    tt_budgets_spend(&b, &a, USD(0.5), MAR1 + 2, 1);
    tt_budgets_release(&b, h);
    assert_int_equal(tt_budgets_reserve(&b, &a, 0, MAR1 + 2, 1, NULL), TT_EBUDGET);
    assert_non_null(strstr(b.why, "agent acme/chat"));
    assert_non_null(strstr(b.why, "monthly budget"));
    /* April 1st: a new month. */
    assert_int_equal(tt_budgets_reserve(&b, &a, USD(1), MAR1 + 31, 1, &h), 0);
    assert_int_equal(tt_budgets_month_of(MAR1), 2026 * 12 + 2);
    tt_budgets_free(&b);
    tt_ledger_free(led);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_requests_per_key_and_tenant),
        cmocka_unit_test(test_limits_tokens_debt),
        cmocka_unit_test(test_limits_per_ip_and_user_overrides),
        cmocka_unit_test(test_limits_conf_errors_name_the_path),
        cmocka_unit_test(test_budgets_reservation_is_exact),
        cmocka_unit_test(test_budgets_session_and_run_caps),
        cmocka_unit_test_setup_teardown(test_budgets_read_back_and_roll_over, opened, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
