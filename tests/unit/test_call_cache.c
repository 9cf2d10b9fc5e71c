/* agents/llm/call.c with the response cache (cache.h) against a scripted
 * provider in the same loop (fake_upstream.h) and an in-memory store: a
 * repeated call of temperature 0 is replayed without a provider request; a
 * call after a restart keeps only the answering attempt's output; a cancel
 * from the event hook during a replay ends the call once; a replay paused by
 * the caller goes on when it resumes it; an unset temperature is not cached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/llm/cache.h"
#include "agents/llm/call.h"
#include "fake_upstream.h"
#include "loop_fixture.h"
#include "mem_cache_store.h"
#include "protocol/errors.h"

typedef struct fixture {
    uv_loop_t loop;
    upstream up;
    char routes[64];
    tt_llm_service *svc;
    tt_llm_cache *cache;
    mem store; /* one entry; its clock unused (the service's own) */
    /* what the call reported */
    char text[256];
    size_t text_len;
    int events, done, usage_hits, cancel_at_event, pause_at_event;
    tt_llm_call *call;
    tt_llm_result result;
} fixture;

static void on_usage(const tt_llm_usage *u, void *ud)
{
    fixture *f = ud;
    f->usage_hits += u->cache_hit;
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    fixture *f = ud;
    f->events++;
    if (ev->kind == TT_LLM_EV_TEXT && f->text_len + ev->text_len < sizeof f->text) {
        memcpy(f->text + f->text_len, ev->text, ev->text_len);
        f->text_len += ev->text_len;
    }
    if (f->cancel_at_event == f->events)
        tt_llm_call_cancel(c);
    if (f->pause_at_event == f->events)
        tt_llm_call_pause(c, 1);
}

static void on_restart(tt_llm_call *c, const tt_llm_error *why, void *ud)
{
    (void)c;
    (void)why;
    fixture *f = ud;
    f->text_len = 0;
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    (void)c;
    fixture *f = ud;
    f->done++;
    f->result = *r;
}

static const tt_llm_call_hooks hooks = {on_event, on_restart, on_done};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    FILE *out = up_begin(&f->loop, &f->up, f->routes, sizeof f->routes, "tt_call_cache");
    assert_non_null(out);
    fprintf(out,
            "{\"routes\":{\"solo\":[{\"provider\":\"openai\",\"base_url\":"
            "\"http://127.0.0.1:%d/v1\",\"model\":\"m-a\"}]},"
            "\"retry\":{\"max_attempts\":3,\"base_ms\":1,\"max_backoff_ms\":5}}",
            f->up.port);
    fclose(out);
    tt_llm_cache_store ops = {.get = mem_get, .put = mem_put, .ud = &f->store};
    assert_int_equal(tt_llm_cache_new(&ops, &f->cache), 0);
    tt_llm_service_options o = {.loop = &f->loop,
                                .routes_file = f->routes,
                                .usage = on_usage,
                                .usage_ud = f,
                                .cache = f->cache};
    char err[256] = "";
    if (tt_llm_service_new(&o, &f->svc, err, sizeof err) != 0)
        fail_msg("routes: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tt_llm_service_close(f->svc);
    assert_int_equal(up_end(&f->loop, &f->up), 0);
    tt_llm_cache_free(f->cache);
    unlink(f->routes);
    free(f->store.data);
    free(f);
    return 0;
}

#define RUN_UNTIL(f, cond) LOOP_RUN_UNTIL(&(f)->loop, cond)

/* A call of "say hello" at temperature temp; the counters start again. */
static void call(fixture *f, double temp)
{
    f->done = f->events = 0;
    f->text_len = 0;
    memset(f->text, 0, sizeof f->text);
    tt_llm_message msg = {.role = "user", .content = "say hello"};
    tt_llm_request req = {.messages = &msg, .n_messages = 1, .temperature = temp, .stream = 1};
    assert_int_equal(tt_llm_call_start(f->svc, "solo", &req, &hooks, f, &f->call), 0);
}

static void test_repeated_call_is_replayed(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    call(f, 0);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->result.cached, 0);
    assert_int_equal(f->store.puts, 1);
    int first_events = f->events;
    call(f, 0);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->up.n_requests, 1); /* the provider was asked once */
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_NONE);
    assert_int_equal(f->result.cached, 1);
    assert_true(f->result.cost_usd == 0);
    assert_int_equal(f->result.completion_tokens, 2);
    assert_string_equal(f->result.model, "m-a");
    assert_string_equal(f->text, "Hello");
    assert_int_equal(f->events, first_events);
    assert_int_equal(f->usage_hits, 1);
    assert_int_equal(f->store.puts, 1); /* a hit is not stored again */
}

static void test_only_the_answering_attempt_is_kept(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_CUT, 200, UP_SSE_PARTIAL("Bad"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    call(f, 0);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->up.n_requests, 2);
    call(f, 0);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->result.cached, 1);
    assert_string_equal(f->text, "Hello"); /* not "BadHello" */
}

static void test_cancel_inside_a_replay_ends_the_call_once(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    call(f, 0);
    RUN_UNTIL(f, f->done);
    f->cancel_at_event = 1;
    call(f, 0);
    RUN_UNTIL(f, f->done);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->events, 1); /* nothing after the cancel */
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_CANCELLED);
    assert_int_equal(f->usage_hits, 0); /* a cancelled replay is no hit row */
}

static void test_a_paused_replay_goes_on_when_resumed(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    call(f, 0);
    RUN_UNTIL(f, f->done);
    f->pause_at_event = 1;
    call(f, 0);
    /* NOWAIT: once paused, nothing is left for the loop to wait on. */
    for (int i = 0; i < 100 && f->events < 1; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->events, 1);
    assert_int_equal(f->done, 0); /* paused: waits */
    assert_string_equal(f->text, "Hel");
    tt_llm_call_pause(f->call, 0); /* the rest, and the end, now */
    assert_int_equal(f->done, 1);
    assert_string_equal(f->text, "Hello");
    assert_int_equal(f->result.cached, 1);
}

static void test_unset_temperature_is_not_cached(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    call(f, -1);
    RUN_UNTIL(f, f->done);
    call(f, -1);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->up.n_requests, 2);
    assert_int_equal(f->store.puts, 0);
    assert_int_equal(f->result.cached, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_repeated_call_is_replayed),
        T(test_only_the_answering_attempt_is_kept),
        T(test_cancel_inside_a_replay_ends_the_call_once),
        T(test_a_paused_replay_goes_on_when_resumed),
        T(test_unset_temperature_is_not_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
