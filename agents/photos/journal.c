/* The journal's pure functions: apply, resolve, recover, undo (see move.h).
 *
 * None of them trusts the journal's states alone: before acting, each asks
 * the disk (tt_photos_move_check) whether the effect is already there. That
 * is what makes a crash between an operation and the persisting of its
 * "done" harmless, and running recovery or undo twice a no-op. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "agents/photos/move.h"
#include "agents/photos/move_int.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"

typedef enum op { OP_MKDIR, OP_MOVE } op;
typedef enum state { ST_INTENT, ST_DONE, ST_UNDONE } state;

typedef struct entry {
    op op;
    state state;
    const char *src, *dest, *final_dest; /* borrowed from the JSON: valid until it changes */
    const char *fp;                      /* the moved file's fingerprint once done, or NULL */
} entry;

static int decode(json_t *e, entry *out)
{
    const char *o, *st, *problem = NULL;
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    if (json_unpack_ex(e, &jerr, JSON_STRICT, "{s:s, s?s, s:s, s:s, s:s, s?s, s?s}", "op", &o,
                       "src", &out->src, "dest", &out->dest, "state", &st, "final_dest",
                       &out->final_dest, "problem", &problem, "fp", &out->fp))
        return TT_EINVAL;
    if (!strcmp(o, "mkdir") && !out->src)
        out->op = OP_MKDIR;
    else if (!strcmp(o, "move") && out->src)
        out->op = OP_MOVE;
    else
        return TT_EINVAL;
    if (!strcmp(st, "intent"))
        out->state = ST_INTENT;
    else if (!strcmp(st, "done"))
        out->state = ST_DONE;
    else if (!strcmp(st, "undone"))
        out->state = ST_UNDONE;
    else
        return TT_EINVAL;
    if ((out->src && tt_photos_rel_check(out->src, 0, NULL)) ||
        tt_photos_rel_check(out->dest, 0, NULL) || tt_photos_rel_check(out->final_dest, 0, NULL) ||
        (out->src && (!strcmp(out->src, out->dest) || !strcmp(out->src, out->final_dest))))
        return TT_EINVAL;
    return TT_OK;
}

/* Who the file at rel is: inode, size and modification time, which a rename
 * keeps. Undo moves a file back only if it is still the one moved. */
static int fingerprint(int rootfd, const char *rel, char *out, size_t n)
{
    char leaf[TT_PHOTOS_NAME_MAX + 1];
    int pfd, rc = tt_photos_open_parent(rootfd, rel, &pfd, leaf);
    if (rc)
        return rc;
    struct stat st;
    if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = tt_photos_errno(errno);
    else
        snprintf(out, n, "%ju:%jd:%jd.%09ld", (uintmax_t)st.st_ino, (intmax_t)st.st_size,
                 (intmax_t)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    close(pfd);
    return rc;
}

static int mark(json_t *e, const char *st)
{
    json_object_del(e, "problem");
    return json_object_set_new(e, "state", json_string(st)) ? TT_ENOMEM : TT_OK;
}

static int flag(json_t *e, const char *problem, int rc)
{
    return json_object_set_new(e, "problem", json_string(problem)) ? TT_ENOMEM : rc;
}

/* Puts the folders an entry changes into dirs: the folders holding both ends
 * of a move, or the parent of each level of a made folder. */
static int touched(int rootfd, const entry *en, tt_photos_dirs *dirs)
{
    if (en->op == OP_MOVE) {
        int rc = tt_photos_dirs_add_parent(rootfd, dirs, en->src);
        return rc ? rc : tt_photos_dirs_add_parent(rootfd, dirs, en->final_dest);
    }
    char buf[TT_PHOTOS_REL_MAX + 1];
    snprintf(buf, sizeof buf, "%s", en->final_dest);
    for (char *slash;; *slash = '\0') {
        int rc = tt_photos_dirs_add_parent(rootfd, dirs, buf);
        if (rc || !(slash = strrchr(buf, '/')))
            return rc;
    }
}

/* tt_photos_journal_apply, the folders to sync in dirs when not NULL (the
 * operations then skip their own fsyncs). */
static int apply(int rootfd, json_t *e, unsigned flags, tt_photos_dirs *dirs, int *acted)
{
    entry en;
    int rc = decode(e, &en), did = 0;
    if (acted)
        *acted = 0;
    if (rc || en.state != ST_INTENT)
        return rc;
    if (dirs)
        flags |= TT_PHOTOS_NOSYNC;
    if (en.op == OP_MKDIR) {
        rc = tt_photos_mkdir(rootfd, en.final_dest, &did, flags);
        if (rc)
            return flag(e, "error", rc);
    } else {
        tt_photos_check chk;
        rc = tt_photos_move_check(rootfd, en.src, en.final_dest, &chk);
        if (rc)
            return flag(e, "error", rc);
        switch (chk) {
        case TT_PHOTOS_NOT_DONE:
            rc = tt_photos_move(rootfd, en.src, en.final_dest, flags);
            if (rc == TT_ECONFLICT)
                return flag(e, "conflict", rc); /* appeared since the check */
            if (rc == TT_ENOTFOUND)
                return flag(e, "missing", rc);
            if (rc)
                return flag(e, "error", rc);
            did = 1;
            break;
        case TT_PHOTOS_DONE:
            break;
        case TT_PHOTOS_CONFLICT:
            return flag(e, "conflict", TT_ECONFLICT);
        case TT_PHOTOS_MISSING:
            return flag(e, "missing", TT_ENOTFOUND);
        default:
            return TT_EINTERNAL;
        }
    }
    if (en.op == OP_MOVE) {
        char fp[96];
        rc = fingerprint(rootfd, en.final_dest, fp, sizeof fp);
        if (rc)
            return flag(e, "error", rc);
        if (json_object_set_new(e, "fp", json_string(fp)))
            return TT_ENOMEM;
    }
    if (dirs && (rc = touched(rootfd, &en, dirs)))
        return flag(e, "error", rc);
    if (acted)
        *acted = did > 0;
    return mark(e, "done");
}

int tt_photos_journal_apply(int rootfd, json_t *e, unsigned flags, int *acted)
{
    return apply(rootfd, e, flags, NULL, acted);
}

int tt_photos_journal_apply_batched(int rootfd, json_t *e, tt_photos_dirs *dirs, int *acted)
{
    return apply(rootfd, e, 0, dirs, acted);
}

int tt_photos_journal_resolve(int rootfd, json_t *e)
{
    entry en;
    int rc = decode(e, &en);
    if (rc)
        return rc;
    if (en.op != OP_MOVE || en.state != ST_INTENT)
        return TT_ECONFLICT;
    char name[TT_PHOTOS_REL_MAX + 1];
    rc = tt_photos_free_name(rootfd, en.dest, name, sizeof name);
    if (rc)
        return rc;
    json_object_del(e, "problem");
    return json_object_set_new(e, "final_dest", json_string(name)) ? TT_ENOMEM : TT_OK;
}

static int check_all(json_t *journal)
{
    if (!json_is_array(journal))
        return TT_EINVAL;
    size_t i;
    json_t *e;
    entry en;
    json_array_foreach(journal, i, e)
    {
        if (decode(e, &en))
            return TT_EINVAL;
    }
    return TT_OK;
}

/* Files a result under counts; returns rc if it is an OS error. */
static int tally(tt_photos_counts *c, int rc, int acted)
{
    switch (rc) {
    case TT_OK:
        if (acted)
            c->acted++;
        else
            c->already++;
        return TT_OK;
    case TT_ECONFLICT:
        c->conflicts++;
        return TT_OK;
    case TT_ENOTFOUND:
        c->missing++;
        return TT_OK;
    default:
        c->failed++;
        return rc;
    }
}

typedef int (*entry_fn)(int rootfd, json_t *e, const entry *en, tt_photos_counts *c, unsigned flags,
                        tt_photos_dirs *dirs);

/* Check the whole journal, then run fn on every entry, in order or last
 * first, counting into counts (may be NULL). Every entry is tried; the first
 * error is returned. Unless flags say NOSYNC, the folders changed are synced
 * once each at the end (fn gets dirs and NOSYNC), not after each entry. */
static int walk(int rootfd, json_t *journal, tt_photos_counts *counts, unsigned flags,
                int backwards, entry_fn fn)
{
    tt_photos_counts dummy = {0};
    if (!counts)
        counts = &dummy;
    int rc = check_all(journal), first = TT_OK;
    if (rc)
        return rc;
    tt_photos_dirs *dirs = NULL;
    if (!(flags & TT_PHOTOS_NOSYNC)) {
        if (!(dirs = calloc(1, sizeof *dirs)))
            return TT_ENOMEM;
        flags |= TT_PHOTOS_NOSYNC;
    }
    size_t n = json_array_size(journal);
    for (size_t k = 0; k < n; k++) {
        json_t *e = json_array_get(journal, backwards ? n - 1 - k : k);
        entry en;
        decode(e, &en);
        rc = fn(rootfd, e, &en, counts, flags, dirs);
        if (rc && !first)
            first = rc;
    }
    if (dirs) {
        rc = tt_photos_dirs_sync(rootfd, dirs);
        if (rc && !first)
            first = rc;
        free(dirs);
    }
    return first;
}

/* Recovery finishes the moves that were only intended. */
static int recover_one(int rootfd, json_t *e, const entry *en, tt_photos_counts *c, unsigned flags,
                       tt_photos_dirs *dirs)
{
    if (en->state != ST_INTENT)
        return TT_OK;
    int acted = 0;
    int rc = apply(rootfd, e, flags, dirs, &acted);
    return tally(c, rc, acted);
}

int tt_photos_journal_recover(int rootfd, json_t *journal, tt_photos_counts *counts, unsigned flags)
{
    return walk(rootfd, journal, counts, flags, 0, recover_one);
}

static int undo_mkdir(int rootfd, json_t *e, const entry *en, tt_photos_counts *c, unsigned flags,
                      tt_photos_dirs *dirs)
{
    char leaf[TT_PHOTOS_NAME_MAX + 1];
    int pfd, rc = tt_photos_open_parent(rootfd, en->final_dest, &pfd, leaf);
    if (rc == TT_ENOTFOUND) { /* its parent is gone, so is it */
        c->already++;
        return mark(e, "undone");
    }
    if (rc) {
        c->failed++;
        return rc;
    }
    if (unlinkat(pfd, leaf, AT_REMOVEDIR) == 0) {
        c->acted++;
        rc = mark(e, "undone");
        if (!rc && dirs)
            rc = tt_photos_dirs_add_parent(rootfd, dirs, en->final_dest);
        else if (!rc && !(flags & TT_PHOTOS_NOSYNC) && fsync(pfd) != 0)
            rc = TT_EIO;
    } else if (errno == ENOENT) {
        c->already++;
        rc = mark(e, "undone");
    } else if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) {
        c->kept++; /* something else lives there now: keep it, entry stays done */
    } else {
        c->failed++;
        rc = tt_photos_errno(errno);
    }
    close(pfd);
    return rc;
}

static int undo_move(int rootfd, json_t *e, const entry *en, tt_photos_counts *c, unsigned flags,
                     tt_photos_dirs *dirs)
{
    tt_photos_check chk;
    int rc = tt_photos_move_check(rootfd, en->src, en->final_dest, &chk);
    if (rc) {
        c->failed++;
        return rc;
    }
    char fp[96];
    if (chk == TT_PHOTOS_DONE && en->fp &&
        (rc = fingerprint(rootfd, en->final_dest, fp, sizeof fp)) == TT_OK && strcmp(fp, en->fp)) {
        c->conflicts++; /* changed or replaced since the move: not ours to move */
        return flag(e, "changed", TT_OK);
    }
    if (rc) {
        c->failed++;
        return flag(e, "error", rc);
    }
    switch (chk) {
    case TT_PHOTOS_DONE:
        /* back to the source name, which we did not choose: loose check */
        rc = tt_photos_move_impl(rootfd, en->final_dest, en->src, flags, 0);
        if (!rc && dirs && !(rc = tt_photos_dirs_add_parent(rootfd, dirs, en->src)))
            rc = tt_photos_dirs_add_parent(rootfd, dirs, en->final_dest);
        if (rc == TT_ECONFLICT) {
            c->conflicts++;
            return flag(e, "conflict", TT_OK);
        }
        if (rc) {
            c->failed++;
            return flag(e, "error", rc);
        }
        c->acted++;
        return mark(e, "undone");
    case TT_PHOTOS_NOT_DONE: /* never moved, or moved back before a crash */
        c->already++;
        return mark(e, "undone");
    case TT_PHOTOS_CONFLICT:
        c->conflicts++;
        return flag(e, "conflict", TT_OK);
    case TT_PHOTOS_MISSING:
        if (en->state == ST_INTENT) { /* never moved: nothing to put back */
            c->already++;
            return mark(e, "undone");
        }
        c->missing++; /* the moved file is gone: kept, so undo can be retried */
        return flag(e, "missing", TT_OK);
    default:
        return TT_EINTERNAL;
    }
}

/* Undo puts back what was done, newest first. */
static int undo_one(int rootfd, json_t *e, const entry *en, tt_photos_counts *c, unsigned flags,
                    tt_photos_dirs *dirs)
{
    if (en->state == ST_UNDONE)
        return TT_OK;
    return en->op == OP_MKDIR ? undo_mkdir(rootfd, e, en, c, flags, dirs)
                              : undo_move(rootfd, e, en, c, flags, dirs);
}

int tt_photos_undo(int rootfd, json_t *journal, tt_photos_counts *counts, unsigned flags)
{
    return walk(rootfd, journal, counts, flags, 1, undo_one);
}
