/* Which folder is a user's library, and a photo's thumbnail (thumb.h). */
#include "agents/photos/thumb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agents/photos/meta.h"
#include "agents/photos/names.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"
#include "protocol/names.h"

const char *tt_photos_tenant_folder(const tt_agent_env *env, const char *tenant)
{
    /* "default": keys and tokens that name none; "local": open mode */
    int less = strcmp(tenant, "default") == 0 || (env->open_mode && strcmp(tenant, "local") == 0);
    return less ? NULL : tenant;
}

int tt_photos_library_of(const tt_agent_env *env, const char *tenant_in, const char *user,
                         char *path, size_t pn, char *why, size_t n)
{
    const char *tenant = tt_photos_tenant_folder(env, tenant_in), *reason;
    char shown[96];
    if (tenant && tt_photos_owner_check(tenant, &reason) != 0) {
        snprintf(why, n, "your tenant name \"%s\" cannot be a folder name: %s",
                 tt_name_display(tenant, shown, sizeof shown), reason);
        return TT_EINVAL;
    }
    if (tt_photos_owner_check(user, &reason) != 0) {
        snprintf(why, n, "your user name \"%s\" cannot be a folder name: %s",
                 tt_name_display(user, shown, sizeof shown), reason);
        return TT_EINVAL;
    }
    /* root/<user> of a user without a tenant must not be a tenant's folder. */
    if (!tenant && json_object_get(env->key_tenants, user)) {
        snprintf(why, n,
                 "your user name \"%s\" is also the name of a tenant, whose libraries live in "
                 "that folder: ask the operator for a key with a tenant",
                 user);
        return TT_EFORBIDDEN;
    }
    int rc = tt_photos_library_path(env->photos_root, tenant, user, path, pn, &reason);
    if (rc)
        snprintf(why, n, "no photo library for you: %s", reason);
    return rc;
}

static tt_photos_thumb_rc from_errno(int e, const char *rel, char *why, size_t n)
{
    int rc = tt_photos_errno(e);
    snprintf(why, n, "%.*s: %s", TT_PHOTOS_REL_MAX, rel,
             e == ELOOP ? "a symlink, not followed" : strerror(e));
    return rc == TT_ENOTFOUND    ? TT_THUMB_NOT_FOUND
           : rc == TT_EFORBIDDEN ? TT_THUMB_FORBIDDEN
           : rc == TT_EINVAL     ? TT_THUMB_NOT_IMAGE
                                 : TT_THUMB_IO;
}

/* Reads exactly len bytes at offset 0 of fd into buf: 0, or -1 (errno, or
 * EIO when the file got shorter). */
static int read_all(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* The photo opened as a regular file, never through a symlink: 0 and *fd, *st. */
static tt_photos_thumb_rc open_photo(const char *library, const char *rel, int *fd, struct stat *st,
                                     char *why, size_t n)
{
    const char *reason = NULL;
    int rootfd = -1, dirfd = -1;
    char leaf[TT_PHOTOS_NAME_MAX + 1];
    *fd = -1;
    if (tt_photos_rel_check(rel, 0, &reason) != 0) {
        snprintf(why, n, "path must be a clean path relative to your library: %s", reason);
        return TT_THUMB_BAD_PATH;
    }
    int rc = tt_photos_open_root(library, &rootfd);
    if (rc) {
        snprintf(why, n, "no photo library for you (%s)", tt_strerror(rc));
        return rc == TT_ENOTFOUND ? TT_THUMB_NOT_FOUND : TT_THUMB_FORBIDDEN;
    }
    rc = tt_photos_open_parent(rootfd, rel, &dirfd, leaf);
    close(rootfd);
    if (rc) {
        snprintf(why, n, "%.*s: %s", TT_PHOTOS_REL_MAX, rel,
                 rc == TT_EFORBIDDEN ? "a symlink in the path (not followed) or no permission"
                                     : tt_strerror(rc));
        return rc == TT_ENOTFOUND    ? TT_THUMB_NOT_FOUND
               : rc == TT_EFORBIDDEN ? TT_THUMB_FORBIDDEN
               : rc == TT_EINVAL     ? TT_THUMB_BAD_PATH
                                     : TT_THUMB_IO;
    }
    *fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int e = errno;
    close(dirfd);
    if (*fd < 0)
        return from_errno(e, rel, why, n);
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        snprintf(why, n, "%.*s is not a file", TT_PHOTOS_REL_MAX, rel);
        return TT_THUMB_NOT_IMAGE;
    }
    return TT_THUMB_OK;
}

static const char *mime_of(const char *format)
{
    return !strcmp(format, "jpeg")   ? "image/jpeg"
           : !strcmp(format, "png")  ? "image/png"
           : !strcmp(format, "webp") ? "image/webp"
                                     : NULL;
}

tt_photos_thumb_rc tt_photos_thumb_read(const char *library, const char *rel, size_t cap,
                                        tt_photos_thumb *out, char *why, size_t n)
{
    memset(out, 0, sizeof *out);
    int fd;
    struct stat st;
    tt_photos_thumb_rc rc = open_photo(library, rel, &fd, &st, why, n);
    if (rc != TT_THUMB_OK)
        return rc;
    size_t size = (size_t)st.st_size;
    size_t head_n = size < TT_PHOTOS_HEAD_BYTES ? size : TT_PHOTOS_HEAD_BYTES;
    unsigned char *head = malloc(head_n ? head_n : 1);
    if (!head || read_all(fd, head, head_n) != 0) {
        rc = head ? from_errno(errno, rel, why, n) : TT_THUMB_IO;
        goto out;
    }
    tt_photos_meta m;
    tt_photos_meta_parse(head, head_n, &m);
    if (tt_photos_exif_thumb(head, head_n, &out->data, &out->len)) {
        out->type = "image/jpeg";
        out->from_exif = 1;
        goto out;
    }
    out->type = mime_of(m.format);
    if (!out->type) {
        snprintf(why, n, "%.*s is not an image a browser shows (%s)", TT_PHOTOS_REL_MAX, rel,
                 m.format);
        rc = TT_THUMB_NOT_IMAGE;
    } else if (size > cap) {
        snprintf(why, n, "%.*s has no EXIF thumbnail and is over %zu bytes", TT_PHOTOS_REL_MAX, rel,
                 cap);
        rc = TT_THUMB_TOO_LARGE;
    } else if (size <= head_n) {
        out->data = head;
        out->len = size;
        head = NULL;
    } else if (!(out->data = malloc(size)) || read_all(fd, out->data, size) != 0) {
        rc = out->data ? from_errno(errno, rel, why, n) : TT_THUMB_IO;
        free(out->data);
        out->data = NULL;
    } else {
        out->len = size;
    }
out:
    if (rc != TT_THUMB_OK)
        out->type = NULL;
    free(head);
    close(fd);
    return rc;
}
