/* Back-pressure from sockets to the model (issue 18): when a socket attached
 * to a session falls behind, the session's model call stops being read
 * (CURLPAUSE_RECV through tt_agent_pause) instead of the socket being dropped,
 * and it resumes once every socket has caught up.
 *
 * Policy: a WebSocket (not an HTTP event stream) TT_FLOW_PAUSE_LAG (512)
 * events behind (or half of --max-lag-events, if smaller) pauses the call:
 * the chat agent checks as it emits each delta (tt_session_backlog), the
 * server as it delivers; it resumes when every socket of the session is
 * under a quarter of that.
 * So the slowest attached socket sets the pace of every socket of the
 * session, but for at most --backpressure-hold-ms at a time: a socket that
 * has held a pause back that long without once catching up (under a quarter)
 * is dropped with 4008 (lagging: reattach to resume) and the call resumes for
 * the others; a socket that catches up starts its next hold afresh. Events that no
 * model paces (the echo agent, tool results) still drop a socket past
 * --max-lag-events, as before. Sessions stay in memory and their events in
 * the store while paused: memory does not grow with the backlog. */
#ifndef TT_FLOW_H
#define TT_FLOW_H

#include "server/conn.h"

/* cur (c's) has new committed events: pause its session's call if cur is far behind. */
void tt_flow_delivered(tt_conn *c, tt_cursor *cur);
/* c wrote events: resume the paused sessions it was holding back, if all caught up. */
void tt_flow_drained(tt_conn *c);
/* A cursor of s went away (detached, or its socket closed): resume if nothing holds s back. */
void tt_flow_cursor_gone(tt_server *srv, tt_session *s);
/* c's timer: drop c (4008) if it has held a paused session back for the hold time. */
void tt_flow_timer(tt_conn *c);
/* Milliseconds until c's hold deadline (0: due), or -1 when none. */
int64_t tt_flow_timer_ms(const tt_conn *c);

#endif
