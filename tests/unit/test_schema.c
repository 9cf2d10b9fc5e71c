/* agents/schema/: every keyword of the subset passing and failing, the exact
 * model-facing messages with their JSON paths, refusal of everything outside
 * the subset, the depth bounds, and two schemas as Tether uses them (a move
 * plan returned by a model and a tool's arguments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/schema/schema.h"
#include "protocol/errors.h"

static char err[TT_SCHEMA_ERR_MAX];

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j)
        fail_msg("bad JSON in test: %s: %s", text, je.text);
    return j;
}

static int validate_text(const char *schema, const char *value)
{
    json_t *s = load(schema), *v = load(value);
    memset(err, 'X', sizeof err);
    int rc = tt_schema_validate(s, v, err, sizeof err);
    json_decref(s);
    json_decref(v);
    return rc;
}

static int check_text(const char *schema)
{
    json_t *s = load(schema);
    memset(err, 'X', sizeof err);
    int rc = tt_schema_check(s, err, sizeof err);
    json_decref(s);
    return rc;
}

#define assert_valid(schema, value)                                                                \
    do {                                                                                           \
        if (validate_text(schema, value) != 0)                                                     \
            fail_msg("expected %s to be valid: %s", value, err);                                   \
    } while (0)

#define assert_invalid(schema, value, message)                                                     \
    do {                                                                                           \
        assert_int_equal(validate_text(schema, value), TT_EINVAL);                                 \
        assert_string_equal(err, message);                                                         \
    } while (0)

#define assert_refused(schema, message)                                                            \
    do {                                                                                           \
        assert_int_equal(check_text(schema), TT_EINVAL);                                           \
        assert_string_equal(err, message);                                                         \
    } while (0)

/* ---- type --------------------------------------------------------------- */

static void test_type_accepts_each_named_type(void **state)
{
    assert_valid("{\"type\": \"object\"}", "{}");
    assert_valid("{\"type\": \"array\"}", "[]");
    assert_valid("{\"type\": \"string\"}", "\"\"");
    assert_valid("{\"type\": \"integer\"}", "-7");
    assert_valid("{\"type\": \"number\"}", "2.5");
    assert_valid("{\"type\": \"boolean\"}", "false");
    assert_valid("{\"type\": \"null\"}", "null");
}

static void test_type_mismatch_names_expected_and_got(void **state)
{
    assert_invalid("{\"type\": \"string\"}", "12", "$: expected string, got integer 12");
    assert_invalid("{\"type\": \"object\"}", "[1]", "$: expected object, got array");
    assert_invalid("{\"type\": \"boolean\"}", "\"true\"",
                   "$: expected boolean, got string \"true\"");
    assert_invalid("{\"type\": \"null\"}", "0", "$: expected null, got integer 0");
}

static void test_type_array_accepts_any_listed(void **state)
{
    const char *s = "{\"type\": [\"string\", \"null\"]}";
    assert_valid(s, "\"x\"");
    assert_valid(s, "null");
    assert_invalid(s, "1.5", "$: expected one of string, null, got number 1.5");
}

static void test_integer_rejects_real_with_zero_fraction(void **state)
{
    /* Documented departure from 2020-12: code reading the value with
     * json_integer_value() must get what was validated. */
    assert_valid("{\"type\": \"integer\"}", "3");
    assert_invalid("{\"type\": \"integer\"}", "3.0", "$: expected integer, got number 3.0");
    assert_invalid("{\"type\": \"integer\"}", "1e2", "$: expected integer, got number 100.0");
}

static void test_number_accepts_integers_and_reals(void **state)
{
    assert_valid("{\"type\": \"number\"}", "3");
    assert_valid("{\"type\": \"number\"}", "3.0");
    assert_valid("{\"type\": \"number\"}", "-1e-300");
    assert_invalid("{\"type\": \"number\"}", "\"3\"", "$: expected number, got string \"3\"");
}

/* ---- objects ------------------------------------------------------------ */

static void test_properties_validate_each_member_with_its_path(void **state)
{
    const char *s = "{\"type\": \"object\", \"properties\": {"
                    "\"name\": {\"type\": \"string\"}, \"age\": {\"type\": \"integer\"}}}";
    assert_valid(s, "{\"name\": \"Ada\", \"age\": 36}");
    assert_valid(s, "{}");
    assert_valid(s, "{\"other\": [1, 2]}"); /* additionalProperties defaults to allowed */
    assert_invalid(s, "{\"name\": \"Ada\", \"age\": \"36\"}",
                   "$.age: expected integer, got string \"36\"");
}

static void test_required_missing_names_the_property(void **state)
{
    const char *s = "{\"required\": [\"src\", \"dest\"]}";
    assert_valid(s, "{\"src\": 1, \"dest\": 2}");
    assert_invalid(s, "{\"src\": \"a\"}", "$: missing required property \"dest\"");
    assert_invalid(s, "{}", "$: missing required property \"src\"");
    /* required says nothing about non-objects */
    assert_valid(s, "\"not an object\"");
}

static void test_additional_properties_false_lists_allowed(void **state)
{
    const char *s = "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
                    "\"src\": {\"type\": \"string\"}, \"dest\": {\"type\": \"string\"}}}";
    assert_valid(s, "{\"src\": \"a\"}");
    assert_invalid(s, "{\"src\": \"a\", \"dst\": \"b\"}",
                   "$.dst: property not allowed; allowed: \"src\", \"dest\"");
    assert_invalid("{\"additionalProperties\": false}", "{\"a\": 1}",
                   "$.a: property not allowed, this object takes no properties");
}

static void test_additional_properties_schema_checks_extra_members(void **state)
{
    const char *s = "{\"properties\": {\"id\": {\"type\": \"string\"}},"
                    " \"additionalProperties\": {\"type\": \"integer\"}}";
    assert_valid(s, "{\"id\": \"x\", \"a\": 1, \"b\": 2}");
    assert_invalid(s, "{\"id\": \"x\", \"a\": 1, \"b\": true}",
                   "$.b: expected integer, got boolean true");
    /* a declared property is checked by its own schema, not the extra one */
    assert_invalid(s, "{\"id\": 5}", "$.id: expected string, got integer 5");
}

static void test_first_violation_is_in_document_order(void **state)
{
    const char *s =
        "{\"properties\": {\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}}}";
    assert_invalid(s, "{\"b\": 1, \"a\": 2}", "$.b: expected string, got integer 1");
    assert_invalid(s, "{\"a\": 2, \"b\": 1}", "$.a: expected string, got integer 2");
}

/* ---- arrays ------------------------------------------------------------- */

static void test_items_path_carries_the_index(void **state)
{
    const char *s = "{\"type\": \"object\", \"properties\": {\"files\": {\"type\": \"array\","
                    " \"items\": {\"type\": \"object\", \"properties\": {"
                    "\"dest\": {\"type\": \"string\", \"maxLength\": 255}}}}}}";
    char value[1024];
    char longname[301];
    memset(longname, 'a', 300);
    longname[300] = '\0';
    snprintf(value, sizeof value,
             "{\"files\": [{\"dest\": \"a\"}, {}, {\"dest\": \"b\"}, {\"dest\": \"%s\"}]}",
             longname);
    assert_invalid(s, value, "$.files[3].dest: string longer than maxLength 255 (300 characters)");
    assert_invalid(s, "{\"files\": [{}, 7]}", "$.files[1]: expected object, got integer 7");
}

static void test_min_and_max_items(void **state)
{
    const char *s = "{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 2}";
    assert_valid(s, "[1]");
    assert_valid(s, "[1, 2]");
    assert_invalid(s, "[]", "$: array has 0 items, fewer than minItems 1");
    assert_invalid(s, "[1, 2, 3]", "$: array has 3 items, more than maxItems 2");
}

static void test_unique_items_uses_schema_equality(void **state)
{
    const char *s = "{\"uniqueItems\": true}";
    assert_valid(s, "[1, 2, \"1\", [1], {\"a\": 1}, {\"a\": 2}, null, false, 0]");
    assert_invalid(s, "[\"a\", \"b\", \"a\"]",
                   "$[2]: duplicate of item [0], but uniqueItems is true");
    /* numbers compare by value, objects regardless of key order */
    assert_invalid(s, "[1, 1.0]", "$[1]: duplicate of item [0], but uniqueItems is true");
    assert_invalid(s, "[{\"a\": 1, \"b\": [2]}, {\"b\": [2.0], \"a\": 1}]",
                   "$[1]: duplicate of item [0], but uniqueItems is true");
    assert_valid("{\"uniqueItems\": false}", "[1, 1]");
}

/* ---- enum and const ----------------------------------------------------- */

static void test_enum_of_strings_lists_the_choices(void **state)
{
    const char *s = "{\"enum\": [\"copy\", \"move\", \"link\"]}";
    assert_valid(s, "\"move\"");
    assert_invalid(s, "\"Move\"", "$: \"Move\" is not one of [\"copy\",\"move\",\"link\"]");
}

static void test_enum_with_objects_and_mixed_values(void **state)
{
    const char *s = "{\"enum\": [{\"x\": 1, \"y\": [true]}, 2, null]}";
    assert_valid(s, "{\"y\": [true], \"x\": 1}");
    assert_valid(s, "2.0");
    assert_valid(s, "null");
    assert_invalid(s, "{\"x\": 1}", "$: {\"x\":1} is not one of [{\"x\":1,\"y\":[true]},2,null]");
    assert_invalid(s, "{\"x\": 1, \"y\": [true], \"z\": 0}",
                   "$: {\"x\":1,\"y\":[true],\"z\":0} is not one of "
                   "[{\"x\":1,\"y\":[true]},2,null]");
}

static void test_const_requires_equal_value(void **state)
{
    const char *s = "{\"properties\": {\"kind\": {\"const\": \"move_plan\"}}}";
    assert_valid(s, "{\"kind\": \"move_plan\"}");
    assert_invalid(s, "{\"kind\": \"plan\"}", "$.kind: must be \"move_plan\", got \"plan\"");
    assert_valid("{\"const\": {\"a\": [1, 2]}}", "{\"a\": [1, 2.0]}");
    assert_invalid("{\"const\": false}", "0", "$: must be false, got 0");
}

/* ---- numbers ------------------------------------------------------------ */

static void test_minimum_and_maximum_are_inclusive(void **state)
{
    const char *s = "{\"minimum\": 1, \"maximum\": 10.5}";
    assert_valid(s, "1");
    assert_valid(s, "10.5");
    assert_invalid(s, "0.999", "$: 0.999 is less than minimum 1");
    assert_invalid(s, "11", "$: 11 is greater than maximum 10.5");
    assert_valid(s, "\"bounds ignore strings\"");
}

static void test_exclusive_bounds_are_numbers_as_in_2020(void **state)
{
    const char *s = "{\"exclusiveMinimum\": 0, \"exclusiveMaximum\": 1}";
    assert_valid(s, "0.5");
    assert_invalid(s, "0", "$: 0 is not greater than exclusiveMinimum 0");
    assert_invalid(s, "0.0", "$: 0.0 is not greater than exclusiveMinimum 0");
    assert_invalid(s, "1", "$: 1 is not less than exclusiveMaximum 1");
    assert_refused("{\"minimum\": 0, \"exclusiveMinimum\": true}",
                   "#/exclusiveMinimum: must be a number (draft 2020-12: the bound itself, not a "
                   "boolean flag on minimum/maximum)");
}

static void test_bounds_compare_large_integers_exactly(void **state)
{
    /* 2^53 + 1 rounds to 2^53 as a double; the comparison must not. */
    const char *s = "{\"maximum\": 9007199254740992.0}";
    assert_valid(s, "9007199254740992");
    assert_invalid(s, "9007199254740993",
                   "$: 9007199254740993 is greater than maximum 9007199254740992.0");
    assert_valid("{\"exclusiveMaximum\": 9223372036854775807}", "9223372036854775806");
    assert_valid("{\"minimum\": -9223372036854775808}", "-9223372036854775808");
    assert_invalid("{\"maximum\": 9.2e18}", "9223372036854775807",
                   "$: 9223372036854775807 is greater than maximum 9.2e+18");
    assert_valid("{\"maximum\": 1e19}", "9223372036854775807");
    assert_invalid("{\"minimum\": 0.5}", "0", "$: 0 is less than minimum 0.5");
    assert_invalid("{\"maximum\": -0.5}", "0", "$: 0 is greater than maximum -0.5");
}

/* ---- strings ------------------------------------------------------------ */

static void test_length_counts_code_points_not_bytes(void **state)
{
    const char *s = "{\"minLength\": 2, \"maxLength\": 3}";
    assert_valid(s, "\"\xc3\xa9\xc3\xa9\"");                 /* "éé": 4 bytes, 2 points */
    assert_valid(s, "\"\xf0\x9f\x98\x80\xe6\x97\xa5\x61\""); /* "😀日a": 8 bytes, 3 */
    assert_invalid(s, "\"\xf0\x9f\x98\x80\"", "$: string shorter than minLength 2 (1 characters)");
    assert_invalid(s, "\"\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\"",
                   "$: string longer than maxLength 3 (4 characters)");
    assert_valid("{\"maxLength\": 1}", "\"\\u0000\""); /* an embedded NUL is one point */
    assert_invalid("{\"maxLength\": 1}", "\"\\u0000\\u0000\"",
                   "$: string longer than maxLength 1 (2 characters)");
}

static void test_pattern_searches_unanchored(void **state)
{
    assert_valid("{\"pattern\": \"[0-9]+\"}", "\"abc123\"");
    assert_valid("{\"pattern\": \"^[a-z_]+$\"}", "\"move_files\"");
    assert_invalid("{\"pattern\": \"^[a-z_]+$\"}", "\"Move files\"",
                   "$: string \"Move files\" does not match pattern \"^[a-z_]+$\"");
    assert_valid("{\"pattern\": \"^[0-9]+$\"}", "42"); /* pattern ignores non-strings */
}

static void test_pattern_unicode_classes(void **state)
{
    const char *s = "{\"pattern\": \"^\\\\p{L}+$\"}";
    assert_valid(s, "\"Stra\xc3\x9f\x65\"");                                 /* "Straße" */
    assert_valid(s, "\"\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0\""); /* "Москва" */
    assert_invalid(s, "\"caf\xc3\xa9 1\"",
                   "$: string \"caf\xc3\xa9 1\" does not match pattern \"^\\\\p{L}+$\"");
    /* UCP: \w takes letters beyond ASCII, and "." is one code point */
    assert_valid("{\"pattern\": \"^\\\\w+$\"}", "\"\xc3\xa9t\xc3\xa9\"");
    assert_valid("{\"pattern\": \"^.$\"}", "\"\xf0\x9f\x98\x80\"");
}

static void test_pattern_too_complex_fails_instead_of_hanging(void **state)
{
    const char *s = "{\"pattern\": \"^(a|aa)+$\"}";
    assert_int_equal(
        validate_text(s, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\""), TT_EINVAL);
    assert_string_equal(err, "$: string is too complex to match against pattern "
                             "\"^(a|aa)+$\", send a shorter or simpler value");
}

/* ---- annotations and messages ------------------------------------------- */

static void test_annotations_are_accepted_and_ignored(void **state)
{
    const char *s = "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
                    " \"title\": \"T\", \"description\": \"D\", \"default\": 5,"
                    " \"examples\": [1, \"x\"], \"type\": \"integer\"}";
    assert_int_equal(check_text(s), 0);
    assert_valid(s, "7");
    assert_invalid(s, "\"x\"", "$: expected integer, got string \"x\"");
}

static void test_path_quotes_keys_that_are_not_identifiers(void **state)
{
    const char *s = "{\"additionalProperties\": {\"type\": \"object\", \"additionalProperties\":"
                    " {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}}";
    assert_invalid(s, "{\"my file.txt\": {\"a\\\"b\": [\"x\", 1]}}",
                   "$[\"my file.txt\"][\"a\\\"b\"][1]: expected string, got integer 1");
    assert_invalid(s, "{\"_ok9\": {\"9lives\": [2]}}",
                   "$._ok9[\"9lives\"][0]: expected string, got integer 2");
}

static void test_long_values_are_excerpted_on_a_code_point(void **state)
{
    char value[600];
    size_t k = 0;
    value[k++] = '"';
    for (int i = 0; i < 100; i++) { /* 100 x "é", 200 bytes */
        value[k++] = '\xc3';
        value[k++] = '\xa9';
    }
    value[k++] = '"';
    value[k] = '\0';
    assert_int_equal(validate_text("{\"type\": \"integer\"}", value), TT_EINVAL);
    /* "$: expected integer, got string " then 80 bytes: a quote and 39 "é" */
    char want[200] = "$: expected integer, got string \"";
    for (int i = 0; i < 39; i++)
        strcat(want, "\xc3\xa9");
    strcat(want, "...");
    assert_string_equal(err, want);
}

static void test_small_or_missing_error_buffer(void **state)
{
    json_t *s = load("{\"type\": \"string\"}"), *v = load("\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
    json_t *i = load("1");
    char small[8];
    memset(small, 'X', sizeof small);
    assert_int_equal(tt_schema_validate(s, i, small, sizeof small), TT_EINVAL);
    assert_string_equal(small, "$: expe");
    assert_int_equal(tt_schema_validate(s, i, NULL, 0), TT_EINVAL);
    memset(small, 'X', sizeof small);
    assert_int_equal(tt_schema_validate(s, i, small, 0), TT_EINVAL);
    assert_int_equal(small[0], 'X'); /* n == 0: untouched */
    assert_int_equal(tt_schema_validate(s, v, NULL, 0), 0);
    /* a cut never leaves half a code point */
    json_t *t = load("{\"type\": \"integer\"}");
    char tiny[36];
    assert_int_equal(tt_schema_validate(t, v, tiny, sizeof tiny), TT_EINVAL);
    assert_string_equal(tiny, "$: expected integer, got string \"\xc3\xa9");
    json_decref(t);
    json_decref(s);
    json_decref(v);
    json_decref(i);
}

/* ---- tt_schema_check ---------------------------------------------------- */

static void test_check_refuses_unknown_keywords_naming_all(void **state)
{
    assert_refused("{\"type\": \"string\", \"fromat\": \"x\", \"maxLenght\": 3}",
                   "#: unsupported keywords \"fromat\", \"maxLenght\" (not in Tether's schema "
                   "subset, see agents/schema/schema.h)");
    assert_refused("{\"properties\": {\"when\": {\"type\": \"string\", \"format\": \"date\"}}}",
                   "#/properties/when: unsupported keyword \"format\" (format would not be "
                   "enforced, use pattern)");
}

static void test_check_refuses_combinators_and_refs_with_a_hint(void **state)
{
    assert_refused("{\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"null\"}]}",
                   "#: unsupported keyword \"oneOf\" (oneOf/anyOf/allOf/not are not supported, "
                   "use enum or a type array)");
    assert_refused("{\"anyOf\": [], \"allOf\": []}",
                   "#: unsupported keywords \"anyOf\", \"allOf\" (oneOf/anyOf/allOf/not are not "
                   "supported, use enum or a type array)");
    assert_refused("{\"items\": {\"$ref\": \"#/$defs/file\"}, \"$defs\": {}, \"nullable\": true}",
                   "#: unsupported keywords \"$defs\", \"nullable\" (references are not "
                   "supported, inline the subschema; use a type array such as [\"string\", "
                   "\"null\"])");
    assert_refused("{\"items\": {\"$ref\": \"#/$defs/file\"}}",
                   "#/items: unsupported keyword \"$ref\" (references are not supported, inline "
                   "the subschema)");
}

static void test_check_refuses_malformed_keyword_values(void **state)
{
    static const struct {
        const char *schema, *message;
    } cases[] = {
        {"[]", "#: a schema must be an object"},
        {"true", "#: a schema must be an object"},
        {"{\"type\": \"int\"}", "#/type: must be one of object, array, string, integer, number, "
                                "boolean, null, or a non-empty array of them"},
        {"{\"type\": []}", "#/type: must be one of object, array, string, integer, number, "
                           "boolean, null, or a non-empty array of them"},
        {"{\"type\": [\"string\", \"text\"]}",
         "#/type/1: \"text\" is not a type (object, array, string, integer, number, boolean, "
         "null)"},
        {"{\"type\": [\"string\", \"string\"]}", "#/type/1: type listed twice"},
        {"{\"properties\": []}", "#/properties: must be an object of schemas"},
        {"{\"properties\": {\"a/b~c\": 5}}", "#/properties/a~1b~0c: a schema must be an object"},
        {"{\"required\": \"a\"}", "#/required: must be an array of property names"},
        {"{\"required\": [\"a\", 1]}", "#/required/1: must be a property name (a string)"},
        {"{\"required\": [\"a\", \"a\"]}", "#/required/1: \"a\" is listed twice"},
        {"{\"additionalProperties\": 1}", "#/additionalProperties: a schema must be an object"},
        {"{\"items\": [{}]}", "#/items: must be a single schema (the tuple form is not supported)"},
        {"{\"items\": true}", "#/items: a schema must be an object"},
        {"{\"minItems\": -1}", "#/minItems: must be a non-negative integer"},
        {"{\"maxLength\": 2.0}", "#/maxLength: must be a non-negative integer"},
        {"{\"uniqueItems\": 1}", "#/uniqueItems: must be true or false"},
        {"{\"enum\": []}", "#/enum: must be a non-empty array"},
        {"{\"enum\": \"a\"}", "#/enum: must be a non-empty array"},
        {"{\"maximum\": \"9\"}", "#/maximum: must be a number"},
        {"{\"pattern\": 5}", "#/pattern: must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (check_text(cases[i].schema) != TT_EINVAL)
            fail_msg("%s was accepted", cases[i].schema);
        if (strcmp(err, cases[i].message) != 0)
            fail_msg("%s: got \"%s\"", cases[i].schema, err);
    }
}

static void test_check_refuses_pattern_that_does_not_compile(void **state)
{
    assert_int_equal(check_text("{\"properties\": {\"id\": {\"pattern\": \"[a-\"}}}"), TT_EINVAL);
    const char *want = "#/properties/id/pattern: pattern \"[a-\" does not compile: ";
    assert_memory_equal(err, want, strlen(want));
    assert_non_null(strstr(err, " at offset 3"));
}

static void test_check_refuses_unsatisfiable_schemas(void **state)
{
    assert_refused("{\"minItems\": 3, \"maxItems\": 2}",
                   "#: minItems is greater than maxItems, no value can match");
    assert_refused("{\"minLength\": 3, \"maxLength\": 2}",
                   "#: minLength is greater than maxLength, no value can match");
    assert_refused("{\"minimum\": 3, \"maximum\": 2.5}",
                   "#: minimum is greater than maximum, no value can match");
    assert_refused("{\"properties\": {\"src\": {}}, \"required\": [\"src\", \"dest\"],"
                   " \"additionalProperties\": false}",
                   "#/required/1: required property \"dest\" is not in properties and "
                   "additionalProperties is false");
    assert_int_equal(check_text("{\"required\": [\"dest\"], \"additionalProperties\": true}"), 0);
}

static void test_validate_with_unsupported_schema_is_not_the_values_fault(void **state)
{
    assert_int_equal(validate_text("{\"anyOf\": []}", "1"), TT_ESCHEMA);
    assert_string_equal(err, "#: unsupported keyword \"anyOf\" (oneOf/anyOf/allOf/not are not "
                             "supported, use enum or a type array)");
    assert_int_equal(tt_schema_validate(NULL, NULL, err, sizeof err), TT_ESCHEMA);
    assert_string_equal(err, "#: no schema");
}

/* ---- depth bounds ------------------------------------------------------- */

/* {"items": {"items": ... {} ...}} with `levels` schemas in all. */
static json_t *nested_schema(int levels)
{
    json_t *s = json_object();
    for (int i = 1; i < levels; i++) {
        json_t *up = json_object();
        json_object_set_new(up, "items", s);
        s = up;
    }
    return s;
}

/* [[...[]...]] with `levels` arrays in all. */
static json_t *nested_array(int levels)
{
    json_t *v = json_array();
    for (int i = 1; i < levels; i++) {
        json_t *up = json_array();
        json_array_append_new(up, v);
        v = up;
    }
    return v;
}

static void test_schema_nesting_is_bounded(void **state)
{
    json_t *ok = nested_schema(TT_SCHEMA_MAX_DEPTH);
    json_t *deep = nested_schema(TT_SCHEMA_MAX_DEPTH + 1);
    assert_int_equal(tt_schema_check(ok, err, sizeof err), 0);
    assert_int_equal(tt_schema_check(deep, err, sizeof err), TT_EINVAL);
    assert_non_null(strstr(err, "schema nested deeper than 64 levels"));
    assert_memory_equal(err, "#/items/items/", 14);
    json_decref(ok);
    json_decref(deep);
    /* an enum value counts too */
    json_t *e = json_pack("{s:[o]}", "enum", nested_array(TT_SCHEMA_MAX_DEPTH + 1));
    assert_int_equal(tt_schema_check(e, err, sizeof err), TT_EINVAL);
    assert_string_equal(err, "#/enum/0: value nested deeper than 64 levels");
    json_decref(e);
}

static void test_value_nesting_is_bounded(void **state)
{
    json_t *s = load("{}");
    json_t *ok = nested_array(TT_SCHEMA_MAX_DEPTH);
    json_t *deep = nested_array(TT_SCHEMA_MAX_DEPTH + 1);
    assert_int_equal(tt_schema_validate(s, ok, err, sizeof err), 0);
    assert_int_equal(tt_schema_validate(s, deep, err, sizeof err), TT_EINVAL);
    char want[TT_SCHEMA_ERR_MAX] = "$";
    for (int i = 0; i < TT_SCHEMA_MAX_DEPTH; i++)
        strcat(want, "[0]");
    strcat(want, ": value nested deeper than 64 levels");
    assert_string_equal(err, want);
    json_decref(s);
    json_decref(ok);
    json_decref(deep);
}

/* ---- realistic schemas -------------------------------------------------- */

/* What the photo organiser asks the model for: folders to create, then moves. */
static const char *move_plan_schema =
    "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
    " \"title\": \"Move plan\", \"type\": \"object\","
    " \"required\": [\"folders\", \"files\"], \"additionalProperties\": false,"
    " \"properties\": {"
    "  \"folders\": {\"type\": \"array\", \"maxItems\": 200, \"uniqueItems\": true,"
    "   \"items\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 255,"
    "    \"pattern\": \"^[^/\\\\\\\\:*?\\\"<>|]+(/[^/\\\\\\\\:*?\\\"<>|]+)*$\"}},"
    "  \"files\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 5000,"
    "   \"items\": {\"type\": \"object\", \"required\": [\"src\", \"dest\"],"
    "    \"additionalProperties\": false,"
    "    \"properties\": {"
    "     \"src\": {\"type\": \"string\", \"minLength\": 1},"
    "     \"dest\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 255},"
    "     \"reason\": {\"type\": [\"string\", \"null\"], \"description\": \"why\"}}}}}}";

static void test_move_plan_schema(void **state)
{
    assert_int_equal(check_text(move_plan_schema), 0);
    assert_valid(move_plan_schema,
                 "{\"folders\": [\"2024/Berlin\", \"2024/\xc5\x81\xc3\xb3\x64\xc5\xba\"],"
                 " \"files\": [{\"src\": \"IMG_1.jpg\", \"dest\": \"2024/Berlin/IMG_1.jpg\"},"
                 " {\"src\": \"IMG_2.jpg\", \"dest\": \"2024/\xc5\x81\xc3\xb3\x64\xc5\xba/a.jpg\","
                 " \"reason\": null}]}");
    assert_invalid(move_plan_schema, "{\"folders\": []}", "$: missing required property \"files\"");
    assert_invalid(move_plan_schema, "{\"folders\": [], \"files\": []}",
                   "$.files: array has 0 items, fewer than minItems 1");
    assert_invalid(move_plan_schema,
                   "{\"folders\": [\"a\", \"b\", \"a\"], \"files\": [{\"src\": \"x\", \"dest\": "
                   "\"a/x\"}]}",
                   "$.folders[2]: duplicate of item [0], but uniqueItems is true");
    assert_invalid(move_plan_schema, "{\"folders\": [\"a//b\"], \"files\": []}",
                   "$.folders[0]: string \"a//b\" does not match pattern "
                   "\"^[^/\\\\\\\\:*?\\\"<>|]+(/[^/\\\\\\\\:*?\\\"<>|]+)*$\"");
    assert_invalid(move_plan_schema,
                   "{\"folders\": [], \"files\": [{\"src\": \"x\", \"dest\": \"y\"},"
                   " {\"src\": \"z\", \"to\": \"w\"}]}",
                   "$.files[1]: missing required property \"dest\"");
    assert_invalid(move_plan_schema,
                   "{\"folders\": [], \"files\": [{\"src\": \"x\", \"dest\": \"y\", \"why\": 1}]}",
                   "$.files[0].why: property not allowed; allowed: \"src\", \"dest\", "
                   "\"reason\"");
    assert_invalid(move_plan_schema,
                   "{\"folders\": [], \"files\": [{\"src\": \"x\", \"dest\": \"y\", \"reason\": "
                   "false}]}",
                   "$.files[0].reason: expected one of string, null, got boolean false");
}

/* A tool as declared in config: search the user's files. */
static const char *search_tool_schema =
    "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"query\"],"
    " \"properties\": {"
    "  \"query\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200,"
    "   \"description\": \"words to look for\"},"
    "  \"max_results\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 50, \"default\": 10},"
    "  \"kinds\": {\"type\": \"array\", \"uniqueItems\": true,"
    "   \"items\": {\"enum\": [\"pdf\", \"image\", \"text\"]}},"
    "  \"modified_after\": {\"type\": \"string\","
    "   \"pattern\": \"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"},"
    "  \"min_score\": {\"type\": \"number\", \"exclusiveMinimum\": 0, \"maximum\": 1},"
    "  \"case_sensitive\": {\"type\": \"boolean\"}}}";

static void test_search_tool_arguments(void **state)
{
    assert_int_equal(check_text(search_tool_schema), 0);
    assert_valid(search_tool_schema, "{\"query\": \"invoice 2024\"}");
    assert_valid(search_tool_schema,
                 "{\"query\": \"R\xc3\xa9sum\xc3\xa9\", \"max_results\": 50, \"kinds\": [\"pdf\","
                 " \"text\"], \"modified_after\": \"2024-01-31\", \"min_score\": 0.25,"
                 " \"case_sensitive\": false}");
    assert_invalid(search_tool_schema, "{\"query\": \"\"}",
                   "$.query: string shorter than minLength 1 (0 characters)");
    assert_invalid(search_tool_schema, "{\"query\": \"a\", \"max_results\": 100}",
                   "$.max_results: 100 is greater than maximum 50");
    assert_invalid(search_tool_schema, "{\"query\": \"a\", \"max_results\": 10.0}",
                   "$.max_results: expected integer, got number 10.0");
    assert_invalid(search_tool_schema, "{\"query\": \"a\", \"kinds\": [\"pdf\", \"docx\"]}",
                   "$.kinds[1]: \"docx\" is not one of [\"pdf\",\"image\",\"text\"]");
    assert_invalid(search_tool_schema, "{\"query\": \"a\", \"modified_after\": \"31.01.2024\"}",
                   "$.modified_after: string \"31.01.2024\" does not match pattern "
                   "\"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"");
    assert_invalid(search_tool_schema, "{\"query\": \"a\", \"min_score\": 0}",
                   "$.min_score: 0 is not greater than exclusiveMinimum 0");
    assert_invalid(search_tool_schema, "{\"query\": \"a\", \"limit\": 5}",
                   "$.limit: property not allowed; allowed: \"query\", \"max_results\", "
                   "\"kinds\", \"modified_after\", \"min_score\", \"case_sensitive\"");
    assert_invalid(search_tool_schema, "[\"query\"]", "$: expected object, got array");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_accepts_each_named_type),
        cmocka_unit_test(test_type_mismatch_names_expected_and_got),
        cmocka_unit_test(test_type_array_accepts_any_listed),
        cmocka_unit_test(test_integer_rejects_real_with_zero_fraction),
        cmocka_unit_test(test_number_accepts_integers_and_reals),
        cmocka_unit_test(test_properties_validate_each_member_with_its_path),
        cmocka_unit_test(test_required_missing_names_the_property),
        cmocka_unit_test(test_additional_properties_false_lists_allowed),
        cmocka_unit_test(test_additional_properties_schema_checks_extra_members),
        cmocka_unit_test(test_first_violation_is_in_document_order),
        cmocka_unit_test(test_items_path_carries_the_index),
        cmocka_unit_test(test_min_and_max_items),
        cmocka_unit_test(test_unique_items_uses_schema_equality),
        cmocka_unit_test(test_enum_of_strings_lists_the_choices),
        cmocka_unit_test(test_enum_with_objects_and_mixed_values),
        cmocka_unit_test(test_const_requires_equal_value),
        cmocka_unit_test(test_minimum_and_maximum_are_inclusive),
        cmocka_unit_test(test_exclusive_bounds_are_numbers_as_in_2020),
        cmocka_unit_test(test_bounds_compare_large_integers_exactly),
        cmocka_unit_test(test_length_counts_code_points_not_bytes),
        cmocka_unit_test(test_pattern_searches_unanchored),
        cmocka_unit_test(test_pattern_unicode_classes),
        cmocka_unit_test(test_pattern_too_complex_fails_instead_of_hanging),
        cmocka_unit_test(test_annotations_are_accepted_and_ignored),
        cmocka_unit_test(test_path_quotes_keys_that_are_not_identifiers),
        cmocka_unit_test(test_long_values_are_excerpted_on_a_code_point),
        cmocka_unit_test(test_small_or_missing_error_buffer),
        cmocka_unit_test(test_check_refuses_unknown_keywords_naming_all),
        cmocka_unit_test(test_check_refuses_combinators_and_refs_with_a_hint),
        cmocka_unit_test(test_check_refuses_malformed_keyword_values),
        cmocka_unit_test(test_check_refuses_pattern_that_does_not_compile),
        cmocka_unit_test(test_check_refuses_unsatisfiable_schemas),
        cmocka_unit_test(test_validate_with_unsupported_schema_is_not_the_values_fault),
        cmocka_unit_test(test_schema_nesting_is_bounded),
        cmocka_unit_test(test_value_nesting_is_bounded),
        cmocka_unit_test(test_move_plan_schema),
        cmocka_unit_test(test_search_tool_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
