/* agents/llm/curl_lazy.c, state/pq_lazy.c, agents/photos/exif_lazy.c,
 * agents/llm/pcre2_lazy.c: libcurl, libpq, libexif and PCRE2 are not mapped
 * until first needed (the binary does not list them: start-up time), a first
 * use loads them, several threads asking at once all wait for the one load
 * and all get a working library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <libexif/exif-data.h>
#include <libpq-fe.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "agents/llm/curl_lazy.h"
#include "agents/llm/pcre2_lazy.h"
#include "agents/photos/exif_lazy.h"
#include "state/pq_lazy.h"

/* 1 when a file whose name holds needle is mapped into this process. */
static int mapped(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void test_not_loaded_at_start(void **state)
{
    (void)state;
    assert_int_equal(tt_curl_loaded(), 0);
    assert_int_equal(tt_pq_loaded(), 0);
    assert_int_equal(mapped("libcurl"), 0);
    assert_int_equal(mapped("libpq"), 0);
    assert_int_equal(tt_exif_loaded(), 0);
    assert_int_equal(mapped("libexif"), 0);
    assert_string_equal(tt_curl_error(), "not loaded yet");
    exif_data_unref(NULL);
    assert_null(exif_content_get_entry(NULL, EXIF_TAG_MAKE));
    assert_int_equal(tt_exif_loaded(), 0);
    /* what needs a handle that cannot exist yet fails without loading */
    assert_int_equal(curl_easy_setopt(NULL, CURLOPT_VERBOSE, 0L), CURLE_FAILED_INIT);
    assert_int_equal(PQstatus(NULL), CONNECTION_BAD);
    PQclear(NULL);
    curl_free(NULL);
    assert_int_equal(tt_curl_loaded(), 0);
    assert_int_equal(tt_pq_loaded(), 0);
    /* PCRE2: the same (libpcre2-8 linked again would be mapped here) */
    assert_int_equal(tt_pcre2_loaded(), 0);
    assert_int_equal(mapped("libpcre2"), 0);
    assert_string_equal(tt_pcre2_error(), "not loaded yet");
    pcre2_code_free(NULL);
    pcre2_match_data_free(NULL);
    pcre2_match_context_free(NULL);
    assert_null(pcre2_match_data_create_from_pattern(NULL, NULL));
    assert_int_equal(tt_pcre2_loaded(), 0);
}

static void *load_curl(void *arg)
{
    int *rc = arg;
    *rc = tt_curl_load();
    if (*rc == 0) { /* usable at once in this thread */
        CURL *e = curl_easy_init();
        *rc = e && curl_easy_setopt(e, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK ? 0 : -1;
        curl_easy_cleanup(e);
    }
    return NULL;
}

static void test_curl_loads_once_for_all(void **state)
{
    (void)state;
    enum { N = 4 };
    pthread_t t[N];
    int rc[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, load_curl, &rc[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(rc[i], 0);
    }
    assert_int_equal(tt_curl_loaded(), 1);
    assert_string_equal(tt_curl_error(), "");
    assert_int_equal(mapped("libcurl"), 1);
    /* the forwarded functions behave as libcurl's: variadic ones included */
    CURLU *u = curl_url();
    assert_non_null(u);
    assert_int_equal(curl_url_set(u, CURLUPART_URL, "https://example.com:8443/a%20b", 0),
                     CURLUE_OK);
    char *host = NULL, *port = NULL;
    assert_int_equal(curl_url_get(u, CURLUPART_HOST, &host, 0), CURLUE_OK);
    assert_int_equal(curl_url_get(u, CURLUPART_PORT, &port, 0), CURLUE_OK);
    assert_string_equal(host, "example.com");
    assert_string_equal(port, "8443");
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    assert_int_equal((long)curl_getdate("Sun, 06 Nov 1994 08:49:37 GMT", NULL), 784111777L);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    assert_int_equal(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)12), CURLE_OK);
    assert_int_equal(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1000L), CURLE_OK);
    long code = -1;
    assert_int_equal(curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
    assert_int_equal(code, 0);
    curl_easy_cleanup(e);
    CURLM *m = curl_multi_init();
    assert_non_null(m);
    assert_int_equal(curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 4L), CURLM_OK);
    assert_int_equal(curl_multi_cleanup(m), CURLM_OK);
    assert_int_equal(tt_pq_loaded(), 0); /* one library does not load the other */
}

static void test_pq_loads_on_first_use(void **state)
{
    (void)state;
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse("host=127.0.0.1 dbname=x", &err);
    assert_non_null(o);
    assert_null(err);
    assert_int_equal(tt_pq_loaded(), 1);
    assert_int_equal(mapped("libpq"), 1);
    int found = 0;
    for (PQconninfoOption *p = o; p->keyword; p++)
        found += p->val && strcmp(p->keyword, "dbname") == 0 && strcmp(p->val, "x") == 0;
    assert_int_equal(found, 1);
    PQconninfoFree(o);
    o = PQconninfoParse("nonsense", &err);
    assert_null(o);
    assert_non_null(err); /* libpq's own message, freed with libpq's PQfreemem */
    PQfreemem(err);
}

static void test_exif_loads_on_first_use(void **state)
{
    (void)state;
    ExifData *d = exif_data_new();
    assert_non_null(d);
    assert_int_equal(tt_exif_loaded(), 1);
    assert_int_equal(mapped("libexif"), 1);
    static const unsigned char be[] = {0x12, 0x34, 0x56, 0x78};
    assert_int_equal(exif_get_short(be, EXIF_BYTE_ORDER_MOTOROLA), 0x1234);
    assert_int_equal(exif_get_long(be, EXIF_BYTE_ORDER_INTEL), 0x78563412);
    exif_data_unset_option(d, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(d, be, sizeof be); /* not EXIF: nothing read, nothing breaks */
    assert_null(exif_content_get_entry(d->ifd[EXIF_IFD_0], EXIF_TAG_MAKE));
    (void)exif_data_get_byte_order(d);
    exif_data_unref(d);
}

static void *compile_pcre2(void *arg)
{
    int *rc = arg;
    int code = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "a(b+)c", PCRE2_ZERO_TERMINATED, 0, &code, &off,
                                   NULL); /* the first call loads it */
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    *rc = md && pcre2_match(re, (PCRE2_SPTR) "xabbbc", 6, 0, 0, md, NULL) == 2 &&
                  pcre2_get_ovector_pointer(md)[2] == 2 && pcre2_get_ovector_pointer(md)[3] == 5
              ? 0
              : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return NULL;
}

static void test_pcre2_loads_once_for_all(void **state)
{
    (void)state;
    enum { N = 4 };
    pthread_t t[N];
    int rc[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, compile_pcre2, &rc[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(rc[i], 0);
    }
    assert_int_equal(tt_pcre2_loaded(), 1);
    assert_string_equal(tt_pcre2_error(), "");
    assert_int_equal(mapped("libpcre2-8"), 1);
    /* every forwarded function behaves as PCRE2's */
    int code = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR) "(\\d+)-(\\d+)", PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    assert_non_null(re);
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* 0, or no JIT on this machine */
    uint32_t groups = 0;
    assert_int_equal(pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups), 0);
    assert_int_equal(groups, 2);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    assert_non_null(md);
    assert_non_null(mc);
    assert_int_equal(pcre2_set_match_limit(mc, 1000), 0);
    assert_int_equal(pcre2_match(re, (PCRE2_SPTR) "tel 12-345", 10, 0, 0, md, mc), 3);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    assert_int_equal(ov[4], 7);
    assert_int_equal(ov[5], 10);
    assert_int_equal(pcre2_match(re, (PCRE2_SPTR) "none", 4, 0, 0, md, mc), PCRE2_ERROR_NOMATCH);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    /* a bad pattern: PCRE2's own error code and message */
    assert_null(pcre2_compile((PCRE2_SPTR) "a(b", PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL));
    PCRE2_UCHAR msg[128];
    assert_true(pcre2_get_error_message(code, msg, sizeof msg) > 0);
    assert_non_null(strstr((const char *)msg, "missing closing parenthesis"));
    assert_int_equal(pcre2_get_error_message(code, msg, 4), PCRE2_ERROR_NOMEMORY);
}

/* The tether binary itself: what the dynamic loader maps for it before main
 * (LD_TRACE_LOADED_OBJECTS: ldd's way, nothing of tether runs) includes
 * none of the lazily loaded libraries, whatever the linker was told (a new
 * PCRE2 or libcurl function called without its forwarder here would make
 * the library needed again, and every start-up would pay for it). */
static void test_binary_needs_none_of_them(void **state)
{
    (void)state;
    FILE *p = popen("LD_TRACE_LOADED_OBJECTS=1 '" TT_TETHER_BIN "'", "r");
    assert_non_null(p);
    char line[512];
    int lws = 0, lazy = 0;
    while (fgets(line, sizeof line, p)) {
        lws += strstr(line, "libwebsockets") != NULL;
        static const char *const never[] = {"libpcre2", "libcurl", "libpq", "libexif"};
        for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
            if (strstr(line, never[i])) {
                fprintf(stderr, "tether needs %s", line);
                lazy++;
            }
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(lws, 1); /* the list was read: lws is linked as usual */
    assert_int_equal(lazy, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_loaded_at_start),
        cmocka_unit_test(test_curl_loads_once_for_all),
        cmocka_unit_test(test_pq_loads_on_first_use),
        cmocka_unit_test(test_exif_loads_on_first_use),
        cmocka_unit_test(test_pcre2_loads_once_for_all),
        cmocka_unit_test(test_binary_needs_none_of_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
