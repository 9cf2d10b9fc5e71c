/* Executing an approved photo plan, and undoing it (see photo_organizer.h
 * and agents/photos/move.h for the crash protocol).
 *
 * The journal lives in the run's data, so it is persisted with the session.
 * The execute step writes it with every entry "intent" and commits before
 * the first file moves. The thread pool then applies entries in chunks;
 * after each chunk the loop stores the updated journal (group commit) and
 * starts the next chunk. A conflict stops a chunk: a free name is chosen and
 * committed before that entry is applied again. After a crash the step runs
 * again on the stored journal: applying is idempotent (it looks at the disk
 * first), so every file moves exactly once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/photo_organizer.h"
#include "agents/photos/move.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "state/registry.h"

#define CHUNK 256 /* entries applied per trip to the thread pool */

typedef struct exec_job {
    int rootfd;
    json_t *journal; /* a private copy: the pool thread touches nothing shared */
    int undo;
    int rc;
    int conflict; /* the chunk stopped on a conflict that now has a free name */
    tt_photos_counts counts;
} exec_job;

static int pending(const json_t *e)
{
    const char *state = json_string_value(json_object_get(e, "state"));
    const char *problem = json_string_value(json_object_get(e, "problem"));
    return state && strcmp(state, "intent") == 0 && !(problem && strcmp(problem, "missing") == 0);
}

static void exec_in_pool(void *ctx, volatile int64_t *done, volatile int64_t *total,
                         volatile int *cancel)
{
    exec_job *j = ctx;
    size_t n = json_array_size(j->journal);
    *total = (int64_t)n;
    if (j->undo) {
        j->rc = tt_photos_undo(j->rootfd, j->journal, &j->counts, 0);
        *done = (int64_t)n;
        return;
    }
    size_t applied = 0;
    for (size_t i = 0; i < n && applied < CHUNK && !*cancel; i++) {
        json_t *e = json_array_get(j->journal, i);
        if (!pending(e)) {
            (*done)++;
            continue;
        }
        int acted = 0;
        int rc = tt_photos_journal_apply(j->rootfd, e, 0, &acted);
        applied++;
        if (rc == TT_ECONFLICT) {
            /* Choose a free name; it must be committed before the move. */
            j->rc = tt_photos_journal_resolve(j->rootfd, e);
            j->conflict = j->rc == 0;
            j->counts.conflicts++;
            return;
        }
        if (rc == TT_ENOTFOUND) {
            json_object_set_new(e, "problem", json_string("missing"));
            j->counts.missing++;
        } else if (rc) {
            j->rc = rc;
            return;
        }
        const char *op = json_string_value(json_object_get(e, "op"));
        if (op && strcmp(op, "move") == 0)
            j->counts.acted += acted; /* folders made are not photos moved */
        (*done)++;
    }
}

static void add_counts(tt_run *run, const tt_photos_counts *c)
{
    json_t *data = tt_run_data(run);
    json_t *t = json_object_get(data, "counts");
    if (!json_is_object(t)) {
        t = json_object();
        json_object_set_new(data, "counts", t);
    }
    const char *names[] = {"moved", "conflicts", "missing"};
    int64_t values[] = {c->acted, c->conflicts, c->missing};
    for (int i = 0; i < 3; i++)
        json_object_set_new(
            t, names[i],
            json_integer(json_integer_value(json_object_get(t, names[i])) + values[i]));
}

static void exec_after(tt_run *run, void *ctx, int status)
{
    exec_job *j = ctx;
    close(j->rootfd);
    if (status != 0) {
        json_decref(j->journal);
        free(j);
        return;
    }
    tt_photos_data_set(run, "journal", j->journal); /* the copy becomes the stored journal */
    add_counts(run, &j->counts);
    char msg[256];
    if (j->rc) {
        snprintf(msg, sizeof msg,
                 "moving the photos failed (%s); say \"undo\" to put back "
                 "what was moved",
                 tt_strerror(j->rc));
        tt_run_fail(run, "internal", msg);
    } else if (j->undo) {
        tt_photos_data_set(run, "undone", json_true());
        snprintf(msg, sizeof msg,
                 "Restored the original layout: %lld files moved back, %lld already in place.",
                 (long long)j->counts.acted, (long long)j->counts.already);
        tt_run_finish(run, msg);
    } else {
        size_t left = 0, i;
        json_t *e;
        json_array_foreach(json_object_get(tt_run_data(run), "journal"), i, e) left += pending(e);
        if (left > 0 || j->conflict) {
            tt_run_goto(run, "execute"); /* committed with this pass, then the next chunk */
        } else {
            json_t *c = json_object_get(tt_run_data(run), "counts");
            snprintf(msg, sizeof msg,
                     "Done: %lld photos moved into their new folders%s%lld name conflicts "
                     "solved with a suffix, %lld missing files skipped. Say \"undo\" to restore "
                     "the original layout.",
                     (long long)json_integer_value(json_object_get(c, "moved")), "; ",
                     (long long)json_integer_value(json_object_get(c, "conflicts")),
                     (long long)json_integer_value(json_object_get(c, "missing")));
            tt_run_finish(run, msg);
        }
    }
    free(j);
}

static int start_job(tt_run *run, int undo)
{
    exec_job *j = calloc(1, sizeof *j);
    if (!j)
        return TT_ENOMEM;
    j->undo = undo;
    int rc = tt_photos_library(run, &j->rootfd);
    if (rc) {
        free(j);
        return rc;
    }
    json_t *data = tt_run_data(run);
    if (!json_object_get(data, "journal")) {
        json_t *problems = NULL, *journal = NULL;
        json_t *plan = json_object_get(data, "plan");
        json_t *ops = json_pack("{s:O?, s:O?}", "folders", json_object_get(plan, "folders"),
                                "moves", json_object_get(plan, "moves"));
        rc = ops ? tt_photos_journal_new(j->rootfd, ops, &journal, &problems) : TT_ENOMEM;
        json_decref(ops);
        if (rc) {
            char *text = problems ? json_dumps(problems, JSON_COMPACT) : NULL;
            char msg[400];
            const char *why = text ? text : tt_strerror(rc);
            snprintf(msg, sizeof msg, "the plan no longer fits the library: %.*s",
                     tt_utf8_cut(why, 300), why);
            free(text);
            json_decref(problems);
            close(j->rootfd);
            free(j);
            tt_run_fail(run, "conflict", msg);
            return 0;
        }
        tt_photos_data_set(run, "journal", journal);
        /* Every intent is on disk before the first file moves. */
        rc = tt_registry_flush(tt_run_env(run)->reg);
        if (rc) {
            close(j->rootfd);
            free(j);
            return rc;
        }
    }
    j->journal = json_deep_copy(json_object_get(data, "journal"));
    rc = j->journal ? tt_run_work(run, exec_in_pool, exec_after, j,
                                  undo ? "restoring photos" : "moving photos")
                    : TT_ENOMEM;
    if (rc) {
        close(j->rootfd);
        json_decref(j->journal);
        free(j);
    }
    return rc;
}

int tt_photos_step_execute(tt_run *run)
{
    return start_job(run, 0);
}

int tt_photos_step_undo(tt_run *run)
{
    return start_job(run, 1);
}
