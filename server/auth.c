/* API keys and the JWT signing secret.
 *
 * Keys are held only as SHA-256 digests, each with its tenant. A clear key is
 * hashed straight from the caller's string and never copied, so there is no
 * clear copy of ours to wipe. Checking a presented key touches every stored
 * digest with CRYPTO_memcmp and no early exit, so the time taken says nothing
 * about which key (or how many bytes of one) matched. A digest is stored at
 * most once: the same key given twice with one tenant is a no-op, with two
 * tenants it is refused, so a key always names exactly one tenant. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "protocol/base64.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "server/auth.h"

#define DEFAULT_TENANT "default"

static int sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return TT_EINTERNAL;
    return 0;
}

/* The tenant after the first ':' of spec, into dst; "default" when there is
 * no ':'. An empty or over-long tenant (over 63 bytes), or one that is not a
 * valid name (protocol/names.h: it becomes part of store keys), is TT_EINVAL. */
static int parse_tenant(const char *colon, char dst[64])
{
    if (!colon) {
        memcpy(dst, DEFAULT_TENANT, sizeof DEFAULT_TENANT);
        return 0;
    }
    if (tt_name_check(colon + 1, 63, NULL) != 0)
        return TT_EINVAL;
    memcpy(dst, colon + 1, strlen(colon + 1) + 1);
    return 0;
}

/* Append (digest, tenant), refusing a second tenant for a known digest. */
static int add_digest(tt_auth *a, const unsigned char digest[32], const char *tenant)
{
    for (size_t i = 0; i < a->n_keys; i++) {
        if (memcmp(a->keys[i].sha256, digest, 32) == 0) /* set-up time: no timing concern */
            return strcmp(a->keys[i].tenant, tenant) == 0 ? 0 : TT_ECONFLICT;
    }
    if (a->n_keys >= TT_AUTH_MAX_KEYS)
        return TT_EFULL;
    tt_auth_key *k = &a->keys[a->n_keys];
    memcpy(k->sha256, digest, 32);
    snprintf(k->tenant, sizeof k->tenant, "%s", tenant);
    a->n_keys++;
    return 0;
}

int tt_auth_add_key(tt_auth *a, const char *spec)
{
    if (!a || !spec)
        return TT_EINVAL;
    const char *colon = strchr(spec, ':');
    size_t key_len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (key_len == 0)
        return TT_EINVAL;
    char tenant[64];
    int rc = parse_tenant(colon, tenant);
    if (rc)
        return rc;
    unsigned char digest[32];
    rc = sha256(spec, key_len, digest);
    if (!rc)
        rc = add_digest(a, digest, tenant);
    OPENSSL_cleanse(digest, sizeof digest);
    return rc;
}

int tt_auth_add_key_hash(tt_auth *a, const char *spec)
{
    if (!a || !spec)
        return TT_EINVAL;
    const char *colon = strchr(spec, ':');
    size_t hex_len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (hex_len != 64)
        return TT_EINVAL;
    unsigned char digest[32];
    for (size_t i = 0; i < 32; i++) {
        int hi = tt_hex_digit(spec[2 * i]), lo = tt_hex_digit(spec[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return TT_EINVAL;
        digest[i] = (unsigned char)(hi << 4 | lo);
    }
    char tenant[64];
    int rc = parse_tenant(colon, tenant);
    if (!rc)
        rc = add_digest(a, digest, tenant);
    return rc;
}

int tt_auth_set_secret(tt_auth *a, const unsigned char *secret, size_t len)
{
    if (!a || !secret || len < 32 || len > sizeof a->secret)
        return TT_EINVAL;
    OPENSSL_cleanse(a->secret, sizeof a->secret);
    memcpy(a->secret, secret, len);
    a->secret_len = len;
    return 0;
}

/* 1 when x is zero, 0 otherwise, without a branch on x. */
static unsigned is_zero(unsigned x)
{
    return 1u & ~((x | (0u - x)) >> (sizeof x * CHAR_BIT - 1));
}

int tt_auth_check_key_id(const tt_auth *a, const char *key, char *tenant, size_t n, char *key_id,
                         size_t kn)
{
    int rc = tt_auth_check_key(a, key, tenant, n);
    if (rc == 0 && key_id && kn) {
        char hex[65];
        tt_sha256_hex(key, strlen(key), hex);
        snprintf(key_id, kn, "k_%.12s", hex);
    }
    return rc;
}

int tt_auth_check_key(const tt_auth *a, const char *key, char *tenant, size_t n)
{
    if (!a || !key || !key[0]) /* an empty key is never valid (cf. tt_auth_add_key) */
        return TT_EAUTH;
    unsigned char digest[32];
    int rc = sha256(key, strlen(key), digest);
    if (rc)
        return rc;
    /* Every stored digest is compared; the first match is selected by masks
     * rather than branches (add_digest keeps digests unique anyway). */
    unsigned found = 0;
    size_t which = 0;
    for (size_t i = 0; i < a->n_keys; i++) {
        unsigned eq = is_zero((unsigned)CRYPTO_memcmp(a->keys[i].sha256, digest, 32));
        unsigned take = eq & (found ^ 1u);
        size_t mask = (size_t)0 - (size_t)take;
        which = (which & ~mask) | (i & mask);
        found |= eq;
    }
    OPENSSL_cleanse(digest, sizeof digest);
    if (!found)
        return TT_EAUTH;
    if (tenant && n) {
        /* Truncating a tenant would name a different tenant: refuse instead. */
        size_t len = strlen(a->keys[which].tenant);
        if (len >= n)
            return TT_ETOOLARGE;
        memcpy(tenant, a->keys[which].tenant, len + 1);
    }
    return 0;
}

void tt_sha256_hex(const char *s, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[32];
    if (sha256(s, len, digest) != 0) {
        out[0] = '\0'; /* no digest to print; the function has no error result */
        return;
    }
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(digest, sizeof digest);
}

int tt_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
