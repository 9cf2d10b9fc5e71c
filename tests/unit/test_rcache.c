/* Unit tests for state/store_rcache.c, the response cache's storage: a get
 * sees queued puts, one flush writes them, TTL expiry (refused by a get,
 * removed by the next flush), hit counters, LRU eviction at the byte and
 * entry caps (a recent hit keeps an entry), the totals across a reopen, and
 * bad input. Each test has its own fresh store (store_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "state/rcache.h"
#include "store_fixture.h"

#define T0 1780000000000LL /* ms since the epoch */
#define HOUR_MS 3600000LL

static int opened(void **state)
{
    int rc = setup(state);
    if (rc == 0)
        rc = open_with(*state, 0, 0, TT_SYNC_NONE);
    return rc;
}

static void key_of(unsigned char key[TT_RCACHE_KEY_LEN], int n)
{
    memset(key, 0, TT_RCACHE_KEY_LEN);
    key[0] = (unsigned char)n;
    key[31] = (unsigned char)(n >> 8);
}

static tt_rcache *make(fx *f, uint64_t max_bytes, uint64_t max_entries)
{
    tt_rcache *c = NULL;
    tt_rcache_limits lim = {max_bytes, max_entries, 4096};
    assert_int_equal(tt_rcache_new(f->st, &lim, &c), 0);
    return c;
}

/* The answer under key n at now, as a string ("" when absent). */
static const char *get(tt_rcache *c, int n, int64_t now)
{
    static char out[256];
    unsigned char k[TT_RCACHE_KEY_LEN];
    key_of(k, n);
    char *data = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (tt_rcache_get(c, k, now, &data, &len) == 0) {
        snprintf(out, sizeof out, "%.*s", (int)len, data);
        free(data);
    }
    return out;
}

static int put(tt_rcache *c, int n, int64_t now, int64_t ttl, const char *text)
{
    unsigned char k[TT_RCACHE_KEY_LEN];
    key_of(k, n);
    return tt_rcache_put(c, k, now, ttl, text, strlen(text));
}

static void test_put_get_flush(void **state)
{
    fx *f = *state;
    tt_rcache *c = make(f, 1 << 20, 1000);
    assert_string_equal(get(c, 1, T0), "");
    assert_int_equal(put(c, 1, T0, HOUR_MS, "answer one"), 0);
    assert_string_equal(get(c, 1, T0 + 1), "answer one"); /* still queued */
    assert_int_equal(tt_rcache_flush(c), 0);
    assert_int_equal(tt_rcache_queued(c), 0);
    assert_string_equal(get(c, 1, T0 + 2), "answer one"); /* from LMDB */
    assert_string_equal(get(c, 1, T0 + 3), "answer one");
    assert_int_equal(tt_rcache_flush(c), 0);
    unsigned char k[TT_RCACHE_KEY_LEN];
    key_of(k, 1);
    uint64_t hits = 0;
    assert_int_equal(tt_rcache_hits(c, k, &hits), 0);
    assert_int_equal(hits, 3); /* the three gets, counted per entry */
    tt_rcache_stats st;
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, strlen("answer one") + TT_RCACHE_ENTRY_OVERHEAD);
    assert_int_equal(st.puts, 1);
    /* A put of the same key replaces the answer, not counted twice. */
    assert_int_equal(put(c, 1, T0 + 10, HOUR_MS, "answer 1b"), 0);
    assert_int_equal(tt_rcache_flush(c), 0);
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, strlen("answer 1b") + TT_RCACHE_ENTRY_OVERHEAD);
    assert_string_equal(get(c, 1, T0 + 11), "answer 1b");
    tt_rcache_free(c);
    /* The totals are in the store: a new cache on a reopened store sees them. */
    reopen(f);
    c = make(f, 1 << 20, 1000);
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 1);
    assert_string_equal(get(c, 1, T0 + 12), "answer 1b");
    tt_rcache_free(c);
}

static void test_ttl_expiry(void **state)
{
    fx *f = *state;
    tt_rcache *c = make(f, 1 << 20, 1000);
    assert_int_equal(put(c, 7, T0, 1000, "short"), 0);
    assert_int_equal(put(c, 8, T0, HOUR_MS, "long"), 0);
    assert_string_equal(get(c, 7, T0 + 999), "short");
    assert_string_equal(get(c, 7, T0 + 1000), ""); /* queued, expired */
    assert_int_equal(tt_rcache_flush(c), 0);
    assert_string_equal(get(c, 7, T0 + 999), "short");
    assert_string_equal(get(c, 7, T0 + 1001), ""); /* stored, expired: queued for removal */
    assert_string_equal(get(c, 8, T0 + 1001), "long");
    assert_int_equal(tt_rcache_flush(c), 0);
    tt_rcache_stats st;
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expired, 1);
    assert_string_equal(get(c, 7, T0 + 500), ""); /* gone from the store */
    /* Never asked for again: a later flush finds it expired at the LRU head
     * (last used at T0 + 1000, before 8's hit at T0 + 1001). */
    assert_int_equal(put(c, 9, T0 + 1000, 500, "nine"), 0);
    assert_int_equal(tt_rcache_flush(c), 0);
    assert_int_equal(put(c, 10, T0 + 3500, HOUR_MS, "ten"), 0);
    assert_int_equal(tt_rcache_flush(c), 0);
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.entries, 2);               /* 8 and 10 */
    assert_string_equal(get(c, 9, T0 + 1200), ""); /* removed, not only refused */
    tt_rcache_free(c);
}

static void test_lru_eviction_at_byte_cap(void **state)
{
    fx *f = *state;
    char text[101];
    memset(text, 'x', 100);
    text[100] = '\0';
    uint64_t one = 100 + TT_RCACHE_ENTRY_OVERHEAD;
    tt_rcache *c = make(f, 3 * one, 1000); /* room for three */
    for (int i = 1; i <= 3; i++)
        assert_int_equal(put(c, i, T0 + i, HOUR_MS, text), 0);
    assert_int_equal(tt_rcache_flush(c), 0);
    /* Entry 1 is the oldest, but a hit makes it the most recent. */
    assert_string_equal(get(c, 1, T0 + 10), text);
    assert_int_equal(tt_rcache_flush(c), 0);
    assert_int_equal(put(c, 4, T0 + 20, HOUR_MS, text), 0);
    assert_int_equal(tt_rcache_flush(c), 0);
    tt_rcache_stats st;
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 3);
    assert_true(st.bytes <= 3 * one);
    assert_int_equal(st.evictions, 1);
    assert_string_equal(get(c, 2, T0 + 21), ""); /* the least recently used went */
    assert_string_equal(get(c, 1, T0 + 21), text);
    assert_string_equal(get(c, 3, T0 + 21), text);
    assert_string_equal(get(c, 4, T0 + 21), text);
    tt_rcache_free(c);
}

static void test_lru_eviction_at_entry_cap(void **state)
{
    fx *f = *state;
    tt_rcache *c = make(f, 1 << 20, 10);
    for (int i = 0; i < 25; i++)
        assert_int_equal(put(c, i, T0 + i, HOUR_MS, "v"), 0);
    assert_int_equal(tt_rcache_flush(c), 0);
    tt_rcache_stats st;
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 10);
    assert_int_equal(st.evictions, 15);
    for (int i = 0; i < 15; i++)
        assert_string_equal(get(c, i, T0 + 100), "");
    for (int i = 15; i < 25; i++)
        assert_string_equal(get(c, i, T0 + 100), "v");
    tt_rcache_free(c);
}

static void test_bad_input(void **state)
{
    fx *f = *state;
    tt_rcache *c = NULL;
    tt_rcache_limits zero = {0, 10, 10};
    assert_int_equal(tt_rcache_new(f->st, &zero, &c), TT_EINVAL);
    c = make(f, 1 << 20, 10);
    char big[5000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(put(c, 1, T0, HOUR_MS, big), TT_ETOOLARGE); /* over entry_max_bytes */
    assert_int_equal(put(c, 1, T0, 0, "x"), TT_EINVAL);
    assert_int_equal(tt_rcache_queued(c), 0);
    /* A full queue asks for a flush. */
    int asked = 0;
    for (int i = 0; i < TT_RCACHE_QUEUE_MAX && !asked; i++)
        asked = put(c, i, T0, HOUR_MS, "z") == 1;
    assert_true(asked);
    assert_int_equal(tt_rcache_flush(c), 0);
    tt_rcache_stats st;
    tt_rcache_stats_get(c, &st);
    assert_int_equal(st.entries, 10); /* the entry cap */
    tt_rcache_free(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, opened, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_put_get_flush),
        T(test_ttl_expiry),
        T(test_lru_eviction_at_byte_cap),
        T(test_lru_eviction_at_entry_cap),
        T(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
