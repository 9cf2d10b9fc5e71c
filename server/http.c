/* Plain HTTP endpoints: /healthz, /readyz, /metrics, POST /v1/tokens, and the
 * front of POST /v1/chat/completions (gateway.c). Static files under / are
 * served by an lws file mount (server.c).
 *
 * Lifetime: lws gives each transaction its own http_req (per-session data)
 * and frees it inside lws_http_transaction_completed(), which unbinds the
 * protocol to keep the connection for the next request: a request releases
 * what it owns (req_reset) before that call and never touches r after it.
 *
 * Bodies: judged on the headers (origin, API key, route, Content-Length)
 * before a byte is read; a refused one is read and dropped, an accepted one
 * reserved against --max-body-memory (tether_http_body_bytes) as it comes. */
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "agents/llm/call.h"
#include "server/database.h"
#include "server/documents.h"
#include "server/agui.h"
#include "server/aisdk.h"
#include "server/gateway.h"
#include "server/gateway_parse.h"
#include "server/http_headers.h"
#include "server/logging.h"
#include "server/cors.h"
#include "server/origin.h"
#include "server/photos_thumb.h"
#include "server/server.h"

#define TOKENS_BODY_MAX (64 * 1024)     /* /v1/tokens: {"user", "ttl_s", "agents"} */
#define GATEWAY_BODY_MAX (8u << 20)     /* /v1/chat/completions: long conversations */
#define EMBEDDINGS_BODY_MAX (1u << 20)  /* /v1/embeddings: parsed on the loop */
#define DROP_MAX (2 * GATEWAY_BODY_MAX) /* a refused body longer than this closes */
#define BODY_GROWTH_MIN (16 * 1024)     /* first reservation of a body of unknown length */

static const char PATH_TOKENS[] = "/v1/tokens", PATH_GATEWAY[] = "/v1/chat/completions",
                  PATH_EMBEDDINGS[] = "/v1/embeddings", PATH_MODELS[] = "/v1/models",
                  PATH_USAGE[] = "/v1/usage", PATH_AISDK[] = "/v1/ai-sdk/chat",
                  PATH_AGUI[] = "/v1/ag-ui", PATH_BUDGETS[] = "/v1/budgets";

/* The OpenAI-compatible routes answer errors in OpenAI's shape. */
static int openai_path(const char *path)
{
    return strcmp(path, PATH_GATEWAY) == 0 || strcmp(path, PATH_EMBEDDINGS) == 0 ||
           strncmp(path, PATH_MODELS, sizeof PATH_MODELS - 1) == 0;
}

typedef struct http_req {
    char path[192]; /* /v1/documents/{id}: 14 + 128 */
    char auth[TT_JWT_MAX_LEN];
    char tenant[TT_TENANT_MAX];   /* of the API key that passed (POST) */
    char key_id[TT_KEY_ID_MAX];   /* its public id ("local" in open mode) */
    char feature[64];             /* x-tether-feature (gateway) */
    char user[TT_USER_MAX];       /* x-tether-user (gateway); "" : the key id */
    tt_buf body;                  /* capped at the route's limit */
    size_t body_reserved;         /* bytes of body counted in metrics.http_body_bytes */
    size_t dropped;               /* bytes of a refused body read and thrown away */
    unsigned long long announced; /* a POST's Content-Length */
    uint64_t body_since;          /* loop time of its headers (tt_http_body_overdue) */
    int status;                   /* non-zero once the answer is decided */
    int close_after; /* a body lws will not read: close after the answer (http_headers.h) */
    const char *content_type;
    int retry_after; /* seconds, sent with a 503 */
    char *resp;      /* LWS_PRE headroom in front of the payload */
    size_t resp_len;
    tt_gateway_req *gw;  /* set when the gateway owns the response */
    tt_evs *sse;         /* set when an event stream owns the response */
    tt_http_who who;     /* an AI SDK request's caller */
    char agent[64];      /* ?agent= */
    char resume[32];     /* Last-Event-ID of an AG-UI POST */
    tt_docs_wait docs;   /* a document ingest or search in flight (documents.h) */
    tt_thumb_wait thumb; /* a photo thumbnail being read (photos_thumb.h) */
} http_req;

const size_t tt_http_psd_size = sizeof(http_req);

static void respond(http_req *r, int status, const char *type, const char *text, size_t len)
{
    free(r->resp);
    r->resp = malloc(LWS_PRE + len + 1);
    r->status = r->resp ? status : 500;
    r->resp_len = r->resp ? len : 0;
    r->content_type = type;
    if (r->resp)
        memcpy(r->resp + LWS_PRE, text, len);
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

/* An error in the route's own shape: OpenAI's for the gateway, Tether's elsewhere. */
static void respond_error(tt_server *srv, http_req *r, int status, int err, const char *msg)
{
    const char *code = tt_err_wire(err);
    tt_metrics_error(&srv->metrics, code);
    if (openai_path(r->path))
        respond_json(r, status,
                     json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type",
                               status >= 500 ? "server_error" : "invalid_request_error", "param",
                               "code", status == 401 ? "invalid_api_key" : code));
    else
        respond_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

static void body_release(tt_server *srv, http_req *r)
{
    tt_buf_free(&r->body);
    srv->metrics.http_body_bytes -= r->body_reserved;
    r->body_reserved = 0;
}

/* Everything the request owns goes; r is zeroed (safe to call twice). */
static void req_reset(tt_server *srv, http_req *r)
{
    tt_gateway_free(r->gw);
    tt_evs_free(r->sse);
    tt_http_who_clear(&r->who);
    tt_docs_wait_clear(&r->docs);
    tt_thumb_wait_clear(&r->thumb);
    body_release(srv, r);
    free(r->resp);
    memset(r, 0, sizeof *r);
}

/* Make room for `want` body bytes in all within --max-body-memory (the
 * buffer's cap is the route's limit: TT_ETOOLARGE past it). */
static int body_reserve(tt_server *srv, http_req *r, size_t want)
{
    if (want <= r->body_reserved)
        return 0;
    if (want > r->body.cap)
        return TT_ETOOLARGE;
    if (srv->metrics.http_body_bytes + (want - r->body_reserved) >
        (uint64_t)srv->cfg.max_body_memory)
        return TT_EFULL;
    int rc = tt_buf_reserve(&r->body, want - r->body.len);
    if (rc)
        return rc;
    srv->metrics.http_body_bytes += r->body.alloc - r->body_reserved;
    r->body_reserved = r->body.alloc;
    return 0;
}

static void refuse_body(tt_server *srv, http_req *r, int status, int err, const char *msg)
{
    r->dropped += r->body.len;
    body_release(srv, r);
    if (status == 503)
        r->retry_after = 1;
    respond_error(srv, r, status, err, msg);
}

/* POST /v1/tokens {"user":"u1","ttl_s":3600,"agents":[...]}; the key passed on the headers. */
static void mint_token(tt_server *srv, http_req *r)
{
    json_error_t jerr;
    json_t *body = json_loadb(tt_buf_str(&r->body), r->body.len, JSON_REJECT_DUPLICATES, &jerr);
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
    snprintf(cl.tenant, sizeof cl.tenant, "%s", r->tenant);
    snprintf(cl.kid, sizeof cl.kid, "%s", r->key_id);
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
                           "user", user, "tenant", r->tenant));
    free(token);
done:
    json_decref(body);
}

/* The API key on the headers (when configured), its tenant; else the 401. */
static int check_key(tt_server *srv, http_req *r)
{
    snprintf(r->tenant, sizeof r->tenant, "local");
    snprintf(r->key_id, sizeof r->key_id, "local");
    const char *key = strncasecmp(r->auth, "Bearer ", 7) == 0 ? r->auth + 7 : NULL;
    if (srv->auth.n_keys > 0 &&
        (!key || tt_auth_check_key_id(&srv->auth, key, r->tenant, sizeof r->tenant, r->key_id,
                                      sizeof r->key_id) != 0) &&
        !tt_documents_token(srv, r->path, r->auth, r->tenant, sizeof r->tenant, r->user,
                            sizeof r->user)) {
        respond_error(srv, r, 401, TT_EAUTH, "a valid API key is required (Authorization: Bearer)");
        return TT_EAUTH;
    }
    return 0;
}

/* GET /v1/models (OpenAI's list) and /v1/models/{id} (one entry, or 404). */
static void list_models(tt_server *srv, http_req *r)
{
    if (check_key(srv, r) != 0)
        return;
    tt_llm_service *llm = srv->agent_env.llm;
    json_t *routes = llm ? tt_llm_service_models(llm) : json_array();
    json_t *list = tt_gateway_models_list(routes, srv->cfg.gateway_models, srv->started_wall_s);
    json_decref(routes);
    const char *id = r->path[sizeof PATH_MODELS - 1] == '/' ? r->path + sizeof PATH_MODELS : NULL;
    if (!id) {
        respond_json(r, 200, list);
        return;
    }
    size_t i;
    json_t *m, *found = NULL;
    json_array_foreach(json_object_get(list, "data"), i, m)
    {
        if (!found && strcmp(json_string_value(json_object_get(m, "id")), id) == 0)
            found = json_incref(m);
    }
    json_decref(list);
    if (found)
        respond_json(r, 200, found);
    else
        respond_error(srv, r, 404, TT_ENOTFOUND, "no such model");
}

/* GET /v1/usage?from=&to=&group_by=: the ledger's sums for the API key's
 * tenant only (usage.h); CSV when the Accept header asks for text/csv.
 * GET /v1/budgets: that tenant's budgets, spend and reservations. */
static void usage_get(tt_server *srv, struct lws *wsi, http_req *r)
{
    if (check_key(srv, r) != 0)
        return;
    char *body = NULL;
    size_t len = 0;
    if (strcmp(r->path, PATH_BUDGETS) == 0) {
        int status = tt_usage_budgets_answer(&srv->usage, r->tenant, &body, &len);
        respond(r, status, "application/json", body ? body : "{}", body ? len : 2);
        free(body);
        return;
    }
    char from[32], to[32], group[32], accept[128] = "";
    const char *f = lws_get_urlarg_by_name(wsi, "from=", from, sizeof from);
    const char *t = lws_get_urlarg_by_name(wsi, "to=", to, sizeof to);
    const char *g = lws_get_urlarg_by_name(wsi, "group_by=", group, sizeof group);
    if (lws_hdr_copy(wsi, accept, sizeof accept, WSI_TOKEN_HTTP_ACCEPT) < 0)
        accept[0] = '\0';
    const char *type = "application/json";
    int status = tt_usage_answer(&srv->usage, r->tenant, f, t, g,
                                 strstr(accept, "text/csv") != NULL, &body, &len, &type);
    if (body)
        respond(r, status, type, body, len);
    else
        respond_error(srv, r, 500, TT_ENOMEM, "out of memory");
    free(body);
}

/* GET /v1/documents[/{id}], DELETE /v1/documents/{id} (documents.h), for the
 * tenant of the API key (or the page's token) only: answered at once, or
 * from WRITEABLE when back. */
static void documents_get(tt_server *srv, struct lws *wsi, http_req *r, int is_delete)
{
    tt_docs_route route = tt_documents_route(r->path);
    if (check_key(srv, r) != 0)
        return;
    if (route == TT_DOCS_ONE && !is_delete) {
        json_t *answer = NULL;
        int status = tt_documents_passage(srv, wsi, r->tenant, r->path, &r->docs, &answer);
        if (status)
            respond_json(r, status, answer);
    } else if (route != (is_delete ? TT_DOCS_ONE : TT_DOCS_COLLECTION))
        respond_error(srv, r, 405, TT_EINVAL, is_delete ? "use GET or POST" : "use DELETE or POST");
    else if (tt_documents_get(srv, wsi, r->tenant, is_delete, r->path, &r->docs) != 0)
        respond_error(srv, r, 500, TT_ENOMEM, "out of memory");
}

/* GET /v1/ai-sdk/chat/{id}/stream: the resume route. */
static int aisdk_resume(tt_server *srv, struct lws *wsi, http_req *r)
{
    static const char SUFFIX[] = "/stream";
    size_t plen = strlen(r->path), pre = sizeof PATH_AISDK; /* with the '/' after it */
    if (plen <= pre + sizeof SUFFIX - 1 || strncmp(r->path, PATH_AISDK, pre - 1) != 0 ||
        r->path[pre - 1] != '/' || strcmp(r->path + plen - (sizeof SUFFIX - 1), SUFFIX) != 0)
        return 0;
    char id[TT_SESSION_ID_MAX + 1], after[32] = "", why[256] = "";
    size_t idlen = plen - pre - (sizeof SUFFIX - 1);
    snprintf(id, sizeof id, "%.*s", (int)(idlen < sizeof id ? idlen : sizeof id - 1),
             r->path + pre);
    if (srv->stopping) {
        r->retry_after = 1;
        respond_error(srv, r, 503, TT_EFULL, "the server is shutting down; retry shortly");
        return 1;
    }
    if (tt_http_who_get(srv, r->auth, &r->who) != 0) {
        respond_error(srv, r, 401, TT_EAUTH, "a valid token or API key is required");
        return 1;
    }
    if (lws_hdr_custom_copy(wsi, after, sizeof after, "last-event-id:", 14) <= 0)
        tt_http_url_arg(wsi, "after=", after, sizeof after);
    char *end = NULL;
    unsigned long long seq = after[0] ? strtoull(after, &end, 10) : 0;
    if (after[0] && (!end || *end)) {
        respond_error(srv, r, 400, TT_EINVAL, "Last-Event-ID (or after) must be a seq");
        return 1;
    }
    int status =
        tt_aisdk_resume(srv, wsi, NULL, &r->who, id, seq, after[0] != 0, &r->sse, why, sizeof why);
    if (status == 204)
        respond(r, 204, "text/plain", "", 0);
    else if (status)
        respond_error(srv, r, status, status == 404 ? TT_ENOTFOUND : TT_EFORBIDDEN, why);
    return 1;
}

static void route_get(tt_server *srv, struct lws *wsi, http_req *r)
{
    if (aisdk_resume(srv, wsi, r))
        return;
    if (strcmp(r->path, PATH_MODELS) == 0 ||
        (strncmp(r->path, PATH_MODELS, sizeof PATH_MODELS - 1) == 0 &&
         r->path[sizeof PATH_MODELS - 1] == '/' && r->path[sizeof PATH_MODELS]))
        list_models(srv, r);
    else if (strcmp(r->path, "/healthz") == 0) {
        respond(r, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(r->path, "/readyz") == 0) {
        int ready = srv->ready && !srv->stopping && !tt_registry_failing(srv->reg);
        tt_buf text;
        tt_buf_init(&text, 4096);
        if (tt_buf_append(&text, ready ? "ready\n" : "not ready\n", ready ? 6 : 10) ||
            tt_buf_appendf(&text, "node: %s\n", tt_config_node_id(&srv->cfg)) ||
            tt_database_readyz(srv, &text))
            respond(r, 500, "text/plain", "error\n", 6);
        else
            respond(r, ready ? 200 : 503, "text/plain", tt_buf_data(&text), text.len);
        tt_buf_free(&text);
    } else if (strcmp(r->path, "/metrics") == 0) {
        size_t len;
        char *text = tt_metrics_render(srv, &len);
        if (text)
            respond(r, 200, "text/plain; version=0.0.4", text, len);
        else
            respond(r, 500, "text/plain", "error\n", 6);
        free(text);
    } else if (strcmp(r->path, PATH_TOKENS) == 0 || strcmp(r->path, PATH_GATEWAY) == 0 ||
               strcmp(r->path, PATH_EMBEDDINGS) == 0 || strcmp(r->path, PATH_AISDK) == 0 ||
               strcmp(r->path, PATH_AGUI) == 0) {
        respond_error(srv, r, 405, TT_EINVAL, "use POST");
    } else {
        respond_error(srv, r, 404, TT_ENOTFOUND, "no such endpoint");
    }
}

/* A POST judged on its headers: the route, the API key, the announced size. */
static void accept_post(tt_server *srv, struct lws *wsi, http_req *r)
{
    int embed = strcmp(r->path, PATH_EMBEDDINGS) == 0;
    int gateway = embed || strcmp(r->path, PATH_GATEWAY) == 0,
        aisdk = strcmp(r->path, PATH_AISDK) == 0 || strcmp(r->path, PATH_AGUI) == 0;
    size_t docs = tt_documents_body_max(tt_documents_route(r->path));
    tt_buf_init(&r->body, embed     ? EMBEDDINGS_BODY_MAX
                          : gateway ? GATEWAY_BODY_MAX
                          : aisdk   ? TT_AISDK_BODY_MAX
                          : docs    ? docs
                                    : TOKENS_BODY_MAX);
    if (!gateway && !aisdk && !docs && strcmp(r->path, PATH_TOKENS) != 0) {
        int known = !strcmp(r->path, "/healthz") || !strcmp(r->path, "/readyz") ||
                    !strcmp(r->path, "/metrics") || !strcmp(r->path, PATH_MODELS) ||
                    !strcmp(r->path, PATH_USAGE) || !strcmp(r->path, PATH_BUDGETS) ||
                    tt_documents_route(r->path) || tt_thumb_route(r->path);
        respond_error(srv, r, known ? 405 : 404, known ? TT_EINVAL : TT_ENOTFOUND,
                      known ? "use GET" : "no such endpoint");
        return;
    }
    if (aisdk) {
        snprintf(r->tenant, sizeof r->tenant, "local");
        tt_http_url_arg(wsi, "agent=", r->agent, sizeof r->agent);
        if (lws_hdr_custom_copy(wsi, r->resume, sizeof r->resume, "last-event-id:", 14) <= 0)
            r->resume[0] = '\0';
        if (tt_http_who_get(srv, r->auth, &r->who) != 0) {
            respond_error(srv, r, 401, TT_EAUTH, "a valid token or API key is required");
            return;
        }
    } else if (check_key(srv, r) != 0) {
        return;
    }
    if (gateway &&
        (tt_http_label_header(wsi, "x-tether-feature:", r->feature, sizeof r->feature) != 0 ||
         tt_http_label_header(wsi, "x-tether-user:", r->user, sizeof r->user) != 0)) {
        respond_error(srv, r, 400, TT_EINVAL,
                      "x-tether-feature must be 1-63 and x-tether-user 1-127 bytes of plain text");
        return;
    }
    char why[320];
    int64_t wait_s = 0;
    tt_limits_who who = {
        .tenant = r->tenant, .user = r->user[0] ? r->user : r->key_id, .key_id = r->key_id};
    if (aisdk) /* a turn of an agent: its caller's tenant and user */
        who = (tt_limits_who){.tenant = r->who.tenant, .user = r->who.user};
    /* documents and searches call the embeddings model */
    int rc =
        gateway || aisdk || docs ? tt_usage_admit(&srv->usage, &who, &wait_s, why, sizeof why) : 0;
    if (rc == TT_EBUDGET && (aisdk || docs)) {
        respond_error(srv, r, 429, rc, why);
    } else if (rc == TT_EBUDGET) {
        tt_metrics_error(&srv->metrics, tt_err_wire(rc));
        respond_json(r, 429,
                     json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", why, "type",
                               "insufficient_quota", "param", "code", "budget_exceeded"));
    } else if (rc) {
        r->retry_after = (int)(wait_s > 86400 ? 86400 : wait_s);
        respond_error(srv, r, 429, TT_ERATE, why);
    }
    if (rc)
        return; /* the body is read and dropped */
    /* Reserved as it arrives (on_body), not on the headers: a client announcing
     * 8 MiB and sending a byte a second held 8 MiB of --max-body-memory (eight
     * of them refused every body). */
    if (r->announced > r->body.cap)
        respond_error(srv, r, 413, TT_ETOOLARGE, "request body too large");
}

static int write_response(tt_server *srv, struct lws *wsi, http_req *r)
{
    char ra[24];
    int ralen = snprintf(ra, sizeof ra, "%d", r->retry_after);
    unsigned char hdr[LWS_PRE + 1024];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->content_type, r->resp_len, &p,
                                    end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (r->retry_after &&
         lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER, (const unsigned char *)ra,
                                      ralen, &p, end)) ||
        tt_cors_add_headers(srv, wsi, &p, end) ||
        (r->close_after &&
         lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                      &p, end)) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-tether-node:",
                                    (const unsigned char *)tt_config_node_id(&srv->cfg),
                                    (int)strlen(tt_config_node_id(&srv->cfg)), &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (r->resp_len &&
        lws_write(wsi, (unsigned char *)r->resp + LWS_PRE, r->resp_len, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return 0;
}

/* The response is out: release the request, then let lws free it (r is gone
 * after lws_http_transaction_completed()). */
static int finish(tt_server *srv, struct lws *wsi, http_req *r, int failed)
{
    int close_after = r->close_after;
    req_reset(srv, r);
    if (failed || close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Write the decided answer at once, from the callback that decided it: lws
 * 4.1 parses a pipelined next request from its buffer as soon as this
 * callback returns, into the same connection, so an answer left for a later
 * WRITEABLE callback would be lost (and lws does not wait for a connection it
 * was told to stop reading). lws buffers what the socket does not take. */
static int send_now(tt_server *srv, struct lws *wsi, http_req *r)
{
    return finish(srv, wsi, r, write_response(srv, wsi, r) != 0);
}

static int on_gateway_writeable(tt_server *srv, struct lws *wsi, http_req *r)
{
    if (r->thumb.done) { /* a thumbnail read, or refused at once */
        respond(r, r->thumb.status, r->thumb.type, r->thumb.body, r->thumb.len);
        return send_now(srv, wsi, r);
    }
    if (r->docs.done) { /* a document ingest or search came back */
        respond_json(r, r->docs.status, r->docs.answer);
        r->docs.answer = NULL;
        return send_now(srv, wsi, r);
    }
    int rc = r->gw ? tt_gateway_writeable(r->gw) : r->sse ? tt_evs_writeable(r->sse) : 0;
    return rc == 0 ? 0 : finish(srv, wsi, r, rc < 0);
}

/* An answer the gateway decided at once (a bad request, no model, an unknown
 * alias, a cache hit) goes out now too, as send_now() explains: headers and
 * body in one write. One still waiting for the model goes from WRITEABLE. */
static int gateway_send_now(tt_server *srv, struct lws *wsi, http_req *r)
{
    int rc = tt_gateway_send_now(r->gw);
    return rc == 0 ? 0 : finish(srv, wsi, r, rc < 0);
}

/* OPTIONS: a CORS preflight on an API route (cors.h); a foreign origin gets
 * the origin policy's 403, a path that is no API route 404. */
static int on_options(tt_server *srv, struct lws *wsi, http_req *r)
{
    static const char *const routes[] = {"/healthz", "/readyz", "/metrics", PATH_TOKENS,
                                         PATH_GATEWAY};
    char why[256];
    srv->metrics.http_requests++;
    int known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        known |= strcmp(r->path, routes[i]) == 0;
    if (tt_http_origin_check(srv, wsi, why, sizeof why) != 0)
        respond_error(srv, r, 403, TT_EFORBIDDEN, why);
    else if (!known)
        respond_error(srv, r, 404, TT_ENOTFOUND, "no such endpoint");
    else
        return finish(srv, wsi, r, tt_cors_write_preflight(srv, wsi, r->close_after) != 0);
    return send_now(srv, wsi, r);
}

/* The client IP's rate limit, on every /v1/ route (limits.h): 1 when
 * refused (answered 429). */
static int over_ip_limit(tt_server *srv, struct lws *wsi, http_req *r)
{
    char ip[64], why[320];
    int64_t wait_s = 0;
    if (strncmp(r->path, "/v1/", 4) != 0 || !srv->usage.limits.any[TT_SCOPE_IP])
        return 0;
    lws_get_peer_simple(wsi, ip, sizeof ip);
    tt_limits_who who = {.ip = ip};
    if (tt_usage_admit(&srv->usage, &who, &wait_s, why, sizeof why) == 0)
        return 0;
    r->retry_after = (int)(wait_s > 86400 ? 86400 : wait_s);
    respond_error(srv, r, 429, TT_ERATE, why);
    return 1;
}

static int on_headers(tt_server *srv, struct lws *wsi, http_req *r)
{
    char why[256];
    if (r->gw || r->sse || r->docs.job || r->docs.done || r->thumb.job) {
        /* Pipelined behind a gateway call still streaming: lws would parse it
         * into this request's place; the connection is closed instead. */
        tt_log(TT_WARN, "request pipelined behind a gateway call: connection closed", NULL);
        return -1;
    }
    req_reset(srv, r);
    int is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    r->close_after = !is_post && tt_http_closes_after(wsi);
    if (tt_cors_is_options(wsi, r->path, sizeof r->path))
        return on_options(srv, wsi, r);
    int is_delete = lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0;
    if (lws_hdr_copy(wsi, r->path, sizeof r->path,
                     is_post     ? WSI_TOKEN_POST_URI
                     : is_delete ? WSI_TOKEN_DELETE_URI
                                 : WSI_TOKEN_GET_URI) < 0)
        r->path[0] = '\0';
    if (lws_hdr_copy(wsi, r->auth, sizeof r->auth, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
        r->auth[0] = '\0';
    srv->metrics.http_requests++;
    const char *bad = NULL;
    int framing = is_post ? tt_http_post_length(wsi, &r->announced, &bad) : 0;
    r->body_since = uv_now(&srv->loop);
    if (framing) { /* lws would read another body than the client sent */
        r->close_after = 1;
        respond_error(srv, r, framing, framing == 413 ? TT_ETOOLARGE : TT_EINVAL, bad);
    } else if (tt_http_origin_check(srv, wsi, why, sizeof why) != 0)
        respond_error(srv, r, 403, TT_EFORBIDDEN, why);
    else if (over_ip_limit(srv, wsi, r))
        ; /* 429 with Retry-After; a POST's body is read and dropped */
    else if (is_post)
        accept_post(srv, wsi, r);
    else if (strcmp(r->path, PATH_USAGE) == 0 || strcmp(r->path, PATH_BUDGETS) == 0)
        usage_get(srv, wsi, r);
    else if (tt_documents_route(r->path))
        documents_get(srv, wsi, r, is_delete);
    else if (tt_thumb_route(r->path) && !is_delete)
        tt_thumb_get(srv, wsi, r->auth, &r->thumb);
    else if (is_delete)
        respond_error(srv, r, 404, TT_ENOTFOUND, "no such endpoint");
    else
        route_get(srv, wsi, r);
    if (r->thumb.job || r->docs.job)
        return 0; /* answered from WRITEABLE when the read is back */
    if (!is_post && (r->sse || r->thumb.done || r->docs.done))
        return on_gateway_writeable(srv, wsi, r); /* the stream's headers now */
    if (is_post && r->status && r->announced > DROP_MAX)
        r->close_after = 1; /* refused, and too long to read and drop */
    if (is_post && !r->close_after && tt_http_expect(wsi, r->status != 0, &r->close_after))
        return -1;
    /* a POST is answered after its body, unless its connection closes now */
    return is_post && !r->close_after ? 0 : send_now(srv, wsi, r);
}

static int on_body(tt_server *srv, struct lws *wsi, http_req *r, const char *in, size_t len)
{
    if (len == 0)
        return 0;
    if (!r->body.len && !r->dropped && strncasecmp(in, "POST ", len < 5 ? len : 5) == 0) {
        tt_log(TT_WARN, "a POST pipelined behind another request: connection closed", NULL);
        return -1; /* lws 4.1 hands it its own head as its body (README, "HTTP requests") */
    }
    if (tt_http_body_overdue(r->body_since, uv_now(&srv->loop), r->body.len + r->dropped)) {
        if (!r->status) {
            body_release(srv, r);
            respond_error(srv, r, 408, TT_EINVAL, "the request body came too slowly");
        }
        r->close_after = 1;
        return send_now(srv, wsi, r);
    }
    if (r->status) {
        r->dropped += len;
        return r->dropped > DROP_MAX ? -1 : 0;
    }
    size_t need = r->body.len + len;
    /* grows (doubling, at most to the announced length) only when it must:
     * it once doubled with every piece, to the route's cap */
    size_t want = need <= r->body_reserved      ? need
                  : r->body_reserved * 2 > need ? r->body_reserved * 2
                                                : need;
    want = want < BODY_GROWTH_MIN ? BODY_GROWTH_MIN : want;
    want = want > r->announced && need <= r->announced ? (size_t)r->announced : want;
    want = want > r->body.cap && need <= r->body.cap ? r->body.cap : want;
    int rc = body_reserve(srv, r, want);
    if (rc == 0)
        rc = tt_buf_append(&r->body, in, len); /* reserved: cannot fail */
    if (rc == TT_ETOOLARGE)
        refuse_body(srv, r, 413, TT_ETOOLARGE, "request body too large");
    else if (rc)
        refuse_body(srv, r, rc == TT_EFULL ? 503 : 500, rc,
                    "too many request bodies in flight; retry shortly");
    if (rc)
        r->dropped += len;
    return 0;
}

/* Who pays for a gateway call: the API key's tenant and id, the
 * x-tether-user (else the key id) and x-tether-feature headers. */
static void gateway_attribution(const http_req *r, tt_llm_attribution *attr)
{
    *attr = (tt_llm_attribution){.agent = "gateway", .feature = "gateway"};
    snprintf(attr->tenant, sizeof attr->tenant, "%s", r->tenant);
    snprintf(attr->key_id, sizeof attr->key_id, "%s", r->key_id);
    snprintf(attr->user, sizeof attr->user, "%s", r->user[0] ? r->user : r->key_id);
    if (r->feature[0])
        snprintf(attr->feature, sizeof attr->feature, "%s", r->feature);
}

static int on_body_complete(tt_server *srv, struct lws *wsi, http_req *r)
{
    int embed = strcmp(r->path, PATH_EMBEDDINGS) == 0;
    if (!r->status && (embed || strcmp(r->path, PATH_GATEWAY) == 0)) {
        tt_llm_attribution attr;
        gateway_attribution(r, &attr);
        if (srv->usage.limits.any[TT_SCOPE_IP]) /* its only reader; a getpeername() */
            lws_get_peer_simple(wsi, attr.ip, sizeof attr.ip);
        r->gw =
            embed ? tt_gateway_embeddings_start(srv, wsi, tt_buf_data(&r->body), r->body.len, &attr)
                  : tt_gateway_start_as(srv, wsi, tt_buf_data(&r->body), r->body.len, &attr);
        body_release(srv, r);
        if (r->gw)
            return gateway_send_now(srv, wsi, r);
        respond_error(srv, r, 500, TT_ENOMEM, "out of memory");
    } else if (!r->status && srv->stopping &&
               (!strcmp(r->path, PATH_AISDK) || !strcmp(r->path, PATH_AGUI))) {
        body_release(srv, r);
        r->retry_after = 1;
        respond_error(srv, r, 503, TT_EFULL, "the server is shutting down; retry shortly");
    } else if (!r->status && (!strcmp(r->path, PATH_AISDK) || !strcmp(r->path, PATH_AGUI))) {
        char why[256] = "";
        int status =
            strcmp(r->path, PATH_AGUI) == 0
                ? tt_agui_post(srv, wsi, &r->who, r->agent, r->resume, tt_buf_data(&r->body),
                               r->body.len, &r->sse, why, sizeof why)
                : tt_aisdk_post(srv, wsi, &r->who, r->agent, tt_buf_data(&r->body), r->body.len,
                                &r->sse, why, sizeof why);
        body_release(srv, r);
        if (!status)
            return on_gateway_writeable(srv, wsi, r);
        respond_error(srv, r, status,
                      status == 404   ? TT_ENOTFOUND
                      : status == 403 ? TT_EFORBIDDEN
                      : status == 409 ? TT_ECONFLICT
                      : status == 400 ? TT_EINVAL
                                      : TT_EFULL,
                      why);
    } else if (!r->status && tt_documents_route(r->path)) {
        json_t *answer = NULL;
        int status = tt_documents_post(srv, wsi, r->tenant, r->path, tt_buf_data(&r->body),
                                       r->body.len, &r->docs, &answer);
        body_release(srv, r);
        if (status == 0 && !r->docs.done)
            return 0; /* answered from WRITEABLE when the job is back */
        if (status == 0)
            return on_gateway_writeable(srv, wsi, r);
        respond_json(r, status, answer);
    } else if (!r->status) {
        mint_token(srv, r);
    }
    return send_now(srv, wsi, r);
}

int tt_http_origin_check(tt_server *srv, struct lws *wsi, char *why, size_t n)
{
    char host[TT_ORIGIN_HEADER_MAX], origin[TT_ORIGIN_HEADER_MAX];
    int host_len = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    int origin_len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (host_len >= (int)sizeof host || origin_len >= (int)sizeof origin) {
        snprintf(why, n, "Host or Origin header longer than %d bytes", TT_ORIGIN_HEADER_MAX - 1);
        return TT_EFORBIDDEN;
    }
    if (host_len > 0)
        lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
    if (origin_len > 0)
        lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    int rc = tt_origin_check(&srv->cfg, srv->auth.n_keys == 0, host_len > 0 ? host : NULL,
                             origin_len > 0 ? origin : NULL, why, n);
    if (rc)
        tt_log(TT_INFO, "request refused: foreign origin or host",
               json_pack("{s:s, s:s, s:s}", "host", host_len > 0 ? host : "", "origin",
                         origin_len > 0 ? origin : "", "why", why));
    return rc;
}

int tt_http_refuse_foreign_upgrade(tt_server *srv, struct lws *wsi)
{
    char why[256];
    if (tt_http_origin_check(srv, wsi, why, sizeof why) == 0)
        return 0;
    tt_metrics_error(&srv->metrics, tt_err_wire(TT_EFORBIDDEN));
    http_req r;
    memset(&r, 0, sizeof r);
    respond_json(
        &r, 403,
        json_pack("{s:{s:s, s:s}}", "error", "code", tt_err_wire(TT_EFORBIDDEN), "message", why));
    write_response(srv, wsi, &r);
    free(r.resp);
    return 1;
}

int tt_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    http_req *r = user;
    tt_server *srv = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* "tether-http" is no WebSocket subprotocol */
    case LWS_CALLBACK_HTTP:
        return on_headers(srv, wsi, r);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(srv, wsi, r, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_complete(srv, wsi, r);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_gateway_writeable(srv, wsi, r);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (r)
            req_reset(srv, r);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
