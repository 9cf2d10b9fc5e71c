/* A direct JSON writer into a tt_buf, for the hot encodings (events, the
 * session record): the same bytes jansson's json_dumpb(..., JSON_COMPACT)
 * would give, without building a json_t first.
 *
 * Strings are escaped exactly as jansson does: `"` and `\` with a
 * backslash, \b \f \n \r \t by name, the other control characters below
 * 0x20 as \u00XX (upper-case hex), everything else (`/`, DEL, non-ASCII)
 * as is. A string that is not valid UTF-8 (an overlong form, a surrogate,
 * past U+10FFFF, a truncated sequence) is refused, as jansson's dump
 * refuses it. Every function appends whole or not at all: 0, TT_EINVAL
 * (invalid UTF-8 or an unencodable value), or the buffer's error
 * (TT_ETOOLARGE past its cap, TT_ENOMEM); the buffer is left as it was. */
#ifndef TT_JSONW_H
#define TT_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "protocol/buf.h"

/* "s" escaped, with its quotes. */
int tt_jw_strn(tt_buf *b, const char *s, size_t n) TT_BUF_WUR;
int tt_jw_str(tt_buf *b, const char *s) TT_BUF_WUR;

/* A decimal number. */
int tt_jw_u64(tt_buf *b, uint64_t v) TT_BUF_WUR;
int tt_jw_i64(tt_buf *b, int64_t v) TT_BUF_WUR;

/* A real as jansson dumps json_real(d) (an integral one as "%.17g" plus
 * ".0"); TT_EINVAL for NaN or an infinity, which JSON cannot hold. */
int tt_jw_real(tt_buf *b, double d) TT_BUF_WUR;

/* Nesting deeper than this does not encode (TT_EINVAL); a json_t that
 * contains itself does not either. */
#define TT_JW_DEPTH_MAX 2048

/* Any JSON value, compact, keys in insertion order: jansson's
 * json_dumpb(v, JSON_COMPACT | JSON_ENCODE_ANY) byte for byte. */
int tt_jw_value(tt_buf *b, const json_t *v) TT_BUF_WUR;

/* The members of a non-empty object, without its braces, each preceded by
 * a comma: appended to an object already holding members. Nothing for an
 * empty object. */
int tt_jw_members(tt_buf *b, const json_t *obj) TT_BUF_WUR;

/* The decimal digits of v into out (at least 21 bytes), NUL-terminated;
 * returns their count. */
size_t tt_jw_u64_digits(uint64_t v, char *out);

#endif
