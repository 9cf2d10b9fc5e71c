/* Which browser pages may use the server, and under which Host names.
 *
 * A browser lets any page open a WebSocket or POST a form to 127.0.0.1, and
 * sends the page's Origin with it; a page can also rebind its own name to
 * 127.0.0.1 (DNS rebinding), and then its requests carry Host: its name. So:
 * - a request with an Origin header comes from a browser page and is allowed
 *   only from the same origin (Origin's host:port equals the Host header, and
 *   that Host is served) or from an origin listed with --allowed-origin;
 * - a request without Origin (curl, SDKs, servers) is not a browser's;
 * - in open mode (no API keys, where nothing else stands between a page and
 *   the sessions) the Host must be one the server serves: a loopback name or
 *   address, --host, or the host of an --allowed-origin.
 * Pure functions over header values; http.c and ws.c read the headers. */
#ifndef TT_ORIGIN_H
#define TT_ORIGIN_H

#include <stddef.h>

#include "server/config.h"

/* Longest Host or Origin header value looked at; a longer one is refused. */
#define TT_ORIGIN_HEADER_MAX 256

/* Is host (a Host header: "name", "name:port", "[v6]:port") one this server
 * serves: localhost, 127.0.0.0/8, ::1, cfg->host, or an allowed origin's host? */
int tt_origin_host_served(const tt_config *cfg, const char *host);

/* May a request with these headers go on? host or origin is NULL when the
 * header is absent; open_mode when no API key is configured. Returns 0, or
 * TT_EFORBIDDEN with the reason in why (size n). */
int tt_origin_check(const tt_config *cfg, int open_mode, const char *host, const char *origin,
                    char *why, size_t n);

/* Is value a well-formed --allowed-origin: http:// or https://, then a host
 * and an optional port, nothing after (no path, no trailing slash)? */
int tt_origin_valid(const char *value);

#endif
