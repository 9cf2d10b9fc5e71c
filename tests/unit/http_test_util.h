/* Shared by the HTTP client's tests (test_http_keep, test_http_pool): what a
 * transfer delivered (http_result, collected by http_result_callbacks) and
 * a listener on 127.0.0.1 at a free port. Static helpers in a header because
 * each test is its own program. */
#ifndef TT_HTTP_TEST_UTIL_H
#define TT_HTTP_TEST_UTIL_H

#include <string.h>
#include <uv.h>

#include "agents/llm/http.h"

typedef struct http_result {
    int done;
    tt_llm_error_class cls;
    char body[64]; /* the body's first bytes */
    size_t body_len;
} http_result;

static int http_result_data(tt_http_req *r, const char *buf, size_t len, void *ud)
{
    (void)r;
    http_result *res = ud;
    if (res->body_len + len < sizeof res->body) {
        memcpy(res->body + res->body_len, buf, len);
        res->body_len += len;
    }
    return 0;
}

static void http_result_done(tt_http_req *r, tt_llm_error_class cls, const char *detail, void *ud)
{
    (void)r;
    (void)detail;
    http_result *res = ud;
    res->done++;
    res->cls = cls;
}

static const tt_http_callbacks http_result_callbacks = {.on_data = http_result_data,
                                                        .on_done = http_result_done};

/* listener listening on 127.0.0.1 at a free port: the port, or -1. */
static int http_listen_loopback(uv_loop_t *loop, uv_tcp_t *listener, int backlog,
                                uv_connection_cb on_connection)
{
    struct sockaddr_in addr, bound;
    int len = sizeof bound;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_init(loop, listener) != 0 ||
        uv_tcp_bind(listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)listener, backlog, on_connection) != 0 ||
        uv_tcp_getsockname(listener, (struct sockaddr *)&bound, &len) != 0)
        return -1;
    return ntohs(bound.sin_port);
}

#endif
