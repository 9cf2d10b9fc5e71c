/* agents/chat.c: a turn streamed into one message with usage, the transcript
 * and the history the next turn sends, cancel mid-stream, a provider that
 * fails, and a restart while the reply streams. The real agent on a real
 * registry (LMDB in a temp directory) and a real model service, against a
 * scripted provider in the same loop (fake_upstream.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/agent.h"
#include "fake_upstream.h"
#include "protocol/errors.h"
#include "state/registry.h"
#include "loop_fixture.h"

typedef struct fixture {
    char dir[64];
    char routes[96];
    uv_loop_t loop;
    upstream up;
    tt_store *store;
    tt_registry *reg;
    tt_agent_env env;
    json_t *log;                    /* the lines agents logged, their fields */
    tt_llm_gate gate;               /* the service's budgets gate (zero: none) */
    int reserved, released, refuse; /* what the test gate saw, and whether it refuses */
    uint64_t released_hold;
    double estimate;
} fixture;

static void log_hook(const char *msg, json_t *fields, void *ud)
{
    fixture *f = ud;
    assert_string_equal(msg, "agent mode");
    json_array_append_new(f->log, fields);
}

static int bind_hook(tt_session *s, int resumed, void *ud)
{
    fixture *f = ud;
    return tt_agent_bind(s, &f->env, resumed);
}

static void unbind_hook(tt_session *s, void *ud)
{
    tt_agent_unbind(s);
}

static void deliver_hook(tt_cursor *c, void *ud)
{
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_chat");
    snprintf(f->routes, sizeof f->routes, "%s/routes.json", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    up_start(&f->up, &f->loop);
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {
        .headroom = 16, .memory_events = 256, .max_lag_events = 100000, .transcript_max = 100};
    tt_registry_hooks hooks = {
        .ud = f, .bind = bind_hook, .unbind = unbind_hook, .deliver = deliver_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
    f->env.loop = &f->loop;
    f->env.reg = f->reg;
    f->env.wait_expiry_ms = 60000;
    f->log = json_array();
    f->env.log = log_hook;
    f->env.log_ud = f;
    char err[256] = "";
    if (tt_agent_load_prompts(&f->env, PROMPTS, err, sizeof err) != 0)
        fail_msg("prompts: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tt_registry_close(f->reg);
    tt_llm_service_close(f->env.llm);
    up_stop(&f->up);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_store_close(f->store);
    tt_agent_free_prompts(&f->env);
    json_decref(f->log);
    loop_fixture_end(&f->loop, f->dir);
    free(f);
    return 0;
}

/* One route, "solo", on the fake provider; `attempts` tries per call. */
static void open_service(fixture *f, int attempts)
{
    FILE *out = fopen(f->routes, "w");
    assert_non_null(out);
    fprintf(out,
            "{\"routes\":{\"solo\":[{\"provider\":\"openai\",\"base_url\":"
            "\"http://127.0.0.1:%d/v1\",\"model\":\"m-a\",\"region\":\"a\"}]},"
            "\"retry\":{\"max_attempts\":%d,\"base_ms\":1,\"max_backoff_ms\":5,"
            "\"max_total_ms\":10000}}",
            f->up.port, attempts);
    fclose(out);
    tt_llm_service_options o = {.loop = &f->loop, .routes_file = f->routes, .gate = f->gate};
    char err[256] = "";
    if (tt_llm_service_new(&o, &f->env.llm, err, sizeof err) != 0)
        fail_msg("routes: %s", err);
}

static tt_session *new_chat(fixture *f)
{
    json_t *input = json_pack("{s:s}", "route", "solo");
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, "ann", "t", "chat", input, NULL, &s), 0);
    json_decref(input);
    assert_int_equal(s->state, TT_STATE_IDLE);
    return s;
}

static void say(tt_session *s, const char *text)
{
    int duplicate = 0;
    char err[160] = "";
    int rc = tt_agent_say(s, text, NULL, &duplicate, err, sizeof err);
    if (rc)
        fail_msg("say: %s", err);
    assert_int_equal(s->state, TT_STATE_RUNNING);
}

/* Run the loop until cond holds, at most 5 s. */
#define RUN_UNTIL(f, cond) LOOP_RUN_UNTIL(&(f)->loop, cond)

/* Every event of s so far (committed first), as decoded objects. */
static json_t *events_of(fixture *f, tt_session *s)
{
    assert_int_equal(tt_registry_flush(f->reg), 0);
    int recovered = 0;
    return loop_fixture_replay(s, &recovered);
}

/* The events of `type`, in order (new reference). */
static json_t *of_type(json_t *events, const char *type)
{
    json_t *out = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (strcmp(json_string_value(json_object_get(ev, "type")), type) == 0)
            json_array_append(out, ev);
    }
    return out;
}

static const char *str_at(json_t *array, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(array, i), key));
}

static const char *last_type(json_t *events)
{
    return str_at(events, json_array_size(events) - 1, "type");
}

/* A chat session after one turn: "hi", answered "Hel" "lo", idle again. */
static tt_session *hello_turn(fixture *f)
{
    open_service(f, 1);
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);
    return s;
}

static void test_chat_turn_streams_the_reply_into_one_message_with_usage(void **state)
{
    fixture *f = *state;
    tt_session *s = hello_turn(f);

    json_t *events = events_of(f, s);
    json_t *starts = of_type(events, "message.start"), *deltas = of_type(events, "delta");
    json_t *ends = of_type(events, "message.end"), *discards = of_type(events, "message.discard");
    assert_int_equal(json_array_size(starts), 1);
    assert_int_equal(json_array_size(ends), 1);
    assert_int_equal(json_array_size(discards), 0);
    assert_int_equal(json_array_size(deltas), 2);
    const char *mid = str_at(starts, 0, "message_id");
    assert_string_equal(str_at(starts, 0, "role"), "assistant");
    assert_string_equal(str_at(deltas, 0, "message_id"), mid);
    assert_string_equal(str_at(deltas, 0, "text"), "Hel");
    assert_string_equal(str_at(deltas, 1, "text"), "lo");
    assert_string_equal(str_at(ends, 0, "message_id"), mid);
    assert_string_equal(str_at(ends, 0, "text"), "Hello");
    json_t *usage = json_object_get(json_array_get(ends, 0), "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 2);
    assert_string_equal(json_string_value(json_object_get(usage, "model")), "m-a");
    assert_null(tt_session_message_open(s));

    /* The transcript has both turns; the agent is idle again. */
    assert_int_equal(json_array_size(tt_session_transcript(s)), 2);
    assert_string_equal(str_at(tt_session_transcript(s), 0, "role"), "user");
    assert_string_equal(str_at(tt_session_transcript(s), 0, "text"), "hi");
    assert_string_equal(str_at(tt_session_transcript(s), 1, "role"), "assistant");
    assert_string_equal(str_at(tt_session_transcript(s), 1, "text"), "Hello");
    assert_string_equal(str_at(tt_session_transcript(s), 1, "message_id"), mid);
    assert_string_equal(tt_agent_state_str(s, "mode"), "idle");
    json_decref(starts);
    json_decref(deltas);
    json_decref(ends);
    json_decref(discards);
    json_decref(events);
}

static void test_chat_second_turn_sends_the_first_as_history(void **state)
{
    fixture *f = *state;
    open_service(f, 1);
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Fine", "."));
    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);
    say(s, "how are you?");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);

    assert_int_equal(f->up.n_requests, 2);
    json_t *body = json_loads(f->up.bodies[1], 0, NULL);
    assert_non_null(body);
    json_t *messages = json_object_get(body, "messages");
    assert_int_equal(json_array_size(messages), 4);
    assert_string_equal(str_at(messages, 0, "role"), "system");
    assert_string_equal(str_at(messages, 1, "role"), "user");
    assert_string_equal(str_at(messages, 1, "content"), "hi");
    assert_string_equal(str_at(messages, 2, "role"), "assistant");
    assert_string_equal(str_at(messages, 2, "content"), "Hello");
    assert_string_equal(str_at(messages, 3, "role"), "user");
    assert_string_equal(str_at(messages, 3, "content"), "how are you?");
    json_decref(body);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 4);
    assert_string_equal(str_at(tt_session_transcript(s), 3, "text"), "Fine.");
}

/* A session whose transcript was released at rest (session.h) sends for
 * the next turn byte for byte the request a session holding it whole sends. */
static void test_chat_turn_after_release_at_rest_sends_the_same_request(void **state)
{
    fixture *f = *state;
    open_service(f, 1);
    for (int i = 0; i < 2; i++) {
        up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
        up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Fine", "."));
    }
    tt_session *kept = new_chat(f);
    say(kept, "hi");
    RUN_UNTIL(f, kept->state == TT_STATE_IDLE);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_non_null(tt_session_transcript(kept)); /* whole in memory for its next turn */
    say(kept, "how are you?");
    RUN_UNTIL(f, kept->state == TT_STATE_IDLE);

    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_null(s->transcript_mem); /* committed at rest: released */
    say(s, "how are you?");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);

    assert_int_equal(f->up.n_requests, 4);
    assert_string_equal(f->up.bodies[3], f->up.bodies[1]);
    json_t *a = tt_session_transcript(kept), *b = tt_session_transcript(s);
    assert_int_equal(json_array_size(b), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(str_at(b, i, "role"), str_at(a, i, "role"));
        assert_string_equal(str_at(b, i, "text"), str_at(a, i, "text"));
    }
}

static void test_chat_say_while_a_reply_streams_is_refused(void **state)
{
    fixture *f = *state;
    open_service(f, 1);
    up_script(&f->up, UP_STALL, 200, UP_SSE_PARTIAL("Hel"));
    tt_session *s = new_chat(f);
    say(s, "hi");
    uint64_t head = s->head;
    int duplicate = 0;
    char err[160] = "";
    assert_int_equal(tt_agent_say(s, "again", NULL, &duplicate, err, sizeof err), TT_ECONFLICT);
    assert_non_null(strstr(err, "busy:")); /* naming the turn: its user message */
    assert_non_null(strstr(err, str_at(tt_session_transcript(s), 0, "message_id")));
    assert_int_equal(s->head, head); /* nothing emitted */
    assert_int_equal(json_array_size(tt_session_transcript(s)), 1);
}

static void test_chat_cancel_mid_stream_withdraws_the_message(void **state)
{
    fixture *f = *state;
    open_service(f, 1);
    up_script(&f->up, UP_STALL, 200, UP_SSE_PARTIAL("Hel"));
    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, tt_session_message_open(s) != NULL && s->streaming_text.len == 3);
    char mid[TT_MESSAGE_ID_MAX];
    snprintf(mid, sizeof mid, "%s", tt_session_message_open(s));

    int cancelled = 0;
    assert_int_equal(tt_agent_cancel(s, &cancelled), 0);
    assert_int_equal(cancelled, 1);
    assert_int_equal(s->state, TT_STATE_IDLE);
    assert_null(tt_session_message_open(s));
    assert_string_equal(tt_agent_state_str(s, "mode"), "idle");

    json_t *events = events_of(f, s);
    json_t *discards = of_type(events, "message.discard"), *ends = of_type(events, "message.end");
    assert_int_equal(json_array_size(discards), 1);
    assert_int_equal(json_array_size(ends), 0);
    assert_string_equal(str_at(discards, 0, "message_id"), mid);
    assert_string_equal(str_at(discards, 0, "reason"), "cancelled");
    assert_int_equal(json_array_size(tt_session_transcript(s)), 1); /* the user's turn only */

    /* Nothing more is running: a second cancel finds nothing. */
    assert_int_equal(tt_agent_cancel(s, &cancelled), 0);
    assert_int_equal(cancelled, 0);
    json_decref(discards);
    json_decref(ends);
    json_decref(events);
}

static void test_chat_provider_failure_mid_stream_ends_with_an_error_and_a_discard(void **state)
{
    fixture *f = *state;
    open_service(f, 1); /* no retry: the cut ends the call */
    up_script(&f->up, UP_CUT, 200, UP_SSE_PARTIAL("Hel"));
    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);

    json_t *events = events_of(f, s);
    json_t *starts = of_type(events, "message.start");
    json_t *discards = of_type(events, "message.discard"), *errors = of_type(events, "error");
    assert_int_equal(json_array_size(starts), 1);
    assert_int_equal(json_array_size(discards), 1);
    assert_string_equal(str_at(discards, 0, "message_id"), str_at(starts, 0, "message_id"));
    assert_string_equal(str_at(discards, 0, "reason"), "error");
    assert_int_equal(json_array_size(errors), 1);
    assert_string_equal(str_at(errors, 0, "code"), "unavailable");
    assert_non_null(strstr(str_at(errors, 0, "message"), "the model call failed"));
    assert_int_equal(json_array_size(tt_session_transcript(s)), 1);
    assert_null(tt_session_message_open(s));
    assert_string_equal(last_type(events), "state"); /* back to idle, last */
    json_decref(starts);
    json_decref(discards);
    json_decref(errors);
    json_decref(events);
}

static void test_chat_provider_refusal_before_output_is_an_error_without_a_message(void **state)
{
    fixture *f = *state;
    open_service(f, 1);
    up_script(&f->up, UP_REPLY, 400, "{\"error\":{\"message\":\"no such thing\"}}");
    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);

    json_t *events = events_of(f, s);
    json_t *starts = of_type(events, "message.start"), *errors = of_type(events, "error");
    assert_int_equal(json_array_size(starts), 0);
    assert_int_equal(json_array_size(errors), 1);
    assert_string_equal(str_at(errors, 0, "code"), "bad_request");
    assert_false(json_is_true(json_object_get(json_array_get(errors, 0), "retryable")));
    assert_int_equal(json_array_size(tt_session_transcript(s)), 1);
    json_decref(starts);
    json_decref(errors);
    json_decref(events);
}

/* The runtime is released mid-stream (as when the server stops) and the
 * session resumed from its state: the message the clients saw begin is
 * withdrawn, and the call is made again with the same history. */
static void test_chat_restart_while_running_discards_and_runs_again(void **state)
{
    fixture *f = *state;
    open_service(f, 1);
    up_script(&f->up, UP_STALL, 200, UP_SSE_PARTIAL("Hel"));
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    tt_session *s = new_chat(f);
    say(s, "hi");
    RUN_UNTIL(f, tt_session_message_open(s) != NULL && s->streaming_text.len == 3);
    char mid[TT_MESSAGE_ID_MAX];
    snprintf(mid, sizeof mid, "%s", tt_session_message_open(s));
    assert_string_equal(tt_agent_state_str(s, "message_id"), mid);
    assert_string_equal(tt_agent_state_str(s, "mode"), "generating");

    uint64_t head = s->head;
    tt_agent_unbind(s); /* the release changes nothing the clients see */
    assert_int_equal(s->head, head);
    assert_int_equal(tt_agent_bind(s, &f->env, 1), 0);
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);

    json_t *events = events_of(f, s);
    json_t *starts = of_type(events, "message.start"), *ends = of_type(events, "message.end");
    json_t *discards = of_type(events, "message.discard");
    assert_int_equal(json_array_size(discards), 1);
    assert_string_equal(str_at(discards, 0, "message_id"), mid);
    assert_string_equal(str_at(discards, 0, "reason"), "restart");
    assert_int_equal(json_array_size(starts), 2);
    assert_int_equal(json_array_size(ends), 1);
    assert_string_not_equal(str_at(ends, 0, "message_id"), mid);
    assert_string_equal(str_at(ends, 0, "text"), "Hello");
    assert_int_equal(f->up.n_requests, 2);
    assert_string_equal(f->up.bodies[0], f->up.bodies[1]); /* the same call again */
    assert_int_equal(json_array_size(tt_session_transcript(s)), 2);
    assert_string_equal(str_at(tt_session_transcript(s), 1, "text"), "Hello");
    json_decref(starts);
    json_decref(ends);
    json_decref(discards);
    json_decref(events);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

static int gate_reserve(const tt_llm_gate_ask *a, void *ud, uint64_t *hold)
{
    fixture *f = ud;
    f->reserved++;
    f->estimate = a->usd;
    assert_string_equal(a->attr->tenant, "t");
    assert_string_equal(a->attr->agent, "chat");
    *hold = f->refuse ? 0 : 42;
    return f->refuse ? TT_EBUDGET : 0;
}

static void gate_release(uint64_t hold, void *ud)
{
    fixture *f = ud;
    f->released++;
    f->released_hold = hold;
}

/* Every call passes the gate before its first attempt and gives its hold
 * back once, when it ends; the estimate is priced (the route's cap of 8192
 * completion tokens at $1 a million: at least $0.008). */
static void test_chat_call_reserves_before_and_releases_after(void **state)
{
    fixture *f = *state;
    f->gate = (tt_llm_gate){.reserve = gate_reserve, .release = gate_release, .ud = f};
    FILE *out = fopen(f->routes, "w");
    assert_non_null(out);
    fprintf(out,
            "{\"routes\":{\"solo\":[{\"provider\":\"openai\",\"base_url\":"
            "\"http://127.0.0.1:%d/v1\",\"model\":\"m-a\"}]},"
            "\"prices\":{\"m-a\":{\"prompt_per_mtok\":1,\"completion_per_mtok\":1}}}",
            f->up.port);
    fclose(out);
    tt_llm_service_options o = {.loop = &f->loop, .routes_file = f->routes, .gate = f->gate};
    char err[256] = "";
    if (tt_llm_service_new(&o, &f->env.llm, err, sizeof err) != 0)
        fail_msg("routes: %s", err);
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    tt_session *s = new_chat(f);
    say(s, "hi");
    assert_int_equal(f->reserved, 1);
    assert_int_equal(f->released, 0);
    assert_true(f->estimate >= 0.008 && f->estimate < 0.0085);
    RUN_UNTIL(f, s->state == TT_STATE_IDLE);
    assert_int_equal(f->released, 1);
    assert_int_equal((int)f->released_hold, 42);
}

/* A gate that refuses: no request reaches the provider, the turn ends with
 * an error event of code budget_exceeded carrying the server's reason, and
 * no message is left open. */
static void test_chat_budget_refusal_ends_the_turn_with_budget_exceeded(void **state)
{
    fixture *f = *state;
    f->gate = (tt_llm_gate){.reserve = gate_reserve, .release = gate_release, .ud = f};
    f->refuse = 1;
    f->env.budget_why = "run s_x has spent $0.3000 of its total budget of $0.3000";
    open_service(f, 1);
    tt_session *s = new_chat(f);
    int duplicate = 0;
    char err[160] = "";
    assert_int_equal(tt_agent_say(s, "hi", NULL, &duplicate, err, sizeof err), 0);
    RUN_UNTIL(f, s->state == TT_STATE_IDLE); /* at once: nothing was started */
    assert_int_equal(f->reserved, 1);
    assert_int_equal(f->up.n_requests, 0);
    assert_int_equal(f->released, 0);
    json_t *events = events_of(f, s);
    json_t *errors = of_type(events, "error");
    assert_int_equal(json_array_size(errors), 1);
    assert_string_equal(str_at(errors, 0, "code"), "budget_exceeded");
    assert_string_equal(str_at(errors, 0, "message"), f->env.budget_why);
    json_t *starts = of_type(events, "message.start"), *ends = of_type(events, "message.end");
    json_t *discards = of_type(events, "message.discard");
    assert_int_equal(json_array_size(starts), json_array_size(ends) + json_array_size(discards));
    json_decref(starts);
    json_decref(ends);
    json_decref(discards);
    json_decref(errors);
    json_decref(events);
}

/* The agent's mode changes only through tt_agent_set_mode(), which logs each
 * change once: idle at the start, generating for the call, idle at its end;
 * setting the mode it is in logs nothing. */
static void test_chat_mode_changes_are_logged_once_each(void **state)
{
    fixture *f = *state;
    tt_session *s = hello_turn(f);
    tt_agent_set_mode(&f->env, s, "mode", "idle");
    static const char *const from[] = {NULL, "idle", "generating"};
    static const char *const to[] = {"idle", "generating", "idle"};
    assert_int_equal(json_array_size(f->log), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *line = json_array_get(f->log, i);
        assert_string_equal(str_at(f->log, i, "session"), s->id);
        assert_string_equal(str_at(f->log, i, "agent"), "chat");
        assert_string_equal(str_at(f->log, i, "key"), "mode");
        if (from[i])
            assert_string_equal(str_at(f->log, i, "from"), from[i]);
        else
            assert_true(json_is_null(json_object_get(line, "from")));
        assert_string_equal(str_at(f->log, i, "to"), to[i]);
    }
    assert_string_equal(tt_agent_mode(s, "mode"), "idle");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_chat_turn_streams_the_reply_into_one_message_with_usage),
        T(test_chat_mode_changes_are_logged_once_each),
        T(test_chat_second_turn_sends_the_first_as_history),
        T(test_chat_turn_after_release_at_rest_sends_the_same_request),
        T(test_chat_say_while_a_reply_streams_is_refused),
        T(test_chat_cancel_mid_stream_withdraws_the_message),
        T(test_chat_provider_failure_mid_stream_ends_with_an_error_and_a_discard),
        T(test_chat_provider_refusal_before_output_is_an_error_without_a_message),
        T(test_chat_restart_while_running_discards_and_runs_again),
        T(test_chat_call_reserves_before_and_releases_after),
        T(test_chat_budget_refusal_ends_the_turn_with_budget_exceeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
