/* agents/llm/fastjson.c: the text delta read without jansson must agree with
 * jansson on every input it accepts. Differential, fuzz-style: a corpus of
 * chunks (escapes, \u forms, surrogate pairs, multi-byte text, tool calls,
 * usage, errors, odd numbers and nesting) is checked whole, cut at every byte,
 * and with every byte replaced by each of a set of troublesome bytes; each
 * time the scan says "handled" the text must be byte for byte what jansson
 * gives (the same rule openai.c and anthropic.c apply to jansson's tree), and
 * jansson must have loaded the chunk. The common shapes must be handled (the
 * fast path is taken), the unusual ones must not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "agents/llm/fastjson.h"

#define HEAD "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
#define CHOICE(d)                                                                                  \
    "\"choices\":[{\"index\":0,\"delta\":" d ",\"logprobs\":null,\"finish_reason\":null}]}"

/* What openai.c makes of jansson's tree: the text of index-0 choices'
 * content, and whether the chunk holds anything else (then the scan must not
 * have handled it). Returns 0 when jansson refuses the chunk. */
static int oa_reference(const char *d, size_t n, char **text, size_t *len, int *other)
{
    json_t *root = json_loadb(d, n, 0, NULL);
    *text = NULL;
    *len = 0;
    *other = 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }
    if (json_object_get(root, "error") || json_is_object(json_object_get(root, "usage")))
        *other = 1;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "choices"), i, c)
    {
        json_t *idx = json_object_get(c, "index");
        if (json_is_integer(idx) && json_integer_value(idx) != 0)
            continue;
        json_t *delta = json_object_get(c, "delta");
        if (json_object_get(delta, "tool_calls") ||
            json_string_value(json_object_get(c, "finish_reason")))
            *other = 1;
        json_t *t = json_object_get(delta, "content");
        if (json_is_string(t) && json_string_length(t) > 0) {
            *text = realloc(*text, *len + json_string_length(t));
            memcpy(*text + *len, json_string_value(t), json_string_length(t));
            *len += json_string_length(t);
        }
    }
    json_decref(root);
    return 1;
}

/* The same for an Anthropic text block's delta (index must be block 0). */
static int an_reference(const char *d, size_t n, char **text, size_t *len, int *other)
{
    json_t *root = json_loadb(d, n, 0, NULL);
    *text = NULL;
    *len = 0;
    *other = 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }
    json_t *delta = json_object_get(root, "delta");
    json_t *t = json_object_get(delta, "text");
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *dtype = json_string_value(json_object_get(delta, "type"));
    if (!type || strcmp(type, "content_block_delta") != 0 || !dtype ||
        strcmp(dtype, "text_delta") != 0 || !json_is_string(t) ||
        !json_is_integer(json_object_get(root, "index")))
        *other = 1;
    if (json_is_string(t)) {
        *len = json_string_length(t);
        *text = malloc(*len + 1);
        memcpy(*text, json_string_value(t), *len);
    }
    json_decref(root);
    return 1;
}

static long handled_count;

/* One input: if the scan handles it, jansson agrees on the text. */
static void check_one(const char *d, size_t n, int anthropic)
{
    tt_fastjson_delta out;
    long long index = -1;
    int ok = anthropic ? tt_fastjson_anthropic_text(d, n, &index, &out)
                       : tt_fastjson_openai_delta(d, n, &out);
    if (!ok)
        return;
    handled_count++;
    char *ref;
    size_t ref_len;
    int other;
    int loaded = anthropic ? an_reference(d, n, &ref, &ref_len, &other)
                           : oa_reference(d, n, &ref, &ref_len, &other);
    if (!loaded || other) {
        fprintf(stderr, "handled but jansson %s: %.*s\n", loaded ? "sees more" : "refuses", (int)n,
                d);
        fail();
    }
    size_t got_len = out.has_text ? out.text.decoded_len : 0;
    char *got = malloc(got_len + 1);
    if (out.has_text)
        tt_fastjson_decode(&out.text, got);
    if (got_len != ref_len || memcmp(got, ref ? ref : "", got_len) != 0) {
        fprintf(stderr, "text differs on: %.*s\n", (int)n, d);
        fail();
    }
    free(got);
    free(ref);
}

static const char *const oa_corpus[] = {
    HEAD CHOICE("{\"content\":\"Hello\"}"),
    HEAD CHOICE("{\"role\":\"assistant\",\"content\":\"\"}"),
    HEAD CHOICE("{\"content\":null}"),
    HEAD CHOICE("{\"content\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xc2\xa0\"}"),
    HEAD CHOICE("{\"content\":\"a\\nb\\\"c\\\\d\\/e\\tf\\bg\\fh\\ri\"}"),
    HEAD CHOICE("{\"content\":\"\\u00e9\\u65e5\\uD83D\\uDE00\\u0041\\u007f\\u0800\"}"),
    HEAD CHOICE("{\"content\":\"lone \\ud800 high\"}"),
    HEAD CHOICE("{\"content\":\"lone \\udc00 low\"}"),
    HEAD CHOICE("{\"content\":\"nul \\u0000 here\"}"),
    HEAD CHOICE("{\"content\":\"bad \\x escape\"}"),
    HEAD CHOICE("{\"content\":\"x\",\"content\":\"y\"}"),
    HEAD CHOICE("{\"cont\\u0065nt\":\"escaped key\"}"),
    HEAD CHOICE(
        "{\"content\":\"t\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\"}}]}"),
    HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}",
    HEAD "\"choices\":[],\"usage\":null}",
    HEAD "\"choices\":[{\"index\":1,\"delta\":{\"content\":\"second\"}}]}",
    HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}},{\"index\":1,\"delta\":{}}]}",
    HEAD "\"choices\":[{\"delta\":{\"content\":\"no index\"}}]}",
    HEAD "\"choices\":[{\"index\":\"0\",\"delta\":{\"content\":\"string index\"}}]}",
    "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}",
    "{\"error\":null,\"choices\":[]}",
    ("{\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}],\"choices\":["
     "]"
     "}"),
    "{\"created\":99999999999999999999999,\"choices\":[]}",
    "{\"x\":-0.5e-3,\"y\":[1,2.25,-3,true,false,null,{}],\"z\":1E+5,\"choices\":[]}",
    "{\"x\":01,\"choices\":[]}",
    "{\"x\":1.,\"choices\":[]}",
    "{\"x\":nullx,\"choices\":[]}",
    "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]} ",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}x",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"choices\":[]}",
    " \t\r\n{ \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"ws\" } } ] } \n",
    "[]",
    "\"str\"",
    "{}",
};

static const char *const an_corpus[] = {
    ("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
     "\"Hi\"}}"),
    ("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
     "\"caf\xc3\xa9\\n\\u00e9\\ud83d\\ude00\"}}"),
    ("{\"delta\":{\"text\":\"\",\"type\":\"text_delta\"},\"index\":0,\"type\":\"content_block_"
     "delta\"}"),
    ("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
     "\"partial_json\":\"{\"}}"),
    ("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
     "null}}"),
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\"}}",
    "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"no index\"}}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{}}",
    "{\"type\":\"content_block_delta\",\"type\":\"content_block_delta\",\"index\":0,\"delta\":{}}",
};

/* Bytes that break JSON, UTF-8 or escapes in every way. */
static const unsigned char mutants[] = {'"',  '\\', 'u',  '0',  'D',  ',',  '}',  ']',  ' ',
                                        'n',  '1',  '-',  '.',  'e',  0x00, 0x1f, 0x7f, 0x80,
                                        0xbf, 0xc0, 0xc3, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff};

static void fuzz_one(const char *doc, int anthropic)
{
    size_t n = strlen(doc);
    char *copy = malloc(n + 1);
    check_one(doc, n, anthropic);
    for (size_t cut = 0; cut < n; cut++) { /* every prefix, and every suffix */
        check_one(doc, cut, anthropic);
        check_one(doc + cut, n - cut, anthropic);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < sizeof mutants; m++) {
            memcpy(copy, doc, n);
            copy[i] = (char)mutants[m];
            check_one(copy, n, anthropic);
        }
    }
    free(copy);
}

static void test_fastjson_agrees_with_jansson_however_cut_or_mutated(void **state)
{
    handled_count = 0;
    for (size_t i = 0; i < sizeof oa_corpus / sizeof oa_corpus[0]; i++)
        fuzz_one(oa_corpus[i], 0);
    for (size_t i = 0; i < sizeof an_corpus / sizeof an_corpus[0]; i++)
        fuzz_one(an_corpus[i], 1);
    assert_true(handled_count > 1000); /* the fast path was exercised, not skipped */
}

/* Pairs of (input, expected decoded text) that must take the fast path. */
static void expect_oa(const char *doc, const char *text)
{
    tt_fastjson_delta out;
    assert_int_equal(tt_fastjson_openai_delta(doc, strlen(doc), &out), 1);
    if (!text) {
        assert_false(out.has_text && out.text.decoded_len > 0);
        return;
    }
    assert_true(out.has_text);
    char got[256];
    assert_true(out.text.decoded_len < sizeof got);
    tt_fastjson_decode(&out.text, got);
    assert_int_equal(out.text.decoded_len, strlen(text));
    assert_memory_equal(got, text, strlen(text));
}

static void test_fastjson_common_chunks_take_the_fast_path(void **state)
{
    expect_oa(HEAD CHOICE("{\"content\":\"Hello\"}"), "Hello");
    expect_oa(HEAD CHOICE("{\"role\":\"assistant\",\"content\":\"\"}"), NULL);
    expect_oa(HEAD CHOICE("{\"content\":null}"), NULL);
    expect_oa(HEAD CHOICE("{\"content\":\"a\\nb\\\"c\\\\d\\/e\\tf\"}"), "a\nb\"c\\d/e\tf");
    expect_oa(HEAD CHOICE("{\"content\":\"\\u00e9\\u65E5\\uD83D\\uDE00\"}"),
              "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    expect_oa(HEAD CHOICE("{\"content\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}"),
              "caf\xc3\xa9 \xf0\x9f\x98\x80");
    expect_oa("{\"choices\":[]}", NULL);
    expect_oa(HEAD "\"choices\":[{\"index\":2,\"delta\":{\"content\":\"x\"}}]}", NULL);
    long long index = -1;
    tt_fastjson_delta out;
    const char *an = "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":"
                     "\"text_delta\",\"text\":\"\\u00e9!\"}}";
    assert_int_equal(tt_fastjson_anthropic_text(an, strlen(an), &index, &out), 1);
    assert_int_equal(index, 3);
    char got[8];
    tt_fastjson_decode(&out.text, got);
    assert_int_equal(out.text.decoded_len, 3);
    assert_memory_equal(got, "\xc3\xa9!", 3);
}

static void expect_slow(const char *doc)
{
    tt_fastjson_delta out;
    if (tt_fastjson_openai_delta(doc, strlen(doc), &out)) {
        fprintf(stderr, "took the fast path: %s\n", doc);
        fail();
    }
}

static void test_fastjson_unusual_chunks_go_to_jansson(void **state)
{
    expect_slow(HEAD CHOICE("{\"content\":\"t\",\"tool_calls\":[]}"));
    expect_slow(HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}");
    expect_slow(HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":1}}");
    expect_slow("{\"error\":{\"message\":\"x\"}}");
    expect_slow("{\"error\":null}");
    expect_slow(HEAD CHOICE("{\"content\":\"x\",\"content\":\"y\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\\u0000\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\\ud800\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\\ud800\\u0041\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\\udc00\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\\ud83d\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\\ud83d\\\"uDE00\"}"));
    expect_slow(HEAD CHOICE("{\"content\":\"\xc0\xaf\"}"));         /* overlong */
    expect_slow(HEAD CHOICE("{\"content\":\"\xed\xa0\x80\"}"));     /* a surrogate */
    expect_slow(HEAD CHOICE("{\"content\":\"\xf4\x90\x80\x80\"}")); /* past U+10FFFF */
    expect_slow(HEAD CHOICE("{\"content\":\"tab\there\"}"));
    expect_slow(HEAD CHOICE("{\"cont\\u0065nt\":\"x\"}"));
    expect_slow("{\"created\":1234567890123456789,\"choices\":[]}");
    expect_slow("{\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{}}]}");
    expect_slow("{\"choices\":[{\"index\":0.0,\"delta\":{\"content\":\"a\"}}]}");
    expect_slow("{\"choices\":[]} x");
    expect_slow("{\"choices\":[]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fastjson_agrees_with_jansson_however_cut_or_mutated),
        cmocka_unit_test(test_fastjson_common_chunks_take_the_fast_path),
        cmocka_unit_test(test_fastjson_unusual_chunks_go_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
