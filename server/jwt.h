/* JSON Web Tokens, HS256 only (RFC 7519 / RFC 7515), signed and verified with
 * OpenSSL's HMAC-SHA256. Any standard JWT library can verify what we mint.
 *
 * Verification is strict: the header must be {"alg":"HS256"} (typ optional,
 * "JWT" if present); "none" and every other alg are refused; the signature is
 * compared in constant time; "exp" is required and enforced; "sub" required;
 * "nbf" and "iat", when present, may not be later than now plus
 * TT_JWT_CLOCK_LEEWAY_S (a token not yet valid, or issued in the future by a
 * clock that is off, is refused). */
#ifndef TT_JWT_H
#define TT_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define TT_JWT_MAX_LEN 8192      /* longer tokens are refused before any parsing */
#define TT_JWT_CLOCK_LEEWAY_S 60 /* clock skew allowed between minter and verifier for nbf, iat */

typedef struct tt_jwt_claims {
    char sub[128];    /* user id */
    char tenant[128]; /* tenant id; "" when absent */
    char kid[128];    /* the public id of the API key that minted it; "" when absent */
    int64_t exp;      /* expiry, seconds since the epoch */
    int64_t iat;      /* issued at; 0 when absent */
    int64_t nbf;      /* not before; 0 when absent (never minted by us) */
    json_t *agents;   /* allow-list of agent names (array) or NULL for all; owned */
} tt_jwt_claims;

/* Mint a token for claims (agents may be NULL). *out is malloc'd; caller frees. */
int tt_jwt_mint(const unsigned char *secret, size_t secret_len, const tt_jwt_claims *claims,
                char **out);

/* Verify token against secret at time now (seconds). On success fills *claims
 * (caller releases with tt_jwt_claims_clear). Returns TT_EAUTH for a malformed
 * token, bad signature or wrong alg, an nbf or iat later than
 * now + TT_JWT_CLOCK_LEEWAY_S; TT_EEXPIRED when exp <= now. */
int tt_jwt_verify(const unsigned char *secret, size_t secret_len, const char *token, int64_t now,
                  tt_jwt_claims *claims);

void tt_jwt_claims_clear(tt_jwt_claims *claims);

#endif
