/* agents/photos/organizer_execute.c: the approved plan's check against the
 * disk (tt_photos_journal_new stats every source and opens every folder)
 * runs in libuv's thread pool, never on the loop; a plan that no longer fits
 * fails the run with the same error and changes nothing of the session; a
 * run cancelled, its session deleted, or the registry closed while the
 * check runs: the completion frees nothing the check still uses (ASan),
 * changes nothing and moves nothing.
 *
 * Linked with -Wl,--wrap=tt_photos_journal_new (CMakeLists.txt): the
 * wrapper records the thread the check runs on and can hold it until the
 * test releases it (never on the loop thread, which would hang the test
 * instead of failing it). Real LMDB, a real loop, the organiser's own
 * execute step on a library of small files. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "agents/agent.h"
#include "agents/engine/engine.h"
#include "agents/photos/move.h"
#include "protocol/errors.h"
#include "state/registry.h"
#include "loop_fixture.h"

#define PHOTOS 40

static uv_thread_t loop_thread;
static uv_thread_t checked_on; /* the thread of the last check */
static int checks, checks_on_loop;
static int entered, returned; /* atomics: the held check began, and came back */
static int hold;              /* the next check waits for `release` */
static int ticks;             /* the loop's timer ticks while the check is held */
static uv_sem_t release;

int __real_tt_photos_journal_new(int rootfd, const json_t *plan, json_t **journal,
                                 json_t **problems);
int __wrap_tt_photos_journal_new(int rootfd, const json_t *plan, json_t **journal,
                                 json_t **problems)
{
    checked_on = uv_thread_self();
    checks++;
    int on_loop = uv_thread_equal(&checked_on, &loop_thread);
    checks_on_loop += on_loop;
    __atomic_store_n(&entered, 1, __ATOMIC_SEQ_CST);
    if (hold && !on_loop) /* never hold the loop itself */
        uv_sem_wait(&release);
    int rc = __real_tt_photos_journal_new(rootfd, plan, journal, problems);
    __atomic_store_n(&returned, 1, __ATOMIC_SEQ_CST);
    return rc;
}

typedef struct fixture {
    char dir[64];
    char photos[96]; /* dir/photos: --photos-root */
    char lib[128];   /* photos/u: user u's library (tenant "default") */
    uv_loop_t loop;
    tt_store *store;
    tt_registry *reg;
    tt_agent_env *env;
} fixture;

static int bind_run(tt_session *s, int resumed, void *ud)
{
    fixture *f = ud;
    s->agent_ops = &tt_agent_photo_organizer;
    return resumed ? tt_agent_photo_organizer.resume(s, f->env)
                   : tt_agent_photo_organizer.start(s, f->env);
}

static void unbind_run(tt_session *s, void *ud)
{
    tt_agent_photo_organizer.release(s);
}

static void deliver(tt_cursor *c, void *ud)
{
}

static void put_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, path, strlen(path)), (ssize_t)strlen(path));
    close(fd);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_photos_org");
    snprintf(f->photos, sizeof f->photos, "%s/photos", f->dir);
    snprintf(f->lib, sizeof f->lib, "%s/u", f->photos);
    assert_int_equal(mkdir(f->photos, 0755), 0);
    assert_int_equal(mkdir(f->lib, 0755), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/a", f->lib);
    assert_int_equal(mkdir(path, 0755), 0);
    for (int i = 0; i < PHOTOS; i++) {
        snprintf(path, sizeof path, "%s/a/IMG_%02d.jpg", f->lib, i);
        put_file(path);
    }
    uv_loop_init(&f->loop);
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {
        .headroom = 16, .memory_events = 64, .max_lag_events = 100000, .transcript_max = 100};
    tt_registry_hooks hooks = {.ud = f, .bind = bind_run, .unbind = unbind_run, .deliver = deliver};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
    f->env = calloc(1, sizeof *f->env);
    assert_non_null(f->env);
    f->env->loop = &f->loop;
    f->env->reg = f->reg;
    f->env->photos_root = f->photos;
    f->env->wait_expiry_ms = 60000;
    loop_thread = uv_thread_self();
    checks = checks_on_loop = entered = returned = hold = ticks = 0;
    uv_sem_init(&release, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    loop_fixture_teardown(&f->loop, &f->reg, &f->store, f->dir);
    uv_sem_destroy(&release);
    free(f->env);
    free(f);
    return 0;
}

/* A session of user u whose run goes to "execute" with plan (consumed), as
 * an approval of it would. */
static tt_session *execute(fixture *f, json_t *plan)
{
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, "u", "default", "photo-organizer", NULL, NULL, &s),
                     0);
    tt_run *run = s->agent_rt;
    assert_non_null(run);
    json_object_set_new(tt_run_data(run), "plan", plan);
    tt_run_touch(run);
    tt_run_goto(run, "execute");
    return s;
}

/* Every photo of the fixture into folder 2020, and one more move if extra. */
static json_t *plan_all(const char *extra_src)
{
    json_t *moves = json_array();
    char src[64], dest[64];
    for (int i = 0; i < PHOTOS; i++) {
        snprintf(src, sizeof src, "a/IMG_%02d.jpg", i);
        snprintf(dest, sizeof dest, "2020/IMG_%02d.jpg", i);
        json_array_append_new(moves, json_pack("{s:s, s:s}", "src", src, "dest", dest));
    }
    if (extra_src)
        json_array_append_new(moves,
                              json_pack("{s:s, s:s}", "src", extra_src, "dest", "2020/extra.jpg"));
    return json_pack("{s:[s], s:o, s:s}", "folders", "2020", "moves", moves, "explanation",
                     "by year");
}

static int exists(const fixture *f, const char *rel)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", f->lib, rel);
    return lstat(path, &st) == 0;
}

static void on_tick(uv_timer_t *t)
{
    ticks++;
}

static void test_plan_check_runs_in_the_pool(void **state)
{
    fixture *f = *state;
    hold = 1;
    tt_session *s = execute(f, plan_all(NULL));
    LOOP_RUN_UNTIL(&f->loop, __atomic_load_n(&entered, __ATOMIC_SEQ_CST));
    assert_int_equal(checks_on_loop, 0);
    assert_false(uv_thread_equal(&checked_on, &loop_thread));
    /* The check is held in the pool: the loop goes on meanwhile. */
    static uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, on_tick, 1, 1);
    LOOP_RUN_UNTIL(&f->loop, ticks >= 5);
    uv_close((uv_handle_t *)&tick, NULL);
    assert_false(exists(f, "2020")); /* nothing moves before the check is back */
    uv_sem_post(&release);
    LOOP_RUN_UNTIL(&f->loop, s->state == TT_STATE_DONE);
    assert_int_equal(checks, 1);
    for (int i = 0; i < PHOTOS; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "2020/IMG_%02d.jpg", i);
        assert_true(exists(f, rel));
        snprintf(rel, sizeof rel, "a/IMG_%02d.jpg", i);
        assert_false(exists(f, rel));
    }
    json_t *data = json_object_get(s->agent_state, "data");
    json_t *journal = json_object_get(data, "journal");
    assert_int_equal(json_array_size(journal), PHOTOS + 1); /* the mkdir, then the moves */
    size_t i;
    json_t *e;
    json_array_foreach(journal, i, e)
    {
        assert_string_equal(json_string_value(json_object_get(e, "state")), "done");
    }
    assert_true(json_is_true(json_object_get(data, "journaled")));
    assert_int_equal(json_integer_value(json_object_get(data, "journal_base")), 0);
}

/* The error event's message, or NULL. */
static char *error_message(tt_session *s, char *code, size_t n)
{
    int recovered = 0;
    json_t *events = loop_fixture_replay(s, &recovered);
    char *msg = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *text = json_string_value(json_object_get(ev, "message"));
        if (type && strcmp(type, "error") == 0 && text) {
            free(msg);
            msg = strdup(text);
            snprintf(code, n, "%s", json_string_value(json_object_get(ev, "code")));
        }
    }
    json_decref(events);
    return msg;
}

static void test_plan_that_no_longer_fits_changes_nothing(void **state)
{
    fixture *f = *state;
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, "u", "default", "photo-organizer", NULL, NULL, &s),
                     0);
    tt_run *run = s->agent_rt;
    json_object_set_new(tt_run_data(run), "plan", plan_all("a/gone.jpg"));
    json_t *before = json_deep_copy(tt_run_data(run));
    tt_run_touch(run);
    tt_run_goto(run, "execute");
    LOOP_RUN_UNTIL(&f->loop, s->state == TT_STATE_FAILED);
    loop_fixture_spin(&f->loop, 1); /* the failure committed */
    assert_int_equal(checks, 1);
    assert_int_equal(checks_on_loop, 0);
    assert_true(json_equal(before, json_object_get(s->agent_state, "data")));
    json_decref(before);
    assert_false(exists(f, "2020"));
    assert_true(exists(f, "a/IMG_00.jpg"));
    char code[64] = "";
    char *msg = error_message(s, code, sizeof code);
    assert_non_null(msg);
    assert_string_equal(code, "conflict");
    assert_string_equal(msg, "the plan no longer fits the library: "
                             "[{\"path\":\"a/gone.jpg\",\"reason\":\"source missing\"}]");
    free(msg);
}

static void detach_none(tt_session *s, void *ud)
{
}

static void test_session_deleted_while_the_check_runs(void **state)
{
    fixture *f = *state;
    hold = 1;
    tt_session *s = execute(f, plan_all(NULL));
    LOOP_RUN_UNTIL(&f->loop, __atomic_load_n(&entered, __ATOMIC_SEQ_CST));
    assert_int_equal(checks_on_loop, 0);
    assert_int_equal(tt_registry_delete(f->reg, s, detach_none, NULL), 0);
    uv_sem_post(&release);
    LOOP_RUN_UNTIL(&f->loop, __atomic_load_n(&returned, __ATOMIC_SEQ_CST));
    loop_fixture_spin(&f->loop, 20); /* the completion finds the session gone */
    assert_false(exists(f, "2020"));
    assert_true(exists(f, "a/IMG_00.jpg"));
    assert_int_equal(checks, 1);
}

static void test_run_cancelled_while_the_check_runs(void **state)
{
    fixture *f = *state;
    hold = 1;
    tt_session *s = execute(f, plan_all(NULL));
    LOOP_RUN_UNTIL(&f->loop, __atomic_load_n(&entered, __ATOMIC_SEQ_CST));
    assert_int_equal(checks_on_loop, 0);
    int cancelled = 0;
    assert_int_equal(tt_agent_photo_organizer.cancel(s, &cancelled), 0);
    assert_true(cancelled);
    uv_sem_post(&release);
    LOOP_RUN_UNTIL(&f->loop, __atomic_load_n(&returned, __ATOMIC_SEQ_CST));
    loop_fixture_spin(&f->loop, 20); /* the completion changes nothing */
    assert_int_equal(s->state, TT_STATE_IDLE);
    json_t *data = json_object_get(s->agent_state, "data");
    assert_null(json_object_get(data, "journal"));
    assert_false(json_is_true(json_object_get(data, "journaled")));
    assert_false(exists(f, "2020"));
    assert_true(exists(f, "a/IMG_00.jpg"));
}

static void test_registry_closed_while_the_check_runs(void **state)
{
    fixture *f = *state;
    hold = 1;
    execute(f, plan_all(NULL));
    LOOP_RUN_UNTIL(&f->loop, __atomic_load_n(&entered, __ATOMIC_SEQ_CST));
    assert_int_equal(checks_on_loop, 0);
    tt_registry_close(f->reg); /* every session unbound, the check still held */
    uv_sem_post(&release);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns once the check is back */
    tt_store_close(f->store);
    f->reg = NULL;
    f->store = NULL;
    assert_true(__atomic_load_n(&returned, __ATOMIC_SEQ_CST));
    assert_false(exists(f, "2020"));
    assert_true(exists(f, "a/IMG_00.jpg"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plan_check_runs_in_the_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_that_no_longer_fits_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_deleted_while_the_check_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_cancelled_while_the_check_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_closed_while_the_check_runs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
