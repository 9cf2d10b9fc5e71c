/* protocol/jsonw.c: the direct JSON writer gives jansson's bytes exactly
 * (strings with every kind of escape, valid and invalid UTF-8, numbers),
 * and tt_event_encode gives what building the event with jansson gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "protocol/event.h"
#include "protocol/jsonw.h"

/* jansson's compact dump of the string, or NULL when it refuses it. */
static char *jansson_str(const char *s, size_t n)
{
    json_t *v = json_stringn_nocheck(s, n);
    assert_non_null(v);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    return text;
}

static void expect_same(const char *s, size_t n)
{
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    assert_int_equal(tt_buf_append(&b, "x", 1), 0);
    char *want = jansson_str(s, n);
    int rc = tt_jw_strn(&b, s, n);
    if (want) {
        if (rc != 0)
            fail_msg("refused a string jansson dumps as %s", want);
        assert_string_equal(tt_buf_str(&b) + 1, want);
        assert_int_equal(b.len, strlen(want) + 1);
    } else {
        if (rc != TT_EINVAL)
            fail_msg("accepted a string jansson refuses (rc %d): %s", rc, tt_buf_str(&b));
        assert_string_equal(tt_buf_str(&b), "x"); /* left as it was */
    }
    free(want);
    tt_buf_free(&b);
}

#define S(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

static void test_strings_like_jansson(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } cases[] = {
        S(""),
        S("plain ascii / slash ~ DEL\x7f"),
        S("quote \" backslash \\ both \\\""),
        S("\b\f\n\r\t"),
        S("\x01\x02\x1f\x1e\x0b"),
        S("nul \0 inside"),
        S("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8"),
        S("\xef\xbb\xbf bom and \xf4\x8f\xbf\xbf max"),
        S("\xc0\xaf overlong slash"),
        S("\xe0\x80\xaf overlong 3"),
        S("\xf0\x80\x80\xaf overlong 4"),
        S("\xed\xa0\x80 surrogate"),
        S("\xf4\x90\x80\x80 past max"),
        S("\xf5\x80\x80\x80"),
        S("truncated \xe2\x82"),
        S("lone \x80 continuation"),
        S("\xff"),
        S("\"\\\x01\xc3\xa9\""),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_same(cases[i].s, cases[i].n);
}

/* Random strings biased towards the bytes that matter, each compared. */
static void test_random_strings_like_jansson(void **state)
{
    (void)state;
    static const unsigned char pool[] = {'a',  ' ',  '"',  '\\', '/',  0,    1,    0x1f, '\n',
                                         0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed,
                                         0xef, 0xf0, 0xf4, 0xf5, 0xa0, 0x9f, 0x8f, 0x90};
    uint32_t seed = 12345;
    unsigned char s[24];
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof s;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = pool[(seed >> 16) % sizeof pool];
        }
        expect_same((const char *)s, n);
    }
}

static void test_numbers_and_caps(void **state)
{
    (void)state;
    tt_buf b;
    tt_buf_init(&b, 64);
    assert_int_equal(tt_jw_u64(&b, 0), 0);
    assert_int_equal(tt_buf_append(&b, " ", 1), 0);
    assert_int_equal(tt_jw_u64(&b, UINT64_MAX), 0);
    assert_int_equal(tt_buf_append(&b, " ", 1), 0);
    assert_int_equal(tt_jw_i64(&b, INT64_MIN), 0);
    assert_string_equal(tt_buf_str(&b), "0 18446744073709551615 -9223372036854775808");
    tt_buf_free(&b);
    /* A string past the cap is refused whole. */
    tt_buf_init(&b, 8);
    assert_int_equal(tt_buf_append(&b, "ab", 2), 0);
    assert_int_equal(tt_jw_str(&b, "\n\n\n"), TT_ETOOLARGE);
    assert_string_equal(tt_buf_str(&b), "ab");
    assert_int_equal(tt_jw_str(&b, "\n\n"), 0);
    assert_string_equal(tt_buf_str(&b), "ab\"\\n\\n\"");
    tt_buf_free(&b);
}

static void expect_value_same(json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    int rc = tt_jw_value(&b, v);
    if (want) {
        if (rc != 0)
            fail_msg("refused (rc %d) what jansson dumps as %s", rc, want);
        assert_string_equal(tt_buf_str(&b), want);
    } else {
        assert_int_equal(rc, TT_EINVAL);
        assert_int_equal(b.len, 0);
    }
    free(want);
    tt_buf_free(&b);
    json_decref(v);
}

static uint32_t next(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

static json_t *random_value(uint32_t *seed, int depth)
{
    static const double reals[] = {0.0,
                                   -0.0,
                                   1.0,
                                   -3.0,
                                   0.5,
                                   0.1,
                                   1e15,
                                   -1e15,
                                   999999999999999.0,
                                   1e17,
                                   123456789012345678.0,
                                   1e300,
                                   -2.5e-300,
                                   4503599627370497.0};
    static const char *const strs[] = {"",         "a\"b",        "\\",
                                       "\x01\x1f", "caf\xc3\xa9", "\xf0\x9f\x98\x80/"};
    switch (next(seed) % (depth < 4 ? 9 : 6)) {
    case 0:
        return json_integer((json_int_t)next(seed) * (next(seed) % 2 ? -1 : 1));
    case 1:
        return json_real(reals[next(seed) % (sizeof reals / sizeof reals[0])]);
    case 2:
        return json_string(strs[next(seed) % 6]);
    case 3:
        return next(seed) % 2 ? json_true() : json_false();
    case 4:
        return json_null();
    case 5:
        return json_integer(next(seed) % 2 ? INT64_MAX : INT64_MIN);
    case 6:
    case 7: {
        json_t *o = json_object();
        for (uint32_t i = 0, n = next(seed) % 5; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "%s%u", strs[next(seed) % 6], i);
            json_object_set_new(o, key, random_value(seed, depth + 1));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (uint32_t i = 0, n = next(seed) % 5; i < n; i++)
            json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    }
}

/* Values of every type, nested, keys in insertion order, reals integral
 * and not: jansson's bytes; a string jansson refuses fails the whole. */
static void test_values_like_jansson(void **state)
{
    (void)state;
    uint32_t seed = 777;
    for (int round = 0; round < 3000; round++)
        expect_value_same(random_value(&seed, 0));
    json_t *o = json_pack("{s:[i, {s:o}]}", "a", 1, "bad", json_stringn_nocheck("x\xff", 2));
    expect_value_same(o);
    /* A key that is not valid UTF-8 (set without a check) is refused; jansson
     * writes such a key cut short, which is not JSON. */
    o = json_object();
    json_object_setn_nocheck(o, "k\xc0", 2, json_true());
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    assert_int_equal(tt_jw_value(&b, o), TT_EINVAL);
    assert_int_equal(b.len, 0);
    json_decref(o);
    /* Too deep: refused, the buffer unchanged. */
    json_t *deep = json_array();
    for (int i = 0; i < TT_JW_DEPTH_MAX + 5; i++)
        deep = json_pack("[o]", deep);
    assert_int_equal(tt_jw_value(&b, deep), TT_EINVAL);
    assert_int_equal(b.len, 0);
    tt_buf_free(&b);
    json_decref(deep);
}

/* The event as the earlier code built it: json_pack, update, dump. */
static char *reference_event(const char *type, const char *sid, uint64_t seq, int64_t ms,
                             json_t *body)
{
    char ts[32];
    tt_rfc3339(ms, ts);
    json_t *ev = json_pack("{s:s, s:s, s:I, s:s}", "type", type, "session", sid, "seq",
                           (json_int_t)seq, "ts", ts);
    if (body)
        json_object_update(ev, body);
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    return text;
}

static void expect_event(const char *type, const char *sid, uint64_t seq, json_t *body)
{
    int64_t ms = 1764979200123; /* 2025-12-06T00:00:00.123Z */
    char *want = reference_event(type, sid, seq, ms, body);
    tt_frame f;
    int rc = tt_event_encode(type, sid, seq, ms, body, 16, &f);
    if (!want) {
        assert_int_not_equal(rc, 0);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(f.headroom, 16);
    assert_int_equal(f.len, strlen(want));
    assert_string_equal(tt_frame_text(&f), want);
    free(want);
    tt_frame_release(&f);
}

static void test_events_like_jansson(void **state)
{
    (void)state;
    expect_event("state", "s_1", 1, NULL);
    expect_event("state", "s_1", 2, json_object());
    expect_event("state", "s_\"q\\", 3, json_pack("{s:s, s:s}", "state", "idle", "step", ""));
    expect_event("state", "s_1", UINT64_MAX, NULL); /* a json_int_t, as json_pack wrote it */
    expect_event("message.delta", "s_1", UINT64_MAX >> 1,
                 json_pack("{s:s, s:s}", "message_id", "m_1", "delta", "\xc3\xa9\n\x01"));
    expect_event("user", "s_1", 9,
                 json_pack("{s:s, s:{s:[i, b, n, f]}, s:s}", "text", "hi", "nested", "a", 1, 1, 0.5,
                           "z", "last"));
    /* A body naming a header key replaces its value where it stands. */
    expect_event("x", "s_1", 4, json_pack("{s:s, s:s, s:i}", "a", "1", "type", "y", "seq", 7));
    expect_event("x", "s_1", 5, json_pack("{s:s}", "ts", "then"));
    /* Invalid UTF-8 in the body does not encode, as before. */
    expect_event("x", "s_1", 6, json_pack("{s:o}", "t", json_stringn_nocheck("\xff", 1)));
}

static void test_rfc3339(void **state)
{
    (void)state;
    char out[32];
    tt_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    tt_rfc3339(1764979200123, out);
    assert_string_equal(out, "2025-12-06T00:00:00.123Z");
    tt_rfc3339(1764979200999, out); /* the same second, cached */
    assert_string_equal(out, "2025-12-06T00:00:00.999Z");
    tt_rfc3339(1764979201007, out);
    assert_string_equal(out, "2025-12-06T00:00:01.007Z");
}

static void test_frame_from_json(void **state)
{
    (void)state;
    tt_frame f;
    json_t *o = json_pack("{s:s, s:i}", "type", "pong", "n", 3);
    assert_int_equal(tt_frame_from_json(o, 4, &f), 0);
    assert_string_equal(tt_frame_text(&f), "{\"type\":\"pong\",\"n\":3}");
    assert_int_equal(f.len, 21);
    tt_frame_release(&f);
    assert_int_equal(tt_frame_from_json(NULL, 4, &f), TT_ENOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_like_jansson),
        cmocka_unit_test(test_random_strings_like_jansson),
        cmocka_unit_test(test_numbers_and_caps),
        cmocka_unit_test(test_values_like_jansson),
        cmocka_unit_test(test_events_like_jansson),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_frame_from_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
