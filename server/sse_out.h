/* A session's committed events as a server-sent event stream over HTTP, for
 * the AI SDK's UI message stream (aisdk.c) and AG-UI (agui.c).
 *
 * The stream reads the session's log through a cursor (state/session.h), so
 * only committed events go out, in order, each once. It pulls: an event is
 * taken from the cursor only while less than TT_EVS_PAUSE_BYTES of mapped
 * text waits for the socket, so a slow reader costs one cursor, not memory
 * (older events are read from the store). A mapper turns each event into
 * SSE text and says when the stream is over. */
#ifndef TT_EVS_OUT_H
#define TT_EVS_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "state/session.h"

struct tt_server;
typedef struct tt_evs tt_evs;

#define TT_EVS_PAUSE_BYTES (64 * 1024) /* pull no event while this much waits */
#define TT_EVS_OUT_MAX (16u << 20)     /* mapped text not yet written, at most */

typedef struct tt_evs_map {
    /* Map one committed event (ev: its parsed JSON; NULL for a message.end,
     * whose whole text is never parsed: see type and message_id) onto the
     * stream with tt_evs_emit. Returns 1 when the stream is over after it. */
    int (*event)(tt_evs *st, const char *type, const char *message_id, const json_t *ev,
                 uint64_t seq);
    void (*free_state)(void *state);
    const char *header_name, *header_value; /* an extra response header, or NULL */
} tt_evs_map;

/* Who an HTTP request is: a JWT's subject, an API key's tenant, or open mode. */
typedef struct tt_http_who {
    char user[TT_USER_MAX];
    char tenant[TT_TENANT_MAX];
    json_t *agents; /* the token's allow-list (owned), or NULL for all */
} tt_http_who;

/* Authenticate an Authorization header value (may be ""): 0, or TT_EAUTH. */
int tt_http_who_get(struct tt_server *srv, const char *authorization, tt_http_who *out);
void tt_http_who_clear(tt_http_who *w);
int tt_http_who_may(const tt_http_who *w, const tt_session *s);
int tt_http_agent_allowed(const tt_http_who *w, const char *agent);

struct tt_conn;

/* A stream answering the request on wsi; state is the mapper's (freed with it). */
tt_evs *tt_evs_new(struct tt_server *srv, struct lws *wsi, const tt_evs_map *map, void *state);
void *tt_evs_state(tt_evs *st);
/* The same over a WebSocket (aisdk_ws.c): each emitted object goes out as
 * {"type":"chunk","chatId","sequence","chunk"}; raw text is dropped. */
tt_evs *tt_evs_new_ws(struct tt_server *srv, struct tt_conn *c, const char *chat,
                      const tt_evs_map *map, void *state);
/* WebSocket streams: pull events while the socket's queue is short. Returns
 * 1 when the stream is over (complete or cut: the caller ends and frees it). */
int tt_evs_ws_pull(tt_evs *st, size_t queue_max);
int tt_evs_ws_cut(const tt_evs *st);
const char *tt_evs_chat(const tt_evs *st);
tt_evs **tt_evs_next(tt_evs *st); /* the link of the socket's list of streams */
struct tt_conn *tt_evs_conn(const tt_evs *st);
/* Read s's events after seq `after`; when those are gone (or after > head),
 * the first event is a snapshot. */
int tt_evs_attach(tt_evs *st, tt_session *s, uint64_t after);
/* Queue "id: <id>\n" (id > 0), "data: <obj as JSON>\n\n" (obj consumed). */
void tt_evs_emit(tt_evs *st, uint64_t id, json_t *obj);
void tt_evs_raw(tt_evs *st, const char *text, size_t len);
/* Nothing more after what is queued. */
void tt_evs_finish(tt_evs *st);

/* Write what is ready: 0 keep going, 1 the response is complete, -1 drop. */
int tt_evs_writeable(tt_evs *st);
/* The connection is gone: detach and free (the run goes on). */
void tt_evs_free(tt_evs *st);

/* Registry hooks for a cursor whose owner_kind is 1. */
void tt_evs_deliver(tt_cursor *c);
/* The session is deleted or its changes discarded: the stream is cut. */
void tt_evs_cursor_gone(tt_cursor *c);

#endif
