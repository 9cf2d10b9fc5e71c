/* Text into overlapping chunks by tokens (see chunker.h). */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "agents/retrieval/chunker.h"

#define UNITS_MAX (8u << 20) /* more units than this: the text is refused */

typedef struct unit {
    size_t off, len;
    uint32_t tokens;
    int heading;
} unit;

typedef struct units {
    unit *v;
    size_t n, cap;
    const tt_tokenizer *tok;
    const char *text;
    uint32_t size;
} units;

int tt_chunk_opts_check(const tt_chunk_opts *o, const char **why)
{
    if (o->size < TT_CHUNK_TOKENS_MIN || o->size > TT_CHUNK_TOKENS_MAX) {
        *why = "chunk_tokens must be 16 to 8192";
        return TT_EINVAL;
    }
    if (o->overlap > o->size / 2) {
        *why = "chunk_overlap must be 0 to half of chunk_tokens";
        return TT_EINVAL;
    }
    return 0;
}

static int count(const units *u, size_t off, size_t len, uint32_t *out)
{
    size_t n;
    if (!u->tok)
        n = tt_tokenizer_estimate(u->text + off, len);
    else {
        int rc = tt_tokenizer_count(u->tok, u->text + off, len, &n);
        if (rc)
            return rc;
    }
    *out = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return 0;
}

static int push(units *u, size_t off, size_t len, uint32_t tokens, int heading)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 256;
        if (cap > UNITS_MAX)
            return TT_ETOOLARGE;
        unit *v = realloc(u->v, cap * sizeof *v);
        if (!v)
            return TT_ENOMEM;
        u->v = v;
        u->cap = cap;
    }
    u->v[u->n++] = (unit){.off = off, .len = len, .tokens = tokens, .heading = heading};
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A word longer than the size in tokens: pieces of size bytes, cut on
 * UTF-8 boundaries (a piece never has more tokens than bytes). */
static int add_pieces(units *u, size_t off, size_t len)
{
    while (len) {
        size_t take = len < u->size ? len : u->size;
        while (take < len && take > 1 && ((unsigned char)u->text[off + take] & 0xc0) == 0x80)
            take--;
        uint32_t t;
        int rc = count(u, off, take, &t);
        if (rc == 0)
            rc = push(u, off, take, t, 0);
        if (rc)
            return rc;
        off += take;
        len -= take;
    }
    return 0;
}

/* A span counted: one unit when it fits, else split by `level` (1:
 * sentences, 2: words, 3: pieces). */
static int add_span(units *u, size_t off, size_t len, int heading, int level)
{
    while (len && is_space(u->text[off])) {
        off++;
        len--;
    }
    while (len && is_space(u->text[off + len - 1]))
        len--;
    if (!len)
        return 0;
    uint32_t t;
    int rc = count(u, off, len, &t);
    if (rc)
        return rc;
    if (t <= u->size)
        return push(u, off, len, t, heading);
    if (level >= 3)
        return add_pieces(u, off, len);
    const char *s = u->text + off;
    size_t from = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        int cut = level == 1 ? ((s[i] == '.' || s[i] == '!' || s[i] == '?') &&
                                (i + 1 == len || is_space(s[i + 1]))) ||
                                   s[i] == '\n'
                             : is_space(s[i]);
        if (!cut)
            continue;
        rc = add_span(u, off + from, i + 1 - from, from == 0 && heading, level + 1);
        from = i + 1;
    }
    if (rc == 0 && from < len)
        rc = add_span(u, off + from, len - from, from == 0 && heading, level + 1);
    return rc;
}

/* Is the line at s (n bytes) a Markdown heading ("#".."######" then a space)? */
static int heading_line(const char *s, size_t n)
{
    size_t i = 0, h = 0;
    while (i < n && i < 3 && s[i] == ' ')
        i++;
    while (i < n && s[i] == '#' && h < 7) {
        i++;
        h++;
    }
    return h >= 1 && h <= 6 && (i == n || s[i] == ' ' || s[i] == '\t');
}

/* Blocks: runs of non-blank lines; a heading line is a block of its own. */
static int split_blocks(units *u, size_t len)
{
    size_t i = 0, start = SIZE_MAX; /* the open block's start, or none */
    int rc = 0;
    while (i < len && rc == 0) {
        size_t e = i;
        while (e < len && u->text[e] != '\n')
            e++;
        size_t k = i;
        while (k < e && is_space(u->text[k]))
            k++;
        int blank = k == e, head = !blank && heading_line(u->text + i, e - i);
        if ((blank || head) && start != SIZE_MAX) {
            rc = add_span(u, start, i - start, 0, 1);
            start = SIZE_MAX;
        }
        if (rc == 0 && head)
            rc = add_span(u, i, e - i, 1, 1);
        else if (!blank && start == SIZE_MAX)
            start = i;
        i = e + 1;
    }
    if (rc == 0 && start != SIZE_MAX)
        rc = add_span(u, start, len - start, 0, 1);
    return rc;
}

/* Where the chunk after units [start, j) begins: back from j over at most
 * `overlap` tokens, leaving room for unit j, never at start itself. */
static size_t overlap_from(const units *u, size_t start, size_t j, uint32_t overlap)
{
    size_t k = j;
    uint64_t ov = 0;
    while (k - 1 > start && ov + u->v[k - 1].tokens <= overlap &&
           ov + u->v[k - 1].tokens + u->v[j].tokens <= u->size) {
        k--;
        ov += u->v[k].tokens;
    }
    return k;
}

static int pack(const units *u, const tt_chunk_opts *o, tt_chunk_span **out, size_t *n)
{
    tt_chunk_span *v = NULL;
    size_t nv = 0, cap = 0;
    for (size_t i = 0; i < u->n;) {
        size_t start = i, j = i;
        uint64_t tokens = 0;
        int at_heading = 0;
        while (j < u->n) {
            if (j > start && u->v[j].heading && tokens >= o->size / 2) {
                at_heading = 1;
                break;
            }
            if (j > start && tokens + u->v[j].tokens > o->size)
                break;
            tokens += u->v[j++].tokens;
        }
        if (nv == TT_CHUNKS_PER_DOC_MAX) {
            free(v);
            return TT_ETOOLARGE;
        }
        if (nv == cap) {
            cap = cap ? cap * 2 : 16;
            tt_chunk_span *nvp = realloc(v, cap * sizeof *v);
            if (!nvp) {
                free(v);
                return TT_ENOMEM;
            }
            v = nvp;
        }
        const unit *a = &u->v[start], *b = &u->v[j - 1];
        v[nv++] = (tt_chunk_span){.off = a->off,
                                  .len = b->off + b->len - a->off,
                                  .tokens = tokens > UINT32_MAX ? UINT32_MAX : (uint32_t)tokens,
                                  .heading = a->heading};
        if (j >= u->n)
            break;
        i = at_heading || o->overlap == 0 ? j : overlap_from(u, start, j, o->overlap);
    }
    *out = v;
    *n = nv;
    return 0;
}

int tt_chunk_text(const tt_tokenizer *tok, const char *text, size_t len, const tt_chunk_opts *opts,
                  tt_chunk_span **out, size_t *n)
{
    const char *why;
    *out = NULL;
    *n = 0;
    if (!opts || tt_chunk_opts_check(opts, &why) != 0 || (len && !text))
        return TT_EINVAL;
    units u = {.tok = tok, .text = text, .size = opts->size};
    int rc = split_blocks(&u, len);
    if (rc == 0)
        rc = pack(&u, opts, out, n);
    free(u.v);
    return rc;
}
