/* WebSocket connections on lws: receiving frames, writing replies and events
 * (see conn.h). Requests themselves are handled in requests.c.
 *
 * Writes go out at once while the socket is not choked (LWS-NOTES: 40 %
 * cheaper than one frame per WRITEABLE callback) and a WRITEABLE callback
 * drains as much as the socket takes, at most WRITE_BUDGET bytes per pass so
 * one busy socket cannot starve the rest. */
#include <string.h>
#include <stdlib.h>

#include "protocol/errors.h"
#include "server/conn.h"
#include "server/logging.h"

#define WRITE_BUDGET (256 * 1024)
#define HELLO_TIMEOUT_S 10
#define FAR_OVER_FACTOR 8 /* a message this many times the limit closes the socket */
/* lws's own value for a close frame; 4.1 keeps it out of the public enum. */
#define TT_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* Send a close frame ourselves, then the caller returns -1. lws 4.1 on libuv
 * drops the connection without sending the frame that lws_close_reason()
 * prepared (its close path skips the wait for a writable socket), so the
 * client would see 1006 instead of our code. */
static void send_close(struct lws *wsi, int code, const char *reason)
{
    unsigned char buf[LWS_PRE + 2 + 123];
    size_t n = strlen(reason);
    if (n > 123)
        n = 123; /* a close frame's payload is at most 125 bytes */
    buf[LWS_PRE] = (unsigned char)(code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    memcpy(buf + LWS_PRE + 2, reason, n);
    lws_write(wsi, buf + LWS_PRE, 2 + n, TT_LWS_WRITE_CLOSE);
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
    c->out_bytes = 0;
    if (c->in_held_list) {
        tt_conn **pp = &c->srv->held;
        while (*pp && *pp != c)
            pp = &(*pp)->held_next;
        if (*pp)
            *pp = c->held_next;
        c->in_held_list = 0;
    }
}

static tt_outq_item *make_item(tt_conn *c, json_t *msg)
{
    tt_outq_item *it = calloc(1, sizeof *it);
    if (!it || tt_frame_from_json(msg, LWS_PRE, &it->frame) != 0) {
        free(it);
        c->failed = 1;
        lws_callback_on_writable(c->wsi);
        return NULL;
    }
    return it;
}

static void hold(tt_conn *c, tt_outq_item *it)
{
    if (c->held_tail)
        c->held_tail->next = it;
    else
        c->held_head = it;
    c->held_tail = it;
    if (!c->in_held_list) {
        c->in_held_list = 1;
        c->held_next = c->srv->held;
        c->srv->held = c;
    }
}

void tt_conn_send_durable(tt_conn *c, json_t *msg)
{
    if (!tt_registry_dirty(c->srv->reg) && !c->held_head) {
        tt_conn_send(c, msg);
        return;
    }
    tt_outq_item *it = make_item(c, msg);
    if (it)
        hold(c, it);
}

void tt_ws_committed(void *ud)
{
    tt_server *srv = ud;
    tt_conn *c = srv->held;
    srv->held = NULL;
    while (c) {
        tt_conn *next = c->held_next;
        c->in_held_list = 0;
        c->held_next = NULL;
        while (c->held_head) {
            tt_outq_item *it = c->held_head;
            c->held_head = it->next;
            it->next = NULL;
            if (c->out_tail)
                c->out_tail->next = it;
            else
                c->out_head = it;
            c->out_tail = it;
            c->out_bytes += it->frame.len;
        }
        c->held_tail = NULL;
        tt_conn_pump(c);
        c = next;
    }
}

void tt_conn_send(tt_conn *c, json_t *msg)
{
    tt_outq_item *it = make_item(c, msg);
    if (!it)
        return;
    if (c->held_head) {
        hold(c, it); /* keep replies in order behind a held one */
        return;
    }
    if (c->out_tail)
        c->out_tail->next = it;
    else
        c->out_head = it;
    c->out_tail = it;
    c->out_bytes += it->frame.len;
    if (c->out_bytes > (size_t)c->srv->cfg.max_output_bytes && !c->close_code) {
        /* The client sends requests but does not read the replies. */
        c->srv->metrics.dropped_output++;
        tt_log(TT_WARN, "socket dropped: replies not read",
               json_pack("{s:s, s:I}", "user", c->user, "queued_bytes", (json_int_t)c->out_bytes));
        c->failed = 1;
        lws_callback_on_writable(c->wsi);
        return;
    }
    tt_conn_pump(c);
}

void tt_conn_error(tt_conn *c, const char *re, int err, const char *msg)
{
    const char *code = tt_err_wire(err);
    tt_metrics_error(&c->srv->metrics, code);
    json_t *reply = tt_reply_error(re, code, msg ? msg : tt_strerror(err), err == TT_ERATE);
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
    lws_callback_on_writable(c->wsi);
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

void tt_conn_pump(tt_conn *c)
{
    size_t budget = WRITE_BUDGET;
    int more = 0;
    while (!c->failed) {
        if (lws_send_pipe_choked(c->wsi)) {
            more = 1;
            break;
        }
        const tt_frame *f = NULL;
        tt_cursor *from = NULL;
        if (c->out_head)
            f = &c->out_head->frame;
        else if (!c->close_code)
            from = next_event(c, &f);
        if (!f)
            break;
        if (budget < f->len && budget < WRITE_BUDGET) {
            more = 1;
            break;
        }
        int n = lws_write(c->wsi, (unsigned char *)f->buf + f->headroom, f->len, LWS_WRITE_TEXT);
        if (n < 0) {
            c->failed = 1;
            break;
        }
        c->srv->metrics.frames_out++;
        c->srv->metrics.bytes_out += f->len;
        budget -= f->len < budget ? f->len : budget;
        if (from) {
            tt_cursor_advance(from);
        } else {
            tt_outq_item *it = c->out_head;
            c->out_head = it->next;
            if (!c->out_head)
                c->out_tail = NULL;
            c->out_bytes -= it->frame.len;
            tt_frame_release(&it->frame);
            free(it);
        }
    }
    if (more || c->failed || c->close_code)
        lws_callback_on_writable(c->wsi);
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
    tt_cursor_detach(cur);
}

void tt_ws_deliver(tt_cursor *cur, void *ud)
{
    tt_server *srv = ud;
    tt_conn *c = cur->owner;
    if (tt_cursor_lag(cur) > (uint64_t)srv->cfg.max_lag_events && !c->close_code) {
        srv->metrics.dropped_lagging++;
        tt_log(TT_WARN, "socket dropped: lagging",
               json_pack("{s:s, s:s, s:I}", "user", c->user, "session", cur->session->id, "lag",
                         (json_int_t)tt_cursor_lag(cur)));
        tt_conn_close(c, 4008, "lagging: reattach to resume");
        return;
    }
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

static void handle_frame(tt_conn *c)
{
    tt_server *srv = c->srv;
    srv->metrics.frames_in++;
    srv->metrics.bytes_in += c->rx_len + c->rx_dropped;
    if (c->rx_dropped) {
        char msg[96];
        snprintf(msg, sizeof msg, "frame larger than max_frame_bytes (%lld)",
                 (long long)srv->cfg.max_frame_bytes);
        tt_conn_error(c, NULL, TT_ETOOLARGE, msg);
        return;
    }
    if (c->rx_binary) {
        tt_conn_error(c, NULL, TT_EINVAL, "binary frames are not accepted; send JSON text");
        return;
    }
    tt_msg m;
    char err[160];
    int rc = tt_msg_decode(c->rx, c->rx_len, (size_t)srv->cfg.max_frame_bytes, &m, err, sizeof err);
    /* Decoded first (bounded by max_frame_bytes) so the refusal can carry `re`. */
    if (!rate_ok(c)) {
        tt_conn_error(c, m.id, TT_ERATE, "too many messages; slow down");
    } else if (rc) {
        tt_conn_error(c, m.id, rc, err);
    } else if (!c->welcomed && !c->authed && m.type != TT_MSG_HELLO) {
        tt_conn_error(c, m.id, TT_EAUTH, "the first message must be hello");
        tt_conn_close(c, 4001, "unauthenticated");
    } else {
        tt_request_handle(c, &m);
    }
    tt_msg_free(&m);
}

static int receive(tt_conn *c, const char *in, size_t len)
{
    size_t max = (size_t)c->srv->cfg.max_frame_bytes;
    if (lws_is_first_fragment(c->wsi)) {
        c->rx_len = c->rx_dropped = 0;
        c->rx_binary = lws_frame_is_binary(c->wsi);
    }
    if (c->rx_dropped || c->rx_len + len > max) {
        c->rx_dropped += len;
        if (c->rx_dropped + c->rx_len > max * FAR_OVER_FACTOR) {
            c->srv->metrics.errors[5]++; /* too_large */
            send_close(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "frame too large");
            return -1;
        }
    } else {
        if (!c->rx || c->rx_len + len > 0) {
            char *grown = realloc(c->rx, c->rx_len + len + 1);
            if (!grown)
                return -1;
            c->rx = grown;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
    }
    if (lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0) {
        handle_frame(c);
        if (c->rx_len > 65536) {
            free(c->rx);
            c->rx = NULL;
        }
        c->rx_len = c->rx_dropped = 0;
    }
    return 0;
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

static int path_is_ws(struct lws *wsi)
{
    char path[64];
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0)
        return 0;
    return strcmp(path, "/v1/ws") == 0;
}

int tt_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    tt_server *srv = lws_context_user(lws_get_context(wsi));
    if (reason == LWS_CALLBACK_FILTER_NETWORK_CONNECTION) {
        /* Open mode serves loopback clients only. */
        const struct lws_filter_network_conn_args *a = user;
        return srv->auth.n_keys == 0 && !tt_addr_is_loopback(&a->cli_addr);
    }
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
        c->tokens = srv->cfg.rate_burst;
        c->tokens_ms = uv_now(&srv->loop);
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        *slot = c;
        srv->metrics.connections++;
        srv->metrics.connections_total++;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE, HELLO_TIMEOUT_S);
        upgrade_token(c);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return c ? receive(c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || c->failed)
            return -1;
        tt_conn_pump(c);
        if (c->failed)
            return -1;
        if (c->close_code && !c->out_head && !lws_send_pipe_choked(wsi)) {
            send_close(wsi, c->close_code, c->close_reason);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (!c)
            return 0;
        while (c->cursors)
            tt_conn_remove_cursor(c, c->cursors);
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        outq_free(c);
        free(c->rx);
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
    json_decref(c->agents);
    c->agents = cl.agents;
    cl.agents = NULL;
    tt_jwt_claims_clear(&cl);
    c->authed = 1;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    return 0;
}
