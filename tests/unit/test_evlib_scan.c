/* server/evlib_scan.c: lws's scan of its plugin directory answered with the
 * libuv plugin alone while lws_create_context() runs (start-up time), every
 * other scandir() libc's. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <lws_config.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "server/evlib_scan.h"

static int no_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static int only_c(const struct dirent *d)
{
    return d->d_name[0] == 'c';
}

static void free_list(struct dirent **l, int n)
{
    for (int i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

/* Any other directory, during the short way or not: libc's listing. */
static void test_other_dirs_listed_by_libc(void **state)
{
    (void)state;
    char dir[] = "/tmp/tt-evlib-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *names[] = {"b", "c1", "a", "c0"};
    char path[64];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    for (int during = 0; during < 2; during++) {
        if (during)
            tt_evlib_scan_begin();
        struct dirent **l = NULL;
        int n = scandir(dir, &l, no_dots, alphasort);
        assert_int_equal(n, 4);
        assert_string_equal(l[0]->d_name, "a");
        assert_string_equal(l[3]->d_name, "c1");
        free_list(l, n);
        n = scandir(dir, &l, only_c, alphasort);
        assert_int_equal(n, 2);
        assert_string_equal(l[0]->d_name, "c0");
        free_list(l, n);
        tt_evlib_scan_end();
    }
    assert_int_equal(scandir("/nonexistent-tt-evlib", &(struct dirent **){NULL}, NULL, NULL), -1);
    assert_int_equal(tt_evlib_scan_short_count(), 0);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* lws's plugin directory: the plugin alone only between begin and end. */
static void test_plugin_dir_short_only_when_asked(void **state)
{
    (void)state;
    unsigned before = tt_evlib_scan_short_count();
    struct dirent **l = NULL;
    int n = scandir(LWS_INSTALL_LIBDIR, &l, no_dots, alphasort);
    assert_true(n > 1); /* the whole directory, the plugin among it */
    int found = 0;
    for (int i = 0; i < n; i++)
        found += strcmp(l[i]->d_name, TT_EVLIB_UV_FILE) == 0;
    assert_int_equal(found, 1);
    free_list(l, n);
    assert_int_equal(tt_evlib_scan_short_count(), before);

    tt_evlib_scan_begin();
    n = scandir(LWS_INSTALL_LIBDIR, &l, no_dots, alphasort);
    assert_int_equal(n, 1);
    assert_string_equal(l[0]->d_name, TT_EVLIB_UV_FILE);
    free_list(l, n);
    n = scandir(LWS_INSTALL_LIBDIR, &l, only_c, alphasort); /* the caller's filter still rules */
    assert_int_equal(n, 0);
    free(l);
    tt_evlib_scan_end();
    assert_int_equal(tt_evlib_scan_short_count(), before + 2);
}

/* lws itself goes through it, and still finds and loads its libuv plugin. */
static void test_lws_context_on_libuv_takes_the_short_way(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    void *foreign[1] = {&loop};
    static const struct lws_protocols protocols[] = {
        {.name = "x", .callback = lws_callback_http_dummy}, {.name = NULL}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = foreign;
    lws_set_log_level(LLL_ERR, NULL);
    unsigned before = tt_evlib_scan_short_count();
    tt_evlib_scan_begin();
    struct lws_context *cx = lws_create_context(&info);
    tt_evlib_scan_end();
    assert_non_null(cx);
    assert_int_equal(tt_evlib_scan_short_count(), before + 1);
    lws_context_destroy(cx);
    uv_run(&loop, UV_RUN_DEFAULT);
    lws_context_destroy(cx);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_dirs_listed_by_libc),
        cmocka_unit_test(test_plugin_dir_short_only_when_asked),
        cmocka_unit_test(test_lws_context_on_libuv_takes_the_short_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
