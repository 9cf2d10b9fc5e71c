/* The prompt templates agents fill (see prompt.h): loading with the header
 * line's name, version and optional max_tokens, rendering, and the escaping
 * of data put between tags. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "agents/prompt.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

/* The header line's optional " max_tokens: M" (before " -->"): 0 and *out
 * (0 when absent), or TT_EINVAL. */
static int header_max_tokens(const char *header, int64_t *out)
{
    static const char key[] = " max_tokens: ";
    const char *p = strstr(header, key);
    *out = 0;
    if (!p)
        return 0;
    p += sizeof key - 1;
    int64_t v = 0;
    const char *d = p;
    while (*d >= '0' && *d <= '9' && v <= TT_PROMPT_MAX_TOKENS_MAX)
        v = v * 10 + (*d++ - '0');
    if (d == p || v < 1 || v > TT_PROMPT_MAX_TOKENS_MAX || strncmp(d, " -->", 4) != 0)
        return TT_EINVAL;
    *out = v;
    return 0;
}

int tt_prompt_load(const char *dir, const char *file, tt_prompt *out)
{
    memset(out, 0, sizeof *out);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return TT_ENOTFOUND;
    char *buf = malloc(TT_PROMPT_MAX + 1);
    size_t len = buf ? fread(buf, 1, TT_PROMPT_MAX + 1, f) : 0;
    fclose(f);
    if (!buf)
        return TT_ENOMEM;
    if (len > TT_PROMPT_MAX) {
        free(buf);
        return TT_ETOOLARGE;
    }
    buf[len] = '\0';
    char *eol = strchr(buf, '\n');
    if (!eol || sscanf(buf, "<!-- prompt: %63s version: %d -->", out->name, &out->version) != 2 ||
        out->version < 1) {
        free(buf);
        return TT_EINVAL;
    }
    *eol = '\0';
    if (header_max_tokens(buf, &out->max_tokens) != 0) {
        free(buf);
        return TT_EINVAL;
    }
    snprintf(out->tag, sizeof out->tag, "%s@%d", out->name, out->version);
    out->text = strdup(eol + 1);
    free(buf);
    return out->text ? 0 : TT_ENOMEM;
}

void tt_prompt_free(tt_prompt *p)
{
    free(p->text);
    p->text = NULL;
}

static const char *lookup(const char *const *vars, const char *name, size_t len)
{
    for (; vars && vars[0] && vars[1]; vars += 2) {
        if (strlen(vars[0]) == len && strncmp(vars[0], name, len) == 0)
            return vars[1];
    }
    return NULL;
}

char *tt_prompt_render(const tt_prompt *p, const char *const *vars)
{
    size_t cap = strlen(p->text) + 1, len = 0;
    for (const char *const *v = vars; v && v[0] && v[1]; v += 2)
        cap += strlen(v[1]);
    /* Each placeholder is replaced at most once per occurrence; size for the worst case. */
    size_t occurrences = 0;
    for (const char *q = p->text; (q = strstr(q, "{{")); q += 2)
        occurrences++;
    size_t longest = 0;
    for (const char *const *v = vars; v && v[0] && v[1]; v += 2)
        longest = strlen(v[1]) > longest ? strlen(v[1]) : longest;
    cap += occurrences * longest;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *q = p->text; *q;) {
        const char *end;
        const char *val;
        if (q[0] == '{' && q[1] == '{' && (end = strstr(q + 2, "}}")) &&
            (val = lookup(vars, q + 2, (size_t)(end - q - 2)))) {
            size_t n = strlen(val);
            memcpy(out + len, val, n);
            len += n;
            q = end + 2;
        } else {
            out[len++] = *q++;
        }
    }
    out[len] = '\0';
    return out;
}

/* The delimiter names, normalised: lower case, letters and digits only. */
static const char *const delimiter_names[] = {"userdata", "toolresult"};

/* 1 when the '<' at p (end: the end of the text) could begin one of the
 * delimiter tags: '<', blanks and slashes, then a name that, lower-cased and
 * stripped of blanks and punctuation, starts with a delimiter name, or is
 * the start of one cut short by the end of the text. The scan stops at the
 * next '<', so escaping a whole text stays linear. */
static int opens_delimiter(const char *p, const char *end)
{
    p++;
    while (p < end && (isspace((unsigned char)*p) || *p == '/'))
        p++;
    char name[16];
    size_t n = 0;
    while (p < end && n < sizeof name &&
           (isalnum((unsigned char)*p) || strchr("_-.: \t\r\n", *p))) {
        if (isalnum((unsigned char)*p))
            name[n++] = (char)tolower((unsigned char)*p);
        p++;
    }
    for (size_t i = 0; i < sizeof delimiter_names / sizeof *delimiter_names; i++) {
        size_t dl = strlen(delimiter_names[i]);
        if (n >= dl ? memcmp(name, delimiter_names[i], dl) == 0
                    : p == end && memcmp(name, delimiter_names[i], n) == 0)
            return 1;
    }
    return 0;
}

static size_t escape_into(char *out, const char *text, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '<' && opens_delimiter(text + i, text + len)) {
            if (out)
                memcpy(out + w, "&lt;", 4);
            w += 4;
        } else {
            if (out)
                out[w] = text[i];
            w++;
        }
    }
    return w;
}

char *tt_prompt_escape_data(const char *text, size_t len)
{
    return tt_prompt_wrap_data(NULL, text, len);
}

char *tt_prompt_wrap_data(const char *tag, const char *text, size_t len)
{
    size_t tl = tag ? strlen(tag) : 0;
    size_t body = escape_into(NULL, text, len);
    /* "<tag>\n", "\n</tag>" and the final NUL around the body. */
    size_t cap = body + (tag ? 2 * tl + 7 : 0) + 1;
    char *out = cap > body ? malloc(cap) : NULL;
    if (!out)
        return NULL;
    size_t w = 0;
    if (tag)
        w += (size_t)snprintf(out, cap, "<%s>\n", tag);
    w += escape_into(out + w, text, len);
    if (tag)
        w += (size_t)snprintf(out + w, cap - w, "\n</%s>", tag);
    out[w] = '\0';
    return out;
}
