/* Unit tests for server/auth.c: API keys in clear and hashed form, tenants,
 * limits, the signing secret, and the SHA-256 helpers. Each test uses a fresh
 * zeroed tt_auth (it is large, so it lives on the heap). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "server/auth.h"

/* SHA-256 known answers (FIPS 180-2): "abc" and "". */
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int setup(void **state)
{
    tt_auth *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* Check key and return its tenant (static buffer), or NULL when refused. */
static const char *tenant_of(const tt_auth *a, const char *key)
{
    static char tenant[64];
    memset(tenant, 0, sizeof tenant);
    int rc = tt_auth_check_key(a, key, tenant, sizeof tenant);
    if (rc) {
        assert_int_equal(rc, TT_EAUTH);
        return NULL;
    }
    return tenant;
}

/* ---- clear keys --------------------------------------------------------- */

static void test_auth_add_and_check_keys(void **state)
{
    tt_auth *a = *state;
    assert_int_equal(tt_auth_add_key(a, "k-one"), 0);
    assert_int_equal(tt_auth_add_key(a, "k-two:acme"), 0);
    assert_int_equal(a->n_keys, 2);
    assert_string_equal(tenant_of(a, "k-one"), "default");
    assert_string_equal(tenant_of(a, "k-two"), "acme");
    /* tenant may be left out of the check */
    assert_int_equal(tt_auth_check_key(a, "k-two", NULL, 0), 0);
}

static void test_auth_wrong_key_refused(void **state)
{
    tt_auth *a = *state;
    assert_int_equal(tt_auth_add_key(a, "right-key:acme"), 0);
    assert_null(tenant_of(a, "wrong-key"));
    assert_null(tenant_of(a, "right-ke"));
    assert_null(tenant_of(a, "right-key "));
    assert_null(tenant_of(a, "RIGHT-KEY"));
    assert_null(tenant_of(a, "right-key:acme")); /* the spec is not the key */
    assert_null(tenant_of(a, ""));
    assert_int_equal(tt_auth_check_key(a, NULL, NULL, 0), TT_EAUTH);
    assert_string_equal(tenant_of(a, "right-key"), "acme");
}

static void test_auth_no_keys_refuses_everything(void **state)
{
    tt_auth *a = *state;
    assert_int_equal(a->n_keys, 0);
    assert_null(tenant_of(a, "anything"));
    assert_null(tenant_of(a, ""));
}

static void test_auth_tenant_parsing(void **state)
{
    tt_auth *a = *state;
    /* split at the first ':', so a tenant may contain ':' but a key may not */
    assert_int_equal(tt_auth_add_key(a, "k1:team:blue"), 0);
    assert_string_equal(tenant_of(a, "k1"), "team:blue");
    assert_null(tenant_of(a, "k1:team"));

    assert_int_equal(tt_auth_add_key(a, ""), TT_EINVAL);      /* empty key */
    assert_int_equal(tt_auth_add_key(a, ":acme"), TT_EINVAL); /* empty key */
    assert_int_equal(tt_auth_add_key(a, "k2:"), TT_EINVAL);   /* empty tenant */
    assert_int_equal(tt_auth_add_key(a, NULL), TT_EINVAL);

    char spec[128], tenant[65];
    memset(tenant, 't', 63);
    tenant[63] = '\0'; /* 63 bytes: the longest */
    snprintf(spec, sizeof spec, "k3:%s", tenant);
    assert_int_equal(tt_auth_add_key(a, spec), 0);
    assert_string_equal(tenant_of(a, "k3"), tenant);
    memset(tenant, 'u', 64);
    tenant[64] = '\0'; /* 64 bytes: one too many */
    snprintf(spec, sizeof spec, "k4:%s", tenant);
    assert_int_equal(tt_auth_add_key(a, spec), TT_EINVAL);
    assert_null(tenant_of(a, "k4"));
    assert_int_equal(a->n_keys, 2); /* refusals add nothing */
}

static void test_auth_clear_key_not_kept(void **state)
{
    tt_auth *a = *state;
    const char *key = "sk-very-recognisable-key-0123456789";
    assert_int_equal(tt_auth_add_key(a, "sk-very-recognisable-key-0123456789:acme"), 0);
    assert_null(memmem(a, sizeof *a, key, strlen(key)));
    assert_null(memmem(a, sizeof *a, "recognisable", 12));
    char hex[65];
    tt_sha256_hex(key, strlen(key), hex);
    char spec[80];
    snprintf(spec, sizeof spec, "%s:acme", hex);
    /* what is kept is exactly the digest: the hash form of it is the same key */
    assert_int_equal(tt_auth_add_key_hash(a, spec), 0);
    assert_int_equal(a->n_keys, 1);
}

static void test_auth_duplicate_keys(void **state)
{
    tt_auth *a = *state;
    assert_int_equal(tt_auth_add_key(a, "dup:acme"), 0);
    assert_int_equal(tt_auth_add_key(a, "dup:acme"), 0); /* same tenant: no-op */
    assert_int_equal(a->n_keys, 1);
    assert_int_equal(tt_auth_add_key(a, "dup:other"), TT_ECONFLICT);
    assert_int_equal(tt_auth_add_key(a, "dup"), TT_ECONFLICT); /* "default" */
    assert_int_equal(a->n_keys, 1);
    assert_string_equal(tenant_of(a, "dup"), "acme");
}

static void test_auth_tenant_buffer_too_small(void **state)
{
    tt_auth *a = *state;
    assert_int_equal(tt_auth_add_key(a, "k:acme"), 0);
    char small[4] = "xyz";
    /* refused rather than truncated to another tenant's name */
    assert_int_equal(tt_auth_check_key(a, "k", small, sizeof small), TT_ETOOLARGE);
    char exact[5];
    assert_int_equal(tt_auth_check_key(a, "k", exact, sizeof exact), 0);
    assert_string_equal(exact, "acme");
}

static void test_auth_key_limit(void **state)
{
    tt_auth *a = *state;
    char spec[32];
    for (int i = 0; i < TT_AUTH_MAX_KEYS; i++) {
        snprintf(spec, sizeof spec, "key-%d:t%d", i, i);
        assert_int_equal(tt_auth_add_key(a, spec), 0);
    }
    assert_int_equal(a->n_keys, TT_AUTH_MAX_KEYS);
    assert_int_equal(tt_auth_add_key(a, "one-too-many"), TT_EFULL);
    assert_int_equal(tt_auth_add_key_hash(a, SHA_ABC), TT_EFULL);
    assert_int_equal(a->n_keys, TT_AUTH_MAX_KEYS);
    assert_null(tenant_of(a, "one-too-many"));
    /* every stored key still works, first and last included */
    for (int i = 0; i < TT_AUTH_MAX_KEYS; i++) {
        char key[16], want[16];
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(want, sizeof want, "t%d", i);
        assert_string_equal(tenant_of(a, key), want);
    }
    /* re-adding a stored key is still a no-op, not "full" */
    assert_int_equal(tt_auth_add_key(a, "key-0:t0"), 0);
}

/* ---- hashed keys -------------------------------------------------------- */

static void test_auth_hash_form(void **state)
{
    tt_auth *a = *state;
    assert_int_equal(tt_auth_add_key_hash(a, SHA_ABC ":acme"), 0);
    assert_string_equal(tenant_of(a, "abc"), "acme");
    assert_null(tenant_of(a, "abd"));

    /* upper case hex, default tenant */
    char hex[65], upper[65];
    tt_sha256_hex("sk-live-42", 10, hex);
    for (size_t i = 0; i < 65; i++)
        upper[i] = (hex[i] >= 'a' && hex[i] <= 'f') ? (char)(hex[i] - 'a' + 'A') : hex[i];
    assert_int_equal(tt_auth_add_key_hash(a, upper), 0);
    assert_string_equal(tenant_of(a, "sk-live-42"), "default");
    assert_int_equal(a->n_keys, 2);
}

static void test_auth_hash_form_refuses_bad_specs(void **state)
{
    tt_auth *a = *state;
    char spec[160];
    assert_int_equal(tt_auth_add_key_hash(a, ""), TT_EINVAL);
    assert_int_equal(tt_auth_add_key_hash(a, NULL), TT_EINVAL);
    snprintf(spec, sizeof spec, "%.63s", SHA_ABC); /* 63 digits */
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    snprintf(spec, sizeof spec, "%s0", SHA_ABC); /* 65 digits */
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    snprintf(spec, sizeof spec, "%.63sg", SHA_ABC); /* not hex */
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    snprintf(spec, sizeof spec, " %.63s", SHA_ABC);
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    snprintf(spec, sizeof spec, "0x%.62s", SHA_ABC);
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    snprintf(spec, sizeof spec, "%s:", SHA_ABC); /* empty tenant */
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    snprintf(spec, sizeof spec, "%s:%064d", SHA_ABC, 0); /* 64-byte tenant */
    assert_int_equal(tt_auth_add_key_hash(a, spec), TT_EINVAL);
    assert_int_equal(a->n_keys, 0);
}

/* ---- secret ------------------------------------------------------------- */

static void test_auth_secret_length(void **state)
{
    tt_auth *a = *state;
    unsigned char s[65];
    for (size_t i = 0; i < sizeof s; i++)
        s[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(tt_auth_set_secret(a, s, 0), TT_EINVAL);
    assert_int_equal(tt_auth_set_secret(a, s, 31), TT_EINVAL); /* too short */
    assert_int_equal(tt_auth_set_secret(a, s, 65), TT_EINVAL); /* too long */
    assert_int_equal(tt_auth_set_secret(a, NULL, 32), TT_EINVAL);
    assert_int_equal(a->secret_len, 0);

    assert_int_equal(tt_auth_set_secret(a, s, 64), 0);
    assert_int_equal(a->secret_len, 64);
    assert_memory_equal(a->secret, s, 64);
    assert_int_equal(tt_auth_set_secret(a, s + 1, 32), 0);
    assert_int_equal(a->secret_len, 32);
    assert_memory_equal(a->secret, s + 1, 32);
    /* the tail of the longer secret it replaced is wiped */
    unsigned char zero[32] = {0};
    assert_memory_equal(a->secret + 32, zero, 32);
}

static void test_auth_secret_signs_tokens(void **state)
{
    tt_auth *a = *state;
    const char *secret = "a-configured-secret-of-32-bytes+";
    assert_int_equal(tt_auth_set_secret(a, (const unsigned char *)secret, 32), 0);
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "u1");
    cl.exp = 4102444800;
    char *tok = NULL;
    assert_int_equal(tt_jwt_mint(a->secret, a->secret_len, &cl, &tok), 0);
    tt_jwt_claims got;
    assert_int_equal(tt_jwt_verify(a->secret, a->secret_len, tok, 1700000000, &got), 0);
    assert_string_equal(got.sub, "u1");
    tt_jwt_claims_clear(&got);
    free(tok);
}

/* ---- helpers ------------------------------------------------------------ */

static void test_auth_sha256_hex_vectors(void **state)
{
    char hex[65];
    memset(hex, '?', sizeof hex);
    tt_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, SHA_ABC);
    tt_sha256_hex("", 0, hex);
    assert_string_equal(hex, SHA_EMPTY);
    tt_sha256_hex("abcdef", 3, hex); /* only len bytes count */
    assert_string_equal(hex, SHA_ABC);
}

static void test_auth_ct_equal(void **state)
{
    assert_true(tt_ct_equal("abcd", "abcd", 4));
    assert_false(tt_ct_equal("abcd", "abce", 4));
    assert_false(tt_ct_equal("xbcd", "abcd", 4));
    assert_true(tt_ct_equal("abcd", "abce", 3));
    assert_true(tt_ct_equal("", "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_add_and_check_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_no_keys_refuses_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_tenant_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_clear_key_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_tenant_buffer_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_key_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_hash_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_hash_form_refuses_bad_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_secret_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_secret_signs_tokens, setup, teardown),
        cmocka_unit_test(test_auth_sha256_hex_vectors),
        cmocka_unit_test(test_auth_ct_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
