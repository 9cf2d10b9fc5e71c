/* Unit tests for agents/llm/sse.c: line ends, fields, names, BOM, caps, the
 * callback's stop, and recorded OpenAI and Anthropic streams.
 *
 * Most cases are checked through run_all(), which feeds the same input whole,
 * one byte at a time, split in two at every position, and in seeded random
 * pieces, and asserts each way yields the same events and the same result.
 * Events are recorded as "<name_len>:<name><data_len>:<data>;" so a
 * comparison is exact, embedded NULs and newlines included. Leaks are checked
 * by the sanitizer build (LeakSanitizer runs at exit). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agents/llm/sse.h"
#include "protocol/errors.h"

/* ---- recorder ----------------------------------------------------------- */

typedef struct rec {
    char *buf;
    size_t len, cap;
    int n;       /* events seen */
    int stop_at; /* return stop_rc on this event (1-based); 0: never */
    int stop_rc;
} rec;

static void rec_put(rec *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1)
            cap *= 2;
        r->buf = realloc(r->buf, cap);
        assert_non_null(r->buf);
        r->cap = cap;
    }
    if (n)
        memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

static void rec_field(rec *r, const char *s, size_t n)
{
    char num[32];
    int k = snprintf(num, sizeof num, "%zu:", n);
    rec_put(r, num, (size_t)k);
    rec_put(r, s, n);
}

static int on_event(const char *name, size_t name_len, const char *data, size_t data_len, void *ud)
{
    rec *r = ud;
    assert_non_null(name);
    assert_non_null(data);
    assert_true(name_len > 0 && name_len <= 63);
    rec_field(r, name, name_len);
    rec_field(r, data, data_len);
    rec_put(r, ";", 1);
    r->n++;
    return r->n == r->stop_at ? r->stop_rc : 0;
}

static void rec_free(rec *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* The expected recording for n (name, data) pairs of C strings. */
static void expect(rec *r, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *);
        const char *data = va_arg(ap, const char *);
        rec_field(r, name, strlen(name));
        rec_field(r, data, strlen(data));
        rec_put(r, ";", 1);
        r->n++;
    }
    va_end(ap);
}

static void assert_same(const rec *a, const rec *b)
{
    if (a->len != b->len || (a->len && memcmp(a->buf, b->buf, a->len) != 0))
        fail_msg("events differ:\n  got  %s\n  want %s", a->buf ? a->buf : "",
                 b->buf ? b->buf : "");
    assert_int_equal(a->n, b->n);
}

/* ---- feeding ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Feed in at the given piece boundaries: cuts[] are increasing offsets. The
 * first non-zero result ends the run, as a real caller would. */
static int feed_cuts(const char *in, size_t len, size_t cap, rec *r, const size_t *cuts,
                     size_t ncuts)
{
    tt_sse p;
    tt_sse_init(&p, cap, on_event, r);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = tt_sse_feed(&p, in + at, end - at);
        /* before the BOM is settled, line_len counts its bytes matched */
        assert_true(p.started ? p.line_len <= cap : p.line_len < 3);
        assert_true(p.data_len <= cap && p.name_len < sizeof p.name);
        at = end;
    }
    tt_sse_free(&p);
    return rc;
}

static int feed_whole(const char *in, size_t len, size_t cap, rec *r)
{
    return feed_cuts(in, len, cap, r, NULL, 0);
}

static int feed_bytes(const char *in, size_t len, size_t cap, rec *r)
{
    tt_sse p;
    tt_sse_init(&p, cap, on_event, r);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = tt_sse_feed(&p, in + i, 1);
    tt_sse_free(&p);
    return rc;
}

/* Pieces of 1..max_piece bytes, sizes drawn from a seeded xorshift. */
static int feed_random(const char *in, size_t len, size_t cap, rec *r, uint64_t seed,
                       size_t max_piece)
{
    tt_sse p;
    tt_sse_init(&p, cap, on_event, r);
    int rc = 0;
    size_t at = 0;
    uint64_t s = seed | 1;
    while (at < len && rc == 0) {
        size_t n = 1 + (size_t)(rng_next(&s) % max_piece);
        if (n > len - at)
            n = len - at;
        rc = tt_sse_feed(&p, in + at, n);
        at += n;
    }
    tt_sse_free(&p);
    return rc;
}

/* Feed in every way; each must match want and return want_rc. */
static void run_all_n(const char *in, size_t len, size_t cap, const rec *want, int want_rc)
{
    rec r = {0};
    assert_int_equal(feed_whole(in, len, cap, &r), want_rc);
    assert_same(&r, want);
    rec_free(&r);

    assert_int_equal(feed_bytes(in, len, cap, &r), want_rc);
    assert_same(&r, want);
    rec_free(&r);

    for (size_t cut = 0; cut <= len && len <= 4096; cut++) {
        assert_int_equal(feed_cuts(in, len, cap, &r, &cut, 1), want_rc);
        assert_same(&r, want);
        rec_free(&r);
    }

    static const size_t pieces[] = {2, 3, 7, 64, 1000};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        for (uint64_t seed = 1; seed <= 8; seed++) {
            assert_int_equal(feed_random(in, len, cap, &r, seed * 0x9E3779B97F4A7C15u, pieces[k]),
                             want_rc);
            assert_same(&r, want);
            rec_free(&r);
        }
    }
}

static void run_all(const char *in, size_t cap, const rec *want, int want_rc)
{
    run_all_n(in, strlen(in), cap, want, want_rc);
}

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

#define CAP 4096

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
