/* A scripted model provider inside the test's own libuv loop (127.0.0.1, a
 * free port), for the tests of model calls, the chat agent and the gateway.
 * Each request gets the next scripted answer, in order:
 *   UP_REPLY  the status and body, whole (Content-Length), then close
 *   UP_HANG   the request is read and never answered
 *   UP_CUT    a 200 whose chunked body is sent, then the connection is reset
 *   UP_STALL  a 200 whose chunked body is sent, then nothing more (mid-stream)
 * The request bodies are kept, in order, for the test to read. Static
 * helpers in a header because each test is its own program. */
#ifndef TT_FAKE_UPSTREAM_H
#define TT_FAKE_UPSTREAM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define UP_MAX 16
#define UP_REQ_MAX (64 * 1024)

typedef enum up_kind { UP_REPLY, UP_HANG, UP_CUT, UP_STALL } up_kind;

typedef struct up_answer {
    up_kind kind;
    int status;
    const char *body;
} up_answer;

typedef struct up_conn {
    uv_tcp_t tcp;
    struct upstream *up;
    char req[UP_REQ_MAX + 1];
    size_t len;
    int answered, open, slot;
    uv_timer_t cut; /* UP_CUT: resets a little after the body went out */
} up_conn;

typedef struct upstream {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    up_answer script[UP_MAX];
    int n_script, next;
    char *bodies[UP_MAX]; /* request bodies, in order (malloc'd) */
    int n_requests;
    up_conn *conns[UP_MAX];
    int n_conns;
} upstream;

static void up_free_conn(uv_handle_t *h)
{
    up_conn *c = h->data;
    if (--c->open > 0)
        return;
    if (c->slot >= 0)
        c->up->conns[c->slot] = NULL;
    free(c);
}

static void up_close_conn(up_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, up_free_conn);
    if (!uv_is_closing((uv_handle_t *)&c->cut))
        uv_close((uv_handle_t *)&c->cut, up_free_conn);
}

static void up_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void up_send(up_conn *c, const char *text, size_t n)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_write_t *w = malloc(sizeof *w);
    char *copy = malloc(n);
    memcpy(copy, text, n);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, up_written);
}

static void up_after_close_write(uv_shutdown_t *r, int status)
{
    (void)status;
    up_close_conn(r->data);
    free(r);
}

static void up_on_cut(uv_timer_t *t)
{
    up_conn *c = t->data;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_tcp_close_reset(&c->tcp, up_free_conn);
    uv_close((uv_handle_t *)&c->cut, up_free_conn);
}

static void up_answer_request(up_conn *c, const char *body_start, size_t body_len)
{
    upstream *up = c->up;
    if (up->n_requests < UP_MAX) {
        char *copy = malloc(body_len + 1);
        memcpy(copy, body_start, body_len);
        copy[body_len] = '\0';
        up->bodies[up->n_requests++] = copy;
    }
    c->answered = 1;
    up_answer a = up->next < up->n_script
                      ? up->script[up->next++]
                      : (up_answer){UP_REPLY, 500, "{\"error\":\"unscripted\"}"};
    char head[256];
    size_t blen = strlen(a.body ? a.body : "");
    if (a.kind == UP_HANG)
        return;
    if (a.kind == UP_CUT || a.kind == UP_STALL) {
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
                         blen);
        up_send(c, head, (size_t)n);
        up_send(c, a.body, blen);
        up_send(c, "\r\n", 2);
        if (a.kind == UP_CUT)
            uv_timer_start(&c->cut, up_on_cut, 30, 0);
        return;
    }
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     a.status,
                     a.body && a.body[0] == 'd' ? "text/event-stream" : "application/json", blen);
    up_send(c, head, (size_t)n);
    if (blen)
        up_send(c, a.body, blen);
    uv_shutdown_t *sh = malloc(sizeof *sh);
    sh->data = c;
    uv_shutdown(sh, (uv_stream_t *)&c->tcp, up_after_close_write);
}

/* Where header name (lower case, with its colon) starts in req, or NULL. */
static const char *up_header(const char *req, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(req, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0)
            return p + 2;
    return NULL;
}

static void up_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(size);
    b->len = size;
}

static void up_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    up_conn *c = s->data;
    if (n < 0) {
        up_close_conn(c);
    } else if (n > 0 && !c->answered && c->len + (size_t)n <= UP_REQ_MAX) {
        memcpy(c->req + c->len, b->base, (size_t)n);
        c->len += (size_t)n;
        c->req[c->len] = '\0';
        char *end = strstr(c->req, "\r\n\r\n");
        const char *cl = up_header(c->req, "content-length:");
        if (end && up_header(c->req, "expect: 100-continue") &&
            c->len == (size_t)(end + 4 - c->req))
            up_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (end && cl) {
            size_t want = (size_t)strtoul(cl + 15, NULL, 10);
            size_t have = c->len - (size_t)(end + 4 - c->req);
            if (have >= want)
                up_answer_request(c, end + 4, want);
        }
    }
    free(b->base);
}

static void up_on_connection(uv_stream_t *l, int status)
{
    upstream *up = l->data;
    up_conn *c = calloc(1, sizeof *c);
    c->up = up;
    c->open = 2;
    c->slot = -1;
    uv_tcp_init(up->loop, &c->tcp);
    uv_timer_init(up->loop, &c->cut);
    c->tcp.data = c->cut.data = c;
    if (status != 0 || uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        up_close_conn(c);
        return;
    }
    c->slot = -1;
    if (up->n_conns < UP_MAX) {
        c->slot = up->n_conns;
        up->conns[up->n_conns++] = c;
    }
    uv_read_start((uv_stream_t *)&c->tcp, up_alloc, up_on_read);
}

static void up_start(upstream *up, uv_loop_t *loop)
{
    memset(up, 0, sizeof *up);
    up->loop = loop;
    uv_tcp_init(loop, &up->listener);
    up->listener.data = up;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&up->listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&up->listener, 16, up_on_connection) != 0)
        abort();
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&up->listener, (struct sockaddr *)&bound, &len);
    up->port = ntohs(bound.sin_port);
}

static void up_script(upstream *up, up_kind kind, int status, const char *body)
{
    if (up->n_script < UP_MAX)
        up->script[up->n_script++] = (up_answer){kind, status, body};
}

/* Close the listener and every connection still open; the caller runs the loop. */
static void up_stop(upstream *up)
{
    for (int i = 0; i < up->n_conns; i++)
        if (up->conns[i])
            up_close_conn(up->conns[i]);
    uv_close((uv_handle_t *)&up->listener, NULL);
    for (int i = 0; i < up->n_requests; i++)
        free(up->bodies[i]);
}

/* The start of a test on a fresh loop: the loop initialised, the upstream
 * on it, and a fresh empty file /tmp/<prefix>_XXXXXX for the routes, its
 * name in routes (n >= 64). Returns the file open for writing, NULL when
 * the loop or the file could not be made. */
static inline FILE *up_begin(uv_loop_t *loop, upstream *up, char *routes, size_t n,
                             const char *prefix)
{
    if (uv_loop_init(loop) != 0)
        return NULL;
    up_start(up, loop);
    snprintf(routes, n, "/tmp/%s_XXXXXX", prefix);
    int fd = mkstemp(routes);
    return fd >= 0 ? fdopen(fd, "w") : NULL;
}

/* The end of such a test, once what used the upstream is closed: the
 * upstream stopped, the loop run until its handles closed. Returns
 * uv_loop_close's result (0: nothing was left on the loop). */
static inline int up_end(uv_loop_t *loop, upstream *up)
{
    up_stop(up);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop);
}

/* An OpenAI stream that says text in two deltas, then stops with usage. */
#define UP_SSE_TEXT(a, b)                                                                          \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"" a          \
    "\"},\"finish_reason\":null}]}\n\n"                                                            \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" b "\"},\"finish_reason\":null}]}" \
    "\n\n"                                                                                         \
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"              \
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2}}\n\n"          \
    "data: [DONE]\n\n"

/* The same answer as one plain (non-streamed) JSON body. */
#define UP_JSON_TEXT(a)                                                                            \
    "{\"model\":\"m-a-0613\",\"choices\":[{\"index\":0,\"message\":{\"role\":"                     \
    "\"assistant\",\"content\":\"" a "\"},\"finish_reason\":\"stop\"}],\"usage\":"                 \
    "{\"prompt_tokens\":11,\"completion_tokens\":2}}"

/* The start of a stream: one delta, no end. */
#define UP_SSE_PARTIAL(a)                                                                          \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"" a          \
    "\"},\"finish_reason\":null}]}\n\n"

#endif
