/* The AI SDK's chat transport over one WebSocket (see aisdk_ws.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent.h"
#include "protocol/errors.h"
#include "server/aisdk.h"
#include "server/aisdk_ws.h"
#include "server/conn.h"

#define QUEUE_MAX (64 * 1024) /* pull no event while this much waits on the socket */

static void frame(tt_conn *c, const char *type, const char *chat, const char *message)
{
    tt_conn_send(c,
                 json_pack("{s:s, s:s, s:s*}", "type", type, "chatId", chat, "message", message));
}

static void who_of(const tt_conn *c, tt_http_who *w)
{
    memset(w, 0, sizeof *w);
    snprintf(w->user, sizeof w->user, "%s", c->user);
    snprintf(w->tenant, sizeof w->tenant, "%s", c->tenant);
    w->agents = c->agents; /* borrowed: never cleared here */
}

static tt_evs **find(tt_conn *c, const char *chat, size_t *count)
{
    tt_evs **pp = &c->aisdk_streams;
    tt_evs **hit = NULL;
    *count = 0;
    for (; *pp; pp = tt_evs_next(*pp)) {
        (*count)++;
        if (!hit && strcmp(tt_evs_chat(*pp), chat) == 0)
            hit = pp;
    }
    return hit;
}

/* Unlink and free the stream at *pp. */
static void drop(tt_evs **pp)
{
    tt_evs *st = *pp;
    *pp = *tt_evs_next(st);
    tt_evs_free(st);
}

/* A stream already open for the chat on this socket goes (a new send or
 * resume replaces it); 0, or the socket has too many chats streaming. */
static int make_room(tt_conn *c, const char *chat)
{
    size_t count;
    tt_evs **old = find(c, chat, &count);
    if (old) {
        drop(old);
        return 0;
    }
    return count >= TT_AISDK_WS_STREAMS ? TT_ELIMIT : 0;
}

static void add(tt_conn *c, tt_evs *st)
{
    *tt_evs_next(st) = c->aisdk_streams;
    c->aisdk_streams = st;
    tt_aisdk_ws_drain(c);
}

static void on_send(tt_conn *c, const char *chat, json_t *msg)
{
    char why[256] = "";
    tt_http_who w;
    who_of(c, &w);
    json_t *body = json_deep_copy(msg);
    json_object_set_new(body, "id", json_string(chat));
    json_object_del(body, "type");
    json_object_del(body, "chatId");
    tt_evs *st = NULL;
    int status =
        make_room(c, chat) ? 429 : tt_aisdk_ws_send(c->srv, c, &w, body, &st, why, sizeof why);
    json_decref(body);
    if (status) {
        frame(c, "error", chat, why[0] ? why : "too many chats streaming on this socket");
        return;
    }
    add(c, st);
}

static void on_resume(tt_conn *c, const char *chat, json_t *msg)
{
    char why[256] = "";
    tt_http_who w;
    who_of(c, &w);
    json_t *last = json_object_get(msg, "lastSequence");
    if (last && (!json_is_integer(last) || json_integer_value(last) < 0)) {
        frame(c, "error", chat, "lastSequence must be a seq (an integer >= 0)");
        return;
    }
    tt_evs *st = NULL;
    int status = make_room(c, chat) ? 429
                                    : tt_aisdk_resume(c->srv, c->wsi, c, &w, chat,
                                                      (uint64_t)json_integer_value(last),
                                                      last != NULL, &st, why, sizeof why);
    if (status == 204)
        frame(c, "no-active", chat, NULL);
    else if (status)
        frame(c, "error", chat, why[0] ? why : "too many chats streaming on this socket");
    else
        add(c, st);
}

/* An explicit stop: the run is cancelled; its stream carries the end. */
static void on_abort(tt_conn *c, const char *chat)
{
    tt_session *s;
    tt_http_who w;
    who_of(c, &w);
    if (tt_registry_get(c->srv->reg, chat, &s) != 0 || !tt_http_who_may(&w, s)) {
        frame(c, "error", chat, "no such chat");
        return;
    }
    int cancelled;
    if (tt_agent_cancel(s, &cancelled) != 0)
        frame(c, "error", chat, "the run could not be cancelled");
}

void tt_aisdk_ws_frame(tt_conn *c, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *chat = json_string_value(json_object_get(msg, "chatId"));
    if (!type || !chat || !tt_aisdk_id_ok(chat)) {
        frame(c, "error", chat && tt_aisdk_id_ok(chat) ? chat : "",
              "a frame is {type: send|resume|abort, chatId: 1-64 of A-Za-z0-9-_}");
    } else if (strcmp(type, "send") == 0) {
        on_send(c, chat, msg);
    } else if (strcmp(type, "resume") == 0) {
        on_resume(c, chat, msg);
    } else if (strcmp(type, "abort") == 0) {
        on_abort(c, chat);
    } else {
        frame(c, "error", chat, "type must be send, resume or abort");
    }
    json_decref(msg);
}

void tt_aisdk_ws_refuse(tt_conn *c, const char *message)
{
    frame(c, "error", "", message);
}

void tt_aisdk_ws_drain(tt_conn *c)
{
    if (c->aisdk_draining)
        return; /* tt_conn_send writes, and writing drains: no re-entry */
    c->aisdk_draining = 1;
    tt_evs **pp = &c->aisdk_streams;
    while (*pp) {
        tt_evs *st = *pp;
        if (!tt_evs_ws_pull(st, QUEUE_MAX)) {
            pp = tt_evs_next(st);
            continue;
        }
        if (tt_evs_ws_cut(st))
            frame(c, "error", tt_evs_chat(st), "the chat was deleted or could not be stored");
        else
            frame(c, "end", tt_evs_chat(st), NULL);
        drop(pp);
    }
    c->aisdk_draining = 0;
}

void tt_aisdk_ws_closed(tt_conn *c)
{
    c->aisdk_draining = 1; /* nothing more is sent */
    while (c->aisdk_streams)
        drop(&c->aisdk_streams);
}
