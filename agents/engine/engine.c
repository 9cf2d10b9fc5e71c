/* The step engine (see engine.h): the run's persisted state, transitions,
 * questions and approvals, and the agent operations every engine agent
 * shares. Model steps live in engine_model.c, thread-pool work in
 * engine_work.c.
 *
 * The (void) uv_*_init and uv_*_start calls cannot fail: init only fills the
 * struct for a timer, idle or check handle, and start fails only on a closing
 * handle or a NULL callback, which these never are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/engine/engine.h"
#include "agents/front.h"
#include "agents/engine/engine_private.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

static const tt_engine_def *def_of(const tt_session *s)
{
    return ((const tt_agent_ops *)s->agent_ops)->impl;
}

tt_session *tt_run_session(tt_run *run)
{
    return run->s;
}

const tt_agent_env *tt_run_env(tt_run *run)
{
    return run->env;
}

json_t *tt_run_data(tt_run *run)
{
    json_t *data = json_object_get(run->s->agent_state, "data");
    if (!json_is_object(data)) {
        data = json_object();
        json_object_set_new(run->s->agent_state, "data", data);
    }
    return data;
}

void tt_run_touch(tt_run *run)
{
    tt_session_touch(run->s);
}

const char *tt_run_step(const tt_run *run)
{
    return tt_agent_state_str(run->s, "step");
}

static const char *status_of(const tt_session *s)
{
    const char *st = tt_agent_mode(s, "status");
    return st ? st : "idle";
}

static void set_status(tt_run *run, const char *status)
{
    tt_agent_set_mode(run->env, run->s, "status", status);
}

static const tt_step_def *find_step(const tt_engine_def *def, const char *name)
{
    for (size_t i = 0; name && i < def->n_steps; i++) {
        if (strcmp(def->steps[i].name, name) == 0)
            return &def->steps[i];
    }
    return NULL;
}

/* Enter the current step (from the goto timer, never from inside a step). */
static void on_enter(uv_timer_t *t)
{
    tt_run *run = t->data;
    const char *name = tt_run_step(run);
    const tt_step_def *step = find_step(run->def, name);
    if (!step) {
        tt_run_fail(run, "internal", "unknown step");
        return;
    }
    int rc = step->enter(run);
    if (rc)
        tt_run_fail(run, tt_err_wire(rc),
                    rc == TT_EBUDGET && run->env->budget_why ? run->env->budget_why
                                                             : tt_strerror(rc));
}

void tt_run_goto(tt_run *run, const char *next)
{
    tt_agent_state_set(run->s, "step", json_string(next));
    tt_agent_state_set(run->s, "pending", NULL);
    set_status(run, "running");
    tt_session_set_state(run->s, TT_STATE_RUNNING, next);
    (void)uv_timer_start(run->timer, on_enter, 0, 0);
}

static void wait_for(tt_run *run, json_t *pending, tt_state state)
{
    json_object_set_new(pending, "expires_at",
                        json_integer(tt_wall_ms() + run->env->wait_expiry_ms));
    tt_agent_state_set(run->s, "pending", pending);
    set_status(run, "waiting");
}

void tt_run_ask(tt_run *run, const char *text, json_t *choices, const char *next)
{
    char qid[40];
    tt_new_id("q", qid, sizeof qid);
    json_t *body = json_pack("{s:s, s:s}", "question_id", qid, "text", text);
    if (choices)
        json_object_set_new(body, "choices", choices);
    tt_session_set_pending(run->s, json_deep_copy(body));
    tt_session_emit(run->s, "question", body);
    wait_for(run, json_pack("{s:s, s:s, s:s}", "kind", "question", "id", qid, "next", next),
             TT_STATE_WAITING_INPUT);
    tt_session_set_state(run->s, TT_STATE_WAITING_INPUT, tt_run_step(run));
}

void tt_run_approval(tt_run *run, const char *title, json_t *plan, const char *on_approve,
                     const char *on_revise, const char *on_reject)
{
    char aid[40];
    tt_new_id("a", aid, sizeof aid);
    json_t *body = json_pack("{s:s, s:s, s:o}", "approval_id", aid, "title", title, "plan", plan);
    tt_agent_ask_approval_ttl(run->s, body, run->env->wait_expiry_ms); /* agents/front.h */
    wait_for(run,
             json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "kind", "approval", "id", aid, "next",
                       on_approve, "revise", on_revise, "reject", on_reject),
             TT_STATE_WAITING_APPROVAL);
    tt_session_set_state(run->s, TT_STATE_WAITING_APPROVAL, tt_run_step(run));
}

void tt_run_say(tt_run *run, const char *text)
{
    char mid[TT_MESSAGE_ID_MAX];
    if (tt_session_message_start(run->s, "assistant", mid, sizeof mid) != 0)
        return;
    if (tt_session_message_delta(run->s, mid, text, strlen(text)) != 0) {
        tt_session_message_discard(run->s, mid, "error");
        return;
    }
    tt_session_message_end(run->s, mid,
                           json_pack("{s:i, s:i, s:f, s:s, s:b}", "prompt_tokens", 0,
                                     "completion_tokens", 0, "cost_usd", 0.0, "model", "none",
                                     "cached", 0));
}

void tt_run_finish(tt_run *run, const char *summary)
{
    if (summary)
        tt_run_say(run, summary);
    tt_session_set_pending(run->s, NULL);
    tt_agent_state_set(run->s, "pending", NULL);
    set_status(run, "done");
    tt_session_set_state(run->s, TT_STATE_DONE, tt_run_step(run));
}

void tt_run_fail(tt_run *run, const char *code, const char *message)
{
    tt_session_emit(run->s, "error",
                    json_pack("{s:s, s:s, s:b}", "code", code, "message", message, "retryable", 0));
    tt_session_set_pending(run->s, NULL);
    tt_agent_state_set(run->s, "pending", NULL);
    set_status(run, "failed");
    tt_session_set_state(run->s, TT_STATE_FAILED, tt_run_step(run));
}

void tt_run_progress(tt_run *run, int64_t done, int64_t total, const char *label)
{
    tt_session_emit(run->s, "progress",
                    json_pack("{s:s, s:I, s:I, s:s}", "step", tt_run_step(run), "done",
                              (json_int_t)done, "total", (json_int_t)total, "label", label));
}

/* --- the agent operations --------------------------------------------------- */

static int make_rt(tt_session *s, const tt_agent_env *env)
{
    uv_timer_t *timer;
    tt_run *run = tt_agent_rt_new(s, env, sizeof *run, &timer);
    if (!run)
        return TT_ENOMEM;
    run->timer = timer;
    run->s = s;
    run->env = env;
    run->def = def_of(s);
    return 0;
}

int tt_engine_start(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    tt_run *run = s->agent_rt;
    set_status(run, "idle");
    tt_run_data(run);
    if (run->def->start_on_open)
        tt_run_goto(run, run->def->first);
    else
        tt_session_set_state(s, TT_STATE_IDLE, "start");
    return 0;
}

static int expired(const tt_session *s)
{
    json_t *pending = json_object_get(s->agent_state, "pending");
    json_t *at = json_object_get(pending, "expires_at");
    return json_is_integer(at) && json_integer_value(at) < tt_wall_ms();
}

int tt_engine_resume(tt_session *s, const tt_agent_env *env)
{
    int rc = make_rt(s, env);
    if (rc)
        return rc;
    tt_run *run = s->agent_rt;
    const char *status = status_of(s);
    if (strcmp(status, "running") == 0) {
        tt_run_model_withdraw(run, "restart");
        (void)uv_timer_start(run->timer, on_enter, 0, 0); /* the step runs again */
    } else if (strcmp(status, "waiting") == 0 && expired(s)) {
        tt_front_note_expired(s); /* an approval: approval.expired */
        tt_run_fail(run, "timeout", "the question or approval expired unanswered");
    }
    return 0;
}

void tt_engine_expire(tt_session *s, const char *approval_id)
{
    json_t *p = json_object_get(s->agent_state, "pending");
    const char *pid = json_string_value(json_object_get(p, "id"));
    if (strcmp(status_of(s), "waiting") == 0 && pid && strcmp(pid, approval_id) == 0)
        tt_run_fail(s->agent_rt, "timeout", "the approval expired unanswered; nothing was done");
}

static int busy(const tt_session *s, char *err, size_t n)
{
    const char *status = status_of(s);
    if (strcmp(status, "running") == 0) {
        snprintf(err, n, "the agent is working; wait for it or cancel it");
        return TT_ECONFLICT;
    }
    if (strcmp(status, "waiting") == 0) {
        snprintf(err, n, "a question or approval is pending; answer it first");
        return TT_ECONFLICT;
    }
    return 0;
}

int tt_engine_say(tt_session *s, const char *text, const char *client_msg_id, char *err, size_t n)
{
    int rc = busy(s, err, n);
    if (rc)
        return rc;
    tt_run *run = s->agent_rt;
    tt_agent_accept_turn(s, text, client_msg_id);
    const char *next = run->def->route_say ? run->def->route_say(run, text) : NULL;
    if (!next) { /* a new run: this turn is its request ("undo" or "retry" are not) */
        json_object_set_new(tt_run_data(run), "request", json_string(text));
        tt_run_touch(run);
    }
    tt_run_goto(run, next ? next : run->def->first);
    return 0;
}

/* The pending question or approval named id, or NULL with a conflict in err. */
static json_t *pending_of(tt_session *s, const char *kind, const char *id, char *err, size_t n)
{
    json_t *p = json_object_get(s->agent_state, "pending");
    const char *pk = json_string_value(json_object_get(p, "kind"));
    const char *pid = json_string_value(json_object_get(p, "id"));
    if (!pk || strcmp(pk, kind) != 0 || !pid || strcmp(pid, id) != 0) {
        snprintf(err, n, "%s %.*s is not pending", kind, tt_utf8_cut(id, 64), id);
        return NULL;
    }
    if (expired(s)) {
        snprintf(err, n, "%s %.*s expired", kind, tt_utf8_cut(id, 64), id);
        return NULL;
    }
    return p;
}

int tt_engine_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                     size_t n)
{
    json_t *p = pending_of(s, "question", question_id, err, n);
    if (!p)
        return TT_ECONFLICT;
    json_t *choices = json_object_get(s->pending, "choices");
    int ok = !choices;
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c) ok = ok || json_equal(c, (json_t *)value);
    if (!ok || (!choices && (!json_is_string(value) || json_string_length(value) == 0 ||
                             json_string_length(value) > 4096))) {
        snprintf(err, n,
                 choices ? "value must be one of the choices"
                         : "value must be a non-empty string of at most 4096 bytes");
        return TT_EINVAL;
    }
    tt_run *run = s->agent_rt;
    json_t *data = tt_run_data(run);
    json_t *answers = json_object_get(data, "answers");
    if (!json_is_object(answers)) {
        answers = json_object();
        json_object_set_new(data, "answers", answers);
    }
    json_object_set_new(answers, question_id, json_deep_copy(value));
    json_object_set_new(data, "last_answer", json_deep_copy(value));
    char next[64];
    snprintf(next, sizeof next, "%s", json_string_value(json_object_get(p, "next")));
    tt_session_set_pending(s, NULL);
    tt_run_goto(run, next);
    return 0;
}

int tt_engine_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                     char *err, size_t n)
{
    json_t *p = pending_of(s, "approval", approval_id, err, n);
    if (!p)
        return TT_ECONFLICT;
    const char *key = d == TT_DECIDE_APPROVE ? "next" : d == TT_DECIDE_REVISE ? "revise" : "reject";
    const char *target = json_string_value(json_object_get(p, key));
    tt_run *run = s->agent_rt;
    if (d == TT_DECIDE_REVISE && !target) {
        snprintf(err, n, "this approval cannot be revised; approve or reject it");
        return TT_ECONFLICT;
    }
    char next[64];
    snprintf(next, sizeof next, "%s", target ? target : "");
    json_t *data = tt_run_data(run);
    if (d == TT_DECIDE_REVISE) {
        json_t *revs = json_object_get(data, "revisions");
        if (!json_is_array(revs)) {
            revs = json_array();
            json_object_set_new(data, "revisions", revs);
        }
        json_array_append_new(revs, json_string(comment));
    }
    tt_session_set_pending(s, NULL);
    if (d == TT_DECIDE_REJECT && !target)
        tt_run_finish(run, "Stopped: the plan was rejected. Nothing was changed.");
    else
        tt_run_goto(run, next);
    return 0;
}

int tt_engine_cancel(tt_session *s, int *cancelled)
{
    tt_run *run = s->agent_rt;
    *cancelled = strcmp(status_of(s), "running") == 0;
    if (!*cancelled)
        return 0;
    uv_timer_stop(run->timer);
    tt_run_model_cancel(run);
    tt_run_work_cancel(run);
    tt_run_wait_cancel(run);
    tt_run_model_withdraw(run, "cancelled");
    set_status(run, "idle");
    tt_session_set_state(s, TT_STATE_IDLE, tt_run_step(run));
    return 0;
}

void tt_engine_release(tt_session *s)
{
    tt_run *run = s->agent_rt;
    if (!run)
        return;
    run->released = 1;
    s->agent_rt = NULL;
    tt_agent_timer_close(run->timer);
    tt_run_model_cancel(run);
    tt_run_wait_cancel(run);
    if (!tt_run_work_release(run))
        free(run); /* else the thread pool's completion frees it */
}
