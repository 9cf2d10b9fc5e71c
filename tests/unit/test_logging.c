/* server/logging.c: log lines have the PII of their strings (at any depth)
 * replaced by placeholders, numbered per line, unless redaction is off;
 * numbers and the line's own fields are left as they are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "server/logging.h"

/* What tt_log printed for (msg, fields), stderr sent to a file meanwhile. */
static char *logged(const char *msg, json_t *fields)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_not_equal(dup2(fileno(f), 2), -1);
    tt_log(TT_INFO, msg, fields);
    fflush(stderr);
    assert_int_not_equal(dup2(saved, 2), -1);
    close(saved);
    long n = ftell(f);
    assert_true(n > 0);
    char *text = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

static void test_redacted_by_default(void **state)
{
    (void)state;
    char *t =
        logged("upstream error",
               json_pack("{s:s, s:{s:[s, s]}, s:I, s:s}", "error",
                         "invalid prompt from jane@example.com, card 4111 1111 1111 1111", "tool",
                         "args", "call +44 20 7946 0958", "jane@example.com", "tokens",
                         (json_int_t)4111111111111111LL, "request_id", "req-2024-01-15-000123"));
    assert_null(strstr(t, "jane@example.com"));
    assert_null(strstr(t, "4111 1111"));
    assert_null(strstr(t, "7946"));
    assert_non_null(strstr(t, "invalid prompt from [EMAIL_1], card [CARD_1]"));
    /* one placeholder per value within the line, at any depth */
    assert_non_null(strstr(t, "[\"call [PHONE_1]\",\"[EMAIL_1]\"]"));
    assert_non_null(strstr(t, "\"tokens\":4111111111111111"));
    assert_non_null(strstr(t, "\"request_id\":\"req-2024-01-15-000123\""));
    assert_non_null(strstr(t, "\"level\":\"info\""));
    free(t);
}

static void test_off(void **state)
{
    (void)state;
    tt_log_set_redact(0);
    char *t = logged("x", json_pack("{s:s}", "error", "jane@example.com"));
    tt_log_set_redact(1);
    assert_non_null(strstr(t, "jane@example.com"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redacted_by_default),
        cmocka_unit_test(test_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
