/* The file operations under the journal (see move.h): mkdir, move, check.
 *
 * Each resolves its paths beneath the root with path.h (no symlink is ever
 * followed), refuses to replace anything, and fsyncs the directories it
 * changed so that what it reports done survives a power cut, not just a
 * crash of the process. */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE */
#include "agents/photos/move.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agents/photos/move_int.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"

const char *tt_photos_check_name(tt_photos_check c)
{
    switch (c) {
    case TT_PHOTOS_NOT_DONE:
        return "not_done";
    case TT_PHOTOS_DONE:
        return "done";
    case TT_PHOTOS_CONFLICT:
        return "conflict";
    case TT_PHOTOS_MISSING:
        return "missing";
    default:
        return "invalid";
    }
}

static int sync_fd(int fd, unsigned flags)
{
    if (flags & TT_PHOTOS_NOSYNC)
        return TT_OK;
    return fsync(fd) == 0 ? TT_OK : TT_EIO;
}

int tt_photos_mkdir(int rootfd, const char *rel, int *created, unsigned flags)
{
    int n = 0, fd, rc = tt_photos_rel_check(rel, TT_PHOTOS_REL_STRICT, NULL);
    if (created)
        *created = 0;
    if (rc)
        return rc;
    rc = tt_photos_open_dir(rootfd, rel, 1, &n, &fd);
    if (rc)
        return rc;
    close(fd);
    if (created)
        *created = n;
    /* Each of the n new folders is an entry in its parent: sync those. */
    char buf[TT_PHOTOS_REL_MAX + 1];
    snprintf(buf, sizeof buf, "%s", rel);
    for (int k = 0; k < n && !rc && !(flags & TT_PHOTOS_NOSYNC); k++) {
        char leaf[TT_PHOTOS_NAME_MAX + 1];
        int pfd;
        rc = tt_photos_open_parent(rootfd, buf, &pfd, leaf);
        if (rc)
            break;
        rc = sync_fd(pfd, flags);
        close(pfd);
        char *slash = strrchr(buf, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    return rc;
}

int tt_photos_move_impl(int rootfd, const char *src, const char *dest, unsigned flags,
                        unsigned dest_check)
{
    int rc = tt_photos_rel_check(src, 0, NULL);
    if (!rc)
        rc = tt_photos_rel_check(dest, dest_check, NULL);
    if (rc)
        return rc;
    if (!strcmp(src, dest))
        return TT_EINVAL;
    char sleaf[TT_PHOTOS_NAME_MAX + 1], dleaf[TT_PHOTOS_NAME_MAX + 1];
    int sfd = -1, dfd = -1;
    rc = tt_photos_open_parent(rootfd, src, &sfd, sleaf);
    if (!rc)
        rc = tt_photos_open_parent(rootfd, dest, &dfd, dleaf);
    if (rc)
        goto out;
    struct stat st;
    if (fstatat(sfd, sleaf, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        rc = tt_photos_errno(errno);
        goto out;
    }
    if (S_ISLNK(st.st_mode)) {
        rc = TT_EFORBIDDEN;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = TT_EINVAL;
        goto out;
    }
    if (renameat2(sfd, sleaf, dfd, dleaf, RENAME_NOREPLACE) != 0) {
        /* EINVAL: the filesystem has no RENAME_NOREPLACE; never fall back
         * to a plain rename, which could overwrite. */
        rc = errno == EEXIST ? TT_ECONFLICT : errno == EINVAL ? TT_EIO : tt_photos_errno(errno);
        goto out;
    }
    rc = sync_fd(dfd, flags);
    if (!rc)
        rc = sync_fd(sfd, flags);
out:
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

int tt_photos_move(int rootfd, const char *src, const char *dest, unsigned flags)
{
    return tt_photos_move_impl(rootfd, src, dest, flags, TT_PHOTOS_REL_STRICT);
}

/* *present for rel beneath root: a missing parent, or a file where a
 * parent folder should be, means absent; a symlink in the path is an error. */
int tt_photos_present(int rootfd, const char *rel, int *present)
{
    *present = 0;
    char leaf[TT_PHOTOS_NAME_MAX + 1];
    int pfd, rc = tt_photos_rel_check(rel, 0, NULL);
    if (rc)
        return rc;
    rc = tt_photos_open_parent(rootfd, rel, &pfd, leaf);
    if (rc == TT_ENOTFOUND || rc == TT_EINVAL)
        return TT_OK;
    if (rc)
        return rc;
    struct stat st;
    if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0)
        *present = 1;
    else if (errno != ENOENT)
        rc = tt_photos_errno(errno);
    close(pfd);
    return rc;
}

int tt_photos_move_check(int rootfd, const char *src, const char *dest, tt_photos_check *out)
{
    int s, d, rc = tt_photos_present(rootfd, src, &s);
    if (!rc)
        rc = tt_photos_present(rootfd, dest, &d);
    if (rc)
        return rc;
    *out = s && !d   ? TT_PHOTOS_NOT_DONE
           : !s && d ? TT_PHOTOS_DONE
           : s && d  ? TT_PHOTOS_CONFLICT
                     : TT_PHOTOS_MISSING;
    return TT_OK;
}

int tt_photos_free_name(int rootfd, const char *dest, char *out, size_t outlen)
{
    int rc = tt_photos_rel_check(dest, TT_PHOTOS_REL_STRICT, NULL);
    if (rc)
        return rc;
    const char *slash = strrchr(dest, '/');
    const char *base = slash ? slash + 1 : dest;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        dot = base + strlen(base); /* no extension (".hidden" has none) */
    int dirlen = (int)(base - dest), stemlen = (int)(dot - base);

    char cand[TT_PHOTOS_REL_MAX + 1];
    for (int k = 1; k <= TT_PHOTOS_SUFFIX_MAX; k++) {
        int n = k == 1 ? snprintf(cand, sizeof cand, "%s", dest)
                       : snprintf(cand, sizeof cand, "%.*s%.*s (%d)%s", dirlen, dest, stemlen, base,
                                  k, dot);
        if (n < 0 || (size_t)n >= sizeof cand || tt_photos_rel_check(cand, 0, NULL))
            return TT_ETOOLARGE;
        int present;
        rc = tt_photos_present(rootfd, cand, &present);
        if (rc)
            return rc;
        if (!present) {
            if ((size_t)n >= outlen)
                return TT_ETOOLARGE;
            memcpy(out, cand, (size_t)n + 1);
            return TT_OK;
        }
    }
    return TT_EFULL;
}

void tt_photos_dirs_clear(tt_photos_dirs *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->rel[i]);
    d->n = 0;
}

int tt_photos_dirs_sync(int rootfd, tt_photos_dirs *d)
{
    int first = TT_OK;
    for (size_t i = 0; i < d->n; i++) {
        int fd = -1, rc = TT_OK;
        if (!*d->rel[i])
            fd = dup(rootfd);
        else
            rc = tt_photos_open_dir(rootfd, d->rel[i], 0, NULL, &fd);
        if (rc == TT_ENOTFOUND)
            continue; /* removed since: its entries went with it */
        if (!rc && fd < 0)
            rc = tt_photos_errno(errno);
        if (!rc && fsync(fd) != 0)
            rc = TT_EIO;
        if (fd >= 0)
            close(fd);
        if (rc && !first)
            first = rc;
    }
    tt_photos_dirs_clear(d);
    return first;
}

int tt_photos_dirs_add_parent(int rootfd, tt_photos_dirs *d, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    size_t len = slash ? (size_t)(slash - rel) : 0;
    /* Newest first: a batch mostly repeats the folders it just touched. */
    for (size_t i = d->n; i-- > 0;)
        if (strlen(d->rel[i]) == len && !memcmp(d->rel[i], rel, len))
            return TT_OK;
    if (d->n == TT_PHOTOS_DIRS_MAX) {
        int rc = tt_photos_dirs_sync(rootfd, d);
        if (rc)
            return rc;
    }
    char *copy = strndup(rel, len);
    if (!copy)
        return TT_ENOMEM;
    d->rel[d->n++] = copy;
    return TT_OK;
}
