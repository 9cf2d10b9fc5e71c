/* agents/llm/call_request.c: the call's request copy, token counts and the
 * trimming rules (system kept, latest user turn kept, a user turn first). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/call_request.h"

/* Linked with -Wl,--wrap=tt_tokenizer_estimate (CMakeLists.txt): every count
 * the trimming makes goes through here. */
static size_t estimate_calls;
size_t __real_tt_tokenizer_estimate(const char *text, size_t len);
size_t __wrap_tt_tokenizer_estimate(const char *text, size_t len)
{
    estimate_calls++;
    return __real_tt_tokenizer_estimate(text, len);
}

static void make(tt_call_request *r, const char *const *roles, size_t n)
{
    tt_llm_message msgs[16];
    for (size_t i = 0; i < n; i++)
        msgs[i] = (tt_llm_message){.role = roles[i], .content = "some words in a turn"};
    tt_llm_request req = {.messages = msgs, .n_messages = n, .temperature = -1};
    assert_int_equal(tt_call_request_copy(&req, r), 0);
}

static const char *role_at(const tt_call_request *r, size_t i)
{
    return json_string_value(json_object_get(json_array_get(r->messages, i), "role"));
}

static void test_trim_restarts_at_a_user_turn(void **state)
{
    const char *roles[] = {"system", "user", "assistant", "user", "assistant", "user"};
    tt_call_request r;
    make(&r, roles, 6);
    size_t dropped = tt_call_request_trim(&r, NULL, NULL, 99, 100); /* one turn is enough */
    assert_int_equal(dropped, 2);
    assert_string_equal(role_at(&r, 0), "system");
    assert_string_equal(role_at(&r, 1), "user");
    tt_call_request_free(&r);
}

static void test_trim_drops_tool_results_with_their_call(void **state)
{
    const char *roles[] = {"system", "assistant", "tool", "tool", "assistant", "user"};
    tt_call_request r;
    make(&r, roles, 6);
    assert_int_equal(tt_call_request_trim(&r, NULL, NULL, 99, 100), 4);
    assert_int_equal(json_array_size(r.messages), 2);
    assert_string_equal(role_at(&r, 1), "user");
    tt_call_request_free(&r);
}

static void test_trim_never_drops_latest_user_or_system(void **state)
{
    const char *roles[] = {"system", "user"};
    tt_call_request r;
    make(&r, roles, 2);
    assert_int_equal(tt_call_request_trim(&r, NULL, NULL, 1, 100), 0);
    assert_int_equal(tt_call_request_fit(&r, NULL, NULL, 1), 0);
    assert_int_equal(json_array_size(r.messages), 2);
    tt_call_request_free(&r);
}

static void test_fit_drops_until_under_budget(void **state)
{
    const char *roles[] = {"system", "user", "assistant", "user", "assistant", "user"};
    tt_call_request r;
    make(&r, roles, 6);
    int64_t all = tt_call_request_tokens(&r, NULL, NULL);
    int64_t goal = all - 10;
    assert_true(tt_call_request_fit(&r, NULL, NULL, goal) >= 2);
    assert_true(tt_call_request_tokens(&r, NULL, NULL) <= goal);
    assert_string_equal(role_at(&r, 1), "user");
    tt_call_request_free(&r);
}

/* A request of many small turns, as a hostile gateway client sends them. */
static void make_many(tt_call_request *r, size_t n)
{
    tt_llm_message *msgs = calloc(n, sizeof *msgs);
    assert_non_null(msgs);
    for (size_t i = 0; i < n; i++)
        msgs[i] = (tt_llm_message){.role = i % 2 ? "assistant" : "user", .content = "word"};
    msgs[0].role = "system";
    tt_llm_request req = {.messages = msgs, .n_messages = n, .temperature = -1};
    assert_int_equal(tt_call_request_copy(&req, r), 0);
    free(msgs);
}

static void test_fit_counts_each_message_a_bounded_number_of_times(void **state)
{
    enum { N = 20000 };
    tt_call_request r;
    make_many(&r, N);
    estimate_calls = 0;
    /* Room for about the last 100 messages: nearly everything goes. */
    size_t dropped = tt_call_request_fit(&r, NULL, NULL, 100 * 8);
    assert_true(dropped > N - 200);
    /* role and content of each message, once: linear, not a recount per turn. */
    assert_true(estimate_calls <= 2 * (size_t)N);
    assert_true(tt_call_request_tokens(&r, NULL, NULL) <= 100 * 8);
    assert_string_equal(role_at(&r, 0), "system");
    assert_string_equal(role_at(&r, 1), "user");
    tt_call_request_free(&r);
}

static void test_trim_counts_each_message_a_bounded_number_of_times(void **state)
{
    enum { N = 20000 };
    tt_call_request r;
    make_many(&r, N);
    int64_t before = tt_call_request_tokens(&r, NULL, NULL);
    estimate_calls = 0;
    size_t dropped = tt_call_request_trim(&r, NULL, NULL, 1, 2);
    assert_true(dropped >= N / 2 - 2);
    assert_true(estimate_calls <= 2 * (size_t)N);
    assert_true(tt_call_request_tokens(&r, NULL, NULL) <= before / 2);
    assert_string_equal(role_at(&r, 1), "user");
    tt_call_request_free(&r);
}

static void test_view_caps_max_tokens(void **state)
{
    const char *roles[] = {"user"};
    tt_call_request r;
    make(&r, roles, 1);
    tt_llm_request v;
    assert_int_equal(tt_call_request_view(&r, "m", 100, &v), 0);
    assert_int_equal(v.max_tokens, 100); /* 0 asked: the cap */
    assert_string_equal(v.model, "m");
    assert_string_equal(v.messages[0].content, "some words in a turn");
    tt_call_request_view_free(&v);
    tt_call_request_free(&r);
}

static void test_hash_is_stable_and_text_free(void **state)
{
    const char *roles[] = {"user"};
    tt_call_request a, b;
    make(&a, roles, 1);
    make(&b, roles, 1);
    char ha[65], hb[65];
    tt_call_request_hash(&a, ha);
    tt_call_request_hash(&b, hb);
    assert_string_equal(ha, hb);
    assert_int_equal(strlen(ha), 64);
    assert_null(strstr(ha, "words"));
    tt_call_request_free(&a);
    tt_call_request_free(&b);
}

/* n messages: a system prompt, then user/assistant turns of `len` bytes of
 * text each, turn i made of the letter 'a' + i (so every turn differs). */
static void make_long(tt_call_request *r, size_t n, size_t len, char **texts)
{
    tt_llm_message msgs[16];
    assert_true(n <= 16);
    msgs[0] = (tt_llm_message){.role = "system", .content = "be brief"};
    for (size_t i = 1; i < n; i++) {
        texts[i] = malloc(len + 1);
        assert_non_null(texts[i]);
        for (size_t k = 0; k < len; k++)
            texts[i][k] = k % 5 == 4 ? ' ' : (char)('a' + i);
        texts[i][len] = '\0';
        msgs[i] = (tt_llm_message){.role = i % 2 ? "user" : "assistant", .content = texts[i]};
    }
    tt_llm_request req = {.messages = msgs, .n_messages = n, .temperature = -1};
    assert_int_equal(tt_call_request_copy(&req, r), 0);
    for (size_t i = 1; i < n; i++)
        free(texts[i]);
}

static void test_tokens_count_each_long_text_once(void **state)
{
    enum { LEN = 4 * TT_TOKEN_CACHE_MIN_BYTES };
    tt_token_cache *cache;
    assert_int_equal(tt_token_cache_new(&cache), 0);
    char *texts[16];
    tt_call_request r, longer;
    make_long(&r, 5, LEN, texts);
    make_long(&longer, 6, LEN, texts); /* the same conversation and one more turn */

    estimate_calls = 0;
    int64_t first = tt_call_request_tokens(&r, NULL, cache);
    size_t first_calls = estimate_calls;
    tt_token_cache_stats st;
    tt_token_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, 4); /* each long turn counted */
    assert_int_equal(st.miss_bytes, 4 * LEN);

    estimate_calls = 0;
    assert_int_equal(tt_call_request_tokens(&r, NULL, cache), first); /* same answer */
    assert_int_equal(estimate_calls, first_calls - 4); /* only the short texts (roles, system) */
    tt_token_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, 4);
    assert_int_equal(st.hits, 4);

    estimate_calls = 0;
    int64_t grown = tt_call_request_tokens(&longer, NULL, cache);
    tt_token_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, 5); /* the new turn, and only it */
    assert_int_equal(st.miss_bytes, 5 * LEN);
    assert_int_equal(grown, tt_call_request_tokens(&longer, NULL, NULL)); /* as without a cache */
    tt_call_request_free(&r);
    tt_call_request_free(&longer);
    tt_token_cache_free(cache);
}

static void test_token_cache_keeps_encodings_apart(void **state)
{
    tt_token_cache *cache;
    assert_int_equal(tt_token_cache_new(&cache), 0);
    char text[2 * TT_TOKEN_CACHE_MIN_BYTES];
    memset(text, 'x', sizeof text);
    int64_t estimate = tt_token_cache_count(cache, NULL, text, sizeof text);
    assert_int_equal(estimate, (int64_t)__real_tt_tokenizer_estimate(text, sizeof text));
    text[0] = 'y'; /* another text of the same length is not taken for the first */
    assert_int_equal(tt_token_cache_count(cache, NULL, text, sizeof text),
                     (int64_t)__real_tt_tokenizer_estimate(text, sizeof text));
    tt_token_cache_stats st;
    tt_token_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.hits, 0);
    tt_token_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_restarts_at_a_user_turn),
        cmocka_unit_test(test_trim_drops_tool_results_with_their_call),
        cmocka_unit_test(test_trim_never_drops_latest_user_or_system),
        cmocka_unit_test(test_fit_drops_until_under_budget),
        cmocka_unit_test(test_fit_counts_each_message_a_bounded_number_of_times),
        cmocka_unit_test(test_trim_counts_each_message_a_bounded_number_of_times),
        cmocka_unit_test(test_view_caps_max_tokens),
        cmocka_unit_test(test_hash_is_stable_and_text_free),
        cmocka_unit_test(test_tokens_count_each_long_text_once),
        cmocka_unit_test(test_token_cache_keeps_encodings_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
