/* JSON Schema subset (see schema.h).
 *
 * Two walks over the schema. check_node() proves the schema is inside the
 * subset and well formed, so validate_node() can read keywords without
 * re-checking their types. tt_schema_validate() runs the check first (a
 * schema from a request or an old config must not be trusted), then a depth
 * walk over the value, then the validation proper. Both walks recurse at most
 * TT_SCHEMA_MAX_DEPTH frames, and equality recursion is bounded by the
 * shallower of its two arguments, both of which passed a depth check.
 *
 * Messages are built in the caller's buffer through a small writer that
 * truncates at a UTF-8 boundary, since the text travels back to the model
 * inside a JSON string and must stay valid UTF-8. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "agents/schema/schema.h"
#include "protocol/errors.h"

/* How much of a value, a string or an enum list is quoted in a message. */
#define QUOTE_MAX 80
#define LIST_MAX 200

/* ---- message writer ----------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n;   /* capacity including the NUL; 0 means "discard" */
    size_t len; /* bytes written, always < n when n > 0 */
    size_t cap; /* soft limit on len, for quoting a bounded excerpt */
    bool trunc; /* something did not fit under cap or n */
} sbuf;

static void sb_init(sbuf *b, char *p, size_t n)
{
    b->p = p;
    b->n = p ? n : 0;
    b->len = 0;
    b->cap = SIZE_MAX;
    b->trunc = false;
    if (b->n)
        b->p[0] = '\0';
}

static void sb_put(sbuf *b, const char *s, size_t len)
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

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char t[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (k > 0)
        sb_put(b, t, (size_t)k < sizeof t ? (size_t)k : sizeof t - 1);
}

/* Start an excerpt of at most max more bytes; sb_excerpt_end() restores the
 * previous limit and adds "..." if the excerpt was cut. */
static size_t sb_excerpt_begin(sbuf *b, size_t max)
{
    size_t old = b->cap;
    if (!b->trunc)
        b->cap = b->len + max;
    return old;
}

static void sb_excerpt_end(sbuf *b, size_t old_cap)
{
    bool cut_here = b->trunc && b->cap != old_cap && b->len < b->n - 1;
    b->cap = old_cap;
    if (cut_here) {
        b->trunc = false;
        sb_str(b, "...");
    }
}

/* A JSON string literal for s[0..len), escaping quotes and control bytes. */
static void sb_quote(sbuf *b, const char *s, size_t len)
{
    sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_put(b, s + run, i - run);
        if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else
            sb_printf(b, "\\u%04x", c);
        run = i + 1;
    }
    sb_put(b, s + run, len - run);
    sb_put(b, "\"", 1);
}

/* Shortest decimal that reads back as the same double, always with a '.' or
 * an exponent so a real never looks like an integer ("3.0", not "3"). */
static void sb_real(sbuf *b, double d)
{
    char t[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    sb_str(b, t);
    if (!strpbrk(t, ".eEni"))
        sb_str(b, ".0");
}

static void sb_number(sbuf *b, const json_t *v)
{
    if (json_is_integer(v))
        sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        sb_real(b, json_real_value(v));
}

/* Compact JSON for v; callers bound it with an excerpt. Recursion is bounded
 * by the depth checks every value passes before it can reach a message. */
static void sb_json(sbuf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *m;
        bool first = true;
        sb_str(b, "{");
        json_object_keylen_foreach((json_t *)v, key, klen, m)
        {
            if (!first)
                sb_str(b, ",");
            first = false;
            sb_quote(b, key, klen);
            sb_str(b, ":");
            sb_json(b, m);
            if (b->trunc)
                return;
        }
        sb_str(b, "}");
        break;
    }
    case JSON_ARRAY:
        sb_str(b, "[");
        for (size_t i = 0; i < json_array_size(v) && !b->trunc; i++) {
            if (i)
                sb_str(b, ",");
            sb_json(b, json_array_get(v, i));
        }
        sb_str(b, "]");
        break;
    case JSON_STRING:
        sb_quote(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        sb_number(b, v);
        break;
    case JSON_TRUE:
        sb_str(b, "true");
        break;
    case JSON_FALSE:
        sb_str(b, "false");
        break;
    case JSON_NULL:
        sb_str(b, "null");
        break;
    }
}

static void sb_json_excerpt(sbuf *b, const json_t *v, size_t max)
{
    size_t old = sb_excerpt_begin(b, max);
    sb_json(b, v);
    sb_excerpt_end(b, old);
}

/* ---- locations ---------------------------------------------------------- */

/* One step from the root, on the C stack of the walk: a member key, or an
 * array index when key is NULL. The root itself is a NULL loc. */
typedef struct loc {
    const struct loc *up;
    const char *key;
    size_t klen;
    size_t index;
} loc;

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
static void sb_path(sbuf *b, const loc *at)
{
    if (!at) {
        sb_str(b, "$");
        return;
    }
    sb_path(b, at->up);
    if (!at->key) {
        sb_printf(b, "[%zu]", at->index);
    } else if (is_identifier(at->key, at->klen)) {
        sb_str(b, ".");
        sb_put(b, at->key, at->klen);
    } else {
        sb_str(b, "[");
        sb_quote(b, at->key, at->klen);
        sb_str(b, "]");
    }
}

/* A JSON Pointer into the schema: "#/properties/files/items". */
static void sb_pointer(sbuf *b, const loc *at)
{
    if (!at) {
        sb_str(b, "#");
        return;
    }
    sb_pointer(b, at->up);
    sb_str(b, "/");
    if (!at->key) {
        sb_printf(b, "%zu", at->index);
        return;
    }
    for (size_t i = 0; i < at->klen; i++) {
        unsigned char c = (unsigned char)at->key[i];
        if (c == '~')
            sb_str(b, "~0");
        else if (c == '/')
            sb_str(b, "~1");
        else if (c < 0x20)
            sb_str(b, "?");
        else
            sb_put(b, at->key + i, 1);
    }
}

/* Begin a message about a value at `at`; returns TT_EINVAL for the caller. */
static int vfail(sbuf *b, const loc *at)
{
    b->len = 0;
    b->trunc = false;
    if (b->n)
        b->p[0] = '\0';
    sb_path(b, at);
    sb_str(b, ": ");
    return TT_EINVAL;
}

/* Begin a message about the schema at `at`. */
static int sfail(sbuf *b, const loc *at)
{
    b->len = 0;
    b->trunc = false;
    if (b->n)
        b->p[0] = '\0';
    sb_pointer(b, at);
    sb_str(b, ": ");
    return TT_EINVAL;
}

/* ---- numbers and equality ----------------------------------------------- */

/* Compare an integer with a double exactly: -1, 0, 1 as i <, ==, > d.
 * Converting i to double would round above 2^53. */
static int cmp_int_real(json_int_t i, double d)
{
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double t = trunc(d); /* now within json_int_t's range */
    json_int_t ti = (json_int_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    double frac = d - t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

static int cmp_num(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a))
        return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

/* JSON Schema equality: numbers by value, objects regardless of key order.
 * jansson's json_equal() would call 1 and 1.0 different. */
static bool equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return cmp_num(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)a, key, klen, m)
        {
            json_t *o = json_object_getn(b, key, klen);
            if (!o || !equal(m, o))
                return false;
        }
        return true;
    }
    default: /* true, false, null: same type is same value */
        return true;
    }
}

/* Is v nested at most `budget` arrays/objects deep? */
static bool nesting_within(const json_t *v, int budget)
{
    if (!json_is_array(v) && !json_is_object(v))
        return true;
    if (budget <= 0)
        return false;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!nesting_within(json_array_get(v, i), budget - 1))
                return false;
        return true;
    }
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
    {
        if (!nesting_within(m, budget - 1))
            return false;
    }
    return true;
}

/* ---- patterns ----------------------------------------------------------- */

/* Compile a pattern. TT_EINVAL with the PCRE2 error code and offset, or
 * TT_ENOMEM. */
static int compile_pattern(const json_t *pat, pcre2_code **out, int *code, size_t *off)
{
    PCRE2_SIZE o = 0;
    *out = pcre2_compile((PCRE2_SPTR)json_string_value(pat), json_string_length(pat),
                         PCRE2_UTF | PCRE2_UCP, code, &o, NULL);
    *off = o;
    if (*out)
        return 0;
    return *code == PCRE2_ERROR_HEAP_FAILED ? TT_ENOMEM : TT_EINVAL;
}

static void sb_pattern_error(sbuf *b, const json_t *pat, int code, size_t off)
{
    PCRE2_UCHAR msg[120];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
        snprintf((char *)msg, sizeof msg, "error %d", code);
    sb_str(b, "pattern ");
    sb_json_excerpt(b, pat, QUOTE_MAX);
    sb_str(b, " does not compile: ");
    sb_str(b, (const char *)msg);
    sb_printf(b, " at offset %zu", off);
}

/* ---- tt_schema_check ---------------------------------------------------- */

/* The location of keyword kw (a string literal) in the schema at `at`. */
#define KEYWORD(at, kw) ((loc){(at), (kw), sizeof(kw) - 1, 0})

/* One row per kind of value the keywords apply to. */
/* clang-format off */
static const char *const known_keywords[] = {
    "type", "enum", "const",
    "properties", "required", "additionalProperties",
    "items", "minItems", "maxItems", "uniqueItems",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern",
    "description", "title", "default", "examples", "$schema",
};
/* clang-format on */

static const char *const type_names[] = {"object", "array",   "string", "integer",
                                         "number", "boolean", "null"};

/* Why a keyword someone is likely to write is refused, and what to use. */
static const char *unsupported_hint(const char *kw)
{
    static const struct {
        const char *kw;
        const char *hint;
    } hints[] = {
        {"$ref", "references are not supported, inline the subschema"},
        {"$defs", "references are not supported, inline the subschema"},
        {"definitions", "references are not supported, inline the subschema"},
        {"$id", "references are not supported, inline the subschema"},
        {"$anchor", "references are not supported, inline the subschema"},
        {"oneOf", "oneOf/anyOf/allOf/not are not supported, use enum or a type array"},
        {"anyOf", "oneOf/anyOf/allOf/not are not supported, use enum or a type array"},
        {"allOf", "oneOf/anyOf/allOf/not are not supported, use enum or a type array"},
        {"not", "oneOf/anyOf/allOf/not are not supported, use enum or a type array"},
        {"if", "conditional schemas are not supported"},
        {"then", "conditional schemas are not supported"},
        {"else", "conditional schemas are not supported"},
        {"format", "format would not be enforced, use pattern"},
        {"nullable", "use a type array such as [\"string\", \"null\"]"},
        {"prefixItems", "use items with a single schema"},
        {"contains", "use items with a single schema"},
        {"patternProperties", "use properties and additionalProperties"},
        {"propertyNames", "use properties and additionalProperties"},
        {"minProperties", "use properties and required"},
        {"maxProperties", "use properties and additionalProperties"},
    };
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (strcmp(kw, hints[i].kw) == 0)
            return hints[i].hint;
    return NULL;
}

static bool is_known(const char *key, size_t klen)
{
    for (size_t i = 0; i < sizeof known_keywords / sizeof known_keywords[0]; i++)
        if (strlen(known_keywords[i]) == klen && memcmp(known_keywords[i], key, klen) == 0)
            return true;
    return false;
}

static bool is_type_name(const json_t *v)
{
    if (!json_is_string(v))
        return false;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strlen(type_names[i]) == json_string_length(v) &&
            strcmp(json_string_value(v), type_names[i]) == 0)
            return true;
    return false;
}

/* Name every unsupported keyword of schema s, then the hints that apply. */
static int refuse_unknown(sbuf *b, const json_t *s, const loc *at, size_t count)
{
    const char *key;
    size_t klen;
    json_t *m;
    sfail(b, at);
    sb_str(b, count > 1 ? "unsupported keywords " : "unsupported keyword ");
    size_t i = 0;
    json_object_keylen_foreach((json_t *)s, key, klen, m)
    {
        if (is_known(key, klen))
            continue;
        if (i++)
            sb_str(b, ", ");
        sb_quote(b, key, klen);
    }
    const char *said[8];
    size_t nsaid = 0;
    json_object_keylen_foreach((json_t *)s, key, klen, m)
    {
        const char *hint = is_known(key, klen) ? NULL : unsupported_hint(key);
        bool dup = false;
        for (size_t j = 0; j < nsaid; j++)
            dup |= hint && strcmp(said[j], hint) == 0;
        if (!hint || dup || nsaid == sizeof said / sizeof said[0])
            continue;
        sb_str(b, nsaid ? "; " : " (");
        sb_str(b, hint);
        said[nsaid++] = hint;
    }
    sb_str(b, nsaid ? ")" : " (not in Tether's schema subset, see agents/schema/schema.h)");
    return TT_EINVAL;
}

static int check_node(sbuf *b, const json_t *s, const loc *at, int depth);

static int check_count(sbuf *b, const json_t *s, const char *kw, const loc *at)
{
    const json_t *v = json_object_get(s, kw);
    if (!v || (json_is_integer(v) && json_integer_value(v) >= 0))
        return 0;
    loc k = {at, kw, strlen(kw), 0};
    sfail(b, &k);
    sb_str(b, "must be a non-negative integer");
    return TT_EINVAL;
}

static int check_order(sbuf *b, const json_t *s, const char *lo, const char *hi, const loc *at)
{
    const json_t *l = json_object_get(s, lo), *h = json_object_get(s, hi);
    if (!l || !h || cmp_num(l, h) <= 0)
        return 0;
    sfail(b, at);
    sb_printf(b, "%s is greater than %s, no value can match", lo, hi);
    return TT_EINVAL;
}

static int check_type(sbuf *b, const json_t *t, const loc *at)
{
    loc k = KEYWORD(at, "type");
    if (is_type_name(t))
        return 0;
    if (json_is_array(t) && json_array_size(t) > 0) {
        for (size_t i = 0; i < json_array_size(t); i++) {
            const json_t *e = json_array_get(t, i);
            loc ki = {&k, NULL, 0, i};
            if (!is_type_name(e)) {
                sfail(b, &ki);
                sb_json_excerpt(b, e, QUOTE_MAX);
                sb_str(b, " is not a type (object, array, string, integer, number, boolean, "
                          "null)");
                return TT_EINVAL;
            }
            for (size_t j = 0; j < i; j++)
                if (equal(e, json_array_get(t, j))) {
                    sfail(b, &ki);
                    sb_str(b, "type listed twice");
                    return TT_EINVAL;
                }
        }
        return 0;
    }
    sfail(b, &k);
    sb_str(b, "must be one of object, array, string, integer, number, boolean, null, or a "
              "non-empty array of them");
    return TT_EINVAL;
}

static int check_object_keywords(sbuf *b, const json_t *s, const loc *at, int depth)
{
    const char *key;
    size_t klen;
    json_t *m;
    int rc;
    const json_t *props = json_object_get(s, "properties");
    loc kp = KEYWORD(at, "properties");
    if (props && !json_is_object(props)) {
        sfail(b, &kp);
        sb_str(b, "must be an object of schemas");
        return TT_EINVAL;
    }
    json_object_keylen_foreach((json_t *)props, key, klen, m)
    {
        loc kk = {&kp, key, klen, 0};
        if ((rc = check_node(b, m, &kk, depth + 1)))
            return rc;
    }

    const json_t *addl = json_object_get(s, "additionalProperties");
    loc ka = KEYWORD(at, "additionalProperties");
    if (addl && !json_is_boolean(addl) && (rc = check_node(b, addl, &ka, depth + 1)))
        return rc;

    const json_t *req = json_object_get(s, "required");
    loc kr = KEYWORD(at, "required");
    if (req && !json_is_array(req)) {
        sfail(b, &kr);
        sb_str(b, "must be an array of property names");
        return TT_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *name = json_array_get(req, i);
        loc ki = {&kr, NULL, 0, i};
        if (!json_is_string(name)) {
            sfail(b, &ki);
            sb_str(b, "must be a property name (a string)");
            return TT_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (equal(name, json_array_get(req, j))) {
                sfail(b, &ki);
                sb_quote(b, json_string_value(name), json_string_length(name));
                sb_str(b, " is listed twice");
                return TT_EINVAL;
            }
        /* A required property that additionalProperties:false forbids makes
         * the schema unsatisfiable: a config mistake worth refusing. */
        if (json_is_false(addl) &&
            !json_object_getn(props, json_string_value(name), json_string_length(name))) {
            sfail(b, &ki);
            sb_str(b, "required property ");
            sb_quote(b, json_string_value(name), json_string_length(name));
            sb_str(b, " is not in properties and additionalProperties is false");
            return TT_EINVAL;
        }
    }
    return 0;
}

static int check_node(sbuf *b, const json_t *s, const loc *at, int depth)
{
    int rc;
    if (depth > TT_SCHEMA_MAX_DEPTH) {
        sfail(b, at);
        sb_printf(b, "schema nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    if (!json_is_object(s)) {
        sfail(b, at);
        sb_str(b, "a schema must be an object");
        return TT_EINVAL;
    }

    const char *key;
    size_t klen;
    json_t *m;
    size_t unknown = 0;
    json_object_keylen_foreach((json_t *)s, key, klen, m)
    {
        unknown += !is_known(key, klen);
    }
    if (unknown)
        return refuse_unknown(b, s, at, unknown);

    const json_t *t = json_object_get(s, "type");
    if (t && (rc = check_type(b, t, at)))
        return rc;
    if ((rc = check_object_keywords(b, s, at, depth)))
        return rc;

    const json_t *items = json_object_get(s, "items");
    loc ki = KEYWORD(at, "items");
    if (json_is_array(items)) {
        sfail(b, &ki);
        sb_str(b, "must be a single schema (the tuple form is not supported)");
        return TT_EINVAL;
    }
    if (items && (rc = check_node(b, items, &ki, depth + 1)))
        return rc;

    static const char *const counts[] = {"minItems", "maxItems", "minLength", "maxLength"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if ((rc = check_count(b, s, counts[i], at)))
            return rc;
    if ((rc = check_order(b, s, "minItems", "maxItems", at)) ||
        (rc = check_order(b, s, "minLength", "maxLength", at)))
        return rc;

    const json_t *u = json_object_get(s, "uniqueItems");
    if (u && !json_is_boolean(u)) {
        loc k = KEYWORD(at, "uniqueItems");
        sfail(b, &k);
        sb_str(b, "must be true or false");
        return TT_EINVAL;
    }

    static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum",
                                         "exclusiveMaximum"};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const json_t *v = json_object_get(s, bounds[i]);
        if (!v || json_is_number(v))
            continue;
        loc k = {at, bounds[i], strlen(bounds[i]), 0};
        sfail(b, &k);
        sb_str(b, "must be a number");
        if (json_is_boolean(v))
            sb_str(b, " (draft 2020-12: the bound itself, not a boolean flag on minimum/maximum)");
        return TT_EINVAL;
    }
    if ((rc = check_order(b, s, "minimum", "maximum", at)))
        return rc;

    const json_t *e = json_object_get(s, "enum");
    loc ke = KEYWORD(at, "enum");
    if (e && (!json_is_array(e) || json_array_size(e) == 0)) {
        sfail(b, &ke);
        sb_str(b, "must be a non-empty array");
        return TT_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(e); i++) {
        if (nesting_within(json_array_get(e, i), TT_SCHEMA_MAX_DEPTH))
            continue;
        loc k = {&ke, NULL, 0, i};
        sfail(b, &k);
        sb_printf(b, "value nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    const json_t *c = json_object_get(s, "const");
    if (c && !nesting_within(c, TT_SCHEMA_MAX_DEPTH)) {
        loc k = KEYWORD(at, "const");
        sfail(b, &k);
        sb_printf(b, "value nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }

    const json_t *p = json_object_get(s, "pattern");
    if (p) {
        loc k = KEYWORD(at, "pattern");
        pcre2_code *re = NULL;
        int code;
        size_t off;
        if (!json_is_string(p)) {
            sfail(b, &k);
            sb_str(b, "must be a string");
            return TT_EINVAL;
        }
        rc = compile_pattern(p, &re, &code, &off);
        if (rc == TT_EINVAL) {
            sfail(b, &k);
            sb_pattern_error(b, p, code, off);
        }
        if (rc)
            return rc;
        pcre2_code_free(re);
    }
    return 0;
}

int tt_schema_check(const json_t *schema, char *err, size_t n)
{
    sbuf b;
    sb_init(&b, err, n);
    if (!schema) {
        sfail(&b, NULL);
        sb_str(&b, "no schema");
        return TT_EINVAL;
    }
    return check_node(&b, schema, NULL, 1);
}

/* ---- tt_schema_validate ------------------------------------------------- */

static const char *type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static bool has_type(const char *name, const json_t *v)
{
    if (strcmp(name, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(name, "number") == 0)
        return json_is_number(v);
    return strcmp(name, type_of(v)) == 0;
}

/* Fails at the first array/object nested deeper than the limit. */
static int value_depth(sbuf *b, const json_t *v, const loc *at, int depth)
{
    int rc;
    if (!json_is_array(v) && !json_is_object(v))
        return 0;
    if (depth >= TT_SCHEMA_MAX_DEPTH) {
        vfail(b, at);
        sb_printf(b, "value nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            loc k = {at, NULL, 0, i};
            if ((rc = value_depth(b, json_array_get(v, i), &k, depth + 1)))
                return rc;
        }
        return 0;
    }
    const char *key;
    size_t klen;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, klen, m)
    {
        loc k = {at, key, klen, 0};
        if ((rc = value_depth(b, m, &k, depth + 1)))
            return rc;
    }
    return 0;
}

static int validate_node(sbuf *b, const json_t *s, const json_t *v, const loc *at);

static int validate_type(sbuf *b, const json_t *t, const json_t *v, const loc *at)
{
    if (json_is_string(t) && has_type(json_string_value(t), v))
        return 0;
    for (size_t i = 0; json_is_array(t) && i < json_array_size(t); i++)
        if (has_type(json_string_value(json_array_get(t, i)), v))
            return 0;
    vfail(b, at);
    if (json_is_string(t)) {
        sb_printf(b, "expected %s", json_string_value(t));
    } else {
        sb_str(b, "expected one of ");
        for (size_t i = 0; i < json_array_size(t); i++)
            sb_printf(b, "%s%s", i ? ", " : "", json_string_value(json_array_get(t, i)));
    }
    sb_printf(b, ", got %s", type_of(v));
    if (!json_is_array(v) && !json_is_object(v) && !json_is_null(v)) {
        sb_str(b, " ");
        sb_json_excerpt(b, v, QUOTE_MAX);
    }
    return TT_EINVAL;
}

static int validate_number(sbuf *b, const json_t *s, const json_t *v, const loc *at)
{
    static const struct {
        const char *kw;
        int bad_if;  /* cmp_num(v, bound) result that violates */
        int bad_if2; /* a second one, or the same */
        const char *says;
    } rules[] = {
        {"minimum", -1, -1, "is less than minimum"},
        {"exclusiveMinimum", -1, 0, "is not greater than exclusiveMinimum"},
        {"maximum", 1, 1, "is greater than maximum"},
        {"exclusiveMaximum", 1, 0, "is not less than exclusiveMaximum"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const json_t *bound = json_object_get(s, rules[i].kw);
        if (!bound)
            continue;
        int c = cmp_num(v, bound);
        if (c != rules[i].bad_if && c != rules[i].bad_if2)
            continue;
        vfail(b, at);
        sb_number(b, v);
        sb_printf(b, " %s ", rules[i].says);
        sb_number(b, bound);
        return TT_EINVAL;
    }
    return 0;
}

static size_t code_points(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int validate_pattern(sbuf *b, const json_t *pat, const json_t *v, const loc *at)
{
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    int code;
    size_t off;
    int rc = compile_pattern(pat, &re, &code, &off);
    if (rc) /* tt_schema_check() compiled it a moment ago */
        return rc == TT_EINVAL ? TT_EINTERNAL : rc;
    md = pcre2_match_data_create_from_pattern(re, NULL);
    mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        rc = TT_ENOMEM;
        goto done;
    }
    pcre2_set_match_limit(mc, TT_SCHEMA_MATCH_LIMIT);
    int m = pcre2_match(re, (PCRE2_SPTR)json_string_value(v), json_string_length(v), 0, 0, md, mc);
    if (m >= 0) {
        rc = 0;
        goto done;
    }
    if (m == PCRE2_ERROR_NOMEMORY) {
        rc = TT_ENOMEM;
        goto done;
    }
    rc = vfail(b, at);
    if (m == PCRE2_ERROR_NOMATCH) {
        sb_str(b, "string ");
        sb_json_excerpt(b, v, QUOTE_MAX);
        sb_str(b, " does not match pattern ");
        sb_json_excerpt(b, pat, QUOTE_MAX);
    } else if (m <= PCRE2_ERROR_UTF8_ERR1 && m >= PCRE2_ERROR_UTF8_ERR21) {
        sb_str(b, "string is not valid UTF-8");
    } else {
        sb_str(b, "string is too complex to match against pattern ");
        sb_json_excerpt(b, pat, QUOTE_MAX);
        sb_str(b, ", send a shorter or simpler value");
    }
done:
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc;
}

static int validate_string(sbuf *b, const json_t *s, const json_t *v, const loc *at)
{
    const json_t *lo = json_object_get(s, "minLength"), *hi = json_object_get(s, "maxLength");
    if (lo || hi) {
        size_t len = code_points(json_string_value(v), json_string_length(v));
        if (lo && len < (size_t)json_integer_value(lo)) {
            int rc = vfail(b, at);
            sb_printf(b, "string shorter than minLength %" JSON_INTEGER_FORMAT " (%zu characters)",
                      json_integer_value(lo), len);
            return rc;
        }
        if (hi && (json_int_t)len > json_integer_value(hi)) {
            int rc = vfail(b, at);
            sb_printf(b, "string longer than maxLength %" JSON_INTEGER_FORMAT " (%zu characters)",
                      json_integer_value(hi), len);
            return rc;
        }
    }
    const json_t *pat = json_object_get(s, "pattern");
    return pat ? validate_pattern(b, pat, v, at) : 0;
}

static int validate_array(sbuf *b, const json_t *s, const json_t *v, const loc *at)
{
    int rc;
    size_t n = json_array_size(v);
    const json_t *lo = json_object_get(s, "minItems"), *hi = json_object_get(s, "maxItems");
    if (lo && n < (size_t)json_integer_value(lo)) {
        rc = vfail(b, at);
        sb_printf(b, "array has %zu items, fewer than minItems %" JSON_INTEGER_FORMAT, n,
                  json_integer_value(lo));
        return rc;
    }
    if (hi && (json_int_t)n > json_integer_value(hi)) {
        rc = vfail(b, at);
        sb_printf(b, "array has %zu items, more than maxItems %" JSON_INTEGER_FORMAT, n,
                  json_integer_value(hi));
        return rc;
    }
    const json_t *items = json_object_get(s, "items");
    for (size_t i = 0; items && i < n; i++) {
        loc k = {at, NULL, 0, i};
        if ((rc = validate_node(b, items, json_array_get(v, i), &k)))
            return rc;
    }
    if (!json_is_true(json_object_get(s, "uniqueItems")))
        return 0;
    /* Quadratic, which is fine for the arrays a tool call carries. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (equal(json_array_get(v, i), json_array_get(v, j))) {
                loc k = {at, NULL, 0, i};
                rc = vfail(b, &k);
                sb_printf(b, "duplicate of item [%zu], but uniqueItems is true", j);
                return rc;
            }
    return 0;
}

static int validate_object(sbuf *b, const json_t *s, const json_t *v, const loc *at)
{
    int rc;
    const json_t *req = json_object_get(s, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *name = json_array_get(req, i);
        if (json_object_getn(v, json_string_value(name), json_string_length(name)))
            continue;
        rc = vfail(b, at);
        sb_str(b, "missing required property ");
        sb_quote(b, json_string_value(name), json_string_length(name));
        return rc;
    }
    const json_t *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const char *key;
    size_t klen;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, klen, m)
    {
        loc k = {at, key, klen, 0};
        const json_t *sub = json_object_getn(props, key, klen);
        if (sub) {
            if ((rc = validate_node(b, sub, m, &k)))
                return rc;
        } else if (json_is_object(addl)) {
            if ((rc = validate_node(b, addl, m, &k)))
                return rc;
        } else if (json_is_false(addl)) {
            rc = vfail(b, &k);
            sb_str(b, "property not allowed");
            if (json_object_size(props) == 0) {
                sb_str(b, ", this object takes no properties");
                return rc;
            }
            sb_str(b, "; allowed: ");
            size_t old = sb_excerpt_begin(b, LIST_MAX);
            const char *pk;
            size_t plen;
            json_t *pm;
            bool first = true;
            json_object_keylen_foreach((json_t *)props, pk, plen, pm)
            {
                if (!first)
                    sb_str(b, ", ");
                first = false;
                sb_quote(b, pk, plen);
            }
            sb_excerpt_end(b, old);
            return rc;
        }
    }
    return 0;
}

static int validate_node(sbuf *b, const json_t *s, const json_t *v, const loc *at)
{
    int rc;
    const json_t *t = json_object_get(s, "type");
    if (t && (rc = validate_type(b, t, v, at)))
        return rc;
    const json_t *c = json_object_get(s, "const");
    if (c && !equal(c, v)) {
        rc = vfail(b, at);
        sb_str(b, "must be ");
        sb_json_excerpt(b, c, QUOTE_MAX);
        sb_str(b, ", got ");
        sb_json_excerpt(b, v, QUOTE_MAX);
        return rc;
    }
    const json_t *e = json_object_get(s, "enum");
    if (e) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(e) && !found; i++)
            found = equal(json_array_get(e, i), v);
        if (!found) {
            rc = vfail(b, at);
            sb_json_excerpt(b, v, QUOTE_MAX);
            sb_str(b, " is not one of ");
            sb_json_excerpt(b, e, LIST_MAX);
            return rc;
        }
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        return validate_number(b, s, v, at);
    case JSON_STRING:
        return validate_string(b, s, v, at);
    case JSON_ARRAY:
        return validate_array(b, s, v, at);
    case JSON_OBJECT:
        return validate_object(b, s, v, at);
    default:
        return 0;
    }
}

int tt_schema_validate(const json_t *schema, const json_t *value, char *err, size_t n)
{
    sbuf b;
    int rc = tt_schema_check(schema, err, n);
    if (rc)
        return rc == TT_EINVAL ? TT_ESCHEMA : rc;
    sb_init(&b, err, n);
    if (!value) {
        vfail(&b, NULL);
        sb_str(&b, "no value");
        return TT_EINVAL;
    }
    if ((rc = value_depth(&b, value, NULL, 0)))
        return rc;
    return validate_node(&b, schema, value, NULL);
}
