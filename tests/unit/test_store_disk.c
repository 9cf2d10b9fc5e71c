/* Unit tests for state/store.c, the store on disk: data kept across a
 * reopen, schema versions refused or upgraded, the memory map growing up to
 * its maximum (and never under a reader), errors that abort a write, misuse
 * refused, the stats, and the lock file (its holder's pid, the wait an
 * upgrade's new process makes for it). What the store holds is tested in test_store.c.
 * Each test has its own fresh store (store_fixture.h). Leaks are checked by
 * the sanitizer build (LeakSanitizer runs at exit). */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "state/store.h"
#include "store_fixture.h"

/* ---- tests: persistence and schema ------------------------------------ */

static void test_store_reopen_keeps_data(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_PERIODIC), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 25, 10), 0);
    assert_int_equal(
        APPLY(f->st, SESSION("s_a", "u1", "A"), ACTIVE("s_a", 1), META("jwt_secret", "shh")), 0);
    assert_int_equal(tt_store_sync(f->st), 0);
    reopen(f);

    assert_int_equal(read_all(f->st, "s_a", 0, 0, 10).n, 25);
    char *v = NULL;
    assert_int_equal(tt_store_get_session(f->st, "s_a", &v, NULL), 0);
    assert_string_equal(v, "A");
    free(v);
    assert_int_equal(tt_store_get_meta(f->st, "jwt_secret", &v, NULL), 0);
    assert_string_equal(v, "shh");
    free(v);
    names nm = {0};
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_a;");
    memset(&nm, 0, sizeof nm);
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_a=A;");
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(s.events, 25);
}

static void test_store_sync_none_reopen(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 3, 0), 0);
    reopen(f); /* a clean close keeps the data even without fsync */
    assert_int_equal(last_seq(f->st, "s_a"), 3);
}

static void test_store_schema_mismatch_refused(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 3, 0), 0);
    assert_int_equal(APPLY(f->st, META("schema_version", "999")), 0);
    tt_store_close(f->st);
    f->st = NULL;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), TT_ESCHEMA);
    assert_null(f->st);
    /* Refusing closed everything: the same answer again, not a lock error. */
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), TT_ESCHEMA);
    assert_null(f->st);
}

static void test_store_schema_1_is_upgraded_in_place(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 3, 0), 0);
    assert_int_equal(APPLY(f->st, META("schema_version", "1")), 0);
    reopen(f);
    char *v = NULL;
    assert_int_equal(tt_store_get_meta(f->st, "schema_version", &v, NULL), 0);
    assert_string_equal(v, "2");
    free(v);
    assert_int_equal(last_seq(f->st, "s_a"), 3);
    assert_int_equal(APPLY(f->st, ENTRY("s_a", 1, "e1")), 0);
}

/* ---- tests: map growth ------------------------------------------------ */

static void test_store_map_grows(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 64 * KiB, 0, TT_SYNC_NONE), 0);
    tt_store_stats s0;
    assert_int_equal(tt_store_stats_get(f->st, &s0), 0);
    assert_int_equal(s0.map_size, 64 * KiB);

    const uint64_t per_batch = 64, batches = 64; /* 64 x 64 x ~1 KiB: 4 MiB */
    int calls = 0;
    for (uint64_t b = 0; b < batches; b++) {
        ev_batch eb = {"s_big", b * per_batch + 1, (b + 1) * per_batch, 1000, 0, 0};
        assert_int_equal(tt_store_write(f->st, fill_events, &eb), 0);
        calls += eb.calls;
    }
    assert_true(calls > (int)batches); /* some batches were replayed */
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_true(s.map_grows > 0);
    assert_int_equal(s.events, per_batch * batches);
    assert_true(s.used_bytes > 4 * MiB);
    assert_true(s.used_bytes <= s.map_size);
    seen r = read_all(f->st, "s_big", 0, 0, 1000);
    assert_int_equal(r.n, per_batch * batches);
    assert_int_equal(r.last, per_batch * batches);

    /* The grown size is kept across a reopen. */
    size_t grown = s.map_size;
    tt_store_close(f->st);
    f->st = NULL;
    assert_int_equal(open_with(f, 64 * KiB, 0, TT_SYNC_NONE), 0);
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.map_size, grown);
    assert_int_equal(s.map_grows, 0);
    assert_int_equal(read_all(f->st, "s_big", 0, 0, 1000).n, per_batch * batches);
}

static void test_store_map_full_at_max(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 64 * KiB, 256 * KiB, TT_SYNC_COMMIT), 0);
    assert_int_equal(APPLY(f->st, SESSION("s_a", "u1", "A")), 0);
    uint64_t committed = 0;
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = put_events(f->st, "s_a", committed + 1, committed + 16, 1000);
        if (rc == 0)
            committed += 16;
    }
    assert_int_equal(rc, TT_EFULL);
    assert_true(committed > 0);

    /* Nothing of the failed batch was written, and reads still work. */
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.map_size, 256 * KiB);
    assert_int_equal(s.events, committed);
    assert_int_equal(last_seq(f->st, "s_a"), committed);
    assert_int_equal(read_all(f->st, "s_a", 0, 0, 1000).n, committed);
    char *v = NULL;
    assert_int_equal(tt_store_get_session(f->st, "s_a", &v, NULL), 0);
    assert_string_equal(v, "A");
    free(v);
    /* Trimming frees pages, and then small writes fit again. */
    assert_int_equal(APPLY(f->st, TRIM("s_a", committed)), 0);
    assert_int_equal(put_events(f->st, "s_a", committed + 1, committed + 2, 10), 0);
}

static void test_store_fill_ignoring_full_still_grows(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 64 * KiB, 0, TT_SYNC_COMMIT), 0);
    ev_batch b = {"s_a", 1, 256, 1000, 1, 0};
    assert_int_equal(tt_store_write(f->st, fill_events, &b), 0);
    assert_true(b.calls > 1);
    assert_int_equal(read_all(f->st, "s_a", 0, 0, 1000).n, 256);
}

static int on_event_write(uint64_t seq, const char *json, size_t len, void *arg)
{
    tt_store *st = arg;
    return put_events(st, "s_b", 1, 256, 1000) == TT_EFULL ? 0 : -1000;
}

static void test_store_no_growth_while_reading(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 64 * KiB, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 2, 0), 0);
    /* The callback holds pointers into the map: growing would unmap them. */
    assert_int_equal(tt_store_read_events(f->st, "s_a", 0, 0, on_event_write, f->st), 0);
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.map_grows, 0);
    assert_int_equal(put_events(f->st, "s_b", 1, 256, 1000), 0);
    assert_int_equal(read_all(f->st, "s_b", 0, 0, 1000).n, 256);
}

/* ---- tests: errors ---------------------------------------------------- */

static void test_store_fill_error_aborts(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(APPLY(f->st, EVENT("s_a", 1, "x"), SESSION("s_a", "u1", "A"), ACTIVE("s_a", 1),
                           FAIL(TT_ECONFLICT)),
                     TT_ECONFLICT);
    assert_int_equal(APPLY(f->st, EVENT("s_a", 1, "x"), FAIL(7)), 7);
    assert_int_equal(last_seq(f->st, "s_a"), 0);
    char *v = NULL;
    assert_int_equal(tt_store_get_session(f->st, "s_a", &v, NULL), TT_ENOTFOUND);
    names nm = {0};
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 0);
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session, &nm), 0);
    assert_int_equal(nm.calls, 0);
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.events, 0);
    assert_int_equal(s.sessions, 0);
}

static void test_store_invalid_sid(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    char max[TT_SESSION_ID_MAX + 1], over[TT_SESSION_ID_MAX + 2];
    memset(max, 'm', sizeof max - 1);
    max[sizeof max - 1] = '\0';
    memset(over, 'o', sizeof over - 1);
    over[sizeof over - 1] = '\0';
    const char *bad[] = {"", over, NULL};

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *sid = bad[i];
        uint64_t q;
        char *v = NULL;
        seen s = {.sid = "x"};
        assert_int_equal(tt_store_read_events(f->st, sid, 0, 0, on_event, &s), TT_EINVAL);
        assert_int_equal(tt_store_last_seq(f->st, sid, &q), TT_EINVAL);
        assert_int_equal(tt_store_get_session(f->st, sid, &v, NULL), TT_EINVAL);
        assert_int_equal(APPLY(f->st, EVENT(sid, 1, "x")), TT_EINVAL);
        assert_int_equal(APPLY(f->st, SESSION(sid, "u1", "x")), TT_EINVAL);
        assert_int_equal(APPLY(f->st, TRIM(sid, 5)), TT_EINVAL);
        assert_int_equal(APPLY(f->st, ACTIVE(sid, 1)), TT_EINVAL);
    }
    /* The longest valid id works everywhere. */
    assert_int_equal(put_events(f->st, max, 1, 4, 0), 0);
    assert_int_equal(APPLY(f->st, SESSION(max, "u1", "M")), 0);
    assert_int_equal(read_all(f->st, max, 0, 0, 0).n, 4);
    names nm = {0};
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session, &nm), 0);
    assert_int_equal(nm.calls, 1);
}

/* An invalid argument is refused without spoiling the transaction. */
static int fill_ignore_einval(tt_store_txn *txn, void *arg)
{
    int *got = arg;
    *got = tt_store_put_event(txn, "", 1, "x", 1);
    return tt_store_put_event(txn, "s_ok", 1, "y", 1);
}

static void test_store_invalid_op_keeps_txn(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    int got = 0;
    assert_int_equal(tt_store_write(f->st, fill_ignore_einval, &got), 0);
    assert_int_equal(got, TT_EINVAL);
    assert_int_equal(last_seq(f->st, "s_ok"), 1);
}

typedef struct nest_ctx {
    tt_store *st;
    tt_store_txn *saved;
    int inner;
} nest_ctx;

static int fill_noop(tt_store_txn *txn, void *arg)
{
    return 0;
}

static int fill_nested(tt_store_txn *txn, void *arg)
{
    nest_ctx *nc = arg;
    nc->saved = txn;
    nc->inner = tt_store_write(nc->st, fill_noop, NULL);
    return nc->inner;
}

static void test_store_misuse_is_refused(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    nest_ctx nc = {f->st, NULL, 0};
    assert_int_equal(tt_store_write(f->st, fill_nested, &nc), TT_EINTERNAL);
    assert_int_equal(nc.inner, TT_EINTERNAL);
    /* A transaction handle kept past its callback is dead. */
    assert_int_equal(tt_store_put_event(nc.saved, "s_a", 1, "x", 1), TT_EINTERNAL);
    assert_int_equal(tt_store_write(f->st, NULL, NULL), TT_EINVAL);
    assert_int_equal(tt_store_write(f->st, fill_noop, NULL), 0);
}

static void test_store_stats(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 1 * MiB, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 4, 0), 0);
    assert_int_equal(put_events(f->st, "s_b", 1, 3, 0), 0);
    assert_int_equal(APPLY(f->st, SESSION("s_a", "u1", "A"), SESSION("s_b", "u2", "B")), 0);
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.sessions, 2);
    assert_int_equal(s.events, 7);
    assert_int_equal(s.map_size, 1 * MiB);
    assert_true(s.used_bytes > 0 && s.used_bytes <= s.map_size);
    assert_int_equal(s.map_grows, 0);
}

/* ---- tests: the lock an upgrade hands over --------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The lock file names its holder; nobody once it is closed. */
static void test_store_lock_names_holder(void **state)
{
    fx *f = *state;
    long pid = -1;
    assert_int_equal(tt_store_lock_holder(f->path, &pid), TT_ENOTFOUND); /* no file yet */
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), 0);
    assert_int_equal(tt_store_lock_holder(f->path, &pid), 0);
    assert_int_equal(pid, (long)getpid());
    tt_store_close(f->st);
    f->st = NULL;
    assert_int_equal(tt_store_lock_holder(f->path, &pid), TT_ENOTFOUND);
}

/* Another process holds the store for LOCK_HELD_MS: an open without a wait
 * is refused at once, one with lock_wait_ms gets it when the holder closes. */
#define LOCK_HELD_MS 300
static void test_store_lock_wait(void **state)
{
    fx *f = *state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        tt_store *st = NULL;
        tt_store_options o = {.path = f->path, .sync = TT_SYNC_NONE};
        int rc = tt_store_open(&o, &st);
        (void)!write(ready[1], "x", 1);
        usleep(LOCK_HELD_MS * 1000);
        tt_store_close(st);
        _exit(rc == 0 ? 0 : 1);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    long pid = 0;
    assert_int_equal(tt_store_lock_holder(f->path, &pid), 0);
    assert_int_equal(pid, (long)child);
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), TT_EIO);
    int64_t t0 = now_ms();
    tt_store_options o = {.path = f->path, .sync = TT_SYNC_NONE, .lock_wait_ms = 10000};
    assert_int_equal(tt_store_open(&o, &f->st), 0);
    assert_true(now_ms() - t0 >= LOCK_HELD_MS / 2);
    int status = -1;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(tt_store_lock_holder(f->path, &pid), 0);
    assert_int_equal(pid, (long)getpid());
    close(ready[0]);
    close(ready[1]);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_store_reopen_keeps_data),
        T(test_store_sync_none_reopen),
        T(test_store_schema_mismatch_refused),
        T(test_store_schema_1_is_upgraded_in_place),
        T(test_store_map_grows),
        T(test_store_map_full_at_max),
        T(test_store_fill_ignoring_full_still_grows),
        T(test_store_no_growth_while_reading),
        T(test_store_fill_error_aborts),
        T(test_store_invalid_sid),
        T(test_store_invalid_op_keeps_txn),
        T(test_store_misuse_is_refused),
        T(test_store_stats),
        T(test_store_lock_names_holder),
        T(test_store_lock_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
