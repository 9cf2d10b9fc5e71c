/* tt_schema_validate (see schema.h): does a value conform to a schema? The
 * schema is checked first (one from a request or an old config must not be
 * trusted), then a depth walk over the value, then the validation proper,
 * which stops at the first violation in the order schema.h gives. Both walks
 * recurse at most TT_SCHEMA_MAX_DEPTH frames, and equality recursion is
 * bounded by the shallower of its two arguments, both of which passed a
 * depth check. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "agents/schema/schema.h"
#include "agents/schema/schema_private.h"
#include "protocol/errors.h"

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
static int value_depth(tt_sb *b, const json_t *v, const tt_schema_loc *at, int depth)
{
    int rc;
    if (!json_is_array(v) && !json_is_object(v))
        return 0;
    if (depth >= TT_SCHEMA_MAX_DEPTH) {
        tt_sb_value_error(b, at);
        tt_sb_printf(b, "value nested deeper than %d levels", TT_SCHEMA_MAX_DEPTH);
        return TT_EINVAL;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            tt_schema_loc k = {at, NULL, 0, i};
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
        tt_schema_loc k = {at, key, klen, 0};
        if ((rc = value_depth(b, m, &k, depth + 1)))
            return rc;
    }
    return 0;
}

static int validate_node(tt_sb *b, const json_t *s, const json_t *v, const tt_schema_loc *at);

static int validate_type(tt_sb *b, const json_t *t, const json_t *v, const tt_schema_loc *at)
{
    if (json_is_string(t) && has_type(json_string_value(t), v))
        return 0;
    for (size_t i = 0; json_is_array(t) && i < json_array_size(t); i++)
        if (has_type(json_string_value(json_array_get(t, i)), v))
            return 0;
    tt_sb_value_error(b, at);
    if (json_is_string(t)) {
        tt_sb_printf(b, "expected %s", json_string_value(t));
    } else {
        tt_sb_str(b, "expected one of ");
        for (size_t i = 0; i < json_array_size(t); i++)
            tt_sb_printf(b, "%s%s", i ? ", " : "", json_string_value(json_array_get(t, i)));
    }
    tt_sb_printf(b, ", got %s", type_of(v));
    if (!json_is_array(v) && !json_is_object(v) && !json_is_null(v)) {
        tt_sb_str(b, " ");
        tt_sb_json_excerpt(b, v, QUOTE_MAX);
    }
    return TT_EINVAL;
}

static int validate_number(tt_sb *b, const json_t *s, const json_t *v, const tt_schema_loc *at)
{
    static const struct {
        const char *kw;
        int bad_if;  /* tt_schema_cmp_num(v, bound) result that violates */
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
        int c = tt_schema_cmp_num(v, bound);
        if (c != rules[i].bad_if && c != rules[i].bad_if2)
            continue;
        tt_sb_value_error(b, at);
        tt_sb_number(b, v);
        tt_sb_printf(b, " %s ", rules[i].says);
        tt_sb_number(b, bound);
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

static int validate_pattern(tt_sb *b, const json_t *pat, const json_t *v, const tt_schema_loc *at)
{
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    int code;
    size_t off;
    int rc = tt_schema_compile_pattern(pat, &re, &code, &off);
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
    rc = tt_sb_value_error(b, at);
    if (m == PCRE2_ERROR_NOMATCH) {
        tt_sb_str(b, "string ");
        tt_sb_json_excerpt(b, v, QUOTE_MAX);
        tt_sb_str(b, " does not match pattern ");
        tt_sb_json_excerpt(b, pat, QUOTE_MAX);
    } else if (m <= PCRE2_ERROR_UTF8_ERR1 && m >= PCRE2_ERROR_UTF8_ERR21) {
        tt_sb_str(b, "string is not valid UTF-8");
    } else {
        tt_sb_str(b, "string is too complex to match against pattern ");
        tt_sb_json_excerpt(b, pat, QUOTE_MAX);
        tt_sb_str(b, ", send a shorter or simpler value");
    }
done:
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc;
}

static int validate_string(tt_sb *b, const json_t *s, const json_t *v, const tt_schema_loc *at)
{
    const json_t *lo = json_object_get(s, "minLength"), *hi = json_object_get(s, "maxLength");
    if (lo || hi) {
        size_t len = code_points(json_string_value(v), json_string_length(v));
        if (lo && len < (size_t)json_integer_value(lo)) {
            int rc = tt_sb_value_error(b, at);
            tt_sb_printf(b,
                         "string shorter than minLength %" JSON_INTEGER_FORMAT " (%zu characters)",
                         json_integer_value(lo), len);
            return rc;
        }
        if (hi && (json_int_t)len > json_integer_value(hi)) {
            int rc = tt_sb_value_error(b, at);
            tt_sb_printf(b,
                         "string longer than maxLength %" JSON_INTEGER_FORMAT " (%zu characters)",
                         json_integer_value(hi), len);
            return rc;
        }
    }
    const json_t *pat = json_object_get(s, "pattern");
    return pat ? validate_pattern(b, pat, v, at) : 0;
}

static int validate_array(tt_sb *b, const json_t *s, const json_t *v, const tt_schema_loc *at)
{
    int rc;
    size_t n = json_array_size(v);
    const json_t *lo = json_object_get(s, "minItems"), *hi = json_object_get(s, "maxItems");
    if (lo && n < (size_t)json_integer_value(lo)) {
        rc = tt_sb_value_error(b, at);
        tt_sb_printf(b, "array has %zu items, fewer than minItems %" JSON_INTEGER_FORMAT, n,
                     json_integer_value(lo));
        return rc;
    }
    if (hi && (json_int_t)n > json_integer_value(hi)) {
        rc = tt_sb_value_error(b, at);
        tt_sb_printf(b, "array has %zu items, more than maxItems %" JSON_INTEGER_FORMAT, n,
                     json_integer_value(hi));
        return rc;
    }
    const json_t *items = json_object_get(s, "items");
    for (size_t i = 0; items && i < n; i++) {
        tt_schema_loc k = {at, NULL, 0, i};
        if ((rc = validate_node(b, items, json_array_get(v, i), &k)))
            return rc;
    }
    if (!json_is_true(json_object_get(s, "uniqueItems")))
        return 0;
    /* Quadratic, which is fine for the arrays a tool call carries. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (tt_schema_equal(json_array_get(v, i), json_array_get(v, j))) {
                tt_schema_loc k = {at, NULL, 0, i};
                rc = tt_sb_value_error(b, &k);
                tt_sb_printf(b, "duplicate of item [%zu], but uniqueItems is true", j);
                return rc;
            }
    return 0;
}

static int validate_object(tt_sb *b, const json_t *s, const json_t *v, const tt_schema_loc *at)
{
    int rc;
    const json_t *req = json_object_get(s, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *name = json_array_get(req, i);
        if (json_object_getn(v, json_string_value(name), json_string_length(name)))
            continue;
        rc = tt_sb_value_error(b, at);
        tt_sb_str(b, "missing required property ");
        tt_sb_quote(b, json_string_value(name), json_string_length(name));
        return rc;
    }
    const json_t *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const char *key;
    size_t klen;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, klen, m)
    {
        tt_schema_loc k = {at, key, klen, 0};
        const json_t *sub = json_object_getn(props, key, klen);
        if (sub) {
            if ((rc = validate_node(b, sub, m, &k)))
                return rc;
        } else if (json_is_object(addl)) {
            if ((rc = validate_node(b, addl, m, &k)))
                return rc;
        } else if (json_is_false(addl)) {
            rc = tt_sb_value_error(b, &k);
            tt_sb_str(b, "property not allowed");
            if (json_object_size(props) == 0) {
                tt_sb_str(b, ", this object takes no properties");
                return rc;
            }
            tt_sb_str(b, "; allowed: ");
            size_t old = tt_sb_excerpt_begin(b, LIST_MAX);
            const char *pk;
            size_t plen;
            json_t *pm;
            bool first = true;
            json_object_keylen_foreach((json_t *)props, pk, plen, pm)
            {
                if (!first)
                    tt_sb_str(b, ", ");
                first = false;
                tt_sb_quote(b, pk, plen);
            }
            tt_sb_excerpt_end(b, old);
            return rc;
        }
    }
    return 0;
}

static int validate_node(tt_sb *b, const json_t *s, const json_t *v, const tt_schema_loc *at)
{
    int rc;
    const json_t *t = json_object_get(s, "type");
    if (t && (rc = validate_type(b, t, v, at)))
        return rc;
    const json_t *c = json_object_get(s, "const");
    if (c && !tt_schema_equal(c, v)) {
        rc = tt_sb_value_error(b, at);
        tt_sb_str(b, "must be ");
        tt_sb_json_excerpt(b, c, QUOTE_MAX);
        tt_sb_str(b, ", got ");
        tt_sb_json_excerpt(b, v, QUOTE_MAX);
        return rc;
    }
    const json_t *e = json_object_get(s, "enum");
    if (e) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(e) && !found; i++)
            found = tt_schema_equal(json_array_get(e, i), v);
        if (!found) {
            rc = tt_sb_value_error(b, at);
            tt_sb_json_excerpt(b, v, QUOTE_MAX);
            tt_sb_str(b, " is not one of ");
            tt_sb_json_excerpt(b, e, LIST_MAX);
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
    tt_sb b;
    int rc = tt_schema_check(schema, err, n);
    if (rc)
        return rc == TT_EINVAL ? TT_ESCHEMA : rc;
    tt_sb_init(&b, err, n);
    if (!value) {
        tt_sb_value_error(&b, NULL);
        tt_sb_str(&b, "no value");
        return TT_EINVAL;
    }
    if ((rc = value_depth(&b, value, NULL, 0)))
        return rc;
    return validate_node(&b, schema, value, NULL);
}
