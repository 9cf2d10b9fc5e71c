/* agents/tools.c: the built-in tools, argument validation before execution,
 * the calculator, and the HTTP tools file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/tools.h"
#include "protocol/errors.h"

typedef struct outcome {
    int calls, ok;
    char error[600];
    json_t *result;
} outcome;

static void on_done(void *ud, int ok, json_t *result, const char *error)
{
    outcome *o = ud;
    o->calls++;
    o->ok = ok;
    o->result = result ? json_incref(result) : NULL;
    snprintf(o->error, sizeof o->error, "%s", error ? error : "");
}

static void test_tools_builtins_are_there(void **state)
{
    tt_toolbox box;
    char err[256];
    assert_int_equal(tt_tools_load(NULL, NULL, NULL, &box, err, sizeof err), 0);
    assert_non_null(tt_tools_find(&box, "current_time"));
    assert_non_null(tt_tools_find(&box, "calculate"));
    assert_null(tt_tools_find(&box, "rm_rf"));
    tt_tools_free(&box);
}

static void test_tools_calculate_runs(void **state)
{
    tt_toolbox box;
    char err[256];
    assert_int_equal(tt_tools_load(NULL, NULL, NULL, &box, err, sizeof err), 0);
    outcome o = {0};
    tt_tool_call(&box, tt_tools_find(&box, "calculate"), "{\"expression\":\"(1+2)*7 - 2^3\"}", NULL,
                 on_done, &o);
    assert_int_equal(o.calls, 1);
    assert_true(o.ok);
    assert_true(json_real_value(json_object_get(o.result, "result")) == 13.0);
    json_decref(o.result);
    tt_tools_free(&box);
}

static void test_tools_invalid_arguments_are_not_executed(void **state)
{
    tt_toolbox box;
    char err[256];
    assert_int_equal(tt_tools_load(NULL, NULL, NULL, &box, err, sizeof err), 0);
    const char *bad[] = {"{\"expr\":\"1\"}", "{\"expression\":5}", "not json",
                         "{\"expression\":\"1\",\"extra\":true}"};
    for (size_t i = 0; i < 4; i++) {
        outcome o = {0};
        tt_tool_call(&box, tt_tools_find(&box, "calculate"), bad[i], NULL, on_done, &o);
        assert_int_equal(o.calls, 1);
        assert_false(o.ok);
        assert_non_null(strstr(o.error, "invalid arguments"));
        assert_null(o.result);
    }
    tt_tools_free(&box);
}

static void test_tools_calculator_refuses_garbage(void **state)
{
    double v;
    char why[128];
    assert_int_equal(tt_tool_calculate("1/0", &v, why, sizeof why), TT_EINVAL);
    assert_int_equal(tt_tool_calculate("2 +", &v, why, sizeof why), TT_EINVAL);
    assert_int_equal(tt_tool_calculate("system(1)", &v, why, sizeof why), TT_EINVAL);
    assert_int_equal(
        tt_tool_calculate("((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))",
                          &v, why, sizeof why),
        TT_EINVAL);
    assert_int_equal(tt_tool_calculate("-3 * -(2)", &v, why, sizeof why), 0);
    assert_true(v == 6.0);
}

static char *write_file(const char *text)
{
    static char path[] = "/tmp/tt_tools_XXXXXX";
    strcpy(path, "/tmp/tt_tools_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_tools_file_is_checked(void **state)
{
    tt_toolbox box;
    char err[256];
    char *envp[] = {"WKEY=secret", NULL};
    char *ok = write_file("{\"tools\":[{\"name\":\"weather\",\"parameters\":{\"type\":\"object\"},"
                          "\"url\":\"http://127.0.0.1:9/w\",\"secret_header\":\"X-Key\","
                          "\"secret_env\":\"WKEY\"}]}");
    assert_int_equal(tt_tools_load(ok, envp, NULL, &box, err, sizeof err), 0);
    assert_non_null(tt_tools_find(&box, "weather"));
    tt_tools_free(&box);
    unlink(ok);
    const char *bad[] = {
        "{\"tools\":[{\"name\":\"w\",\"parameters\":{\"oneOf\":[]},\"url\":\"http://x\"}]}",
        "{\"tools\":[{\"name\":\"w\",\"parameters\":{},\"url\":\"file:///etc/passwd\"}]}",
        ("{\"tools\":[{\"name\":\"w\",\"parameters\":{},\"url\":\"http://x\",\"secret_header\":"
         "\"X\",\"secret_env\":\"MISSING\"}]}"),
        "{\"tools\":[{\"name\":\"calculate\",\"parameters\":{},\"url\":\"http://x\"}]}",
        "{\"tools\":[{\"name\":\"w\",\"parameters\":{},\"url\":\"http://x\",\"bogus\":1}]}",
    };
    for (size_t i = 0; i < 5; i++) {
        char *p = write_file(bad[i]);
        assert_int_equal(tt_tools_load(p, envp, NULL, &box, err, sizeof err), TT_EINVAL);
        unlink(p);
    }
}

/* secret_env names a variable: "A=B" must not read the part of A's value
 * after "B=", nor "" an entry that starts with '='. */
static void test_tools_secret_env_must_be_a_variable_name(void **state)
{
    tt_toolbox box;
    char err[256];
    char *envp[] = {"A=B=not-a-secret", "=stray", NULL};
    const char *names[] = {"A=B", "", "1KEY", "KEY-B"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"tools\":[{\"name\":\"w\",\"parameters\":{\"type\":\"object\"},"
                 "\"url\":\"http://127.0.0.1:9/w\",\"secret_header\":\"X-Key\","
                 "\"secret_env\":\"%s\"}]}",
                 names[i]);
        char *p = write_file(text);
        err[0] = '\0';
        int rc = tt_tools_load(p, envp, NULL, &box, err, sizeof err);
        unlink(p);
        if (rc == 0)
            tt_tools_free(&box);
        if (rc != TT_EINVAL)
            fail_msg("secret_env \"%s\" accepted", names[i]);
        assert_non_null(strstr(err, "secret_env must be an environment variable name"));
    }
}

static void test_tools_file_marks_tools_that_need_approval(void **state)
{
    tt_toolbox box;
    char err[256];
    char *path =
        write_file("{\"tools\":[{\"name\":\"send_mail\",\"parameters\":{\"type\":\"object\"},"
                   "\"url\":\"http://127.0.0.1:9/m\",\"approval\":true},{\"name\":\"read\","
                   "\"parameters\":{\"type\":\"object\"},\"url\":\"http://127.0.0.1:9/r\"}]}");
    assert_int_equal(tt_tools_load(path, NULL, NULL, &box, err, sizeof err), 0);
    unlink(path);
    assert_true(tt_tool_needs_approval(tt_tools_find(&box, "send_mail")));
    assert_false(tt_tool_needs_approval(tt_tools_find(&box, "read")));
    assert_false(tt_tool_needs_approval(tt_tools_find(&box, "calculate")));
    char why[300];
    assert_int_equal(
        tt_tool_check_args(tt_tools_find(&box, "calculate"), "{\"expression\":1}", why, sizeof why),
        TT_EINVAL);
    assert_non_null(strstr(why, "invalid arguments, not executed"));
    assert_int_equal(tt_tool_check_args(tt_tools_find(&box, "calculate"),
                                        "{\"expression\":\"1+1\"}", why, sizeof why),
                     0);
    tt_tools_free(&box);
    /* "approval" must be a boolean. */
    path = write_file("{\"tools\":[{\"name\":\"m\",\"parameters\":{},\"url\":\"http://x\","
                      "\"approval\":\"yes\"}]}");
    assert_int_equal(tt_tools_load(path, NULL, NULL, &box, err, sizeof err), TT_EINVAL);
    unlink(path);
}

static void test_tools_idempotent_flag_and_keys(void **state)
{
    tt_toolbox box;
    char err[256];
    char *path =
        write_file("{\"tools\":[{\"name\":\"put\",\"parameters\":{\"type\":\"object\"},"
                   "\"url\":\"http://127.0.0.1:9/p\",\"idempotent\":true},{\"name\":\"pay\","
                   "\"parameters\":{\"type\":\"object\"},\"url\":\"http://127.0.0.1:9/q\"}]}");
    assert_int_equal(tt_tools_load(path, NULL, NULL, &box, err, sizeof err), 0);
    unlink(path);
    const tt_tool *put = tt_tools_find(&box, "put");
    assert_true(tt_tool_idempotent(put));
    assert_true(tt_tool_is_http(put));
    assert_false(tt_tool_idempotent(tt_tools_find(&box, "pay")));
    assert_false(tt_tool_is_http(tt_tools_find(&box, "calculate")));
    /* A key a header cannot carry fails the call before anything is sent
     * (the toolbox has no transport: sending would crash). */
    char long_key[TT_TOOL_IDEM_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const char *bad[] = {"", "a b", "a\r\nX-Evil: 1", "caf\xc3\xa9", long_key};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        outcome o = {0};
        tt_tool_call(&box, put, "{}", bad[i], on_done, &o);
        assert_int_equal(o.calls, 1);
        assert_false(o.ok);
        assert_non_null(strstr(o.error, "idempotency key"));
    }
    tt_tools_free(&box);
    /* "idempotent" must be a boolean. */
    path = write_file("{\"tools\":[{\"name\":\"m\",\"parameters\":{},\"url\":\"http://x\","
                      "\"idempotent\":\"yes\"}]}");
    assert_int_equal(tt_tools_load(path, NULL, NULL, &box, err, sizeof err), TT_EINVAL);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tools_builtins_are_there),
        cmocka_unit_test(test_tools_calculate_runs),
        cmocka_unit_test(test_tools_invalid_arguments_are_not_executed),
        cmocka_unit_test(test_tools_calculator_refuses_garbage),
        cmocka_unit_test(test_tools_file_is_checked),
        cmocka_unit_test(test_tools_secret_env_must_be_a_variable_name),
        cmocka_unit_test(test_tools_file_marks_tools_that_need_approval),
        cmocka_unit_test(test_tools_idempotent_flag_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
