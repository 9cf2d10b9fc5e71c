/* HTTP client transfers on the server's libuv loop: libcurl's multi-socket
 * API, no extra threads (ARCHITECTURE.md, principle 1).
 *
 * One tt_http per loop holds the curl multi handle (and so the connection
 * cache: keep-alive reuse, HTTP/2 over TLS where the upstream offers it).
 * Each tt_http_req is one transfer with four timeouts: connect, first byte,
 * idle between chunks, and total. Body bytes are handed over as they arrive.
 * A finished transfer's curl easy handle is reset (curl_easy_reset: every
 * option back to its default) and kept, up to 16, for the next request;
 * only one that ended cleanly and was never paused.
 *
 * Every started request ends exactly once with on_done: success, a timeout, a
 * network error, or a cancel (also at tt_http_close). After on_done the
 * request handle is gone. */
#ifndef TT_HTTP_H
#define TT_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agents/llm/llm.h"

typedef struct tt_http tt_http;
typedef struct tt_http_req tt_http_req;

typedef struct tt_http_timeouts {
    int64_t connect_ms;    /* TCP + TLS handshake; 0: 10 s */
    int64_t first_byte_ms; /* from start until the first body byte; 0: 60 s */
    int64_t idle_ms;       /* between two body chunks; 0: 60 s */
    int64_t total_ms;      /* the whole transfer; 0: 10 min */
} tt_http_timeouts;

typedef struct tt_http_callbacks {
    /* The status line and headers are in (before any body byte). */
    void (*on_headers)(tt_http_req *r, int status, void *ud);
    /* Body bytes. Return non-zero to abort (on_done then says CANCELLED). */
    int (*on_data)(tt_http_req *r, const char *buf, size_t len, void *ud);
    /* The end, exactly once: TT_LLM_ERR_NONE when the body was complete,
     * else TIMEOUT, NETWORK or CANCELLED; detail is a short static text. */
    void (*on_done)(tt_http_req *r, tt_llm_error_class result, const char *detail, void *ud);
} tt_http_callbacks;

typedef struct tt_http_stats {
    uint64_t started, completed, failed, cancelled, timeouts;
    uint64_t active;
    uint64_t multi_errors; /* curl_multi_socket_action calls that failed */
    uint64_t idle_events;  /* events on idle kept connections (their peer closed them) */
    uint64_t easy_reused;  /* transfers that took a kept (reset) curl easy handle */
    uint64_t easy_pooled;  /* idle easy handles kept now (at most 16) */
} tt_http_stats;

int tt_http_new(uv_loop_t *loop, tt_http **out);
/* Cancel every transfer (each gets on_done CANCELLED) and free h once its
 * handles are closed (the loop must run again). */
void tt_http_close(tt_http *h);

/* Start method url with headers ("Name: value", NULL-terminated) and body
 * (copied; may be NULL). *out (may be NULL) is valid until on_done. */
int tt_http_start(tt_http *h, const char *method, const char *url, const char *const *headers,
                  const char *body, size_t body_len, const tt_http_timeouts *t,
                  const tt_http_callbacks *cb, void *ud, tt_http_req **out);

/* As tt_http_start, signed by libcurl's AWS Signature Version 4
 * (CURLOPT_AWS_SIGV4 with sigv4 "aws:amz:<region>:<service>", the key id and
 * secret as user and password). A session token goes in the headers as
 * "x-amz-security-token: ..." (curl signs the headers it is given). aws
 * NULL: not signed. */
typedef struct tt_http_aws {
    const char *sigv4;
    const char *key_id;
    const char *secret;
} tt_http_aws;
int tt_http_start_aws(tt_http *h, const char *method, const char *url, const char *const *headers,
                      const char *body, size_t body_len, const tt_http_timeouts *t,
                      const tt_http_aws *aws, const tt_http_callbacks *cb, void *ud,
                      tt_http_req **out);

/* Abort r and close its connection. on_done(CANCELLED) runs before this
 * returns, unless called from inside one of r's own callbacks, in which case
 * it runs as soon as that callback has returned. */
void tt_http_cancel(tt_http_req *r);

/* Stop (1) or resume (0) receiving: the upstream is paused while a client is
 * choked (CURLPAUSE_RECV); timeouts for first byte and idle are suspended. */
void tt_http_pause(tt_http_req *r, int paused);

/* A response header's value (case-insensitive name), or NULL. Valid until on_done. */
const char *tt_http_header(const tt_http_req *r, const char *name);

const tt_http_stats *tt_http_stats_get(const tt_http *h);

#endif
