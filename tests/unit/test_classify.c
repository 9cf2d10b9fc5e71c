/* agents/llm/classify.c: every HTTP class with the providers' real error
 * bodies, Retry-After as seconds and as each of the three HTTP-date forms
 * (and as garbage), and which classes are worth a retry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/adapter.h"

/* 1994-11-06 08:49:07 GMT, 30 s before RFC 9110's example date. */
#define NOW_1994 INT64_C(784111747000)
/* 2025-06-01 12:00:00 GMT */
#define NOW_2025 INT64_C(1748779200000)

/* ---- Retry-After -------------------------------------------------------- */

static void test_retry_after_seconds(void **state)
{
    assert_int_equal(tt_llm_parse_retry_after("120", NOW_2025), 120000);
    assert_int_equal(tt_llm_parse_retry_after("0", NOW_2025), 0);
    assert_int_equal(tt_llm_parse_retry_after(" 5 ", NOW_2025), 5000);
    assert_int_equal(tt_llm_parse_retry_after("007", NOW_2025), 7000);
}

static void test_retry_after_http_dates(void **state)
{
    /* The three forms of RFC 9110 section 5.6.7 for the same instant. */
    assert_int_equal(tt_llm_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW_1994), 30000);
    assert_int_equal(tt_llm_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", NOW_1994), 30000);
    assert_int_equal(tt_llm_parse_retry_after("Sun Nov  6 08:49:37 1994", NOW_1994), 30000);
    /* A date in the past means now. */
    assert_int_equal(tt_llm_parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", NOW_1994), 0);
    /* Leap day. */
    assert_int_equal(
        tt_llm_parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", INT64_C(1709164800000) - 5000),
        5000);
    /* RFC 850 two-digit years: within 50 years ahead, else the past century. */
    assert_int_equal(tt_llm_parse_retry_after("Tuesday, 01-Jan-30 00:00:00 GMT", NOW_2025),
                     INT64_C(1893456000000) - NOW_2025);
    assert_int_equal(tt_llm_parse_retry_after("Friday, 31-Dec-99 23:59:59 GMT", NOW_2025), 0);
    assert_int_equal(tt_llm_parse_retry_after("Sun, 01 Jun 2025 12:00:09 GMT", NOW_2025), 9000);
}

static void test_retry_after_garbage(void **state)
{
    const char *bad[] = {
        "",
        "soon",
        "12abc",
        "-5",
        "1.5",
        "99999999999999999999",
        "Sun, 06 Nov 1994 08:49:37",     /* no GMT */
        "Sun, 06 Nov 1994 08:49:37 PST", /* not GMT */
        "Sun, 31 Feb 1994 08:49:37 GMT", /* no such day */
        "Thu, 29 Feb 2023 00:00:00 GMT", /* not a leap year */
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT", /* IMF-fixdate has two-digit days */
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Fun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tt_llm_parse_retry_after(bad[i], NOW_1994) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(tt_llm_parse_retry_after(NULL, NOW_1994), -1);
}

/* curl_getdate() reads the dates; what it would take beyond RFC 9110's three
 * forms is refused, and the edges of time come out as before. */
static void test_retry_after_http_date_edges(void **state)
{
    /* Far future: the exact wait (the planner gives up on a target whose
     * Retry-After is past the call's budget); a five-digit year is garbage. */
    assert_int_equal(tt_llm_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW_2025),
                     INT64_C(253402300799000) - NOW_2025);
    assert_int_equal(tt_llm_parse_retry_after("Sat, 01 Jan 10000 00:00:00 GMT", NOW_2025), -1);
    /* Past, even before the epoch (and the second curl reports as 0, not -1): now. */
    assert_int_equal(tt_llm_parse_retry_after("Mon, 01 Jan 1900 00:00:00 GMT", NOW_2025), 0);
    assert_int_equal(tt_llm_parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", NOW_2025), 0);
    assert_int_equal(tt_llm_parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW_2025), 0);
    /* Trailing spaces and tabs are fine. */
    assert_int_equal(tt_llm_parse_retry_after("Sun, 01 Jun 2025 12:00:09 GMT \t", NOW_2025), 9000);
    /* RFC 850 years follow RFC 9110's 50-year rule, not curl's 1970 pivot. */
    assert_int_equal(tt_llm_parse_retry_after("Tuesday, 01-Jan-75 00:00:00 GMT", NOW_2025),
                     INT64_C(3313526400000) - NOW_2025);
    /* 29 Feb 2000 read in 2060 is 2100, which has none. */
    assert_int_equal(
        tt_llm_parse_retry_after("Tuesday, 29-Feb-00 00:00:00 GMT", INT64_C(2853273600000)), -1);
}

static void test_retry_after_refuses_what_only_curl_reads(void **state)
{
    const char *bad[] = {
        "Mon, 06 Nov 1994 08:49:37 GMT",   /* the weekday contradicts the date */
        "Sun, 06 Nov 1994 08:49:60 GMT",   /* leap second: curl rolls it over */
        "06 Nov 1994 08:49:37 GMT",        /* no weekday */
        "Sun, 06 Nov 1994",                /* no time */
        "Sun, 06 Nov 1994 08:49:37 +0000", /* a numeric zone */
        "Sun, 06 Nov 1994 08:49:37 UTC",   /* UTC is not GMT here */
        "sun, 06 nov 1994 08:49:37 gmt",   /* case matters */
        "Sun,  06 Nov 1994 08:49:37 GMT",  /* two spaces */
        "Sun, 06\tNov 1994 08:49:37 GMT",  /* a tab inside */
        "1994-11-06 08:49:37",             /* ISO 8601 */
        "Nov 6 1994",
        "  Sun, 06 Nov 1994 08:49:37 GMT x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tt_llm_parse_retry_after(bad[i], NOW_1994) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

/* ---- HTTP classes ------------------------------------------------------- */

static tt_llm_error classify(tt_llm_provider p, int status, const char *retry_after,
                             const char *body)
{
    tt_llm_error e;
    memset(&e, 0x5a, sizeof e);
    tt_llm_classify_http(p, status, retry_after, body, body ? strlen(body) : 0, NOW_2025, &e);
    assert_int_equal(e.http_status, status);
    assert_true(strlen(e.message) < sizeof e.message);
    return e;
}

static void test_classify_rate_limited_with_retry_after(void **state)
{
    tt_llm_error e = classify(TT_LLM_OPENAI, 429, "7",
                              "{\"error\":{\"message\":\"Rate limit reached for gpt-4o in "
                              "organization org-x on tokens per min (TPM)\",\"type\":\"tokens\","
                              "\"param\":null,\"code\":\"rate_limit_exceeded\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_RATE_LIMITED);
    assert_int_equal(e.retry_after_ms, 7000);
    assert_string_equal(e.message, "Rate limit reached for gpt-4o in organization org-x on "
                                   "tokens per min (TPM)");

    e = classify(TT_LLM_ANTHROPIC, 429, "Sun, 01 Jun 2025 12:00:30 GMT",
                 "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
                 "\"Number of request tokens has exceeded your per-minute rate limit\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_RATE_LIMITED);
    assert_int_equal(e.retry_after_ms, 30000);

    e = classify(TT_LLM_OPENAI, 429, NULL, NULL);
    assert_int_equal(e.cls, TT_LLM_ERR_RATE_LIMITED);
    assert_int_equal(e.retry_after_ms, -1);
    assert_string_equal(e.message, "HTTP 429");

    e = classify(TT_LLM_OPENAI, 429, "whenever", NULL);
    assert_int_equal(e.retry_after_ms, -1);
}

static void test_classify_overloaded(void **state)
{
    tt_llm_error e = classify(TT_LLM_ANTHROPIC, 529, NULL,
                              "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                              "\"message\":\"Overloaded\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_OVERLOADED);
    assert_string_equal(e.message, "Overloaded");
    e = classify(TT_LLM_OPENAI, 503, "2",
                 "{\"error\":{\"message\":\"The engine is currently overloaded, please try again "
                 "later\",\"type\":\"server_error\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_OVERLOADED);
    assert_int_equal(e.retry_after_ms, 2000);
    e = classify(TT_LLM_OPENAI, 503, NULL, "upstream overloaded\n");
    assert_int_equal(e.cls, TT_LLM_ERR_OVERLOADED);
    assert_string_equal(e.message, "HTTP 503"); /* a non-JSON body is never copied */
}

static void test_classify_server_errors(void **state)
{
    int statuses[] = {500, 502, 503, 504, 520};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        tt_llm_error e =
            classify(TT_LLM_OPENAI, statuses[i], NULL,
                     "<html><body>Bad Gateway: GET /v1/chat/completions</body></html>");
        assert_int_equal(e.cls, TT_LLM_ERR_SERVER);
        assert_true(strncmp(e.message, "HTTP ", 5) == 0);
    }
    tt_llm_error e = classify(TT_LLM_ANTHROPIC, 500, NULL,
                              "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                              "\"Internal server error\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_SERVER);
    assert_string_equal(e.message, "Internal server error");
}

static void test_classify_timeout_and_auth(void **state)
{
    assert_int_equal(classify(TT_LLM_OPENAI, 408, NULL, NULL).cls, TT_LLM_ERR_TIMEOUT);
    tt_llm_error e = classify(TT_LLM_OPENAI, 401, NULL,
                              "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc***\","
                              "\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_AUTH);
    e = classify(TT_LLM_ANTHROPIC, 403, NULL,
                 "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":"
                 "\"Your API key does not have permission to use the specified resource.\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_AUTH);
}

static void test_classify_bad_request(void **state)
{
    int statuses[] = {400, 404, 413, 422, 409};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        assert_int_equal(classify(TT_LLM_OPENAI, statuses[i], NULL,
                                  "{\"error\":{\"message\":\"Invalid value for 'model'\","
                                  "\"type\":\"invalid_request_error\"}}")
                             .cls,
                         TT_LLM_ERR_BAD_REQUEST);
    tt_llm_error e =
        classify(TT_LLM_ANTHROPIC, 413, NULL,
                 "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
                 "\"message\":\"Request exceeds the maximum allowed number of bytes.\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_BAD_REQUEST);
    /* Ollama's {"error": "..."} */
    e = classify(TT_LLM_OPENAI, 404, NULL, "{\"error\":\"model \\\"llama9\\\" not found\"}");
    assert_int_equal(e.cls, TT_LLM_ERR_BAD_REQUEST);
    assert_string_equal(e.message, "model \"llama9\" not found");
    /* FastAPI-style servers */
    e = classify(TT_LLM_OPENAI, 422, NULL, "{\"detail\":\"Field required\"}");
    assert_string_equal(e.message, "Field required");
}

static void test_classify_context_length(void **state)
{
    tt_llm_error e = classify(
        TT_LLM_OPENAI, 400, NULL,
        "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens. However, "
        "your messages resulted in 130415 tokens. Please reduce the length of the messages.\","
        "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":"
        "\"context_length_exceeded\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_CONTEXT_LENGTH);
    /* vLLM: no code, only the message */
    e = classify(TT_LLM_OPENAI, 400, NULL,
                 "{\"object\":\"error\",\"message\":\"This model's maximum context length is 4096 "
                 "tokens. However, you requested 5000 tokens.\",\"type\":\"BadRequestError\","
                 "\"code\":400}");
    assert_int_equal(e.cls, TT_LLM_ERR_CONTEXT_LENGTH);
    e = classify(TT_LLM_ANTHROPIC, 400, NULL,
                 "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                 "\"prompt is too long: 208310 tokens > 200000 maximum\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_CONTEXT_LENGTH);
    assert_string_equal(e.message, "prompt is too long: 208310 tokens > 200000 maximum");
    /* llama.cpp */
    e = classify(TT_LLM_OPENAI, 400, NULL,
                 "{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context "
                 "size, try increasing it\",\"type\":\"exceed_context_size_error\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_CONTEXT_LENGTH);
    /* A 5xx that mentions it is still the server's. */
    e = classify(TT_LLM_OPENAI, 500, NULL,
                 "{\"error\":{\"message\":\"maximum context length\",\"type\":\"server_error\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_SERVER);
}

static void test_classify_content_filter(void **state)
{
    tt_llm_error e = classify(
        TT_LLM_OPENAI, 400, NULL,
        "{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure "
        "OpenAI's content management policy.\",\"type\":null,\"param\":\"prompt\",\"code\":"
        "\"content_filter\",\"status\":400,\"innererror\":{\"code\":"
        "\"ResponsibleAIPolicyViolation\",\"content_filter_result\":{\"hate\":{\"filtered\":true,"
        "\"severity\":\"high\"}}}}}");
    assert_int_equal(e.cls, TT_LLM_ERR_CONTENT_FILTER);
    e = classify(
        TT_LLM_OPENAI, 400, NULL,
        "{\"error\":{\"message\":\"Your request was rejected as a result of our safety "
        "system.\",\"type\":\"invalid_request_error\",\"code\":\"content_policy_violation\"}}");
    assert_int_equal(e.cls, TT_LLM_ERR_CONTENT_FILTER);
}

/* A long message is cut at a character boundary, never inside one. */
static void test_classify_message_truncated_on_utf8_boundary(void **state)
{
    char body[2048];
    char msg[1200];
    size_t n = 0;
    msg[n++] = 'x';
    msg[n++] = 'y';
    while (n + 2 < 1100) { /* "é" is two bytes; byte 255 is the second half of one */
        msg[n++] = (char)0xc3;
        msg[n++] = (char)0xa9;
    }
    msg[n] = '\0';
    snprintf(body, sizeof body, "{\"error\":{\"message\":\"%s\",\"type\":\"server_error\"}}", msg);
    tt_llm_error e = classify(TT_LLM_OPENAI, 500, NULL, body);
    size_t len = strlen(e.message);
    assert_int_equal(len, 254); /* "xy" and 126 whole characters */
    assert_memory_equal(e.message, msg, len);
}

static void test_retryable_classes_and_names(void **state)
{
    const tt_llm_error_class yes[] = {TT_LLM_ERR_RATE_LIMITED, TT_LLM_ERR_OVERLOADED,
                                      TT_LLM_ERR_SERVER, TT_LLM_ERR_TIMEOUT, TT_LLM_ERR_NETWORK};
    const tt_llm_error_class no[] = {TT_LLM_ERR_NONE,           TT_LLM_ERR_CONTEXT_LENGTH,
                                     TT_LLM_ERR_BAD_REQUEST,    TT_LLM_ERR_AUTH,
                                     TT_LLM_ERR_CONTENT_FILTER, TT_LLM_ERR_MALFORMED,
                                     TT_LLM_ERR_CANCELLED};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(tt_llm_error_retryable(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(tt_llm_error_retryable(no[i]));
    /* Every class has its own name. */
    for (int i = 0; i < TT_LLM_ERR__LAST; i++) {
        assert_string_not_equal(tt_llm_error_name((tt_llm_error_class)i), "unknown");
        for (int j = 0; j < i; j++)
            assert_string_not_equal(tt_llm_error_name((tt_llm_error_class)i),
                                    tt_llm_error_name((tt_llm_error_class)j));
    }
    assert_string_equal(tt_llm_error_name(TT_LLM_ERR__LAST), "unknown");
    assert_string_equal(tt_llm_error_name(TT_LLM_ERR_CONTEXT_LENGTH), "context_length");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_http_dates),
        cmocka_unit_test(test_retry_after_garbage),
        cmocka_unit_test(test_retry_after_http_date_edges),
        cmocka_unit_test(test_retry_after_refuses_what_only_curl_reads),
        cmocka_unit_test(test_classify_rate_limited_with_retry_after),
        cmocka_unit_test(test_classify_overloaded),
        cmocka_unit_test(test_classify_server_errors),
        cmocka_unit_test(test_classify_timeout_and_auth),
        cmocka_unit_test(test_classify_bad_request),
        cmocka_unit_test(test_classify_context_length),
        cmocka_unit_test(test_classify_content_filter),
        cmocka_unit_test(test_classify_message_truncated_on_utf8_boundary),
        cmocka_unit_test(test_retryable_classes_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
