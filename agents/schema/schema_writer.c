/* The message writer (see schema_private.h): messages about a schema or a
 * value, built in the caller's buffer. Text is cut at a UTF-8 boundary, since
 * it travels back to the model inside a JSON string and must stay valid
 * UTF-8; quoted values are bounded excerpts; a place is named as a JSON path
 * for a value ("$.files[3].dest") and a JSON Pointer for a schema
 * ("#/properties/files/items"). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/schema/schema_private.h"
#include "protocol/errors.h"

void tt_sb_init(tt_sb *b, char *p, size_t n)
{
    b->p = p;
    b->n = p ? n : 0;
    b->len = 0;
    b->cap = SIZE_MAX;
    b->trunc = false;
    if (b->n)
        b->p[0] = '\0';
}

void tt_sb_put(tt_sb *b, const char *s, size_t len)
{
    if (b->trunc || !b->n)
        return;
    size_t limit = b->n - 1 < b->cap ? b->n - 1 : b->cap;
    size_t room = limit > b->len ? limit - b->len : 0;
    if (len > room) {
        /* Never split a code point: back off to the start of the one cut. */
        len = room;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
        b->trunc = true;
    }
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void tt_sb_str(tt_sb *b, const char *s)
{
    tt_sb_put(b, s, strlen(s));
}

void tt_sb_printf(tt_sb *b, const char *fmt, ...)
{
    char t[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (k > 0)
        tt_sb_put(b, t, (size_t)k < sizeof t ? (size_t)k : sizeof t - 1);
}

/* Start an excerpt of at most max more bytes; tt_sb_excerpt_end() restores the
 * previous limit and adds "..." if the excerpt was cut. */
size_t tt_sb_excerpt_begin(tt_sb *b, size_t max)
{
    size_t old = b->cap;
    if (!b->trunc)
        b->cap = b->len + max;
    return old;
}

void tt_sb_excerpt_end(tt_sb *b, size_t old_cap)
{
    bool cut_here = b->trunc && b->cap != old_cap && b->len < b->n - 1;
    b->cap = old_cap;
    if (cut_here) {
        b->trunc = false;
        tt_sb_str(b, "...");
    }
}

/* A JSON string literal for s[0..len), escaping quotes and control bytes. */
void tt_sb_quote(tt_sb *b, const char *s, size_t len)
{
    tt_sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        tt_sb_put(b, s + run, i - run);
        if (c == '"' || c == '\\')
            tt_sb_printf(b, "\\%c", c);
        else
            tt_sb_printf(b, "\\u%04x", c);
        run = i + 1;
    }
    tt_sb_put(b, s + run, len - run);
    tt_sb_put(b, "\"", 1);
}

/* Shortest decimal that reads back as the same double, always with a '.' or
 * an exponent so a real never looks like an integer ("3.0", not "3"). */
static void sb_real(tt_sb *b, double d)
{
    char t[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    tt_sb_str(b, t);
    if (!strpbrk(t, ".eEni"))
        tt_sb_str(b, ".0");
}

void tt_sb_number(tt_sb *b, const json_t *v)
{
    if (json_is_integer(v))
        tt_sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        sb_real(b, json_real_value(v));
}

/* Compact JSON for v; callers bound it with an excerpt. Recursion is bounded
 * by the depth checks every value passes before it can reach a message. */
static void sb_json(tt_sb *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *m;
        bool first = true;
        tt_sb_str(b, "{");
        json_object_keylen_foreach((json_t *)v, key, klen, m)
        {
            if (!first)
                tt_sb_str(b, ",");
            first = false;
            tt_sb_quote(b, key, klen);
            tt_sb_str(b, ":");
            sb_json(b, m);
            if (b->trunc)
                return;
        }
        tt_sb_str(b, "}");
        break;
    }
    case JSON_ARRAY:
        tt_sb_str(b, "[");
        for (size_t i = 0; i < json_array_size(v) && !b->trunc; i++) {
            if (i)
                tt_sb_str(b, ",");
            sb_json(b, json_array_get(v, i));
        }
        tt_sb_str(b, "]");
        break;
    case JSON_STRING:
        tt_sb_quote(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        tt_sb_number(b, v);
        break;
    case JSON_TRUE:
        tt_sb_str(b, "true");
        break;
    case JSON_FALSE:
        tt_sb_str(b, "false");
        break;
    case JSON_NULL:
        tt_sb_str(b, "null");
        break;
    }
}

void tt_sb_json_excerpt(tt_sb *b, const json_t *v, size_t max)
{
    size_t old = tt_sb_excerpt_begin(b, max);
    sb_json(b, v);
    tt_sb_excerpt_end(b, old);
}

/* ---- locations ---------------------------------------------------------- */

static bool is_identifier(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* "$.files[3].dest", with ["..."] for keys that are not identifiers. */
static void sb_path(tt_sb *b, const tt_schema_loc *at)
{
    if (!at) {
        tt_sb_str(b, "$");
        return;
    }
    sb_path(b, at->up);
    if (!at->key) {
        tt_sb_printf(b, "[%zu]", at->index);
    } else if (is_identifier(at->key, at->klen)) {
        tt_sb_str(b, ".");
        tt_sb_put(b, at->key, at->klen);
    } else {
        tt_sb_str(b, "[");
        tt_sb_quote(b, at->key, at->klen);
        tt_sb_str(b, "]");
    }
}

/* A JSON Pointer into the schema: "#/properties/files/items". */
static void sb_pointer(tt_sb *b, const tt_schema_loc *at)
{
    if (!at) {
        tt_sb_str(b, "#");
        return;
    }
    sb_pointer(b, at->up);
    tt_sb_str(b, "/");
    if (!at->key) {
        tt_sb_printf(b, "%zu", at->index);
        return;
    }
    for (size_t i = 0; i < at->klen; i++) {
        unsigned char c = (unsigned char)at->key[i];
        if (c == '~')
            tt_sb_str(b, "~0");
        else if (c == '/')
            tt_sb_str(b, "~1");
        else if (c < 0x20)
            tt_sb_str(b, "?");
        else
            tt_sb_put(b, at->key + i, 1);
    }
}

/* Begin a message about a value at `at`; returns TT_EINVAL for the caller. */
int tt_sb_value_error(tt_sb *b, const tt_schema_loc *at)
{
    b->len = 0;
    b->trunc = false;
    if (b->n)
        b->p[0] = '\0';
    sb_path(b, at);
    tt_sb_str(b, ": ");
    return TT_EINVAL;
}

/* Begin a message about the schema at `at`. */
int tt_sb_schema_error(tt_sb *b, const tt_schema_loc *at)
{
    b->len = 0;
    b->trunc = false;
    if (b->n)
        b->p[0] = '\0';
    sb_pointer(b, at);
    tt_sb_str(b, ": ");
    return TT_EINVAL;
}
