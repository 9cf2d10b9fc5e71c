/* Reading a plain HTTP request's headers and query (see http_headers.h). */
#include "server/http_headers.h"

#include <stdio.h>
#include <string.h>

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

int tt_http_gate_unread_body(struct lws *wsi)
{
    char path[512], *uri = NULL;
    int len = 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 || !tt_http_announces_body(wsi))
        return 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &len) < 0 || !uri || len <= 0 ||
        (size_t)len >= sizeof path)
        return 1;
    memcpy(path, uri, (size_t)len);
    path[len] = '\0';
    return !tt_server_is_endpoint(path);
}
