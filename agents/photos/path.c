/* Walking beneath a root without following symlinks (see path.h). */
#include "agents/photos/path.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "protocol/names.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

int tt_photos_errno(int e)
{
    switch (e) {
    case ENOENT:
        return TT_ENOTFOUND;
    case ELOOP: /* O_NOFOLLOW met a symlink (a file's; for folders see below) */
    case EACCES:
    case EPERM:
        return TT_EFORBIDDEN;
    case ENOTDIR:
    case ENAMETOOLONG:
    case EINVAL:
        return TT_EINVAL;
    case EEXIST:
    case ENOTEMPTY:
        return TT_ECONFLICT;
    case ENOMEM:
        return TT_ENOMEM;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
        return TT_EFULL;
    default:
        return TT_EIO;
    }
}

int tt_photos_utf8_valid(const char *s, size_t n)
{
    unsigned cp;
    for (size_t i = 0, step; i < n; i += step)
        if (!(step = tt_name_utf8_next(s + i, n - i, &cp)))
            return 0;
    return 1;
}

int tt_photos_rel_check(const char *rel, unsigned flags, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!rel || !*rel) {
        *why = "empty path";
        return TT_EINVAL;
    }
    size_t n = strlen(rel);
    if (n > TT_PHOTOS_REL_MAX) {
        *why = "path too long";
        return TT_EINVAL;
    }
    if (rel[0] == '/') {
        *why = "absolute path";
        return TT_EINVAL;
    }
    if (!tt_photos_utf8_valid(rel, n)) {
        *why = "path is not valid UTF-8";
        return TT_EINVAL;
    }
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0) {
            *why = "empty path component";
            return TT_EINVAL;
        }
        if (len > TT_PHOTOS_NAME_MAX) {
            *why = "path component too long";
            return TT_EINVAL;
        }
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            *why = "'.' or '..' component";
            return TT_EINVAL;
        }
        if ((flags & TT_PHOTOS_REL_STRICT) && tt_name_chars_check(p, len, NULL) != 0) {
            *why = "control character, or an invisible or bidi one, in path";
            return TT_EINVAL;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    *why = NULL;
    return TT_OK;
}

/* open(O_DIRECTORY | O_NOFOLLOW) fails on a symlink with ENOTDIR (the
 * directory check comes first) or ELOOP; either way, say which it was. */
static int dir_open_error(int dirfd, const char *name, int e)
{
    struct stat st;
    if ((e == ENOTDIR || e == ELOOP) && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        return TT_EFORBIDDEN;
    return tt_photos_errno(e);
}

int tt_photos_open_root(const char *path, int *fd)
{
    *fd = -1;
    if (!path || !*path)
        return TT_EINVAL;
    int f = open(path, DIR_FLAGS);
    if (f < 0)
        return dir_open_error(AT_FDCWD, path, errno);
    *fd = f;
    return TT_OK;
}

/* One step down: opens `name` in cur as a directory, never through a symlink,
 * creating it first when asked. */
static int step(int cur, const char *name, int create, int *created, int *out)
{
    int f = openat(cur, name, DIR_FLAGS);
    if (f < 0 && errno == ENOENT && create) {
        if (mkdirat(cur, name, 0755) == 0) {
            if (created)
                (*created)++;
        } else if (errno != EEXIST) {
            return tt_photos_errno(errno);
        }
        /* If someone swapped in a symlink since, O_NOFOLLOW refuses it. */
        f = openat(cur, name, DIR_FLAGS);
    }
    if (f < 0)
        return dir_open_error(cur, name, errno);
    *out = f;
    return TT_OK;
}

int tt_photos_open_dir(int rootfd, const char *dir, int create, int *created, int *fd)
{
    *fd = -1;
    if (created)
        *created = 0;
    if (!dir || !*dir) {
        int f = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
        if (f < 0)
            return tt_photos_errno(errno);
        *fd = f;
        return TT_OK;
    }
    int rc = tt_photos_rel_check(dir, 0, NULL);
    if (rc)
        return rc;
    char buf[TT_PHOTOS_REL_MAX + 1];
    memcpy(buf, dir, strlen(dir) + 1);

    int cur = rootfd;
    char *p = buf;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        int next = -1;
        rc = step(cur, p, create, created, &next);
        if (cur != rootfd)
            close(cur);
        if (rc)
            return rc;
        cur = next;
        if (!slash)
            break;
        p = slash + 1;
    }
    *fd = cur;
    return TT_OK;
}

int tt_photos_open_parent(int rootfd, const char *rel, int *dirfd, char *leaf)
{
    *dirfd = -1;
    int rc = tt_photos_rel_check(rel, 0, NULL);
    if (rc)
        return rc;
    const char *slash = strrchr(rel, '/');
    char dir[TT_PHOTOS_REL_MAX + 1];
    if (slash) {
        size_t dn = (size_t)(slash - rel);
        memcpy(dir, rel, dn);
        dir[dn] = '\0';
        memcpy(leaf, slash + 1, strlen(slash + 1) + 1);
    } else {
        dir[0] = '\0';
        memcpy(leaf, rel, strlen(rel) + 1);
    }
    return tt_photos_open_dir(rootfd, dir, 0, NULL, dirfd);
}
