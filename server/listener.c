/* Our own listening socket and accept loop (see listener.h). */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "server/listener.h"
#include "server/server.h"

#define ACCEPT_BATCH 64           /* connections taken per loop pass; the rest wait for the next */
#define ACCEPT_PAUSE_MS 100       /* after an accept error the spare descriptor cannot absorb */
#define HAND_OVER_DRAIN_PASSES 16 /* accept batches taken before closing at a hand-over */
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
 * then sets it before listen() so that its own successor can join. */
static int bind_reusable(int fd, const struct addrinfo *a, int takeover)
{
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        return -1;
    if (takeover && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        return -1;
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0)
        return -1;
    return takeover ? 0 : setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
}

int tt_listener_open(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (l->opened && l->fd >= 0)
        return 0; /* a --takeover opened it before the store (upgrade.c) */
    int takeover = strcmp(srv->cfg.takeover, "on") == 0;
    l->fd = l->spare_fd = -1;
    l->opened = 1;
    l->max = srv->cfg.max_connections > 0 ? (uint64_t)srv->cfg.max_connections : default_max();
    char port[16];
    snprintf(port, sizeof port, "%d", srv->cfg.port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(srv->cfg.host[0] ? srv->cfg.host : NULL, port, &hints, &res);
    int err = 0;
    for (struct addrinfo *a = gai == 0 ? res : NULL; a && l->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && bind_reusable(fd, a, takeover) == 0 && listen(fd, SOMAXCONN) == 0) {
            l->fd = fd;
            break;
        }
        err = errno;
        if (fd >= 0)
            close(fd);
        if (err == EADDRINUSE) /* never serve some of host's addresses while another owns one */
            break;
    }
    if (res)
        freeaddrinfo(res);
    l->spare_fd = open_spare();
    if (l->fd < 0) {
        int in_use = gai == 0 && err == EADDRINUSE;
        tt_log(TT_ERROR,
               in_use ? "cannot listen: the port is already in use by another process"
                      : "cannot listen",
               json_pack("{s:s, s:i, s:s}", "host", srv->cfg.host, "port", srv->cfg.port, "error",
                         gai ? gai_strerror(gai) : strerror(err)));
        tt_listener_close(srv);
        return TT_EIO;
    }
    return 0;
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
static int shed_with_spare(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (l->spare_fd < 0)
        return -1;
    close(l->spare_fd);
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;
    if (fd >= 0)
        refuse(srv, fd, TT_REFUSED_FD_LIMIT);
    l->spare_fd = open_spare();
    return fd >= 0 || err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void on_readable(uv_poll_t *h, int status, int events);
static void pause_accepting(tt_server *srv, int err);

static void on_pause_over(uv_timer_t *t)
{
    tt_server *srv = t->data;
    tt_listener *l = &srv->listener;
    if (l->spare_fd < 0)
        l->spare_fd = open_spare();
    int rc = uv_poll_start(&l->poll, UV_READABLE, on_readable);
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
    (void)uv_poll_stop(&l->poll); /* stopping an initialised poll cannot fail */
    int rc = uv_timer_start(&l->pause, on_pause_over, ACCEPT_PAUSE_MS, 0);
    assert(rc == 0); /* the pause timer closes only with the listener */
    (void)rc;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    tt_server *srv = h->data;
    tt_listener *l = &srv->listener;
    (void)events;
    if (status < 0) {
        pause_accepting(srv, -status);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && l->fd >= 0; i++) {
        struct sockaddr_storage addr;
        socklen_t alen = sizeof addr;
        int fd = accept4(l->fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(srv, fd, &addr);
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK)
            return;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO)
            continue;
        if ((err == EMFILE || err == ENFILE) && shed_with_spare(srv) == 0)
            continue;
        pause_accepting(srv, err);
        return;
    }
}

int tt_listener_start(tt_server *srv, const char *vhost_name)
{
    tt_listener *l = &srv->listener;
    l->vhost = lws_get_vhost_by_name(srv->lws, vhost_name);
    if (!l->vhost || uv_poll_init(&srv->loop, &l->poll, l->fd) != 0)
        return TT_EIO;
    (void)uv_timer_init(&srv->loop, &l->pause); /* only fills the struct */
    l->poll.data = l->pause.data = srv;
    l->handles_open = 1;
    return uv_poll_start(&l->poll, UV_READABLE, on_readable) == 0 ? 0 : TT_EIO;
}

void tt_listener_hand_over(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (!l->opened || l->fd < 0)
        return;
    if (l->handles_open) /* take what the kernel queued here: it would be reset at close */
        for (int i = 0; i < HAND_OVER_DRAIN_PASSES; i++)
            on_readable(&l->poll, 0, UV_READABLE);
    tt_listener_close(srv);
}

void tt_listener_close(tt_server *srv)
{
    tt_listener *l = &srv->listener;
    if (!l->opened)
        return;
    if (l->handles_open) {
        uv_close((uv_handle_t *)&l->poll, NULL);
        uv_close((uv_handle_t *)&l->pause, NULL);
        l->handles_open = 0;
    }
    if (l->fd >= 0)
        close(l->fd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    l->fd = l->spare_fd = -1;
}

int tt_listener_first_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason,
                                        void *user, void *in, size_t len)
{
    tt_server *srv = lws_context_user(lws_get_context(wsi));
    if (reason == LWS_CALLBACK_WSI_CREATE)
        srv->listener.open++;
    else if (reason == LWS_CALLBACK_WSI_DESTROY && srv->listener.open > 0)
        srv->listener.open--;
    return tt_ws_callback(wsi, reason, user, in, len);
}
