/* Unit tests for state/ledger.c: dates, the batched write (one transaction
 * for many rows), the day sums and the grouped queries, tenant scoping (two
 * tenants with the same user name), and bad input. Each test has its own
 * fresh store (store_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "state/ledger.h"
#include "store_fixture.h"

#define DAY_MS 86400000LL
/* 2026-03-01 00:00:00 UTC */
#define T0 (20513LL * DAY_MS)

static tt_ledger_row row(const char *tenant, const char *user, const char *feature,
                         const char *model, int64_t ts, int64_t in, int64_t out, double cost)
{
    tt_ledger_row r = {.ts_ms = ts,
                       .prompt_tokens = in,
                       .completion_tokens = out,
                       .cost_usd = cost,
                       .latency_ms = 10};
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.user, sizeof r.user, "%s", user);
    snprintf(r.key_id, sizeof r.key_id, "k_%s", tenant);
    snprintf(r.agent, sizeof r.agent, "chat");
    snprintf(r.feature, sizeof r.feature, "%s", feature);
    snprintf(r.model, sizeof r.model, "%s", model);
    snprintf(r.outcome, sizeof r.outcome, "ok");
    return r;
}

static int opened(void **state)
{
    int rc = setup(state);
    if (rc == 0)
        rc = open_with(*state, 0, 0, TT_SYNC_NONE);
    return rc;
}

static json_t *group(json_t *res, size_t i)
{
    return json_array_get(json_object_get(res, "groups"), i);
}

static json_int_t num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void test_ledger_days(void **state)
{
    (void)state;
    int64_t d;
    assert_int_equal(tt_ledger_day_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(tt_ledger_day_parse("2026-03-01", &d), 0);
    assert_int_equal(d, 20513);
    assert_int_equal(tt_ledger_day_parse("2024-02-29", &d), 0);
    char s[16];
    tt_ledger_day_format(d, s, sizeof s);
    assert_string_equal(s, "2024-02-29");
    assert_int_equal(tt_ledger_day_parse("2026-02-29", &d), TT_EINVAL);
    assert_int_equal(tt_ledger_day_parse("2026-13-01", &d), TT_EINVAL);
    assert_int_equal(tt_ledger_day_parse("2026-1-01", &d), TT_EINVAL);
    assert_int_equal(tt_ledger_day_parse("2026-01-01x", &d), TT_EINVAL);
    assert_int_equal(tt_ledger_day_parse("", &d), TT_EINVAL);
    assert_int_equal(tt_ledger_day_of_ms(T0 + DAY_MS - 1), 20513);
    tt_ledger_group g;
    assert_int_equal(tt_ledger_group_parse("feature", &g), 0);
    assert_int_equal(g, TT_LEDGER_BY_FEATURE);
    assert_int_equal(tt_ledger_group_parse("colour", &g), TT_EINVAL);
}

static void test_ledger_sums_and_groups(void **state)
{
    fx *f = *state;
    tt_ledger *l;
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    tt_ledger_row rows[] = {
        row("acme", "alice", "search", "gpt-a", T0 + 1000, 100, 10, 0.5),
        row("acme", "alice", "search", "gpt-a", T0 + 2000, 200, 20, 1.0),
        row("acme", "bob", "summary", "gpt-b", T0 + 3000, 1, 2, 0.25),
        row("acme", "alice", "search", "gpt-a", T0 + DAY_MS + 5, 7, 3, 2.0),
        row("umbrella", "alice", "search", "gpt-a", T0 + 4000, 1000, 1000, 8.0),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(tt_ledger_add(l, &rows[i]), 0);
    assert_int_equal(tt_ledger_queued(l), 5);
    assert_int_equal(tt_ledger_flush(l), 0);
    assert_int_equal(tt_ledger_queued(l), 0);

    json_t *res = NULL;
    /* acme by feature over both days: search 3 calls, summary 1. */
    assert_int_equal(tt_ledger_query(l, 20513, 20514, "acme", TT_LEDGER_BY_FEATURE, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res, "groups")), 2);
    assert_string_equal(json_string_value(json_object_get(group(res, 0), "feature")), "search");
    assert_int_equal(num(group(res, 0), "calls"), 3);
    assert_int_equal(num(group(res, 0), "prompt_tokens"), 307);
    assert_int_equal(num(group(res, 0), "completion_tokens"), 33);
    assert_true(json_real_value(json_object_get(group(res, 0), "cost_usd")) == 3.5);
    assert_int_equal(num(group(res, 1), "calls"), 1);
    assert_int_equal(num(json_object_get(res, "total"), "calls"), 4);
    json_decref(res);

    /* One day only; by day. */
    assert_int_equal(tt_ledger_query(l, 20513, 20513, "acme", TT_LEDGER_BY_DAY, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res, "groups")), 1);
    assert_string_equal(json_string_value(json_object_get(group(res, 0), "day")), "2026-03-01");
    assert_int_equal(num(group(res, 0), "calls"), 3);
    json_decref(res);

    /* Unscoped by user: two tenants' "alice" stay apart. */
    assert_int_equal(tt_ledger_query(l, 20513, 20514, NULL, TT_LEDGER_BY_USER, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res, "groups")), 3);
    assert_string_equal(json_string_value(json_object_get(group(res, 0), "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(group(res, 0), "user")), "alice");
    assert_int_equal(num(group(res, 0), "calls"), 3);
    assert_string_equal(json_string_value(json_object_get(group(res, 2), "tenant")), "umbrella");
    assert_int_equal(num(group(res, 2), "prompt_tokens"), 1000);
    json_decref(res);

    /* Scoped to umbrella: nothing of acme. */
    assert_int_equal(tt_ledger_query(l, 20513, 20514, "umbrella", TT_LEDGER_BY_MODEL, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res, "groups")), 1);
    assert_int_equal(num(json_object_get(res, "total"), "prompt_tokens"), 1000);
    json_decref(res);
    tt_ledger_free(l);
}

/* Sums add up across flushes and survive a reopen; errors are counted. */
static void test_ledger_sums_across_flushes(void **state)
{
    fx *f = *state;
    tt_ledger *l;
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    for (int i = 0; i < 3; i++) {
        tt_ledger_row r = row("acme", "alice", "search", "gpt-a", T0 + i, 10, 1, 0.125);
        if (i == 2)
            snprintf(r.outcome, sizeof r.outcome, "rate_limited");
        assert_int_equal(tt_ledger_add(l, &r), 0);
        assert_int_equal(tt_ledger_flush(l), 0);
    }
    tt_ledger_free(l);
    reopen(f);
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    json_t *res = NULL;
    assert_int_equal(tt_ledger_query(l, 20513, 20513, "acme", TT_LEDGER_BY_TENANT, &res), 0);
    assert_int_equal(num(group(res, 0), "calls"), 3);
    assert_int_equal(num(group(res, 0), "errors"), 1);
    assert_int_equal(num(group(res, 0), "prompt_tokens"), 30);
    assert_true(json_real_value(json_object_get(group(res, 0), "cost_usd")) == 0.375);
    json_decref(res);
    /* Queued rows are flushed before a query answers. */
    tt_ledger_row r = row("acme", "carol", "x", "gpt-a", T0, 1, 1, 0);
    assert_int_equal(tt_ledger_add(l, &r), 0);
    assert_int_equal(tt_ledger_query(l, 20513, 20513, "acme", TT_LEDGER_BY_USER, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res, "groups")), 2);
    json_decref(res);
    tt_ledger_free(l);
}

static void test_ledger_bad_ranges(void **state)
{
    fx *f = *state;
    tt_ledger *l;
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    json_t *res = NULL;
    assert_int_equal(tt_ledger_query(l, 10, 9, NULL, TT_LEDGER_BY_DAY, &res), TT_EINVAL);
    assert_int_equal(tt_ledger_query(l, -1, 9, NULL, TT_LEDGER_BY_DAY, &res), TT_EINVAL);
    assert_int_equal(tt_ledger_query(l, 0, TT_LEDGER_RANGE_DAYS_MAX, NULL, TT_LEDGER_BY_DAY, &res),
                     TT_EINVAL);
    assert_null(res);
    assert_int_equal(tt_ledger_query(l, 0, 10, NULL, TT_LEDGER_BY_DAY, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res, "groups")), 0);
    json_decref(res);
    tt_ledger_free(l);
}

/* A full queue asks for a flush; past it the oldest row is dropped and counted. */
static void test_ledger_queue_cap(void **state)
{
    fx *f = *state;
    tt_ledger *l;
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    tt_ledger_row r = row("acme", "alice", "search", "gpt-a", T0, 1, 1, 0);
    for (int i = 0; i < TT_LEDGER_QUEUE_MAX - 1; i++)
        assert_int_equal(tt_ledger_add(l, &r), 0);
    assert_int_equal(tt_ledger_add(l, &r), 1);
    assert_int_equal(tt_ledger_add(l, &r), 1);
    assert_int_equal(tt_ledger_dropped(l), 1);
    assert_int_equal(tt_ledger_flush(l), 0);
    json_t *res = NULL;
    assert_int_equal(tt_ledger_query(l, 20513, 20513, NULL, TT_LEDGER_BY_TENANT, &res), 0);
    assert_int_equal(num(group(res, 0), "calls"), TT_LEDGER_QUEUE_MAX);
    json_decref(res);
    tt_ledger_free(l);
}

typedef struct keys_seen {
    unsigned char keys[8][TT_LEDGER_KEY_LEN];
    int64_t ts[8];
    size_t n;
} keys_seen;

static int collect_key(const unsigned char *key, const char *json, size_t len, void *ctx)
{
    keys_seen *k = ctx;
    if (k->n == 8)
        return 1;
    memcpy(k->keys[k->n], key, TT_LEDGER_KEY_LEN);
    json_t *o = json_loadb(json, len, 0, NULL);
    k->ts[k->n++] = json_integer_value(json_object_get(o, "ts_ms"));
    json_decref(o);
    return 0;
}

/* Keys only grow: a clock that steps back (even past midnight), the same
 * millisecond twice, and a reopened ledger (seq starting again) all write
 * after the last key, never over it; each row keeps its own ts_ms. */
static void test_ledger_keys_only_grow(void **state)
{
    fx *f = *state;
    tt_ledger *l;
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    tt_ledger_row a = row("acme", "alice", "search", "gpt-a", T0 + 5000, 1, 1, 0);
    tt_ledger_row b = row("acme", "alice", "search", "gpt-a", T0 - 1000, 1, 1, 0); /* yesterday */
    assert_int_equal(tt_ledger_add(l, &a), 0);
    assert_int_equal(tt_ledger_add(l, &b), 0);
    assert_int_equal(tt_ledger_add(l, &a), 0);
    assert_int_equal(tt_ledger_flush(l), 0);
    assert_int_equal(tt_ledger_written(l), 3);
    tt_ledger_free(l);
    assert_int_equal(tt_ledger_new(f->st, &l), 0);
    assert_int_equal(tt_ledger_add(l, &a), 0); /* the same ms again after a restart */
    assert_int_equal(tt_ledger_flush(l), 0);
    keys_seen k = {0};
    assert_int_equal(tt_store_read_usage(f->st, NULL, 100, collect_key, &k), 0);
    assert_int_equal(k.n, 4);
    for (size_t i = 1; i < k.n; i++)
        assert_true(memcmp(k.keys[i - 1], k.keys[i], TT_LEDGER_KEY_LEN) < 0);
    assert_int_equal(k.ts[1], T0 - 1000); /* the row keeps its own time */
    keys_seen after = {0};
    assert_int_equal(tt_store_read_usage(f->st, k.keys[1], 100, collect_key, &after), 0);
    assert_int_equal(after.n, 2); /* strictly after the key given */
    /* The day sums still count the row under its own day. */
    json_t *res = NULL;
    assert_int_equal(tt_ledger_query(l, 20512, 20512, NULL, TT_LEDGER_BY_DAY, &res), 0);
    assert_int_equal(num(json_object_get(res, "total"), "calls"), 1);
    json_decref(res);
    tt_ledger_free(l);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, opened, teardown)

/* The stored row written directly is jansson's dump of the json_pack the
 * ledger used before, byte for byte; what jansson refuses (not UTF-8, a cost
 * that is not finite) the writer refuses, leaving the buffer as it was. */
static char *row_by_jansson(const tt_ledger_row *r)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, "
                  "s:I, s:f, s:b}",
                  "ts_ms", (json_int_t)r->ts_ms, "tenant", r->tenant, "user", r->user, "key_id",
                  r->key_id, "agent", r->agent, "session", r->session, "feature", r->feature,
                  "model", r->model, "route", r->route, "target", r->target, "outcome", r->outcome,
                  "prompt_tokens", (json_int_t)r->prompt_tokens, "completion_tokens",
                  (json_int_t)r->completion_tokens, "latency_ms", (json_int_t)r->latency_ms,
                  "cost_usd", r->cost_usd, "cache_hit", r->cache_hit);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void test_ledger_row_json_is_janssons_bytes(void **state)
{
    (void)state;
    tt_ledger_row rows[4] = {
        {.ts_ms = 1765000000123,
         .prompt_tokens = 11,
         .completion_tokens = 2,
         .latency_ms = 3,
         .cost_usd = 0.000123,
         .cache_hit = 0},
        {.ts_ms = 0, .prompt_tokens = -1, .completion_tokens = -1, .cost_usd = 0, .cache_hit = 1},
        {.ts_ms = -5, .prompt_tokens = INT64_MAX, .cost_usd = 2.0, .cache_hit = 7},
        {.ts_ms = 1, .cost_usd = 0.1 + 0.2},
    };
    snprintf(rows[0].tenant, sizeof rows[0].tenant, "acme");
    snprintf(rows[0].model, sizeof rows[0].model, "gpt-4o-mini");
    snprintf(rows[0].outcome, sizeof rows[0].outcome, "ok");
    snprintf(rows[2].user, sizeof rows[2].user,
             "quote \" back \\ \t\n\x01 caf\xc3\xa9 \xf0\x9f\x98\x80");
    snprintf(rows[2].session, sizeof rows[2].session, "sha256:0123456789abcdef");
    memset(rows[3].target, 'x', sizeof rows[3].target - 1);
    for (size_t i = 0; i < 4; i++) {
        char *want = row_by_jansson(&rows[i]);
        assert_non_null(want);
        tt_buf b;
        tt_buf_init(&b, 16 * 1024);
        assert_int_equal(tt_ledger_row_json(&rows[i], &b), 0);
        assert_string_equal(tt_buf_str(&b), want);
        free(want);
        tt_buf_free(&b);
    }
    tt_ledger_row bad = {.cost_usd = 1};
    snprintf(bad.route, sizeof bad.route, "bad \xc3(");
    tt_buf b;
    tt_buf_init(&b, 16 * 1024);
    assert_int_equal(tt_buf_append(&b, "kept", 4), 0);
    assert_null(row_by_jansson(&bad));
    assert_int_equal(tt_ledger_row_json(&bad, &b), TT_EINVAL);
    bad.route[0] = '\0';
    bad.cost_usd = 1.0 / 0.0;
    assert_null(row_by_jansson(&bad));
    assert_int_equal(tt_ledger_row_json(&bad, &b), TT_EINVAL);
    assert_string_equal(tt_buf_str(&b), "kept");
    tt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger_days),
        cmocka_unit_test(test_ledger_row_json_is_janssons_bytes),
        T(test_ledger_sums_and_groups),
        T(test_ledger_sums_across_flushes),
        T(test_ledger_bad_ranges),
        T(test_ledger_queue_cap),
        T(test_ledger_keys_only_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
