/* Character-boundary truncation of UTF-8 text (see utf8.h). */
#include "protocol/utf8.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* A continuation byte (10xxxxxx) never starts a character: a cut before one
 * would split the character it belongs to. A character is at most 4 bytes,
 * so at most 3 steps back reach its first byte in valid UTF-8. */
static int is_continuation(unsigned char b)
{
    return (b & 0xC0) == 0x80;
}

size_t tt_utf8_cut_len(const char *s, size_t len, size_t max)
{
    if (!s || len <= max)
        return s ? len : 0;
    size_t n = max;
    for (int back = 0; n > 0 && back < 3 && is_continuation((unsigned char)s[n]); back++)
        n--;
    return n;
}

int tt_utf8_cut(const char *s, size_t max)
{
    if (max > INT_MAX)
        max = INT_MAX;
    size_t len = s ? strnlen(s, max + 1) : 0;
    return (int)tt_utf8_cut_len(s, len, max);
}

size_t tt_utf8_copy(char *dst, size_t n, const char *src)
{
    return tt_utf8_copyn(dst, n, src, src && n ? strnlen(src, n) : 0);
}

size_t tt_utf8_copyn(char *dst, size_t n, const char *src, size_t len)
{
    if (n == 0)
        return 0;
    size_t cut = tt_utf8_cut_len(src, len, n - 1);
    if (cut)
        memcpy(dst, src, cut);
    dst[cut] = '\0';
    return cut;
}

/* The width of the character a lead byte starts, 0 for a continuation byte. */
static size_t char_width(unsigned char b)
{
    return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
}

int tt_utf8_snprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (w < 0 || n == 0 || (size_t)w < n)
        return w;
    /* Truncated to n - 1 bytes: drop a last character that lost its tail. */
    size_t len = n - 1, start = len;
    while (start > 0 && len - start < 3 && is_continuation((unsigned char)buf[start - 1]))
        start--;
    if (start > 0) {
        size_t lead = start - 1;
        if (char_width((unsigned char)buf[lead]) > len - lead)
            buf[lead] = '\0';
    }
    return w;
}

size_t tt_utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong form */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80; /* no overlong form */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
    } else {
        return 0; /* a continuation byte, 0xC0/0xC1, or 0xF5 and up */
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

int tt_utf8_valid(const char *str, size_t len)
{
    const unsigned char *p = (const unsigned char *)str, *end = p + len;
    while (p < end) {
        size_t n = *p < 0x80 ? 1 : tt_utf8_seq_len(p, (size_t)(end - p));
        if (n == 0)
            return 0;
        p += n;
    }
    return 1;
}
