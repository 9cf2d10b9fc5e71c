/* Move plans: validation against the disk and the journal built from one
 * (see move.h). A plan comes from a model, so it is checked as untrusted
 * input: strict JSON shape, clean relative paths, no symlink anywhere in
 * what exists already, no path used twice. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agents/photos/move.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static int strs_add(strs *s, const char *str, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return TT_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strndup(str, len)))
        return TT_ENOMEM;
    s->n++;
    return TT_OK;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes repeats; the sorted order puts a folder before its
 * subfolders (a prefix sorts first). */
static void strs_sort_unique(strs *s)
{
    if (!s->n)
        return;
    qsort(s->v, s->n, sizeof *s->v, cmp_str);
    size_t o = 1;
    for (size_t i = 1; i < s->n; i++) {
        if (!strcmp(s->v[i], s->v[o - 1]))
            free(s->v[i]);
        else
            s->v[o++] = s->v[i];
    }
    s->n = o;
}

static int strs_has(const strs *s, const char *str)
{
    return s->n && bsearch(&str, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

typedef struct checker {
    int rootfd;
    json_t *problems;
    size_t nproblems;
    int nomem;
} checker;

static void problem(checker *c, const char *path, const char *reason)
{
    c->nproblems++;
    if (json_array_size(c->problems) >= TT_PHOTOS_PROBLEMS_MAX)
        return;
    /* path may be anything the model sent: keep it only if it is a string */
    json_t *p = json_pack("{s:s?, s:s}", "path", path, "reason", reason);
    if (!p || json_array_append_new(c->problems, p))
        c->nomem = 1;
}

/* The part of a folder path that exists must be real folders: walks it one
 * component at a time, stopping at the first missing one. */
static void check_existing_dir(checker *c, const char *rel)
{
    char buf[TT_PHOTOS_REL_MAX + 1];
    size_t n = strlen(rel);
    for (size_t i = 0; i <= n; i++) {
        if (rel[i] != '/' && rel[i] != '\0')
            continue;
        memcpy(buf, rel, i);
        buf[i] = '\0';
        int fd, rc = tt_photos_open_dir(c->rootfd, buf, 0, NULL, &fd);
        if (rc == TT_OK) {
            close(fd);
            continue;
        }
        if (rc == TT_ENOTFOUND)
            return;
        problem(c, rel,
                rc == TT_EFORBIDDEN ? "symlink or no permission in path"
                : rc == TT_EINVAL   ? "a file is in the way of a folder"
                                    : "cannot read folder");
        return;
    }
}

static void check_source(checker *c, const char *src)
{
    char leaf[TT_PHOTOS_NAME_MAX + 1];
    int pfd, rc = tt_photos_open_parent(c->rootfd, src, &pfd, leaf);
    if (rc) {
        problem(c, src,
                rc == TT_EFORBIDDEN ? "symlink or no permission in path" : "source missing");
        return;
    }
    struct stat st;
    if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0)
        problem(c, src, errno == ENOENT ? "source missing" : "cannot read source");
    else if (S_ISLNK(st.st_mode))
        problem(c, src, "source is a symlink");
    else if (!S_ISREG(st.st_mode))
        problem(c, src, "source is not a regular file");
    close(pfd);
}

static void check_dest_dir(checker *c, const char *dest, const strs *folders)
{
    const char *slash = strrchr(dest, '/');
    if (!slash)
        return; /* the root itself */
    char dir[TT_PHOTOS_REL_MAX + 1];
    memcpy(dir, dest, (size_t)(slash - dest));
    dir[slash - dest] = '\0';
    if (strs_has(folders, dir))
        return; /* its existing part was checked with the folders */
    int fd, rc = tt_photos_open_dir(c->rootfd, dir, 0, NULL, &fd);
    if (rc == TT_OK)
        close(fd);
    else
        problem(c, dest,
                rc == TT_ENOTFOUND    ? "destination folder neither planned nor existing"
                : rc == TT_EFORBIDDEN ? "symlink or no permission in path"
                : rc == TT_EINVAL     ? "a file is in the way of a folder"
                                      : "cannot read destination folder");
}

static void check_repeats(checker *c, strs *s, const char *reason)
{
    strs copy = *s;
    char **v = s->n ? malloc(s->n * sizeof *v) : NULL;
    if (s->n && !v) {
        c->nomem = 1;
        return;
    }
    if (s->n)
        memcpy(v, s->v, s->n * sizeof *v);
    copy.v = v;
    if (copy.n)
        qsort(copy.v, copy.n, sizeof *copy.v, cmp_str);
    for (size_t i = 1; i < copy.n; i++)
        if (!strcmp(copy.v[i], copy.v[i - 1]) && (i < 2 || strcmp(copy.v[i], copy.v[i - 2])))
            problem(c, copy.v[i], reason);
    free(v);
}

/* The plan's outer shape and size. Returns 0, or 1 with a problem recorded. */
static int check_plan_shape(checker *c, json_t *plan, json_t **jfolders, json_t **jmoves)
{
    json_error_t jerr;
    if (json_unpack_ex(plan, &jerr, JSON_STRICT, "{s?o, s:o}", "folders", jfolders, "moves",
                       jmoves) ||
        (*jfolders && !json_is_array(*jfolders)) || !json_is_array(*jmoves)) {
        problem(c, NULL, "plan must be {folders: [paths], moves: [{src, dest}]}");
        return 1;
    }
    if (json_array_size(*jmoves) > TT_PHOTOS_PLAN_MAX_MOVES ||
        json_array_size(*jfolders) > TT_PHOTOS_PLAN_MAX_FOLDERS) {
        problem(c, NULL, "plan too large");
        return 1;
    }
    return 0;
}

/* Checks the planned folders and fills *folders with each one and its
 * parents, sorted. */
static void check_folders(checker *c, const json_t *jfolders, strs *folders)
{
    size_t i;
    json_t *v;
    json_array_foreach(jfolders, i, v)
    {
        const char *f = json_string_value(v), *why;
        if (!f) {
            problem(c, NULL, "folder is not a string");
            continue;
        }
        if (tt_photos_rel_check(f, TT_PHOTOS_REL_STRICT, &why)) {
            problem(c, f, why);
            continue;
        }
        check_existing_dir(c, f);
        for (const char *p = f;; p++) /* the folder and every parent */
            if (*p == '/' || *p == '\0') {
                if (strs_add(folders, f, (size_t)(p - f)))
                    c->nomem = 1;
                if (!*p)
                    break;
            }
    }
    strs_sort_unique(folders);
}

/* One move on its own; its paths are added to srcs and dests when well formed. */
static void check_move(checker *c, json_t *move, const strs *folders, strs *srcs, strs *dests)
{
    const char *src, *dest, *why;
    json_error_t jerr;
    if (json_unpack_ex(move, &jerr, JSON_STRICT, "{s:s, s:s}", "src", &src, "dest", &dest)) {
        problem(c, NULL, "move must be {src, dest}");
        return;
    }
    if (tt_photos_rel_check(src, 0, &why)) {
        problem(c, src, why);
        return;
    }
    if (tt_photos_rel_check(dest, TT_PHOTOS_REL_STRICT, &why)) {
        problem(c, dest, why);
        return;
    }
    if (!strcmp(src, dest)) {
        problem(c, src, "source and destination are the same");
        return;
    }
    if (strs_add(srcs, src, strlen(src)) || strs_add(dests, dest, strlen(dest)))
        c->nomem = 1;
    check_source(c, src);
    check_dest_dir(c, dest, folders);
    if (strs_has(folders, dest))
        problem(c, dest, "destination is a planned folder");
}

/* Every move, then the moves against each other: no path used twice, no
 * destination that another move takes away. */
static void check_moves(checker *c, const json_t *jmoves, const strs *folders)
{
    strs srcs = {0}, dests = {0};
    size_t i;
    json_t *v;
    json_array_foreach(jmoves, i, v)
    {
        check_move(c, v, folders, &srcs, &dests);
    }
    check_repeats(c, &srcs, "source used twice");
    check_repeats(c, &dests, "destination used twice");
    if (srcs.n)
        qsort(srcs.v, srcs.n, sizeof *srcs.v, cmp_str);
    for (i = 0; i < dests.n; i++)
        if (strs_has(&srcs, dests.v[i]))
            problem(c, dests.v[i], "destination is another move's source");
    strs_free(&srcs);
    strs_free(&dests);
}

/* Validates; on success fills *folders with every planned folder and its
 * parents, sorted. */
static int validate(int rootfd, const json_t *plan_c, json_t **problems, strs *folders)
{
    json_t *jfolders = NULL, *jmoves = NULL;
    checker c = {.rootfd = rootfd, .problems = json_array()};
    *problems = NULL;
    if (!c.problems)
        return TT_ENOMEM;
    if (!check_plan_shape(&c, (json_t *)plan_c, &jfolders, &jmoves)) {
        check_folders(&c, jfolders, folders);
        check_moves(&c, jmoves, folders);
    }
    int rc = c.nomem ? TT_ENOMEM : c.nproblems ? TT_EINVAL : TT_OK;
    if (rc == TT_EINVAL) {
        *problems = c.problems;
        c.problems = NULL;
    }
    json_decref(c.problems);
    return rc;
}

int tt_photos_plan_validate(int rootfd, const json_t *plan, json_t **problems)
{
    strs folders = {0};
    int rc = validate(rootfd, plan, problems, &folders);
    strs_free(&folders);
    return rc;
}

int tt_photos_journal_new(int rootfd, const json_t *plan_c, json_t **journal, json_t **problems)
{
    strs folders = {0};
    json_t *plan = (json_t *)plan_c, *j = NULL;
    *journal = NULL;
    int rc = validate(rootfd, plan, problems, &folders);
    if (rc)
        goto out;
    rc = TT_ENOMEM;
    if (!(j = json_array()))
        goto out;
    for (size_t i = 0; i < folders.n; i++) {
        int fd, r = tt_photos_open_dir(rootfd, folders.v[i], 0, NULL, &fd);
        if (r == TT_OK) {
            close(fd); /* exists already: not ours to remove on undo */
            continue;
        }
        if (r != TT_ENOTFOUND) {
            rc = r;
            goto out;
        }
        if (json_array_append_new(j, json_pack("{s:s, s:s, s:s, s:s}", "op", "mkdir", "dest",
                                               folders.v[i], "final_dest", folders.v[i], "state",
                                               "intent")))
            goto out;
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(plan, "moves"), i, m)
    {
        const char *src = json_string_value(json_object_get(m, "src"));
        const char *dest = json_string_value(json_object_get(m, "dest"));
        if (json_array_append_new(j,
                                  json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "move", "src", src,
                                            "dest", dest, "final_dest", dest, "state", "intent")))
            goto out;
    }
    *journal = j;
    j = NULL;
    rc = TT_OK;
out:
    json_decref(j);
    strs_free(&folders);
    return rc;
}
