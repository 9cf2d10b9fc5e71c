/* Our own listening socket and accept loop (see listener.h). */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "server/heartbeat.h"
#include "server/http_headers.h"
#include "server/listener.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/tls.h"

#define ACCEPT_BATCH 64     /* connections taken per loop pass; the rest wait for the next */
#define ACCEPT_PAUSE_MS 100 /* after an accept error the spare descriptor cannot absorb */
#define HAND_OVER_DRAIN_PASSES                                                                     \
    16 /* accept batches taken per socket before closing at a hand-over */
/* Descriptors kept back from --max-connections' default for LMDB, provider
 * and tool calls (one socket each), photo files and lws's own pipes. */
#define FD_RESERVE_MIN 64
#define FD_RESERVE_DIVISOR 16

static const char REFUSAL_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 21\r\n"
                                  "Retry-After: 1\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "too many connections\n";

/* RLIMIT_NOFILE less the reserve: what --max-connections 0 means. */
static uint64_t default_max(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1024;
    uint64_t n = (uint64_t)rl.rlim_cur, reserve = FD_RESERVE_MIN + n / FD_RESERVE_DIVISOR;
    return n > reserve ? n - reserve : 1;
}

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* SO_REUSEPORT lets an upgrade's new process listen beside this one
 * (upgrade.c). Set before bind only by a --takeover: an ordinary start binds
 * without it, so a port another process listens on is refused (EADDRINUSE),
 * then sets it so that its own successor can join. */
static int bind_reusable(int fd, const struct addrinfo *a, int takeover)
{
    int one = 1;
    if (takeover && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        return -1;
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0)
        return -1;
    return takeover ? 0 : setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
}

/* One listening socket on a, appended to l->socks. 0, or an errno. */
static int listen_on(tt_listener *l, const struct addrinfo *a, int takeover)
{
    if (l->n_socks >= TT_LISTEN_MAX)
        return E2BIG;
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1, err = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (a->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind_reusable(fd, a, takeover) != 0 || listen(fd, SOMAXCONN) != 0)
        err = errno;
    if (err) {
        close(fd);
        return err;
    }
    l->socks[l->n_socks++].fd = fd;
    return 0;
}

/* Every address one element of --host resolves to ("[::1]" or "::1" for
 * IPv6). 0, or a message for the log. */
static const char *listen_host(tt_listener *l, const char *host, const char *port, int takeover)
{
    char name[256];
    size_t n = strlen(host);
    while (n > 0 && host[n - 1] == ' ')
        n--;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof name)
        return "an empty or too long address in --host";
    memcpy(name, host, n);
    name[n] = '\0';
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(name, port, &hints, &res);
    if (gai)
        return gai_strerror(gai);
    int err = 0;
    for (struct addrinfo *a = res; a && !err; a = a->ai_next)
        err = listen_on(l, a, takeover);
    freeaddrinfo(res);
    if (err == EADDRINUSE) /* never serve some of host's addresses while another owns one */
        return "the port is already in use by another process (Address already in use)";
    return err == E2BIG ? "--host names more than 8 addresses" : err ? strerror(err) : NULL;
}

int tt_listener_open(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (l->opened && l->n_socks > 0 && l->socks[0].fd >= 0)
        return 0; /* a --takeover opened it before the store (upgrade.c) */
    int takeover = strcmp(srv->cfg.takeover, "on") == 0;
    l->spare_fd = -1;
    for (int i = 0; i < TT_LISTEN_MAX; i++)
        l->socks[i] = (tt_listen_sock){.fd = -1, .srv = srv};
    l->n_socks = 0;
    l->opened = 1;
    l->max = srv->cfg.max_connections > 0 ? (uint64_t)srv->cfg.max_connections : default_max();
    char port[16], host[sizeof srv->cfg.host];
    snprintf(port, sizeof port, "%d", srv->cfg.port);
    snprintf(host, sizeof host, "%s", srv->cfg.host[0] ? srv->cfg.host : "0.0.0.0,::");
    const char *why = NULL;
    char *save = NULL;
    for (char *h = strtok_r(host, ",", &save); h && !why; h = strtok_r(NULL, ",", &save))
        why = listen_host(l, h + strspn(h, " "), port, takeover);
    if (!why && l->n_socks == 0)
        why = "--host names no address";
    l->spare_fd = open_spare();
    if (why) {
        tt_log(TT_ERROR, "cannot listen",
               json_pack("{s:s, s:i, s:s}", "host", srv->cfg.host, "port", srv->cfg.port, "error",
                         why));
        tt_listener_close(srv);
        return TT_EIO;
    }
    return 0;
}

json_t *tt_listener_bound(const tt_server *srv)
{
    const tt_listener *l = &srv->listener;
    json_t *out = json_array();
    for (int i = 0; out && i < l->n_socks; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char addr[INET6_ADDRSTRLEN] = "?", text[INET6_ADDRSTRLEN + 16];
        if (getsockname(l->socks[i].fd, (struct sockaddr *)&ss, &len) != 0)
            continue;
        int v6 = ss.ss_family == AF_INET6;
        const void *a = v6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        unsigned port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                 : ((struct sockaddr_in *)&ss)->sin_port);
        (void)inet_ntop(ss.ss_family, a, addr, sizeof addr);
        snprintf(text, sizeof text, v6 ? "[%s]:%u" : "%s:%u", addr, port);
        json_array_append_new(out, json_string(text));
    }
    return out;
}

static void refuse(tt_server *srv, int fd, tt_refusal why)
{
    tt_listener *l = &srv->listener;
    if (why != TT_REFUSED_REMOTE) /* a best effort: the client may already be gone */
        (void)!send(fd, REFUSAL_503, sizeof REFUSAL_503 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    srv->metrics.refused[why]++;
    tt_log_throttled(&l->refused_log, uv_now(&srv->loop), TT_WARN, "connection refused",
                     json_pack("{s:s, s:I, s:I}", "reason", tt_refusal_names[why], "open",
                               (json_int_t)l->open, "max_connections", (json_int_t)l->max));
}

static void admit(tt_server *srv, int fd, const struct sockaddr_storage *addr)
{
    tt_listener *l = &srv->listener;
    if (srv->auth.n_keys == 0 && !tt_addr_is_loopback(addr))
        refuse(srv, fd, TT_REFUSED_REMOTE);
    else if (l->open >= l->max)
        refuse(srv, fd, TT_REFUSED_MAX_CONNECTIONS);
    else {
        /* What lws's own accept did: no Nagle delay behind small frames. */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!lws_adopt_socket_vhost(l->vhost, fd)) /* lws closed fd */
            srv->metrics.refused[TT_REFUSED_ADOPT]++;
    }
}

/* Out of descriptors with a connection pending: give the spare up for one
 * accept, refuse that connection, take the spare back. 0: the pending
 * connection is gone (or there was none). */
static int shed_with_spare(tt_server *srv, int listen_fd)
{
    tt_listener *l = &srv->listener;
    if (l->spare_fd < 0)
        return -1;
    close(l->spare_fd);
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;
    if (fd >= 0)
        refuse(srv, fd, TT_REFUSED_FD_LIMIT);
    l->spare_fd = open_spare();
    return fd >= 0 || err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void on_readable(uv_poll_t *h, int status, int events);
static void pause_accepting(tt_server *srv, int err);

static int poll_all(tt_listener *l)
{
    int rc = 0;
    for (int i = 0; i < l->n_socks && rc == 0; i++)
        rc = uv_poll_start(&l->socks[i].poll, UV_READABLE, on_readable);
    return rc;
}

static void on_pause_over(uv_timer_t *t)
{
    tt_server *srv = t->data;
    tt_listener *l = &srv->listener;
    if (l->spare_fd < 0)
        l->spare_fd = open_spare();
    int rc = poll_all(l);
    if (rc) {
        pause_accepting(srv, -rc); /* try again after another pause */
        return;
    }
    tt_log(TT_INFO, "accepting again", json_pack("{s:I}", "open", (json_int_t)l->open));
}

/* An error accepting that refusing cannot clear: stop polling for a while
 * instead of spinning on a socket that stays readable. */
static void pause_accepting(tt_server *srv, int err)
{
    tt_listener *l = &srv->listener;
    srv->metrics.accept_errors++;
    tt_log_throttled(&l->error_log, uv_now(&srv->loop), TT_ERROR, "accept failed",
                     json_pack("{s:s, s:I, s:i}", "error", strerror(err), "open",
                               (json_int_t)l->open, "pause_ms", ACCEPT_PAUSE_MS));
    for (int i = 0; i < l->n_socks; i++)
        (void)uv_poll_stop(&l->socks[i].poll); /* stopping an initialised poll cannot fail */
    int rc = uv_timer_start(&l->pause, on_pause_over, ACCEPT_PAUSE_MS, 0);
    assert(rc == 0); /* the pause timer closes only with the listener */
    (void)rc;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    tt_listen_sock *ls = h->data;
    tt_server *srv = ls->srv;
    (void)events;
    if (status < 0) {
        pause_accepting(srv, -status);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && ls->fd >= 0; i++) {
        struct sockaddr_storage addr;
        socklen_t alen = sizeof addr;
        int fd = accept4(ls->fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(srv, fd, &addr);
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK)
            return;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO)
            continue;
        if ((err == EMFILE || err == ENFILE) && shed_with_spare(srv, ls->fd) == 0)
            continue;
        pause_accepting(srv, err);
        return;
    }
}

int tt_listener_start(tt_server *srv, const char *vhost_name)
{
    tt_listener *l = &srv->listener;
    l->vhost = lws_get_vhost_by_name(srv->lws, vhost_name);
    if (!l->vhost)
        return TT_EIO;
    int rc = 0, n = 0;
    while (n < l->n_socks && rc == 0) {
        rc = uv_poll_init(&srv->loop, &l->socks[n].poll, l->socks[n].fd);
        if (rc == 0) {
            l->socks[n].poll.data = &l->socks[n];
            n++;
        }
    }
    (void)uv_timer_init(&srv->loop, &l->pause); /* only fills the struct */
    l->pause.data = srv;
    l->n_polls = n;
    l->handles_open = 1;
    return rc == 0 && poll_all(l) == 0 ? 0 : TT_EIO;
}

void tt_listener_hand_over(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (!l->opened || l->n_socks == 0 || l->socks[0].fd < 0)
        return;
    /* take what the kernel queued here: it would be reset at close */
    for (int i = 0; l->handles_open && i < l->n_polls; i++)
        for (int pass = 0; pass < HAND_OVER_DRAIN_PASSES; pass++)
            on_readable(&l->socks[i].poll, 0, UV_READABLE);
    tt_listener_close(srv);
}

void tt_listener_close(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (!l->opened)
        return;
    if (l->handles_open) {
        for (int i = 0; i < l->n_polls; i++)
            uv_close((uv_handle_t *)&l->socks[i].poll, NULL);
        uv_close((uv_handle_t *)&l->pause, NULL);
        l->handles_open = 0;
    }
    for (int i = 0; i < l->n_socks; i++) {
        if (l->socks[i].fd >= 0)
            close(l->socks[i].fd);
        l->socks[i].fd = -1;
    }
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    l->spare_fd = -1;
}

int tt_listener_first_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason,
                                        void *user, void *in, size_t len)
{
    tt_server *srv = lws_context_user(lws_get_context(wsi));
    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
        tt_tls_ctx_created(srv, user); /* user: the vhost's SSL_CTX */
        return 0;
    }
    if (reason == LWS_CALLBACK_FILTER_HTTP_CONNECTION && tt_http_gate_unread_body(wsi)) {
        tt_log(TT_WARN, "a request body for the web page's files: connection closed", NULL);
        return -1;
    }
    if (reason == LWS_CALLBACK_WSI_CREATE)
        srv->listener.open++;
    else if (reason == LWS_CALLBACK_WSI_DESTROY && srv->listener.open > 0)
        srv->listener.open--;
    int rc = tt_ws_callback(wsi, reason, user, in, len);
    tt_heartbeat_note(wsi, reason, user);
    return rc;
}
