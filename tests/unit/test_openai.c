/* agents/llm/openai.c through adapter.h: recorded chat-completion streams
 * (tests/unit/fixtures/llm/openai_*.sse) fed whole, byte by byte, in random
 * pieces and with CRLF line ends must give the very same events; tool calls
 * reassemble; errors, truncation and malformed chunks end the stream with one
 * classified ERROR; request bodies match golden JSON. Leaks are checked by the
 * sanitizer build. */
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

static void test_openai_text_stream_same_events_however_cut(void **state)
{
    check_fixture(TT_LLM_OPENAI, 0, "openai_text.sse",
                  "text Hello\n"
                  "text ! The café\n"
                  "text ’s\n"
                  "text   menu\n"
                  "text \xc2\xa0is \n"
                  "text ready ☕.\n"
                  "text  Anything\n"
                  "text \\nelse?\n"
                  "usage 19 12\n"
                  "finish stop\n");
}

/* The chunks the fast scan reads (agents/llm/fastjson.h) and one it leaves
 * to jansson (an escaped key), in one stream: \u escapes, surrogate pairs,
 * raw multi-byte text and the short escapes come out as jansson decodes them,
 * in order, however the stream is cut. */
static void test_openai_escaped_text_same_events_however_cut(void **state)
{
    check_fixture(TT_LLM_OPENAI, 0, "openai_escapes.sse",
                  "text \xc3\xa9t\xc3\xa9 \n"
                  "text \xf0\x9f\x98\x80 \xf0\x9f\x8e\x89\n"
                  "text \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e caf\xc3\xa9\n"
                  "text a\\n\"b\"\\\\c/d\te\n"
                  "text escaped key, read by jansson\n"
                  "text end\n"
                  "usage 3 7\n"
                  "finish stop\n");
}

static void test_openai_parallel_tool_calls_reassemble(void **state)
{
    const char *expected = "tool 0 id=call_DdmO9pD3xa9XTPNJ32zg2hcA name=get_weather args=\n"
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
                           "tool 1 id=call_7QkLw1mTnR9bXo2Yv4cZs8Ue name=get_time args=\n"
                           "tool 1 args={\"ti\n"
                           "tool 1 args=mezone\"\n"
                           "tool 1 args=: \"Europe\n"
                           "tool 1 args=/Paris\n"
                           "tool 1 args=\", \"format\": \n"
                           "tool 1 args=\"24h\n"
                           "tool 1 args=\"}\n"
                           "usage 82 47\n"
                           "finish tool_calls\n";
    check_fixture(TT_LLM_OPENAI, 0, "openai_tool_calls.sse", expected);

    size_t len;
    char *data = fixture("openai_tool_calls.sse", &len);
    rec r = {0};
    run(TT_LLM_OPENAI, 1, 0, data, len, BYTES, 0, &r);
    json_t *a0 = json_loads(r.args[0].s, 0, NULL);
    json_t *a1 = json_loads(r.args[1].s, 0, NULL);
    json_t *w0 = json_pack("{s:s, s:s}", "location", "Paris, France", "unit", "celsius");
    json_t *w1 = json_pack("{s:s, s:s}", "timezone", "Europe/Paris", "format", "24h");
    assert_true(json_equal(a0, w0));
    assert_true(json_equal(a1, w1));
    json_decref(a0);
    json_decref(a1);
    json_decref(w0);
    json_decref(w1);
    rec_free(&r);
    free(data);
}

/* finish_reason comes in the chunk before the usage chunk; FINISH waits for
 * [DONE] so that USAGE is never after it. */
static void test_openai_finish_waits_for_done_after_usage(void **state)
{
    const char *s =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
        "\"finish_reason\":\"length\"}],\"usage\":null}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n"
        "data: [DONE]\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n";
    check_stream(TT_LLM_OPENAI, 0, s, strlen(s), "text Hi\nusage 5 1\nfinish length\n");
}

/* Servers that omit the index, repeat id and name, or send arguments as an
 * object (Ollama, some proxies) still give one call per id. */
static void test_openai_compatible_tool_call_variants(void **state)
{
    const char *s =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":"
        "{\"name\":\"f\",\"arguments\":{\"x\":1}}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":"
        "{\"name\":\"g\",\"arguments\":\"{\\\"y\\\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\","
        "\"function\":{\"name\":\"g\",\"arguments\":\":2}\"}}]},\"finish_reason\":\"tool_calls\"}]}"
        "\n\n"
        "data: [DONE]\n\n";
    check_stream(TT_LLM_OPENAI, 0, s, strlen(s),
                 "tool 0 id=a name=f args={\"x\":1}\n"
                 "tool 1 id=b name=g args={\"y\"\n"
                 "tool 1 args=:2}\n"
                 "finish tool_calls\n");
}

static void test_openai_azure_content_filter_is_a_finish(void **state)
{
    check_fixture(TT_LLM_OPENAI, 0, "openai_content_filter.sse",
                  "text Here is how\n"
                  "text  you\n"
                  "usage 31 3\n"
                  "finish content_filter\n");
}

static void test_openai_in_stream_server_error(void **state)
{
    check_fixture(TT_LLM_OPENAI, 0, "openai_error.sse",
                  "text The answer\n"
                  "text  depends on\n"
                  "error server 0 The server had an error while processing your request. Sorry "
                  "about that!\n");
}

static void check_in_stream_error(const char *error_json, tt_llm_error_class cls)
{
    char s[1024];
    snprintf(s, sizeof s,
             "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
             "data: {\"error\":%s}\n\n"
             "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
             "data: [DONE]\n\n",
             error_json);
    rec r = {0};
    run(TT_LLM_OPENAI, 1, 0, s, strlen(s), BYTES, 0, &r);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.error.cls, cls);
    assert_int_equal(r.error.http_status, 0);
    assert_string_equal(r.text.s, "a");
    rec_free(&r);
}

static void test_openai_in_stream_error_classes(void **state)
{
    check_in_stream_error(
        "{\"message\":\"This model's maximum context length is 128000 tokens.\","
        "\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}",
        TT_LLM_ERR_CONTEXT_LENGTH);
    check_in_stream_error("{\"message\":\"Rate limit reached for gpt-4o\",\"type\":\"tokens\","
                          "\"code\":\"rate_limit_exceeded\"}",
                          TT_LLM_ERR_RATE_LIMITED);
    check_in_stream_error("{\"message\":\"boom\",\"type\":\"server_error\",\"code\":null}",
                          TT_LLM_ERR_SERVER);
    check_in_stream_error("{\"message\":\"?\",\"type\":\"something_new\"}", TT_LLM_ERR_SERVER);
    check_in_stream_error("\"model is overloaded\"", TT_LLM_ERR_SERVER);
    check_in_stream_error("{\"message\":\"flagged\",\"type\":\"invalid_request_error\","
                          "\"code\":\"content_filter\"}",
                          TT_LLM_ERR_CONTENT_FILTER);
}

static void test_openai_truncated_stream_ends_early(void **state)
{
    check_fixture(TT_LLM_OPENAI, 0, "openai_truncated.sse",
                  "text Hello\n"
                  "text ! The café\n"
                  "text ’s\n"
                  "error network 0 stream ended early\n");
    check_every_prefix(TT_LLM_OPENAI, "openai_text.sse");
}

static void test_openai_malformed_chunk(void **state)
{
    check_fixture(TT_LLM_OPENAI, 0, "openai_malformed.sse",
                  "text Hel\n"
                  "error malformed 0 response is not a JSON object\n");
    const char *s = "data: [1,2]\n\ndata: [DONE]\n\n";
    check_stream(TT_LLM_OPENAI, 0, s, strlen(s),
                 "error malformed 0 response is not a JSON object\n");
}

static void test_openai_event_over_cap_is_malformed(void **state)
{
    size_t n = TT_LLM_EVENT_MAX + 16;
    char *s = malloc(n);
    assert_non_null(s);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'a', n - 6);
    rec r = {0};
    run(TT_LLM_OPENAI, 1, 0, s, n, RANDOM, 1, &r);
    assert_string_equal(log_of(&r), "error malformed 0 stream event too large\n");
    rec_free(&r);
    free(s);
}

static void test_openai_plain_text_body(void **state)
{
    rec r = {0};
    run_body(TT_LLM_OPENAI, 0, "openai_chat.json", &r);
    assert_string_equal(log_of(&r),
                        "text The image shows a wooden boardwalk through a lush green marsh.\n"
                        "usage 1117 46\n"
                        "finish stop\n");
    rec_free(&r);
}

static void test_openai_plain_tool_calls_body(void **state)
{
    rec r = {0};
    run_body(TT_LLM_OPENAI, 0, "openai_chat_tools.json", &r);
    assert_string_equal(
        log_of(&r),
        "tool 0 id=call_DdmO9pD3xa9XTPNJ32zg2hcA name=get_weather args={\"location\": \"Paris, "
        "France\", \"unit\": \"celsius\"}\n"
        "tool 1 id=call_7QkLw1mTnR9bXo2Yv4cZs8Ue name=get_time args={\"timezone\": "
        "\"Europe/Paris\", \"format\": \"24h\"}\n"
        "usage 82 47\n"
        "finish tool_calls\n");
    rec_free(&r);
}

static void test_openai_plain_body_errors(void **state)
{
    rec r = {0};
    const char *not_json = "<html>502 Bad Gateway</html>";
    run(TT_LLM_OPENAI, 0, 0, not_json, strlen(not_json), BYTES, 0, &r);
    assert_string_equal(log_of(&r), "error malformed 0 response is not a JSON object\n");
    rec_free(&r);

    run(TT_LLM_OPENAI, 0, 0, "", 0, WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "error malformed 0 response is not a JSON object\n");
    rec_free(&r);

    const char *no_choices = "{\"id\":\"x\",\"choices\":[]}";
    run(TT_LLM_OPENAI, 0, 0, no_choices, strlen(no_choices), WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "error malformed 0 response has no choices[0].message\n");
    rec_free(&r);

    const char *err = "{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\","
                      "\"code\":\"rate_limit_exceeded\"}}";
    run(TT_LLM_OPENAI, 0, 0, err, strlen(err), WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "error rate_limited 0 Rate limit\n");
    rec_free(&r);
}

static void test_openai_plain_body_over_cap_is_malformed(void **state)
{
    tt_llm_parser *p = NULL;
    rec r = {0};
    assert_int_equal(tt_llm_parser_new(TT_LLM_OPENAI, 0, on_event, &r, &p), 0);
    size_t piece = 1 << 16;
    char *spaces = malloc(piece);
    assert_non_null(spaces);
    memset(spaces, ' ', piece);
    size_t fed = 0;
    int rc = 0;
    while (rc == 0) {
        rc = tt_llm_parser_feed(p, spaces, piece);
        fed += piece;
        assert_true(fed <= TT_LLM_BODY_MAX + piece);
    }
    assert_true(fed > TT_LLM_BODY_MAX);
    assert_int_not_equal(tt_llm_parser_feed(p, "{}", 2), 0);
    assert_int_not_equal(tt_llm_parser_finish(p), 0);
    assert_string_equal(log_of(&r), "error malformed 0 response body too large\n");
    tt_llm_parser_free(p);
    free(spaces);
    rec_free(&r);
}

/* ---- request bodies ----------------------------------------------------- */

static void test_openai_body_golden(void **state)
{
    static const int in_order[7] = {0, 1, 2, 3, 4, 5, 6};
    check_tool_exchange_body(TT_LLM_OPENAI, "gpt-4o-mini", in_order, "openai_request.json");
}

static void test_openai_body_structured_output(void **state)
{
    check_structured_body(TT_LLM_OPENAI, "gpt-4o-mini", "openai_request_structured.json");
}

static void test_openai_body_refuses_bad_requests(void **state)
{
    char *body = NULL;
    tt_llm_message bad_role[] = {{.role = "narrator", .content = "x"}};
    tt_llm_message no_call_id[] = {{.role = "tool", .content = "x"}};
    tt_llm_message no_role[] = {{.content = "x"}};
    tt_llm_request req = {.model = "m", .messages = bad_role, .n_messages = 1};
    assert_int_equal(tt_llm_build_body(TT_LLM_OPENAI, &req, &body, NULL), TT_EINVAL);
    req.messages = no_call_id;
    assert_int_equal(tt_llm_build_body(TT_LLM_OPENAI, &req, &body, NULL), TT_EINVAL);
    req.messages = no_role;
    assert_int_equal(tt_llm_build_body(TT_LLM_OPENAI, &req, &body, NULL), TT_EINVAL);
    req.model = NULL;
    assert_int_equal(tt_llm_build_body(TT_LLM_OPENAI, &req, &body, NULL), TT_EINVAL);
    assert_null(body);
}

/* ---- headers, names, paths ---------------------------------------------- */

static void test_openai_headers_names_paths(void **state)
{
    char *h[4];
    assert_int_equal(tt_llm_headers(TT_LLM_OPENAI, "sk-test", h, 4), 0);
    assert_string_equal(h[0], "Authorization: Bearer sk-test");
    assert_null(h[1]);
    tt_llm_headers_free(h);
    assert_null(h[0]);
    assert_int_equal(tt_llm_headers(TT_LLM_OPENAI, NULL, h, 4), 0); /* local servers */
    assert_null(h[0]);
    assert_int_equal(tt_llm_headers(TT_LLM_OPENAI, "sk\r\nX-Evil: 1", h, 4), TT_EINVAL);
    assert_int_equal(tt_llm_headers(TT_LLM_OPENAI, "sk-test", h, 1), TT_ETOOLARGE);
    assert_null(h[0]);

    assert_string_equal(tt_llm_path(TT_LLM_OPENAI), "/chat/completions");
    assert_string_equal(tt_llm_provider_name(TT_LLM_OPENAI), "openai");
    tt_llm_provider p = TT_LLM_ANTHROPIC;
    assert_int_equal(tt_llm_provider_parse("openai", &p), 0);
    assert_int_equal(p, TT_LLM_OPENAI);
    assert_int_equal(tt_llm_provider_parse("gemini", &p), TT_EINVAL);
    assert_int_equal(tt_llm_provider_parse(NULL, &p), TT_EINVAL);
}

/* ---- embeddings --------------------------------------------------------- */

static void test_openai_embeddings(void **state)
{
    const char *inputs[] = {"a photo of a marsh", "a boardwalk"};
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(tt_llm_build_embeddings_body("text-embedding-3-small", inputs, 2, &body, &len),
                     0);
    json_t *got = json_loadb(body, len, 0, NULL);
    json_t *want = json_pack("{s:s, s:[s, s]}", "model", "text-embedding-3-small", "input",
                             inputs[0], inputs[1]);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(body);

    /* Vectors are placed by their index, not their order in data. */
    char *resp = fixture("openai_embeddings.json", &len);
    float *v = NULL;
    size_t dims = 0;
    int64_t tokens = 0;
    assert_int_equal(tt_llm_parse_embeddings(resp, len, 2, &v, &dims, &tokens), 0);
    assert_int_equal(dims, 4);
    assert_int_equal(tokens, 9);
    assert_float_equal(v[0], -0.006929283f, 1e-9);
    assert_float_equal(v[3], -0.024047505f, 1e-9);
    assert_float_equal(v[4], 0.0023064255f, 1e-9);
    assert_float_equal(v[7], -0.0077780345f, 1e-9);
    free(v);
    v = NULL;
    assert_int_equal(tt_llm_parse_embeddings(resp, len, 3, &v, &dims, NULL), TT_EINVAL);
    free(resp);

    const char *dup =
        "{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":0,\"embedding\":[2]}]}";
    assert_int_equal(tt_llm_parse_embeddings(dup, strlen(dup), 2, &v, &dims, NULL), TT_EINVAL);
    const char *ragged =
        "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":1,\"embedding\":[2]}]}";
    assert_int_equal(tt_llm_parse_embeddings(ragged, strlen(ragged), 2, &v, &dims, NULL),
                     TT_EINVAL);
    const char *text = "{\"data\":[{\"index\":0,\"embedding\":\"AAAA\"}]}";
    assert_int_equal(tt_llm_parse_embeddings(text, strlen(text), 1, &v, &dims, NULL), TT_EINVAL);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_text_stream_same_events_however_cut),
        cmocka_unit_test(test_openai_escaped_text_same_events_however_cut),
        cmocka_unit_test(test_openai_parallel_tool_calls_reassemble),
        cmocka_unit_test(test_openai_finish_waits_for_done_after_usage),
        cmocka_unit_test(test_openai_compatible_tool_call_variants),
        cmocka_unit_test(test_openai_azure_content_filter_is_a_finish),
        cmocka_unit_test(test_openai_in_stream_server_error),
        cmocka_unit_test(test_openai_in_stream_error_classes),
        cmocka_unit_test(test_openai_truncated_stream_ends_early),
        cmocka_unit_test(test_openai_malformed_chunk),
        cmocka_unit_test(test_openai_event_over_cap_is_malformed),
        cmocka_unit_test(test_openai_plain_text_body),
        cmocka_unit_test(test_openai_plain_tool_calls_body),
        cmocka_unit_test(test_openai_plain_body_errors),
        cmocka_unit_test(test_openai_plain_body_over_cap_is_malformed),
        cmocka_unit_test(test_openai_body_golden),
        cmocka_unit_test(test_openai_body_structured_output),
        cmocka_unit_test(test_openai_body_refuses_bad_requests),
        cmocka_unit_test(test_openai_headers_names_paths),
        cmocka_unit_test(test_openai_embeddings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
