/* protocol/base64.c: base64url vectors and refusals (moved here from
 * test_jwt.c with the codec), and the strict standard decoder the BPE rank
 * files use, including every input EVP_DecodeBlock() alone would let through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/base64.h"
#include "protocol/errors.h"

/* ---- base64url ---------------------------------------------------------- */

static void check_encode(const char *in, size_t len, const char *want)
{
    char *out = NULL;
    assert_int_equal(tt_b64_url_encode((const unsigned char *)in, len, &out), 0);
    assert_string_equal(out, want);
    free(out);
}

static void check_decode(const char *in, const char *want, size_t want_len)
{
    unsigned char *out = NULL;
    size_t n = 99;
    assert_int_equal(tt_b64_url_decode(in, strlen(in), &out, &n), 0);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[n], '\0');
    free(out);
}

static void check_decode_refused(const char *in, size_t len)
{
    unsigned char *out = (unsigned char *)"sentinel";
    size_t n = 99;
    assert_int_equal(tt_b64_url_decode(in, len, &out, &n), TT_EINVAL);
    assert_null(out);
    assert_int_equal(n, 0);
}

/* RFC 4648 section 10, plus the two characters that differ between the
 * alphabets: the bytes, standard base64 and base64url of each. */
static const struct vector {
    const char *bytes;
    size_t len;
    const char *std, *url;
} VECTORS[] = {
    {"", 0, "", ""},
    {"f", 1, "Zg==", "Zg"},
    {"fo", 2, "Zm8=", "Zm8"},
    {"foo", 3, "Zm9v", "Zm9v"},
    {"foob", 4, "Zm9vYg==", "Zm9vYg"},
    {"fooba", 5, "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", 6, "Zm9vYmFy", "Zm9vYmFy"},
    {"\xfb\xff", 2, "+/8=", "-_8"},
    {"\xfb\xff\xbf", 3, "+/+/", "-_-_"},
    {"\0\0\0", 3, "AAAA", "AAAA"},
};
#define N_VECTORS (sizeof VECTORS / sizeof VECTORS[0])

static void test_base64_url_encode_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++)
        check_encode(VECTORS[i].bytes, VECTORS[i].len, VECTORS[i].url);
}

static void test_base64_url_decode_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++)
        check_decode(VECTORS[i].url, VECTORS[i].bytes, VECTORS[i].len);
    /* padding is optional, and accepted when complete */
    check_decode("Zg==", "f", 1);
    check_decode("Zm8=", "fo", 2);
    check_decode("Zm9vYg==", "foob", 4);
}

static void test_base64_url_decode_refuses_bad_input(void **state)
{
    check_decode_refused("Z", 1);      /* len % 4 == 1 */
    check_decode_refused("Zm9vY", 5);  /* len % 4 == 1 */
    check_decode_refused("Zm+v", 4);   /* standard alphabet */
    check_decode_refused("Zm/v", 4);   /* standard alphabet */
    check_decode_refused("Zm9v\n", 5); /* whitespace */
    check_decode_refused("Zm 9v", 5);
    check_decode_refused("Zm9v.", 5);
    check_decode_refused("Zg\0g", 4);       /* embedded NUL */
    check_decode_refused("Zm9\xc3\xa9", 5); /* non-ASCII */
    check_decode_refused("Zg=", 3);         /* incomplete padding */
    check_decode_refused("Zg===", 5);       /* too much padding */
    check_decode_refused("Zm8==", 5);
    check_decode_refused("Zm9v=", 5);
    check_decode_refused("Z=g=", 4); /* padding in the middle */
    check_decode_refused("Zm9v====", 8);
    check_decode_refused("=", 1);
    check_decode_refused("====", 4);
    /* non-canonical: stray low bits in the last character */
    check_decode_refused("Zh", 2);
    check_decode_refused("Zm9", 3);
    check_decode_refused("-_9", 3);
}

static void test_base64_url_round_trip_all_bytes(void **state)
{
    unsigned char buf[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof buf; len++) {
        char *enc = NULL;
        assert_int_equal(tt_b64_url_encode(buf, len, &enc), 0);
        assert_int_equal(strlen(enc), len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0));
        assert_null(strpbrk(enc, "+/="));
        unsigned char *dec = NULL;
        size_t n = 0;
        assert_int_equal(tt_b64_url_decode(enc, strlen(enc), &dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, buf, len);
        free(dec);
        free(enc);
    }
}

/* ---- standard base64 ---------------------------------------------------- */

static void check_std(const char *in, const char *want, size_t want_len)
{
    unsigned char out[64];
    memset(out, 0x5a, sizeof out);
    size_t n = 99;
    assert_int_equal(tt_b64_decode(in, strlen(in), out, sizeof out, &n), 0);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
}

static void check_std_refused(const char *in, size_t len)
{
    unsigned char out[64];
    size_t n = 99;
    if (tt_b64_decode(in, len, out, sizeof out, &n) != TT_EINVAL)
        fail_msg("accepted \"%.*s\"", (int)len, in);
    assert_int_equal(n, 0);
}

static void test_base64_decode_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++)
        check_std(VECTORS[i].std, VECTORS[i].bytes, VECTORS[i].len);
}

/* What EVP_DecodeBlock() would decode on its own, each refused by our checks. */
static void test_base64_decode_refuses_what_openssl_lets_through(void **state)
{
    check_std_refused("Z=g=", 4);     /* '=' read as zero bits mid-group */
    check_std_refused("Zg==Zg==", 8); /* padding before the end */
    check_std_refused("Zm9v====", 8); /* a whole group of padding */
    check_std_refused("====", 4);
    check_std_refused("    Zm9v", 8);     /* leading whitespace skipped */
    check_std_refused("Zm9v\n\n\n\n", 8); /* trailing line ends dropped */
    check_std_refused("Zm9v\r\n\r\n", 8);
    check_std_refused("Zm9v----", 8); /* trailing '-' dropped as end of data */
    check_std_refused("Zm9v\t  \t", 8);
    check_std_refused("Zh==", 4); /* stray bits: "Zg==" is the one spelling */
    check_std_refused("Zm9=", 4); /* stray bits: "Zm8=" */
}

static void test_base64_decode_refuses_malformed(void **state)
{
    check_std_refused("Zg", 2); /* padding is required */
    check_std_refused("Zm9", 3);
    check_std_refused("Zg=", 3);
    check_std_refused("Zm-v", 4); /* base64url's alphabet */
    check_std_refused("Zm_v", 4);
    check_std_refused("Zm 9", 4);
    check_std_refused("Zg\0=", 4);
    check_std_refused("Zm9\xc3", 4);
    check_std_refused("Zg===", 5);
}

/* A buffer too short for what the text can hold is refused before any write. */
static void test_base64_decode_refuses_a_short_buffer(void **state)
{
    unsigned char out[3] = {1, 2, 3};
    size_t n = 99;
    assert_int_equal(tt_b64_decode("Zm9vYg==", 8, out, sizeof out, &n), TT_ETOOLARGE);
    assert_int_equal(n, 0);
    assert_int_equal(out[0], 1);
    assert_int_equal(tt_b64_decode("Zm9v", 4, out, sizeof out, &n), 0);
    assert_memory_equal(out, "foo", 3);
}

/* tt_hex_encode gives what snprintf("%02x") per byte gives, for every byte
 * value and for none at all. */
static void test_hex_encode_is_snprintf_02x(void **state)
{
    (void)state;
    unsigned char in[256];
    char want[2 * 256 + 1], got[2 * 256 + 1];
    for (int i = 0; i < 256; i++) {
        in[i] = (unsigned char)(255 - i);
        snprintf(want + 2 * i, 3, "%02x", in[i]);
    }
    memset(got, 'x', sizeof got);
    tt_hex_encode(in, sizeof in, got);
    assert_string_equal(got, want);
    tt_hex_encode(in, 0, got);
    assert_string_equal(got, "");
    tt_hex_encode(in + 240, 3, got);
    assert_string_equal(got, "0f0e0d");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_url_encode_rfc4648_vectors),
        cmocka_unit_test(test_hex_encode_is_snprintf_02x),
        cmocka_unit_test(test_base64_url_decode_rfc4648_vectors),
        cmocka_unit_test(test_base64_url_decode_refuses_bad_input),
        cmocka_unit_test(test_base64_url_round_trip_all_bytes),
        cmocka_unit_test(test_base64_decode_rfc4648_vectors),
        cmocka_unit_test(test_base64_decode_refuses_what_openssl_lets_through),
        cmocka_unit_test(test_base64_decode_refuses_malformed),
        cmocka_unit_test(test_base64_decode_refuses_a_short_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
