/* agents/llm/tokenizer_set.c: the service's tokenizers, preloaded in the
 * thread pool (not before listening) or loaded by the first caller; threads
 * asking at once share one load; a failure is reported once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "agents/llm/tokenizer_set.h"

#ifndef TT_TOKENIZER_RANKS
#error "define TT_TOKENIZER_RANKS as the path of node_modules/gpt-tokenizer/data"
#endif

static void test_estimate_models_have_none(void **state)
{
    (void)state;
    tt_tokenizer_set *ts = tt_tokenizer_set_new(TT_TOKENIZER_RANKS);
    assert_non_null(ts);
    int rc = -1;
    assert_null(tt_tokenizer_set_get(ts, TT_TOKENIZER_ESTIMATE, &rc));
    assert_int_equal(rc, 0); /* not a failure */
    assert_int_equal(tt_tokenizer_set_report_failure(ts, TT_TOKENIZER_ESTIMATE), 0);
    /* a preload of models without rank files queues nothing */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    const char *models[] = {"claude-sonnet-4", "llama3"};
    assert_int_equal(tt_tokenizer_set_preload(ts, &loop, models, 2), 0);
    assert_int_equal(uv_loop_alive(&loop), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    tt_tokenizer_set_release(ts);
}

typedef struct getter {
    tt_tokenizer_set *ts;
    const tt_tokenizer *tok;
    int rc;
} getter;

static void *get_o200k(void *arg)
{
    getter *g = arg;
    g->tok = tt_tokenizer_set_get(g->ts, TT_TOKENIZER_O200K_BASE, &g->rc);
    return NULL;
}

static void test_threads_share_one_load(void **state)
{
    (void)state;
    tt_tokenizer_set *ts = tt_tokenizer_set_new(TT_TOKENIZER_RANKS);
    enum { N = 4 };
    pthread_t t[N];
    getter g[N];
    for (int i = 0; i < N; i++) {
        g[i] = (getter){.ts = ts, .rc = -1};
        assert_int_equal(pthread_create(&t[i], NULL, get_o200k, &g[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(g[i].rc, 0);
        assert_non_null(g[i].tok);
        assert_ptr_equal(g[i].tok, g[0].tok); /* one load, one tokenizer */
    }
    size_t n = 0;
    assert_int_equal(tt_tokenizer_count(g[0].tok, "hello world", 11, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(tt_tokenizer_set_loaded(ts, TT_TOKENIZER_CL100K_BASE), 0);
    tt_tokenizer_set_release(ts);
}

/* The preload loads the routes' encodings in the pool, only those. */
static void test_preload_in_the_pool(void **state)
{
    (void)state;
    tt_tokenizer_set *ts = tt_tokenizer_set_new(TT_TOKENIZER_RANKS);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    const char *models[] = {"gpt-4o-mini", "claude-sonnet-4", "gpt-4o"};
    assert_int_equal(tt_tokenizer_set_preload(ts, &loop, models, 3), 0);
    assert_int_equal(uv_loop_alive(&loop), 1); /* queued, not done here */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(tt_tokenizer_set_loaded(ts, TT_TOKENIZER_O200K_BASE), 1);
    assert_int_equal(tt_tokenizer_set_loaded(ts, TT_TOKENIZER_CL100K_BASE), 0);
    /* loaded already: a second preload queues nothing */
    assert_int_equal(tt_tokenizer_set_preload(ts, &loop, models, 3), 0);
    assert_int_equal(uv_loop_alive(&loop), 0);
    int rc;
    assert_non_null(tt_tokenizer_set_get(ts, TT_TOKENIZER_O200K_BASE, &rc));
    /* the owner letting go while a preload runs: the job keeps the set */
    const char *gpt4[] = {"gpt-4"};
    assert_int_equal(tt_tokenizer_set_preload(ts, &loop, gpt4, 1), 0);
    tt_tokenizer_set_release(ts);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_failure_reported_once(void **state)
{
    (void)state;
    tt_tokenizer_set *ts = tt_tokenizer_set_new("/nonexistent/tt-ranks");
    int rc = 0;
    assert_int_equal(tt_tokenizer_set_report_failure(ts, TT_TOKENIZER_O200K_BASE),
                     0); /* not tried */
    assert_null(tt_tokenizer_set_get(ts, TT_TOKENIZER_O200K_BASE, &rc));
    assert_int_not_equal(rc, 0);
    assert_int_equal(tt_tokenizer_set_report_failure(ts, TT_TOKENIZER_O200K_BASE), 1);
    assert_int_equal(tt_tokenizer_set_report_failure(ts, TT_TOKENIZER_O200K_BASE), 0);
    rc = 0;
    assert_null(tt_tokenizer_set_get(ts, TT_TOKENIZER_O200K_BASE, &rc)); /* not tried again */
    assert_int_not_equal(rc, 0);
    assert_string_equal(tt_tokenizer_set_dir(ts), "/nonexistent/tt-ranks");
    tt_tokenizer_set_release(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_models_have_none),
        cmocka_unit_test(test_threads_share_one_load),
        cmocka_unit_test(test_preload_in_the_pool),
        cmocka_unit_test(test_failure_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
