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

#include <stdarg.h>
#include <stddef.h>

/* The length of the longest prefix of s (a NUL-terminated string) that is at
 * most max bytes and does not end inside a UTF-8 character. Use it with
 * "%.*s": snprintf(buf, n, "'%.*s'", tt_utf8_cut(s, 64), s). */
int tt_utf8_cut(const char *s, size_t max);

/* The same for len bytes of text that need not be NUL-terminated. */
size_t tt_utf8_cut_len(const char *s, size_t len, size_t max);

/* Copy len bytes of src (need not be NUL-terminated) into dst (size n >= 1),
 * cut at a character boundary to fit with a terminator. Returns the bytes copied. */
size_t tt_utf8_copyn(char *dst, size_t n, const char *src, size_t len);

/* Copy src into dst (size n >= 1), cut at a character boundary so that it
 * fits with its terminator. src NULL copies "". Returns the bytes copied. */
size_t tt_utf8_copy(char *dst, size_t n, const char *src);

/* snprintf that, when the text does not fit, ends it before the character
 * the buffer cut (snprintf alone would leave half of it). For messages that
 * embed text from outside: names, paths, provider errors. Returns what
 * snprintf returns. */
int tt_utf8_snprintf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The length of the well-formed UTF-8 sequence at p (avail bytes readable,
 * p[0] >= 0x80), or 0: no overlong forms, no surrogates, nothing past
 * U+10FFFF (jansson's rule for a string). */
size_t tt_utf8_seq_len(const unsigned char *p, size_t avail);

/* Is s[0..len) well-formed UTF-8 by the same rule (NUL allowed)? */
int tt_utf8_valid(const char *s, size_t len);

#endif
