/* protocol/utf8.c: cutting text to a byte budget never splits a character.
 * jansson is the independent judge of valid UTF-8 (json_stringn refuses
 * anything else). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "protocol/utf8.h"

static int valid_utf8(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

/* Every budget from 0 to past the end: the cut is valid UTF-8, within the
 * budget, and loses less than one character (width bytes). */
static void check_every_cut(const char *text, size_t width)
{
    size_t len = strlen(text);
    for (size_t max = 0; max <= len + 2; max++) {
        int cut = tt_utf8_cut(text, max);
        assert_true(cut >= 0 && (size_t)cut <= max && (size_t)cut <= len);
        if (!valid_utf8(text, (size_t)cut))
            fail_msg("cut of %zu bytes at max %zu splits a character", (size_t)cut, max);
        size_t want = max < len ? max : len;
        assert_true(want - (size_t)cut < width);
        assert_int_equal(tt_utf8_cut_len(text, len, max), (size_t)cut);

        char dst[64];
        size_t n = max + 1 < sizeof dst ? max + 1 : sizeof dst;
        size_t copied = tt_utf8_copy(dst, n, text);
        assert_int_equal(copied, strlen(dst));
        assert_true(copied < n && valid_utf8(dst, copied));
        assert_memory_equal(dst, text, copied);
    }
}

static void test_utf8_cut_never_splits_two_byte_characters(void **state)
{
    check_every_cut("a\xc3\xa9\xc3\xa9z\xc3\xa9", 2); /* aéézé */
}

static void test_utf8_cut_never_splits_three_byte_characters(void **state)
{
    check_every_cut("\xe2\x82\xac"
                    "a\xe2\x82\xac\xe2\x82\xac",
                    3); /* €a€€ */
}

static void test_utf8_cut_never_splits_four_byte_characters(void **state)
{
    check_every_cut("\xf0\x9f\x98\x80z\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 4); /* 😀z😀😀 */
}

static void test_utf8_cut_mixed_widths(void **state)
{
    check_every_cut("\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac"
                    "a\xc3\xa9\xf0\x9f\x98\x80",
                    4);
}

/* The review's poisoned title: 79 ASCII bytes, then a 2-byte character
 * straddling byte 80. */
static void test_utf8_cut_title_straddling_the_limit(void **state)
{
    char title[82];
    memset(title, 'a', 79);
    memcpy(title + 79, "\xc3\xa9", 3);
    assert_int_equal(tt_utf8_cut(title, 80), 79);
    char dst[82];
    assert_int_equal(tt_utf8_copy(dst, 81, title), 79); /* 80 bytes and the NUL */
    assert_int_equal(tt_utf8_copy(dst, 82, title), 81);
}

static void test_utf8_ascii_and_short_text_are_kept_whole(void **state)
{
    assert_int_equal(tt_utf8_cut("hello", 5), 5);
    assert_int_equal(tt_utf8_cut("hello", 64), 5);
    assert_int_equal(tt_utf8_cut("hello", 3), 3);
    assert_int_equal(tt_utf8_cut(NULL, 3), 0);
    char dst[4] = "xyz";
    assert_int_equal(tt_utf8_copy(dst, sizeof dst, NULL), 0);
    assert_string_equal(dst, "");
    assert_int_equal(tt_utf8_copy(dst, 0, "abc"), 0);
}

/* Not UTF-8 at all: still within the budget, never past the end. */
static void test_utf8_cut_of_invalid_bytes_stays_in_bounds(void **state)
{
    const char *junk = "\x80\x80\x80\x80\x80\x80";
    for (size_t max = 0; max < 8; max++) {
        int cut = tt_utf8_cut(junk, max);
        assert_true(cut >= 0 && (size_t)cut <= max && (size_t)cut <= 6);
    }
}

/* A message that overflows its buffer ends before the character it would
 * have split. */
static void test_utf8_snprintf_does_not_leave_half_a_character(void **state)
{
    const char *euros = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"; /* three 3-byte characters */
    for (size_t n = 1; n <= 14; n++) {
        char buf[16];
        int w = tt_utf8_snprintf(buf, n, "x%s", euros);
        assert_int_equal(w, 10);
        size_t len = strlen(buf);
        assert_true(len < n && valid_utf8(buf, len));
        size_t whole = n > 10 ? 10 : 1 + (n - 2) / 3 * 3;
        assert_int_equal(len, n == 1 ? 0 : whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_cut_never_splits_two_byte_characters),
        cmocka_unit_test(test_utf8_cut_never_splits_three_byte_characters),
        cmocka_unit_test(test_utf8_cut_never_splits_four_byte_characters),
        cmocka_unit_test(test_utf8_cut_mixed_widths),
        cmocka_unit_test(test_utf8_cut_title_straddling_the_limit),
        cmocka_unit_test(test_utf8_ascii_and_short_text_are_kept_whole),
        cmocka_unit_test(test_utf8_cut_of_invalid_bytes_stays_in_bounds),
        cmocka_unit_test(test_utf8_snprintf_does_not_leave_half_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
