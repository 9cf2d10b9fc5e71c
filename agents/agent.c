/* The agent registry and the checks every agent shares (see agent.h). */
#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <openssl/sha.h>

#include "agents/agent.h"
#include "agents/front.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "protocol/utf8.h"

static const tt_agent_ops *const builtin[] = {&tt_agent_echo, &tt_agent_chat, &tt_agent_doc_analyst,
                                              &tt_agent_photo_organizer};
#define N_BUILTIN (sizeof builtin / sizeof builtin[0])

uv_timer_t *tt_agent_timer_new(uv_loop_t *loop, void *data)
{
    uv_timer_t *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    (void)uv_timer_init(loop, t); /* cannot fail: it only fills the struct */
    t->data = data;
    return t;
}

static void free_closed_timer(uv_handle_t *h)
{
    free(h);
}

void tt_agent_timer_close(uv_timer_t *t)
{
    if (!t)
        return;
    (void)uv_timer_stop(t); /* cannot fail */
    t->data = NULL;
    uv_close((uv_handle_t *)t, free_closed_timer);
}

void *tt_agent_rt_new(tt_session *s, const tt_agent_env *env, size_t size, uv_timer_t **timer)
{
    void *rt = calloc(1, size);
    *timer = rt ? tt_agent_timer_new(env->loop, rt) : NULL;
    if (!*timer) {
        free(rt);
        return NULL;
    }
    s->agent_rt = rt;
    return rt;
}

const tt_agent_ops *tt_agent_find(const tt_agent_env *env, const char *name)
{
    for (size_t i = 0; name && i < N_BUILTIN; i++) {
        if (strcmp(builtin[i]->name, name) == 0)
            return builtin[i];
    }
    for (size_t i = 0; name && env && i < env->n_assistants; i++) {
        if (strcmp(env->assistant_ops[i].name, name) == 0)
            return &env->assistant_ops[i];
    }
    return NULL;
}

const tt_prompt *tt_agent_prompt(const tt_agent_env *env, const char *name)
{
    for (size_t i = 0; i < env->n_prompts; i++) {
        if (strcmp(env->prompts[i].name, name) == 0)
            return &env->prompts[i];
    }
    return NULL;
}

int tt_agent_load_prompts(tt_agent_env *env, const char *dir, char *err, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, n, "cannot open the prompts directory %s", dir);
        return TT_ENOTFOUND;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".md") != 0)
            continue;
        if (env->n_prompts == TT_AGENT_PROMPTS_MAX) {
            snprintf(err, n, "more than %d prompt templates in %s", TT_AGENT_PROMPTS_MAX, dir);
            rc = TT_EFULL;
        } else if ((rc = tt_prompt_load(dir, e->d_name, &env->prompts[env->n_prompts])) != 0) {
            snprintf(err, n,
                     "prompt %s/%s: %s (the first line must be <!-- prompt: NAME "
                     "version: N --> or <!-- prompt: NAME version: N max_tokens: M -->, M "
                     "from 1 to %d)",
                     dir, e->d_name, tt_strerror(rc), TT_PROMPT_MAX_TOKENS_MAX);
        } else {
            env->n_prompts++;
        }
    }
    closedir(d);
    return rc;
}

void tt_agent_free_prompts(tt_agent_env *env)
{
    for (size_t i = 0; i < env->n_prompts; i++)
        tt_prompt_free(&env->prompts[i]);
    env->n_prompts = 0;
}

json_t *tt_agent_names(const tt_agent_env *env)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < N_BUILTIN; i++)
        json_array_append_new(arr, json_string(builtin[i]->name));
    for (size_t i = 0; arr && env && i < env->n_assistants; i++)
        json_array_append_new(arr, json_string(env->assistant_ops[i].name));
    return arr;
}

json_t *tt_agent_catalog(const tt_agent_env *env)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < N_BUILTIN + (env ? env->n_assistants : 0); i++) {
        const tt_agent_ops *o = i < N_BUILTIN ? builtin[i] : &env->assistant_ops[i - N_BUILTIN];
        json_t *info = json_pack("{s:s, s:s, s:b, s:b}", "name", o->name, "description",
                                 o->description ? o->description : "", "needs_model",
                                 o->needs_model, "rewind", o->rewind != NULL);
        const tt_assistant_def *d = i < N_BUILTIN ? NULL : &env->assistants[i - N_BUILTIN];
        size_t t;
        json_t *tool;
        json_array_foreach(d ? d->tools : NULL, t, tool)
        { /* an assistant over documents: the page offers its collection */
            if (info && json_is_string(tool) && strcmp(json_string_value(tool), "retrieve") == 0)
                json_object_set_new(info, "collection", json_string(d->collection));
        }
        json_array_append_new(arr, info);
    }
    return arr;
}

/* "semantic_cache": true, false, or {"threshold", "multi_turn", "tools"}. */
static int load_semantic(json_t *v, tt_llm_semantic *out)
{
    double threshold = 0;
    int multi = 0, tools = 0;
    *out = (tt_llm_semantic){.enabled = json_is_true(v)};
    if (json_is_boolean(v))
        return 0;
    if (!json_is_object(v) || json_unpack(v, "{s?F, s?b, s?b !}", "threshold", &threshold,
                                          "multi_turn", &multi, "tools", &tools) != 0)
        return TT_EINVAL;
    if (json_object_get(v, "threshold") && (threshold < 0.5 || threshold > 1))
        return TT_EINVAL;
    *out = (tt_llm_semantic){
        .enabled = 1, .threshold = threshold, .multi_turn = multi, .tools = tools};
    return 0;
}

static int load_assistant(tt_agent_env *env, json_t *def, tt_assistant_def *a, char *err, size_t n)
{
    const char *name, *desc = "", *prompt = "chat.system", *route = "", *feature = "";
    const char *coll = "default";
    json_t *tools = NULL, *sem = NULL;
    json_int_t rounds = 3, top_k = 5;
    double floor = 0.7;
    int cache = 0;
    json_error_t jerr;
    if (json_unpack_ex(
            def, &jerr, JSON_STRICT, "{s:s, s?s, s?s, s?s, s?o, s?I, s?s, s?b, s?s, s?I, s?F, s?o}",
            "name", &name, "description", &desc, "prompt", &prompt, "route", &route, "tools",
            &tools, "max_tool_rounds", &rounds, "feature", &feature, "cache", &cache, "collection",
            &coll, "top_k", &top_k, "min_similarity", &floor, "semantic_cache", &sem) != 0) {
        snprintf(err, n, "agents: %s", jerr.text);
        return TT_EINVAL;
    }
    if (strlen(name) == 0 || strlen(name) >= sizeof a->name ||
        strlen(desc) >= sizeof a->description || strlen(feature) >= sizeof a->feature ||
        tt_name_chars_check(feature, strlen(feature), NULL) != 0 || tt_agent_find(env, name) ||
        rounds < 0 || rounds > 10 || tt_name_check(coll, sizeof a->collection - 1, NULL) != 0 ||
        top_k < 1 || top_k > 20 || floor < 0 || floor > 1) {
        snprintf(err, n,
                 "agent %.*s: a new name of 1-63 bytes, a description under 256 bytes, "
                 "a feature of 0-63 plain characters, max_tool_rounds 0-10, a collection of "
                 "1-64 plain characters, top_k 1-20, min_similarity 0-1",
                 tt_utf8_cut(name, 64), name);
        return TT_EINVAL;
    }
    const char *why;
    if (tt_name_check(name, sizeof a->name - 1, &why) != 0 ||
        tt_name_chars_check(desc, strlen(desc), &why) != 0) {
        char shown[96];
        snprintf(err, n,
                 "agent %s: its name and description must be UTF-8 without control, bidi "
                 "or invisible characters: %s",
                 tt_name_display(name, shown, sizeof shown), why);
        return TT_EINVAL;
    }
    if (sem && load_semantic(sem, &a->semantic) != 0) {
        snprintf(err, n,
                 "agent %.*s: semantic_cache must be true, false or {\"threshold\": 0.5-1, "
                 "\"multi_turn\": bool, \"tools\": bool}",
                 tt_utf8_cut(name, 64), name);
        return TT_EINVAL;
    }
    if (!tt_agent_prompt(env, prompt)) {
        snprintf(err, n, "agent %.*s: no prompt template named %.*s", tt_utf8_cut(name, 64), name,
                 tt_utf8_cut(prompt, 64), prompt);
        return TT_EINVAL;
    }
    if (*route && !tt_llm_service_has_route(env->llm, route)) {
        snprintf(err, n, "agent %.*s: no model route named %.*s", tt_utf8_cut(name, 64), name,
                 tt_utf8_cut(route, 64), route);
        return TT_EINVAL;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        if (!tt_tools_find(&env->tools, json_string_value(t))) {
            const char *tool = json_string_value(t) ? json_string_value(t) : "(not a string)";
            snprintf(err, n, "agent %.*s: no tool named %.*s", tt_utf8_cut(name, 64), name,
                     tt_utf8_cut(tool, 64), tool);
            return TT_EINVAL;
        }
    }
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->description, sizeof a->description, "%s", desc);
    snprintf(a->prompt, sizeof a->prompt, "%s", prompt);
    snprintf(a->route, sizeof a->route, "%s", route);
    a->tools = tools ? json_incref(tools) : json_array();
    a->max_tool_rounds = (int)rounds;
    snprintf(a->feature, sizeof a->feature, "%s", feature);
    a->cache = cache;
    snprintf(a->collection, sizeof a->collection, "%s", coll);
    a->top_k = (int)top_k;
    a->min_similarity = floor;
    return 0;
}

void tt_agent_attribution(const tt_session *s, const char *feature_default, tt_llm_attribution *out)
{
    const char *f = json_string_value(json_object_get(s->input, "feature"));
    if (!f || !*f)
        f = feature_default && *feature_default ? feature_default : s->agent;
    *out = (tt_llm_attribution){0};
    tt_utf8_copy(out->tenant, sizeof out->tenant, s->tenant);
    tt_utf8_copy(out->user, sizeof out->user, s->user);
    tt_utf8_copy(out->key_id, sizeof out->key_id, s->key_id);
    tt_utf8_copy(out->agent, sizeof out->agent, s->agent);
    tt_utf8_copy(out->session, sizeof out->session, s->id);
    tt_utf8_copy(out->feature, sizeof out->feature, f);
    tt_utf8_copy(out->ip, sizeof out->ip, s->client_ip);
}

int tt_agent_load_assistants(tt_agent_env *env, const char *file, char *err, size_t n)
{
    if (!file || !*file)
        return 0;
    json_error_t jerr;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = json_object_get(root, "agents");
    int rc = 0;
    if (!json_is_array(list) || json_array_size(list) > TT_ASSISTANTS_MAX) {
        snprintf(err, n, "%s: must hold {\"agents\": [...]} with at most %d agents (%s)", file,
                 TT_ASSISTANTS_MAX, jerr.text);
        rc = TT_EINVAL;
    }
    env->assistant_ops = calloc(TT_ASSISTANTS_MAX, sizeof *env->assistant_ops);
    if (!env->assistant_ops)
        rc = TT_ENOMEM;
    size_t i;
    json_t *def;
    json_array_foreach(list, i, def)
    {
        if (rc)
            break;
        rc = load_assistant(env, def, &env->assistants[env->n_assistants], err, n);
        if (rc == 0) {
            tt_agent_chat_ops(&env->assistants[env->n_assistants],
                              &env->assistant_ops[env->n_assistants]);
            env->n_assistants++;
        }
    }
    json_decref(root);
    return rc;
}

void tt_agent_free_assistants(tt_agent_env *env)
{
    for (size_t i = 0; i < env->n_assistants; i++)
        json_decref(env->assistants[i].tools);
    free(env->assistant_ops);
    env->assistant_ops = NULL;
    env->n_assistants = 0;
}

static const tt_agent_ops *ops_of(const tt_session *s)
{
    return s->agent_ops;
}

int tt_agent_bind(tt_session *s, const tt_agent_env *env, int resumed)
{
    const tt_agent_ops *ops = tt_agent_find(env, s->agent);
    if (!ops)
        return TT_ENOTFOUND;
    s->agent_ops = ops;
    int rc = resumed ? ops->resume(s, env) : ops->start(s, env);
    return rc ? rc : tt_front_bind(s, env);
}

void tt_agent_unbind(tt_session *s)
{
    tt_front_release(s);
    if (s->agent_ops)
        ops_of(s)->release(s);
    s->agent_ops = NULL;
}

void tt_agent_pause(tt_session *s, int paused)
{
    if (s->agent_ops && s->agent_rt && ops_of(s)->pause)
        ops_of(s)->pause(s, paused);
}

static int refuse_closed(const tt_session *s, char *err, size_t n)
{
    if (s->state != TT_STATE_CLOSED)
        return 0;
    snprintf(err, n, "session %s is closed", s->id);
    return TT_ECONFLICT;
}

/* While a question or an approval is open, only its own answer moves the
 * session on (want: "question_id" for answer, "approval_id" for decide, NULL
 * for say): anything else is conflict, naming what is open and how to
 * answer it. */
static int refuse_pending(const tt_session *s, const char *want, char *err, size_t n)
{
    const char *qid = json_string_value(json_object_get(s->pending, "question_id"));
    const char *aid = json_string_value(json_object_get(s->pending, "approval_id"));
    if ((!qid && !aid) || (want && strcmp(want, qid ? "question_id" : "approval_id") == 0))
        return 0;
    if (qid)
        snprintf(err, n,
                 "question %.64s is open: answer it (answer with question_id %.64s) or cancel", qid,
                 qid);
    else
        snprintf(err, n,
                 "approval %.64s is open: decide it (decide with approval_id %.64s) or cancel", aid,
                 aid);
    return TT_ECONFLICT;
}

void tt_agent_plan_fingerprint(const json_t *plan, char out[TT_AGENT_FINGERPRINT_MAX])
{
    out[0] = '\0';
    char *text = json_dumps(plan, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text)
        return;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), md);
    free(text);
    int w = snprintf(out, TT_AGENT_FINGERPRINT_MAX, "sha256:");
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++)
        w += snprintf(out + w, TT_AGENT_FINGERPRINT_MAX - (size_t)w, "%02x", md[i]);
}

void tt_agent_ask_approval_ttl(tt_session *s, json_t *body, int64_t ttl_ms)
{
    char fp[TT_AGENT_FINGERPRINT_MAX];
    tt_agent_plan_fingerprint(json_object_get(body, "plan"), fp);
    json_object_set_new(body, "fingerprint", json_string(fp));
    if (ttl_ms > 0)
        tt_front_deadline(s, body, ttl_ms);
    tt_session_set_pending(s, json_deep_copy(body));
    tt_session_emit(s, "approval", body);
    if (ttl_ms > 0)
        tt_front_arm_expiry(s);
}

void tt_agent_ask_approval(tt_session *s, json_t *body)
{
    tt_agent_ask_approval_ttl(s, body, 0);
}

/* The message_id of the user message that started the turn in flight ("" when unknown). */
static const char *active_turn(tt_session *s)
{
    json_t *t = tt_session_transcript(s);
    for (size_t i = json_array_size(t); i-- > 0;) {
        json_t *e = json_array_get(t, i);
        const char *role = json_string_value(json_object_get(e, "role"));
        const char *mid = json_string_value(json_object_get(e, "message_id"));
        if (role && strcmp(role, "user") == 0)
            return mid ? mid : "";
    }
    return "";
}

/* A say while a turn runs: the session's on_busy policy (session.open)
 * interrupts it (cancel, then the say), or refuses the say naming the turn
 * ("queue" is taken before: tt_agent_say_q). */
static int refuse_busy(tt_session *s, char *err, size_t n)
{
    if (s->state != TT_STATE_RUNNING)
        return 0;
    if (strcmp(s->on_busy, "interrupt") == 0) {
        int cancelled = 0;
        ops_of(s)->cancel(s, &cancelled);
        if (s->state != TT_STATE_RUNNING)
            return 0;
    }
    snprintf(err, n,
             "busy: the turn of user message %.64s is running; wait for it, cancel it, or open "
             "the session with on_busy interrupt",
             active_turn(s));
    return TT_ECONFLICT;
}

const char *tt_agent_state_str(const tt_session *s, const char *key)
{
    return json_string_value(json_object_get(s->agent_state, key));
}

void tt_agent_state_set(tt_session *s, const char *key, json_t *v)
{
    json_object_set_new(s->agent_state, key, v ? v : json_null());
    tt_session_touch(s);
}

const char *tt_agent_mode(const tt_session *s, const char *key)
{
    return tt_agent_state_str(s, key);
}

void tt_agent_set_mode(const tt_agent_env *env, tt_session *s, const char *key, const char *to)
{
    const char *from = tt_agent_mode(s, key);
    if (from && strcmp(from, to) == 0)
        return;
    if (env && env->log)
        env->log("agent mode",
                 json_pack("{s:s, s:s, s:s, s:s?, s:s}", "session", s->id, "agent", s->agent, "key",
                           key, "from", from, "to", to),
                 env->log_ud);
    tt_agent_state_set(s, key, json_string(to));
}

void tt_agent_accept_turn(tt_session *s, const char *text, const char *client_msg_id)
{
    if (client_msg_id)
        tt_session_remember_msg_id(s, client_msg_id);
    tt_session_user_message(s, text, client_msg_id);
}

int tt_agent_say_q(tt_session *s, const char *text, const char *client_msg_id, int *duplicate,
                   json_t **queued, char *err, size_t n)
{
    *queued = NULL;
    *duplicate = client_msg_id && tt_session_seen_msg_id(s, client_msg_id);
    if (*duplicate)
        return 0;
    int rc = refuse_closed(s, err, n);
    if (rc == 0)
        rc = refuse_pending(s, NULL, err, n);
    if (rc == 0 && tt_front_queues(s))
        return tt_front_enqueue(s, text, client_msg_id, queued, err, n);
    if (rc == 0)
        rc = refuse_busy(s, err, n);
    return rc ? rc : ops_of(s)->say(s, text, client_msg_id, err, n);
}

int tt_agent_say(tt_session *s, const char *text, const char *client_msg_id, int *duplicate,
                 char *err, size_t n)
{
    json_t *queued = NULL;
    int rc = tt_agent_say_q(s, text, client_msg_id, duplicate, &queued, err, n);
    json_decref(queued);
    return rc;
}

static const char *entry_str(tt_session *s, long i, const char *key)
{
    json_t *t = tt_session_transcript(s);
    return json_string_value(json_object_get(json_array_get(t, (size_t)i), key));
}

int tt_agent_rewind_to(tt_session *s, const char *message_id, int edit, const char **said,
                       char *err, size_t n)
{
    long at = tt_session_transcript_find(s, message_id);
    if (at < 0) {
        snprintf(err, n, "message %.*s is not in the conversation (superseded, or too old)",
                 tt_utf8_cut(message_id, 64), message_id);
        return TT_ENOTFOUND;
    }
    const char *role = entry_str(s, at, "role");
    const char *want = edit ? "user" : "assistant";
    if (!role || strcmp(role, want) != 0) {
        snprintf(err, n, "%s takes %s message, not %s one", edit ? "an edit" : "regenerate",
                 edit ? "a user" : "an assistant", role ? role : "an unknown");
        return TT_EINVAL;
    }
    long cut = at;
    if (!edit) {
        const char *r;
        while (cut > 0 && (!(r = entry_str(s, cut - 1, "role")) || strcmp(r, "user") != 0))
            cut--;
        if (cut == 0) {
            snprintf(err, n, "no user turn before that message to answer again");
            return TT_ECONFLICT;
        }
        if (said)
            *said = entry_str(s, cut - 1, "text");
    }
    int rc = tt_session_rewind(s, entry_str(s, cut, "message_id"), edit ? "edit" : "regenerate");
    if (rc)
        snprintf(err, n, "the conversation could not be rewound");
    return rc;
}

int tt_agent_rewind(tt_session *s, const char *message_id, const char *text,
                    const char *client_msg_id, int *duplicate, char *err, size_t n)
{
    *duplicate = text && client_msg_id && tt_session_seen_msg_id(s, client_msg_id);
    if (*duplicate)
        return 0;
    int rc = refuse_closed(s, err, n);
    if (rc == 0 && !ops_of(s)->rewind) {
        snprintf(err, n, "the %s agent cannot regenerate or edit its turns", s->agent);
        rc = TT_ECONFLICT;
    }
    return rc ? rc : ops_of(s)->rewind(s, message_id, text, client_msg_id, err, n);
}

/* What the user chose, once the agent took it, so every view (another tab,
 * a reload) shows it on the card: question.answered {question_id, value},
 * approval.decided {approval_id, decision, comment?}. They follow the events
 * the answer caused at once (a card is found by its id, not by position). */
int tt_agent_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                    size_t n)
{
    int rc = refuse_closed(s, err, n);
    if (rc == 0)
        rc = refuse_pending(s, "question_id", err, n);
    if (rc == 0)
        rc = ops_of(s)->answer(s, question_id, value, err, n);
    if (rc == 0)
        tt_session_emit(s, "question.answered",
                        json_pack("{s:s, s:O}", "question_id", question_id, "value", value));
    return rc;
}

/* Edits go with approve, on an approval that lists them in `editable`:
 * TT_EINVAL or TT_ECONFLICT with a message naming what is wrong. */
static int refuse_edits(const tt_session *s, const char *approval_id, tt_decision d,
                        const json_t *edits, char *err, size_t n)
{
    json_t *editable = json_object_get(s->pending, "editable");
    const char *key;
    json_t *v, *e;
    size_t i;
    if (d != TT_DECIDE_APPROVE || json_object_size(edits) == 0) {
        snprintf(err, n, "field 'edits' goes with decision approve and must not be empty");
        return TT_EINVAL;
    }
    if (json_array_size(editable) == 0 || !ops_of(s)->approve_edited) {
        snprintf(err, n, "approval %.64s takes no edits: approve or reject it as shown",
                 approval_id);
        return TT_ECONFLICT;
    }
    json_object_foreach((json_t *)edits, key, v)
    {
        int ok = 0;
        json_array_foreach(editable, i, e) ok |= strcmp(json_string_value(e), key) == 0;
        if (!ok) {
            snprintf(err, n, "field 'edits': '%.*s' is not editable in approval %.64s",
                     tt_utf8_cut(key, 64), key, approval_id);
            return TT_EINVAL;
        }
    }
    return 0;
}

int tt_agent_decide_edits(tt_session *s, const char *approval_id, tt_decision d,
                          const char *comment, const json_t *edits, char *err, size_t n)
{
    int rc = refuse_closed(s, err, n);
    if (rc == 0)
        rc = tt_front_refuse_expired(s, approval_id, err, n);
    if (rc == 0)
        rc = refuse_pending(s, "approval_id", err, n);
    if (rc == 0 && d == TT_DECIDE_REVISE && (!comment || !*comment)) {
        snprintf(err, n, "a revise decision needs a comment");
        rc = TT_EINVAL;
    }
    if (rc == 0 && edits)
        rc = refuse_edits(s, approval_id, d, edits, err, n);
    if (rc == 0)
        rc = edits ? ops_of(s)->approve_edited(s, approval_id, edits, err, n)
                   : ops_of(s)->decide(s, approval_id, d, comment, err, n);
    json_t *body =
        rc ? NULL
           : json_pack("{s:s, s:s}", "approval_id", approval_id, "decision", tt_decision_name(d));
    if (body && comment)
        json_object_set_new(body, "comment", json_string(comment));
    if (body && edits)
        json_object_set_new(body, "edits", json_deep_copy(edits));
    if (body)
        tt_session_emit(s, "approval.decided", body);
    return rc;
}

int tt_agent_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                    char *err, size_t n)
{
    return tt_agent_decide_edits(s, approval_id, d, comment, NULL, err, n);
}

int tt_agent_cancel(tt_session *s, int *cancelled)
{
    *cancelled = 0;
    return s->state == TT_STATE_CLOSED ? 0 : ops_of(s)->cancel(s, cancelled);
}

int tt_agent_close(tt_session *s)
{
    if (s->state == TT_STATE_CLOSED)
        return 0;
    int cancelled;
    tt_front_clear_queue(s);
    ops_of(s)->cancel(s, &cancelled);
    tt_session_set_pending(s, NULL);
    tt_session_set_state(s, TT_STATE_CLOSED, "closed");
    return 0;
}
