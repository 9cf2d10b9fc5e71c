/* Names in the photo organiser that people read: which characters may be in
 * a name the organiser creates, how a name is shown, and which folder is a
 * user's library.
 *
 * Invisible and direction-changing characters (the Unicode bidi controls
 * U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C; zero-width and
 * format characters; C0 and C1 controls) let "gpj.exe" look like "exe.jpg".
 * The organiser never creates a name holding one (path.h's strict check), and
 * shows every name that came from the user's disk with them escaped as
 * \u{XXXX}, so what a person reads is what is on the disk. */
#ifndef TT_PHOTOS_NAMES_H
#define TT_PHOTOS_NAMES_H

#include <stddef.h>

/* 1 if code point cp is a control, bidi, zero-width or other invisible
 * format character (the list is in names.c). */
int tt_photos_cp_hidden(unsigned cp);

/* Decodes the UTF-8 sequence at s (n bytes left, n > 0): *cp and its length,
 * or 0 when it is not valid UTF-8 (overlong, surrogate, cut short). */
size_t tt_photos_utf8_next(const char *s, size_t n, unsigned *cp);

/* s as a person may safely read it, into out (size n, n >= 16): hidden code
 * points as \u{XXXX}, bytes that are not UTF-8 as \x{XX}, a backslash as \\;
 * cut at a whole character with "..." when it does not fit. Returns out. */
char *tt_photos_display(const char *s, char *out, size_t n);

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
