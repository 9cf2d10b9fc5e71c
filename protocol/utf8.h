/* Cutting UTF-8 text to a byte budget without splitting a character.
 *
 * Every place that shortens text a client, a provider or a file supplied
 * (titles, names echoed in error messages, log fields) goes through here:
 * a string cut in the middle of a multi-byte character is invalid UTF-8,
 * which jansson refuses to encode, so one careless cut can make a whole
 * record or reply unencodable. Input is assumed to be UTF-8; on bytes that
 * are not, the cut is still at most max bytes and never reads past the end. */
#ifndef TT_UTF8_H
#define TT_UTF8_H

#include <stddef.h>

/* The length of the longest prefix of s (a NUL-terminated string) that is at
 * most max bytes and does not end inside a UTF-8 character. Use it with
 * "%.*s": snprintf(buf, n, "'%.*s'", tt_utf8_cut(s, 64), s). */
int tt_utf8_cut(const char *s, size_t max);

/* The same for len bytes of text that need not be NUL-terminated. */
size_t tt_utf8_cut_len(const char *s, size_t len, size_t max);

/* Copy src into dst (size n >= 1), cut at a character boundary so that it
 * fits with its terminator. src NULL copies "". Returns the bytes copied. */
size_t tt_utf8_copy(char *dst, size_t n, const char *src);

#endif
