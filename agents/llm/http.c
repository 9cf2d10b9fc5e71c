/* libcurl's multi-socket API on libuv (see http.h).
 *
 * curl tells us which sockets to watch (socket callback) and when to wake it
 * (timer callback); uv_poll handles and one uv_timer do the watching, and
 * curl_multi_socket_action() does the work. Per request, one more uv_timer
 * enforces the first-byte and between-chunk timeouts that curl lacks.
 *
 * Returns: uv_timer_init, uv_timer_stop, uv_poll_stop and uv_close cannot
 * fail on the initialised handles they get here; uv_timer_start fails only
 * on a closing handle, which a live request's watchdog never is (asserted).
 * curl_multi_remove_handle and CURLINFO_PRIVATE fail only on handles curl
 * does not know, which ours never are. A failing curl_multi_socket_action
 * is counted (stats.multi_errors); transfers it leaves behind still end
 * through their watchdog. */
#include <assert.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agents/llm/curl_lazy.h"
#include "agents/llm/http.h"
#include "protocol/errors.h"

#define MAX_HEADERS 64
#define MAX_HEADER_BYTES 8192

#define FD_MAP_MAX (1 << 20) /* the highest socket number watched (RLIMIT_NOFILE is lower) */
/* Idle easy handles kept for the next requests (easy_take): a new one costs
 * an allocation of curl's whole per-transfer state and its buffers; one kept
 * is curl_easy_reset (every option back to its default) and set again. */
#define EASY_POOL_MAX 16

struct tt_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    tt_http_req *reqs;
    struct sock_ctx *socks;  /* sockets curl asked us to watch, or opened (open_socket) */
    struct sock_ctx **by_fd; /* socket number -> its sock_ctx */
    size_t n_by_fd;
    tt_http_stats stats;
    CURL *pool[EASY_POOL_MAX]; /* idle easy handles, reset: no option of an old transfer */
    size_t n_pool;
    int closing;
    int open_handles; /* uv handles not yet closed: the timer and socket polls */
};

/* One socket's poll handle. A connection socket (opened by open_socket) keeps
 * it from its opening to its closing (close_socket), across the requests that
 * reuse the connection: curl's CURL_POLL_REMOVE at the end of a transfer only
 * marks it idle, left armed as it was (an idle socket's first event stops the
 * polling: on_poll), so a request on a kept connection costs no epoll_ctl. */
typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    tt_http *h;
    int events;                   /* what the poll is started with (0: stopped) */
    int watched;                  /* curl watches it: between its IN/OUT and its REMOVE */
    int kept;                     /* opened by open_socket: lives until close_socket */
    struct sock_ctx *next, *prev; /* tt_http.socks */
} sock_ctx;

struct tt_http_req {
    tt_http *h;
    CURL *easy;
    struct curl_slist *req_headers;
    char *body;
    tt_http_callbacks cb;
    void *ud;
    tt_http_timeouts t;
    uv_timer_t *watchdog;       /* first byte / idle; allocated apart, closed asynchronously */
    char *headers[MAX_HEADERS]; /* response headers, "name: value" */
    size_t n_headers, header_bytes;
    int status;
    int headers_told;
    int got_body;
    int paused;
    int was_paused; /* paused at least once: its handle is not kept (easy_give) */
    int in_callback;
    int cancel_requested;
    int finished;
    tt_http_req *next, *prev;
};

static void check_done(tt_http *h);

static void maybe_free(tt_http *h)
{
    if (h->closing && h->open_handles == 0) {
        free(h->by_fd);
        free(h);
    }
}

static void on_handle_closed(uv_handle_t *handle)
{
    tt_http *h = handle->data;
    if (handle != (uv_handle_t *)&h->timer)
        free(handle); /* a sock_ctx: its poll is its first member */
    h->open_handles--;
    maybe_free(h);
}

static sock_ctx *ctx_of(const tt_http *h, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < h->n_by_fd ? h->by_fd[fd] : NULL;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *ctx = (sock_ctx *)p;
    tt_http *h = ctx->h;
    int flags = 0, running;
    if (!ctx->watched) {
        /* Idle in curl's pool: the peer closed it (or sent what nobody asked
         * for). Stop polling (level-triggered, it would fire again); curl
         * finds the connection dead when it next picks it, and closes it. */
        (void)uv_poll_stop(&ctx->poll);
        ctx->events = 0;
        h->stats.idle_events++;
        return;
    }
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else
        flags = ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
    if (curl_multi_socket_action(h->multi, ctx->fd, flags, &running) != CURLM_OK)
        h->stats.multi_errors++;
    check_done(h);
}

static void sock_close(tt_http *h, sock_ctx *ctx)
{
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        h->socks = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    if (ctx_of(h, ctx->fd) == ctx)
        h->by_fd[ctx->fd] = NULL;
    /* uv_close stops the poll: the socket leaves epoll before it is closed. */
    uv_close((uv_handle_t *)&ctx->poll, on_handle_closed);
}

/* A poll handle for fd, registered under its number; NULL when out of memory,
 * past FD_MAP_MAX, or a socket epoll refuses. */
static sock_ctx *sock_new(tt_http *h, curl_socket_t fd, int kept)
{
    if (fd < 0 || fd >= FD_MAP_MAX)
        return NULL;
    if ((size_t)fd >= h->n_by_fd) {
        size_t n = h->n_by_fd ? h->n_by_fd : 64;
        while (n <= (size_t)fd)
            n *= 2;
        sock_ctx **grown = realloc(h->by_fd, n * sizeof *grown);
        if (!grown)
            return NULL;
        memset(grown + h->n_by_fd, 0, (n - h->n_by_fd) * sizeof *grown);
        h->by_fd = grown;
        h->n_by_fd = n;
    }
    sock_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx || uv_poll_init_socket(h->loop, &ctx->poll, fd) != 0) {
        free(ctx);
        return NULL;
    }
    ctx->fd = fd;
    ctx->h = h;
    ctx->kept = kept;
    ctx->poll.data = h;
    ctx->next = h->socks;
    if (h->socks)
        h->socks->prev = ctx;
    h->socks = ctx;
    h->by_fd[fd] = ctx;
    h->open_handles++;
    return ctx;
}

/* Curl's sockets are made here so that each has its poll handle from its
 * opening to its closing (close_socket). */
static curl_socket_t open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    tt_http *h = userp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    sock_ctx *stale = ctx_of(h, fd);
    if (stale) /* its socket was closed behind close_socket's back: curl never does */
        sock_close(h, stale);
    if (!sock_new(h, fd, 1)) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    return fd;
}

static int close_socket(void *userp, curl_socket_t fd)
{
    tt_http *h = userp;
    sock_ctx *ctx = ctx_of(h, fd);
    if (ctx)
        sock_close(h, ctx); /* out of epoll first: the number may be reused at once */
    return close(fd);
}

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    tt_http *h = userp;
    sock_ctx *ctx = ctx_of(h, fd);
    if (action == CURL_POLL_REMOVE) {
        if (ctx && ctx->kept) {
            ctx->watched = 0; /* idle: armed as it is until its next use or event */
            uv_unref((uv_handle_t *)&ctx->poll);
        } else if (ctx) {
            sock_close(h, ctx); /* not ours to keep (a resolver's pipe) */
        }
        return 0;
    }
    if (!ctx && !(ctx = sock_new(h, fd, 0)))
        return -1; /* curl fails the transfers on this socket */
    if (!ctx->watched) {
        ctx->watched = 1;
        uv_ref((uv_handle_t *)&ctx->poll);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (events == ctx->events)
        return 0; /* libuv's uv_poll_start would take it out of epoll and put it back */
    if (events == 0)
        (void)uv_poll_stop(&ctx->poll);
    else if (uv_poll_start(&ctx->poll, events, on_poll) != 0)
        return -1; /* a socket epoll refuses: curl fails its transfers */
    ctx->events = events;
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    tt_http *h = t->data;
    int running;
    if (curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
        h->stats.multi_errors++;
    check_done(h);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    tt_http *h = userp;
    if (timeout_ms < 0)
        return uv_timer_stop(&h->timer) == 0 ? 0 : -1;
    return uv_timer_start(&h->timer, on_curl_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* The multi handle is made by the first transfer, not by tt_http_new: that
 * loads libcurl (curl_lazy.h), which a start-up does not wait for. */
static int ensure_multi(tt_http *h)
{
    if (h->multi)
        return 0;
    CURLM *m = curl_multi_init(); /* loads libcurl if the server's preload has not */
    if (!m)
        return tt_curl_loaded() ? TT_ENOMEM : TT_EIO;
    if (curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer_change) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX) != CURLM_OK) {
        (void)curl_multi_cleanup(m); /* a handle just made */
        return TT_EIO;               /* a libcurl without the multi-socket API */
    }
    h->multi = m;
    return 0;
}

int tt_http_new(uv_loop_t *loop, tt_http **out)
{
    tt_http *h = calloc(1, sizeof *h);
    if (!h)
        return TT_ENOMEM;
    h->loop = loop;
    (void)uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_unref((uv_handle_t *)&h->timer);
    h->open_handles = 1;
    *out = h;
    return 0;
}

static void free_watchdog(uv_handle_t *t)
{
    free(t);
}

/* An easy handle for a new transfer: a kept one (reset when it was given
 * back), else a new one. */
static CURL *easy_take(tt_http *h)
{
    if (h->n_pool == 0)
        return curl_easy_init();
    h->stats.easy_reused++;
    h->stats.easy_pooled = --h->n_pool;
    return h->pool[h->n_pool];
}

/* Back from a finished transfer (out of the multi handle): reset at once, so
 * nothing of that transfer (its headers list, body, callbacks' data, private
 * pointer, timeouts, credentials: all freed with it) stays set, and kept when
 * there is room. Only a transfer that ended cleanly and was never paused
 * gives its handle back; any other is cleaned up, as before the pool. */
static void easy_give(tt_http *h, CURL *e, int clean)
{
    if (!clean || h->closing || h->n_pool == EASY_POOL_MAX) {
        curl_easy_cleanup(e);
        return;
    }
    curl_easy_reset(e);
    h->pool[h->n_pool++] = e;
    h->stats.easy_pooled = h->n_pool;
}

/* End r: detach it from curl, tell the owner, free it. */
static void finish(tt_http_req *r, tt_llm_error_class result, const char *detail)
{
    if (r->finished)
        return;
    r->finished = 1;
    tt_http *h = r->h;
    (void)curl_multi_remove_handle(h->multi, r->easy);
    (void)uv_timer_stop(r->watchdog);
    uv_close((uv_handle_t *)r->watchdog, free_watchdog);
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    h->stats.active--;
    if (result == TT_LLM_ERR_NONE)
        h->stats.completed++;
    else if (result == TT_LLM_ERR_CANCELLED)
        h->stats.cancelled++;
    else if (result == TT_LLM_ERR_TIMEOUT)
        h->stats.timeouts++;
    else
        h->stats.failed++;
    if (!r->headers_told && r->status > 0 && r->cb.on_headers) {
        r->headers_told = 1;
        r->cb.on_headers(r, r->status, r->ud);
    }
    r->cb.on_done(r, result, detail, r->ud);
    easy_give(h, r->easy, result == TT_LLM_ERR_NONE && !r->was_paused);
    curl_slist_free_all(r->req_headers);
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->headers[i]);
    free(r->body);
    free(r);
}

static void check_done(tt_http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        tt_http_req *r = NULL;
        (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        assert(r);
        CURLcode rc = msg->data.result;
        if (r->status == 0) {
            /* No body byte came (a 204, a redirect, an error without a body):
             * the status is still known. */
            long status = 0; /* stays 0 (no response) when curl cannot say */
            (void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
            r->status = (int)status;
        }
        if (rc == CURLE_OK)
            finish(r, TT_LLM_ERR_NONE, "complete");
        else if (r->cancel_requested)
            finish(r, TT_LLM_ERR_CANCELLED, "cancelled");
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            finish(r, TT_LLM_ERR_TIMEOUT, "timed out (connect or total)");
        else
            finish(r, TT_LLM_ERR_NETWORK, curl_easy_strerror(rc));
    }
}

static void on_watchdog(uv_timer_t *t)
{
    tt_http_req *r = t->data;
    finish(r, TT_LLM_ERR_TIMEOUT, r->got_body ? "stalled between chunks" : "no first byte in time");
}

static void arm_watchdog(tt_http_req *r)
{
    if (r->paused)
        return;
    int64_t ms = r->got_body ? r->t.idle_ms : r->t.first_byte_ms;
    int rc = uv_timer_start(r->watchdog, on_watchdog, (uint64_t)ms, 0);
    assert(rc == 0); /* the watchdog closes only in finish() */
    (void)rc;
}

static size_t on_header_line(char *buf, size_t size, size_t n, void *ud)
{
    tt_http_req *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue or a redirect): start over. */
        for (size_t i = 0; i < r->n_headers; i++)
            free(r->headers[i]);
        r->n_headers = r->header_bytes = 0;
        return len;
    }
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
        len--;
    if (len == 0 || r->n_headers >= MAX_HEADERS || r->header_bytes + len > MAX_HEADER_BYTES)
        return size * n;
    char *copy = strndup(buf, len);
    if (!copy)
        return 0;
    r->headers[r->n_headers++] = copy;
    r->header_bytes += len;
    return size * n;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    tt_http_req *r = ud;
    size_t len = size * n;
    if (r->cancel_requested)
        return 0;
    r->in_callback = 1;
    if (!r->headers_told) {
        long status = 0; /* stays 0 (no response) when curl cannot say */
        (void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        r->status = (int)status;
        r->headers_told = 1;
        if (r->cb.on_headers)
            r->cb.on_headers(r, r->status, r->ud);
    }
    r->got_body = 1;
    int stop = r->cancel_requested || r->cb.on_data(r, buf, len, r->ud) != 0;
    r->in_callback = 0;
    if (stop || r->cancel_requested) {
        r->cancel_requested = 1;
        return 0; /* curl aborts with CURLE_WRITE_ERROR; check_done says CANCELLED */
    }
    arm_watchdog(r);
    return len;
}

/* Set every option of r's transfer; the first failure is returned (an
 * unsupported option in this libcurl, a URL over curl's length limit, no
 * memory), so the transfer never starts half-configured. */
static CURLcode configure_easy(tt_http_req *r, const char *method, const char *url, size_t body_len,
                               const tt_http_aws *aws)
{
    CURL *e = r->easy;
    CURLcode first = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(e, opt, val);                                               \
        if (c_ != CURLE_OK && first == CURLE_OK)                                                   \
            first = c_;                                                                            \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_CUSTOMREQUEST, method);
    if (body_len || strcmp(method, "POST") == 0) {
        SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    SET(CURLOPT_HTTPHEADER, r->req_headers);
    SET(CURLOPT_PRIVATE, r);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header_line);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SET(CURLOPT_OPENSOCKETDATA, r->h); /* a connection outlives the request that made it */
    SET(CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, r->h);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)r->t.connect_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)r->t.total_ms);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is the caller's to judge */
    if (aws) {
        SET(CURLOPT_AWS_SIGV4, aws->sigv4);
        SET(CURLOPT_USERNAME, aws->key_id);
        SET(CURLOPT_PASSWORD, aws->secret);
    }
#undef SET
    return first;
}

int tt_http_start(tt_http *h, const char *method, const char *url, const char *const *headers,
                  const char *body, size_t body_len, const tt_http_timeouts *t,
                  const tt_http_callbacks *cb, void *ud, tt_http_req **out)
{
    return tt_http_start_aws(h, method, url, headers, body, body_len, t, NULL, cb, ud, out);
}

int tt_http_start_aws(tt_http *h, const char *method, const char *url, const char *const *headers,
                      const char *body, size_t body_len, const tt_http_timeouts *t,
                      const tt_http_aws *aws, const tt_http_callbacks *cb, void *ud,
                      tt_http_req **out)
{
    if (h->closing)
        return TT_ECONFLICT;
    int rc = ensure_multi(h);
    if (rc)
        return rc;
    rc = TT_ENOMEM;
    tt_http_req *r = calloc(1, sizeof *r);
    if (!r)
        return TT_ENOMEM;
    r->h = h;
    r->cb = *cb;
    r->ud = ud;
    r->t = t ? *t : (tt_http_timeouts){0};
    if (r->t.connect_ms <= 0)
        r->t.connect_ms = 10000;
    if (r->t.first_byte_ms <= 0)
        r->t.first_byte_ms = 60000;
    if (r->t.idle_ms <= 0)
        r->t.idle_ms = 60000;
    if (r->t.total_ms <= 0)
        r->t.total_ms = 600000;
    r->easy = easy_take(h);
    r->watchdog = malloc(sizeof *r->watchdog);
    if (body_len && (r->body = malloc(body_len)))
        memcpy(r->body, body, body_len);
    if (!r->easy || !r->watchdog || (body_len && !r->body))
        goto fail;
    for (const char *const *p = headers; p && *p; p++) {
        struct curl_slist *next = curl_slist_append(r->req_headers, *p);
        if (!next)
            goto fail;
        r->req_headers = next;
    }
    CURLcode cc = configure_easy(r, method, url, body_len, aws);
    if (cc != CURLE_OK) {
        rc = cc == CURLE_OUT_OF_MEMORY ? TT_ENOMEM : TT_EINVAL;
        goto fail;
    }
    (void)uv_timer_init(h->loop, r->watchdog); /* only fills the struct: cannot fail */
    r->watchdog->data = r;
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        uv_close((uv_handle_t *)r->watchdog, free_watchdog);
        r->watchdog = NULL;
        goto fail;
    }
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->stats.started++;
    h->stats.active++;
    arm_watchdog(r);
    if (out)
        *out = r;
    return 0;
fail:
    if (r->easy)
        easy_give(h, r->easy, 1); /* never added: reset, nothing of r kept */
    curl_slist_free_all(r->req_headers);
    free(r->watchdog);
    free(r->body);
    free(r);
    return rc;
}

void tt_http_cancel(tt_http_req *r)
{
    if (!r || r->finished)
        return;
    r->cancel_requested = 1;
    if (r->in_callback)
        return; /* on_body returns 0 once the callback is back */
    finish(r, TT_LLM_ERR_CANCELLED, "cancelled");
}

static void on_pause_failed(uv_timer_t *t)
{
    finish(t->data, TT_LLM_ERR_NETWORK, "cannot pause or resume the transfer");
}

void tt_http_pause(tt_http_req *r, int paused)
{
    if (r->finished || r->paused == paused)
        return;
    r->paused = paused;
    if (paused) {
        r->was_paused = 1;
        (void)uv_timer_stop(r->watchdog);
    }
    if (curl_easy_pause(r->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT) != CURLE_OK) {
        /* The transfer is broken: end it on the next loop pass, not inside
         * the caller's pause. */
        r->paused = 0;
        int rc = uv_timer_start(r->watchdog, on_pause_failed, 0, 0);
        assert(rc == 0);
        (void)rc;
        return;
    }
    if (!paused)
        arm_watchdog(r);
}

const char *tt_http_header(const tt_http_req *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *hdr = r->headers[i];
        if (strncasecmp(hdr, name, n) == 0 && hdr[n] == ':') {
            const char *v = hdr + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

const tt_http_stats *tt_http_stats_get(const tt_http *h)
{
    return &h->stats;
}

void tt_http_close(tt_http *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    while (h->reqs)
        finish(h->reqs, TT_LLM_ERR_CANCELLED, "shutting down");
    CURLM *multi = h->multi;
    if (multi) /* fails only on a bad handle; may report sockets removed through on_socket */
        (void)curl_multi_cleanup(multi);
    h->multi = NULL;
    while (h->n_pool > 0)
        curl_easy_cleanup(h->pool[--h->n_pool]);
    h->stats.easy_pooled = 0;
    while (h->socks)
        sock_close(h, h->socks);
    (void)uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
