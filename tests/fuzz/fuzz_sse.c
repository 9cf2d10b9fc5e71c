/* libFuzzer target for the SSE parser in agents/llm/adapter.c.
 *
 * Input: byte 0 picks where the stream is split in two, byte 1 picks the cap
 * (max_event_bytes), the rest is the stream. The stream is parsed three ways
 * (split in two, one byte at a time, whole) and also by a small reference
 * parser written here straight from the WHATWG algorithm on the whole buffer.
 * All four must agree on the result code and on the exact event sequence,
 * compared as a count and a 64-bit hash of (name, data) pairs. Along the way:
 * every event's name is 1..63 bytes, its data at most the cap and never NULL,
 * and the parser's buffers never pass the cap. Any disagreement aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "protocol/errors.h"
#include "fuzz_check.h"

typedef struct seen {
    uint64_t hash;
    size_t n;
    size_t cap;
} seen;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3u; /* FNV-1a */
}

static void record(seen *s, const char *name, size_t name_len, const char *data, size_t data_len)
{
    mix(&s->hash, &name_len, sizeof name_len);
    mix(&s->hash, name, name_len);
    mix(&s->hash, &data_len, sizeof data_len);
    mix(&s->hash, data, data_len);
    s->n++;
}

static int on_event(const char *name, size_t name_len, const char *data, size_t data_len, void *ud)
{
    seen *s = ud;
    CHECK(name != NULL && data != NULL);
    CHECK(name_len >= 1 && name_len <= 63);
    CHECK(data_len <= s->cap);
    record(s, name, name_len, data, data_len);
    return 0;
}

static void check_parser(const tt_sse *p, size_t cap)
{
    if (p->started == 0) {
        CHECK(p->line_len < 3); /* BOM bytes matched so far */
    } else {
        CHECK(p->line_len <= cap);
    }
    CHECK(p->line_cap <= cap || p->line == NULL);
    CHECK(p->data_len <= cap && p->data_cap <= cap);
    CHECK(p->name_len < sizeof p->name);
    CHECK(p->has_data || p->data_len == 0);
}

/* Feed buf in pieces ending at cuts[0..ncuts) then len; stop at an error. */
static int run(const char *buf, size_t len, size_t cap, const size_t *cuts, size_t ncuts, seen *s)
{
    tt_sse p;
    tt_sse_init(&p, cap, on_event, s);
    int rc = 0;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = tt_sse_feed(&p, buf + at, end - at);
        check_parser(&p, cap);
        at = end;
    }
    if (rc) {
        CHECK(rc == TT_ETOOLARGE || rc == TT_ENOMEM);
        CHECK(tt_sse_feed(&p, "\n\n", 2) == rc); /* errors are sticky */
    }
    tt_sse_free(&p);
    return rc;
}

static int run_bytewise(const char *buf, size_t len, size_t cap, seen *s)
{
    tt_sse p;
    tt_sse_init(&p, cap, on_event, s);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        rc = tt_sse_feed(&p, buf + i, 1);
        check_parser(&p, cap);
    }
    tt_sse_free(&p);
    return rc;
}

/* ---- the reference: whole buffer, no state carried between pieces ------- */

typedef struct ref_event {
    char name[64];
    size_t name_len;
    char *data;
    size_t data_len;
    int has_data;
} ref_event;

static int ref_line(ref_event *e, const char *l, size_t n, size_t cap, seen *s)
{
    if (n == 0) {
        if (e->has_data)
            record(s, e->name_len ? e->name : "message", e->name_len ? e->name_len : 7,
                   e->data ? e->data : "", e->data_len);
        e->has_data = 0;
        e->data_len = 0;
        e->name_len = 0;
        return 0;
    }
    if (l[0] == ':')
        return 0;
    size_t f = 0;
    while (f < n && l[f] != ':')
        f++;
    const char *v = l + f;
    size_t vn = 0;
    if (f < n) {
        v = l + f + 1;
        vn = n - f - 1;
        if (vn > 0 && v[0] == ' ') {
            v++;
            vn--;
        }
    }
    if (f == 5 && memcmp(l, "event", 5) == 0) {
        if (vn > 63)
            return TT_ETOOLARGE;
        memcpy(e->name, v, vn);
        e->name_len = vn;
    } else if (f == 4 && memcmp(l, "data", 4) == 0) {
        size_t need = e->data_len + (e->has_data ? 1 : 0) + vn;
        if (need > cap)
            return TT_ETOOLARGE;
        char *d = realloc(e->data, need + 1);
        if (!d)
            return TT_ENOMEM;
        e->data = d;
        if (e->has_data)
            e->data[e->data_len++] = '\n';
        memcpy(e->data + e->data_len, v, vn);
        e->data_len += vn;
        e->has_data = 1;
    }
    return 0;
}

static int reference(const char *buf, size_t len, size_t cap, seen *s)
{
    static const char bom[] = "\xEF\xBB\xBF";
    ref_event e;
    memset(&e, 0, sizeof e);
    size_t i = 0;
    if (len >= 3 && memcmp(buf, bom, 3) == 0)
        i = 3;
    else if (len < 3 && memcmp(buf, bom, len) == 0)
        i = len; /* a stream that ends inside a possible BOM holds no line */
    int rc = 0;
    while (i < len && rc == 0) {
        size_t j = i;
        while (j < len && buf[j] != '\r' && buf[j] != '\n')
            j++;
        if (j - i > cap) {
            rc = TT_ETOOLARGE; /* also for the last line, ended or not */
            break;
        }
        if (j == len)
            break; /* an unfinished line: dropped */
        rc = ref_line(&e, buf + i, j - i, cap, s);
        i = j + 1;
        if (buf[j] == '\r' && i < len && buf[i] == '\n')
            i++;
    }
    free(e.data);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;
    size_t cut = (size_t)data[0] * len / 255;
    size_t cap = data[1] < 128 ? data[1] : (size_t)(data[1] - 127) * 64;

    seen want = {0xcbf29ce484222325u, 0, cap};
    int want_rc = reference(buf, len, cap, &want);

    seen got = {0xcbf29ce484222325u, 0, cap};
    int rc = run(buf, len, cap, &cut, 1, &got);
    CHECK(rc == want_rc);
    CHECK(got.n == want.n && got.hash == want.hash);

    seen whole = {0xcbf29ce484222325u, 0, cap};
    CHECK(run(buf, len, cap, NULL, 0, &whole) == want_rc);
    CHECK(whole.n == want.n && whole.hash == want.hash);

    seen bytes = {0xcbf29ce484222325u, 0, cap};
    CHECK(run_bytewise(buf, len, cap, &bytes) == want_rc);
    CHECK(bytes.n == want.n && bytes.hash == want.hash);
    return 0;
}
