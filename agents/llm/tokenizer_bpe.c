/* Exact token counts for OpenAI's byte-pair encodings (tokenizer.h).
 *
 * Why this file exists: budgets and context-window checks need the prompt's
 * size before the request leaves, and for OpenAI models that size is
 * computable exactly. It does what tiktoken's CoreBPE::encode_ordinary does:
 *
 *   1. split the text into pieces with the encoding's regex (PCRE2 here,
 *      fancy-regex there; the \s class is spelled out as Unicode White_Space
 *      so both engines agree on U+0085, U+180E and U+FEFF);
 *   2. a piece that is itself a token costs 1;
 *   3. otherwise merge adjacent parts, lowest rank first and leftmost on a
 *      tie, until no adjacent pair is a token; the parts left are the tokens.
 *
 * Step 3 is tiktoken's quadratic scan for pieces up to BPE_SMALL bytes and a
 * heap over a linked list (O(n log n), same merge order) above that, so a
 * megabyte without a space costs milliseconds, not minutes.
 *
 * The ranks come from gpt-tokenizer's data/<name>.tiktoken, loaded into one
 * byte arena plus an open-addressing table (index + 1 per slot, 0 = empty).
 * Nothing is mutated after load, so a handle is safe to share. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/utf8.h"
#include "agents/llm/tokenizer.h"
#include "protocol/base64.h"
#include "protocol/errors.h"

#define BPE_SMALL 128        /* pieces up to this many bytes use the quadratic scan */
#define RANK_NONE UINT32_MAX /* "this byte string is not a token" */

/* The split patterns of tiktoken_ext/openai_public.py, with \s and \S
 * written out as Unicode White_Space, which is what Rust's \s (tiktoken)
 * means. PCRE2 10.42's \s would add U+180E and JavaScript's U+FEFF; both
 * shift counts (test_tokenizer_whitespace_follows_tiktoken). */
/* clang-format off */
#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define CONTRACTIONS "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define NOT_LN "[^\\r\\n\\p{L}\\p{N}]"
#define UPPERISH "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWERISH "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define SPACES "|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"

static const char CL100K_PATTERN[] =
    CONTRACTIONS
    "|" NOT_LN "?\\p{L}+"
    "|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
    SPACES;

static const char O200K_PATTERN[] =
    NOT_LN "?" UPPERISH "*" LOWERISH "+" CONTRACTIONS "?"
    "|" NOT_LN "?" UPPERISH "+" LOWERISH "*" CONTRACTIONS "?"
    "|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*"
    SPACES;
/* clang-format on */

typedef struct encoding_spec {
    const char *pattern;
    uint32_t n_ranks; /* ranks are exactly 0 .. n_ranks - 1 (special tokens live elsewhere) */
} encoding_spec;

static const encoding_spec SPECS[TT_TOKENIZER__LAST] = {
    [TT_TOKENIZER_CL100K_BASE] = {CL100K_PATTERN, 100256},
    [TT_TOKENIZER_O200K_BASE] = {O200K_PATTERN, 199998},
};

typedef struct rank_entry {
    uint32_t off;  /* into tok->arena */
    uint32_t len;  /* bytes */
    uint32_t hash; /* hash_bytes() of those bytes */
    uint32_t rank;
} rank_entry;

struct tt_tokenizer {
    tt_tokenizer_encoding enc;
    uint8_t *arena;      /* every token's bytes, back to back */
    rank_entry *entries; /* one per token, n_entries of them */
    uint32_t n_entries;
    uint32_t *slots; /* entry index + 1, 0 when empty; size slot_mask + 1 */
    uint32_t slot_mask;
    uint32_t max_len; /* longest token: longer spans are not looked up */
    pcre2_code *re;
    size_t memory;
};

/* FNV-1a: tokens are short, so a byte loop beats anything cleverer here. */
static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint32_t rank_of(const tt_tokenizer *tok, const uint8_t *p, size_t n)
{
    if (n == 0 || n > tok->max_len)
        return RANK_NONE;
    uint32_t h = hash_bytes(p, n);
    for (uint32_t s = h & tok->slot_mask;; s = (s + 1) & tok->slot_mask) {
        uint32_t idx = tok->slots[s];
        if (idx == 0)
            return RANK_NONE;
        const rank_entry *e = &tok->entries[idx - 1];
        if (e->hash == h && e->len == n && memcmp(tok->arena + e->off, p, n) == 0)
            return e->rank;
    }
}

/* Adds entries[idx]; 0, or TT_ESCHEMA when the same bytes are already there. */
static int table_insert(tt_tokenizer *tok, uint32_t idx)
{
    const rank_entry *e = &tok->entries[idx];
    for (uint32_t s = e->hash & tok->slot_mask;; s = (s + 1) & tok->slot_mask) {
        uint32_t cur = tok->slots[s];
        if (cur == 0) {
            tok->slots[s] = idx + 1;
            return 0;
        }
        const rank_entry *o = &tok->entries[cur - 1];
        if (o->hash == e->hash && o->len == e->len &&
            memcmp(tok->arena + o->off, tok->arena + e->off, e->len) == 0)
            return TT_ESCHEMA;
    }
}

/* ---- loading ---------------------------------------------------------- */

/* Reads the whole file into a heap buffer the caller frees. */
static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? TT_ENOTFOUND : TT_EIO;
    struct stat st;
    int rc = TT_EIO;
    uint8_t *b = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto fail;
    if ((uint64_t)st.st_size > TT_TOKENIZER_MAX_FILE_BYTES) {
        rc = TT_ETOOLARGE;
        goto fail;
    }
    size_t size = (size_t)st.st_size, got = 0;
    b = malloc(size ? size : 1);
    if (!b) {
        rc = TT_ENOMEM;
        goto fail;
    }
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail; /* error, or the file shrank under us */
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = size;
    return 0;
fail:
    free(b);
    close(fd);
    return rc;
}

/* Parses "<base64> <rank>\n" lines into tok. The file must hold exactly the
 * ranks 0 .. spec->n_ranks - 1, each once, every single byte among them. */
static int parse_ranks(tt_tokenizer *tok, const encoding_spec *spec, const uint8_t *buf, size_t len)
{
    uint32_t n = spec->n_ranks;
    tok->entries = malloc((size_t)n * sizeof *tok->entries);
    tok->arena = malloc(len ? len : 1); /* decoding only shrinks */
    uint32_t slots = 1;
    while (slots < 2 * n)
        slots <<= 1;
    tok->slots = calloc(slots, sizeof *tok->slots);
    uint8_t *seen = calloc(n, 1);
    if (!tok->entries || !tok->arena || !tok->slots || !seen) {
        free(seen);
        return TT_ENOMEM;
    }
    tok->slot_mask = slots - 1;

    int rc = TT_ESCHEMA;
    size_t pos = 0, arena_used = 0;
    while (pos < len) {
        const uint8_t *line = buf + pos;
        const uint8_t *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL);
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (line_len == 0)
            continue;
        const uint8_t *sp = memchr(line, ' ', line_len);
        if (!sp || sp == line || sp + 1 == line + line_len)
            goto out;
        size_t b64_len = (size_t)(sp - line);
        if (b64_len / 4 * 3 > TT_TOKENIZER_MAX_TOKEN_BYTES || tok->n_entries == n)
            goto out;
        uint64_t rank = 0;
        for (const uint8_t *d = sp + 1; d < line + line_len; d++) {
            if (*d < '0' || *d > '9' || (rank = rank * 10 + (uint64_t)(*d - '0')) >= n)
                goto out;
        }
        if (seen[rank])
            goto out;
        seen[rank] = 1;
        size_t dec = 0; /* the arena holds len bytes: decoding only shrinks */
        if (tt_b64_decode((const char *)line, b64_len, tok->arena + arena_used, len - arena_used,
                          &dec) != 0 ||
            dec == 0)
            goto out;
        rank_entry *e = &tok->entries[tok->n_entries];
        e->off = (uint32_t)arena_used;
        e->len = (uint32_t)dec;
        e->hash = hash_bytes(tok->arena + arena_used, dec);
        e->rank = (uint32_t)rank;
        arena_used += dec;
        if (e->len > tok->max_len)
            tok->max_len = e->len;
        if (table_insert(tok, tok->n_entries) != 0)
            goto out;
        tok->n_entries++;
    }
    if (tok->n_entries != n)
        goto out;
    for (int b = 0; b < 256; b++) { /* every byte must be a token, or merging can strand one */
        uint8_t c = (uint8_t)b;
        if (rank_of(tok, &c, 1) == RANK_NONE)
            goto out;
    }
    uint8_t *shrunk = realloc(tok->arena, arena_used ? arena_used : 1);
    if (shrunk)
        tok->arena = shrunk;
    tok->memory =
        arena_used + (size_t)n * sizeof *tok->entries + (size_t)slots * sizeof *tok->slots;
    rc = 0;
out:
    free(seen);
    return rc;
}

static int compile_pattern(tt_tokenizer *tok, const char *pattern)
{
    int err;
    PCRE2_SIZE err_off;
    tok->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                            &err_off, NULL);
    if (!tok->re)
        return TT_EINTERNAL;
    /* JIT is an optimisation: without it (no JIT support on this CPU or
     * build) pcre2_match() interprets the same pattern. */
    (void)pcre2_jit_compile(tok->re, PCRE2_JIT_COMPLETE);
    size_t sz = 0, jit_sz = 0;
    if (pcre2_pattern_info(tok->re, PCRE2_INFO_SIZE, &sz) == 0)
        tok->memory += sz;
    if (pcre2_pattern_info(tok->re, PCRE2_INFO_JITSIZE, &jit_sz) == 0)
        tok->memory += jit_sz;
    return 0;
}

int tt_tokenizer_load(tt_tokenizer_encoding enc, const char *path, tt_tokenizer **out)
{
    if (!out || (int)enc <= TT_TOKENIZER_ESTIMATE || (int)enc >= TT_TOKENIZER__LAST)
        return TT_EINVAL;
    *out = NULL;
    if (!path)
        path = TT_TOKENIZER_DEFAULT_DIR;

    char file[PATH_MAX];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        int w =
            snprintf(file, sizeof file, "%s/%s.tiktoken", path, tt_tokenizer_encoding_name(enc));
        if (w < 0 || (size_t)w >= sizeof file)
            return TT_EINVAL;
    } else {
        size_t n = strlen(path);
        if (n >= sizeof file)
            return TT_EINVAL;
        memcpy(file, path, n + 1);
    }

    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_file(file, &buf, &len);
    if (rc < 0)
        return rc;
    tt_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        free(buf);
        return TT_ENOMEM;
    }
    tok->enc = enc;
    rc = parse_ranks(tok, &SPECS[enc], buf, len);
    free(buf);
    if (rc == 0)
        rc = compile_pattern(tok, SPECS[enc].pattern);
    if (rc < 0) {
        tt_tokenizer_free(tok);
        return rc;
    }
    tok->memory += sizeof *tok;
    *out = tok;
    return 0;
}

void tt_tokenizer_free(tt_tokenizer *tok)
{
    if (!tok)
        return;
    pcre2_code_free(tok->re);
    free(tok->slots);
    free(tok->entries);
    free(tok->arena);
    free(tok);
}

tt_tokenizer_encoding tt_tokenizer_get_encoding(const tt_tokenizer *tok)
{
    return tok ? tok->enc : TT_TOKENIZER_ESTIMATE;
}

size_t tt_tokenizer_memory(const tt_tokenizer *tok)
{
    return tok ? tok->memory : 0;
}

/* ---- byte-pair merge -------------------------------------------------- */

/* tiktoken's _byte_pair_merge: parts[i] starts at start[i]; rank[i] is the
 * rank of parts i and i+1 joined. Quadratic, but with no allocation and a
 * tiny constant, it wins on the short pieces that make up almost all text. */
static size_t merge_small(const tt_tokenizer *tok, const uint8_t *p, size_t n)
{
    uint32_t start[BPE_SMALL + 2], rank[BPE_SMALL + 2];
    size_t parts = n + 1; /* n single bytes, then an end sentinel at n */
    for (size_t i = 0; i <= n; i++) {
        start[i] = (uint32_t)i;
        rank[i] = i + 1 < n ? rank_of(tok, p + i, 2) : RANK_NONE;
    }
    for (;;) {
        uint32_t best = RANK_NONE;
        size_t at = 0;
        for (size_t i = 0; i + 1 < parts; i++) {
            if (rank[i] < best) {
                best = rank[i];
                at = i;
            }
        }
        if (best == RANK_NONE)
            break;
        /* join parts at and at+1; their neighbours' pair ranks change */
        if (at > 0)
            rank[at - 1] = at + 2 < parts
                               ? rank_of(tok, p + start[at - 1], start[at + 2] - start[at - 1])
                               : RANK_NONE;
        rank[at] =
            at + 3 < parts ? rank_of(tok, p + start[at], start[at + 3] - start[at]) : RANK_NONE;
        memmove(&start[at + 1], &start[at + 2], (parts - at - 2) * sizeof *start);
        memmove(&rank[at + 1], &rank[at + 2], (parts - at - 2) * sizeof *rank);
        parts--;
    }
    return parts - 1;
}

/* A min-heap of (rank << 32 | part start): the lowest rank, then leftmost. */
typedef struct heap {
    uint64_t *v;
    size_t n;
} heap;

static void heap_push(heap *h, uint64_t x)
{
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2] > x) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static uint64_t heap_pop(heap *h)
{
    uint64_t top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c])
            c++;
        if (h->v[c] >= x)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = x;
    return top;
}

/* The same merges as merge_small, in O(n log n): parts are a linked list
 * named by their start offset, rank[i] is the pair (i, next[i]), and the heap
 * holds a (rank, i) entry for every pair ever ranked; entries whose part died
 * or whose pair changed are skipped when popped. Every live pair always has
 * an entry with its current rank, so the first valid pop is the lowest rank,
 * leftmost on a tie: tiktoken's order. */
static int merge_large(const tt_tokenizer *tok, const uint8_t *p, size_t n, size_t *count)
{
    if (n > UINT32_MAX / 4)
        return TT_ETOOLARGE;
    uint32_t *next = malloc(n * sizeof *next);
    uint32_t *prev = malloc(n * sizeof *prev);
    uint32_t *rank = malloc(n * sizeof *rank);
    heap h = {malloc(3 * n * sizeof *h.v), 0}; /* n initial pairs + 2 per merge */
    if (!next || !prev || !rank || !h.v) {
        free(next), free(prev), free(rank), free(h.v);
        return TT_ENOMEM;
    }
    uint32_t end = (uint32_t)n;
    for (uint32_t i = 0; i < end; i++) {
        next[i] = i + 1;
        prev[i] = i == 0 ? UINT32_MAX : i - 1;
    }
    for (uint32_t i = 0; i < end; i++) {
        rank[i] = i + 1 < end ? rank_of(tok, p + i, 2) : RANK_NONE;
        if (rank[i] != RANK_NONE)
            heap_push(&h, (uint64_t)rank[i] << 32 | i);
    }
    size_t parts = n;
    while (h.n) {
        uint64_t top = heap_pop(&h);
        uint32_t i = (uint32_t)top, r = (uint32_t)(top >> 32);
        if (rank[i] != r) /* stale: i was absorbed (rank NONE) or its pair changed */
            continue;
        uint32_t j = next[i]; /* absorb j into i */
        next[i] = next[j];
        if (next[j] != end)
            prev[next[j]] = i;
        rank[j] = RANK_NONE;
        parts--;
        /* pair (i, next[i]) spans i .. end of next[i] */
        if (next[i] == end) {
            rank[i] = RANK_NONE;
        } else {
            uint32_t stop = next[next[i]]; /* the part after next[i] starts there, or it is end */
            rank[i] = rank_of(tok, p + i, stop - i);
        }
        if (rank[i] != RANK_NONE)
            heap_push(&h, (uint64_t)rank[i] << 32 | i);
        uint32_t q = prev[i];
        if (q != UINT32_MAX) {
            rank[q] = rank_of(tok, p + q, next[i] - q);
            if (rank[q] != RANK_NONE)
                heap_push(&h, (uint64_t)rank[q] << 32 | q);
        }
    }
    free(next), free(prev), free(rank), free(h.v);
    *count = parts;
    return 0;
}

static int count_piece(const tt_tokenizer *tok, const uint8_t *p, size_t n, size_t *total)
{
    size_t c;
    if (n == 0)
        return 0;
    if (rank_of(tok, p, n) != RANK_NONE) {
        c = 1; /* tiktoken's shortcut: a piece that is a token is one token */
    } else if (n <= BPE_SMALL) {
        c = merge_small(tok, p, n);
    } else {
        int rc = merge_large(tok, p, n, &c);
        if (rc < 0)
            return rc;
    }
    *total += c;
    return 0;
}

/* ---- splitting -------------------------------------------------------- */

/* Length of the longest valid UTF-8 prefix of s (RFC 3629: no overlongs,
 * surrogates or code points above U+10FFFF, exactly PCRE2's own check). */
static size_t utf8_valid_prefix(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t len = s[i] < 0x80 ? 1 : tt_utf8_seq_len(s + i, n - i);
        if (len == 0)
            return i;
        i += len;
    }
    return i;
}

/* Splits valid UTF-8 with the encoding's regex and counts every piece. */
static int count_valid(const tt_tokenizer *tok, pcre2_match_data *md, const uint8_t *s, size_t n,
                       size_t *total)
{
    size_t off = 0;
    while (off < n) {
        int rc = pcre2_match(tok->re, s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its stack on the heap */
            rc = pcre2_match(tok->re, s, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) /* cannot happen: every character matches some branch */
            return count_piece(tok, s + off, n - off, total);
        if (rc < 0)
            return TT_EINTERNAL;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] < off || ov[1] <= ov[0] || ov[1] > n)
            return TT_EINTERNAL; /* no branch matches the empty string */
        /* tiktoken drops text between matches; there is none with these patterns */
        int e = count_piece(tok, s + off, ov[0] - off, total);
        if (e == 0)
            e = count_piece(tok, s + ov[0], ov[1] - ov[0], total);
        if (e < 0)
            return e;
        off = ov[1];
    }
    return 0;
}

int tt_tokenizer_count(const tt_tokenizer *tok, const char *text, size_t len, size_t *out)
{
    if (!tok || !out || (!text && len > 0))
        return TT_EINVAL;
    *out = 0;
    if (len == 0)
        return 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(tok->re, NULL);
    if (!md)
        return TT_ENOMEM;
    const uint8_t *s = (const uint8_t *)text;
    size_t total = 0, i = 0;
    int rc = 0;
    while (i < len && rc == 0) {
        size_t valid = utf8_valid_prefix(s + i, len - i);
        rc = count_valid(tok, md, s + i, valid, &total);
        i += valid;
        if (i < len) { /* one byte that starts no valid sequence: one byte token */
            total++;
            i++;
        }
    }
    pcre2_match_data_free(md);
    if (rc == 0)
        *out = total;
    return rc;
}

static int count_str(const tt_tokenizer *tok, const char *s, size_t *total)
{
    size_t n = 0;
    int rc = s ? tt_tokenizer_count(tok, s, strlen(s), &n) : 0;
    *total += n;
    return rc;
}

int tt_tokenizer_count_chat(const tt_tokenizer *tok, const tt_tokenizer_msg *msgs, size_t n,
                            size_t *out)
{
    if (!tok || !out || (!msgs && n > 0))
        return TT_EINVAL;
    *out = 0;
    size_t total = TT_TOKENIZER_REPLY_PRIMER;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role)
            return TT_EINVAL;
        total += TT_TOKENIZER_TOKENS_PER_MESSAGE;
        int rc = count_str(tok, msgs[i].role, &total);
        if (rc == 0)
            rc = count_str(tok, msgs[i].content, &total);
        if (rc == 0 && msgs[i].name) {
            total += TT_TOKENIZER_TOKENS_PER_NAME;
            rc = count_str(tok, msgs[i].name, &total);
        }
        if (rc < 0)
            return rc;
    }
    *out = total;
    return 0;
}
