/* WebSocket heartbeats from one timer of ours (issue 18).
 *
 * lws 4.1 keeps a validity timer per socket on one sorted list: each socket
 * (and each pong) is inserted by walking the list, O(N), which made
 * establishing 19,000 sockets take 12-15 s. Instead one uv timer walks
 * srv->conns a few times per heartbeat interval: a socket silent for
 * heartbeat_s (nothing received: no frame, no pong) is pinged, one silent
 * for three intervals is dropped (counted in
 * tether_sockets_closed_heartbeat_total). Any frame received counts as life,
 * as a pong does. The walk also closes sockets whose token has expired (one
 * lws timer per socket was the same sorted insert). */
#ifndef TT_HEARTBEAT_H
#define TT_HEARTBEAT_H

#include <libwebsockets.h>

#include "server/server.h"

/* Start the timer (after the lws context exists); 0 or TT_EINTERNAL. */
int tt_heartbeat_start(tt_server *srv);
/* Close the timer (idempotent). */
void tt_heartbeat_stop(tt_server *srv);
/* Called for every event of the WebSocket protocol after ws.c handled it:
 * marks the socket alive on its establishment, each frame and each pong. */
void tt_heartbeat_note(struct lws *wsi, enum lws_callback_reasons reason, void *user);

#endif
