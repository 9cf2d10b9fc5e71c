/* The AI SDK's UI message stream over HTTP (see aisdk.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent.h"
#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/utf8.h"
#include "server/aisdk.h"
#include "server/conn.h"
#include "server/server.h"

typedef struct aisdk_state {
    char open_text[TT_MESSAGE_ID_MAX + 8]; /* the text part open in this response */
    char last_tool[128];                   /* the last tool call shown in this response */
} aisdk_state;

static void emit(tt_evs *st, uint64_t seq, json_t *chunk)
{
    tt_evs_emit(st, seq, chunk);
}

static void close_text(tt_evs *st, aisdk_state *a, uint64_t seq)
{
    if (!a->open_text[0])
        return;
    emit(st, seq, json_pack("{s:s, s:s}", "type", "text-end", "id", a->open_text));
    a->open_text[0] = '\0';
}

static void open_text(tt_evs *st, aisdk_state *a, uint64_t seq, const char *id)
{
    if (strcmp(a->open_text, id) == 0)
        return;
    close_text(st, a, seq);
    snprintf(a->open_text, sizeof a->open_text, "%s", id);
    emit(st, seq, json_pack("{s:s, s:s}", "type", "text-start", "id", id));
}

static void data_part(tt_evs *st, uint64_t seq, const char *name, const json_t *ev, const char *id)
{
    json_t *d = json_deep_copy(ev);
    json_object_del(d, "type");
    json_object_del(d, "ts");
    emit(st, seq, json_pack("{s:s, s:s*, s:o}", "type", name, "id", id, "data", d));
}

/* A state other than running ends the response: finish, then [DONE]. */
static int on_state(tt_evs *st, aisdk_state *a, const char *state, uint64_t seq)
{
    if (!state || strcmp(state, "running") == 0)
        return 0;
    close_text(st, a, seq);
    const char *reason = "stop";
    if (strcmp(state, "failed") == 0)
        reason = "error";
    else if (strncmp(state, "waiting", 7) == 0)
        reason = "other";
    emit(st, seq, json_pack("{s:s, s:s}", "type", "finish", "finishReason", reason));
    tt_evs_raw(st, "data: [DONE]\n\n", 14);
    return 1;
}

static void on_tool(tt_evs *st, aisdk_state *a, const char *type, const json_t *ev, uint64_t seq)
{
    const char *call = json_string_value(json_object_get(ev, "call_id"));
    if (!call)
        return;
    close_text(st, a, seq);
    if (strcmp(type, "tool.call") == 0) {
        snprintf(a->last_tool, sizeof a->last_tool, "%s", call);
        const char *name = json_string_value(json_object_get(ev, "name"));
        json_t *args = json_object_get(ev, "args");
        emit(st, seq,
             json_pack("{s:s, s:s, s:s, s:O}", "type", "tool-input-available", "toolCallId", call,
                       "toolName", name ? name : "tool", "input", args ? args : json_null()));
    } else if (json_is_true(json_object_get(ev, "ok"))) {
        json_t *res = json_object_get(ev, "result");
        emit(st, seq,
             json_pack("{s:s, s:s, s:O}", "type", "tool-output-available", "toolCallId", call,
                       "output", res ? res : json_null()));
    } else {
        json_t *e = json_object_get(ev, "error");
        char *text = json_is_string(e) ? strdup(json_string_value(e))
                                       : json_dumps(e ? e : json_null(), JSON_ENCODE_ANY);
        emit(st, seq,
             json_pack("{s:s, s:s, s:s}", "type", "tool-output-error", "toolCallId", call,
                       "errorText", text ? text : "tool failed"));
        free(text);
    }
}

/* An approval of the tool call just shown is the SDK's own approval request;
 * every approval is also a data part carrying what the user is asked. */
static void on_approval(tt_evs *st, aisdk_state *a, const json_t *ev, uint64_t seq)
{
    const char *id = json_string_value(json_object_get(ev, "approval_id"));
    const char *call = json_string_value(json_object_get(json_object_get(ev, "plan"), "call_id"));
    close_text(st, a, seq);
    if (id && call && strcmp(call, a->last_tool) == 0)
        emit(st, seq,
             json_pack("{s:s, s:s, s:s}", "type", "tool-approval-request", "approvalId", id,
                       "toolCallId", call));
    data_part(st, seq, "data-tether-approval", ev, id);
}

/* The state a snapshot shows: the message in flight and what is pending. */
static int on_snapshot(tt_evs *st, aisdk_state *a, const json_t *ev, uint64_t seq)
{
    json_t *m = json_object_get(ev, "streaming");
    const char *id = json_string_value(json_object_get(m, "message_id"));
    if (id) {
        open_text(st, a, seq, id);
        const char *text = json_string_value(json_object_get(m, "text"));
        if (text && text[0])
            emit(st, seq,
                 json_pack("{s:s, s:s, s:s}", "type", "text-delta", "id", id, "delta", text));
    }
    json_t *p = json_object_get(ev, "pending");
    if (json_is_object(p))
        data_part(st, seq, "data-tether-pending", p, NULL);
    return on_state(st, a, json_string_value(json_object_get(ev, "state")), seq);
}

static int map_event(tt_evs *st, const char *type, const char *mid, const json_t *ev, uint64_t seq)
{
    aisdk_state *a = tt_evs_state(st);
    if (strcmp(type, "message.start") == 0) {
        open_text(st, a, seq, mid);
    } else if (strcmp(type, "delta") == 0) {
        open_text(st, a, seq, mid);
        const char *text = json_string_value(json_object_get(ev, "text"));
        emit(st, seq,
             json_pack("{s:s, s:s, s:s}", "type", "text-delta", "id", mid, "delta",
                       text ? text : ""));
    } else if (strcmp(type, "message.end") == 0) {
        open_text(st, a, seq, mid);
        close_text(st, a, seq);
    } else if (strcmp(type, "message.discard") == 0) {
        close_text(st, a, seq);
        data_part(st, seq, "data-tether-discard", ev, mid);
    } else if (strcmp(type, "tool.call") == 0 || strcmp(type, "tool.result") == 0) {
        on_tool(st, a, type, ev, seq);
    } else if (strcmp(type, "approval") == 0) {
        on_approval(st, a, ev, seq);
    } else if (strcmp(type, "question") == 0 || strcmp(type, "progress") == 0) {
        close_text(st, a, seq);
        data_part(st, seq, type[0] == 'q' ? "data-tether-question" : "data-tether-progress", ev,
                  json_string_value(json_object_get(ev, "question_id")));
    } else if (strcmp(type, "error") == 0) {
        const char *msg = json_string_value(json_object_get(ev, "message"));
        emit(st, seq, json_pack("{s:s, s:s}", "type", "error", "errorText", msg ? msg : "error"));
    } else if (strcmp(type, "snapshot") == 0) {
        return on_snapshot(st, a, ev, seq);
    } else if (strcmp(type, "state") == 0) {
        return on_state(st, a, json_string_value(json_object_get(ev, "state")), seq);
    }
    return 0; /* user turns and anything else: not part of the assistant's message */
}

static const tt_evs_map aisdk_map = {
    .event = map_event,
    .free_state = free,
    .header_name = "x-vercel-ai-ui-message-stream:",
    .header_value = "v1",
};

/* A stream for an HTTP response (conn NULL) or a WebSocket's chat. */
static tt_evs *new_stream(tt_server *srv, struct lws *wsi, tt_conn *conn, const char *chat)
{
    aisdk_state *a = calloc(1, sizeof *a);
    tt_evs *st = !a     ? NULL
                 : conn ? tt_evs_new_ws(srv, conn, chat, &aisdk_map, a)
                        : tt_evs_new(srv, wsi, &aisdk_map, a);
    if (!a)
        return NULL;
    if (st)
        tt_evs_emit(st, 0, json_pack("{s:s}", "type", "start"));
    return st;
}

int tt_aisdk_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > TT_SESSION_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return 0;
    }
    return 1;
}

/* The text of the last message, which must be the user's: its text parts
 * joined (malloc'd), or NULL with why. */
static char *last_user_text(json_t *body, char *why, size_t n)
{
    json_t *msgs = json_object_get(body, "messages");
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    if (!json_is_array(msgs) || !json_is_object(last) ||
        !json_is_string(json_object_get(last, "role")) ||
        strcmp(json_string_value(json_object_get(last, "role")), "user") != 0) {
        snprintf(why, n, "messages must be an array whose last element is the user's message");
        return NULL;
    }
    tt_buf text;
    tt_buf_init(&text, TT_SESSION_STREAMING_MAX);
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(last, "parts"), i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        const char *type = json_string_value(json_object_get(part, "type"));
        if (t && type && strcmp(type, "text") == 0 && tt_buf_append(&text, t, strlen(t)) != 0) {
            tt_buf_free(&text);
            snprintf(why, n, "the message's text is too long");
            return NULL;
        }
    }
    size_t len;
    char *out = tt_buf_take(&text, &len);
    if (!out || len == 0) {
        free(out);
        snprintf(why, n, "the last message has no text part");
        return NULL;
    }
    return out;
}

/* The chat's session: loaded, or created for who with agent on first use. */
int tt_aisdk_session(tt_server *srv, const tt_http_who *who, const char *id, const char *agent,
                     tt_session **out, char *why, size_t n)
{
    int rc = tt_registry_get(srv->reg, id, out);
    if (rc == 0) {
        if (tt_http_who_may(who, *out))
            return 0;
        snprintf(why, n, "this chat belongs to another user");
        return 403;
    }
    if (rc != TT_ENOTFOUND) {
        snprintf(why, n, "the chat could not be loaded: %s", tt_strerror(rc));
        return 503;
    }
    const tt_agent_ops *ops = tt_agent_find(&srv->agent_env, agent);
    if (!ops || !tt_http_agent_allowed(who, agent)) {
        snprintf(why, n, "no agent named '%.*s' for you", tt_utf8_cut(agent, 64), agent);
        return 404;
    }
    if (ops->needs_model && !tt_llm_service_configured(srv->agent_env.llm)) {
        snprintf(why, n, "no model is configured for agent '%s'", agent);
        return 503;
    }
    rc = tt_registry_create_id(srv->reg, id, who->user, who->tenant, agent, NULL, NULL, out);
    if (rc) {
        snprintf(why, n, "the chat could not be created: %s", tt_strerror(rc));
        return rc == TT_ELIMIT ? 429 : 503;
    }
    return 0;
}

/* The approval responses in the assistant's last message (tool parts in
 * state approval-responded: the SDK's addToolApprovalResponse) as decides.
 * 0, or an HTTP status with why. */
static int apply_approvals(tt_session *s, json_t *last, char *why, size_t n)
{
    int applied = 0;
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(last, "parts"), i, part)
    {
        json_t *ap = json_object_get(part, "approval");
        json_t *ok = json_object_get(ap, "approved");
        const char *id = json_string_value(json_object_get(ap, "id"));
        const char *state = json_string_value(json_object_get(part, "state"));
        if (!id || !json_is_boolean(ok) || !state || strcmp(state, "approval-responded") != 0)
            continue;
        const char *reason = json_string_value(json_object_get(ap, "reason"));
        int rc = tt_agent_decide(s, id, json_is_true(ok) ? TT_DECIDE_APPROVE : TT_DECIDE_REJECT,
                                 reason, why, n);
        if (rc)
            return rc == TT_ECONFLICT   ? 409
                   : rc == TT_ENOTFOUND ? 404
                   : rc == TT_EINVAL    ? 400
                                        : 503;
        applied++;
    }
    if (!applied) {
        snprintf(why, n, "the last message is the assistant's but answers no tool approval");
        return 400;
    }
    return 0;
}

static const char *agent_for(tt_server *srv, json_t *body, const char *qagent)
{
    const char *agent = json_string_value(json_object_get(body, "agent"));
    if (agent)
        return agent;
    return qagent && qagent[0]                             ? qagent
           : tt_llm_service_configured(srv->agent_env.llm) ? "chat"
                                                           : "echo";
}

/* Check the body and say its last message (or, when it is the assistant's,
 * apply its tool approval responses); the stream starts at the head
 * before the turn. 0, or an HTTP status with why. */
static int post_turn(tt_server *srv, struct lws *wsi, tt_conn *conn, const tt_http_who *who,
                     const char *qagent, json_t *body, tt_evs **out, char *why, size_t n)
{
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *trigger = json_string_value(json_object_get(body, "trigger"));
    if (!id || !tt_aisdk_id_ok(id)) {
        snprintf(why, n, "id must be 1-64 letters, digits, '-' or '_' (the chat id)");
        return 400;
    }
    if (trigger && strcmp(trigger, "submit-message") != 0) {
        snprintf(why, n, "trigger '%.*s' is not supported: only submit-message",
                 tt_utf8_cut(trigger, 40), trigger);
        return 400;
    }
    json_t *msgs = json_object_get(body, "messages");
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    int approving = role && strcmp(role, "assistant") == 0;
    tt_session *s;
    if (approving && tt_registry_get(srv->reg, id, &s) != 0) {
        snprintf(why, n, "no such chat to answer an approval in");
        return 404;
    }
    char *text = approving ? NULL : last_user_text(body, why, n);
    if (!approving && !text)
        return 400;
    const char *msg_id = json_string_value(json_object_get(last, "id"));
    if (msg_id && strlen(msg_id) > TT_ID_MAX)
        msg_id = NULL;
    int status = tt_aisdk_session(srv, who, id, agent_for(srv, body, qagent), &s, why, n);
    tt_evs *st = status ? NULL : new_stream(srv, wsi, conn, id);
    if (!status && (!st || tt_evs_attach(st, s, s->head) != 0)) {
        snprintf(why, n, "the stream could not start");
        status = 503;
    }
    int dup = 0;
    if (!status && !approving)
        tt_usage_turn_begin(&srv->usage, s);
    int rc = status || approving ? 0 : tt_agent_say(s, text, msg_id, &dup, why, n);
    free(text);
    if (!status && approving)
        status = apply_approvals(s, last, why, n);
    if (rc) {
        status = rc == TT_ECONFLICT ? 409 : rc == TT_EINVAL ? 400 : 503;
    }
    if (status) {
        tt_evs_free(st);
        return status;
    }
    if (dup && s->state != TT_STATE_RUNNING) {
        /* A repeated POST of a turn already answered: nothing more will come. */
        on_state(st, tt_evs_state(st), tt_state_name(s->state), 0);
        tt_evs_finish(st);
    }
    *out = st;
    return 0;
}

int tt_aisdk_post(tt_server *srv, struct lws *wsi, const tt_http_who *who, const char *qagent,
                  const char *body, size_t len, tt_evs **out, char *why, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(why, n, "the body must be a JSON object: %s", jerr.text);
        return 400;
    }
    int status = post_turn(srv, wsi, NULL, who, qagent, j, out, why, n);
    json_decref(j);
    return status;
}

int tt_aisdk_ws_send(tt_server *srv, tt_conn *conn, const tt_http_who *who, json_t *body,
                     tt_evs **out, char *why, size_t n)
{
    return post_turn(srv, conn->wsi, conn, who, NULL, body, out, why, n);
}

int tt_aisdk_resume(tt_server *srv, struct lws *wsi, tt_conn *conn, const tt_http_who *who,
                    const char *id, uint64_t after, int have_after, tt_evs **out, char *why,
                    size_t n)
{
    tt_session *s;
    *out = NULL;
    if (!tt_aisdk_id_ok(id)) {
        snprintf(why, n, "no such chat");
        return 404;
    }
    int rc = tt_registry_get(srv->reg, id, &s);
    if (rc == TT_ENOTFOUND) {
        snprintf(why, n, "no such chat");
        return 404;
    }
    if (rc) {
        snprintf(why, n, "the chat could not be loaded: %s", tt_strerror(rc));
        return 503;
    }
    if (!tt_http_who_may(who, s)) {
        snprintf(why, n, "this chat belongs to another user");
        return 403;
    }
    if (s->state != TT_STATE_RUNNING && (!have_after || after >= s->committed))
        return 204;
    tt_evs *st = new_stream(srv, wsi, conn, id);
    /* Without a position: a snapshot (the message in flight so far), then live. */
    if (!st || tt_evs_attach(st, s, have_after ? after : s->head + 1) != 0) {
        tt_evs_free(st);
        snprintf(why, n, "the stream could not start");
        return 503;
    }
    *out = st;
    return 0;
}
