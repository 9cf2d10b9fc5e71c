/* An incremental parser for server-sent events (the WHATWG EventSource
 * format, as providers stream it).
 *
 * Bytes arrive in arbitrary pieces; an event may be split anywhere, even in
 * the middle of a CRLF. Handled: LF, CR and CRLF line ends; "data:" lines
 * joined with "\n"; one optional space after the colon; "event:" names;
 * comment lines (":..."); fields without a colon; "id:" and "retry:" read and
 * ignored; a UTF-8 BOM at the very start. An event is dispatched at a blank
 * line when it has data. "[DONE]" is passed on as ordinary data: the adapter
 * decides what it means. Every line and every event's data is capped at
 * max_event_bytes; an event name at 63 bytes. Bytes are passed on as they came
 * (no UTF-8 check): the adapter's JSON decoder does that.
 *
 *     tt_sse p;
 *     tt_sse_init(&p, 1 << 20, on_event, ctx);
 *     ... for each body piece: rc = tt_sse_feed(&p, piece, n); stop on rc ...
 *     tt_sse_free(&p); */
#ifndef TT_SSE_H
#define TT_SSE_H

#include <stddef.h>

/* One event. name is "message" when the stream gave none (or an empty one).
 * Neither string is NUL-terminated; both are owned by the parser and valid
 * only during the call; data is never NULL, and "" for "data:" alone. Return
 * non-zero to stop parsing (tt_sse_feed returns that value). The callback
 * must not call tt_sse_free() on the parser that called it. */
typedef int (*tt_sse_fn)(const char *name, size_t name_len, const char *data, size_t data_len,
                         void *ud);

typedef struct tt_sse {
    tt_sse_fn fn;
    void *ud;
    size_t max_event_bytes;
    char *line; /* the current, unfinished line */
    size_t line_len, line_cap;
    char *data; /* data of the event being built */
    size_t data_len, data_cap;
    int has_data;
    char name[64];
    size_t name_len;
    int after_cr; /* the last byte seen was CR: a following LF is part of it */
    int started;  /* 0: before the optional BOM; 1: past it; a negative
                     tt_err once the parser failed (sticky) */
} tt_sse;

/* Set up p. Caller releases with tt_sse_free(). */
void tt_sse_init(tt_sse *p, size_t max_event_bytes, tt_sse_fn fn, void *ud);
/* Feed len bytes; the parser copies what it needs to keep. Returns 0;
 * TT_ETOOLARGE when a line or an event's data passes max_event_bytes or an
 * event name passes 63 bytes; TT_ENOMEM. Both errors are sticky: every later
 * call returns the same code. Or the callback's non-zero value: the rest of
 * buf is then not parsed, and the parser may be fed further bytes. */
int tt_sse_feed(tt_sse *p, const char *buf, size_t len);
/* End of stream: an unterminated event is dropped, as EventSource does.
 * Frees the buffers and zeroes p; calling it twice is harmless. */
void tt_sse_free(tt_sse *p);

#endif
