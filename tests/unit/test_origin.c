/* server/origin.c: which Host and Origin headers the server accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "server/origin.h"

static tt_config config(const char *host, char **allowed, size_t n)
{
    tt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.host, host);
    for (size_t i = 0; i < n; i++)
        cfg.allowed_origins[i] = allowed[i];
    cfg.n_allowed_origins = n;
    return cfg;
}

static int check(const tt_config *cfg, int open_mode, const char *host, const char *origin)
{
    char why[256];
    return tt_origin_check(cfg, open_mode, host, origin, why, sizeof why);
}

static void test_origin_loopback_names_are_served(void **state)
{
    tt_config cfg = config("127.0.0.1", NULL, 0);
    assert_true(tt_origin_host_served(&cfg, "localhost:8080"));
    assert_true(tt_origin_host_served(&cfg, "LOCALHOST"));
    assert_true(tt_origin_host_served(&cfg, "127.0.0.1:8080"));
    assert_true(tt_origin_host_served(&cfg, "127.9.8.7"));
    assert_true(tt_origin_host_served(&cfg, "[::1]:8080"));
    assert_false(tt_origin_host_served(&cfg, "evil.example:8080"));
    assert_false(tt_origin_host_served(&cfg, "localhost.evil.example"));
    assert_false(tt_origin_host_served(&cfg, "128.0.0.1"));
    assert_false(tt_origin_host_served(&cfg, "[::1"));
    assert_false(tt_origin_host_served(&cfg, ""));
    assert_false(tt_origin_host_served(&cfg, NULL));
}

static void test_origin_configured_host_and_allowed_hosts_are_served(void **state)
{
    char *allowed[] = {"https://app.example", "http://[fd00::1]:3000"};
    tt_config cfg = config("192.168.1.5", allowed, 2);
    assert_true(tt_origin_host_served(&cfg, "192.168.1.5:8080"));
    assert_true(tt_origin_host_served(&cfg, "app.example"));
    assert_true(tt_origin_host_served(&cfg, "[fd00::1]:8080"));
    assert_false(tt_origin_host_served(&cfg, "192.168.1.6:8080"));
}

static void test_origin_every_host_of_a_list_is_served(void **state)
{
    tt_config cfg = config("192.168.1.5, [fd00::2],app.example", NULL, 0);
    assert_true(tt_origin_host_served(&cfg, "192.168.1.5:8080"));
    assert_true(tt_origin_host_served(&cfg, "[fd00::2]:8080"));
    assert_true(tt_origin_host_served(&cfg, "APP.example:8080"));
    assert_false(tt_origin_host_served(&cfg, "192.168.1.55"));
    assert_false(tt_origin_host_served(&cfg, "app.exampl"));
    assert_false(tt_origin_host_served(&cfg, "[fd00::]:8080"));
}

static void test_origin_same_origin_and_no_origin_pass(void **state)
{
    tt_config cfg = config("127.0.0.1", NULL, 0);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", "http://127.0.0.1:8080"), 0);
    assert_int_equal(check(&cfg, 1, "localhost:8080", "HTTP://LOCALHOST:8080"), 0);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", NULL), 0);
    assert_int_equal(check(&cfg, 0, "tether.internal", NULL), 0);
}

static void test_origin_foreign_origin_is_forbidden_in_both_modes(void **state)
{
    tt_config cfg = config("127.0.0.1", NULL, 0);
    for (int open_mode = 0; open_mode < 2; open_mode++) {
        assert_int_equal(check(&cfg, open_mode, "127.0.0.1:8080", "https://evil.example"),
                         TT_EFORBIDDEN);
        assert_int_equal(check(&cfg, open_mode, "127.0.0.1:8080", "null"), TT_EFORBIDDEN);
        assert_int_equal(check(&cfg, open_mode, "127.0.0.1:8080", "http://127.0.0.1:8081"),
                         TT_EFORBIDDEN);
        assert_int_equal(check(&cfg, open_mode, "127.0.0.1:8080", "ws://127.0.0.1:8080"),
                         TT_EFORBIDDEN);
        assert_int_equal(check(&cfg, open_mode, NULL, "http://127.0.0.1:8080"), TT_EFORBIDDEN);
    }
}

static void test_origin_rebound_host_is_forbidden_in_open_mode_only(void **state)
{
    tt_config cfg = config("127.0.0.1", NULL, 0);
    /* DNS rebinding: the page's own name, same-origin with itself. */
    assert_int_equal(check(&cfg, 1, "evil.example:8080", "http://evil.example:8080"),
                     TT_EFORBIDDEN);
    assert_int_equal(check(&cfg, 1, "evil.example:8080", NULL), TT_EFORBIDDEN);
    assert_int_equal(check(&cfg, 1, NULL, NULL), TT_EFORBIDDEN);
    /* With API keys a Host is not a credential; a browser Origin still must match. */
    assert_int_equal(check(&cfg, 0, "evil.example:8080", NULL), 0);
    assert_int_equal(check(&cfg, 0, "evil.example:8080", "http://evil.example:8080"),
                     TT_EFORBIDDEN);
}

static void test_origin_allow_list_is_exact(void **state)
{
    char *allowed[] = {"https://app.example"};
    tt_config cfg = config("127.0.0.1", allowed, 1);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", "https://app.example"), 0);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", "https://APP.example"), 0);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", "http://app.example"), TT_EFORBIDDEN);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", "https://app.example:444"), TT_EFORBIDDEN);
    assert_int_equal(check(&cfg, 1, "127.0.0.1:8080", "https://app.example.evil"), TT_EFORBIDDEN);
    assert_int_equal(check(&cfg, 1, "app.example", "https://app.example"), 0);
}

static void test_origin_valid_values(void **state)
{
    assert_true(tt_origin_valid("https://app.example"));
    assert_true(tt_origin_valid("http://127.0.0.1:8080"));
    assert_true(tt_origin_valid("http://[::1]:8080"));
    assert_false(tt_origin_valid("app.example"));
    assert_false(tt_origin_valid("https://app.example/"));
    assert_false(tt_origin_valid("https://app.example/path"));
    assert_false(tt_origin_valid("https://user@app.example"));
    assert_false(tt_origin_valid("https://app.example:"));
    assert_false(tt_origin_valid("https://app.example:80x"));
    assert_false(tt_origin_valid("https://"));
    assert_false(tt_origin_valid("ftp://app.example"));
    assert_false(tt_origin_valid("http://[::1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_loopback_names_are_served),
        cmocka_unit_test(test_origin_configured_host_and_allowed_hosts_are_served),
        cmocka_unit_test(test_origin_every_host_of_a_list_is_served),
        cmocka_unit_test(test_origin_same_origin_and_no_origin_pass),
        cmocka_unit_test(test_origin_foreign_origin_is_forbidden_in_both_modes),
        cmocka_unit_test(test_origin_rebound_host_is_forbidden_in_open_mode_only),
        cmocka_unit_test(test_origin_allow_list_is_exact),
        cmocka_unit_test(test_origin_valid_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
