/* What the store tests share (test_store.c, test_store_disk.c): a fixture
 * that opens each test's store in its own fresh temporary directory and
 * removes it afterwards, writers of events and of mixed operations, and
 * readers that check what they read. */
#ifndef TT_TEST_STORE_FIXTURE_H
#define TT_TEST_STORE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* ---- fixture ---- */

typedef struct fx {
    char dir[64];  /* the mkdtemp directory */
    char path[96]; /* the store's directory inside it (created by open) */
    tt_store *st;
} fx;

/* cmocka setup and teardown: *state is an fx; teardown closes f->st. */
int setup(void **state);
int teardown(void **state);
/* Open f->st at f->path with these map sizes (0: the default) and policy. */
int open_with(fx *f, size_t map, size_t max, tt_sync_policy sync);
/* Close and open again with the defaults; fails the test if it cannot. */
void reopen(fx *f);

/* ---- writing ---- */

/* The text of event seq of sid, padded with pad letters. */
size_t ev_text(char *buf, size_t cap, const char *sid, uint64_t seq, size_t pad);

typedef struct ev_batch {
    const char *sid;
    uint64_t first, last;
    size_t pad;
    int ignore_errors; /* keep going after an error, return 0 */
    int calls;         /* times the fill ran (replays included) */
} ev_batch;

/* A write fill: events first..last of b->sid (an ev_batch). */
int fill_events(tt_store_txn *txn, void *arg);
/* Events first..last of sid in one write. */
int put_events(tt_store *st, const char *sid, uint64_t first, uint64_t last, size_t pad);

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

/* A write fill: the ops (an ops) in order; the first failure ends it. */
int fill_ops(tt_store_txn *txn, void *arg);

/* APPLY(st, EVENT(...), SESSION(...), ...): one write of those ops. */
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

/* ---- reading ---- */

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

/* A read callback: checks each event's text and order into a seen. */
int on_event(uint64_t seq, const char *json, size_t len, void *arg);
/* Read sid's events after `after` (at most max); fails the test on a bad one. */
seen read_all(tt_store *st, const char *sid, uint64_t after, size_t max, size_t pad);

typedef struct names {
    char buf[512]; /* "sid=record;" for each session, in call order */
    int null_json; /* calls with json == NULL and len == 0 */
    int stop_after;
    int calls;
} names;

/* A session list callback: appends "sid=record;" to a names. */
int on_session(const char *sid, const char *json, size_t len, void *arg);
/* sid's last seq; fails the test on an error. */
uint64_t last_seq(tt_store *st, const char *sid);

#endif
