/* The echo agent: a real, model-free agent for diagnostics, demos and tests.
 *
 * - any text: streamed back, one delta per word (the word and the whitespace
 *   after it), delay_ms apart, between message.start and message.end;
 * - "ask": a question with choices yes/no; the answer is echoed ("you said yes");
 * - "plan": an approval; approve -> "approved", reject -> "rejected",
 *   revise + comment -> a new approval whose plan carries the comment;
 *   with input.approval_ttl_s it expires unanswered after that long
 *   (agents/front.h) -> "expired".
 *
 * Persisted state (session->agent_state):
 *   delay_ms, mode ("idle" | "stream" | "question" | "approval"),
 *   reply + message_id while streaming, question_id, approval_id, plan.
 * A stream cut by a restart is withdrawn with message.discard and replayed
 * from the start under a new message id.
 *
 * The (void) uv_*_init and uv_*_start calls cannot fail: init only fills the
 * struct for a timer, idle or check handle, and start fails only on a closing
 * handle or a NULL callback, which these never are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

#define DELAY_MAX_MS 60000
#define TTL_MAX_S (7 * 86400) /* input.approval_ttl_s: how long a plan waits for its decide */

typedef struct echo_rt {
    tt_session *s;
    const tt_agent_env *env;
    /* allocated apart (it is closed asynchronously), for a streamed reply
     * only: made when one starts, closed when it ends, so an echo session at
     * rest keeps none */
    uv_timer_t *timer;
    size_t pos; /* bytes of the reply already streamed */
    unsigned words;
} echo_rt;

static int st_delay(const tt_session *s)
{
    return (int)json_integer_value(json_object_get(s->agent_state, "delay_ms"));
}

static void on_tick(uv_timer_t *t);

/* The echo agent's mode: idle, stream, question or approval. */
static void set_mode(tt_session *s, const char *to)
{
    const echo_rt *rt = s->agent_rt;
    tt_agent_set_mode(rt->env, s, "mode", to);
}

static void drop_timer(echo_rt *rt)
{
    tt_agent_timer_close(rt->timer); /* also from its own callback: uv_close allows it */
    rt->timer = NULL;
}

static void finish_stream(tt_session *s, echo_rt *rt)
{
    drop_timer(rt);
    const char *mid = tt_agent_state_str(s, "message_id");
    tt_session_message_end(s, mid,
                           json_pack("{s:i, s:i, s:f, s:s, s:b}", "prompt_tokens", 0,
                                     "completion_tokens", (int)rt->words, "cost_usd", 0.0, "model",
                                     "echo", "cached", 0));
    set_mode(s, "idle");
    tt_agent_state_set(s, "reply", NULL);
    tt_agent_state_set(s, "message_id", NULL);
    tt_session_set_state(s, TT_STATE_IDLE, "reply");
}

/* Stream text back as a new assistant message. */
static void start_stream(tt_session *s, const char *text)
{
    echo_rt *rt = s->agent_rt;
    char mid[TT_MESSAGE_ID_MAX];
    set_mode(s, "stream");
    tt_agent_state_set(s, "reply", json_string(text));
    tt_session_set_state(s, TT_STATE_RUNNING, "reply");
    if (tt_session_message_start(s, "assistant", mid, sizeof mid) != 0) {
        set_mode(s, "idle");
        tt_agent_state_set(s, "reply", NULL);
        tt_session_set_state(s, TT_STATE_IDLE, "reply");
        return;
    }
    tt_agent_state_set(s, "message_id", json_string(mid));
    rt->pos = 0;
    rt->words = 0;
    if (!rt->timer)
        rt->timer = tt_agent_timer_new(rt->env->loop, rt);
    if (text[0] != '\0' && !rt->timer) {
        /* No memory for the timer: the reply in one delta rather than word by word. */
        tt_session_message_delta(s, mid, text, strlen(text));
        rt->words = 1;
    }
    if (text[0] == '\0' || !rt->timer) {
        finish_stream(s, rt);
        return;
    }
    (void)uv_timer_start(rt->timer, on_tick, (uint64_t)st_delay(s), 0);
}

static size_t next_word_end(const char *text, size_t pos)
{
    static const char *ws = " \t\r\n";
    while (text[pos] && strchr(ws, text[pos]))
        pos++; /* leading whitespace goes with the first word */
    while (text[pos] && !strchr(ws, text[pos]))
        pos++;
    while (text[pos] && strchr(ws, text[pos]))
        pos++;
    return pos;
}

static void on_tick(uv_timer_t *t)
{
    echo_rt *rt = t->data;
    tt_session *s = rt->s;
    const char *reply = tt_agent_state_str(s, "reply");
    if (!reply)
        return;
    size_t end = next_word_end(reply, rt->pos);
    tt_session_message_delta(s, tt_agent_state_str(s, "message_id"), reply + rt->pos,
                             end - rt->pos);
    rt->pos = end;
    rt->words++;
    if (reply[end] == '\0')
        finish_stream(s, rt);
    else
        (void)uv_timer_start(t, on_tick, (uint64_t)st_delay(s), 0);
}

/* Withdraw the message being streamed; the caller sets the next state. */
static int discard_stream(tt_session *s, const char *reason)
{
    const char *mode = tt_agent_mode(s, "mode");
    if (!mode || strcmp(mode, "stream") != 0)
        return 0;
    echo_rt *rt = s->agent_rt;
    drop_timer(rt);
    tt_session_message_discard(s, tt_agent_state_str(s, "message_id"), reason);
    set_mode(s, "idle");
    tt_agent_state_set(s, "message_id", NULL);
    return 1;
}

static int make_rt(tt_session *s, const tt_agent_env *env)
{
    echo_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return TT_ENOMEM;
    s->agent_rt = rt;
    rt->s = s;
    rt->env = env;
    return 0;
}

static int echo_validate(const json_t *input, char *err, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)input, key, v)
    {
        int ttl = strcmp(key, "approval_ttl_s") == 0;
        if (!ttl && strcmp(key, "delay_ms") != 0) {
            snprintf(err, n, "the echo agent takes no input '%.*s'", tt_utf8_cut(key, 64), key);
            return TT_EINVAL;
        }
        long long lo = ttl ? 1 : 0, hi = ttl ? TTL_MAX_S : DELAY_MAX_MS;
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
            snprintf(err, n, "input.%s must be an integer from %lld to %lld", key, lo, hi);
            return TT_EINVAL;
        }
    }
    return 0;
}

static int echo_start(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    json_t *delay = json_object_get(s->input, "delay_ms");
    tt_agent_state_set(s, "delay_ms",
                       json_integer(delay ? json_integer_value(delay) : env->echo_delay_ms));
    set_mode(s, "idle");
    tt_session_set_state(s, TT_STATE_IDLE, "start");
    return 0;
}

static int echo_resume(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    const char *mode = tt_agent_mode(s, "mode");
    if (mode && strcmp(mode, "stream") == 0) {
        /* The process stopped mid-stream: withdraw and stream again. */
        char *reply = strdup(tt_agent_state_str(s, "reply") ? tt_agent_state_str(s, "reply") : "");
        if (!reply)
            return TT_ENOMEM;
        discard_stream(s, "restart");
        start_stream(s, reply);
        free(reply);
    }
    return 0;
}

static int busy(const tt_session *s, char *err, size_t n)
{
    switch (s->state) {
    case TT_STATE_RUNNING:
        snprintf(err, n, "a reply is streaming; wait for it or cancel it");
        return TT_ECONFLICT;
    case TT_STATE_WAITING_INPUT:
        snprintf(err, n, "a question is pending; answer it first");
        return TT_ECONFLICT;
    case TT_STATE_WAITING_APPROVAL:
        snprintf(err, n, "an approval is pending; decide it first");
        return TT_ECONFLICT;
    default:
        return 0;
    }
}

static json_t *make_plan(const char *comment, json_t *old_plan)
{
    json_t *steps =
        json_pack("[s, s, s]", "analyse the request", "draft the reply", "send the reply");
    json_t *comments = json_array();
    json_t *old = json_object_get(old_plan, "comments");
    if (json_is_array(old))
        json_array_extend(comments, old);
    if (comment) {
        json_array_append_new(comments, json_string(comment));
        size_t i;
        json_t *c;
        json_array_foreach(comments, i, c)
        {
            char line[512];
            snprintf(line, sizeof line, "apply revision: %s", json_string_value(c));
            json_array_insert_new(steps, json_array_size(steps) - 1, json_string(line));
        }
    }
    return json_pack("{s:o, s:o, s:i}", "steps", steps, "comments", comments, "revision",
                     (int)json_array_size(comments));
}

static void ask_approval(tt_session *s, json_t *plan)
{
    char aid[40];
    tt_new_id("a", aid, sizeof aid);
    json_t *body =
        json_pack("{s:s, s:s, s:o}", "approval_id", aid, "title", "Echo plan", "plan", plan);
    set_mode(s, "approval");
    tt_agent_state_set(s, "approval_id", json_string(aid));
    tt_agent_state_set(s, "plan", json_incref(json_object_get(body, "plan")));
    json_int_t ttl_s = json_integer_value(json_object_get(s->input, "approval_ttl_s"));
    tt_agent_ask_approval_ttl(s, body, (int64_t)ttl_s * 1000);
    tt_session_set_state(s, TT_STATE_WAITING_APPROVAL, "plan");
}

/* What a turn's text makes the echo agent do. */
static void echo_act(tt_session *s, const char *text)
{
    if (strcmp(text, "ask") == 0) {
        char qid[40];
        tt_new_id("q", qid, sizeof qid);
        json_t *body = json_pack("{s:s, s:s, s:[s, s]}", "question_id", qid, "text",
                                 "Do you want to continue?", "choices", "yes", "no");
        set_mode(s, "question");
        tt_agent_state_set(s, "question_id", json_string(qid));
        tt_session_set_pending(s, json_deep_copy(body));
        tt_session_emit(s, "question", body);
        tt_session_set_state(s, TT_STATE_WAITING_INPUT, "ask");
    } else if (strcmp(text, "plan") == 0) {
        ask_approval(s, make_plan(NULL, NULL));
    } else {
        start_stream(s, text);
    }
}

static int echo_say(tt_session *s, const char *text, const char *client_msg_id, char *err, size_t n)
{
    int rc = busy(s, err, n);
    if (rc)
        return rc;
    tt_agent_accept_turn(s, text, client_msg_id);
    echo_act(s, text);
    return 0;
}

/* Regenerate: the user turn answered again; edit: the new text said. */
static int echo_rewind(tt_session *s, const char *message_id, const char *text,
                       const char *client_msg_id, char *err, size_t n)
{
    const char *said = NULL;
    int rc = busy(s, err, n);
    if (rc == 0)
        rc = tt_agent_rewind_to(s, message_id, text != NULL, &said, err, n);
    if (rc)
        return rc;
    if (text) {
        tt_agent_accept_turn(s, text, client_msg_id);
        said = text;
    }
    char *copy =
        strdup(said ? said : ""); /* said lives in the transcript, which echo_act changes */
    if (!copy)
        return TT_ENOMEM;
    echo_act(s, copy);
    free(copy);
    return 0;
}

static int stale(const tt_session *s, tt_state want, const char *key, const char *id, char *err,
                 size_t n)
{
    const char *pending = tt_agent_state_str(s, key);
    if (s->state == want && pending && strcmp(pending, id) == 0)
        return 0;
    snprintf(err, n, "%s %.*s is not pending", key, tt_utf8_cut(id, 64), id);
    return TT_ECONFLICT;
}

static int echo_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                       size_t n)
{
    int rc = stale(s, TT_STATE_WAITING_INPUT, "question_id", question_id, err, n);
    if (rc)
        return rc;
    const char *v = json_string_value(value);
    if (!v || (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)) {
        snprintf(err, n, "value must be one of the choices: \"yes\", \"no\"");
        return TT_EINVAL;
    }
    char reply[32];
    snprintf(reply, sizeof reply, "you said %s", v);
    tt_agent_state_set(s, "question_id", NULL);
    tt_session_set_pending(s, NULL);
    start_stream(s, reply);
    return 0;
}

static int echo_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                       char *err, size_t n)
{
    int rc = stale(s, TT_STATE_WAITING_APPROVAL, "approval_id", approval_id, err, n);
    if (rc)
        return rc;
    tt_agent_state_set(s, "approval_id", NULL);
    tt_session_set_pending(s, NULL);
    if (d == TT_DECIDE_REVISE) {
        json_t *old = json_incref(json_object_get(s->agent_state, "plan"));
        ask_approval(s, make_plan(comment, old));
        json_decref(old);
        return 0;
    }
    tt_agent_state_set(s, "plan", NULL);
    start_stream(s, d == TT_DECIDE_APPROVE ? "approved" : "rejected");
    return 0;
}

/* A plan left undecided past input.approval_ttl_s: withdrawn, and the turn
 * ends with "expired" streamed back. */
static void echo_expire(tt_session *s, const char *approval_id)
{
    const char *pending = tt_agent_state_str(s, "approval_id");
    if (s->state != TT_STATE_WAITING_APPROVAL || !pending || strcmp(pending, approval_id) != 0)
        return;
    tt_agent_state_set(s, "approval_id", NULL);
    tt_agent_state_set(s, "plan", NULL);
    tt_session_set_pending(s, NULL);
    start_stream(s, "expired");
}

/* Cancel withdraws the reply streaming, or the open question or approval:
 * the turn ends and the session is idle. */
static int echo_cancel(tt_session *s, int *cancelled)
{
    *cancelled = discard_stream(s, "cancelled");
    if (*cancelled) {
        tt_agent_state_set(s, "reply", NULL);
        tt_session_set_state(s, TT_STATE_IDLE, "reply");
    } else if (s->state == TT_STATE_WAITING_INPUT || s->state == TT_STATE_WAITING_APPROVAL) {
        *cancelled = 1;
        tt_agent_state_set(s, "question_id", NULL);
        tt_agent_state_set(s, "approval_id", NULL);
        tt_agent_state_set(s, "plan", NULL);
        tt_session_set_pending(s, NULL);
        set_mode(s, "idle");
        tt_session_set_state(s, TT_STATE_IDLE, "cancelled");
    }
    return 0;
}

static void echo_release(tt_session *s)
{
    echo_rt *rt = s->agent_rt;
    if (!rt)
        return;
    tt_agent_timer_close(rt->timer);
    free(rt);
    s->agent_rt = NULL;
}

const tt_agent_ops tt_agent_echo = {
    .name = "echo",
    .description = "Streams your words back; 'ask' asks a question, 'plan' asks for approval.",
    .validate = echo_validate,
    .start = echo_start,
    .resume = echo_resume,
    .say = echo_say,
    .rewind = echo_rewind,
    .answer = echo_answer,
    .decide = echo_decide,
    .expire = echo_expire,
    .cancel = echo_cancel,
    .release = echo_release,
};
