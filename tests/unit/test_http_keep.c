/* agents/llm/http.c: a kept upstream connection and its poll handle, against a
 * keep-alive HTTP server in the same loop (127.0.0.1, a free port). A
 * connection socket keeps its poll handle between requests (left armed while
 * idle); the peer closing it while idle stops the polling once (no busy
 * loop), and the next request reconnects on a socket that very likely gets
 * the same number: its poll handle must be a new one (the old one left with
 * the old socket, in close_socket), or libuv refuses it (EEXIST) and the
 * request fails. After tt_http_close no handle is left on any socket number
 * curl used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/llm/http.h"
#include "http_test_util.h"
#include "protocol/errors.h"

#define MAX_CLIENTS 4

typedef struct server {
    uv_tcp_t listener;
    int port;
    uv_tcp_t *clients[MAX_CLIENTS];
    int accepted; /* connections accepted */
    int answered; /* requests answered */
} server;

static server srv;

static void on_write(uv_write_t *w, int status)
{
    free(w);
}

static void on_client_closed(uv_handle_t *h)
{
    free(h);
}

static void close_clients(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv.clients[i]) {
            uv_close((uv_handle_t *)srv.clients[i], on_client_closed);
            srv.clients[i] = NULL;
        }
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    buf->base = malloc(size);
    buf->len = size;
}

/* Each request (one read starting "POST ": a small one) gets a whole answer
 * with a length. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    static char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    if (n >= 5 && memcmp(buf->base, "POST ", 5) == 0) {
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t b = uv_buf_init(answer, sizeof answer - 1);
        uv_write(w, s, &b, 1, on_write);
        srv.answered++;
    } else if (n < 0) {
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (srv.clients[i] == (uv_tcp_t *)s)
                srv.clients[i] = NULL;
        uv_close((uv_handle_t *)s, on_client_closed);
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *l, int status)
{
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(l->loop, c);
    uv_accept(l, (uv_stream_t *)c);
    uv_read_start((uv_stream_t *)c, alloc_cb, on_read);
    srv.accepted++;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (!srv.clients[i]) {
            srv.clients[i] = c;
            return;
        }
    fail_msg("more than %d connections", MAX_CLIENTS);
}

static int setup(void **state)
{
    uv_loop_t *loop = malloc(sizeof *loop);
    uv_loop_init(loop);
    memset(&srv, 0, sizeof srv);
    srv.port = http_listen_loopback(loop, &srv.listener, 8, on_connection);
    assert_true(srv.port > 0);
    *state = loop;
    return 0;
}

static int teardown(void **state)
{
    uv_loop_t *loop = *state;
    close_clients();
    uv_close((uv_handle_t *)&srv.listener, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
    return 0;
}

/* One request on h until its end: the answer, or the failure class. */
static tt_llm_error_class request(uv_loop_t *loop, tt_http *h)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_result res = {0};
    assert_int_equal(
        tt_http_start(h, "POST", url, headers, "{}", 2, NULL, &http_result_callbacks, &res, NULL),
        0);
    for (int i = 0; i < 100000 && !res.done; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(res.done, 1);
    if (res.cls == TT_LLM_ERR_NONE) {
        assert_int_equal(res.body_len, 2);
        assert_memory_equal(res.body, "ok", 2);
    }
    return res.cls;
}

/* Turn the loop for about ms milliseconds. */
static void spin(uv_loop_t *loop, int ms)
{
    for (int i = 0; i < ms; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void test_http_kept_connection_survives_its_peer_closing_it(void **state)
{
    uv_loop_t *loop = *state;
    tt_http *h;
    assert_int_equal(tt_http_new(loop, &h), 0);
    assert_int_equal(request(loop, h), TT_LLM_ERR_NONE);
    assert_int_equal(request(loop, h), TT_LLM_ERR_NONE);
    assert_int_equal(srv.accepted, 1); /* the second request reused the connection */
    assert_int_equal(tt_http_stats_get(h)->idle_events, 0);

    close_clients(); /* the server drops the idle connection */
    spin(loop, 50);
    /* Seen once, then no longer polled: a level-triggered poll left armed on a
     * closed socket would count on every loop turn. */
    assert_int_equal(tt_http_stats_get(h)->idle_events, 1);

    /* curl finds the connection dead, closes it (close_socket) and connects
     * again, most likely on the same socket number: a new poll handle. */
    assert_int_equal(request(loop, h), TT_LLM_ERR_NONE);
    assert_int_equal(request(loop, h), TT_LLM_ERR_NONE);
    assert_int_equal(srv.accepted, 2);
    assert_int_equal(srv.answered, 4);
    assert_int_equal(tt_http_stats_get(h)->completed, 4);
    assert_int_equal(tt_http_stats_get(h)->failed, 0);

    /* Closed with a connection kept: every socket curl used leaves the loop's
     * poll set, so the lowest free number (curl's last) can be polled anew. */
    tt_http_close(h);
    spin(loop, 10);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    uv_poll_t p;
    assert_int_equal(uv_poll_init_socket(loop, &p, fd), 0);
    assert_int_equal(uv_poll_start(&p, UV_READABLE, NULL), 0);
    uv_close((uv_handle_t *)&p, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    close(fd);
}

/* Many requests one after the other on one kept connection: each is
 * answered, one connection in all, nothing seen on the idle socket. */
static void test_http_sequential_requests_share_one_connection(void **state)
{
    uv_loop_t *loop = *state;
    tt_http *h;
    assert_int_equal(tt_http_new(loop, &h), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(request(loop, h), TT_LLM_ERR_NONE);
    assert_int_equal(srv.accepted, 1);
    assert_int_equal(srv.answered, 50);
    assert_int_equal(tt_http_stats_get(h)->idle_events, 0);
    tt_http_close(h);
    spin(loop, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_kept_connection_survives_its_peer_closing_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_sequential_requests_share_one_connection, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
