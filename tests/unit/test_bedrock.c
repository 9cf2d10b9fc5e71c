/* agents/llm/bedrock.c through adapter.h: Converse request bodies against
 * golden JSON; ConverseStream event-stream bodies (built here with
 * tt_eventstream_encode) fed whole, cut in two at every point, byte by byte
 * and in random pieces give the same events; exceptions end the stream with
 * an ERROR classified like the other providers'; a bad CRC or a cut stream is
 * an error, never a silent end; plain Converse bodies; the model's path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "agents/llm/adapter.h"
#include "agents/llm/bedrock.h"
#include "agents/llm/call_request.h"
#include "agents/llm/eventstream.h"
#include "protocol/errors.h"

#include "llm_test_util.h"

/* The SSE feeders of llm_test_util.h: binary streams are fed by check_binary. */
static void (*const unused_helpers[])(void) __attribute__((unused)) = {
    (void (*)(void))check_fixture, (void (*)(void))check_every_prefix, (void (*)(void))run_body};

/* ---- building streams --------------------------------------------------- */

typedef struct stream {
    char b[16384];
    size_t len;
} stream;

static void add_event(stream *s, const char *type, const char *json)
{
    const char *names[] = {":event-type", ":content-type", ":message-type"};
    const char *values[] = {type, "application/json", "event"};
    size_t n = tt_eventstream_encode(s->b + s->len, sizeof s->b - s->len, names, values, 3, json,
                                     strlen(json));
    assert_true(n > 0);
    s->len += n;
}

static void add_exception(stream *s, const char *type, const char *json)
{
    const char *names[] = {":exception-type", ":content-type", ":message-type"};
    const char *values[] = {type, "application/json", "exception"};
    size_t n = tt_eventstream_encode(s->b + s->len, sizeof s->b - s->len, names, values, 3, json,
                                     strlen(json));
    assert_true(n > 0);
    s->len += n;
}

/* Text, then two tool calls (one without input), then the end. */
static void text_and_tools(stream *s)
{
    add_event(s, "messageStart", "{\"role\":\"assistant\"}");
    add_event(s, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Let me\"}}");
    add_event(s, "contentBlockDelta",
              "{\"contentBlockIndex\":0,\"delta\":{\"text\":\" check ☕.\"}}");
    add_event(s, "contentBlockStop", "{\"contentBlockIndex\":0}");
    add_event(s, "contentBlockStart",
              "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":\"tooluse_a\","
              "\"name\":\"get_weather\"}}}");
    add_event(s, "contentBlockDelta",
              "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"city\\\":\"}}}");
    add_event(s, "contentBlockDelta",
              "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"\\\"Paris\\\"}\"}}}");
    add_event(s, "contentBlockStop", "{\"contentBlockIndex\":1}");
    add_event(s, "contentBlockStart",
              "{\"contentBlockIndex\":2,\"start\":{\"toolUse\":{\"toolUseId\":\"tooluse_b\","
              "\"name\":\"get_time\"}}}");
    add_event(s, "contentBlockStop", "{\"contentBlockIndex\":2}");
    add_event(s, "messageStop", "{\"stopReason\":\"tool_use\"}");
    add_event(s, "metadata",
              "{\"usage\":{\"inputTokens\":30,\"outputTokens\":12,\"totalTokens\":42,"
              "\"cacheReadInputTokens\":5},\"metrics\":{\"latencyMs\":120}}");
}

#define TEXT_AND_TOOLS_LOG                                                                         \
    "text Let me\n"                                                                                \
    "text  check ☕.\n"                                                                           \
    "tool 0 id=tooluse_a name=get_weather args=\n"                                                 \
    "tool 0 args={\"city\":\n"                                                                     \
    "tool 0 args=\"Paris\"}\n"                                                                     \
    "tool 1 id=tooluse_b name=get_time args=\n"                                                    \
    "tool 1 args={}\n"                                                                             \
    "usage 35 12\n"                                                                                \
    "finish tool_calls\n"

/* Whole, every cut in two, byte by byte, random pieces: the same events. */
static void check_binary(const char *data, size_t len, const char *expected)
{
    rec r = {0};
    run(TT_LLM_BEDROCK, 1, 0, data, len, WHOLE, 0, &r);
    assert_string_equal(log_of(&r), expected);
    rec_free(&r);
    run(TT_LLM_BEDROCK, 1, 0, data, len, BYTES, 0, &r);
    assert_string_equal(log_of(&r), expected);
    rec_free(&r);
    for (unsigned seed = 1; seed <= 25; seed++) {
        run(TT_LLM_BEDROCK, 1, 0, data, len, RANDOM, seed, &r);
        assert_string_equal(log_of(&r), expected);
        rec_free(&r);
    }
    for (size_t cut = 0; cut <= len; cut++) {
        tt_llm_parser *p = NULL;
        assert_int_equal(tt_llm_parser_new(TT_LLM_BEDROCK, 1, on_event, &r, &p), 0);
        if (tt_llm_parser_feed(p, data, cut) == 0)
            tt_llm_parser_feed(p, data + cut, len - cut);
        tt_llm_parser_finish(p);
        tt_llm_parser_free(p);
        assert_string_equal(log_of(&r), expected);
        rec_free(&r);
    }
}

static void test_bedrock_stream_text_and_tools_however_cut(void **state)
{
    stream s = {.len = 0};
    text_and_tools(&s);
    check_binary(s.b, s.len, TEXT_AND_TOOLS_LOG);
}

/* Every proper prefix ends in NETWORK "stream ended early" (metadata is the
 * last event: a stream cut after messageStop is cut too). */
static void test_bedrock_every_prefix_is_an_early_end(void **state)
{
    stream s = {.len = 0};
    text_and_tools(&s);
    for (size_t cut = 0; cut < s.len; cut++) {
        rec r = {0};
        run(TT_LLM_BEDROCK, 1, 0, s.b, cut, WHOLE, 0, &r);
        assert_int_equal(r.errors, 1);
        assert_int_equal(r.error.cls, TT_LLM_ERR_NETWORK);
        rec_free(&r);
    }
}

static void check_exception(const char *type, const char *msg_json, tt_llm_error_class want,
                            const char *want_msg)
{
    stream s = {.len = 0};
    add_event(&s, "messageStart", "{\"role\":\"assistant\"}");
    add_event(&s, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
    add_exception(&s, type, msg_json);
    add_event(&s, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"never\"}}");
    char expected[512];
    snprintf(expected, sizeof expected, "text Hi\nerror %s 0 %s\n", tt_llm_error_name(want),
             want_msg);
    check_binary(s.b, s.len, expected);
}

static void test_bedrock_exceptions_classified(void **state)
{
    check_exception("throttlingException", "{\"message\":\"Too many requests\"}",
                    TT_LLM_ERR_RATE_LIMITED, "Too many requests");
    check_exception("modelStreamErrorException", "{\"message\":\"model failed\"}",
                    TT_LLM_ERR_SERVER, "model failed");
    check_exception("internalServerException", "{}", TT_LLM_ERR_SERVER, "internalServerException");
    check_exception("serviceUnavailableException", "{\"message\":\"busy\"}", TT_LLM_ERR_OVERLOADED,
                    "busy");
    check_exception("validationException", "{\"message\":\"bad field\"}", TT_LLM_ERR_BAD_REQUEST,
                    "bad field");
    check_exception("validationException",
                    "{\"message\":\"Input is too long for requested model.\"}",
                    TT_LLM_ERR_CONTEXT_LENGTH, "Input is too long for requested model.");
    check_exception("someNewException", "{\"message\":\"new\"}", TT_LLM_ERR_SERVER, "new");
    assert_int_equal(tt_bedrock_exception_class("ThrottlingException", 19, NULL),
                     TT_LLM_ERR_RATE_LIMITED);
    assert_int_equal(tt_bedrock_exception_class("AccessDeniedException", 21, NULL),
                     TT_LLM_ERR_AUTH);
    assert_int_equal(tt_bedrock_exception_class("Nope", 4, NULL), TT_LLM_ERR_NONE);
}

/* A flipped byte anywhere in a message is MALFORMED (CRC), never events. */
static void test_bedrock_bad_crc_is_malformed(void **state)
{
    stream s = {.len = 0};
    add_event(&s, "messageStart", "{\"role\":\"assistant\"}");
    size_t first = s.len;
    add_event(&s, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
    for (size_t i = first; i < s.len; i++) {
        s.b[i] ^= 0x20;
        rec r = {0};
        run(TT_LLM_BEDROCK, 1, 0, s.b, s.len, RANDOM, (unsigned)i, &r);
        assert_int_equal(r.errors, 1);
        /* a flipped length may instead leave the stream waiting: an early end */
        assert_true(r.error.cls == TT_LLM_ERR_MALFORMED || r.error.cls == TT_LLM_ERR_NETWORK);
        assert_null(strstr(log_of(&r), "text"));
        rec_free(&r);
        s.b[i] ^= 0x20;
    }
}

static void test_bedrock_unknown_and_odd_events(void **state)
{
    stream s = {.len = 0};
    add_event(&s, "messageStart", "{\"role\":\"assistant\"}");
    add_event(&s, "somethingNew", "{\"x\":1}");
    add_event(&s, "contentBlockDelta",
              "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"text\":\"hmm\"}}}");
    add_event(&s, "contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":{\"text\":\"ok\"}}");
    add_event(&s, "messageStop", "{\"stopReason\":\"max_tokens\"}");
    add_event(&s, "metadata", "{\"usage\":{\"inputTokens\":3,\"outputTokens\":1}}");
    add_event(&s, "contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":{\"text\":\"late\"}}");
    check_binary(s.b, s.len, "text ok\nusage 3 1\nfinish length\n");
    /* a toolUse delta with no open block; a payload that is not JSON */
    stream t = {.len = 0};
    add_event(&t, "contentBlockDelta",
              "{\"contentBlockIndex\":4,\"delta\":{\"toolUse\":{\"input\":\"{}\"}}}");
    check_binary(t.b, t.len, "error malformed 0 toolUse delta for a block that is not open\n");
    stream u = {.len = 0};
    add_event(&u, "contentBlockDelta", "{nope");
    check_binary(u.b, u.len, "error malformed 0 response is not a JSON object\n");
}

static void test_bedrock_oversized_message_is_malformed(void **state)
{
    size_t big = TT_LLM_EVENT_MAX + 1;
    char *payload = malloc(big + 1);
    char *msg = malloc(big + 256);
    assert_non_null(payload);
    assert_non_null(msg);
    memset(payload, 'a', big);
    payload[big] = '\0';
    const char *names[] = {":message-type"};
    const char *values[] = {"event"};
    size_t n = tt_eventstream_encode(msg, big + 256, names, values, 1, payload, big);
    assert_true(n > 0);
    rec r = {0};
    run(TT_LLM_BEDROCK, 1, 0, msg, n, WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "error malformed 0 stream message too large\n");
    rec_free(&r);
    free(payload);
    free(msg);
}

/* ---- plain bodies and requests ------------------------------------------ */

static void test_bedrock_plain_body(void **state)
{
    static const char body[] =
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"Sure.\"},"
        "{\"toolUse\":{\"toolUseId\":\"t1\",\"name\":\"f\",\"input\":{\"a\":1}}}]}},"
        "\"stopReason\":\"tool_use\",\"usage\":{\"inputTokens\":9,\"outputTokens\":4,"
        "\"totalTokens\":13}}";
    rec r = {0};
    run(TT_LLM_BEDROCK, 0, 0, body, sizeof body - 1, RANDOM, 5, &r);
    assert_string_equal(
        log_of(&r),
        "text Sure.\ntool 0 id=t1 name=f args={\"a\":1}\nusage 9 4\nfinish tool_calls\n");
    rec_free(&r);
    run(TT_LLM_BEDROCK, 0, 0, "{\"message\":\"x\"}", 15, WHOLE, 0, &r);
    assert_string_equal(log_of(&r), "error malformed 0 response has no output.message.content\n");
    rec_free(&r);
}

static void test_bedrock_request_body(void **state)
{
    json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"location\":{\"type\":"
                                "\"string\"}},\"required\":[\"location\"]}",
                                0, NULL);
    json_t *calls = json_loads("[{\"id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":"
                               "\"{\\\"location\\\":\\\"Paris\\\"}\"},"
                               "{\"id\":\"call_2\",\"name\":\"get_time\",\"arguments\":\"\"}]",
                               0, NULL);
    assert_non_null(schema);
    assert_non_null(calls);
    tt_llm_message msgs[] = {
        {.role = "system", .content = "You are a helpful assistant."},
        {.role = "user", .content = "What's the weather and the time in Paris?"},
        {.role = "assistant", .content = "I'll check both.", .tool_calls = calls},
        {.role = "tool", .content = "18°C, cloudy", .tool_call_id = "call_1"},
        {.role = "system", .content = "Answer briefly."},
        {.role = "tool", .content = "14:05", .tool_call_id = "call_2"},
        {.role = "user", .content = "Thanks. And tomorrow?"},
    };
    tt_llm_tool tools[] = {
        {.name = "get_weather",
         .description = "Current weather for a place.",
         .parameters = schema},
        {.name = "get_time", .description = "Local time."},
    };
    tt_llm_request req = {.model = "anthropic.claude-3-haiku-20240307-v1:0",
                          .messages = msgs,
                          .n_messages = 7,
                          .tools = tools,
                          .n_tools = 2,
                          .max_tokens = 512,
                          .temperature = 0.25,
                          .stream = 1};
    char *body = NULL;
    assert_int_equal(tt_llm_build_body(TT_LLM_BEDROCK, &req, &body, NULL), 0);
    check_json_equal(body, "bedrock_request.json");
    free(body);
    /* a tool message without its call id is refused */
    tt_llm_message bad[] = {{.role = "tool", .content = "x"}};
    tt_llm_request r2 = {.model = "m", .messages = bad, .n_messages = 1, .temperature = -1};
    assert_int_equal(tt_llm_build_body(TT_LLM_BEDROCK, &r2, &body, NULL), TT_EINVAL);
    json_decref(schema);
    json_decref(calls);
}

/* A response_schema is a forced tool "output"; its input comes back as TEXT
 * and its stop as "stop", as for Anthropic. */
static void test_bedrock_structured_output(void **state)
{
    json_t *schema = json_loads("{\"type\":\"object\"}", 0, NULL);
    tt_llm_message msgs[] = {{.role = "user", .content = "classify"}};
    tt_llm_request req = {.model = "m",
                          .messages = msgs,
                          .n_messages = 1,
                          .temperature = -1,
                          .response_schema = schema,
                          .stream = 1};
    char *body = NULL;
    assert_int_equal(tt_llm_build_body(TT_LLM_BEDROCK, &req, &body, NULL), 0);
    json_t *root = json_loads(body, 0, NULL);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(root, "toolConfig"), "toolChoice"),
                            "tool"),
            "name")),
        "output");
    assert_null(json_object_get(root, "inferenceConfig")); /* nothing to say there */
    json_decref(root);
    free(body);
    json_decref(schema);

    stream s = {.len = 0};
    add_event(&s, "contentBlockStart",
              "{\"contentBlockIndex\":0,\"start\":{\"toolUse\":{\"toolUseId\":\"x\","
              "\"name\":\"output\"}}}");
    add_event(&s, "contentBlockDelta",
              "{\"contentBlockIndex\":0,\"delta\":{\"toolUse\":{\"input\":\"{\\\"a\\\":1}\"}}}");
    add_event(&s, "contentBlockStop", "{\"contentBlockIndex\":0}");
    add_event(&s, "messageStop", "{\"stopReason\":\"tool_use\"}");
    add_event(&s, "metadata", "{\"usage\":{\"inputTokens\":2,\"outputTokens\":3}}");
    rec r = {0};
    run(TT_LLM_BEDROCK, 1, 1, s.b, s.len, BYTES, 0, &r);
    assert_string_equal(log_of(&r), "text {\"a\":1}\nusage 2 3\nfinish stop\n");
    rec_free(&r);
}

/* The body's SHA-256, which the signature needs, is computed where the body
 * is built (in the thread pool for a large request), not on the loop. */
static void test_bedrock_body_hash_prepared_with_the_body(void **state)
{
    tt_llm_message msgs[] = {{.role = "user", .content = "hello"}};
    tt_llm_request in = {.model = "m", .messages = msgs, .n_messages = 1, .temperature = -1};
    tt_call_request req;
    assert_int_equal(tt_call_request_copy(&in, &req), 0);
    tt_call_prep p = {.steps = TT_PREP_BODY,
                      .req = &req,
                      .provider = TT_LLM_BEDROCK,
                      .max_completion_tokens = 100};
    snprintf(p.model, sizeof p.model, "m");
    tt_call_prep_run(&p);
    assert_int_equal(p.rc, 0);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p.body, p.body_len, d);
    char want[65];
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(p.body_sha256, want);
    free(p.body);
    p.provider = TT_LLM_OPENAI; /* no one else needs it */
    tt_call_prep_run(&p);
    assert_string_equal(p.body_sha256, "");
    free(p.body);
    tt_call_request_free(&req);
}

static void test_bedrock_path_and_headers(void **state)
{
    char path[128];
    assert_int_equal(
        tt_bedrock_path("anthropic.claude-3-haiku-20240307-v1:0", 1, path, sizeof path), 0);
    assert_string_equal(path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
    assert_true(tt_bedrock_path_needs_own_signer(path));
    assert_int_equal(tt_bedrock_path("amazon.titan-text-express-v1", 0, path, sizeof path), 0);
    assert_string_equal(path, "/model/amazon.titan-text-express-v1/converse");
    assert_false(tt_bedrock_path_needs_own_signer(path));
    assert_int_equal(
        tt_bedrock_path("arn:aws:bedrock:us-east-1:1:inference-profile/x", 1, path, sizeof path),
        0);
    assert_string_equal(path, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/"
                              "converse-stream");
    assert_int_equal(tt_bedrock_path("m", 1, path, 10), TT_ETOOLARGE);
    assert_int_equal(tt_bedrock_path("", 1, path, sizeof path), TT_EINVAL);
    char *h[4];
    assert_int_equal(tt_llm_headers(TT_LLM_BEDROCK, NULL, h, 4), 0);
    assert_null(h[0]); /* signed by the transport, no key header */
    assert_string_equal(tt_llm_provider_name(TT_LLM_BEDROCK), "bedrock");
    tt_llm_provider p;
    assert_int_equal(tt_llm_provider_parse("bedrock", &p), 0);
    assert_int_equal(p, TT_LLM_BEDROCK);
    char host[64];
    assert_int_equal(tt_bedrock_url_split("http://127.0.0.1:8123/p/model/a%3Ab/converse", host,
                                          sizeof host, path, sizeof path),
                     0);
    assert_string_equal(host, "127.0.0.1:8123");
    assert_string_equal(path, "/p/model/a%3Ab/converse"); /* as sent: signed as sent */
    assert_int_equal(
        tt_bedrock_url_split("https://bedrock-runtime.us-east-1.amazonaws.com", host, 16, NULL, 0),
        TT_EINVAL); /* does not fit */
    assert_int_equal(tt_bedrock_url_split("not a url", host, sizeof host, NULL, 0), TT_EINVAL);
    char big[128];
    assert_int_equal(tt_bedrock_url_split("https://bedrock-runtime.us-east-1.amazonaws.com:443",
                                          big, sizeof big, NULL, 0),
                     0);
    assert_string_equal(big, "bedrock-runtime.us-east-1.amazonaws.com");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bedrock_stream_text_and_tools_however_cut),
        cmocka_unit_test(test_bedrock_every_prefix_is_an_early_end),
        cmocka_unit_test(test_bedrock_exceptions_classified),
        cmocka_unit_test(test_bedrock_bad_crc_is_malformed),
        cmocka_unit_test(test_bedrock_unknown_and_odd_events),
        cmocka_unit_test(test_bedrock_oversized_message_is_malformed),
        cmocka_unit_test(test_bedrock_plain_body),
        cmocka_unit_test(test_bedrock_request_body),
        cmocka_unit_test(test_bedrock_structured_output),
        cmocka_unit_test(test_bedrock_body_hash_prepared_with_the_body),
        cmocka_unit_test(test_bedrock_path_and_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
