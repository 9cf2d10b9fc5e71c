/* Committed session events as a server-sent event stream (see sse_out.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "server/logging.h"
#include "server/aisdk_ws.h"
#include "server/conn.h"
#include "server/server.h"
#include "server/sse_out.h"

#define WRITE_CHUNK (16 * 1024)

struct tt_evs {
    tt_server *srv;
    struct lws *wsi;
    const tt_evs_map *map;
    void *state;
    tt_cursor *cur;
    tt_buf out;     /* LWS_PRE headroom; unsent bytes from out_pos */
    size_t out_pos; /* bytes of out already written */
    int headers_sent;
    int complete;  /* nothing more will be queued */
    int failed;    /* cut: the connection is dropped */
    tt_conn *conn; /* a WebSocket stream's socket, else NULL */
    tt_evs *next;  /* the socket's next stream */
    char chat[TT_SESSION_ID_MAX + 1];
};

int tt_http_who_get(tt_server *srv, const char *authorization, tt_http_who *out)
{
    memset(out, 0, sizeof *out);
    const char *bearer = strncasecmp(authorization, "Bearer ", 7) == 0 ? authorization + 7 : NULL;
    if (srv->auth.n_keys == 0 && !bearer) {
        snprintf(out->user, sizeof out->user, "local");
        snprintf(out->tenant, sizeof out->tenant, "local");
        return 0;
    }
    if (!bearer)
        return TT_EAUTH;
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    if (tt_jwt_verify(srv->auth.secret, srv->auth.secret_len, bearer, tt_wall_ms() / 1000, &cl) ==
        0) {
        snprintf(out->user, sizeof out->user, "%s", cl.sub);
        snprintf(out->tenant, sizeof out->tenant, "%s", cl.tenant[0] ? cl.tenant : "default");
        out->agents = cl.agents;
        cl.agents = NULL;
        tt_jwt_claims_clear(&cl);
        return 0;
    }
    tt_jwt_claims_clear(&cl);
    if (srv->auth.n_keys == 0) {
        snprintf(out->user, sizeof out->user, "local");
        snprintf(out->tenant, sizeof out->tenant, "local");
        return 0;
    }
    /* An API key: its holder acts as the user "api" of the key's tenant. */
    if (tt_auth_check_key(&srv->auth, bearer, out->tenant, sizeof out->tenant) != 0)
        return TT_EAUTH;
    snprintf(out->user, sizeof out->user, "api");
    return 0;
}

void tt_http_who_clear(tt_http_who *w)
{
    json_decref(w->agents);
    w->agents = NULL;
}

int tt_http_agent_allowed(const tt_http_who *w, const char *agent)
{
    if (!w->agents)
        return 1;
    size_t i;
    json_t *v;
    json_array_foreach(w->agents, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), agent) == 0)
            return 1;
    }
    return 0;
}

int tt_http_who_may(const tt_http_who *w, const tt_session *s)
{
    return strcmp(s->user, w->user) == 0 && strcmp(s->tenant, w->tenant) == 0 &&
           tt_http_agent_allowed(w, s->agent);
}

tt_evs *tt_evs_new(tt_server *srv, struct lws *wsi, const tt_evs_map *map, void *state)
{
    tt_evs *st = calloc(1, sizeof *st);
    if (!st) {
        if (map->free_state)
            map->free_state(state);
        return NULL;
    }
    *st = (tt_evs){.srv = srv, .wsi = wsi, .map = map, .state = state};
    tt_buf_init_headroom(&st->out, TT_EVS_OUT_MAX, LWS_PRE);
    return st;
}

tt_evs *tt_evs_new_ws(tt_server *srv, tt_conn *c, const char *chat, const tt_evs_map *map,
                      void *state)
{
    tt_evs *st = tt_evs_new(srv, c->wsi, map, state);
    if (st) {
        st->conn = c;
        snprintf(st->chat, sizeof st->chat, "%s", chat);
        tt_conn_send(c, json_pack("{s:s, s:s}", "type", "start", "chatId", chat));
    }
    return st;
}

tt_evs **tt_evs_next(tt_evs *st)
{
    return &st->next;
}

const char *tt_evs_chat(const tt_evs *st)
{
    return st->chat;
}

tt_conn *tt_evs_conn(const tt_evs *st)
{
    return st->conn;
}

int tt_evs_ws_cut(const tt_evs *st)
{
    return st->failed;
}

void *tt_evs_state(tt_evs *st)
{
    return st->state;
}

int tt_evs_attach(tt_evs *st, tt_session *s, uint64_t after)
{
    int recovered;
    int rc = tt_cursor_attach(s, st, after, &recovered, &st->cur);
    if (rc == 0)
        st->cur->owner_kind = 1;
    tt_server_want_writable(st->srv, st->wsi);
    return rc;
}

void tt_evs_raw(tt_evs *st, const char *text, size_t len)
{
    if (st->conn)
        return; /* WebSocket frames carry their own boundaries */
    if (st->out_pos > 0 && st->out_pos * 2 >= st->out.len) {
        tt_buf_consume(&st->out, st->out_pos);
        st->out_pos = 0;
    }
    if (tt_buf_append(&st->out, text, len) != 0)
        st->failed = 1; /* over TT_EVS_OUT_MAX: cut rather than grow */
    tt_server_want_writable(st->srv, st->wsi);
}

void tt_evs_emit(tt_evs *st, uint64_t id, json_t *obj)
{
    if (st->conn) {
        tt_conn_send_stream(st->conn,
                            json_pack("{s:s, s:s, s:I, s:o}", "type", "chunk", "chatId", st->chat,
                                      "sequence", (json_int_t)id, "chunk", obj));
        return;
    }
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        st->failed = 1;
        return;
    }
    char head[32];
    int n = id ? snprintf(head, sizeof head, "id: %llu\n", (unsigned long long)id) : 0;
    tt_evs_raw(st, head, (size_t)n);
    tt_evs_raw(st, "data: ", 6);
    tt_evs_raw(st, text, strlen(text));
    tt_evs_raw(st, "\n\n", 2);
    free(text);
}

void tt_evs_finish(tt_evs *st)
{
    st->complete = 1;
    tt_server_want_writable(st->srv, st->wsi);
}

static size_t pending(const tt_evs *st)
{
    return st->out.len - st->out_pos;
}

/* "message_id":"..." of a message.end frame, read without parsing its text
 * (which may be megabytes): the body's first key (protocol/event.h). */
static void end_message_id(const char *text, char *id, size_t n)
{
    id[0] = '\0';
    const char *p = strstr(text, "\"message_id\":\"");
    if (!p)
        return;
    p += 14;
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < n) {
        id[i] = p[i];
        i++;
    }
    id[i] = '\0';
}

/* One event from the cursor through the mapper; 0 when none is ready. */
static int pull_one(tt_evs *st)
{
    int err = 0;
    const tt_frame *f = tt_cursor_peek(st->cur, &err);
    if (err) {
        st->failed = 1;
        return 0;
    }
    if (!f)
        return 0;
    const char *text = tt_frame_text(f);
    static const char END[] = "{\"type\":\"message.end\"";
    char mid[TT_MESSAGE_ID_MAX + 8] = "";
    json_t *ev = NULL;
    const char *type = "message.end";
    if (strncmp(text, END, sizeof END - 1) == 0) {
        end_message_id(text, mid, sizeof mid);
    } else {
        ev = json_loadb(text, f->len, 0, NULL);
        type = json_string_value(json_object_get(ev, "type"));
        const char *m = json_string_value(json_object_get(ev, "message_id"));
        if (m)
            snprintf(mid, sizeof mid, "%s", m);
    }
    json_t *seqv = ev ? json_object_get(ev, "seq") : NULL;
    uint64_t seq = seqv ? (uint64_t)json_integer_value(seqv) : st->cur->next;
    int over = type ? st->map->event(st, type, mid, ev, seq) : 0;
    json_decref(ev);
    tt_cursor_advance(st->cur);
    if (over)
        st->complete = 1;
    return 1;
}

static int write_headers(tt_evs *st)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    struct lws *wsi = st->wsi;
    /* Chunked, so a cut stream is an error to the client, never a finished one
     * (without a length lws would frame it by closing the connection). */
    static const char TYPE[] = "text/event-stream", CHUNKED[] = "chunked";
    if (lws_add_http_header_status(wsi, 200, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)TYPE,
                                     sizeof TYPE - 1, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING,
                                     (const unsigned char *)CHUNKED, sizeof CHUNKED - 1, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-cache", 8, &p, end))
        return -1;
    if (st->map->header_name &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)st->map->header_name,
                                    (const unsigned char *)st->map->header_value,
                                    (int)strlen(st->map->header_value), &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    st->headers_sent = 1;
    return 0;
}

/* n bytes of out as one HTTP/1.1 chunk, and the last chunk after them when last. */
static int write_chunk(tt_evs *st, size_t n, int last)
{
    static unsigned char frame[LWS_PRE + 16 + WRITE_CHUNK + 2 + 5];
    unsigned char *p = frame + LWS_PRE;
    size_t len = 0;
    if (n > 0) {
        len = (size_t)snprintf((char *)p, 16, "%zx\r\n", n);
        memcpy(p + len, tt_buf_data(&st->out) + st->out_pos, n);
        memcpy(p + len + n, "\r\n", 2);
        len += n + 2;
    }
    if (last) {
        memcpy(p + len, "0\r\n\r\n", 5);
        len += 5;
    }
    if (lws_write(st->wsi, p, len, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
        return -1;
    st->out_pos += n;
    return 0;
}

int tt_evs_writeable(tt_evs *st)
{
    if (!st->headers_sent) {
        if (write_headers(st) != 0)
            return -1;
        tt_server_want_writable(st->srv, st->wsi);
        return 0;
    }
    while (!st->failed && !st->complete && st->cur && pending(st) < TT_EVS_PAUSE_BYTES &&
           pull_one(st))
        ;
    if (st->failed)
        return -1; /* a stream cut short must not look finished */
    size_t left = pending(st);
    size_t n = left > WRITE_CHUNK ? WRITE_CHUNK : left;
    int last = st->complete && n == left;
    if ((n > 0 || last) && write_chunk(st, n, last) != 0)
        return -1;
    if (last)
        return 1;
    if (pending(st) > 0 || (st->cur && tt_cursor_lag(st->cur) > 0))
        tt_server_want_writable(st->srv, st->wsi);
    return 0;
}

void tt_evs_free(tt_evs *st)
{
    if (!st)
        return;
    if (st->cur)
        tt_cursor_detach(st->cur);
    if (st->map->free_state)
        st->map->free_state(st->state);
    tt_buf_free(&st->out);
    free(st);
}

int tt_evs_ws_pull(tt_evs *st, size_t queue_max)
{
    while (!st->failed && !st->complete && st->cur && st->conn->out_bytes < queue_max &&
           pull_one(st))
        ;
    return st->failed || st->complete;
}

void tt_evs_deliver(tt_cursor *c)
{
    tt_evs *st = c->owner;
    if (st->conn) {
        tt_aisdk_ws_drain(st->conn);
        return;
    }
    tt_server_want_writable(st->srv, st->wsi);
}

void tt_evs_cursor_gone(tt_cursor *c)
{
    tt_evs *st = c->owner;
    tt_cursor_detach(c);
    st->cur = NULL;
    st->failed = 1;
    if (st->conn)
        tt_aisdk_ws_drain(st->conn);
    else
        tt_server_want_writable(st->srv, st->wsi);
}
