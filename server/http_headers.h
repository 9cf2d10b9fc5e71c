/* Reading a plain HTTP request's headers and query (http.c's helpers). */
#ifndef TT_HTTP_HEADERS_H
#define TT_HTTP_HEADERS_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

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

/* 1 when a request to one of our endpoints (not a POST) is answered with
 * "connection: close" and its connection closed: it announces a body (above),
 * or is a HEAD (its answer carries a body, which a client reading a HEAD's
 * answer would take for the start of the next one), a PUT or a PATCH (lws
 * 4.1 stalled a request pipelined behind one until its timeout). */
int tt_http_closes_after(struct lws *wsi);

/* At lws's filter of a plain HTTP request: 1 when the connection must be
 * closed before any answer: a body for the web page's file mount, which lws
 * answers itself without reading it (on a method other than POST it spun on
 * the body when another request was pipelined before it; on a POST it parsed
 * the body as the next request). Our endpoints answer such a request with
 * "connection: close" instead (http.c). */
int tt_http_gate_unread_body(struct lws *wsi);

/* A POST's body length as lws 4.1 will read it: 0 and *len, or the HTTP
 * status of a refusal (*why says why) after which the connection must be
 * closed, since lws's idea of the body differs from the client's: 411 no
 * Content-Length or a Transfer-Encoding (lws 4.1 does not decode chunked
 * bodies and read them until its timeout, never completing), 400 both, or a
 * Content-Length that is not one decimal number (a sign, hex, "13, 5": lws
 * reads its own number of bytes and parses the rest as the next request),
 * 413 over 18 digits. */
int tt_http_post_length(struct lws *wsi, unsigned long long *len, const char **why);

/* A body slower than TT_HTTP_BODY_MIN_RATE bytes a second on average after
 * its first TT_HTTP_BODY_GRACE_MS is cut off (408, connection closed): lws's
 * own timeout restarts with every byte, so a client sending one a second held
 * its connection and what its body reserved for ever. The rate is low (about
 * an 8 kbit/s link): a body reserves only what arrived, so a slow client
 * costs little, and one on a poor mobile link must still get its upload
 * through. 1 when a body whose
 * headers came at since_ms has `received` bytes too few at now_ms. */
#define TT_HTTP_BODY_GRACE_MS 10000
#define TT_HTTP_BODY_MIN_RATE 1024
int tt_http_body_overdue(uint64_t since_ms, uint64_t now_ms, uint64_t received);

/* A POST's "Expect: 100-continue" (curl sends it with a body over 1 MiB,
 * then waits a second for an answer; lws 4.1 sends none): an accepted one
 * gets "100 Continue" now; a refused one is answered now and its connection
 * closed (*close_after set), its body never sent. 0, or -1 when the line
 * could not be written. */
int tt_http_expect(struct lws *wsi, int refused, int *close_after);

#endif
