/* The chat agent, and every assistant configured from a file: a multi-turn
 * assistant over a model route, with tools.
 *
 * Each user turn becomes a model call (agents/llm/call.h) whose request is
 * the system prompt plus the transcript. When the model calls tools, they
 * run as chat_tools.c says (validated, shown, held for the user's approval
 * when the tool is marked so, their results returned as delimited data),
 * and the model is called again with the results, up to max_tool_rounds;
 * the last round offers no tools, so it ends in text. The reply streams into
 * the session log; a client that disconnects does not stop it, `cancel` does.
 *
 * Persisted state (session->agent_state): route, mode ("idle" |
 * "generating" | "tools" | "approval"), message_id, round, and the turn's
 * tool exchanges (chat_tools.c). A model call cut by a restart is withdrawn
 * with message.discard (reason "restart") and made again with the same
 * tool exchanges; a tool round carries on where it was; a pending approval
 * keeps waiting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/chat_private.h"
#include "state/registry.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

typedef tt_chat_rt chat_rt;

static const tt_assistant_def *def_of(const tt_session *s)
{
    return ((const tt_agent_ops *)s->agent_ops)->impl;
}

json_t *tt_chat_turn(tt_session *s)
{
    json_t *turn = json_object_get(s->agent_state, "turn");
    if (!json_is_array(turn)) {
        turn = json_array();
        json_object_set_new(s->agent_state, "turn", turn);
    }
    return turn;
}

void tt_chat_calls_clear(chat_rt *rt)
{
    for (size_t i = 0; i < TT_CHAT_MAX_TOOL_CALLS; i++) {
        tt_chat_call *pc = &rt->calls[i];
        tt_buf_free(&pc->args);
        *pc = (tt_chat_call){0};
        tt_buf_init(&pc->args, TT_CHAT_ARGS_MAX);
    }
    rt->n_calls = 0;
}

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

/* The message's id is persisted only once its message.start is out: a
 * restart withdraws a message the clients saw begin, never one they did not. */
static void start_message(chat_rt *rt)
{
    if (rt->started)
        return;
    if (tt_session_message_start(rt->s, "assistant", rt->message_id, sizeof rt->message_id) != 0)
        return;
    rt->started = 1;
    tt_agent_state_set(rt->s, "message_id", json_string(rt->message_id));
}

/* A cap was passed (err, a tt error): tell the session and stop the call (it
 * ends as cancelled, its message withdrawn) rather than keep it in part. */
static void stop_over_cap(chat_rt *rt, tt_llm_call *c, int err, const char *msg)
{
    tt_session_emit(
        rt->s, "error",
        json_pack("{s:s, s:s, s:b}", "code", tt_err_wire(err), "message", msg, "retryable", 0));
    tt_llm_call_cancel(c);
}

/* What the model streams is kept up to a cap (stop_over_cap past it). */
static void append(chat_rt *rt, tt_llm_call *c, tt_buf *b, const char *s, size_t n,
                   const char *what)
{
    int rc = tt_buf_append(b, s, n);
    if (rc == 0)
        return;
    char msg[160];
    snprintf(msg, sizeof msg, "the model's %s went past %zu bytes: the call was stopped", what,
             b->cap);
    stop_over_cap(rt, c, rc, msg);
}

/* The call a tool-call fragment belongs to: fragments are grouped by the
 * provider's index (which may start at 1, or skip), in the order first seen.
 * More than TT_CHAT_MAX_TOOL_CALLS calls in a round stop the call with an
 * error, like any other cap (NULL). */
static tt_chat_call *call_slot(chat_rt *rt, tt_llm_call *c, int index)
{
    for (size_t i = 0; i < rt->n_calls; i++) {
        if (rt->calls[i].index == index)
            return &rt->calls[i];
    }
    if (rt->n_calls == TT_CHAT_MAX_TOOL_CALLS) {
        char msg[120];
        snprintf(msg, sizeof msg,
                 "the model made more than %d tool calls in one round: the call was stopped",
                 TT_CHAT_MAX_TOOL_CALLS);
        stop_over_cap(rt, c, TT_ETOOLARGE, msg);
        return NULL;
    }
    tt_chat_call *pc = &rt->calls[rt->n_calls++];
    pc->index = index;
    return pc;
}

/* Back-pressure (server/flow.h): a socket of the session is far behind what
 * was just emitted, so the model is not read until it catches up (the server
 * resumes the call). Checked as the events are made: one read from an
 * unpaced provider holds thousands, more than a fast socket takes in a pass. */
static void flow_check(chat_rt *rt, tt_llm_call *c)
{
    tt_session *s = rt->s;
    if (rt->paused || !rt->env->reg || tt_session_backlog(s) < tt_registry_pause_lag(rt->env->reg))
        return;
    rt->paused = 1;
    s->flow_paused = 1;
    s->flow_since_ms = uv_now(rt->env->loop);
    tt_llm_call_pause(c, 1);
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    chat_rt *rt = ud;
    if (ev->kind == TT_LLM_EV_TOOL_CALL) {
        tt_chat_call *pc = call_slot(rt, c, ev->tool_index);
        if (!pc)
            return;
        if (ev->tool_id)
            tt_utf8_copy(pc->id, sizeof pc->id, ev->tool_id);
        if (ev->tool_name)
            tt_utf8_copy(pc->name, sizeof pc->name, ev->tool_name);
        append(rt, c, &pc->args, ev->args ? ev->args : "", ev->args_len, "tool call arguments");
        return;
    }
    if (ev->kind != TT_LLM_EV_TEXT || ev->text_len == 0)
        return;
    start_message(rt);
    append(rt, c, &rt->text, ev->text, ev->text_len, "reply text");
    tt_session_message_delta(rt->s, rt->message_id, ev->text, ev->text_len);
    flow_check(rt, c);
}

static void new_message(chat_rt *rt)
{
    rt->started = 0;
    tt_buf_reset(&rt->text);
    rt->message_id[0] = '\0';
    tt_agent_state_set(rt->s, "message_id", NULL);
}

/* Withdraw the current message, if clients saw it begin. */
static void withdraw(chat_rt *rt, const char *reason)
{
    if (rt->started)
        tt_session_message_discard(rt->s, rt->message_id, reason);
}

/* A retry after partial output: withdraw it and start a fresh message. */
static void on_restart(tt_llm_call *c, const tt_llm_error *why, void *ud)
{
    chat_rt *rt = ud;
    withdraw(rt, "retry");
    tt_chat_calls_clear(rt);
    new_message(rt);
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

void tt_chat_finish(chat_rt *rt)
{
    tt_session *s = rt->s;
    rt->call = NULL;
    rt->started = 0;
    tt_buf_reset(&rt->text);
    rt->round = 0;
    tt_chat_calls_clear(rt);
    if (s->pending)
        tt_session_set_pending(s, NULL);
    tt_agent_state_set(s, "turn", NULL);
    tt_agent_state_set(s, "calls", NULL);
    tt_agent_state_set(s, "round", NULL);
    tt_agent_state_set(s, "citations", NULL);
    tt_agent_set_mode(rt->env, s, "mode", "idle");
    tt_agent_state_set(s, "message_id", NULL);
    tt_session_set_state(s, TT_STATE_IDLE, "reply");
}

/* A model call whose usage no message of its own carries (a tool round
 * without text): kept in agent_state "carry" (prompt_tokens,
 * completion_tokens, cost_usd, calls) until the next message.end, so the
 * usage the messages report adds up to every billed call. */
static void carry_usage(chat_rt *rt, const tt_llm_result *r)
{
    json_t *c = json_object_get(rt->s->agent_state, "carry");
    json_int_t p = json_integer_value(json_object_get(c, "prompt_tokens"));
    json_int_t o = json_integer_value(json_object_get(c, "completion_tokens"));
    json_int_t n = json_integer_value(json_object_get(c, "calls"));
    double cost = json_number_value(json_object_get(c, "cost_usd"));
    tt_agent_state_set(rt->s, "carry",
                       json_pack("{s:I, s:I, s:f, s:I}", "prompt_tokens",
                                 p + (json_int_t)r->prompt_tokens, "completion_tokens",
                                 o + (json_int_t)r->completion_tokens, "cost_usd",
                                 cost + r->cost_usd, "calls", n + 1));
}

static void end_message(chat_rt *rt, const tt_llm_result *r)
{
    start_message(rt);
    json_t *c = json_object_get(rt->s->agent_state, "carry");
    json_int_t calls = 1 + json_integer_value(json_object_get(c, "calls"));
    json_t *usage = json_pack(
        "{s:I, s:I, s:f, s:s, s:b}", "prompt_tokens",
        (json_int_t)r->prompt_tokens + json_integer_value(json_object_get(c, "prompt_tokens")),
        "completion_tokens",
        (json_int_t)r->completion_tokens +
            json_integer_value(json_object_get(c, "completion_tokens")),
        "cost_usd", r->cost_usd + json_number_value(json_object_get(c, "cost_usd")), "model",
        r->model, "cached", r->cached);
    if (usage && calls > 1)
        json_object_set_new(usage, "calls", json_integer(calls));
    json_t *cites = json_object_get(rt->s->agent_state, "citations"); /* chat_tools.c */
    tt_session_message_end_cited(rt->s, rt->message_id, usage,
                                 json_array_size(cites) ? json_incref(cites) : NULL);
    tt_agent_state_set(rt->s, "carry", NULL);
    tt_agent_state_set(rt->s, "message_id", NULL); /* ended: nothing to withdraw */
}

void tt_chat_free(chat_rt *rt)
{
    tt_chat_calls_clear(rt);
    for (size_t i = 0; i < TT_CHAT_MAX_TOOL_CALLS; i++)
        tt_buf_free(&rt->calls[i].args);
    tt_buf_free(&rt->text);
    if (rt->resume)
        tt_agent_timer_close(rt->resume);
    free(rt);
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    chat_rt *rt = ud;
    tt_session *s = rt->s;
    rt->call = NULL;
    if (rt->releasing)
        return; /* leaving memory mid-call: the stored state resumes it later */
    if (r->dropped_messages > 0)
        tt_session_emit(s, "context.trimmed",
                        json_pack("{s:I, s:s}", "dropped_messages", (json_int_t)r->dropped_messages,
                                  "reason", "the conversation was longer than the model's limit"));
    /* Tool calls count only when tools were offered in this round. */
    if (r->error.cls == TT_LLM_ERR_NONE && rt->n_calls > 0 && rt->def &&
        rt->round <= rt->def->max_tool_rounds) {
        if (rt->started)
            end_message(rt, r);
        else
            carry_usage(rt, r);
        tt_chat_tools_begin(rt, rt->text.len ? tt_buf_data(&rt->text) : NULL);
        return;
    }
    if (r->error.cls == TT_LLM_ERR_NONE) {
        tt_chat_calls_clear(rt);
        end_message(rt, r);
    } else if (r->error.cls == TT_LLM_ERR_CANCELLED) {
        withdraw(rt, "cancelled");
    } else {
        withdraw(rt, "error");
        char msg[320];
        snprintf(msg, sizeof msg, "the model call failed (%s): %s", tt_llm_error_name(r->error.cls),
                 r->error.message);
        tt_session_emit(s, "error",
                        json_pack("{s:s, s:s, s:b}", "code", wire_code(r->error.cls), "message",
                                  msg, "retryable", tt_llm_error_retryable(r->error.cls)));
    }
    tt_chat_finish(rt);
}

static const tt_llm_call_hooks hooks = {on_event, on_restart, on_done};

/* The system prompt, the transcript, then this turn's tool exchanges, into
 * msgs (room for all of them and the system prompt): how many were filled. */
static size_t fill_messages(json_t *transcript, json_t *turn, const char *system,
                            tt_llm_message *msgs)
{
    size_t nt = json_array_size(transcript), nx = json_array_size(turn);
    msgs[0] = (tt_llm_message){.role = "system", .content = system};
    size_t m = 1;
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(transcript, i);
        const char *role = json_string_value(json_object_get(t, "role"));
        const char *text = json_string_value(json_object_get(t, "text"));
        if (role && text)
            msgs[m++] = (tt_llm_message){.role = role, .content = text};
    }
    for (size_t i = 0; i < nx; i++) {
        json_t *t = json_array_get(turn, i);
        msgs[m++] = (tt_llm_message){
            .role = json_string_value(json_object_get(t, "role")),
            .content = json_string_value(json_object_get(t, "content")),
            .tool_calls = json_object_get(t, "tool_calls"),
            .tool_call_id = json_string_value(json_object_get(t, "tool_call_id")),
        };
    }
    return m;
}

/* Call the model with the system prompt, the transcript, and this turn's
 * tool exchanges so far. */
int tt_chat_generate(tt_session *s)
{
    chat_rt *rt = s->agent_rt;
    const tt_agent_env *env = rt->env;
    const tt_assistant_def *def = rt->def;
    char date[32];
    tt_rfc3339(tt_wall_ms(), date);
    date[10] = '\0';
    const char *vars[] = {"date", date, NULL};
    const tt_prompt *prompt = tt_agent_prompt(env, def ? def->prompt : "chat.system");
    char *system = prompt ? tt_prompt_render(prompt, vars) : NULL;
    json_t *turn = tt_chat_turn(s);
    json_t *transcript = tt_session_transcript(s); /* read back if released at rest */
    size_t nt = json_array_size(transcript), nx = json_array_size(turn);
    size_t ntools = def ? json_array_size(def->tools) : 0;
    tt_llm_message *msgs = calloc(nt + nx + 1, sizeof *msgs);
    tt_llm_tool *tools = calloc(ntools + 1, sizeof *tools);
    if (!system || !msgs || !tools || !transcript) {
        free(system);
        free(msgs);
        free(tools);
        return TT_ENOMEM;
    }
    size_t m = fill_messages(transcript, turn, system, msgs);
    /* The last round offers no tools, so the model ends in text. */
    size_t n_offered = def && rt->round < def->max_tool_rounds ? ntools : 0;
    for (size_t i = 0; i < n_offered; i++) {
        const tt_tool *tool =
            tt_tools_find(&env->tools, json_string_value(json_array_get(def->tools, i)));
        tools[i] =
            (tt_llm_tool){tt_tool_name(tool), tt_tool_description(tool), tt_tool_parameters(tool)};
    }
    tt_llm_attribution attr;
    tt_agent_attribution(s, def ? def->feature : NULL, &attr);
    tt_llm_request req = {.messages = msgs,
                          .n_messages = m,
                          .tools = tools,
                          .n_tools = n_offered,
                          .temperature = -1,
                          .stream = 1,
                          .tag = prompt->tag,
                          .attr = &attr,
                          .cache = def ? def->cache : 0,
                          .semantic = def ? &def->semantic : NULL};
    new_message(rt);
    rt->round++;
    tt_agent_state_set(s, "round", json_integer(rt->round));
    tt_agent_set_mode(env, s, "mode", "generating");
    tt_session_set_state(s, TT_STATE_RUNNING, "reply");
    const char *route = tt_agent_state_str(s, "route");
    int rc = tt_llm_call_start(env->llm, route, &req, &hooks, rt, &rt->call);
    free(system);
    free(msgs);
    free(tools);
    if (rc) { /* no such route, or a budget without room for the call (its reason) */
        int budget = rc == TT_EBUDGET && env->budget_why;
        tt_session_emit(
            s, "error",
            json_pack("{s:s, s:s, s:b}", "code", budget ? "budget_exceeded" : "unavailable",
                      "message", budget ? env->budget_why : "no such model route", "retryable", 0));
        tt_chat_finish(rt);
    } else if (rt->paused && rt->call) {
        tt_llm_call_pause(rt->call, 1); /* the sockets are still behind */
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
    rt->def = def_of(s);
    tt_buf_init(&rt->text, TT_CHAT_REPLY_MAX);
    tt_chat_calls_clear(rt);
    s->agent_rt = rt;
    return 0;
}

static int chat_start(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    const tt_assistant_def *def = def_of(s);
    json_t *route = json_object_get(s->input, "route");
    if (!route && def && def->route[0])
        route = json_string(def->route);
    else
        json_incref(route);
    tt_agent_state_set(s, "route", route);
    tt_agent_set_mode(env, s, "mode", "idle");
    tt_session_set_state(s, TT_STATE_IDLE, "start");
    return 0;
}

static int chat_resume(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    chat_rt *rt = s->agent_rt;
    const char *mode = tt_agent_mode(s, "mode");
    if (!mode || strcmp(mode, "idle") == 0)
        return 0;
    rt->round = (int)json_integer_value(json_object_get(s->agent_state, "round"));
    if (strcmp(mode, "generating") == 0) {
        const char *mid = tt_agent_state_str(s, "message_id");
        if (mid)
            tt_session_message_discard(s, mid, "restart");
    }
    if (!env->llm || !tt_llm_service_configured(env->llm)) {
        tt_chat_finish(rt);
        return 0;
    }
    if (strcmp(mode, "generating") == 0) {
        rt->round--; /* the interrupted call is made again, not counted twice */
        return tt_chat_generate(s);
    }
    tt_chat_tools_resume(rt); /* "tools" or "approval" */
    return 0;
}

static int chat_busy(const tt_session *s, char *err, size_t n)
{
    if (s->state == TT_STATE_RUNNING) {
        snprintf(err, n, "a reply is streaming; wait for it or cancel it");
        return TT_ECONFLICT;
    }
    if (s->state == TT_STATE_WAITING_APPROVAL) {
        snprintf(err, n, "a tool call waits for approval; decide it or cancel it");
        return TT_ECONFLICT;
    }
    return 0;
}

static int chat_say(tt_session *s, const char *text, const char *client_msg_id, char *err, size_t n)
{
    int rc = chat_busy(s, err, n);
    if (rc)
        return rc;
    tt_agent_accept_turn(s, text, client_msg_id);
    return tt_chat_generate(s);
}

/* Regenerate an answer, or edit a user turn and answer it: the transcript
 * goes back (the model no longer sees what followed), then as a say. */
static int chat_rewind(tt_session *s, const char *message_id, const char *text,
                       const char *client_msg_id, char *err, size_t n)
{
    int rc = chat_busy(s, err, n);
    if (rc == 0)
        rc = tt_agent_rewind_to(s, message_id, text != NULL, NULL, err, n);
    if (rc)
        return rc;
    if (text)
        tt_agent_accept_turn(s, text, client_msg_id);
    return tt_chat_generate(s);
}

static int chat_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                       size_t n)
{
    snprintf(err, n, "this agent asks no questions");
    return TT_ECONFLICT;
}

static int chat_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                       char *err, size_t n)
{
    return tt_chat_tools_decide(s->agent_rt, approval_id, d, err, n);
}

static int chat_approve_edited(tt_session *s, const char *approval_id, const json_t *edits,
                               char *err, size_t n)
{
    return tt_chat_tools_approve_edited(s->agent_rt, approval_id, edits, err, n);
}

static void chat_expire(tt_session *s, const char *approval_id)
{
    tt_chat_tools_expire(s->agent_rt, approval_id);
}

/* Cancel stops the model call, drops the result of a tool in flight (the
 * tool itself is not interrupted), or withdraws a pending approval; the
 * turn ends. */
static int chat_cancel(tt_session *s, int *cancelled)
{
    chat_rt *rt = s->agent_rt;
    *cancelled = rt->call != NULL || rt->tool_running || s->state == TT_STATE_WAITING_APPROVAL;
    if (rt->call) {
        tt_llm_call_cancel(rt->call); /* on_done runs now and withdraws the message */
    } else if (rt->tool_running) {
        chat_rt *fresh = calloc(1, sizeof *fresh);
        if (!fresh)
            return TT_ENOMEM;
        *fresh = (chat_rt){.s = s, .env = rt->env, .def = rt->def};
        tt_buf_init(&fresh->text, TT_CHAT_REPLY_MAX);
        tt_chat_calls_clear(fresh);
        rt->releasing = 1; /* the tool's outcome frees it */
        s->agent_rt = fresh;
        tt_chat_finish(fresh);
    } else if (*cancelled) {
        tt_chat_finish(rt);
    }
    return 0;
}

static void on_resume(uv_timer_t *t)
{
    chat_rt *rt = t->data;
    if (!rt->releasing && !rt->paused && rt->call)
        tt_llm_call_pause(rt->call, 0);
}

/* Back-pressure from the session's sockets: the model's stream waits. A
 * resume may pass on what libcurl held at once, so it runs from a timer:
 * the server asks for it while delivering or closing a socket, where events
 * must not be made (a session being deleted would be dirtied again). */
static void chat_pause(tt_session *s, int paused)
{
    chat_rt *rt = s->agent_rt;
    if (!rt || rt->releasing)
        return;
    rt->paused = paused;
    if (paused) {
        if (rt->call)
            tt_llm_call_pause(rt->call, 1);
        return;
    }
    if (!rt->resume)
        rt->resume = tt_agent_timer_new(rt->env->loop, rt);
    if (rt->resume)
        (void)uv_timer_start(rt->resume, on_resume, 0, 0);
    else if (rt->call)
        tt_llm_call_pause(rt->call, 0); /* no memory for the timer: at once */
}

static void chat_release(tt_session *s)
{
    chat_rt *rt = s->agent_rt;
    if (!rt)
        return;
    rt->releasing = 1;
    s->agent_rt = NULL;
    if (rt->call)
        tt_llm_call_cancel(rt->call);
    if (!rt->tool_running)
        tt_chat_free(rt); /* else the tool's outcome frees it */
}

void tt_agent_chat_ops(const tt_assistant_def *def, tt_agent_ops *out)
{
    *out = tt_agent_chat;
    out->name = def->name;
    out->description = def->description;
    out->impl = def;
}

const tt_agent_ops tt_agent_chat = {
    .name = "chat",
    .description = "A multi-turn assistant on the configured model route.",
    .needs_model = 1,
    .validate = chat_validate,
    .start = chat_start,
    .resume = chat_resume,
    .say = chat_say,
    .rewind = chat_rewind,
    .answer = chat_answer,
    .decide = chat_decide,
    .approve_edited = chat_approve_edited,
    .expire = chat_expire,
    .cancel = chat_cancel,
    .release = chat_release,
    .pause = chat_pause,
};
