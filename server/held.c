/* Replies held until the change they confirm is committed (see conn.h):
 * held per connection in order, each for a commit pass of the registry,
 * released when that pass is committed (in replicated mode: in
 * PostgreSQL), turned into errors when the change is discarded, dropped
 * when the session moved to another node. */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/conn.h"
#include "server/logging.h"
#include "server/sse_out.h"

void tt_conn_hold(tt_conn *c, tt_outq_item *it)
{
    if (c->held_tail && it->pass < c->held_tail->pass)
        it->pass = c->held_tail->pass;            /* in order behind the replies held already */
    (void)tt_conn_count_output(c, it->frame.len); /* held replies count all the same; a drop is
                                               acted on by the pump */
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

void tt_conn_send_durable(tt_conn *c, const char *sid, const char *re, json_t *msg)
{
    if (c->lingering) {
        json_decref(msg); /* closed: nothing more is written */
        return;
    }
    uint64_t pass = tt_registry_reply_pass(c->srv->reg);
    if (!pass && !c->held_head) {
        tt_conn_send(c, msg);
        return;
    }
    tt_outq_item *it = tt_conn_make_item(c, msg);
    if (!it)
        return;
    it->pass = pass;
    tt_utf8_copy(it->sid, sizeof it->sid, sid);
    tt_utf8_copy(it->re, sizeof it->re, re);
    tt_conn_hold(c, it);
}

/* Why a session's changes were discarded, in words for its clients. */
static const char *discard_message(int err, int *retryable)
{
    *retryable = err != TT_EINTERNAL;
    switch (err) {
    case TT_EFULL:
        return "the store is full: the change was not saved; retry later";
    case TT_EINTERNAL:
        return "the session's new state could not be encoded; its last changes were undone";
    default:
        return "the store failed: the change was not saved; retry later";
    }
}

/* The held reply it becomes an error reply to the same request. */
static void fail_held(tt_conn *c, tt_outq_item *it, int err)
{
    int retryable;
    const char *why = discard_message(err, &retryable);
    tt_frame frame;
    const char *code = tt_err_wire(err);
    if (tt_frame_from_json(tt_reply_error(it->re[0] ? it->re : NULL, code, why, retryable), LWS_PRE,
                           &frame) != 0) {
        c->failed = 1; /* no memory for the error: the client must not see the ok */
        tt_server_want_writable(c->srv, c->wsi);
        return;
    }
    tt_metrics_error(&c->srv->metrics, code);
    c->out_bytes -= it->frame.len;
    tt_frame_release(&it->frame);
    it->frame = frame;
    tt_conn_count_output(c, frame.len);
    it->sid[0] = '\0';
}

void tt_conn_store_error(tt_conn *c, const char *re, int err)
{
    int retryable;
    const char *why = discard_message(err, &retryable);
    tt_conn_error_retryable(c, re, err, why, retryable);
}

void tt_ws_discard(tt_session *s, int err, void *ud)
{
    tt_server *srv = ud;
    for (tt_conn *c = srv->held; c; c = c->held_next) {
        for (tt_outq_item *it = c->held_head; it; it = it->next) {
            if (strcmp(it->sid, s->id) == 0)
                fail_held(c, it, err);
        }
    }
    int retryable;
    const char *why = discard_message(err, &retryable);
    for (tt_conn *c; (c = tt_conn_detach_next(s)) != NULL;) {
        json_t *note = tt_reply_error(NULL, tt_err_wire(err), why, retryable);
        if (note)
            json_object_set_new(note, "session", json_string(s->id));
        tt_conn_send(c, note);
    }
    tt_log(TT_ERROR, "session changes discarded: they could not be stored",
           json_pack("{s:s, s:s, s:s, s:s}", "session", s->id, "tenant", s->tenant, "user", s->user,
                     "error", tt_strerror(err)));
}

/* Move the held replies of c up to pass to its output queue; 1 when some
 * stay held. */
static int release_held(tt_conn *c, uint64_t pass)
{
    while (c->held_head && c->held_head->pass <= pass) {
        tt_outq_item *it = c->held_head;
        c->held_head = it->next;
        it->next = NULL;
        if (c->out_tail)
            c->out_tail->next = it;
        else
            c->out_head = it;
        c->out_tail = it; /* counted in out_bytes when it was held */
    }
    if (!c->held_head)
        c->held_tail = NULL;
    tt_conn_pump(c);
    return c->held_head != NULL;
}

void tt_ws_committed(uint64_t pass, void *ud)
{
    tt_server *srv = ud;
    tt_conn *c = srv->held;
    srv->held = NULL;
    while (c) {
        tt_conn *next = c->held_next;
        c->held_next = NULL;
        c->in_held_list = 0;
        if (release_held(c, pass)) {
            c->in_held_list = 1;
            c->held_next = srv->held;
            srv->held = c;
        }
        c = next;
    }
}

void tt_ws_moved(tt_session *s, void *ud)
{
    tt_server *srv = ud;
    for (tt_conn *c = srv->held; c; c = c->held_next) {
        tt_outq_item **pp = &c->held_head, *last = NULL;
        while (*pp) {
            tt_outq_item *it = *pp;
            if (strcmp(it->sid, s->id) != 0) {
                last = it;
                pp = &it->next;
                continue;
            }
            *pp = it->next; /* the change it confirms was refused: the client re-sends */
            c->out_bytes -= it->frame.len;
            tt_frame_release(&it->frame);
            free(it);
        }
        c->held_tail = last;
    }
    for (tt_conn *c; (c = tt_conn_detach_next(s)) != NULL;)
        tt_conn_close(c, TT_CLOSE_SERVICE_RESTART, "session moved to another node");
    tt_log(TT_INFO, "session moved to another node",
           json_pack("{s:s, s:s}", "session", s->id, "tenant", s->tenant));
}
