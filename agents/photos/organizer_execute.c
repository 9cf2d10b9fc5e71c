/* Executing an approved photo plan, and undoing it (see organizer.h
 * and agents/photos/move.h for the crash protocol).
 *
 * The journal lives in the run's data, so it is persisted with the session.
 * The execute step writes it with every entry "intent" and commits before
 * the first file moves. The thread pool then applies entries in chunks of
 * CHUNK without an fsync per move; at the end of a chunk each folder it
 * touched (both ends of every move) is fsynced once, then the loop stores
 * the updated journal and commits it before the next chunk moves anything.
 * A conflict stops a chunk: a free name is chosen and committed before that
 * entry is applied again. After a crash the step runs again on the stored
 * journal: applying is idempotent (it looks at the disk first), so every
 * file moves exactly once.
 *
 * One journal serves the whole session: a new run keeps the entries of
 * earlier runs that are not undone yet and appends its own, so "undo" always
 * has every move it may still reverse (last first), and no journal is
 * dropped while something in it can be undone. An undo that meets a conflict
 * keeps those entries, says which files they are, and can be said again. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/photos/organizer.h"
#include "agents/photos/move.h"
#include "protocol/names.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "state/registry.h"

#define CHUNK 512 /* entries applied per trip to the thread pool: one folder sync each */
/* Entries kept in a session's journal, earlier runs' included: a new plan
 * that would pass it is refused until "undo" (TT_PHOTOS_PLAN_MAX_MOVES plus
 * TT_PHOTOS_PLAN_MAX_FOLDERS fit twice). */
#define JOURNAL_MAX_ENTRIES 220000
#define REPORT_PATHS 10 /* paths named in an undo report */
#define REPORT_MAX 4096 /* bytes of an undo report */

typedef struct exec_job {
    int rootfd;
    /* A private copy, so the pool thread touches nothing shared: for undo the
     * whole journal; for moves only this chunk's window, the stored entries
     * from `first` on (copying the whole journal for every chunk cost the loop
     * about 36 ms per 1,000 entries, each chunk: 2.4 s a chunk at 100,000). */
    json_t *journal;
    int undo;
    int64_t restored;    /* undo: moves back at their source after this pass */
    size_t base;         /* the first entry of this run's plan */
    size_t first;        /* moves: the stored index of the window's first entry */
    int64_t photos;      /* moves: the photos of this run (progress total) */
    int64_t done_before; /* moves: of them, those settled before the window */
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

static int is_undone(const json_t *e)
{
    const char *state = json_string_value(json_object_get(e, "state"));
    return state && strcmp(state, "undone") == 0;
}

static int is_move(const json_t *e)
{
    const char *op = json_string_value(json_object_get(e, "op"));
    return op && strcmp(op, "move") == 0;
}

int tt_photos_undoable(tt_run *run)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(tt_run_data(run), "journal"), i, e)
    {
        if (!is_undone(e))
            return 1;
    }
    return 0;
}

int tt_photos_keep_undoable(tt_run *run)
{
    json_t *data = tt_run_data(run);
    json_t *old = json_object_get(data, "journal"), *kept = json_array();
    if (!kept)
        return TT_ENOMEM;
    size_t i;
    json_t *e;
    json_array_foreach(old, i, e)
    {
        if (!is_undone(e) && json_array_append(kept, e)) {
            json_decref(kept);
            return TT_ENOMEM;
        }
    }
    json_object_set_new(data, "journaled", json_false()); /* the next plan's are not in it */
    json_object_del(data, "journal_base");
    json_object_del(data, "undone"); /* kept by sessions stored before undo could be retried */
    if (json_array_size(kept) == 0) {
        json_decref(kept);
        json_object_del(data, "journal");
    } else {
        json_object_set_new(data, "journal", kept);
    }
    tt_run_touch(run);
    return 0;
}

/* Fault points for the kill -9 tests (tests/integration/agents-photos):
 * TETHER_PHOTOS_FAULT="<point>:<n>" makes the process kill itself with
 * SIGKILL at the n-th time (counted since it started) it reaches point:
 * "rename" after a file's move, "batch" at the start of a chunk (the
 * journal's intents, and the previous chunk's "done" entries, committed),
 * "before_sync" after a chunk's moves, before its folders are synced,
 * "after_sync" after the sync, before the loop commits the chunk. Read only
 * by these threads; unset, it costs a getenv per chunk and per move. */
static int64_t fault_batches, fault_renames;

static void fault(const char *point, int64_t n)
{
    const char *spec = getenv("TETHER_PHOTOS_FAULT");
    size_t len = strlen(point);
    if (spec && !strncmp(spec, point, len) && spec[len] == ':' &&
        strtoll(spec + len + 1, NULL, 10) == n)
        raise(SIGKILL);
}

/* Applies up to CHUNK pending entries from j->base on, their folders'
 * fsyncs left to the caller (dirs). Stops early on a conflict (a free name
 * chosen, to be committed before the move) or an OS error. */
static void apply_chunk(exec_job *j, tt_photos_dirs *dirs, volatile int64_t *done,
                        volatile int *cancel)
{
    size_t applied = 0, n = json_array_size(j->journal);
    *done = j->done_before; /* earlier runs' entries are only there for undo */
    for (size_t i = 0; i < n && applied < CHUNK && !*cancel; i++) {
        json_t *e = json_array_get(j->journal, i);
        if (!pending(e)) {
            *done += is_move(e);
            continue;
        }
        int acted = 0;
        int rc = tt_photos_journal_apply_batched(j->rootfd, e, dirs, &acted);
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
        if (is_move(e)) {
            j->counts.acted += acted; /* folders made are not photos moved */
            (*done)++;
            if (acted)
                fault("rename", __atomic_add_fetch(&fault_renames, 1, __ATOMIC_RELAXED));
        }
    }
}

static void exec_in_pool(void *ctx, volatile int64_t *done, volatile int64_t *total,
                         volatile int *cancel)
{
    exec_job *j = ctx;
    size_t n = json_array_size(j->journal);
    /* Progress counts photos (moves), never the folders made: the numbers
     * the page shows are the ones the summary says. */
    *total = j->photos;
    if (j->undo) {
        int64_t photos = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(j->journal, i);
            photos += is_move(e) && !is_undone(e);
        }
        *total = photos;
        json_t *was = json_array();
        for (size_t i = 0; was && i < n; i++)
            json_array_append_new(was, json_boolean(!is_undone(json_array_get(j->journal, i))));
        j->rc = was ? tt_photos_undo(j->rootfd, j->journal, &j->counts, 0) : TT_ENOMEM;
        for (size_t i = 0; was && i < n; i++) {
            json_t *e = json_array_get(j->journal, i);
            j->restored += json_is_true(json_array_get(was, i)) && is_undone(e) && is_move(e);
        }
        json_decref(was);
        *done = photos;
        return;
    }
    int64_t batch = __atomic_add_fetch(&fault_batches, 1, __ATOMIC_RELAXED);
    fault("batch", batch);
    tt_photos_dirs *dirs = calloc(1, sizeof *dirs);
    if (!dirs) {
        j->rc = TT_ENOMEM;
        return;
    }
    apply_chunk(j, dirs, done, cancel);
    fault("before_sync", batch);
    /* Every folder this chunk changed is on disk before its "done" entries
     * are committed (exec_after): one fsync per folder, not two per move. */
    int rc = tt_photos_dirs_sync(j->rootfd, dirs);
    if (rc && !j->rc)
        j->rc = rc;
    free(dirs);
    fault("after_sync", batch);
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

typedef struct report {
    char text[REPORT_MAX];
    size_t len;
} report;

static void put(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->text + r->len, sizeof r->text - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len += (size_t)n < sizeof r->text - r->len ? (size_t)n : sizeof r->text - r->len - 1;
}

/* Why entry e is not undone: "conflict", "missing", "changed", "error"
 * (moves) or "folder"; NULL when it is. */
static const char *left_because(const json_t *e)
{
    if (is_undone(e))
        return NULL;
    if (!is_move(e))
        return "folder";
    const char *p = json_string_value(json_object_get(e, "problem"));
    return p && (!strcmp(p, "conflict") || !strcmp(p, "missing") || !strcmp(p, "changed"))
               ? p
               : "error";
}

/* The entries left undone for one reason: a count and the first paths. */
static void report_reason(report *r, json_t *journal, const char *reason, const char *why)
{
    size_t count = 0, i;
    json_t *e;
    json_array_foreach(journal, i, e)
    {
        const char *because = left_because(e);
        if (!because || strcmp(because, reason) != 0)
            continue;
        char shown[2][200];
        if (count < REPORT_PATHS) {
            put(r, "%s\"%s\"", count ? ", " : "", /* names from the disk: shown escaped */
                tt_name_display(json_string_value(json_object_get(e, "final_dest")), shown[0],
                                sizeof shown[0]));
            if (is_move(e))
                put(r, " (from \"%s\")",
                    tt_name_display(json_string_value(json_object_get(e, "src")), shown[1],
                                    sizeof shown[1]));
        }
        count++;
    }
    if (count > REPORT_PATHS)
        put(r, " and %zu more", count - REPORT_PATHS);
    if (count)
        put(r, " - %zu %s.\n", count, why);
}

/* After an undo pass: what was restored, and exactly what was not. */
static void report_undo(tt_run *run, json_t *journal, int64_t restored, int rc)
{
    report *r = calloc(1, sizeof *r);
    if (!r) {
        tt_run_fail(run, "internal", "out of memory");
        return;
    }
    if (!tt_photos_undoable(run)) {
        put(r,
            "Undone: every photo is back where it was before this session organised it "
            "(%lld move%s put back). Nothing is left to undo.",
            (long long)restored, restored == 1 ? "" : "s");
        tt_run_finish(run, r->text);
        free(r);
        return;
    }
    put(r,
        "The original layout is only partly restored: %lld move%s put back%s. "
        "Not restored (paths in your library):\n",
        (long long)restored, restored == 1 ? "" : "s",
        rc ? ", and the disk reported an error" : "");
    static const char *const reasons[][2] = {
        {"conflict", "files not moved back because a file is at the original path again"},
        {"missing", "moved files are no longer there"},
        {"changed", "moved files were changed or replaced since they were moved, so they were "
                    "left where they are"},
        {"error", "files could not be moved back (permissions or an I/O error)"},
        {"folder", "folders the organiser made were kept: they are not empty"},
    };
    for (size_t k = 0; k < sizeof reasons / sizeof reasons[0]; k++)
        report_reason(r, journal, reasons[k][0], reasons[k][1]);
    put(r, "These stay in the journal: resolve them (move the other file away, or put the "
           "file back by hand) and say \"undo\" again.");
    tt_run_finish(run, r->text);
    free(r);
}

static void finish_moves(tt_run *run, exec_job *j)
{
    json_t *data = tt_run_data(run);
    size_t left = 0, i;
    json_t *journal = json_object_get(data, "journal");
    for (i = j->base; i < json_array_size(journal); i++)
        left += pending(json_array_get(journal, i));
    if (left > 0 || j->conflict) {
        tt_run_goto(run, "execute"); /* committed with this pass, then the next chunk */
        return;
    }
    /* Counted from the journal, not from what each pass did: a move a crash
     * cut short was done by the process before, and still counts. */
    long long moved = 0, renamed = 0, missing = 0;
    for (i = j->base; i < json_array_size(journal); i++) {
        json_t *e = json_array_get(journal, i);
        const char *st = json_string_value(json_object_get(e, "state"));
        const char *fin = json_string_value(json_object_get(e, "final_dest"));
        const char *dest = json_string_value(json_object_get(e, "dest"));
        if (!is_move(e))
            continue;
        if (st && strcmp(st, "done") == 0) {
            moved++;
            renamed += fin && dest && strcmp(fin, dest) != 0;
        } else {
            missing++;
        }
    }
    char msg[400];
    snprintf(msg, sizeof msg,
             "Done: %lld photos moved into their new folders; %lld name conflicts "
             "solved with a suffix, %lld missing files skipped. Say \"undo\" once to put "
             "every photo of this run back where it was.",
             moved, renamed, missing);
    tt_run_finish(run, msg);
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
    if (j->undo) {
        tt_photos_data_set(run, "journal", j->journal); /* the copy becomes the stored one */
    } else {
        json_t *stored = json_object_get(tt_run_data(run), "journal");
        for (size_t k = 0; k < json_array_size(j->journal); k++) /* the window back in place */
            json_array_set(stored, j->first + k, json_array_get(j->journal, k));
        json_decref(j->journal);
        j->journal = NULL;
        tt_run_touch(run);
    }
    if (j->undo) {
        report_undo(run, j->journal, j->restored, j->rc);
    } else if (j->rc) {
        add_counts(run, &j->counts);
        char msg[256];
        snprintf(msg, sizeof msg,
                 "moving the photos failed (%s); say \"undo\" to put back what was moved",
                 tt_strerror(j->rc));
        tt_run_fail(run, "internal", msg);
    } else {
        add_counts(run, &j->counts);
        finish_moves(run, j);
    }
    free(j);
}

/* The approved plan checked against the disk and turned into journal
 * entries (tt_photos_journal_new: every source is stat'ed and every folder
 * opened, one component at a time), in the thread pool: on a slow disk a
 * plan of thousands of moves would hold the loop, and every socket, for as
 * long. The pool thread reads the plan's folders and moves, shared by
 * reference: a stored plan is never changed in place (propose stores a new
 * one, analyse drops it) and jansson's reference counts are atomic, so
 * nothing it reads changes under it, and it writes only fresh and problems.
 * A deep copy instead would cost the loop more than the check (1.8-2.4 s
 * for 100,000 moves on the 2 shared cores of issue 18). */
typedef struct check_job {
    int rootfd;
    json_t *ops; /* {folders, moves}, the stored plan's arrays */
    json_t *fresh, *problems;
    int rc;
} check_job;

static void check_in_pool(void *ctx, volatile int64_t *done, volatile int64_t *total,
                          volatile int *cancel)
{
    check_job *c = ctx;
    c->rc = tt_photos_journal_new(c->rootfd, c->ops, &c->fresh, &c->problems);
}

/* Back on the loop: appends the checked plan's entries to the session's
 * journal. 0, or a tt_err; the run has failed (returning 0) when the plan
 * no longer fits the library or the journal is full. The session is changed
 * only when the plan passed. The journal is committed with the goto to
 * "execute" (one commit), whose start_job flushes before anything moves. */
static int journal_plan(tt_run *run, check_job *c)
{
    json_t *data = tt_run_data(run);
    int rc = c->rc;
    if (rc == TT_EINVAL) {
        char *text = c->problems ? json_dumps(c->problems, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        char msg[400];
        snprintf(msg, sizeof msg, "the plan no longer fits the library: %.300s",
                 text ? text : tt_strerror(rc));
        free(text);
        tt_run_fail(run, "conflict", msg);
        return 0;
    }
    if (rc)
        return rc;
    json_t *journal = json_object_get(data, "journal");
    size_t base = json_array_size(journal);
    if (base + json_array_size(c->fresh) > JOURNAL_MAX_ENTRIES) {
        tt_run_fail(run, "too_large",
                    "the journal of this session's earlier runs is full: say \"undo\" first, or "
                    "organise in a new session");
        return 0;
    }
    journal = journal ? json_incref(journal) : json_array();
    rc = journal && !json_array_extend(journal, c->fresh) ? 0 : TT_ENOMEM;
    if (rc) {
        json_decref(journal);
        return rc;
    }
    tt_photos_data_set(run, "journal", journal);
    tt_photos_data_set(run, "journal_base", json_integer((json_int_t)base));
    tt_photos_data_set(run, "journaled", json_true());
    return 0;
}

static void check_after(tt_run *run, void *ctx, int status)
{
    check_job *c = ctx;
    close(c->rootfd);
    if (status == 0) { /* else cancelled, or the session left: nothing of it is touched */
        int rc = journal_plan(run, c);
        if (rc)
            tt_run_fail(run, tt_err_wire(rc), tt_strerror(rc));
        else if (json_is_true(json_object_get(tt_run_data(run), "journaled")))
            tt_run_goto(run, "execute"); /* journaled: the first chunk moves */
    }
    json_decref(c->ops);
    json_decref(c->fresh);
    json_decref(c->problems);
    free(c);
}

/* Starts the check of the approved plan in the pool (rootfd is the job's
 * to close). 0, or a tt_err with rootfd closed. */
static int check_plan(tt_run *run, int rootfd)
{
    json_t *plan = json_object_get(tt_run_data(run), "plan");
    check_job *c = calloc(1, sizeof *c);
    if (!c) {
        close(rootfd);
        return TT_ENOMEM;
    }
    c->rootfd = rootfd;
    c->ops = json_pack("{s:O?, s:O?}", "folders", json_object_get(plan, "folders"), "moves",
                       json_object_get(plan, "moves"));
    int rc =
        c->ops ? tt_run_work(run, check_in_pool, check_after, c, "checking the plan") : TT_ENOMEM;
    if (rc) {
        close(rootfd);
        json_decref(c->ops);
        free(c);
    }
    return rc;
}

/* A copy of the stored entries the next chunk reads: from the first pending
 * one to the CHUNK-th pending one; the photos of the run and those settled
 * before the window counted on the way (a walk of the journal's entries
 * without copying them). NULL without memory. */
static json_t *chunk_window(exec_job *j, json_t *stored)
{
    size_t n = json_array_size(stored), i = j->base, pending_n = 0;
    for (; i < n && !pending(json_array_get(stored, i)); i++)
        j->done_before += is_move(json_array_get(stored, i));
    j->first = i;
    j->photos = j->done_before;
    json_t *window = json_array();
    for (; window && i < n; i++) {
        json_t *e = json_array_get(stored, i);
        j->photos += is_move(e);
        if (pending_n >= CHUNK)
            continue;
        pending_n += pending(e);
        if (json_array_append_new(window, json_deep_copy(e)) != 0) {
            json_decref(window);
            window = NULL;
        }
    }
    return window;
}

static int start_job(tt_run *run, int undo)
{
    exec_job *j = calloc(1, sizeof *j);
    if (!j)
        return TT_ENOMEM;
    j->undo = undo;
    char why[1200];
    int rc = tt_photos_library(run, &j->rootfd, why, sizeof why);
    if (rc) {
        free(j);
        tt_run_fail(run, tt_err_wire(rc), why);
        return 0;
    }
    json_t *data = tt_run_data(run), *journaled = json_object_get(data, "journaled");
    /* Sessions stored before "journaled" existed: a journal is the plan's. */
    if (!undo &&
        !(journaled ? json_is_true(journaled) : json_object_get(data, "journal") != NULL)) {
        rc = check_plan(run, j->rootfd); /* then back here once the journal is committed */
        free(j);
        return rc;
    }
    j->base = undo ? 0 : (size_t)json_integer_value(json_object_get(data, "journal_base"));
    /* Every intent (check_after), the previous chunk's "done" entries and a
     * conflict's free name are committed before the next chunk moves
     * anything. */
    rc = undo ? 0 : tt_registry_flush(tt_run_env(run)->reg);
    json_t *stored = json_object_get(data, "journal");
    j->journal = rc ? NULL : undo ? json_deep_copy(stored) : chunk_window(j, stored);
    rc = rc           ? rc
         : j->journal ? tt_run_work(run, exec_in_pool, exec_after, j,
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
