/* A bare libwebsockets server: the peer the issue-18 socket targets are
 * measured against ("bare libwebsockets' direct-write rate"). It runs the
 * same lws as Tether, on a libuv loop it owns (a foreign loop, as Tether's),
 * with the same WebSocket buffers (TT_WS_RX_BUFFER, TT_WS_TX_PACKET from
 * server/server.h), the "tether.v1" subprotocol and no lws validity timers,
 * but does no application work: no session, no store, no JSON parsing. Each
 * text message is answered with frames of the shape and size Tether sends,
 * each written with one lws_write() from the writeable callback (the usual
 * lws pattern: one frame per LWS_CALLBACK_SERVER_WRITEABLE, then ask again).
 * Not a test: built beside tether (<build>/bench_bare_lws, not installed);
 * the benchmarks start it (tests/bench/lib/bare.mjs).
 *
 *   bench_bare_lws PORT        (0: any free port; loopback only)
 *
 * prints {"listening":PORT} on stdout once it accepts connections, and
 * stops on SIGTERM or SIGINT. The message's "type" (within its first
 * HEAD_MAX bytes) chooses the answer:
 *   hello         one welcome frame
 *   session.open  an ok naming a session, then its first state event
 *   ping          one pong (24 bytes with the id "p", as Tether's)
 *   say           the 11 frames of one echo-agent turn of "one two three
 *                 four five" (an ok, user, state, message.start, 5 deltas,
 *                 message.end, state idle: 1.6 KB, as Tether's)
 *   replay        {"type":"replay","id":"a","n":N,"bytes":B}: an ok with the
 *                 head, then N delta-shaped events of B bytes each (resume);
 *                 with "drain":true, each writeable callback writes frames
 *                 until lws_send_pipe_choked() (one poll() each, as Tether
 *                 did before it framed replays itself), not just one
 *   other         one error frame
 * Each socket keeps at most JOBS_MAX answers queued; a client that sends
 * more before reading is closed with 1008. */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "server/server.h" /* TT_WS_RX_BUFFER, TT_WS_TX_PACKET: Tether's lws buffers */

#define HEAD_MAX 128u        /* bytes kept of each message: where "type" and the rest are */
#define ID_MAX 16u           /* the request's "id", echoed in "re" */
#define JOBS_MAX 8u          /* answers queued per socket */
#define FRAME_MAX 16384u     /* the largest frame written (replay's "bytes" is capped to it) */
#define REPLAY_MAX 10000000L /* the most events one replay request asks for */
#define TS "2026-01-01T00:00:00.000Z" /* every event's "ts": the length of Tether's */
#define ECHO_FRAMES 11u
#define ECHO_TEXT "one two three four five"

enum job_kind { JOB_WELCOME, JOB_OPENED, JOB_PONG, JOB_ECHO, JOB_REPLAY, JOB_ERROR };

/* Small: JOBS_MAX of them are in each socket's lws data. */
struct job {
    enum job_kind kind;
    unsigned frames;      /* how many frames the answer has */
    unsigned short bytes; /* replay: each event's size */
    unsigned char drain;  /* replay: write frames until the socket is choked */
    char id[ID_MAX];
};

/* lws's per-socket data (zeroed by lws at the connection's start). */
struct conn {
    struct job jobs[JOBS_MAX]; /* a ring: jobs[first] is being written */
    unsigned first, count;
    unsigned frame;        /* the next frame of jobs[first] */
    unsigned long seq;     /* the last event's seq in this socket's session */
    unsigned long session; /* the number in this socket's session id */
    unsigned long msg;     /* the number in the current message's id */
    size_t head_len;
    char head[HEAD_MAX];
};

struct peer {
    uv_loop_t loop;
    uv_signal_t sigs[2];
    struct lws_context *lws;
    unsigned long sessions; /* session ids handed out */
    unsigned char out[LWS_PRE + FRAME_MAX];
};

/* The string value of "key" in the head, if whole and short enough; else "". */
static void field_str(const char *head, const char *key, char *out, size_t cap)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    out[0] = '\0';
    const char *p = strstr(head, pat);
    if (!p)
        return;
    p += strlen(pat);
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= cap)
        return;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
}

/* The number value of "key" in the head, or def. */
static long field_num(const char *head, const char *key, long def)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(head, pat);
    if (!p)
        return def;
    char *end;
    long v = strtol(p + strlen(pat), &end, 10);
    return end == p + strlen(pat) ? def : v;
}

/* What the message in c->head asks for. */
static struct job classify(const struct conn *c)
{
    char type[32];
    struct job j = {.kind = JOB_ERROR, .frames = 1};
    field_str(c->head, "type", type, sizeof type);
    if (strcmp(type, "hello") == 0)
        j.kind = JOB_WELCOME;
    else if (strcmp(type, "session.open") == 0)
        j = (struct job){.kind = JOB_OPENED, .frames = 2};
    else if (strcmp(type, "ping") == 0)
        j.kind = JOB_PONG;
    else if (strcmp(type, "say") == 0)
        j = (struct job){.kind = JOB_ECHO, .frames = ECHO_FRAMES};
    else if (strcmp(type, "replay") == 0) {
        long n = field_num(c->head, "n", -1), b = field_num(c->head, "bytes", 150);
        if (n >= 0 && n <= REPLAY_MAX && b > 0)
            j = (struct job){.kind = JOB_REPLAY,
                             .frames = (unsigned)n + 1,
                             .drain = strstr(c->head, "\"drain\":true") != NULL,
                             .bytes = (unsigned short)(b >= (long)FRAME_MAX ? FRAME_MAX - 1 : b)};
    }
    field_str(c->head, "id", j.id, sizeof j.id);
    return j;
}

/* An event's common head: type, session, seq, ts. */
static int event_head(char *o, size_t cap, const struct conn *c, const char *type)
{
    return snprintf(o, cap,
                    "{\"type\":\"%s\",\"session\":\"s_%024lx\",\"seq\":%lu,\"ts\":\"" TS "\"", type,
                    c->session, c->seq);
}

/* Frame i of an echo turn, as Tether's echo agent sends them. */
static int echo_frame(char *o, size_t cap, struct conn *c, const struct job *j, unsigned i)
{
    static const char *const words[] = {"one ", "two ", "three ", "four ", "five"};
    if (i == 0)
        return j->id[0] ? snprintf(o, cap, "{\"type\":\"ok\",\"re\":\"%s\"}", j->id)
                        : snprintf(o, cap, "{\"type\":\"ok\"}");
    c->seq++;
    if (i == 1 || i == 3)
        c->msg++;
    const char *type = i == 1             ? "user"
                       : i == 3           ? "message.start"
                       : i == 9           ? "message.end"
                       : i < 4 || i == 10 ? "state"
                                          : "delta";
    int n = event_head(o, cap, c, type);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    o += n, cap -= (size_t)n;
    int m;
    if (i == 1)
        m = snprintf(o, cap,
                     ",\"message_id\":\"m_%024lx\",\"text\":\"" ECHO_TEXT
                     "\",\"client_msg_id\":null}",
                     c->msg);
    else if (i == 2 || i == 10)
        m = snprintf(o, cap, ",\"state\":\"%s\",\"step\":\"reply\"}", i == 2 ? "running" : "idle");
    else if (i == 3)
        m = snprintf(o, cap, ",\"message_id\":\"m_%024lx\",\"role\":\"assistant\"}", c->msg);
    else if (i == 9)
        m = snprintf(o, cap,
                     ",\"message_id\":\"m_%024lx\",\"text\":\"" ECHO_TEXT
                     "\",\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":5,\"cost_usd\":0.0,"
                     "\"model\":\"echo\",\"cached\":false}}",
                     c->msg);
    else
        m = snprintf(o, cap, ",\"message_id\":\"m_%024lx\",\"text\":\"%s\"}", c->msg, words[i - 4]);
    return m < 0 ? -1 : n + m;
}

/* Frame i of a replay: an ok with the head, then delta events of j->bytes. */
static int replay_frame(char *o, size_t cap, struct conn *c, const struct job *j, unsigned i)
{
    if (i == 0)
        return snprintf(o, cap, "{\"type\":\"ok\",\"re\":\"%s\",\"head\":%lu}", j->id,
                        c->seq + j->frames - 1);
    c->seq++;
    int n = event_head(o, cap, c, "delta");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    int m = snprintf(o + n, cap - (size_t)n, ",\"message_id\":\"m_%024lx\",\"text\":\"", c->msg);
    if (m < 0 || (size_t)(n + m) >= cap)
        return -1;
    size_t len = (size_t)(n + m), tail = 2; /* "} */
    size_t want = j->bytes > len + tail ? j->bytes : len + tail;
    if (want >= cap)
        want = cap - 1;
    memset(o + len, 'w', want - len - tail);
    memcpy(o + want - tail, "\"}", tail);
    return (int)want;
}

/* Frame i of the job at the head of the socket's queue; its length, or -1. */
static int render(struct peer *p, struct conn *c, const struct job *j, unsigned i)
{
    char *o = (char *)p->out + LWS_PRE;
    size_t cap = FRAME_MAX;
    switch (j->kind) {
    case JOB_WELCOME:
        return snprintf(o, cap,
                        "{\"type\":\"welcome\",\"protocol\":1,\"server\":\"bench_bare_lws\"}");
    case JOB_OPENED:
        if (i == 0) {
            c->session = ++p->sessions;
            c->seq = 0;
            return snprintf(o, cap,
                            "{\"type\":\"ok\",\"re\":\"%s\",\"agent\":\"echo\",\"session\":"
                            "\"s_%024lx\",\"head\":1,\"recovered\":true,\"pending\":null}",
                            j->id, c->session);
        }
        c->seq++;
        {
            int n = event_head(o, cap, c, "state");
            int m = snprintf(o + n, cap - (size_t)n, ",\"state\":\"idle\",\"step\":\"start\"}");
            return m < 0 ? -1 : n + m;
        }
    case JOB_PONG:
        return snprintf(o, cap, "{\"type\":\"pong\",\"re\":\"%s\"}", j->id);
    case JOB_ECHO:
        return echo_frame(o, cap, c, j, i);
    case JOB_REPLAY:
        return replay_frame(o, cap, c, j, i);
    case JOB_ERROR:
        break;
    }
    return snprintf(o, cap,
                    "{\"type\":\"error\",\"re\":\"%s\",\"code\":\"bad_request\","
                    "\"message\":\"bench_bare_lws answers hello, session.open, ping, say and "
                    "replay\"}",
                    j->id);
}

/* A piece of a message: kept up to HEAD_MAX bytes; once the message is whole,
 * its answer is queued and the socket asked to become writeable. */
static int on_receive(struct lws *wsi, struct conn *c, const char *in, size_t len)
{
    size_t take = HEAD_MAX - 1 - c->head_len;
    if (len < take)
        take = len;
    memcpy(c->head + c->head_len, in, take);
    c->head_len += take;
    c->head[c->head_len] = '\0';
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    c->head_len = 0;
    if (c->count == JOBS_MAX) {
        static const char why[] = "bench_bare_lws: too many answers queued";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)why,
                         sizeof why - 1);
        return -1;
    }
    c->jobs[(c->first + c->count) % JOBS_MAX] = classify(c);
    c->count++;
    lws_callback_on_writable(wsi);
    return 0;
}

/* One frame of the first queued answer, written directly; a replay asked
 * with "drain" goes on writing frames of its own while the socket takes them. */
static int on_writeable(struct peer *p, struct lws *wsi, struct conn *c)
{
    int more = 1;
    while (c->count && more) {
        struct job *j = &c->jobs[c->first];
        int n = render(p, c, j, c->frame);
        if (n < 0 || (size_t)n >= FRAME_MAX)
            return -1;
        if (lws_write(wsi, p->out + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n)
            return -1;
        more = j->drain && !lws_send_pipe_choked(wsi);
        if (++c->frame == j->frames) {
            c->frame = 0;
            c->first = (c->first + 1) % JOBS_MAX;
            c->count--;
            more = 0;
        }
    }
    if (c->count)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, user, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(lws_context_user(lws_get_context(wsi)), wsi, user);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* SIGTERM or SIGINT: the first half of destroying lws on a foreign loop (it
 * closes its handles); uv_run() returns once they and ours are closed. */
static void on_signal(uv_signal_t *sig, int signum)
{
    struct peer *p = sig->data;
    for (size_t i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&p->sigs[i], NULL);
    lws_context_destroy(p->lws);
}

static int start(struct peer *p, int port)
{
    static const struct lws_protocols protocols[] = {{.name = "tether.v1",
                                                      .callback = callback,
                                                      .per_session_data_size = sizeof(struct conn),
                                                      .rx_buffer_size = TT_WS_RX_BUFFER,
                                                      .tx_packet_size = TT_WS_TX_PACKET},
                                                     {.name = NULL}};
    /* No lws validity timers, as Tether (its heartbeat is its own timer). */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    void *foreign[1] = {&p->loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    /* IPv4 alone: lws 4.1 binds an IPv6 socket to :: whatever iface says. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = foreign;
    info.user = p;
    info.retry_and_idle_policy = &no_validity;
    info.vhost_name = "bare";
    lws_set_log_level(LLL_ERR, NULL);
    p->lws = lws_create_context(&info);
    if (!p->lws)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        p->sigs[i].data = p;
        if (uv_signal_init(&p->loop, &p->sigs[i]) ||
            uv_signal_start(&p->sigs[i], on_signal, i ? SIGINT : SIGTERM))
            return -1;
    }
    return lws_get_vhost_listen_port(lws_get_vhost_by_name(p->lws, "bare"));
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || !end || *end || end == argv[1] || port < 0 || port > 65535) {
        fprintf(stderr, "usage: bench_bare_lws PORT   (0: any free port; binds 127.0.0.1)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct peer *p = calloc(1, sizeof *p);
    if (!p || uv_loop_init(&p->loop)) {
        fprintf(stderr, "bench_bare_lws: cannot start a libuv loop\n");
        free(p);
        return 1;
    }
    int bound = start(p, (int)port);
    if (bound <= 0) {
        fprintf(stderr, "bench_bare_lws: cannot listen on 127.0.0.1:%ld\n", port);
        return 1; /* the process ends: nothing to release that the kernel does not */
    }
    printf("{\"listening\":%d}\n", bound);
    fflush(stdout);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    lws_context_destroy(p->lws); /* the second half, now that its handles are closed */
    int rc = uv_loop_close(&p->loop) ? 1 : 0;
    free(p);
    return rc;
}
