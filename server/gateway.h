/* POST /v1/chat/completions: an OpenAI-compatible gateway over the same
 * routes, retries, failover, limits, cost and logs as the agents, so any
 * OpenAI client can use Tether as its gateway.
 *
 * Plain requests get one JSON response; `stream: true` gets server-sent
 * events in OpenAI's chunk format, written as the model produces them. No
 * event log sits on this path, so a slow client pauses the upstream transfer
 * (CURLPAUSE_RECV) instead of being buffered without bound. A retry after
 * output was sent is impossible here (the bytes are out): such a failure ends
 * the stream with an error chunk. */
#ifndef TT_GATEWAY_H
#define TT_GATEWAY_H

#include <stddef.h>
#include <libwebsockets.h>

struct tt_server;
typedef struct tt_gateway_req tt_gateway_req;

/* Take over the response to a request whose API key passed (http.c checks it
 * on the headers) and whose body was read; body is only read during the call.
 * Always returns a request (which may already hold an error response); NULL
 * only on OOM. The caller then waits for writable callbacks. */
tt_gateway_req *tt_gateway_start(struct tt_server *srv, struct lws *wsi, const char *body,
                                 size_t len);

/* The same, with the call attributed to attr (copied; NULL: none), e.g. the
 * API key's tenant and id and the x-tether-feature header. */
struct tt_llm_attribution;
tt_gateway_req *tt_gateway_start_as(struct tt_server *srv, struct lws *wsi, const char *body,
                                    size_t len, const struct tt_llm_attribution *attr);

/* The same for POST /v1/embeddings: the body (parsed on the loop: its route
 * caps it at 1 MiB) is sent to the first OpenAI-format target of the route
 * its model names, and the provider's answer goes back as it is; the call's
 * ledger row is attributed to attr (copied; NULL: none). */
tt_gateway_req *tt_gateway_embeddings_start(struct tt_server *srv, struct lws *wsi,
                                            const char *body, size_t len,
                                            const struct tt_llm_attribution *attr);

/* Write what is ready. Returns 0 to keep going, 1 when the response is
 * complete (the caller finishes the HTTP transaction and then frees), -1 to
 * drop the connection. */
int tt_gateway_writeable(tt_gateway_req *g);

/* Write what was decided inside the callback that started the request (the
 * caller's answer must be out before lws parses a pipelined next one): up
 * to three writes while the socket takes them; nothing when the answer
 * waits for the model. Returns as tt_gateway_writeable(). */
int tt_gateway_send_now(tt_gateway_req *g);

/* The connection is gone or the response is complete: cancel any call in
 * flight and free. */
void tt_gateway_free(tt_gateway_req *g);

#endif
