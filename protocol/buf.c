/* The bounded growable buffer (see buf.h). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/errors.h"

#define BUF_MIN_ALLOC 64

void tt_buf_init(tt_buf *b, size_t cap)
{
    tt_buf_init_headroom(b, cap, 0);
}

void tt_buf_init_headroom(tt_buf *b, size_t cap, size_t headroom)
{
    *b = (tt_buf){.headroom = headroom, .cap = cap};
}

int tt_buf_reserve(tt_buf *b, size_t n)
{
    if (n > b->cap - b->len)
        return TT_ETOOLARGE;
    size_t need = b->len + n;
    if (b->mem && need <= b->alloc)
        return 0;
    /* At least doubling keeps n appended bytes O(n); a first reservation of
     * a known size is exact. The cap bounds the last step. */
    size_t alloc = b->alloc > b->cap / 2 ? b->cap : b->alloc * 2;
    if (alloc < BUF_MIN_ALLOC)
        alloc = BUF_MIN_ALLOC;
    if (alloc < need)
        alloc = need;
    if (alloc > b->cap)
        alloc = b->cap;
    char *grown = realloc(b->mem, b->headroom + alloc + 1);
    if (!grown)
        return TT_ENOMEM;
    b->mem = grown;
    b->alloc = alloc;
    b->mem[b->headroom + b->len] = '\0';
    return 0;
}

int tt_buf_append(tt_buf *b, const void *data, size_t n)
{
    int rc = tt_buf_reserve(b, n);
    if (rc)
        return rc;
    char *at = b->mem + b->headroom + b->len;
    if (n)
        memcpy(at, data, n);
    b->len += n;
    at[n] = '\0';
    return 0;
}

int tt_buf_vappendf(tt_buf *b, const char *fmt, va_list ap)
{
    va_list measure;
    va_copy(measure, ap);
    int n = vsnprintf(NULL, 0, fmt, measure);
    va_end(measure);
    if (n < 0)
        return TT_EINVAL;
    int rc = tt_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->mem + b->headroom + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int tt_buf_appendf(tt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tt_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *tt_buf_data(const tt_buf *b)
{
    return b->mem ? b->mem + b->headroom : NULL;
}

const char *tt_buf_str(const tt_buf *b)
{
    return b->mem ? b->mem + b->headroom : "";
}

char *tt_buf_head(const tt_buf *b)
{
    return b->mem;
}

int tt_buf_set_cap(tt_buf *b, size_t cap)
{
    if (b->len > cap)
        return TT_ETOOLARGE;
    b->cap = cap;
    return 0;
}

void tt_buf_consume(tt_buf *b, size_t n)
{
    assert(n <= b->len);
    if (n == 0)
        return;
    char *data = b->mem + b->headroom;
    memmove(data, data + n, b->len - n);
    b->len -= n;
    data[b->len] = '\0';
}

char *tt_buf_take(tt_buf *b, size_t *len)
{
    assert(b->headroom == 0);
    char *out = b->mem;
    if (len)
        *len = b->len;
    *b = (tt_buf){.headroom = b->headroom, .cap = b->cap};
    return out;
}

void tt_buf_reset(tt_buf *b)
{
    b->len = 0;
    if (b->mem)
        b->mem[b->headroom] = '\0';
}

void tt_buf_truncate(tt_buf *b, size_t len)
{
    if (len > b->len)
        return;
    b->len = len;
    if (b->mem)
        b->mem[b->headroom + len] = '\0';
}

void tt_buf_free(tt_buf *b)
{
    free(b->mem);
    *b = (tt_buf){.headroom = b->headroom, .cap = b->cap};
}
