/* CORS for the HTTP API (/v1/tokens, /v1/chat/completions, /healthz, ...):
 * a browser page on an origin the origin policy allows (origin.h: listed
 * with --allowed-origin, or the same origin) may call it from script.
 *
 * - A preflight (OPTIONS with Origin and Access-Control-Request-Method) from
 *   an allowed origin for GET or POST is answered 204 with
 *   Access-Control-Allow-Origin echoing that origin (never "*"),
 *   Vary: Origin, Access-Control-Allow-Methods: GET, POST, OPTIONS,
 *   Access-Control-Allow-Headers: authorization, content-type, and
 *   Access-Control-Max-Age: TT_CORS_MAX_AGE_S. A foreign origin gets 403
 *   with a JSON error and no CORS headers (http.c), another method 405.
 * - Every other answer to a request whose Origin is allowed carries
 *   Access-Control-Allow-Origin (that origin), Vary: Origin and
 *   Access-Control-Expose-Headers: Retry-After.
 * - No Access-Control-Allow-Credentials: the API authenticates with an
 *   Authorization header a script sets itself, never with cookies, so a
 *   request in credentials mode "include" is refused by the browser. */
#ifndef TT_CORS_H
#define TT_CORS_H

#include <libwebsockets.h>

struct tt_server;

#define TT_CORS_MAX_AGE_S 600

/* The request's Origin into origin (size n) when it is present and allowed:
 * 1; else 0. */
int tt_cors_origin(struct tt_server *srv, struct lws *wsi, char *origin, size_t n);

/* Add the CORS headers of an ordinary answer (nothing when the request has
 * no allowed Origin). 0, or -1 when the header buffer is full. */
int tt_cors_add_headers(struct tt_server *srv, struct lws *wsi, unsigned char **p,
                        unsigned char *end);

/* Is the request on wsi an OPTIONS? Then its path goes to path (size n). */
int tt_cors_is_options(struct lws *wsi, char *path, size_t n);

/* Answer a preflight that passed the origin policy: 204 and the headers
 * above, or 405 when the requested method is not GET or POST. 0, or -1 when
 * the answer could not be written. close: the connection closes after it
 * (a preflight with a body, http_headers.h), said with "connection: close". */
int tt_cors_write_preflight(struct tt_server *srv, struct lws *wsi, int close);

#endif
