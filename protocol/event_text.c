/* A text event's frame, written directly (event_text.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/event_text.h"
#include "protocol/utf8.h"

/* The bytes s takes once escaped as jansson escapes it. */
static size_t escaped_len(const char *s, size_t len)
{
    size_t n = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            n += 1;
        else if (c < 0x20)
            n += 5;
    }
    return n;
}

/* "s", escaped, at d; returns the end. */
static char *put_string(char *d, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    *d++ = '"';
    size_t run = 0; /* bytes copied as they are, in one memcpy */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        memcpy(d, s + i - run, run);
        d += run;
        run = 0;
        *d++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *d++ = (char)c;
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        default:
            memcpy(d, "u00", 3);
            d[3] = hex[c >> 4];
            d[4] = hex[c & 15];
            d += 5;
        }
    }
    memcpy(d, s + len - run, run);
    d += run;
    *d++ = '"';
    return d;
}

static char *put_key(char *d, const char *key)
{
    size_t n = strlen(key);
    memcpy(d, key, n);
    return d + n;
}

int tt_event_encode_text(const char *type, const char *sid, uint64_t seq, int64_t ts_ms,
                         const char *id, const char *text, size_t len, size_t headroom,
                         tt_frame *out)
{
    memset(out, 0, sizeof *out);
    if (!type || !sid || !id || !text)
        return TT_EINVAL;
    size_t ltype = strlen(type), lsid = strlen(sid), lid = strlen(id);
    if (len > TT_EVENT_TEXT_MAX || ltype + lsid + lid > TT_EVENT_TEXT_MAX)
        return TT_ETOOLARGE;
    if (!tt_utf8_valid(type, ltype) || !tt_utf8_valid(sid, lsid) || !tt_utf8_valid(id, lid) ||
        !tt_utf8_valid(text, len))
        return TT_EINVAL;
    char ts[32], num[24];
    tt_rfc3339(ts_ms, ts);
    /* as tt_event_encode writes it: a json_int_t (signed) */
    int lnum = snprintf(num, sizeof num, "%" PRId64, (int64_t)seq);
    /* {"type":,"session":,"seq":,"ts":,"message_id":,"text":} and 2 quotes per string */
    size_t cap = 64 + (size_t)lnum + strlen(ts) + escaped_len(type, ltype) +
                 escaped_len(sid, lsid) + escaped_len(id, lid) + escaped_len(text, len) + 10;
    char *buf = malloc(headroom + cap + 1);
    if (!buf)
        return TT_ENOMEM;
    char *d = buf + headroom;
    d = put_key(d, "{\"type\":");
    d = put_string(d, type, ltype);
    d = put_key(d, ",\"session\":");
    d = put_string(d, sid, lsid);
    d = put_key(d, ",\"seq\":");
    d = put_key(d, num);
    d = put_key(d, ",\"ts\":");
    d = put_string(d, ts, strlen(ts));
    d = put_key(d, ",\"message_id\":");
    d = put_string(d, id, lid);
    d = put_key(d, ",\"text\":");
    d = put_string(d, text, len);
    *d++ = '}';
    *d = '\0';
    out->buf = buf;
    out->headroom = headroom;
    out->len = (size_t)(d - (buf + headroom));
    return 0;
}
