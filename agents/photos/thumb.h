/* What the server needs of a photo library outside the organiser: which
 * folder is a user's library, and one photo's thumbnail for the page's plan
 * preview (GET /v1/photos/thumb, server/photos_thumb.c).
 *
 * tt_photos_thumb_read is plain blocking C for libuv's thread pool. It names
 * the photo by a path relative to the library and opens it the way the rest
 * of the module does (path.h): one component at a time with O_NOFOLLOW, so
 * "..", absolute paths and symlinks anywhere (also ones that stay inside the
 * library) are refused and nothing outside the library is ever read. */
#ifndef TT_PHOTOS_THUMB_H
#define TT_PHOTOS_THUMB_H

#include <stddef.h>

#include "agents/agent.h"

/* Largest whole photo served when it has no EXIF thumbnail. */
#define TT_PHOTOS_THUMB_FILE_MAX (2u << 20)

typedef enum tt_photos_thumb_rc {
    TT_THUMB_OK,
    TT_THUMB_BAD_PATH,  /* not a clean relative path (400) */
    TT_THUMB_NOT_FOUND, /* no library, no such file (404) */
    TT_THUMB_FORBIDDEN, /* a symlink in the path, or no permission (403) */
    TT_THUMB_NOT_IMAGE, /* not a file, or not an image a browser shows (415) */
    TT_THUMB_TOO_LARGE, /* no EXIF thumbnail and the file is over the cap (413) */
    TT_THUMB_IO,        /* a read failed, out of memory (500) */
} tt_photos_thumb_rc;

typedef struct tt_photos_thumb {
    unsigned char *data; /* malloc'd: the caller frees */
    size_t len;
    const char *type; /* "image/jpeg", "image/png", "image/webp" */
    int from_exif;    /* the JPEG thumbnail embedded in the EXIF, not the file */
} tt_photos_thumb;

/* The tenant's folder name under photos_root, or NULL for a session
 * without a tenant ("default", or "local" in open mode). */
const char *tt_photos_tenant_folder(const tt_agent_env *env, const char *tenant);

/* The library folder of user in tenant, as the organiser finds it:
 * photos_root/<tenant>/<user>, or photos_root/<user> for a user without a
 * tenant ("default", or "local" in open mode). 0 and path (size pn); else
 * TT_EINVAL (a name that cannot be a folder), TT_EFORBIDDEN (a tenant-less
 * user named like a tenant) or TT_ETOOLARGE, with why. */
int tt_photos_library_of(const tt_agent_env *env, const char *tenant, const char *user, char *path,
                         size_t pn, char *why, size_t n);

/* The image to show for photo rel of the library at `library`: the EXIF
 * thumbnail of a JPEG that has one, else the whole file when it is a JPEG,
 * PNG or WebP of at most `cap` bytes. TT_THUMB_OK and *out; else why (size
 * n) says what was wrong. Blocking: call it from the thread pool. */
tt_photos_thumb_rc tt_photos_thumb_read(const char *library, const char *rel, size_t cap,
                                        tt_photos_thumb *out, char *why, size_t n);

#endif
