/* Relative paths beneath a photo library root, shared by scan.c and move.c.
 *
 * Everything the photo organiser touches is named by a path relative to one
 * root directory held open as a file descriptor. These functions are the only
 * way the module turns such a path into a descriptor: one component at a time
 * with openat(O_NOFOLLOW), so a symlink anywhere in the path is refused rather
 * than followed and nothing outside the root can be reached, whatever the
 * path says or whoever swaps a folder for a link in the meantime. */
#ifndef TT_PHOTOS_PATH_H
#define TT_PHOTOS_PATH_H

#include <stddef.h>

#define TT_PHOTOS_REL_MAX 1024 /* bytes in a relative path, NUL excluded */
#define TT_PHOTOS_NAME_MAX 255 /* bytes in one component */

/* Flags for tt_photos_rel_check(). */
/* Also refuse control, invisible and bidi characters (names.h): for names we create. */
#define TT_PHOTOS_REL_STRICT 1u

/* Opens the library root (a directory, not itself a symlink) for the other
 * calls. 0 and *fd, which the caller closes; TT_ENOTFOUND, TT_EFORBIDDEN
 * (a symlink or no permission), TT_EINVAL (not a directory), TT_EIO. */
int tt_photos_open_root(const char *path, int *fd) __attribute__((warn_unused_result));

/* 0 if rel is a clean relative path: not empty, not absolute, no empty, "."
 * or ".." component, valid UTF-8, within the length limits; TT_EINVAL
 * otherwise, with *why (if not NULL) set to a static reason. */
int tt_photos_rel_check(const char *rel, unsigned flags, const char **why);

/* Opens directory `dir` (a clean relative path, "" for the root) beneath
 * rootfd one component at a time, never following a symlink. With `create`,
 * missing components are made (mode 0755) and *created (if not NULL) counts
 * them. 0 and *fd, which the caller closes; TT_ENOTFOUND, TT_EFORBIDDEN (a
 * symlink in the path, or no permission), TT_EINVAL (not a directory or a
 * bad path), TT_EIO. */
int tt_photos_open_dir(int rootfd, const char *dir, int create, int *created, int *fd)
    __attribute__((warn_unused_result));

/* Opens the parent directory of rel (as tt_photos_open_dir, no create) and
 * copies the last component into leaf (TT_PHOTOS_NAME_MAX + 1 bytes). */
int tt_photos_open_parent(int rootfd, const char *rel, int *dirfd, char *leaf)
    __attribute__((warn_unused_result));

/* Maps an errno from an *at() call to a tt_err. */
int tt_photos_errno(int e);

/* 1 if the n bytes at s are valid UTF-8 (no overlongs, no surrogates). */
int tt_photos_utf8_valid(const char *s, size_t n);

#endif
