/* The AI SDK's chat transport over one WebSocket: `/v1/ai-sdk/ws` (token
 * as for /v1/ws: `Authorization: Bearer` or `?token=`; none in open mode).
 *
 * In: {"type":"send", chatId, messages, trigger?, agent?} (as the HTTP
 * POST's body), {"type":"resume", chatId, lastSequence?}, {"type":"abort",
 * chatId} (cancels the run: an explicit stop; a closed socket never does).
 * Out: {"type":"start", chatId}, {"type":"chunk", chatId, sequence, chunk}
 * (sequence: the seq of the event the UI message chunk comes from, 0 for
 * chunks of no event), {"type":"end", chatId}, {"type":"error", chatId,
 * message}, {"type":"no-active", chatId}. One stream per chat per socket, at
 * most TT_AISDK_WS_STREAMS. */
#ifndef TT_AISDK_WS_H
#define TT_AISDK_WS_H

#include <stddef.h>

struct tt_conn;

#define TT_AISDK_WS_STREAMS 8

void tt_aisdk_ws_frame(struct tt_conn *c, const char *text, size_t len);
/* A message refused before it was read (too large, binary, over a rate, an
 * expired token): {"type":"error", "chatId":"", message}, the frame the
 * socket's clients know (ws.c's refusals on this socket come here). */
void tt_aisdk_ws_refuse(struct tt_conn *c, const char *message);
/* Pull events into the socket's queue; end the streams that are over. */
void tt_aisdk_ws_drain(struct tt_conn *c);
/* The socket is closing: free its streams (the runs go on). */
void tt_aisdk_ws_closed(struct tt_conn *c);

#endif
