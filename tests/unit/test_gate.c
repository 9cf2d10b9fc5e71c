/* agents/llm/gate.c: the estimate a model call reserves before it starts:
 * the completion cap (max_tokens, else the routes' cap), the route's most
 * expensive target (or the pass-through model), the prompt's conservative
 * token estimate, one token a byte past 64 KiB of text; and a gate that is
 * asked once with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/gate.h"
#include "agents/llm/route.h"
#include "agents/llm/tokenizer.h"
#include "protocol/errors.h"

static const char ROUTES[] =
    "{\"routes\": {\"r\": [{\"provider\": \"openai\", \"model\": \"cheap\", \"base_url\": "
    "\"http://127.0.0.1:9\"}, {\"provider\": \"openai\", \"model\": \"dear\", \"base_url\": "
    "\"http://127.0.0.1:9\"}]},"
    " \"prices\": {\"cheap\": {\"prompt_per_mtok\": 1, \"completion_per_mtok\": 1},"
    "              \"dear\": {\"prompt_per_mtok\": 10, \"completion_per_mtok\": 100}},"
    " \"limits\": {\"max_completion_tokens\": 1000}}";

static void load(tt_routes *r)
{
    char err[256];
    json_t *j = json_loads(ROUTES, 0, NULL);
    assert_int_equal(tt_routes_parse(j, "", NULL, r, err, sizeof err), 0);
    json_decref(j);
}

static void test_gate_estimate_prices_the_cap_at_the_dearest_target(void **state)
{
    (void)state;
    tt_routes r;
    load(&r);
    tt_llm_message m = {.role = "user", .content = "hello there"};
    tt_llm_request req = {.messages = &m, .n_messages = 1, .max_tokens = 100};
    tt_llm_gate_ask a;
    tt_llm_gate_estimate(&r, &r.routes[0], NULL, &req, NULL, &a);
    assert_string_equal(a.route, "r");
    assert_string_equal(a.attr->tenant, "");
    assert_int_equal(a.completion_tokens, 100);
    size_t want = TT_TOKENIZER_ESTIMATE_REPLY_PRIMER + TT_TOKENIZER_ESTIMATE_PER_MESSAGE +
                  tt_tokenizer_estimate("user", 4) + tt_tokenizer_estimate("hello there", 11);
    assert_int_equal(a.prompt_tokens, (int64_t)want);
    double dear = tt_route_cost(&r.prices, "dear", a.prompt_tokens, 100, NULL);
    assert_true(a.usd == dear); /* the failover target, not the first */
    /* No max_tokens, or one over the cap: the routes' cap. */
    req.max_tokens = 0;
    tt_llm_gate_estimate(&r, &r.routes[0], NULL, &req, NULL, &a);
    assert_int_equal(a.completion_tokens, 1000);
    req.max_tokens = 5000;
    tt_llm_gate_estimate(&r, &r.routes[0], NULL, &req, NULL, &a);
    assert_int_equal(a.completion_tokens, 1000);
    /* A pass-through model: its own price (none here: 0). */
    tt_llm_gate_estimate(&r, &r.routes[0], "unpriced", &req, NULL, &a);
    assert_true(a.usd == 0);
    tt_routes_free(&r);
}

static void test_gate_estimate_counts_a_byte_a_token_past_64_kib(void **state)
{
    (void)state;
    tt_routes r;
    load(&r);
    size_t n = 200 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    tt_llm_message m[2] = {{.role = "user", .content = big}, {.role = "user", .content = "x"}};
    tt_llm_request req = {.messages = m, .n_messages = 2, .max_tokens = 1};
    tt_llm_gate_ask a;
    tt_llm_gate_estimate(&r, &r.routes[0], NULL, &req, NULL, &a);
    size_t head = 64 * 1024 - 4; /* "user" came first */
    size_t want = TT_TOKENIZER_ESTIMATE_REPLY_PRIMER + 2 * TT_TOKENIZER_ESTIMATE_PER_MESSAGE +
                  tt_tokenizer_estimate("user", 4) + tt_tokenizer_estimate(big, head) + (n - head) +
                  4 + 1; /* the second message: a byte a token */
    assert_int_equal(a.prompt_tokens, (int64_t)want);
    assert_true((size_t)a.prompt_tokens >= tt_tokenizer_estimate(big, n));
    free(big);
    tt_routes_free(&r);
}

static int asked;

static int refuse(const tt_llm_gate_ask *a, void *ud, uint64_t *hold)
{
    (void)ud;
    asked++;
    assert_true(a->usd > 0);
    *hold = 0;
    return TT_EBUDGET;
}

static void test_gate_reserve_asks_once_and_passes_the_refusal_on(void **state)
{
    (void)state;
    tt_routes r;
    load(&r);
    tt_llm_message m = {.role = "user", .content = "hi"};
    tt_llm_request req = {.messages = &m, .n_messages = 1};
    uint64_t hold = 7;
    assert_int_equal(tt_llm_gate_reserve(NULL, &r, &r.routes[0], NULL, &req, NULL, &hold), 0);
    assert_int_equal(hold, 0);
    tt_llm_gate g = {.reserve = refuse};
    assert_int_equal(tt_llm_gate_reserve(&g, &r, &r.routes[0], NULL, &req, NULL, &hold),
                     TT_EBUDGET);
    assert_int_equal(asked, 1);
    tt_llm_gate_release(&g, 0); /* no release hook, nothing held: nothing */
    tt_routes_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_estimate_prices_the_cap_at_the_dearest_target),
        cmocka_unit_test(test_gate_estimate_counts_a_byte_a_token_past_64_kib),
        cmocka_unit_test(test_gate_reserve_asks_once_and_passes_the_refusal_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
