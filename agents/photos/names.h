/* Which folder is a user's photo library.
 *
 * Invisible and direction-changing characters (protocol/names.h) let
 * "gpj.exe" look like "exe.jpg". The organiser never creates a name holding
 * one (path.h's strict check), and shows every name that came from the
 * user's disk with tt_name_display (them escaped as \u{XXXX}), so what a
 * person reads is what is on the disk. A tenant or user name is a folder of
 * the library path, so it is held to a stricter rule than other names. */
#ifndef TT_PHOTOS_NAMES_H
#define TT_PHOTOS_NAMES_H

#include <stddef.h>

/* 0 if name may be one folder name of a library path (a tenant or a user
 * name): 1-TT_PHOTOS_NAME_MAX bytes of ASCII letters, digits, '-', '_', '.'
 * and '@', not starting with '.'. TT_EINVAL otherwise, *why (if not NULL)
 * set to a static reason. */
int tt_photos_owner_check(const char *name, const char **why);

/* The library folder of user in tenant: root/<tenant>/<user>, or root/<user>
 * when tenant is NULL (a user without a tenant). Both names pass
 * tt_photos_owner_check. 0; TT_EINVAL with *why; TT_ETOOLARGE if it does
 * not fit out (size n). */
int tt_photos_library_path(const char *root, const char *tenant, const char *user, char *out,
                           size_t n, const char **why);

#endif
