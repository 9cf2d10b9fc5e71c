/* agents/engine/engine.c: transitions, questions and approvals (right, wrong and
 * stale answers), thread-pool work with progress, persistence, resume after
 * a crash (a child process that dies mid-run), and expiry. Real LMDB, a real
 * libuv loop, a small test agent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/engine/engine.h"
#include "protocol/errors.h"
#include "state/registry.h"
#include "loop_fixture.h"

/* --- the test agent ---------------------------------------------------------- */

static int step_one(tt_run *run)
{
    json_object_set_new(tt_run_data(run), "count", json_integer(1));
    tt_run_goto(run, "two");
    return 0;
}

static int step_two(tt_run *run)
{
    tt_run_ask(run, "continue?", json_pack("[s, s]", "yes", "no"), "three");
    return 0;
}

static int step_three(tt_run *run)
{
    tt_run_approval(run, "the plan", json_pack("{s:i}", "steps", 2), "four", "two", NULL);
    return 0;
}

static void sum_in_pool(void *ctx, volatile int64_t *done, volatile int64_t *total,
                        volatile int *cancel)
{
    int64_t *sum = ctx;
    *total = 1000;
    for (int i = 1; i <= 1000 && !*cancel; i++) {
        *sum += i;
        (*done)++;
        if (i % 100 == 0)
            usleep(30000);
    }
}

static void sum_after(tt_run *run, void *ctx, int status)
{
    int64_t *sum = ctx;
    if (status == 0) {
        json_object_set_new(tt_run_data(run), "sum", json_integer(*sum));
        tt_run_finish(run, "summed");
    }
    free(sum);
}

static int step_four(tt_run *run)
{
    int64_t *sum = calloc(1, sizeof *sum);
    return tt_run_work(run, sum_in_pool, sum_after, sum, "summing");
}

static const tt_step_def steps[] = {
    {"one", step_one}, {"two", step_two}, {"three", step_three}, {"four", step_four}};
static const tt_engine_def def = {.steps = steps, .n_steps = 4, .first = "one", .start_on_open = 1};
static int validate_any(const json_t *input, char *err, size_t n)
{
    return 0;
}
static const tt_agent_ops ops = TT_ENGINE_AGENT("test", "test agent", 0, &def, validate_any);

/* --- the fixture ------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    uv_loop_t loop;
    tt_store *store;
    tt_registry *reg;
    tt_agent_env env;
} fixture;

static int bind_run(tt_session *s, int resumed, void *ud)
{
    fixture *f = ud;
    s->agent_ops = &ops;
    return resumed ? ops.resume(s, &f->env) : ops.start(s, &f->env);
}

static void unbind_run(tt_session *s, void *ud)
{
    ops.release(s);
}

static void deliver(tt_cursor *c, void *ud)
{
}

static void open_all(fixture *f)
{
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {
        .headroom = 16, .memory_events = 64, .max_lag_events = 100000, .transcript_max = 100};
    tt_registry_hooks hooks = {.ud = f, .bind = bind_run, .unbind = unbind_run, .deliver = deliver};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
    f->env.loop = &f->loop;
    f->env.reg = f->reg;
    f->env.wait_expiry_ms = 60000;
}

static void close_all(fixture *f)
{
    loop_fixture_close(&f->loop, &f->reg, &f->store);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_engine");
    uv_loop_init(&f->loop);
    open_all(f);
    *state = f;
    return 0;
}

LOOP_FIXTURE_TEARDOWN(fixture)

/* Run the loop until s reaches state st (at most 5 s). */
static void run_until(fixture *f, tt_session *s, tt_state st)
{
    LOOP_RUN_UNTIL(&f->loop, s->state == st);
}

static const char *pending_id(tt_session *s, const char *key)
{
    return json_string_value(json_object_get(s->pending, key));
}

static tt_session *new_run(fixture *f)
{
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, "u", "t", "test", NULL, NULL, &s), 0);
    return s;
}

/* --- tests -------------------------------------------------------------------- */

static void test_engine_runs_questions_approvals_and_work(void **state)
{
    fixture *f = *state;
    tt_session *s = new_run(f);
    run_until(f, s, TT_STATE_WAITING_INPUT);
    char err[160];
    char qid[64];
    snprintf(qid, sizeof qid, "%s", pending_id(s, "question_id"));
    json_t *yes = json_string("yes"), *maybe = json_string("maybe");
    assert_int_equal(ops.answer(s, "q_stale", yes, err, sizeof err), TT_ECONFLICT);
    assert_int_equal(ops.answer(s, qid, maybe, err, sizeof err), TT_EINVAL);
    assert_int_equal(ops.answer(s, qid, yes, err, sizeof err), 0);
    assert_int_equal(ops.answer(s, qid, yes, err, sizeof err), TT_ECONFLICT); /* answered once */
    run_until(f, s, TT_STATE_WAITING_APPROVAL);

    char aid[64];
    snprintf(aid, sizeof aid, "%s", pending_id(s, "approval_id"));
    assert_int_equal(ops.decide(s, aid, TT_DECIDE_REVISE, "more", err, sizeof err), 0);
    run_until(f, s, TT_STATE_WAITING_INPUT); /* revise goes back to step two */
    snprintf(qid, sizeof qid, "%s", pending_id(s, "question_id"));
    assert_int_equal(ops.answer(s, qid, yes, err, sizeof err), 0);
    run_until(f, s, TT_STATE_WAITING_APPROVAL);
    assert_int_equal(ops.decide(s, aid, TT_DECIDE_APPROVE, NULL, err, sizeof err), TT_ECONFLICT);
    snprintf(aid, sizeof aid, "%s", pending_id(s, "approval_id"));
    assert_int_equal(ops.decide(s, aid, TT_DECIDE_APPROVE, NULL, err, sizeof err), 0);
    run_until(f, s, TT_STATE_DONE);
    json_t *data = json_object_get(s->agent_state, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "sum")), 500500);
    assert_int_equal(json_array_size(json_object_get(data, "revisions")), 1);
    json_decref(yes);
    json_decref(maybe);
}

/* A child runs the agent to its question (or into the middle of its work)
 * and dies without a clean shutdown; returns the session id. */
static void crash_child(fixture *f, tt_state stop_at, const char *stop_step, char *sid, size_t n)
{
    close_all(f);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        fixture child = *f;
        uv_loop_init(&child.loop);
        open_all(&child);
        tt_session *s = new_run(&child);
        char qid[64] = "";
        while (s->state != stop_at || (stop_step && strcmp(s->step, stop_step) != 0)) {
            if (s->state == TT_STATE_WAITING_INPUT && stop_at != TT_STATE_WAITING_INPUT &&
                strcmp(qid, pending_id(s, "question_id")) != 0) {
                snprintf(qid, sizeof qid, "%s", pending_id(s, "question_id"));
                json_t *yes = json_string("yes");
                char err[160];
                ops.answer(s, qid, yes, err, sizeof err);
                json_decref(yes);
            } else if (s->state == TT_STATE_WAITING_APPROVAL) {
                char err[160];
                ops.decide(s, pending_id(s, "approval_id"), TT_DECIDE_APPROVE, NULL, err,
                           sizeof err);
            }
            uv_run(&child.loop, UV_RUN_ONCE);
        }
        for (int i = 0; stop_step && i < 5; i++)
            uv_run(&child.loop, UV_RUN_ONCE); /* into the middle of the work */
        tt_registry_flush(child.reg);
        if (write(fds[1], s->id, strlen(s->id) + 1) < 0)
            _exit(3);
        _exit(0); /* no clean shutdown: a crash */
    }
    close(fds[1]);
    assert_true(read(fds[0], sid, n) > 0);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    open_all(f);
}

static void test_engine_waiting_run_survives_a_crash(void **state)
{
    fixture *f = *state;
    char sid[TT_SESSION_ID_MAX + 1];
    crash_child(f, TT_STATE_WAITING_INPUT, NULL, sid, sizeof sid);
    tt_session *s;
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_int_equal(s->state, TT_STATE_WAITING_INPUT);
    assert_non_null(pending_id(s, "question_id"));
    json_t *yes = json_string("yes");
    char err[160];
    assert_int_equal(ops.answer(s, pending_id(s, "question_id"), yes, err, sizeof err), 0);
    json_decref(yes);
    run_until(f, s, TT_STATE_WAITING_APPROVAL);
}

static void test_engine_running_step_runs_again_after_a_crash(void **state)
{
    fixture *f = *state;
    char sid[TT_SESSION_ID_MAX + 1];
    crash_child(f, TT_STATE_RUNNING, "four", sid, sizeof sid); /* dies inside step four's work */
    size_t resumed = 0;
    assert_int_equal(tt_registry_resume_active(f->reg, &resumed), 0);
    tt_session *s;
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    run_until(f, s, TT_STATE_DONE);
    json_t *data = json_object_get(s->agent_state, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "sum")), 500500);
}

static void test_engine_unanswered_question_expires(void **state)
{
    fixture *f = *state;
    f->env.wait_expiry_ms = 1;
    tt_session *s = new_run(f);
    run_until(f, s, TT_STATE_WAITING_INPUT);
    usleep(5000);
    json_t *yes = json_string("yes");
    char err[160];
    assert_int_equal(ops.answer(s, pending_id(s, "question_id"), yes, err, sizeof err),
                     TT_ECONFLICT);
    assert_non_null(strstr(err, "expired"));
    json_decref(yes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engine_runs_questions_approvals_and_work, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_waiting_run_survives_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_running_step_runs_again_after_a_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_unanswered_question_expires, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
