/* agents/llm/call.c through call.h: one logical call against a scripted
 * provider in the same loop (fake_upstream.h): a streamed answer with usage,
 * retries and failover in route order, giving up, restarts after output,
 * cancels from inside each hook and from outside, and the first-byte
 * timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/llm/call.h"
#include "fake_upstream.h"
#include "loop_fixture.h"
#include "protocol/errors.h"

typedef enum cancel_at { CANCEL_NEVER, CANCEL_IN_EVENT, CANCEL_IN_RESTART } cancel_at;

typedef struct fixture {
    uv_loop_t loop;
    upstream up;
    char routes[64];
    tt_llm_service *svc;
    /* what the call reported */
    char text[256];
    size_t text_len;
    int events, restarts, done;
    char text_at_restart[256];
    tt_llm_result result;
    cancel_at cancel;
} fixture;

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    fixture *f = ud;
    f->events++;
    if (ev->kind == TT_LLM_EV_TEXT && f->text_len + ev->text_len < sizeof f->text) {
        memcpy(f->text + f->text_len, ev->text, ev->text_len);
        f->text_len += ev->text_len;
    }
    if (f->cancel == CANCEL_IN_EVENT)
        tt_llm_call_cancel(c);
}

static void on_restart(tt_llm_call *c, const tt_llm_error *why, void *ud)
{
    fixture *f = ud;
    f->restarts++;
    snprintf(f->text_at_restart, sizeof f->text_at_restart, "%.*s", (int)f->text_len, f->text);
    f->text_len = 0; /* the caller withdraws what it showed */
    if (f->cancel == CANCEL_IN_RESTART)
        tt_llm_call_cancel(c);
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    fixture *f = ud;
    f->done++;
    f->result = *r;
}

static const tt_llm_call_hooks hooks = {on_event, on_restart, on_done};
static const tt_llm_call_hooks hooks_no_restart = {on_event, NULL, on_done};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    FILE *routes = up_begin(&f->loop, &f->up, f->routes, sizeof f->routes, "tt_call_routes");
    assert_non_null(routes);
    fclose(routes); /* written by open_service */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tt_llm_service_close(f->svc);
    assert_int_equal(up_end(&f->loop, &f->up), 0);
    unlink(f->routes);
    free(f);
    return 0;
}

/* Routes: "duo" with targets a then b, "solo" with a only; `extra` is added
 * to the top-level object (retry settings) and `timeouts` to each target. */
static void open_service(fixture *f, const char *timeouts, const char *extra)
{
    FILE *out = fopen(f->routes, "w");
    assert_non_null(out);
    const char *target = "{\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                         "\"model\":\"m-%s\",\"region\":\"%s\"%s}";
    char a[512], b[512];
    snprintf(a, sizeof a, target, f->up.port, "a", "a", timeouts);
    snprintf(b, sizeof b, target, f->up.port, "b", "b", timeouts);
    fprintf(out, "{\"routes\":{\"duo\":[%s,%s],\"solo\":[%s]}%s}", a, b, a, extra);
    fclose(out);
    tt_llm_service_options o = {.loop = &f->loop, .routes_file = f->routes};
    char err[256] = "";
    int rc = tt_llm_service_new(&o, &f->svc, err, sizeof err);
    if (rc)
        fail_msg("routes: %s", err);
}

static const char *FAST_RETRY =
    ",\"retry\":{\"max_attempts\":4,\"base_ms\":1,\"max_backoff_ms\":5,\"max_total_ms\":10000}";

static tt_llm_call *start(fixture *f, const char *alias, const tt_llm_call_hooks *h)
{
    tt_llm_message msg = {.role = "user", .content = "say hello"};
    tt_llm_request req = {.messages = &msg, .n_messages = 1, .temperature = -1, .stream = 1};
    tt_llm_call *c = NULL;
    assert_int_equal(tt_llm_call_start(f->svc, alias, &req, h, f, &c), 0);
    return c;
}

/* Run the loop until cond holds, at most 5 s. */
#define RUN_UNTIL(f, cond) LOOP_RUN_UNTIL(&(f)->loop, cond)

static const char *model_asked(const fixture *f, int i)
{
    static char model[32];
    json_t *body = json_loads(f->up.bodies[i], 0, NULL);
    assert_non_null(body);
    snprintf(model, sizeof model, "%s", json_string_value(json_object_get(body, "model")));
    json_decref(body);
    return model;
}

static void test_call_streams_text_and_reports_usage(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    start(f, "duo", &hooks);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_NONE);
    assert_string_equal(f->text, "Hello");
    assert_int_equal(f->result.prompt_tokens, 11);
    assert_int_equal(f->result.completion_tokens, 2);
    assert_int_equal(f->result.attempts, 1);
    assert_string_equal(f->result.model, "m-a");
    assert_string_equal(f->result.target, "openai/a");
    assert_string_equal(f->result.finish_reason, "stop");
    assert_int_equal(f->up.n_requests, 1);
    assert_string_equal(model_asked(f, 0), "m-a");
    assert_non_null(strstr(f->up.bodies[0], "say hello"));
}

static void test_call_retries_a_server_error_on_its_only_target(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_REPLY, 500, "{\"error\":{\"message\":\"boom\"}}");
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("o", "k"));
    start(f, "solo", &hooks);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_NONE);
    assert_int_equal(f->result.attempts, 2);
    assert_int_equal(f->restarts, 0); /* nothing was shown before the retry */
    assert_string_equal(f->text, "ok");
    assert_int_equal(f->up.n_requests, 2);
}

static void test_call_fails_over_in_route_order_on_an_auth_error(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_REPLY, 401, "{\"error\":{\"message\":\"bad key\"}}");
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("b", "!"));
    start(f, "duo", &hooks);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_NONE);
    assert_int_equal(f->up.n_requests, 2);
    assert_string_equal(model_asked(f, 0), "m-a");
    assert_string_equal(model_asked(f, 1), "m-b");
    assert_string_equal(f->result.model, "m-b");
    assert_string_equal(f->result.target, "openai/b");
    assert_int_equal(f->result.attempts, 2);
}

static void test_call_gives_up_on_a_bad_request_at_once(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_REPLY, 400, "{\"error\":{\"message\":\"no such thing\"}}");
    start(f, "duo", &hooks);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_BAD_REQUEST);
    assert_int_equal(f->result.error.http_status, 400);
    assert_int_equal(f->up.n_requests, 1);
}

static void test_call_restart_comes_before_the_next_attempt_after_output(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_CUT, 200, UP_SSE_PARTIAL("Hel"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    start(f, "duo", &hooks);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_NONE);
    assert_int_equal(f->restarts, 1);
    assert_string_equal(f->text_at_restart, "Hel");
    assert_string_equal(f->text, "Hello"); /* no duplicated output */
    assert_int_equal(f->up.n_requests, 2);
}

static void test_call_without_a_restart_hook_does_not_retry_after_output(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_CUT, 200, UP_SSE_PARTIAL("Hel"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    start(f, "duo", &hooks_no_restart);
    RUN_UNTIL(f, f->done);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_NETWORK);
    assert_string_equal(f->text, "Hel");
    assert_int_equal(f->up.n_requests, 1);
}

/* A cancel from inside on_restart only marks the call; plan_continue
 * finishes it once the hook returns (it used to free the call under the hook,
 * then read and finish it again). */
static void test_call_cancel_inside_restart_hook_is_safe(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_CUT, 200, UP_SSE_PARTIAL("Hel"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    f->cancel = CANCEL_IN_RESTART;
    start(f, "duo", &hooks);
    RUN_UNTIL(f, f->done);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->restarts, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_CANCELLED);
    assert_int_equal(f->up.n_requests, 1); /* no attempt after the cancel */
}

static void test_call_cancel_inside_event_hook_is_safe(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    f->cancel = CANCEL_IN_EVENT;
    start(f, "duo", &hooks);
    RUN_UNTIL(f, f->done);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->events, 1); /* nothing is passed on after the cancel */
    assert_string_equal(f->text, "Hel");
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_CANCELLED);
}

static void test_call_cancel_outside_a_hook_finishes_before_returning(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_HANG, 0, NULL);
    tt_llm_call *c = start(f, "duo", &hooks);
    RUN_UNTIL(f, f->up.n_requests == 1);
    assert_int_equal(f->done, 0);
    tt_llm_call_cancel(c);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_CANCELLED);
}

static void test_call_cancel_while_waiting_to_retry_finishes_at_once(void **state)
{
    fixture *f = *state;
    open_service(f, "",
                 ",\"retry\":{\"max_attempts\":4,\"base_ms\":3000,"
                 "\"max_backoff_ms\":3000,\"max_total_ms\":60000}");
    up_script(&f->up, UP_REPLY, 500, "{\"error\":{\"message\":\"boom\"}}");
    tt_llm_call *c = start(f, "solo", &hooks);
    RUN_UNTIL(f, f->up.n_requests == 1 && f->up.next == 1);
    /* Let the 500 be read and the backoff begin. */
    for (int i = 0; i < 20 && !f->done; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(50000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done, 0);
    tt_llm_call_cancel(c);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_CANCELLED);
}

static void test_call_silent_provider_times_out_at_first_byte(void **state)
{
    fixture *f = *state;
    open_service(f, ",\"timeout_ms\":{\"first_byte\":200,\"total\":2000}",
                 ",\"retry\":{\"max_attempts\":1}");
    up_script(&f->up, UP_HANG, 0, NULL);
    uint64_t t0 = uv_now(&f->loop);
    start(f, "solo", &hooks);
    RUN_UNTIL(f, f->done);
    uv_update_time(&f->loop);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_TIMEOUT);
    assert_true(uv_now(&f->loop) - t0 >= 150);
    assert_true(uv_now(&f->loop) - t0 < 2000);
}

static void test_call_unknown_alias_is_not_found(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    tt_llm_message msg = {.role = "user", .content = "hi"};
    tt_llm_request req = {.messages = &msg, .n_messages = 1, .temperature = -1, .stream = 1};
    tt_llm_call *c = NULL;
    assert_int_equal(tt_llm_call_start(f->svc, "nope", &req, &hooks, f, &c), TT_ENOTFOUND);
    assert_null(c);
    assert_int_equal(f->done, 0);
    assert_true(tt_llm_service_has_route(f->svc, "duo"));
    assert_false(tt_llm_service_has_route(f->svc, "nope"));
}

static void test_call_service_close_ends_every_call_once(void **state)
{
    fixture *f = *state;
    open_service(f, "", FAST_RETRY);
    up_script(&f->up, UP_HANG, 0, NULL);
    start(f, "solo", &hooks);
    RUN_UNTIL(f, f->up.n_requests == 1);
    tt_llm_service_close(f->svc);
    f->svc = NULL;
    assert_int_equal(f->done, 1);
    assert_int_equal(f->result.error.cls, TT_LLM_ERR_CANCELLED);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_call_streams_text_and_reports_usage),
        T(test_call_retries_a_server_error_on_its_only_target),
        T(test_call_fails_over_in_route_order_on_an_auth_error),
        T(test_call_gives_up_on_a_bad_request_at_once),
        T(test_call_restart_comes_before_the_next_attempt_after_output),
        T(test_call_without_a_restart_hook_does_not_retry_after_output),
        T(test_call_cancel_inside_restart_hook_is_safe),
        T(test_call_cancel_inside_event_hook_is_safe),
        T(test_call_cancel_outside_a_hook_finishes_before_returning),
        T(test_call_cancel_while_waiting_to_retry_finishes_at_once),
        T(test_call_silent_provider_times_out_at_first_byte),
        T(test_call_unknown_alias_is_not_found),
        T(test_call_service_close_ends_every_call_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
