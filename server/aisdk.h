/* The Vercel AI SDK's UI message stream over HTTP (useChat's default
 * transport, DefaultChatTransport):
 *
 *   POST /v1/ai-sdk/chat            {id, messages, trigger, agent?} -> SSE
 *   GET  /v1/ai-sdk/chat/{id}/stream                                -> SSE, or 204
 *
 * The chat id is the session id: the first POST creates the session for the
 * caller (agent: the body's `agent`, the `?agent=` query, else "chat" when a
 * model is configured, else "echo"); the last message (the user's) is said
 * to it, its id the say's client_msg_id (a retried POST is applied once).
 * The answer is the session's committed events from that turn on, mapped onto
 * UI message chunks (protocol/PROTOCOL.md, "AI SDK"), each SSE event with
 * `id: <seq>`, until the session is no longer running. Closing the response
 * never cancels the run. The resume route, with no position, starts from a
 * snapshot (the message in flight so far); with `Last-Event-ID` or
 * `?after=SEQ`, exactly after that event. */
#ifndef TT_AISDK_H
#define TT_AISDK_H

#include <stddef.h>
#include <stdint.h>

#include "server/sse_out.h"

struct tt_conn;

#define TT_AISDK_BODY_MAX (1u << 20) /* a POST's body: useChat sends the whole history */

int tt_aisdk_id_ok(const char *id);

/* The session named id (a chat id or an AG-UI threadId): loaded when who may
 * use it, else created for who with agent. 0, or an HTTP status with why. */
int tt_aisdk_session(struct tt_server *srv, const tt_http_who *who, const char *id,
                     const char *agent, tt_session **out, char *why, size_t n);

/* A turn: 0 with *out the stream answering it, or an HTTP status with why. */
int tt_aisdk_post(struct tt_server *srv, struct lws *wsi, const tt_http_who *who,
                  const char *qagent, const char *body, size_t len, tt_evs **out, char *why,
                  size_t n);

/* Resume: 0 with *out, 204 when nothing is active, or an error status with why. */
int tt_aisdk_resume(struct tt_server *srv, struct lws *wsi, struct tt_conn *conn,
                    const tt_http_who *who, const char *id, uint64_t after, int have_after,
                    tt_evs **out, char *why, size_t n);

/* A `send` frame on the WebSocket transport (aisdk_ws.h): as the POST. */
int tt_aisdk_ws_send(struct tt_server *srv, struct tt_conn *conn, const tt_http_who *who,
                     json_t *body, tt_evs **out, char *why, size_t n);

#endif
