/* server/gateway_parse.c tt_gateway_plain_answer: the plain answer written
 * directly gives, byte for byte, what the gateway built with jansson before
 * (the json_pack of on_done, dumped JSON_COMPACT), for contents that need
 * every kind of escape, non-ASCII text, no content (null), reported and
 * unreported token counts, costs jansson writes its own way, a cost it
 * refuses (not finite: the key is absent) and a cached answer; a string
 * that is not UTF-8 is refused and leaves the buffer as it was. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "server/gateway_parse.h"

typedef struct answer {
    const char *content; /* NULL: null */
    const char *finish;
    int64_t prompt, completion;
    double cost;
    int cached;
} answer;

/* What on_done built before: the same json_pack, the same dump. */
static char *with_jansson(const char *id, const char *model, int64_t created, const answer *a)
{
    json_t *usage = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)a->prompt,
                              "completion_tokens", (json_int_t)a->completion, "total_tokens",
                              (json_int_t)(a->prompt + a->completion));
    json_object_set_new(usage, "cost_usd", json_real(a->cost));
    if (a->cached)
        json_object_set_new(usage, "cached", json_true());
    json_t *message = json_pack("{s:s, s:s?}", "role", "assistant", "content", a->content);
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s}], s:o}", "id", id, "object",
                  "chat.completion", "created", (json_int_t)created, "model", model, "choices",
                  "index", 0, "message", message, "finish_reason", a->finish, "usage", usage);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static void test_gateway_plain_answer_is_janssons_bytes(void **state)
{
    (void)state;
    const answer cases[] = {
        {"Hello", "stop", 11, 2, 0.000123, 0},
        {"", "stop", 0, 0, 0.0, 0},
        {NULL, "length", 5, 0, 1.0, 0},
        {"quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f", "stop", 1, 2, 3.5, 0},
        {"\x01\x02\x1f control \x7f del", "stop", 7, 8, 1e-9, 1},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 (UTF-8)", "stop", -1, -1, 0.1 + 0.2, 0},
        {"big", "content_filter", INT64_C(9007199254740993), 3, 123456789.125, 1},
        {"nan cost", "stop", 1, 1, NAN, 0},
        {"inf cost", "stop", 1, 1, INFINITY, 1},
        {"negative zero", "stop", 1, 1, -0.0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const answer *a = &cases[i];
        char *want = with_jansson("chatcmpl_abc", "gpt-4o-mini", 1765000000, a);
        assert_non_null(want);
        tt_buf b;
        tt_buf_init_headroom(&b, 4096, 16);
        assert_int_equal(tt_gateway_plain_answer(&b, "chatcmpl_abc", "gpt-4o-mini", 1765000000,
                                                 a->content, a->finish, a->prompt, a->completion,
                                                 a->cost, a->cached),
                         0);
        assert_string_equal(tt_buf_str(&b), want);
        assert_int_equal(b.len, strlen(want));
        free(want);
        tt_buf_free(&b);
    }
}

static void test_gateway_plain_answer_refuses_invalid_utf8_unchanged(void **state)
{
    (void)state;
    tt_buf b;
    tt_buf_init(&b, 4096);
    assert_int_equal(tt_buf_append(&b, "kept", 4), 0);
    assert_int_equal(tt_gateway_plain_answer(&b, "id", "m", 1, "bad \xc3(", "stop", 1, 1, 0, 0),
                     TT_EINVAL);
    assert_string_equal(tt_buf_str(&b), "kept");
    /* jansson refuses it too: the gateway's fallback gives what it gave before */
    answer a = {"bad \xc3(", "stop", 1, 1, 0, 0};
    assert_null(with_jansson("id", "m", 1, &a));
    /* past the buffer's cap: its error, the buffer as it was */
    tt_buf small;
    tt_buf_init(&small, 32);
    assert_int_equal(tt_gateway_plain_answer(&small, "id", "m", 1, "x", "stop", 1, 1, 0, 0),
                     TT_ETOOLARGE);
    assert_int_equal(small.len, 0);
    tt_buf_free(&small);
    tt_buf_free(&b);
}

/* What on_event built before for a streamed text delta. */
static char *chunk_with_jansson(const char *text, size_t len, int with_role)
{
    json_t *delta = json_pack("{s:s%}", "content", text, len);
    if (with_role)
        json_object_set_new(delta, "role", json_string("assistant"));
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s?}]}", "id", "chatcmpl_x",
                              "object", "chat.completion.chunk", "created", (json_int_t)17, "model",
                              "m-a", "choices", "index", 0, "delta", delta, "finish_reason", NULL);
    char *out = chunk ? json_dumps(chunk, JSON_COMPACT) : NULL;
    json_decref(chunk);
    return out;
}

static void test_gateway_text_chunk_is_janssons_bytes(void **state)
{
    (void)state;
    static const char nul_inside[] = "a\0b";
    const struct {
        const char *text;
        size_t len;
    } cases[] = {
        {"Hello", 5},
        {"", 0},
        {" world \" \\ / \t\n\r\b\f \x01\x1f\x7f", 22},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", 10},
        {nul_inside, 3}, /* a NUL inside: \u0000 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int role = 0; role < 2; role++) {
            char *want = chunk_with_jansson(cases[i].text, cases[i].len, role);
            assert_non_null(want);
            tt_buf b;
            tt_buf_init(&b, 4096);
            assert_int_equal(tt_gateway_text_chunk(&b, "chatcmpl_x", "m-a", 17, cases[i].text,
                                                   cases[i].len, role),
                             0);
            assert_string_equal(tt_buf_str(&b), want);
            assert_int_equal(b.len, strlen(want));
            free(want);
            tt_buf_free(&b);
        }
    tt_buf b;
    tt_buf_init(&b, 4096);
    assert_null(chunk_with_jansson("bad \xc3(", 6, 1));
    assert_int_equal(tt_gateway_text_chunk(&b, "chatcmpl_x", "m-a", 17, "bad \xc3(", 6, 1),
                     TT_EINVAL);
    assert_int_equal(b.len, 0);
    tt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gateway_plain_answer_is_janssons_bytes),
        cmocka_unit_test(test_gateway_plain_answer_refuses_invalid_utf8_unchanged),
        cmocka_unit_test(test_gateway_text_chunk_is_janssons_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
