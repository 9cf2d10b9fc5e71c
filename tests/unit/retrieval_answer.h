/* What a call of the retrieval service (agents/retrieval/retrieval.h)
 * answered, for its unit tests: on_answer, the done callback, fills an
 * answer; answer_wait runs the loop until the answer came. Static helpers in
 * a header because each test is its own program. */
#ifndef TT_TEST_RETRIEVAL_ANSWER_H
#define TT_TEST_RETRIEVAL_ANSWER_H

#include <jansson.h>
#include <uv.h>

typedef struct answer {
    int done, status;
    json_t *json; /* the caller's: json_decref it */
} answer;

static inline void on_answer(int status, json_t *json, void *ud)
{
    answer *a = ud;
    a->done = 1;
    a->status = status;
    a->json = json;
}

static inline void answer_wait(uv_loop_t *loop, answer *a)
{
    while (!a->done)
        uv_run(loop, UV_RUN_ONCE);
}

#endif
