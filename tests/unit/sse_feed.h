/* What the SSE tests share (test_sse.c, test_sse_streams.c): a recorder of
 * events and feeders that give the parser the same input in every way.
 *
 * Events are recorded as "<name_len>:<name><data_len>:<data>;" so a
 * comparison is exact, embedded NULs and newlines included. run_all() feeds
 * the same input whole, one byte at a time, split in two at every position,
 * and in seeded random pieces, and asserts each way yields the same events
 * and the same result. */
#ifndef TT_TEST_SSE_FEED_H
#define TT_TEST_SSE_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/adapter.h"

#define CAP 4096 /* the cap of the cases that are not about caps */

typedef struct rec {
    char *buf;
    size_t len, cap;
    int n;       /* events seen */
    int stop_at; /* return stop_rc on this event (1-based); 0: never */
    int stop_rc;
} rec;

/* Append raw bytes; one length-prefixed field. */
void rec_put(rec *r, const char *s, size_t n);
void rec_field(rec *r, const char *s, size_t n);
/* The tt_sse callback: records into the rec that ud points to. */
int on_event(const char *name, size_t name_len, const char *data, size_t data_len, void *ud);
void rec_free(rec *r);
/* The expected recording for n (name, data) pairs of C strings. */
void expect(rec *r, int n, ...);
/* Fails the test unless a and b recorded the same events. */
void assert_same(const rec *a, const rec *b);

/* Feed in at the given piece boundaries (cuts[] increasing offsets); the
 * first non-zero result ends the run, as a real caller would. */
int feed_cuts(const char *in, size_t len, size_t cap, rec *r, const size_t *cuts, size_t ncuts);
int feed_whole(const char *in, size_t len, size_t cap, rec *r);
int feed_bytes(const char *in, size_t len, size_t cap, rec *r);
/* Pieces of 1..max_piece bytes, sizes drawn from a seeded xorshift. */
int feed_random(const char *in, size_t len, size_t cap, rec *r, uint64_t seed, size_t max_piece);
/* Feed in every way; each must match want and return want_rc. */
void run_all_n(const char *in, size_t len, size_t cap, const rec *want, int want_rc);
void run_all(const char *in, size_t cap, const rec *want, int want_rc);

#endif
