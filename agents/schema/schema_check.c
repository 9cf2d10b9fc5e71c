/* tt_schema_check (see schema.h): is a schema inside the subset and well
 * formed? A keyword outside the subset is refused, never half checked, with
 * a hint at what to write instead; bounds that no value can meet, duplicate
 * names and patterns that do not compile are refused too. Proving all this
 * once lets the validation (schema_validate.c) read keywords without
 * re-checking their types. The walk recurses at most TT_SCHEMA_MAX_DEPTH
 * frames. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agents/schema/schema.h"
#include "agents/schema/schema_private.h"
#include "protocol/errors.h"

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

static void sb_pattern_error(tt_sb *b, const json_t *pat, int code, size_t off)
{
    PCRE2_UCHAR msg[120];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
        snprintf((char *)msg, sizeof msg, "error %d", code);
    tt_sb_str(b, "pattern ");
    tt_sb_json_excerpt(b, pat, QUOTE_MAX);
    tt_sb_str(b, " does not compile: ");
    tt_sb_str(b, (const char *)msg);
    tt_sb_printf(b, " at offset %zu", off);
}

/* The location of keyword kw (a string literal) in the schema at `at`. */
#define KEYWORD(at, kw) ((tt_schema_loc){(at), (kw), sizeof(kw) - 1, 0})

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
static int refuse_unknown(tt_sb *b, const json_t *s, const tt_schema_loc *at, size_t count)
{
    const char *key;
    size_t klen;
    json_t *m;
    tt_sb_schema_error(b, at);
    tt_sb_str(b, count > 1 ? "unsupported keywords " : "unsupported keyword ");
    size_t i = 0;
    json_object_keylen_foreach((json_t *)s, key, klen, m)
    {
        if (is_known(key, klen))
            continue;
        if (i++)
            tt_sb_str(b, ", ");
        tt_sb_quote(b, key, klen);
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
        tt_sb_str(b, nsaid ? "; " : " (");
        tt_sb_str(b, hint);
        said[nsaid++] = hint;
    }
    tt_sb_str(b, nsaid ? ")" : " (not in Tether's schema subset, see agents/schema/schema.h)");
    return TT_EINVAL;
}

static int check_node(tt_sb *b, const json_t *s, const tt_schema_loc *at, int depth);

static int check_count(tt_sb *b, const json_t *s, const char *kw, const tt_schema_loc *at)
{
    const json_t *v = json_object_get(s, kw);
    if (!v || (json_is_integer(v) && json_integer_value(v) >= 0))
        return 0;
    tt_schema_loc k = {at, kw, strlen(kw), 0};
    tt_sb_schema_error(b, &k);
    tt_sb_str(b, "must be a non-negative integer");
    return TT_EINVAL;
}

static int check_order(tt_sb *b, const json_t *s, const char *lo, const char *hi,
                       const tt_schema_loc *at)
{
    const json_t *l = json_object_get(s, lo), *h = json_object_get(s, hi);
    if (!l || !h || tt_schema_cmp_num(l, h) <= 0)
        return 0;
    tt_sb_schema_error(b, at);
    tt_sb_printf(b, "%s is greater than %s, no value can match", lo, hi);
    return TT_EINVAL;
}

static int check_type(tt_sb *b, const json_t *t, const tt_schema_loc *at)
{
    tt_schema_loc k = KEYWORD(at, "type");
    if (is_type_name(t))
        return 0;
    if (json_is_array(t) && json_array_size(t) > 0) {
        for (size_t i = 0; i < json_array_size(t); i++) {
            const json_t *e = json_array_get(t, i);
            tt_schema_loc ki = {&k, NULL, 0, i};
            if (!is_type_name(e)) {
                tt_sb_schema_error(b, &ki);
                tt_sb_json_excerpt(b, e, QUOTE_MAX);
                tt_sb_str(b, " is not a type (object, array, string, integer, number, boolean, "
                             "null)");
                return TT_EINVAL;
            }
            for (size_t j = 0; j < i; j++)
                if (tt_schema_equal(e, json_array_get(t, j))) {
                    tt_sb_schema_error(b, &ki);
                    tt_sb_str(b, "type listed twice");
                    return TT_EINVAL;
                }
        }
        return 0;
    }
    tt_sb_schema_error(b, &k);
    tt_sb_str(b, "must be one of object, array, string, integer, number, boolean, null, or a "
                 "non-empty array of them");
    return TT_EINVAL;
}

static int check_object_keywords(tt_sb *b, const json_t *s, const tt_schema_loc *at, int depth)
{
    const char *key;
    size_t klen;
    json_t *m;
    int rc;
    const json_t *props = json_object_get(s, "properties");
    tt_schema_loc kp = KEYWORD(at, "properties");
    if (props && !json_is_object(props)) {
        tt_sb_schema_error(b, &kp);
        tt_sb_str(b, "must be an object of schemas");
        return TT_EINVAL;
    }
    json_object_keylen_foreach((json_t *)props, key, klen, m)
    {
        tt_schema_loc kk = {&kp, key, klen, 0};
        if ((rc = check_node(b, m, &kk, depth + 1)))
            return rc;
    }

    const json_t *addl = json_object_get(s, "additionalProperties");
    tt_schema_loc ka = KEYWORD(at, "additionalProperties");
    if (addl && !json_is_boolean(addl) && (rc = check_node(b, addl, &ka, depth + 1)))
        return rc;

    const json_t *req = json_object_get(s, "required");
    tt_schema_loc kr = KEYWORD(at, "required");
    if (req && !json_is_array(req)) {
        tt_sb_schema_error(b, &kr);
        tt_sb_str(b, "must be an array of property names");
        return TT_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *name = json_array_get(req, i);
        tt_schema_loc ki = {&kr, NULL, 0, i};
        if (!json_is_string(name)) {
            tt_sb_schema_error(b, &ki);
            tt_sb_str(b, "must be a property name (a string)");
            return TT_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (tt_schema_equal(name, json_array_get(req, j))) {
                tt_sb_schema_error(b, &ki);
                tt_sb_quote(b, json_string_value(name), json_string_length(name));
                tt_sb_str(b, " is listed twice");
                return TT_EINVAL;
            }
        /* A required property that additionalProperties:false forbids makes
         * the schema unsatisfiable: a config mistake worth refusing. */
        if (json_is_false(addl) &&
            !json_object_getn(props, json_string_value(name), json_string_length(name))) {
            tt_sb_schema_error(b, &ki);
            tt_sb_str(b, "required property ");
            tt_sb_quote(b, json_string_value(name), json_string_length(name));
            tt_sb_str(b, " is not in properties and additionalProperties is false");
            return TT_EINVAL;
        }
    }
    return 0;
}

static int check_items(tt_sb *b, const json_t *s, const tt_schema_loc *at, int depth)
{
    const json_t *items = json_object_get(s, "items");
    tt_schema_loc ki = KEYWORD(at, "items");
    if (json_is_array(items)) {
        tt_sb_schema_error(b, &ki);
        tt_sb_str(b, "must be a single schema (the tuple form is not supported)");
        return TT_EINVAL;
    }
    return items ? check_node(b, items, &ki, depth + 1) : 0;
}

/* minItems maxItems minLength maxLength: counts, the minimum no larger. */
static int check_counts(tt_sb *b, const json_t *s, const tt_schema_loc *at)
{
    static const char *const counts[] = {"minItems", "maxItems", "minLength", "maxLength"};
    int rc;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if ((rc = check_count(b, s, counts[i], at)))
            return rc;
    if ((rc = check_order(b, s, "minItems", "maxItems", at)) ||
        (rc = check_order(b, s, "minLength", "maxLength", at)))
        return rc;
    return 0;
}

static int check_unique_items(tt_sb *b, const json_t *s, const tt_schema_loc *at)
{
    const json_t *u = json_object_get(s, "uniqueItems");
    if (!u || json_is_boolean(u))
        return 0;
    tt_schema_loc k = KEYWORD(at, "uniqueItems");
    tt_sb_schema_error(b, &k);
    tt_sb_str(b, "must be true or false");
    return TT_EINVAL;
}

/* minimum maximum exclusiveMinimum exclusiveMaximum: numbers (2020-12), the
 * minimum no larger than the maximum. */
static int check_bounds(tt_sb *b, const json_t *s, const tt_schema_loc *at)
{
    static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum",
                                         "exclusiveMaximum"};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const json_t *v = json_object_get(s, bounds[i]);
        if (!v || json_is_number(v))
            continue;
        tt_schema_loc k = {at, bounds[i], strlen(bounds[i]), 0};
        tt_sb_schema_error(b, &k);
        tt_sb_str(b, "must be a number");
        if (json_is_boolean(v))
            tt_sb_str(b,
                      " (draft 2020-12: the bound itself, not a boolean flag on minimum/maximum)");
        return TT_EINVAL;
    }
    return check_order(b, s, "minimum", "maximum", at);
}

/* enum: a non-empty array; enum and const values nested within the limit. */
static int check_enum_const(tt_sb *b, const json_t *s, const tt_schema_loc *at)
{
    const json_t *e = json_object_get(s, "enum");
    tt_schema_loc ke = KEYWORD(at, "enum");
    if (e && (!json_is_array(e) || json_array_size(e) == 0)) {
        tt_sb_schema_error(b, &ke);
        tt_sb_str(b, "must be a non-empty array");
        return TT_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(e); i++) {
        if (nesting_within(json_array_get(e, i), TT_SCHEMA_MAX_DEPTH))
            continue;
        tt_schema_loc k = {&ke, NULL, 0, i};
        tt_sb_schema_error(b, &k);
        tt_sb_printf(b, "value nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    const json_t *c = json_object_get(s, "const");
    if (c && !nesting_within(c, TT_SCHEMA_MAX_DEPTH)) {
        tt_schema_loc k = KEYWORD(at, "const");
        tt_sb_schema_error(b, &k);
        tt_sb_printf(b, "value nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    return 0;
}

/* pattern: a string that compiles (then freed: nothing is kept). */
static int check_pattern(tt_sb *b, const json_t *s, const tt_schema_loc *at)
{
    const json_t *p = json_object_get(s, "pattern");
    if (!p)
        return 0;
    tt_schema_loc k = KEYWORD(at, "pattern");
    if (!json_is_string(p)) {
        tt_sb_schema_error(b, &k);
        tt_sb_str(b, "must be a string");
        return TT_EINVAL;
    }
    pcre2_code *re = NULL;
    int code;
    size_t off;
    int rc = tt_schema_compile_pattern(p, &re, &code, &off);
    if (rc == TT_EINVAL) {
        tt_sb_schema_error(b, &k);
        sb_pattern_error(b, p, code, off);
    }
    if (rc)
        return rc;
    pcre2_code_free(re);
    return 0;
}

/* Within the depth limit, an object, and only keywords of the subset. */
static int check_frame(tt_sb *b, const json_t *s, const tt_schema_loc *at, int depth)
{
    if (depth > TT_SCHEMA_MAX_DEPTH) {
        tt_sb_schema_error(b, at);
        tt_sb_printf(b, "schema nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    if (!json_is_object(s)) {
        tt_sb_schema_error(b, at);
        tt_sb_str(b, "a schema must be an object");
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
    return unknown ? refuse_unknown(b, s, at, unknown) : 0;
}

/* One schema and its subschemas; the first problem found is reported, in
 * the order of the checks below. */
static int check_node(tt_sb *b, const json_t *s, const tt_schema_loc *at, int depth)
{
    int rc;
    const json_t *t;
    if ((rc = check_frame(b, s, at, depth)))
        return rc;
    if ((t = json_object_get(s, "type")) && (rc = check_type(b, t, at)))
        return rc;
    if ((rc = check_object_keywords(b, s, at, depth)) || (rc = check_items(b, s, at, depth)) ||
        (rc = check_counts(b, s, at)) || (rc = check_unique_items(b, s, at)) ||
        (rc = check_bounds(b, s, at)) || (rc = check_enum_const(b, s, at)))
        return rc;
    return check_pattern(b, s, at);
}

int tt_schema_check(const json_t *schema, char *err, size_t n)
{
    tt_sb b;
    tt_sb_init(&b, err, n);
    if (!schema) {
        tt_sb_schema_error(&b, NULL);
        tt_sb_str(&b, "no schema");
        return TT_EINVAL;
    }
    return check_node(&b, schema, NULL, 1);
}
