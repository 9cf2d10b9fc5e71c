/* AWS Bedrock Runtime: Converse and ConverseStream (the wire format is in
 * bedrock.c behind adapter.h; this header has what the call layer needs
 * beyond it: the per-model path and the request signature).
 *
 * Requests are signed with AWS Signature Version 4. libcurl's own signer
 * (CURLOPT_AWS_SIGV4) does it when the path needs no percent-encoding: curl
 * 7.88 signs the path exactly as sent, while AWS (every service but S3)
 * signs each path segment URI-encoded once more, so a model ID with a ':'
 * (sent as %3A, signed by AWS as %253A) gets a signature AWS refuses. For
 * those paths tt_sigv4_sign() below computes the header itself (OpenSSL
 * HMAC-SHA256), checked against AWS's published test vectors. */
#ifndef TT_BEDROCK_H
#define TT_BEDROCK_H

#include <stddef.h>
#include <stdint.h>

/* "/model/<model, percent-encoded>/converse" or ".../converse-stream" into
 * out. Returns 0, or TT_ETOOLARGE when it does not fit, TT_EINVAL for an
 * empty model. */
int tt_bedrock_path(const char *model, int stream, char *out, size_t n);

/* Does the path contain a percent-encoded byte (so curl's signer would sign
 * it wrong, see above)? */
int tt_bedrock_path_needs_own_signer(const char *path);

/* One request to sign. Header names in the canonical request are the ones
 * Tether sends: content-type, host, x-amz-date, x-amz-security-token (when
 * a session token is given), in that (sorted) order. */
typedef struct tt_sigv4_request {
    const char *method;       /* "POST" */
    const char *host;         /* the Host header's value (with ":port" when not the default) */
    const char *path;         /* as sent, already percent-encoded once; no query */
    const char *query;        /* canonical query string ("" for none), already sorted and encoded */
    const char *content_type; /* NULL: no content-type header is signed */
    const char *body;
    size_t body_len;
    const char
        *body_sha256;     /* the body's hex SHA-256 when known (computed off the loop), or NULL */
    const char *amz_date; /* "20150830T123600Z" */
    const char *region;
    const char *service;
    const char *key_id;
    const char *secret;
    const char *token; /* session token, or NULL */
} tt_sigv4_request;

/* The Authorization header's value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=<64 hex>") into out. double_encode: encode
 * each path segment again (every service but S3). Returns 0, TT_EINVAL,
 * TT_ETOOLARGE (out too small) or TT_ENOMEM. canonical (may be NULL) gets
 * the canonical request (malloc'd) for tests. */
int tt_sigv4_sign(const tt_sigv4_request *r, int double_encode, char *out, size_t n,
                  char **canonical);

/* The Host header curl sends for url: the host, with ":port" when the URL
 * names a port other than its scheme's default; and (path not NULL) the
 * path as sent, which is what is signed (a base URL may carry a path of
 * its own before /model/...). Returns 0 or TT_EINVAL. */
int tt_bedrock_url_split(const char *url, char *out, size_t n, char *path, size_t path_n);

/* "20150830T123600Z" for a Unix time in seconds. */
void tt_sigv4_date(int64_t unix_s, char out[17]);

/* A request body to sign: its bytes and, when known, its hex SHA-256. */
typedef struct tt_bedrock_body {
    const char *data;
    size_t len;
    const char *sha256; /* or "" / NULL: computed while signing */
} tt_bedrock_body;

struct tt_route_target;
struct tt_http_aws;

/* Sign a request to target t at url (path: its path part, as sent): adds
 * x-amz-security-token (with a session token), then either fills *aws for
 * libcurl's signer (scope: its buffer for "aws:amz:<region>:bedrock") or
 * adds X-Amz-Date and Authorization computed by tt_sigv4_sign(). headers
 * holds h entries and has room for 3 more. Returns 0 or a TT_E* code. */
int tt_bedrock_sign(const struct tt_route_target *t, const char *url, const char *path,
                    const tt_bedrock_body *body, char **headers, size_t h, struct tt_http_aws *aws,
                    char *scope, size_t scope_n);

#endif
