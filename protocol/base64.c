/* Base64 around OpenSSL's block codec (base64.h): the checks that make its
 * decoding strict and canonical, and the base64url translation. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "protocol/base64.h"
#include "protocol/errors.h"

int tt_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (len > TT_B64_MAX_TEXT || cap < TT_B64_DECODED_MAX(len))
        return TT_ETOOLARGE;
    if (len % 4 != 0)
        return TT_EINVAL;
    size_t pad = 0;
    while (pad < 2 && pad < len && in[len - 1 - pad] == '=')
        pad++;
    /* EVP would read a '=' anywhere as zero bits. */
    if (memchr(in, '=', len - pad))
        return TT_EINVAL;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    /* Fewer bytes than len says: EVP skipped whitespace or line ends at an edge. */
    if (n < 0 || (size_t)n != TT_B64_DECODED_MAX(len))
        return TT_EINVAL;
    /* The padding came out as zero bytes; a bit set there is a stray bit of
     * the last character, a second spelling of the same bytes. */
    for (size_t i = 1; i <= pad; i++) {
        if (out[(size_t)n - i] != 0)
            return TT_EINVAL;
    }
    *out_len = (size_t)n - pad;
    return 0;
}

int tt_b64_url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int tt_b64_url_encode(const unsigned char *in, size_t len, char **out)
{
    if (!out || (!in && len))
        return TT_EINVAL;
    *out = NULL;
    if (len > TT_B64_MAX_BYTES)
        return TT_ETOOLARGE;
    size_t n = (len + 2) / 3 * 4;
    char *s = malloc(n + 1);
    if (!s)
        return TT_ENOMEM;
    int w = EVP_EncodeBlock((unsigned char *)s, in ? in : (const unsigned char *)"", (int)len);
    if (w < 0 || (size_t)w != n) { /* cannot happen: n is what EVP writes */
        free(s);
        return TT_EINTERNAL;
    }
    while (w > 0 && s[w - 1] == '=')
        w--;
    s[w] = '\0';
    for (char *c = s; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    *out = s;
    return 0;
}

int tt_b64_url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    if (!out || !out_len || (!in && len))
        return TT_EINVAL;
    *out = NULL;
    *out_len = 0;
    if (len > TT_B64_MAX_TEXT)
        return TT_ETOOLARGE;
    /* Padding, when there is any, is what standard base64 would write. */
    if (len % 4 != 0 && memchr(in, '=', len))
        return TT_EINVAL;
    /* Standard base64 of the same bytes: the two characters translated, the
     * padding completed; tt_b64_decode() refuses the rest. */
    size_t std_len = (len + 3) / 4 * 4;
    char *std = malloc(std_len + 1);
    unsigned char *bytes = malloc(TT_B64_DECODED_MAX(std_len) + 1);
    int rc = TT_ENOMEM;
    if (!std || !bytes)
        goto fail;
    rc = TT_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '+' || in[i] == '/')
            goto fail;
        std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    }
    memset(std + len, '=', std_len - len);
    rc = tt_b64_decode(std, std_len, bytes, TT_B64_DECODED_MAX(std_len), out_len);
    if (rc)
        goto fail;
    bytes[*out_len] = '\0';
    free(std);
    *out = bytes;
    return 0;
fail:
    free(std);
    free(bytes);
    return rc;
}

void tt_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int tt_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
