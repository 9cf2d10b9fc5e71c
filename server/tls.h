/* TLS on our own listener: --tls-cert and --tls-key make the lws vhost a
 * TLS one, and every socket listener.c adopts (lws_adopt_socket_vhost()
 * allows TLS on adoption: LWS_ADOPT_ALLOW_SSL) does the handshake first, so
 * HTTP and WebSocket share the port as https:// and wss://.
 *
 * - TLS 1.2 and 1.3 only (SSL_CTX_set_min_proto_version), TLS 1.2 limited to
 *   ECDHE with AES-GCM or ChaCha20-Poly1305 (Mozilla's "intermediate").
 * - ALPN offers http/1.1 only (the HTTP code is HTTP/1.1's).
 * - The files are checked before lws starts (both given, readable, the key
 *   matching the certificate): a bad pair stops the start-up with a message.
 * - SIGHUP rereads both: a pair that loads and matches replaces the one in
 *   the vhost's SSL_CTX, so new handshakes get it while open sockets go on
 *   undisturbed; a bad pair is logged and the old one kept. */
#ifndef TT_TLS_H
#define TT_TLS_H

#include <libwebsockets.h>

struct tt_server;

/* Fill info's TLS fields from cfg (nothing when no --tls-cert). 0, or
 * TT_EINVAL after logging why the pair cannot be used. */
int tt_tls_configure(struct tt_server *srv, struct lws_context_creation_info *info);

/* protocols[0] hears LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS
 * with the vhost's SSL_CTX: kept for reloads, protocol floor set. */
void tt_tls_ctx_created(struct tt_server *srv, void *ssl_ctx);

/* Check a pair without lws (--check-config): NULL when it loads and
 * matches, with "subject, valid until DATE" in about (size an); else why
 * (written to why, size n). */
const char *tt_tls_check_files(const char *cert, const char *key, char *why, size_t n, char *about,
                               size_t an);

/* Reread the pair (SIGHUP). 0, or TT_EINVAL (logged; the old pair stays). */
int tt_tls_reload(struct tt_server *srv);

#endif
