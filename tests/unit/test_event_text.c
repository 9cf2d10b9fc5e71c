/* protocol/event_text.c: a text event written without jansson must be byte
 * for byte the frame tt_event_encode() makes of {message_id, text} with
 * jansson: every control byte, quotes, backslashes, slashes, DEL, NUL,
 * multi-byte text, pseudo-random UTF-8, and invalid UTF-8 refused by both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "protocol/errors.h"
#include "protocol/event_text.h"

/* Both encoders on one text: the same result, the same bytes. */
static void same(const char *text, size_t len, uint64_t seq)
{
    tt_frame a, b;
    json_t *body = json_pack("{s:s, s:s%}", "message_id", "m_01J", "text", text, len);
    int ra = tt_event_encode_text("delta", "s_abc", seq, 1764950400123, "m_01J", text, len, 16, &a);
    if (!body) { /* jansson refuses it (not UTF-8): so must the fast path */
        assert_int_equal(ra, TT_EINVAL);
        assert_null(a.buf);
        return;
    }
    assert_int_equal(ra, 0);
    assert_int_equal(tt_event_encode("delta", "s_abc", seq, 1764950400123, body, 16, &b), 0);
    if (a.len != b.len || memcmp(tt_frame_text(&a), tt_frame_text(&b), a.len) != 0) {
        fprintf(stderr, "fast: %s\njansson: %s\n", tt_frame_text(&a), tt_frame_text(&b));
        fail();
    }
    assert_int_equal(a.headroom, 16);
    assert_int_equal(tt_frame_text(&a)[a.len], '\0');
    tt_frame_release(&a);
    tt_frame_release(&b);
}

static void test_event_text_same_bytes_as_jansson(void **state)
{
    char one[2];
    for (int c = 0; c < 0x80; c++) { /* every ASCII byte alone and in text */
        one[0] = (char)c;
        same(one, 1, (uint64_t)c);
        char t[8] = {'a', (char)c, 'b', '"', '\\', '/', 0x7f, (char)c};
        same(t, sizeof t, 1);
    }
    same("", 0, 1);
    const char *multi =
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \xef\xbf\xbf";
    same(multi, strlen(multi), 2);
    const char *esc = "line\nfeed\ttab \"q\" back\\slash </script>";
    same(esc, strlen(esc), UINT64_C(18446744073709551615));
    /* invalid UTF-8: overlong, surrogate, past U+10FFFF, cut, stray */
    same("\xc0\xaf", 2, 3);
    same("\xed\xa0\x80", 3, 3);
    same("\xf4\x90\x80\x80", 4, 3);
    same("ok \xe6\x97", 5, 3);
    same("\x80", 1, 3);
    same("\xff", 1, 3);
}

/* Pseudo-random text of valid code points (a fixed seed: reproducible). */
static void test_event_text_random_utf8(void **state)
{
    uint32_t x = 2463534242u;
    char buf[512];
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        while (n + 4 < sizeof buf) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            uint32_t cp = x % 5 == 0 ? x % 0x20 : x % 3 == 0 ? x % 0x80 : x % 0x110000;
            if (cp >= 0xD800 && cp <= 0xDFFF)
                continue;
            if (cp < 0x80) {
                buf[n++] = (char)cp;
            } else if (cp < 0x800) {
                buf[n++] = (char)(0xC0 | (cp >> 6));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[n++] = (char)(0xE0 | (cp >> 12));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (char)(0xF0 | (cp >> 18));
                buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            }
            if (x % 7 == 0)
                break;
        }
        same(buf, n, (uint64_t)round);
        if (n > 1) /* and cut anywhere: a cut sequence is refused by both */
            same(buf, n - 1 - x % (n - 1), (uint64_t)round);
    }
}

static void test_event_text_refuses_null(void **state)
{
    tt_frame f;
    assert_int_equal(tt_event_encode_text("delta", "s", 1, 0, NULL, "x", 1, 0, &f), TT_EINVAL);
    assert_int_equal(tt_event_encode_text("delta", "s", 1, 0, "m", NULL, 0, 0, &f), TT_EINVAL);
    assert_null(f.buf);
    assert_true(tt_utf8_valid("", 0));
    assert_false(tt_utf8_valid("\xe0\x80\x80", 3));    /* overlong */
    assert_true(tt_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_text_same_bytes_as_jansson),
        cmocka_unit_test(test_event_text_random_utf8),
        cmocka_unit_test(test_event_text_refuses_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
