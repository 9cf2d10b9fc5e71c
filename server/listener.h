/* The listening socket, owned here rather than by lws: lws 4.1 on libuv
 * accepts by itself and, out of file descriptors, spins on EMFILE and logs
 * every failure. We accept with accept4() from a uv_poll_t on our own socket
 * (bound to each address of --host, a comma-separated list, on --port, and
 * nowhere else) and hand each connection to lws with lws_adopt_socket_vhost()
 * on a vhost created without a listener. An IPv6 socket is IPV6_V6ONLY, so
 * "0.0.0.0,::" binds both families side by side; a name binds every address
 * it resolves to. The start-up log names what was bound, read back from each
 * socket with getsockname().
 *
 * Limits, enforced at accept:
 *   - at most `max` sockets open (--max-connections; default RLIMIT_NOFILE
 *     less a reserve for LMDB, provider calls and files): more are answered
 *     503 and closed;
 *   - out of descriptors anyway (EMFILE/ENFILE), a spare descriptor kept for
 *     the purpose is closed, the connection accepted and closed at once, and
 *     the spare reopened, so the listener never spins on a pending
 *     connection it cannot take; an error that trick cannot absorb pauses
 *     accepting for ACCEPT_PAUSE_MS;
 *   - open mode serves loopback clients only.
 * Every refusal is counted by reason (metrics.h) and logged at most once a
 * second. */
#ifndef TT_LISTENER_H
#define TT_LISTENER_H

#include <stdint.h>
#include <uv.h>
#include <libwebsockets.h>

#include "server/logging.h"

struct tt_server;

#define TT_LISTEN_MAX 8 /* listening sockets: addresses --host names, all told */

typedef struct tt_listen_sock {
    int fd; /* -1 when closed */
    uv_poll_t poll;
    struct tt_server *srv;
} tt_listen_sock;

typedef struct tt_listener {
    int opened;   /* tt_listener_open ran: socks and spare_fd are meaningful */
    int spare_fd; /* held for EMFILE; -1 while it is in use or lost */
    tt_listen_sock socks[TT_LISTEN_MAX];
    int n_socks;
    int n_polls;             /* socks whose poll was initialised */
    uv_timer_t pause;        /* restarts accepting after an error */
    int handles_open;        /* polls and pause were initialised and not yet closed */
    struct lws_vhost *vhost; /* where accepted sockets are adopted */
    uint64_t open;           /* sockets lws holds (WSI_CREATE minus WSI_DESTROY) */
    uint64_t max;            /* the cap in effect */
    tt_log_throttle refused_log, error_log;
} tt_listener;

/* Bind and listen on every address of cfg.host at cfg.port and work out the
 * cap. Logs and returns TT_EIO when an address cannot be bound (nothing is
 * left listening then); a port another process holds on any of the host's
 * addresses is that error (never a start on the host's other addresses), and
 * the process exits 1. A --takeover binds with SO_REUSEPORT beside the
 * running process (upgrade.c). */
int tt_listener_open(struct tt_server *srv);

/* What is bound, read from the sockets: a JSON array of "ADDR:PORT"
 * ("[ADDR]:PORT" for IPv6), new reference. */
json_t *tt_listener_bound(const struct tt_server *srv);

/* Start accepting into srv->lws's vhost named vhost_name. */
int tt_listener_start(struct tt_server *srv, const char *vhost_name);

/* An upgrade (upgrade.c): accept what is queued on the sockets (at most
 * 16 batches each), then close them; the new process, listening on the same
 * port with SO_REUSEPORT, gets every later connection. */
void tt_listener_hand_over(struct tt_server *srv);

/* Stop accepting and close the socket (idempotent; handles close on the loop). */
void tt_listener_close(struct tt_server *srv);

/* protocols[0]'s callback: counts sockets (lws sends WSI_CREATE and
 * WSI_DESTROY to the first protocol), then hands everything to tt_ws_callback. */
int tt_listener_first_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason,
                                        void *user, void *in, size_t len);

#endif
