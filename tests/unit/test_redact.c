/* agents/llm/redact.c: a labelled corpus of true PII and near misses
 * (counts of false positives and negatives printed, both asserted zero),
 * stable placeholders, restore whole and as a stream cut at every byte,
 * the checks (Luhn, mod 97), extra patterns, the caps, bad configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "agents/llm/redact.h"
#include "agents/llm/route.h"

typedef struct labelled {
    const char *text;
    const char *expect; /* the placeholders' labels in order, space-separated */
} labelled;

static const labelled corpus[] = {
    /* true PII */
    {"mail me at jane.doe@example.com please", "EMAIL"},
    {"Contact: J.Smith+news@mail.co.uk.", "EMAIL"},
    {"<bob_99@sub.example.org>", "EMAIL"},
    {"call +44 20 7946 0958 tomorrow", "PHONE"},
    {"my number is +1 (415) 555-2671", "PHONE"},
    {"+49 30 12345678", "PHONE"},
    {"ring +33 1 23 45 67 89, thanks", "PHONE"},
    {"US office: (415) 555-2671", "PHONE"},
    {"cell 415-555-2671 or 415.555.2672", "PHONE PHONE"},
    {"UK mobile 07700 900123", "PHONE"},
    {"Berlin 030 1234 5678", "PHONE"},
    {"Paris 01 23 45 67 89", "PHONE"},
    {"card 4111 1111 1111 1111 exp 12/27", "CARD"},
    {"pay with 5500-0000-0000-0004", "CARD"},
    {"amex 340000000000009", "CARD"},
    {"visa 4532015112830366.", "CARD"},
    {"IBAN DE89 3704 0044 0532 0130 00", "IBAN"},
    {"send to GB82WEST12345698765432 today", "IBAN"},
    {"iban: fr14 2004 1010 0505 0001 3m02 606", "IBAN"},
    {"NL91ABNA0417164300", "IBAN"},
    {"Jane (jane@example.com, +44 7700 900123) paid 4111111111111111", "EMAIL PHONE CARD"},
    {"héllo josé, écris à rené@exemple.fr ou x@exemple.fr", "EMAIL EMAIL"},
    /* near misses */
    {"order number 1234567890 shipped", ""},
    {"Order #100234-5678-99 is late", ""},
    {"meeting on 2024-01-15 at 10:30:45", ""},
    {"born 15.01.1990, moved 01/02/2024", ""},
    {"version 1.2.3.4 and v10.12.131.2", ""},
    {"timestamp 1733443207123 and 1733443207", ""},
    {"ts 2026-12-06T00:20:07.123Z", ""},
    {"card 4111 1111 1111 1112 (bad Luhn)", ""},
    {"id 1234567890123452 starts with 1", ""},
    {"IBAN DE89 3704 0044 0532 0130 01 (bad checksum)", ""},
    {"GB82WEST12345698765433", ""},
    {"@Override public void run() {}", ""},
    {"npm i @scope/pkg@1.2.3 && git@github", ""},
    {"x = a@b.T; y = m@n", ""},
    {"uuid 123e4567-e89b-12d3-a456-426614174000", ""},
    {"sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", ""},
    {"ip 192.168.100.200 port 8080", ""},
    {"ssn-like 123-45-6789 and ISBN 978-3-16-148410-0", ""},
    {"total: 1,234,567.89 EUR; 3.14159265358979", ""},
    {"path /var/log/415-555-2671.log", ""},
    {"ORD-415-555-2671", ""},
    {"build 20241215-093012", ""},
    {"tracking 1Z999AA10123456784", ""},
};

/* The labels of the placeholders in text, in order. */
static void labels_of(const char *text, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = text; (p = strchr(p, '[')) != NULL; p++) {
        const char *u = strchr(p, '_'), *e = strchr(p, ']');
        if (!u || !e || u > e)
            continue;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.*s", len ? " " : "", (int)(u - p - 1), p + 1);
    }
}

static size_t words(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += (p == s || p[-1] == ' ') && *p != ' ';
    return n;
}

static void test_corpus(void **state)
{
    (void)state;
    const tt_redact *r = tt_redact_default();
    assert_non_null(r);
    size_t fp = 0, fn = 0, n_pii = 0, n_clean = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        tt_redact_map *m = tt_redact_map_new();
        tt_buf out, back;
        tt_buf_init(&out, 4096);
        tt_buf_init(&back, 4096);
        const char *t = corpus[i].text;
        int n = tt_redact_text(r, m, t, strlen(t), &out);
        assert_true(n >= 0);
        char got[256];
        labels_of(tt_buf_str(&out), got, sizeof got);
        size_t want = words(corpus[i].expect), have = words(got);
        n_pii += want;
        n_clean += want == 0;
        if (strcmp(got, corpus[i].expect) != 0) {
            printf("MISMATCH: \"%s\" -> \"%s\" (want [%s], got [%s])\n", t, tt_buf_str(&out),
                   corpus[i].expect, got);
            fp += have > want ? have - want : (have == want ? have : 0);
            fn += want > have ? want - have : (have == want ? want : 0);
        }
        /* the restore gives the text back, byte for byte */
        assert_int_equal(tt_redact_restore(m, tt_buf_str(&out), out.len, &back), 0);
        assert_string_equal(tt_buf_str(&back), t);
        tt_buf_free(&out);
        tt_buf_free(&back);
        tt_redact_map_free(m);
    }
    printf("redact corpus: %zu lines, %zu PII values, %zu clean lines: %zu false positives, "
           "%zu false negatives\n",
           sizeof corpus / sizeof corpus[0], n_pii, n_clean, fp, fn);
    assert_int_equal(fp, 0);
    assert_int_equal(fn, 0);
}

/* tt_redact_default_may_match: 1 for every line with PII in the corpus (an '@'
 * or a digit in each), and a text with neither '@' nor a digit is left alone
 * by the detectors, so the log may skip them (and their compilation). */
static void test_may_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        if (corpus[i].expect[0])
            assert_int_equal(tt_redact_default_may_match(corpus[i].text, strlen(corpus[i].text)),
                             1);
    }
    assert_int_equal(tt_redact_default_may_match("OPEN MODE: no API keys", 22), 0);
    assert_int_equal(tt_redact_default_may_match("a@b", 3), 1);
    assert_int_equal(tt_redact_default_may_match("x7", 2), 1);
    assert_int_equal(tt_redact_default_may_match("x7", 1), 0); /* only n bytes are read */
    static const char alphabet[] = "abcXYZ .-+()_:#/%\xc3\xa9 EMAILPHONECARDIBANdefrgbnl";
    const tt_redact *r = tt_redact_default();
    srand(18);
    for (int k = 0; k < 2000; k++) {
        char t[96];
        size_t n = 1 + (size_t)rand() % (sizeof t - 1);
        for (size_t i = 0; i < n; i++)
            t[i] = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
        assert_int_equal(tt_redact_default_may_match(t, n), 0);
        tt_redact_map *m = tt_redact_map_new();
        tt_buf out;
        tt_buf_init(&out, 4096);
        assert_int_equal(tt_redact_text(r, m, t, n, &out), 0);
        tt_buf_free(&out);
        tt_redact_map_free(m);
    }
}

static void test_stable_placeholders(void **state)
{
    (void)state;
    const tt_redact *r = tt_redact_default();
    tt_redact_map *m = tt_redact_map_new();
    tt_buf out;
    tt_buf_init(&out, 4096);
    const char *a = "a@x.org wrote to b@x.org";
    assert_int_equal(tt_redact_text(r, m, a, strlen(a), &out), 2);
    const char *b = "; b@x.org and a@x.org again";
    assert_int_equal(tt_redact_text(r, m, b, strlen(b), &out), 2);
    assert_string_equal(tt_buf_str(&out),
                        "[EMAIL_1] wrote to [EMAIL_2]; [EMAIL_2] and [EMAIL_1] again");
    assert_int_equal(tt_redact_map_count(m), 2);
    tt_buf_free(&out);
    tt_redact_map_free(m);
}

static void test_stream_restore(void **state)
{
    (void)state;
    const tt_redact *r = tt_redact_default();
    tt_redact_map *m = tt_redact_map_new();
    tt_buf red;
    tt_buf_init(&red, 4096);
    const char *t = "a@x.org, +44 20 7946 0958";
    assert_int_equal(tt_redact_text(r, m, t, strlen(t), &red), 2);
    /* a reply with placeholders, a bracket that is not one, and one unknown */
    const char *reply = "Hi [EMAIL_1]! [x] [PHONE_1][PHONE_9] [EMAIL_";
    const char *want = "Hi a@x.org! [x] +44 20 7946 0958[PHONE_9] [EMAIL_";
    size_t n = strlen(reply);
    for (size_t cut1 = 0; cut1 <= n; cut1++) {
        for (size_t cut2 = cut1; cut2 <= n; cut2++) {
            tt_redact_stream st;
            tt_redact_stream_init(&st, m);
            tt_buf out;
            tt_buf_init(&out, 4096);
            assert_int_equal(tt_redact_stream_feed(&st, reply, cut1, &out), 0);
            assert_int_equal(tt_redact_stream_feed(&st, reply + cut1, cut2 - cut1, &out), 0);
            assert_int_equal(tt_redact_stream_feed(&st, reply + cut2, n - cut2, &out), 0);
            assert_int_equal(tt_redact_stream_end(&st, &out), 0);
            assert_string_equal(tt_buf_str(&out), want);
            tt_buf_free(&out);
        }
    }
    /* a long run of placeholder characters is not held forever */
    tt_redact_stream st;
    tt_redact_stream_init(&st, m);
    tt_buf out;
    tt_buf_init(&out, 4096);
    assert_int_equal(tt_redact_stream_feed(&st, "[AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 31, &out), 0);
    assert_int_equal(out.len, 31);
    tt_buf_free(&out);
    tt_buf_free(&red);
    tt_redact_map_free(m);
}

static void test_checks(void **state)
{
    (void)state;
    assert_true(tt_redact_luhn_ok("4111111111111111", 16));
    assert_false(tt_redact_luhn_ok("4111111111111112", 16));
    assert_false(tt_redact_luhn_ok("41111x1111111111", 16));
    assert_true(tt_redact_iban_ok("GB82WEST12345698765432", 22));
    assert_true(tt_redact_iban_ok("gb82west12345698765432", 22));
    assert_false(tt_redact_iban_ok("GB82WEST12345698765433", 22));
    assert_false(tt_redact_iban_ok("1282WEST12345698765432", 22));
    assert_false(tt_redact_iban_ok("GB82", 4));
}

static void test_extra_patterns(void **state)
{
    (void)state;
    const char *pats[] = {"\\bEMP-\\d{6}\\b", "(?i)\\bproject\\s+falcon\\b"};
    const char *labels[] = {"EMPLOYEE", "CODENAME"};
    char err[256];
    tt_redact *r = tt_redact_new(pats, labels, 2, err, sizeof err);
    assert_non_null(r);
    tt_redact_map *m = tt_redact_map_new();
    tt_buf out;
    tt_buf_init(&out, 4096);
    const char *t = "EMP-123456 on Project Falcon, mail e@x.io; EMP-1234 is not one";
    assert_int_equal(tt_redact_text(r, m, t, strlen(t), &out), 3);
    assert_string_equal(tt_buf_str(&out),
                        "[EMPLOYEE_1] on [CODENAME_1], mail [EMAIL_1]; EMP-1234 is not one");
    tt_buf_free(&out);
    tt_redact_map_free(m);
    tt_redact_free(r);
    const char *bad[] = {"(unclosed"};
    const char *ok_label[] = {"X"};
    assert_null(tt_redact_new(bad, ok_label, 1, err, sizeof err));
    assert_non_null(strstr(err, "X"));
    const char *good[] = {"x"};
    const char *bad_labels[] = {"lower"};
    assert_null(tt_redact_new(good, bad_labels, 1, err, sizeof err));
    const char *builtin[] = {"EMAIL"};
    assert_null(tt_redact_new(good, builtin, 1, err, sizeof err));
}

static void test_caps(void **state)
{
    (void)state;
    const tt_redact *r = tt_redact_default();
    tt_redact_map *m = tt_redact_map_new();
    tt_buf out;
    tt_buf_init(&out, 2 * TT_REDACT_INPUT_MAX);
    /* over the input cap: refused, nothing written */
    char *big = malloc(TT_REDACT_INPUT_MAX + 1);
    memset(big, 'a', TT_REDACT_INPUT_MAX + 1);
    assert_int_equal(tt_redact_text(r, m, big, TT_REDACT_INPUT_MAX + 1, &out), -1);
    assert_int_equal(out.len, 0);
    free(big);
    /* more distinct values than the map holds: refused whole, map unchanged */
    char line[64];
    for (int i = 0; i < TT_REDACT_MAP_MAX; i++) {
        int k = snprintf(line, sizeof line, "u%d@x.org ", i);
        assert_int_equal(tt_redact_text(r, m, line, (size_t)k, &out), 1);
    }
    size_t len = out.len;
    const char *two = "known u0@x.org and new z@x.org";
    assert_int_equal(tt_redact_text(r, m, two, strlen(two), &out), -1);
    assert_int_equal(out.len, len);
    assert_int_equal(tt_redact_map_count(m), TT_REDACT_MAP_MAX);
    /* an out buffer too small: refused, the map as it was */
    tt_redact_map *m2 = tt_redact_map_new();
    tt_buf small;
    tt_buf_init(&small, 8);
    assert_int_equal(tt_redact_text(r, m2, "a@x.org", 7, &small), -1);
    assert_int_equal(tt_redact_map_count(m2), 0);
    assert_int_equal(small.len, 0);
    tt_buf_free(&small);
    tt_redact_map_free(m2);
    tt_buf_free(&out);
    tt_redact_map_free(m);
}

/* Tool call arguments: strings inside JSON redacted (keys and numbers
 * kept), and restored into JSON text with the values escaped. */
static void test_json(void **state)
{
    (void)state;
    const char *pats[] = {"Q\"[a-z]+\\\\"};
    const char *labels[] = {"QUOTED"};
    char err[256];
    tt_redact *r = tt_redact_new(pats, labels, 1, err, sizeof err);
    assert_non_null(r);
    tt_redact_map *m = tt_redact_map_new();
    json_t *v =
        json_loads("{\"to\": [\"a@x.org\", {\"n\": 4111111111111111, \"s\": \"Q\\\"ab\\\\\"}],"
                   " \"a@x.org\": 1}",
                   0, NULL);
    assert_non_null(v);
    assert_int_equal(tt_redact_json(r, m, v, 0), 2);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        text,
        "{\"a@x.org\":1,\"to\":[\"[EMAIL_1]\",{\"n\":4111111111111111,\"s\":\"[QUOTED_1]\"}]}");
    free(text);
    json_decref(v);
    /* the reply's arguments, cut inside a placeholder */
    const char *args = "{\"to\":\"[EMAIL_1]\",\"s\":\"[QUOTED_1]\"}";
    tt_redact_stream st;
    tt_redact_stream_init_json(&st, m);
    tt_buf out;
    tt_buf_init(&out, 4096);
    assert_int_equal(tt_redact_stream_feed(&st, args, 20, &out), 0);
    assert_int_equal(tt_redact_stream_feed(&st, args + 20, strlen(args) - 20, &out), 0);
    assert_int_equal(tt_redact_stream_end(&st, &out), 0);
    assert_string_equal(tt_buf_str(&out), "{\"to\":\"a@x.org\",\"s\":\"Q\\\"ab\\\\\"}");
    json_t *back = json_loads(tt_buf_str(&out), 0, NULL);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "s")), "Q\"ab\\");
    json_decref(back);
    tt_buf_free(&out);
    tt_redact_map_free(m);
    tt_redact_free(r);
}

/* Adversarial input at the cap: runs of digits after `+`, near-IBANs,
 * near-emails, digit groups; redacted in bounded time (printed). */
static void test_worst_case(void **state)
{
    (void)state;
    static const char *const unit[] = {"+1234567890123456789012345 ", "AB12 CDEF GHIJ KLMN OPQ ",
                                       "a.b.c.d.e.f.g.h@i ", "0123 4567 8901 2345 6789 ",
                                       "4111111111111112 "};
    char *big = malloc(TT_REDACT_INPUT_MAX);
    assert_non_null(big);
    size_t n = 0;
    for (size_t k = 0;; k++) {
        size_t l = strlen(unit[k % 5]);
        if (n + l > TT_REDACT_INPUT_MAX)
            break;
        memcpy(big + n, unit[k % 5], l);
        n += l;
    }
    tt_redact_map *m = tt_redact_map_new();
    tt_buf out;
    tt_buf_init(&out, 2 * TT_REDACT_INPUT_MAX);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_true(tt_redact_text(tt_redact_default(), m, big, n, &out) >= 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("redact: %zu adversarial bytes in %.1f ms\n", n, ms);
    assert_true(ms < 10000); /* minutes if it backtracked exponentially; ~100 ms here */
    tt_buf_free(&out);
    tt_redact_map_free(m);
    free(big);
}

/* The routes file's "redact": which routes, extra patterns, refusals. */
static int parse_routes(const char *redact, tt_routes *out, char *err, size_t n)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"routes\": {\"a\": [{\"provider\": \"openai\", \"model\": \"m\", "
             "\"base_url\": \"http://127.0.0.1:9\"}], \"b\": [{\"provider\": \"openai\", "
             "\"model\": \"m\", \"base_url\": \"http://127.0.0.1:9\"}]}, \"redact\": %s}",
             redact);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    char *envp[] = {NULL};
    int rc = tt_routes_parse(j, "", envp, out, err, n);
    json_decref(j);
    return rc;
}

static void test_routes_option(void **state)
{
    (void)state;
    tt_routes r = {0};
    char err[256];
    assert_int_equal(
        parse_routes("{\"routes\": {\"a\": true}, \"patterns\": {\"EMP\": \"E-\\\\d+\"}}", &r, err,
                     sizeof err),
        0);
    assert_non_null(r.redactor);
    assert_ptr_equal(tt_routes_find(&r, "a")->redact, r.redactor);
    assert_null(tt_routes_find(&r, "b")->redact);
    tt_routes_free(&r);
    const char *bad[] = {
        "{\"routes\": {\"c\": true}}",           /* not a route */
        "{\"routes\": {\"a\": 1}}",              /* not a boolean */
        "{\"routes\": {\"a\": true}, \"x\": 1}", /* unknown key */
        "{\"patterns\": {\"EMAIL\": \"x\"}}",    /* a built-in label */
        "{\"patterns\": {\"X\": \"(\"}}",        /* bad PCRE2 */
        "true",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_routes b = {0};
        err[0] = '\0';
        assert_int_not_equal(parse_routes(bad[i], &b, err, sizeof err), 0);
        assert_non_null(strstr(err, "redact"));
        tt_routes_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_may_match),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_stable_placeholders),
        cmocka_unit_test(test_stream_restore),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_extra_patterns),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_routes_option),
        cmocka_unit_test(test_worst_case),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
