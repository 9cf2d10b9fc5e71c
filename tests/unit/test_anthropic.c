/* agents/llm/anthropic.c through adapter.h: recorded Messages streams
 * (tests/unit/fixtures/llm/anthropic_*.sse) fed whole, byte by byte, in random
 * pieces and with CRLF line ends must give the very same events; tool_use
 * blocks are numbered like OpenAI's tool calls; errors, truncation and
 * malformed events end the stream with one classified ERROR; request bodies
 * match golden JSON. Leaks are checked by the sanitizer build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/adapter.h"
#include "protocol/errors.h"

#include "llm_test_util.h"

static void test_anthropic_text_stream_same_events_however_cut(void **state)
{
    check_fixture(TT_LLM_ANTHROPIC, 0, "anthropic_text.sse",
                  "text Hello\n"
                  "text ! The café\n"
                  "text ’s menu is ready ☕.\n"
                  "text \\nAnything else?\n"
                  "usage 25 15\n"
                  "finish stop\n");
}

/* tool_use blocks 1, 2, 3 are tool calls 0, 1, 2; a call that streams no
 * input gets "{}"; cache reads count as prompt tokens. */
static void test_anthropic_tool_use_numbered_like_openai(void **state)
{
    check_fixture(TT_LLM_ANTHROPIC, 0, "anthropic_tool_use.sse",
                  "text I'll check\n"
                  "text  the weather and the time in Paris.\n"
                  "tool 0 id=toolu_01T1x1fJ34qAmk2tNTrN7Up6 name=get_weather args=\n"
                  "tool 0 args={\"lo\n"
                  "tool 0 args=cation\n"
                  "tool 0 args=\": \"\n"
                  "tool 0 args=Paris\n"
                  "tool 0 args=, France\n"
                  "tool 0 args=\", \"\n"
                  "tool 0 args=unit\n"
                  "tool 0 args=\": \"c\n"
                  "tool 0 args=elsius\n"
                  "tool 0 args=\"}\n"
                  "tool 1 id=toolu_01Gd8oNbVqWk3sY7xHjR2LmC name=get_time args=\n"
                  "tool 1 args={\"ti\n"
                  "tool 1 args=mezone\"\n"
                  "tool 1 args=: \"Europe\n"
                  "tool 1 args=/Paris\n"
                  "tool 1 args=\", \"format\": \n"
                  "tool 1 args=\"24h\n"
                  "tool 1 args=\"}\n"
                  "tool 2 id=toolu_01Mz4rQpXc8eWv2LkJn5HsTd name=list_alarms args=\n"
                  "tool 2 args={}\n"
                  "usage 2520 89\n"
                  "finish tool_calls\n");

    size_t len;
    char *data = fixture("anthropic_tool_use.sse", &len);
    rec r = {0};
    run(TT_LLM_ANTHROPIC, 1, 0, data, len, RANDOM, 11, &r);
    json_t *a0 = json_loads(r.args[0].s, 0, NULL);
    json_t *a1 = json_loads(r.args[1].s, 0, NULL);
    json_t *a2 = json_loads(r.args[2].s, 0, NULL);
    json_t *w0 = json_pack("{s:s, s:s}", "location", "Paris, France", "unit", "celsius");
    json_t *w1 = json_pack("{s:s, s:s}", "timezone", "Europe/Paris", "format", "24h");
    json_t *w2 = json_object();
    assert_true(json_equal(a0, w0));
    assert_true(json_equal(a1, w1));
    assert_true(json_equal(a2, w2));
    json_decref(a0);
    json_decref(a1);
    json_decref(a2);
    json_decref(w0);
    json_decref(w1);
    json_decref(w2);
    rec_free(&r);
    free(data);
}

/* With a response_schema the forced "output" tool is the answer: TEXT, and a
 * plain "stop". Without it, "output" is just another tool. */
static void test_anthropic_structured_output_stream(void **state)
{
    check_fixture(TT_LLM_ANTHROPIC, 1, "anthropic_structured.sse",
                  "text {\"title\": \"Mar\n"
                  "text sh walk\", \"tags\": [\"nat\n"
                  "text ure\", \"boardwalk\"]}\n"
                  "usage 310 24\n"
                  "finish stop\n");
    check_fixture(TT_LLM_ANTHROPIC, 0, "anthropic_structured.sse",
                  "tool 0 id=toolu_01Qw9eRtYu8iOp7aSdFgHjKl name=output args=\n"
                  "tool 0 args={\"title\": \"Mar\n"
                  "tool 0 args=sh walk\", \"tags\": [\"nat\n"
                  "tool 0 args=ure\", \"boardwalk\"]}\n"
                  "usage 310 24\n"
                  "finish tool_calls\n");
}

static void check_stop_reason(const char *stop, const char *finish)
{
    char s[1024], want[128];
    snprintf(s, sizeof s,
             "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
             "{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
             "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
             "\"%s\"},\"usage\":{\"output_tokens\":7}}\n\n"
             "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
             stop);
    snprintf(want, sizeof want, "usage 3 7\nfinish %s\n", finish);
    check_stream(TT_LLM_ANTHROPIC, 0, s, strlen(s), want);
}

static void test_anthropic_stop_reasons_map_to_openai_names(void **state)
{
    check_stop_reason("end_turn", "stop");
    check_stop_reason("stop_sequence", "stop");
    check_stop_reason("max_tokens", "length");
    check_stop_reason("tool_use", "tool_calls");
    check_stop_reason("refusal", "content_filter");
    check_stop_reason("pause_turn", "stop");
}

static void test_anthropic_in_stream_overloaded(void **state)
{
    check_fixture(TT_LLM_ANTHROPIC, 0, "anthropic_error.sse",
                  "text Let me\n"
                  "text  think\n"
                  "error overloaded 0 Overloaded\n");
}

static void check_in_stream_error(const char *type, const char *message, tt_llm_error_class cls)
{
    char s[1024];
    snprintf(s, sizeof s,
             "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
             "{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
             ": a comment line\n\n"
             "event: error\ndata: "
             "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}\n\n"
             "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
             type, message);
    rec r = {0};
    run(TT_LLM_ANTHROPIC, 1, 0, s, strlen(s), BYTES, 0, &r);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.error.cls, cls);
    assert_string_equal(r.error.message, message);
    assert_int_equal(r.error.retry_after_ms, -1);
    rec_free(&r);
}

static void test_anthropic_in_stream_error_classes(void **state)
{
    check_in_stream_error("overloaded_error", "Overloaded", TT_LLM_ERR_OVERLOADED);
    check_in_stream_error("rate_limit_error",
                          "Number of request tokens has exceeded your rate limit",
                          TT_LLM_ERR_RATE_LIMITED);
    check_in_stream_error("api_error", "Internal server error", TT_LLM_ERR_SERVER);
    check_in_stream_error("invalid_request_error",
                          "prompt is too long: 208310 tokens > 200000 maximum",
                          TT_LLM_ERR_CONTEXT_LENGTH);
    check_in_stream_error("invalid_request_error",
                          "messages: text content blocks must be non-empty",
                          TT_LLM_ERR_BAD_REQUEST);
    check_in_stream_error("authentication_error", "invalid x-api-key", TT_LLM_ERR_AUTH);
}

static void test_anthropic_truncated_stream_ends_early(void **state)
{
    check_every_prefix(TT_LLM_ANTHROPIC, "anthropic_text.sse");
}

static void test_anthropic_malformed_events(void **state)
{
    const char *cut_json =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    check_stream(TT_LLM_ANTHROPIC, 0, cut_json, strlen(cut_json),
                 "text Hi\nerror malformed 0 response is not a JSON object\n");

    const char *unopened = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                           "\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
                           "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    check_stream(TT_LLM_ANTHROPIC, 0, unopened, strlen(unopened),
                 "error malformed 0 delta for a content block that is not open\n");

    const char *no_id = "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                        "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"input\":{}}}\n\n";
    check_stream(TT_LLM_ANTHROPIC, 0, no_id, strlen(no_id),
                 "error malformed 0 tool_use block without id or name\n");
}

/* Thinking blocks, pings and event types the API adds later are skipped. */
static void test_anthropic_skips_what_it_does_not_know(void **state)
{
    const char *s =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
        "{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: future_thing\ndata: {\"type\":\"future_thing\",\"x\":1}\n\n"
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"42\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    check_stream(TT_LLM_ANTHROPIC, 0, s, strlen(s), "text 42\nusage 9 30\nfinish stop\n");
}

static void test_anthropic_plain_message_body(void **state)
{
    rec r = {0};
    run_body(TT_LLM_ANTHROPIC, 0, "anthropic_message.json", &r);
    assert_string_equal(log_of(&r), "text I'll check the weather in Paris.\n"
                                    "tool 0 id=toolu_01T1x1fJ34qAmk2tNTrN7Up6 name=get_weather "
                                    "args={\"location\":\"Paris, France\",\"unit\":\"celsius\"}\n"
                                    "usage 2520 89\n"
                                    "finish tool_calls\n");
    rec_free(&r);

    const char *structured = "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                             "\"toolu_1\",\"name\":\"output\",\"input\":{\"title\":\"Marsh\"}}],"
                             "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":5,"
                             "\"output_tokens\":6}}";
    run(TT_LLM_ANTHROPIC, 0, 1, structured, strlen(structured), WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "text {\"title\":\"Marsh\"}\nusage 5 6\nfinish stop\n");
    rec_free(&r);

    const char *err = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                      "\"message\":\"Overloaded\"}}";
    run(TT_LLM_ANTHROPIC, 0, 0, err, strlen(err), BYTES, 0, &r);
    assert_string_equal(log_of(&r), "error overloaded 0 Overloaded\n");
    rec_free(&r);

    const char *no_content = "{\"type\":\"message\",\"stop_reason\":\"end_turn\"}";
    run(TT_LLM_ANTHROPIC, 0, 0, no_content, strlen(no_content), WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "error malformed 0 response has no content\n");
    rec_free(&r);
}

/* ---- request bodies ----------------------------------------------------- */

/* The second system message comes between the tool results: Anthropic's
 * top-level "system" still gets it. */
static void test_anthropic_body_golden(void **state)
{
    static const int system_late[7] = {0, 2, 3, 4, 1, 5, 6};
    check_tool_exchange_body(TT_LLM_ANTHROPIC, "claude-sonnet-4-5", system_late,
                             "anthropic_request.json");
}

static void test_anthropic_body_structured_output_forces_tool(void **state)
{
    check_structured_body(TT_LLM_ANTHROPIC, "claude-sonnet-4-5",
                          "anthropic_request_structured.json");
}

/* A tool result arriving after user text still leads its turn, and a
 * temperature written for OpenAI (0..2) is clamped to Anthropic's 0..1. */
static void test_anthropic_body_turn_rules(void **state)
{
    json_t *calls = json_loads("[{\"id\":\"c1\",\"name\":\"f\",\"arguments\":{\"a\":1}}]", 0, NULL);
    tt_llm_message msgs[] = {
        {.role = "user", .content = "go"},
        {.role = "assistant", .tool_calls = calls},
        {.role = "user", .content = "also this"},
        {.role = "tool", .content = "done", .tool_call_id = "c1"},
        {.role = "assistant", .content = ""},
    };
    tt_llm_request req = {.model = "m", .messages = msgs, .n_messages = 5, .temperature = 1.5};
    char *body = NULL;
    assert_int_equal(tt_llm_build_body(TT_LLM_ANTHROPIC, &req, &body, NULL), 0);
    json_t *got = json_loads(body, 0, NULL);
    json_t *want = json_loads(
        "{\"model\":\"m\",\"max_tokens\":1024,\"temperature\":1.0,\"stream\":false,\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"go\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"f\","
        "\"input\":{\"a\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"c1\","
        "\"content\":\"done\"},{\"type\":\"text\",\"text\":\"also this\"}]}]}",
        0, NULL);
    assert_non_null(want);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(body);
    json_decref(calls);
}

static void test_anthropic_body_refuses_bad_requests(void **state)
{
    char *body = NULL;
    json_t *bad_args =
        json_loads("[{\"id\":\"c1\",\"name\":\"f\",\"arguments\":\"{not json\"}]", 0, NULL);
    json_t *array_args =
        json_loads("[{\"id\":\"c1\",\"name\":\"f\",\"arguments\":\"[1]\"}]", 0, NULL);
    tt_llm_message m1[] = {{.role = "assistant", .tool_calls = bad_args}};
    tt_llm_message m2[] = {{.role = "assistant", .tool_calls = array_args}};
    tt_llm_message m3[] = {{.role = "tool", .content = "x"}};
    tt_llm_message m4[] = {{.role = "critic", .content = "x"}};
    tt_llm_request req = {.model = "m", .messages = m1, .n_messages = 1};
    assert_int_equal(tt_llm_build_body(TT_LLM_ANTHROPIC, &req, &body, NULL), TT_EINVAL);
    req.messages = m2;
    assert_int_equal(tt_llm_build_body(TT_LLM_ANTHROPIC, &req, &body, NULL), TT_EINVAL);
    req.messages = m3;
    assert_int_equal(tt_llm_build_body(TT_LLM_ANTHROPIC, &req, &body, NULL), TT_EINVAL);
    req.messages = m4;
    assert_int_equal(tt_llm_build_body(TT_LLM_ANTHROPIC, &req, &body, NULL), TT_EINVAL);
    assert_null(body);
    json_decref(bad_args);
    json_decref(array_args);
}

static void test_anthropic_headers_names_paths(void **state)
{
    char *h[4];
    assert_int_equal(tt_llm_headers(TT_LLM_ANTHROPIC, "sk-ant-test", h, 4), 0);
    assert_string_equal(h[0], "x-api-key: sk-ant-test");
    assert_string_equal(h[1], "anthropic-version: 2023-06-01");
    assert_null(h[2]);
    tt_llm_headers_free(h);
    assert_int_equal(tt_llm_headers(TT_LLM_ANTHROPIC, "sk-ant-test", h, 2), TT_ETOOLARGE);
    assert_null(h[0]);
    assert_int_equal(tt_llm_headers(TT_LLM_ANTHROPIC, "k\nx", h, 4), TT_EINVAL);

    assert_string_equal(tt_llm_path(TT_LLM_ANTHROPIC), "/v1/messages");
    assert_string_equal(tt_llm_provider_name(TT_LLM_ANTHROPIC), "anthropic");
    tt_llm_provider p = TT_LLM_OPENAI;
    assert_int_equal(tt_llm_provider_parse("anthropic", &p), 0);
    assert_int_equal(p, TT_LLM_ANTHROPIC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_text_stream_same_events_however_cut),
        cmocka_unit_test(test_anthropic_tool_use_numbered_like_openai),
        cmocka_unit_test(test_anthropic_structured_output_stream),
        cmocka_unit_test(test_anthropic_stop_reasons_map_to_openai_names),
        cmocka_unit_test(test_anthropic_in_stream_overloaded),
        cmocka_unit_test(test_anthropic_in_stream_error_classes),
        cmocka_unit_test(test_anthropic_truncated_stream_ends_early),
        cmocka_unit_test(test_anthropic_malformed_events),
        cmocka_unit_test(test_anthropic_skips_what_it_does_not_know),
        cmocka_unit_test(test_anthropic_plain_message_body),
        cmocka_unit_test(test_anthropic_body_golden),
        cmocka_unit_test(test_anthropic_body_structured_output_forces_tool),
        cmocka_unit_test(test_anthropic_body_turn_rules),
        cmocka_unit_test(test_anthropic_body_refuses_bad_requests),
        cmocka_unit_test(test_anthropic_headers_names_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
