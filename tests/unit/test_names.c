/* protocol/names.h: the one rule for names (valid UTF-8, no control, bidi or
 * invisible character), their shown form, and the store key of an owner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "state/session.h"

static void test_names_accept_letters_of_any_script(void **state)
{
    (void)state;
    static const char *const good[] = {"alice",
                                       "Bob Smith",
                                       "alice@example.com",
                                       "a:b/c",
                                       "caf\xc3\xa9",
                                       "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d",
                                       "\xe6\x9d\xb1\xe4\xba\xac",
                                       "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(tt_name_check(good[i], 127, NULL), TT_OK);
}

static void test_names_refuse_controls_bidi_invisible_and_bad_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "b\037c",        "a\x01",         "a\n",           "a\t",
        "a\x7f",         "a\xc2\x80",     "a\xc2\x9f",                      /* C0, DEL, C1 */
        "a\xe2\x80\xaa", "a\xe2\x80\xab", "a\xe2\x80\xac", "a\xe2\x80\xad", /* LRE RLE PDF LRO */
        "a\xe2\x80\xae", "a\xe2\x81\xa6", "a\xe2\x81\xa7", "a\xe2\x81\xa8", /* RLO LRI RLI FSI */
        "a\xe2\x81\xa9", "a\xe2\x80\x8e", "a\xe2\x80\x8f", "a\xd8\x9c",     /* PDI LRM RLM ALM */
        "a\xe2\x80\x8b", "a\xe2\x80\x8c", "a\xe2\x80\x8d", "a\xef\xbb\xbf", /* ZWSP ZWNJ ZWJ BOM */
        "a\xe2\x81\xa0", "a\xe2\x80\xa8",                                   /* WJ, LS */
        "a\xff",         "a\xc0\xaf",     "a\xed\xa0\x80", "a\xe2\x80"};    /* not UTF-8 */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        assert_int_equal(tt_name_check(bad[i], 127, &why), TT_EINVAL);
        assert_non_null(why);
    }
}

static void test_names_are_within_their_length(void **state)
{
    (void)state;
    char name[130];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    name[127] = '\0';
    assert_int_equal(tt_name_check(name, 127, NULL), TT_OK);
    name[127] = 'a';
    const char *why;
    assert_int_equal(tt_name_check(name, 127, &why), TT_EINVAL);
    assert_string_equal(why, "it is too long");
    assert_int_equal(tt_name_check("", 127, &why), TT_EINVAL);
    assert_string_equal(why, "it is empty");
    assert_int_equal(tt_name_check(NULL, 127, NULL), TT_EINVAL);
}

static void test_names_strip_removes_bidi_and_invisible_characters(void **state)
{
    (void)state;
    char s[64] = "photo\xe2\x80\xaegpj.exe\xe2\x81\xa6x\xe2\x81\xa9\xe2\x80\x8b!";
    tt_name_strip(s);
    assert_string_equal(s, "photogpj.exex!");
    char lines[32] = "first\nsecond\tthird\xc2\x85";
    tt_name_strip(lines);
    assert_string_equal(lines, "first second third ");
    char kept[32] = "caf\xc3\xa9 \xd7\xa9\xd7\x9c";
    tt_name_strip(kept);
    assert_string_equal(kept, "caf\xc3\xa9 \xd7\xa9\xd7\x9c");
}

static void test_names_owner_keys_of_two_tenants_never_collide(void **state)
{
    (void)state;
    char a[TT_OWNER_KEY_MAX], b[TT_OWNER_KEY_MAX];
    tt_owner_key("a",
                 "b\x1f"
                 "c",
                 a, sizeof a);
    tt_owner_key("a\x1f"
                 "b",
                 "c", b, sizeof b);
    assert_string_not_equal(a, b);
    tt_owner_key("a\x1e"
                 "F",
                 "c", b, sizeof b);
    tt_owner_key("a\x1f", "c", a, sizeof a);
    assert_string_not_equal(a, b);
    /* a valid tenant's key is what earlier versions stored: no migration */
    tt_owner_key("acme", "alice", a, sizeof a);
    assert_string_equal(a, "acme\x1f"
                           "alice");
}

static void test_names_a_stored_title_is_read_without_bidi_controls(void **state)
{
    (void)state;
    /* a record written before titles were checked */
    static const char record[] =
        "{\"v\":1,\"id\":\"s_1\",\"user\":\"alice\",\"tenant\":\"acme\",\"agent\":\"echo\","
        "\"title\":\"invoice\\u202efdp.exe\\u200b\",\"state\":\"idle\",\"step\":\"\","
        "\"created_at\":1,\"updated_at\":1,\"head\":0,\"first_seq\":1}";
    tt_session *s = tt_session_new(NULL);
    assert_non_null(s);
    assert_int_equal(tt_session_load_record(s, record, sizeof record - 1), 0);
    assert_string_equal(s->title, "invoicefdp.exe");
    tt_session_free(s);
}

static void test_names_display_escapes_bidi_and_invisible_characters(void **state)
{
    (void)state;
    char out[128];
    /* U+202E RIGHT-TO-LEFT OVERRIDE would show "photogpj.exe" as "photoexe.jpg" */
    assert_string_equal(tt_name_display("photo\xe2\x80\xaegpj.exe", out, sizeof out),
                        "photo\\u{202E}gpj.exe");
    assert_string_equal(tt_name_display("a\xe2\x81\xa6"
                                        "b\xe2\x81\xa9",
                                        out, sizeof out),
                        "a\\u{2066}b\\u{2069}");
    assert_string_equal(tt_name_display("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", out, sizeof out),
                        "\\u{200E}\\u{200F}\\u{061C}");
    assert_string_equal(tt_name_display("zero\xe2\x80\x8bwidth\xef\xbb\xbf", out, sizeof out),
                        "zero\\u{200B}width\\u{FEFF}");
    assert_string_equal(tt_name_display("line\nbreak\x7f\xc2\x85", out, sizeof out),
                        "line\\u{000A}break\\u{007F}\\u{0085}");
    assert_string_equal(tt_name_display("bad\xff", out, sizeof out), "bad\\x{FF}");
    assert_string_equal(tt_name_display("a\\u{202E}", out, sizeof out), "a\\\\u{202E}");
    assert_string_equal(tt_name_display("caf\xc3\xa9 \xe2\x98\x80", out, sizeof out),
                        "caf\xc3\xa9 \xe2\x98\x80");
}

static void test_names_display_cuts_at_a_whole_character(void **state)
{
    (void)state;
    char out[16];
    assert_string_equal(tt_name_display("abcdefghijklmnopqrstuvwxyz", out, sizeof out),
                        "abcdefghijkl...");
    assert_string_equal(tt_name_display("abcdefghij\xe2\x80\xae"
                                        "xyz",
                                        out, sizeof out),
                        "abcdefghij...");
    assert_string_equal(
        tt_name_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", out,
                        sizeof out),
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...");
    assert_string_equal(tt_name_display("exactly15bytes!", out, sizeof out), "exactly15bytes!");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_accept_letters_of_any_script),
        cmocka_unit_test(test_names_refuse_controls_bidi_invisible_and_bad_utf8),
        cmocka_unit_test(test_names_are_within_their_length),
        cmocka_unit_test(test_names_strip_removes_bidi_and_invisible_characters),
        cmocka_unit_test(test_names_owner_keys_of_two_tenants_never_collide),
        cmocka_unit_test(test_names_a_stored_title_is_read_without_bidi_controls),
        cmocka_unit_test(test_names_display_escapes_bidi_and_invisible_characters),
        cmocka_unit_test(test_names_display_cuts_at_a_whole_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
