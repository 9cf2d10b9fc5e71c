/* API keys and tokens: who may mint tokens and who a token says you are.
 *
 * API keys are never kept in clear: they are hashed with SHA-256 as soon as
 * they are read, and a presented key is compared against every stored hash
 * in constant time. The JWT signing secret comes from configuration, or is
 * generated once (32 random bytes) and kept in the store's meta database so
 * tokens survive restarts. */
#ifndef TT_AUTH_H
#define TT_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "server/jwt.h"

#define TT_AUTH_MAX_KEYS 64

typedef struct tt_auth_key {
    unsigned char sha256[32];
    char tenant[64];
} tt_auth_key;

typedef struct tt_auth {
    tt_auth_key keys[TT_AUTH_MAX_KEYS];
    size_t n_keys; /* 0 means open mode (loopback only, user "local") */
    unsigned char secret[64];
    size_t secret_len;
    int64_t max_ttl_s; /* longest token POST /v1/tokens will mint */
} tt_auth;

/* Add a key given in clear ("KEY" or "KEY:tenant"); the clear text is not kept. */
int tt_auth_add_key(tt_auth *a, const char *spec);
/* Add a key given as its SHA-256 in hex ("HEX" or "HEX:tenant"). */
int tt_auth_add_key_hash(tt_auth *a, const char *spec);
/* Set the signing secret (at least 32 bytes). */
int tt_auth_set_secret(tt_auth *a, const unsigned char *secret, size_t len);

/* Check a presented API key. On success copies its tenant to tenant (size n). TT_EAUTH otherwise.
 */
int tt_auth_check_key(const tt_auth *a, const char *key, char *tenant, size_t n);

/* The same, also copying the key's public id ("k_" and the first 12 hex
 * digits of its SHA-256, safe to log and to show) to key_id (size kn). */
int tt_auth_check_key_id(const tt_auth *a, const char *key, char *tenant, size_t n, char *key_id,
                         size_t kn);

/* Lower-case hex SHA-256 of s into out[65]. */
void tt_sha256_hex(const char *s, size_t len, char out[65]);

/* Constant-time equality of two byte strings of equal length. */
int tt_ct_equal(const void *a, const void *b, size_t len);

#endif
