/* Work off the loop for engine steps (see engine.h, tt_run_work): libuv's
 * thread pool runs it; a loop timer turns its counters into progress events.
 *
 * The (void) uv_*_init and uv_*_start calls cannot fail: init only fills the
 * struct for a timer, idle or check handle, and start fails only on a closing
 * handle or a NULL callback, which these never are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/engine/engine_private.h"
#include "protocol/errors.h"

#define PROGRESS_MS 200

typedef struct tt_run_work work_item;
struct tt_run_work {
    uv_work_t req;
    tt_run *run;
    tt_run_work_fn work;
    tt_run_after_fn after;
    void *ctx;
    volatile int64_t done, total;
    volatile int cancel;
    int64_t shown;
    uv_timer_t *progress;
    char label[64];
};

static void on_progress(uv_timer_t *t)
{
    work_item *w = t->data;
    if (w->run->released || w->cancel || w->done == w->shown)
        return;
    w->shown = w->done;
    tt_run_progress(w->run, w->done, w->total, w->label);
}

static void in_pool(uv_work_t *req)
{
    work_item *w = req->data;
    w->work(w->ctx, &w->done, &w->total, &w->cancel);
}

static void after_pool(uv_work_t *req, int status)
{
    work_item *w = req->data;
    tt_run *run = w->run;
    tt_agent_timer_close(w->progress);
    if (run->work == w)
        run->work = NULL;
    int ok = status == 0 && !w->cancel && !run->released;
    if (ok && w->done != w->shown)
        tt_run_progress(run, w->done, w->total, w->label);
    w->after(run, w->ctx, ok ? 0 : -1);
    if (run->released)
        free(run); /* the session left while the work ran; the run waited for it */
    free(w);
}

int tt_run_work(tt_run *run, tt_run_work_fn work, tt_run_after_fn after, void *ctx,
                const char *label)
{
    if (run->work)
        return TT_ECONFLICT;
    work_item *w = calloc(1, sizeof *w);
    if (!w)
        return TT_ENOMEM;
    w->progress = tt_agent_timer_new(run->env->loop, w);
    if (!w->progress) {
        free(w);
        return TT_ENOMEM;
    }
    w->run = run;
    w->work = work;
    w->after = after;
    w->ctx = ctx;
    w->req.data = w;
    snprintf(w->label, sizeof w->label, "%s", label);
    int rc = uv_queue_work(run->env->loop, &w->req, in_pool, after_pool);
    if (rc) {
        tt_agent_timer_close(w->progress);
        free(w);
        return TT_EIO;
    }
    (void)uv_timer_start(w->progress, on_progress, PROGRESS_MS, PROGRESS_MS);
    run->work = w;
    return 0;
}

void tt_run_work_cancel(tt_run *run)
{
    if (run->work)
        run->work->cancel = 1;
}

int tt_run_work_release(tt_run *run)
{
    if (!run->work)
        return 0;
    run->work->cancel = 1;
    return 1;
}

void tt_run_wait(tt_run *run, void (*cancel)(void *ud), void *ud)
{
    run->wait_cancel = cancel;
    run->wait_ud = ud;
}

void tt_run_wait_end(tt_run *run)
{
    run->wait_cancel = NULL;
    run->wait_ud = NULL;
}

void tt_run_wait_cancel(tt_run *run)
{
    void (*cancel)(void *) = run->wait_cancel;
    void *ud = run->wait_ud;
    tt_run_wait_end(run);
    if (cancel)
        cancel(ud);
}
