/* Names people read and names that say who someone is: which characters they
 * may hold, and how one is shown when it came from outside.
 *
 * One rule for every name (a tenant, a user, a session title, an assistant or
 * tool name): valid UTF-8 with no control character (C0, DEL, C1) and no
 * bidi or invisible format character (U+202A-U+202E, U+2066-U+2069, U+200E,
 * U+200F, U+061C, zero-width characters, ... the list is in names.c). A
 * control character lets "a" + "\x1f" + "b" pass for another key; a bidi
 * control lets "gpj.exe" look like "exe.jpg". Identity names are checked
 * where they enter (API key config, POST /v1/tokens, a token's claims). */
#ifndef TT_NAMES_H
#define TT_NAMES_H

#include <stddef.h>

/* 1 if code point cp is a control (C0, DEL, C1). */
int tt_name_cp_control(unsigned cp);

/* 1 if cp is a control, bidi, zero-width or other invisible format character. */
int tt_name_cp_hidden(unsigned cp);

/* Decodes the UTF-8 sequence at s (n bytes left, n > 0): *cp and its length,
 * or 0 when it is not valid UTF-8 (overlong, surrogate, cut short). */
size_t tt_name_utf8_next(const char *s, size_t n, unsigned *cp);

/* 0 if the n bytes at s are valid UTF-8 without a hidden code point; else
 * TT_EINVAL with *why (if not NULL) set to a static reason. */
int tt_name_chars_check(const char *s, size_t n, const char **why);

/* 0 if name is an identity or display name of 1 to max bytes (NUL excluded)
 * that passes tt_name_chars_check; TT_EINVAL with *why (if not NULL) set. */
int tt_name_check(const char *name, size_t max, const char **why);

/* Removes from s, in place, every hidden code point but the controls, which
 * become spaces (a newline in a first message is a word break in its title).
 * s must be valid UTF-8 (a jansson string); a byte that is not is dropped. */
void tt_name_strip(char *s);

/* s as a person may safely read it, into out (size n, n >= 16): hidden code
 * points as \u{XXXX}, bytes that are not UTF-8 as \x{XX}, a backslash as \\;
 * cut at a whole character with "..." when it does not fit. Returns out. */
char *tt_name_display(const char *s, char *out, size_t n);

#endif
