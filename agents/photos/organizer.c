/* The photo organiser's workflow, on the step engine.
 *
 *   analyse    scan the user's library in the thread pool (progress events)
 *   summarise  the model describes the library (streamed)
 *   questions  the model writes clarifying questions (structured output)
 *   ask        each question in turn; answered -> the next one
 *   propose    the model proposes folders and a destination for every photo
 *              (structured output, checked against the scan), shown as an
 *              approval with the folder tree and counts
 *   execute    approved: folders made and files moved with a journal
 *              (organizer_execute.c), so a crash neither loses nor repeats a move
 *   undo       "undo" puts back every file moved by the session's runs that is
 *              not back yet; what it cannot restore it names, and keeps for
 *              another "undo" (organizer_execute.c)
 *
 * The library is photos_root/<tenant>/<user>, or photos_root/<user> for a user
 * without a tenant (names.h); nothing outside it is read or written. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agents/engine/engine.h"
#include "agents/photos/organizer.h"
#include "agents/photos/names.h"
#include "agents/photos/path.h"
#include "agents/photos/scan.h"
#include "agents/photos/thumb.h"
#include "protocol/errors.h"
#include "protocol/names.h"

#define SUMMARY_MAX 4096
#define PHOTO_LINES_MAX (200u << 10) /* photo list sent to the model for the plan */
#define TREE_SAMPLE 20

const char *tt_photos_data_str(tt_run *run, const char *key)
{
    return json_string_value(json_object_get(tt_run_data(run), key));
}

void tt_photos_data_set(tt_run *run, const char *key, json_t *v)
{
    json_object_set_new(tt_run_data(run), key, v);
    tt_run_touch(run);
}

int tt_photos_library(tt_run *run, int *fd, char *why, size_t n)
{
    tt_session *s = tt_run_session(run);
    const tt_agent_env *env = tt_run_env(run);
    const char *tenant = tt_photos_tenant_folder(env, s->tenant);
    char path[4096];
    *fd = -1;
    int rc = tt_photos_library_of(env, s->tenant, s->user, path, sizeof path, why, n);
    if (rc)
        return rc;
    rc = tt_photos_open_root(path, fd);
    if (rc)
        snprintf(why, n,
                 "no photo library for you at %s (%s): the server looks for the folder "
                 "%s%s%s under --photos-root (%s). Create it and put your photos in it, or "
                 "restart the server with --photos-root set to the folder that holds it",
                 path,
                 rc == TT_ENOTFOUND ? "no such folder"
                                    : "it cannot be opened: check that it is a folder the "
                                      "server may read and write",
                 tenant ? tenant : "", tenant ? "/" : "", s->user, env->photos_root);
    return rc;
}

/* --- analyse ------------------------------------------------------------------ */

typedef struct scan_job {
    int rootfd;
    json_t *result;
    int rc;
} scan_job;

static void scan_in_pool(void *ctx, volatile int64_t *done, volatile int64_t *total,
                         volatile int *cancel)
{
    scan_job *j = ctx;
    tt_photos_scan_opts o;
    tt_photos_scan_opts_init(&o);
    o.done = done;
    o.total = total;
    o.cancel = cancel;
    j->rc = tt_photos_scan(j->rootfd, &o, &j->result);
}

static void scan_after(tt_run *run, void *ctx, int status)
{
    scan_job *j = ctx;
    close(j->rootfd);
    if (status == 0 && j->rc == 0) {
        char *summary = NULL;
        if (tt_photos_summary(j->result, SUMMARY_MAX, &summary) == 0) {
            tt_photos_data_set(run, "summary", json_string(summary));
            json_t *photos = json_object_get(j->result, "photos");
            tt_photos_data_set(run, "photos", json_incref(photos));
            tt_photos_data_set(run, "duplicates",
                               json_incref(json_object_get(j->result, "duplicates")));
            free(summary);
            if (json_array_size(photos) == 0)
                tt_run_finish(run, "Your photo library is empty: there is nothing to organise.");
            else
                tt_run_goto(run, "summarise");
        } else {
            tt_run_fail(run, "internal", "the scan could not be summarised");
        }
    } else if (status == 0) {
        tt_run_fail(run, "internal", "the photo library could not be scanned");
    }
    json_decref(j->result);
    free(j);
}

static int step_analyse(tt_run *run)
{
    scan_job *j = calloc(1, sizeof *j);
    if (!j)
        return TT_ENOMEM;
    char why[1200];
    int rc = tt_photos_library(run, &j->rootfd, why, sizeof why);
    if (rc) {
        free(j);
        tt_run_fail(run, tt_err_wire(rc), why);
        return 0;
    }
    json_object_del(tt_run_data(run), "plan");
    json_object_del(tt_run_data(run), "counts");
    rc = tt_photos_keep_undoable(run);
    if (rc) {
        close(j->rootfd);
        free(j);
        return rc;
    }
    json_object_del(tt_run_data(run), "criteria");
    json_object_del(tt_run_data(run), "revisions");
    rc = tt_run_work(run, scan_in_pool, scan_after, j, "scanning photos");
    if (rc) {
        close(j->rootfd);
        free(j);
    }
    return rc;
}

/* --- model steps -------------------------------------------------------------- */

static char *context_text(tt_run *run, int with_photos)
{
    json_t *ctx =
        json_pack("{s:s?, s:s?, s:O?, s:O?}", "request", tt_photos_data_str(run, "request"),
                  "library", tt_photos_data_str(run, "summary"), "answers",
                  json_object_get(tt_run_data(run), "criteria"), "requested_changes",
                  json_object_get(tt_run_data(run), "revisions"));
    if (with_photos) {
        json_t *list = json_array();
        size_t i, bytes = 0;
        json_t *p;
        json_array_foreach(json_object_get(tt_run_data(run), "photos"), i, p)
        {
            json_t *line = json_pack(
                "{s:O, s:O?, s:O?, s:O?, s:O?}", "path", json_object_get(p, "path"), "taken",
                json_object_get(p, "taken"), "make", json_object_get(p, "make"), "model",
                json_object_get(p, "model"), "sha256", json_object_get(p, "sha256"));
            bytes += 200;
            if (bytes > PHOTO_LINES_MAX) {
                json_decref(line);
                break;
            }
            json_array_append_new(list, line);
        }
        json_object_set_new(ctx, "photos", list);
    }
    char *text = json_dumps(ctx, JSON_INDENT(1));
    json_decref(ctx);
    return text;
}

static int model_step(tt_run *run, const char *prompt, json_t *schema, int stream, int with_photos,
                      tt_run_model_done done)
{
    const tt_prompt *p = tt_agent_prompt(tt_run_env(run), prompt);
    char *text = p ? context_text(run, with_photos) : NULL;
    if (!text)
        return p ? TT_ENOMEM : TT_ENOTFOUND;
    tt_run_model_opts o = {.system = p, .user = text, .schema = schema, .stream = stream};
    int rc = tt_run_model(run, &o, done);
    free(text);
    return rc;
}

static void summarise_done(tt_run *run, const char *text, json_t *parsed, const tt_llm_result *u)
{
    tt_run_goto(run, "questions");
}

static int step_summarise(tt_run *run)
{
    return model_step(run, "photos.summary", NULL, 1, 0, summarise_done);
}

static void questions_done(tt_run *run, const char *text, json_t *parsed, const tt_llm_result *u)
{
    tt_photos_data_set(run, "questions", json_incref(json_object_get(parsed, "questions")));
    tt_photos_data_set(run, "qi", json_integer(0));
    tt_photos_data_set(run, "criteria", json_array());
    tt_run_goto(run, "ask");
}

static int step_questions(tt_run *run)
{
    json_t *schema = json_pack(
        "{s:s, s:[s], s:b, s:{s:{s:s, s:i, s:i, s:{s:s, s:[s, s], s:b, s:{s:{s:s, s:i, s:i},"
        " s:{s:s, s:i, s:i, s:{s:s, s:i, s:i}}}}}}}",
        "type", "object", "required", "questions", "additionalProperties", 0, "properties",
        "questions", "type", "array", "minItems", 1, "maxItems", 3, "items", "type", "object",
        "required", "text", "choices", "additionalProperties", 0, "properties", "text", "type",
        "string", "minLength", 1, "maxLength", 300, "choices", "type", "array", "minItems", 2,
        "maxItems", 4, "items", "type", "string", "minLength", 1, "maxLength", 80);
    int rc = model_step(run, "photos.questions", schema, 0, 0, questions_done);
    json_decref(schema);
    return rc;
}

static int step_ask(tt_run *run)
{
    json_t *data = tt_run_data(run);
    size_t qi = (size_t)json_integer_value(json_object_get(data, "qi"));
    json_t *q = json_array_get(json_object_get(data, "questions"), qi);
    if (!q) {
        tt_run_goto(run, "propose");
        return 0;
    }
    tt_run_ask(run, json_string_value(json_object_get(q, "text")),
               json_deep_copy(json_object_get(q, "choices")), "answered");
    return 0;
}

static int step_answered(tt_run *run)
{
    json_t *data = tt_run_data(run);
    size_t qi = (size_t)json_integer_value(json_object_get(data, "qi"));
    json_t *q = json_array_get(json_object_get(data, "questions"), qi);
    json_array_append_new(json_object_get(data, "criteria"),
                          json_pack("{s:O?, s:O?}", "question", json_object_get(q, "text"),
                                    "answer", json_object_get(data, "last_answer")));
    tt_photos_data_set(run, "qi", json_integer((json_int_t)qi + 1));
    tt_run_goto(run, "ask");
    return 0;
}

/* --- propose ------------------------------------------------------------------- */

static void propose_done(tt_run *run, const char *text, json_t *parsed, const tt_llm_result *u)
{
    char why[256];
    json_t *tree = NULL;
    if (tt_photos_plan_check(tt_run_data(run), parsed, why, sizeof why, &tree) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "the model's plan is not usable, so nothing was moved: %s. Say \"retry\" to "
                 "ask the model for a new plan",
                 why);
        tt_run_fail(run, "model_output", msg);
        return;
    }
    json_t *moves = json_object_get(parsed, "moves");
    tt_photos_data_set(run, "plan", json_incref(parsed));
    tt_run_say(run, json_string_value(json_object_get(parsed, "explanation")));
    json_t *sample = json_array();
    for (size_t i = 0; i < json_array_size(moves) && i < TREE_SAMPLE; i++)
        json_array_append(sample, json_array_get(moves, i));
    json_t *plan = json_pack("{s:o, s:I, s:I, s:o, s:O}", "tree", tree, "folders",
                             (json_int_t)json_array_size(json_object_get(parsed, "folders")),
                             "moves", (json_int_t)json_array_size(moves), "sample", sample,
                             "explanation", json_object_get(parsed, "explanation"));
    char title[160];
    size_t nm = json_array_size(moves), nf = json_array_size(json_object_get(parsed, "folders"));
    snprintf(title, sizeof title,
             "Move %zu photo%s into %zu folder%s? Nothing moves until you approve; \"undo\" "
             "puts them back after",
             nm, nm == 1 ? "" : "s", nf, nf == 1 ? "" : "s");
    tt_run_approval(run, title, plan, "execute", "propose", NULL);
}

static int step_propose(tt_run *run)
{
    json_t *schema = json_pack(
        "{s:s, s:[s, s, s], s:b, s:{s:{s:s, s:i, s:i}, s:{s:s, s:i, s:{s:s, s:i, s:i}},"
        " s:{s:s, s:{s:s, s:[s, s], s:b, s:{s:{s:s, s:i, s:i}, s:{s:s, s:i, s:i}}}}}}",
        "type", "object", "required", "explanation", "folders", "moves", "additionalProperties", 0,
        "properties", "explanation", "type", "string", "minLength", 1, "maxLength", 2000, "folders",
        "type", "array", "maxItems", 10000, "items", "type", "string", "minLength", 1, "maxLength",
        512, "moves", "type", "array", "items", "type", "object", "required", "src", "dest",
        "additionalProperties", 0, "properties", "src", "type", "string", "minLength", 1,
        "maxLength", 1024, "dest", "type", "string", "minLength", 1, "maxLength", 1024);
    int rc = model_step(run, "photos.plan", schema, 0, 1, propose_done);
    json_decref(schema);
    return rc;
}

static int photos_validate(const json_t *input, char *err, size_t n)
{
    if (json_object_size(input) == 0)
        return 0;
    snprintf(err, n,
             "the photo organiser takes no input: it works on your library under "
             "--photos-root; say what you want, e.g. \"sort my photos by year\"");
    return TT_EINVAL;
}

/* "undo": the moves not undone yet are put back, or it says there are none
 * (never a new run). "retry" after a run failed at a model step (the model's
 * answer unusable, or the call failed): that step again, the run as it was. */
static const char *route_say(tt_run *run, const char *text)
{
    if (strcasecmp(text, "undo") == 0)
        return tt_photos_undoable(run) ? "undo" : "nothing_to_undo";
    static const char *const model_steps[] = {"summarise", "questions", "propose"};
    const char *status = tt_agent_mode(tt_run_session(run), "status");
    const char *step = tt_run_step(run);
    if (strcasecmp(text, "retry") != 0 || !status || strcmp(status, "failed") != 0 || !step)
        return NULL;
    for (size_t i = 0; i < sizeof model_steps / sizeof *model_steps; i++) {
        if (strcmp(step, model_steps[i]) == 0)
            return model_steps[i]; /* not step: it lives in the state the goto replaces */
    }
    return NULL;
}

static int step_nothing_to_undo(tt_run *run)
{
    tt_run_finish(run, "There is nothing to undo: every photo this session moved is back where "
                       "it was. Say what you want to organise to start a new run.");
    return 0;
}

static const tt_step_def steps[] = {
    {"analyse", step_analyse},
    {"summarise", step_summarise},
    {"questions", step_questions},
    {"ask", step_ask},
    {"answered", step_answered},
    {"propose", step_propose},
    {"execute", tt_photos_step_execute},
    {"undo", tt_photos_step_undo},
    {"nothing_to_undo", step_nothing_to_undo},
};

static const tt_engine_def photo_def = {
    .steps = steps,
    .n_steps = sizeof steps / sizeof steps[0],
    .first = "analyse",
    .route_say = route_say,
    .retry_word = "retry",
};

const tt_agent_ops tt_agent_photo_organizer = TT_ENGINE_AGENT(
    "photo-organizer",
    "Analyses your photo library, asks how you want it organised, proposes a folder "
    "structure for approval, then moves the files (and can undo it).",
    1, &photo_def, photos_validate);
