/* Plain HTTP endpoints: /healthz, /readyz, /metrics, POST /v1/tokens.
 * Static files under / are served by an lws file mount (server.c).
 *
 * A request's response is built whole, then written from the WRITEABLE
 * callback; request bodies are capped at BODY_MAX. */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "server/gateway.h"
#include "server/logging.h"
#include "server/server.h"

#define BODY_MAX (64 * 1024)        /* /v1/tokens */
#define GATEWAY_BODY_MAX (8u << 20) /* /v1/chat/completions: long conversations */

typedef struct http_req {
    char path[128];
    char auth[TT_JWT_MAX_LEN];
    char *body;
    size_t body_len;
    int body_too_large;
    int status;
    const char *content_type;
    char *resp; /* LWS_PRE headroom in front of the payload */
    size_t resp_len;
    tt_gateway_req *gw; /* set when the gateway owns the response */
} http_req;

const size_t tt_http_psd_size = sizeof(http_req);

static void respond(http_req *r, int status, const char *type, const char *text, size_t len)
{
    free(r->resp);
    r->resp = malloc(LWS_PRE + len + 1);
    if (!r->resp) {
        r->resp_len = 0;
        r->status = 500;
        return;
    }
    memcpy(r->resp + LWS_PRE, text, len);
    r->resp_len = len;
    r->status = status;
    r->content_type = type;
}

static void respond_json(http_req *r, int status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        respond(r, 500, "application/json", "{}", 2);
        return;
    }
    respond(r, status, "application/json", text, strlen(text));
    free(text);
}

static void respond_error(tt_server *srv, http_req *r, int status, int err, const char *msg)
{
    const char *code = tt_err_wire(err);
    tt_metrics_error(&srv->metrics, code);
    respond_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

/* POST /v1/tokens {"user":"u1","ttl_s":3600,"agents":[...]} with an API key. */
static void mint_token(tt_server *srv, http_req *r)
{
    char tenant[64] = "local";
    const char *key = strncasecmp(r->auth, "Bearer ", 7) == 0 ? r->auth + 7 : NULL;
    if (srv->auth.n_keys > 0 &&
        (!key || tt_auth_check_key(&srv->auth, key, tenant, sizeof tenant) != 0)) {
        respond_error(srv, r, 401, TT_EAUTH, "a valid API key is required (Authorization: Bearer)");
        return;
    }
    if (r->body_too_large) {
        respond_error(srv, r, 413, TT_ETOOLARGE, "request body too large");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const char *user = NULL;
    json_int_t ttl = 3600;
    json_t *agents = NULL;
    if (!body || json_unpack_ex(body, &jerr, JSON_STRICT, "{s:s, s?I, s?o}", "user", &user, "ttl_s",
                                &ttl, "agents", &agents) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "body must be {\"user\": string, \"ttl_s\"?: int, "
                 "\"agents\"?: [string]}: %s",
                 jerr.text);
        respond_error(srv, r, 400, TT_EINVAL, msg);
        goto done;
    }
    const char *why;
    if (tt_name_check(user, TT_USER_MAX - 1, &why) != 0) {
        char msg[192];
        snprintf(msg, sizeof msg,
                 "user must be 1-127 bytes of UTF-8 without control, bidi or invisible "
                 "characters: %s",
                 why);
        respond_error(srv, r, 400, TT_EINVAL, msg);
        goto done;
    }
    int agents_ok = !agents || json_is_array(agents);
    for (size_t i = 0; agents_ok && i < json_array_size(agents); i++)
        agents_ok = json_is_string(json_array_get(agents, i));
    if (ttl < 1 || ttl > srv->auth.max_ttl_s || !agents_ok) {
        respond_error(srv, r, 400, TT_EINVAL,
                      "ttl_s must be within token-max-ttl-s, agents strings");
        goto done;
    }
    tt_jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", user);
    snprintf(cl.tenant, sizeof cl.tenant, "%s", tenant);
    cl.iat = tt_wall_ms() / 1000;
    cl.exp = cl.iat + ttl;
    cl.agents = agents;
    char *token = NULL;
    if (tt_jwt_mint(srv->auth.secret, srv->auth.secret_len, &cl, &token) != 0) {
        respond_error(srv, r, 500, TT_EINTERNAL, "token could not be minted");
        goto done;
    }
    srv->metrics.tokens_minted++;
    respond_json(r, 200,
                 json_pack("{s:s, s:I, s:s, s:s}", "token", token, "expires_at", (json_int_t)cl.exp,
                           "user", user, "tenant", tenant));
    free(token);
done:
    json_decref(body);
}

static void route(tt_server *srv, struct lws *wsi, http_req *r, int is_post)
{
    srv->metrics.http_requests++;
    if (strcmp(r->path, "/healthz") == 0 && !is_post) {
        respond(r, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(r->path, "/readyz") == 0 && !is_post) {
        int ready = srv->ready && !srv->stopping && !tt_registry_failing(srv->reg);
        respond(r, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n",
                ready ? 6 : 10);
    } else if (strcmp(r->path, "/metrics") == 0 && !is_post) {
        size_t len;
        char *text = tt_metrics_render(srv, &len);
        if (text)
            respond(r, 200, "text/plain; version=0.0.4", text, len);
        else
            respond(r, 500, "text/plain", "error\n", 6);
        free(text);
    } else if (strcmp(r->path, "/v1/tokens") == 0 && is_post) {
        mint_token(srv, r);
    } else if (strcmp(r->path, "/v1/chat/completions") == 0 && is_post && !r->body_too_large) {
        r->gw = tt_gateway_start(srv, wsi, r->auth, r->body, r->body_len);
        if (!r->gw)
            respond_error(srv, r, 500, TT_ENOMEM, "out of memory");
        else
            return; /* the gateway asks for writable callbacks itself */
    } else if (strcmp(r->path, "/v1/chat/completions") == 0 && is_post) {
        respond_error(srv, r, 413, TT_ETOOLARGE, "request body too large");
    } else if (strcmp(r->path, "/v1/tokens") == 0 || strcmp(r->path, "/v1/chat/completions") == 0) {
        respond_error(srv, r, 405, TT_EINVAL, "use POST");
    } else {
        respond_error(srv, r, 404, TT_ENOTFOUND, "no such endpoint");
    }
    lws_callback_on_writable(wsi);
}

static int write_response(struct lws *wsi, http_req *r)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->content_type, r->resp_len, &p,
                                    end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (r->resp_len &&
        lws_write(wsi, (unsigned char *)r->resp + LWS_PRE, r->resp_len, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void req_reset(http_req *r)
{
    tt_gateway_free(r->gw);
    free(r->body);
    free(r->resp);
    memset(r, 0, sizeof *r);
}

int tt_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    http_req *r = user;
    tt_server *srv = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        req_reset(r);
        int is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        if (lws_hdr_copy(wsi, r->path, sizeof r->path,
                         is_post ? WSI_TOKEN_POST_URI : WSI_TOKEN_GET_URI) < 0)
            r->path[0] = '\0';
        if (lws_hdr_copy(wsi, r->auth, sizeof r->auth, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
            r->auth[0] = '\0';
        if (is_post)
            return 0; /* wait for the body */
        route(srv, wsi, r, 0);
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (r->body_len + len >
            (strcmp(r->path, "/v1/chat/completions") == 0 ? GATEWAY_BODY_MAX : BODY_MAX)) {
            r->body_too_large = 1;
            return 0;
        }
        {
            char *grown = realloc(r->body, r->body_len + len + 1);
            if (!grown)
                return -1;
            r->body = grown;
            memcpy(r->body + r->body_len, in, len);
            r->body_len += len;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        route(srv, wsi, r, 1);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (r->gw) {
            int rc = tt_gateway_writeable(r->gw);
            if (rc == 0)
                return 0;
            tt_gateway_free(r->gw);
            r->gw = NULL;
            return rc < 0 || lws_http_transaction_completed(wsi) ? -1 : 0;
        }
        if (!r->resp && r->status == 0)
            return 0;
        {
            int rc = write_response(wsi, r);
            free(r->resp);
            r->resp = NULL;
            r->status = 0;
            return rc;
        }
    case LWS_CALLBACK_CLOSED_HTTP:
        req_reset(r);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
