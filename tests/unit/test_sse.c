/* Unit tests for the SSE parser (agents/llm/adapter.c), the event-stream format: line ends,
 * fields, names, BOM, the end of the stream, and the callback's stop. Caps
 * and recorded provider streams are in test_sse_streams.c.
 *
 * Most cases are checked through run_all() (sse_feed.h), which feeds the same
 * input in every way and asserts each way yields the same events and the
 * same result. Leaks are checked by the sanitizer build (LeakSanitizer runs
 * at exit). */
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

/* ---- line ends ---------------------------------------------------------- */

static void test_sse_lf_event(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "hello");
    run_all("data: hello\n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_cr_and_crlf_and_mixed(void **state)
{
    rec want = {0};
    expect(&want, 3, "message", "a", "message", "b", "message", "c\nd");
    run_all("data: a\r\rdata: b\r\n\r\ndata: c\rdata: d\n\r\n", CAP, &want, 0);
    run_all("data: a\n\ndata: b\n\ndata: c\r\ndata: d\r\r", CAP, &want, 0);
    rec_free(&want);
}

/* The LF of a CRLF arriving in the next piece must not read as a blank line:
 * "x" and "y" are one event, not two. */
static void test_sse_crlf_split_between_cr_and_lf(void **state)
{
    rec r = {0}, want = {0};
    expect(&want, 1, "message", "x\ny");
    tt_sse p;
    tt_sse_init(&p, CAP, on_event, &r);
    assert_int_equal(tt_sse_feed(&p, "data: x\r", 8), 0);
    assert_int_equal(tt_sse_feed(&p, "\n", 1), 0);
    assert_int_equal(tt_sse_feed(&p, "data: y\r", 8), 0);
    assert_int_equal(tt_sse_feed(&p, "\n", 1), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(tt_sse_feed(&p, "\r", 1), 0); /* the blank line */
    assert_int_equal(r.n, 1);
    assert_int_equal(tt_sse_feed(&p, "\n", 1), 0); /* its LF: not another line */
    tt_sse_free(&p);
    assert_same(&r, &want);
    rec_free(&r);
    rec_free(&want);
}

/* CR then a non-LF byte: the CR alone ended the line. */
static void test_sse_cr_then_other_byte(void **state)
{
    rec want = {0};
    expect(&want, 2, "message", "1", "message", "2");
    run_all("data:1\r\rdata:2\r\r", CAP, &want, 0);
    rec_free(&want);
}

/* ---- fields ------------------------------------------------------------- */

static void test_sse_multiline_data_joined(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "a\nb\n c\n");
    run_all("data: a\ndata:b\ndata:  c\ndata:\n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_one_optional_space(void **state)
{
    rec want = {0};
    expect(&want, 4, "message", "x", "message", "x", "message", " x", "message", "x ");
    run_all("data:x\n\ndata: x\n\ndata:  x\n\ndata: x \n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_empty_data_is_dispatched(void **state)
{
    rec want = {0};
    expect(&want, 2, "message", "", "message", "\n");
    run_all("data:\n\ndata\ndata\n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_event_names(void **state)
{
    rec want = {0};
    /* a name lasts one event; "event:" empty means "message"; the last name wins */
    expect(&want, 4, "delta", "1", "message", "2", "message", "3", "b", "4");
    run_all("event: delta\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"
            "event: a\nevent:b\ndata: 4\n\n",
            CAP, &want, 0);
    rec_free(&want);
}

/* Per the spec a blank line resets the name even when nothing is dispatched. */
static void test_sse_event_without_data_not_dispatched(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "x");
    run_all("event: ping\n\nevent: other\n\n\ndata: x\n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_event_name_cap(void **state)
{
    char name63[64], in[256];
    memset(name63, 'n', 63);
    name63[63] = '\0';
    rec want = {0};
    expect(&want, 1, name63, "ok");
    snprintf(in, sizeof in, "event: %s\ndata: ok\n\n", name63);
    run_all(in, CAP, &want, 0);
    rec_free(&want);

    /* 64 bytes: refused, even without a space after the colon */
    expect(&want, 1, "message", "before");
    snprintf(in, sizeof in, "data: before\n\nevent:%sN\ndata: after\n\n", name63);
    run_all(in, CAP, &want, TT_ETOOLARGE);
    rec_free(&want);
}

static void test_sse_comments_ignored(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "a\nb");
    run_all(": keep-alive\n\n:\ndata: a\n: in between\ndata: b\n:\n\n: trailing\n\n", CAP, &want,
            0);
    rec_free(&want);
}

static void test_sse_field_without_colon(void **state)
{
    rec want = {0};
    /* "event" alone is an empty name; "foo" alone is an unknown field */
    expect(&want, 1, "message", "x");
    run_all("event\ndata: x\n\nfoo\n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_id_retry_unknown_ignored(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "x");
    run_all("id: 5\nretry: 100\nid\nretry\nfoo: bar\nData: no\ndata : no\ndata: x\n\n"
            "id: 6\n\nretry: 1\n\n",
            CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_colon_in_value_kept(void **state)
{
    rec want = {0};
    expect(&want, 1, "a:b", "{\"k\": \"v:w\"}");
    run_all("event: a:b\ndata: {\"k\": \"v:w\"}\n\n", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_embedded_nul_passed_through(void **state)
{
    static const char in[] = "data: a\0b\n\n";
    rec want = {0};
    rec_field(&want, "message", 7);
    rec_field(&want, "a\0b", 3);
    rec_put(&want, ";", 1);
    want.n = 1;
    run_all_n(in, sizeof in - 1, CAP, &want, 0);
    rec_free(&want);
}

/* ---- BOM, blank lines, the end of the stream ---------------------------- */

static void test_sse_bom_at_start_skipped(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "x");
    run_all("\xEF\xBB\xBF"
            "data: x\n\n",
            CAP, &want, 0);
    /* a BOM then a blank line */
    run_all("\xEF\xBB\xBF\ndata: x\n\n", CAP, &want, 0);
    rec_free(&want);

    /* The BOM does not count against the cap; a partial one is content and does. */
    expect(&want, 1, "message", "");
    run_all("\xEF\xBB\xBF"
            "data:\n\n",
            5, &want, 0);
    rec_free(&want);
    run_all("\xEF\xBB\xBF\n\n", 0, &want, 0);
    run_all("\xEF\xBB"
            "ab\n",
            3, &want, TT_ETOOLARGE);
    run_all("\xEF\xBB"
            "a\n",
            3, &want, 0);
    run_all("\xEF\xBB\n", 1, &want, TT_ETOOLARGE);
}

/* Only one BOM, only at the start: anywhere else it is part of a field name,
 * so "\xEF\xBB\xBF" "data" is an unknown field. */
static void test_sse_bom_elsewhere_is_content(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "a");
    run_all("data: a\n\n\xEF\xBB\xBF"
            "data: b\n\n",
            CAP, &want, 0);
    rec_free(&want);

    run_all("\xEF\xBB\xBF\xEF\xBB\xBF"
            "data: b\n\n",
            CAP, &want, 0);
    /* a partial BOM is not a BOM */
    run_all("\xEF\xBB"
            "data: b\n\n",
            CAP, &want, 0);
    run_all("\xEF\n\ndata", CAP, &want, 0);
}

static void test_sse_blank_lines_alone_dispatch_nothing(void **state)
{
    rec want = {0};
    run_all("\n\n\r\n\r\r\n", CAP, &want, 0);
    run_all("", CAP, &want, 0);
}

static void test_sse_unterminated_event_dropped(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "1");
    run_all("data: 1\n\ndata: 2\n", CAP, &want, 0);
    run_all("data: 1\n\ndata: 2", CAP, &want, 0);
    run_all("data: 1\n\ndata: 2\r", CAP, &want, 0);
    rec_free(&want);
}

static void test_sse_done_is_ordinary_data(void **state)
{
    rec want = {0};
    expect(&want, 1, "message", "[DONE]");
    run_all("data: [DONE]\n\n", CAP, &want, 0);
    rec_free(&want);
}

/* ---- the callback ------------------------------------------------------- */

static void test_sse_callback_nonzero_stops(void **state)
{
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    rec r = {.stop_at = 2, .stop_rc = 42};
    tt_sse p;
    tt_sse_init(&p, CAP, on_event, &r);
    assert_int_equal(tt_sse_feed(&p, in, strlen(in)), 42);
    assert_int_equal(r.n, 2); /* the third event was not parsed */

    /* The parser is still usable: a later piece parses normally. */
    r.stop_at = 0;
    assert_int_equal(tt_sse_feed(&p, "data: 4\n\n", 9), 0);
    tt_sse_free(&p);

    rec want = {0};
    expect(&want, 3, "message", "1", "message", "2", "message", "4");
    assert_same(&r, &want);
    rec_free(&r);
    rec_free(&want);

    /* Negative values are the callback's own and not sticky. */
    r.stop_at = 1;
    r.stop_rc = TT_ETOOLARGE;
    tt_sse_init(&p, CAP, on_event, &r);
    assert_int_equal(tt_sse_feed(&p, "data: 1\r", 8), 0);
    assert_int_equal(tt_sse_feed(&p, "\r", 1), TT_ETOOLARGE); /* the callback's */
    assert_int_equal(tt_sse_feed(&p, "data: 2\r\n\r\n", 12), 0);
    tt_sse_free(&p);
    assert_int_equal(r.n, 2);
    rec_free(&r);
}

/* Stopped on a CR whose LF arrives in the next piece: feeding on works and
 * the LF is taken as the CR's. */
static void test_sse_stop_on_cr_keeps_crlf_state(void **state)
{
    rec r = {.stop_at = 1, .stop_rc = 1};
    tt_sse p;
    tt_sse_init(&p, CAP, on_event, &r);
    assert_int_equal(tt_sse_feed(&p, "data: 1\r\n\r", 11), 1);
    assert_int_equal(tt_sse_feed(&p, "\ndata: 2\r\n", 10), 0);
    assert_int_equal(tt_sse_feed(&p, "\r\n", 2), 0);
    tt_sse_free(&p);
    rec want = {0};
    expect(&want, 2, "message", "1", "message", "2");
    assert_same(&r, &want);
    rec_free(&r);
    rec_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_lf_event),
        cmocka_unit_test(test_sse_cr_and_crlf_and_mixed),
        cmocka_unit_test(test_sse_crlf_split_between_cr_and_lf),
        cmocka_unit_test(test_sse_cr_then_other_byte),
        cmocka_unit_test(test_sse_multiline_data_joined),
        cmocka_unit_test(test_sse_one_optional_space),
        cmocka_unit_test(test_sse_empty_data_is_dispatched),
        cmocka_unit_test(test_sse_event_names),
        cmocka_unit_test(test_sse_event_without_data_not_dispatched),
        cmocka_unit_test(test_sse_event_name_cap),
        cmocka_unit_test(test_sse_comments_ignored),
        cmocka_unit_test(test_sse_field_without_colon),
        cmocka_unit_test(test_sse_id_retry_unknown_ignored),
        cmocka_unit_test(test_sse_colon_in_value_kept),
        cmocka_unit_test(test_sse_embedded_nul_passed_through),
        cmocka_unit_test(test_sse_bom_at_start_skipped),
        cmocka_unit_test(test_sse_bom_elsewhere_is_content),
        cmocka_unit_test(test_sse_blank_lines_alone_dispatch_nothing),
        cmocka_unit_test(test_sse_unterminated_event_dropped),
        cmocka_unit_test(test_sse_done_is_ordinary_data),
        cmocka_unit_test(test_sse_callback_nonzero_stops),
        cmocka_unit_test(test_sse_stop_on_cr_keeps_crlf_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
