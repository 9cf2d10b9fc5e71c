/* Requests that wait for their session to be acquired (see park.h). */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/conn.h"
#include "server/park.h"
#include "state/registry.h"

typedef struct tt_parked {
    char *text;
    size_t len;
    struct tt_parked *next;
} tt_parked;

static int needs_session(const tt_msg *m)
{
    return m->session && m->type != TT_MSG_HELLO && m->type != TT_MSG_PING &&
           m->type != TT_MSG_SESSION_OPEN && m->type != TT_MSG_SESSION_LIST;
}

static int park_copy(tt_conn *c, const char *text, size_t len)
{
    if (c->parked_n >= TT_PARK_MAX)
        return TT_EFULL;
    tt_parked *p = calloc(1, sizeof *p);
    if (!p || !(p->text = malloc(len + 1))) {
        free(p);
        return TT_ENOMEM;
    }
    memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->len = len;
    if (c->parked_tail)
        c->parked_tail->next = p;
    else
        c->parked_head = p;
    c->parked_tail = p;
    c->parked_n++;
    return 0;
}

static tt_parked *park_pop(tt_conn *c)
{
    tt_parked *p = c->parked_head;
    if (!p)
        return NULL;
    c->parked_head = p->next;
    if (!c->parked_head)
        c->parked_tail = NULL;
    c->parked_n--;
    return p;
}

static void park_free(tt_parked *p)
{
    if (p)
        free(p->text);
    free(p);
}

static void acquire_failed(tt_conn *c, const tt_msg *m, int err)
{
    if (err == TT_ENOTFOUND || err == TT_EINVAL)
        tt_conn_error(c, m->id, TT_ENOTFOUND, "no such session");
    else
        tt_conn_error_retryable(c, m->id, TT_EFULL,
                                "the session could not be fetched from the database; retry", 1);
}

static void on_ready(int err, const char *sid, void *ud);

/* Ask for m's session; 1 when the frame must wait (it was copied). */
static int start_acquire(tt_conn *c, const tt_msg *m, const char *text, size_t len)
{
    int r = tt_registry_acquire(c->srv->reg, m->session, on_ready, c);
    if (r == 1)
        return 0;
    if (r == 0 && park_copy(c, text, len) == 0) {
        c->parked_waiting = 1;
        lws_rx_flow_control(c->wsi, 0);
        return 1;
    }
    acquire_failed(c, m, r == 0 ? TT_EFULL : r);
    return 1;
}

/* Run the parked frames in order; the first gets the acquire's outcome. */
static void on_ready(int err, const char *sid, void *ud)
{
    tt_conn *c = ud;
    (void)sid;
    c->parked_waiting = 0;
    for (int first = 1; c->parked_head; first = 0) {
        tt_parked *p = park_pop(c);
        tt_msg m;
        char why[160];
        int rc = tt_msg_decode(p->text, p->len, p->len + 1, &m, why, sizeof why);
        if (rc)
            tt_conn_error(c, m.id, rc, why); /* it decoded before: cannot happen */
        else if (first && err)
            acquire_failed(c, &m, err);
        else if (!(needs_session(&m) && start_acquire(c, &m, p->text, p->len)))
            tt_request_handle(c, &m);
        tt_msg_free(&m);
        park_free(p);
        if (c->parked_waiting) { /* a later frame waits for another session */
            return;
        }
    }
    lws_rx_flow_control(c->wsi, 1);
}

int tt_park_maybe(tt_conn *c, const tt_msg *m, const char *text, size_t len)
{
    if (c->parked_head) { /* behind a parked frame, in order */
        if (park_copy(c, text, len) != 0)
            tt_conn_error_retryable(c, m->id, TT_ERATE, "too many requests waiting; slow down", 1);
        return 1;
    }
    if (!tt_registry_replicated(c->srv->reg) || !needs_session(m))
        return 0;
    return start_acquire(c, m, text, len);
}

void tt_park_release(tt_conn *c)
{
    tt_registry_acquire_cancel(c->srv->reg, c);
    while (c->parked_head)
        park_free(park_pop(c));
    c->parked_waiting = 0;
}
