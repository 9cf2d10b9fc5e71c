/* agents/photos/names.h: library folders per tenant and user, names that
 * cannot be one folder refused, hidden characters escaped when shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agents/photos/names.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"

static void test_photos_library_is_per_tenant_and_user(void **state)
{
    (void)state;
    char out[256];
    const char *why;
    assert_int_equal(tt_photos_library_path("/p", "acme", "alice", out, sizeof out, &why), TT_OK);
    assert_string_equal(out, "/p/acme/alice");
    assert_int_equal(tt_photos_library_path("/p", "globex", "alice", out, sizeof out, &why), TT_OK);
    assert_string_equal(out, "/p/globex/alice");
    assert_int_equal(tt_photos_library_path("/p", NULL, "alice", out, sizeof out, &why), TT_OK);
    assert_string_equal(out, "/p/alice");
    assert_int_equal(tt_photos_library_path("/p", "acme", "alice", out, 8, &why), TT_ETOOLARGE);
}

static void test_photos_owner_names_must_be_one_safe_folder(void **state)
{
    (void)state;
    static const char *const good[] = {"alice", "Bob-2", "a_b", "a.b", "alice@example.com", "x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(tt_photos_owner_check(good[i], NULL), TT_OK);
    static const char *const bad[] = {"",
                                      ".",
                                      "..",
                                      ".hidden",
                                      "a/b",
                                      "../acme",
                                      "a\\b",
                                      "a\nb",
                                      "a\x1f"
                                      "b",
                                      "a b",
                                      "caf\xc3\xa9",
                                      "al\xe2\x80\xaeice",
                                      "a:b",
                                      "*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        char out[256];
        assert_int_equal(tt_photos_owner_check(bad[i], &why), TT_EINVAL);
        assert_non_null(why);
        assert_int_equal(tt_photos_library_path("/p", bad[i], "alice", out, sizeof out, &why),
                         TT_EINVAL);
        assert_int_equal(tt_photos_library_path("/p", "acme", bad[i], out, sizeof out, &why),
                         TT_EINVAL);
    }
    char longname[TT_PHOTOS_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(tt_photos_owner_check(longname, NULL), TT_EINVAL);
    longname[TT_PHOTOS_NAME_MAX] = '\0';
    assert_int_equal(tt_photos_owner_check(longname, NULL), TT_OK);
}

static void test_photos_display_escapes_bidi_and_invisible_characters(void **state)
{
    (void)state;
    char out[128];
    /* U+202E RIGHT-TO-LEFT OVERRIDE would show "photogpj.exe" as "photoexe.jpg" */
    assert_string_equal(tt_photos_display("photo\xe2\x80\xaegpj.exe", out, sizeof out),
                        "photo\\u{202E}gpj.exe");
    assert_string_equal(tt_photos_display("a\xe2\x81\xa6"
                                          "b\xe2\x81\xa9",
                                          out, sizeof out),
                        "a\\u{2066}b\\u{2069}");
    assert_string_equal(tt_photos_display("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", out, sizeof out),
                        "\\u{200E}\\u{200F}\\u{061C}");
    assert_string_equal(tt_photos_display("zero\xe2\x80\x8bwidth\xef\xbb\xbf", out, sizeof out),
                        "zero\\u{200B}width\\u{FEFF}");
    assert_string_equal(tt_photos_display("line\nbreak\x7f\xc2\x85", out, sizeof out),
                        "line\\u{000A}break\\u{007F}\\u{0085}");
    assert_string_equal(tt_photos_display("bad\xff", out, sizeof out), "bad\\x{FF}");
    assert_string_equal(tt_photos_display("a\\u{202E}", out, sizeof out), "a\\\\u{202E}");
    assert_string_equal(tt_photos_display("caf\xc3\xa9 \xe2\x98\x80", out, sizeof out),
                        "caf\xc3\xa9 \xe2\x98\x80");
}

static void test_photos_display_cuts_at_a_whole_character(void **state)
{
    (void)state;
    char out[16];
    assert_string_equal(tt_photos_display("abcdefghijklmnopqrstuvwxyz", out, sizeof out),
                        "abcdefghijkl...");
    assert_string_equal(tt_photos_display("abcdefghij\xe2\x80\xae"
                                          "xyz",
                                          out, sizeof out),
                        "abcdefghij...");
    assert_string_equal(
        tt_photos_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", out,
                          sizeof out),
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...");
    assert_string_equal(tt_photos_display("exactly15bytes!", out, sizeof out), "exactly15bytes!");
}

static void test_photos_strict_paths_refuse_hidden_characters(void **state)
{
    (void)state;
    static const char *const bad[] = {"a\xe2\x80\xaa", "a\xe2\x80\xae", "a\xe2\x81\xa6",
                                      "a\xe2\x81\xa9", "a\xe2\x80\x8e", "a/b\xe2\x80\x8f",
                                      "a\xd8\x9c",     "a\xe2\x80\x8b", "a\xef\xbb\xbf",
                                      "a\xc2\x85",     "a\x1b[31m",     "a\xe2\x80\xa8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tt_photos_rel_check(bad[i], TT_PHOTOS_REL_STRICT, NULL), TT_EINVAL);
        assert_int_equal(tt_photos_rel_check(bad[i], 0, NULL), TT_OK); /* a source may hold one */
    }
    assert_int_equal(
        tt_photos_rel_check("2021/caf\xc3\xa9 \xe2\x98\x80", TT_PHOTOS_REL_STRICT, NULL), TT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_photos_library_is_per_tenant_and_user),
        cmocka_unit_test(test_photos_owner_names_must_be_one_safe_folder),
        cmocka_unit_test(test_photos_display_escapes_bidi_and_invisible_characters),
        cmocka_unit_test(test_photos_display_cuts_at_a_whole_character),
        cmocka_unit_test(test_photos_strict_paths_refuse_hidden_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
