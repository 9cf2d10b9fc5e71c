/* protocol/buf.c: the bounded buffer grows geometrically up to its cap,
 * refuses anything past it without changing what it holds, keeps headroom
 * in front of the data, and hands its memory over or keeps it on reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/buf.h"
#include "protocol/errors.h"

static void test_buf_grows_geometrically_and_keeps_every_byte(void **state)
{
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    assert_null(tt_buf_data(&b));
    assert_string_equal(tt_buf_str(&b), "");
    size_t reallocs = 0, last_alloc = 0;
    for (int i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(tt_buf_append(&b, &c, 1), 0);
        if (b.alloc != last_alloc) {
            reallocs++;
            last_alloc = b.alloc;
        }
    }
    assert_int_equal(b.len, 100000);
    assert_true(reallocs < 20); /* doubling: log2(100000 / 64) + 1 */
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(tt_buf_data(&b)[i], 'a' + i % 26);
    assert_int_equal(tt_buf_data(&b)[b.len], '\0');
    tt_buf_free(&b);
    assert_null(tt_buf_data(&b));
    assert_int_equal(b.cap, 1 << 20);
}

static void test_buf_fills_to_exactly_its_cap(void **state)
{
    tt_buf b;
    tt_buf_init(&b, 1000);
    char chunk[300];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tt_buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(tt_buf_append(&b, chunk, 100), 0);
    assert_int_equal(b.len, 1000);
    assert_true(b.alloc <= 1000);
    assert_int_equal(tt_buf_append(&b, "", 0), 0);
    tt_buf_free(&b);
}

static void test_buf_refuses_one_byte_past_its_cap_unchanged(void **state)
{
    tt_buf b;
    tt_buf_init(&b, 10);
    assert_int_equal(tt_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(tt_buf_append(&b, "x", 1), TT_ETOOLARGE);
    assert_int_equal(b.len, 10);
    assert_string_equal(tt_buf_data(&b), "0123456789");
    assert_int_equal(tt_buf_reserve(&b, 1), TT_ETOOLARGE);
    tt_buf_reset(&b);
    assert_int_equal(tt_buf_append(&b, "0123456789x", 11), TT_ETOOLARGE);
    assert_int_equal(b.len, 0);
    assert_string_equal(tt_buf_str(&b), "");
    tt_buf_free(&b);
}

static void test_buf_truncate_cuts_back_and_terminates(void **state)
{
    tt_buf b;
    tt_buf_init_headroom(&b, 64, 4);
    tt_buf_truncate(&b, 0); /* no memory yet: nothing to do */
    assert_int_equal(tt_buf_append(&b, "abcdef", 6), 0);
    tt_buf_truncate(&b, 9); /* longer than the data: unchanged */
    assert_int_equal(b.len, 6);
    tt_buf_truncate(&b, 2);
    assert_int_equal(b.len, 2);
    assert_string_equal(tt_buf_data(&b), "ab");
    assert_int_equal(tt_buf_append(&b, "Z", 1), 0);
    assert_string_equal(tt_buf_data(&b), "abZ");
    tt_buf_free(&b);
}

static void test_buf_appendf_is_whole_or_nothing(void **state)
{
    tt_buf b;
    tt_buf_init(&b, 16);
    assert_int_equal(tt_buf_appendf(&b, "%s=%d;", "ab", 12), 0);
    assert_string_equal(tt_buf_data(&b), "ab=12;");
    /* 6 + 11 bytes: one past the cap, so nothing of it goes in */
    assert_int_equal(tt_buf_appendf(&b, "%s", "hello world"), TT_ETOOLARGE);
    assert_int_equal(b.len, 6);
    assert_string_equal(tt_buf_data(&b), "ab=12;");
    assert_int_equal(tt_buf_appendf(&b, "%s", "helloworld"), 0); /* exactly the cap */
    assert_string_equal(tt_buf_data(&b), "ab=12;helloworld");
    assert_int_equal(tt_buf_appendf(&b, "%c", 'z'), TT_ETOOLARGE);
    assert_string_equal(tt_buf_data(&b), "ab=12;helloworld");
    tt_buf_free(&b);
}

static void test_buf_keeps_headroom_in_front_of_the_data(void **state)
{
    tt_buf b;
    tt_buf_init_headroom(&b, 4096, 16);
    for (int i = 0; i < 200; i++)
        assert_int_equal(tt_buf_appendf(&b, "%03d", i), 0);
    assert_int_equal(b.len, 600);
    assert_ptr_equal(tt_buf_head(&b) + 16, tt_buf_data(&b));
    memset(tt_buf_head(&b), 'H', 16); /* the headroom is ours to write (ASan checks it) */
    assert_memory_equal(tt_buf_data(&b), "000001002", 9);
    tt_buf_consume(&b, 3);
    assert_int_equal(b.len, 597);
    assert_memory_equal(tt_buf_data(&b), "001002", 6);
    assert_ptr_equal(tt_buf_head(&b) + 16, tt_buf_data(&b));
    tt_buf_free(&b);
    assert_int_equal(b.headroom, 16);
}

static void test_buf_reset_keeps_memory_and_take_detaches_it(void **state)
{
    tt_buf b;
    tt_buf_init(&b, 1 << 16);
    assert_int_equal(tt_buf_append(&b, "hello", 5), 0);
    char *mem = tt_buf_data(&b);
    size_t alloc = b.alloc;
    tt_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(tt_buf_data(&b), "");
    assert_ptr_equal(tt_buf_data(&b), mem);
    assert_int_equal(b.alloc, alloc);
    assert_int_equal(tt_buf_append(&b, "bye", 3), 0);
    size_t len = 0;
    char *taken = tt_buf_take(&b, &len);
    assert_int_equal(len, 3);
    assert_string_equal(taken, "bye");
    free(taken);
    assert_null(tt_buf_data(&b));
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 1 << 16);
    assert_null(tt_buf_take(&b, &len));
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_geometrically_and_keeps_every_byte),
        cmocka_unit_test(test_buf_fills_to_exactly_its_cap),
        cmocka_unit_test(test_buf_refuses_one_byte_past_its_cap_unchanged),
        cmocka_unit_test(test_buf_truncate_cuts_back_and_terminates),
        cmocka_unit_test(test_buf_appendf_is_whole_or_nothing),
        cmocka_unit_test(test_buf_keeps_headroom_in_front_of_the_data),
        cmocka_unit_test(test_buf_reset_keeps_memory_and_take_detaches_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
