/* Counters for GET /metrics (Prometheus text format 0.0.4). Everything is
 * counted on the loop thread; no locks. */
#ifndef TT_METRICS_H
#define TT_METRICS_H

#include <stdint.h>

#define TT_WIRE_CODES 12
extern const char *const tt_wire_codes[TT_WIRE_CODES];

/* Why a connection was closed as soon as it was accepted (listener.c). */
typedef enum tt_refusal {
    TT_REFUSED_MAX_CONNECTIONS, /* --max-connections sockets already open */
    TT_REFUSED_FD_LIMIT,        /* out of file descriptors (EMFILE/ENFILE) */
    TT_REFUSED_REMOTE,          /* open mode serves loopback clients only */
    TT_REFUSED_ADOPT,           /* lws could not take the socket */
    TT_REFUSED__LAST
} tt_refusal;
extern const char *const tt_refusal_names[TT_REFUSED__LAST];

typedef struct tt_metrics {
    uint64_t connections;       /* WebSocket connections open now */
    uint64_t connections_total; /* accepted since start */
    uint64_t frames_in;         /* client frames received */
    uint64_t frames_out;        /* frames written to sockets */
    uint64_t writes_out;        /* WebSocket writes: coalesced frames count once */
    uint64_t bytes_in, bytes_out;
    uint64_t http_requests;
    uint64_t dropped_lagging; /* sockets dropped for lag */
    uint64_t flow_pauses;     /* model calls paused for a socket far behind (flow.h) */
    uint64_t dropped_output;  /* sockets dropped for unread replies */
    uint64_t tokens_minted;
    uint64_t errors[TT_WIRE_CODES];     /* error replies sent, by code */
    uint64_t refused[TT_REFUSED__LAST]; /* connections refused, by reason */
    uint64_t accept_errors;             /* accept() failures other than a refusal */
    uint64_t writable_refused;          /* lws_callback_on_writable() refusals (socket closing) */
    uint64_t dropped_rate_bytes;        /* sockets closed far over the byte rate */
    uint64_t closed_token_expired;      /* sockets closed when their token expired */
    uint64_t closed_heartbeat;          /* sockets dropped after 3 heartbeats of silence */
    uint64_t http_body_bytes;           /* request body bytes held now (--max-body-memory) */
} tt_metrics;

/* Count one error reply with the given wire code. */
void tt_metrics_error(tt_metrics *m, const char *code);

struct tt_server;
/* Render every metric (caller frees). */
char *tt_metrics_render(const struct tt_server *srv, size_t *len);

#endif
