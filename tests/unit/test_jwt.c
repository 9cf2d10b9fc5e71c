/* Unit tests for server/jwt.c: mint/verify round trips,
 * and every way a token must be refused. Hand-built tokens are signed here
 * with OpenSSL's HMAC directly, so each malformed case is refused for the
 * reason it is named after rather than for its signature. Leaks are checked
 * by the sanitizer build (LeakSanitizer runs at exit). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protocol/base64.h"
#include "protocol/errors.h"
#include "server/jwt.h"

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef-test";
#define SECRET_LEN (sizeof SECRET - 1)
static const unsigned char OTHER[] = "fedcba9876543210fedcba9876543210-other";
#define OTHER_LEN (sizeof OTHER - 1)

#define NOW INT64_C(1700000000)

/* base64url of {"alg":"HS256","typ":"JWT"} */
#define HS256_HEADER "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

/* ---- helpers ------------------------------------------------------------ */

static char *b64(const char *s)
{
    char *out = NULL;
    assert_int_equal(tt_b64_url_encode((const unsigned char *)s, strlen(s), &out), 0);
    return out;
}

/* "h64.p64.<HS256 of the literal text h64.p64 under secret>". The parts are
 * used as given, so they may be deliberately broken. */
static char *sign_parts(const unsigned char *secret, size_t secret_len, const char *h64,
                        const char *p64)
{
    size_t n = strlen(h64) + 1 + strlen(p64);
    char *tok = malloc(n + 1 + 64);
    assert_non_null(tok);
    snprintf(tok, n + 1, "%s.%s", h64, p64);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)tok, n, mac, &mac_len));
    assert_int_equal(mac_len, 32);
    char *sig = NULL;
    assert_int_equal(tt_b64_url_encode(mac, sizeof mac, &sig), 0);
    snprintf(tok + n, 64, ".%s", sig);
    free(sig);
    return tok;
}

/* A token for header and payload JSON text, properly signed with SECRET. */
static char *sign_json(const char *header, const char *payload)
{
    char *h = b64(header), *p = b64(payload);
    char *tok = sign_parts(SECRET, SECRET_LEN, h, p);
    free(h);
    free(p);
    return tok;
}

static int verify(const char *tok, tt_jwt_claims *cl)
{
    return tt_jwt_verify(SECRET, SECRET_LEN, tok, NOW, cl);
}

/* Verify must fail with want and leave the claims empty. */
static void assert_refused(const char *tok, int want)
{
    tt_jwt_claims cl;
    memset(&cl, 0x5a, sizeof cl); /* garbage: verify must reset it */
    assert_int_equal(verify(tok, &cl), want);
    assert_null(cl.agents);
    assert_string_equal(cl.sub, "");
    tt_jwt_claims_clear(&cl);
}

static void assert_json_refused(const char *header, const char *payload)
{
    char *tok = sign_json(header, payload);
    assert_refused(tok, TT_EAUTH);
    free(tok);
}

/* Not inlined: GCC 12 at -O2 inlines this into callers and then reports the
 * returned token as a dangling pointer to the local `tok` (a false positive). */
__attribute__((noinline)) static char *mint(const char *sub, const char *tenant, int64_t iat,
                                            int64_t exp, json_t *agents)
{
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", sub);
    snprintf(cl.tenant, sizeof cl.tenant, "%s", tenant);
    cl.iat = iat;
    cl.exp = exp;
    cl.agents = agents;
    char *tok = NULL;
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), 0);
    assert_non_null(tok);
    return tok;
}

/* ---- round trips -------------------------------------------------------- */

static void test_jwt_round_trip(void **state)
{
    char *tok = mint("alice", "acme", NOW - 10, NOW + 3600, NULL);
    assert_int_equal(strncmp(tok, HS256_HEADER ".", strlen(HS256_HEADER) + 1), 0);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0);
    assert_string_equal(cl.sub, "alice");
    assert_string_equal(cl.tenant, "acme");
    assert_int_equal(cl.iat, NOW - 10);
    assert_int_equal(cl.exp, NOW + 3600);
    assert_null(cl.agents);
    tt_jwt_claims_clear(&cl);
    assert_null(cl.agents);
    free(tok);
}

static void test_jwt_empty_tenant_is_omitted(void **state)
{
    char *tok = mint("bob", "", NOW, NOW + 60, NULL);
    char *payload_part = strchr(tok, '.') + 1;
    size_t plen = (size_t)(strchr(payload_part, '.') - payload_part);
    unsigned char *payload = NULL;
    size_t n = 0;
    assert_int_equal(tt_b64_url_decode(payload_part, plen, &payload, &n), 0);
    assert_string_equal((char *)payload, "{\"sub\":\"bob\",\"iat\":1700000000,\"exp\":1700000060}");
    free(payload);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0);
    assert_string_equal(cl.tenant, "");
    tt_jwt_claims_clear(&cl);
    free(tok);
}

static void test_jwt_agents_round_trip(void **state)
{
    json_t *agents = json_pack("[s, s]", "echo", "llm");
    assert_non_null(agents);
    char *tok = mint("alice", "acme", NOW, NOW + 60, agents);
    assert_int_equal(agents->refcount, 1); /* mint borrows, never keeps */
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0);
    assert_true(json_equal(cl.agents, agents));
    tt_jwt_claims_clear(&cl);
    free(tok);

    json_t *none = json_array(); /* an empty allow-list is not "all" */
    tok = mint("alice", "", NOW, NOW + 60, none);
    assert_int_equal(verify(tok, &cl), 0);
    assert_non_null(cl.agents);
    assert_int_equal(json_array_size(cl.agents), 0);
    tt_jwt_claims_clear(&cl);
    free(tok);
    json_decref(none);
    json_decref(agents);
}

static void test_jwt_mint_refuses_bad_claims(void **state)
{
    tt_jwt_claims cl;
    char *tok = (char *)"sentinel";
    memset(&cl, 0, sizeof cl);
    cl.exp = NOW + 60;
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), TT_EINVAL); /* sub empty */
    assert_null(tok);
    memset(cl.sub, 'a', sizeof cl.sub); /* no NUL: 128 bytes */
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), TT_EINVAL);
    snprintf(cl.sub, sizeof cl.sub, "\xff\xfe"); /* not UTF-8 */
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), TT_EINVAL);
    snprintf(cl.sub, sizeof cl.sub, "u");
    cl.agents = json_pack("[s, i]", "echo", 3);
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), TT_EINVAL);
    json_decref(cl.agents);
    cl.agents = json_string("echo");
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), TT_EINVAL);
    json_decref(cl.agents);
    cl.agents = NULL;
    assert_int_equal(tt_jwt_mint(NULL, 0, &cl, &tok), TT_EINVAL);
    assert_null(tok);
}

static void test_jwt_mint_refuses_token_over_limit(void **state)
{
    json_t *agents = json_array();
    char name[101];
    memset(name, 'x', 100);
    name[100] = '\0';
    for (int i = 0; i < 70; i++) /* ~7 KiB of JSON, ~9.5 KiB of base64 */
        json_array_append_new(agents, json_string(name));
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "u");
    cl.exp = NOW + 60;
    cl.agents = agents;
    char *tok = NULL;
    assert_int_equal(tt_jwt_mint(SECRET, SECRET_LEN, &cl, &tok), TT_ETOOLARGE);
    assert_null(tok);
    json_decref(agents);
}

/* ---- known answers from an independent implementation ------------------- */

/* Made with node 20 (crypto.createHmac, Buffer base64url):
 *
 *   const crypto = require('crypto');
 *   const b64u = b => Buffer.from(b).toString('base64url');
 *   function mint(secret, claims) {
 *     const h = b64u(JSON.stringify({alg: 'HS256', typ: 'JWT'}));
 *     const p = b64u(JSON.stringify(claims));
 *     const s = crypto.createHmac('sha256', secret).update(h + '.' + p).digest('base64url');
 *     return h + '.' + p + '.' + s;
 *   }
 *   const secret = 'tether-known-answer-secret-0123456789';
 *   mint(secret, {sub: 'alice', tenant: 'acme', iat: 1700000000, exp: 4102444800,
 *                 agents: ['echo', 'llm']});
 *   mint(secret, {sub: 'bob', iat: 1700000000, exp: 4102444800});
 *   mint(secret, {sub: 'zo\u00e9 \u{1F600}', tenant: 'acme', iat: 1700000000,
 *                 exp: 4102444800, agents: []});
 */
static const char KAT_SECRET[] = "tether-known-answer-secret-0123456789";
static const char KAT_FULL[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZSIsInRlbmFudCI6ImFjbWUiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMCwiYWdl"
    "bnRzIjpbImVjaG8iLCJsbG0iXX0."
    "prZrTTHNff_xo1B1RcRL3_C8DTj4O4nxrP6oYDpR8n4";
static const char KAT_MINIMAL[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                                  "eyJzdWIiOiJib2IiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0."
                                  "NZd5LK-tIAXtzXn2IM7nwcVxdbSC9-0-uv83aHxmdxo";
static const char KAT_UTF8[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ6b8OpIPCfmIAiLCJ0ZW5hbnQiOiJhY21lIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDAs"
    "ImFnZW50cyI6W119."
    "oDjHO7XVxSmFjrX7hDedUrW_JIy5Rv3FOz6a7TyFuHU";

static void check_kat(const char *token, const char *sub, const char *tenant, json_t *agents)
{
    const unsigned char *secret = (const unsigned char *)KAT_SECRET;
    size_t secret_len = sizeof KAT_SECRET - 1;
    tt_jwt_claims cl;
    assert_int_equal(tt_jwt_verify(secret, secret_len, token, NOW, &cl), 0);
    assert_string_equal(cl.sub, sub);
    assert_string_equal(cl.tenant, tenant);
    assert_int_equal(cl.iat, INT64_C(1700000000));
    assert_int_equal(cl.exp, INT64_C(4102444800));
    if (agents)
        assert_true(json_equal(cl.agents, agents));
    else
        assert_null(cl.agents);

    /* The same claims minted here give the byte-identical token. */
    char *ours = NULL;
    assert_int_equal(tt_jwt_mint(secret, secret_len, &cl, &ours), 0);
    assert_string_equal(ours, token);
    free(ours);
    tt_jwt_claims_clear(&cl);

    /* ...and under another secret it is refused. */
    assert_int_equal(tt_jwt_verify(SECRET, SECRET_LEN, token, NOW, &cl), TT_EAUTH);
}

static void test_jwt_known_answer_from_node(void **state)
{
    json_t *agents = json_pack("[s, s]", "echo", "llm");
    check_kat(KAT_FULL, "alice", "acme", agents);
    json_decref(agents);
    check_kat(KAT_MINIMAL, "bob", "", NULL);
    json_t *empty = json_array();
    check_kat(KAT_UTF8, "zo\xc3\xa9 \xf0\x9f\x98\x80", "acme", empty);
    json_decref(empty);
}

/* ---- expiry ------------------------------------------------------------- */

static void test_jwt_expired_in_the_past(void **state)
{
    char *tok = mint("alice", "acme", NOW - 7200, NOW - 3600, NULL);
    assert_refused(tok, TT_EEXPIRED);
    free(tok);
}

static void test_jwt_expires_at_exp_itself(void **state)
{
    char *tok = mint("alice", "acme", NOW - 60, NOW, NULL);
    assert_refused(tok, TT_EEXPIRED); /* exp == now */
    tt_jwt_claims cl;
    assert_int_equal(tt_jwt_verify(SECRET, SECRET_LEN, tok, NOW - 1, &cl), 0);
    tt_jwt_claims_clear(&cl);
    free(tok);
}

static void test_jwt_expired_and_unsigned_is_eauth(void **state)
{
    /* An expired token under the wrong secret is a bad token, not an expired one. */
    char *tok = mint("alice", "acme", NOW - 7200, NOW - 3600, NULL);
    tt_jwt_claims cl;
    assert_int_equal(tt_jwt_verify(OTHER, OTHER_LEN, tok, NOW, &cl), TT_EAUTH);
    assert_null(cl.agents);
    free(tok);
}

static void test_jwt_refused_before_its_nbf(void **state)
{
    char payload[160];
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)NOW + 3600, (long long)NOW + TT_JWT_CLOCK_LEEWAY_S + 1);
    char *tok = sign_json("{\"alg\":\"HS256\"}", payload);
    assert_refused(tok, TT_EAUTH);
    free(tok);
}

static void test_jwt_nbf_within_the_clock_leeway_accepted(void **state)
{
    char payload[160];
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)NOW + 3600, (long long)NOW + TT_JWT_CLOCK_LEEWAY_S);
    char *tok = sign_json("{\"alg\":\"HS256\"}", payload);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0);
    assert_int_equal(cl.nbf, NOW + TT_JWT_CLOCK_LEEWAY_S);
    tt_jwt_claims_clear(&cl);
    free(tok);
}

static void test_jwt_refused_when_issued_in_the_future(void **state)
{
    char *tok = mint("alice", "acme", NOW + TT_JWT_CLOCK_LEEWAY_S + 1, NOW + 7200, NULL);
    assert_refused(tok, TT_EAUTH);
    free(tok);
    tok = mint("alice", "acme", NOW + TT_JWT_CLOCK_LEEWAY_S, NOW + 7200, NULL);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0); /* a clock a little ahead is fine */
    tt_jwt_claims_clear(&cl);
    free(tok);
}

static void test_jwt_nbf_must_be_an_integer(void **state)
{
    char payload[160];
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%lld,\"nbf\":\"0\"}",
             (long long)NOW + 3600);
    char *tok = sign_json("{\"alg\":\"HS256\"}", payload);
    assert_refused(tok, TT_EAUTH);
    free(tok);
}

/* ---- signatures --------------------------------------------------------- */

static void test_jwt_flipped_signature_char(void **state)
{
    char *tok = mint("alice", "acme", NOW, NOW + 60, NULL);
    size_t len = strlen(tok);
    /* every position of the signature, first and last included */
    char *sig = strrchr(tok, '.') + 1;
    for (char *c = sig; c < tok + len; c++) {
        char was = *c;
        *c = was == 'A' ? 'B' : 'A';
        assert_refused(tok, TT_EAUTH);
        *c = was;
    }
    /* a flipped payload character breaks the signature too */
    char *p = strchr(tok, '.') + 5;
    *p = *p == 'A' ? 'B' : 'A';
    assert_refused(tok, TT_EAUTH);
    free(tok);
}

static void test_jwt_non_canonical_signature_refused(void **state)
{
    /* 32 bytes leave 2 spare bits in the 43rd character; setting them must
     * not give a second valid spelling of the same signature. */
    char *tok = mint("alice", "acme", NOW, NOW + 60, NULL);
    size_t len = strlen(tok);
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alpha, tok[len - 1]) - alpha);
    assert_int_equal(v & 3, 0);
    tok[len - 1] = alpha[v | 1];
    assert_refused(tok, TT_EAUTH);
    free(tok);
}

static void test_jwt_other_secret_refused(void **state)
{
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "alice");
    cl.exp = NOW + 60;
    char *tok = NULL;
    assert_int_equal(tt_jwt_mint(OTHER, OTHER_LEN, &cl, &tok), 0);
    assert_refused(tok, TT_EAUTH);
    free(tok);
}

static void test_jwt_signature_wrong_length(void **state)
{
    char *tok = mint("alice", "acme", NOW, NOW + 60, NULL);
    size_t len = strlen(tok);
    char *shorter = strndup(tok, len - 3); /* 40 chars: 30 bytes */
    assert_refused(shorter, TT_EAUTH);
    char *longer = malloc(len + 4);
    snprintf(longer, len + 4, "%sAAA", tok); /* 46 chars: 34 bytes */
    assert_refused(longer, TT_EAUTH);
    char *empty = strndup(tok, (size_t)(strrchr(tok, '.') - tok) + 1);
    assert_refused(empty, TT_EAUTH);
    free(empty);
    free(longer);
    free(shorter);
    free(tok);
}

/* ---- alg ---------------------------------------------------------------- */

static void test_jwt_alg_none_refused(void **state)
{
    char *h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *p = b64("{\"sub\":\"mallory\",\"exp\":4102444800}");
    char tok[256];
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    assert_refused(tok, TT_EAUTH);
    /* "none" even with a valid HS256 signature over it */
    char *signed_none = sign_parts(SECRET, SECRET_LEN, h, p);
    assert_refused(signed_none, TT_EAUTH);
    free(signed_none);
    free(p);
    free(h);
}

static void test_jwt_other_algs_refused(void **state)
{
    const char *payload = "{\"sub\":\"alice\",\"exp\":4102444800}";
    assert_json_refused("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload);
    assert_json_refused("{\"alg\":\"hs256\",\"typ\":\"JWT\"}", payload);
    assert_json_refused("{\"alg\":\"RS256\"}", payload);
    assert_json_refused("{\"alg\":\"HS256 \"}", payload);
    assert_json_refused("{\"typ\":\"JWT\"}", payload); /* alg missing */
    assert_json_refused("{\"alg\":null}", payload);
    assert_json_refused("{\"alg\":[\"HS256\"]}", payload);
    assert_json_refused("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", payload);
    assert_json_refused("{\"alg\":\"HS256\",\"typ\":7}", payload);
    assert_json_refused("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", payload);
    assert_json_refused("{\"alg\":\"none\",\"alg\":\"HS256\"}", payload); /* duplicate */
    assert_json_refused("[\"HS256\"]", payload);
    assert_json_refused("\"HS256\"", payload);
}

static void test_jwt_header_variants_accepted(void **state)
{
    /* typ is optional, other members are ignored, order does not matter */
    const char *payload = "{\"sub\":\"alice\",\"exp\":4102444800}";
    const char *headers[] = {
        "{\"alg\":\"HS256\"}",
        "{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
        "{ \"alg\" : \"HS256\", \"kid\": \"k1\" }",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *tok = sign_json(headers[i], payload);
        tt_jwt_claims cl;
        assert_int_equal(verify(tok, &cl), 0);
        assert_string_equal(cl.sub, "alice");
        tt_jwt_claims_clear(&cl);
        free(tok);
    }
}

/* ---- malformed ---------------------------------------------------------- */

static void test_jwt_malformed_structure(void **state)
{
    char *good = mint("alice", "acme", NOW, NOW + 60, NULL);
    char buf[512];
    char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');

    assert_refused(NULL, TT_EAUTH);
    assert_refused("", TT_EAUTH);
    assert_refused("..", TT_EAUTH);
    assert_refused("eyJhbGciOiJIUzI1NiJ9", TT_EAUTH);            /* no dots */
    snprintf(buf, sizeof buf, "%.*s", (int)(dot2 - good), good); /* 2 parts */
    assert_refused(buf, TT_EAUTH);
    snprintf(buf, sizeof buf, "%s.", good); /* 4 parts, last empty */
    assert_refused(buf, TT_EAUTH);
    snprintf(buf, sizeof buf, "%s.%s", good, dot2 + 1); /* 4 parts */
    assert_refused(buf, TT_EAUTH);
    snprintf(buf, sizeof buf, "%s==", good); /* padded signature */
    assert_refused(buf, TT_EAUTH);
    snprintf(buf, sizeof buf, " %s", good);
    assert_refused(buf, TT_EAUTH);
    snprintf(buf, sizeof buf, "%s\n", good);
    assert_refused(buf, TT_EAUTH);
    snprintf(buf, sizeof buf, "%.*s%s", (int)(dot1 - good), good, dot2); /* empty payload */
    assert_refused(buf, TT_EAUTH);
    free(good);
}

static void test_jwt_malformed_base64_parts(void **state)
{
    /* Signed over the literal (broken) text, so only the decoding can refuse. */
    char *p = b64("{\"sub\":\"alice\",\"exp\":4102444800}");
    char bad_p[256];
    snprintf(bad_p, sizeof bad_p, "%s+", p); /* standard alphabet */
    char *tok = sign_parts(SECRET, SECRET_LEN, HS256_HEADER, bad_p);
    assert_refused(tok, TT_EAUTH);
    free(tok);
    snprintf(bad_p, sizeof bad_p, "%s", p);
    while (strlen(bad_p) % 4 != 1) /* an impossible length */
        strcat(bad_p, "A");
    tok = sign_parts(SECRET, SECRET_LEN, HS256_HEADER, bad_p);
    assert_refused(tok, TT_EAUTH);
    free(tok);
    tok = sign_parts(SECRET, SECRET_LEN, HS256_HEADER "=", p); /* padded header */
    assert_refused(tok, TT_EAUTH);
    free(tok);
    tok = sign_parts(SECRET, SECRET_LEN, "e!JhbGciOiJIUzI1NiJ9", p);
    assert_refused(tok, TT_EAUTH);
    free(tok);
    /* the control: the same construction with good parts verifies */
    tok = sign_parts(SECRET, SECRET_LEN, HS256_HEADER, p);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0);
    tt_jwt_claims_clear(&cl);
    free(tok);
    free(p);
}

static void test_jwt_payload_not_json(void **state)
{
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    assert_json_refused(h, "not json");
    assert_json_refused(h, "");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800");    /* truncated */
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800} x"); /* trailing */
    assert_json_refused(h, "[\"alice\",4102444800]");
    assert_json_refused(h, "4102444800");
    assert_json_refused(h, "null");
    assert_json_refused(h, "{\"sub\":\"al\\u0000ice\",\"exp\":4102444800}"); /* NUL */
    assert_json_refused(h, "{\"sub\":\"\xff\",\"exp\":4102444800}");         /* not UTF-8 */
    /* duplicate claims: readers could disagree on which one counts */
    assert_json_refused(h, "{\"sub\":\"alice\",\"sub\":\"root\",\"exp\":4102444800}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":1,\"exp\":4102444800}");
}

static void test_jwt_claim_types(void **state)
{
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    assert_json_refused(h, "{\"exp\":4102444800}");              /* sub missing */
    assert_json_refused(h, "{\"sub\":\"\",\"exp\":4102444800}"); /* sub empty */
    assert_json_refused(h, "{\"sub\":7,\"exp\":4102444800}");
    assert_json_refused(h, "{\"sub\":null,\"exp\":4102444800}");
    assert_json_refused(h, "{\"sub\":\"alice\"}");                        /* exp missing */
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":\"4102444800\"}"); /* exp a string */
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800.0}");   /* exp a real */
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":null}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"iat\":\"1\"}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"tenant\":5}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"tenant\":null}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"agents\":\"echo\"}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"agents\":[\"echo\",1]}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"agents\":null}");
    assert_json_refused(h, "{\"sub\":\"alice\",\"exp\":4102444800,\"agents\":{}}");
}

static void test_jwt_claim_lengths(void **state)
{
    const char *h = "{\"alg\":\"HS256\"}";
    char s[128 + 1], payload[512];
    memset(s, 'a', sizeof s - 1);
    s[128] = '\0'; /* 128 bytes: one too many */
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"exp\":4102444800}", s);
    assert_json_refused(h, payload);
    snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"tenant\":\"%s\",\"exp\":4102444800}", s);
    assert_json_refused(h, payload);

    s[127] = '\0'; /* 127 bytes: the longest that fits */
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"tenant\":\"%s\",\"exp\":4102444800}", s,
             s);
    char *tok = sign_json(h, payload);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0);
    assert_int_equal(strlen(cl.sub), 127);
    assert_int_equal(strlen(cl.tenant), 127);
    assert_int_equal(cl.iat, 0); /* iat is optional */
    tt_jwt_claims_clear(&cl);
    free(tok);

    /* unknown claims (nbf, jti...) are ignored */
    tok = sign_json(h, "{\"sub\":\"u\",\"exp\":4102444800,\"jti\":\"x\",\"aud\":[1]}");
    assert_int_equal(verify(tok, &cl), 0);
    tt_jwt_claims_clear(&cl);
    free(tok);
}

/* ---- size cap ----------------------------------------------------------- */

/* A validly signed token whose length is target or target + 1 (the base64
 * length of a growing payload steps by 1 or 2), made with a padding claim. */
static char *token_of_length(size_t target, size_t *len)
{
    for (size_t pad = target * 3 / 4 - 200; pad < target * 3 / 4; pad++) {
        char *payload = malloc(pad + 64);
        assert_non_null(payload);
        int n = snprintf(payload, pad + 64, "{\"sub\":\"u\",\"exp\":4102444800,\"x\":\"");
        memset(payload + n, 'x', pad);
        snprintf(payload + n + pad, 64 - (size_t)n, "\"}");
        char *tok = sign_json("{\"alg\":\"HS256\"}", payload);
        free(payload);
        if (strlen(tok) >= target) {
            *len = strlen(tok);
            return tok;
        }
        free(tok);
    }
    fail_msg("no padding reaches %zu", target);
    return NULL;
}

static void test_jwt_over_long_token_refused(void **state)
{
    size_t len = 0;
    char *tok = token_of_length(TT_JWT_MAX_LEN - 1, &len);
    assert_true(len == TT_JWT_MAX_LEN - 1 || len == TT_JWT_MAX_LEN);
    tt_jwt_claims cl;
    assert_int_equal(verify(tok, &cl), 0); /* at (or just under) the cap: fine */
    tt_jwt_claims_clear(&cl);
    free(tok);

    tok = token_of_length(TT_JWT_MAX_LEN + 1, &len);
    assert_true(len > TT_JWT_MAX_LEN && len <= TT_JWT_MAX_LEN + 2);
    assert_refused(tok, TT_EAUTH); /* validly signed, but over the cap */
    free(tok);

    /* a huge string is refused without being read to its end */
    size_t big = 1 << 20;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[big] = '\0';
    assert_refused(huge, TT_EAUTH);
    free(huge);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_round_trip),
        cmocka_unit_test(test_jwt_empty_tenant_is_omitted),
        cmocka_unit_test(test_jwt_agents_round_trip),
        cmocka_unit_test(test_jwt_mint_refuses_bad_claims),
        cmocka_unit_test(test_jwt_mint_refuses_token_over_limit),
        cmocka_unit_test(test_jwt_known_answer_from_node),
        cmocka_unit_test(test_jwt_expired_in_the_past),
        cmocka_unit_test(test_jwt_expires_at_exp_itself),
        cmocka_unit_test(test_jwt_expired_and_unsigned_is_eauth),
        cmocka_unit_test(test_jwt_flipped_signature_char),
        cmocka_unit_test(test_jwt_non_canonical_signature_refused),
        cmocka_unit_test(test_jwt_other_secret_refused),
        cmocka_unit_test(test_jwt_signature_wrong_length),
        cmocka_unit_test(test_jwt_alg_none_refused),
        cmocka_unit_test(test_jwt_other_algs_refused),
        cmocka_unit_test(test_jwt_header_variants_accepted),
        cmocka_unit_test(test_jwt_malformed_structure),
        cmocka_unit_test(test_jwt_malformed_base64_parts),
        cmocka_unit_test(test_jwt_payload_not_json),
        cmocka_unit_test(test_jwt_claim_types),
        cmocka_unit_test(test_jwt_claim_lengths),
        cmocka_unit_test(test_jwt_over_long_token_refused),
        cmocka_unit_test(test_jwt_refused_before_its_nbf),
        cmocka_unit_test(test_jwt_nbf_within_the_clock_leeway_accepted),
        cmocka_unit_test(test_jwt_refused_when_issued_in_the_future),
        cmocka_unit_test(test_jwt_nbf_must_be_an_integer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
