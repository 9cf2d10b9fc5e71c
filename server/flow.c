/* Back-pressure from sockets to the model: see flow.h. */
#include "server/flow.h"

#include "server/logging.h"

static uint64_t pause_lag(const tt_server *srv)
{
    return tt_registry_pause_lag(srv->reg);
}

static uint64_t resume_lag(const tt_server *srv)
{
    return pause_lag(srv) / 4;
}

/* A WebSocket cursor that still counts: its socket is not closing. */
static int counts(const tt_cursor *cur)
{
    return cur->owner_kind == 0 && !((const tt_conn *)cur->owner)->close_code;
}

/* c holds a paused session back: its hold deadline, unless it has one. The hold counts from
 * now, not from the pause: a socket found behind later (a fast one still
 * taking in the burst that paused the call) gets the whole hold, and its
 * deadline goes whenever it catches up (tt_flow_drained). */
static void arm(tt_conn *c)
{
    if (c->flow_deadline_ms)
        return;
    c->flow_deadline_ms = uv_now(&c->srv->loop) + (uint64_t)c->srv->cfg.backpressure_hold_ms;
    tt_conn_arm_timer(c);
}

static void set_paused(tt_server *srv, tt_session *s, int paused)
{
    s->flow_paused = paused;
    if (paused)
        s->flow_since_ms = uv_now(&srv->loop);
    else
        srv->metrics.flow_pauses++; /* counted as each pause ends */
    tt_agent_pause(s, paused);
}

void tt_flow_delivered(tt_conn *c, tt_cursor *cur)
{
    tt_session *s = cur->session;
    if (c->close_code || tt_cursor_lag(cur) < pause_lag(c->srv))
        return;
    if (!s->flow_paused)
        set_paused(c->srv, s, 1);
    else
        tt_agent_pause(s, 1); /* again: a call started since, or one not yet sending */
    arm(c);
}

/* s is paused: resume it when no counting socket is past the resume lag;
 * else the sockets that hold it back get their hold deadline. */
static void check_resume(tt_server *srv, tt_session *s)
{
    uint64_t low = resume_lag(srv);
    int held = 0;
    for (tt_cursor *cur = s->cursors; cur; cur = cur->s_next) {
        if (counts(cur) && tt_cursor_lag(cur) >= low) {
            arm(cur->owner);
            held = 1;
        }
    }
    if (!held)
        set_paused(srv, s, 0);
}

void tt_flow_drained(tt_conn *c)
{
    uint64_t low = resume_lag(c->srv);
    int holding = 0;
    for (tt_cursor *cur = c->cursors; cur; cur = cur->owner_next) {
        if (cur->session->flow_paused)
            check_resume(c->srv, cur->session);
        if (cur->session->flow_paused && counts(cur) && tt_cursor_lag(cur) >= low)
            holding = 1;
    }
    if (!holding)
        c->flow_deadline_ms = 0; /* caught up: a later hold starts afresh */
}

void tt_flow_cursor_gone(tt_server *srv, tt_session *s)
{
    if (s->flow_paused)
        check_resume(srv, s);
}

int64_t tt_flow_timer_ms(const tt_conn *c)
{
    if (!c->flow_deadline_ms)
        return -1;
    uint64_t now = uv_now(&c->srv->loop);
    return c->flow_deadline_ms > now ? (int64_t)(c->flow_deadline_ms - now) : 0;
}

void tt_flow_timer(tt_conn *c)
{
    if (!c->flow_deadline_ms || tt_flow_timer_ms(c) > 0)
        return;
    c->flow_deadline_ms = 0;
    uint64_t now = uv_now(&c->srv->loop), hold = (uint64_t)c->srv->cfg.backpressure_hold_ms;
    uint64_t low = resume_lag(c->srv);
    tt_cursor *culprit = NULL;
    for (tt_cursor *cur = c->cursors; cur && !c->close_code; cur = cur->owner_next) {
        tt_session *s = cur->session;
        if (!s->flow_paused || tt_cursor_lag(cur) < low)
            continue;
        if (now - s->flow_since_ms < hold) { /* a later pause: wait for its own deadline */
            arm(c);
            continue;
        }
        culprit = cur;
        break;
    }
    if (!culprit)
        return;
    tt_session *s = culprit->session;
    c->srv->metrics.dropped_lagging++;
    tt_log(TT_WARN, "socket dropped: held a paused model call back",
           json_pack("{s:s, s:s, s:I, s:I}", "user", c->user, "session", s->id, "lag",
                     (json_int_t)tt_cursor_lag(culprit), "hold_ms", (json_int_t)hold));
    tt_conn_close(c, 4008, "lagging: reattach to resume");
    /* The others go on; each socket this one dropped holds nothing back now. */
    for (tt_cursor *cur = c->cursors; cur; cur = cur->owner_next)
        tt_flow_cursor_gone(c->srv, cur->session);
}
