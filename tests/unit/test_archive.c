/* state/pg.c and state/archive.c without a database: the backoff, URL
 * checks, a connection that fails on the loop without blocking it, and the
 * archive's restart markers written in the registry's commit and read back.
 * Real LMDB in a temp directory, a real libuv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "state/archive.h"
#include "state/pg.h"
#include "state/registry.h"
#include "loop_fixture.h"

static void test_backoff_doubles_caps_and_jitters_down(void **state)
{
    (void)state;
    assert_int_equal(tt_pg_backoff_ms(1, 100, 5000, 0), 100);
    assert_int_equal(tt_pg_backoff_ms(2, 100, 5000, 0), 200);
    assert_int_equal(tt_pg_backoff_ms(3, 100, 5000, 0), 400);
    assert_int_equal(tt_pg_backoff_ms(7, 100, 5000, 0), 5000);
    assert_int_equal(tt_pg_backoff_ms(4000000000u, 100, 5000, 0), 5000);
    for (uint32_t r = 0; r < 5000; r += 7) {
        uint64_t d = tt_pg_backoff_ms(3, 100, 5000, r);
        assert_true(d >= 300 && d <= 400); /* down by a quarter at most */
        d = tt_pg_backoff_ms(50, 100, 5000, r * 2654435761u);
        assert_true(d >= 3750 && d <= 5000);
    }
    assert_true(tt_pg_backoff_ms(1, 0, 0, 12345) >= 1); /* never 0 */
}

static void test_url_check(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(tt_pg_check_url("postgresql://u@127.0.0.1:5432/db", err, sizeof err), 0);
    assert_int_equal(tt_pg_check_url("host=127.0.0.1 dbname=x", err, sizeof err), 0);
    assert_int_equal(tt_pg_check_url("postgresql://h/db?no_such_option=1", err, sizeof err),
                     TT_EINVAL);
    assert_non_null(strstr(err, "no_such_option"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(tt_pg_check_url("", err, sizeof err), TT_EINVAL);
    assert_int_equal(tt_pg_check_url("host='unterminated", err, sizeof err), TT_EINVAL);
}

typedef struct seen {
    char log[8][40];
    int n;
} seen;

static void state_hook(tt_pg_state from, tt_pg_state to, const char *why, void *ud)
{
    seen *s = ud;
    assert_true(s->n < 8);
    assert_true(to == TT_PG_DOWN ? why != NULL : why == NULL);
    snprintf(s->log[s->n++], sizeof s->log[0], "%s>%s", tt_pg_state_name(from),
             tt_pg_state_name(to));
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_refused_connection_goes_down_and_retries(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char url[128];
    snprintf(url, sizeof url, "postgresql://t@127.0.0.1:%d/x", closed_port());
    seen s = {0};
    tt_pg_options o = {.url = url, .backoff_min_ms = 20, .backoff_max_ms = 40};
    tt_pg_hooks h = {.ud = &s, .state = state_hook};
    tt_pg *pg = NULL;
    assert_int_equal(tt_pg_new(&loop, &o, &h, &pg), 0);
    const tt_pg_stats *st = tt_pg_stats_get(pg);
    while (st->connect_failures < 3)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(tt_pg_state_get(pg), TT_PG_DOWN);
    assert_int_equal(st->ever_up, 0);
    assert_int_equal(st->reconnects, st->connects - 1);
    assert_non_null(strstr(tt_pg_last_error(pg), "refused"));
    assert_string_equal(s.log[0], "down>connecting");
    assert_string_equal(s.log[1], "connecting>down");
    assert_string_equal(s.log[2], "down>connecting");
    assert_int_equal(tt_pg_query(pg, "SELECT 1", 0, NULL, NULL, NULL), TT_ECONFLICT);
    tt_pg_close(pg);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct fixture {
    char dir[64];
    uv_loop_t loop;
    tt_store *store;
    tt_registry *reg;
    tt_archive *arch;
} fixture;

static void deliver_hook(tt_cursor *c, void *ud)
{
}

static void open_all_with(fixture *f, uint64_t retain, size_t batch_events, size_t batch_bytes)
{
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {.headroom = 16,
                             .memory_events = 16,
                             .max_lag_events = 100000,
                             .transcript_max = 100,
                             .retain_events = retain};
    tt_registry_hooks hooks = {.ud = f, .deliver = deliver_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
    tt_archive_options ao = {.batch_events = batch_events, .batch_bytes = batch_bytes};
    assert_int_equal(tt_archive_new(&f->loop, f->store, &ao, &f->arch), 0);
    tt_registry_set_archive(f->reg, f->arch);
}

static void open_all(fixture *f)
{
    open_all_with(f, 0, 0, 0);
}

static void close_all(fixture *f)
{
    tt_registry_close(f->reg); /* its last commit may still tell the archive */
    tt_registry_set_archive(f->reg, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_archive_free(f->arch);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_store_close(f->store);
}

static int count_marker(const char *key, const char *val, size_t len, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static void test_markers_written_in_the_commit_and_read_back(void **state)
{
    (void)state;
    fixture f = {0};
    loop_fixture_mkdir(f.dir, sizeof f.dir, "tt_archive");
    assert_int_equal(uv_loop_init(&f.loop), 0);
    open_all(&f);
    tt_session *s = NULL;
    assert_int_equal(tt_registry_create(f.reg, "alice", "t1", "echo", NULL, NULL, &s), 0);
    for (int i = 0; i < 5; i++)
        assert_true(tt_session_emit(s, "delta", json_pack("{s:s}", "text", "x")) > 0);
    uint64_t lag = 99;
    double secs = -1;
    tt_archive_lag(f.arch, uv_now(&f.loop), &lag, &secs);
    assert_int_equal(lag, 0); /* nothing committed yet: nothing to archive */
    assert_int_equal(tt_registry_flush(f.reg), 0);
    uint64_t head = s->committed;
    assert_true(head >= 5);
    tt_archive_lag(f.arch, uv_now(&f.loop), &lag, &secs);
    assert_int_equal(lag, head);
    int markers = 0;
    assert_int_equal(tt_store_list_meta(f.store, "archive\x1f", count_marker, &markers), 0);
    assert_int_equal(markers, 1);
    char key[128], *val = NULL;
    size_t len = 0;
    snprintf(key, sizeof key, "archive\x1f%s", s->id);
    assert_int_equal(tt_store_get_meta(f.store, key, &val, &len), 0);
    assert_string_equal(val, "0"); /* nothing of it was archived when the marker was written */
    free(val);
    tt_archive_kick(f.arch); /* no database: nothing is sent, nothing breaks */
    close_all(&f);

    open_all(&f); /* a restart: the pending session comes back from its marker */
    tt_archive_lag(f.arch, uv_now(&f.loop), &lag, &secs);
    assert_int_equal(lag, head);
    assert_int_equal(tt_archive_stats_get(f.arch)->lost_events, 0);
    close_all(&f);
    loop_fixture_end(&f.loop, f.dir);
}

/* Drain the archive batch by batch (no database: tt_archive_batch_next and
 * _done stand for the statement), checking each batch against the caps and
 * the events against the store's: each once, in order, per session. */
static uint64_t drain(fixture *f, size_t cap, uint64_t *next_seq, tt_session **ss, int n)
{
    uint64_t total = 0;
    for (;;) {
        char *events = NULL, *sessions = NULL;
        uint64_t count = 0;
        assert_int_equal(tt_archive_batch_next(f->arch, &events, &sessions, &count), 0);
        if (!events) {
            assert_null(sessions);
            return total;
        }
        char *again[2];
        uint64_t c2;
        assert_int_equal(tt_archive_batch_next(f->arch, &again[0], &again[1], &c2), TT_ECONFLICT);
        json_t *ev = json_loads(events, 0, NULL), *se = json_loads(sessions, 0, NULL);
        assert_non_null(ev);
        assert_non_null(se);
        assert_true(json_array_size(ev) == count && count >= 1 && count <= cap);
        size_t i;
        json_t *x;
        json_array_foreach(ev, i, x)
        {
            const char *sid = json_string_value(json_array_get(x, 0));
            uint64_t seq = (uint64_t)json_integer_value(json_array_get(x, 1));
            json_t *body = json_array_get(x, 2);
            assert_string_equal(json_string_value(json_object_get(body, "session")), sid);
            assert_int_equal(json_integer_value(json_object_get(body, "seq")), seq);
            int k = 0;
            while (k < n && strcmp(ss[k]->id, sid) != 0)
                k++;
            assert_true(k < n);
            assert_int_equal(seq, next_seq[k]); /* in order, none skipped, none twice */
            next_seq[k]++;
        }
        json_array_foreach(se, i, x)
        {
            assert_string_equal(json_string_value(json_array_get(x, 1)), "t1");
            assert_string_equal(json_string_value(json_array_get(x, 2)), "alice");
            assert_string_equal(json_string_value(json_array_get(x, 3)), "echo");
        }
        json_decref(ev);
        json_decref(se);
        free(events);
        free(sessions);
        tt_archive_batch_done(f->arch, 0, count);
        total += count;
    }
}

static void test_batches_capped_in_order_once_and_markers_cleared(void **state)
{
    (void)state;
    fixture f = {0};
    loop_fixture_mkdir(f.dir, sizeof f.dir, "tt_archive");
    assert_int_equal(uv_loop_init(&f.loop), 0);
    open_all_with(&f, 0, 7, 1 << 20);
    tt_session *ss[3];
    uint64_t next[3] = {1, 1, 1};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(tt_registry_create(f.reg, "alice", "t1", "echo", NULL, NULL, &ss[k]), 0);
        for (int i = 0; i < 10 + k; i++)
            assert_true(tt_session_emit(ss[k], "delta", json_pack("{s:s}", "text", "x")) > 0);
    }
    assert_int_equal(tt_registry_flush(f.reg), 0);
    uint64_t want = ss[0]->committed + ss[1]->committed + ss[2]->committed, lag = 0;
    double secs;
    tt_archive_lag(f.arch, uv_now(&f.loop), &lag, &secs);
    assert_int_equal(lag, want);

    /* A failed batch is sent again, from the same seq. */
    char *events, *sessions;
    uint64_t count;
    assert_int_equal(tt_archive_batch_next(f.arch, &events, &sessions, &count), 0);
    assert_int_equal(count, 7);
    free(events);
    free(sessions);
    tt_archive_batch_done(f.arch, TT_EIO, 0);
    assert_int_equal(tt_archive_stats_get(f.arch)->batch_failures, 1);

    assert_int_equal(drain(&f, 7, next, ss, 3), want);
    for (int k = 0; k < 3; k++)
        assert_int_equal(next[k], ss[k]->committed + 1);
    tt_archive_lag(f.arch, uv_now(&f.loop), &lag, &secs);
    assert_int_equal(lag, 0);
    assert_true(secs == 0.0);
    int markers = 0;
    assert_int_equal(tt_store_list_meta(f.store, "archive\x1f", count_marker, &markers), 0);
    assert_int_equal(markers, 3); /* written later, not once per batch */
    assert_int_equal(tt_archive_flush_markers(f.arch), 0);
    markers = 0;
    assert_int_equal(tt_store_list_meta(f.store, "archive\x1f", count_marker, &markers), 0);
    assert_int_equal(markers, 0); /* caught up: the markers are gone */

    /* New events of one session: only those. */
    assert_true(tt_session_emit(ss[1], "delta", json_pack("{s:s}", "text", "y")) > 0);
    assert_int_equal(tt_registry_flush(f.reg), 0);
    assert_int_equal(drain(&f, 7, next, ss, 3), 1);
    assert_int_equal(tt_archive_stats_get(f.arch)->lost_events, 0);
    close_all(&f);
    loop_fixture_end(&f.loop, f.dir);
}

static void test_events_trimmed_before_archiving_are_counted_lost(void **state)
{
    (void)state;
    fixture f = {0};
    loop_fixture_mkdir(f.dir, sizeof f.dir, "tt_archive");
    assert_int_equal(uv_loop_init(&f.loop), 0);
    open_all_with(&f, 5, 100, 1 << 20); /* --retain-events 5 */
    tt_session *s;
    assert_int_equal(tt_registry_create(f.reg, "alice", "t1", "echo", NULL, NULL, &s), 0);
    for (int i = 0; i < 20; i++)
        assert_true(tt_session_emit(s, "delta", json_pack("{s:s}", "text", "x")) > 0);
    assert_int_equal(tt_registry_flush(f.reg), 0);
    uint64_t head = s->committed;
    uint64_t next = head - 4; /* the store kept the last 5 */
    assert_int_equal(drain(&f, 100, &next, &s, 1), 5);
    assert_int_equal(tt_archive_stats_get(f.arch)->lost_events, head - 5);
    close_all(&f);
    loop_fixture_end(&f.loop, f.dir);
}

static void test_restart_resumes_from_the_last_written_marker(void **state)
{
    (void)state;
    fixture f = {0};
    loop_fixture_mkdir(f.dir, sizeof f.dir, "tt_archive");
    assert_int_equal(uv_loop_init(&f.loop), 0);
    open_all_with(&f, 0, 7, 1 << 20);
    tt_session *s;
    assert_int_equal(tt_registry_create(f.reg, "alice", "t1", "echo", NULL, NULL, &s), 0);
    for (int i = 0; i < 20; i++)
        assert_true(tt_session_emit(s, "delta", json_pack("{s:s}", "text", "x")) > 0);
    assert_int_equal(tt_registry_flush(f.reg), 0);
    uint64_t head = s->committed, next = 1;
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    char *events, *sessions;
    uint64_t count;
    assert_int_equal(tt_archive_batch_next(f.arch, &events, &sessions, &count), 0);
    free(events);
    free(sessions);
    tt_archive_batch_done(f.arch, 0, count); /* seqs 1-7 archived */
    close_all(&f);                           /* the marker is written on the way out */

    open_all_with(&f, 0, 7, 1 << 20);
    uint64_t lag;
    double secs;
    tt_archive_lag(f.arch, uv_now(&f.loop), &lag, &secs);
    assert_int_equal(lag, head - 7);
    next = 8;
    tt_session *again = NULL;
    assert_int_equal(tt_registry_get(f.reg, sid, &again), 0);
    assert_int_equal(drain(&f, 7, &next, &again, 1), head - 7);
    assert_int_equal(next, head + 1);
    close_all(&f);
    loop_fixture_end(&f.loop, f.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_caps_and_jitters_down),
        cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_refused_connection_goes_down_and_retries),
        cmocka_unit_test(test_markers_written_in_the_commit_and_read_back),
        cmocka_unit_test(test_batches_capped_in_order_once_and_markers_cleared),
        cmocka_unit_test(test_events_trimmed_before_archiving_are_counted_lost),
        cmocka_unit_test(test_restart_resumes_from_the_last_written_marker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
