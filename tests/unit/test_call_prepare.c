/* agents/llm/call.c: a large request is prepared (token counts, the body) in
 * libuv's thread pool, a small one on the loop; a cancel, or the service's
 * close, while the preparation runs finishes the call exactly once and frees
 * nothing the job still uses (ASan checks the frees, LeakSanitizer the rest).
 *
 * Linked with -Wl,--wrap=tt_llm_build_body,--wrap=tt_http_start
 * (CMakeLists.txt): building the body is the last step of a preparation, so
 * its wrapper records the thread and can hold the job; the HTTP start is
 * refused, so no call reaches the network and each ends at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "agents/llm/adapter.h"
#include "agents/llm/call.h"
#include "agents/llm/call_request.h"
#include "agents/llm/http.h"
#include "protocol/errors.h"

static uv_thread_t loop_thread; /* the test's own thread, which runs the loop */
static uv_thread_t built_on;    /* the thread that built the last body */
static int bodies_built;        /* bodies built so far */
static int hold_builds;         /* the next build waits for `release` */
static uv_sem_t entered, release;
static int saw_secret, saw_placeholder; /* in the last body's messages */
static int http_starts;                 /* attempts that reached the transport */
static uv_thread_t http_started_on;

int __real_tt_llm_build_body(tt_llm_provider p, const tt_llm_request *req, char **body,
                             size_t *len);
int __wrap_tt_llm_build_body(tt_llm_provider p, const tt_llm_request *req, char **body, size_t *len)
{
    built_on = uv_thread_self();
    if (hold_builds) {
        uv_sem_post(&entered);
        if (!uv_thread_equal(&built_on, &loop_thread)) /* never hold the loop itself */
            uv_sem_wait(&release);
    }
    bodies_built++;
    saw_secret = saw_placeholder = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const char *t = req->messages[i].content;
        saw_secret |= t && strstr(t, "jane@example.com") != NULL;
        saw_placeholder |= t && strstr(t, "[EMAIL_1]") != NULL;
    }
    return __real_tt_llm_build_body(p, req, body, len);
}

int __wrap_tt_http_start(tt_http *h, const char *method, const char *url,
                         const char *const *headers, const char *body, size_t body_len,
                         const tt_http_timeouts *t, const tt_http_callbacks *cb, void *ud,
                         tt_http_req **out)
{
    http_starts++;
    http_started_on = uv_thread_self();
    return TT_EIO;
}

typedef struct outcome {
    int done;
    tt_llm_error_class cls;
} outcome;

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    outcome *o = ud;
    o->done++;
    o->cls = r->error.cls;
}

static const tt_llm_call_hooks hooks = {on_event, NULL, on_done};

typedef struct fixture {
    uv_loop_t loop;
    tt_llm_service *svc;
    char *text; /* a long user turn */
} fixture;

static int setup(void **state)
{
    static char *envp[] = {"OPENAI_API_KEY=test-key", "OPENAI_BASE_URL=http://127.0.0.1:9/v1",
                           NULL};
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    tt_llm_service_options opt = {.loop = &f->loop, .envp = envp, .tokenizer_dir = "/nonexistent"};
    char err[256];
    assert_int_equal(tt_llm_service_new(&opt, &f->svc, err, sizeof err), 0);
    f->text = malloc(4 * TT_CALL_PREPARE_INLINE_MAX + 1);
    assert_non_null(f->text);
    for (size_t i = 0; i < 4 * TT_CALL_PREPARE_INLINE_MAX; i++)
        f->text[i] = i % 6 == 5 ? ' ' : (char)('a' + i % 23);
    f->text[4 * TT_CALL_PREPARE_INLINE_MAX] = '\0';
    bodies_built = http_starts = hold_builds = 0;
    loop_thread = uv_thread_self();
    uv_sem_init(&entered, 0);
    uv_sem_init(&release, 0);
    *state = f;
    return 0;
}

/* Close the service (when the test has not) and check the loop ends clean. */
static int teardown(void **state)
{
    fixture *f = *state;
    tt_llm_service_close(f->svc);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    uv_sem_destroy(&entered);
    uv_sem_destroy(&release);
    free(f->text);
    free(f);
    return 0;
}

static tt_llm_call *start(fixture *f, const char *user_text, outcome *o)
{
    tt_llm_message msgs[] = {
        {.role = "system", .content = "be brief"},
        {.role = "user", .content = user_text},
        {.role = "assistant", .content = "noted"},
        {.role = "user", .content = user_text},
    };
    tt_llm_request req = {.messages = msgs, .n_messages = 4, .temperature = -1, .stream = 1};
    tt_llm_call *c = NULL;
    assert_int_equal(tt_llm_call_start(f->svc, NULL, &req, &hooks, o, &c), 0);
    assert_non_null(c);
    return c;
}

static void test_call_prepares_a_large_request_off_the_loop(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    start(f, f->text, &o);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(o.done, 1);
    assert_int_equal(bodies_built, 1);
    assert_false(uv_thread_equal(&built_on, &loop_thread));
    /* what follows the preparation is back on the loop */
    assert_int_equal(http_starts, 1);
    assert_true(uv_thread_equal(&http_started_on, &loop_thread));
    assert_int_equal(o.cls, TT_LLM_ERR_BAD_REQUEST); /* the wrapped transport refused it */
}

static void test_call_prepares_a_small_request_on_the_loop(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    start(f, "a short question", &o);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(o.done, 1);
    assert_int_equal(bodies_built, 1);
    assert_true(uv_thread_equal(&built_on, &loop_thread));
    assert_int_equal(http_starts, 1);
}

/* Start a large call and run the loop until its preparation is held in the pool. */
static tt_llm_call *start_held(fixture *f, outcome *o)
{
    hold_builds = 1;
    tt_llm_call *c = start(f, f->text, o);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the first attempt's timer (0 ms) queues the job */
    uv_sem_wait(&entered);
    assert_int_equal(o->done, 0);
    return c;
}

/* A route with "redact": the large prompt is redacted in the pool job; a
 * cancel meanwhile ends the call, whose mapping the job still fills (ASan:
 * no use after free; LeakSanitizer: freed when the job is back). */
static void test_redacted_call_cancelled_during_preparation(void **state)
{
    fixture *f = *state;
    tt_llm_service_close(f->svc);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    char path[] = "/tmp/tt-routes-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char routes[] =
        "{\"routes\": {\"r\": [{\"provider\": \"openai\", \"model\": \"m\", "
        "\"base_url\": \"http://127.0.0.1:9/v1\"}]}, \"redact\": {\"routes\": {\"r\": true}}}";
    assert_int_equal(write(fd, routes, sizeof routes - 1), (ssize_t)(sizeof routes - 1));
    close(fd);
    tt_llm_service_options opt = {.loop = &f->loop, .routes_file = path};
    char err[256];
    assert_int_equal(tt_llm_service_new(&opt, &f->svc, err, sizeof err), 0);
    unlink(path);
    memcpy(f->text + 100, " jane@example.com ", 18);
    for (int cancel = 0; cancel < 2; cancel++) {
        outcome o = {0};
        hold_builds = cancel;
        tt_llm_call *c = start(f, f->text, &o);
        if (cancel) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            uv_sem_wait(&entered);
            tt_llm_call_cancel(c);
            assert_int_equal(o.done, 1);
            uv_sem_post(&release);
        }
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(o.done, 1);
        assert_false(uv_thread_equal(&built_on, &loop_thread));
        assert_false(saw_secret);
        assert_true(saw_placeholder);
    }
}

static void test_call_cancel_during_preparation_finishes_once(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    tt_llm_call *c = start_held(f, &o);
    tt_llm_call_cancel(c);
    assert_int_equal(o.done, 1); /* at once, while the job still runs */
    assert_int_equal(o.cls, TT_LLM_ERR_CANCELLED);
    uv_sem_post(&release);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the job comes back and the call is freed */
    assert_int_equal(o.done, 1);
    assert_int_equal(bodies_built, 1);
    assert_int_equal(http_starts, 0);
}

static void test_service_close_during_preparation_waits_for_the_job(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    start_held(f, &o);
    tt_llm_service_close(f->svc); /* the job still reads its tokenizer and cache */
    f->svc = NULL;
    assert_int_equal(o.done, 1);
    assert_int_equal(o.cls, TT_LLM_ERR_CANCELLED);
    uv_sem_post(&release);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the last job back frees the service */
    assert_int_equal(o.done, 1);
    assert_int_equal(http_starts, 0);
}

static void test_calls_count_a_resent_history_once(void **state)
{
    fixture *f = *state;
    tt_token_cache_stats before, after;
    outcome o1 = {0}, o2 = {0};
    start(f, f->text, &o1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_token_cache_stats_get(tt_llm_service_token_cache(f->svc), &before);
    assert_true(before.misses >= 1);
    start(f, f->text, &o2); /* the same conversation again: nothing new to count */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_token_cache_stats_get(tt_llm_service_token_cache(f->svc), &after);
    assert_int_equal(after.misses, before.misses);
    assert_int_equal(after.miss_bytes, before.miss_bytes);
    assert_true(after.hits > before.hits);
    assert_int_equal(o2.done, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_prepares_a_large_request_off_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_prepares_a_small_request_on_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_redacted_call_cancelled_during_preparation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_cancel_during_preparation_finishes_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_service_close_during_preparation_waits_for_the_job,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_count_a_resent_history_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
