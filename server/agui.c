/* AG-UI over SSE (see agui.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent.h"
#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/utf8.h"
#include "server/agui.h"
#include "server/server.h"

#define RUN_ID_MAX 128

typedef struct agui_state {
    char thread[TT_SESSION_ID_MAX + 1];
    char run[RUN_ID_MAX + 1];
    char open_text[TT_MESSAGE_ID_MAX + 8]; /* the text message open in this response */
    json_t *interrupt;                     /* the question or approval waited for, or NULL */
    char error[256];                       /* the last error event's message */
} agui_state;

static void agui_free(void *p)
{
    agui_state *a = p;
    if (a)
        json_decref(a->interrupt);
    free(a);
}

static void close_text(tt_evs *st, agui_state *a, uint64_t seq)
{
    if (!a->open_text[0])
        return;
    tt_evs_emit(st, seq,
                json_pack("{s:s, s:s}", "type", "TEXT_MESSAGE_END", "messageId", a->open_text));
    a->open_text[0] = '\0';
}

static void open_text(tt_evs *st, agui_state *a, uint64_t seq, const char *id)
{
    if (strcmp(a->open_text, id) == 0)
        return;
    close_text(st, a, seq);
    snprintf(a->open_text, sizeof a->open_text, "%s", id);
    tt_evs_emit(st, seq,
                json_pack("{s:s, s:s, s:s}", "type", "TEXT_MESSAGE_START", "messageId", id, "role",
                          "assistant"));
}

static void custom(tt_evs *st, uint64_t seq, const char *name, const json_t *ev)
{
    json_t *v = json_deep_copy(ev);
    json_object_del(v, "type");
    tt_evs_emit(st, seq, json_pack("{s:s, s:s, s:o}", "type", "CUSTOM", "name", name, "value", v));
}

/* A state other than running ends the run: the state, then RUN_FINISHED (an
 * interrupt when a question or approval waits) or RUN_ERROR. */
static int on_state(tt_evs *st, agui_state *a, const json_t *ev, uint64_t seq)
{
    const char *state = json_string_value(json_object_get(ev, "state"));
    if (!state || strcmp(state, "running") == 0)
        return 0;
    close_text(st, a, seq);
    tt_evs_emit(st, seq,
                json_pack("{s:s, s:{s:s, s:s?}}", "type", "STATE_SNAPSHOT", "snapshot", "state",
                          state, "step", json_string_value(json_object_get(ev, "step"))));
    if (strcmp(state, "failed") == 0) {
        tt_evs_emit(st, seq,
                    json_pack("{s:s, s:s}", "type", "RUN_ERROR", "message",
                              a->error[0] ? a->error : "the run failed"));
        return 1;
    }
    json_t *outcome = json_pack("{s:s}", "type", "success");
    if (strncmp(state, "waiting", 7) == 0 && a->interrupt) {
        json_decref(outcome);
        outcome = json_pack("{s:s, s:[O]}", "type", "interrupt", "interrupts", a->interrupt);
    }
    tt_evs_emit(st, seq,
                json_pack("{s:s, s:s, s:s, s:o}", "type", "RUN_FINISHED", "threadId", a->thread,
                          "runId", a->run, "outcome", outcome));
    return 1;
}

static void on_tool(tt_evs *st, agui_state *a, const char *type, const json_t *ev, uint64_t seq)
{
    const char *call = json_string_value(json_object_get(ev, "call_id"));
    if (!call)
        return;
    close_text(st, a, seq);
    if (strcmp(type, "tool.call") == 0) {
        const char *name = json_string_value(json_object_get(ev, "name"));
        char *args =
            json_dumps(json_object_get(ev, "args") ? json_object_get(ev, "args") : json_object(),
                       JSON_COMPACT | JSON_ENCODE_ANY);
        tt_evs_emit(st, seq,
                    json_pack("{s:s, s:s, s:s}", "type", "TOOL_CALL_START", "toolCallId", call,
                              "toolCallName", name ? name : "tool"));
        tt_evs_emit(st, seq,
                    json_pack("{s:s, s:s, s:s}", "type", "TOOL_CALL_ARGS", "toolCallId", call,
                              "delta", args ? args : "{}"));
        tt_evs_emit(st, seq, json_pack("{s:s, s:s}", "type", "TOOL_CALL_END", "toolCallId", call));
        free(args);
        return;
    }
    json_t *res = json_object_get(ev, json_is_true(json_object_get(ev, "ok")) ? "result" : "error");
    char *text = json_is_string(res) ? strdup(json_string_value(res))
                                     : json_dumps(res ? res : json_null(), JSON_ENCODE_ANY);
    char mid[160];
    snprintf(mid, sizeof mid, "r_%s", call);
    tt_evs_emit(st, seq,
                json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "TOOL_CALL_RESULT", "messageId", mid,
                          "toolCallId", call, "content", text ? text : "", "role", "tool"));
    free(text);
}

/* A question or approval: shown as a CUSTOM event now, the run's interrupt
 * when it ends waiting for it. */
static void on_wait(tt_evs *st, agui_state *a, const char *type, const json_t *ev, uint64_t seq)
{
    int q = strcmp(type, "question") == 0;
    const char *id = json_string_value(json_object_get(ev, q ? "question_id" : "approval_id"));
    const char *msg = json_string_value(json_object_get(ev, q ? "text" : "title"));
    const char *call = json_string_value(json_object_get(json_object_get(ev, "plan"), "call_id"));
    close_text(st, a, seq);
    json_decref(a->interrupt);
    json_t *meta = json_deep_copy(ev);
    json_object_del(meta, "type");
    a->interrupt = json_pack("{s:s, s:s, s:s*, s:s*, s:o}", "id", id ? id : "", "reason",
                             q ? "input_required" : "approval", "message", msg, "toolCallId", call,
                             "metadata", meta);
    custom(st, seq, q ? "tether.question" : "tether.approval", ev);
}

static int on_snapshot(tt_evs *st, agui_state *a, const json_t *ev, uint64_t seq)
{
    json_t *m = json_object_get(ev, "streaming");
    const char *id = json_string_value(json_object_get(m, "message_id"));
    const char *text = json_string_value(json_object_get(m, "text"));
    json_t *snap = json_deep_copy(ev);
    json_object_del(snap, "type");
    tt_evs_emit(st, seq, json_pack("{s:s, s:o}", "type", "STATE_SNAPSHOT", "snapshot", snap));
    if (id) {
        open_text(st, a, seq, id);
        if (text && text[0])
            tt_evs_emit(st, seq,
                        json_pack("{s:s, s:s, s:s}", "type", "TEXT_MESSAGE_CONTENT", "messageId",
                                  id, "delta", text));
    }
    json_t *p = json_object_get(ev, "pending");
    const char *ptype = json_string_value(json_object_get(p, "type"));
    if (ptype && (strcmp(ptype, "question") == 0 || strcmp(ptype, "approval") == 0))
        on_wait(st, a, ptype, p, seq);
    return on_state(st, a, ev, seq);
}

static int map_event(tt_evs *st, const char *type, const char *mid, const json_t *ev, uint64_t seq)
{
    agui_state *a = tt_evs_state(st);
    if (strcmp(type, "message.start") == 0) {
        open_text(st, a, seq, mid);
    } else if (strcmp(type, "delta") == 0) {
        const char *text = json_string_value(json_object_get(ev, "text"));
        open_text(st, a, seq, mid);
        if (text && text[0])
            tt_evs_emit(st, seq,
                        json_pack("{s:s, s:s, s:s}", "type", "TEXT_MESSAGE_CONTENT", "messageId",
                                  mid, "delta", text));
    } else if (strcmp(type, "message.end") == 0) {
        open_text(st, a, seq, mid);
        close_text(st, a, seq);
    } else if (strcmp(type, "message.discard") == 0) {
        close_text(st, a, seq);
        custom(st, seq, "tether.discard", ev);
    } else if (strcmp(type, "tool.call") == 0 || strcmp(type, "tool.result") == 0) {
        on_tool(st, a, type, ev, seq);
    } else if (strcmp(type, "question") == 0 || strcmp(type, "approval") == 0) {
        on_wait(st, a, type, ev, seq);
    } else if (strcmp(type, "progress") == 0) {
        custom(st, seq, "tether.progress", ev);
    } else if (strcmp(type, "error") == 0) {
        const char *msg = json_string_value(json_object_get(ev, "message"));
        snprintf(a->error, sizeof a->error, "%s", msg ? msg : "error");
        custom(st, seq, "tether.error", ev);
    } else if (strcmp(type, "snapshot") == 0) {
        return on_snapshot(st, a, ev, seq);
    } else if (strcmp(type, "state") == 0) {
        return on_state(st, a, ev, seq);
    }
    return 0;
}

static const tt_evs_map agui_map = {
    .event = map_event,
    .free_state = agui_free,
};

/* The last message's text when it is the user's (content a string, or text
 * parts), else NULL; its id into *id. */
static char *last_user_text(json_t *msgs, const char **id)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    *id = json_string_value(json_object_get(last, "id"));
    if (!role || strcmp(role, "user") != 0)
        return NULL;
    json_t *content = json_object_get(last, "content");
    if (json_is_string(content))
        return json_string_length(content) ? strdup(json_string_value(content)) : NULL;
    tt_buf text;
    tt_buf_init(&text, TT_SESSION_STREAMING_MAX);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t && tt_buf_append(&text, t, strlen(t)) != 0)
            break;
    }
    size_t len;
    char *out = tt_buf_take(&text, &len);
    if (out && len == 0) {
        free(out);
        out = NULL;
    }
    return out;
}

/* RunAgentInput.resume: each entry answers an interrupt of the last run, an
 * approval (`a_` ids: payload {approved, comment?}, or status cancelled:
 * rejected) or a question (payload: the value). 0, or an HTTP status. */
static int apply_resume(tt_session *s, json_t *entries, char *why, size_t n)
{
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "interruptId"));
        const char *status = json_string_value(json_object_get(e, "status"));
        json_t *payload = json_object_get(e, "payload");
        int rc;
        if (!id || !status) {
            snprintf(why, n, "resume entries are {interruptId, status, payload?}");
            return 400;
        }
        int resolved = strcmp(status, "resolved") == 0;
        if (strncmp(id, "a_", 2) == 0) {
            int yes = resolved && json_is_true(json_object_get(payload, "approved"));
            rc = tt_agent_decide(s, id, yes ? TT_DECIDE_APPROVE : TT_DECIDE_REJECT,
                                 json_string_value(json_object_get(payload, "comment")), why, n);
        } else if (resolved && payload) {
            rc = tt_agent_answer(s, id, payload, why, n);
        } else {
            snprintf(why, n, "a question is resolved with its value as payload");
            return 400;
        }
        if (rc)
            return rc == TT_ECONFLICT   ? 409
                   : rc == TT_ENOTFOUND ? 404
                   : rc == TT_EINVAL    ? 400
                                        : 503;
    }
    return 0;
}

static int check_input(json_t *in, char *why, size_t n)
{
    const char *thread = json_string_value(json_object_get(in, "threadId"));
    const char *run = json_string_value(json_object_get(in, "runId"));
    if (!thread || !tt_aisdk_id_ok(thread)) {
        snprintf(why, n, "threadId must be 1-64 letters, digits, '-' or '_'");
        return 400;
    }
    if (!run || !run[0] || strlen(run) > RUN_ID_MAX) {
        snprintf(why, n, "runId must be a string of 1-%d bytes", RUN_ID_MAX);
        return 400;
    }
    if (!json_is_array(json_object_get(in, "messages"))) {
        snprintf(why, n, "messages must be an array");
        return 400;
    }
    return 0;
}

static int run(tt_server *srv, struct lws *wsi, const tt_http_who *who, const char *agent,
               json_t *in, const char *resume, tt_evs **out, char *why, size_t n)
{
    int status = check_input(in, why, n);
    if (status)
        return status;
    char *end = NULL;
    unsigned long long after = resume ? strtoull(resume, &end, 10) : 0;
    if (resume && (!end || *end || !resume[0])) {
        snprintf(why, n, "Last-Event-ID must be a seq");
        return 400;
    }
    const char *msg_id = NULL;
    json_t *answers = json_object_get(in, "resume");
    int answering = json_array_size(answers) > 0;
    char *text =
        resume || answering ? NULL : last_user_text(json_object_get(in, "messages"), &msg_id);
    if (!resume && !answering && !text) {
        snprintf(why, n, "the last message must be the user's, with text");
        return 400;
    }
    tt_session *s;
    status = tt_aisdk_session(srv, who, json_string_value(json_object_get(in, "threadId")), agent,
                              &s, why, n);
    agui_state *a = status ? NULL : calloc(1, sizeof *a);
    tt_evs *st = a ? tt_evs_new(srv, wsi, &agui_map, a) : NULL;
    if (!status && (!st || tt_evs_attach(st, s, resume ? after : s->head) != 0)) {
        snprintf(why, n, "the stream could not start");
        status = 503;
    }
    int dup = 0;
    if (!status && !resume && !answering)
        tt_usage_turn_begin(&srv->usage, s);
    int rc = status || resume || answering
                 ? 0
                 : tt_agent_say(s, text, msg_id && strlen(msg_id) <= TT_ID_MAX ? msg_id : NULL,
                                &dup, why, n);
    free(text);
    if (rc)
        status = rc == TT_ECONFLICT ? 409 : rc == TT_EINVAL ? 400 : 503;
    if (!status && !resume && answering)
        status = apply_resume(s, answers, why, n);
    if (status) {
        tt_evs_free(st);
        return status;
    }
    snprintf(a->thread, sizeof a->thread, "%s", s->id);
    snprintf(a->run, sizeof a->run, "%s", json_string_value(json_object_get(in, "runId")));
    tt_evs_emit(st, 0,
                json_pack("{s:s, s:s, s:s}", "type", "RUN_STARTED", "threadId", a->thread, "runId",
                          a->run));
    if (s->state != TT_STATE_RUNNING && (resume ? after >= s->committed : dup)) {
        /* Nothing will come: a run already over (a repeated input, or a resume at its end). */
        json_t *ev = json_pack("{s:s}", "state", tt_state_name(s->state));
        on_state(st, a, ev, 0);
        json_decref(ev);
        tt_evs_finish(st);
    }
    *out = st;
    return 0;
}

int tt_agui_post(tt_server *srv, struct lws *wsi, const tt_http_who *who, const char *qagent,
                 const char *resume, const char *body, size_t len, tt_evs **out, char *why,
                 size_t n)
{
    json_error_t jerr;
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(in)) {
        json_decref(in);
        snprintf(why, n, "the body must be a RunAgentInput JSON object: %s", jerr.text);
        return 400;
    }
    const char *agent =
        json_string_value(json_object_get(json_object_get(in, "forwardedProps"), "agent"));
    if (!agent)
        agent = qagent && qagent[0]                             ? qagent
                : tt_llm_service_configured(srv->agent_env.llm) ? "chat"
                                                                : "echo";
    int status = run(srv, wsi, who, agent, in, resume && resume[0] ? resume : NULL, out, why, n);
    json_decref(in);
    return status;
}
