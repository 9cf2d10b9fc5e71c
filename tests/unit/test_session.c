/* state/session.c: the event log's seqs, the ring's budget, the message being
 * streamed as a snapshot sees it, the transcript and its cap, the title cut
 * at a character boundary, state events, say ids, and the stored record.
 * A real registry on a real libuv loop over LMDB in a temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
} fixture;

static int bind_hook(tt_session *s, int resumed, void *ud)
{
    return 0;
}

static void unbind_hook(tt_session *s, void *ud)
{
}

static void deliver_hook(tt_cursor *c, void *ud)
{
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_session");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {
        .headroom = 16,
        .memory_events = 16,
        .max_lag_events = 100000,
        .transcript_max = 3,
    };
    tt_registry_hooks hooks = {
        .ud = f, .bind = bind_hook, .unbind = unbind_hook, .deliver = deliver_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tt_registry_close(f->reg);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_store_close(f->store);
    loop_fixture_end(&f->loop, f->dir);
    free(f);
    return 0;
}

static tt_session *new_session(fixture *f)
{
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, "ann", "t", "echo", NULL, NULL, &s), 0);
    return s;
}

/* The events a fresh cursor replays from the start, as decoded objects. */
static json_t *replay_all(tt_session *s)
{
    int recovered = 0;
    json_t *events = loop_fixture_replay(s, &recovered);
    assert_int_equal(recovered, 1);
    return events;
}

static void test_session_emit_assigns_contiguous_seqs(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    uint64_t base = s->head;
    for (uint64_t i = 1; i <= 40; i++)
        assert_int_equal(tt_session_emit(s, "delta", json_pack("{s:I}", "i", (json_int_t)i)),
                         base + i);
    assert_int_equal(s->head, base + 40);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(s->committed, s->head);
    json_t *events = replay_all(s);
    assert_int_equal(json_array_size(events), base + 40);
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), i + 1);
        assert_string_equal(json_string_value(json_object_get(ev, "session")), s->id);
    }
    json_decref(events);
}

static void test_session_ring_keeps_only_memory_events_once_committed(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    /* A reader that has not had the events yet keeps the ring (see below). */
    int recovered = 0;
    tt_cursor *reader;
    assert_int_equal(tt_cursor_attach(s, NULL, s->head, &recovered, &reader), 0);
    for (int i = 0; i < 40; i++)
        assert_true(tt_session_emit(s, "delta", NULL) > 0);
    /* Nothing is committed yet: the ring holds every event. */
    assert_true(s->head + 1 - s->ring_first >= 40);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(s->head + 1 - s->ring_first, 16);
    /* The older events come back from the store, in order. */
    json_t *events = replay_all(s);
    assert_int_equal(json_array_size(events), s->head);
    json_decref(events);
    tt_cursor_detach(reader);
}

/* The opener of a new session attaches without a commit of its own (the
 * session joins the pass's group commit); an attach to a session committed
 * before still commits first, so the head it reports is durable. */
static void test_session_opener_attach_waits_for_the_group_commit(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    assert_int_equal(tt_session_emit(s, "state", NULL), 1); /* as an agent's start */
    assert_int_equal(s->committed, 0);
    int recovered = 0, err = 0;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 0, &recovered, &c), 0);
    assert_int_equal(recovered, 1);
    assert_int_equal(s->committed, 0);    /* not committed by the attach */
    assert_null(tt_cursor_peek(c, &err)); /* nothing handed out before the commit */
    assert_int_equal(err, 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(s->committed, s->head);
    const tt_frame *fr = tt_cursor_peek(c, &err);
    assert_non_null(fr);
    json_t *ev = json_loads(tt_frame_text(fr), 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 1);
    json_decref(ev);
    tt_cursor_detach(c);
    /* Committed before: an attach commits what waits first. */
    assert_true(tt_session_emit(s, "delta", NULL) > 0);
    assert_true(s->committed < s->head);
    assert_int_equal(tt_cursor_attach(s, NULL, 0, &recovered, &c), 0);
    assert_int_equal(s->committed, s->head);
    tt_cursor_detach(c);
}

/* A session at rest whose readers have every event keeps no ring; a reader
 * attaching later gets the same events from the store, and the next event
 * takes a ring again. */
static void test_session_ring_released_at_rest_once_read(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    int recovered = 0;
    tt_cursor *c;
    assert_int_equal(tt_cursor_attach(s, NULL, 0, &recovered, &c), 0);
    assert_true(tt_session_user_message(s, "hello there", "c1") > 0);
    assert_true(tt_session_emit(s, "delta", json_pack("{s:s}", "text", "hi")) > 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_non_null(s->ring);       /* c has not had the events */
    json_t *before = replay_all(s); /* the last two from the ring */
    assert_int_equal(json_array_size(before), s->head);
    assert_non_null(s->ring);
    int err = 0;
    while (tt_cursor_peek(c, &err))
        tt_cursor_advance(c);
    assert_int_equal(err, 0);
    assert_null(s->ring); /* every reader caught up, the session at rest */
    assert_int_equal(s->ring_cap, 0);
    assert_int_equal(s->ring_first, s->head + 1);
    json_t *after = replay_all(s); /* from the store */
    assert_true(json_equal(before, after));
    json_decref(after);
    /* The next event takes a ring; the stream goes on with the next seq. */
    uint64_t head = s->head;
    assert_int_equal(tt_session_emit(s, "delta", NULL), head + 1);
    assert_non_null(s->ring);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_non_null(tt_cursor_peek(c, &err)); /* c is behind again: the ring stays */
    assert_non_null(s->ring);
    tt_cursor_advance(c);
    assert_null(s->ring);
    after = replay_all(s);
    assert_int_equal(json_array_size(after), head + 1);
    json_array_remove(after, head);
    assert_true(json_equal(before, after));
    json_decref(after);
    json_decref(before);
    tt_cursor_detach(c);
}

/* Close the registry and the store and open them again, as a restart does. */
static void restart(fixture *f)
{
    tt_registry_close(f->reg);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tt_store_close(f->store);
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {
        .headroom = 16, .memory_events = 16, .max_lag_events = 100000, .transcript_max = 3};
    tt_registry_hooks hooks = {
        .ud = f, .bind = bind_hook, .unbind = unbind_hook, .deliver = deliver_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
}

static const char *event_str(json_t *events, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(events, i), key));
}

static void
test_session_message_start_delta_end_are_contiguous_events_and_a_transcript_entry(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    uint64_t before = s->head;
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_string_equal(tt_session_message_open(s), mid);
    assert_int_equal(tt_session_message_delta(s, mid, "Hel", 3), 0);
    assert_int_equal(tt_session_message_delta(s, mid, "lo!", 2), 0); /* len counts, not NUL */
    assert_int_equal(tt_session_message_end(
                         s, mid, json_pack("{s:i, s:s}", "completion_tokens", 2, "model", "m")),
                     0);
    assert_null(tt_session_message_open(s));
    assert_int_equal(s->head, before + 4);
    assert_int_equal(tt_registry_flush(f->reg), 0);

    json_t *events = replay_all(s);
    assert_int_equal(json_array_size(events), before + 4);
    static const char *types[] = {"message.start", "delta", "delta", "message.end"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(event_str(events, before + i, "type"), types[i]);
        assert_string_equal(event_str(events, before + i, "message_id"), mid);
    }
    assert_string_equal(event_str(events, before, "role"), "assistant");
    assert_string_equal(event_str(events, before + 2, "text"), "lo");
    json_t *end = json_array_get(events, before + 3);
    assert_string_equal(event_str(events, before + 3, "text"), "Hello");
    assert_string_equal(json_string_value(json_object_get(json_object_get(end, "usage"), "model")),
                        "m");
    json_decref(events);

    json_t *entry =
        json_array_get(tt_session_transcript(s), json_array_size(tt_session_transcript(s)) - 1);
    assert_string_equal(json_string_value(json_object_get(entry, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(entry, "message_id")), mid);
    assert_string_equal(json_string_value(json_object_get(entry, "text")), "Hello");
}

static void test_session_message_snapshot_mid_stream_carries_the_text_so_far(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_delta(s, mid, "Hel", 3), 0);
    for (int i = 0; i < 100; i++) /* grows the buffer several times */
        assert_int_equal(tt_session_message_delta(s, mid, "l", 1), 0);
    assert_int_equal(tt_session_message_delta(s, mid, "o \xc3\xa9", 4), 0);
    json_t *snap = tt_session_snapshot(s);
    json_t *streaming = json_object_get(snap, "streaming");
    assert_string_equal(json_string_value(json_object_get(streaming, "message_id")), mid);
    assert_string_equal(json_string_value(json_object_get(streaming, "role")), "assistant");
    const char *text = json_string_value(json_object_get(streaming, "text"));
    assert_int_equal(strlen(text), 3 + 100 + 4);
    assert_memory_equal(text, "Hel", 3);
    assert_string_equal(text + 103, "o \xc3\xa9");
    json_decref(snap);

    assert_int_equal(tt_session_message_end(s, mid, json_object()), 0);
    snap = tt_session_snapshot(s);
    assert_true(json_is_null(json_object_get(snap, "streaming")));
    json_t *last = json_array_get(json_object_get(snap, "transcript"), 0);
    assert_int_equal(strlen(json_string_value(json_object_get(last, "text"))), 107);
    json_decref(snap);
}

static void test_session_message_discard_leaves_no_stream_and_no_entry(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_delta(s, mid, "half", 4), 0);
    assert_int_equal(tt_session_message_discard(s, mid, "cancelled"), 0);
    json_t *snap = tt_session_snapshot(s);
    assert_true(json_is_null(json_object_get(snap, "streaming")));
    assert_int_equal(json_array_size(json_object_get(snap, "transcript")), 0);
    json_decref(snap);
    /* A new message may start, with its own text. */
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_end(s, mid, NULL), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(tt_session_transcript(s), 0), "text")),
        "");
}

static void test_session_message_discard_after_a_restart(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1], mid[TT_MESSAGE_ID_MAX];
    snprintf(sid, sizeof sid, "%s", s->id);
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_delta(s, mid, "cut ", 4), 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    restart(f);

    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_string_equal(tt_session_message_open(s), mid); /* its id survived, not its text */
    assert_int_equal(tt_session_message_discard(s, "m_other", "restart"), TT_ECONFLICT);
    assert_int_equal(tt_session_message_discard(s, mid, "restart"), 0);
    assert_null(tt_session_message_open(s));
    assert_int_equal(tt_session_message_discard(s, mid, "restart"), TT_ECONFLICT);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    json_t *events = replay_all(s);
    size_t last = json_array_size(events) - 1;
    assert_string_equal(event_str(events, last, "type"), "message.discard");
    assert_string_equal(event_str(events, last, "message_id"), mid);
    assert_string_equal(event_str(events, last, "reason"), "restart");
    json_decref(events);

    restart(f); /* the discard was stored too: nothing is open any more */
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_null(tt_session_message_open(s));
}

static int put_record(tt_store_txn *txn, void *arg)
{
    tt_session *s = arg;
    size_t len = 0;
    char *rec = tt_session_record(s, &len);
    json_t *r = json_loadb(rec, len, 0, NULL);
    free(rec);
    json_object_del(r, "streaming"); /* as a build before the open message was stored */
    char *old = json_dumps(r, JSON_COMPACT);
    char owner[TT_OWNER_KEY_MAX];
    tt_owner_key(s->tenant, s->user, owner, sizeof owner);
    int rc = tt_store_put_session(txn, s->id, owner, old, strlen(old));
    free(old);
    json_decref(r);
    return rc;
}

static void test_session_message_record_of_an_earlier_build_takes_one_restart_discard(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1], mid[TT_MESSAGE_ID_MAX];
    snprintf(sid, sizeof sid, "%s", s->id);
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(tt_store_write(f->store, put_record, s), 0);
    restart(f);

    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_null(tt_session_message_open(s));
    assert_int_equal(tt_session_message_discard(s, mid, "error"), TT_ECONFLICT);
    assert_int_equal(tt_session_message_discard(s, mid, "restart"), 0);
    assert_int_equal(tt_session_message_discard(s, mid, "restart"), TT_ECONFLICT);
}

static void test_session_message_misuse_is_refused_and_changes_nothing(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char mid[TT_MESSAGE_ID_MAX], other[TT_MESSAGE_ID_MAX] = "";
    uint64_t head = s->head;
    assert_int_equal(tt_session_message_delta(s, "m_none", "x", 1), TT_ECONFLICT);
    assert_int_equal(tt_session_message_end(s, "m_none", json_object()), TT_ECONFLICT);
    assert_int_equal(tt_session_message_discard(s, "m_none", "cancelled"), TT_ECONFLICT);
    assert_int_equal(tt_session_message_start(s, "user", mid, sizeof mid), TT_EINVAL);
    assert_int_equal(s->head, head);
    assert_null(tt_session_message_open(s));

    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_delta(s, mid, "kept", 4), 0);
    head = s->head;
    assert_int_equal(tt_session_message_start(s, "assistant", other, sizeof other), TT_ECONFLICT);
    assert_string_equal(other, "");
    assert_int_equal(tt_session_message_delta(s, "m_other", "x", 1), TT_ECONFLICT);
    assert_int_equal(tt_session_message_delta(s, mid, "\xff", 1), TT_EINVAL);
    assert_int_equal(tt_session_message_delta(s, NULL, "x", 1), TT_ECONFLICT);
    assert_int_equal(tt_session_message_end(s, "m_other", json_object()), TT_ECONFLICT);
    assert_int_equal(tt_session_message_discard(s, mid, "bored"), TT_EINVAL);
    assert_int_equal(tt_session_message_discard(s, mid, NULL), TT_EINVAL);
    assert_int_equal(tt_session_message_discard(s, "m_other", "cancelled"), TT_ECONFLICT);
    assert_int_equal(s->head, head);
    assert_string_equal(tt_session_message_open(s), mid);
    assert_int_equal(s->streaming_text.len, 4);
    assert_int_equal(tt_session_message_end(s, mid, json_object()), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(tt_session_transcript(s), 0), "text")),
        "kept");
}

static void test_session_user_message_is_an_event_and_a_transcript_entry(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    uint64_t seq = tt_session_user_message(s, "hi", "c1");
    assert_int_equal(seq, s->head);
    assert_int_equal(tt_session_user_message(s, "\xff", NULL), 0); /* not UTF-8: refused */
    assert_int_equal(s->head, seq);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 1);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    json_t *events = replay_all(s);
    size_t last = json_array_size(events) - 1;
    assert_string_equal(event_str(events, last, "type"), "user");
    assert_string_equal(event_str(events, last, "text"), "hi");
    assert_string_equal(event_str(events, last, "client_msg_id"), "c1");
    json_t *entry = json_array_get(tt_session_transcript(s), 0);
    assert_string_equal(json_string_value(json_object_get(entry, "message_id")),
                        event_str(events, last, "message_id"));
    json_decref(events);
}

static void test_session_title_is_the_first_user_text_cut_at_a_character(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char text[TT_TITLE_MAX + 16];
    memset(text, 'a', TT_TITLE_MAX - 1);
    strcpy(text + TT_TITLE_MAX - 1, "\xc3\xa9 and more"); /* é straddles the limit */
    tt_session_user_message(s, text, NULL);
    assert_int_equal(strlen(s->title), TT_TITLE_MAX - 1);
    assert_null(strchr(s->title, '\xc3')); /* no half character */
    tt_session_user_message(s, "a later turn", NULL);
    assert_int_equal(strlen(s->title), TT_TITLE_MAX - 1);
    assert_int_equal(s->title[0], 'a');
}

static void test_session_title_drops_bidi_controls(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    tt_session_user_message(s,
                            "pay\xe2\x80\xae"
                            "fdp.exe",
                            NULL);
    assert_null(strstr(s->title, "\xe2\x80\xae"));
    assert_non_null(strstr(s->title, "pay"));
}

static void test_session_transcript_keeps_the_last_transcript_max_turns(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char mid[8];
    for (int i = 0; i < 5; i++) {
        snprintf(mid, sizeof mid, "u%d", i);
        tt_session_user_message(s, mid, NULL);
    }
    assert_int_equal(json_array_size(tt_session_transcript(s)), 3);
    assert_int_equal(s->transcript_first, 3);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(tt_session_transcript(s), 0), "text")),
        "u2");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(tt_session_transcript(s), 2), "text")),
        "u4");
}

static void test_session_set_state_emits_only_on_a_change(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    uint64_t head = s->head;
    tt_session_set_state(s, TT_STATE_RUNNING, "thinking");
    assert_int_equal(s->head, head + 1);
    tt_session_set_state(s, TT_STATE_RUNNING, NULL); /* NULL keeps the step */
    tt_session_set_state(s, TT_STATE_RUNNING, "thinking");
    assert_int_equal(s->head, head + 1);
    assert_string_equal(s->step, "thinking");
    tt_session_set_state(s, TT_STATE_RUNNING, "writing");
    assert_int_equal(s->head, head + 2);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    json_t *events = replay_all(s);
    json_t *last = json_array_get(events, json_array_size(events) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "state");
    assert_string_equal(json_string_value(json_object_get(last, "step")), "writing");
    assert_string_equal(json_string_value(json_object_get(last, "state")), "running");
    json_decref(events);
}

static void test_session_remembers_the_last_64_msg_ids(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char id[16];
    for (int i = 0; i < 70; i++) {
        snprintf(id, sizeof id, "c%d", i);
        assert_false(tt_session_seen_msg_id(s, id));
        tt_session_remember_msg_id(s, id);
        assert_true(tt_session_seen_msg_id(s, id));
    }
    assert_false(tt_session_seen_msg_id(s, "c5"));
    assert_true(tt_session_seen_msg_id(s, "c6"));
    assert_true(tt_session_seen_msg_id(s, "c69"));
}

static void test_session_record_round_trips(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    tt_session_user_message(s, "hello", NULL);
    tt_session_set_state(s, TT_STATE_WAITING_INPUT, "asking");
    tt_session_set_pending(s, json_pack("{s:s}", "question", "why?"));
    json_object_set_new(s->agent_state, "k", json_integer(7));
    tt_session_remember_msg_id(s, "c1");
    char mid[TT_MESSAGE_ID_MAX];
    for (int i = 0; i < 2; i++) { /* usage totals: a cost that is not integral */
        assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
        assert_int_equal(tt_session_message_end(s, mid,
                                                json_pack("{s:i, s:i, s:f}", "prompt_tokens", 5,
                                                          "completion_tokens", 7, "cost_usd", 0.1)),
                         0);
    }
    tt_session_set_pending(s, json_pack("{s:s}", "question", "why?"));
    assert_int_equal(tt_registry_flush(f->reg), 0);
    size_t len = 0;
    char *rec = tt_session_record(s, &len);
    assert_non_null(rec);
    tt_session *back = tt_session_new(f->reg);
    assert_non_null(back);
    assert_int_equal(tt_session_load_record(back, rec, len), 0);
    assert_string_equal(back->id, s->id);
    assert_string_equal(back->user, "ann");
    assert_string_equal(back->tenant, "t");
    assert_string_equal(back->title, "hello");
    assert_string_equal(back->step, "asking");
    assert_int_equal(back->state, TT_STATE_WAITING_INPUT);
    assert_int_equal(back->head, s->head);
    assert_int_equal(back->committed, s->head);
    assert_true(json_equal(back->pending, s->pending));
    assert_true(json_equal(back->agent_state, s->agent_state));
    assert_true(tt_session_seen_msg_id(back, "c1"));
    json_t *u = tt_session_usage(s), *ub = tt_session_usage(back);
    assert_non_null(u);
    assert_true(json_equal(ub, u));
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 10);
    assert_true(json_real_value(json_object_get(ub, "cost_usd")) == 0.1 + 0.1);
    json_decref(u);
    json_decref(ub);
    size_t len2 = 0; /* and written back byte for byte (the transcript's bounds aside:
                        back did not read its entries) */
    char *rec2 = tt_session_record(back, &len2);
    char *tail = strstr(rec, ",\"transcript_first\""),
         *tail2 = strstr(rec2, ",\"transcript_first\"");
    assert_non_null(tail);
    assert_non_null(tail2);
    assert_int_equal(tail - rec, tail2 - rec2);
    assert_memory_equal(rec, rec2, (size_t)(tail - rec));
    free(rec2);
    tt_session_free(back);
    free(rec);
}

/* The record as the earlier build made it (json_pack, then dumped). */
static char *reference_record(tt_session *s)
{
    /* The session keeps an empty input, metadata or say-id list as NULL. */
    json_t *empty_o = json_object(), *empty_a = json_array();
    json_t *r =
        json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I,"
                  " s:O, s:O?, s:O, s:O, s:O, s:O?}",
                  "v", 2, "id", s->id, "user", s->user, "tenant", s->tenant, "agent", s->agent,
                  "title", s->title, "state", tt_state_name(s->state), "step", s->step,
                  "created_at", (json_int_t)s->created_ms, "updated_at", (json_int_t)s->updated_ms,
                  "head", (json_int_t)s->head, "first_seq", (json_int_t)s->first_seq, "agent_state",
                  s->agent_state, "pending", s->pending, "input", s->input ? s->input : empty_o,
                  "metadata", s->metadata ? s->metadata : empty_o, "client_msg_ids",
                  s->client_msg_ids ? s->client_msg_ids : empty_a, "streaming", s->streaming);
    json_decref(empty_o);
    json_decref(empty_a);
    assert_non_null(r);
    if (s->key_id[0])
        json_object_set_new(r, "key_id", json_string(s->key_id));
    if (s->has_usage) /* as usage_add made it before the totals were kept as numbers */
        json_object_set_new(r, "usage",
                            json_pack("{s:I, s:I, s:f}", "prompt_tokens",
                                      (json_int_t)s->usage_prompt_tokens, "completion_tokens",
                                      (json_int_t)s->usage_completion_tokens, "cost_usd",
                                      s->usage_cost_usd));
    if (s->on_busy[0])
        json_object_set_new(r, "on_busy", json_string(s->on_busy));
    json_object_set_new(r, "transcript_first", json_integer((json_int_t)s->transcript_first));
    json_object_set_new(r, "transcript_count",
                        json_integer((json_int_t)json_array_size(tt_session_transcript(s))));
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return text;
}

static void expect_record_as_before(tt_session *s)
{
    size_t len = 0;
    char *rec = tt_session_record(s, &len);
    char *want = reference_record(s);
    assert_non_null(rec);
    assert_non_null(want);
    assert_string_equal(rec, want);
    assert_int_equal(len, strlen(want));
    free(rec);
    free(want);
}

/* Written directly, the record is byte for byte what json_pack made, in
 * every shape (optional parts absent and present, text needing escapes). */
static void test_session_record_is_what_json_pack_made(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    expect_record_as_before(s);
    tt_session_user_message(s, "\"quoted\" \\ caf\xc3\xa9 \x01\n", "c\"1");
    tt_session_set_state(s, TT_STATE_WAITING_INPUT, "ask\ting");
    tt_session_set_pending(s, json_pack("{s:s, s:[i, b, n]}", "question", "why?\x7f", "l", 1, 1));
    json_object_set_new(s->agent_state, "k", json_real(0.25));
    snprintf(s->key_id, sizeof s->key_id, "key_\"1");
    snprintf(s->on_busy, sizeof s->on_busy, "queue");
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_session_message_end(s, mid,
                                            json_pack("{s:i, s:i, s:f}", "prompt_tokens", 3,
                                                      "completion_tokens", 4, "cost_usd", 0.0)),
                     0);
    expect_record_as_before(s); /* a cost of 0.0 */
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(
        tt_session_message_end(s, mid, json_pack("{s:f}", "cost_usd", 0.1 + 0.2 + 1e-17)), 0);
    assert_float_equal(s->usage_cost_usd, 0.1 + 0.2 + 1e-17, 0);
    assert_int_equal(s->usage_prompt_tokens, 3);
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    expect_record_as_before(s);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    expect_record_as_before(s);
    /* Records of a pass go one after another into one buffer, each
     * followed by a NUL; one that does not encode leaves it as it was. */
    tt_buf all;
    tt_buf_init(&all, 1 << 20);
    size_t len = 0, len2 = 0;
    assert_int_equal(tt_session_record_append(s, &all, &len), 0);
    assert_int_equal(tt_session_record_append(s, &all, &len2), 0);
    assert_int_equal(len, len2);
    assert_int_equal(all.len, 2 * (len + 1));
    char *want = reference_record(s);
    assert_string_equal(tt_buf_str(&all), want);
    assert_string_equal(tt_buf_str(&all) + len + 1, want);
    free(want);
    /* A value that does not encode: no record, as before. */
    json_object_set_new(s->agent_state, "bad", json_stringn_nocheck("\xff", 1));
    assert_null(tt_session_record(s, &len));
    assert_int_equal(tt_session_record_append(s, &all, &len), TT_EINVAL);
    assert_int_equal(all.len, 2 * (len2 + 1));
    json_object_del(s->agent_state, "bad");
    /* Nor does one past the buffer's cap. */
    tt_buf small;
    tt_buf_init(&small, len2);
    assert_int_equal(tt_session_record_append(s, &small, &len), TT_ETOOLARGE);
    assert_int_equal(small.len, 0);
    tt_buf_free(&small);
    tt_buf_free(&all);
}

static void test_session_load_refuses_unusable_records(void **state)
{
    fixture *f = *state;
    static const char *bad[] = {
        "not json",
        "{}",
        "{\"v\":9,\"id\":\"s\",\"user\":\"u\",\"tenant\":\"t\",\"agent\":\"a\",\"title\":\"\","
        "\"state\":\"idle\",\"step\":\"\",\"created_at\":0,\"updated_at\":0,\"head\":0,"
        "\"first_seq\":1}",
        "{\"v\":2,\"id\":\"s\",\"user\":\"u\",\"tenant\":\"t\",\"agent\":\"a\",\"title\":\"\","
        "\"state\":\"dreaming\",\"step\":\"\",\"created_at\":0,\"updated_at\":0,\"head\":0,"
        "\"first_seq\":1}",
        "{\"v\":2,\"id\":\"s\",\"user\":\"u\",\"tenant\":\"t\",\"agent\":\"a\",\"title\":\"\","
        "\"state\":\"idle\",\"step\":\"\",\"created_at\":0,\"updated_at\":0,\"head\":-1,"
        "\"first_seq\":1}",
        "{\"v\":2,\"id\":\"s\",\"user\":\"u\",\"tenant\":\"t\",\"agent\":\"a\",\"title\":\"\","
        "\"state\":\"idle\",\"step\":\"\",\"created_at\":0,\"updated_at\":0,\"head\":0,"
        "\"first_seq\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_session *s = tt_session_new(f->reg);
        assert_int_equal(tt_session_load_record(s, bad[i], strlen(bad[i])), TT_EINVAL);
        tt_session_free(s);
    }
}

static void test_session_owner_keys_of_different_owners_differ(void **state)
{
    char a[TT_OWNER_KEY_MAX], b[TT_OWNER_KEY_MAX];
    tt_owner_key("a\x1f"
                 "b",
                 "c", a, sizeof a);
    tt_owner_key("a",
                 "b\x1f"
                 "c",
                 b, sizeof b);
    assert_string_not_equal(a, b);
    tt_owner_key("acme", "ann", a, sizeof a);
    assert_string_equal(a, "acme\x1f"
                           "ann");
}

static void test_session_state_names_parse_back(void **state)
{
    for (int i = 0; i < TT_STATE__LAST; i++) {
        tt_state st;
        assert_int_equal(tt_state_parse(tt_state_name((tt_state)i), &st), 0);
        assert_int_equal(st, i);
    }
    tt_state st;
    assert_int_equal(tt_state_parse("dreaming", &st), TT_EINVAL);
    assert_int_equal(tt_state_parse(NULL, &st), TT_EINVAL);
    assert_string_equal(tt_state_name(TT_STATE__LAST), "unknown");
}

static void test_session_new_ids_are_distinct_and_prefixed(void **state)
{
    char a[32], b[32];
    tt_new_id("s", a, sizeof a);
    tt_new_id("s", b, sizeof b);
    assert_int_equal(strlen(a), 2 + 24);
    assert_memory_equal(a, "s_", 2);
    assert_string_not_equal(a, b);
    /* A short buffer holds the prefix and as many whole digit pairs as fit,
     * NUL-terminated (n = 1: only the NUL). */
    for (size_t n = 1; n <= sizeof a; n++) {
        memset(a, 'x', sizeof a);
        tt_new_id("s", a, n);
        size_t want = n < 3 ? n - 1 : 2 + 2 * ((n - 3) / 2 < 12 ? (n - 3) / 2 : 12);
        assert_int_equal(strlen(a), want);
        for (size_t i = 2; i < want; i++)
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_session_emit_assigns_contiguous_seqs),
        T(test_session_ring_keeps_only_memory_events_once_committed),
        T(test_session_ring_released_at_rest_once_read),
        T(test_session_opener_attach_waits_for_the_group_commit),
        T(test_session_message_start_delta_end_are_contiguous_events_and_a_transcript_entry),
        T(test_session_message_snapshot_mid_stream_carries_the_text_so_far),
        T(test_session_message_discard_leaves_no_stream_and_no_entry),
        T(test_session_message_discard_after_a_restart),
        T(test_session_message_record_of_an_earlier_build_takes_one_restart_discard),
        T(test_session_message_misuse_is_refused_and_changes_nothing),
        T(test_session_user_message_is_an_event_and_a_transcript_entry),
        T(test_session_title_is_the_first_user_text_cut_at_a_character),
        T(test_session_title_drops_bidi_controls),
        T(test_session_transcript_keeps_the_last_transcript_max_turns),
        T(test_session_set_state_emits_only_on_a_change),
        T(test_session_remembers_the_last_64_msg_ids),
        T(test_session_record_round_trips),
        T(test_session_record_is_what_json_pack_made),
        T(test_session_load_refuses_unusable_records),
        cmocka_unit_test(test_session_owner_keys_of_different_owners_differ),
        cmocka_unit_test(test_session_state_names_parse_back),
        cmocka_unit_test(test_session_new_ids_are_distinct_and_prefixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
