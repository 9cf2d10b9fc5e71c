/* TLS for the listener: options, the protocol floor, reload (see tls.h). */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/server.h"
#include "server/tls.h"

/* Mozilla "intermediate" TLS 1.2 suites; TLS 1.3 keeps OpenSSL's defaults. */
static const char CIPHERS_TLS12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* Load the pair into ctx; NULL, or why not (OpenSSL's reason). */
static const char *load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *why, size_t n)
{
    ERR_clear_error();
    const char *what = SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ? "cannot load --tls-cert"
                       : SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
                           ? "cannot load --tls-key"
                       : SSL_CTX_check_private_key(ctx) != 1 ? "--tls-key does not match --tls-cert"
                                                             : NULL;
    if (!what)
        return NULL;
    unsigned long e = ERR_peek_last_error();
    if (e && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
        what = "--tls-key does not match --tls-cert";
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(why, n, "%s: %s", what, reason ? reason : "unknown");
    ERR_clear_error();
    return why;
}

/* The pair, checked in a scratch context. NULL, or why not. With about
 * (size an), the certificate's subject and end date go there. */
static const char *check_pair(const char *cert, const char *key, char *why, size_t n, char *about,
                              size_t an)
{
    SSL_CTX *scratch = SSL_CTX_new(TLS_server_method());
    if (!scratch) {
        snprintf(why, n, "out of memory");
        return why;
    }
    const char *bad = load_pair(scratch, cert, key, why, n);
    X509 *x = bad ? NULL : SSL_CTX_get0_certificate(scratch);
    if (x && about) {
        char subject[256] = "", until[64] = "";
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        BIO *b = BIO_new(BIO_s_mem());
        if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1)
            (void)!BIO_read(b, until, sizeof until - 1);
        BIO_free(b);
        snprintf(about, an, "%s, valid until %s", subject, until);
    }
    SSL_CTX_free(scratch);
    return bad;
}

const char *tt_tls_check_files(const char *cert, const char *key, char *why, size_t n, char *about,
                               size_t an)
{
    if (!cert[0] || !key[0]) {
        snprintf(why, n, "give both --tls-cert and --tls-key");
        return why;
    }
    return check_pair(cert, key, why, n, about, an);
}

int tt_tls_configure(tt_server *srv, struct lws_context_creation_info *info)
{
    const tt_config *cfg = &srv->cfg;
    if (!cfg->tls_cert[0] && !cfg->tls_key[0])
        return 0;
    char why[512];
    const char *bad = tt_tls_check_files(cfg->tls_cert, cfg->tls_key, why, sizeof why, NULL, 0);
    if (bad) {
        tt_log(TT_ERROR, "cannot use the TLS certificate",
               json_pack("{s:s, s:s, s:s}", "error", bad, "tls_cert", cfg->tls_cert, "tls_key",
                         cfg->tls_key));
        return TT_EINVAL;
    }
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = cfg->tls_cert;
    info->ssl_private_key_filepath = cfg->tls_key;
    info->ssl_cipher_list = CIPHERS_TLS12;
    /* HTTP/1.1 only: the HTTP and WebSocket code (pipelining, the upgrade,
     * Host for the origin policy) is HTTP/1.1's; lws would offer h2 by ALPN. */
    info->alpn = "http/1.1";
    info->ssl_options_set = (long)(SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                                   SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    return 0;
}

void tt_tls_ctx_created(tt_server *srv, void *ssl_ctx)
{
    srv->tls_ctx = ssl_ctx;
    if (ssl_ctx)
        (void)SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
}

int tt_tls_reload(tt_server *srv)
{
    const tt_config *cfg = &srv->cfg;
    char why[512];
    const char *bad = !srv->tls_ctx
                          ? "TLS is not on (no --tls-cert)"
                          : check_pair(cfg->tls_cert, cfg->tls_key, why, sizeof why, NULL, 0);
    /* Checked first, so the live context never holds half a pair. */
    if (!bad)
        bad = load_pair(srv->tls_ctx, cfg->tls_cert, cfg->tls_key, why, sizeof why);
    if (bad) {
        tt_log(TT_ERROR, "TLS certificate not reloaded; the previous one stays",
               json_pack("{s:s}", "error", bad));
        return TT_EINVAL;
    }
    X509 *x = SSL_CTX_get0_certificate(srv->tls_ctx);
    char subject[256] = "";
    if (x)
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
    tt_log(TT_INFO, "TLS certificate reloaded", json_pack("{s:s}", "subject", subject));
    return 0;
}
