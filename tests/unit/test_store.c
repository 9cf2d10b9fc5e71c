/* Unit tests for state/store.c, what the store holds: opening, events
 * (order, reads after a seq, caps, trims, prefixes), the transcript, sessions
 * and their owners, the active set and meta values. The store on disk
 * (reopening, schema versions, map growth, errors) is tested in
 * test_store_disk.c. Each test has its own fresh store (store_fixture.h).
 * Leaks are checked by the sanitizer build (LeakSanitizer runs at exit). */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "state/store.h"
#include "store_fixture.h"

/* ---- tests: open ------------------------------------------------------ */

static void test_store_open_creates_private_dir(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    tt_store_stats s;
    assert_int_equal(tt_store_stats_get(f->st, &s), 0);
    assert_int_equal(s.map_size, 64 * MiB);
}

static void test_store_open_bad_arguments(void **state)
{
    fx *f = *state;
    tt_store *st = NULL;
    assert_int_equal(tt_store_open(NULL, &st), TT_EINVAL);
    tt_store_options o = {.path = "", .sync = TT_SYNC_COMMIT};
    assert_int_equal(tt_store_open(&o, &st), TT_EINVAL);
    o.path = f->path;
    o.map_size = 2 * MiB;
    o.map_size_max = 1 * MiB;
    assert_int_equal(tt_store_open(&o, &st), TT_EINVAL);
    assert_null(st);

    /* A regular file where the directory should be; a missing parent. */
    char file[128];
    snprintf(file, sizeof file, "%s/plain", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    tt_store_options o2 = {.path = file, .sync = TT_SYNC_COMMIT};
    assert_int_equal(tt_store_open(&o2, &st), TT_EIO);
    char deep[160];
    snprintf(deep, sizeof deep, "%s/missing/db", f->dir);
    o2.path = deep;
    assert_int_equal(tt_store_open(&o2, &st), TT_EIO);
    assert_null(st);
}

static void test_store_second_open_refused(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    tt_store *other = NULL;
    tt_store_options o = {.path = f->path, .sync = TT_SYNC_COMMIT};
    assert_int_equal(tt_store_open(&o, &other), TT_EIO);
    assert_null(other);
    reopen(f); /* the lock went with the close */
}

/* ---- tests: events ---------------------------------------------------- */

static void test_store_events_read_in_order(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    /* Written out of order, in two transactions: read back in seq order. */
    assert_int_equal(put_events(f->st, "s_a", 6, 10, 3), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 5, 3), 0);
    seen s = read_all(f->st, "s_a", 0, 0, 3);
    assert_int_equal(s.n, 10);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.last, 10);
}

static void test_store_events_read_after_n(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 10, 0), 0);
    seen s = read_all(f->st, "s_a", 4, 0, 0);
    assert_int_equal(s.n, 6);
    assert_int_equal(s.first, 5);
    assert_int_equal(s.last, 10);
    assert_int_equal(read_all(f->st, "s_a", 10, 0, 0).n, 0);
    assert_int_equal(read_all(f->st, "s_a", 1000, 0, 0).n, 0);
    assert_int_equal(read_all(f->st, "s_none", 0, 0, 0).n, 0);
}

static void test_store_events_read_max(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 10, 0), 0);
    seen s = read_all(f->st, "s_a", 0, 3, 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.last, 3);
    s = read_all(f->st, "s_a", 8, 5, 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.first, 9);
    assert_int_equal(s.last, 10);
}

static void test_store_events_early_stop(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 10, 0), 0);
    seen s = {.sid = "s_a", .expect = 1, .stop_at = 3, .stop_rc = 42};
    assert_int_equal(tt_store_read_events(f->st, "s_a", 0, 0, on_event, &s), 42);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.bad, 0);
}

static void test_store_events_last_seq(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(last_seq(f->st, "s_2"), 0); /* empty database */
    assert_int_equal(put_events(f->st, "s_1", 1, 10, 0), 0);
    assert_int_equal(put_events(f->st, "s_3", 1, 20, 0), 0);
    assert_int_equal(last_seq(f->st, "s_1"), 10);
    assert_int_equal(last_seq(f->st, "s_3"), 20);
    /* Between two sids, before the first and after the last key. */
    assert_int_equal(last_seq(f->st, "s_2"), 0);
    assert_int_equal(last_seq(f->st, "s_0"), 0);
    assert_int_equal(last_seq(f->st, "s_9"), 0);
    assert_int_equal(last_seq(f->st, "s_10"), 0);

    /* The largest seq sorts last and is read back. */
    assert_int_equal(put_events(f->st, "s_2", UINT64_MAX - 1, UINT64_MAX, 0), 0);
    assert_true(last_seq(f->st, "s_2") == UINT64_MAX);
    seen s = read_all(f->st, "s_2", UINT64_MAX - 1, 0, 0);
    assert_int_equal(s.n, 1);
    assert_true(s.first == UINT64_MAX);
    assert_int_equal(read_all(f->st, "s_2", UINT64_MAX, 0, 0).n, 0);
}

static void test_store_prefix_sids_do_not_mix(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_1", 1, 3, 0), 0);
    assert_int_equal(put_events(f->st, "s_10", 1, 5, 0), 0);
    assert_int_equal(put_events(f->st, "s_1x", 1, 7, 0), 0);
    /* on_event checks each text carries the sid it was read for. */
    assert_int_equal(read_all(f->st, "s_1", 0, 0, 0).n, 3);
    assert_int_equal(read_all(f->st, "s_10", 0, 0, 0).n, 5);
    assert_int_equal(read_all(f->st, "s_1x", 0, 0, 0).n, 7);
    assert_int_equal(last_seq(f->st, "s_1"), 3);
    assert_int_equal(last_seq(f->st, "s_10"), 5);
    assert_int_equal(APPLY(f->st, TRIM("s_1", 100)), 0);
    assert_int_equal(read_all(f->st, "s_1", 0, 0, 0).n, 0);
    assert_int_equal(read_all(f->st, "s_10", 0, 0, 0).n, 5);
    assert_int_equal(read_all(f->st, "s_1x", 0, 0, 0).n, 7);
}

static void test_store_trim_events(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 10, 0), 0);
    assert_int_equal(put_events(f->st, "s_b", 1, 10, 0), 0);
    assert_int_equal(APPLY(f->st, TRIM("s_a", 0), TRIM("s_a", 1)), 0);
    assert_int_equal(read_all(f->st, "s_a", 0, 0, 0).n, 10);
    assert_int_equal(APPLY(f->st, TRIM("s_a", 6)), 0);
    seen s = read_all(f->st, "s_a", 0, 0, 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.first, 6);
    assert_int_equal(read_all(f->st, "s_b", 0, 0, 0).n, 10);
    tt_store_stats st;
    assert_int_equal(tt_store_stats_get(f->st, &st), 0);
    assert_int_equal(st.events, 15);
    /* Trimming everything leaves no last seq. */
    assert_int_equal(APPLY(f->st, TRIM("s_a", UINT64_MAX)), 0);
    assert_int_equal(last_seq(f->st, "s_a"), 0);
    assert_int_equal(last_seq(f->st, "s_b"), 10);
}

static void test_store_trim_spans_many_pages(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 1000, 300), 0);
    assert_int_equal(put_events(f->st, "s_b", 1, 50, 300), 0);
    assert_int_equal(APPLY(f->st, TRIM("s_a", 900)), 0);
    seen s = read_all(f->st, "s_a", 0, 0, 300);
    assert_int_equal(s.n, 101);
    assert_int_equal(s.first, 900);
    assert_int_equal(s.last, 1000);
    assert_int_equal(read_all(f->st, "s_b", 0, 0, 300).n, 50);
}

static int on_entry_count(uint64_t index, const char *json, size_t len, void *arg)
{
    uint64_t *sum = arg;
    *sum += index * 1000 + len; /* which entries, and that each is its own text */
    return json[0] == 'e' ? 0 : TT_EINVAL;
}

static void test_store_transcript_apart_from_events(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_a", 1, 5, 0), 0);
    assert_int_equal(APPLY(f->st, ENTRY("s_a", 1, "e1"), ENTRY("s_a", 2, "e22"),
                           ENTRY("s_a", 3, "e333"), ENTRY("s_ab", 1, "e4444")),
                     0);
    uint64_t sum = 0;
    assert_int_equal(tt_store_read_transcript(f->st, "s_a", 0, 0, on_entry_count, &sum), 0);
    assert_int_equal(sum, 1000 + 2 + 2000 + 3 + 3000 + 4);
    assert_int_equal(APPLY(f->st, TRIM_ENTRIES("s_a", 3)), 0);
    sum = 0;
    assert_int_equal(tt_store_read_transcript(f->st, "s_a", 0, 0, on_entry_count, &sum), 0);
    assert_int_equal(sum, 3000 + 4);
    sum = 0;
    assert_int_equal(tt_store_read_transcript(f->st, "s_ab", 0, 0, on_entry_count, &sum), 0);
    assert_int_equal(sum, 1000 + 5);
    /* The events of the same session are untouched by either. */
    seen s = read_all(f->st, "s_a", 0, 0, 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(last_seq(f->st, "s_a"), 5);
}

/* ---- tests: sessions, owners, active, meta ---------------------------- */

static void test_store_session_put_get(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(APPLY(f->st, SESSION("s_a", "u1", "{\"v\":1}")), 0);
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(tt_store_get_session(f->st, "s_a", &json, &len), 0);
    assert_int_equal(len, 7);
    assert_string_equal(json, "{\"v\":1}");
    free(json);

    assert_int_equal(APPLY(f->st, SESSION("s_a", "u1", "{\"v\":2,\"x\":true}")), 0);
    assert_int_equal(tt_store_get_session(f->st, "s_a", &json, NULL), 0);
    assert_string_equal(json, "{\"v\":2,\"x\":true}");
    free(json);
}

static void test_store_session_not_found(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    char *json = NULL;
    size_t len = 77;
    assert_int_equal(tt_store_get_session(f->st, "s_nope", &json, &len), TT_ENOTFOUND);
    assert_null(json);
    assert_int_equal(len, 77);
}

static void test_store_list_user_only_theirs(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(APPLY(f->st, SESSION("s_c", "u1", "C"), SESSION("s_b", "u10", "B"),
                           SESSION("s_a", "u1", "A"), SESSION("s_d", "u", "D"),
                           SESSION("s_e", "u1x", "E")),
                     0);
    names nm = {0};
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_a=A;s_c=C;"); /* ordered by session id */
    memset(&nm, 0, sizeof nm);
    assert_int_equal(tt_store_list_user(f->st, "u10", on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_b=B;");
    memset(&nm, 0, sizeof nm);
    assert_int_equal(tt_store_list_user(f->st, "u", on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_d=D;");
    memset(&nm, 0, sizeof nm);
    assert_int_equal(tt_store_list_user(f->st, "nobody", on_session, &nm), 0);
    assert_int_equal(nm.calls, 0);
    memset(&nm, 0, sizeof nm);
    nm.stop_after = 1;
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session, &nm), 99);
    assert_string_equal(nm.buf, "s_a=A;");
}

/* list_user's callback reads again, as the registry does (last_seq). */
static int on_session_nested(const char *sid, const char *json, size_t len, void *arg)
{
    tt_store *st = arg;
    uint64_t q = 0;
    return tt_store_last_seq(st, sid, &q) == 0 && q == 2 ? 0 : -1000;
}

static void test_store_list_user_callback_reads(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(APPLY(f->st, SESSION("s_a", "u1", "A"), SESSION("s_b", "u1", "B"),
                           EVENT("s_a", 1, "x"), EVENT("s_a", 2, "y"), EVENT("s_b", 1, "x"),
                           EVENT("s_b", 2, "y")),
                     0);
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session_nested, f->st), 0);
}

static void test_store_active_set_unset_list(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    names nm = {0};
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 0);
    assert_int_equal(nm.calls, 0);
    assert_int_equal(APPLY(f->st, ACTIVE("s_c", 1), ACTIVE("s_a", 1), ACTIVE("s_b", 1)), 0);
    assert_int_equal(APPLY(f->st, ACTIVE("s_b", 0), ACTIVE("s_zz", 0), ACTIVE("s_a", 1)), 0);
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_a;s_c;");
    assert_int_equal(nm.null_json, 2);
    memset(&nm, 0, sizeof nm);
    nm.stop_after = 1;
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 99);
}

/* Resuming an active session may write; list_active must allow it. */
static int on_active_write(const char *sid, const char *json, size_t len, void *arg)
{
    tt_store *st = arg;
    return APPLY(st, ACTIVE(sid, 0), EVENT(sid, 1, "resumed"));
}

static void test_store_list_active_callback_writes(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(APPLY(f->st, ACTIVE("s_a", 1), ACTIVE("s_b", 1)), 0);
    assert_int_equal(tt_store_list_active(f->st, on_active_write, f->st), 0);
    names nm = {0};
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 0);
    assert_int_equal(nm.calls, 0);
    assert_int_equal(last_seq(f->st, "s_a"), 1);
    assert_int_equal(last_seq(f->st, "s_b"), 1);
}

/* Meta values are bytes, not strings. */
typedef struct blob {
    const char *val;
    size_t len;
} blob;

static int fill_secret(tt_store_txn *txn, void *arg)
{
    const blob *b = arg;
    return tt_store_put_meta(txn, "jwt_secret", b->val, b->len);
}

static void test_store_meta_put_get(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(tt_store_get_meta(f->st, "schema_version", &v, &len), 0);
    assert_string_equal(v, "2");
    assert_int_equal(len, 1);
    free(v);
    assert_int_equal(tt_store_get_meta(f->st, "jwt_secret", &v, &len), TT_ENOTFOUND);

    static const char secret[] = {'k', 0, 'e', (char)0xff, 'y'};
    blob b = {secret, sizeof secret};
    assert_int_equal(tt_store_write(f->st, fill_secret, &b), 0);
    assert_int_equal(tt_store_get_meta(f->st, "jwt_secret", &v, &len), 0);
    assert_int_equal(len, sizeof secret);
    assert_memory_equal(v, secret, sizeof secret);
    assert_int_equal(v[len], '\0');
    free(v);
    assert_int_equal(tt_store_get_meta(f->st, "", &v, &len), TT_EINVAL);
    assert_int_equal(APPLY(f->st, META("", "x")), TT_EINVAL);
}

/* ---- tests: deleting a session --------------------------------------- */

static int fill_delete(tt_store_txn *txn, void *arg)
{
    const char *const *who = arg; /* {sid, user} */
    return tt_store_delete_session(txn, who[0], who[1]);
}

static uint64_t entries(tt_store *st, const char *sid)
{
    uint64_t sum = 0;
    assert_int_equal(tt_store_read_transcript(st, sid, 0, 0, on_entry_count, &sum), 0);
    return sum;
}

static void test_store_delete_session_removes_all_of_it(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
    assert_int_equal(put_events(f->st, "s_1", 1, 3, 0), 0);
    assert_int_equal(put_events(f->st, "s_10", 1, 5, 0), 0);
    assert_int_equal(APPLY(f->st, SESSION("s_1", "u1", "A"), SESSION("s_10", "u1", "B"),
                           SESSION("s_2", "u10", "C"), ENTRY("s_1", 1, "e1"),
                           ENTRY("s_10", 1, "e1"), ACTIVE("s_1", 1), ACTIVE("s_10", 1)),
                     0);
    uint64_t n = 0;
    assert_int_equal(tt_store_count_user(f->st, "u1", 10, &n), 0);
    assert_int_equal(n, 2);

    const char *who[] = {"s_1", "u1"};
    assert_int_equal(tt_store_write(f->st, fill_delete, who), 0);
    assert_int_equal(tt_store_get_session(f->st, "s_1", &(char *){NULL}, NULL), TT_ENOTFOUND);
    assert_int_equal(read_all(f->st, "s_1", 0, 0, 0).n, 0);
    assert_int_equal(entries(f->st, "s_1"), 0);
    assert_int_equal(tt_store_count_user(f->st, "u1", 10, &n), 0);
    assert_int_equal(n, 1); /* it counts towards its owner no more */
    /* Nothing of the others: a longer id with the same prefix, another user. */
    assert_int_equal(read_all(f->st, "s_10", 0, 0, 0).n, 5);
    assert_int_equal(entries(f->st, "s_10"), 1000 + 2);
    names nm = {0};
    assert_int_equal(tt_store_list_user(f->st, "u1", on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_10=B;");
    memset(&nm, 0, sizeof nm);
    assert_int_equal(tt_store_list_active(f->st, on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_10;");
    memset(&nm, 0, sizeof nm);
    assert_int_equal(tt_store_list_user(f->st, "u10", on_session, &nm), 0);
    assert_string_equal(nm.buf, "s_2=C;");

    /* Deleting what is gone is no error; a bad id is refused. */
    assert_int_equal(tt_store_write(f->st, fill_delete, who), 0);
    const char *bad[] = {"", "u1"};
    assert_int_equal(tt_store_write(f->st, fill_delete, bad), TT_EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_store_open_creates_private_dir),
        T(test_store_open_bad_arguments),
        T(test_store_second_open_refused),
        T(test_store_events_read_in_order),
        T(test_store_events_read_after_n),
        T(test_store_events_read_max),
        T(test_store_events_early_stop),
        T(test_store_events_last_seq),
        T(test_store_prefix_sids_do_not_mix),
        T(test_store_trim_events),
        T(test_store_trim_spans_many_pages),
        T(test_store_transcript_apart_from_events),
        T(test_store_session_put_get),
        T(test_store_session_not_found),
        T(test_store_list_user_only_theirs),
        T(test_store_list_user_callback_reads),
        T(test_store_active_set_unset_list),
        T(test_store_list_active_callback_writes),
        T(test_store_meta_put_get),
        T(test_store_delete_session_removes_all_of_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
