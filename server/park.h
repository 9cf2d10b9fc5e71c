/* Requests that wait for their session to be acquired (replicated mode).
 *
 * In replicated mode a session that is not in this node's memory belongs,
 * as far as this node knows, to another node: it must be acquired (state/
 * cluster.h: a PostgreSQL round trip, then the session read back) before a
 * request naming it can run. The request is parked: its frame is copied,
 * the socket stops reading (lws rx flow control), and when the acquire ends
 * the parked frames run in the order they came, or get the acquire's error
 * (`not_found`, or `unavailable` and retryable when the database is away).
 * A socket parks at most TT_PARK_MAX frames; the socket is not read
 * meanwhile, so a client cannot make it hold more. Without replicated mode
 * nothing is ever parked. */
#ifndef TT_PARK_H
#define TT_PARK_H

#include <stddef.h>

#include "protocol/frame.h"

#define TT_PARK_MAX 16

struct tt_conn;

/* 1 when m (decoded from text) was parked or answered here; 0: handle it now. */
int tt_park_maybe(struct tt_conn *c, const tt_msg *m, const char *text, size_t len);
/* The socket is closing: forget its parked frames and its acquire. */
void tt_park_release(struct tt_conn *c);

#endif
