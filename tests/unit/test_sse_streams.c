/* Unit tests for the SSE parser (agents/llm/adapter.c) on whole streams: the caps (enforced as
 * bytes arrive, sticky once crossed), a large event in linear time, and
 * recorded OpenAI and Anthropic streams with LF, CR and CRLF line ends. The
 * format, line by line, is tested in test_sse.c.
 *
 * Cases go through run_all() (sse_feed.h): the same input fed in every way.
 * Leaks are checked by the sanitizer build (LeakSanitizer runs at exit). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agents/llm/adapter.h"
#include "protocol/errors.h"
#include "sse_feed.h"

/* Same input with every LF replaced by sep ("\r" or "\r\n"). Caller frees. */
static char *with_line_ends(const char *in, const char *sep)
{
    size_t n = 0, sl = strlen(sep);
    for (const char *c = in; *c; c++)
        n += *c == '\n' ? sl : 1;
    char *out = malloc(n + 1);
    assert_non_null(out);
    char *o = out;
    for (const char *c = in; *c; c++) {
        if (*c == '\n') {
            memcpy(o, sep, sl);
            o += sl;
        } else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

/* ---- caps --------------------------------------------------------------- */

static void test_sse_line_cap_exact_and_over(void **state)
{
    rec want = {0};
    /* "data:0123456789a" is 16 bytes: exactly the cap */
    expect(&want, 1, "message", "0123456789a");
    run_all("data:0123456789a\n\n", 16, &want, 0);
    rec_free(&want);

    /* 17 bytes: refused, whole or split, before or after the line end came */
    expect(&want, 1, "message", "ok");
    run_all("data:ok\n\ndata:0123456789ab\n\n", 16, &want, TT_ETOOLARGE);
    run_all("data:ok\n\ndata:0123456789ab", 16, &want, TT_ETOOLARGE);
    /* every line counts, comments and unknown fields too */
    run_all("data:ok\n\n:01234567890123456\ndata:x\n\n", 16, &want, TT_ETOOLARGE);
    run_all("data:ok\n\nid:0123456789abcdef\n", 16, &want, TT_ETOOLARGE);
    rec_free(&want);
}

static void test_sse_event_data_cap(void **state)
{
    rec want = {0};
    /* two lines of 10 data bytes joined: 21 bytes */
    expect(&want, 1, "message", "0123456789\n0123456789");
    run_all("data:0123456789\ndata:0123456789\n\n", 21, &want, 0);
    rec_free(&want);

    expect(&want, 0);
    run_all("data:0123456789\ndata:0123456789\n\n", 20, &want, TT_ETOOLARGE);
    /* the separators count: twenty-two empty data lines are 21 bytes */
    run_all("data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n"
            "data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n\n",
            20, &want, TT_ETOOLARGE);
    rec_free(&want);
}

static void test_sse_cap_error_is_sticky(void **state)
{
    rec r = {0};
    tt_sse p;
    tt_sse_init(&p, 8, on_event, &r);
    assert_int_equal(tt_sse_feed(&p, "data: 0123", 10), TT_ETOOLARGE);
    assert_int_equal(tt_sse_feed(&p, "\n\n", 2), TT_ETOOLARGE);
    assert_int_equal(tt_sse_feed(&p, "data:1\n\n", 8), TT_ETOOLARGE);
    assert_int_equal(r.n, 0);
    tt_sse_free(&p);
    tt_sse_free(&p); /* twice is harmless */
    rec_free(&r);
}

/* The cap is enforced as bytes arrive, so a stream that never ends its line
 * cannot grow the buffer past the cap. */
static void test_sse_cap_enforced_before_line_end(void **state)
{
    rec r = {0};
    tt_sse p;
    tt_sse_init(&p, 1024, on_event, &r);
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    assert_int_equal(tt_sse_feed(&p, "data:", 5), 0);
    int rc = 0, i;
    for (i = 0; i < 100 && rc == 0; i++)
        rc = tt_sse_feed(&p, chunk, sizeof chunk);
    assert_int_equal(rc, TT_ETOOLARGE);
    assert_int_equal(i, 11); /* 5 + 10 * 100 fit; the 11th chunk passes 1024 */
    assert_true(p.line_cap <= 1024);
    tt_sse_free(&p);
    rec_free(&r);
}

/* A 4 MiB event fed one byte at a time finishes quickly: nothing is scanned
 * or copied twice (a quadratic parser would take hours here). */
static void test_sse_large_event_bytewise_is_linear(void **state)
{
    size_t n = 4u << 20;
    char *in = malloc(n + 16);
    assert_non_null(in);
    memcpy(in, "data:", 5);
    memset(in + 5, 'z', n);
    memcpy(in + 5 + n, "\n\n", 2);
    rec r = {0};
    tt_sse p;
    tt_sse_init(&p, n + 5, on_event, &r);
    for (size_t i = 0; i < n + 7; i++)
        assert_int_equal(tt_sse_feed(&p, in + i, 1), 0);
    tt_sse_free(&p);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.len, strlen("7:message4194304:") + n + 1);
    rec_free(&r);
    free(in);
}

/* ---- recorded provider streams ------------------------------------------ */

/* Anthropic Messages API, stream: true, with a text block and a tool_use
 * block (input_json_delta), a ping and a keep-alive comment. */
static const char ANTHROPIC[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":"
    "\"claude-3-5-sonnet-20241022\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
    "{\"input_tokens\":472,\"output_tokens\":2}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Okay, let me check the weather\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\" in San Francisco.\\n\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    ": keep-alive\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
    "\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\","
    "\"input\":{}}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"ncisco, CA\\\"}\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char *const ANTHROPIC_NAMES[] = {
    "message_start",       "content_block_start", "ping",
    "content_block_delta", "content_block_delta", "content_block_stop",
    "content_block_start", "content_block_delta", "content_block_delta",
    "content_block_delta", "content_block_stop",  "message_delta",
    "message_stop",
};

/* OpenAI Chat Completions, stream: true, stream_options.include_usage. */
static const char OPENAI[] =
    "data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":"
    "1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":"
    "\"fp_e2bde53e6e\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],"
    "\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":"
    "1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":"
    "\"fp_e2bde53e6e\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":"
    "1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":"
    "\"fp_e2bde53e6e\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"! How can I "
    "help?\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":"
    "1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":"
    "\"fp_e2bde53e6e\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":"
    "1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":"
    "\"fp_e2bde53e6e\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
    "\"completion_tokens\":9,\"total_tokens\":18}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

/* The reference recording, built from the text by hand rather than by the
 * parser: each "data: " line's value under its "event: " name. */
static void reference(const char *stream, rec *want)
{
    const char *name = "message";
    size_t name_len = 7;
    for (const char *s = stream; *s;) {
        const char *eol = strchr(s, '\n');
        if (strncmp(s, "event: ", 7) == 0) {
            name = s + 7;
            name_len = (size_t)(eol - name);
        } else if (strncmp(s, "data: ", 6) == 0) {
            rec_field(want, name, name_len);
            rec_field(want, s + 6, (size_t)(eol - s - 6));
            rec_put(want, ";", 1);
            want->n++;
            name = "message";
            name_len = 7;
        }
        s = eol + 1;
    }
}

static void check_stream(const char *stream, int n_events)
{
    rec want = {0};
    reference(stream, &want);
    assert_int_equal(want.n, n_events);
    run_all(stream, CAP, &want, 0);
    char *cr = with_line_ends(stream, "\r");
    char *crlf = with_line_ends(stream, "\r\n");
    run_all(cr, CAP, &want, 0);
    run_all(crlf, CAP, &want, 0);
    free(cr);
    free(crlf);
    rec_free(&want);
}

static void test_sse_anthropic_stream(void **state)
{
    size_t n = sizeof ANTHROPIC_NAMES / sizeof ANTHROPIC_NAMES[0];
    check_stream(ANTHROPIC, (int)n);

    /* the names, in order, straight from the parser */
    rec r = {0};
    assert_int_equal(feed_whole(ANTHROPIC, strlen(ANTHROPIC), CAP, &r), 0);
    const char *at = r.buf;
    for (size_t i = 0; i < n; i++) {
        char head[80];
        snprintf(head, sizeof head, "%zu:%s", strlen(ANTHROPIC_NAMES[i]), ANTHROPIC_NAMES[i]);
        at = strstr(at, head);
        assert_non_null(at);
        at += strlen(head);
    }
    rec_free(&r);
}

static void test_sse_openai_stream(void **state)
{
    check_stream(OPENAI, 6);
    rec r = {0};
    assert_int_equal(feed_whole(OPENAI, strlen(OPENAI), CAP, &r), 0);
    static const char tail[] = "7:message6:[DONE];";
    assert_true(r.len >= sizeof tail - 1);
    assert_memory_equal(r.buf + r.len - (sizeof tail - 1), tail, sizeof tail - 1);
    rec_free(&r);
}

/* A provider stream with a BOM and an event over the cap: the events before
 * it arrive, then TT_ETOOLARGE, whichever way the bytes were cut. */
static void test_sse_stream_over_cap(void **state)
{
    rec want = {0};
    expect(&want, 1, "message_start", "{}");
    run_all("\xEF\xBB\xBF"
            "event: message_start\ndata: {}\n\nevent: content_block_delta\n"
            "data: {\"text\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n\n"
            "event: message_stop\ndata: {}\n\n",
            48, &want, TT_ETOOLARGE);
    rec_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_line_cap_exact_and_over),
        cmocka_unit_test(test_sse_event_data_cap),
        cmocka_unit_test(test_sse_cap_error_is_sticky),
        cmocka_unit_test(test_sse_cap_enforced_before_line_end),
        cmocka_unit_test(test_sse_large_event_bytewise_is_linear),
        cmocka_unit_test(test_sse_anthropic_stream),
        cmocka_unit_test(test_sse_openai_stream),
        cmocka_unit_test(test_sse_stream_over_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
