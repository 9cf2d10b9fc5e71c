/* WebSocket connections on lws: receiving frames, writing replies and events
 * (see conn.h). Requests themselves are handled in requests.c.
 *
 * Writes go out at once while the socket is not choked (measured 40 %
 * cheaper than one frame per WRITEABLE callback) and a WRITEABLE callback
 * drains as much as the socket takes, at most WRITE_BUDGET bytes per pass so
 * one busy socket cannot starve the rest. The frames ready at once go out
 * coalesced, up to BATCH_MAX bytes per write (write_some). */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/aisdk_ws.h"
#include "server/conn.h"
#include "server/flow.h"
#include "server/park.h"
#include "server/sse_out.h"
#include "server/logging.h"

#define WRITE_BUDGET (256 * 1024)
#define BATCH_MAX (16 * 1024) /* bytes of frames coalesced into one write */
#define HELLO_TIMEOUT_S 10
#define FAR_OVER_FACTOR 8 /* a message this many times the limit closes the socket */
/* Until a socket has authenticated it may send frames of at most this size
 * (a hello with a token fits), so unauthenticated sockets cannot make the
 * server hold --max-frame-bytes each. */
#define PREAUTH_FRAME_MAX (16 * 1024)
/* lws's own value for a close frame; 4.1 keeps it out of the public enum. */
#define TT_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)
/* After our close frame, a socket reads and discards its client's input for
 * at most this long and this much, waiting for the client to close (linger). */
#define LINGER_S 2
#define LINGER_MAX_BYTES ((size_t)16 << 20)
#define LINGER_PREAUTH_MAX_BYTES ((size_t)1 << 20) /* before hello: less courtesy */

/* Send a close frame ourselves (then linger). lws 4.1 on libuv drops the
 * connection without sending the frame that lws_close_reason() prepared (its
 * close path skips the wait for a writable socket), so the client would see
 * 1006 instead of our code. -1: the write failed. */
static int send_close(struct lws *wsi, int code, const char *reason)
{
    unsigned char buf[LWS_PRE + 2 + 123];
    size_t n = strlen(reason);
    if (n > 123)
        n = 123; /* a close frame's payload is at most 125 bytes */
    buf[LWS_PRE] = (unsigned char)(code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    memcpy(buf + LWS_PRE + 2, reason, n);
    return lws_write(wsi, buf + LWS_PRE, 2 + n, TT_LWS_WRITE_CLOSE) < 0 ? -1 : 0;
}

static void want_writable(tt_conn *c)
{
    tt_server_want_writable(c->srv, c->wsi);
}

static void items_free(tt_outq_item *it)
{
    while (it) {
        tt_outq_item *next = it->next;
        tt_frame_release(&it->frame);
        free(it);
        it = next;
    }
}

static void outq_free(tt_conn *c)
{
    items_free(c->out_head);
    items_free(c->held_head);
    c->out_head = c->out_tail = c->held_head = c->held_tail = NULL;
    c->out_bytes = c->stream_bytes = 0;
    if (c->in_held_list) {
        tt_conn **pp = &c->srv->held;
        while (*pp && *pp != c)
            pp = &(*pp)->held_next;
        if (*pp)
            *pp = c->held_next;
        c->in_held_list = 0;
    }
}

/* Our side of the connection is done once the close frame is all out: FIN. */
static void shut_write(tt_conn *c)
{
    if (c->shut_wr)
        return;
    if (lws_send_pipe_choked(c->wsi)) { /* part of the close frame is still queued */
        want_writable(c);
        return;
    }
    c->shut_wr = 1;
    lws_sockfd_type fd = lws_get_socket_fd(c->wsi);
    if (fd >= 0)
        (void)shutdown(fd, SHUT_WR);
}

/* Close with code: the close frame, then linger. Closing the socket at once
 * while its client still writes (the rest of a frame far over the limit, the
 * frames queued behind one over the byte rate) leaves input unread, and the
 * kernel answers it with a reset: the client's next write fails and it may
 * drop the connection before it reads our close frame (it sees 1006, or no
 * code). RFC 6455 7.1.1 has the server close the TCP connection after the
 * closing handshake, so: nothing more is written, FIN once the frame is out,
 * and input is read and thrown away until the client closes (lws closes on
 * its EOF or its close frame), LINGER_S or LINGER_MAX_BYTES, whichever comes
 * first. The connection stays counted until then. Returns the callback's
 * value: 0, or -1 when the close frame could not be written. */
static int close_lingering(tt_conn *c, int code, const char *reason)
{
    if (send_close(c->wsi, code, reason) != 0)
        return -1;
    if (!c->close_code)
        c->close_code = code;
    c->lingering = 1;
    tt_aisdk_ws_closed(c);
    while (c->cursors)
        tt_conn_remove_cursor(c, c->cursors);
    outq_free(c);
    tt_buf_free(&c->rx);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LINGER_S);
    shut_write(c);
    return 0;
}

/* Input after our close frame: counted and dropped; -1 (close now) past the bound. */
static int linger_receive(tt_conn *c, size_t len)
{
    c->linger_bytes += len;
    return c->linger_bytes > (c->authed ? LINGER_MAX_BYTES : LINGER_PREAUTH_MAX_BYTES) ? -1 : 0;
}

tt_outq_item *tt_conn_make_item(tt_conn *c, json_t *msg)
{
    tt_outq_item *it = calloc(1, sizeof *it);
    if (!it || tt_frame_from_json(msg, LWS_PRE, &it->frame) != 0) {
        free(it);
        c->failed = 1;
        want_writable(c);
        return NULL;
    }
    return it;
}

/* Count a reply toward the socket's output cap, queued or held for its
 * commit alike: a client that sends requests but does not read the replies
 * is dropped. 0, or the socket is failing (the reply is still counted and
 * freed with the queues). */
int tt_conn_count_output(tt_conn *c, size_t len)
{
    c->out_bytes += len;
    if (c->out_bytes - c->stream_bytes <= (size_t)c->srv->cfg.max_output_bytes || c->close_code ||
        c->failed)
        return c->failed;
    c->srv->metrics.dropped_output++;
    tt_log(TT_WARN, "socket dropped: replies not read",
           json_pack("{s:s, s:I}", "user", c->user, "queued_bytes", (json_int_t)c->out_bytes));
    c->failed = 1;
    want_writable(c);
    return 1;
}

static void enqueue(tt_conn *c, json_t *msg, int stream)
{
    if (c->lingering) {
        json_decref(msg); /* closed: nothing more is written */
        return;
    }
    tt_outq_item *it = tt_conn_make_item(c, msg);
    if (!it)
        return;
    if (c->held_head) {
        tt_conn_hold(c, it); /* keep replies in order behind a held one */
        return;
    }
    if (c->out_tail)
        c->out_tail->next = it;
    else
        c->out_head = it;
    c->out_tail = it;
    it->stream = stream;
    if (stream)
        c->stream_bytes += it->frame.len;
    if (tt_conn_count_output(c, it->frame.len) != 0)
        return;
    tt_conn_pump(c);
}

void tt_conn_send(tt_conn *c, json_t *msg)
{
    enqueue(c, msg, 0);
}

void tt_conn_send_stream(tt_conn *c, json_t *msg)
{
    enqueue(c, msg, 1);
}

void tt_conn_error(tt_conn *c, const char *re, int err, const char *msg)
{
    tt_conn_error_retryable(c, re, err, msg, err == TT_ERATE);
}

void tt_conn_error_retryable(tt_conn *c, const char *re, int err, const char *msg, int retryable)
{
    const char *code = tt_err_wire(err);
    tt_metrics_error(&c->srv->metrics, code);
    if (c->aisdk) { /* that socket's clients know only its own error frame */
        tt_aisdk_ws_refuse(c, msg ? msg : tt_strerror(err));
        return;
    }
    json_t *reply = tt_reply_error(re, code, msg ? msg : tt_strerror(err), retryable);
    if (reply && err == TT_ERATE)
        json_object_set_new(reply, "retry_after_s", json_integer(1));
    tt_conn_send(c, reply);
}

void tt_conn_close(tt_conn *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    /* a socket being closed (it may never read again: its close frame can
     * wait behind a full buffer) no longer holds a paused model back */
    for (tt_cursor *cur = c->cursors; cur; cur = cur->owner_next)
        cur->owner_closing = 1;
    want_writable(c);
}

/* The next cursor with a frame ready, round-robin from c->rr. */
static tt_cursor *next_event(tt_conn *c, const tt_frame **f)
{
    tt_cursor *start = c->rr ? c->rr : c->cursors;
    tt_cursor *cur = start;
    while (cur) {
        int err = 0;
        *f = tt_cursor_peek(cur, &err);
        if (err) {
            tt_log(TT_ERROR, "replay failed",
                   json_pack("{s:s, s:s}", "session", cur->session->id, "error", tt_strerror(err)));
            tt_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "replay failed");
            return NULL;
        }
        if (*f) {
            c->rr = cur->owner_next;
            return cur;
        }
        cur = cur->owner_next ? cur->owner_next : c->cursors;
        if (cur == start)
            break;
    }
    return NULL;
}

/* The next frame to write: a reply first, else an event (none once closing). */
static const tt_frame *next_frame(tt_conn *c, tt_cursor **from)
{
    const tt_frame *f = NULL;
    *from = NULL;
    if (c->out_head)
        return &c->out_head->frame;
    if (!c->close_code)
        *from = next_event(c, &f);
    return f;
}

/* f (from `from`, else the head of the reply queue) is written: let it go. */
static void consume(tt_conn *c, tt_cursor *from, size_t len)
{
    c->srv->metrics.frames_out++;
    c->srv->metrics.bytes_out += len;
    if (from) {
        tt_cursor_advance(from);
        return;
    }
    tt_outq_item *it = c->out_head;
    c->out_head = it->next;
    if (!c->out_head)
        c->out_tail = NULL;
    c->out_bytes -= it->frame.len;
    if (it->stream)
        c->stream_bytes -= it->frame.len;
    tt_frame_release(&it->frame);
    free(it);
}

/* An unmasked, final text frame's header for len payload bytes (RFC 6455
 * 5.2) into h; its length. */
static size_t ws_header(unsigned char *h, size_t len)
{
    h[0] = 0x81;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* The most lws sends in one write (its tx packet size, else the rx buffer
 * size, else its service buffer's 4096): it keeps the rest of a longer write
 * in a copy, so a batch is at most this, and at most BATCH_MAX. */
static size_t batch_cap(const tt_conn *c)
{
    const struct lws_protocols *p = lws_get_protocol(c->wsi);
    size_t cap = p && p->tx_packet_size   ? p->tx_packet_size
                 : p && p->rx_buffer_size ? p->rx_buffer_size
                                          : 4096;
    return cap < BATCH_MAX ? cap : BATCH_MAX;
}

/* Write the next frames: every whole one that fits in one batch, framed
 * here and sent in one write (lws_write with LWS_WRITE_HTTP sends a ws
 * connection's bytes as they are), or one frame alone through lws's own
 * framing when it does not fit. Replaying 1,000 events was one poll() (the
 * choke check) and one send() per frame (issue 18). 1: written, 0: nothing
 * to write, 2: this pass's budget is spent, -1: the write failed. */
static int write_some(tt_conn *c, unsigned char *batch, size_t cap, size_t *budget)
{
    size_t used = 0;
    for (;;) {
        tt_cursor *rr = c->rr, *from;
        const tt_frame *f = next_frame(c, &from);
        if (!f)
            break;
        if (!used && *budget < f->len && *budget < WRITE_BUDGET) {
            c->rr = rr; /* its turn stays for the next pass */
            return 2;
        }
        size_t need = f->len + (f->len < 126 ? 2 : f->len < 65536 ? 4 : 10);
        if (used + need > cap && used) {
            c->rr = rr; /* not taken: its turn stays */
            break;
        }
        if (used + need > cap) {
            if (lws_write(c->wsi, (unsigned char *)f->buf + f->headroom, f->len, LWS_WRITE_TEXT) <
                0)
                return -1;
            c->srv->metrics.writes_out++;
            *budget -= f->len < *budget ? f->len : *budget;
            consume(c, from, f->len);
            return 1;
        }
        used += ws_header(batch + used, f->len);
        memcpy(batch + used, f->buf + f->headroom, f->len);
        used += f->len;
        consume(c, from, f->len);
    }
    if (!used)
        return 0;
    if (lws_write(c->wsi, batch, used, LWS_WRITE_HTTP) < 0)
        return -1;
    c->srv->metrics.writes_out++;
    *budget -= used < *budget ? used : *budget;
    return 1;
}

/* Whether a frame waits to be written (its round-robin turn unchanged). */
static int has_frame(tt_conn *c)
{
    tt_cursor *rr = c->rr, *from;
    const tt_frame *f = next_frame(c, &from);
    c->rr = rr;
    return f != NULL;
}

/* The choke check is a poll(): made only when there is something to write,
 * so a pass that wrote everything ends without one more (issue 18). */
void tt_conn_pump(tt_conn *c)
{
    size_t budget = WRITE_BUDGET;
    int more = 0;
    if (c->lingering)
        return;
    unsigned char batch[LWS_PRE + BATCH_MAX];
    size_t cap = batch_cap(c);
    while (!c->failed && has_frame(c)) {
        if (lws_send_pipe_choked(c->wsi)) {
            more = 1;
            break;
        }
        int r = write_some(c, batch + LWS_PRE, cap, &budget);
        if (r < 0)
            c->failed = 1;
        if (r == 2)
            more = 1;
        if (r != 1)
            break;
    }
    if (c->aisdk_streams && !c->failed && !more)
        tt_aisdk_ws_drain(c); /* the queue is short again: pull more events */
    if (!c->failed)
        tt_flow_drained(c); /* caught up enough to let a paused model go on? */
    if (more || c->failed || c->close_code)
        want_writable(c);
}

tt_cursor *tt_conn_cursor(const tt_conn *c, const char *sid)
{
    for (tt_cursor *cur = c->cursors; cur; cur = cur->owner_next) {
        if (strcmp(cur->session->id, sid) == 0)
            return cur;
    }
    return NULL;
}

void tt_conn_add_cursor(tt_conn *c, tt_cursor *cur)
{
    cur->owner_next = c->cursors;
    c->cursors = cur;
}

void tt_conn_remove_cursor(tt_conn *c, tt_cursor *cur)
{
    tt_cursor **pp = &c->cursors;
    while (*pp && *pp != cur)
        pp = &(*pp)->owner_next;
    if (*pp)
        *pp = cur->owner_next;
    if (c->rr == cur)
        c->rr = NULL;
    tt_session *s = cur->session;
    tt_cursor_detach(cur);
    tt_flow_cursor_gone(c->srv, s);
}

tt_conn *tt_conn_detach_next(tt_session *s)
{
    while (s->cursors) {
        tt_cursor *cur = s->cursors;
        if (cur->owner_kind == 1) { /* an event stream's: it ends itself */
            tt_evs_cursor_gone(cur);
            continue;
        }
        tt_conn *c = cur->owner;
        tt_conn_remove_cursor(c, cur);
        return c;
    }
    return NULL;
}

void tt_ws_deliver(tt_cursor *cur, void *ud)
{
    tt_server *srv = ud;
    if (cur->owner_kind == 1) {
        tt_evs_deliver(cur);
        return;
    }
    tt_conn *c = cur->owner;
    if (tt_cursor_lag(cur) > (uint64_t)srv->cfg.max_lag_events && !c->close_code) {
        srv->metrics.dropped_lagging++;
        tt_log(TT_WARN, "socket dropped: lagging",
               json_pack("{s:s, s:s, s:I}", "user", c->user, "session", cur->session->id, "lag",
                         (json_int_t)tt_cursor_lag(cur)));
        tt_conn_close(c, 4008, "lagging: reattach to resume");
        return;
    }
    tt_flow_delivered(c, cur);
    tt_conn_pump(c);
}

void tt_ws_close_all(tt_server *srv, int code, const char *reason)
{
    for (tt_conn *c = srv->conns; c; c = c->next)
        tt_conn_close(c, code, reason);
}

/* Token bucket: 1 token per message, refilled at rate_msgs_per_s. */
static int rate_ok(tt_conn *c)
{
    uint64_t now = uv_now(&c->srv->loop);
    double rate = c->srv->cfg.rate_msgs_per_s, burst = c->srv->cfg.rate_burst;
    c->tokens += (double)(now - c->tokens_ms) * rate / 1000.0;
    if (c->tokens > burst)
        c->tokens = burst;
    c->tokens_ms = now;
    if (c->tokens < 1.0)
        return 0;
    c->tokens -= 1.0;
    return 1;
}

/* Byte bucket, charged as bytes arrive (before any parsing): refilled at
 * rate_bytes_per_s up to rate_bytes_burst. A message that arrives while the
 * bucket is empty is thrown away unread; a client that keeps sending until
 * it owes a whole burst is closed. Returns 0, or 1: close it. */
static int charge_bytes(tt_conn *c, size_t len)
{
    const tt_config *cfg = &c->srv->cfg;
    uint64_t now = uv_now(&c->srv->loop);
    double burst = (double)cfg->rate_bytes_burst;
    c->byte_tokens += (double)(now - c->byte_tokens_ms) * (double)cfg->rate_bytes_per_s / 1000.0;
    if (c->byte_tokens > burst)
        c->byte_tokens = burst;
    c->byte_tokens_ms = now;
    c->byte_tokens -= (double)len;
    if (c->byte_tokens < 0)
        c->rx_rate_limited = 1;
    if (c->byte_tokens >= -burst)
        return 0;
    c->srv->metrics.dropped_rate_bytes++;
    tt_log(TT_WARN, "socket dropped: over the byte rate",
           json_pack("{s:s, s:I}", "user", c->user, "rate_bytes_per_s",
                     (json_int_t)cfg->rate_bytes_per_s));
    return 1;
}

/* The largest frame this socket may send now (PREAUTH_FRAME_MAX before it
 * has authenticated). */
static size_t frame_limit(const tt_conn *c)
{
    size_t max = (size_t)c->srv->cfg.max_frame_bytes;
    return !c->authed && max > PREAUTH_FRAME_MAX ? PREAUTH_FRAME_MAX : max;
}

static void handle_frame(tt_conn *c)
{
    tt_server *srv = c->srv;
    srv->metrics.frames_in++;
    srv->metrics.bytes_in += c->rx.len + c->rx_dropped;
    size_t limit = frame_limit(c);
    int oversized = c->rx.len + c->rx_dropped > limit;
    if (c->rx_rate_limited && !oversized) {
        tt_conn_error(c, NULL, TT_ERATE, "too many bytes; slow down");
        return;
    }
    if (c->token_exp && tt_wall_ms() / 1000 >= c->token_exp) {
        tt_conn_error(c, NULL, TT_EEXPIRED, "token expired");
        tt_conn_close(c, 4001, "token expired");
        return;
    }
    if (oversized) {
        char msg[96];
        snprintf(msg, sizeof msg, "frame larger than %zu bytes%s", limit,
                 c->authed ? " (max_frame_bytes)" : " (before hello)");
        tt_conn_error(c, NULL, TT_ETOOLARGE, msg);
        return;
    }
    if (c->rx_binary) {
        tt_conn_error(c, NULL, TT_EINVAL, "binary frames are not accepted; send JSON text");
        return;
    }
    if (c->aisdk) {
        if (!rate_ok(c))
            tt_conn_error(c, NULL, TT_ERATE, "too many messages; slow down");
        else
            tt_aisdk_ws_frame(c, tt_buf_str(&c->rx), c->rx.len);
        return;
    }
    tt_msg m;
    char err[160];
    int rc = tt_msg_decode(tt_buf_str(&c->rx), c->rx.len, (size_t)srv->cfg.max_frame_bytes, &m, err,
                           sizeof err);
    /* Decoded first (bounded by max_frame_bytes) so the refusal can carry `re`. */
    if (!rate_ok(c)) {
        tt_conn_error(c, m.id, TT_ERATE, "too many messages; slow down");
    } else if (rc) {
        tt_conn_error(c, m.id, rc, err);
    } else if (!c->welcomed && !c->authed && m.type != TT_MSG_HELLO) {
        tt_conn_error(c, m.id, TT_EAUTH, "the first message must be hello");
        tt_conn_close(c, 4001, "unauthenticated");
    } else if (!tt_park_maybe(c, &m, tt_buf_str(&c->rx), c->rx.len)) {
        tt_request_handle(c, &m);
    }
    tt_msg_free(&m);
}

static int receive(tt_conn *c, const char *in, size_t len)
{
    size_t max = frame_limit(c);
    if (lws_is_first_fragment(c->wsi)) {
        tt_buf_reset(&c->rx);
        if (tt_buf_set_cap(&c->rx, max) != 0) /* empty: cannot fail */
            return -1;
        c->rx_dropped = 0;
        c->rx_rate_limited = 0;
        c->rx_binary = lws_frame_is_binary(c->wsi);
    }
    if (charge_bytes(c, len) != 0)
        return close_lingering(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "sending too fast");
    int rc = c->rx_rate_limited || c->rx_dropped ? TT_ETOOLARGE : tt_buf_append(&c->rx, in, len);
    if (rc == TT_ENOMEM)
        return -1;
    if (rc) {
        /* Over the byte rate or the size limit: counted, never kept or parsed. */
        c->rx_dropped += len;
        if (c->rx_dropped + c->rx.len > max * FAR_OVER_FACTOR) {
            c->srv->metrics.errors[5]++; /* too_large */
            return close_lingering(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "frame too large");
        }
    }
    if (lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0) {
        handle_frame(c);
        /* Not kept between messages: an idle socket holds no receive memory
         * (a malloc per message; a big message's memory is not kept either). */
        tt_buf_free(&c->rx);
        c->rx_dropped = 0;
        c->rx_rate_limited = 0;
    }
    return 0;
}

/* The socket's token stops working at its exp: heartbeat.c's walk (at most
 * a second later) closes it then, and a message that arrives first is
 * refused (handle_frame). No lws timer per socket: each is an O(N) insert. */
void tt_conn_token_expired(tt_conn *c)
{
    if (c->close_code)
        return;
    c->srv->metrics.closed_token_expired++;
    tt_conn_error(c, NULL, TT_EEXPIRED, "token expired");
    tt_conn_close(c, 4001, "token expired");
}

/* A back-pressure hold's deadline (flow.h): an lws timer on the socket,
 * armed only while one of its sessions is paused for it (rare, so its O(N)
 * insert does not matter the way a timer on every socket did). */
void tt_conn_arm_timer(tt_conn *c)
{
    int64_t ms = tt_flow_timer_ms(c);
    lws_set_timer_usecs(c->wsi, ms < 0 ? LWS_SET_TIMER_USEC_CANCEL : (lws_usec_t)ms * 1000);
}

static void on_conn_timer(tt_conn *c)
{
    if (c->close_code)
        return;
    tt_flow_timer(c);
    if (!c->close_code)
        tt_conn_arm_timer(c); /* the next deadline, if any */
}

/* A token on the upgrade request: Authorization: Bearer, or ?token=. */
static void upgrade_token(tt_conn *c)
{
    char buf[TT_JWT_MAX_LEN + 16];
    const char *token = NULL;
    if (lws_hdr_copy(c->wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        strncasecmp(buf, "Bearer ", 7) == 0)
        token = buf + 7;
    else
        token = lws_get_urlarg_by_name(c->wsi, "token=", buf, (int)sizeof buf);
    if (!token)
        return;
    if (tt_conn_authenticate(c, token) != 0) {
        tt_conn_error(c, NULL, TT_EAUTH, "invalid or expired token");
        tt_conn_close(c, 4001, "unauthenticated");
    }
}

#define AISDK_PATH "/v1/ai-sdk/ws"

static int path_is_aisdk(struct lws *wsi)
{
    char path[32];
    return lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) > 0 &&
           strcmp(path, AISDK_PATH) == 0;
}

/* /v1/ai-sdk/ws speaks the AI SDK's frames (aisdk_ws.h): no hello, the
 * token on the upgrade or none in open mode. c->aisdk is set before the
 * upgrade's token is checked, so that its refusal is in that shape too. */
static void aisdk_setup(tt_conn *c)
{
    if (!c->aisdk)
        return;
    c->welcomed = 1;
    if (c->authed || c->close_code)
        return;
    if (c->srv->auth.n_keys > 0) {
        tt_conn_error(c, NULL, TT_EAUTH, "a token is required (Authorization or ?token=)");
        tt_conn_close(c, 4001, "unauthenticated");
        return;
    }
    snprintf(c->user, sizeof c->user, "local");
    snprintf(c->tenant, sizeof c->tenant, "local");
    c->authed = 1;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
}

static int path_is_ws(struct lws *wsi)
{
    char path[64];
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0)
        return 0;
    return strcmp(path, "/v1/ws") == 0 || strcmp(path, AISDK_PATH) == 0;
}

int tt_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    tt_server *srv = lws_context_user(lws_get_context(wsi));
    tt_conn **slot = user;
    tt_conn *c = slot ? *slot : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return !path_is_ws(wsi) || srv->stopping || tt_http_refuse_foreign_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        c = calloc(1, sizeof *c);
        if (!c)
            return -1;
        c->srv = srv;
        c->wsi = wsi;
        lws_get_peer_simple(wsi, c->ip, sizeof c->ip);
        c->tokens = srv->cfg.rate_burst;
        c->tokens_ms = uv_now(&srv->loop);
        c->byte_tokens = (double)srv->cfg.rate_bytes_burst;
        c->byte_tokens_ms = c->tokens_ms;
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        *slot = c;
        srv->metrics.connections++;
        srv->metrics.connections_total++;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE, HELLO_TIMEOUT_S);
        c->aisdk = path_is_aisdk(wsi);
        upgrade_token(c);
        aisdk_setup(c);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (c && c->lingering)
            return linger_receive(c, len);
        return c ? receive(c, in, len) : -1;
    case LWS_CALLBACK_TIMER:
        if (c)
            on_conn_timer(c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || c->failed)
            return -1;
        if (c->lingering) {
            shut_write(c);
            return 0;
        }
        tt_conn_pump(c);
        if (c->failed)
            return -1;
        if (c->close_code && !c->out_head && !lws_send_pipe_choked(wsi))
            return close_lingering(c, c->close_code, c->close_reason);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (!c)
            return 0;
        tt_aisdk_ws_closed(c);
        tt_park_release(c);
        while (c->cursors)
            tt_conn_remove_cursor(c, c->cursors);
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        outq_free(c);
        tt_buf_free(&c->rx);
        json_decref(c->agents);
        free(c);
        *slot = NULL;
        srv->metrics.connections--;
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

int tt_conn_authenticate(tt_conn *c, const char *token)
{
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    int64_t now = tt_wall_ms() / 1000;
    int rc = tt_jwt_verify(c->srv->auth.secret, c->srv->auth.secret_len, token, now, &cl);
    if (rc)
        return rc;
    snprintf(c->user, sizeof c->user, "%s", cl.sub);
    snprintf(c->tenant, sizeof c->tenant, "%s", cl.tenant[0] ? cl.tenant : "default");
    tt_utf8_copy(c->key_id, sizeof c->key_id, cl.kid);
    json_decref(c->agents);
    c->agents = cl.agents;
    c->token_exp = cl.exp;
    cl.agents = NULL;
    tt_jwt_claims_clear(&cl);
    c->authed = 1;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    return 0;
}
