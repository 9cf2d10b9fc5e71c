/* A document's bytes to plain text (see extract.h). */
#define _GNU_SOURCE /* memmem, pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "agents/retrieval/extract.h"

extern char **environ;

static const char *const type_names[TT_DOC__LAST] = {[TT_DOC_TEXT] = "text",
                                                     [TT_DOC_MARKDOWN] = "markdown",
                                                     [TT_DOC_HTML] = "html",
                                                     [TT_DOC_PDF] = "pdf"};

int tt_doc_type_parse(const char *s, tt_doc_type *out)
{
    for (int t = 0; s && t < TT_DOC__LAST; t++)
        if (strcmp(s, type_names[t]) == 0) {
            *out = (tt_doc_type)t;
            return 0;
        }
    return TT_EINVAL;
}

const char *tt_doc_type_name(tt_doc_type t)
{
    return t < TT_DOC__LAST ? type_names[t] : "?";
}

/* 0 when in[0..n) is UTF-8 without NUL bytes. */
static int utf8_ok(const char *in, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = tt_name_utf8_next(in + i, n - i, &cp);
        if (!l || cp == 0)
            return TT_EINVAL;
        i += l;
    }
    return 0;
}

int tt_extract_text(const char *in, size_t n, tt_buf *out, const char **why)
{
    if (utf8_ok(in, n) != 0) {
        *why = "the document is not UTF-8 text (or holds NUL bytes)";
        return TT_EINVAL;
    }
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '\r' || i + 1 >= n || in[i + 1] != '\n')
            continue;
        int rc = tt_buf_append(out, in + from, i - from); /* the CR of CRLF dropped */
        if (rc)
            return rc;
        from = i + 1;
    }
    return tt_buf_append(out, in + from, n - from);
}

/* ---- HTML ---------------------------------------------------------------- */

typedef struct html_out {
    tt_buf *b;
    int nl;    /* line breaks owed before the next text (0-2) */
    int space; /* a space owed before the next text */
    int rc;
} html_out;

static void put(html_out *o, const char *s, size_t n)
{
    if (o->rc || n == 0)
        return;
    if (o->b->len > 0 && o->nl)
        o->rc = tt_buf_append(o->b, "\n\n", (size_t)o->nl);
    else if (o->b->len > 0 && o->space)
        o->rc = tt_buf_append(o->b, " ", 1);
    o->nl = o->space = 0;
    if (!o->rc)
        o->rc = tt_buf_append(o->b, s, n);
}

static void put_cp(html_out *o, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        cp = 0xfffd;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    put(o, u, n);
}

static const struct {
    const char *name;
    unsigned cp;
} entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", ' '},     {"copy", 0xa9},    {"reg", 0xae},     {"trade", 0x2122}, {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201c},
    {"rdquo", 0x201d}, {"bull", 0x2022},  {"middot", 0xb7},  {"euro", 0x20ac},  {"pound", 0xa3},
    {"yen", 0xa5},     {"cent", 0xa2},    {"deg", 0xb0},     {"times", 0xd7},   {"divide", 0xf7},
    {"laquo", 0xab},   {"raquo", 0xbb},   {"sect", 0xa7},    {"para", 0xb6},    {"eacute", 0xe9},
    {"egrave", 0xe8},  {"agrave", 0xe0},  {"uuml", 0xfc},    {"ouml", 0xf6},    {"auml", 0xe4},
    {"szlig", 0xdf},   {"ccedil", 0xe7}};

/* The entity at p ('&', n bytes left): its length, or 0 when it is none
 * (then '&' is text). *cp gets its character (0: soft hyphen, nothing). */
static size_t entity(const char *p, size_t n, unsigned *cp)
{
    size_t e = 1;
    while (e < n && e < 34 && p[e] != ';' && p[e] != '&' && p[e] != '<')
        e++;
    if (e >= n || p[e] != ';' || e < 2)
        return 0;
    if (p[1] == '#') {
        int hex = e > 2 && (p[2] == 'x' || p[2] == 'X');
        size_t d = hex ? 3 : 2;
        unsigned long v = 0;
        if (d >= e)
            return 0;
        for (size_t i = d; i < e; i++) {
            char c = p[i];
            int dig = c >= '0' && c <= '9'          ? c - '0'
                      : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                    : -1;
            if (dig < 0)
                return 0;
            v = v * (hex ? 16u : 10u) + (unsigned)dig;
            if (v > 0x10ffff)
                v = 0x110000; /* stays invalid, never overflows */
        }
        *cp = v > 0x10ffff || v == 0 ? 0xfffd : (unsigned)v; /* 0 means "nothing" below */
        return e + 1;
    }
    if (e - 1 == 3 && strncmp(p + 1, "shy", 3) == 0) {
        *cp = 0;
        return e + 1;
    }
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++)
        if (strlen(entities[i].name) == e - 1 && strncmp(p + 1, entities[i].name, e - 1) == 0) {
            *cp = entities[i].cp;
            return e + 1;
        }
    return 0;
}

static int tag_is(const char *name, size_t len, const char *const *set)
{
    for (; *set; set++)
        if (strlen(*set) == len && strncasecmp(name, *set, len) == 0)
            return 1;
    return 0;
}

static const char *const skipped[] = {"script", "style",  "noscript", "template",
                                      "svg",    "iframe", "object",   NULL};
static const char *const blocks[] = {
    "p",      "div",  "section", "article", "header",     "footer", "main",  "aside",
    "nav",    "ul",   "ol",      "table",   "blockquote", "pre",    "title", "hr",
    "figure", "form", "dl",      "address", "caption",    "body",   "html",  NULL};
static const char *const lines[] = {"br", "li", "tr", "dt", "dd", "option", NULL};

/* The end of the tag that starts at p ('<'): past its '>', quotes in
 * attributes respected; NULL when it never ends. */
static const char *tag_end(const char *p, const char *end)
{
    char quote = 0;
    for (p++; p < end; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
        } else if (*p == '"' || *p == '\'') {
            quote = *p;
        } else if (*p == '>') {
            return p + 1;
        }
    }
    return NULL;
}

/* After <name ...> of a skipped element: past its </name>, or the end. */
static const char *skip_content(const char *p, const char *end, const char *name, size_t len)
{
    for (; p + 2 + len <= end; p++)
        if (p[0] == '<' && p[1] == '/' && strncasecmp(p + 2, name, len) == 0) {
            const char *t = tag_end(p, end);
            return t ? t : end;
        }
    return end;
}

/* One tag at p: what it does to the text; the position after it. */
static const char *html_tag(html_out *o, const char *p, const char *end)
{
    if (end - p >= 4 && strncmp(p, "<!--", 4) == 0) {
        const char *c = memmem(p + 4, (size_t)(end - p - 4), "-->", 3);
        return c ? c + 3 : end;
    }
    const char *after = tag_end(p, end);
    if (!after)
        return end; /* a tag cut short: the rest is no text */
    const char *n = p + 1 + (p[1] == '/');
    size_t len = 0;
    while (n + len < after &&
           ((n[len] >= 'a' && n[len] <= 'z') || (n[len] >= 'A' && n[len] <= 'Z') ||
            (n[len] >= '0' && n[len] <= '9')))
        len++;
    int closing = p[1] == '/';
    if (!closing && len && tag_is(n, len, skipped) && after[-2] != '/')
        return skip_content(after, end, n, len);
    if (len == 2 && (n[0] == 'h' || n[0] == 'H') && n[1] >= '1' && n[1] <= '6') {
        o->nl = 2;
        if (!closing) {
            static const char hashes[] = "###### ";
            int level = n[1] - '0';
            put(o, hashes + 6 - level, (size_t)level + 1);
            o->space = 0;
        }
    } else if (len && tag_is(n, len, blocks)) {
        o->nl = 2;
    } else if (len && tag_is(n, len, lines)) {
        o->nl = o->nl > 1 ? o->nl : 1;
    } else if (len && (tag_is(n, len, (const char *const[]){"td", "th", NULL}))) {
        o->space = 1;
    }
    return after;
}

/* Does '<' followed by c open markup? ("a < b" and "<3" are text.) */
static int tag_start(char c)
{
    return c == '/' || c == '!' || c == '?' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int tt_extract_html(const char *in, size_t n, tt_buf *out, const char **why)
{
    if (utf8_ok(in, n) != 0) {
        *why = "the HTML is not UTF-8 (or holds NUL bytes)";
        return TT_EINVAL;
    }
    html_out o = {.b = out};
    const char *p = in, *end = in + n;
    while (p < end && !o.rc) {
        char c = *p;
        if (c == '<' && p + 1 < end && tag_start(p[1])) {
            p = html_tag(&o, p, end);
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            o.space = 1;
            p++;
        } else if (c == '&') {
            unsigned cp;
            size_t l = entity(p, (size_t)(end - p), &cp);
            if (l && (cp == ' ' || cp == 0xa0)) /* a no-break space is a space here */
                o.space = 1;
            else if (l && cp)
                put_cp(&o, cp);
            else if (!l)
                put(&o, "&", 1);
            p += l ? l : 1;
        } else {
            const char *q = p + 1; /* a '<' that opens no tag is text too */
            while (q < end && *q != '<' && *q != '&' && *q != ' ' && *q != '\t' && *q != '\n' &&
                   *q != '\r' && *q != '\f')
                q++;
            put(&o, p, (size_t)(q - p));
            p = q;
        }
    }
    return o.rc;
}

/* ---- PDF ----------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return TT_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads the child's stdout into out until EOF, the deadline or the cap. */
static int read_child(int fd, tt_buf *out, int64_t deadline)
{
    char chunk[16384];
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return TT_ETOOLARGE;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return TT_EIO;
        if (pr == 0)
            continue;
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return TT_EIO;
        if (r == 0)
            return 0;
        int rc = tt_buf_append(out, chunk, (size_t)r);
        if (rc)
            return rc;
    }
}

static int run_pdftotext(const char *path, tt_buf *raw, int *status)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return TT_EIO;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    char *argv[] = {TT_EXTRACT_PDFTOTEXT, "-enc", "UTF-8", "-nopgbrk", "-q",
                    (char *)path,         "-",    NULL};
    pid_t pid;
    int err = posix_spawnp(&pid, TT_EXTRACT_PDFTOTEXT, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (err) {
        close(pipefd[0]);
        return err == ENOENT ? TT_ENOTFOUND : TT_EIO;
    }
    int rc = read_child(pipefd[0], raw, now_ms() + TT_EXTRACT_PDF_TIMEOUT_MS);
    close(pipefd[0]);
    if (rc)
        kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return rc;
}

int tt_extract_pdf(const char *in, size_t n, tt_buf *out, const char **why)
{
    if (n < 5 || memcmp(in, "%PDF-", 5) != 0) {
        *why = "the file is not a PDF (it does not start with %PDF-)";
        return TT_EINVAL;
    }
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/tether-pdf-XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        *why = "no temporary file for the PDF";
        return TT_EIO;
    }
    int rc = write_all(fd, in, n);
    close(fd);
    tt_buf raw;
    tt_buf_init(&raw, out->cap);
    int status = 0;
    if (rc == 0)
        rc = run_pdftotext(path, &raw, &status);
    unlink(path);
    if (rc == TT_ENOTFOUND)
        *why = "pdftotext is not installed (Debian: apt-get install poppler-utils)";
    else if (rc == TT_ETOOLARGE)
        *why = "the PDF's text is over the size limit, or pdftotext took too long";
    else if (rc)
        *why = "pdftotext could not be run";
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *why = "the PDF could not be read (pdftotext refused it)";
        rc = TT_EINVAL;
    }
    size_t i = 0;
    while (rc == 0 && i < raw.len && strchr(" \t\r\n\f", tt_buf_data(&raw)[i]))
        i++;
    if (rc == 0 && i == raw.len) {
        *why = "the PDF holds no text (a scanned image needs OCR first)";
        rc = TT_EINVAL;
    }
    if (rc == 0)
        rc = tt_extract_text(tt_buf_data(&raw), raw.len, out, why);
    tt_buf_free(&raw);
    return rc;
}

int tt_extract(tt_doc_type t, const char *in, size_t n, tt_buf *out, const char **why)
{
    *why = "";
    switch (t) {
    case TT_DOC_TEXT:
    case TT_DOC_MARKDOWN:
        return tt_extract_text(in, n, out, why);
    case TT_DOC_HTML:
        return tt_extract_html(in, n, out, why);
    case TT_DOC_PDF:
        return tt_extract_pdf(in, n, out, why);
    default:
        *why = "unknown document type";
        return TT_EINVAL;
    }
}
