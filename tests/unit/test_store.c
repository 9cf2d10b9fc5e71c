/* Unit tests for state/store.c: each test opens a store in its own fresh
 * temporary directory and removes it afterwards. Leaks are checked by the
 * sanitizer build (LeakSanitizer runs at exit). */
#define _GNU_SOURCE
#include <ftw.h>
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

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* ---- fixture ---------------------------------------------------------- */

typedef struct fx {
    char dir[64];  /* the mkdtemp directory */
    char path[96]; /* the store's directory inside it (created by open) */
    tt_store *st;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tt_store_test_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/db", f->dir);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(p);
}

static int teardown(void **state)
{
    fx *f = *state;
    tt_store_close(f->st);
    int rc = nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static int open_with(fx *f, size_t map, size_t max, tt_sync_policy sync)
{
    tt_store_options o = {.path = f->path, .map_size = map, .map_size_max = max, .sync = sync};
    return tt_store_open(&o, &f->st);
}

static void reopen(fx *f)
{
    tt_store_close(f->st);
    f->st = NULL;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
}

/* ---- writing ---------------------------------------------------------- */

/* The text of event seq of sid, padded with pad letters. */
static size_t ev_text(char *buf, size_t cap, const char *sid, uint64_t seq, size_t pad)
{
    int n = snprintf(buf, cap, "{\"sid\":\"%s\",\"seq\":%" PRIu64 ",\"pad\":\"", sid, seq);
    size_t len = (size_t)n;
    for (size_t i = 0; i < pad && len + 3 < cap; i++)
        buf[len++] = (char)('a' + (seq + i) % 26);
    buf[len++] = '"';
    buf[len++] = '}';
    buf[len] = '\0';
    return len;
}

typedef struct ev_batch {
    const char *sid;
    uint64_t first, last;
    size_t pad;
    int ignore_errors; /* keep going after an error, return 0 */
    int calls;         /* times the fill ran (replays included) */
} ev_batch;

static int fill_events(tt_store_txn *txn, void *arg)
{
    ev_batch *b = arg;
    char buf[4096];
    b->calls++;
    for (uint64_t q = b->first; q <= b->last; q++) {
        size_t len = ev_text(buf, sizeof buf, b->sid, q, b->pad);
        int rc = tt_store_put_event(txn, b->sid, q, buf, len);
        if (rc && !b->ignore_errors)
            return rc;
        if (q == UINT64_MAX)
            break;
    }
    return 0;
}

static int put_events(tt_store *st, const char *sid, uint64_t first, uint64_t last, size_t pad)
{
    ev_batch b = {sid, first, last, pad, 0, 0};
    return tt_store_write(st, fill_events, &b);
}

enum { OP_EVENT, OP_SESSION, OP_TRIM, OP_ACTIVE, OP_META, OP_FAIL, OP_ENTRY, OP_TRIM_ENTRIES };

typedef struct op {
    int kind;
    const char *sid;  /* OP_META: the key */
    const char *text; /* event text, session record, meta value */
    const char *user; /* OP_SESSION */
    uint64_t n;       /* OP_EVENT seq, OP_TRIM before, OP_ACTIVE flag, OP_FAIL code */
} op;

typedef struct ops {
    const op *v;
    size_t n;
} ops;

static int fill_ops(tt_store_txn *txn, void *arg)
{
    const ops *o = arg;
    for (size_t i = 0; i < o->n; i++) {
        const op *p = &o->v[i];
        size_t len = p->text ? strlen(p->text) : 0;
        int rc = 0;
        switch (p->kind) {
        case OP_EVENT:
            rc = tt_store_put_event(txn, p->sid, p->n, p->text, len);
            break;
        case OP_SESSION:
            rc = tt_store_put_session(txn, p->sid, p->user, p->text, len);
            break;
        case OP_TRIM:
            rc = tt_store_trim_events(txn, p->sid, p->n);
            break;
        case OP_ACTIVE:
            rc = tt_store_set_active(txn, p->sid, (int)p->n);
            break;
        case OP_META:
            rc = tt_store_put_meta(txn, p->sid, p->text, len);
            break;
        case OP_FAIL:
            rc = (int)(int64_t)p->n;
            break;
        case OP_ENTRY:
            rc = tt_store_put_transcript(txn, p->sid, p->n, p->text, len);
            break;
        case OP_TRIM_ENTRIES:
            rc = tt_store_trim_transcript(txn, p->sid, p->n);
            break;
        default:
            rc = TT_EINTERNAL;
        }
        if (rc)
            return rc;
    }
    return 0;
}

#define APPLY(st, ...)                                                                             \
    tt_store_write((st), fill_ops,                                                                 \
                   &(ops){(op[]){__VA_ARGS__}, sizeof((op[]){__VA_ARGS__}) / sizeof(op)})
/* clang-format off */
#define EVENT(sid, seq, text) {OP_EVENT, (sid), (text), NULL, (seq)}
#define SESSION(sid, user, text) {OP_SESSION, (sid), (text), (user), 0}
#define TRIM(sid, before) {OP_TRIM, (sid), NULL, NULL, (before)}
#define ACTIVE(sid, on) {OP_ACTIVE, (sid), NULL, NULL, (on)}
#define META(key, val) {OP_META, (key), (val), NULL, 0}
#define FAIL(code) {OP_FAIL, NULL, NULL, NULL, (uint64_t)(int64_t)(code)}
#define ENTRY(sid, index, text) {OP_ENTRY, (sid), (text), NULL, (index)}
#define TRIM_ENTRIES(sid, before) {OP_TRIM_ENTRIES, (sid), NULL, NULL, (before)}
/* clang-format on */

/* ---- reading ---------------------------------------------------------- */

typedef struct seen {
    const char *sid; /* events must carry this sid's text */
    size_t pad;
    uint64_t expect; /* the next seq expected */
    uint64_t first, last;
    size_t n;
    size_t bad; /* out of order or wrong text */
    uint64_t stop_at;
    int stop_rc;
} seen;

static int on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    seen *s = arg;
    char buf[4096];
    size_t want = ev_text(buf, sizeof buf, s->sid, seq, s->pad);
    if (len != want || memcmp(json, buf, len) != 0 || (s->expect && seq != s->expect))
        s->bad++;
    if (s->n++ == 0)
        s->first = seq;
    s->last = seq;
    s->expect = seq + 1;
    return s->stop_at && seq == s->stop_at ? s->stop_rc : 0;
}

static seen read_all(tt_store *st, const char *sid, uint64_t after, size_t max, size_t pad)
{
    seen s = {.sid = sid, .pad = pad}; /* order is checked from the first event on */
    assert_int_equal(tt_store_read_events(st, sid, after, max, on_event, &s), 0);
    assert_int_equal(s.bad, 0);
    return s;
}

typedef struct names {
    char buf[512]; /* "sid=record;" for each session, in call order */
    int null_json; /* calls with json == NULL and len == 0 */
    int stop_after;
    int calls;
} names;

static int on_session(const char *sid, const char *json, size_t len, void *arg)
{
    names *nm = arg;
    size_t used = strlen(nm->buf);
    if (json)
        snprintf(nm->buf + used, sizeof nm->buf - used, "%s=%.*s;", sid, (int)len, json);
    else
        snprintf(nm->buf + used, sizeof nm->buf - used, "%s;", sid);
    nm->null_json += !json && len == 0;
    nm->calls++;
    return nm->stop_after && nm->calls == nm->stop_after ? 99 : 0;
}

static uint64_t last_seq(tt_store *st, const char *sid)
{
    uint64_t q = 12345;
    assert_int_equal(tt_store_last_seq(st, sid, &q), 0);
    return q;
}

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
