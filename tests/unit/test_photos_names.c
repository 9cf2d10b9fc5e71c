/* agents/photos/names.h: library folders per tenant and user, names that
 * cannot be one folder refused, hidden characters refused in created paths. */
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
    static const char *const bad[] = {
        "",       ".",   "..",          ".hidden",           "a/b", "../acme", "a\\b", "a\nb",
        "a\037b", "a b", "caf\xc3\xa9", "al\xe2\x80\xaeice", "a:b", "*"};
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
        cmocka_unit_test(test_photos_strict_paths_refuse_hidden_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
