/* What retrieval costs (agents/retrieval/), on a generated corpus:
 *   - ingestion without embeddings, the service's whole path (JSON body
 *     parsed, text chunked by the BPE tokenizer in the thread pool, one
 *     LMDB write per document): chunks/s;
 *   - the first search of the collection (read from LMDB, index built) and
 *     then searches through the service (BM25: the service has no model
 *     route here), p50/p99 over the queries, thread-pool hop included;
 *   - hybrid search on the index itself (BM25 + cosine over unit vectors of
 *     TT_RETRIEVAL_BENCH_DIMS floats, fused), p50/p99, and the index's bytes.
 *
 *   TT_RETRIEVAL_BENCH=10000 [TT_RETRIEVAL_BENCH_DIMS=1536] ./test_retrieval_bench
 *
 * The figure is the number of chunks (of 200 tokens, 40 overlap). Without
 * TT_RETRIEVAL_BENCH it is a 300-chunk smoke run. Prints one JSON line. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <cmocka.h>

#include "agents/retrieval/index.h"
#include "agents/retrieval/retrieval.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "state/chunks.h"
#include "store_fixture.h"

#define VOCAB 20000
#define QUERIES 200

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t rng = 2463534242u;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Word i of the vocabulary: a pronounceable made-up word. */
static void word(uint32_t i, char *out)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa",
                                "qu", "do", "fe", "gi", "ha", "jo", "ly", "wu", "xi", "be"};
    int n = 0;
    uint32_t x = i + 1;
    do {
        n += sprintf(out + n, "%s", syl[x % 20]);
        x /= 20;
    } while (x);
}

/* A Zipf-like draw: common words often, rare words seldom. */
static uint32_t draw(void)
{
    double u = (next_rand() + 1.0) / 4294967297.0;
    return (uint32_t)(pow(VOCAB, u) - 1) % VOCAB;
}

/* A Markdown document of about `words` words in paragraphs of 40-120. */
static char *document(int words)
{
    tt_buf b;
    tt_buf_init(&b, 1u << 24);
    int left = words;
    while (left > 0) {
        int para = 40 + (int)(next_rand() % 80);
        for (int i = 0; i < para && left > 0; i++, left--) {
            char w[32];
            word(draw(), w);
            if (tt_buf_appendf(&b, "%s%s", w, i % 12 == 11 ? ". " : " ") != 0)
                return NULL;
        }
        if (tt_buf_append(&b, "\n\n", 2) != 0)
            return NULL;
    }
    return tt_buf_take(&b, NULL);
}

typedef struct wait {
    int done, status;
    json_t *answer;
} wait;

static void on_done(int status, json_t *answer, void *ud)
{
    wait *w = ud;
    w->done = 1;
    w->status = status;
    w->answer = answer;
}

static void run_until(uv_loop_t *loop, wait *w)
{
    while (!w->done)
        uv_run(loop, UV_RUN_ONCE);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_d);
    return v[(size_t)(p * (double)(n - 1))];
}

typedef struct collect {
    tt_rindex *ix;
} collect;

/* The chunks again, each with a hashed bag-of-words vector of dims floats. */
static int add_with_vector(const char *id, size_t id_len, const tt_chunk_rec *c, void *ud)
{
    collect *col = ud;
    uint32_t dims = tt_rindex_dims(col->ix);
    float *v = calloc(dims, sizeof *v);
    for (size_t i = 0; i < c->text_len;) {
        uint32_t h = 2166136261u;
        size_t j = i;
        while (j < c->text_len && c->text[j] != ' ' && c->text[j] != '\n')
            h = (h ^ (unsigned char)c->text[j++]) * 16777619u;
        if (j > i)
            v[h % dims] += h & 0x80000000u ? -1.0f : 1.0f;
        i = j + 1;
    }
    int rc = tt_rindex_add(col->ix, c->text, c->text_len, v);
    free(v);
    return rc;
}

static void bench(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), 0);
    const char *env = getenv("TT_RETRIEVAL_BENCH");
    const char *denv = getenv("TT_RETRIEVAL_BENCH_DIMS");
    long want = env ? atol(env) : 300;
    uint32_t dims = denv ? (uint32_t)atol(denv) : 256;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tt_retrieval *r;
    tt_retrieval_opts o = {.loop = &loop,
                           .store = f->st,
                           .tokenizer_dir = TT_TOKENIZER_RANKS,
                           .chunk = {.size = 200, .overlap = 40}};
    assert_int_equal(tt_retrieval_new(&o, &r), 0);

    /* ingestion: documents of ~2,000 words (about 15 chunks) until `want` chunks */
    long chunks = 0, docs = 0;
    double t0 = now_s(), busy = 0;
    while (chunks < want) {
        char *doc = document(2000);
        json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "collection", "bench", "title", "doc",
                                 "type", "markdown", "content", doc);
        char title[32];
        snprintf(title, sizeof title, "doc %ld", docs);
        json_object_set_new(body, "title", json_string(title));
        char *text = json_dumps(body, JSON_COMPACT);
        wait w = {0};
        tt_retrieval_job *j;
        double s = now_s();
        assert_int_equal(tt_retrieval_ingest(r, "t1", text, strlen(text), on_done, &w, &j), 0);
        run_until(&loop, &w);
        busy += now_s() - s;
        assert_int_equal(w.status, 201);
        chunks += (long)json_integer_value(json_object_get(w.answer, "chunks"));
        docs++;
        json_decref(w.answer);
        json_decref(body);
        free(text);
        free(doc);
    }
    double ingest_s = now_s() - t0;

    /* searches through the service: the first loads and builds */
    char queries[QUERIES][96];
    for (int q = 0; q < QUERIES; q++) {
        char a[32], b[32], c[32];
        word(draw() % 2000 + 50, a);
        word(draw() % 5000 + 100, b);
        word(draw(), c);
        snprintf(queries[q], sizeof queries[q], "%s %s %s", a, b, c);
    }
    double first = 0, lat[QUERIES];
    for (int q = -1; q < QUERIES; q++) {
        tt_retrieval_query qq = {.tenant = "t1",
                                 .collection = "bench",
                                 .text = queries[q < 0 ? 0 : q],
                                 .min_similarity = -1};
        wait w = {0};
        tt_retrieval_job *j;
        double s = now_s();
        assert_int_equal(tt_retrieval_search(r, &qq, on_done, &w, &j), 0);
        run_until(&loop, &w);
        double took = now_s() - s;
        assert_int_equal(w.status, 200);
        json_decref(w.answer);
        if (q < 0)
            first = took;
        else
            lat[q] = took * 1000;
    }
    double p50 = pct(lat, QUERIES, 0.5), p99 = pct(lat, QUERIES, 0.99);

    /* hybrid search on the index alone, with vectors */
    collect col = {.ix = tt_rindex_new(dims)};
    double b0 = now_s();
    assert_int_equal(tt_chunks_scan(f->st, "t1", "bench", add_with_vector, &col), 0);
    assert_int_equal(tt_rindex_build(col.ix), 0);
    double build_s = now_s() - b0;
    float *qv = calloc(dims, sizeof *qv);
    double hl[QUERIES];
    for (int q = 0; q < QUERIES; q++) {
        for (uint32_t i = 0; i < dims; i++)
            qv[i] = (float)((int)(next_rand() % 3) - 1);
        tt_rindex_hit hits[5];
        double s = now_s();
        tt_rindex_search(col.ix, queries[q], strlen(queries[q]), qv, dims, 0.0f, hits, 5);
        hl[q] = (now_s() - s) * 1000;
    }
    printf("{\"chunks\":%ld,\"documents\":%ld,\"ingest_chunks_per_s\":%.0f,"
           "\"ingest_busy_chunks_per_s\":%.0f,\"first_search_s\":%.3f,"
           "\"service_bm25_p50_ms\":%.3f,\"service_bm25_p99_ms\":%.3f,"
           "\"index_build_s\":%.3f,\"hybrid_dims\":%u,\"hybrid_p50_ms\":%.3f,"
           "\"hybrid_p99_ms\":%.3f,\"index_mib\":%.1f}\n",
           chunks, docs, (double)chunks / ingest_s, (double)chunks / busy, first, p50, p99, build_s,
           dims, pct(hl, QUERIES, 0.5), pct(hl, QUERIES, 0.99),
           (double)tt_rindex_memory(col.ix) / (1 << 20));
    free(qv);
    tt_rindex_free(col.ix);
    tt_retrieval_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bench, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
