/* An incremental parser for server-sent events (the WHATWG EventSource
 * format, as providers stream it).
 *
 * Bytes arrive in arbitrary pieces; an event may be split anywhere, even in
 * the middle of a CRLF. Handled: LF, CR and CRLF line ends; "data:" lines
 * joined with "\n"; one optional space after the colon; "event:" names;
 * comment lines (":..."); fields without a colon; "id:" and "retry:" read and
 * ignored; a UTF-8 BOM at the very start. An event is dispatched at a blank
 * line when it has data. "[DONE]" is passed on as ordinary data: the adapter
 * decides what it means. Every event is capped at max_event_bytes. */
#ifndef TT_SSE_H
#define TT_SSE_H

#include <stddef.h>

/* One event. name is "message" when the stream gave none. Neither string is
 * NUL-terminated; both are valid only during the call. Return non-zero to stop
 * parsing (tt_sse_feed returns that value). */
typedef int (*tt_sse_fn)(const char *name, size_t name_len, const char *data, size_t data_len,
                         void *ud);

typedef struct tt_sse {
    tt_sse_fn fn;
    void *ud;
    size_t max_event_bytes;
    char *line;      /* the current, unfinished line */
    size_t line_len, line_cap;
    char *data;      /* data of the event being built */
    size_t data_len, data_cap;
    int has_data;
    char name[64];
    size_t name_len;
    int after_cr;    /* the last byte seen was CR: a following LF is part of it */
    int started;     /* past the optional BOM */
} tt_sse;

/* Set up p. Caller releases with tt_sse_free(). */
void tt_sse_init(tt_sse *p, size_t max_event_bytes, tt_sse_fn fn, void *ud);
/* Feed len bytes. Returns 0, TT_ETOOLARGE when an event or line passes the
 * cap (the parser is then unusable), TT_ENOMEM, or the callback's non-zero value. */
int tt_sse_feed(tt_sse *p, const char *buf, size_t len);
/* End of stream: an unterminated event is dropped, as EventSource does. */
void tt_sse_free(tt_sse *p);

#endif
