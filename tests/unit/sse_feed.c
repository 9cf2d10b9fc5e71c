/* The recorder and the feeders the SSE tests share (see sse_feed.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sse_feed.h"

/* ---- recorder ---- */

void rec_put(rec *r, const char *s, size_t n)
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

void rec_field(rec *r, const char *s, size_t n)
{
    char num[32];
    int k = snprintf(num, sizeof num, "%zu:", n);
    rec_put(r, num, (size_t)k);
    rec_put(r, s, n);
}

int on_event(const char *name, size_t name_len, const char *data, size_t data_len, void *ud)
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

void rec_free(rec *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* The expected recording for n (name, data) pairs of C strings. */
void expect(rec *r, int n, ...)
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

void assert_same(const rec *a, const rec *b)
{
    if (a->len != b->len || (a->len && memcmp(a->buf, b->buf, a->len) != 0))
        fail_msg("events differ:\n  got  %s\n  want %s", a->buf ? a->buf : "",
                 b->buf ? b->buf : "");
    assert_int_equal(a->n, b->n);
}

/* ---- feeding ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Feed in at the given piece boundaries: cuts[] are increasing offsets. The
 * first non-zero result ends the run, as a real caller would. */
int feed_cuts(const char *in, size_t len, size_t cap, rec *r, const size_t *cuts, size_t ncuts)
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

int feed_whole(const char *in, size_t len, size_t cap, rec *r)
{
    return feed_cuts(in, len, cap, r, NULL, 0);
}

int feed_bytes(const char *in, size_t len, size_t cap, rec *r)
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
int feed_random(const char *in, size_t len, size_t cap, rec *r, uint64_t seed, size_t max_piece)
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
void run_all_n(const char *in, size_t len, size_t cap, const rec *want, int want_rc)
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

void run_all(const char *in, size_t cap, const rec *want, int want_rc)
{
    run_all_n(in, strlen(in), cap, want, want_rc);
}
