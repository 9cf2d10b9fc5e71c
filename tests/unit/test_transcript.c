/* state/store_log.c (the transcript part): transcript entries stored apart from the session
 * record, append-only, trimmed from the front, read back on load, and
 * records of the previous version (transcript inline) read and moved. Real
 * LMDB in a temp directory, a real libuv loop. */
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
    size_t transcript_max;
} fixture;

static void deliver_hook(tt_cursor *c, void *ud)
{
    (void)c;
    (void)ud;
}

static void open_registry(fixture *f)
{
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {.headroom = 16,
                             .memory_events = 16,
                             .max_lag_events = 100000,
                             .transcript_max = f->transcript_max};
    tt_registry_hooks hooks = {.ud = f, .deliver = deliver_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
}

static void close_registry(fixture *f)
{
    loop_fixture_close(&f->loop, &f->reg, &f->store);
}

static void reopen(fixture *f)
{
    close_registry(f);
    open_registry(f);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_transcript");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->transcript_max = 100;
    open_registry(f);
    *state = f;
    return 0;
}

LOOP_FIXTURE_TEARDOWN(fixture)

/* "<n>:" followed by pad 'x's: each entry's text is different. */
static char *entry_text(int n, size_t pad)
{
    char *t = malloc(pad + 32);
    int w = snprintf(t, 32, "%d:", n);
    memset(t + w, 'x', pad);
    t[(size_t)w + pad] = '\0';
    return t;
}

/* Entry n is a user turn when n is odd, the assistant's reply when even. */
static void add_entry(tt_session *s, int n, size_t pad)
{
    char *text = entry_text(n, pad);
    if (n % 2) {
        assert_true(tt_session_user_message(s, text, NULL) > 0);
    } else {
        char mid[TT_MESSAGE_ID_MAX];
        assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
        assert_int_equal(tt_session_message_delta(s, mid, text, strlen(text)), 0);
        assert_int_equal(tt_session_message_end(s, mid, json_object()), 0);
    }
    free(text);
}

static tt_session *new_session(fixture *f)
{
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, "u", "t", "echo", NULL, NULL, &s), 0);
    return s;
}

typedef struct stored {
    uint64_t first, last;
    size_t n;
    json_t *texts; /* array of the entries' texts, in order */
} stored;

static int on_entry(uint64_t index, const char *json, size_t len, void *arg)
{
    stored *st = arg;
    json_t *e = json_loadb(json, len, 0, NULL);
    assert_non_null(e);
    if (st->n++ == 0)
        st->first = index;
    else
        assert_int_equal(index, st->last + 1);
    st->last = index;
    json_array_append(st->texts, json_object_get(e, "text"));
    json_decref(e);
    return 0;
}

/* Every transcript entry the store holds for sid. Caller decrefs .texts. */
static stored read_stored(fixture *f, const char *sid)
{
    stored st = {.texts = json_array()};
    assert_int_equal(tt_store_read_transcript(f->store, sid, 0, 0, on_entry, &st), 0);
    return st;
}

static json_t *stored_record(fixture *f, const char *sid)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(tt_store_get_session(f->store, sid, &text, &len), 0);
    json_t *r = json_loadb(text, len, 0, NULL);
    free(text);
    assert_non_null(r);
    return r;
}

static void assert_texts(const json_t *transcript, int first, int last, size_t pad)
{
    assert_int_equal(json_array_size(transcript), last - first + 1);
    for (int n = first; n <= last; n++) {
        char *want = entry_text(n, pad);
        json_t *e = json_array_get(transcript, (size_t)(n - first));
        const char *got = json_is_string(e) ? json_string_value(e)
                                            : json_string_value(json_object_get(e, "text"));
        assert_non_null(got);
        assert_string_equal(got, want);
        free(want);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_transcript_entries_are_stored_apart_from_the_record(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    size_t record_len = 0;
    for (int n = 1; n <= 20; n++) {
        add_entry(s, n, 10000);
        assert_int_equal(tt_registry_flush(f->reg), 0);
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(tt_store_get_session(f->store, sid, &text, &len), 0);
        free(text);
        if (n <= 2) /* the first answer adds the session's usage totals: a fixed size */
            record_len = len;
        /* 200 KB of transcript later, the record is as small as after one turn. */
        assert_true(len < 2000 && len <= record_len + 16);
    }
    json_t *r = stored_record(f, sid);
    assert_null(json_object_get(r, "transcript"));
    assert_int_equal(json_integer_value(json_object_get(r, "transcript_first")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "transcript_count")), 20);
    json_decref(r);
    stored st = read_stored(f, sid);
    assert_int_equal(st.first, 1);
    assert_int_equal(st.last, 20);
    assert_texts(st.texts, 1, 20, 10000);
    json_decref(st.texts);
}

static void test_transcript_is_read_back_after_a_restart(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    for (int n = 1; n <= 6; n++)
        add_entry(s, n, 100);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    json_t *before = json_deep_copy(tt_session_transcript(s));
    reopen(f);
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_true(json_equal(tt_session_transcript(s), before));
    json_t *snap = tt_session_snapshot(s);
    assert_true(json_equal(json_object_get(snap, "transcript"), before));
    json_decref(snap);
    /* And it goes on from where it was. */
    add_entry(s, 7, 100);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    stored st = read_stored(f, sid);
    assert_int_equal(st.last, 7);
    assert_texts(st.texts, 1, 7, 100);
    json_decref(st.texts);
    json_decref(before);
}

static void test_transcript_trimming_deletes_entries_from_the_front(void **state)
{
    fixture *f = *state;
    close_registry(f);
    f->transcript_max = 3;
    open_registry(f);
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    for (int n = 1; n <= 5; n++) {
        add_entry(s, n, 50);
        assert_int_equal(tt_registry_flush(f->reg), 0);
    }
    stored st = read_stored(f, sid);
    assert_int_equal(st.first, 3);
    assert_texts(st.texts, 3, 5, 50);
    json_decref(st.texts);
    /* Four in one pass: the first of them never reaches the store. */
    for (int n = 6; n <= 9; n++)
        add_entry(s, n, 50);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    st = read_stored(f, sid);
    assert_int_equal(st.first, 7);
    assert_int_equal(st.last, 9);
    assert_texts(st.texts, 7, 9, 50);
    json_decref(st.texts);
    reopen(f);
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_texts(tt_session_transcript(s), 7, 9, 50);
}

/* A record as the previous version wrote it (captured from a server of that
 * version after two echo turns): the transcript inline, record version 1, in
 * a store of schema version 1. */
static const char v1_sid[] = "s_f24110652e2c9d6dcbdd6ea7";
static const char v1_record[] =
    "{\"v\":1,\"id\":\"s_f24110652e2c9d6dcbdd6ea7\",\"user\":\"local\",\"tenant\":\"local\","
    "\"agent\":\"echo\",\"title\":\"hello there\",\"state\":\"idle\",\"step\":\"reply\","
    "\"created_at\":1796493420214,\"updated_at\":1796493420218,\"head\":15,\"first_seq\":1,"
    "\"agent_state\":{\"delay_ms\":0,\"mode\":\"idle\",\"reply\":null,\"message_id\":null},"
    "\"pending\":null,\"transcript\":["
    "{\"role\":\"user\",\"message_id\":\"m_560b5c663ec54b54e6175442\",\"text\":\"hello there\"},"
    "{\"role\":\"assistant\",\"message_id\":\"m_78d30b6494907127ec5e8924\",\"text\":\"hello "
    "there\"},"
    "{\"role\":\"user\",\"message_id\":\"m_06b76d1db34414378e185294\",\"text\":\"second turn\"},"
    "{\"role\":\"assistant\",\"message_id\":\"m_1f7003ebf189abaa6fb65251\",\"text\":\"second "
    "turn\"}],"
    "\"input\":{},\"metadata\":{},\"client_msg_ids\":[\"c1\",\"c2\"]}";

static int fill_v1(tt_store_txn *txn, void *arg)
{
    (void)arg;
    int rc = tt_store_put_meta(txn, "schema_version", "1", 1);
    if (rc == 0)
        rc = tt_store_put_session(txn, v1_sid, "local\x1flocal", v1_record, strlen(v1_record));
    return rc;
}

static void test_transcript_version_1_store_is_read_and_moved_out(void **state)
{
    fixture *f = *state;
    assert_int_equal(tt_store_write(f->store, fill_v1, NULL), 0);
    reopen(f);
    char *version = NULL;
    assert_int_equal(tt_store_get_meta(f->store, "schema_version", &version, NULL), 0);
    assert_string_equal(version, "2");
    free(version);

    tt_session *s;
    assert_int_equal(tt_registry_get(f->reg, v1_sid, &s), 0);
    json_t *parsed = json_loads(v1_record, 0, NULL);
    json_t *old = json_object_get(parsed, "transcript");
    assert_true(json_equal(tt_session_transcript(s), old));
    assert_string_equal(s->title, "hello there");
    assert_int_equal(tt_session_seen_msg_id(s, "c2"), 1);

    /* The next write of the record moves the entries out. */
    assert_true(tt_session_user_message(s, "third turn", NULL) > 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    json_t *r = stored_record(f, v1_sid);
    assert_int_equal(json_integer_value(json_object_get(r, "v")), 2);
    assert_null(json_object_get(r, "transcript"));
    assert_int_equal(json_integer_value(json_object_get(r, "transcript_count")), 5);
    json_decref(r);
    stored st = read_stored(f, v1_sid);
    assert_int_equal(st.first, 1);
    assert_int_equal(st.last, 5);
    json_decref(st.texts);

    reopen(f);
    assert_int_equal(tt_registry_get(f->reg, v1_sid, &s), 0);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 5);
    for (size_t i = 0; i < 4; i++)
        assert_true(
            json_equal(json_array_get(tt_session_transcript(s), i), json_array_get(old, i)));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(tt_session_transcript(s), 4), "text")),
        "third turn");
    json_decref(parsed);
}

/* ---- released at rest (tt_session_rest_release) -------------------------- */

static char *record_of(tt_session *s)
{
    size_t len = 0;
    char *rec = tt_session_record(s, &len);
    assert_non_null(rec);
    assert_int_equal(strlen(rec), len);
    return rec;
}

/* A session committed at rest releases its transcript; read back, it gives
 * the record, snapshot and entries a session loaded whole gives, and a
 * conversation continued from there is stored whole. */
static void test_transcript_released_at_rest_reads_back_the_same(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    for (int n = 1; n <= 6; n++)
        add_entry(s, n, 100);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_null(s->transcript_mem); /* released by the commit */
    assert_int_equal(tt_session_transcript_size(s), 6);
    char *rec = record_of(s);              /* the bounds without the entries */
    json_t *snap = tt_session_snapshot(s); /* reads them back */
    assert_non_null(snap);
    assert_non_null(s->transcript_mem);
    assert_texts(tt_session_transcript(s), 1, 6, 100);
    json_t *before = json_deep_copy(tt_session_transcript(s));
    char *rec2 = record_of(s);
    assert_string_equal(rec2, rec);
    free(rec2);

    /* The same as a session loaded whole from the store. */
    reopen(f);
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_non_null(s->transcript_mem);
    assert_true(json_equal(s->transcript_mem, before));
    rec2 = record_of(s);
    assert_string_equal(rec2, rec);
    free(rec2);
    json_t *snap2 = tt_session_snapshot(s);
    assert_true(json_equal(snap2, snap));

    /* Released, then the conversation goes on: the new turns are appended
     * alone, and follow the six in the store and when read back. */
    assert_int_equal(tt_session_rest_release(s), 1);
    add_entry(s, 7, 100);
    add_entry(s, 8, 100);
    assert_int_equal(json_array_size(s->transcript_mem), 2);
    assert_int_equal(s->transcript_mem_first, 7);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    json_t *r = stored_record(f, sid);
    assert_int_equal(json_integer_value(json_object_get(r, "transcript_first")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "transcript_count")), 8);
    json_decref(r);
    stored st = read_stored(f, sid);
    assert_int_equal(st.first, 1);
    assert_texts(st.texts, 1, 8, 100);
    json_decref(st.texts);
    assert_texts(tt_session_transcript(s), 1, 8, 100);
    for (size_t i = 0; i < 6; i++)
        assert_true(
            json_equal(json_array_get(tt_session_transcript(s), i), json_array_get(before, i)));
    json_t *now = json_deep_copy(tt_session_transcript(s));
    reopen(f);
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_true(json_equal(tt_session_transcript(s), now));
    json_decref(now);
    json_decref(snap);
    json_decref(snap2);
    json_decref(before);
    free(rec);
}

/* Trimming to transcript_max and a rewind, each on a released transcript. */
static void test_transcript_released_then_trimmed_and_rewound(void **state)
{
    fixture *f = *state;
    close_registry(f);
    f->transcript_max = 4;
    open_registry(f);
    tt_session *s = new_session(f);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    for (int n = 1; n <= 4; n++)
        add_entry(s, n, 20);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_null(s->transcript_mem);
    add_entry(s, 5, 20); /* the front, released, is trimmed without being read back */
    add_entry(s, 6, 20);
    assert_int_equal(s->transcript_first, 3);
    assert_int_equal(json_array_size(s->transcript_mem), 2);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    stored st = read_stored(f, sid);
    assert_int_equal(st.first, 3);
    assert_texts(st.texts, 3, 6, 20);
    json_decref(st.texts);
    assert_texts(tt_session_transcript(s), 3, 6, 20);

    /* Rewind to entry 5 (a user turn) while released: 3 and 4 are left. */
    char mid[TT_MESSAGE_ID_MAX];
    snprintf(mid, sizeof mid, "%s",
             json_string_value(
                 json_object_get(json_array_get(tt_session_transcript(s), 2), "message_id")));
    assert_int_equal(tt_session_rest_release(s), 1);
    assert_int_equal(tt_session_rewind(s, mid, "edit"), 0);
    assert_texts(tt_session_transcript(s), 3, 4, 20);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    st = read_stored(f, sid);
    assert_int_equal(st.first, 3);
    assert_int_equal(st.last, 4);
    json_decref(st.texts);
    add_entry(s, 5, 20); /* after the rewind, released again: appended after 4 */
    assert_int_equal(tt_registry_flush(f->reg), 0);
    reopen(f);
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_texts(tt_session_transcript(s), 3, 5, 20);
}

/* Nothing is released while the session is not at rest or not all stored. */
static void test_transcript_kept_while_in_use(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    add_entry(s, 1, 10);
    assert_int_equal(tt_session_rest_release(s), 0); /* the entry is not stored yet */
    char mid[TT_MESSAGE_ID_MAX];
    assert_int_equal(tt_session_message_start(s, "assistant", mid, sizeof mid), 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_non_null(s->transcript_mem); /* a message is open */
    assert_int_equal(tt_session_rest_release(s), 0);
    assert_int_equal(tt_session_message_end(s, mid, json_object()), 0);
    tt_session_set_state(s, TT_STATE_RUNNING, "work");
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_non_null(s->transcript_mem); /* running */
    tt_session_set_state(s, TT_STATE_IDLE, "done");
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_null(s->transcript_mem);
    assert_int_equal(tt_session_transcript_size(s), 2);
    assert_int_equal(json_array_size(tt_session_transcript(s)), 2);
}

/* A transcript too large to read back on the loop in about a millisecond
 * (over 256 KiB of text) stays in memory at rest, as before; one under it
 * is released. */
static void test_transcript_too_large_to_read_back_stays(void **state)
{
    fixture *f = *state;
    tt_session *s = new_session(f);
    add_entry(s, 1, 150000);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_null(s->transcript_mem); /* 150 KB: released */
    add_entry(s, 2, 150000);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_non_null(s->transcript_mem); /* 300 KB with the released front: kept */
    assert_int_equal(json_array_size(s->transcript_mem), 1);
    assert_texts(tt_session_transcript(s), 1, 2, 150000);
    add_entry(s, 3, 10);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(json_array_size(s->transcript_mem), 3); /* read back whole, and kept */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_transcript_entries_are_stored_apart_from_the_record),
        T(test_transcript_is_read_back_after_a_restart),
        T(test_transcript_trimming_deletes_entries_from_the_front),
        T(test_transcript_version_1_store_is_read_and_moved_out),
        T(test_transcript_released_at_rest_reads_back_the_same),
        T(test_transcript_released_then_trimmed_and_rewound),
        T(test_transcript_kept_while_in_use),
        T(test_transcript_too_large_to_read_back_stays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
