/* What the unit tests that run a registry on a real loop and a store in a
 * temporary directory share: making the directory, closing the registry and
 * the store in the right order, removing the directory at the end, running
 * the loop until a condition holds, and reading a session's events back. */
#ifndef TT_TEST_LOOP_FIXTURE_H
#define TT_TEST_LOOP_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "state/registry.h"
#include "state/session.h"
#include "state/store.h"

/* A fresh directory /tmp/<prefix>_XXXXXX into dir (n >= 64). */
static inline void loop_fixture_mkdir(char *dir, size_t n, const char *prefix)
{
    snprintf(dir, n, "/tmp/%s_XXXXXX", prefix);
    assert_non_null(mkdtemp(dir));
}

/* Close *reg, let its handles close, then close *store; both become NULL. */
static inline void loop_fixture_close(uv_loop_t *loop, tt_registry **reg, tt_store **store)
{
    tt_registry_close(*reg);
    uv_run(loop, UV_RUN_DEFAULT);
    tt_store_close(*store);
    *reg = NULL;
    *store = NULL;
}

/* Run loop for about ms milliseconds (a registry's own handles are
 * unreferenced, so a referenced timer keeps the loop alive meanwhile); 1 is
 * one pass, with the registry's end-of-pass commit. */
static inline void loop_fixture_on_timer(uv_timer_t *t)
{
    (void)t;
}

static inline void loop_fixture_spin(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, loop_fixture_on_timer, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* The end of a test: the loop must hold nothing any more; dir is removed. */
static inline void loop_fixture_end(uv_loop_t *loop, const char *dir)
{
    assert_int_equal(uv_loop_close(loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A fixture's teardown: the registry and store closed if still open, then
 * loop_fixture_end(). */
static inline void loop_fixture_teardown(uv_loop_t *loop, tt_registry **reg, tt_store **store,
                                         const char *dir)
{
    if (*reg)
        loop_fixture_close(loop, reg, store);
    loop_fixture_end(loop, dir);
}

/* The cmocka teardown `teardown` of a test whose fixture (type, malloc'd)
 * has dir, loop, store and reg. */
#define LOOP_FIXTURE_TEARDOWN(type)                                                                \
    static int teardown(void **state)                                                              \
    {                                                                                              \
        type *f = *state;                                                                          \
        loop_fixture_teardown(&f->loop, &f->reg, &f->store, f->dir);                               \
        free(f);                                                                                   \
        return 0;                                                                                  \
    }

/* Run loop until cond holds (checked after each pass), at most 5 s; then
 * assert it. */
#define LOOP_RUN_UNTIL(loop, cond)                                                                 \
    do {                                                                                           \
        uv_timer_t deadline_;                                                                      \
        uv_timer_init((loop), &deadline_);                                                         \
        uv_timer_start(&deadline_, loop_fixture_on_timer, 5000, 0);                                \
        while (!(cond) && uv_is_active((uv_handle_t *)&deadline_))                                 \
            uv_run((loop), UV_RUN_ONCE);                                                           \
        uv_close((uv_handle_t *)&deadline_, NULL);                                                 \
        uv_run((loop), UV_RUN_NOWAIT);                                                             \
        assert_true(cond);                                                                         \
    } while (0)

/* Every committed event of s a fresh cursor replays from the start, as
 * decoded objects (new reference); *recovered as the attach said. */
static inline json_t *loop_fixture_replay(tt_session *s, int *recovered)
{
    tt_cursor *c;
    int err = 0;
    assert_int_equal(tt_cursor_attach(s, NULL, 0, recovered, &c), 0);
    json_t *events = json_array();
    const tt_frame *fr;
    while ((fr = tt_cursor_peek(c, &err))) {
        json_array_append_new(events, json_loads(tt_frame_text(fr), 0, NULL));
        tt_cursor_advance(c);
    }
    assert_int_equal(err, 0);
    tt_cursor_detach(c);
    return events;
}

#endif
