/* The chat agent: a multi-turn assistant over a configured model route.
 *
 * Each user turn becomes one model call (agents/llm/call.h) whose request is
 * the system prompt (agents/prompts/chat.system.md) plus the transcript. The
 * reply streams into the session log; a client that disconnects does not
 * stop it (the log keeps it, the client resumes), `cancel` does.
 *
 * Persisted state (session->agent_state): route (alias or null), mode
 * ("idle" | "generating"), message_id while generating. A generation cut by a
 * restart is withdrawn with message.discard (reason "restart") and run again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent.h"
#include "protocol/errors.h"

typedef struct chat_rt {
    tt_session *s;
    const tt_agent_env *env;
    tt_llm_call *call;
    char *text; /* the reply so far (for message.end) */
    size_t len, cap;
    int started;   /* message.start was emitted for the current attempt */
    int releasing; /* the session is leaving memory: change nothing */
    char message_id[40];
} chat_rt;

static int chat_validate(const json_t *input, char *err, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)input, key, v)
    {
        if (strcmp(key, "route") != 0 || !json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > 64) {
            snprintf(err, n, "the chat agent takes only input.route (a route alias string)");
            return TT_EINVAL;
        }
    }
    return 0;
}

static void start_message(chat_rt *rt)
{
    if (rt->started)
        return;
    rt->started = 1;
    tt_session_emit(rt->s, "message.start",
                    json_pack("{s:s, s:s}", "message_id", rt->message_id, "role", "assistant"));
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    chat_rt *rt = ud;
    if (ev->kind != TT_LLM_EV_TEXT || ev->text_len == 0)
        return;
    start_message(rt);
    if (rt->len + ev->text_len + 1 > rt->cap) {
        size_t cap = (rt->len + ev->text_len + 1) * 2;
        char *grown = realloc(rt->text, cap);
        if (!grown)
            return;
        rt->text = grown;
        rt->cap = cap;
    }
    memcpy(rt->text + rt->len, ev->text, ev->text_len);
    rt->len += ev->text_len;
    rt->text[rt->len] = '\0';
    tt_session_emit(
        rt->s, "delta",
        json_pack("{s:s, s:s%}", "message_id", rt->message_id, "text", ev->text, ev->text_len));
}

/* A retry after partial output: withdraw it and start a fresh message. */
static void on_restart(tt_llm_call *c, const tt_llm_error *why, void *ud)
{
    chat_rt *rt = ud;
    if (rt->started)
        tt_session_emit(rt->s, "message.discard",
                        json_pack("{s:s, s:s}", "message_id", rt->message_id, "reason", "retry"));
    rt->started = 0;
    rt->len = 0;
    tt_new_id("m", rt->message_id, sizeof rt->message_id);
    tt_agent_state_set(rt->s, "message_id", json_string(rt->message_id));
}

static const char *wire_code(tt_llm_error_class cls)
{
    switch (cls) {
    case TT_LLM_ERR_RATE_LIMITED:
        return "rate_limited";
    case TT_LLM_ERR_TIMEOUT:
        return "timeout";
    case TT_LLM_ERR_BAD_REQUEST:
    case TT_LLM_ERR_CONTEXT_LENGTH:
    case TT_LLM_ERR_CONTENT_FILTER:
        return "bad_request";
    default:
        return "unavailable";
    }
}

static void finish(chat_rt *rt)
{
    tt_session *s = rt->s;
    rt->call = NULL;
    rt->started = 0;
    rt->len = 0;
    tt_agent_state_set(s, "mode", json_string("idle"));
    tt_agent_state_set(s, "message_id", NULL);
    tt_session_set_state(s, TT_STATE_IDLE, "reply");
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    chat_rt *rt = ud;
    tt_session *s = rt->s;
    if (rt->releasing)
        return; /* leaving memory mid-call: the stored state resumes it later */
    if (r->dropped_messages > 0)
        tt_session_emit(s, "context.trimmed",
                        json_pack("{s:I, s:s}", "dropped_messages", (json_int_t)r->dropped_messages,
                                  "reason", "the conversation was longer than the model's limit"));
    if (r->error.cls == TT_LLM_ERR_NONE) {
        start_message(rt);
        tt_session_emit(s, "message.end",
                        json_pack("{s:s, s:s, s:{s:I, s:I, s:f, s:s, s:b}}", "message_id",
                                  rt->message_id, "text", rt->text ? rt->text : "", "usage",
                                  "prompt_tokens", (json_int_t)r->prompt_tokens,
                                  "completion_tokens", (json_int_t)r->completion_tokens, "cost_usd",
                                  r->cost_usd, "model", r->model, "cached", 0));
    } else if (r->error.cls == TT_LLM_ERR_CANCELLED) {
        if (rt->started)
            tt_session_emit(
                s, "message.discard",
                json_pack("{s:s, s:s}", "message_id", rt->message_id, "reason", "cancelled"));
    } else {
        if (rt->started)
            tt_session_emit(
                s, "message.discard",
                json_pack("{s:s, s:s}", "message_id", rt->message_id, "reason", "error"));
        char msg[320];
        snprintf(msg, sizeof msg, "the model call failed (%s): %s", tt_llm_error_name(r->error.cls),
                 r->error.message);
        tt_session_emit(s, "error",
                        json_pack("{s:s, s:s, s:b}", "code", wire_code(r->error.cls), "message",
                                  msg, "retryable", tt_llm_error_retryable(r->error.cls)));
    }
    finish(rt);
}

static const tt_llm_call_hooks hooks = {on_event, on_restart, on_done};

/* Call the model with the system prompt and the whole transcript. */
static int generate(tt_session *s)
{
    chat_rt *rt = s->agent_rt;
    const tt_agent_env *env = rt->env;
    char date[32];
    tt_rfc3339(tt_wall_ms(), date);
    date[10] = '\0';
    const char *vars[] = {"date", date, NULL};
    const tt_prompt *prompt = tt_agent_prompt(env, "chat.system");
    char *system = prompt ? tt_prompt_render(prompt, vars) : NULL;
    size_t n = json_array_size(s->transcript);
    tt_llm_message *msgs = calloc(n + 1, sizeof *msgs);
    if (!system || !msgs) {
        free(system);
        free(msgs);
        return TT_ENOMEM;
    }
    msgs[0] = (tt_llm_message){.role = "system", .content = system};
    size_t m = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(s->transcript, i);
        const char *role = json_string_value(json_object_get(t, "role"));
        const char *text = json_string_value(json_object_get(t, "text"));
        if (role && text)
            msgs[m++] = (tt_llm_message){.role = role, .content = text};
    }
    tt_llm_request req = {.messages = msgs,
                          .n_messages = m,
                          .temperature = -1,
                          .stream = 1,
                          .tag = prompt->tag};
    tt_new_id("m", rt->message_id, sizeof rt->message_id);
    rt->started = 0;
    rt->len = 0;
    tt_agent_state_set(s, "mode", json_string("generating"));
    tt_agent_state_set(s, "message_id", json_string(rt->message_id));
    tt_session_set_state(s, TT_STATE_RUNNING, "reply");
    int rc =
        tt_llm_call_start(env->llm, tt_agent_state_str(s, "route"), &req, &hooks, rt, &rt->call);
    free(system);
    free(msgs);
    if (rc) {
        tt_session_emit(s, "error",
                        json_pack("{s:s, s:s, s:b}", "code", "unavailable", "message",
                                  "no such model route", "retryable", 0));
        finish(rt);
    }
    return 0;
}

static int make_rt(tt_session *s, const tt_agent_env *env)
{
    chat_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return TT_ENOMEM;
    rt->s = s;
    rt->env = env;
    s->agent_rt = rt;
    return 0;
}

static int chat_start(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    tt_agent_state_set(s, "route", json_incref(json_object_get(s->input, "route")));
    tt_agent_state_set(s, "mode", json_string("idle"));
    tt_session_set_state(s, TT_STATE_IDLE, "start");
    return 0;
}

static int chat_resume(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    const char *mode = tt_agent_state_str(s, "mode");
    if (mode && strcmp(mode, "generating") == 0) {
        const char *mid = tt_agent_state_str(s, "message_id");
        if (mid)
            tt_session_emit(s, "message.discard",
                            json_pack("{s:s, s:s}", "message_id", mid, "reason", "restart"));
        if (env->llm && tt_llm_service_configured(env->llm))
            return generate(s);
        finish(s->agent_rt);
    }
    return 0;
}

static int chat_say(tt_session *s, const char *text, const char *client_msg_id, char *err, size_t n)
{
    if (s->state == TT_STATE_RUNNING) {
        snprintf(err, n, "a reply is streaming; wait for it or cancel it");
        return TT_ECONFLICT;
    }
    tt_agent_accept_turn(s, text, client_msg_id);
    return generate(s);
}

static int chat_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                       size_t n)
{
    snprintf(err, n, "the chat agent asks no questions");
    return TT_ECONFLICT;
}

static int chat_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                       char *err, size_t n)
{
    snprintf(err, n, "the chat agent asks for no approvals");
    return TT_ECONFLICT;
}

static int chat_cancel(tt_session *s, int *cancelled)
{
    chat_rt *rt = s->agent_rt;
    *cancelled = rt->call != NULL;
    if (rt->call)
        tt_llm_call_cancel(rt->call); /* on_done runs now and withdraws the message */
    return 0;
}

static void chat_release(tt_session *s)
{
    chat_rt *rt = s->agent_rt;
    if (!rt)
        return;
    rt->releasing = 1;
    if (rt->call)
        tt_llm_call_cancel(rt->call);
    free(rt->text);
    free(rt);
    s->agent_rt = NULL;
}

const tt_agent_ops tt_agent_chat = {
    .name = "chat",
    .description = "A multi-turn assistant on the configured model route.",
    .needs_model = 1,
    .validate = chat_validate,
    .start = chat_start,
    .resume = chat_resume,
    .say = chat_say,
    .answer = chat_answer,
    .decide = chat_decide,
    .cancel = chat_cancel,
    .release = chat_release,
};
