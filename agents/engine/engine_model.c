/* Model steps (see engine.h, tt_run_model): one call, streamed or not,
 * structured output validated strictly with one self-correction turn, user
 * data delimited in the user turn, obvious injection attempts flagged. */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agents/engine/engine_private.h"
#include "agents/schema/schema.h"
#include "protocol/buf.h"
#include "protocol/errors.h"

#define SCHEMA_ERR_MAX 300
#define TT_RUN_MODEL_REPLY_MAX TT_SESSION_STREAMING_MAX /* bytes of one model step's reply */

typedef struct tt_run_model model_step;
struct tt_run_model {
    tt_run *run;
    tt_llm_call *call;
    tt_run_model_done done;
    json_t *schema;
    int stream;
    int64_t max_tokens; /* the step's output cap; 0: the route's */
    int corrected;      /* the self-correction turn was used */
    char *system, *user, *route, *tag;
    char *previous; /* the invalid reply, for the correction turn */
    char correction[SCHEMA_ERR_MAX + 200];
    tt_buf text;  /* the reply so far, up to TT_RUN_MODEL_REPLY_MAX */
    int too_long; /* the reply went past its cap: the call was stopped */
    int started;
    char message_id[TT_MESSAGE_ID_MAX];
    int cancelled;
};

static const char *const injection_markers[] = {
    "ignore previous instructions",
    "ignore all previous",
    "disregard the above",
    "ignore the above",
    "you are now",
    "system prompt",
    "<|im_start|>",
    "<|system|>",
    "### instruction",
    "\nsystem:",
    "[inst]",
};

/* Flag (log, never block) user data that looks like an attempt to steer the
 * model: the data is still sent, delimited, as data. */
static void flag_injection(tt_run *run, const char *text)
{
    for (size_t i = 0; i < sizeof injection_markers / sizeof *injection_markers; i++) {
        if (strcasestr(text, injection_markers[i])) {
            tt_llm_service_log(run->env->llm,
                               json_pack("{s:s, s:s, s:s, s:s}", "msg",
                                         "possible prompt injection in user data", "session",
                                         run->s->id, "step", tt_run_step(run), "marker",
                                         injection_markers[i]));
            return;
        }
    }
}

static void model_free(model_step *m)
{
    json_decref(m->schema);
    free(m->system);
    free(m->user);
    free(m->route);
    free(m->tag);
    free(m->previous);
    tt_buf_free(&m->text);
    free(m);
}

void tt_run_model_withdraw(tt_run *run, const char *reason)
{
    const char *mid = tt_agent_state_str(run->s, "message_id");
    if (!mid)
        return;
    tt_session_message_discard(run->s, mid, reason);
    tt_agent_state_set(run->s, "message_id", NULL);
}

void tt_run_model_cancel(tt_run *run)
{
    model_step *m = run->model;
    if (!m)
        return;
    m->cancelled = 1;
    if (m->call)
        tt_llm_call_cancel(m->call); /* on_done frees m */
}

static void add_usage(tt_run *run, const tt_llm_result *r)
{
    json_t *data = tt_run_data(run);
    json_t *u = json_object_get(data, "usage");
    if (!json_is_object(u)) {
        u = json_pack("{s:I, s:I, s:f}", "prompt_tokens", (json_int_t)0, "completion_tokens",
                      (json_int_t)0, "cost_usd", 0.0);
        json_object_set_new(data, "usage", u);
    }
    json_int_t p = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t c = json_integer_value(json_object_get(u, "completion_tokens"));
    double cost = json_number_value(json_object_get(u, "cost_usd"));
    json_object_set_new(u, "prompt_tokens",
                        json_integer(p + (r->prompt_tokens > 0 ? r->prompt_tokens : 0)));
    json_object_set_new(u, "completion_tokens",
                        json_integer(c + (r->completion_tokens > 0 ? r->completion_tokens : 0)));
    json_object_set_new(u, "cost_usd", json_real(cost + r->cost_usd));
    tt_run_touch(run);
}

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    model_step *m = ud;
    if (ev->kind != TT_LLM_EV_TEXT || ev->text_len == 0 || m->run->released)
        return;
    if (tt_buf_append(&m->text, ev->text, ev->text_len) != 0) {
        m->too_long = 1; /* on_done fails the step */
        tt_llm_call_cancel(c);
        return;
    }
    if (!m->stream)
        return;
    tt_session *s = m->run->s;
    if (!m->started) {
        if (tt_session_message_start(s, "assistant", m->message_id, sizeof m->message_id) != 0)
            return;
        m->started = 1;
        tt_agent_state_set(s, "message_id", json_string(m->message_id));
    }
    tt_session_message_delta(s, m->message_id, ev->text, ev->text_len);
}

static void on_restart(tt_llm_call *c, const tt_llm_error *why, void *ud)
{
    model_step *m = ud;
    if (m->started && !m->run->released)
        tt_run_model_withdraw(m->run, "retry");
    m->started = 0;
    tt_buf_reset(&m->text);
}

static int start_call(model_step *m);

/* The reply as JSON: the whole text, or inside a ``` fence. */
static json_t *parse_reply(const char *text, char *err, size_t n)
{
    const char *start = text, *end = text + strlen(text);
    const char *fence = strstr(text, "```");
    if (fence) {
        start = strchr(fence, '\n');
        const char *close = start ? strstr(start, "```") : NULL;
        if (start && close)
            end = close;
        else
            start = text;
    }
    json_error_t jerr;
    json_t *v = json_loadb(start, (size_t)(end - start), JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        snprintf(err, n, "the reply is not valid JSON: %s", jerr.text);
    return v;
}

static void on_done(tt_llm_call *c, const tt_llm_result *r, void *ud)
{
    model_step *m = ud;
    tt_run *run = m->run;
    m->call = NULL;
    if (run->released || m->cancelled) {
        if (run->model == m)
            run->model = NULL;
        model_free(m);
        return;
    }
    add_usage(run, r);
    if (r->error.cls != TT_LLM_ERR_NONE) {
        run->model = NULL;
        if (m->started)
            tt_run_model_withdraw(run, "error");
        char msg[400];
        snprintf(msg, sizeof msg, "the model call failed (%s): %s", tt_llm_error_name(r->error.cls),
                 r->error.message);
        if (m->too_long)
            snprintf(msg, sizeof msg, "the model's reply went past %u bytes: the call was stopped",
                     TT_RUN_MODEL_REPLY_MAX);
        const char *code = m->too_long                          ? "too_large"
                           : r->error.cls == TT_LLM_ERR_TIMEOUT ? "timeout"
                                                                : "unavailable";
        model_free(m);
        tt_run_fail(run, code, msg);
        return;
    }
    if (m->started) {
        tt_session_message_end(run->s, m->message_id,
                               json_pack("{s:I, s:I, s:f, s:s, s:b}", "prompt_tokens",
                                         (json_int_t)r->prompt_tokens, "completion_tokens",
                                         (json_int_t)r->completion_tokens, "cost_usd", r->cost_usd,
                                         "model", r->model, "cached", r->cached));
        tt_agent_state_set(run->s, "message_id", NULL);
        m->started = 0;
    }
    json_t *parsed = NULL;
    if (m->schema) {
        char err[SCHEMA_ERR_MAX];
        parsed = parse_reply(tt_buf_str(&m->text), err, sizeof err);
        if (parsed && tt_schema_validate(m->schema, parsed, err, sizeof err) != 0) {
            json_decref(parsed);
            parsed = NULL;
        }
        if (!parsed && !m->corrected) {
            /* One self-correction turn with the validation error. */
            m->corrected = 1;
            free(m->previous);
            m->previous = strdup(tt_buf_str(&m->text));
            snprintf(m->correction, sizeof m->correction,
                     "Your reply did not match the required JSON schema: %s. Reply again with "
                     "only the JSON document, matching the schema exactly.",
                     err);
            tt_buf_reset(&m->text);
            if (start_call(m) == 0)
                return;
        }
        if (!parsed) {
            run->model = NULL;
            char msg[SCHEMA_ERR_MAX + 200];
            const char *word = run->def->retry_word;
            snprintf(msg, sizeof msg,
                     "the model's structured output was invalid twice (%s): not the JSON this "
                     "step asks for. %s%s%sUse a model that supports JSON output",
                     err, word ? "Say \"" : "", word ? word : "",
                     word ? "\" to ask again, once the model is fixed. " : "");
            model_free(m);
            tt_run_fail(run, "model_output", msg);
            return;
        }
    }
    run->model = NULL;
    tt_run_model_done done = m->done;
    char *text = tt_buf_take(&m->text, NULL);
    model_free(m);
    done(run, text ? text : "", parsed, r);
    free(text);
    json_decref(parsed);
}

static const tt_llm_call_hooks hooks = {on_event, on_restart, on_done};

static int start_call(model_step *m)
{
    tt_llm_message msgs[4];
    size_t n = 0;
    msgs[n++] = (tt_llm_message){.role = "system", .content = m->system};
    msgs[n++] = (tt_llm_message){.role = "user", .content = m->user};
    if (m->corrected) {
        msgs[n++] = (tt_llm_message){.role = "assistant", .content = m->previous};
        msgs[n++] = (tt_llm_message){.role = "user", .content = m->correction};
    }
    tt_llm_attribution attr;
    tt_agent_attribution(tt_run_session(m->run), NULL, &attr);
    tt_llm_request req = {.messages = msgs,
                          .n_messages = n,
                          .temperature = -1,
                          .stream = 1,
                          .max_tokens = m->max_tokens,
                          .response_schema = m->schema,
                          .tag = m->tag,
                          .attr = &attr};
    return tt_llm_call_start(m->run->env->llm, m->route, &req, &hooks, m, &m->call);
}

int tt_run_model(tt_run *run, const tt_run_model_opts *opts, tt_run_model_done done)
{
    if (run->model)
        return TT_ECONFLICT;
    if (!run->env->llm || !tt_llm_service_configured(run->env->llm))
        return TT_EFULL;
    model_step *m = calloc(1, sizeof *m);
    if (!m)
        return TT_ENOMEM;
    m->run = run;
    m->done = done;
    tt_buf_init(&m->text, TT_RUN_MODEL_REPLY_MAX);
    m->stream = opts->stream;
    m->max_tokens = opts->max_tokens > 0 ? opts->max_tokens : opts->system->max_tokens;
    m->schema = opts->schema ? json_incref(opts->schema) : NULL;
    m->system = tt_prompt_render(opts->system, opts->vars);
    /* User data goes in the user turn only, delimited, never into the system prompt. */
    const char *data = opts->user ? opts->user : "";
    m->user = tt_prompt_wrap_data(TT_DATA_TAG_USER, data, strlen(data));
    m->route = opts->route ? strdup(opts->route) : NULL;
    m->tag = strdup(opts->system->tag);
    if (!m->system || !m->user || !m->tag || (opts->route && !m->route)) {
        model_free(m);
        return TT_ENOMEM;
    }
    flag_injection(run, data);
    run->model = m;
    int rc = start_call(m);
    if (rc) {
        run->model = NULL;
        model_free(m);
    }
    return rc;
}
