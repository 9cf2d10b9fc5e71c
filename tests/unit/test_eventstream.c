/* agents/llm/eventstream.c: the AWS event-stream framing. Messages written
 * as hex here were produced by an independent implementation (Python's
 * zlib.crc32 and struct) from the layouts of AWS's event-stream test
 * messages (an empty message, a payload without headers, a payload with one
 * string header, every header type). Every stream is parsed whole, cut in two
 * at every point, byte by byte and in random pieces, with the same result;
 * bad CRCs, lengths and headers are refused and the refusal sticks; a
 * message over the cap is refused from its prelude alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/eventstream.h"
#include "protocol/errors.h"

#define EMPTY_MESSAGE "000000100000000005c248eb7d98c8ff"
#define NO_HEADERS "0000001d00000000fd528c5a7b27666f6f273a27626172277dc3653936"
#define ONE_HEADER                                                                                 \
    "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27" \
    "666f6f273a27626172277d8d9c08b1"
#define ALL_HEADERS                                                                                \
    "000000cc000000af0fae64ca0a6576656e742d74797065040000a00c0c636f6e74656e742d74797065070010617"  \
    "0706c69636174696f6e2f6a736f6e0a626f6f6c2066616c73650109626f6f6c207472756500046279746502cf08"  \
    "627974652062756606001449276d2061206c6974746c6520746561706f74210974696d657374616d70080000000"  \
    "000845fed05696e74313603002a05696e7436340500000000028757b20475756964090102030405060708090a0b"  \
    "0c0d0e0f107b27666f6f273a27626172277daba5f10c"

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    return n;
}

typedef struct seen {
    char log[8192];
    size_t len;
    int stop_after; /* return 1 from the callback after this many (0: never) */
    int n;
} seen;

static void add_str(seen *s, const char *what, const tt_es_str *v)
{
    if (!v->p)
        return;
    s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, " %s=%.*s", what,
                               (int)v->len, v->p);
}

static int on_message(const tt_es_message *m, void *ud)
{
    seen *s = ud;
    s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, "msg");
    add_str(s, "type", &m->message_type);
    add_str(s, "event", &m->event_type);
    add_str(s, "exception", &m->exception_type);
    add_str(s, "ct", &m->content_type);
    s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, " payload=%.*s\n",
                               (int)m->payload_len, m->payload);
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* Parse buf cut at the given points (ascending); returns the first non-zero rc. */
static int parse_cuts(const unsigned char *buf, size_t len, const size_t *cuts, size_t ncuts,
                      size_t cap, seen *s)
{
    tt_eventstream p;
    tt_eventstream_init(&p, cap, on_message, s);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = tt_eventstream_feed(&p, (const char *)buf + at, end - at);
        at = end;
    }
    if (rc == 0 && !tt_eventstream_idle(&p))
        rc = 1; /* a partial message at the end */
    if (rc < 0)
        assert_int_equal(tt_eventstream_feed(&p, (const char *)buf, 1), rc); /* sticky */
    tt_eventstream_free(&p);
    tt_eventstream_free(&p); /* twice is harmless */
    return rc;
}

/* Whole, every cut in two, byte by byte and random pieces: the same log and rc. */
static void check_all_ways(const unsigned char *buf, size_t len, size_t cap, int want_rc,
                           const char *want_log)
{
    seen whole = {0};
    assert_int_equal(parse_cuts(buf, len, NULL, 0, cap, &whole), want_rc);
    assert_string_equal(whole.log, want_log);
    for (size_t cut = 0; cut <= len; cut++) {
        seen s = {0};
        assert_int_equal(parse_cuts(buf, len, &cut, 1, cap, &s), want_rc);
        assert_string_equal(s.log, want_log);
    }
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    seen bytes = {0};
    assert_int_equal(parse_cuts(buf, len, cuts, len ? len - 1 : 0, cap, &bytes), want_rc);
    assert_string_equal(bytes.log, want_log);
    for (unsigned seed = 1; seed <= 50; seed++) {
        unsigned x = seed;
        size_t n = 0, at = 0;
        while (1) {
            x = x * 1103515245u + 12345u;
            at += 1 + (x >> 16) % 23;
            if (at >= len)
                break;
            cuts[n++] = at;
        }
        seen r = {0};
        assert_int_equal(parse_cuts(buf, len, cuts, n, cap, &r), want_rc);
        assert_string_equal(r.log, want_log);
    }
    free(cuts);
}

static void test_crc32_check_value(void **state)
{
    assert_int_equal(tt_crc32(0, "123456789", 9), 0xCBF43926u);
    /* continued in pieces */
    assert_int_equal(tt_crc32(tt_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(tt_crc32(0, "", 0), 0);
}

static void test_aws_messages_all_ways(void **state)
{
    unsigned char buf[1024];
    size_t n = unhex(EMPTY_MESSAGE NO_HEADERS ONE_HEADER ALL_HEADERS, buf);
    check_all_ways(buf, n, 4096, 0,
                   "msg payload=\n"
                   "msg payload={'foo':'bar'}\n"
                   "msg payload={'foo':'bar'}\n"
                   "msg payload={'foo':'bar'}\n");
}

/* What Bedrock sends: ":event-type", ":content-type", ":message-type". */
static void test_encode_round_trip_with_bedrock_headers(void **state)
{
    static const char *const names[] = {":event-type", ":content-type", ":message-type"};
    static const char *const values[] = {"contentBlockDelta", "application/json", "event"};
    static const char *const ex_names[] = {":exception-type", ":message-type"};
    static const char *const ex_values[] = {"throttlingException", "exception"};
    char buf[1024];
    size_t a = tt_eventstream_encode(buf, sizeof buf, names, values, 3, "{\"x\":1}", 7);
    assert_true(a > 0);
    size_t b = tt_eventstream_encode(buf + a, sizeof buf - a, ex_names, ex_values, 2,
                                     "{\"message\":\"slow down\"}", 23);
    assert_true(b > 0);
    check_all_ways((unsigned char *)buf, a + b, 4096, 0,
                   "msg type=event event=contentBlockDelta ct=application/json payload={\"x\":1}\n"
                   "msg type=exception exception=throttlingException "
                   "payload={\"message\":\"slow down\"}\n");
    /* too small a buffer, an empty name: nothing written */
    assert_int_equal(tt_eventstream_encode(buf, 20, names, values, 3, "", 0), 0);
    static const char *const bad[] = {""};
    assert_int_equal(tt_eventstream_encode(buf, sizeof buf, bad, values, 1, "", 0), 0);
}

static void test_bad_crcs_refused_and_sticky(void **state)
{
    unsigned char good[256], buf[256];
    size_t n = unhex(ONE_HEADER, good);
    for (size_t i = 0; i < n; i++) { /* any single flipped bit is caught */
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(buf, good, n);
            buf[i] ^= (unsigned char)(1u << bit);
            seen s = {0};
            int rc = parse_cuts(buf, n, NULL, 0, 4096, &s);
            /* a flipped length bit may also just leave the message incomplete */
            assert_true(rc == TT_EINVAL || rc == TT_ETOOLARGE || (i < 4 && rc == 1));
            assert_int_equal(s.n, 0);
        }
    }
    /* a good message, then a bad one: the first is delivered, then the error */
    size_t k = unhex(NO_HEADERS NO_HEADERS, buf);
    buf[k - 1] ^= 1;
    check_all_ways(buf, k, 4096, TT_EINVAL, "msg payload={'foo':'bar'}\n");
}

/* Lengths that cannot be: total < 16, headers past the message; headers cut
 * short or of an unknown type (with the CRCs made right). */
static void test_bad_shapes_refused(void **state)
{
    unsigned char b[64];
    memset(b, 0, sizeof b);
    /* total 15 */
    b[3] = 15;
    uint32_t c = tt_crc32(0, b, 8);
    b[8] = (unsigned char)(c >> 24), b[9] = (unsigned char)(c >> 16);
    b[10] = (unsigned char)(c >> 8), b[11] = (unsigned char)c;
    seen s = {0};
    assert_int_equal(parse_cuts(b, 12, NULL, 0, 4096, &s), TT_EINVAL);
    /* total 20, headers 5 (past the end) */
    memset(b, 0, sizeof b);
    b[3] = 20, b[7] = 5;
    c = tt_crc32(0, b, 8);
    b[8] = (unsigned char)(c >> 24), b[9] = (unsigned char)(c >> 16);
    b[10] = (unsigned char)(c >> 8), b[11] = (unsigned char)c;
    assert_int_equal(parse_cuts(b, 20, NULL, 0, 4096, &s), TT_EINVAL);
    /* a header of type 10, and one cut short: CRCs right, shapes wrong */
    for (int i = 0; i < 2; i++) {
        unsigned char m[64];
        size_t total = i == 0 ? 21 : 24;
        memset(m, 0, sizeof m);
        m[3] = (unsigned char)total;
        m[7] = i == 0 ? 1 : 4;
        c = tt_crc32(0, m, 8);
        for (int k = 0; k < 4; k++)
            m[8 + k] = (unsigned char)(c >> (24 - 8 * k));
        if (i == 0) {
            m[12] = 1; /* name length 1 ... with no room: type missing */
        } else {
            m[12] = 1, m[13] = 'a', m[14] = 7, m[15] = 0xff; /* string length 0xff.. past end */
        }
        c = tt_crc32(0, m, total - 4);
        for (int k = 0; k < 4; k++)
            m[total - 4 + k] = (unsigned char)(c >> (24 - 8 * k));
        seen t = {0};
        assert_int_equal(parse_cuts(m, total, NULL, 0, 4096, &t), TT_EINVAL);
        assert_int_equal(t.n, 0);
    }
}

/* Over the cap: refused from the prelude, before the rest arrives. */
static void test_oversized_refused_from_prelude(void **state)
{
    unsigned char buf[256];
    size_t n = unhex(ALL_HEADERS, buf); /* 204 bytes */
    seen s = {0};
    tt_eventstream p;
    tt_eventstream_init(&p, 203, on_message, &s);
    assert_int_equal(tt_eventstream_feed(&p, (const char *)buf, 11), 0);
    assert_int_equal(tt_eventstream_feed(&p, (const char *)buf + 11, 1), TT_ETOOLARGE);
    assert_null(p.msg);
    assert_int_equal(tt_eventstream_feed(&p, (const char *)buf + 12, n - 12), TT_ETOOLARGE);
    tt_eventstream_free(&p);
    check_all_ways(buf, n, 204, 0, "msg payload={'foo':'bar'}\n");
    /* a prelude claiming 4 GiB is refused at once, nothing allocated */
    unsigned char huge[12] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    uint32_t c = tt_crc32(0, huge, 8);
    for (int k = 0; k < 4; k++)
        huge[8 + k] = (unsigned char)(c >> (24 - 8 * k));
    assert_int_equal(parse_cuts(huge, 12, NULL, 0, 1u << 20, &s), TT_ETOOLARGE);
}

/* The callback's stop: returned as is, the rest not parsed, the parser still good. */
static void test_callback_stop(void **state)
{
    unsigned char buf[128];
    size_t n = unhex(NO_HEADERS NO_HEADERS, buf);
    seen s = {.stop_after = 1};
    tt_eventstream p;
    tt_eventstream_init(&p, 4096, on_message, &s);
    assert_int_equal(tt_eventstream_feed(&p, (const char *)buf, n), 1);
    assert_int_equal(s.n, 1);
    assert_true(tt_eventstream_idle(&p));
    s.stop_after = 0;
    assert_int_equal(tt_eventstream_feed(&p, (const char *)buf + n / 2, n / 2), 0);
    assert_int_equal(s.n, 2);
    tt_eventstream_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_check_value),
        cmocka_unit_test(test_aws_messages_all_ways),
        cmocka_unit_test(test_encode_round_trip_with_bedrock_headers),
        cmocka_unit_test(test_bad_crcs_refused_and_sticky),
        cmocka_unit_test(test_bad_shapes_refused),
        cmocka_unit_test(test_oversized_refused_from_prelude),
        cmocka_unit_test(test_callback_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
