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
#include "retrieval_answer.h"
#include "store_fixture.h"

#define VOCAB 20000
#define QUERIES 200

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: what a search costs, whatever the load. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

typedef struct figures {
    long chunks, docs;
    double ingest_s, busy_s, first_s, p50, p99, load_s, build_s, hp50, hp99, index_mib;
    double hcpu50, hcpu99; /* the hybrid search's CPU time on its thread: apart from the load */
} figures;

/* Documents of ~2,000 words through the service until `want` chunks. */
static void ingest_corpus(uv_loop_t *loop, tt_retrieval *r, long want, figures *fg)
{
    double t0 = now_s();
    while (fg->chunks < want) {
        char *doc = document(2000), title[32];
        snprintf(title, sizeof title, "doc %ld", fg->docs);
        json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "collection", "bench", "title", title,
                                 "type", "markdown", "content", doc);
        char *text = json_dumps(body, JSON_COMPACT);
        answer w = {0};
        tt_retrieval_job *j;
        double s = now_s();
        assert_int_equal(tt_retrieval_ingest(r, "t1", text, strlen(text), on_answer, &w, &j), 0);
        answer_wait(loop, &w);
        fg->busy_s += now_s() - s;
        assert_int_equal(w.status, 201);
        fg->chunks += (long)json_integer_value(json_object_get(w.json, "chunks"));
        fg->docs++;
        json_decref(w.json);
        json_decref(body);
        free(text);
        free(doc);
    }
    fg->ingest_s = now_s() - t0;
}

/* Searches through the service: the first loads and builds the index. */
static void service_searches(uv_loop_t *loop, tt_retrieval *r, char (*queries)[96], figures *fg)
{
    double lat[QUERIES];
    for (int q = -1; q < QUERIES; q++) {
        tt_retrieval_query qq = {.tenant = "t1",
                                 .collection = "bench",
                                 .text = queries[q < 0 ? 0 : q],
                                 .min_similarity = -1};
        answer w = {0};
        tt_retrieval_job *j;
        double s = now_s();
        assert_int_equal(tt_retrieval_search(r, &qq, on_answer, &w, &j), 0);
        answer_wait(loop, &w);
        double took = now_s() - s;
        assert_int_equal(w.status, 200);
        json_decref(w.json);
        if (q < 0)
            fg->first_s = took;
        else
            lat[q] = took * 1000;
    }
    fg->p50 = pct(lat, QUERIES, 0.5);
    fg->p99 = pct(lat, QUERIES, 0.99);
}

/* Hybrid search on the index alone, with vectors of dims floats. */
static void index_searches(tt_store *st, uint32_t dims, char (*queries)[96], figures *fg)
{
    collect col = {.ix = tt_rindex_new(dims)};
    double b0 = now_s();
    assert_int_equal(tt_chunks_scan(st, "t1", "bench", add_with_vector, &col), 0);
    fg->load_s = now_s() - b0;
    assert_int_equal(tt_rindex_build(col.ix), 0);
    fg->build_s = now_s() - b0 - fg->load_s;
    float *qv = calloc(dims, sizeof *qv);
    double hl[QUERIES], hc[QUERIES];
    for (int q = 0; q < QUERIES; q++) {
        for (uint32_t i = 0; i < dims; i++)
            qv[i] = (float)((int)(next_rand() % 3) - 1);
        tt_rindex_hit hits[5];
        double s = now_s(), c = cpu_s();
        tt_rindex_search(col.ix, queries[q], strlen(queries[q]), qv, dims, 0.0f, hits, 5);
        hl[q] = (now_s() - s) * 1000;
        hc[q] = (cpu_s() - c) * 1000;
    }
    fg->hp50 = pct(hl, QUERIES, 0.5);
    fg->hp99 = pct(hl, QUERIES, 0.99);
    fg->hcpu50 = pct(hc, QUERIES, 0.5);
    fg->hcpu99 = pct(hc, QUERIES, 0.99);
    fg->index_mib = (double)tt_rindex_memory(col.ix) / (1 << 20);
    free(qv);
    tt_rindex_free(col.ix);
}

static void bench(void **state)
{
    fx *f = *state;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_NONE), 0);
    const char *env = getenv("TT_RETRIEVAL_BENCH"), *denv = getenv("TT_RETRIEVAL_BENCH_DIMS");
    uint32_t dims = denv ? (uint32_t)atol(denv) : 256;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tt_retrieval *r;
    tt_retrieval_opts o = {.loop = &loop,
                           .store = f->st,
                           .tokenizer_dir = TT_TOKENIZER_RANKS,
                           .chunk = {.size = 200, .overlap = 40}};
    assert_int_equal(tt_retrieval_new(&o, &r), 0);
    figures fg = {0};
    ingest_corpus(&loop, r, env ? atol(env) : 300, &fg);
    static char queries[QUERIES][96];
    for (int q = 0; q < QUERIES; q++) {
        char a[32], b[32], c[32];
        word(draw() % 2000 + 50, a);
        word(draw() % 5000 + 100, b);
        word(draw(), c);
        snprintf(queries[q], sizeof queries[q], "%s %s %s", a, b, c);
    }
    service_searches(&loop, r, queries, &fg);
    index_searches(f->st, dims, queries, &fg);
    printf("{\"chunks\":%ld,\"documents\":%ld,\"ingest_chunks_per_s\":%.0f,"
           "\"ingest_busy_chunks_per_s\":%.0f,\"first_search_s\":%.3f,"
           "\"service_bm25_p50_ms\":%.3f,\"service_bm25_p99_ms\":%.3f,"
           "\"index_load_s\":%.3f,\"index_build_s\":%.3f,\"hybrid_dims\":%u,\"hybrid_p50_ms\":%.3f,"
           "\"hybrid_p99_ms\":%.3f,\"hybrid_cpu_p50_ms\":%.3f,\"hybrid_cpu_p99_ms\":%.3f,"
           "\"index_mib\":%.1f}\n",
           fg.chunks, fg.docs, (double)fg.chunks / fg.ingest_s, (double)fg.chunks / fg.busy_s,
           fg.first_s, fg.p50, fg.p99, fg.load_s, fg.build_s, dims, fg.hp50, fg.hp99, fg.hcpu50,
           fg.hcpu99, fg.index_mib);
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
