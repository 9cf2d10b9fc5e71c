/* A growable byte buffer with a cap fixed at init (curl's dynbuf).
 *
 * Every growable byte buffer in Tether is a tt_buf: appending past the cap
 * is an error (TT_ETOOLARGE) that leaves the buffer as it was, never a
 * silent realloc. Growth is geometric, so n bytes cost O(n) however finely
 * they come. Optional headroom: bytes kept free in front of the data (lws
 * writes need LWS_PRE bytes before what it sends). The data is always
 * followed by a NUL (not counted in the length). */
#ifndef TT_BUF_H
#define TT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#define TT_BUF_WUR __attribute__((warn_unused_result))

typedef struct tt_buf {
    char *mem;       /* headroom, then the data, then a NUL; NULL until the first growth */
    size_t headroom; /* bytes in front of the data */
    size_t len;      /* bytes of data */
    size_t alloc;    /* bytes of data room allocated (the NUL's byte not counted) */
    size_t cap;      /* the data never grows past this */
} tt_buf;

/* An empty buffer whose data may grow up to cap bytes. Allocates nothing. */
void tt_buf_init(tt_buf *b, size_t cap);

/* The same, with `headroom` bytes kept free in front of the data. */
void tt_buf_init_headroom(tt_buf *b, size_t cap, size_t headroom);

/* Append n bytes. 0; TT_ETOOLARGE past the cap or TT_ENOMEM, the buffer
 * unchanged. */
int tt_buf_append(tt_buf *b, const void *data, size_t n) TT_BUF_WUR;

/* Append printf-formatted text, whole or not at all: 0; TT_ETOOLARGE past
 * the cap, TT_ENOMEM, or TT_EINVAL on a format error, the buffer unchanged. */
int tt_buf_appendf(tt_buf *b, const char *fmt, ...) TT_BUF_WUR
    __attribute__((format(printf, 2, 3)));

/* The same with a va_list (left unusable, as with vprintf). */
int tt_buf_vappendf(tt_buf *b, const char *fmt, va_list ap) TT_BUF_WUR
    __attribute__((format(printf, 2, 0)));

/* Make room for n more bytes without appending them: 0, or TT_ETOOLARGE /
 * TT_ENOMEM with the buffer unchanged. */
int tt_buf_reserve(tt_buf *b, size_t n) TT_BUF_WUR;

/* The data (NUL-terminated), or NULL when nothing was ever allocated. The
 * pointer is valid until the next call that changes the buffer. */
char *tt_buf_data(const tt_buf *b);

/* The data, or "" when there is none: for readers that want a string. */
const char *tt_buf_str(const tt_buf *b);

/* The headroom's start (data minus headroom), or NULL when unallocated. */
char *tt_buf_head(const tt_buf *b);

/* Change the cap: 0, or TT_ETOOLARGE (nothing changed) when the buffer
 * already holds more than cap bytes. Memory already allocated is kept. */
int tt_buf_set_cap(tt_buf *b, size_t cap) TT_BUF_WUR;

/* Drop the first n bytes (n <= len); the rest moves to the front. */
void tt_buf_consume(tt_buf *b, size_t n);

/* Detach the data: the caller frees it with free(); NULL when there is
 * none. *len (if given) gets its length. Only for a buffer with no
 * headroom. The buffer is left empty, its cap kept. */
char *tt_buf_take(tt_buf *b, size_t *len);

/* Empty the buffer, keeping its memory for reuse. */
void tt_buf_reset(tt_buf *b);

/* Cut the data back to its first len bytes (len <= the length; a longer len
 * changes nothing): a writer that failed half-way leaves the buffer as it
 * found it. */
void tt_buf_truncate(tt_buf *b, size_t len);

/* Free the memory; the buffer is empty, its cap kept (reusable). */
void tt_buf_free(tt_buf *b);

#endif
