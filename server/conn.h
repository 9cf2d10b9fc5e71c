/* One WebSocket connection: authentication, the frame being received, the
 * replies waiting to be written, and its cursors (one per attached session).
 *
 * Output has two sources, written in this order whenever the socket can take
 * more: replies (small, bounded by max_output_bytes), then events pulled from
 * the cursors round-robin. Events are never copied per socket: a cursor
 * points into the session's log. */
#ifndef TT_CONN_H
#define TT_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "protocol/buf.h"
#include "protocol/event.h"
#include "protocol/frame.h"
#include "server/server.h"
#include "state/session.h"

typedef struct tt_outq_item {
    tt_frame frame;
    struct tt_outq_item *next;
    /* A held reply to a request that changed a session: that session's id and
     * the request's id, to answer with an error instead if the change is
     * discarded. sid is "" for every other reply. */
    char sid[TT_SESSION_ID_MAX + 1];
    char re[TT_ID_MAX + 1];
    uint64_t pass; /* held until the registry's commit pass `pass` is done */
    int stream;    /* pulled from an AI SDK stream (tt_conn_send_stream), no reply */
} tt_outq_item;

struct tt_conn {
    tt_server *srv;
    struct lws *wsi;
    tt_conn *next, *prev; /* srv->conns */

    int authed;   /* a valid token (or open mode) */
    int welcomed; /* hello answered */
    char user[TT_USER_MAX];
    char tenant[TT_TENANT_MAX];
    char key_id[TT_KEY_ID_MAX]; /* the token's API key id ("open": open mode) */
    char ip[64];                /* the peer's address (the per-IP rate limit) */
    json_t *agents;             /* the token's allow-list, or NULL for all */

    tt_buf rx;         /* the message being received, capped at its frame limit */
    size_t rx_dropped; /* bytes of an oversized message thrown away */
    int rx_binary;

    tt_outq_item *out_head, *out_tail;
    size_t out_bytes;    /* queued: replies and stream frames */
    size_t stream_bytes; /* of out_bytes, frames pulled from streams (no output cap) */
    tt_outq_item *held_head, *held_tail; /* replies waiting for the next commit */
    tt_conn *held_next;                  /* srv->held: connections holding replies */
    int in_held_list;
    struct tt_parked *parked_head, *parked_tail; /* frames waiting for an acquire (park.h) */
    size_t parked_n;
    int parked_waiting; /* an acquire for the first parked frame is outstanding */
    tt_cursor *cursors; /* linked through owner_next */
    tt_cursor *rr;      /* where the next round-robin pass starts */

    int close_code; /* non-zero: close once the replies are out */
    char close_reason[64];
    int failed; /* a write failed: close at the next callback */
    /* Our close frame is out: input is read and discarded until the client
     * closes, at most LINGER_S seconds and LINGER_MAX_BYTES (ws.c). */
    int lingering;
    int shut_wr; /* lingering, and our side of the connection is shut (FIN sent) */
    size_t linger_bytes;

    double tokens; /* rate limit bucket */
    uint64_t tokens_ms;
    double byte_tokens; /* byte rate bucket; negative: debt of bytes sent over the rate */
    uint64_t byte_tokens_ms;
    int rx_rate_limited; /* the message being received went over the byte rate: dropped */

    int64_t token_exp; /* the token's exp (seconds since the epoch); 0: no token */
    /* heartbeat.c: loop times (ms) of the last frame or pong received and of our last ping */
    uint64_t hb_rx_ms, hb_ping_ms;
    uint64_t flow_deadline_ms; /* holds a paused model call back until then (flow.h); 0: no */

    int aisdk;                    /* /v1/ai-sdk/ws: the AI SDK's frames (aisdk_ws.c) */
    struct tt_evs *aisdk_streams; /* its chats' streams */
    int aisdk_draining;           /* tt_aisdk_ws_drain is running (no re-entry) */
};

/* Queue a reply (consumed) and write what the socket takes now. */
void tt_conn_send(tt_conn *c, json_t *msg);
/* The same for a frame an AI SDK stream pulled from its session: counted in
 * out_bytes (the stream pulls only while little is queued, sse_out.h) but
 * not toward the output cap, which is for replies a client does not read:
 * one event larger than the cap is no such client. */
void tt_conn_send_stream(tt_conn *c, json_t *msg);
/* Shared by ws.c and held.c: an output item from msg (consumed; NULL and the
 * socket failing when it cannot be made), its bytes counted toward the
 * output cap (1: the socket is failing), and an item held behind the
 * replies already held. */
tt_outq_item *tt_conn_make_item(tt_conn *c, json_t *msg);
int tt_conn_count_output(tt_conn *c, size_t len);
void tt_conn_hold(tt_conn *c, tt_outq_item *it);
/* Queue the reply (re: the request's id) to a request that changed session
 * sid: it goes out once that change is committed (an `ok` means the change
 * survives a crash), or becomes an error if the change is discarded. Replies
 * after it keep their order behind it. */
void tt_conn_send_durable(tt_conn *c, const char *sid, const char *re, json_t *msg);
/* Registry hook: a commit pass ended; release every held reply. */
void tt_ws_committed(uint64_t pass, void *ud);
/* Registry hook (replicated mode): s moved to another node: its sockets
 * close with 1012 and its held replies are dropped. */
void tt_ws_moved(tt_session *s, void *ud);
/* Registry hook: s's uncommitted changes are discarded with err: the held
 * replies about s become errors, and each socket attached to s is detached
 * and told so (an `error` with `session`, no `re`). Logged and counted. */
void tt_ws_discard(tt_session *s, int err, void *ud);
/* Send the error for a session change that could not be stored (err as
 * given to tt_ws_discard): unavailable and retryable when the store is full. */
void tt_conn_store_error(tt_conn *c, const char *re, int err);

/* Send an error reply for err (a tt_err) with message msg. */
void tt_conn_error(tt_conn *c, const char *re, int err, const char *msg);
/* The same, saying whether the request may succeed if sent again as is. */
void tt_conn_error_retryable(tt_conn *c, const char *re, int err, const char *msg, int retryable);
/* Send the replies, then close with code. */
void tt_conn_close(tt_conn *c, int code, const char *reason);
/* c's token expired (heartbeat.c found it past exp): say so, close with 4001. */
void tt_conn_token_expired(tt_conn *c);
/* Write as much as the socket takes now; ask for a writable callback for the rest. */
void tt_conn_pump(tt_conn *c);

tt_cursor *tt_conn_cursor(const tt_conn *c, const char *sid);
void tt_conn_add_cursor(tt_conn *c, tt_cursor *cur);
void tt_conn_remove_cursor(tt_conn *c, tt_cursor *cur);
/* Detach the next reader of session s: an event stream's cursor is told it
 * is gone and passed over; a socket's is removed from the socket, which is
 * returned. NULL once s has no reader left. */
tt_conn *tt_conn_detach_next(tt_session *s);

/* Handle one decoded client message (requests.c). */
void tt_request_handle(tt_conn *c, tt_msg *m);

/* Authenticate c with a bearer token; TT_EAUTH / TT_EEXPIRED on failure. */
int tt_conn_authenticate(tt_conn *c, const char *token);

/* (Re)arm c's lws timer for the nearer of its token's expiry and its
 * back-pressure hold deadline (flow.h); none: cancelled. */
void tt_conn_arm_timer(tt_conn *c);

#endif
