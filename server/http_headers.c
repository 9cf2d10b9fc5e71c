/* Reading a plain HTTP request's headers and query (see http_headers.h). */
#include "server/http_headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/names.h"
#include "server/server.h"

void tt_http_url_arg(struct lws *wsi, const char *name, char *out, size_t n)
{
    char buf[96];
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, sizeof buf);
    snprintf(out, n, "%s", v ? v : "");
}

int tt_http_label_header(struct lws *wsi, const char *name, char *out, size_t n)
{
    out[0] = '\0';
    int len = lws_hdr_custom_length(wsi, name, (int)strlen(name));
    if (len <= 0)
        return 0;
    if ((size_t)len >= n || lws_hdr_custom_copy(wsi, out, (int)n, name, (int)strlen(name)) < 0 ||
        tt_name_check(out, n - 1, NULL) != 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int tt_http_announces_body(struct lws *wsi)
{
    char clen[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        return 1;
    if (lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return 0;
    return strspn(clen, "0 \t") != strlen(clen); /* "0" or "00": no body */
}

int tt_http_closes_after(struct lws *wsi)
{
    return tt_http_announces_body(wsi) || lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
}

int tt_http_gate_unread_body(struct lws *wsi)
{
    char path[512], *uri = NULL;
    int len = 0;
    if (!tt_http_announces_body(wsi))
        return 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &len) < 0 || !uri || len <= 0 ||
        (size_t)len >= sizeof path)
        return 1;
    memcpy(path, uri, (size_t)len);
    path[len] = '\0';
    return !tt_server_is_endpoint(path);
}

int tt_http_post_length(struct lws *wsi, unsigned long long *len, const char **why)
{
    char v[40];
    *len = 0;
    int has_te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (has_te && n > 0) {
        *why = "both Content-Length and Transfer-Encoding: the body's length is ambiguous";
        return 400;
    }
    if (has_te || n <= 0) {
        *why = "a POST body needs a Content-Length (Transfer-Encoding is not accepted)";
        return 411;
    }
    const char *p = v;
    if (n >= (int)sizeof v || lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        p = "x"; /* longer than any number we take */
    p += strspn(p, " \t");
    size_t digits = strspn(p, "0123456789");
    const char *rest = p + digits + strspn(p + digits, " \t");
    if (digits == 0 || *rest) { /* a sign, hex, a list of two lengths, ... */
        *why = "Content-Length must be one decimal number";
        return 400;
    }
    if (digits > 18) {
        *why = "request body too large";
        return 413;
    }
    for (size_t i = 0; i < digits; i++)
        *len = *len * 10 + (unsigned long long)(p[i] - '0');
    return 0;
}

int tt_http_body_overdue(uint64_t since_ms, uint64_t now_ms, uint64_t received)
{
    if (now_ms <= since_ms + TT_HTTP_BODY_GRACE_MS)
        return 0;
    return received < (now_ms - since_ms - TT_HTTP_BODY_GRACE_MS) * TT_HTTP_BODY_MIN_RATE / 1000;
}

int tt_http_expect(struct lws *wsi, int refused, int *close_after)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char v[32];
    if (lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_EXPECT) <= 0 || strcasecmp(v, "100-continue"))
        return 0;
    if (refused) { /* the body is not sent: answered now, then closed */
        *close_after = 1;
        return 0;
    }
    unsigned char buf[LWS_PRE + sizeof line];
    memcpy(buf + LWS_PRE, line, sizeof line - 1);
    return lws_write(wsi, buf + LWS_PRE, sizeof line - 1, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}
