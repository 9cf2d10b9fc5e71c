/* Encoding of server-to-client frames: session events and replies.
 *
 * An encoded frame is a malloc'd buffer with `headroom` spare bytes in front
 * (the transport writes its frame header there: LWS_PRE for libwebsockets) and
 * a NUL after the JSON text. Keys come out in a fixed order: type, session,
 * seq, ts, then the body's own keys in insertion order. The code is in
 * frame.c, beside the decoding of client frames: the wire format both ways. */
#ifndef TT_EVENT_H
#define TT_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* The largest encoded frame: past it an event does not encode
 * (TT_ETOOLARGE). Far above any text limit. */
#define TT_EVENT_BYTES_MAX ((size_t)256 << 20)

typedef struct tt_frame {
    char *buf; /* allocation; JSON text starts at buf + headroom */
    size_t headroom;
    size_t len; /* bytes of JSON text */
} tt_frame;

static inline const char *tt_frame_text(const tt_frame *f)
{
    return f->buf + f->headroom;
}

/* Encode a session event. Consumes body (an object, or NULL). */
int tt_event_encode(const char *type, const char *sid, uint64_t seq, int64_t ts_ms, json_t *body,
                    size_t headroom, tt_frame *out);

/* Encode any object (consumed) as a frame. */
int tt_frame_from_json(json_t *obj, size_t headroom, tt_frame *out);

/* Copy len bytes of JSON text into a new frame. */
int tt_frame_from_text(const char *text, size_t len, size_t headroom, tt_frame *out);

void tt_frame_release(tt_frame *f);

/* {"type":"ok","re":re, ...fields} (fields consumed; re may be NULL). */
json_t *tt_reply_ok(const char *re, json_t *fields);
/* {"type":"error","re":re,"code":code,"message":msg,"retryable":retryable}. */
json_t *tt_reply_error(const char *re, const char *code, const char *msg, int retryable);

/* RFC 3339 UTC with milliseconds into out[32]: 2026-11-23T12:00:00.123Z. */
void tt_rfc3339(int64_t ms, char out[32]);

#endif
