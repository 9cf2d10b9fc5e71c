/* Why the photo scan's helper readers are plain threads, not libuv pool work
 * items (agents/photos/scan.c, read_all): a pool job cannot queue work
 * itself (uv_queue_work is for the loop thread), so a helper would be queued
 * through the loop (uv_async) and joined by the job: a pool job waiting for
 * a pool job. This starts N such jobs at once, each joining one helper job
 * with a 3 s timeout (a real join has none: it would wait forever), and
 * prints how many timed out. With N below the pool's size (UV_THREADPOOL_SIZE,
 * 4 by default) the helpers run at once; with N at or above it they cannot
 * start until a job gives up. Not a test: it prints one line. Build and run:
 *
 *   cmake --build build-release --target bench_pool_nesting -j2
 *   for n in 3 4 6; do build-release/tests/unit/bench_pool_nesting $n; done */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#define JOBS_MAX 64
#define WAIT_S 3

typedef struct job {
    uv_work_t work, helper;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int helper_done, timed_out;
} job;

static uv_async_t wake;
static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static job *queued[JOBS_MAX];
static int nqueued, njobs, finished;

static void helper_work(uv_work_t *w)
{
    job *j = w->data;
    pthread_mutex_lock(&j->mu);
    j->helper_done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void helper_after(uv_work_t *w, int status)
{
}

/* On the loop: queue the helpers the jobs asked for. */
static void on_wake(uv_async_t *a)
{
    pthread_mutex_lock(&queue_mu);
    for (int i = 0; i < nqueued; i++)
        if (uv_queue_work(a->loop, &queued[i]->helper, helper_work, helper_after) != 0)
            abort();
    nqueued = 0;
    pthread_mutex_unlock(&queue_mu);
}

/* In the pool: ask the loop for a helper, then join it. */
static void job_work(uv_work_t *w)
{
    job *j = w->data;
    pthread_mutex_lock(&queue_mu);
    queued[nqueued++] = j;
    pthread_mutex_unlock(&queue_mu);
    uv_async_send(&wake);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&j->mu);
    while (!j->helper_done && !j->timed_out)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT)
            j->timed_out = 1;
    pthread_mutex_unlock(&j->mu);
}

static void job_after(uv_work_t *w, int status)
{
    if (++finished == njobs)
        uv_close((uv_handle_t *)&wake, NULL);
}

int main(int argc, char **argv)
{
    njobs = argc > 1 ? atoi(argv[1]) : 4;
    if (njobs < 1 || njobs > JOBS_MAX) {
        fprintf(stderr, "usage: %s [jobs 1-%d]\n", argv[0], JOBS_MAX);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_async_init(loop, &wake, on_wake);
    job *jobs = calloc((size_t)njobs, sizeof *jobs);
    if (!jobs)
        return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < njobs; i++) {
        pthread_mutex_init(&jobs[i].mu, NULL);
        pthread_cond_init(&jobs[i].cv, NULL);
        jobs[i].work.data = jobs[i].helper.data = &jobs[i];
        if (uv_queue_work(loop, &jobs[i].work, job_work, job_after) != 0)
            return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int stuck = 0;
    for (int i = 0; i < njobs; i++)
        stuck += jobs[i].timed_out;
    const char *size = getenv("UV_THREADPOOL_SIZE");
    printf("{\"pool\": %s, \"jobs\": %d, \"timed_out\": %d, \"ms\": %.0f}\n", size ? size : "4",
           njobs, stuck, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    free(jobs);
    return 0;
}
