/* Inside agents/schema/: what schema_check.c and schema_validate.c share.
 * The message writer (schema_writer.c) and JSON Schema's value semantics,
 * numbers, equality and patterns (schema_value.c). Nobody else includes it;
 * the public interface is schema.h. */
#ifndef TT_SCHEMA_PRIVATE_H
#define TT_SCHEMA_PRIVATE_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <pcre2.h>

/* How much of a value, a string or an enum list is quoted in a message. */
#define QUOTE_MAX 80
#define LIST_MAX 200

/* ---- the message writer (schema_writer.c) ---- */

/* A message being written into the caller's buffer: never past n, cut on a
 * UTF-8 boundary, since it travels back to the model in a JSON string. */
typedef struct tt_sb {
    char *p;
    size_t n;   /* capacity including the NUL; 0 means "discard" */
    size_t len; /* bytes written, always < n when n > 0 */
    size_t cap; /* soft limit on len, for quoting a bounded excerpt */
    bool trunc; /* something did not fit under cap or n */
} tt_sb;

/* One step from the root, on the C stack of the walk: a member key, or an
 * array index when key is NULL. The root itself is NULL. */
typedef struct tt_schema_loc {
    const struct tt_schema_loc *up;
    const char *key;
    size_t klen;
    size_t index;
} tt_schema_loc;

/* Write into p (n bytes; p NULL or n 0: discard everything). */
void tt_sb_init(tt_sb *b, char *p, size_t n);
/* Append s[0..len), or as much as fits, never splitting a code point. */
void tt_sb_put(tt_sb *b, const char *s, size_t len);
void tt_sb_str(tt_sb *b, const char *s);
/* Append formatted text (at most 255 bytes of it). */
__attribute__((format(printf, 2, 3))) void tt_sb_printf(tt_sb *b, const char *fmt, ...);
/* Start an excerpt of at most max more bytes; tt_sb_excerpt_end() restores the
 * previous limit and adds "..." if the excerpt was cut. */
size_t tt_sb_excerpt_begin(tt_sb *b, size_t max);
void tt_sb_excerpt_end(tt_sb *b, size_t old_cap);
/* A JSON string literal for s[0..len), escaping quotes and control bytes. */
void tt_sb_quote(tt_sb *b, const char *s, size_t len);
/* A JSON number, a real always with a '.' or an exponent ("3.0", not "3"). */
void tt_sb_number(tt_sb *b, const json_t *v);
/* Compact JSON for v, at most max bytes of it ("..." when cut). */
void tt_sb_json_excerpt(tt_sb *b, const json_t *v, size_t max);
/* Start the message afresh with the value's path ("$.files[3].dest: ");
 * returns TT_EINVAL for the caller to return. */
int tt_sb_value_error(tt_sb *b, const tt_schema_loc *at);
/* The same about the schema, with a JSON Pointer ("#/properties/mode: "). */
int tt_sb_schema_error(tt_sb *b, const tt_schema_loc *at);

/* ---- values: numbers, equality, patterns (schema_value.c) ---- */

/* Compare two JSON numbers exactly: -1, 0, 1 (no lossy int64-to-double). */
int tt_schema_cmp_num(const json_t *a, const json_t *b);
/* JSON Schema equality: numbers by value (1 equals 1.0), objects regardless
 * of key order. Recursion is bounded by the shallower argument. */
bool tt_schema_equal(const json_t *a, const json_t *b);
/* Compile pattern pat (a string) with PCRE2_UTF|PCRE2_UCP into *out (the
 * caller frees it with pcre2_code_free). TT_EINVAL with the PCRE2 error code
 * and offset, or TT_ENOMEM. */
int tt_schema_compile_pattern(const json_t *pat, pcre2_code **out, int *code, size_t *off);

#endif
