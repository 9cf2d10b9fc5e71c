/* agents/llm/retry.c: full-jitter backoff, circuit breakers with injected
 * time, and the planner's decisions for each error class and for
 * multi-target failover. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/retry.h"
#include "protocol/errors.h"

static uint64_t rand_zero(void *ud)
{
    return 0;
}

static uint64_t rand_max(void *ud)
{
    return UINT64_MAX;
}

/* Cycles through the values ud points to (a zero-terminated list of
 * fractions in thousandths of the range). */
typedef struct seq {
    const int *milli;
    size_t i;
} seq;

static uint64_t rand_seq(void *ud)
{
    seq *s = ud;
    if (s->milli[s->i] < 0)
        s->i = 0;
    int m = s->milli[s->i++];
    return (uint64_t)((double)m / 1000.0 * 18446744073709549568.0);
}

static tt_retry_policy policy(void)
{
    tt_retry_policy p;
    tt_retry_policy_default(&p);
    return p;
}

static tt_llm_error err_of(tt_llm_error_class cls, int64_t retry_after_ms)
{
    tt_llm_error e;
    memset(&e, 0, sizeof e);
    e.cls = cls;
    e.retry_after_ms = retry_after_ms;
    return e;
}

static void fail_on(tt_retry_call *c, size_t target, tt_llm_error_class cls, int64_t ra,
                    int64_t now)
{
    tt_llm_error e = err_of(cls, ra);
    assert_int_equal(tt_retry_call_record(c, target, &e, now), 0);
}

static void expect_try(const tt_retry_step *s, size_t target, int64_t delay)
{
    if (s->action != TT_RETRY_TRY || s->target != target || s->delay_ms != delay)
        fail_msg("expected TRY %zu after %lld ms, got %s %zu after %lld ms (%s)", target,
                 (long long)delay, s->action == TT_RETRY_TRY ? "TRY" : "GIVE_UP", s->target,
                 (long long)s->delay_ms, s->why);
}

static void expect_give_up(const tt_retry_step *s, tt_llm_error_class cls)
{
    if (s->action != TT_RETRY_GIVE_UP || s->cls != cls)
        fail_msg("expected GIVE_UP %d, got %s %d target %zu (%s)", (int)cls,
                 s->action == TT_RETRY_TRY ? "TRY" : "GIVE_UP", (int)s->cls, s->target, s->why);
}

/* ---- backoff ---- */

static void test_retry_backoff_cap_doubles_to_max(void **state)
{
    tt_retry_policy p = policy();
    const int64_t want[] = {250, 500, 1000, 2000, 4000, 8000, 8000, 8000};
    for (unsigned a = 0; a < sizeof want / sizeof want[0]; a++)
        assert_int_equal(tt_retry_backoff_cap(&p, a), want[a]);
    assert_int_equal(tt_retry_backoff_cap(&p, 1000), 8000); /* no overflow */
    assert_int_equal(tt_retry_backoff_cap(&p, UINT32_MAX), 8000);
    p.base_ms = 0;
    assert_int_equal(tt_retry_backoff_cap(&p, 5), 0);
    assert_int_equal(tt_retry_backoff(&p, 5, rand_max, NULL), 0);
}

static void test_retry_backoff_bounds_with_deterministic_source(void **state)
{
    tt_retry_policy p = policy();
    for (unsigned a = 0; a < 10; a++) {
        int64_t cap = tt_retry_backoff_cap(&p, a);
        assert_int_equal(tt_retry_backoff(&p, a, rand_zero, NULL), 0);
        assert_int_equal(tt_retry_backoff(&p, a, rand_max, NULL), cap);
        seq s = {(const int[]){0, 250, 500, 750, 999, -1}, 0};
        int64_t prev = -1;
        for (int i = 0; i < 5; i++) {
            int64_t d = tt_retry_backoff(&p, a, rand_seq, &s);
            assert_true(d >= 0 && d <= cap);
            assert_true(d >= prev); /* monotonic in the random value */
            prev = d;
        }
    }
}

static void test_retry_full_jitter_mean_is_half_the_cap(void **state)
{
    tt_retry_policy p = policy();
    uint64_t seed = 42;
    const int n = 10000;
    const unsigned attempt = 2; /* cap 1000 */
    int64_t cap = tt_retry_backoff_cap(&p, attempt), lo = cap, hi = 0;
    double sum = 0;
    int buckets[10] = {0};
    for (int i = 0; i < n; i++) {
        int64_t d = tt_retry_backoff(&p, attempt, tt_retry_splitmix, &seed);
        assert_true(d >= 0 && d <= cap);
        sum += (double)d;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        buckets[d * 10 / (cap + 1)]++;
    }
    double mean = sum / n;
    /* Uniform on [0, 1000]: mean 500, standard error about 2.9. */
    if (mean < 485 || mean > 515)
        fail_msg("mean %.1f is not about half the cap %lld", mean, (long long)cap);
    assert_true(lo < 20);  /* full jitter reaches down to zero... */
    assert_true(hi > 980); /* ...and up to the cap */
    for (int b = 0; b < 10; b++)
        assert_true(buckets[b] > 850 && buckets[b] < 1150); /* about 1000 each */
}

/* ---- breaker ---- */

static void test_retry_breaker_opens_after_n_failures(void **state)
{
    tt_retry_policy p = policy(); /* 5 failures, 30 s cooldown */
    tt_breaker b;
    tt_breaker_init(&b, "test");
    for (int i = 0; i < 4; i++) {
        assert_true(tt_breaker_acquire(&b, &p, 1000 + i));
        tt_breaker_record(&b, &p, TT_LLM_ERR_SERVER, 1000 + i);
        assert_int_equal(b.state, TT_BREAKER_CLOSED);
    }
    /* An answer from a working target breaks the run. */
    tt_breaker_record(&b, &p, TT_LLM_ERR_BAD_REQUEST, 1010);
    assert_int_equal(b.failures, 0);
    for (int i = 0; i < 5; i++)
        tt_breaker_record(&b, &p, TT_LLM_ERR_TIMEOUT, 2000);
    assert_int_equal(b.state, TT_BREAKER_OPEN);
    assert_string_equal(tt_breaker_state_name(b.state), "open");
    assert_false(tt_breaker_available(&b, &p, 2000));
    assert_false(tt_breaker_acquire(&b, &p, 2000 + 29999));
    assert_int_equal(b.state, TT_BREAKER_OPEN);
}

static void test_retry_breaker_half_open_success_closes(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker b;
    tt_breaker_init(&b, "test");
    for (int i = 0; i < 5; i++)
        tt_breaker_record(&b, &p, TT_LLM_ERR_OVERLOADED, 0);
    assert_int_equal(b.state, TT_BREAKER_OPEN);
    /* available() only looks; acquire() lets the one trial through. */
    assert_true(tt_breaker_available(&b, &p, 30000));
    assert_int_equal(b.state, TT_BREAKER_OPEN);
    assert_true(tt_breaker_acquire(&b, &p, 30000));
    assert_int_equal(b.state, TT_BREAKER_HALF_OPEN);
    assert_false(tt_breaker_available(&b, &p, 30001));
    assert_false(tt_breaker_acquire(&b, &p, 30001)); /* one trial at a time */
    tt_breaker_record(&b, &p, TT_LLM_ERR_NONE, 30500);
    assert_int_equal(b.state, TT_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_true(tt_breaker_acquire(&b, &p, 30501));
    assert_true(tt_breaker_acquire(&b, &p, 30501)); /* closed: no limit */
}

static void test_retry_breaker_half_open_failure_reopens(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker b;
    tt_breaker_init(&b, "test");
    for (int i = 0; i < 5; i++)
        tt_breaker_record(&b, &p, TT_LLM_ERR_NETWORK, 100);
    assert_true(tt_breaker_acquire(&b, &p, 30100));
    tt_breaker_record(&b, &p, TT_LLM_ERR_RATE_LIMITED, 31000);
    assert_int_equal(b.state, TT_BREAKER_OPEN);
    assert_int_equal(b.opened_ms, 31000); /* a new cooldown from the failed trial */
    assert_false(tt_breaker_acquire(&b, &p, 31000 + 29999));
    assert_true(tt_breaker_acquire(&b, &p, 31000 + 30000));
    assert_int_equal(b.state, TT_BREAKER_HALF_OPEN);
}

static void test_retry_breaker_cancel_frees_the_trial(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker b;
    tt_breaker_init(&b, "test");
    for (int i = 0; i < 5; i++)
        tt_breaker_record(&b, &p, TT_LLM_ERR_SERVER, 0);
    assert_true(tt_breaker_acquire(&b, &p, 40000));
    tt_breaker_record(&b, &p, TT_LLM_ERR_CANCELLED, 40001);
    assert_int_equal(b.state, TT_BREAKER_HALF_OPEN);
    assert_true(tt_breaker_acquire(&b, &p, 40002));
    /* Classes that say nothing bad about the target never count. */
    assert_false(tt_breaker_counts(TT_LLM_ERR_AUTH));
    assert_false(tt_breaker_counts(TT_LLM_ERR_CONTEXT_LENGTH));
    assert_false(tt_breaker_counts(TT_LLM_ERR_CANCELLED));
    assert_true(tt_breaker_counts(TT_LLM_ERR_MALFORMED));
    assert_true(tt_breaker_counts(TT_LLM_ERR_RATE_LIMITED));
}

/* What the observer heard: one line per transition. */
typedef struct heard {
    char lines[8][200];
    int failures[8];
    int n;
} heard;

static void hear(const tt_breaker_transition *t, void *ud)
{
    heard *h = ud;
    assert_true(h->n < 8);
    json_t *j = tt_breaker_transition_json(t);
    assert_non_null(j);
    h->failures[h->n] = (int)json_integer_value(json_object_get(j, "failures"));
    snprintf(h->lines[h->n++], sizeof h->lines[0], "%s %s>%s %s",
             json_string_value(json_object_get(j, "target")),
             json_string_value(json_object_get(j, "from")),
             json_string_value(json_object_get(j, "to")),
             json_string_value(json_object_get(j, "reason")));
    json_decref(j);
}

static void test_retry_breaker_transitions_are_told_once_each(void **state)
{
    heard h = {0};
    tt_retry_policy p = policy();
    p.on_breaker = hear;
    p.on_breaker_ud = &h;
    tt_breaker b;
    tt_breaker_init(&b, "fast[0] openai/gpt");
    for (int i = 0; i < 7; i++) /* two more failures while open change nothing */
        tt_breaker_record(&b, &p, TT_LLM_ERR_SERVER, 0);
    assert_true(tt_breaker_acquire(&b, &p, 30000));
    tt_breaker_record(&b, &p, TT_LLM_ERR_TIMEOUT, 30001);
    assert_true(tt_breaker_acquire(&b, &p, 60001));
    tt_breaker_record(&b, &p, TT_LLM_ERR_CANCELLED, 60002); /* frees the trial, no change */
    assert_true(tt_breaker_acquire(&b, &p, 60003));
    tt_breaker_record(&b, &p, TT_LLM_ERR_NONE, 60004);
    tt_breaker_record(&b, &p, TT_LLM_ERR_NONE, 60005); /* closed already */
    assert_int_equal(h.n, 5);
    assert_string_equal(h.lines[0], "fast[0] openai/gpt closed>open consecutive failures");
    assert_int_equal(h.failures[0], 5);
    assert_string_equal(h.lines[1],
                        "fast[0] openai/gpt open>half_open cooldown over: one trial request");
    assert_string_equal(h.lines[2], "fast[0] openai/gpt half_open>open the trial request failed");
    assert_string_equal(h.lines[3],
                        "fast[0] openai/gpt open>half_open cooldown over: one trial request");
    assert_string_equal(h.lines[4], "fast[0] openai/gpt half_open>closed the target answered");
}

/* ---- the call and its planner ---- */

static void test_retry_call_init_and_record_refuse_bad_input(void **state)
{
    tt_retry_policy p = policy();
    tt_retry_call c;
    assert_int_equal(tt_retry_call_init(&c, &p, 0, 0), TT_EINVAL);
    assert_int_equal(tt_retry_call_init(&c, &p, TT_RETRY_MAX_TARGETS + 1, 0), TT_EINVAL);
    p.max_attempts = TT_RETRY_MAX_ATTEMPTS + 1;
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), TT_EINVAL);
    p = policy();
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    tt_llm_error e = err_of(TT_LLM_ERR_NONE, -1);
    assert_int_equal(tt_retry_call_record(&c, 0, &e, 1), TT_EINVAL);
    e.cls = TT_LLM_ERR_SERVER;
    assert_int_equal(tt_retry_call_record(&c, 2, &e, 1), TT_EINVAL);
    for (int i = 0; i < TT_RETRY_MAX_ATTEMPTS; i++)
        assert_int_equal(tt_retry_call_record(&c, 0, &e, 1), 0);
    assert_int_equal(tt_retry_call_record(&c, 0, &e, 1), TT_EFULL);
}

static void test_retry_plan_first_attempt_skips_open_breakers(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[3] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 3, 1000), 0);
    tt_retry_plan(&c, br, 1000, rand_zero, NULL, &s);
    expect_try(&s, 0, 0);

    br[0] = (tt_breaker){.state = TT_BREAKER_OPEN, .failures = 0, .opened_ms = 500, .trial = 0};
    tt_retry_plan(&c, br, 1000, rand_zero, NULL, &s);
    expect_try(&s, 1, 0);

    br[1] = (tt_breaker){.state = TT_BREAKER_HALF_OPEN,
                         .failures = 0,
                         .opened_ms = 0,
                         .trial = 1}; /* its trial is in flight */
    br[2] = (tt_breaker){.state = TT_BREAKER_OPEN, .failures = 0, .opened_ms = 900, .trial = 0};
    tt_retry_plan(&c, br, 1000, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_OVERLOADED);
    assert_true(s.breakers_open);

    /* Once a cooldown has passed the target is tried again (its trial). */
    tt_retry_plan(&c, br, 500 + p.breaker_cooldown_ms, rand_zero, NULL, &s);
    expect_try(&s, 0, 0);
}

static void test_retry_plan_rate_limit_fails_over_at_once(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 2000, 100);
    tt_retry_plan(&c, br, 100, rand_max, NULL, &s);
    expect_try(&s, 1, 0); /* B immediately, not after A's Retry-After */

    /* Overloaded is handled the same way. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_OVERLOADED, -1, 100);
    tt_retry_plan(&c, br, 100, rand_max, NULL, &s);
    expect_try(&s, 1, 0);
}

static void test_retry_plan_rate_limit_on_all_returns_after_retry_after(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 3000, 100); /* A: ready at 3100 */
    fail_on(&c, 1, TT_LLM_ERR_RATE_LIMITED, 5000, 200); /* B: ready at 5200 */
    tt_retry_plan(&c, br, 200, rand_max, NULL, &s);
    expect_try(&s, 0, 2900); /* back to A, not one ms before its Retry-After */

    /* Retry-After shorter than the backoff: the backoff wins (never sooner
     * than either). A's first failure: backoff cap 250. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 100, 0);
    fail_on(&c, 1, TT_LLM_ERR_RATE_LIMITED, 5000, 0);
    tt_retry_plan(&c, br, 0, rand_max, NULL, &s);
    expect_try(&s, 0, 250);

    /* The target that is ready sooner goes first, whichever failed last. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 9000, 0);
    fail_on(&c, 1, TT_LLM_ERR_OVERLOADED, 1000, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_try(&s, 1, 1000);
}

static void test_retry_plan_single_target_honours_retry_after(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[1] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 7000, 1000); /* "Retry-After: 7" */
    tt_retry_plan(&c, br, 1000, rand_zero, NULL, &s);
    expect_try(&s, 0, 7000);
    /* Planned later (the caller was slow): only what is left. */
    tt_retry_plan(&c, br, 5000, rand_zero, NULL, &s);
    expect_try(&s, 0, 3000);
    /* No Retry-After: the jittered backoff alone. */
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, -1, 1000);
    tt_retry_plan(&c, br, 1000, rand_max, NULL, &s);
    expect_try(&s, 0, 250);
}

static void test_retry_plan_retry_after_past_budget_fails_over(void **state)
{
    tt_retry_policy p = policy(); /* 60 s budget */
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 120000, 500);
    tt_retry_plan(&c, br, 500, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_RATE_LIMITED);

    /* With a second target, A is given up on and B carries the call,
     * coming back to B itself after its backoff. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 120000, 500);
    tt_retry_plan(&c, br, 500, rand_zero, NULL, &s);
    expect_try(&s, 1, 0);
    fail_on(&c, 1, TT_LLM_ERR_RATE_LIMITED, -1, 700);
    tt_retry_plan(&c, br, 700, rand_max, NULL, &s);
    expect_try(&s, 1, 250);
}

static void test_retry_plan_budget_and_attempts_exhausted(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    /* Time: nothing starts after started + max_total_ms. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 1000), 0);
    fail_on(&c, 0, TT_LLM_ERR_TIMEOUT, -1, 1000 + 60000);
    tt_retry_plan(&c, br, 1000 + 60000, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_TIMEOUT);
    assert_string_equal(s.why, "time budget exhausted");

    /* A backoff is shortened to start inside the budget. */
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_SERVER, -1, 59900);
    tt_retry_plan(&c, br, 59900, rand_max, NULL, &s);
    expect_try(&s, 0, 99);

    /* Attempts: four in all, over every target. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_OVERLOADED, -1, 10);
    fail_on(&c, 1, TT_LLM_ERR_OVERLOADED, -1, 20);
    fail_on(&c, 0, TT_LLM_ERR_OVERLOADED, -1, 30);
    tt_retry_plan(&c, br, 30, rand_zero, NULL, &s);
    assert_int_equal(s.action, TT_RETRY_TRY);
    fail_on(&c, 1, TT_LLM_ERR_SERVER, -1, 40);
    tt_retry_plan(&c, br, 40, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_SERVER); /* the last class is reported */
    assert_string_equal(s.why, "attempts exhausted");
}

static void test_retry_plan_transient_retries_same_target_once(void **state)
{
    const tt_llm_error_class classes[] = {TT_LLM_ERR_SERVER, TT_LLM_ERR_TIMEOUT,
                                          TT_LLM_ERR_NETWORK};
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    for (size_t i = 0; i < 3; i++) {
        tt_retry_call c;
        tt_retry_step s;
        assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
        fail_on(&c, 0, classes[i], -1, 100);
        tt_retry_plan(&c, br, 100, rand_max, NULL, &s);
        expect_try(&s, 0, 250); /* same target, backoff cap base_ms */
        fail_on(&c, 0, classes[i], -1, 400);
        tt_retry_plan(&c, br, 400, rand_max, NULL, &s);
        expect_try(&s, 1, 0); /* then fail over */
        fail_on(&c, 1, classes[i], -1, 500);
        tt_retry_plan(&c, br, 500, rand_max, NULL, &s);
        expect_try(&s, 1, 250); /* B gets its own one retry */
    }
}

static void test_retry_plan_transient_single_target_backs_off(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[1] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_SERVER, -1, 0);
    tt_retry_plan(&c, br, 0, rand_max, NULL, &s);
    expect_try(&s, 0, 250);
    fail_on(&c, 0, TT_LLM_ERR_SERVER, -1, 1000);
    tt_retry_plan(&c, br, 1000, rand_max, NULL, &s);
    expect_try(&s, 0, 500); /* nowhere to fail over to: back off, growing */
    fail_on(&c, 0, TT_LLM_ERR_NETWORK, -1, 2000);
    tt_retry_plan(&c, br, 2000, rand_max, NULL, &s);
    expect_try(&s, 0, 1000);
    fail_on(&c, 0, TT_LLM_ERR_NETWORK, -1, 4000);
    tt_retry_plan(&c, br, 4000, rand_max, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_NETWORK);
}

static void test_retry_plan_context_length_asks_the_caller_to_trim(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 1, TT_LLM_ERR_CONTEXT_LENGTH, -1, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_CONTEXT_LENGTH);
    assert_true(s.trim);
    assert_int_equal(s.target, 1);
    /* Trimmed and still too long: no second trim. */
    fail_on(&c, 1, TT_LLM_ERR_CONTEXT_LENGTH, -1, 20);
    tt_retry_plan(&c, br, 20, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_CONTEXT_LENGTH);
    assert_false(s.trim);
    /* No trim offered when no attempt is left. */
    p.max_attempts = 1;
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_CONTEXT_LENGTH, -1, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_CONTEXT_LENGTH);
    assert_false(s.trim);
}

static void test_retry_plan_gives_up_on_request_errors(void **state)
{
    const tt_llm_error_class classes[] = {TT_LLM_ERR_BAD_REQUEST, TT_LLM_ERR_CONTENT_FILTER,
                                          TT_LLM_ERR_CANCELLED};
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    for (size_t i = 0; i < 3; i++) {
        tt_retry_call c;
        tt_retry_step s;
        assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
        fail_on(&c, 0, classes[i], -1, 10);
        tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
        expect_give_up(&s, classes[i]);
        assert_false(s.trim);
    }
}

static void test_retry_plan_auth_fails_over_never_back(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_AUTH, -1, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_try(&s, 1, 0);
    /* B throttled twice: A (bad key) is never the answer; B waits. */
    fail_on(&c, 1, TT_LLM_ERR_RATE_LIMITED, 1000, 20);
    tt_retry_plan(&c, br, 20, rand_zero, NULL, &s);
    expect_try(&s, 1, 1000);
    fail_on(&c, 1, TT_LLM_ERR_AUTH, -1, 1100);
    tt_retry_plan(&c, br, 1100, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_AUTH);
    /* Single target: nothing else to try. */
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_AUTH, -1, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_AUTH);
}

static void test_retry_plan_malformed_retries_once_elsewhere(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[3] = {0};
    tt_retry_call c;
    tt_retry_step s;
    assert_int_equal(tt_retry_call_init(&c, &p, 3, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_MALFORMED, -1, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_try(&s, 1, 0);
    fail_on(&c, 1, TT_LLM_ERR_MALFORMED, -1, 20);
    tt_retry_plan(&c, br, 20, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_MALFORMED);
    /* The retry elsewhere may fail otherwise; the malformed target stays out. */
    assert_int_equal(tt_retry_call_init(&c, &p, 2, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_MALFORMED, -1, 10);
    fail_on(&c, 1, TT_LLM_ERR_OVERLOADED, 500, 20);
    tt_retry_plan(&c, br, 20, rand_zero, NULL, &s);
    expect_try(&s, 1, 500);
    /* Single target: no other to try. */
    assert_int_equal(tt_retry_call_init(&c, &p, 1, 0), 0);
    fail_on(&c, 0, TT_LLM_ERR_MALFORMED, -1, 10);
    tt_retry_plan(&c, br, 10, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_MALFORMED);
}

static void test_retry_plan_skips_open_breakers_in_failover(void **state)
{
    tt_retry_policy p = policy();
    tt_breaker br[3] = {0};
    tt_retry_call c;
    tt_retry_step s;
    br[1] = (tt_breaker){.state = TT_BREAKER_OPEN, .failures = 0, .opened_ms = 0, .trial = 0};
    assert_int_equal(tt_retry_call_init(&c, &p, 3, 100), 0);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, -1, 200);
    tt_retry_plan(&c, br, 200, rand_zero, NULL, &s);
    expect_try(&s, 2, 0); /* B is open: straight to C */
    fail_on(&c, 2, TT_LLM_ERR_RATE_LIMITED, 800, 300);
    tt_retry_plan(&c, br, 300, rand_zero, NULL, &s);
    expect_try(&s, 0, 0); /* A's backoff (0 here) is over; B still open */

    /* This call's own failures opened every breaker: give up, say so. */
    br[0] = (tt_breaker){.state = TT_BREAKER_OPEN, .failures = 0, .opened_ms = 300, .trial = 0};
    br[2] = (tt_breaker){.state = TT_BREAKER_OPEN, .failures = 0, .opened_ms = 300, .trial = 0};
    tt_retry_plan(&c, br, 300, rand_zero, NULL, &s);
    expect_give_up(&s, TT_LLM_ERR_RATE_LIMITED);
    assert_true(s.breakers_open);
}

/* The sequence a client sees with two regions under load: throttled in A,
 * over to B at once, B fails twice, back to A once its Retry-After passed,
 * and A answers. */
static void test_retry_plan_two_region_failover_sequence(void **state)
{
    tt_retry_policy p = policy();
    p.max_attempts = 6;
    tt_breaker br[2] = {0};
    tt_retry_call c;
    tt_retry_step s;
    int64_t now = 0;
    assert_int_equal(tt_retry_call_init(&c, &p, 2, now), 0);

    tt_retry_plan(&c, br, now, rand_max, NULL, &s);
    expect_try(&s, 0, 0);
    assert_true(tt_breaker_acquire(&br[0], &p, now));
    now += 40;
    tt_breaker_record(&br[0], &p, TT_LLM_ERR_RATE_LIMITED, now);
    fail_on(&c, 0, TT_LLM_ERR_RATE_LIMITED, 4000, now); /* A ready at 4040 */

    tt_retry_plan(&c, br, now, rand_max, NULL, &s);
    expect_try(&s, 1, 0);
    assert_string_equal(s.why, "failover after rate limit or overload");
    assert_true(tt_breaker_acquire(&br[1], &p, now));
    now += 100;
    tt_breaker_record(&br[1], &p, TT_LLM_ERR_SERVER, now);
    fail_on(&c, 1, TT_LLM_ERR_SERVER, -1, now); /* 140 */

    tt_retry_plan(&c, br, now, rand_max, NULL, &s);
    expect_try(&s, 1, 250); /* B once more after its backoff */
    now += 250;
    assert_true(tt_breaker_acquire(&br[1], &p, now));
    now += 60;
    tt_breaker_record(&br[1], &p, TT_LLM_ERR_TIMEOUT, now);
    fail_on(&c, 1, TT_LLM_ERR_TIMEOUT, -1, now); /* 450 */

    tt_retry_plan(&c, br, now, rand_max, NULL, &s);
    expect_try(&s, 0, 4040 - 450); /* A, when its Retry-After allows */
    now += s.delay_ms;
    assert_true(tt_breaker_acquire(&br[0], &p, now));
    tt_breaker_record(&br[0], &p, TT_LLM_ERR_NONE, now + 900);
    assert_int_equal(c.n_hist, 3);
    assert_int_equal(br[0].state, TT_BREAKER_CLOSED);
    assert_int_equal(br[1].failures, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_backoff_cap_doubles_to_max),
        cmocka_unit_test(test_retry_breaker_transitions_are_told_once_each),
        cmocka_unit_test(test_retry_backoff_bounds_with_deterministic_source),
        cmocka_unit_test(test_retry_full_jitter_mean_is_half_the_cap),
        cmocka_unit_test(test_retry_breaker_opens_after_n_failures),
        cmocka_unit_test(test_retry_breaker_half_open_success_closes),
        cmocka_unit_test(test_retry_breaker_half_open_failure_reopens),
        cmocka_unit_test(test_retry_breaker_cancel_frees_the_trial),
        cmocka_unit_test(test_retry_call_init_and_record_refuse_bad_input),
        cmocka_unit_test(test_retry_plan_first_attempt_skips_open_breakers),
        cmocka_unit_test(test_retry_plan_rate_limit_fails_over_at_once),
        cmocka_unit_test(test_retry_plan_rate_limit_on_all_returns_after_retry_after),
        cmocka_unit_test(test_retry_plan_single_target_honours_retry_after),
        cmocka_unit_test(test_retry_plan_retry_after_past_budget_fails_over),
        cmocka_unit_test(test_retry_plan_budget_and_attempts_exhausted),
        cmocka_unit_test(test_retry_plan_transient_retries_same_target_once),
        cmocka_unit_test(test_retry_plan_transient_single_target_backs_off),
        cmocka_unit_test(test_retry_plan_context_length_asks_the_caller_to_trim),
        cmocka_unit_test(test_retry_plan_gives_up_on_request_errors),
        cmocka_unit_test(test_retry_plan_auth_fails_over_never_back),
        cmocka_unit_test(test_retry_plan_malformed_retries_once_elsewhere),
        cmocka_unit_test(test_retry_plan_skips_open_breakers_in_failover),
        cmocka_unit_test(test_retry_plan_two_region_failover_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
