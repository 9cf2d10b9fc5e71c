/* The AWS event-stream framing, parsed incrementally (see eventstream.h).
 *
 * The prelude's 12 bytes are collected first; once its lengths and CRC are
 * good, one buffer of exactly the message's total length is allocated (the
 * cap was checked first) and filled as bytes come, so a message is copied
 * once whatever the pieces. The CRC-32 is a 256-entry table built on first
 * use (no zlib in this layer). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/eventstream.h"
#include "protocol/errors.h"

/* ---- CRC-32 ------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t tt_crc32(uint32_t crc, const void *data, size_t len)
{
    (void)pthread_once(&crc_once, crc_init);
    const unsigned char *b = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* ---- headers ------------------------------------------------------------ */

static tt_es_str *header_slot(tt_es_message *m, const char *name, size_t n)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {":message-type", offsetof(tt_es_message, message_type)},
        {":event-type", offsetof(tt_es_message, event_type)},
        {":exception-type", offsetof(tt_es_message, exception_type)},
        {":content-type", offsetof(tt_es_message, content_type)},
        {":error-code", offsetof(tt_es_message, error_code)},
        {":error-message", offsetof(tt_es_message, error_message)},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == n && memcmp(known[i].name, name, n) == 0)
            return (tt_es_str *)((char *)m + known[i].off);
    return NULL;
}

/* Size of a fixed-width value of type t, or -1 for variable (6, 7) or bad. */
static int fixed_size(unsigned t)
{
    static const int sizes[] = {0, 0, 1, 2, 4, 8, -1, -1, 8, 16};
    return t < sizeof sizes / sizeof sizes[0] ? sizes[t] : -2;
}

static int parse_headers(const unsigned char *h, size_t n, tt_es_message *m)
{
    size_t i = 0;
    while (i < n) {
        size_t name_len = h[i++];
        if (name_len == 0 || n - i < name_len + 1)
            return TT_EINVAL;
        const char *name = (const char *)h + i;
        i += name_len;
        unsigned type = h[i++];
        int fs = fixed_size(type);
        if (fs == -2)
            return TT_EINVAL;
        size_t vlen = (size_t)fs;
        if (fs == -1) {
            if (n - i < 2)
                return TT_EINVAL;
            vlen = (size_t)h[i] << 8 | h[i + 1];
            i += 2;
        }
        if (n - i < vlen)
            return TT_EINVAL;
        tt_es_str *slot = type == 7 ? header_slot(m, name, name_len) : NULL;
        if (slot) {
            slot->p = (const char *)h + i;
            slot->len = vlen;
        }
        i += vlen;
    }
    return 0;
}

/* ---- the parser --------------------------------------------------------- */

void tt_eventstream_init(tt_eventstream *p, size_t max_message, tt_es_fn fn, void *ud)
{
    memset(p, 0, sizeof *p);
    p->fn = fn;
    p->ud = ud;
    p->max_message = max_message < TT_ES_MIN_MESSAGE ? TT_ES_MIN_MESSAGE : max_message;
}

void tt_eventstream_free(tt_eventstream *p)
{
    free(p->msg);
    memset(p, 0, sizeof *p);
}

int tt_eventstream_idle(const tt_eventstream *p)
{
    return p->have == 0;
}

/* The prelude is complete: check it and make room for the message. */
static int begin_message(tt_eventstream *p)
{
    uint32_t total = be32(p->prelude), hlen = be32(p->prelude + 4);
    if (tt_crc32(0, p->prelude, 8) != be32(p->prelude + 8))
        return TT_EINVAL;
    if (total < TT_ES_MIN_MESSAGE || hlen > total - TT_ES_MIN_MESSAGE)
        return TT_EINVAL;
    if (total > p->max_message)
        return TT_ETOOLARGE;
    p->msg = malloc(total);
    if (!p->msg)
        return TT_ENOMEM;
    memcpy(p->msg, p->prelude, TT_ES_PRELUDE);
    p->total = total;
    return 0;
}

/* The message is complete: check it and deliver it; *stop gets the
 * callback's value. */
static int end_message(tt_eventstream *p, int *stop)
{
    const unsigned char *b = (const unsigned char *)p->msg;
    size_t total = p->total, hlen = be32(b + 4);
    if (tt_crc32(0, b, total - 4) != be32(b + total - 4))
        return TT_EINVAL;
    tt_es_message m;
    memset(&m, 0, sizeof m);
    if (parse_headers(b + TT_ES_PRELUDE, hlen, &m) != 0)
        return TT_EINVAL;
    m.payload = p->msg + TT_ES_PRELUDE + hlen;
    m.payload_len = total - TT_ES_MIN_MESSAGE - hlen;
    p->count++;
    *stop = p->fn(&m, p->ud);
    free(p->msg);
    p->msg = NULL;
    p->have = p->total = 0;
    return 0;
}

int tt_eventstream_feed(tt_eventstream *p, const char *buf, size_t len)
{
    if (p->err)
        return p->err;
    size_t at = 0;
    while (at < len) {
        int rc = 0;
        if (p->have < TT_ES_PRELUDE) {
            size_t k = TT_ES_PRELUDE - p->have;
            if (k > len - at)
                k = len - at;
            memcpy(p->prelude + p->have, buf + at, k);
            p->have += k;
            at += k;
            if (p->have == TT_ES_PRELUDE)
                rc = begin_message(p);
        } else {
            size_t k = p->total - p->have;
            if (k > len - at)
                k = len - at;
            memcpy(p->msg + p->have, buf + at, k);
            p->have += k;
            at += k;
        }
        int stop = 0;
        if (rc == 0 && p->total && p->have == p->total)
            rc = end_message(p, &stop);
        if (stop)
            return stop; /* the callback's: the parser is still good */
        if (rc != 0) {
            p->err = rc;
            free(p->msg);
            p->msg = NULL;
            return p->err;
        }
    }
    return 0;
}

/* ---- encoding (tests and tools) ------------------------------------------- */

size_t tt_eventstream_encode(char *out, size_t cap, const char *const *names,
                             const char *const *values, size_t n, const char *payload,
                             size_t payload_len)
{
    size_t hlen = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(names[i]), vl = strlen(values[i]);
        if (nl == 0 || nl > 255 || vl > 65535)
            return 0;
        hlen += 1 + nl + 1 + 2 + vl;
    }
    size_t total = TT_ES_MIN_MESSAGE + hlen + payload_len;
    if (total > cap || total > UINT32_MAX)
        return 0;
    unsigned char *b = (unsigned char *)out;
    put32(b, (uint32_t)total);
    put32(b + 4, (uint32_t)hlen);
    put32(b + 8, tt_crc32(0, b, 8));
    size_t at = TT_ES_PRELUDE;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(names[i]), vl = strlen(values[i]);
        b[at++] = (unsigned char)nl;
        memcpy(b + at, names[i], nl);
        at += nl;
        b[at++] = 7;
        b[at++] = (unsigned char)(vl >> 8);
        b[at++] = (unsigned char)vl;
        memcpy(b + at, values[i], vl);
        at += vl;
    }
    if (payload_len)
        memcpy(b + at, payload, payload_len);
    at += payload_len;
    put32(b + at, tt_crc32(0, b, at));
    return total;
}
