/* HS256 JSON Web Tokens (RFC 7519, JWS compact serialization RFC 7515).
 *
 * Why it is hand-rolled: HS256 is one HMAC (OpenSSL) and base64url strings
 * (protocol/base64.h), and doing it here keeps the accepted grammar exactly
 * as strict as jwt.h says.
 * The order of checks in tt_jwt_verify is the security argument:
 *
 *   1. size cap and alphabet, before anything is decoded;
 *   2. the signature, before any JSON is parsed, so only a holder of the
 *      secret can reach the JSON parser (and an unsigned token is refused as
 *      TT_EAUTH, never reported as "expired");
 *   3. the header (alg must be HS256), then the claims' types;
 *   4. the time claims last: nbf and iat not in the future (beyond the
 *      leeway), then expiry.
 *
 * base64url decoding is canonical (protocol/base64.h): one string per byte
 * sequence, so a signature cannot be re-spelt. */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protocol/base64.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "server/jwt.h"

#define SIG_LEN 32    /* HMAC-SHA256 */
#define CLAIM_MAX 128 /* sizeof claims->sub and ->tenant, NUL included */

/* The one header we mint, as JSON.stringify would write it. */
static const char HEADER_JSON[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* ---- signing ------------------------------------------------------------ */

/* HMAC-SHA256 of msg[0..len) into sig. */
static int hs256(const unsigned char *secret, size_t secret_len, const char *msg, size_t len,
                 unsigned char sig[SIG_LEN])
{
    unsigned int sig_len = 0;
    if (secret_len > INT_MAX)
        return TT_EINVAL;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, len, sig,
              &sig_len) ||
        sig_len != SIG_LEN)
        return TT_EINTERNAL;
    return 0;
}

/* A JSON string for a C string, or TT_EINVAL when it is not UTF-8. */
static int set_string(json_t *obj, const char *key, const char *val)
{
    json_t *s = json_string(val); /* NULL: invalid UTF-8 (or, rarely, no memory) */
    if (!s)
        return TT_EINVAL;
    return json_object_set_new(obj, key, s) ? TT_ENOMEM : 0;
}

static int set_int(json_t *obj, const char *key, int64_t val)
{
    json_t *i = json_integer((json_int_t)val);
    if (!i)
        return TT_ENOMEM;
    return json_object_set_new(obj, key, i) ? TT_ENOMEM : 0;
}

static bool is_string_array(const json_t *a)
{
    if (!json_is_array(a))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i)))
            return false;
    return true;
}

/* The payload text: keys in the order sub, tenant, iat, exp, agents. */
static int payload_json(const tt_jwt_claims *c, char **out)
{
    size_t tenant_len = strnlen(c->tenant, sizeof c->tenant);
    if (tt_name_check(c->sub, sizeof c->sub - 1, NULL) != 0 || tenant_len >= sizeof c->tenant ||
        (tenant_len && tt_name_check(c->tenant, sizeof c->tenant - 1, NULL) != 0))
        return TT_EINVAL;
    if (c->agents && !is_string_array(c->agents))
        return TT_EINVAL;
    json_t *p = json_object();
    if (!p)
        return TT_ENOMEM;
    int rc = set_string(p, "sub", c->sub);
    if (!rc && tenant_len)
        rc = set_string(p, "tenant", c->tenant);
    if (!rc && c->kid[0] && strnlen(c->kid, sizeof c->kid) < sizeof c->kid)
        rc = set_string(p, "kid", c->kid);
    if (!rc)
        rc = set_int(p, "iat", c->iat);
    if (!rc)
        rc = set_int(p, "exp", c->exp);
    if (!rc && c->agents) /* borrowed: the caller keeps its reference */
        rc = json_object_set(p, "agents", c->agents) ? TT_ENOMEM : 0;
    if (!rc) {
        *out = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!*out)
            rc = TT_ENOMEM;
    }
    json_decref(p);
    return rc;
}

int tt_jwt_mint(const unsigned char *secret, size_t secret_len, const tt_jwt_claims *claims,
                char **out)
{
    if (!out)
        return TT_EINVAL;
    *out = NULL;
    if (!secret || secret_len == 0 || !claims)
        return TT_EINVAL;
    char *payload = NULL, *header64 = NULL, *payload64 = NULL, *sig64 = NULL, *tok = NULL;
    unsigned char sig[SIG_LEN];
    int rc = payload_json(claims, &payload);
    if (rc)
        goto fail;
    rc = tt_b64_url_encode((const unsigned char *)HEADER_JSON, sizeof HEADER_JSON - 1, &header64);
    if (rc)
        goto fail;
    rc = tt_b64_url_encode((const unsigned char *)payload, strlen(payload), &payload64);
    if (rc)
        goto fail;
    size_t hlen = strlen(header64), plen = strlen(payload64);
    /* Never mint what tt_jwt_verify would refuse: 43 = base64url of 32 bytes. */
    size_t total = hlen + 1 + plen + 1 + 43;
    if (total > TT_JWT_MAX_LEN) {
        rc = TT_ETOOLARGE;
        goto fail;
    }
    tok = malloc(total + 1);
    if (!tok) {
        rc = TT_ENOMEM;
        goto fail;
    }
    memcpy(tok, header64, hlen);
    tok[hlen] = '.';
    memcpy(tok + hlen + 1, payload64, plen);
    rc = hs256(secret, secret_len, tok, hlen + 1 + plen, sig);
    if (rc)
        goto fail;
    rc = tt_b64_url_encode(sig, sizeof sig, &sig64);
    if (rc)
        goto fail;
    if (strlen(sig64) != 43) {
        rc = TT_EINTERNAL;
        goto fail;
    }
    tok[hlen + 1 + plen] = '.';
    memcpy(tok + hlen + 2 + plen, sig64, 43);
    tok[total] = '\0';
    *out = tok;
    tok = NULL;
fail:
    OPENSSL_cleanse(sig, sizeof sig);
    free(tok);
    free(sig64);
    free(payload64);
    free(header64);
    free(payload);
    return rc;
}

/* ---- verification ------------------------------------------------------- */

/* Decode one base64url part and parse it as a JSON object; NULL if it is not. */
static json_t *decode_object(const char *part, size_t len)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    if (tt_b64_url_decode(part, len, &raw, &raw_len) != 0)
        return NULL;
    json_error_t jerr;
    /* Duplicate names are refused: two readers must never see two tokens. */
    json_t *j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int check_header(const json_t *h)
{
    const json_t *alg = json_object_get(h, "alg");
    /* (jansson refuses \u0000 in strings, so strcmp sees the whole value) */
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
        return TT_EAUTH;
    const json_t *typ = json_object_get(h, "typ");
    if (typ && (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0))
        return TT_EAUTH;
    /* RFC 7515 4.1.11: extensions we do not understand must be refused. */
    if (json_object_get(h, "crit"))
        return TT_EAUTH;
    return 0;
}

/* A string claim of 1 (or 0 when may_be_empty) to CLAIM_MAX - 1 bytes, a
 * valid name (protocol/names.h) when not empty. */
static int copy_claim(const json_t *v, char dst[CLAIM_MAX], bool may_be_empty)
{
    if (!json_is_string(v))
        return TT_EAUTH;
    size_t n = json_string_length(v);
    if (n >= CLAIM_MAX || (n == 0 && !may_be_empty) ||
        (n && tt_name_check(json_string_value(v), CLAIM_MAX - 1, NULL) != 0))
        return TT_EAUTH;
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

static int read_claims(const json_t *p, tt_jwt_claims *c)
{
    int rc = copy_claim(json_object_get(p, "sub"), c->sub, false);
    if (rc)
        return rc;
    const json_t *tenant = json_object_get(p, "tenant");
    if (tenant && (rc = copy_claim(tenant, c->tenant, true)) != 0)
        return rc;
    const json_t *kid = json_object_get(p, "kid");
    if (kid && (rc = copy_claim(kid, c->kid, true)) != 0)
        return rc;
    const json_t *exp = json_object_get(p, "exp");
    if (!json_is_integer(exp))
        return TT_EAUTH;
    c->exp = json_integer_value(exp);
    const json_t *iat = json_object_get(p, "iat");
    if (iat && !json_is_integer(iat))
        return TT_EAUTH;
    c->iat = iat ? json_integer_value(iat) : 0;
    const json_t *nbf = json_object_get(p, "nbf");
    if (nbf && !json_is_integer(nbf))
        return TT_EAUTH;
    c->nbf = nbf ? json_integer_value(nbf) : 0;
    json_t *agents = json_object_get(p, "agents");
    if (agents && !is_string_array(agents))
        return TT_EAUTH;
    c->agents = json_incref(agents);
    return 0;
}

int tt_jwt_verify(const unsigned char *secret, size_t secret_len, const char *token, int64_t now,
                  tt_jwt_claims *claims)
{
    if (!claims)
        return TT_EINVAL;
    memset(claims, 0, sizeof *claims);
    if (!secret || secret_len == 0)
        return TT_EINVAL;
    if (!token)
        return TT_EAUTH;
    size_t len = strnlen(token, TT_JWT_MAX_LEN + 1);
    if (len > TT_JWT_MAX_LEN)
        return TT_EAUTH;

    /* Exactly two dots, and nothing outside the base64url alphabet (so no
     * padding, which the compact serialization forbids). */
    const char *dot[2] = {NULL, NULL};
    size_t ndots = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2)
                return TT_EAUTH;
            dot[ndots++] = token + i;
        } else if (!tt_b64_url_char((unsigned char)token[i])) {
            return TT_EAUTH;
        }
    }
    if (ndots != 2)
        return TT_EAUTH;
    const char *sig_part = dot[1] + 1;
    size_t signed_len = (size_t)(dot[1] - token);

    unsigned char *sig = NULL;
    size_t sig_len = 0;
    unsigned char want[SIG_LEN];
    json_t *header = NULL, *payload = NULL;
    int rc = TT_EAUTH;
    if (tt_b64_url_decode(sig_part, len - (size_t)(sig_part - token), &sig, &sig_len) != 0 ||
        sig_len != SIG_LEN)
        goto done;
    rc = hs256(secret, secret_len, token, signed_len, want);
    if (rc)
        goto done;
    rc = TT_EAUTH;
    if (CRYPTO_memcmp(sig, want, SIG_LEN) != 0)
        goto done;

    header = decode_object(token, (size_t)(dot[0] - token));
    if (!header || check_header(header) != 0)
        goto done;
    payload = decode_object(dot[0] + 1, (size_t)(dot[1] - dot[0] - 1));
    if (!payload || read_claims(payload, claims) != 0)
        goto done;
    if (claims->nbf > now + TT_JWT_CLOCK_LEEWAY_S || claims->iat > now + TT_JWT_CLOCK_LEEWAY_S)
        rc = TT_EAUTH;
    else
        rc = claims->exp <= now ? TT_EEXPIRED : 0;
done:
    if (rc)
        tt_jwt_claims_clear(claims);
    OPENSSL_cleanse(want, sizeof want);
    free(sig);
    json_decref(header);
    json_decref(payload);
    return rc;
}

void tt_jwt_claims_clear(tt_jwt_claims *claims)
{
    if (!claims)
        return;
    json_decref(claims->agents);
    memset(claims, 0, sizeof *claims);
}
