/* The direct JSON writer (see jsonw.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/jsonw.h"
#include "protocol/utf8.h"

/* Bytes that need no escape: ASCII from 0x20, except '"' and '\'. */
static int plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The escape of an ASCII byte that is not plain, into out[7]: its length. */
static size_t escape(unsigned char c, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *named = NULL;
    switch (c) {
    case '"':
        named = "\\\"";
        break;
    case '\\':
        named = "\\\\";
        break;
    case '\b':
        named = "\\b";
        break;
    case '\f':
        named = "\\f";
        break;
    case '\n':
        named = "\\n";
        break;
    case '\r':
        named = "\\r";
        break;
    case '\t':
        named = "\\t";
        break;
    default:
        break;
    }
    if (named) {
        memcpy(out, named, 2);
        return 2;
    }
    memcpy(out, "\\u00", 4);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

static void truncate_to(tt_buf *b, size_t len)
{
    b->len = len;
    if (b->mem)
        b->mem[b->headroom + len] = '\0';
}

int tt_jw_strn(tt_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t before = b->len, i = 0;
    /* Room for the common case (nothing to escape) in one step. */
    int rc = n <= SIZE_MAX - 2 ? tt_buf_reserve(b, n + 2) : TT_ETOOLARGE;
    if (rc == 0)
        rc = tt_buf_append(b, "\"", 1);
    while (rc == 0 && i < n) {
        size_t j = i;
        while (j < n && plain(s[j]))
            j++;
        while (j < n && s[j] >= 0x80) {
            size_t len = tt_utf8_seq_len(s + j, n - j);
            if (!len) {
                truncate_to(b, before);
                return TT_EINVAL;
            }
            j += len;
            while (j < n && plain(s[j]))
                j++;
        }
        rc = tt_buf_append(b, s + i, j - i);
        i = j;
        if (rc == 0 && i < n && s[i] < 0x80) {
            char e[7];
            rc = tt_buf_append(b, e, escape(s[i], e));
            i++;
        }
    }
    if (rc == 0)
        rc = tt_buf_append(b, "\"", 1);
    if (rc)
        truncate_to(b, before);
    return rc;
}

int tt_jw_str(tt_buf *b, const char *s)
{
    return tt_jw_strn(b, s, strlen(s));
}

size_t tt_jw_u64_digits(uint64_t v, char *out)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

int tt_jw_u64(tt_buf *b, uint64_t v)
{
    char d[21];
    size_t n = tt_jw_u64_digits(v, d);
    return tt_buf_append(b, d, n);
}

int tt_jw_i64(tt_buf *b, int64_t v)
{
    char d[22];
    if (v >= 0)
        return tt_jw_u64(b, (uint64_t)v);
    d[0] = '-';
    size_t n = tt_jw_u64_digits((uint64_t)0 - (uint64_t)v, d + 1);
    return tt_buf_append(b, d, n + 1);
}

typedef struct dump_state {
    tt_buf *b;
    int rc;
} dump_state;

static int dump_cb(const char *data, size_t n, void *arg)
{
    dump_state *st = arg;
    st->rc = tt_buf_append(st->b, data, n);
    return st->rc ? -1 : 0;
}

/* One value through jansson itself (the reals it formats its own way). */
static int dump_jansson(tt_buf *b, const json_t *v)
{
    size_t before = b->len;
    dump_state st = {.b = b, .rc = 0};
    if (json_dump_callback(v, dump_cb, &st, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        truncate_to(b, before);
        return st.rc ? st.rc : TT_EINVAL;
    }
    return 0;
}

/* A real that is integral (token counts, a cost of 0) as jansson's "%.17g"
 * plus ".0" gives it: 1 with *rc set, or 0 (not one) and nothing written. */
static int write_integral(tt_buf *b, double d, int *rc)
{
    if (!(d > -1e15 && d < 1e15 && d == (double)(int64_t)d && !(d == 0 && signbit(d))))
        return 0;
    char digits[24];
    int64_t i = (int64_t)d;
    size_t n = 0;
    if (i < 0)
        digits[n++] = '-';
    n += tt_jw_u64_digits(i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i, digits + n);
    memcpy(digits + n, ".0", 2);
    *rc = tt_buf_append(b, digits, n + 2);
    return 1;
}

/* A real: the integral ones directly, the others by jansson. */
static int write_real(tt_buf *b, const json_t *v)
{
    int rc;
    return write_integral(b, json_real_value(v), &rc) ? rc : dump_jansson(b, v);
}

int tt_jw_real(tt_buf *b, double d)
{
    int rc;
    if (write_integral(b, d, &rc))
        return rc;
    json_t *v = json_real(d); /* NULL for NaN and the infinities */
    rc = v ? dump_jansson(b, v) : TT_EINVAL;
    json_decref(v);
    return rc;
}

static int write_value(tt_buf *b, const json_t *v, int depth);

/* The members of an object, each preceded by a comma (the first too when
 * lead). */
static int write_members(tt_buf *b, const json_t *v, int depth, int lead)
{
    int rc = 0;
    for (void *it = json_object_iter((json_t *)v); rc == 0 && it;
         it = json_object_iter_next((json_t *)v, it)) {
        if (lead)
            rc = tt_buf_append(b, ",", 1);
        lead = 1;
        if (rc == 0)
            rc = tt_jw_strn(b, json_object_iter_key(it), json_object_iter_key_len(it));
        if (rc == 0)
            rc = tt_buf_append(b, ":", 1);
        if (rc == 0)
            rc = write_value(b, json_object_iter_value(it), depth + 1);
    }
    return rc;
}

static int write_object(tt_buf *b, const json_t *v, int depth)
{
    int rc = tt_buf_append(b, "{", 1);
    if (rc == 0)
        rc = write_members(b, v, depth, 0);
    return rc ? rc : tt_buf_append(b, "}", 1);
}

static int write_array(tt_buf *b, const json_t *v, int depth)
{
    int rc = tt_buf_append(b, "[", 1);
    size_t n = json_array_size(v);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = tt_buf_append(b, ",", 1);
        if (rc == 0)
            rc = write_value(b, json_array_get(v, i), depth + 1);
    }
    return rc ? rc : tt_buf_append(b, "]", 1);
}

static int write_value(tt_buf *b, const json_t *v, int depth)
{
    if (!v || depth > TT_JW_DEPTH_MAX)
        return TT_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return write_object(b, v, depth);
    case JSON_ARRAY:
        return write_array(b, v, depth);
    case JSON_STRING:
        return tt_jw_strn(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return tt_jw_i64(b, (int64_t)json_integer_value(v));
    case JSON_REAL:
        return write_real(b, v);
    case JSON_TRUE:
        return tt_buf_append(b, "true", 4);
    case JSON_FALSE:
        return tt_buf_append(b, "false", 5);
    case JSON_NULL:
        return tt_buf_append(b, "null", 4);
    }
    return TT_EINVAL;
}

int tt_jw_value(tt_buf *b, const json_t *v)
{
    size_t before = b->len;
    int rc = write_value(b, v, 0);
    if (rc)
        truncate_to(b, before);
    return rc;
}

int tt_jw_members(tt_buf *b, const json_t *obj)
{
    if (!json_is_object(obj))
        return TT_EINVAL;
    size_t before = b->len;
    int rc = write_members(b, obj, 0, 1);
    if (rc)
        truncate_to(b, before);
    return rc;
}
