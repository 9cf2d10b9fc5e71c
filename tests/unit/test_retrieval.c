/* Unit tests for retrieval's pure parts (agents/retrieval/): the chunker
 * (sizes, overlap, headings, long words, with the real BPE tokenizer when
 * its ranks are installed), the HTML extractor (scripts, styles, comments
 * and tags dropped, entities decoded, headings kept), BM25 scoring against
 * a hand computation, cosine and reciprocal rank fusion. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "agents/retrieval/chunker.h"
#include "agents/retrieval/extract.h"
#include "agents/retrieval/index.h"
#include "agents/retrieval/retrieval.h"
#include "state/chunks.h"
#include "retrieval_answer.h"
#include "store_fixture.h"

/* ---- chunker -------------------------------------------------------------- */

static tt_tokenizer *load_tok(void)
{
    tt_tokenizer *tok = NULL;
    if (tt_tokenizer_load(TT_TOKENIZER_O200K_BASE, TT_TOKENIZER_RANKS, &tok) != 0)
        return NULL;
    return tok;
}

/* n paragraphs of distinct numbered sentences. */
static char *paragraphs(int n, int sentences)
{
    tt_buf b;
    tt_buf_init(&b, 16u << 20);
    for (int p = 0; p < n; p++) {
        for (int s = 0; s < sentences; s++)
            assert_int_equal(tt_buf_appendf(&b, "Paragraph %d sentence %d talks about topic %d. ",
                                            p, s, (p * 7 + s) % 13),
                             0);
        assert_int_equal(tt_buf_append(&b, "\n\n", 2), 0);
    }
    return tt_buf_take(&b, NULL);
}

static void check_chunks(const tt_tokenizer *tok, const char *text, const tt_chunk_span *c,
                         size_t n, const tt_chunk_opts *o)
{
    for (size_t i = 0; i < n; i++) {
        size_t real;
        if (tok)
            assert_int_equal(tt_tokenizer_count(tok, text + c[i].off, c[i].len, &real), 0);
        else
            real = tt_tokenizer_estimate(text + c[i].off, c[i].len);
        assert_true(c[i].tokens <= o->size);
        /* the sum of the units' counts is within a few tokens of the whole */
        assert_true(real <= o->size + 8);
        if (i > 0) {
            /* every chunk moves on, and starts before the previous one ends
             * by at most the overlap (in bytes: some overlap exists) */
            assert_true(c[i].off > c[i - 1].off);
            assert_true(c[i].off + c[i].len > c[i - 1].off + c[i - 1].len);
        }
    }
}

static void chunker_sizes_and_overlap(void **state)
{
    (void)state;
    tt_tokenizer *tok = load_tok();
    char *text = paragraphs(200, 3);
    size_t len = strlen(text);
    tt_chunk_opts o = {.size = 200, .overlap = 40};
    tt_chunk_span *c;
    size_t n;
    assert_int_equal(tt_chunk_text(tok, text, len, &o, &c, &n), 0);
    assert_true(n > 10);
    check_chunks(tok, text, c, n, &o);
    size_t overlapped = 0;
    for (size_t i = 1; i < n; i++)
        if (c[i].off < c[i - 1].off + c[i - 1].len) {
            overlapped++;
            /* the repeated part is whole paragraphs of at most 40 tokens */
            size_t shared = c[i - 1].off + c[i - 1].len - c[i].off, t;
            if (tok)
                assert_int_equal(tt_tokenizer_count(tok, text + c[i].off, shared, &t), 0);
            else
                t = tt_tokenizer_estimate(text + c[i].off, shared);
            assert_true(t <= 40 + 2);
            assert_true(c[i].off == 0 || text[c[i].off - 1] == '\n');
        }
    assert_int_equal(overlapped, n - 1);
    /* no overlap: the chunks tile the text */
    free(c);
    o.overlap = 0;
    assert_int_equal(tt_chunk_text(tok, text, len, &o, &c, &n), 0);
    for (size_t i = 1; i < n; i++)
        assert_true(c[i].off >= c[i - 1].off + c[i - 1].len);
    free(c);
    free(text);
    tt_tokenizer_free(tok);
}

static void chunker_headings(void **state)
{
    (void)state;
    tt_buf b;
    tt_buf_init(&b, 1u << 20);
    for (int s = 0; s < 6; s++) {
        assert_int_equal(tt_buf_appendf(&b, "## Section %d\n\n", s), 0);
        for (int p = 0; p < 3; p++)
            assert_int_equal(tt_buf_appendf(&b,
                                            "Section %d paragraph %d explains a detail of the "
                                            "matter at some length to take up tokens.\n\n",
                                            s, p),
                             0);
    }
    tt_chunk_opts o = {.size = 120, .overlap = 30};
    tt_chunk_span *c;
    size_t n;
    const char *text = tt_buf_str(&b);
    assert_int_equal(tt_chunk_text(NULL, text, b.len, &o, &c, &n), 0);
    /* each section fits a chunk and is over half of it: one chunk each, at
     * its heading, no overlap across sections */
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        char want[48];
        snprintf(want, sizeof want, "## Section %zu\n", i);
        assert_memory_equal(text + c[i].off, want, strlen(want));
        assert_true(c[i].heading);
        assert_null(memmem(text + c[i].off + 3, c[i].len - 3, "## ", 3));
    }
    free(c);
    tt_buf_free(&b);
}

static void chunker_long_word_and_bounds(void **state)
{
    (void)state;
    size_t len = 50000;
    char *word = malloc(len);
    for (size_t i = 0; i < len; i++)
        word[i] = "abcdefghij0123456789+/"[(i * 7) % 22];
    tt_chunk_opts o = {.size = 100, .overlap = 20};
    tt_chunk_span *c;
    size_t n;
    assert_int_equal(tt_chunk_text(NULL, word, len, &o, &c, &n), 0);
    assert_true(n >= len / 100);
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].tokens <= 100);
    free(c);
    /* blanks only: no chunk */
    assert_int_equal(tt_chunk_text(NULL, "  \n\n \t\n", 7, &o, &c, &n), 0);
    assert_int_equal(n, 0);
    free(c);
    /* bad options */
    const char *why;
    tt_chunk_opts bad = {.size = 8, .overlap = 0};
    assert_int_equal(tt_chunk_opts_check(&bad, &why), TT_EINVAL);
    bad = (tt_chunk_opts){.size = 100, .overlap = 51};
    assert_int_equal(tt_chunk_opts_check(&bad, &why), TT_EINVAL);
    assert_int_equal(tt_chunk_text(NULL, word, len, &bad, &c, &n), TT_EINVAL);
    free(word);
}

/* ---- extraction ------------------------------------------------------------ */

static char *html(const char *in)
{
    tt_buf b;
    tt_buf_init(&b, 1u << 20);
    const char *why = NULL;
    assert_int_equal(tt_extract_html(in, strlen(in), &b, &why), 0);
    char *s = strdup(tt_buf_str(&b));
    tt_buf_free(&b);
    return s;
}

static void html_extraction(void **state)
{
    (void)state;
    char *t = html("<!DOCTYPE html><html><head><title>Leave policy</title>"
                   "<style>p { color: red }</style><script>var x = '<p>no</p>';</script>"
                   "</head><body><!-- a comment <p>hidden</p> -->"
                   "<h1>Annual   leave</h1><p>Staff get 25&nbsp;days &amp; carry&#160;over "
                   "&lt;5&gt; days &#x2014; see &quot;HR&quot;.</p>"
                   "<ul><li>One</li><li>Two &unknown; a < b</li></ul>"
                   "<p data-x=\"a>b\">Quoted &#65;ttribute</p><noscript>nojs</noscript>"
                   "<table><tr><td>c1</td><td>c2</td></tr></table></body></html>");
    assert_string_equal(t, "Leave policy\n\n# Annual leave\n\nStaff get 25 days & carry over <5> "
                           "days \xe2\x80\x94 see \"HR\".\n\nOne\nTwo &unknown; a < b\n\nQuoted "
                           "Attribute\n\nc1 c2");
    free(t);
    t = html("<p>bad &#0; and &#x110000; and &#55296; end</p>");
    assert_string_equal(t, "bad \xef\xbf\xbd and \xef\xbf\xbd and \xef\xbf\xbd end");
    free(t);
    t = html("text then <b unterminated");
    assert_string_equal(t, "text then");
    free(t);
    t = html("<SCRIPT type=x>alert(1)</SCRIPT>After<STYLE>x</style> done");
    assert_string_equal(t, "After done");
    free(t);
    /* not UTF-8: refused with a reason */
    tt_buf b;
    tt_buf_init(&b, 1024);
    const char *why = NULL;
    assert_int_equal(tt_extract_html("<p>\xff</p>", 8, &b, &why), TT_EINVAL);
    assert_non_null(why);
    assert_int_equal(tt_extract_text("a\0b", 3, &b, &why), TT_EINVAL);
    assert_int_equal(tt_extract_text("a\r\nb\r\n", 6, &b, &why), 0);
    assert_string_equal(tt_buf_str(&b), "a\nb\n");
    /* a capped output */
    tt_buf small;
    tt_buf_init(&small, 4);
    assert_int_equal(tt_extract_html("<p>longer than four</p>", 23, &small, &why), TT_ETOOLARGE);
    tt_buf_free(&small);
    assert_int_equal(tt_extract_pdf("not a pdf", 9, &b, &why), TT_EINVAL);
    assert_non_null(strstr(why, "%PDF-"));
    tt_buf_free(&b);
    tt_doc_type ty;
    assert_int_equal(tt_doc_type_parse("html", &ty), 0);
    assert_int_equal(ty, TT_DOC_HTML);
    assert_int_equal(tt_doc_type_parse("docx", &ty), TT_EINVAL);
}

/* ---- BM25, cosine, fusion ------------------------------------------------- */

static tt_rindex *small_index(void)
{
    static const char *docs[] = {
        "the cat sat on the mat",
        "dogs and cats living together",
        "the quarterly revenue grew by ten percent",
        "revenue revenue revenue and more revenue",
        "Cat food prices",
    };
    static const float vecs[][3] = {
        {1, 0, 0}, {0.9f, 0.1f, 0}, {0, 1, 0}, {0, 0.8f, 0.2f}, {3, 0, 0}};
    tt_rindex *ix = tt_rindex_new(3);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(tt_rindex_add(ix, docs[i], strlen(docs[i]), vecs[i]), 0);
    assert_int_equal(tt_rindex_build(ix), 0);
    return ix;
}

static void bm25_scores(void **state)
{
    (void)state;
    tt_rindex *ix = small_index();
    tt_rindex_hit h[TT_RINDEX_CANDIDATES];
    size_t n = tt_rindex_bm25(ix, "CAT", 3, h, TT_RINDEX_CANDIDATES);
    /* "cat" is in chunks 0 and 4 ("cats" is another term): df 2 of N 5 */
    assert_int_equal(n, 2);
    double idf = log(1.0 + (5 - 2 + 0.5) / (2 + 0.5));
    double avgdl = (6 + 5 + 7 + 6 + 3) / 5.0;
    double s4 = idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 3 / avgdl));
    double s0 = idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 6 / avgdl));
    assert_int_equal(h[0].chunk, 4); /* the shorter chunk wins */
    assert_true(fabs(h[0].bm25 - s4) < 1e-4);
    assert_int_equal(h[1].chunk, 0);
    assert_true(fabs(h[1].bm25 - s0) < 1e-4);
    assert_int_equal(h[0].bm25_rank, 1);
    /* term frequency saturates but still counts */
    n = tt_rindex_bm25(ix, "revenue", 7, h, TT_RINDEX_CANDIDATES);
    assert_int_equal(n, 2);
    assert_int_equal(h[0].chunk, 3);
    /* unknown words and punctuation: nothing */
    assert_int_equal(tt_rindex_bm25(ix, "zebra !!", 8, h, TT_RINDEX_CANDIDATES), 0);
    tt_rindex_free(ix);
}

/* A chunk of punctuation has no terms: the index builds (found by
 * fuzz_extract: qsort was handed NULL, caught by UBSan's nonnull check). */
static void chunk_without_terms(void **state)
{
    (void)state;
    tt_rindex *ix = tt_rindex_new(0);
    assert_int_equal(tt_rindex_add(ix, "!!! ???", 7, NULL), 0);
    assert_int_equal(tt_rindex_add(ix, "word", 4, NULL), 0);
    assert_int_equal(tt_rindex_build(ix), 0);
    tt_rindex_hit h[2];
    assert_int_equal(tt_rindex_bm25(ix, "word", 4, h, 2), 1);
    assert_int_equal(h[0].chunk, 1);
    tt_rindex_free(ix);
}

static void cosine_and_rrf(void **state)
{
    (void)state;
    tt_rindex *ix = small_index();
    tt_rindex_hit h[TT_RINDEX_CANDIDATES];
    float q[3] = {2, 0, 0};
    size_t n = tt_rindex_vector(ix, q, 0.7f, h, TT_RINDEX_CANDIDATES);
    /* 0 and 4 are exactly along q (cosine 1, ties by order), then 1 */
    assert_int_equal(n, 3);
    assert_int_equal(h[0].chunk, 0);
    assert_int_equal(h[1].chunk, 4);
    assert_int_equal(h[2].chunk, 1);
    assert_true(fabs(h[0].cosine - 1) < 1e-5);
    assert_true(fabs(h[2].cosine - 0.9f / sqrtf(0.82f)) < 1e-5);
    /* the floor cuts */
    assert_int_equal(tt_rindex_vector(ix, q, 0.999f, h, TT_RINDEX_CANDIDATES), 2);

    /* RRF by hand: a = [4, 0], b = [0, 4, 1] */
    tt_rindex_hit a[2] = {{.chunk = 4}, {.chunk = 0}};
    tt_rindex_hit b[3] = {{.chunk = 0, .cosine = 1}, {.chunk = 4, .cosine = 1}, {.chunk = 1}};
    tt_rindex_hit out[5];
    n = tt_rindex_rrf(a, 2, b, 3, out, 5);
    assert_int_equal(n, 3);
    /* 4: 1/61 + 1/62, 0: 1/62 + 1/61: equal, the lower chunk first; 1: 1/63 */
    assert_int_equal(out[0].chunk, 0);
    assert_int_equal(out[1].chunk, 4);
    assert_int_equal(out[2].chunk, 1);
    assert_true(fabs(out[0].score - (1.0 / 61 + 1.0 / 62)) < 1e-6);
    assert_true(fabs(out[2].score - 1.0 / 63) < 1e-6);
    assert_int_equal(out[2].bm25_rank, 0);
    assert_int_equal(out[2].vector_rank, 3);
    /* k cuts */
    assert_int_equal(tt_rindex_rrf(a, 2, b, 3, out, 1), 1);
    assert_int_equal(out[0].chunk, 0);

    /* the whole search: keyword "revenue" and a vector near "cat" both count */
    n = tt_rindex_search(ix, "revenue", 7, q, 3, 0.7f, out, 5);
    assert_int_equal(n, 5);
    assert_true(out[0].chunk == 3 || out[0].chunk == 0);
    /* a query vector of the wrong size: keyword only */
    n = tt_rindex_search(ix, "revenue", 7, q, 2, 0.7f, out, 5);
    assert_int_equal(n, 2);
    tt_rindex_free(ix);
}

/* The vector scan reads int8 copies and re-scores its best in float: on
 * clustered vectors (some chunks without one) its hits must be the exact
 * top 50 by cosine, with exact cosines, at two floors; vectors longer than
 * TT_RINDEX_DIMS_MAX are scanned in float. */
#define VN 4000
#define VD 96
static uint32_t vrng = 12345u;
static float vrand(void) /* about uniform in [-1, 1] */
{
    vrng = vrng * 1664525u + 1013904223u;
    return (float)((vrng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void check_vector_query(const tt_rindex *ix, float (*v)[VD], const float *q, float floor)
{
    static double exact[VN], sorted[VN];
    double qn = 0;
    for (int j = 0; j < VD; j++)
        qn += (double)q[j] * q[j];
    size_t above = 0;
    for (int c = 0; c < VN; c++) {
        double dot = 0, vn = 0;
        for (int j = 0; j < VD; j++) {
            dot += (double)v[c][j] * q[j];
            vn += (double)v[c][j] * v[c][j];
        }
        exact[c] = c % 7 == 3 ? -9 : dot / sqrt(vn * qn); /* every 7th: no vector */
        sorted[c] = exact[c];
        above += exact[c] >= floor;
    }
    qsort(sorted, VN, sizeof *sorted, cmp_desc);
    tt_rindex_hit h[TT_RINDEX_CANDIDATES];
    size_t n = tt_rindex_vector(ix, q, floor, h, TT_RINDEX_CANDIDATES);
    assert_int_equal(n, above < TT_RINDEX_CANDIDATES ? above : TT_RINDEX_CANDIDATES);
    for (size_t i = 0; i < n; i++) {
        assert_true(fabs(h[i].cosine - exact[h[i].chunk]) < 1e-5);
        assert_true(fabs(h[i].cosine - sorted[i]) < 1e-5); /* the i-th best, in order */
        assert_true(h[i].cosine >= floor);
        assert_int_equal(h[i].vector_rank, (int)i + 1);
    }
}

static void vector_scan_exact(void **state)
{
    (void)state;
    static float v[VN][VD], centre[40][VD];
    for (int k = 0; k < 40; k++)
        for (int j = 0; j < VD; j++)
            centre[k][j] = vrand();
    tt_rindex *ix = tt_rindex_new(VD);
    for (int c = 0; c < VN; c++) {
        for (int j = 0; j < VD; j++)
            v[c][j] = centre[c % 40][j] + 0.6f * vrand();
        if (c == 5)
            for (int j = 0; j < VD; j++)
                v[c][j] *= 1000; /* the length does not count */
        assert_int_equal(tt_rindex_add(ix, "x", 1, c % 7 == 3 ? NULL : v[c]), 0);
    }
    assert_int_equal(tt_rindex_build(ix), 0);
    float q[VD];
    for (int t = 0; t < 20; t++) {
        for (int j = 0; j < VD; j++)
            q[j] = (t % 2 ? centre[t][j] : 0) + vrand();
        check_vector_query(ix, v, q, 0.0f);
        check_vector_query(ix, v, q, 0.5f);
        check_vector_query(ix, v, q, -1.0f);
    }
    tt_rindex_free(ix);

    /* past TT_RINDEX_DIMS_MAX: the float scan, same answers */
    uint32_t d = TT_RINDEX_DIMS_MAX + 1;
    float *a = calloc(d, sizeof *a), *b = calloc(d, sizeof *b);
    a[0] = 1;
    b[0] = 1;
    b[1] = 1;
    ix = tt_rindex_new(d);
    assert_int_equal(tt_rindex_add(ix, "a", 1, a), 0);
    assert_int_equal(tt_rindex_add(ix, "b", 1, b), 0);
    assert_int_equal(tt_rindex_build(ix), 0);
    tt_rindex_hit h[2];
    assert_int_equal(tt_rindex_vector(ix, a, 0.5f, h, 2), 2);
    assert_int_equal(h[0].chunk, 0);
    assert_true(fabs(h[1].cosine - 1 / sqrt(2)) < 1e-6);
    tt_rindex_free(ix);
    free(a);
    free(b);
}

/* ---- the chunk store ------------------------------------------------------ */

typedef struct put_ctx {
    const char *tenant, *coll, *id, *record;
    const tt_chunk_rec *c;
    size_t n;
    int replaced, found, del;
} put_ctx;

static int put_fill(tt_store_txn *txn, void *ud)
{
    put_ctx *p = ud;
    if (p->del)
        return tt_chunks_delete(txn, p->tenant, p->coll, p->id, &p->found);
    return tt_chunks_put(txn, p->tenant, p->coll, p->id, p->record, strlen(p->record), p->c, p->n,
                         &p->replaced);
}

typedef struct got_t {
    char text[8][64];
    char ids[8][32];
    size_t n;
} got_t;

static int on_chunk(const char *id, size_t id_len, const tt_chunk_rec *c, void *ud)
{
    got_t *s = ud;
    if (s->n == 8)
        return TT_EINTERNAL;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%.*s", (int)id_len, id);
    snprintf(s->text[s->n], sizeof s->text[0], "%.*s#%u/%u", (int)c->text_len, c->text, c->pos,
             c->dims);
    if (c->dims) {
        float v[2];
        memcpy(v, c->vec, sizeof v);
        assert_true(v[0] == 0.6f && v[1] == 0.8f);
    }
    s->n++;
    return 0;
}

static int on_doc(const char *record, size_t len, void *ud)
{
    got_t *s = ud;
    snprintf(s->text[s->n++], sizeof s->text[0], "%.*s", (int)len, record);
    return 0;
}

static void check_batches(fx *f)
{
    /* t1/hr read in batches of two, resumed after the last key each time */
    got_t b2 = {0};
    char cursor[TT_CHUNKS_CURSOR_MAX];
    size_t clen = 0;
    int done = 0, passes = 0;
    while (!done && passes < 10) {
        assert_int_equal(
            tt_chunks_scan_batch(f->st, "t1", "hr", cursor, &clen, 2, on_chunk, &b2, &done), 0);
        passes++;
    }
    assert_int_equal(passes, 2);
    assert_int_equal(b2.n, 4);
    got_t whole = {0};
    assert_int_equal(tt_chunks_scan(f->st, "t1", "hr", on_chunk, &whole), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(b2.text[i], whole.text[i]);
        assert_string_equal(b2.ids[i], whole.ids[i]);
    }
}

static void chunk_store(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), 0);
    float v[2] = {0.6f, 0.8f};
    tt_chunk_rec c[3] = {{.pos = 0, .tokens = 2, .dims = 2, .vec = v, .text = "a0", .text_len = 2},
                         {.pos = 1, .tokens = 2, .dims = 2, .vec = v, .text = "a1", .text_len = 2},
                         {.pos = 2, .tokens = 2, .text = "a2", .text_len = 2}};
    put_ctx p = {
        .tenant = "t1", .coll = "hr", .id = "doc", .record = "{\"id\":\"doc\"}", .c = c, .n = 3};
    assert_int_equal(tt_store_write(f->st, put_fill, &p), 0);
    assert_int_equal(p.replaced, 0);
    /* the same names in another tenant, another collection, and a doc id
     * that extends this one */
    put_ctx q = p;
    q.tenant = "t2";
    q.n = 1;
    assert_int_equal(tt_store_write(f->st, put_fill, &q), 0);
    q = p;
    q.coll = "hr2";
    q.n = 1;
    assert_int_equal(tt_store_write(f->st, put_fill, &q), 0);
    q = p;
    q.id = "doc2";
    q.n = 1;
    assert_int_equal(tt_store_write(f->st, put_fill, &q), 0);
    got_t s = {0};
    assert_int_equal(tt_chunks_scan(f->st, "t1", "hr", on_chunk, &s), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.text[0], "a0#0/2");
    assert_string_equal(s.text[2], "a2#2/0");
    assert_string_equal(s.ids[3], "doc2");
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_chunks_scan(f->st, "t2", "hr", on_chunk, &s), 0);
    assert_int_equal(s.n, 1);
    check_batches(f);
    /* re-ingest replaces: one chunk left of three */
    p.n = 1;
    assert_int_equal(tt_store_write(f->st, put_fill, &p), 0);
    assert_int_equal(p.replaced, 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_chunks_scan(f->st, "t1", "hr", on_chunk, &s), 0);
    assert_int_equal(s.n, 2);
    /* delete removes the record and the chunks, of that tenant only */
    p.del = 1;
    assert_int_equal(tt_store_write(f->st, put_fill, &p), 0);
    assert_int_equal(p.found, 1);
    assert_int_equal(tt_store_write(f->st, put_fill, &p), 0);
    assert_int_equal(p.found, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_chunks_scan(f->st, "t1", "hr", on_chunk, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "doc2");
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_chunks_list(f->st, "t1", NULL, on_doc, &s), 0);
    assert_int_equal(s.n, 2); /* hr/doc2 and hr2/doc */
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_chunks_list(f->st, "t2", "hr", on_doc, &s), 0);
    assert_int_equal(s.n, 1);
    /* bad names change nothing */
    q = p;
    q.del = 0;
    q.tenant = "t\x1f\x31";
    assert_int_equal(tt_store_write(f->st, put_fill, &q), TT_EINVAL);
    q.tenant = "t1";
    q.id = "";
    assert_int_equal(tt_store_write(f->st, put_fill, &q), TT_EINVAL);
    assert_int_equal(tt_chunks_scan(f->st, "t1", "", on_chunk, &s), TT_EINVAL);
}

/* ---- the service: one load for searches that come together; tenants apart - */

static void ingest_one(uv_loop_t *loop, tt_retrieval *r, const char *tenant, const char *text)
{
    json_t *b = json_pack("{s:s, s:s, s:s}", "title", "Leave", "type", "text", "content", text);
    char *body = json_dumps(b, JSON_COMPACT);
    answer a = {0};
    tt_retrieval_job *j;
    assert_int_equal(tt_retrieval_ingest(r, tenant, body, strlen(body), on_answer, &a, &j), 0);
    answer_wait(loop, &a);
    assert_int_equal(a.status, 201);
    json_decref(a.json);
    json_decref(b);
    free(body);
}

static void service_single_load(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tt_retrieval *r;
    tt_retrieval_opts o = {.loop = &loop, .store = f->st, .chunk = {.size = 100, .overlap = 0}};
    assert_int_equal(tt_retrieval_new(&o, &r), 0);
    ingest_one(&loop, r, "t1", "Staff get twenty five days of annual leave.");
    ingest_one(&loop, r, "t2", "Other staff get forty days of annual leave.");
    answer a[4] = {{0}};
    tt_retrieval_job *j;
    for (int i = 0; i < 4; i++) {
        tt_retrieval_query q = {.tenant = i < 3 ? "t1" : "t2", .text = "annual leave days"};
        assert_int_equal(tt_retrieval_search(r, &q, on_answer, &a[i], &j), 0);
    }
    for (int i = 0; i < 4; i++)
        answer_wait(&loop, &a[i]);
    tt_retrieval_stats st;
    tt_retrieval_get_stats(r, &st);
    assert_int_equal(st.index_loads, 2); /* t1's three searches shared one load; t2 its own */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[i].status, 200);
        json_t *hits = json_object_get(a[i].json, "hits");
        assert_int_equal(json_array_size(hits), 1);
        const char *text = json_string_value(json_object_get(json_array_get(hits, 0), "text"));
        assert_non_null(strstr(text, i < 3 ? "twenty five" : "forty"));
        json_decref(a[i].json);
    }
    /* a new document drops t1's index: the next search loads again */
    ingest_one(&loop, r, "t1", "Sick leave is ten days.");
    answer b = {0};
    tt_retrieval_query q = {.tenant = "t1", .text = "sick leave"};
    assert_int_equal(tt_retrieval_search(r, &q, on_answer, &b, &j), 0);
    answer_wait(&loop, &b);
    tt_retrieval_get_stats(r, &st);
    assert_int_equal(st.index_loads, 3);
    json_decref(b.json);
    tt_retrieval_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chunker_sizes_and_overlap),
        cmocka_unit_test(chunker_headings),
        cmocka_unit_test(chunker_long_word_and_bounds),
        cmocka_unit_test(html_extraction),
        cmocka_unit_test(bm25_scores),
        cmocka_unit_test(chunk_without_terms),
        cmocka_unit_test(cosine_and_rrf),
        cmocka_unit_test(vector_scan_exact),
        cmocka_unit_test_setup_teardown(chunk_store, setup, teardown),
        cmocka_unit_test_setup_teardown(service_single_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
