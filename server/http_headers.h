/* Reading a plain HTTP request's headers and query (http.c's helpers). */
#ifndef TT_HTTP_HEADERS_H
#define TT_HTTP_HEADERS_H

#include <libwebsockets.h>
#include <stddef.h>

/* The value of the query's name= argument (e.g. "after=") into out, size n
 * ("" when absent; values over 95 bytes are not found). */
void tt_http_url_arg(struct lws *wsi, const char *name, char *out, size_t n);

/* A gateway label header (name with its colon, e.g. "x-tether-feature:")
 * into out (size n): 0 (absent: ""), or -1 when it is too long or not plain
 * text (control, bidi, invisible characters). */
int tt_http_label_header(struct lws *wsi, const char *name, char *out, size_t n);

/* 1 when the request announces a body (a Content-Length other than 0, or a
 * Transfer-Encoding). lws 4.1 reads a body only for a POST: a body on any
 * other method, pipelined behind an earlier request, is left in lws's
 * buffer, which then spins on it for ever and serves nobody; such a request
 * is answered with "connection: close" and its connection closed. */
int tt_http_announces_body(struct lws *wsi);

/* At lws's filter of a plain HTTP request: 1 when the connection must be
 * closed before any answer, a body on a method other than POST for the web
 * page's file mount (lws answers those itself, then spins on the body when
 * another request was pipelined before it). Our endpoints answer such a
 * request with "connection: close" instead (http.c). */
int tt_http_gate_unread_body(struct lws *wsi);

#endif
