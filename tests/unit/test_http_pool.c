/* agents/llm/http.c: the pool of curl easy handles. A finished transfer's
 * handle is reset and kept for the next one; nothing of the transfer before
 * may reach the next: its request headers, its body (POST fields), its
 * method, its AWS signature and credentials, its total timeout, its
 * callbacks' data. Against an HTTP server in the same loop (127.0.0.1, a free
 * port) that records each request's head and body and answers after a
 * delay chosen per request. Also: the pool is capped, and a handle whose
 * transfer failed or was cancelled is not kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/llm/http.h"
#include "http_test_util.h"
#include "protocol/errors.h"

#define MAX_CLIENTS 32
#define REQ_MAX 8192
#define POOL_CAP 16 /* EASY_POOL_MAX in http.c */

typedef struct client {
    uv_tcp_t tcp;
    uv_timer_t delay;
    char req[REQ_MAX];
    size_t len;
} client;

typedef struct server {
    uv_tcp_t listener;
    int port;
    client *clients[MAX_CLIENTS];
    int accepted;
    int delay_ms;       /* before each answer */
    int reset_next;     /* close the connection instead of answering, this many times */
    char last[REQ_MAX]; /* the last whole request: head and body */
    size_t last_len;
    int answered;
} server;

static server srv;

static void on_write(uv_write_t *w, int status)
{
    free(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_client_closed(uv_handle_t *h)
{
    client *c = h->data;
    uv_close((uv_handle_t *)&c->delay, on_timer_closed);
}

static void drop_client(client *c)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv.clients[i] == c)
            srv.clients[i] = NULL;
    uv_timer_stop(&c->delay);
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void answer(uv_timer_t *t)
{
    static char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    client *c = t->data;
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init(ok, sizeof ok - 1);
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    srv.answered++;
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    client *c = h->data;
    buf->base = c->req + c->len;
    buf->len = REQ_MAX - 1 - c->len;
}

/* The request is whole once its head is and as many body bytes as its
 * Content-Length (none without one). */
static int request_whole(const client *c)
{
    const char *end = strstr(c->req, "\r\n\r\n");
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->req) + 4, body = 0;
    for (const char *p = c->req; p && p < end; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL)
        if (strncasecmp(p, "content-length:", 15) == 0)
            body = strtoul(p + 15, NULL, 10);
    return c->len >= head + body;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;
    if (n < 0) {
        drop_client(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (!request_whole(c))
        return;
    memcpy(srv.last, c->req, c->len + 1);
    srv.last_len = c->len;
    c->len = 0;
    if (srv.reset_next > 0) {
        srv.reset_next--;
        drop_client(c);
        return;
    }
    uv_timer_start(&c->delay, answer, (uint64_t)srv.delay_ms, 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    client *c = calloc(1, sizeof *c);
    uv_tcp_init(l->loop, &c->tcp);
    uv_timer_init(l->loop, &c->delay);
    c->tcp.data = c->delay.data = c;
    uv_accept(l, (uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
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
    srv.port = http_listen_loopback(loop, &srv.listener, 64, on_connection);
    assert_true(srv.port > 0);
    *state = loop;
    return 0;
}

static int teardown(void **state)
{
    uv_loop_t *loop = *state;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv.clients[i])
            drop_client(srv.clients[i]);
    uv_close((uv_handle_t *)&srv.listener, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
    return 0;
}

static void run_until(uv_loop_t *loop, const http_result *res, int n)
{
    for (int i = 0; i < 1000000; i++) {
        int done = 0;
        for (int k = 0; k < n; k++)
            done += res[k].done;
        if (done == n)
            return;
        uv_run(loop, UV_RUN_ONCE);
    }
    fail_msg("requests did not end");
}

static void url_of(char *url, size_t n)
{
    snprintf(url, n, "http://127.0.0.1:%d/v1/pool", srv.port);
}

/* Whether the last request's head (case-insensitively) holds s. */
static int last_has(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= srv.last_len; i++)
        if (strncasecmp(srv.last + i, s, n) == 0)
            return 1;
    return 0;
}

/* A POST with its own header, a body, an AWS signature and a short total
 * timeout, answered at once; then a GET with nothing of that, answered after
 * more than the first one's total timeout, on the same (reset) handle: no
 * header, body, signature or timeout of the first may come with it. */
static void test_http_pool_reused_handle_keeps_nothing_of_the_last_transfer(void **state)
{
    uv_loop_t *loop = *state;
    tt_http *h;
    char url[96];
    url_of(url, sizeof url);
    assert_int_equal(tt_http_new(loop, &h), 0);

    const char *headers[] = {"X-Leak-Header: first", "Content-Type: application/json", NULL};
    /* short, yet long enough for a loaded machine (ASan, other tests) */
    const tt_http_timeouts short_total = {.total_ms = 1500, .first_byte_ms = 1200};
    const tt_http_aws aws = {
        .sigv4 = "aws:amz:us-east-1:bedrock", .key_id = "AKIDLEAKED", .secret = "leaked-secret"};
    http_result first = {0};
    assert_int_equal(tt_http_start_aws(h, "POST", url, headers, "{\"leak\":\"body\"}", 15,
                                       &short_total, &aws, &http_result_callbacks, &first, NULL),
                     0);
    run_until(loop, &first, 1);
    assert_int_equal(first.cls, TT_LLM_ERR_NONE);
    assert_true(last_has("POST /v1/pool"));
    assert_true(last_has("X-Leak-Header: first"));
    assert_true(last_has("AKIDLEAKED"));
    assert_true(last_has("{\"leak\":\"body\"}"));
    assert_int_equal(tt_http_stats_get(h)->easy_pooled, 1);

    srv.delay_ms = 2000; /* past the first's total (1500) and first-byte (1200) timeouts */
    http_result second = {0};
    assert_int_equal(
        tt_http_start(h, "GET", url, NULL, NULL, 0, NULL, &http_result_callbacks, &second, NULL),
        0);
    assert_int_equal(tt_http_stats_get(h)->easy_reused, 1);
    assert_int_equal(tt_http_stats_get(h)->easy_pooled, 0);
    run_until(loop, &second, 1);
    assert_int_equal(second.cls, TT_LLM_ERR_NONE); /* not the first's timeout */
    assert_int_equal(second.body_len, 2);
    assert_int_equal(first.done, 1); /* the first's callbacks' data is not the second's */
    assert_int_equal(first.body_len, 2);
    assert_true(last_has("GET /v1/pool"));
    assert_false(last_has("X-Leak-Header"));
    assert_false(last_has("Content-Type"));
    assert_false(last_has("Authorization"));
    assert_false(last_has("AKIDLEAKED"));
    assert_false(last_has("x-amz-"));
    assert_false(last_has("Content-Length"));
    assert_false(last_has("leak\":"));
    assert_int_equal(srv.accepted, 1); /* the connection was kept across the reset */
    tt_http_close(h);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A POST with a body, then a POST with none on the kept handle: the second
 * sends an empty body (Content-Length: 0), not the first's. */
static void test_http_pool_post_body_is_not_carried(void **state)
{
    uv_loop_t *loop = *state;
    tt_http *h;
    char url[96];
    url_of(url, sizeof url);
    assert_int_equal(tt_http_new(loop, &h), 0);
    http_result res[2] = {{0}};
    assert_int_equal(tt_http_start(h, "POST", url, NULL, "{\"first\":1}", 11, NULL,
                                   &http_result_callbacks, &res[0], NULL),
                     0);
    run_until(loop, &res[0], 1);
    assert_true(last_has("Content-Length: 11"));
    assert_int_equal(
        tt_http_start(h, "POST", url, NULL, NULL, 0, NULL, &http_result_callbacks, &res[1], NULL),
        0);
    run_until(loop, &res[1], 1);
    assert_int_equal(res[1].cls, TT_LLM_ERR_NONE);
    assert_int_equal(tt_http_stats_get(h)->easy_reused, 1);
    assert_true(last_has("Content-Length: 0"));
    assert_false(last_has("first"));
    tt_http_close(h);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Twenty transfers at once: sixteen handles kept at most; a failed transfer
 * (the connection reset before an answer) and a cancelled one give none
 * back. */
static void test_http_pool_is_capped_and_keeps_only_clean_handles(void **state)
{
    uv_loop_t *loop = *state;
    tt_http *h;
    char url[96];
    url_of(url, sizeof url);
    assert_int_equal(tt_http_new(loop, &h), 0);
    http_result res[20] = {{0}};
    srv.delay_ms = 20;
    for (int i = 0; i < 20; i++)
        assert_int_equal(tt_http_start(h, "GET", url, NULL, NULL, 0, NULL, &http_result_callbacks,
                                       &res[i], NULL),
                         0);
    run_until(loop, res, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(res[i].cls, TT_LLM_ERR_NONE);
    assert_int_equal(tt_http_stats_get(h)->easy_pooled, POOL_CAP);

    srv.reset_next = 100; /* every try (curl tries again on another connection) */
    http_result failed = {0};
    assert_int_equal(
        tt_http_start(h, "GET", url, NULL, NULL, 0, NULL, &http_result_callbacks, &failed, NULL),
        0);
    run_until(loop, &failed, 1);
    assert_int_not_equal(failed.cls, TT_LLM_ERR_NONE);
    assert_int_equal(tt_http_stats_get(h)->easy_pooled, POOL_CAP - 1);

    http_result cancelled = {0};
    tt_http_req *r = NULL;
    assert_int_equal(
        tt_http_start(h, "GET", url, NULL, NULL, 0, NULL, &http_result_callbacks, &cancelled, &r),
        0);
    tt_http_cancel(r);
    assert_int_equal(cancelled.cls, TT_LLM_ERR_CANCELLED);
    assert_int_equal(tt_http_stats_get(h)->easy_pooled, POOL_CAP - 2);
    tt_http_close(h);
    uv_run(loop, UV_RUN_NOWAIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_http_pool_reused_handle_keeps_nothing_of_the_last_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_pool_post_body_is_not_carried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_pool_is_capped_and_keeps_only_clean_handles,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
