/* The semantic cache's vector search (agents/llm/semindex.h) and its
 * storage (state/semstore.h): the dot product against a double-precision
 * reference at every length, the best row, thresholds, partitions that never
 * mix (tenants), expiry, eviction of the least recently used, a dimension
 * change; the store's queue, get, delete, expiry and read-back. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "agents/llm/semindex.h"
#include "protocol/errors.h"
#include "state/semstore.h"
#include "store_fixture.h"

static uint32_t rng = 2463534242u;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng % 20001) / 10000.0f - 1.0f;
}

static void random_unit(float *v, size_t dim)
{
    for (size_t i = 0; i < dim; i++)
        v[i] = frand();
    assert_int_equal(tt_semindex_normalise(v, dim), 0);
}

static void key(unsigned char k[TT_SEM_KEY_LEN], int n)
{
    memset(k, 0, TT_SEM_KEY_LEN);
    k[0] = (unsigned char)(n * 37);
    k[31] = (unsigned char)n;
}

static void test_dot_and_normalise(void **state)
{
    (void)state;
    for (size_t dim = 1; dim <= 67; dim++) {
        float a[67], b[67];
        double ref = 0;
        for (size_t i = 0; i < dim; i++) {
            a[i] = frand();
            b[i] = frand();
            ref += (double)a[i] * b[i];
        }
        assert_true(fabs(tt_semindex_dot(a, b, dim) - ref) < 1e-4);
    }
    float v[3] = {3, 0, 4};
    assert_int_equal(tt_semindex_normalise(v, 3), 0);
    assert_true(fabsf(v[0] - 0.6f) < 1e-6f && fabsf(v[2] - 0.8f) < 1e-6f);
    float zero[4] = {0};
    assert_int_equal(tt_semindex_normalise(zero, 4), TT_EINVAL);
    float bad[2] = {NAN, 1};
    assert_int_equal(tt_semindex_normalise(bad, 2), TT_EINVAL);
}

static void test_best_row(void **state)
{
    (void)state;
    enum { N = 500, DIM = 37 };
    float *vecs = malloc(sizeof(float) * N * DIM), q[DIM];
    assert_non_null(vecs);
    for (size_t r = 0; r < N; r++)
        random_unit(vecs + r * DIM, DIM);
    random_unit(q, DIM);
    long want = -1;
    double top = -3;
    for (size_t r = 0; r < N; r++) {
        double d = 0;
        for (size_t i = 0; i < DIM; i++)
            d += (double)vecs[r * DIM + i] * q[i];
        if (d > top) {
            top = d;
            want = (long)r;
        }
    }
    float score;
    assert_int_equal(tt_semindex_best(vecs, N, DIM, q, &score), want);
    assert_true(fabs(score - top) < 1e-5);
    assert_int_equal(tt_semindex_best(vecs, 0, DIM, q, &score), -1);
    free(vecs);
}

static void test_threshold_and_partitions(void **state)
{
    (void)state;
    tt_semindex *ix;
    assert_int_equal(tt_semindex_new(100, &ix), 0);
    unsigned char tenant_a[TT_SEM_KEY_LEN], tenant_b[TT_SEM_KEY_LEN], id[TT_SEM_KEY_LEN],
        got[TT_SEM_KEY_LEN];
    key(tenant_a, 1);
    key(tenant_b, 2);
    float v[4] = {1, 0, 0, 0}, near[4] = {0.95f, 0.3122f, 0, 0}, far[4] = {0, 1, 0, 0};
    assert_int_equal(tt_semindex_normalise(near, 4), 0);
    key(id, 10);
    tt_semindex_gone gone = {0};
    assert_int_equal(tt_semindex_insert(ix, tenant_a, id, v, 4, 2000, 1, &gone), 0);
    float score;
    assert_int_equal(tt_semindex_search(ix, tenant_a, near, 4, 0.92f, 5, got, &score, &gone), 0);
    assert_memory_equal(got, id, TT_SEM_KEY_LEN);
    assert_true(score > 0.94f && score < 0.96f);
    /* the same vector under another partition (tenant) is never found */
    assert_int_equal(tt_semindex_search(ix, tenant_b, v, 4, 0.5f, 5, got, &score, &gone),
                     TT_ENOTFOUND);
    assert_true(score == -2);
    /* over the threshold only */
    assert_int_equal(tt_semindex_search(ix, tenant_a, near, 4, 0.96f, 5, got, &score, &gone),
                     TT_ENOTFOUND);
    assert_int_equal(tt_semindex_search(ix, tenant_a, far, 4, 0.5f, 5, got, &score, &gone),
                     TT_ENOTFOUND);
    /* another dim is not compared */
    assert_int_equal(tt_semindex_search(ix, tenant_a, v, 3, 0.5f, 5, got, &score, &gone),
                     TT_ENOTFOUND);
    assert_int_equal(gone.n, 0);
    /* expired: removed, reported, not found */
    assert_int_equal(tt_semindex_search(ix, tenant_a, v, 4, 0.5f, 2000, got, &score, &gone),
                     TT_ENOTFOUND);
    assert_int_equal(gone.n, 1);
    assert_memory_equal(gone.ids[0], id, TT_SEM_KEY_LEN);
    assert_int_equal(tt_semindex_size(ix), 0);
    assert_int_equal(tt_semindex_partitions(ix), 0);
    tt_semindex_gone_free(&gone);
    assert_int_equal(tt_semindex_insert(ix, tenant_a, id, v, 0, 2000, 1, NULL), TT_EINVAL);
    tt_semindex_free(ix);
}

static void test_evict_replace_remove(void **state)
{
    (void)state;
    tt_semindex *ix;
    assert_int_equal(tt_semindex_new(3, &ix), 0);
    unsigned char p[TT_SEM_KEY_LEN], q2[TT_SEM_KEY_LEN], id[5][TT_SEM_KEY_LEN], got[TT_SEM_KEY_LEN];
    key(p, 1);
    key(q2, 2);
    float vecs[5][8];
    for (int i = 0; i < 5; i++) {
        key(id[i], 100 + i);
        memset(vecs[i], 0, sizeof vecs[i]);
        vecs[i][i] = 1;
    }
    tt_semindex_gone gone = {0};
    assert_int_equal(tt_semindex_insert(ix, p, id[0], vecs[0], 8, 1000000, 10, &gone), 0);
    assert_int_equal(tt_semindex_insert(ix, q2, id[1], vecs[1], 8, 1000000, 20, &gone), 0);
    assert_int_equal(tt_semindex_insert(ix, p, id[2], vecs[2], 8, 1000000, 30, &gone), 0);
    float score;
    /* a hit makes id[0] the most recently used */
    assert_int_equal(tt_semindex_search(ix, p, vecs[0], 8, 0.9f, 40, got, &score, &gone), 0);
    /* replacing by id adds nothing */
    assert_int_equal(tt_semindex_insert(ix, p, id[2], vecs[2], 8, 1000000, 41, &gone), 0);
    assert_int_equal(tt_semindex_size(ix), 3);
    assert_int_equal(gone.n, 0);
    /* a fourth entry evicts the least recently used (id[1], the other partition's only one) */
    assert_int_equal(tt_semindex_insert(ix, p, id[3], vecs[3], 8, 1000000, 50, &gone), 0);
    assert_int_equal(gone.n, 1);
    assert_memory_equal(gone.ids[0], id[1], TT_SEM_KEY_LEN);
    assert_int_equal(tt_semindex_size(ix), 3);
    assert_int_equal(tt_semindex_partitions(ix), 1);
    assert_int_equal(tt_semindex_search(ix, q2, vecs[1], 8, 0.5f, 60, got, &score, &gone),
                     TT_ENOTFOUND);
    /* read back from storage: appended, never evicting, one dim per partition */
    assert_int_equal(tt_semindex_load(ix, p, id[1], vecs[1], 8, 1000000), TT_EFULL);
    assert_int_equal(tt_semindex_size(ix), 3);
    /* removal by id */
    assert_int_equal(tt_semindex_remove(ix, id[3]), 1);
    assert_int_equal(tt_semindex_remove(ix, id[3]), 0);
    assert_int_equal(tt_semindex_search(ix, p, vecs[3], 8, 0.5f, 60, got, &score, &gone),
                     TT_ENOTFOUND);
    /* a vector of another dim replaces the partition (another embeddings model) */
    float small[4] = {1, 0, 0, 0};
    tt_semindex_gone_free(&gone);
    assert_int_equal(tt_semindex_insert(ix, p, id[4], small, 4, 1000000, 70, &gone), 0);
    assert_int_equal(gone.n, 2);
    assert_int_equal(tt_semindex_size(ix), 1);
    assert_int_equal(tt_semindex_search(ix, p, small, 4, 0.9f, 80, got, &score, &gone), 0);
    assert_memory_equal(got, id[4], TT_SEM_KEY_LEN);
    assert_int_equal(tt_semindex_load(ix, p, id[1], vecs[1], 8, 1000000), TT_EINVAL);
    assert_int_equal(tt_semindex_load(ix, q2, id[1], vecs[1], 8, 1000000), 0);
    assert_int_equal(tt_semindex_search(ix, q2, vecs[1], 8, 0.9f, 90, got, &score, &gone), 0);
    assert_memory_equal(got, id[1], TT_SEM_KEY_LEN);
    tt_semindex_gone_free(&gone);
    tt_semindex_free(ix);
}

typedef struct loaded {
    int n;
    unsigned char id[4][TT_SEMSTORE_KEY_LEN];
    float first[4];
    size_t dim[4];
} loaded;

static int on_entry(const unsigned char *id, const unsigned char *part, int64_t expires_ms,
                    const float *vec, size_t dim, void *ud)
{
    loaded *l = ud;
    (void)part;
    (void)expires_ms;
    if (l->n < 4) {
        memcpy(l->id[l->n], id, TT_SEMSTORE_KEY_LEN);
        l->first[l->n] = vec[0];
        l->dim[l->n] = dim;
    }
    l->n++;
    return 0;
}

static void test_store(void **state)
{
    fx *f = *state;
    tt_semstore *s;
    assert_int_equal(tt_semstore_new(f->st, &s), 0);
    unsigned char part[TT_SEMSTORE_KEY_LEN], a[TT_SEMSTORE_KEY_LEN], b[TT_SEMSTORE_KEY_LEN];
    key(part, 1);
    key(a, 2);
    key(b, 3);
    float va[3] = {0.25f, 0.5f, 0.75f}, vb[2] = {1, 0};
    assert_int_equal(tt_semstore_put(s, a, part, 5000, va, 3, "answer A", 8), 0);
    assert_int_equal(tt_semstore_put(s, b, part, 1000, vb, 2, "answer B", 8), 0);
    assert_int_equal(tt_semstore_put(s, b, part, 1000, vb, 0, "x", 1), TT_EINVAL);
    char *data;
    size_t len;
    /* queued puts are seen */
    assert_int_equal(tt_semstore_get(s, a, 100, &data, &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(data, "answer A", 8);
    free(data);
    assert_int_equal(tt_semstore_flush(s), 0);
    assert_int_equal(tt_semstore_queued(s), 0);
    assert_int_equal(tt_semstore_get(s, a, 100, &data, &len), 0);
    free(data);
    assert_int_equal(tt_semstore_get(s, b, 1000, &data, &len), TT_ENOTFOUND); /* expired */
    loaded l = {0};
    assert_int_equal(tt_semstore_load(s, on_entry, &l), 0);
    assert_int_equal(l.n, 2);
    for (int i = 0; i < 2; i++)
        assert_true(memcmp(l.id[i], a, TT_SEMSTORE_KEY_LEN) == 0
                        ? l.dim[i] == 3 && l.first[i] == 0.25f
                        : l.dim[i] == 2 && l.first[i] == 1.0f);
    /* a delete, then what a reopened store reads back */
    assert_int_equal(tt_semstore_del(s, b), 0);
    assert_int_equal(tt_semstore_get(s, b, 0, &data, &len), TT_ENOTFOUND); /* queued delete */
    tt_semstore_free(s);
    reopen(f);
    assert_int_equal(tt_semstore_new(f->st, &s), 0);
    l = (loaded){0};
    assert_int_equal(tt_semstore_load(s, on_entry, &l), 0);
    assert_int_equal(l.n, 1);
    assert_memory_equal(l.id[0], a, TT_SEMSTORE_KEY_LEN);
    assert_int_equal(tt_semstore_get(s, b, 0, &data, &len), TT_ENOTFOUND);
    tt_semstore_free(s);
}

/* Each entry a chunk hands over, checked and counted: counts[n] for the 200
 * written first (id n), counts[200 + n] for those written during the reads. */
static int on_chunk_entry(const unsigned char *id, const unsigned char *part, int64_t expires_ms,
                          const float *vec, size_t dim, void *ud)
{
    int *counts = ud;
    (void)part;
    (void)expires_ms;
    int later = id[2] == 0xff;
    int n = later ? 200 + id[30] : id[0] | id[1] << 8;
    if (n >= 300 || dim != 2 || vec[0] != (float)n || counts[n]++)
        return TT_EINVAL;
    return 0;
}

typedef struct chunk_job {
    tt_semstore *s;
    tt_semstore_chunk *c;
    int *counts;
    int rc;
} chunk_job;

static void *read_chunk(void *arg)
{
    chunk_job *j = arg;
    j->rc = tt_semstore_chunk_read(j->s, j->c, 64, on_chunk_entry, j->counts);
    return NULL;
}

static void put_n(tt_semstore *s, int n, int later)
{
    unsigned char part[TT_SEMSTORE_KEY_LEN], id[TT_SEMSTORE_KEY_LEN];
    key(part, 1);
    memset(id, later ? 0xff : 0, sizeof id); /* the later ones sort after the others */
    if (later)
        id[30] = (unsigned char)(n - 200);
    else {
        id[0] = (unsigned char)(n & 0xff);
        id[1] = (unsigned char)(n >> 8);
    }
    float v[2] = {(float)n, 1};
    assert_true(tt_semstore_put(s, id, part, INT64_MAX, v, 2, "a", 1) >= 0);
}

/* The entries read back in chunks of 64, each read on another thread in a
 * transaction begun and ended on this one while this one writes more: each
 * entry comes back once, the 200 there at the start all of them. */
static void test_store_chunks(void **state)
{
    fx *f = *state;
    tt_semstore *s;
    assert_int_equal(tt_semstore_new(f->st, &s), 0);
    for (int n = 0; n < 200; n++)
        put_n(s, n, 0);
    assert_int_equal(tt_semstore_flush(s), 0);
    int counts[300] = {0};
    tt_semstore_chunk c = {0};
    int chunks = 0, later = 200;
    while (!c.done && chunks < 20) {
        assert_int_equal(tt_semstore_chunk_begin(s, &c), 0);
        chunk_job j = {s, &c, counts, -1};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, read_chunk, &j), 0);
        for (int k = 0; k < 20 && later < 300; k++)
            put_n(s, later++, 1);
        assert_int_equal(tt_semstore_flush(s), 0); /* a write while the chunk reads */
        assert_int_equal(pthread_join(t, NULL), 0);
        tt_semstore_chunk_end(s, &c);
        assert_int_equal(j.rc, 0);
        chunks++;
    }
    assert_true(c.done);
    assert_true(chunks >= 4); /* 200 entries at most 64 a chunk */
    for (int n = 0; n < 200; n++)
        assert_int_equal(counts[n], 1);
    tt_semstore_free(s);
}

static int opened(void **state)
{
    int rc = setup(state);
    if (rc == 0)
        rc = open_with(*state, 0, 0, TT_SYNC_NONE);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_and_normalise),
        cmocka_unit_test(test_best_row),
        cmocka_unit_test(test_threshold_and_partitions),
        cmocka_unit_test(test_evict_replace_remove),
        cmocka_unit_test_setup_teardown(test_store, opened, teardown),
        cmocka_unit_test_setup_teardown(test_store_chunks, opened, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
