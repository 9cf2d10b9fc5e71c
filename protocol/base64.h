/* Base64 (RFC 4648), one strict codec for everything that reads or writes it:
 * the BPE rank files (standard alphabet, padded) and JSON Web Tokens
 * (base64url, unpadded).
 *
 * The bits are OpenSSL's EVP_EncodeBlock() and EVP_DecodeBlock(); the
 * strictness is ours, because EVP_DecodeBlock() skips whitespace at the
 * start, drops whitespace, line ends and '-' at the end, reads '=' anywhere
 * as zero bits, and counts the padding in the length it returns.
 *
 * Decoding is canonical: one spelling per byte sequence. Only the alphabet's
 * 64 characters, then at most two '=' that complete the last group of four,
 * and no stray bits in the last character; so a signature cannot be re-spelt
 * and a rank file has one reading. base64url is the standard codec with its
 * two characters translated and its padding made optional. */
#ifndef TT_BASE64_H
#define TT_BASE64_H

#include <limits.h>
#include <stddef.h>

/* The most bytes tt_b64_decode() writes for len characters (padding included). */
#define TT_B64_DECODED_MAX(len) ((len) / 4 * 3)
/* The longest text decoded and the most bytes encoded: OpenSSL counts in int. */
#define TT_B64_MAX_TEXT ((size_t)INT_MAX / 4 * 4 - 4)
#define TT_B64_MAX_BYTES (TT_B64_MAX_TEXT / 4 * 3)

/* Standard base64 with its padding: len a multiple of 4 ("" is no bytes).
 * Writes the bytes to out, which has room for cap >= TT_B64_DECODED_MAX(len),
 * and their number to *out_len. 0; TT_EINVAL when in is not canonical
 * base64; TT_ETOOLARGE when cap is short or len over TT_B64_MAX_TEXT. */
int tt_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len);

/* base64url of len bytes, without padding. 0, TT_EINVAL, TT_ETOOLARGE or
 * TT_ENOMEM. The caller frees *out (NUL-terminated). */
int tt_b64_url_encode(const unsigned char *in, size_t len, char **out);

/* Decodes base64url: padding optional, complete when present; '+', '/' and
 * anything outside the alphabet refused (TT_EINVAL). The caller frees *out,
 * which has a NUL after its *out_len bytes for callers that parse text. */
int tt_b64_url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

/* 1 when c is one of base64url's 64 characters, else 0. */
int tt_b64_url_char(unsigned char c);

/* The value of one hexadecimal digit (either case), or -1. */
int tt_hex_digit(int c);

/* in[0..n) as 2n lower-case hexadecimal digits into out, then a NUL (out
 * holds at least 2n + 1 bytes): what n snprintf("%02x") give, without them. */
void tt_hex_encode(const unsigned char *in, size_t n, char *out);

#endif
