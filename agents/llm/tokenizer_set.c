/* The model service's tokenizers, loaded once, by whoever needs one first
 * (see tokenizer_set.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/tokenizer_set.h"
#include "protocol/errors.h"

enum { NONE, LOADING, DONE }; /* a slot's state */

typedef struct slot {
    int state;
    int rc; /* DONE: 0 and tok, or why not */
    int reported;
    tt_tokenizer *tok;
} slot;

struct tt_tokenizer_set {
    pthread_mutex_t lock;
    pthread_cond_t done; /* a slot went from LOADING to DONE */
    int refs;            /* under lock */
    char *dir;
    slot slots[TT_TOKENIZER__LAST];
};

typedef struct preload_job {
    uv_work_t work;
    tt_tokenizer_set *ts;
    int want[TT_TOKENIZER__LAST];
} preload_job;

/* An encoding with rank files (not TT_TOKENIZER_ESTIMATE). */
static int has_ranks(tt_tokenizer_encoding enc)
{
    return (int)enc > (int)TT_TOKENIZER_ESTIMATE && (int)enc < (int)TT_TOKENIZER__LAST;
}

tt_tokenizer_set *tt_tokenizer_set_new(const char *dir)
{
    tt_tokenizer_set *ts = calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    ts->dir = strdup(dir ? dir : TT_TOKENIZER_DEFAULT_DIR);
    if (!ts->dir || pthread_mutex_init(&ts->lock, NULL) != 0) {
        free(ts->dir);
        free(ts);
        return NULL;
    }
    if (pthread_cond_init(&ts->done, NULL) != 0) {
        pthread_mutex_destroy(&ts->lock);
        free(ts->dir);
        free(ts);
        return NULL;
    }
    ts->refs = 1;
    return ts;
}

static tt_tokenizer_set *ref(tt_tokenizer_set *ts)
{
    pthread_mutex_lock(&ts->lock);
    ts->refs++;
    pthread_mutex_unlock(&ts->lock);
    return ts;
}

void tt_tokenizer_set_release(tt_tokenizer_set *ts)
{
    if (!ts)
        return;
    pthread_mutex_lock(&ts->lock);
    int last = --ts->refs == 0;
    pthread_mutex_unlock(&ts->lock);
    if (!last)
        return;
    for (int i = 0; i < TT_TOKENIZER__LAST; i++)
        tt_tokenizer_free(ts->slots[i].tok);
    pthread_cond_destroy(&ts->done);
    pthread_mutex_destroy(&ts->lock);
    free(ts->dir);
    free(ts);
}

const char *tt_tokenizer_set_dir(const tt_tokenizer_set *ts)
{
    return ts->dir;
}

const tt_tokenizer *tt_tokenizer_set_get(tt_tokenizer_set *ts, tt_tokenizer_encoding enc, int *rc)
{
    *rc = 0;
    if (!has_ranks(enc))
        return NULL; /* TT_TOKENIZER_ESTIMATE: no tokenizer, not a failure */
    slot *s = &ts->slots[enc];
    pthread_mutex_lock(&ts->lock);
    while (s->state == LOADING)
        pthread_cond_wait(&ts->done, &ts->lock);
    if (s->state == NONE) { /* ours to load, outside the lock */
        s->state = LOADING;
        pthread_mutex_unlock(&ts->lock);
        tt_tokenizer *tok = NULL;
        int r = tt_tokenizer_load(enc, ts->dir, &tok);
        pthread_mutex_lock(&ts->lock);
        s->tok = r == 0 ? tok : NULL;
        s->rc = r;
        s->state = DONE;
        pthread_cond_broadcast(&ts->done);
    }
    const tt_tokenizer *tok = s->tok;
    *rc = s->rc;
    pthread_mutex_unlock(&ts->lock);
    return tok;
}

int tt_tokenizer_set_loaded(tt_tokenizer_set *ts, tt_tokenizer_encoding enc)
{
    if (!has_ranks(enc))
        return 0;
    pthread_mutex_lock(&ts->lock);
    int loaded = ts->slots[enc].tok != NULL;
    pthread_mutex_unlock(&ts->lock);
    return loaded;
}

int tt_tokenizer_set_report_failure(tt_tokenizer_set *ts, tt_tokenizer_encoding enc)
{
    if (!has_ranks(enc))
        return 0;
    pthread_mutex_lock(&ts->lock);
    slot *s = &ts->slots[enc];
    int first = s->state == DONE && s->rc != 0 && !s->reported;
    if (first)
        s->reported = 1;
    pthread_mutex_unlock(&ts->lock);
    return first;
}

static void preload_work(uv_work_t *w)
{
    preload_job *j = w->data;
    for (int e = TT_TOKENIZER_ESTIMATE + 1; e < TT_TOKENIZER__LAST; e++) {
        int rc;
        if (j->want[e])
            (void)tt_tokenizer_set_get(j->ts, (tt_tokenizer_encoding)e, &rc);
    }
}

static void preload_after(uv_work_t *w, int status)
{
    (void)status; /* cancelled or not, what was loaded stays */
    preload_job *j = w->data;
    tt_tokenizer_set_release(j->ts);
    free(j);
}

int tt_tokenizer_set_preload(tt_tokenizer_set *ts, uv_loop_t *loop, const char *const *models,
                             size_t n)
{
    preload_job *j = calloc(1, sizeof *j);
    if (!j)
        return UV_ENOMEM;
    int any = 0;
    pthread_mutex_lock(&ts->lock);
    for (size_t i = 0; i < n; i++) {
        tt_tokenizer_encoding e = tt_tokenizer_encoding_for_model(models[i]);
        if (has_ranks(e) && ts->slots[e].state == NONE)
            any = j->want[e] = 1;
    }
    pthread_mutex_unlock(&ts->lock);
    if (!any) {
        free(j);
        return 0;
    }
    j->ts = ref(ts);
    j->work.data = j;
    int rc = uv_queue_work(loop, &j->work, preload_work, preload_after);
    if (rc) {
        tt_tokenizer_set_release(ts);
        free(j);
    }
    return rc;
}
