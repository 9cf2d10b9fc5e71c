/* An incremental parser for the AWS event-stream binary framing
 * (application/vnd.amazon.eventstream), as Bedrock's ConverseStream sends it.
 *
 * One message on the wire, all integers big-endian:
 *
 *   total length (u32) | headers length (u32) | prelude CRC32 (u32, of the 8 bytes before)
 *   headers (headers length bytes)
 *   payload (total - headers length - 16 bytes)
 *   message CRC32 (u32, of every byte of the message before it)
 *
 * A header is: name length (u8), name, value type (u8), value. Value types:
 * 0 true, 1 false (no bytes), 2 byte (1), 3 short (2), 4 int (4), 5 long (8),
 * 6 byte array and 7 string (u16 length, then the bytes), 8 timestamp (8),
 * 9 UUID (16). Only string headers are passed on (":message-type",
 * ":event-type", ":exception-type", ":content-type", ":error-code",
 * ":error-message"); the others are checked for shape and skipped.
 *
 * Bytes arrive in any pieces, down to one at a time. Every message is
 * checked before it is delivered: lengths (total at least 16, headers within
 * the message, total at most max_message), both CRCs, and every header's
 * shape. A message that fails is TT_EINVAL (sticky); one over the cap is
 * TT_ETOOLARGE (sticky, detected from the prelude, before buffering it).
 *
 *     tt_eventstream p;
 *     tt_eventstream_init(&p, 1 << 20, on_message, ctx);
 *     ... for each body piece: rc = tt_eventstream_feed(&p, piece, n); stop on rc ...
 *     tt_eventstream_free(&p); */
#ifndef TT_EVENTSTREAM_H
#define TT_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define TT_ES_PRELUDE 12
#define TT_ES_MIN_MESSAGE 16 /* prelude + message CRC */

/* A string header's value: not NUL-terminated; NULL when absent. */
typedef struct tt_es_str {
    const char *p;
    size_t len;
} tt_es_str;

/* One message. Pointers are into the parser's buffer, valid during the call. */
typedef struct tt_es_message {
    tt_es_str message_type;   /* ":message-type": "event", "exception" or "error" */
    tt_es_str event_type;     /* ":event-type" */
    tt_es_str exception_type; /* ":exception-type" */
    tt_es_str content_type;   /* ":content-type" */
    tt_es_str error_code;     /* ":error-code" */
    tt_es_str error_message;  /* ":error-message" */
    const char *payload;
    size_t payload_len;
} tt_es_message;

/* Return non-zero to stop parsing (tt_eventstream_feed returns that value). */
typedef int (*tt_es_fn)(const tt_es_message *m, void *ud);

typedef struct tt_eventstream {
    tt_es_fn fn;
    void *ud;
    size_t max_message;
    unsigned char prelude[TT_ES_PRELUDE];
    size_t have;    /* bytes of the current message received so far */
    size_t total;   /* its total length, once the prelude is in; else 0 */
    char *msg;      /* the current message, total bytes, once the prelude is in */
    int err;        /* a sticky tt_err, or 0 */
    uint64_t count; /* messages delivered */
} tt_eventstream;

/* Set up p. max_message is clamped to at least TT_ES_MIN_MESSAGE. */
void tt_eventstream_init(tt_eventstream *p, size_t max_message, tt_es_fn fn, void *ud);
/* Feed len bytes. Returns 0; TT_EINVAL (bad length, CRC or header);
 * TT_ETOOLARGE (a message over max_message); TT_ENOMEM; all three sticky. Or
 * the callback's non-zero value: the rest of buf is then not parsed. */
int tt_eventstream_feed(tt_eventstream *p, const char *buf, size_t len);
/* Is the parser between two messages (nothing of a message pending)? */
int tt_eventstream_idle(const tt_eventstream *p);
/* Free the buffer and zero p; calling it twice is harmless. */
void tt_eventstream_free(tt_eventstream *p);

/* CRC-32 (IEEE 802.3, reflected, as zlib computes it), continued from crc
 * (0 to start). */
uint32_t tt_crc32(uint32_t crc, const void *data, size_t len);

/* Write one message into out (at most cap bytes): string headers given as
 * names[i] = values[i] for i < n, then the payload. Returns its length, or 0
 * when it does not fit or a name or value is too long. For tests and tools. */
size_t tt_eventstream_encode(char *out, size_t cap, const char *const *names,
                             const char *const *values, size_t n, const char *payload,
                             size_t payload_len);

#endif
