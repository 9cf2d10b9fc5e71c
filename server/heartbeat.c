/* WebSocket heartbeats and token expiry from one timer (heartbeat.h). */
#include "server/heartbeat.h"

#include "protocol/errors.h"
#include "server/conn.h"

/* The walk runs four times per interval, at least every 250 ms and at most
 * every second: a silent socket is pinged within heartbeat_s + 1/4 interval
 * and dropped within 3 * heartbeat_s + 1/4 interval (capped at 1 s). */
#define SWEEPS_PER_INTERVAL 4
#define SWEEP_MIN_MS 250
#define SWEEP_MAX_MS 1000

/* Close now, from outside lws's service: an asynchronous kill would wait
 * for lws's own timer, which is not re-armed from here. The socket leaves
 * srv->conns at once (ws.c, LWS_CALLBACK_CLOSED). */
static void drop(tt_conn *c)
{
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

/* The ping carries one byte: lws 4.1 does not report an empty pong. */
static void ping(tt_conn *c)
{
    unsigned char buf[LWS_PRE + 1] = {[LWS_PRE] = 'h'};
    if (lws_send_pipe_choked(c->wsi))
        return; /* output in flight: the next walk tries again; silence still counts */
    if (lws_write(c->wsi, buf + LWS_PRE, 1, LWS_WRITE_PING) < 0)
        drop(c);
}

static void sweep_one(tt_conn *c, uint64_t now, uint64_t interval, int64_t now_s)
{
    if (c->lingering || c->failed)
        return; /* closing already, with limits of its own (ws.c) */
    if (c->token_exp && now_s >= c->token_exp) {
        tt_conn_token_expired(c);
        return;
    }
    uint64_t silent = now - c->hb_rx_ms;
    if (silent >= 3 * interval) {
        c->srv->metrics.closed_heartbeat++;
        drop(c);
    } else if (silent >= interval && now - c->hb_ping_ms >= interval) {
        c->hb_ping_ms = now;
        ping(c);
    }
}

static void on_sweep(uv_timer_t *t)
{
    tt_server *srv = t->data;
    uint64_t now = uv_now(&srv->loop);
    uint64_t interval = (uint64_t)srv->cfg.heartbeat_s * 1000;
    int64_t now_s = tt_wall_ms() / 1000;
    for (tt_conn *c = srv->conns, *next; c; c = next) {
        next = c->next; /* c may be closed and freed */
        sweep_one(c, now, interval, now_s);
    }
}

int tt_heartbeat_start(tt_server *srv)
{
    uint64_t every = (uint64_t)srv->cfg.heartbeat_s * 1000 / SWEEPS_PER_INTERVAL;
    if (every < SWEEP_MIN_MS)
        every = SWEEP_MIN_MS;
    if (every > SWEEP_MAX_MS)
        every = SWEEP_MAX_MS;
    (void)uv_timer_init(&srv->loop, &srv->heartbeat); /* only fills the struct */
    srv->heartbeat.data = srv;
    srv->heartbeat_open = 1;
    return uv_timer_start(&srv->heartbeat, on_sweep, every, every) ? TT_EINTERNAL : 0;
}

void tt_heartbeat_stop(tt_server *srv)
{
    if (!srv->heartbeat_open)
        return;
    uv_close((uv_handle_t *)&srv->heartbeat, NULL);
    srv->heartbeat_open = 0;
}

void tt_heartbeat_note(struct lws *wsi, enum lws_callback_reasons reason, void *user)
{
    if (reason != LWS_CALLBACK_ESTABLISHED && reason != LWS_CALLBACK_RECEIVE &&
        reason != LWS_CALLBACK_RECEIVE_PONG)
        return;
    tt_conn *c = user ? *(tt_conn **)user : NULL;
    if (c)
        c->hb_rx_ms = uv_now(&c->srv->loop);
    (void)wsi;
}
