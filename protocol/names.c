/* The character rules of names, and their shown form (see names.h). */
#include "protocol/names.h"

#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"

/* Ranges of code points that change how text around them is shown, or show
 * as nothing: controls, bidi embeddings, overrides, isolates and marks,
 * zero-width characters, line and paragraph separators, the BOM. */
static const unsigned hidden[][2] = {
    {0x0000, 0x001f},   {0x007f, 0x009f}, /* C0, DEL, C1 controls */
    {0x00ad, 0x00ad},                     /* soft hyphen */
    {0x034f, 0x034f},                     /* combining grapheme joiner */
    {0x061c, 0x061c},                     /* Arabic letter mark */
    {0x115f, 0x1160},   {0x17b4, 0x17b5}, /* Hangul fillers, Khmer inherent vowels */
    {0x180b, 0x180f},                     /* Mongolian variation selectors, vowel separator */
    {0x200b, 0x200f},                     /* zero width space/joiners, LRM, RLM */
    {0x2028, 0x202e},                     /* line/paragraph separators, LRE RLE PDF LRO RLO */
    {0x2060, 0x206f},                     /* word joiner, invisible operators, LRI RLI FSI PDI */
    {0x3164, 0x3164},   {0xfe00, 0xfe0f}, /* Hangul filler, variation selectors */
    {0xfeff, 0xfeff},   {0xffa0, 0xffa0}, /* BOM, halfwidth Hangul filler */
    {0xfff9, 0xfffb},                     /* interlinear annotation controls */
    {0x1d173, 0x1d17a},                   /* musical symbol format controls */
    {0xe0000, 0xe007f},                   /* tag characters */
};

int tt_name_cp_control(unsigned cp)
{
    return cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);
}

int tt_name_cp_hidden(unsigned cp)
{
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
        if (cp >= hidden[i][0] && cp <= hidden[i][1])
            return 1;
    return 0;
}

size_t tt_name_utf8_next(const char *str, size_t n, unsigned *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[k] & 0x3f);
    }
    if ((len == 3 && *cp < 0x800) || (len == 4 && (*cp < 0x10000 || *cp > 0x10ffff)) ||
        (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

int tt_name_chars_check(const char *s, size_t n, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    unsigned cp;
    for (size_t i = 0, step; i < n && !*why; i += step) {
        step = tt_name_utf8_next(s + i, n - i, &cp);
        *why = !step                    ? "it is not valid UTF-8"
               : tt_name_cp_control(cp) ? "it holds a control character"
               : tt_name_cp_hidden(cp)  ? "it holds a bidi or invisible format character"
                                        : NULL;
    }
    return *why ? TT_EINVAL : TT_OK;
}

int tt_name_check(const char *name, size_t max, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    size_t n = name ? strnlen(name, max + 1) : 0;
    *why = n == 0 ? "it is empty" : n > max ? "it is too long" : NULL;
    if (*why)
        return TT_EINVAL;
    return tt_name_chars_check(name, n, why);
}

void tt_name_strip(char *s)
{
    size_t len = strlen(s), o = 0;
    unsigned cp;
    for (size_t i = 0, step; i < len; i += step) {
        step = tt_name_utf8_next(s + i, len - i, &cp);
        if (!step)
            step = 1; /* not UTF-8: dropped */
        else if (tt_name_cp_control(cp))
            s[o++] = ' ';
        else if (!tt_name_cp_hidden(cp)) {
            memmove(s + o, s + i, step);
            o += step;
        }
    }
    s[o] = '\0';
}

/* The shown form of the character at s[i] into piece; its length, and the
 * bytes it takes in s in *step. */
static size_t piece_at(const char *s, size_t len, size_t i, char piece[16], size_t *step)
{
    unsigned cp;
    *step = tt_name_utf8_next(s + i, len - i, &cp);
    if (!*step) {
        *step = 1;
        return (size_t)snprintf(piece, 16, "\\x{%02X}", (unsigned char)s[i]);
    }
    if (tt_name_cp_hidden(cp))
        return (size_t)snprintf(piece, 16, "\\u{%04X}", cp);
    if (cp == '\\')
        return (size_t)snprintf(piece, 16, "\\\\");
    memcpy(piece, s + i, *step);
    return *step;
}

char *tt_name_display(const char *s, char *out, size_t n)
{
    static const char more[] = "...";
    char piece[16];
    size_t len = strlen(s), total = 0, o = 0, step;
    for (size_t i = 0; i < len; i += step)
        total += piece_at(s, len, i, piece, &step);
    /* cut only if it does not fit whole: then keep room for "..." */
    size_t room = total <= n - 1 ? n - 1 : n - sizeof more;
    for (size_t i = 0; i < len; i += step) {
        size_t plen = piece_at(s, len, i, piece, &step);
        if (o + plen > room) {
            memcpy(out + o, more, sizeof more - 1);
            o += sizeof more - 1;
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = '\0';
    return out;
}
