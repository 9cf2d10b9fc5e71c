/* Unit tests for state/usage_archive.c without a database: the batches it
 * would send (rows after the last key archived, at most batch_rows, ids of
 * the store's id and the row's key), a failed batch sent again unchanged,
 * a committed one never again (also after a reopen: the marker), and the
 * lag (queued and written rows not archived). Real LMDB, a real loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loop_fixture.h"
#include "protocol/errors.h"
#include "state/ledger.h"
#include "state/usage_archive.h"

#define T0 (20513LL * 86400000LL)

typedef struct fixture {
    char dir[64];
    uv_loop_t loop;
    tt_store *store;
    tt_ledger *ledger;
    tt_usage_archive *arch;
} fixture;

static void open_all(fixture *f, size_t batch_rows)
{
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    assert_int_equal(tt_ledger_new(f->store, &f->ledger), 0);
    tt_usage_archive_options o = {.batch_rows = batch_rows};
    assert_int_equal(tt_usage_archive_new(&f->loop, f->store, f->ledger, &o, &f->arch), 0);
}

static void close_all(fixture *f)
{
    tt_usage_archive_free(f->arch);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_ledger_free(f->ledger);
    tt_store_close(f->store);
}

static void add_rows(fixture *f, int n, int64_t ts)
{
    for (int i = 0; i < n; i++) {
        tt_ledger_row r = {.ts_ms = ts + i, .prompt_tokens = 10 + i, .cost_usd = 0.5};
        snprintf(r.tenant, sizeof r.tenant, "acme");
        snprintf(r.feature, sizeof r.feature, "f%d", i);
        snprintf(r.outcome, sizeof r.outcome, "ok");
        assert_true(tt_ledger_add(f->ledger, &r) >= 0);
    }
}

/* The batch's rows: [id, feature] each. */
static json_t *rows_of(const char *text)
{
    json_t *arr = json_loads(text, 0, NULL);
    assert_true(json_is_array(arr));
    json_t *out = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        json_array_append_new(out,
                              json_pack("[O,O]", json_object_get(x, "id"),
                                        json_object_get(json_object_get(x, "row"), "feature")));
    }
    json_decref(arr);
    return out;
}

static void test_batches_failure_and_marker(void **state)
{
    (void)state;
    fixture f = {0};
    loop_fixture_mkdir(f.dir, sizeof f.dir, "tt_usage_archive");
    assert_int_equal(uv_loop_init(&f.loop), 0);
    open_all(&f, 2);
    char *text = NULL;
    uint64_t n = 0, lag = 0;
    double secs = 0;
    assert_int_equal(tt_usage_archive_batch_next(f.arch, &text, &n), 0);
    assert_null(text); /* nothing yet */
    add_rows(&f, 3, T0);
    tt_usage_archive_lag(f.arch, T0 + 10000, &lag, &secs);
    assert_int_equal(lag, 3); /* queued, not written yet: counted */
    assert_int_equal(tt_ledger_flush(f.ledger), 0);
    tt_usage_archive_lag(f.arch, T0 + 10000, &lag, &secs);
    assert_int_equal(lag, 3);
    assert_true(secs >= 9.9 && secs <= 10.1);

    assert_int_equal(tt_usage_archive_batch_next(f.arch, &text, &n), 0);
    assert_int_equal(n, 2);
    json_t *first = rows_of(text);
    free(text);
    const char *id = json_string_value(json_array_get(json_array_get(first, 0), 0));
    assert_int_equal(strlen(id), 16 + 1 + 40); /* store id - key hex */
    assert_int_equal(tt_usage_archive_batch_next(f.arch, &text, &n), TT_ECONFLICT);
    tt_usage_archive_batch_done(f.arch, TT_EIO, 0); /* failed: the same rows again */
    assert_int_equal(tt_usage_archive_batch_next(f.arch, &text, &n), 0);
    json_t *again = rows_of(text);
    free(text);
    assert_true(json_equal(first, again));
    json_decref(again);
    tt_usage_archive_batch_done(f.arch, 0, 2);
    assert_int_equal(tt_usage_archive_stats_get(f.arch)->batch_failures, 1);
    tt_usage_archive_lag(f.arch, T0 + 10000, &lag, &secs);
    assert_int_equal(lag, 1);
    close_all(&f);

    /* Reopened: only the third row is left, with the same store id. */
    open_all(&f, 2);
    tt_usage_archive_lag(f.arch, T0 + 10000, &lag, &secs);
    assert_int_equal(lag, 1);
    assert_int_equal(tt_usage_archive_batch_next(f.arch, &text, &n), 0);
    assert_int_equal(n, 1);
    json_t *third = rows_of(text);
    free(text);
    assert_string_equal(json_string_value(json_array_get(json_array_get(third, 0), 1)), "f2");
    const char *id3 = json_string_value(json_array_get(json_array_get(third, 0), 0));
    assert_memory_equal(id3, id, 17); /* the store's id is kept */
    tt_usage_archive_batch_done(f.arch, 0, 1);
    tt_usage_archive_lag(f.arch, T0 + 10000, &lag, &secs);
    assert_int_equal(lag, 0);
    assert_true(secs == 0);
    assert_int_equal(tt_usage_archive_batch_next(f.arch, &text, &n), 0);
    assert_null(text);
    json_decref(first);
    json_decref(third);
    close_all(&f);
    loop_fixture_end(&f.loop, f.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_failure_and_marker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
