/* The step engine: agents as resumable state machines (ARCHITECTURE.md,
 * principle 4).
 *
 * An agent is a table of steps. A step does one thing — call a model, run
 * work off the loop, ask a question, ask for approval, act on the world,
 * finish — and then names the next step. The engine persists the run at every
 * transition in session->agent_state (written by the group commit with the
 * session, no extra round-trip):
 *
 *   {"step": "propose", "status": "running" | "waiting" | "done" | "failed",
 *    "data": {...},                       what the steps keep (theirs to shape)
 *    "pending": {"kind": "question" | "approval", "id": "q_..", "next": "step",
 *                "revise": "step", "reject": "step", "expires_at": ms},
 *    "message_id": "m_.."}                a model step's message in flight
 *
 * After a restart (resume), a run whose status is "running" enters its step
 * again: a model message cut by the crash is withdrawn first with
 * message.discard (reason "restart"); an act step finds its journal and
 * finishes what was intended (journal.h). A "waiting" run costs nothing: it
 * keeps its question or approval until answered or until it expires.
 *
 * Steps run on the loop thread. enter() must not block: model calls, work in
 * the thread pool and timers report back through callbacks, and every path
 * ends in exactly one of tt_run_goto / tt_run_ask / tt_run_approval /
 * tt_run_finish / tt_run_fail. */
#ifndef TT_ENGINE_H
#define TT_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/agent.h"
#include "agents/llm/call.h"

typedef struct tt_run tt_run;

typedef struct tt_step_def {
    const char *name;
    /* Start the step. Returns 0, or a tt_err (the run fails with it). */
    int (*enter)(tt_run *run);
} tt_step_def;

/* An agent built on the engine. tt_engine_ops() turns it into tt_agent_ops. */
typedef struct tt_engine_def {
    const tt_step_def *steps;
    size_t n_steps;
    const char *first; /* the step a new run starts with, on its first user turn */
    int start_on_open; /* 1: start at once on session.open (input carries the task) */
    /* Where a user turn leads when the run is idle, done or failed (e.g.
     * "undo"); NULL or a NULL result: `first`, a new run, whose request the
     * text becomes (data.request; a routed turn leaves the request as it was). */
    const char *(*route_say)(tt_run *run, const char *text);
    /* The word route_say takes to run a failed model step again ("retry"),
     * named in the error of a model's unusable output; NULL: none. */
    const char *retry_word;
} tt_engine_def;

/* The operations every engine agent shares (engine.c). */
int tt_engine_start(tt_session *s, const tt_agent_env *env);
int tt_engine_resume(tt_session *s, const tt_agent_env *env);
int tt_engine_say(tt_session *s, const char *text, const char *client_msg_id, char *err, size_t n);
int tt_engine_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                     size_t n);
int tt_engine_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                     char *err, size_t n);
/* The pending approval passed its deadline (agents/front.h): the run fails
 * with "timeout". */
void tt_engine_expire(tt_session *s, const char *approval_id);
int tt_engine_cancel(tt_session *s, int *cancelled);
void tt_engine_release(tt_session *s);

/* The tt_agent_ops of an engine agent, as a static initializer:
 *   const tt_agent_ops tt_agent_x = TT_ENGINE_AGENT("x", "what it does", 1, &x_def, x_validate); */
#define TT_ENGINE_AGENT(NAME, DESCRIPTION, NEEDS_MODEL, DEF, VALIDATE)                             \
    {                                                                                              \
        .name = NAME, .description = DESCRIPTION, .needs_model = NEEDS_MODEL, .impl = DEF,         \
        .validate = VALIDATE, .start = tt_engine_start, .resume = tt_engine_resume,                \
        .say = tt_engine_say, .answer = tt_engine_answer, .decide = tt_engine_decide,              \
        .expire = tt_engine_expire, .cancel = tt_engine_cancel, .release = tt_engine_release,      \
    }

/* --- what steps use -------------------------------------------------------- */

tt_session *tt_run_session(tt_run *run);
const tt_agent_env *tt_run_env(tt_run *run);
/* The run's persisted data object (borrowed; call tt_run_touch after a change). */
json_t *tt_run_data(tt_run *run);
void tt_run_touch(tt_run *run);
/* The current step's name. */
const char *tt_run_step(const tt_run *run);

/* Go to step next: persisted now, entered on the next loop pass. */
void tt_run_goto(tt_run *run, const char *next);

/* Ask a question; the answer goes to data.answers[question_id] and the run
 * goes to next. choices (array, consumed) or NULL for free text. */
void tt_run_ask(tt_run *run, const char *text, json_t *choices, const char *next);

/* Ask for approval of plan (consumed): approve -> on_approve; revise with a
 * comment -> on_revise (the comment in data.revisions[]); reject -> on_reject. */
void tt_run_approval(tt_run *run, const char *title, json_t *plan, const char *on_approve,
                     const char *on_revise, const char *on_reject);

/* End the run: state done (summary is posted as an assistant message when not NULL). */
void tt_run_finish(tt_run *run, const char *summary);
/* End the run with an error event {code, message} and state failed. */
void tt_run_fail(tt_run *run, const char *code, const char *message);

/* A progress event {step, done, total, label}. */
void tt_run_progress(tt_run *run, int64_t done, int64_t total, const char *label);

/* Post a whole assistant message at once (start, one delta, end). */
void tt_run_say(tt_run *run, const char *text);

/* --- model steps ------------------------------------------------------------ */

typedef struct tt_run_model_opts {
    const tt_prompt *system; /* the system prompt template (its tag goes in the log line) */
    const char *const *vars; /* template variables chosen by the server, never user text */
    const char *user;        /* the user turn: data to work on, delimited by the engine */
    json_t *schema;          /* structured output: JSON Schema (validated strictly), or NULL */
    int stream;              /* stream the reply to the client as an assistant message */
    const char *route;       /* route alias or NULL for the default */
    /* The step's output cap (max_tokens asked of the provider, still capped by
     * the route's max_completion_tokens); 0: the system prompt's header
     * (prompt.h, so --prompts-dir sets it per step), else the route's. */
    int64_t max_tokens;
} tt_run_model_opts;

/* The model step finished: text (the whole reply) and, with a schema, the
 * validated JSON (borrowed, valid during the call). On failure the run has
 * already failed; done is not called. */
typedef void (*tt_run_model_done)(tt_run *run, const char *text, json_t *parsed,
                                  const tt_llm_result *usage);

/* Call the model. With a schema the provider's JSON mode is asked for; a reply
 * that does not validate is sent back once with the validation error (a
 * self-correction turn); a second failure fails the run with a clear error. */
int tt_run_model(tt_run *run, const tt_run_model_opts *opts, tt_run_model_done done);

/* --- work off the loop -------------------------------------------------------- */

/* Runs in libuv's thread pool: touches nothing of the session. It reports
 * progress through *done and *total (read by the loop every 200 ms) and
 * stops early when *cancel becomes non-zero. */
typedef void (*tt_run_work_fn)(void *ctx, volatile int64_t *done, volatile int64_t *total,
                               volatile int *cancel);
/* Back on the loop, exactly once: status 0 when the work finished; negative
 * when it was cancelled or the session left memory — then after() only frees
 * ctx and must not touch the run's session. */
typedef void (*tt_run_after_fn)(tt_run *run, void *ctx, int status);

int tt_run_work(tt_run *run, tt_run_work_fn work, tt_run_after_fn after, void *ctx,
                const char *label);

/* --- another asynchronous call ------------------------------------------------- */

/* The step started an asynchronous call of its own (a retrieval search,
 * ...) whose callback will go on with the run: until tt_run_wait_end, a
 * cancel of the run or its session leaving memory calls cancel(ud), which
 * must make sure that callback never comes. */
void tt_run_wait(tt_run *run, void (*cancel)(void *ud), void *ud);
/* The call came back (first thing in its callback). */
void tt_run_wait_end(tt_run *run);

#endif
