/* libFuzzer target for server/jwt.c: tt_jwt_verify() under a fixed 32-byte
 * secret at now = 1e9 (2001-09-09).
 *
 * A fuzzer cannot forge HMAC-SHA256, so raw tokens alone would never get past
 * the signature check. Byte 0 therefore picks a mode:
 *   even: the rest is a token, verified as is (the wire path: length limit,
 *         alphabet, dots, base64url, signature);
 *   odd:  the rest is "<header JSON>\n<payload JSON>", which this target
 *         encodes and signs with the secret, so the header and claims checks
 *         see fuzzed JSON. The same token with one signature character changed is
 *         verified too and must be refused.
 * On success: exp > now, sub is 1..127 bytes, tenant NUL-terminated, agents
 * NULL or an array; and minting those claims and verifying the result gives
 * the same claims back. Claims are cleared after every call. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protocol/base64.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "server/jwt.h"
#include "fuzz_check.h"

#define NOW INT64_C(1000000000)

/* 32 bytes, no NUL: the corpus's valid tokens are signed with it. */
static const unsigned char SECRET[32] = "tether-fuzz-secret-0123456789abc";

static void check_claims(const tt_jwt_claims *c)
{
    CHECK(c->exp > NOW);
    size_t sub = strnlen(c->sub, sizeof c->sub);
    CHECK(sub >= 1 && sub < sizeof c->sub);
    CHECK(tt_name_check(c->sub, sizeof c->sub - 1, NULL) == 0); /* names.h: no control, bidi */
    CHECK(strnlen(c->tenant, sizeof c->tenant) < sizeof c->tenant);
    CHECK(c->agents == NULL || json_is_array(c->agents));

    /* Round trip: what we accepted, we can mint, and it verifies the same. */
    char *tok = NULL;
    int rc = tt_jwt_mint(SECRET, sizeof SECRET, c, &tok);
    CHECK(rc == 0 || rc == TT_ETOOLARGE || rc == TT_ENOMEM);
    if (rc)
        return;
    tt_jwt_claims back;
    CHECK(tt_jwt_verify(SECRET, sizeof SECRET, tok, NOW, &back) == 0);
    CHECK(strcmp(back.sub, c->sub) == 0);
    CHECK(strcmp(back.tenant, c->tenant) == 0);
    CHECK(back.exp == c->exp && back.iat == c->iat);
    CHECK((back.agents == NULL) == (c->agents == NULL));
    CHECK(!c->agents || json_equal(back.agents, c->agents));
    tt_jwt_claims_clear(&back);
    free(tok);
}

static int verify(const char *token)
{
    tt_jwt_claims claims;
    int rc = tt_jwt_verify(SECRET, sizeof SECRET, token, NOW, &claims);
    CHECK(rc == 0 || rc == TT_EAUTH || rc == TT_EEXPIRED || rc == TT_ENOMEM);
    if (rc == 0)
        check_claims(&claims);
    else
        CHECK(claims.agents == NULL && claims.sub[0] == '\0');
    tt_jwt_claims_clear(&claims);
    return rc;
}

/* "b64(header).b64(payload).b64(HS256)"; NULL when out of memory. */
static char *sign(const char *header, size_t hlen, const char *payload, size_t plen)
{
    char *h64 = NULL, *p64 = NULL, *s64 = NULL, *tok = NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (tt_b64_url_encode((const unsigned char *)header, hlen, &h64) ||
        tt_b64_url_encode((const unsigned char *)payload, plen, &p64))
        goto done;
    size_t a = strlen(h64), b = strlen(p64);
    tok = malloc(a + b + 2 + 44);
    if (!tok)
        goto done;
    memcpy(tok, h64, a);
    tok[a] = '.';
    memcpy(tok + a + 1, p64, b);
    if (!HMAC(EVP_sha256(), SECRET, sizeof SECRET, (const unsigned char *)tok, a + 1 + b, mac,
              &mac_len) ||
        tt_b64_url_encode(mac, mac_len, &s64) || strlen(s64) != 43) {
        free(tok);
        tok = NULL;
        goto done;
    }
    tok[a + 1 + b] = '.';
    memcpy(tok + a + 2 + b, s64, 44); /* with its NUL */
done:
    free(h64);
    free(p64);
    free(s64);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        char *token = malloc(n + 1); /* tokens are C strings: a NUL ends one */
        if (!token)
            return 0;
        memcpy(token, rest, n);
        token[n] = '\0';
        verify(token);
        free(token);
        return 0;
    }
    const char *nl = memchr(rest, '\n', n);
    size_t hlen = nl ? (size_t)(nl - rest) : n;
    const char *payload = nl ? nl + 1 : rest + n;
    size_t plen = nl ? n - hlen - 1 : 0;
    char *tok = sign(rest, hlen, payload, plen);
    if (!tok)
        return 0;
    verify(tok);
    /* The same token with one signature character changed is never
     * accepted. A middle character is changed, not the last (its low bits
     * are padding), and stays in the alphabet (A <-> B) so the signature
     * check itself, not the decoder, is what refuses it. */
    char *sig = strrchr(tok, '.') + 1;
    sig[20] = sig[20] == 'A' ? 'B' : 'A';
    CHECK(verify(tok) != 0);
    free(tok);
    return 0;
}
