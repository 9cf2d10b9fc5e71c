/* state/: the event log, cursors, group commit, retention, eviction and
 * reload, and what a crash leaves behind. Real LMDB in a temp directory, a
 * real libuv loop. */
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

#include "protocol/errors.h"
#include "state/registry.h"
#include "loop_fixture.h"

typedef struct fixture {
    char dir[64];
    uv_loop_t loop;
    tt_store *store;
    tt_registry *reg;
    int delivered;
    int binds, resumes, unbinds;
} fixture;

static int bind_hook(tt_session *s, int resumed, void *ud)
{
    fixture *f = ud;
    f->binds++;
    f->resumes += resumed;
    return 0;
}

static void unbind_hook(tt_session *s, void *ud)
{
    ((fixture *)ud)->unbinds++;
}

static void deliver_hook(tt_cursor *c, void *ud)
{
    ((fixture *)ud)->delivered++;
}

static tt_registry_options default_options(void)
{
    tt_registry_options o = {
        .headroom = 16,
        .memory_events = 16,
        .retain_events = 0,
        .max_lag_events = 100000,
        .idle_evict_ms = 0,
        .transcript_max = 100,
    };
    return o;
}

static void open_registry(fixture *f, const tt_registry_options *o)
{
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_hooks hooks = {
        .ud = f, .bind = bind_hook, .unbind = unbind_hook, .deliver = deliver_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, o, &hooks, &f->reg), 0);
}

static void close_registry(fixture *f)
{
    loop_fixture_close(&f->loop, &f->reg, &f->store);
}

static fixture *setup_with(const tt_registry_options *o)
{
    fixture *f = calloc(1, sizeof *f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_registry");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_registry(f, o);
    return f;
}

static int setup(void **state)
{
    tt_registry_options o = default_options();
    *state = setup_with(&o);
    return 0;
}

LOOP_FIXTURE_TEARDOWN(fixture)

/* Run the loop for about ms milliseconds. */
static void spin(fixture *f, uint64_t ms)
{
    loop_fixture_spin(&f->loop, ms);
}

static tt_session *new_session(fixture *f, const char *user)
{
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, user, "t", "echo", NULL, NULL, &s), 0);
    return s;
}

static void emit_n(tt_session *s, int n)
{
    for (int i = 0; i < n; i++)
        assert_true(tt_session_emit(s, "delta", json_pack("{s:i}", "i", i)) > 0);
}

/* Reads every frame the cursor has now; returns how many, checking that the
 * events (snapshots aside) come in seq order without a gap. */
static int drain(tt_cursor *c, uint64_t *first_seq, int *snapshots)
{
    int n = 0, err = 0;
    uint64_t last = 0;
    const tt_frame *fr;
    while ((fr = tt_cursor_peek(c, &err))) {
        json_t *ev = json_loads(tt_frame_text(fr), 0, NULL);
        assert_non_null(ev);
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
        if (strcmp(json_string_value(json_object_get(ev, "type")), "snapshot") == 0) {
            (*snapshots)++;
        } else {
            if (last == 0)
                *first_seq = seq;
            else
                assert_int_equal(seq, last + 1);
            last = seq;
        }
        n++;
        json_decref(ev);
        tt_cursor_advance(c);
    }
    assert_int_equal(err, 0);
    return n;
}

static void test_log_events_reach_cursor_only_after_commit(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    int rec;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 0, &rec, &c), 0);
    assert_true(rec);
    emit_n(s, 5);
    int err;
    assert_null(tt_cursor_peek(c, &err)); /* nothing committed yet */
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_true(f->delivered > 0);
    uint64_t first = 0;
    int snaps = 0;
    assert_int_equal(drain(c, &first, &snaps), 5);
    assert_int_equal(first, 1);
    assert_int_equal(s->committed, 5);
    tt_cursor_detach(c);
}

/* The back-pressure backlog is the slowest reader's, but a reader whose
 * owner is closing holds nothing back (a stalled close once paused a model
 * call for good: it could never catch up). */
static void test_backlog_skips_cursors_of_closing_owners(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    int rec;
    tt_cursor *slow, *fast;
    assert_int_equal(tt_cursor_attach(s, NULL, 0, &rec, &slow), 0);
    assert_int_equal(tt_cursor_attach(s, NULL, 0, &rec, &fast), 0);
    emit_n(s, 7);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    uint64_t first = 0;
    int snaps = 0;
    drain(fast, &first, &snaps);
    assert_int_equal(tt_session_backlog(s), s->head); /* all of it, for the slow one */
    slow->owner_closing = 1;
    assert_int_equal(tt_session_backlog(s), 0);
    tt_cursor_detach(slow);
    tt_cursor_detach(fast);
}

static void test_log_replay_from_store_beyond_memory(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    for (int i = 0; i < 10; i++) { /* 10 commits of 100: the ring keeps only 16 */
        emit_n(s, 100);
        assert_int_equal(tt_registry_flush(f->reg), 0);
    }
    assert_true(s->ring_first > 900);
    int rec;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 41, &rec, &c), 0);
    assert_true(rec);
    uint64_t first = 0;
    int snaps = 0;
    assert_int_equal(drain(c, &first, &snaps), 1000 - 41);
    assert_int_equal(first, 42);
    assert_int_equal(snaps, 0);
    tt_cursor_detach(c);
}

static void test_log_ring_grows_for_uncommitted_events(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    emit_n(s, 500); /* far more than memory_events, all in one pass */
    assert_int_equal(tt_registry_flush(f->reg), 0);
    uint64_t last = 0;
    assert_int_equal(tt_store_last_seq(f->store, s->id, &last), 0);
    assert_int_equal(last, 500);
}

static void test_log_retention_gives_snapshot(void **state)
{
    fixture *f = *state;
    close_registry(f);
    tt_registry_options o = default_options();
    o.retain_events = 10;
    open_registry(f, &o);
    tt_session *s = new_session(f, "u");
    emit_n(s, 50);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(s->first_seq, 41);

    int rec;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 5, &rec, &c), 0);
    assert_false(rec);
    uint64_t first = 0;
    int snaps = 0;
    assert_int_equal(drain(c, &first, &snaps), 1); /* the snapshot; live events follow */
    assert_int_equal(snaps, 1);
    emit_n(s, 1);
    tt_registry_flush(f->reg);
    assert_int_equal(drain(c, &first, &snaps), 1);
    assert_int_equal(first, 51);
    tt_cursor_detach(c);

    assert_int_equal(tt_cursor_attach(s, NULL, 45, &rec, &c), 0);
    assert_true(rec);
    tt_cursor_detach(c);
}

static void test_log_attach_ahead_of_head_gives_snapshot(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    emit_n(s, 3);
    tt_registry_flush(f->reg);
    int rec;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 99, &rec, &c), 0);
    assert_false(rec);
    tt_cursor_detach(c);
}

static void test_log_far_lag_gives_snapshot(void **state)
{
    fixture *f = *state;
    close_registry(f);
    tt_registry_options o = default_options();
    o.max_lag_events = 20;
    open_registry(f, &o);
    tt_session *s = new_session(f, "u");
    emit_n(s, 100);
    tt_registry_flush(f->reg);
    int rec;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 10, &rec, &c), 0);
    assert_false(rec);
    tt_cursor_detach(c);
    assert_int_equal(tt_cursor_attach(s, NULL, 85, &rec, &c), 0);
    assert_true(rec);
    tt_cursor_detach(c);
}

static void test_registry_evicts_idle_and_reloads(void **state)
{
    fixture *f = *state;
    close_registry(f);
    tt_registry_options o = default_options();
    o.idle_evict_ms = 5;
    open_registry(f, &o);
    tt_session *s = new_session(f, "u");
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    tt_session_user_message(s, "hello", NULL);
    tt_session_set_state(s, TT_STATE_WAITING_INPUT, "ask");
    tt_registry_flush(f->reg);
    uint64_t head = s->head;

    for (int i = 0; i < 50 && tt_registry_stats_get(f->reg)->sessions_evicted == 0; i++)
        spin(f, 5);
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_evicted, 1);
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_memory, 0);
    assert_int_equal(f->unbinds, 1);

    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_int_equal(f->resumes, 1);
    assert_int_equal(s->head, head);
    assert_int_equal(s->state, TT_STATE_WAITING_INPUT);
    assert_string_equal(s->step, "ask");
    assert_string_equal(s->title, "hello");
    assert_int_equal(json_array_size(tt_session_transcript(s)), 1);
    assert_int_equal(tt_session_emit(s, "delta", NULL), head + 1);
}

/* A session committed at rest releases its transcript (counted); a running
 * one keeps it; the released one appends its next turn without reading the
 * front back, and reads it back when the whole is asked for. */
static void test_registry_releases_transcripts_at_rest(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    tt_session_user_message(s, "hello", NULL);
    tt_session *busy = new_session(f, "u");
    tt_session_user_message(busy, "working", NULL);
    tt_session_set_state(busy, TT_STATE_RUNNING, "work");
    assert_non_null(s->transcript_mem);
    tt_registry_flush(f->reg);
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_rest_released, 1);
    assert_null(s->transcript_mem);
    assert_non_null(busy->transcript_mem);
    tt_session_user_message(s, "again", NULL);
    assert_int_equal(json_array_size(s->transcript_mem), 1); /* the new turn alone */
    assert_int_equal(tt_session_transcript_size(s), 2);
    json_t *t = tt_session_transcript(s);
    assert_int_equal(json_array_size(t), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(t, 0), "text")), "hello");
    assert_string_equal(json_string_value(json_object_get(json_array_get(t, 1), "text")), "again");
    tt_registry_flush(f->reg);
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_rest_released, 2);
    assert_null(s->transcript_mem);
    /* A snapshot reads it back whole, then lets it go again. */
    tt_cursor *c;
    int rec = 1, err = 0;
    assert_int_equal(tt_cursor_attach(s, NULL, s->head + 5, &rec, &c), 0);
    assert_int_equal(rec, 0);
    const tt_frame *snap = tt_cursor_peek(c, &err);
    assert_non_null(snap);
    assert_non_null(strstr(tt_frame_text(snap), "\"text\":\"hello\""));
    assert_non_null(strstr(tt_frame_text(snap), "\"text\":\"again\""));
    assert_null(s->transcript_mem);
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_rest_released, 3);
    tt_cursor_detach(c);
}

static void test_registry_running_sessions_are_not_evicted(void **state)
{
    fixture *f = *state;
    close_registry(f);
    tt_registry_options o = default_options();
    o.idle_evict_ms = 1;
    open_registry(f, &o);
    tt_session *s = new_session(f, "u");
    tt_session_set_state(s, TT_STATE_RUNNING, "work");
    tt_registry_flush(f->reg);
    tt_session *idle = new_session(f, "u");
    tt_registry_flush(f->reg);
    for (int i = 0; i < 50 && tt_registry_stats_get(f->reg)->sessions_evicted == 0; i++)
        spin(f, 3);
    (void)idle; /* evicted: proves eviction ran while the running one stayed */
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_evicted, 1);
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_memory, 1);
    assert_int_equal(s->state, TT_STATE_RUNNING);
}

static void test_registry_unknown_session_is_not_found(void **state)
{
    fixture *f = *state;
    tt_session *s;
    assert_int_equal(tt_registry_get(f->reg, "s_nope", &s), TT_ENOTFOUND);
}

/* A session under an id the caller chose (an AI SDK chat id): kept under it,
 * one only, and an empty or over-long id is refused, changing nothing. */
static void test_registry_create_with_id(void **state)
{
    fixture *f = *state;
    tt_session *s, *again;
    char long_id[TT_SESSION_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(tt_registry_create_id(f->reg, "", "ann", "t", "echo", NULL, NULL, &s),
                     TT_EINVAL);
    assert_int_equal(tt_registry_create_id(f->reg, long_id, "ann", "t", "echo", NULL, NULL, &s),
                     TT_EINVAL);
    assert_int_equal(tt_registry_create_id(f->reg, "chat-1", "ann", "t", "echo", NULL, NULL, &s),
                     0);
    assert_string_equal(s->id, "chat-1");
    assert_int_equal(
        tt_registry_create_id(f->reg, "chat-1", "bob", "t", "echo", NULL, NULL, &again),
        TT_ECONFLICT);
    assert_true(tt_session_emit(s, "delta", json_pack("{s:s}", "text", "x")) > 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(tt_registry_get(f->reg, "chat-1", &again), 0);
    assert_ptr_equal(again, s);
    assert_string_equal(again->user, "ann");
    assert_int_equal(tt_registry_get(f->reg, long_id, &again), TT_EINVAL);
}

static void test_registry_lists_only_owner(void **state)
{
    fixture *f = *state;
    new_session(f, "alice");
    new_session(f, "alice");
    new_session(f, "bob");
    char owner[TT_OWNER_KEY_MAX];
    tt_owner_key("t", "alice", owner, sizeof owner);
    json_t *list;
    char next[TT_SESSION_ID_MAX + 1];
    assert_int_equal(tt_registry_list(f->reg, owner, NULL, 100, 1 << 20, &list, next), 0);
    assert_string_equal(next, "");
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
}

/* A child process appends, commits, appends more, then dies without a
 * commit: the parent must find exactly the committed events, and the seq
 * must continue from there. */
static void test_log_crash_keeps_committed_only(void **state)
{
    fixture *f = *state;
    close_registry(f);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        tt_store *st;
        tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
        if (tt_store_open(&so, &st) != 0)
            _exit(2);
        tt_registry_options o = default_options();
        tt_registry_hooks hooks = {
            .ud = f, .bind = bind_hook, .unbind = unbind_hook, .deliver = deliver_hook};
        tt_registry *reg;
        tt_registry_new(&loop, st, &o, &hooks, &reg);
        tt_session *s;
        tt_registry_create(reg, "u", "t", "echo", NULL, NULL, &s);
        tt_session_set_state(s, TT_STATE_RUNNING, "work");
        emit_n(s, 7);
        tt_registry_flush(reg);
        emit_n(s, 5); /* never committed */
        if (write(fds[1], s->id, strlen(s->id) + 1) < 0)
            _exit(3);
        _exit(0); /* a crash: no flush, no close */
    }
    close(fds[1]);
    char sid[TT_SESSION_ID_MAX + 1] = "";
    assert_true(read(fds[0], sid, sizeof sid) > 0);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    tt_registry_options o = default_options();
    open_registry(f, &o);
    size_t resumed = 0;
    assert_int_equal(tt_registry_resume_active(f->reg, &resumed), 0);
    assert_int_equal(resumed, 1); /* it was running: resumed at start-up */
    tt_session *s;
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_int_equal(s->head, 8); /* the state event + 7 deltas */
    assert_int_equal(tt_session_emit(s, "delta", NULL), 9);
}

static uint64_t say_and_answer(tt_session *s, const char *said, const char *answer, char *user_mid)
{
    tt_session_user_message(s, said, NULL);
    json_t *last =
        json_array_get(tt_session_transcript(s), json_array_size(tt_session_transcript(s)) - 1);
    snprintf(user_mid, TT_MESSAGE_ID_MAX, "%s",
             json_string_value(json_object_get(last, "message_id")));
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_delta(s, mid, answer, strlen(answer)), 0);
    assert_int_equal(tt_session_message_end(s, mid, NULL), 0);
    return s->head;
}

static int count_entry(uint64_t index, const char *json, size_t len, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static const char *entry_text(tt_session *s, size_t i)
{
    return json_string_value(json_object_get(json_array_get(tt_session_transcript(s), i), "text"));
}

/* A rewind drops the transcript's tail (in memory, in the record, and the
 * store's entries past the end) and keeps every event. */
static void test_registry_rewind_truncates_transcript_keeps_log(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f, "u");
    char sid[TT_SESSION_ID_MAX + 1], first[TT_MESSAGE_ID_MAX], second[TT_MESSAGE_ID_MAX];
    snprintf(sid, sizeof sid, "%s", s->id);
    say_and_answer(s, "one", "r1", first);
    say_and_answer(s, "two", "r2", second);
    tt_registry_flush(f->reg);
    uint64_t head = s->head;

    assert_int_equal(tt_session_rewind(s, "m_nope", "edit"), TT_ENOTFOUND);
    assert_int_equal(tt_session_rewind(s, second, "undo"), TT_EINVAL);
    assert_int_equal(s->head, head); /* refused: nothing appended */
    assert_int_equal(tt_session_rewind(s, second, "edit"), 0);
    assert_int_equal(s->head, head + 1);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 2);
    assert_int_equal(tt_session_rewind(s, second, "edit"), TT_ENOTFOUND); /* superseded */
    tt_session_user_message(s, "three", NULL);
    tt_registry_flush(f->reg);

    close_registry(f);
    tt_registry_options o = default_options();
    open_registry(f, &o);
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 3);
    assert_string_equal(entry_text(s, 0), "one");
    assert_string_equal(entry_text(s, 1), "r1");
    assert_string_equal(entry_text(s, 2), "three");
    assert_int_equal(s->head, head + 2); /* rewind + user: nothing of the log was removed */
    int stored = 0;
    assert_int_equal(tt_store_read_transcript(f->store, sid, 0, 0, count_entry, &stored), 0);
    assert_int_equal(stored, 3); /* "r2" was deleted, "two" written over */

    /* Rewinding to the first message empties it; a message in flight refuses. */
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_rewind(s, first, "regenerate"), TT_ECONFLICT);
    assert_int_equal(tt_session_message_discard(s, mid, "cancelled"), 0);
    assert_int_equal(tt_session_rewind(s, first, "regenerate"), 0);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 0);
    tt_registry_flush(f->reg);
    stored = 0;
    assert_int_equal(tt_store_read_transcript(f->store, sid, 0, 0, count_entry, &stored), 0);
    assert_int_equal(stored, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_events_reach_cursor_only_after_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_replay_from_store_beyond_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_skips_cursors_of_closing_owners, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_ring_grows_for_uncommitted_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_retention_gives_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_attach_ahead_of_head_gives_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_far_lag_gives_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_evicts_idle_and_reloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_releases_transcripts_at_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_running_sessions_are_not_evicted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_unknown_session_is_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_lists_only_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_create_with_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_crash_keeps_committed_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_rewind_truncates_transcript_keeps_log, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
