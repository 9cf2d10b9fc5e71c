/* A text delta read straight out of a provider's chunk (fastjson.h).
 *
 * One forward pass over the chunk, no allocation: the whole document is
 * checked to be JSON that jansson would load (json_loadb, flags 0), the few
 * values that matter are located, and the text is left where it lies (an
 * escaped one is unescaped later by tt_fastjson_decode, into the caller's
 * buffer). Every rule below errs towards "not handled": a chunk it gives up
 * on is parsed by jansson, as every chunk was before. */
#include <string.h>

#include "agents/llm/fastjson.h"
#include "protocol/base64.h"
#include "protocol/utf8.h"

typedef struct scan {
    const unsigned char *p, *end;
} scan;

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* A byte that may follow a literal or a number (jansson reads a run of
 * letters as one token: "nullx" is an error). */
static int delimiter(const scan *s)
{
    if (s->p >= s->end)
        return 1;
    unsigned char c = *s->p;
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int literal(scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n;
    return delimiter(s);
}

/* \uXXXX at p (p[0] == '\\'), or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = tt_hex_digit(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* A \u escape at p: its code point and how many bytes it spans (6, or 12 for
 * a surrogate pair). 0 when not handled: \u0000 (jansson refuses it without
 * JSON_ALLOW_NUL), a lone or reversed surrogate (jansson refuses those too). */
static size_t unicode_escape(const unsigned char *p, const unsigned char *end, unsigned long *cp)
{
    long v = hex4(p, end);
    if (v <= 0 || (v >= 0xDC00 && v <= 0xDFFF))
        return 0;
    if (v < 0xD800 || v > 0xDBFF) {
        *cp = (unsigned long)v;
        return 6;
    }
    long lo = hex4(p + 6, end);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    *cp = 0x10000 + (((unsigned long)v - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
    return 12;
}

static size_t utf8_len(unsigned long cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* The string at s->p (its opening quote). 0 when not handled. */
static int string(scan *s, tt_fastjson_str *out)
{
    if (s->p >= s->end || *s->p != '"')
        return 0;
    const unsigned char *p = ++s->p;
    size_t decoded = 0;
    int escaped = 0;
    while (p < s->end && *p != '"') {
        unsigned char c = *p;
        size_t n = 1, d = 1;
        if (c < 0x20)
            return 0; /* a raw control byte: jansson refuses it */
        if (c == '\\') {
            escaped = 1;
            if (p + 1 >= s->end)
                return 0;
            unsigned long cp;
            if (p[1] == 'u') {
                if (!(n = unicode_escape(p, s->end, &cp)))
                    return 0;
                d = utf8_len(cp);
            } else if (strchr("\"\\/bfnrt", p[1]) && p[1] != '\0') {
                n = 2;
            } else {
                return 0;
            }
        } else if (c >= 0x80 && !(n = d = tt_utf8_seq_len(p, (size_t)(s->end - p)))) {
            return 0;
        }
        p += n;
        decoded += d;
    }
    if (p >= s->end)
        return 0;
    out->raw = (const char *)s->p;
    out->raw_len = (size_t)(p - s->p);
    out->decoded_len = decoded;
    out->escaped = escaped;
    s->p = p + 1;
    return 1;
}

static int digits(scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return (int)(s->p - start);
}

/* A number; *is_int and *v for an integer. Only forms that cannot overflow
 * (jansson refuses an integer past 64 bits and a real past DBL_MAX). */
static int number(scan *s, int *is_int, long long *v)
{
    int neg = s->p < s->end && *s->p == '-';
    s->p += neg;
    const unsigned char *first = s->p;
    int n = digits(s);
    if (n == 0 || n > 18 || (n > 1 && *first == '0'))
        return 0;
    *is_int = 1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        int f = digits(s);
        if (f == 0 || f > 30)
            return 0;
        *is_int = 0;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        int e = digits(s);
        if (e == 0 || e > 2)
            return 0;
        *is_int = 0;
    }
    if (*is_int) {
        long long x = 0;
        for (const unsigned char *q = first; q < s->p; q++)
            x = x * 10 + (*q - '0');
        *v = neg ? -x : x;
    }
    return delimiter(s);
}

static int skip(scan *s, int depth);

/* The members of an object or array at s->p (its opening bracket), skipped. */
static int skip_container(scan *s, int depth)
{
    unsigned char close = *s->p == '{' ? '}' : ']';
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            tt_fastjson_str key;
            if (!string(s, &key))
                return 0;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return 0;
            s->p++;
        }
        if (!skip(s, depth + 1))
            return 0;
        ws(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == close) {
            s->p++;
            return 1;
        }
        if (*s->p != ',')
            return 0;
        s->p++;
        ws(s);
    }
}

/* Any value, checked and passed over. */
static int skip(scan *s, int depth)
{
    ws(s);
    if (s->p >= s->end || depth > TT_FASTJSON_DEPTH_MAX)
        return 0;
    unsigned char c = *s->p;
    if (c == '{' || c == '[')
        return skip_container(s, depth);
    if (c == '"') {
        tt_fastjson_str str;
        return string(s, &str);
    }
    if (c == 't')
        return literal(s, "true");
    if (c == 'f')
        return literal(s, "false");
    if (c == 'n')
        return literal(s, "null");
    int is_int;
    long long v;
    return number(s, &is_int, &v);
}

/* ---- objects, key by key ------------------------------------------------- */

/* At an object's opening brace. */
static int open_object(scan *s)
{
    ws(s);
    if (s->p >= s->end || *s->p != '{')
        return 0;
    s->p++;
    return 1;
}

/* The next key of an object and its colon: 1; the object's end: 2; not
 * handled (a syntax error, a key with an escape): 0. *n counts the keys. */
static int next_key(scan *s, int *n, tt_fastjson_str *key)
{
    ws(s);
    if (s->p >= s->end)
        return 0;
    if (*s->p == '}') {
        s->p++;
        return 2;
    }
    if (*n > 0) {
        if (*s->p != ',')
            return 0;
        s->p++;
        ws(s);
    }
    if (!string(s, key) || key->escaped)
        return 0;
    ws(s);
    if (s->p >= s->end || *s->p != ':')
        return 0;
    s->p++;
    ws(s);
    (*n)++;
    return 1;
}

static int is_key(const tt_fastjson_str *k, const char *name)
{
    size_t n = strlen(name);
    return k->raw_len == n && memcmp(k->raw, name, n) == 0;
}

/* A key seen twice among those that matter: jansson keeps the last, so the
 * scan gives up rather than guess. */
static int once(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return 0;
    *seen |= bit;
    return 1;
}

/* A string value, or null (*is_str = 0). */
static int string_or_null(scan *s, tt_fastjson_str *out, int *is_str)
{
    *is_str = s->p < s->end && *s->p == '"';
    return *is_str ? string(s, out) : literal(s, "null");
}

static int whole(scan *s)
{
    ws(s);
    return s->p == s->end;
}

/* ---- OpenAI -------------------------------------------------------------- */

static int oa_delta(scan *s, tt_fastjson_delta *out)
{
    tt_fastjson_str key;
    int n = 0, r;
    unsigned seen = 0;
    if (!open_object(s))
        return 0;
    while ((r = next_key(s, &n, &key)) == 1) {
        if (is_key(&key, "tool_calls"))
            return 0;
        if (is_key(&key, "content")) {
            if (!once(&seen, 1) || !string_or_null(s, &out->text, &out->has_text))
                return 0;
        } else if (!skip(s, 3)) {
            return 0;
        }
    }
    return r == 2;
}

static int oa_choice(scan *s, tt_fastjson_delta *out)
{
    tt_fastjson_str key;
    int n = 0, r, is_int;
    unsigned seen = 0;
    long long index = 0;
    if (!open_object(s))
        return 0;
    while ((r = next_key(s, &n, &key)) == 1) {
        if (is_key(&key, "index")) {
            if (!once(&seen, 1) || !number(s, &is_int, &index) || !is_int)
                return 0;
        } else if (is_key(&key, "delta")) {
            if (!once(&seen, 2) || !oa_delta(s, out))
                return 0;
        } else if (is_key(&key, "finish_reason")) {
            if (!literal(s, "null"))
                return 0;
        } else if (!skip(s, 2)) {
            return 0;
        }
    }
    if (r != 2)
        return 0;
    if (index != 0) /* another choice than the first: nothing to say */
        out->has_text = 0;
    return 1;
}

static int oa_choices(scan *s, tt_fastjson_delta *out)
{
    if (s->p >= s->end || *s->p != '[')
        return 0;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 1;
    }
    if (!oa_choice(s, out))
        return 0;
    ws(s);
    if (s->p >= s->end || *s->p != ']') /* a second choice: not handled */
        return 0;
    s->p++;
    return 1;
}

int tt_fastjson_openai_delta(const char *data, size_t len, tt_fastjson_delta *out)
{
    scan s = {.p = (const unsigned char *)data, .end = (const unsigned char *)data + len};
    tt_fastjson_str key;
    int n = 0, r;
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    if (!data || !open_object(&s))
        return 0;
    while ((r = next_key(&s, &n, &key)) == 1) {
        if (is_key(&key, "error"))
            return 0;
        if (is_key(&key, "choices")) {
            if (!once(&seen, 1) || !oa_choices(&s, out))
                return 0;
        } else if (is_key(&key, "usage")) {
            if (!literal(&s, "null"))
                return 0;
        } else if (!skip(&s, 1)) {
            return 0;
        }
    }
    if (r != 2 || !whole(&s)) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return 1;
}

/* ---- Anthropic ----------------------------------------------------------- */

static int an_delta(scan *s, tt_fastjson_delta *out)
{
    tt_fastjson_str key, type;
    int n = 0, r, is_str;
    unsigned seen = 0;
    if (!open_object(s))
        return 0;
    while ((r = next_key(s, &n, &key)) == 1) {
        if (is_key(&key, "type")) {
            if (!once(&seen, 1) || !string(s, &type) || !is_key(&type, "text_delta"))
                return 0;
        } else if (is_key(&key, "text")) {
            if (!once(&seen, 2) || !string_or_null(s, &out->text, &is_str) || !is_str)
                return 0;
            out->has_text = 1;
        } else if (!skip(s, 2)) {
            return 0;
        }
    }
    return r == 2 && seen == 3;
}

int tt_fastjson_anthropic_text(const char *data, size_t len, long long *index,
                               tt_fastjson_delta *out)
{
    scan s = {.p = (const unsigned char *)data, .end = (const unsigned char *)data + len};
    tt_fastjson_str key, type;
    int n = 0, r, is_int;
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    if (!data || !open_object(&s))
        return 0;
    while ((r = next_key(&s, &n, &key)) == 1) {
        if (is_key(&key, "type")) {
            if (!once(&seen, 1) || !string(&s, &type) || !is_key(&type, "content_block_delta"))
                return 0;
        } else if (is_key(&key, "index")) {
            if (!once(&seen, 2) || !number(&s, &is_int, index) || !is_int)
                return 0;
        } else if (is_key(&key, "delta")) {
            if (!once(&seen, 4) || !an_delta(&s, out))
                return 0;
        } else if (!skip(&s, 1)) {
            return 0;
        }
    }
    if (r != 2 || seen != 7 || !whole(&s)) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return 1;
}

/* ---- unescaping ---------------------------------------------------------- */

static char *put_utf8(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xC0 | (cp >> 6));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | (cp >> 12));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | (cp >> 18));
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    return d;
}

void tt_fastjson_decode(const tt_fastjson_str *s, char *dst)
{
    const unsigned char *p = (const unsigned char *)s->raw, *end = p + s->raw_len;
    if (!s->escaped) {
        memcpy(dst, s->raw, s->raw_len);
        return;
    }
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    while (p < end) {
        if (*p != '\\') {
            *dst++ = (char)*p++;
            continue;
        }
        if (p[1] == 'u') {
            unsigned long cp = 0;
            p += unicode_escape(p, end, &cp);
            dst = put_utf8(dst, cp);
        } else {
            *dst++ = to[strchr(from, p[1]) - from];
            p += 2;
        }
    }
}
