/* Character-boundary truncation of UTF-8 text (see utf8.h). */
#include "protocol/utf8.h"

#include <limits.h>
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
    if (n == 0)
        return 0;
    size_t len = src ? strnlen(src, n) : 0;
    size_t cut = tt_utf8_cut_len(src, len, n - 1);
    if (cut)
        memcpy(dst, src, cut);
    dst[cut] = '\0';
    return cut;
}
