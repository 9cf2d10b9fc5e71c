/* AG-UI over server-sent events: `POST /v1/ag-ui` with a RunAgentInput
 * (@ag-ui/client's HttpAgent). threadId is the session (created on first use
 * for the caller; agent: forwardedProps.agent, `?agent=`, else "chat" when a
 * model is configured, else "echo"); the last message, the user's, is said
 * (its id the say's client_msg_id). The answer: RUN_STARTED, then the
 * session's committed events mapped onto AG-UI events, each with
 * `id: <seq>`, until the session stops running: STATE_SNAPSHOT, then
 * RUN_FINISHED (outcome "interrupt" naming the question or approval waited
 * for) or RUN_ERROR. With a `Last-Event-ID` header the POST says nothing and
 * replays exactly after that seq (protocol/PROTOCOL.md, "AG-UI"). */
#ifndef TT_AGUI_H
#define TT_AGUI_H

#include "server/aisdk.h"

int tt_agui_post(struct tt_server *srv, struct lws *wsi, const tt_http_who *who, const char *qagent,
                 const char *resume, const char *body, size_t len, tt_evs **out, char *why,
                 size_t n);

#endif
