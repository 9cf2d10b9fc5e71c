/* agents/llm/http.c: libcurl on the libuv loop against a scripted HTTP
 * server living in the same loop (127.0.0.1, a free port): streaming bodies,
 * each timeout, a reset mid-stream, cancel closing the upstream connection,
 * close cancelling a transfer in flight once,
 * response headers, a refused connection, and a redirect without a body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents/llm/http.h"
#include "protocol/errors.h"

typedef enum mode { M_STREAM, M_STALL, M_SILENT, M_RESET, M_REDIRECT } mode;

typedef struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    mode mode;
    uv_tcp_t *client;
    uv_timer_t timer;
    int step;
    int peer_closed; /* the client closed its connection */
    char req[4096];
    size_t req_len;
} server;

typedef struct result {
    int status;
    char body[4096];
    size_t body_len;
    int done;
    tt_llm_error_class cls;
    char retry_after[32];
    char location[64];      /* the Location header, read in on_done */
    int cancel_after_bytes; /* cancel from on_data once this many bytes arrived (0: never) */
    tt_http_req *req;
} result;

static server srv;

static void on_write(uv_write_t *w, int status)
{
    free(w->data);
    free(w);
}

static void send_text(const char *text)
{
    if (!srv.client)
        return;
    uv_write_t *w = malloc(sizeof *w);
    char *copy = strdup(text);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)strlen(copy));
    uv_write(w, (uv_stream_t *)srv.client, &b, 1, on_write);
}

static void send_chunk(const char *text)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%zx\r\n%s\r\n", strlen(text), text);
    send_text(buf);
}

static void on_client_closed(uv_handle_t *h)
{
    free(h);
}

static void close_client(void)
{
    if (srv.client) {
        uv_close((uv_handle_t *)srv.client, on_client_closed);
        srv.client = NULL;
    }
}

static void on_step(uv_timer_t *t)
{
    static const char *words[] = {"alpha ", "beta ", "gamma"};
    if (srv.mode == M_STREAM && srv.step < 3) {
        send_chunk(words[srv.step++]);
        if (srv.step == 3)
            send_text("0\r\n\r\n");
        else
            uv_timer_start(&srv.timer, on_step, 20, 0);
    } else if (srv.mode == M_STALL && srv.step++ == 0) {
        send_chunk("only ");
    } else if (srv.mode == M_RESET && srv.step++ == 0) {
        send_chunk("partial ");
        uv_timer_start(&srv.timer, on_step, 20, 0);
    } else if (srv.mode == M_RESET) {
        uv_tcp_close_reset(srv.client, on_client_closed);
        srv.client = NULL;
    }
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    buf->base = malloc(size);
    buf->len = size;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        srv.peer_closed = 1;
        close_client();
    } else if (n > 0 && srv.req_len + (size_t)n < sizeof srv.req) {
        int had_headers = strstr(srv.req, "\r\n\r\n") != NULL;
        memcpy(srv.req + srv.req_len, buf->base, (size_t)n);
        srv.req_len += (size_t)n;
        srv.req[srv.req_len] = '\0';
        if (!had_headers && strstr(srv.req, "\r\n\r\n") && srv.mode == M_REDIRECT) {
            send_text(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
                "Content-Length: 0\r\n\r\n");
        } else if (!had_headers && strstr(srv.req, "\r\n\r\n") && srv.mode != M_SILENT) {
            send_text("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Retry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n");
            uv_timer_start(&srv.timer, on_step, 10, 0);
        }
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *l, int status)
{
    srv.client = malloc(sizeof *srv.client);
    uv_tcp_init(srv.loop, srv.client);
    uv_accept(l, (uv_stream_t *)srv.client);
    uv_read_start((uv_stream_t *)srv.client, alloc_cb, on_read);
}

static void on_headers(tt_http_req *r, int status, void *ud)
{
    result *res = ud;
    res->status = status;
    const char *ra = tt_http_header(r, "retry-after");
    if (ra)
        snprintf(res->retry_after, sizeof res->retry_after, "%s", ra);
}

static int on_data(tt_http_req *r, const char *buf, size_t len, void *ud)
{
    result *res = ud;
    memcpy(res->body + res->body_len, buf, len);
    res->body_len += len;
    if (res->cancel_after_bytes && res->body_len >= (size_t)res->cancel_after_bytes)
        tt_http_cancel(r);
    return 0;
}

static void on_done(tt_http_req *r, tt_llm_error_class cls, const char *detail, void *ud)
{
    result *res = ud;
    res->done++;
    res->cls = cls;
    const char *location = tt_http_header(r, "location");
    if (location)
        snprintf(res->location, sizeof res->location, "%s", location);
}

static const tt_http_callbacks callbacks = {on_headers, on_data, on_done};

static int setup(void **state)
{
    uv_loop_t *loop = malloc(sizeof *loop);
    uv_loop_init(loop);
    memset(&srv, 0, sizeof srv);
    srv.loop = loop;
    uv_tcp_init(loop, &srv.listener);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&srv.listener, (const struct sockaddr *)&addr, 0);
    uv_listen((uv_stream_t *)&srv.listener, 8, on_connection);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&bound, &len);
    srv.port = ntohs(bound.sin_port);
    uv_timer_init(loop, &srv.timer);
    *state = loop;
    return 0;
}

static int teardown(void **state)
{
    uv_loop_t *loop = *state;
    close_client();
    uv_close((uv_handle_t *)&srv.listener, NULL);
    uv_close((uv_handle_t *)&srv.timer, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
    return 0;
}

/* Run one request in mode m until on_done; returns the http handle closed. */
static void run(uv_loop_t *loop, mode m, const tt_http_timeouts *t, result *res, int port)
{
    srv.mode = m;
    tt_http *h;
    assert_int_equal(tt_http_new(loop, &h), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    const char *headers[] = {"Authorization: Bearer k", "Content-Type: application/json", NULL};
    assert_int_equal(tt_http_start(h, "POST", url, headers, "{}", 2, t, &callbacks, res, &res->req),
                     0);
    while (!res->done)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(tt_http_stats_get(h)->active, 0);
    tt_http_close(h);
    for (int i = 0; i < 5; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

static void test_http_streams_body(void **state)
{
    result res = {0};
    run(*state, M_STREAM, NULL, &res, srv.port);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.cls, TT_LLM_ERR_NONE);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.retry_after, "7");
    res.body[res.body_len] = '\0';
    assert_string_equal(res.body, "alpha beta gamma");
    assert_non_null(strstr(srv.req, "Authorization: Bearer k"));
}

static void test_http_idle_timeout_when_stalled(void **state)
{
    result res = {0};
    tt_http_timeouts t = {.idle_ms = 150};
    run(*state, M_STALL, &t, &res, srv.port);
    assert_int_equal(res.cls, TT_LLM_ERR_TIMEOUT);
    assert_int_equal(res.body_len, 5);
}

static void test_http_first_byte_timeout(void **state)
{
    result res = {0};
    tt_http_timeouts t = {.first_byte_ms = 150};
    run(*state, M_SILENT, &t, &res, srv.port);
    assert_int_equal(res.cls, TT_LLM_ERR_TIMEOUT);
    assert_int_equal(res.body_len, 0);
}

static void test_http_reset_mid_stream_is_network_error(void **state)
{
    result res = {0};
    run(*state, M_RESET, NULL, &res, srv.port);
    assert_int_equal(res.cls, TT_LLM_ERR_NETWORK);
    assert_int_equal(res.body_len, 8);
}

static void test_http_cancel_closes_upstream(void **state)
{
    uv_loop_t *loop = *state;
    result res = {.cancel_after_bytes = 1};
    run(loop, M_STREAM, NULL, &res, srv.port);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.cls, TT_LLM_ERR_CANCELLED);
    for (int i = 0; i < 50 && !srv.peer_closed; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    assert_true(srv.peer_closed);
}

/* Shutdown: a transfer still streaming ends once, cancelled, inside
 * tt_http_close(); its connection closes and no handle stays open (the
 * teardown's uv_loop_close() would fail). */
static void test_http_close_cancels_a_transfer_in_flight_once(void **state)
{
    uv_loop_t *loop = *state;
    srv.mode = M_STALL;
    tt_http *h;
    assert_int_equal(tt_http_new(loop, &h), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
    result res = {0};
    assert_int_equal(tt_http_start(h, "POST", url, NULL, "{}", 2, NULL, &callbacks, &res, NULL), 0);
    while (res.body_len < 5)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(res.done, 0);
    tt_http_close(h);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.cls, TT_LLM_ERR_CANCELLED);
    for (int i = 0; i < 50 && !srv.peer_closed; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    assert_true(srv.peer_closed);
    assert_int_equal(res.done, 1);
}

static void test_http_refused_is_network_error(void **state)
{
    result res = {0};
    run(*state, M_STREAM, NULL, &res, 1); /* nothing listens on port 1 */
    assert_int_equal(res.cls, TT_LLM_ERR_NETWORK);
}

static void test_http_bodiless_redirect_reports_its_status_and_is_not_followed(void **state)
{
    result res = {0};
    run(*state, M_REDIRECT, NULL, &res, srv.port);
    assert_int_equal(res.cls, TT_LLM_ERR_NONE);
    assert_int_equal(res.status, 307);
    assert_string_equal(res.location, "http://127.0.0.1:1/elsewhere");
    assert_int_equal(res.body_len, 0);
}

/* An option curl refuses (a URL past its 8 MB input limit) fails the start
 * at once with a clear code; nothing is started, counted or left open. */
static void test_http_refused_option_fails_the_start(void **state)
{
    uv_loop_t *loop = *state;
    tt_http *h;
    assert_int_equal(tt_http_new(loop, &h), 0);
    size_t n = 9u << 20;
    char *url = malloc(n + 1);
    assert_non_null(url);
    memcpy(url, "http://127.0.0.1/", 17);
    memset(url + 17, 'a', n - 17);
    url[n] = '\0';
    result res = {0};
    tt_http_req *req = NULL;
    assert_int_equal(tt_http_start(h, "POST", url, NULL, "{}", 2, NULL, &callbacks, &res, &req),
                     TT_EINVAL);
    free(url);
    assert_null(req);
    assert_int_equal(res.done, 0);
    assert_int_equal(tt_http_stats_get(h)->started, 0);
    assert_int_equal(tt_http_stats_get(h)->active, 0);
    tt_http_close(h); /* the teardown's loop run frees it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_streams_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_idle_timeout_when_stalled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_reset_mid_stream_is_network_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_cancel_closes_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_close_cancels_a_transfer_in_flight_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_refused_is_network_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_refused_option_fails_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_http_bodiless_redirect_reports_its_status_and_is_not_followed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
