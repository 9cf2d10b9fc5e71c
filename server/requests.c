/* Client requests, one function per message type (protocol/PROTOCOL.md, "Client messages").
 * Every failure is an error reply and changes nothing. */
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "protocol/utf8.h"
#include "server/conn.h"
#include "server/logging.h"
#include "server/sse_out.h"

static int agent_allowed(const tt_conn *c, const char *agent)
{
    if (!c->agents)
        return 1;
    size_t i;
    json_t *v;
    json_array_foreach(c->agents, i, v)
    {
        const char *name = json_string_value(v);
        if (name && strcmp(name, agent) == 0)
            return 1;
    }
    return 0;
}

/* The session named by m, if this connection's user may use it; otherwise
 * an error reply has been sent and NULL is returned. */
static tt_session *session_for(tt_conn *c, const tt_msg *m)
{
    tt_session *s = NULL;
    int rc = tt_registry_get(c->srv->reg, m->session, &s);
    if (rc == TT_ENOTFOUND || rc == TT_EINVAL) {
        tt_conn_error(c, m->id, TT_ENOTFOUND, "no such session");
        return NULL;
    }
    if (rc == TT_EFULL || rc == TT_EINTERNAL) {
        tt_conn_store_error(c, m->id, rc); /* its last changes are being discarded */
        return NULL;
    }
    if (rc) {
        tt_conn_error(c, m->id, rc, "the session could not be loaded");
        return NULL;
    }
    if (strcmp(s->user, c->user) != 0 || strcmp(s->tenant, c->tenant) != 0 ||
        !agent_allowed(c, s->agent)) {
        tt_conn_error(c, m->id, TT_EFORBIDDEN, "this session belongs to another user");
        return NULL;
    }
    if (c->key_id[0]) /* the key behind the latest request pays for what it starts */
        snprintf(s->key_id, sizeof s->key_id, "%s", c->key_id);
    snprintf(s->client_ip, sizeof s->client_ip, "%s", c->ip); /* and its IP's token limit */
    return s;
}

/* The rate limits of the key, user, tenant and IP and the budgets
 * (limits.h, budgets.h), shared with every socket and the gateway: 0, or an
 * error has been sent (rate_limited with retry_after_s, or budget_exceeded
 * with reason budget_exceeded). */
static int over_limit(tt_conn *c, const tt_msg *m)
{
    char why[320];
    int64_t wait_s = 0;
    tt_limits_who who = {.tenant = c->tenant, .user = c->user, .key_id = c->key_id, .ip = c->ip};
    int rc = tt_usage_admit(&c->srv->usage, &who, &wait_s, why, sizeof why);
    if (rc == 0)
        return 0;
    const char *code = tt_err_wire(rc);
    tt_metrics_error(&c->srv->metrics, code);
    json_t *reply = tt_reply_error(m->id, code, why, rc == TT_ERATE);
    if (reply && rc == TT_ERATE)
        json_object_set_new(reply, "retry_after_s", json_integer((json_int_t)wait_s));
    else if (reply)
        json_object_set_new(reply, "reason", json_string("budget_exceeded"));
    tt_conn_send(c, reply);
    return 1;
}

static void reply_ok(tt_conn *c, const tt_msg *m, json_t *fields)
{
    tt_conn_send(c, tt_reply_ok(m->id, fields));
}

/* The ok of a request that changed session s: sent once that change is
 * committed; an error instead when it could not be (and was undone). */
static void reply_durable(tt_conn *c, const tt_msg *m, const tt_session *s, json_t *fields)
{
    if (s->discard_err) {
        json_decref(fields);
        tt_conn_store_error(c, m->id, s->discard_err);
        return;
    }
    tt_conn_send_durable(c, s->id, m->id, tt_reply_ok(m->id, fields));
}

static void on_hello(tt_conn *c, const tt_msg *m)
{
    tt_server *srv = c->srv;
    if (c->welcomed) {
        tt_conn_error(c, m->id, TT_ECONFLICT, "hello was already answered on this socket");
        return;
    }
    if (m->token) {
        int rc = tt_conn_authenticate(c, m->token);
        if (rc) {
            tt_conn_error(c, m->id, rc, rc == TT_EEXPIRED ? "token expired" : "invalid token");
            tt_conn_close(c, 4001, "unauthenticated");
            return;
        }
    } else if (!c->authed) {
        if (srv->auth.n_keys > 0) {
            tt_conn_error(c, m->id, TT_EAUTH, "a token is required");
            tt_conn_close(c, 4001, "unauthenticated");
            return;
        }
        snprintf(c->user, sizeof c->user, "local");
        snprintf(c->tenant, sizeof c->tenant, "local");
        snprintf(c->key_id, sizeof c->key_id, "local");
        c->authed = 1;
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    }
    c->welcomed = 1;
    json_t *w = json_pack(
        "{s:s, s:i, s:s, s:s, s:i, s:s, s:b, s:o, s:o, s:{s:I, s:I, s:i, s:i, s:I}}", "type",
        "welcome", "protocol", 1, "server", "tether/" TETHER_VERSION, "node",
        tt_config_node_id(&srv->cfg), "heartbeat_s", srv->cfg.heartbeat_s, "user", c->user,
        "open_mode", srv->auth.n_keys == 0, "agents", tt_agent_names(&srv->agent_env), "models",
        tt_llm_service_aliases(srv->agent_env.llm), "limits", "max_frame_bytes",
        (json_int_t)srv->cfg.max_frame_bytes, "max_lag_events", (json_int_t)srv->cfg.max_lag_events,
        "rate_msgs_per_s", srv->cfg.rate_msgs_per_s, "rate_burst", srv->cfg.rate_burst,
        "retain_events", (json_int_t)srv->cfg.retain_events);
    if (w)
        json_object_set_new(w, "agent_info", tt_agent_catalog(&srv->agent_env));
    if (w && m->id)
        json_object_set_new(w, "re", json_string(m->id));
    tt_conn_send(c, w);
}

/* Attach c to s after `after` and reply ok (the ok goes out before the
 * events); durable: the request created s, so the ok waits for the commit. */
static void attach(tt_conn *c, const tt_msg *m, tt_session *s, uint64_t after, json_t *fields,
                   int durable)
{
    tt_cursor *old = tt_conn_cursor(c, s->id);
    if (old)
        tt_conn_remove_cursor(c, old);
    tt_cursor *cur;
    int recovered;
    int rc = tt_cursor_attach(s, c, after, &recovered, &cur);
    if (rc) {
        json_decref(fields);
        if (s->discard_err)
            tt_conn_store_error(c, m->id, s->discard_err);
        else
            tt_conn_error(c, m->id, rc, "attach failed");
        return;
    }
    tt_conn_add_cursor(c, cur);
    if (m->compact)
        tt_cursor_compact(cur); /* before the ok: its pump may send events at once */
    if (!fields)
        fields = json_object();
    json_object_set_new(fields, "session", json_string(s->id));
    json_object_set_new(fields, "head", json_integer((json_int_t)s->head));
    json_object_set_new(fields, "recovered", json_boolean(recovered));
    /* The open question or approval, whatever `after` was: a client that
     * reloads sees it even when its event is long before `after`. */
    json_object_set_new(fields, "pending", s->pending ? json_deep_copy(s->pending) : json_null());
    json_t *queue = json_object_get(s->agent_state, "say_queue"); /* agents/front.h */
    if (json_array_size(queue) > 0)
        json_object_set_new(fields, "queue", json_deep_copy(queue)); /* says waiting their turn */
    if (durable)
        reply_durable(c, m, s, fields);
    else
        reply_ok(c, m, fields);
}

/* input.feature (the label the session's model calls are attributed to) is
 * the server's: checked here; the agent validates the rest. */
static int validate_input(const tt_agent_ops *ops, const json_t *input, char *err, size_t n)
{
    json_t *rest = input ? json_deep_copy(input) : json_object();
    json_t *feature = json_object_get(rest, "feature");
    int rc = rest ? 0 : TT_ENOMEM;
    if (feature &&
        (!json_is_string(feature) || json_string_length(feature) == 0 ||
         json_string_length(feature) > 63 ||
         tt_name_chars_check(json_string_value(feature), json_string_length(feature), NULL) != 0)) {
        snprintf(err, n, "input.feature must be a string of 1-63 plain characters");
        rc = TT_EINVAL;
    }
    json_object_del(rest, "feature");
    if (rc == 0)
        rc = ops->validate(rest, err, n);
    json_decref(rest);
    return rc;
}

static void on_open(tt_conn *c, const tt_msg *m)
{
    char err[160];
    const tt_agent_ops *ops = tt_agent_find(&c->srv->agent_env, m->agent);
    if (!ops) {
        snprintf(err, sizeof err, "no agent named '%.*s'", tt_utf8_cut(m->agent, 64), m->agent);
        tt_conn_error(c, m->id, TT_ENOTFOUND, err);
        return;
    }
    if (!agent_allowed(c, m->agent)) {
        tt_conn_error(c, m->id, TT_EFORBIDDEN, "your token does not allow this agent");
        return;
    }
    if (over_limit(c, m))
        return;
    if (ops->needs_model && !tt_llm_service_configured(c->srv->agent_env.llm)) {
        tt_conn_error(c, m->id, TT_EFULL,
                      "no model is configured: start the server with OPENAI_API_KEY or "
                      "ANTHROPIC_API_KEY set, or with --routes FILE");
        return;
    }
    int rc = validate_input(ops, m->input, err, sizeof err);
    if (rc) {
        tt_conn_error(c, m->id, rc, err);
        return;
    }
    const char *route = json_string_value(json_object_get(m->input, "route"));
    if (route && !tt_llm_service_has_route(c->srv->agent_env.llm, route)) {
        snprintf(err, sizeof err, "no model route named '%.*s'", tt_utf8_cut(route, 64), route);
        tt_conn_error(c, m->id, TT_ENOTFOUND, err);
        return;
    }
    if (m->on_busy && strcmp(m->on_busy, "reject") != 0 && strcmp(m->on_busy, "interrupt") != 0 &&
        strcmp(m->on_busy, "queue") != 0) {
        tt_conn_error(c, m->id, TT_EINVAL,
                      "field 'on_busy' must be \"reject\", \"interrupt\" or \"queue\"");
        return;
    }
    json_t *title = json_object_get(m->metadata, "title");
    const char *why = NULL;
    if (title && (!json_is_string(title) ||
                  tt_name_chars_check(json_string_value(title), json_string_length(title), &why))) {
        snprintf(err, sizeof err,
                 "metadata.title must be a string without control, bidi or invisible "
                 "characters%s%s",
                 why ? ": " : "", why ? why : "");
        tt_conn_error(c, m->id, TT_EINVAL, err);
        return;
    }
    tt_session *s;
    c->srv->opening_key_id = c->key_id;
    c->srv->opening_ip = c->ip;
    rc = tt_registry_create(c->srv->reg, c->user, c->tenant, m->agent, m->input, m->metadata, &s);
    c->srv->opening_key_id = c->srv->opening_ip = NULL;
    if (rc == TT_ELIMIT) {
        snprintf(err, sizeof err,
                 "you have %lld sessions, the most this server keeps per user "
                 "(--max-sessions-per-user)",
                 (long long)c->srv->cfg.max_sessions_per_user);
        tt_conn_error(c, m->id, rc, err);
        return;
    }
    if (rc) {
        tt_conn_error(c, m->id, rc, "the session could not be created");
        return;
    }
    if (m->on_busy && strcmp(m->on_busy, "reject") != 0)
        snprintf(s->on_busy, sizeof s->on_busy, "%s", m->on_busy); /* stored with the session */
    attach(c, m, s, 0, json_pack("{s:s}", "agent", s->agent), 1);
}

static void on_attach(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s)
        return;
    attach(c, m, s, m->after, NULL, 0);
}

static void on_detach(tt_conn *c, const tt_msg *m)
{
    tt_cursor *cur = tt_conn_cursor(c, m->session);
    if (cur)
        tt_conn_remove_cursor(c, cur);
    else if (!session_for(c, m))
        return; /* not_found or forbidden, as for any other session request */
    reply_ok(c, m, json_pack("{s:b}", "detached", cur != NULL));
}

static void listed(int err, json_t *sessions, const char *next, const char *re, void *ud)
{
    tt_conn *c = ud;
    const char *id = re[0] ? re : NULL;
    if (err == TT_EINVAL)
        tt_conn_error(c, id, err, "field 'after' must be the 'next' of a previous page");
    else if (err == TT_EIO)
        tt_conn_error_retryable(c, id, TT_EFULL,
                                "the sessions could not be listed: the database "
                                "is unavailable; retry",
                                1);
    else if (err)
        tt_conn_error(c, id, err, "the sessions could not be listed");
    else
        tt_conn_send(c, tt_reply_ok(id, json_pack("{s:O, s:s?}", "sessions", sessions, "next",
                                                  next[0] ? next : NULL)));
}

static void on_list(tt_conn *c, const tt_msg *m)
{
    /* Half the output cap: one page always fits, whatever else is queued. */
    size_t max_bytes = (size_t)c->srv->cfg.max_output_bytes / 2;
    int rc = tt_registry_list_async(c->srv->reg, c->tenant, c->user, m->list_after,
                                    (size_t)m->limit, max_bytes, m->id, listed, c);
    if (rc)
        tt_conn_error(c, m->id, rc, "the sessions could not be listed");
}

static void on_close(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s)
        return;
    tt_agent_close(s);
    reply_durable(c, m, s, json_pack("{s:s}", "state", tt_state_name(s->state)));
}

/* The reply to a request its session's agent handled: the agent's error
 * (fields dropped), or `ok` with fields once the change is committed. */
static void reply_agent(tt_conn *c, const tt_msg *m, const tt_session *s, int rc, const char *err,
                        json_t *fields)
{
    if (rc) {
        json_decref(fields);
        tt_conn_error(c, m->id, rc, err);
    } else {
        reply_durable(c, m, s, fields);
    }
}

static void on_rename(tt_conn *c, const tt_msg *m)
{
    const char *why = NULL;
    if (tt_name_chars_check(m->title, strlen(m->title), &why)) {
        char err[160];
        snprintf(err, sizeof err,
                 "field 'title' must be without control, bidi or invisible characters%s%s",
                 why ? ": " : "", why ? why : "");
        tt_conn_error(c, m->id, TT_EINVAL, err);
        return;
    }
    if (strspn(m->title, " ") == strlen(m->title)) {
        tt_conn_error(c, m->id, TT_EINVAL, "field 'title' must not be blank");
        return;
    }
    tt_session *s = session_for(c, m);
    if (!s)
        return;
    tt_utf8_copy(s->title, sizeof s->title, m->title);
    s->updated_ms = tt_wall_ms();
    tt_session_touch(s);
    reply_durable(c, m, s, json_pack("{s:s, s:s}", "session", s->id, "title", s->title));
}

/* Detach every socket from the deleted session s; the others than `by`
 * (the one that asked) are told with a session.deleted message. */
static void detach_deleted(tt_session *s, void *ud)
{
    tt_conn *by = ud;
    for (tt_conn *c; (c = tt_conn_detach_next(s)) != NULL;)
        if (c != by)
            tt_conn_send(c, json_pack("{s:s, s:s}", "type", "session.deleted", "session", s->id));
}

static void on_delete(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s)
        return;
    char sid[TT_SESSION_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", s->id);
    int rc = tt_registry_delete(c->srv->reg, s, detach_deleted, c);
    if (rc == TT_EFULL || rc == TT_EINTERNAL) {
        tt_conn_store_error(c, m->id, rc);
        return;
    }
    if (rc) {
        tt_conn_error(c, m->id, rc, "the session could not be deleted");
        return;
    }
    tt_log(TT_INFO, "session deleted",
           json_pack("{s:s, s:s, s:s}", "session", sid, "tenant", c->tenant, "user", c->user));
    /* Once the deletion is committed (replicated mode: in PostgreSQL too). */
    tt_conn_send_durable(c, "", m->id,
                         tt_reply_ok(m->id, json_pack("{s:s, s:b}", "session", sid, "deleted", 1)));
}

/* An agent's refusal whose message starts "busy:" or "expired:" is sent
 * with that `reason`: 1 when sent so. */
static int reply_reasoned(tt_conn *c, const tt_msg *m, int rc, const char *err)
{
    const char *reasons[] = {"busy", "expired"};
    for (size_t i = 0; rc && i < sizeof reasons / sizeof reasons[0]; i++) {
        size_t len = strlen(reasons[i]);
        if (strncmp(err, reasons[i], len) != 0 || err[len] != ':')
            continue;
        json_t *reply = tt_reply_error(m->id, tt_err_wire(rc), err, 0);
        if (reply)
            json_object_set_new(reply, "reason", json_string(reasons[i]));
        tt_metrics_error(&c->srv->metrics, tt_err_wire(rc));
        tt_conn_send(c, reply);
        return 1;
    }
    return 0;
}

static void on_say(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s || over_limit(c, m))
        return;
    tt_usage_turn_begin(&c->srv->usage, s);
    char err[200] = "";
    int duplicate = 0;
    json_t *queued = NULL;
    int rc = m->replaces ? tt_agent_rewind(s, m->replaces, m->text, m->client_msg_id, &duplicate,
                                           err, sizeof err)
                         : tt_agent_say_q(s, m->text, m->client_msg_id, &duplicate, &queued, err,
                                          sizeof err);
    if (reply_reasoned(c, m, rc, err))
        return;
    reply_agent(c, m, s, rc, err, duplicate ? json_pack("{s:b}", "duplicate", 1) : queued);
}

static void on_regenerate(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s || over_limit(c, m))
        return;
    char err[160] = "";
    int duplicate = 0;
    int rc = tt_agent_rewind(s, m->message_id, NULL, NULL, &duplicate, err, sizeof err);
    reply_agent(c, m, s, rc, err, NULL);
}

static void on_answer(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s || over_limit(c, m))
        return;
    char err[160] = "";
    int rc = tt_agent_answer(s, m->question_id, m->value, err, sizeof err);
    reply_agent(c, m, s, rc, err, NULL);
}

/* A decide that carries a fingerprint approves only the plan it was shown:
 * 0, or a conflict has been sent when the open approval's plan differs. */
static int plan_changed(tt_conn *c, const tt_msg *m, const tt_session *s)
{
    const char *aid = json_string_value(json_object_get(s->pending, "approval_id"));
    if (!m->fingerprint || !aid || strcmp(aid, m->approval_id) != 0)
        return 0; /* no fingerprint, or not the open approval: the agent says */
    char fp[TT_AGENT_FINGERPRINT_MAX];
    tt_agent_plan_fingerprint(json_object_get(s->pending, "plan"), fp);
    if (fp[0] && strcmp(fp, m->fingerprint) == 0)
        return 0;
    char err[200];
    snprintf(err, sizeof err,
             "approval %.64s: its plan is not the one you were shown (fingerprint differs); "
             "attach again to see it",
             aid);
    tt_conn_error(c, m->id, TT_ECONFLICT, err);
    return 1;
}

static void on_decide(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s || plan_changed(c, m, s) || over_limit(c, m))
        return;
    char err[200] = "";
    int rc = tt_agent_decide_edits(s, m->approval_id, m->decision, m->comment, m->edits, err,
                                   sizeof err);
    if (!reply_reasoned(c, m, rc, err))
        reply_agent(c, m, s, rc, err, NULL);
}

static void on_cancel(tt_conn *c, const tt_msg *m)
{
    tt_session *s = session_for(c, m);
    if (!s)
        return;
    int cancelled = 0;
    int rc = tt_agent_cancel(s, &cancelled);
    reply_agent(c, m, s, rc, "cancel failed",
                rc ? NULL : json_pack("{s:b}", "cancelled", cancelled));
}

static void on_ack(tt_conn *c, const tt_msg *m)
{
    tt_cursor *cur = tt_conn_cursor(c, m->session);
    if (!cur)
        tt_conn_error(c, m->id, TT_ENOTFOUND, "ack for a session not attached on this socket");
    else if (m->seq > cur->session->head)
        tt_conn_error(c, m->id, TT_EINVAL, "ack beyond the session's head");
    /* A valid ack has no reply: it is advice that lets clients trim their buffers. */
}

static void on_ping(tt_conn *c, const tt_msg *m)
{
    tt_conn_send(c, json_pack("{s:s, s:s?}", "type", "pong", "re", m->id));
}

/* One handler per client message type (protocol/frame.h), in its order. */
static void (*const handlers[TT_MSG__LAST])(tt_conn *c, const tt_msg *m) = {
    [TT_MSG_HELLO] = on_hello,           [TT_MSG_PING] = on_ping,
    [TT_MSG_SESSION_OPEN] = on_open,     [TT_MSG_SESSION_ATTACH] = on_attach,
    [TT_MSG_SESSION_DETACH] = on_detach, [TT_MSG_SESSION_LIST] = on_list,
    [TT_MSG_SESSION_CLOSE] = on_close,   [TT_MSG_SAY] = on_say,
    [TT_MSG_ANSWER] = on_answer,         [TT_MSG_DECIDE] = on_decide,
    [TT_MSG_CANCEL] = on_cancel,         [TT_MSG_ACK] = on_ack,
    [TT_MSG_SESSION_RENAME] = on_rename, [TT_MSG_SESSION_DELETE] = on_delete,
    [TT_MSG_REGENERATE] = on_regenerate,
};

/* An upgrade (upgrade.c): work that would start a turn here, and anything
 * once the sockets are closing with 1012, is left to the new process (the
 * client re-sends it there after the 1012), without an error frame. */
static int left_to_new_process(const tt_conn *c, const tt_msg *m)
{
    if (!c->srv->handing_over || m->type == TT_MSG_PING)
        return 0;
    return c->srv->stopping || m->type == TT_MSG_SESSION_OPEN || m->type == TT_MSG_SAY ||
           m->type == TT_MSG_ANSWER || m->type == TT_MSG_DECIDE || m->type == TT_MSG_REGENERATE;
}

void tt_request_handle(tt_conn *c, tt_msg *m)
{
    if (left_to_new_process(c, m)) {
        c->srv->handover_deferred++;
        tt_conn_close(c, TT_CLOSE_SERVICE_RESTART, "service restart");
        return;
    }
    if (c->srv->stopping && m->type != TT_MSG_PING) {
        tt_conn_error(c, m->id, TT_EFULL, "the server is shutting down; reconnect shortly");
        return;
    }
    if ((unsigned)m->type >= TT_MSG__LAST || !handlers[m->type]) {
        tt_conn_error(c, m->id, TT_EINTERNAL, "unhandled message type");
        return;
    }
    handlers[m->type](c, m);
}
