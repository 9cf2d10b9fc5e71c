/* The queue of says and the expiry of approvals, around every agent (front.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/front.h"
#include "protocol/errors.h"
#include "protocol/event.h"
#include "protocol/utf8.h"

typedef struct front_rt {
    tt_session *s;
    const tt_agent_env *env;
    /* Made when first needed (most sessions never queue a say or set a
     * deadline): NULL until then. */
    uv_timer_t *queue_timer;  /* the next queued say, on the next loop pass */
    uv_timer_t *expiry_timer; /* the pending approval's deadline */
} front_rt;

/* *slot, made on first use: NULL without memory. */
static uv_timer_t *timer_of(front_rt *rt, uv_timer_t **slot)
{
    if (!*slot)
        *slot = tt_agent_timer_new(rt->env->loop, rt);
    return *slot;
}

static const tt_agent_ops *ops_of(const tt_session *s)
{
    return s->agent_ops;
}

static json_t *queue_of(const tt_session *s)
{
    json_t *q = json_object_get(s->agent_state, "say_queue");
    return json_is_array(q) ? q : NULL;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- the queue ---- */

int tt_front_queues(const tt_session *s)
{
    return strcmp(s->on_busy, "queue") == 0 &&
           (s->state == TT_STATE_RUNNING || json_array_size(queue_of(s)) > 0);
}

int tt_front_enqueue(tt_session *s, const char *text, const char *client_msg_id, json_t **fields,
                     char *err, size_t n)
{
    *fields = NULL;
    json_t *q = queue_of(s), *item;
    size_t i, bytes = strlen(text);
    json_array_foreach(q, i, item) bytes += strlen(str(item, "text") ? str(item, "text") : "");
    if (json_array_size(q) >= TT_AGENT_QUEUE_MAX) {
        snprintf(err, n,
                 "busy: the queue of session %s is full (%d says wait, the most a session "
                 "queues); wait for the running turn or cancel it",
                 s->id, TT_AGENT_QUEUE_MAX);
        return TT_ELIMIT;
    }
    if (bytes > TT_AGENT_QUEUE_BYTES_MAX) {
        snprintf(err, n,
                 "busy: the queue of session %s is full: with this say its texts would hold "
                 "%zu bytes, more than the %u a session queues; wait for the running turn",
                 s->id, bytes, TT_AGENT_QUEUE_BYTES_MAX);
        return TT_ELIMIT;
    }
    if (!q) {
        tt_agent_state_set(s, "say_queue", json_array());
        q = queue_of(s);
    }
    char qid[40];
    tt_new_id("qs", qid, sizeof qid);
    int position = (int)json_array_size(q) + 1;
    json_t *ev = json_pack("{s:s, s:s, s:i}", "queue_id", qid, "text", text, "position", position);
    if (ev && client_msg_id)
        json_object_set_new(ev, "client_msg_id", json_string(client_msg_id));
    uint64_t seq = ev ? tt_session_emit(s, "say.queued", ev) : 0;
    if (!seq) {
        snprintf(err, n, "the say could not be queued");
        return TT_ENOMEM;
    }
    item = json_pack("{s:s, s:s, s:I}", "queue_id", qid, "text", text, "seq", (json_int_t)seq);
    if (item && client_msg_id)
        json_object_set_new(item, "client_msg_id", json_string(client_msg_id));
    json_array_append_new(q, item);
    if (client_msg_id)
        tt_session_remember_msg_id(s, client_msg_id); /* a resend is its duplicate */
    tt_session_touch(s);
    *fields = json_pack("{s:b, s:s, s:I, s:i}", "queued", 1, "queue_id", qid, "queued_seq",
                        (json_int_t)seq, "position", position);
    return 0;
}

void tt_front_clear_queue(tt_session *s)
{
    if (queue_of(s))
        tt_agent_state_set(s, "say_queue", NULL);
}

static int at_rest(const tt_session *s)
{
    return s->state == TT_STATE_IDLE || s->state == TT_STATE_DONE || s->state == TT_STATE_FAILED;
}

/* Take the first queued say, if the session is at rest (idle, done,
 * failed): say.dequeued, then the agent's turn; a say the agent refuses is
 * dropped (say.dequeued taken false) and the next tried. */
static void take_next(tt_session *s)
{
    json_t *q;
    while (at_rest(s) && (q = queue_of(s)) && json_array_size(q) > 0) {
        json_t *item = json_incref(json_array_get(q, 0));
        json_array_remove(q, 0);
        if (json_array_size(q) == 0)
            tt_agent_state_set(s, "say_queue", NULL);
        tt_session_touch(s);
        char err[200] = "";
        tt_session_emit(s, "say.dequeued",
                        json_pack("{s:s, s:b}", "queue_id", str(item, "queue_id"), "taken", 1));
        const front_rt *rt = s->agent_front;
        if (rt && rt->env->turn_begin)
            rt->env->turn_begin(s, rt->env->log_ud);
        int rc = ops_of(s)->say(s, str(item, "text"), str(item, "client_msg_id"), err, sizeof err);
        if (rc)
            tt_session_emit(s, "say.dequeued",
                            json_pack("{s:s, s:b, s:s}", "queue_id", str(item, "queue_id"), "taken",
                                      0, "error", err[0] ? err : tt_strerror(rc)));
        json_decref(item);
        if (rc == 0)
            return;
    }
}

static void on_queue_timer(uv_timer_t *t)
{
    front_rt *rt = t->data;
    if (rt)
        take_next(rt->s);
}

static void on_rest(tt_session *s)
{
    front_rt *rt = s->agent_front;
    if (!rt || json_array_size(queue_of(s)) == 0)
        return;
    /* Without memory for the timer the say stays queued (it is stored) until
     * the session next comes to rest or is loaded. */
    if (timer_of(rt, &rt->queue_timer))
        (void)uv_timer_start(rt->queue_timer, on_queue_timer, 0, 0); /* cannot fail */
}

/* ---- approval expiry ---- */

static json_t *deadline_of(const tt_session *s)
{
    json_t *d = json_object_get(s->agent_state, "approval_deadline");
    return json_is_object(d) ? d : NULL;
}

static const char *pending_approval(const tt_session *s)
{
    return str(s->pending, "approval_id");
}

int tt_front_approval_due(const tt_session *s)
{
    json_t *d = deadline_of(s);
    const char *aid = pending_approval(s);
    return d && aid && str(d, "approval_id") && strcmp(str(d, "approval_id"), aid) == 0 &&
           !json_is_true(json_object_get(d, "expired")) &&
           json_integer_value(json_object_get(d, "at_ms")) <= tt_wall_ms();
}

void tt_front_note_expired(tt_session *s)
{
    json_t *d = deadline_of(s);
    const char *aid = pending_approval(s);
    if (!d || !aid || !str(d, "approval_id") || strcmp(str(d, "approval_id"), aid) != 0 ||
        json_is_true(json_object_get(d, "expired")))
        return; /* not the pending approval's deadline, or said already */
    char at[32];
    tt_rfc3339(json_integer_value(json_object_get(d, "at_ms")), at);
    json_object_set_new(d, "expired", json_true());
    tt_session_touch(s);
    tt_session_emit(
        s, "approval.expired",
        json_pack("{s:s, s:s}", "approval_id", str(d, "approval_id"), "expired_at", at));
}

/* The pending approval is past its deadline: say so, and let the agent
 * withdraw it and tell the run. */
static void expire_now(tt_session *s)
{
    char aid[TT_ID_MAX + 1];
    snprintf(aid, sizeof aid, "%s", pending_approval(s));
    tt_front_note_expired(s);
    if (ops_of(s)->expire)
        ops_of(s)->expire(s, aid);
}

static void on_expiry_timer(uv_timer_t *t);

void tt_front_arm_expiry(tt_session *s)
{
    front_rt *rt = s->agent_front;
    json_t *d = deadline_of(s);
    if (!rt || !d || !pending_approval(s) || json_is_true(json_object_get(d, "expired")))
        return;
    int64_t left = json_integer_value(json_object_get(d, "at_ms")) - tt_wall_ms();
    if (!timer_of(rt, &rt->expiry_timer))
        return; /* no memory: the deadline is still checked when the approval is answered */
    (void)uv_timer_start(rt->expiry_timer, on_expiry_timer, left > 0 ? (uint64_t)left : 0, 0);
}

static void on_expiry_timer(uv_timer_t *t)
{
    front_rt *rt = t->data;
    if (!rt)
        return;
    if (tt_front_approval_due(rt->s))
        expire_now(rt->s);
    else
        tt_front_arm_expiry(rt->s); /* a newer approval's deadline, if any */
}

void tt_front_deadline(tt_session *s, json_t *body, int64_t ttl_ms)
{
    int64_t at = tt_wall_ms() + ttl_ms;
    char ts[32];
    tt_rfc3339(at, ts);
    json_object_set_new(body, "expires_at", json_string(ts));
    tt_agent_state_set(s, "approval_deadline",
                       json_pack("{s:s, s:I, s:b}", "approval_id", str(body, "approval_id"),
                                 "at_ms", (json_int_t)at, "expired", 0));
}

int tt_front_refuse_expired(tt_session *s, const char *approval_id, char *err, size_t n)
{
    json_t *d = deadline_of(s);
    if (!d || !str(d, "approval_id") || strcmp(str(d, "approval_id"), approval_id) != 0)
        return 0;
    if (tt_front_approval_due(s))
        expire_now(s);
    if (!json_is_true(json_object_get(d, "expired")))
        return 0;
    char at[32];
    tt_rfc3339(json_integer_value(json_object_get(d, "at_ms")), at);
    snprintf(err, n,
             "expired: approval %.64s expired at %s, unanswered; the agent was told and did "
             "not act on it",
             approval_id, at);
    return TT_ECONFLICT;
}

/* ---- the runtime ---- */

int tt_front_bind(tt_session *s, const tt_agent_env *env)
{
    front_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return TT_ENOMEM;
    rt->s = s;
    rt->env = env;
    s->agent_front = rt;
    s->on_rest = on_rest;
    if (tt_front_approval_due(s))
        expire_now(s);
    tt_front_arm_expiry(s);
    if (at_rest(s))
        on_rest(s); /* says a restart left queued */
    return 0;
}

void tt_front_release(tt_session *s)
{
    front_rt *rt = s->agent_front;
    if (!rt)
        return;
    tt_agent_timer_close(rt->queue_timer);
    tt_agent_timer_close(rt->expiry_timer);
    free(rt);
    s->agent_front = NULL;
    s->on_rest = NULL;
}
