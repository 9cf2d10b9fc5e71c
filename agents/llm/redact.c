/* PII redaction (see redact.h).
 *
 * Each detector is a PCRE2 pattern that finds candidates, on bytes, and a
 * check in C that keeps or drops each one (cards: 13-19 digits and Luhn;
 * IBANs: length and mod 97; phones: 8-15 digits). The text is scanned left
 * to right: at each step the earliest kept candidate of any detector wins
 * (the longest, then the first detector, on a tie), is replaced, and the
 * scan goes on after it. The international phone form is atomic, so a long
 * run of digits after a `+` costs no backtracking.
 *
 * The phone patterns are deliberately narrow, since plain numbers, dates,
 * times, versions and ids are everywhere in logs and prompts: a number
 * written with `+` and a country code, the North American 3-3-4 form, a
 * national trunk `0` form in groups (UK/DE 0AA.. 3-4 3-4, FR 0A AA AA AA
 * AA). A bare run of digits is never a phone number, nor digit groups
 * inside a longer run of them (a bad IBAN's `0044 0532 0130`). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "agents/llm/redact.h"

#define N_BUILTIN 4
#define N_MAX (N_BUILTIN + TT_REDACT_EXTRA_MAX)

static const char *const builtin_labels[N_BUILTIN] = {"EMAIL", "PHONE", "CARD", "IBAN"};

/* Boundaries: not inside a word, an id, a path or a longer number. */
#define LB "(?<![A-Za-z0-9_+./@:#-])"
#define RB "(?![A-Za-z0-9_@/]|[.:-][A-Za-z0-9])"

/* local@domain.tld, the TLD letters only (so `pkg@1.2.3` is not one); the
 * local part may hold UTF-8 (bytes 0x80-0xff) */
static const char re_email[] =
    "(?<![A-Za-z0-9_.%+\\x80-\\xff-])[A-Za-z0-9_%+\\x80-\\xff-]"
    "(?:[A-Za-z0-9._%+\\x80-\\xff-]{0,62}[A-Za-z0-9_%+\\x80-\\xff-])?"
    "@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,24}(?![A-Za-z0-9_-])";

/* +CC ..., (AAA) BBB-CCCC / AAA-BBB-CCCC / AAA.BBB.CCCC / AAA BBB CCCC,
 * 0AAA BBB CCCC / 0AAAA BBBBBB, 0A BB CC DD EE / 0A.BB.CC.DD.EE */
static const char re_phone[] = LB "(?<!\\d[ .-])(?:(?>\\+\\d{1,3}(?:[ .-]?\\(?\\d{1,5}+\\)?){1,5})"
                                  "|(?:\\(\\d{3}\\) ?|\\d{3}([-. ]))\\d{3}(?(1)\\1|[-. ])\\d{4}"
                                  "|0\\d{2,4}[ -]\\d{3,8}(?:[ -]\\d{3,4})?"
                                  "|0[1-9](?:([ .])\\d{2})(?:\\2\\d{2}){3})(?! \\d)" RB;

/* 13-19 digits together, or 4-4-4-4(-1..3) or 4-6-4/5 with spaces or dashes;
 * not after an IBAN's head (`DE89 `: a bad IBAN's BBAN may pass Luhn) */
static const char re_card[] = LB "(?<![A-Za-z]{2}\\d\\d[ -])(?:[2-6]\\d{12,18}"
                                 "|[2-6]\\d{3}([ -])\\d{4}\\1\\d{4}\\1\\d{4}(?:\\1\\d{1,3})?"
                                 "|3\\d{3}([ -])\\d{6}\\2\\d{4,5})" RB;

/* country, check digits, BBAN, in groups of four or not */
static const char re_iban[] =
    "(?<![A-Za-z0-9])[A-Za-z]{2}\\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?"
    "(?![A-Za-z0-9])";

static const char *const builtin_patterns[N_BUILTIN] = {re_email, re_phone, re_card, re_iban};

struct tt_redact {
    size_t n;
    pcre2_code *re[N_MAX];
    char label[N_MAX][TT_REDACT_LABEL_MAX + 1];
};

typedef struct entry {
    unsigned kind;
    unsigned number; /* the n in [LABEL_n], per kind */
    char *value;
    size_t len;
} entry;

struct tt_redact_map {
    entry e[TT_REDACT_MAP_MAX];
    size_t n;
    unsigned next[N_MAX];
    const tt_redact *r; /* the labels, set by the first tt_redact_text */
    int refs;
};

int tt_redact_luhn_ok(const char *d, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(d[n - 1 - i] - '0');
        if (v > 9)
            return 0;
        if (i % 2 == 1)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
    }
    return n > 0 && sum % 10 == 0;
}

static int upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 32 : c;
}

int tt_redact_iban_ok(const char *s, size_t n)
{
    if (n < 15 || n > 34)
        return 0;
    for (size_t k = 0; k < 2; k++) {
        if (upper(s[k]) < 'A' || upper(s[k]) > 'Z')
            return 0;
    }
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        int c = upper(s[(k + 4) % n]); /* the first four moved to the end */
        if (c >= '0' && c <= '9')
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else if (c >= 'A' && c <= 'Z')
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
        else
            return 0;
    }
    return rem == 1;
}

/* The candidate's characters of the classes in keep, at most cap. */
static size_t squeeze(const char *s, size_t n, char *out, size_t cap, int letters)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        char c = s[i];
        if ((c >= '0' && c <= '9') || (letters && upper(c) >= 'A' && upper(c) <= 'Z'))
            out[k++] = c;
    }
    return k;
}

/* Whether a candidate of detector i is kept. */
static int kept(size_t i, const char *s, size_t n)
{
    char d[40];
    size_t k;
    switch (i) {
    case TT_REDACT_PHONE:
        k = squeeze(s, n, d, sizeof d, 0);
        return k >= 8 && k <= 15;
    case TT_REDACT_CARD:
        k = squeeze(s, n, d, sizeof d, 0);
        return k >= 13 && k <= 19 && tt_redact_luhn_ok(d, k);
    case TT_REDACT_IBAN:
        k = squeeze(s, n, d, sizeof d, 1);
        return k < sizeof d && tt_redact_iban_ok(d, k);
    default:
        return n > 0 && n <= TT_REDACT_VALUE_MAX;
    }
}

static int label_ok(const char *l)
{
    size_t n = strlen(l);
    if (n == 0 || n > TT_REDACT_LABEL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!((l[i] >= 'A' && l[i] <= 'Z') || (l[i] >= '0' && l[i] <= '9')))
            return 0;
    }
    for (size_t i = 0; i < N_BUILTIN; i++) {
        if (strcmp(l, builtin_labels[i]) == 0)
            return 0;
    }
    return 1;
}

static int add(tt_redact *r, const char *pattern, const char *label, char *err, size_t err_len)
{
    int code;
    PCRE2_SIZE off;
    r->re[r->n] = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!r->re[r->n]) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, err_len, "redact pattern %s: %s at offset %zu", label, (char *)msg,
                 (size_t)off);
        return -1;
    }
    (void)pcre2_jit_compile(r->re[r->n], PCRE2_JIT_COMPLETE);
    snprintf(r->label[r->n], sizeof r->label[0], "%s", label);
    r->n++;
    return 0;
}

tt_redact *tt_redact_new(const char *const *patterns, const char *const *labels, size_t n,
                         char *err, size_t err_len)
{
    if (n > TT_REDACT_EXTRA_MAX) {
        snprintf(err, err_len, "at most %d redact patterns", TT_REDACT_EXTRA_MAX);
        return NULL;
    }
    tt_redact *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < N_BUILTIN; i++) {
        if (add(r, builtin_patterns[i], builtin_labels[i], err, err_len) != 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!labels[i] || !label_ok(labels[i])) {
            snprintf(err, err_len, "redact label \"%s\": 1-%d of A-Z, 0-9, not a built-in one",
                     labels[i] ? labels[i] : "", TT_REDACT_LABEL_MAX);
            goto fail;
        }
        for (size_t j = N_BUILTIN; j < r->n; j++) {
            if (strcmp(r->label[j], labels[i]) == 0) {
                snprintf(err, err_len, "redact label \"%s\" given twice", labels[i]);
                goto fail;
            }
        }
        if (add(r, patterns[i], labels[i], err, err_len) != 0)
            goto fail;
    }
    return r;
fail:
    tt_redact_free(r);
    return NULL;
}

void tt_redact_free(tt_redact *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        pcre2_code_free(r->re[i]);
    free(r);
}

static tt_redact *shared;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_make(void)
{
    char err[200];
    shared = tt_redact_new(NULL, NULL, 0, err, sizeof err);
}

const tt_redact *tt_redact_default(void)
{
    pthread_once(&shared_once, shared_make);
    return shared;
}

/* Kept true for every pattern of builtin_patterns (test_redact.c checks the
 * samples of each kind against it). */
int tt_redact_default_may_match(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@' || (s[i] >= '0' && s[i] <= '9'))
            return 1;
    }
    return 0;
}

tt_redact_map *tt_redact_map_new(void)
{
    tt_redact_map *m = calloc(1, sizeof(tt_redact_map));
    if (m)
        m->refs = 1;
    return m;
}

tt_redact_map *tt_redact_map_ref(tt_redact_map *m)
{
    if (m)
        m->refs++;
    return m;
}

static void map_truncate(tt_redact_map *m, size_t n)
{
    while (m->n > n) {
        entry *e = &m->e[--m->n];
        m->next[e->kind]--;
        free(e->value);
    }
}

void tt_redact_map_free(tt_redact_map *m)
{
    if (!m || --m->refs > 0)
        return;
    map_truncate(m, 0);
    free(m);
}

size_t tt_redact_map_count(const tt_redact_map *m)
{
    return m->n;
}

/* The entry for value (found or added), or NULL when m is full. */
static const entry *map_get(tt_redact_map *m, unsigned kind, const char *v, size_t n)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].kind == kind && m->e[i].len == n && memcmp(m->e[i].value, v, n) == 0)
            return &m->e[i];
    }
    if (m->n == TT_REDACT_MAP_MAX || m->next[kind] >= 9999)
        return NULL;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, v, n);
    copy[n] = '\0';
    m->e[m->n] = (entry){.kind = kind, .number = ++m->next[kind], .value = copy, .len = n};
    return &m->e[m->n++];
}

typedef struct span {
    size_t start, end;
} span;

/* The next kept candidate of detector i at or after from, or start = SIZE_MAX. */
static span next_of(const tt_redact *r, size_t i, pcre2_match_data *md, const char *s, size_t n,
                    size_t from)
{
    while (from <= n) {
        int rc = pcre2_match(r->re[i], (PCRE2_SPTR)s, n, from, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0] && kept(i, s + ov[0], ov[1] - ov[0]))
            return (span){.start = ov[0], .end = ov[1]};
        from = ov[0] + 1;
    }
    return (span){.start = SIZE_MAX, .end = SIZE_MAX};
}

static int emit(tt_buf *out, const tt_redact *r, const entry *e)
{
    return tt_buf_appendf(out, "[%s_%u]", r->label[e->kind], e->number);
}

int tt_redact_text(const tt_redact *r, tt_redact_map *m, const char *s, size_t n, tt_buf *out)
{
    if (n > TT_REDACT_INPUT_MAX || (m->r && m->r != r))
        return -1;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md)
        return -1;
    size_t out_len = out->len, map_n = m->n, pos = 0;
    span next[N_MAX];
    for (size_t i = 0; i < r->n; i++)
        next[i] = next_of(r, i, md, s, n, 0);
    int count = 0, rc = 0;
    for (;;) {
        size_t best = r->n;
        for (size_t i = 0; i < r->n; i++) {
            if (next[i].start != SIZE_MAX && next[i].start < pos)
                next[i] = next_of(r, i, md, s, n, pos);
            if (next[i].start == SIZE_MAX)
                continue;
            if (best == r->n || next[i].start < next[best].start ||
                (next[i].start == next[best].start && next[i].end > next[best].end))
                best = i; /* the earliest, then the longest, then the first detector */
        }
        if (best == r->n)
            break;
        span sp = next[best];
        const entry *e = map_get(m, (unsigned)best, s + sp.start, sp.end - sp.start);
        if (!e || tt_buf_append(out, s + pos, sp.start - pos) != 0 || emit(out, r, e) != 0) {
            rc = -1;
            break;
        }
        count++;
        pos = sp.end;
    }
    if (rc == 0 && tt_buf_append(out, s + pos, n - pos) != 0)
        rc = -1;
    pcre2_match_data_free(md);
    if (rc != 0) {
        map_truncate(m, map_n);
        out->len = out_len;
        if (out->mem)
            out->mem[out->headroom + out_len] = '\0';
        return -1;
    }
    m->r = r;
    return count;
}

static int is_pchar(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The entry whose placeholder s[0..n) begins with (s[0] is '['), its
 * length in *len; NULL if none. */
static const entry *placeholder_at(const tt_redact_map *m, const char *s, size_t n, size_t *len)
{
    size_t k = 1;
    while (k < n && k < TT_REDACT_PLACEHOLDER_MAX && is_pchar(s[k]))
        k++;
    if (k >= n || s[k] != ']' || !m->r)
        return NULL;
    char ph[TT_REDACT_PLACEHOLDER_MAX + 1];
    for (size_t i = 0; i < m->n; i++) {
        int w = snprintf(ph, sizeof ph, "[%s_%u]", m->r->label[m->e[i].kind], m->e[i].number);
        if ((size_t)w == k + 1 && memcmp(ph, s, k + 1) == 0) {
            *len = k + 1;
            return &m->e[i];
        }
    }
    return NULL;
}

/* Restores s[0..n) into out; with hold, a tail that might begin a
 * placeholder is not written: its start is returned in *held_from. */
/* A value into JSON string text: `"`, `\` and control bytes escaped. */
static int append_value(tt_buf *out, const entry *e, int json)
{
    if (!json)
        return tt_buf_append(out, e->value, e->len);
    for (size_t i = 0; i < e->len; i++) {
        unsigned char c = (unsigned char)e->value[i];
        int rc = c == '"' || c == '\\' ? tt_buf_appendf(out, "\\%c", c)
                 : c < 0x20            ? tt_buf_appendf(out, "\\u%04x", c)
                                       : tt_buf_append(out, &e->value[i], 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int restore(const tt_redact_map *m, const char *s, size_t n, tt_buf *out, size_t *held_from,
                   int json)
{
    size_t pos = 0, i = 0;
    while (i < n) {
        const char *b = memchr(s + i, '[', n - i);
        if (!b)
            break;
        i = (size_t)(b - s);
        size_t len = 0;
        const entry *e = placeholder_at(m, s + i, n - i, &len);
        if (e) {
            if (tt_buf_append(out, s + pos, i - pos) != 0 || append_value(out, e, json) != 0)
                return -1;
            pos = i = i + len;
            continue;
        }
        if (held_from) {
            size_t k = i + 1;
            while (k < n && k - i < TT_REDACT_PLACEHOLDER_MAX && is_pchar(s[k]))
                k++;
            if (k == n && k - i < TT_REDACT_PLACEHOLDER_MAX) { /* may go on in the next piece */
                *held_from = i;
                return tt_buf_append(out, s + pos, i - pos) != 0 ? -1 : 0;
            }
        }
        i++;
    }
    if (held_from)
        *held_from = n;
    return tt_buf_append(out, s + pos, n - pos) != 0 ? -1 : 0;
}

int tt_redact_restore(const tt_redact_map *m, const char *s, size_t n, tt_buf *out)
{
    return restore(m, s, n, out, NULL, 0);
}

void tt_redact_stream_init(tt_redact_stream *st, const tt_redact_map *m)
{
    *st = (tt_redact_stream){.map = m};
}

void tt_redact_stream_init_json(tt_redact_stream *st, const tt_redact_map *m)
{
    *st = (tt_redact_stream){.map = m, .json = 1};
}

/* x (a string) redacted: the replacements, *nv its new value (NULL: none). */
static int redact_string(const tt_redact *r, tt_redact_map *m, const json_t *x, json_t **nv)
{
    tt_buf b;
    tt_buf_init(&b, 2 * (size_t)TT_REDACT_INPUT_MAX);
    int n = tt_redact_text(r, m, json_string_value(x), json_string_length(x), &b);
    *nv = n > 0 ? json_stringn_nocheck(tt_buf_data(&b), b.len) : NULL;
    tt_buf_free(&b);
    return n > 0 && !*nv ? -1 : n;
}

int tt_redact_json(const tt_redact *r, tt_redact_map *m, json_t *v, int depth)
{
    const char *key;
    json_t *x, *nv = NULL;
    size_t i;
    int total = 0, n = 0;
    if (depth > TT_REDACT_JSON_DEPTH_MAX)
        return -1;
    json_object_foreach(v, key, x)
    {
        n = json_is_string(x) ? redact_string(r, m, x, &nv) : tt_redact_json(r, m, x, depth + 1);
        if (n < 0 || (nv && json_object_set_new(v, key, nv) != 0))
            return -1;
        nv = NULL;
        total += n;
    }
    json_array_foreach(v, i, x)
    {
        n = json_is_string(x) ? redact_string(r, m, x, &nv) : tt_redact_json(r, m, x, depth + 1);
        if (n < 0 || (nv && json_array_set_new(v, i, nv) != 0))
            return -1;
        nv = NULL;
        total += n;
    }
    return total;
}

int tt_redact_stream_feed(tt_redact_stream *st, const char *s, size_t n, tt_buf *out)
{
    char *joined = NULL;
    if (st->n_held > 0) { /* the held bytes go first, joined with the piece */
        joined = malloc(st->n_held + n);
        if (!joined)
            return -1;
        memcpy(joined, st->held, st->n_held);
        memcpy(joined + st->n_held, s, n);
        n += st->n_held;
        s = joined;
    }
    size_t from = n;
    int rc = restore(st->map, s, n, out, &from, st->json);
    if (rc == 0) {
        memcpy(st->held, s + from, n - from);
        st->n_held = n - from;
    }
    free(joined);
    return rc;
}

int tt_redact_stream_end(tt_redact_stream *st, tt_buf *out)
{
    int rc = tt_buf_append(out, st->held, st->n_held) != 0 ? -1 : 0;
    st->n_held = 0;
    return rc;
}
