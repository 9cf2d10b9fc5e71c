/* server/config.c: defaults, precedence (flags > env > file), refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "server/config.h"

static int load(tt_config *cfg, char **argv, char **envp, char *err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    int exit_now = 0;
    return tt_config_load(cfg, argc, argv, envp, &exit_now, err, 256);
}

static void test_config_defaults(void **state)
{
    tt_config cfg;
    char err[256];
    char *argv[] = {"tether", NULL};
    char *envp[] = {NULL};
    assert_int_equal(load(&cfg, argv, envp, err), 0);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.data_dir, "./data");
    assert_int_equal(cfg.max_frame_bytes, 1048576);
    assert_string_equal(cfg.sync, "periodic");
    assert_int_equal(cfg.n_api_keys, 0);
    tt_config_free(&cfg);
}

static void test_config_precedence_flag_env_file(void **state)
{
    char path[] = "/tmp/tt_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"port\": 1111, \"heartbeat-s\": 7, \"echo-delay-ms\": 3,"
                       " \"api-key\": [\"filekey\"]}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);

    char cfgflag[64];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", path);
    char *argv[] = {"tether", cfgflag, "--port", "3333", NULL};
    char *envp[] = {"TETHER_PORT=2222", "TETHER_HEARTBEAT_S=9", "TETHER_API_KEYS=a,b:t2", NULL};
    tt_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, argv, envp, err), 0);
    assert_int_equal(cfg.port, 3333);       /* flag beats env and file */
    assert_int_equal(cfg.heartbeat_s, 9);   /* env beats file */
    assert_int_equal(cfg.echo_delay_ms, 3); /* file beats default */
    assert_int_equal(cfg.n_api_keys, 2);    /* env list replaces the file's */
    assert_string_equal(cfg.api_keys[0], "a");
    assert_string_equal(cfg.api_keys[1], "b:t2");
    tt_config_free(&cfg);
    unlink(path);
}

/* TETHER_CONFIG is read from the environment the loader is given, like every
 * other TETHER_* variable, not from the process's own. */
static void test_config_file_named_in_the_given_environment(void **state)
{
    char path[] = "/tmp/tt_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"port\": 1111}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    char var[64];
    snprintf(var, sizeof var, "TETHER_CONFIG=%s", path);
    char *argv[] = {"tether", NULL};
    char *envp[] = {var, NULL};
    tt_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, argv, envp, err), 0);
    assert_int_equal(cfg.port, 1111);
    tt_config_free(&cfg);
    unlink(path);
}

static void expect_refused(char **argv, const char *why)
{
    tt_config cfg;
    char err[256] = "";
    char *envp[] = {NULL};
    assert_int_equal(load(&cfg, argv, envp, err), TT_EINVAL);
    if (!strstr(err, why))
        fail_msg("expected '%s' in '%s'", why, err);
}

static void test_config_refuses_bad_values(void **state)
{
    expect_refused((char *[]){"tether", "--port", "0", NULL}, "--port");
    expect_refused((char *[]){"tether", "--port", "80x", NULL}, "--port");
    expect_refused((char *[]){"tether", "--port=99999", NULL}, "--port");
    expect_refused((char *[]){"tether", "--sync", "sometimes", NULL}, "commit|periodic|none");
    expect_refused((char *[]){"tether", "--nope", "1", NULL}, "unknown option");
    expect_refused((char *[]){"tether", "--port", NULL}, "needs a value");
    expect_refused((char *[]){"tether", "stray", NULL}, "unexpected argument");
    expect_refused((char *[]){"tether", "--jwt-secret", "short", NULL}, "32 to 64 bytes");
    expect_refused((char *[]){"tether", "--config", "/nonexistent/tether.json", NULL},
                   "config file");
}

static void test_config_refuses_bad_env(void **state)
{
    tt_config cfg;
    char err[256] = "";
    char *argv[] = {"tether", NULL};
    char *envp[] = {"TETHER_MAX_FRAME_BYTES=lots", NULL};
    assert_int_equal(load(&cfg, argv, envp, err), TT_EINVAL);
    assert_non_null(strstr(err, "TETHER_MAX_FRAME_BYTES"));
}

static void test_config_refuses_unknown_file_keys(void **state)
{
    char path[] = "/tmp/tt_config_XXXXXX";
    int fd = mkstemp(path);
    const char *json = "{\"prot\": 1}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    char flag[64];
    snprintf(flag, sizeof flag, "--config=%s", path);
    expect_refused((char *[]){"tether", flag, NULL}, "unknown option 'prot'");
    unlink(path);
}

static void test_config_node_id_given_defaulted_or_refused(void **state)
{
    tt_config cfg;
    char err[256] = "";
    char *given[] = {"tether", "--node-id", "eu-1.node_A", NULL};
    char *envp[] = {NULL};
    assert_int_equal(load(&cfg, given, envp, err), 0);
    assert_string_equal(tt_config_node_id(&cfg), "eu-1.node_A");
    tt_config_free(&cfg);

    char *env_given[] = {"TETHER_NODE_ID=n2", NULL};
    char *none[] = {"tether", NULL};
    assert_int_equal(load(&cfg, none, env_given, err), 0);
    assert_string_equal(tt_config_node_id(&cfg), "n2");
    tt_config_free(&cfg);

    /* The default: <hostname>-<pid>, only allowed characters, at most 64. */
    assert_int_equal(load(&cfg, none, envp, err), 0);
    const char *id = tt_config_node_id(&cfg);
    char suffix[32];
    snprintf(suffix, sizeof suffix, "-%ld", (long)getpid());
    size_t len = strlen(id);
    assert_true(len > strlen(suffix) && len <= TT_NODE_ID_MAX);
    assert_string_equal(id + len - strlen(suffix), suffix);
    assert_int_equal(
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"), len);
    tt_config_free(&cfg);

    char max[TT_NODE_ID_MAX + 2];
    memset(max, 'n', TT_NODE_ID_MAX);
    max[TT_NODE_ID_MAX] = '\0';
    char *longest[] = {"tether", "--node-id", max, NULL};
    assert_int_equal(load(&cfg, longest, envp, err), 0);
    assert_int_equal(strlen(tt_config_node_id(&cfg)), TT_NODE_ID_MAX);
    tt_config_free(&cfg);
    max[TT_NODE_ID_MAX] = 'n';
    max[TT_NODE_ID_MAX + 1] = '\0';
    expect_refused((char *[]){"tether", "--node-id", max, NULL}, "longer than 64 bytes");
    expect_refused((char *[]){"tether", "--node-id", "a b", NULL}, "may hold only");
    expect_refused((char *[]){"tether", "--node-id=n/1", NULL}, "may hold only");
    expect_refused((char *[]){"tether", "--node-id", "caf\xc3\xa9", NULL}, "may hold only");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_precedence_flag_env_file),
        cmocka_unit_test(test_config_file_named_in_the_given_environment),
        cmocka_unit_test(test_config_refuses_bad_values),
        cmocka_unit_test(test_config_refuses_bad_env),
        cmocka_unit_test(test_config_refuses_unknown_file_keys),
        cmocka_unit_test(test_config_node_id_given_defaulted_or_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
