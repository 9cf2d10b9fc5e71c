/* Inside the step engine: the run's runtime, shared by engine.c,
 * engine_model.c and engine_work.c. Agents use engine.h only. */
#ifndef TT_ENGINE_PRIVATE_H
#define TT_ENGINE_PRIVATE_H

#include "agents/engine/engine.h"

struct tt_run {
    tt_session *s; /* NULL-safe: s->agent_rt == this while bound */
    const tt_agent_env *env;
    const tt_engine_def *def;
    uv_timer_t *timer; /* enters the next step on the next loop pass */
    int released;      /* the session left memory; callbacks change nothing */
    /* model step in flight (engine_model.c) */
    struct tt_run_model *model;
    /* thread-pool work in flight (engine_work.c) */
    struct tt_run_work *work;
    /* an asynchronous call of the step's own in flight (tt_run_wait) */
    void (*wait_cancel)(void *ud);
    void *wait_ud;
};

/* Withdraw a streamed model message cut short (message.discard with reason). */
void tt_run_model_withdraw(tt_run *run, const char *reason);
/* Abort the model call in flight, without a callback to the step. */
void tt_run_model_cancel(tt_run *run);
/* Ask the thread-pool work in flight to stop; its step is not called back. */
void tt_run_work_cancel(tt_run *run);
/* The session is leaving: returns 1 when work is still in the thread pool
 * (the run is then freed when it comes back), 0 when the run can be freed. */
int tt_run_work_release(tt_run *run);
/* Cancel the step's own call in flight (tt_run_wait), if any. */
void tt_run_wait_cancel(tt_run *run);

#endif
