/* JSON Schema's value semantics, shared by the check and the validation (see
 * schema_private.h): numbers compared exactly, equality by value, and
 * patterns compiled the one way both use. */
#include <math.h>
#include <string.h>

#include "agents/schema/schema_private.h"
#include "protocol/errors.h"

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

int tt_schema_cmp_num(const json_t *a, const json_t *b)
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
bool tt_schema_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return tt_schema_cmp_num(a, b) == 0;
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
            if (!tt_schema_equal(json_array_get(a, i), json_array_get(b, i)))
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
            if (!o || !tt_schema_equal(m, o))
                return false;
        }
        return true;
    }
    default: /* true, false, null: same type is same value */
        return true;
    }
}

/* Compile a pattern. TT_EINVAL with the PCRE2 error code and offset, or
 * TT_ENOMEM. */
int tt_schema_compile_pattern(const json_t *pat, pcre2_code **out, int *code, size_t *off)
{
    PCRE2_SIZE o = 0;
    *out = pcre2_compile((PCRE2_SPTR)json_string_value(pat), json_string_length(pat),
                         PCRE2_UTF | PCRE2_UCP, code, &o, NULL);
    *off = o;
    if (*out)
        return 0;
    return *code == PCRE2_ERROR_HEAP_FAILED ? TT_ENOMEM : TT_EINVAL;
}
