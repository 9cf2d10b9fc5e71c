/* agents/photos/move.c, plan.c, journal.c: plan validation, moves that never
 * overwrite, recovery after a simulated crash with every file moved exactly
 * once, and undo back to the original layout byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/photos/move.h"
#include "agents/photos/path.h"
#include "photo_fixtures.h"
#include "protocol/errors.h"

typedef struct lib {
    photo_fixture f;
    int fd;
    json_t *before; /* pf_tree of the library as built */
} lib;

static int setup(void **state)
{
    lib *l = calloc(1, sizeof *l);
    if (!l || photo_fixture_build(&l->f, 0) || tt_photos_open_root(l->f.root, &l->fd))
        return -1;
    l->before = pf_tree(l->f.root);
    *state = l;
    return l->before ? 0 : -1;
}

static int teardown(void **state)
{
    lib *l = *state;
    json_decref(l->before);
    close(l->fd);
    photo_fixture_remove(&l->f);
    free(l);
    return 0;
}

/* Absolute path of rel; four buffers in turn, so two calls can be arguments
 * of one function. */
static char *path_in(const lib *l, const char *rel)
{
    static char bufs[4][4096];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, 4096, "%s/%s", l->f.root, rel);
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The plan used throughout: photos sorted into by-year/ and dupes/. The
 * sources come from pf_expected (see photo_fixtures.c) by index. */
static const struct {
    int src; /* index in pf_expected */
    const char *dest;
} MOVES[] = {
    {0, "by-year/2019/IMG_0001.jpg"},
    {1, "by-year/2020/IMG_0002.jpg"},
    {2, "by-year/2021/beach day.jpg"},
    {3, "by-year/2021/caf\xc3\xa9 \xc3\xa9t\xc3\xa9 \xe2\x98\x80.jpg"},
    {4, "by-year/unknown/noexif.jpg"},
    {5, "by-year/unknown/scan.png"},
    {6, "by-year/2018/doc.tiff"},
    {7, "dupes/IMG_0001 copy.jpg"},
    {8, "dupes/IMG_0001.JPG"},
    {9, "deep.jpg"},
    {10, "by-year/unknown/renamed.jpg"},
};
#define NMOVES (sizeof MOVES / sizeof MOVES[0])

static json_t *the_plan(void)
{
    json_t *moves = json_array();
    for (size_t i = 0; i < NMOVES; i++)
        json_array_append_new(moves, json_pack("{s:s, s:s}", "src", pf_expected[MOVES[i].src].path,
                                               "dest", MOVES[i].dest));
    return json_pack("{s:[s, s, s, s, s, s], s:o}", "folders", "by-year/2018", "by-year/2019",
                     "by-year/2020", "by-year/2021", "by-year/unknown", "dupes", "moves", moves);
}

/* The layout the plan must produce, from the layout before. */
static json_t *expected_after(const json_t *before)
{
    json_t *t = json_deep_copy(before);
    for (size_t i = 0; i < NMOVES; i++) {
        const char *src = pf_expected[MOVES[i].src].path;
        json_object_set(t, MOVES[i].dest, json_object_get(t, src));
        json_object_del(t, src);
    }
    static const char *const dirs[] = {"by-year",      "by-year/2018", "by-year/2019",
                                       "by-year/2020", "by-year/2021", "by-year/unknown",
                                       "dupes"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        json_object_set_new(t, dirs[i], json_string("dir"));
    return t;
}

static void assert_tree(const lib *l, const json_t *want)
{
    json_t *now = pf_tree(l->f.root);
    if (!json_equal(now, (json_t *)want)) {
        char *a = json_dumps(now, JSON_SORT_KEYS | JSON_INDENT(1));
        char *b = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
        print_error("now:\n%s\nwant:\n%s\n", a, b);
        free(a);
        free(b);
        fail_msg("layout differs");
    }
    json_decref(now);
}

static json_t *new_journal(const lib *l, const json_t *plan)
{
    json_t *j = NULL, *problems = NULL;
    int rc = tt_photos_journal_new(l->fd, plan, &j, &problems);
    if (rc) {
        char *p = problems ? json_dumps(problems, 0) : NULL;
        fail_msg("journal_new: %d %s", rc, p ? p : "");
    }
    return j;
}

static int run_all(const lib *l, json_t *journal)
{
    size_t i;
    json_t *e;
    json_array_foreach(journal, i, e)
    {
        int rc = tt_photos_journal_apply(l->fd, e, TT_PHOTOS_NOSYNC, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

static const char *state_of(json_t *e)
{
    return json_string_value(json_object_get(e, "state"));
}

/* ---- validation ------------------------------------------------------ */

static void expect_problem(const lib *l, const char *plan_text, const char *reason)
{
    json_error_t err;
    json_t *plan = json_loads(plan_text, 0, &err);
    if (!plan)
        fail_msg("bad test JSON: %s", plan_text);
    json_t *problems = NULL;
    assert_int_equal(tt_photos_plan_validate(l->fd, plan, &problems), TT_EINVAL);
    char *all = json_dumps(problems, 0);
    if (!strstr(all, reason))
        fail_msg("want \"%s\" for %s, got %s", reason, plan_text, all);
    free(all);
    json_t *j = NULL, *p2 = NULL;
    assert_int_equal(tt_photos_journal_new(l->fd, plan, &j, &p2), TT_EINVAL);
    assert_null(j);
    json_decref(p2);
    json_decref(problems);
    json_decref(plan);
}

static void test_photos_plan_rejects_bad_paths(void **state)
{
    lib *l = *state;
    expect_problem(l, "{\"moves\": [{\"src\": \"../outside/secret.jpg\", \"dest\": \"x.jpg\"}]}",
                   "'.' or '..' component");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"a/../../x.jpg\"}]}",
                   "'.' or '..' component");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"/tmp/x.jpg\"}]}",
                   "absolute path");
    expect_problem(l, "{\"moves\": [{\"src\": \"/etc/passwd\", \"dest\": \"x.jpg\"}]}",
                   "absolute path");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"a//x.jpg\"}]}",
                   "empty path component");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"a/x.jpg/\"}]}",
                   "empty path component");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"\"}]}", "empty path");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"./x.jpg\"}]}",
                   "'.' or '..' component");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"a\\nb.jpg\"}]}",
                   "control character");
    /* bidi controls and invisible characters in names we would create */
    static const char *const hidden[] = {"\\u202e", "\\u202a", "\\u2066", "\\u2069", "\\u200e",
                                         "\\u200f", "\\u061c", "\\u200b", "\\ufeff", "\\u0085"};
    for (size_t k = 0; k < sizeof hidden / sizeof hidden[0]; k++) {
        char text[200];
        snprintf(text, sizeof text, "{\"folders\": [\"ev%sil\"], \"moves\": []}", hidden[k]);
        expect_problem(l, text, "invisible or bidi");
        snprintf(text, sizeof text,
                 "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"gpj%s.exe\"}]}", hidden[k]);
        expect_problem(l, text, "invisible or bidi");
    }
    /* symlinks anywhere in what exists */
    expect_problem(l, "{\"folders\": [\"escape_dir/2021\"], \"moves\": []}", "symlink");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"escape_dir/x.jpg\"}]}",
                   "symlink");
    expect_problem(l, "{\"moves\": [{\"src\": \"escape_dir/secret.jpg\", \"dest\": \"x.jpg\"}]}",
                   "symlink");
    expect_problem(l, "{\"moves\": [{\"src\": \"escape.jpg\", \"dest\": \"x.jpg\"}]}",
                   "source is a symlink");
    /* shape and consistency */
    expect_problem(l, "{\"moves\": [{\"src\": \"nope.jpg\", \"dest\": \"x.jpg\"}]}",
                   "source missing");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"new/x.jpg\"}]}",
                   "neither planned nor existing");
    expect_problem(l,
                   "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\"},"
                   " {\"src\": \"IMG_0002.jpg\", \"dest\": \"x.jpg\"}]}",
                   "destination used twice");
    expect_problem(l,
                   "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\"},"
                   " {\"src\": \"IMG_0001.jpg\", \"dest\": \"y.jpg\"}]}",
                   "source used twice");
    expect_problem(l,
                   "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"IMG_0002.jpg\"},"
                   " {\"src\": \"IMG_0002.jpg\", \"dest\": \"y.jpg\"}]}",
                   "another move's source");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"IMG_0001.jpg\"}]}",
                   "the same");
    expect_problem(l, "{\"moves\": [{\"src\": \"notes.txt\", \"dest\": \"notes.txt/x.jpg\"}]}",
                   "a file is in the way");
    expect_problem(l, "{\"moves\": [], \"extra\": 1}", "plan must be");
    expect_problem(l, "{\"moves\": [{\"src\": \"IMG_0001.jpg\", \"dest\": \"x\", \"why\": 1}]}",
                   "move must be");

    json_t *plan = the_plan(), *problems = NULL;
    assert_int_equal(tt_photos_plan_validate(l->fd, plan, &problems), 0);
    assert_null(problems);
    json_decref(plan);
    /* validation changed nothing, inside or out */
    assert_tree(l, l->before);
    assert_false(exists(path_in(l, "../outside/2021")));
}

static void test_photos_mkdir_never_through_symlink(void **state)
{
    lib *l = *state;
    int n = -1;
    assert_int_equal(tt_photos_mkdir(l->fd, "escape_dir/new", &n, 0), TT_EFORBIDDEN);
    char out[4096];
    snprintf(out, sizeof out, "%s/new", l->f.outside);
    assert_false(exists(out));
    assert_int_equal(tt_photos_mkdir(l->fd, "x/y/z", &n, 0), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tt_photos_mkdir(l->fd, "x/y/z", &n, 0), 0); /* idempotent */
    assert_int_equal(n, 0);
    assert_int_equal(tt_photos_mkdir(l->fd, "notes.txt/sub", &n, 0), TT_EINVAL);
    assert_int_equal(tt_photos_mkdir(l->fd, "../up", &n, 0), TT_EINVAL);
    assert_int_equal(tt_photos_mkdir(l->fd, "/abs", &n, 0), TT_EINVAL);
}

static void test_photos_move_never_overwrites(void **state)
{
    lib *l = *state;
    tt_photos_check c;
    assert_int_equal(tt_photos_move_check(l->fd, "IMG_0001.jpg", "new.jpg", &c), 0);
    assert_int_equal(c, TT_PHOTOS_NOT_DONE);
    assert_int_equal(tt_photos_move_check(l->fd, "IMG_0001.jpg", "IMG_0002.jpg", &c), 0);
    assert_int_equal(c, TT_PHOTOS_CONFLICT);
    assert_int_equal(tt_photos_move_check(l->fd, "gone.jpg", "IMG_0002.jpg", &c), 0);
    assert_int_equal(c, TT_PHOTOS_DONE);
    assert_int_equal(tt_photos_move_check(l->fd, "gone.jpg", "no/such/dir.jpg", &c), 0);
    assert_int_equal(c, TT_PHOTOS_MISSING);
    assert_int_equal(tt_photos_move_check(l->fd, "escape_dir/secret.jpg", "x.jpg", &c),
                     TT_EFORBIDDEN);

    /* a conflict is reported and touches neither file */
    assert_int_equal(tt_photos_move(l->fd, "IMG_0001.jpg", "IMG_0002.jpg", 0), TT_ECONFLICT);
    assert_tree(l, l->before);
    /* a free name next to it */
    char name[TT_PHOTOS_REL_MAX + 1];
    assert_int_equal(tt_photos_free_name(l->fd, "IMG_0002.jpg", name, sizeof name), 0);
    assert_string_equal(name, "IMG_0002 (2).jpg");
    assert_int_equal(tt_photos_move(l->fd, "IMG_0001.jpg", name, 0), 0);
    assert_int_equal(tt_photos_free_name(l->fd, "IMG_0002.jpg", name, sizeof name), 0);
    assert_string_equal(name, "IMG_0002 (3).jpg");
    assert_int_equal(tt_photos_free_name(l->fd, "2021/trip/beach day.jpg", name, sizeof name), 0);
    assert_string_equal(name, "2021/trip/beach day (2).jpg");
    assert_int_equal(tt_photos_free_name(l->fd, "free.jpg", name, sizeof name), 0);
    assert_string_equal(name, "free.jpg");
    assert_int_equal(tt_photos_free_name(l->fd, "IMG_0002.jpg", name, 8), TT_ETOOLARGE);
    assert_int_equal(tt_photos_move_check(l->fd, "IMG_0001.jpg", "IMG_0002 (2).jpg", &c), 0);
    assert_int_equal(c, TT_PHOTOS_DONE);

    /* never a symlink, never into one, never a folder */
    assert_int_equal(tt_photos_move(l->fd, "escape.jpg", "e.jpg", 0), TT_EFORBIDDEN);
    assert_int_equal(tt_photos_move(l->fd, "IMG_0002.jpg", "escape_dir/x.jpg", 0), TT_EFORBIDDEN);
    assert_int_equal(tt_photos_move(l->fd, "scans", "scans2", 0), TT_EINVAL);
    assert_int_equal(tt_photos_move(l->fd, "missing.jpg", "m.jpg", 0), TT_ENOTFOUND);
    char out[4096];
    snprintf(out, sizeof out, "%s/x.jpg", l->f.outside);
    assert_false(exists(out));
    assert_true(exists(path_in(l, "escape.jpg")));
}

/* ---- the journal ----------------------------------------------------- */

static void test_photos_journal_runs_the_plan(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    /* mkdir entries for the folders that do not exist, parents first */
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "dest")),
                        "by-year");
    assert_int_equal(json_array_size(j), 7 + NMOVES);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) assert_string_equal(state_of(e), "intent");
    assert_int_equal(run_all(l, j), 0);
    json_array_foreach(j, i, e) assert_string_equal(state_of(e), "done");
    json_t *want = expected_after(l->before);
    assert_tree(l, want);
    /* applying again is a no-op */
    assert_int_equal(run_all(l, j), 0);
    assert_tree(l, want);
    json_decref(want);
    json_decref(j);
    json_decref(plan);
}

/* In a batch: the same layout as one entry at a time, each folder touched
 * held once (the parents of the folders made, and of both ends of each
 * move), synced once; a folder gone by the sync is skipped; more folders
 * than the set holds are synced as it fills. */
static void test_photos_journal_batched_syncs_each_folder_once(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    tt_photos_dirs *dirs = calloc(1, sizeof *dirs);
    assert_non_null(dirs);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        int acted;
        assert_int_equal(tt_photos_journal_apply_batched(l->fd, e, dirs, &acted), 0);
        assert_int_equal(acted, 1);
    }
    json_array_foreach(j, i, e) assert_string_equal(state_of(e), "done");
    for (size_t a = 0; a < dirs->n; a++)
        for (size_t b = a + 1; b < dirs->n; b++)
            assert_string_not_equal(dirs->rel[a], dirs->rel[b]);
    int root = 0, year = 0;
    for (size_t a = 0; a < dirs->n; a++) {
        root += !strcmp(dirs->rel[a], "");
        year += !strcmp(dirs->rel[a], "by-year/2019");
    }
    assert_int_equal(root, 1);
    assert_int_equal(year, 1);
    json_t *want = expected_after(l->before);
    assert_tree(l, want);
    assert_int_equal(tt_photos_dirs_add_parent(l->fd, dirs, "gone/x.jpg"), 0);
    assert_int_equal(tt_photos_dirs_sync(l->fd, dirs), 0); /* "gone" skipped */
    assert_int_equal(dirs->n, 0);
    char rel[64];
    for (int k = 0; k < TT_PHOTOS_DIRS_MAX + 10; k++) {
        snprintf(rel, sizeof rel, "none-%d/x.jpg", k);
        assert_int_equal(tt_photos_dirs_add_parent(l->fd, dirs, rel), 0);
    }
    assert_int_equal(dirs->n, 10); /* the first TT_PHOTOS_DIRS_MAX were synced when full */
    tt_photos_dirs_clear(dirs);
    free(dirs);
    json_decref(want);
    json_decref(j);
    json_decref(plan);
}

static void test_photos_journal_conflict_then_free_name(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    /* something lands on a destination after the plan was made */
    assert_int_equal(tt_photos_mkdir(l->fd, "by-year/2019", NULL, 0), 0);
    assert_int_equal(pf_copy(path_in(l, "notes.txt"), path_in(l, "by-year/2019/IMG_0001.jpg")), 0);
    char intruder[65];
    assert_int_equal(pf_sha256_file(path_in(l, "by-year/2019/IMG_0001.jpg"), intruder), 0);

    json_t *e = json_array_get(j, 7); /* IMG_0001.jpg -> by-year/2019/IMG_0001.jpg */
    assert_string_equal(json_string_value(json_object_get(e, "src")), "IMG_0001.jpg");
    size_t i;
    json_t *x;
    json_array_foreach(j, i, x)
    {
        int rc = tt_photos_journal_apply(l->fd, x, TT_PHOTOS_NOSYNC, NULL);
        assert_int_equal(rc, x == e ? TT_ECONFLICT : 0);
    }
    assert_string_equal(state_of(e), "intent");
    assert_string_equal(json_string_value(json_object_get(e, "problem")), "conflict");
    char hex[65];
    assert_int_equal(pf_sha256_file(path_in(l, "by-year/2019/IMG_0001.jpg"), hex), 0);
    assert_string_equal(hex, intruder);
    assert_true(exists(path_in(l, "IMG_0001.jpg")));

    assert_int_equal(tt_photos_journal_resolve(l->fd, e), 0);
    assert_string_equal(json_string_value(json_object_get(e, "final_dest")),
                        "by-year/2019/IMG_0001 (2).jpg");
    assert_null(json_object_get(e, "problem"));
    assert_int_equal(tt_photos_journal_apply(l->fd, e, TT_PHOTOS_NOSYNC, NULL), 0);
    assert_string_equal(state_of(e), "done");
    assert_int_equal(pf_sha256_file(path_in(l, "by-year/2019/IMG_0001.jpg"), hex), 0);
    assert_string_equal(hex, intruder); /* still the other file */
    assert_string_equal(json_string_value(json_object_get(l->before, "IMG_0001.jpg")) + 7,
                        (pf_sha256_file(path_in(l, "by-year/2019/IMG_0001 (2).jpg"), hex), hex));

    /* undo puts our file back and leaves the intruder */
    tt_photos_counts c = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c.acted, NMOVES + 5); /* moves back, folders removed */
    assert_int_equal(c.kept, 2);           /* by-year/2019 holds the intruder, by-year holds 2019 */
    assert_int_equal(c.conflicts, 0);
    json_t *want = json_deep_copy(l->before);
    json_object_set_new(want, "by-year", json_string("dir"));
    json_object_set_new(want, "by-year/2019", json_string("dir"));
    char v[80];
    snprintf(v, sizeof v, "sha256:%s", intruder);
    json_object_set_new(want, "by-year/2019/IMG_0001.jpg", json_string(v));
    assert_tree(l, want);
    json_decref(want);
    json_decref(j);
    json_decref(plan);
}

/* A crash part-way: the journal as persisted holds only intents, some moves
 * happened on disk and some did not. Recovery finishes the plan with every
 * file moved exactly once; a second recovery changes nothing. */
static void test_photos_journal_recovers_after_crash(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    json_t *persisted = json_deep_copy(j); /* committed before any operation */

    /* the process ran the mkdirs and 4 moves, then died before persisting */
    size_t done_ops = 7 + 4;
    for (size_t i = 0; i < done_ops; i++)
        assert_int_equal(tt_photos_journal_apply(l->fd, json_array_get(j, i), 0, NULL), 0);
    /* and one more rename reached the disk while its entry said intent */
    json_t *e = json_array_get(persisted, done_ops);
    assert_int_equal(tt_photos_move(l->fd, json_string_value(json_object_get(e, "src")),
                                    json_string_value(json_object_get(e, "dest")), 0),
                     0);

    tt_photos_counts c = {0};
    assert_int_equal(tt_photos_journal_recover(l->fd, persisted, &c, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c.already, (int64_t)done_ops + 1);
    assert_int_equal(c.acted, (int64_t)(7 + NMOVES - done_ops - 1));
    assert_int_equal(c.conflicts + c.missing + c.failed + c.kept, 0);
    size_t i;
    json_array_foreach(persisted, i, e) assert_string_equal(state_of(e), "done");

    /* exactly once: the layout is the plan's, each file's bytes present once */
    json_t *want = expected_after(l->before);
    assert_tree(l, want);

    json_t *again = json_deep_copy(persisted);
    tt_photos_counts c2 = {0};
    assert_int_equal(tt_photos_journal_recover(l->fd, again, &c2, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c2.acted + c2.already + c2.conflicts + c2.missing + c2.failed, 0);
    assert_true(json_equal(again, persisted));
    assert_tree(l, want);

    /* recovering the original all-intent journal once more is also harmless */
    json_t *stale = json_deep_copy(j);
    json_array_foreach(stale, i, e) json_object_set_new(e, "state", json_string("intent"));
    tt_photos_counts c3 = {0};
    assert_int_equal(tt_photos_journal_recover(l->fd, stale, &c3, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c3.acted, 0);
    assert_int_equal(c3.already, (int64_t)(7 + NMOVES));
    assert_tree(l, want);

    json_decref(stale);
    json_decref(again);
    json_decref(want);
    json_decref(persisted);
    json_decref(j);
    json_decref(plan);
}

static void test_photos_undo_restores_byte_for_byte(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    assert_int_equal(run_all(l, j), 0);

    /* a crash during undo: two files were already moved back by hand */
    for (size_t k = 0; k < 2; k++) {
        json_t *e = json_array_get(j, 7 + NMOVES - 1 - k); /* k = 0: a name with "\n" */
        assert_int_equal(rename(path_in(l, json_string_value(json_object_get(e, "final_dest"))),
                                path_in(l, json_string_value(json_object_get(e, "src")))),
                         0);
    }
    tt_photos_counts c = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c, 0), 0);
    assert_int_equal(c.acted, (int64_t)(NMOVES - 2 + 7));
    assert_int_equal(c.already, 2);
    assert_int_equal(c.conflicts + c.missing + c.failed + c.kept, 0);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) assert_string_equal(state_of(e), "undone");
    assert_tree(l, l->before); /* every file's SHA-256, every folder, every link */

    /* undo twice: nothing */
    tt_photos_counts c2 = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c2, 0), 0);
    assert_int_equal(c2.acted + c2.already + c2.conflicts + c2.missing + c2.kept, 0);
    assert_tree(l, l->before);
    json_decref(j);
    json_decref(plan);
}

static void test_photos_undo_never_overwrites(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    assert_int_equal(run_all(l, j), 0);
    /* the user puts a new file where a moved one came from */
    assert_int_equal(pf_copy(path_in(l, "notes.txt"), path_in(l, "IMG_0002.jpg")), 0);
    tt_photos_counts c = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c.conflicts, 1);
    assert_int_equal(c.kept, 2); /* by-year/2020 and by-year still hold it */
    char a[65], b[65];
    assert_int_equal(pf_sha256_file(path_in(l, "IMG_0002.jpg"), a), 0);
    assert_int_equal(pf_sha256_file(path_in(l, "notes.txt"), b), 0);
    assert_string_equal(a, b);
    assert_true(exists(path_in(l, "by-year/2020/IMG_0002.jpg")));
    json_t *e = json_array_get(j, 7 + 1);
    assert_string_equal(state_of(e), "done");
    assert_string_equal(json_string_value(json_object_get(e, "problem")), "conflict");
    json_decref(j);
    json_decref(plan);
}

/* Conflicts left by an undo stay in the journal ("done" with a problem) and
 * a second undo, once the user has resolved them, restores the rest. */
static void test_photos_undo_retries_after_conflicts_are_resolved(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    assert_int_equal(run_all(l, j), 0);
    json_t *in_way = json_array_get(j, 7 + 1), *gone = json_array_get(j, 7 + 2);
    assert_int_equal(pf_copy(path_in(l, "notes.txt"), path_in(l, "IMG_0002.jpg")), 0);
    const char *gone_dest = json_string_value(json_object_get(gone, "final_dest"));
    const char *gone_src = json_string_value(json_object_get(gone, "src"));
    char hidden[4096];
    snprintf(hidden, sizeof hidden, "%s", path_in(l, "moved-away.jpg"));
    assert_int_equal(rename(path_in(l, gone_dest), hidden), 0);

    tt_photos_counts c = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c.conflicts, 1);
    assert_int_equal(c.missing, 1);
    assert_string_equal(state_of(in_way), "done");
    assert_string_equal(json_string_value(json_object_get(in_way, "problem")), "conflict");
    assert_string_equal(state_of(gone), "done");
    assert_string_equal(json_string_value(json_object_get(gone, "problem")), "missing");

    /* resolved by hand: the new file removed, the lost one put back */
    assert_int_equal(unlink(path_in(l, "IMG_0002.jpg")), 0);
    assert_int_equal(rename(hidden, path_in(l, gone_src)), 0);
    tt_photos_counts c2 = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c2, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c2.conflicts + c2.missing + c2.failed + c2.kept, 0);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) assert_string_equal(state_of(e), "undone");
    assert_tree(l, l->before);
    json_decref(j);
    json_decref(plan);
}

/* A moved file that was changed or replaced since the move is not the file
 * the organiser moved: undo leaves it where it is and says "changed". */
static void test_photos_undo_leaves_a_changed_file(void **state)
{
    lib *l = *state;
    json_t *plan = the_plan(), *j = new_journal(l, plan);
    assert_int_equal(run_all(l, j), 0);
    json_t *e = json_array_get(j, 7 + 1);
    const char *dest = json_string_value(json_object_get(e, "final_dest"));
    assert_non_null(json_object_get(e, "fp"));
    assert_int_equal(unlink(path_in(l, dest)), 0); /* replaced by another file */
    assert_int_equal(pf_copy(path_in(l, "notes.txt"), path_in(l, dest)), 0);
    tt_photos_counts c = {0};
    assert_int_equal(tt_photos_undo(l->fd, j, &c, TT_PHOTOS_NOSYNC), 0);
    assert_int_equal(c.conflicts, 1);
    assert_string_equal(state_of(e), "done");
    assert_string_equal(json_string_value(json_object_get(e, "problem")), "changed");
    assert_true(exists(path_in(l, dest)));
    assert_false(exists(path_in(l, json_string_value(json_object_get(e, "src")))));
    json_decref(j);
    json_decref(plan);
}

static void test_photos_journal_rejects_malformed(void **state)
{
    lib *l = *state;
    static const char *const bad[] = {
        "{}",
        "[{\"op\": \"move\", \"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\", \"state\": "
        "\"intent\"}]",
        "[{\"op\": \"move\", \"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\", \"final_dest\": "
        "\"x.jpg\", \"state\": \"maybe\"}]",
        "[{\"op\": \"move\", \"src\": \"IMG_0001.jpg\", \"dest\": \"../x.jpg\", \"final_dest\": "
        "\"../x.jpg\", \"state\": \"intent\"}]",
        "[{\"op\": \"move\", \"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\", \"final_dest\": "
        "\"/x.jpg\", \"state\": \"intent\"}]",
        "[{\"op\": \"move\", \"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\", \"final_dest\": "
        "\"x.jpg\", \"state\": \"intent\", \"extra\": true}]",
        "[{\"op\": \"delete\", \"dest\": \"x.jpg\", \"final_dest\": \"x.jpg\", \"state\": "
        "\"intent\"}]",
        "[{\"op\": \"mkdir\", \"src\": \"a\", \"dest\": \"x\", \"final_dest\": \"x\", \"state\": "
        "\"intent\"}]",
        /* a good entry first: nothing at all may happen */
        "[{\"op\": \"move\", \"src\": \"IMG_0001.jpg\", \"dest\": \"x.jpg\", \"final_dest\": "
        "\"x.jpg\", \"state\": \"intent\"}, 7]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t err;
        json_t *j = json_loads(bad[i], 0, &err);
        assert_non_null(j);
        assert_int_equal(tt_photos_journal_recover(l->fd, j, NULL, 0), TT_EINVAL);
        assert_int_equal(tt_photos_undo(l->fd, j, NULL, 0), TT_EINVAL);
        json_decref(j);
    }
    assert_tree(l, l->before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_photos_plan_rejects_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_mkdir_never_through_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_move_never_overwrites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_journal_runs_the_plan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_journal_batched_syncs_each_folder_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_photos_journal_conflict_then_free_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_photos_journal_recovers_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_undo_restores_byte_for_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_undo_never_overwrites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_undo_retries_after_conflicts_are_resolved,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_undo_leaves_a_changed_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photos_journal_rejects_malformed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
