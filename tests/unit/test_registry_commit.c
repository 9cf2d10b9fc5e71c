/* state/registry.c: one session that cannot be stored never stops the
 * others' commits; the per-owner session cap and paged listing keep tenants
 * apart. Real LMDB in a temp directory, a real libuv loop. */
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
    int discards, last_discard_err, releases;
    char health[8][32]; /* "from>to", one per change told */
    int health_changes;
} fixture;

static void health_hook(tt_store_health from, tt_store_health to, int err, void *ud)
{
    fixture *f = ud;
    assert_true(f->health_changes < 8);
    assert_true(to == TT_STORE_HEALTHY ? err == 0 : err != 0);
    snprintf(f->health[f->health_changes++], sizeof f->health[0], "%s>%s",
             tt_store_health_name(from), tt_store_health_name(to));
}

static void deliver_hook(tt_cursor *c, void *ud)
{
}

static void committed_hook(uint64_t pass, void *ud)
{
    (void)pass;
    ((fixture *)ud)->releases++;
}

static void discard_hook(tt_session *s, int err, void *ud)
{
    fixture *f = ud;
    f->discards++;
    f->last_discard_err = err;
    while (s->cursors)
        tt_cursor_detach(s->cursors);
}

static void open_registry(fixture *f, size_t map_max, uint64_t cap)
{
    tt_store_options so = {
        .path = f->dir, .sync = TT_SYNC_NONE, .map_size = map_max, .map_size_max = map_max};
    assert_int_equal(tt_store_open(&so, &f->store), 0);
    tt_registry_options o = {.headroom = 16,
                             .memory_events = 16,
                             .max_lag_events = 100000,
                             .transcript_max = 100,
                             .max_sessions_per_owner = cap};
    tt_registry_hooks hooks = {.ud = f,
                               .deliver = deliver_hook,
                               .committed = committed_hook,
                               .discard = discard_hook,
                               .health = health_hook};
    assert_int_equal(tt_registry_new(&f->loop, f->store, &o, &hooks, &f->reg), 0);
}

static fixture *make_fixture(size_t map_max, uint64_t cap)
{
    fixture *f = calloc(1, sizeof *f);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_regcommit");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_registry(f, map_max, cap);
    return f;
}

static int setup(void **state)
{
    *state = make_fixture(0, 0);
    return 0;
}

static int setup_small(void **state)
{
    *state = make_fixture(1 << 20, 0); /* a 1 MiB map that never grows */
    return 0;
}

static int setup_capped(void **state)
{
    *state = make_fixture(0, 3);
    return 0;
}

LOOP_FIXTURE_TEARDOWN(fixture)

/* One loop pass: the end-of-pass check commits and drops discarded sessions. */
static void one_pass(fixture *f)
{
    loop_fixture_spin(&f->loop, 1);
}

static tt_session *create(fixture *f, const char *tenant, const char *user)
{
    tt_session *s;
    assert_int_equal(tt_registry_create(f->reg, user, tenant, "echo", NULL, NULL, &s), 0);
    return s;
}

static void test_registry_unencodable_session_fails_alone(void **state)
{
    fixture *f = *state;
    tt_session *bad = create(f, "t", "mallory"), *good = create(f, "t", "alice");
    assert_true(tt_session_emit(bad, "delta", json_pack("{s:s}", "text", "kept")) > 0);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", bad->id);

    /* Half a character: jansson refuses to encode the record. */
    memcpy(bad->title, "ab\xc3", 4);
    tt_session_touch(bad);
    assert_true(tt_session_emit(bad, "delta", json_pack("{s:s}", "text", "lost")) > 0);
    assert_true(tt_session_emit(good, "delta", json_pack("{s:s}", "text", "saved")) > 0);
    int releases = f->releases;
    assert_int_equal(tt_registry_flush(f->reg), TT_EINTERNAL);
    assert_int_equal(good->committed, good->head); /* the others committed */
    assert_int_equal(f->discards, 1);
    assert_int_equal(f->last_discard_err, TT_EINTERNAL);
    assert_int_equal(f->releases, releases + 1); /* held replies are released */
    assert_true(tt_registry_failing(f->reg));
    assert_int_equal(tt_registry_stats_get(f->reg)->sessions_discarded, 1);
    tt_session *again;
    assert_int_equal(tt_registry_get(f->reg, sid, &again), TT_EINTERNAL);

    one_pass(f); /* dropped; the next use reloads the committed state */
    assert_int_equal(tt_registry_get(f->reg, sid, &again), 0);
    assert_int_equal(again->head, 1);
    assert_string_equal(again->title, "");
    assert_true(tt_session_emit(again, "delta", NULL) == 2);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_false(tt_registry_failing(f->reg));
    /* Each change of health told once, and the gauge follows. */
    assert_int_equal(f->health_changes, 2);
    assert_string_equal(f->health[0], "healthy>failing");
    assert_string_equal(f->health[1], "failing>healthy");
    assert_int_equal(tt_registry_stats_get(f->reg)->store_health, TT_STORE_HEALTHY);
    assert_int_equal(tt_registry_stats_get(f->reg)->store_health_changes, 2);
}

static void test_registry_full_store_discards_and_keeps_reads(void **state)
{
    fixture *f = *state;
    tt_session *s = create(f, "t", "alice");
    assert_int_equal(tt_registry_flush(f->reg), 0);
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    char *big = malloc(64 * 1024 + 1);
    memset(big, 'x', 64 * 1024);
    big[64 * 1024] = '\0';
    int rc = 0;
    uint64_t committed = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        assert_true(tt_session_emit(s, "delta", json_pack("{s:s}", "text", big)) > 0);
        rc = tt_registry_flush(f->reg);
        if (rc == 0)
            committed = s->committed;
    }
    free(big);
    assert_int_equal(rc, TT_EFULL);
    assert_int_equal(f->last_discard_err, TT_EFULL);
    assert_true(tt_registry_stats_get(f->reg)->commit_store_full >= 1);
    assert_int_equal(f->health_changes, 1);
    assert_string_equal(f->health[0], "healthy>full");
    assert_int_equal(tt_registry_stats_get(f->reg)->store_health, TT_STORE_FULL);
    one_pass(f);
    /* Reads still work: the committed events and the listing. */
    assert_int_equal(tt_registry_get(f->reg, sid, &s), 0);
    assert_int_equal(s->head, committed);
    char owner[TT_OWNER_KEY_MAX], next[TT_SESSION_ID_MAX + 1];
    tt_owner_key("t", "alice", owner, sizeof owner);
    json_t *list;
    assert_int_equal(tt_registry_list(f->reg, owner, NULL, 10, 1 << 20, &list, next), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
}

static void test_registry_cap_counts_per_tenant_and_user(void **state)
{
    fixture *f = *state;
    tt_session *s;
    for (int i = 0; i < 3; i++)
        create(f, "t1", "alice");
    /* Not yet committed: still counted. */
    assert_int_equal(tt_registry_create(f->reg, "alice", "t1", "echo", NULL, NULL, &s), TT_ELIMIT);
    assert_int_equal(tt_registry_flush(f->reg), 0);
    assert_int_equal(tt_registry_create(f->reg, "alice", "t1", "echo", NULL, NULL, &s), TT_ELIMIT);
    /* The same user name in another tenant, and another user: their own counts. */
    for (int i = 0; i < 3; i++)
        create(f, "t2", "alice");
    create(f, "t1", "bob");
    assert_int_equal(tt_registry_flush(f->reg), 0);
    char owner[TT_OWNER_KEY_MAX], next[TT_SESSION_ID_MAX + 1];
    json_t *list;
    tt_owner_key("t2", "alice", owner, sizeof owner);
    assert_int_equal(tt_registry_list(f->reg, owner, NULL, 10, 1 << 20, &list, next), 0);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    tt_owner_key("t1", "bob", owner, sizeof owner);
    assert_int_equal(tt_registry_list(f->reg, owner, NULL, 10, 1 << 20, &list, next), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
}

/* Pages in id order, without repeats or gaps, whatever the page size. */
static void test_registry_list_pages_cover_every_session_once(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 7; i++)
        create(f, "t", "alice");
    create(f, "t", "bob");
    char owner[TT_OWNER_KEY_MAX];
    tt_owner_key("t", "alice", owner, sizeof owner);
    size_t limits[] = {1, 3, 7, 100};
    for (size_t k = 0; k < 4; k++) {
        char after[TT_SESSION_ID_MAX + 1] = "", next[TT_SESSION_ID_MAX + 1];
        size_t seen = 0, pages = 0;
        do {
            json_t *list;
            assert_int_equal(
                tt_registry_list(f->reg, owner, after, limits[k], 1 << 20, &list, next), 0);
            for (size_t i = 0; i < json_array_size(list); i++) {
                const char *sid =
                    json_string_value(json_object_get(json_array_get(list, i), "session"));
                assert_true(strcmp(sid, after) > 0); /* ascending: no repeat */
                snprintf(after, sizeof after, "%s", sid);
            }
            seen += json_array_size(list);
            pages++;
            json_decref(list);
        } while (next[0]);
        assert_int_equal(seen, 7);
        assert_int_equal(pages, (7 + limits[k] - 1) / limits[k]);
    }
    /* A byte budget smaller than one summary still gives one per page. */
    json_t *list;
    char next[TT_SESSION_ID_MAX + 1];
    assert_int_equal(tt_registry_list(f->reg, owner, NULL, 100, 10, &list, next), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_true(next[0] != '\0');
    json_decref(list);
    assert_int_equal(tt_registry_list(f->reg, owner, "not an id!", 10, 1 << 20, &list, next), 0);
    json_decref(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_unencodable_session_fails_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_full_store_discards_and_keeps_reads,
                                        setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_registry_cap_counts_per_tenant_and_user, setup_capped,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_list_pages_cover_every_session_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
