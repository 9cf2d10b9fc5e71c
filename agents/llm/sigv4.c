/* Bedrock's request path and AWS Signature Version 4 for what libcurl's
 * signer cannot cover (see bedrock.h for why).
 *
 * The canonical request, string to sign and signing key follow AWS's
 * published algorithm: canonical request = method, canonical URI, canonical
 * query, the signed headers as "name:value" lines, the signed header names
 * joined by ';', the hex SHA-256 of the body; string to sign =
 * "AWS4-HMAC-SHA256", the date, the scope "<day>/<region>/<service>/
 * aws4_request", the hex SHA-256 of the canonical request; key = HMAC chain
 * of "AWS4"+secret over day, region, service, "aws4_request". */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/llm/bedrock.h"
#include "protocol/buf.h"
#include "protocol/errors.h"

#define CANON_MAX (64u << 10) /* everything but the body's hash is small */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Percent-encode s (n bytes) into b, keeping unreserved bytes and, when
 * keep_slash, '/'. */
static int encode(tt_buf *b, const char *s, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        int rc = unreserved(c) || (keep_slash && c == '/') ? tt_buf_append(b, &s[i], 1)
                                                           : tt_buf_append(b, e, 3);
        if (rc)
            return rc;
    }
    return 0;
}

int tt_bedrock_path(const char *model, int stream, char *out, size_t n)
{
    if (!model || !*model)
        return TT_EINVAL;
    tt_buf b;
    tt_buf_init(&b, n ? n - 1 : 0);
    int rc = tt_buf_append(&b, "/model/", 7);
    if (rc == 0)
        rc = encode(&b, model, strlen(model), 0);
    if (rc == 0)
        rc = tt_buf_appendf(&b, "/%s", stream ? "converse-stream" : "converse");
    if (rc == 0)
        memcpy(out, tt_buf_str(&b), b.len + 1);
    tt_buf_free(&b);
    return rc;
}

int tt_bedrock_path_needs_own_signer(const char *path)
{
    return strchr(path, '%') != NULL;
}

int tt_bedrock_url_split(const char *url, char *out, size_t n, char *path, size_t path_n)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *scheme = NULL, *p = NULL;
    int rc = TT_EINVAL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK) {
        (void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* absent: the default */
        const char *def = strcmp(scheme, "https") == 0 ? "443" : "80";
        int w = port && strcmp(port, def) != 0 ? snprintf(out, n, "%s:%s", host, port)
                                               : snprintf(out, n, "%s", host);
        rc = w < 0 || (size_t)w >= n ? TT_EINVAL : 0;
        if (rc == 0 && path) {
            rc = curl_url_get(u, CURLUPART_PATH, &p, 0) == CURLUE_OK ? 0 : TT_EINVAL;
            w = rc == 0 ? snprintf(path, path_n, "%s", p) : 0;
            rc = rc == 0 && (w < 0 || (size_t)w >= path_n) ? TT_EINVAL : rc;
        }
    }
    curl_free(p);
    curl_free(host);
    curl_free(port);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

void tt_sigv4_date(int64_t unix_s, char out[17])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256(d, n, h);
    hex(h, sizeof h, out);
}

static int hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len)
               ? 0
               : TT_ENOMEM;
}

static int canonical_request(const tt_sigv4_request *r, int double_encode, tt_buf *c,
                             const char **signed_headers)
{
    char body_hash[65];
    if (r->body_sha256 && strlen(r->body_sha256) == 64)
        memcpy(body_hash, r->body_sha256, 65);
    else
        sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, body_hash);
    int rc = tt_buf_appendf(c, "%s\n", r->method);
    if (rc == 0)
        rc = double_encode ? encode(c, r->path, strlen(r->path), 1)
                           : tt_buf_append(c, r->path, strlen(r->path));
    if (rc == 0)
        rc = tt_buf_appendf(c, "\n%s\n", r->query ? r->query : "");
    if (rc == 0 && r->content_type)
        rc = tt_buf_appendf(c, "content-type:%s\n", r->content_type);
    if (rc == 0)
        rc = tt_buf_appendf(c, "host:%s\nx-amz-date:%s\n", r->host, r->amz_date);
    if (rc == 0 && r->token)
        rc = tt_buf_appendf(c, "x-amz-security-token:%s\n", r->token);
    static const char *const names[4] = {"host;x-amz-date", "host;x-amz-date;x-amz-security-token",
                                         "content-type;host;x-amz-date",
                                         "content-type;host;x-amz-date;x-amz-security-token"};
    *signed_headers = names[(r->content_type ? 2 : 0) + (r->token ? 1 : 0)];
    if (rc == 0)
        rc = tt_buf_appendf(c, "\n%s\n%s", *signed_headers, body_hash);
    return rc;
}

static int valid(const tt_sigv4_request *r)
{
    const char *s[] = {r->method, r->host,    r->path,   r->amz_date,
                       r->region, r->service, r->key_id, r->secret};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (!s[i] || !*s[i] || strpbrk(s[i], "\r\n"))
            return 0;
    if (strlen(r->amz_date) != 16 || (r->token && strpbrk(r->token, "\r\n")))
        return 0;
    return !r->content_type || !strpbrk(r->content_type, "\r\n");
}

int tt_sigv4_sign(const tt_sigv4_request *r, int double_encode, char *out, size_t n,
                  char **canonical)
{
    if (!r || !valid(r) || !out)
        return TT_EINVAL;
    tt_buf c;
    tt_buf_init(&c, CANON_MAX);
    const char *signed_headers;
    int rc = canonical_request(r, double_encode, &c, &signed_headers);
    char day[9], canon_hash[65], sig[65];
    memcpy(day, r->amz_date, 8);
    day[8] = '\0';
    sha256_hex(tt_buf_str(&c), c.len, canon_hash);
    char sts[512], scope[256], *key_seed = NULL;
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", day, r->region, r->service);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope, canon_hash);
    size_t seed_len = 4 + strlen(r->secret);
    if (rc == 0 && !(key_seed = malloc(seed_len + 1)))
        rc = TT_ENOMEM;
    unsigned char k[32];
    if (rc == 0) {
        snprintf(key_seed, seed_len + 1, "AWS4%s", r->secret);
        rc = hmac(key_seed, seed_len, day, k);
        const char *chain[] = {r->region, r->service, "aws4_request", sts};
        for (size_t i = 0; i < 4 && rc == 0; i++)
            rc = hmac(k, sizeof k, chain[i], k);
        OPENSSL_cleanse(key_seed, seed_len);
    }
    free(key_seed);
    if (rc == 0) {
        hex(k, sizeof k, sig);
        int w =
            snprintf(out, n, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     r->key_id, scope, signed_headers, sig);
        rc = w < 0 || (size_t)w >= n ? TT_ETOOLARGE : 0;
    }
    OPENSSL_cleanse(k, sizeof k);
    if (rc == 0 && canonical)
        *canonical = tt_buf_take(&c, NULL);
    tt_buf_free(&c);
    return rc;
}
