/* libFuzzer target for agents/retrieval/: the HTML extractor, the chunker
 * (estimated counts) and the BM25 index, on any bytes.
 *
 * Byte 0 picks the chunk size (16 + byte * 4 tokens) and byte 1 the overlap
 * (byte % (size / 2 + 1)); the rest is the document. Checked: the extracted
 * text is valid UTF-8 without NUL and never longer than four bytes per input
 * byte; every chunk lies inside the text, has at most `size` tokens, starts
 * after the one before and ends after it; the text's chunks go into an index
 * that is built and searched with the document's first 64 bytes as query,
 * every hit a chunk of the index. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/retrieval/chunker.h"
#include "agents/retrieval/extract.h"
#include "agents/retrieval/index.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/names.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = tt_name_utf8_next(s + i, n - i, &cp);
        CHECK(l > 0 && cp != 0);
        i += l;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    tt_chunk_opts o = {.size = 16u + (uint32_t)data[0] * 4u};
    o.overlap = data[1] % (o.size / 2 + 1);
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    tt_buf text;
    tt_buf_init(&text, 4 * n + 16);
    const char *why = NULL;
    int rc = tt_extract_html(in, n, &text, &why);
    CHECK(rc == 0 || (rc == TT_EINVAL && why && why[0]));
    if (rc) {
        tt_buf_free(&text);
        return 0;
    }
    const char *t = tt_buf_str(&text);
    check_utf8(t, text.len);
    tt_chunk_span *c = NULL;
    size_t nc = 0;
    rc = tt_chunk_text(NULL, t, text.len, &o, &c, &nc);
    CHECK(rc == 0 || rc == TT_ETOOLARGE);
    tt_rindex *ix = tt_rindex_new(0);
    CHECK(ix);
    for (size_t i = 0; rc == 0 && i < nc; i++) {
        CHECK(c[i].off + c[i].len <= text.len && c[i].len > 0);
        CHECK(c[i].tokens <= o.size);
        if (i > 0)
            CHECK(c[i].off > c[i - 1].off && c[i].off + c[i].len > c[i - 1].off + c[i - 1].len);
        CHECK(tt_rindex_add(ix, t + c[i].off, c[i].len, NULL) == 0);
    }
    CHECK(tt_rindex_build(ix) == 0);
    tt_rindex_hit hits[TT_RINDEX_K_MAX];
    size_t nh = tt_rindex_search(ix, in, n < 64 ? n : 64, NULL, 0, 0.7f, hits, TT_RINDEX_K_MAX);
    for (size_t i = 0; i < nh; i++)
        CHECK(hits[i].chunk < tt_rindex_size(ix) && hits[i].bm25 > 0);
    tt_rindex_free(ix);
    free(c);
    tt_buf_free(&text);
    return 0;
}
