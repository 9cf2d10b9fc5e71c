/* JSON Schema, the subset Tether uses to check tool arguments a model wrote
 * before the tool runs, and structured model output before it is used.
 *
 * A schema is a jansson object. tt_schema_check() refuses anything outside
 * the subset below, so a tool declared with a keyword Tether does not enforce
 * is refused at load instead of being silently half-checked.
 * tt_schema_validate() reports the first violation as one line the model can
 * act on in a self-correction turn:
 *     $.files[3].dest: string longer than maxLength 255 (300 characters)
 *
 * The subset (draft 2020-12 semantics unless noted):
 *   type                  "object" "array" "string" "integer" "number"
 *                         "boolean" "null", or a non-empty array of them.
 *                         "integer" accepts JSON integers only: 3 yes, 3.0 no
 *                         (a deliberate departure from 2020-12, so code that
 *                         reads the value with json_integer_value() or
 *                         json_unpack "I" always gets what was validated).
 *                         "number" accepts integers and reals.
 *   properties            object of schemas
 *   required              array of distinct strings
 *   additionalProperties  boolean or schema (the only place a boolean schema
 *                         is accepted)
 *   items                 one schema for every element (no tuple form)
 *   minItems maxItems     non-negative integers
 *   uniqueItems           boolean; equality as for enum
 *   enum                  non-empty array; const: any value. Equality is
 *                         JSON Schema's: numbers by value (1 equals 1.0),
 *                         objects regardless of key order.
 *   minimum maximum exclusiveMinimum exclusiveMaximum
 *                         numbers (2020-12: exclusive* are numbers, not the
 *                         draft-4 booleans); compared exactly, never through
 *                         a lossy int64-to-double conversion.
 *   minLength maxLength   non-negative integers, counted in Unicode code
 *                         points, not bytes ("é" is 1, "😀" is 1).
 *   pattern               PCRE2 with PCRE2_UTF|PCRE2_UCP, unanchored search
 *                         as in JSON Schema; under UCP \d \w \s and [[:alpha:]]
 *                         are Unicode-aware (ECMA-262 \d is ASCII-only).
 *   description title default examples $schema
 *                         annotations, accepted and ignored.
 * Everything else is refused: $ref, $defs, oneOf/anyOf/allOf/not, format,
 * prefixItems, patternProperties, if/then/else, ...
 *
 * Limits: a schema may nest TT_SCHEMA_MAX_DEPTH subschemas (enum and const
 * values count), a value TT_SCHEMA_MAX_DEPTH arrays/objects; deeper is
 * TT_EINVAL. Pattern matching is capped at TT_SCHEMA_MATCH_LIMIT backtracking
 * steps; a string that needs more fails validation rather than hanging.
 *
 * Order, so "first violation" is predictable: at each level type, const,
 * enum, then the keywords of the value's own type; in an object the required
 * list first, then members in the value's order; in an array minItems and
 * maxItems, then each item, then uniqueItems.
 *
 * Nothing outlives a call: patterns are compiled per check and per match (no
 * cache), and messages go into the caller's buffer, cut on a code point
 * boundary so they stay valid UTF-8 for a JSON string. */
#ifndef TT_SCHEMA_H
#define TT_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

#define TT_SCHEMA_MAX_DEPTH 64
#define TT_SCHEMA_MATCH_LIMIT 1000000u
/* A good size for err: quoted values are excerpted to 80 bytes and lists to
 * 200, so only a very long path gets cut; a cut is safe, never an overflow. */
#define TT_SCHEMA_ERR_MAX 512

/* Is schema within the subset above? 0, or TT_EINVAL with err naming the
 * schema location as a JSON Pointer and every unsupported keyword found there:
 *     #/properties/mode: unsupported keyword "oneOf" (...)
 * TT_ENOMEM if compiling a pattern ran out of memory. err (n bytes, always
 * NUL-terminated when n > 0) may be NULL. Nothing is retained. */
__attribute__((warn_unused_result)) int tt_schema_check(const json_t *schema, char *err, size_t n);

/* Does value conform to schema? 0; TT_EINVAL with err naming the JSON path of
 * the first violation ("$", "$.a.b[2]", "$[\"odd key\"]"), meant to be sent
 * back to the model; TT_ESCHEMA if schema fails
 * tt_schema_check (err then holds that message: the model is not to blame);
 * TT_ENOMEM. Neither argument is modified or retained. */
__attribute__((warn_unused_result)) int
tt_schema_validate(const json_t *schema, const json_t *value, char *err, size_t n);

#endif
