/* protocol/env.c: which names are variable names, and look-ups in an
 * environment array that cannot be fooled by '=' in a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/env.h"

static void test_env_names_are_word_characters_not_starting_with_a_digit(void **state)
{
    assert_true(tt_env_name_valid("OPENAI_API_KEY"));
    assert_true(tt_env_name_valid("_"));
    assert_true(tt_env_name_valid("k2"));
    const char *bad[] = {"", "1KEY", "KEY-B", "A=B", "A B", "KEY\n", "K\xc3\xa9", "$HOME"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tt_env_name_valid(bad[i]))
            fail_msg("\"%s\" taken as a name", bad[i]);
    }
    assert_false(tt_env_name_valid(NULL));
}

static void test_env_name_length_is_capped(void **state)
{
    char name[TT_ENV_NAME_MAX + 2];
    memset(name, 'K', sizeof name - 1);
    name[TT_ENV_NAME_MAX] = '\0';
    assert_true(tt_env_name_valid(name));
    name[TT_ENV_NAME_MAX] = 'K';
    name[TT_ENV_NAME_MAX + 1] = '\0';
    assert_false(tt_env_name_valid(name));
}

static void test_env_get_finds_the_first_entry_of_that_name(void **state)
{
    char *envp[] = {"KEY_B=b", "KEY=first", "KEY=second", "EMPTY=", NULL};
    assert_string_equal(tt_env_get(envp, "KEY"), "first");
    assert_string_equal(tt_env_get(envp, "KEY_B"), "b");
    assert_string_equal(tt_env_get(envp, "EMPTY"), "");
    assert_null(tt_env_get(envp, "KE")); /* a prefix of a name is another name */
    assert_null(tt_env_get(envp, "MISSING"));
    assert_null(tt_env_get(NULL, "KEY"));
}

/* Without the name check, "A=B" would match the entry A=B=... and "" any
 * entry starting with '='. */
static void test_env_get_refuses_names_that_are_not_names(void **state)
{
    char *envp[] = {"A=B=secret", "=stray", "1KEY=x", NULL};
    assert_null(tt_env_get(envp, "A=B"));
    assert_null(tt_env_get(envp, ""));
    assert_null(tt_env_get(envp, "1KEY"));
    assert_string_equal(tt_env_get(envp, "A"), "B=secret");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_names_are_word_characters_not_starting_with_a_digit),
        cmocka_unit_test(test_env_name_length_is_capped),
        cmocka_unit_test(test_env_get_finds_the_first_entry_of_that_name),
        cmocka_unit_test(test_env_get_refuses_names_that_are_not_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
