/* CORS headers and preflights for the HTTP API (see cors.h). */
#include <stdio.h>
#include <string.h>

#include "server/cors.h"
#include "server/origin.h"
#include "server/server.h"

static int add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
               unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

int tt_cors_origin(tt_server *srv, struct lws *wsi, char *origin, size_t n)
{
    char why[256], host[TT_ORIGIN_HEADER_MAX];
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (len <= 0 || (size_t)len >= n || lws_hdr_copy(wsi, origin, (int)n, WSI_TOKEN_ORIGIN) <= 0)
        return 0;
    int hlen = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    if (hlen <= 0 || hlen >= (int)sizeof host ||
        lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0)
        return 0;
    /* the policy itself, quietly: a refusal was logged where it was decided */
    return tt_origin_check(&srv->cfg, srv->auth.n_keys == 0, host, origin, why, sizeof why) == 0;
}

int tt_cors_add_headers(tt_server *srv, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char origin[TT_ORIGIN_HEADER_MAX];
    if (!tt_cors_origin(srv, wsi, origin, sizeof origin))
        return 0;
    return add(wsi, "access-control-allow-origin:", origin, p, end) ||
                   add(wsi, "vary:", "Origin", p, end) ||
                   add(wsi, "access-control-expose-headers:", "Retry-After", p, end)
               ? -1
               : 0;
}

int tt_cors_is_options(struct lws *wsi, char *path, size_t n)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) <= 0)
        return 0;
    if (lws_hdr_copy(wsi, path, (int)n, WSI_TOKEN_OPTIONS_URI) < 0)
        path[0] = '\0';
    return 1;
}

int tt_cors_write_preflight(tt_server *srv, struct lws *wsi, int close)
{
    char method[16] = "", origin[TT_ORIGIN_HEADER_MAX], age[16];
    (void)lws_hdr_custom_copy(wsi, method, sizeof method, "access-control-request-method:", 30);
    int ok = strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0;
    int cors = tt_cors_origin(srv, wsi, origin, sizeof origin);
    unsigned char hdr[LWS_PRE + 1024];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    snprintf(age, sizeof age, "%d", TT_CORS_MAX_AGE_S);
    if (lws_add_http_common_headers(wsi, ok || !cors ? 204 : 405, NULL, 0, &p, end) ||
        add(wsi, "allow:", "GET, POST, OPTIONS", &p, end) ||
        (close && add(wsi, "connection:", "close", &p, end)))
        return -1;
    if (cors && (add(wsi, "vary:", "Origin", &p, end) ||
                 (ok && (add(wsi, "access-control-allow-origin:", origin, &p, end) ||
                         add(wsi, "access-control-allow-methods:", "GET, POST, OPTIONS", &p, end) ||
                         add(wsi, "access-control-allow-headers:", "authorization, content-type",
                             &p, end) ||
                         add(wsi, "access-control-max-age:", age, &p, end)))))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}
