/* server/ws.c and server/requests.c: a WebSocket connection driven through
 * tt_ws_callback exactly as lws drives it (established, receive, writeable,
 * closed), on a real registry, store and echo agent, with the lws calls
 * replaced at link time (-Wl,--wrap) by a socket that records the frames
 * written to it. What needs a real socket (fragmented frames, the close
 * handshake, a choked pipe that drains) is in tests/integration/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "server/conn.h"
#include "server/server.h"
#include "loop_fixture.h"

/* ---- the fake socket behind the wrapped lws calls -------------------------- */

typedef struct sock {
    tt_conn *conn;    /* lws's per-socket user data: our slot */
    json_t *frames;   /* every text frame written, decoded */
    int close_code;   /* the close frame written, 0: none */
    int binary;       /* the next frame received is binary */
    int choked;       /* lws_send_pipe_choked() says so */
    int choke_checks; /* lws_send_pipe_choked() calls (each a poll() in lws) */
    int fd_asked;     /* lws_get_socket_fd() was called: the write side is being shut */
    /* Where lws is in the message being received (receive_pieces sets them;
     * zero: a whole message in one piece). */
    int not_first;    /* lws_is_first_fragment() is 0 */
    int not_final;    /* the frame has no FIN */
    size_t remaining; /* lws_remaining_packet_payload(): bytes of the frame still to come */
} sock;

static tt_server *the_server;

struct lws_context *__wrap_lws_get_context(const struct lws *wsi)
{
    return (struct lws_context *)the_server;
}

void *__wrap_lws_context_user(struct lws_context *ctx)
{
    return ctx;
}

int __wrap_lws_write(struct lws *wsi, unsigned char *buf, size_t len, enum lws_write_protocol proto)
{
    sock *s = (sock *)wsi;
    if (proto == (enum lws_write_protocol)4) {
        s->close_code = buf[0] << 8 | buf[1];
        return (int)len;
    }
    if (proto == LWS_WRITE_TEXT) { /* one frame: lws frames it */
        json_t *msg = json_loadb((const char *)buf, len, 0, NULL);
        assert_non_null(msg);
        json_array_append_new(s->frames, msg);
        return (int)len;
    }
    assert_int_equal(proto, LWS_WRITE_HTTP); /* frames ws.c framed itself, sent as they are */
    for (size_t at = 0; at < len;) {
        assert_true(at + 2 <= len);
        assert_int_equal(buf[at], 0x81); /* FIN, text */
        size_t n = buf[at + 1] & 0x7f, head = 2;
        if (n == 126) {
            n = (size_t)buf[at + 2] << 8 | buf[at + 3];
            head = 4;
        } else if (n == 127) {
            n = 0;
            for (int b = 0; b < 8; b++)
                n = n << 8 | buf[at + 2 + b];
            head = 10;
        }
        assert_true(at + head + n <= len);
        json_t *msg = json_loadb((const char *)buf + at + head, n, 0, NULL);
        assert_non_null(msg);
        json_array_append_new(s->frames, msg);
        at += head + n;
    }
    return (int)len;
}

/* A fake socket has no protocol: ws.c then batches at lws's default 4096. */
const struct lws_protocols *__wrap_lws_get_protocol(struct lws *wsi)
{
    return NULL;
}

int __wrap_lws_send_pipe_choked(struct lws *wsi)
{
    ((sock *)wsi)->choke_checks++;
    return ((sock *)wsi)->choked;
}

int __wrap_lws_callback_on_writable(struct lws *wsi)
{
    return 1;
}

void __wrap_lws_set_timeout(struct lws *wsi, enum pending_timeout reason, int secs)
{
}

void __wrap_lws_set_timer_usecs(struct lws *wsi, lws_usec_t us)
{
}

int __wrap_lws_hdr_copy(struct lws *wsi, char *dst, int len, enum lws_token_indexes h)
{
    return -1;
}

const char *__wrap_lws_get_urlarg_by_name(struct lws *wsi, const char *name, char *buf, int len)
{
    return NULL;
}

int __wrap_lws_is_first_fragment(struct lws *wsi)
{
    return !((sock *)wsi)->not_first;
}

/* As lws: the frame has FIN and none of its payload is still to come. */
int __wrap_lws_is_final_fragment(struct lws *wsi)
{
    return !((sock *)wsi)->not_final && ((sock *)wsi)->remaining == 0;
}

int __wrap_lws_frame_is_binary(struct lws *wsi)
{
    return ((sock *)wsi)->binary;
}

size_t __wrap_lws_remaining_packet_payload(struct lws *wsi)
{
    return ((sock *)wsi)->remaining;
}

lws_sockfd_type __wrap_lws_get_socket_fd(struct lws *wsi)
{
    ((sock *)wsi)->fd_asked = 1;
    return -1; /* no real socket to shut */
}

/* The sock is no real wsi: lws would read its peer from garbage. */
const char *__wrap_lws_get_peer_simple(struct lws *wsi, char *name, size_t namelen)
{
    (void)wsi;
    snprintf(name, namelen, "127.0.0.1");
    return name;
}

/* ---- the server around it -------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    tt_server srv;
    sock socks[2];
} fixture;

static int bind_hook(tt_session *s, int resumed, void *ud)
{
    return tt_agent_bind(s, &((tt_server *)ud)->agent_env, resumed);
}

static void unbind_hook(tt_session *s, void *ud)
{
    tt_agent_unbind(s);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    tt_server *srv = &f->srv;
    the_server = srv;
    char *argv[] = {"tether", NULL};
    char *envp[] = {NULL};
    char err[256];
    int exit_now = 0;
    assert_int_equal(tt_config_load(&srv->cfg, 1, argv, envp, &exit_now, err, sizeof err), 0);
    loop_fixture_mkdir(f->dir, sizeof f->dir, "tt_ws");
    assert_int_equal(uv_loop_init(&srv->loop), 0);
    tt_store_options so = {.path = f->dir, .sync = TT_SYNC_NONE};
    assert_int_equal(tt_store_open(&so, &srv->store), 0);
    tt_registry_options ro = {
        .headroom = LWS_PRE, .memory_events = 64, .max_lag_events = 100000, .transcript_max = 100};
    tt_registry_hooks hooks = {.ud = srv,
                               .bind = bind_hook,
                               .unbind = unbind_hook,
                               .deliver = tt_ws_deliver,
                               .committed = tt_ws_committed,
                               .discard = tt_ws_discard};
    assert_int_equal(tt_registry_new(&srv->loop, srv->store, &ro, &hooks, &srv->reg), 0);
    srv->agent_env.loop = &srv->loop;
    srv->agent_env.reg = srv->reg;
    srv->agent_env.open_mode = 1;
    srv->agent_env.echo_delay_ms = 1;
    srv->agent_env.key_tenants = json_object();
    for (int i = 0; i < 2; i++)
        f->socks[i].frames = json_array();
    *state = f;
    return 0;
}

static void hang_up(sock *s)
{
    if (s->conn)
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_CLOSED, &s->conn, NULL, 0);
}

static int teardown(void **state)
{
    fixture *f = *state;
    tt_server *srv = &f->srv;
    for (int i = 0; i < 2; i++) {
        hang_up(&f->socks[i]);
        json_decref(f->socks[i].frames);
    }
    tt_registry_close(srv->reg);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    tt_store_close(srv->store);
    json_decref(srv->agent_env.key_tenants);
    tt_config_free(&srv->cfg);
    loop_fixture_end(&srv->loop, f->dir);
    free(f);
    return 0;
}

static void connect_sock(sock *s)
{
    assert_int_equal(tt_ws_callback((struct lws *)s, LWS_CALLBACK_ESTABLISHED, &s->conn, NULL, 0),
                     0);
    assert_non_null(s->conn);
}

/* One whole frame from the client; returns what the callback returned. */
static int receive(sock *s, const char *text)
{
    return tt_ws_callback((struct lws *)s, LWS_CALLBACK_RECEIVE, &s->conn, (void *)text,
                          strlen(text));
}

/* A message as lws hands it over: cut into frames (a text frame, then
 * continuations; cuts[i] is where frame i+1 starts, n_cuts of them), each
 * frame in pieces of at most TT_WS_RX_BUFFER bytes. Returns the first
 * non-zero callback value, or 0. */
static int receive_pieces(sock *s, const char *text, size_t len, const size_t *cuts, size_t n_cuts)
{
    for (size_t fr = 0, at = 0; fr <= n_cuts; fr++) {
        size_t end = fr < n_cuts ? cuts[fr] : len;
        do {
            size_t n = end - at < TT_WS_RX_BUFFER ? end - at : TT_WS_RX_BUFFER;
            s->not_final = fr < n_cuts;
            s->remaining = end - at - n;
            int rc = tt_ws_callback((struct lws *)s, LWS_CALLBACK_RECEIVE, &s->conn,
                                    (void *)(text + at), n);
            s->not_first = 1;
            at += n;
            if (rc)
                return rc;
        } while (at < end);
    }
    s->not_first = s->not_final = 0;
    s->remaining = 0;
    return 0;
}

/* A ping with id, padded with spaces to len bytes (malloc'd). */
static char *padded_ping(const char *id, size_t len)
{
    char *text = malloc(len + 1);
    assert_non_null(text);
    int n = snprintf(text, len + 1, "{\"type\":\"ping\",\"id\":\"%s\"}", id);
    memset(text + n, ' ', len - (size_t)n);
    text[len] = '\0';
    return text;
}

/* Commit what is pending, so held replies and events go out. */
static void commit(fixture *f)
{
    assert_int_equal(tt_registry_flush(f->srv.reg), 0);
    uv_run(&f->srv.loop, UV_RUN_NOWAIT);
}

static json_t *last_frame(const sock *s)
{
    size_t n = json_array_size(s->frames);
    assert_true(n > 0);
    return json_array_get(s->frames, n - 1);
}

/* The reply with re == id, or NULL. */
static json_t *reply_to(const sock *s, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(s->frames, i, m)
    {
        const char *re = json_string_value(json_object_get(m, "re"));
        if (re && strcmp(re, id) == 0)
            return m;
    }
    return NULL;
}

static const char *error_code(const json_t *m)
{
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "type")), "error");
    return json_string_value(json_object_get(m, "code"));
}

static void welcome(sock *s)
{
    connect_sock(s);
    receive(s, "{\"type\":\"hello\",\"id\":\"h\"}");
    json_t *w = reply_to(s, "h");
    assert_non_null(w);
    assert_string_equal(json_string_value(json_object_get(w, "type")), "welcome");
}

/* Opens an echo session on s; returns its id (static buffer). */
static const char *open_echo(fixture *f, sock *s)
{
    static char sid[TT_SESSION_ID_MAX + 1];
    receive(s, "{\"type\":\"session.open\",\"id\":\"o\",\"agent\":\"echo\"}");
    commit(f);
    json_t *ok = reply_to(s, "o");
    assert_non_null(ok);
    assert_string_equal(json_string_value(json_object_get(ok, "type")), "ok");
    snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(ok, "session")));
    assert_true(sid[0] != '\0');
    return sid;
}

static void test_ws_first_message_must_be_hello(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    connect_sock(s);
    receive(s, "{\"type\":\"session.list\",\"id\":\"l\"}");
    assert_string_equal(error_code(reply_to(s, "l")), "unauthenticated");
    assert_int_equal(s->conn->close_code, 4001);
    /* The close goes out once the replies are written; then the socket
     * lingers: its write side shut, the client's input read and dropped. */
    assert_int_equal(
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_SERVER_WRITEABLE, &s->conn, NULL, 0), 0);
    assert_int_equal(s->close_code, 4001);
    assert_true(s->conn->lingering);
    assert_true(s->fd_asked);
}

/* After the close frame nothing is parsed or answered; past 16 MiB of input
 * (1 MiB before hello) the socket is closed at once. */
static void test_ws_after_the_close_frame_input_is_dropped_up_to_a_bound(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    size_t replies = json_array_size(s->frames);
    char *chunk = malloc(9 << 20);
    assert_non_null(chunk);
    memset(chunk, 'x', 9 << 20);
    /* More than 8x the frame limit (1 MiB) in one message: closed with 1009. */
    assert_int_equal(
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_RECEIVE, &s->conn, chunk, 9 << 20), 0);
    assert_int_equal(s->close_code, 1009);
    assert_true(s->conn->lingering);
    assert_int_equal(receive(s, "{\"type\":\"ping\",\"id\":\"p\"}"), 0);
    assert_int_equal(json_array_size(s->frames), replies); /* not answered */
    for (int i = 0; i < 15; i++)
        assert_int_equal(
            tt_ws_callback((struct lws *)s, LWS_CALLBACK_RECEIVE, &s->conn, chunk, 1 << 20), 0);
    assert_int_equal(
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_RECEIVE, &s->conn, chunk, 1 << 20), -1);
    free(chunk);
}

static void test_ws_hello_in_open_mode_welcomes_the_local_user(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    json_t *w = reply_to(s, "h");
    assert_string_equal(json_string_value(json_object_get(w, "user")), "local");
    assert_true(json_is_true(json_object_get(w, "open_mode")));
    assert_string_equal(json_string_value(json_object_get(w, "node")),
                        tt_config_node_id(&f->srv.cfg));
    receive(s, "{\"type\":\"hello\",\"id\":\"h2\"}");
    assert_string_equal(error_code(reply_to(s, "h2")), "conflict");
}

static void test_ws_undecodable_frame_is_refused_with_its_id(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    receive(s, "{\"type\":\"say\",\"id\":\"x\"}"); /* no session, no text */
    assert_string_equal(error_code(reply_to(s, "x")), "bad_request");
    receive(s, "not json");
    assert_string_equal(error_code(last_frame(s)), "bad_request");
}

static void test_ws_binary_frame_is_refused(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    s->binary = 1;
    receive(s, "{\"type\":\"ping\",\"id\":\"p\"}");
    assert_string_equal(error_code(last_frame(s)), "bad_request");
    assert_null(reply_to(s, "p"));
}

static void test_ws_frame_over_the_preauth_limit_is_too_large(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    connect_sock(s);
    size_t n = 17 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"type\":\"hello\",\"id\":\"h\"}", 25);
    big[n] = '\0';
    assert_int_equal(receive(s, big), 0);
    free(big);
    json_t *e = last_frame(s);
    assert_string_equal(error_code(e), "too_large");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "before hello"));
    assert_int_equal(s->conn->welcomed, 0);
}

static void test_ws_messages_past_the_burst_are_rate_limited(void **state)
{
    fixture *f = *state;
    f->srv.cfg.rate_burst = 3;
    f->srv.cfg.rate_msgs_per_s = 1;
    sock *s = &f->socks[0];
    welcome(s); /* one token */
    receive(s, "{\"type\":\"ping\",\"id\":\"p1\"}");
    receive(s, "{\"type\":\"ping\",\"id\":\"p2\"}");
    receive(s, "{\"type\":\"ping\",\"id\":\"p3\"}");
    assert_string_equal(json_string_value(json_object_get(reply_to(s, "p2"), "type")), "pong");
    json_t *e = reply_to(s, "p3");
    assert_string_equal(error_code(e), "rate_limited");
    assert_true(json_is_true(json_object_get(e, "retryable")));
    assert_int_equal(json_integer_value(json_object_get(e, "retry_after_s")), 1);
}

static void test_ws_replies_not_read_drop_the_socket(void **state)
{
    fixture *f = *state;
    f->srv.cfg.max_output_bytes = 4096;
    sock *s = &f->socks[0];
    welcome(s);
    s->choked = 1;
    char msg[64];
    for (int i = 0; i < 200 && !s->conn->failed; i++) {
        snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"id\":\"p%d\"}", i);
        receive(s, msg);
    }
    assert_true(s->conn->failed);
    assert_true(s->conn->out_bytes > 4096);
    assert_int_equal(f->srv.metrics.dropped_output, 1);
    assert_int_equal(
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_SERVER_WRITEABLE, &s->conn, NULL, 0), -1);
}

/* The choke check is a poll() in lws: one per write, none when nothing
 * waits (a pump that wrote everything used to check once more; issue 18). */
static void test_ws_pump_checks_the_pipe_only_when_a_frame_waits(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    size_t before = json_array_size(s->frames);
    s->choke_checks = 0;
    receive(s, "{\"type\":\"ping\",\"id\":\"p1\"}");
    assert_int_equal(json_array_size(s->frames), before + 1);
    assert_int_equal(s->choke_checks, 1);
    s->choke_checks = 0;
    assert_int_equal(
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_SERVER_WRITEABLE, &s->conn, NULL, 0), 0);
    assert_int_equal(s->choke_checks, 0);
}

/* Replies held until their commit wait in memory all the same: they count
 * toward the output cap before the commit moves them to the queue. */
static void test_ws_held_replies_count_toward_the_output_cap(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    f->srv.cfg.rate_burst = 1000;
    welcome(s);
    const char *sid = open_echo(f, s);
    f->srv.cfg.max_output_bytes = 4096;
    s->choked = 1;
    char msg[256];
    for (int i = 0; i < 200 && !s->conn->failed; i++) {
        snprintf(msg, sizeof msg,
                 "{\"type\":\"say\",\"id\":\"s%d\",\"session\":\"%s\",\"text\":\"hi\"}", i, sid);
        receive(s, msg);
    }
    assert_non_null(s->conn->held_head); /* no commit yet: every ok is held */
    assert_true(s->conn->failed);
    assert_true(s->conn->out_bytes > 4096);
    assert_int_equal(f->srv.metrics.dropped_output, 1);
    commit(f);
    assert_int_equal(
        tt_ws_callback((struct lws *)s, LWS_CALLBACK_SERVER_WRITEABLE, &s->conn, NULL, 0), -1);
}

/* Each message is reassembled from its own pieces: a message of almost the
 * cap in 1 KiB pieces, then one in 7 fragments (cut inside pieces and at
 * their edges), one over the cap only in its fragments' sum (too_large),
 * and small ones after each. */
static void test_ws_messages_in_pieces_and_fragments_are_each_whole(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    size_t max = (size_t)f->srv.cfg.max_frame_bytes;
    char *big = padded_ping("big", max - 1);
    assert_int_equal(receive_pieces(s, big, max - 1, NULL, 0), 0);
    assert_string_equal(json_string_value(json_object_get(reply_to(s, "big"), "type")), "pong");
    char *half = padded_ping("half", max / 2);
    size_t cuts[6];
    for (size_t i = 0; i < 6; i++)
        cuts[i] = (i + 1) * (max / 14) + (i % 2 ? TT_WS_RX_BUFFER - (i * 7) % TT_WS_RX_BUFFER : 0);
    assert_int_equal(receive_pieces(s, half, max / 2, cuts, 6), 0);
    assert_string_equal(json_string_value(json_object_get(reply_to(s, "half"), "type")), "pong");
    char *over = padded_ping("over", max + 1);
    size_t over_cuts[] = {TT_WS_RX_BUFFER, max / 2, max};
    assert_int_equal(receive_pieces(s, over, max + 1, over_cuts, 3), 0);
    assert_null(reply_to(s, "over"));
    assert_string_equal(error_code(last_frame(s)), "too_large");
    size_t one_cuts[] = {1, 2, 3, 20};
    receive_pieces(s, "{\"type\":\"ping\",\"id\":\"small\"}", 28, one_cuts, 4);
    assert_string_equal(json_string_value(json_object_get(reply_to(s, "small"), "type")), "pong");
    assert_int_equal(receive_pieces(s, half, max / 2, NULL, 0), 0); /* unfragmented again */
    assert_int_equal(json_array_size(s->frames), 6);                /* welcome, 4 pongs, 1 error */
    assert_int_equal(s->close_code, 0);
    free(big);
    free(half);
    free(over);
}

/* Frames an AI SDK stream pulls are bounded by its pull limit, not the
 * output cap: one larger than the cap does not drop a socket; replies
 * past the cap still do. */
static void test_ws_stream_frames_do_not_count_toward_the_output_cap(void **state)
{
    fixture *f = *state;
    f->srv.cfg.max_output_bytes = 4096;
    sock *s = &f->socks[0];
    welcome(s);
    s->choked = 1;
    char *wide = padded_ping("w", 3 * 4096);
    tt_conn_send_stream(s->conn, json_pack("{s:s}", "text", wide));
    free(wide);
    assert_false(s->conn->failed);
    assert_true(s->conn->stream_bytes > 3 * 4096);
    assert_true(s->conn->out_bytes == s->conn->stream_bytes);
    char msg[64];
    for (int i = 0; i < 200 && !s->conn->failed; i++) {
        snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"id\":\"p%d\"}", i);
        receive(s, msg);
    }
    assert_true(s->conn->failed);
    assert_true(s->conn->out_bytes - s->conn->stream_bytes > 4096);
    s->choked = 0;
    s->conn->failed = 0;
    tt_conn_pump(s->conn); /* all written: both counts back to 0 */
    assert_int_equal(s->conn->out_bytes, 0);
    assert_int_equal(s->conn->stream_bytes, 0);
}

static void test_requests_open_replies_ok_before_the_sessions_events(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    receive(s, "{\"type\":\"session.open\",\"id\":\"o\",\"agent\":\"echo\"}");
    commit(f);
    json_t *ok = reply_to(s, "o");
    assert_non_null(ok);
    assert_true(json_integer_value(json_object_get(ok, "head")) >= 1);
    /* The ok comes before the session's events. */
    size_t i;
    json_t *m;
    int seen_ok = 0, events = 0;
    json_array_foreach(s->frames, i, m)
    {
        if (m == ok)
            seen_ok = 1;
        else if (json_object_get(m, "seq")) {
            assert_true(seen_ok);
            events++;
        }
    }
    assert_true(events >= 1);
}

static void test_requests_session_of_another_tenant_is_forbidden(void **state)
{
    fixture *f = *state;
    sock *a = &f->socks[0], *b = &f->socks[1];
    welcome(a);
    const char *sid = open_echo(f, a);
    welcome(b);
    snprintf(b->conn->tenant, sizeof b->conn->tenant, "other");
    static const char *kinds[] = {
        "{\"type\":\"session.attach\",\"id\":\"r\",\"session\":\"%s\"}",
        "{\"type\":\"say\",\"id\":\"r\",\"session\":\"%s\",\"text\":\"hi\"}",
        "{\"type\":\"cancel\",\"id\":\"r\",\"session\":\"%s\"}",
        "{\"type\":\"session.close\",\"id\":\"r\",\"session\":\"%s\"}",
    };
    tt_session *s = NULL;
    assert_int_equal(tt_registry_get(f->srv.reg, sid, &s), 0);
    uint64_t head = s->head;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char msg[256];
        snprintf(msg, sizeof msg, kinds[i], sid);
        receive(b, msg);
        assert_string_equal(error_code(last_frame(b)), "forbidden");
    }
    assert_int_equal(s->head, head); /* nothing changed */
    assert_int_not_equal(s->state, TT_STATE_CLOSED);
    /* the session list of the other tenant does not show it */
    receive(b, "{\"type\":\"session.list\",\"id\":\"l\"}");
    assert_int_equal(json_array_size(json_object_get(reply_to(b, "l"), "sessions")), 0);
}

static void test_requests_unknown_session_and_agent_are_not_found(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    receive(
        s, "{\"type\":\"session.attach\",\"id\":\"a\",\"session\":\"s_000000000000000000000000\"}");
    assert_string_equal(error_code(reply_to(s, "a")), "not_found");
    receive(s, "{\"type\":\"session.open\",\"id\":\"o\",\"agent\":\"nobody\"}");
    assert_string_equal(error_code(reply_to(s, "o")), "not_found");
}

static void test_requests_ack_must_name_an_attached_session_within_its_head(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    const char *sid = open_echo(f, s);
    char msg[256];
    snprintf(msg, sizeof msg, "{\"type\":\"ack\",\"id\":\"k1\",\"session\":\"%s\",\"seq\":1}", sid);
    receive(s, msg);
    assert_null(reply_to(s, "k1")); /* a valid ack has no reply */
    snprintf(msg, sizeof msg, "{\"type\":\"ack\",\"id\":\"k2\",\"session\":\"%s\",\"seq\":999999}",
             sid);
    receive(s, msg);
    assert_string_equal(error_code(reply_to(s, "k2")), "bad_request");
    snprintf(msg, sizeof msg, "{\"type\":\"session.detach\",\"id\":\"d\",\"session\":\"%s\"}", sid);
    receive(s, msg);
    assert_true(json_is_true(json_object_get(reply_to(s, "d"), "detached")));
    snprintf(msg, sizeof msg, "{\"type\":\"ack\",\"id\":\"k3\",\"session\":\"%s\",\"seq\":1}", sid);
    receive(s, msg);
    assert_string_equal(error_code(reply_to(s, "k3")), "not_found");
}

static void test_requests_say_after_close_is_a_conflict(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    const char *sid = open_echo(f, s);
    char msg[256];
    snprintf(msg, sizeof msg, "{\"type\":\"session.close\",\"id\":\"c\",\"session\":\"%s\"}", sid);
    receive(s, msg);
    commit(f);
    assert_string_equal(json_string_value(json_object_get(reply_to(s, "c"), "type")), "ok");
    snprintf(msg, sizeof msg, "{\"type\":\"say\",\"id\":\"s\",\"session\":\"%s\",\"text\":\"hi\"}",
             sid);
    receive(s, msg);
    commit(f);
    assert_string_equal(error_code(reply_to(s, "s")), "conflict");
}

/* The user's turns in the session's transcript (the agent's replies aside). */
static size_t user_turns(tt_session *ses)
{
    size_t n = 0, i;
    json_t *t;
    json_array_foreach(tt_session_transcript(ses), i, t)
    {
        n += strcmp(json_string_value(json_object_get(t, "role")), "user") == 0;
    }
    return n;
}

static void test_requests_repeated_client_msg_id_is_a_duplicate(void **state)
{
    fixture *f = *state;
    sock *s = &f->socks[0];
    welcome(s);
    const char *sid = open_echo(f, s);
    char msg[256];
    snprintf(msg, sizeof msg,
             "{\"type\":\"say\",\"id\":\"s1\",\"session\":\"%s\",\"text\":\"hi\","
             "\"client_msg_id\":\"m1\"}",
             sid);
    receive(s, msg);
    commit(f);
    assert_string_equal(json_string_value(json_object_get(reply_to(s, "s1"), "type")), "ok");
    tt_session *ses = NULL;
    assert_int_equal(tt_registry_get(f->srv.reg, sid, &ses), 0);
    size_t turns = user_turns(ses);
    snprintf(msg, sizeof msg,
             "{\"type\":\"say\",\"id\":\"s2\",\"session\":\"%s\",\"text\":\"hi\","
             "\"client_msg_id\":\"m1\"}",
             sid);
    receive(s, msg);
    commit(f);
    assert_true(json_is_true(json_object_get(reply_to(s, "s2"), "duplicate")));
    assert_int_equal(user_turns(ses), turns); /* the echo's reply may land meanwhile */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_ws_first_message_must_be_hello),
        T(test_ws_after_the_close_frame_input_is_dropped_up_to_a_bound),
        T(test_ws_hello_in_open_mode_welcomes_the_local_user),
        T(test_ws_undecodable_frame_is_refused_with_its_id),
        T(test_ws_binary_frame_is_refused),
        T(test_ws_frame_over_the_preauth_limit_is_too_large),
        T(test_ws_messages_past_the_burst_are_rate_limited),
        T(test_ws_replies_not_read_drop_the_socket),
        T(test_ws_pump_checks_the_pipe_only_when_a_frame_waits),
        T(test_ws_held_replies_count_toward_the_output_cap),
        T(test_ws_messages_in_pieces_and_fragments_are_each_whole),
        T(test_ws_stream_frames_do_not_count_toward_the_output_cap),
        T(test_requests_open_replies_ok_before_the_sessions_events),
        T(test_requests_session_of_another_tenant_is_forbidden),
        T(test_requests_unknown_session_and_agent_are_not_found),
        T(test_requests_ack_must_name_an_attached_session_within_its_head),
        T(test_requests_say_after_close_is_a_conflict),
        T(test_requests_repeated_client_msg_id_is_a_duplicate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
