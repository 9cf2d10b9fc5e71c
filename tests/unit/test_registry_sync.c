/* state/registry.c: the periodic fsync (--sync periodic) runs in the libuv
 * thread pool, never on the loop, never two at once, and once more at close
 * when one was in flight (issue 18). The sync is an instrumented slow hook
 * (SLOW_MS per call) so a sync on the loop would show as a stalled timer. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "state/registry.h"
#include "loop_fixture.h"

#define SLOW_MS 200
#define TICK_MS 5

static pthread_t loop_thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int running, max_running, calls, calls_on_loop, bad_fd, ticked_during;
static int expected_fd = -1;
static int ticks; /* the loop's timer ticks (read by the pool thread: atomics) */

static int slow_sync(int fd)
{
    pthread_mutex_lock(&mu);
    if (++running > max_running)
        max_running = running;
    calls++;
    if (pthread_equal(pthread_self(), loop_thread))
        calls_on_loop++;
    if (fd != expected_fd)
        bad_fd++;
    pthread_mutex_unlock(&mu);
    int t0 = __atomic_load_n(&ticks, __ATOMIC_SEQ_CST);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = SLOW_MS * 1000000L};
    nanosleep(&ts, NULL);
    int t1 = __atomic_load_n(&ticks, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&mu);
    if (t1 - t0 >= 2) /* the loop went on while this sync ran */
        ticked_during++;
    running--;
    pthread_mutex_unlock(&mu);
    return tt_store_fdsync(fd);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    __atomic_add_fetch(&ticks, 1, __ATOMIC_SEQ_CST);
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_periodic_sync_runs_off_the_loop(void **state)
{
    (void)state;
    char dir[64];
    loop_fixture_mkdir(dir, sizeof dir, "tt_regsync");
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_thread = pthread_self();
    tt_store *store;
    tt_store_options so = {.path = dir, .sync = TT_SYNC_PERIODIC};
    assert_int_equal(tt_store_open(&so, &store), 0);
    assert_int_equal(tt_store_sync_fd(store, &expected_fd), 0);
    tt_registry_options o = {.headroom = 16,
                             .memory_events = 16,
                             .max_lag_events = 1000,
                             .transcript_max = 10,
                             .sync_interval_ms = 10, /* far shorter than one sync */
                             .sync_fn = slow_sync};
    tt_registry_hooks hooks = {0};
    tt_registry *reg;
    assert_int_equal(tt_registry_new(&loop, store, &o, &hooks, &reg), 0);

    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 4 * SLOW_MS + 100, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&stop, NULL);
    pthread_mutex_lock(&mu);
    /* The loop kept ticking while syncs ran (on the loop, no tick could come
     * during one; timing alone would be at the mercy of a loaded machine). */
    assert_true(ticked_during >= 1);
    int done = calls;
    assert_true(done >= 3);
    assert_int_equal(max_running, 1); /* one at a time, though the interval is 10 ms */
    assert_int_equal(calls_on_loop, 0);
    assert_int_equal(bad_fd, 0);
    pthread_mutex_unlock(&mu);
    assert_true(tt_registry_stats_get(reg)->syncs >= 2);
    assert_int_equal(tt_registry_stats_get(reg)->sync_failures, 0);

    /* Close with a sync in flight: it ends first, then the last sync runs
     * (on the loop, at close), before the store can close. */
    LOOP_RUN_UNTIL(&loop, tt_registry_syncing(reg));
    uv_close((uv_handle_t *)&tick, NULL);
    pthread_mutex_lock(&mu);
    int before_close = calls, on_loop_before = calls_on_loop;
    pthread_mutex_unlock(&mu);
    tt_registry_close(reg);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once the pool job is back */
    pthread_mutex_lock(&mu);
    assert_true(calls >= before_close + 1);
    assert_int_equal(calls_on_loop, on_loop_before + 1);
    assert_int_equal(max_running, 1);
    pthread_mutex_unlock(&mu);
    tt_store_close(store);
    loop_fixture_end(&loop, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periodic_sync_runs_off_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
