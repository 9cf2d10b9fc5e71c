/* The server-sent events parser behind every streaming provider adapter.
 *
 * Providers (OpenAI, Anthropic, ...) stream completions as text/event-stream;
 * libcurl hands us the body in whatever pieces the network produced. This file
 * turns those pieces into whole events following the WHATWG "event stream
 * interpretation" algorithm, minus the parts EventSource needs and we do not
 * (last event id, reconnection time).
 *
 * Cost is amortised O(n): each input byte is looked at a constant number of
 * times (the scan for a line end never restarts, and the scan for the colon
 * stops at it). A line that arrives whole inside one piece is parsed in
 * place; only a line split across pieces is copied into p->line, each byte at
 * most once. Data bytes are copied once more into p->data. Both buffers grow
 * geometrically and never past max_event_bytes, so a hostile stream costs at
 * most 2 * max_event_bytes of memory.
 *
 * Invariants between calls: line_len <= max_event_bytes once past the BOM
 * (before, it counts BOM bytes matched, see skip_bom), data_len <=
 * max_event_bytes, name_len < sizeof name; after_cr is set only when the last
 * byte fed was CR; p->line never holds a line end. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/sse.h"
#include "protocol/errors.h"

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

/* A parser error loses bytes of the stream, so it is sticky: p->started keeps
 * the code and every later tt_sse_feed() returns it. Callback values are not
 * errors and never pass through here. */
static int fail(tt_sse *p, int rc)
{
    p->started = rc;
    return rc;
}

void tt_sse_init(tt_sse *p, size_t max_event_bytes, tt_sse_fn fn, void *ud)
{
    memset(p, 0, sizeof *p);
    p->fn = fn;
    p->ud = ud;
    p->max_event_bytes = max_event_bytes;
}

void tt_sse_free(tt_sse *p)
{
    free(p->line);
    free(p->data);
    memset(p, 0, sizeof *p);
}

/* Make room for need bytes in *buf (capacity *cap). need never passes the
 * cap, checked by the caller, so the buffer never grows past it either. */
static int reserve(char **buf, size_t *cap, size_t need, size_t max)
{
    assert(need <= max);
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n = n > max / 2 ? max : n * 2;
    if (n > max)
        n = max;
    char *b = realloc(*buf, n);
    if (!b)
        return TT_ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

/* Append n bytes to the unfinished line, enforcing the per-line cap. */
static int line_append(tt_sse *p, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n > p->max_event_bytes - p->line_len)
        return fail(p, TT_ETOOLARGE);
    if (reserve(&p->line, &p->line_cap, p->line_len + n, p->max_event_bytes))
        return fail(p, TT_ENOMEM);
    memcpy(p->line + p->line_len, s, n);
    p->line_len += n;
    return 0;
}

/* A blank line: hand over the event if it has data, then start afresh. The
 * name is reset even when nothing is dispatched (an "event:" with no data
 * does not leak into the next event). */
static int dispatch(tt_sse *p)
{
    int rc = 0;
    if (p->has_data) {
        const char *name = p->name_len ? p->name : "message";
        size_t name_len = p->name_len ? p->name_len : 7;
        /* data may be NULL when every data line was empty; never hand the
         * callback a NULL pointer. */
        rc = p->fn(name, name_len, p->data ? p->data : "", p->data_len, p->ud);
    }
    p->has_data = 0;
    p->data_len = 0;
    p->name_len = 0;
    return rc;
}

static int add_data(tt_sse *p, const char *v, size_t n)
{
    size_t sep = p->has_data ? 1 : 0;
    size_t max = p->max_event_bytes;
    if (n > max || sep > max - n || p->data_len > max - n - sep)
        return fail(p, TT_ETOOLARGE);
    if (reserve(&p->data, &p->data_cap, p->data_len + sep + n, max))
        return fail(p, TT_ENOMEM);
    if (sep)
        p->data[p->data_len++] = '\n';
    if (n)
        memcpy(p->data + p->data_len, v, n);
    p->data_len += n;
    p->has_data = 1;
    return 0;
}

/* One complete line, without its terminator. s may point into the caller's
 * buffer or into p->line. */
static int process_line(tt_sse *p, const char *s, size_t n)
{
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0; /* comment; providers send ": keep-alive" */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0)
        return add_data(p, v, vlen);
    if (flen == 5 && memcmp(s, "event", 5) == 0) {
        if (vlen >= sizeof p->name)
            return fail(p, TT_ETOOLARGE);
        if (vlen)
            memcpy(p->name, v, vlen);
        p->name_len = vlen;
        return 0;
    }
    /* "id", "retry" and unknown fields are ignored, as the spec says. */
    return 0;
}

/* Before the first real byte: swallow a UTF-8 BOM, which may itself arrive
 * split. While !p->started, p->line_len counts the BOM bytes matched so far;
 * they are not stored, since they are known. The BOM is not part of any line
 * and does not count against the cap. On a mismatch the bytes matched are
 * content after all: BOM bytes are never CR or LF, so they simply begin the
 * first line, and only then are they counted. Returns the bytes consumed. */
static size_t skip_bom(tt_sse *p, const char *buf, size_t len, int *rc)
{
    size_t i = 0;
    *rc = 0;
    while (i < len && (unsigned char)buf[i] == BOM[p->line_len]) {
        i++;
        if (++p->line_len == sizeof BOM) {
            p->line_len = 0;
            p->started = 1;
            return i;
        }
    }
    if (i == len)
        return i; /* still a prefix of the BOM: wait for more */
    size_t matched = p->line_len;
    p->line_len = 0;
    p->started = 1;
    *rc = line_append(p, (const char *)BOM, matched);
    return i;
}

static int feed(tt_sse *p, const char *buf, size_t len)
{
    int rc = 0;
    size_t i = 0;
    if (!p->started) {
        i = skip_bom(p, buf, len, &rc);
        if (rc)
            return rc;
    }
    while (i < len) {
        if (p->after_cr) {
            p->after_cr = 0;
            if (buf[i] == '\n') {
                i++; /* the LF of a CRLF whose CR ended the previous line */
                continue;
            }
        }
        /* Find the next line end; the scan starts past what was already
         * seen, so no byte is scanned twice. */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (j == len)
            return line_append(p, buf + i, len - i); /* wait for the rest */
        if (p->line_len == 0) {
            /* The whole line is in buf: parse it where it lies. */
            if (j - i > p->max_event_bytes)
                return fail(p, TT_ETOOLARGE);
            rc = process_line(p, buf + i, j - i);
        } else {
            rc = line_append(p, buf + i, j - i);
            if (rc)
                return rc;
            rc = process_line(p, p->line, p->line_len);
            p->line_len = 0;
        }
        /* Keep the CR state right even when stopping here, so a caller that
         * goes on feeding after a callback's stop sees a consistent parser. */
        p->after_cr = buf[j] == '\r';
        if (rc)
            return rc;
        i = j + 1;
    }
    return 0;
}

int tt_sse_feed(tt_sse *p, const char *buf, size_t len)
{
    if (p->started < 0)
        return p->started; /* failed earlier: the stream has lost bytes */
    if (len == 0)
        return 0;
    return feed(p, buf, len);
}
