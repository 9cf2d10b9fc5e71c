/* What the unit tests that run a registry on a real loop and a store in a
 * temporary directory share: making the directory, closing the registry and
 * the store in the right order, and removing the directory at the end. */
#ifndef TT_TEST_LOOP_FIXTURE_H
#define TT_TEST_LOOP_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <uv.h>

#include "state/registry.h"
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

/* The end of a test: the loop must hold nothing any more; dir is removed. */
static inline void loop_fixture_end(uv_loop_t *loop, const char *dir)
{
    assert_int_equal(uv_loop_close(loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

#endif
