/* Agents: what runs inside a session.
 *
 * An agent is a table of operations (tt_agent_ops). This module owns the
 * registry of built-in agents and the checks every agent shares (closed
 * sessions, repeated client_msg_id), so each agent file holds only its own
 * behaviour. The agent's persisted state lives in session->agent_state and is
 * written with the session at every transition; its runtime (timers, calls
 * in flight) lives in session->agent_rt and is rebuilt by `resume` after a
 * load. The step engine's agents (agents/engine/engine.h) sit behind this
 * same interface. */
#ifndef TT_AGENT_H
#define TT_AGENT_H

#include <stddef.h>
#include <jansson.h>
#include <uv.h>

#include "agents/llm/call.h"
#include "agents/prompt.h"
#include "agents/tools.h"
#include "protocol/frame.h"
#include "state/session.h"

#define TT_AGENT_PROMPTS_MAX 32
#define TT_ASSISTANTS_MAX 32

/* An assistant configured from a file (--agents FILE) instead of C: the chat
 * agent with its own prompt template, route and tools:
 *   {"agents": [{"name": "helper", "description": "...", "prompt": "chat.system",
 *                "route": "default", "tools": ["calculate"], "max_tool_rounds": 3,
 *                "feature": "support", "cache": true}]}
 * feature: the label its model calls are attributed to (default: its name);
 * cache: its calls may be answered from the exact response cache although
 * they send no temperature (an opt-in, agents/llm/cache.h; default false);
 * semantic_cache: true, or {"threshold": 0.9, "multi_turn": false,
 * "tools": false}: its calls may be answered by the semantic cache
 * (agents/llm/semcache.h; the routes file's "semantic_cache" names the
 * embeddings route; default off). */
typedef struct tt_assistant_def {
    char name[64];
    char description[256];
    char prompt[64];
    char route[64]; /* "" for the first route */
    json_t *tools;  /* names (array) */
    int max_tool_rounds;
    char feature[64];         /* "" : the name */
    int cache;                /* "cache": opted in to the response cache */
    tt_llm_semantic semantic; /* "semantic_cache": opted in to the semantic cache */
    char collection[65];      /* the "retrieve" tool's document collection ("default") */
    int top_k;                /* its hits (1-20, default 5) */
    double min_similarity;    /* its floor (0-1, default 0.7) */
} tt_assistant_def;

/* What agents may use from the server; owned by the server, outlives sessions. */
typedef struct tt_agent_env {
    uv_loop_t *loop;
    int echo_delay_ms;       /* default pause between echoed words */
    tt_llm_service *llm;     /* model calls; NULL or unconfigured: no model agents */
    struct tt_registry *reg; /* sessions, e.g. a user's earlier analyses */
    /* one photo library per user: photos_root/<tenant>/<user>, or
     * photos_root/<user> without a tenant (agents/photos/organizer.h) */
    const char *photos_root;
    int open_mode;          /* no API keys: every client is user "local" of tenant "local" */
    json_t *key_tenants;    /* the tenants the API keys name ({name: true}), "default" aside */
    int64_t wait_expiry_ms; /* a question or approval left unanswered this long expires */
    const char *budget_why; /* why the latest model call was refused TT_EBUDGET, or NULL */
    tt_prompt prompts[TT_AGENT_PROMPTS_MAX]; /* every template in --prompts-dir */
    size_t n_prompts;
    tt_toolbox tools; /* built-in and HTTP tools */
    struct tt_retrieval
        *retrieval; /* documents and their search (retrieval/retrieval.h), or NULL */
    /* Where agents log a line (msg, fields consumed): the server prints it at
     * debug level. NULL: nothing is logged. */
    void (*log)(const char *msg, json_t *fields, void *ud);
    void *log_ud;
    /* A queued say is about to start its turn (agents/front.h): the server
     * begins a new run for s's budgets, as for a say taken at once. NULL:
     * nothing. Called with log_ud. */
    void (*turn_begin)(const tt_session *s, void *ud);
    tt_assistant_def assistants[TT_ASSISTANTS_MAX];
    struct tt_agent_ops *assistant_ops; /* one per assistant, allocated at load */
    size_t n_assistants;
} tt_agent_env;

typedef struct tt_agent_ops {
    const char *name;
    const char *description;
    int needs_model;  /* refused with `unavailable` while no model route is configured */
    const void *impl; /* the agent's own definition (the step engine's tt_engine_def) */
    /* Check session.open's input before anything is created. */
    int (*validate)(const json_t *input, char *err, size_t n);
    /* A new session: set up agent_state and emit the first events. */
    int (*start)(tt_session *s, const tt_agent_env *env);
    /* A session loaded from the store: rebuild the runtime, resume work that
     * a restart interrupted. */
    int (*resume)(tt_session *s, const tt_agent_env *env);
    /* A user turn, already checked for closed sessions and repeated ids. The
     * agent refuses (TT_ECONFLICT) before emitting anything, or calls
     * tt_agent_accept_turn() and acts. */
    int (*say)(tt_session *s, const char *text, const char *client_msg_id, char *err, size_t n);
    int (*answer)(tt_session *s, const char *question_id, const json_t *value, char *err, size_t n);
    int (*decide)(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                  char *err, size_t n);
    /* Regenerate (text NULL) the answer of message_id, an assistant message,
     * or edit and resend (text) message_id, a user message: the agent
     * refuses (TT_ECONFLICT) before emitting anything, or rewinds with
     * tt_agent_rewind_to() and answers again. NULL: the agent cannot. */
    int (*rewind)(tt_session *s, const char *message_id, const char *text,
                  const char *client_msg_id, char *err, size_t n);
    /* Approve approval_id with edits (an object of argument names to new
     * values, already checked against the approval's `editable`): the
     * agent checks the edited plan as a whole and acts on it, or refuses
     * (TT_EINVAL, TT_ECONFLICT) changing nothing. NULL: no approval of this
     * agent takes edits. */
    int (*approve_edited)(tt_session *s, const char *approval_id, const json_t *edits, char *err,
                          size_t n);
    /* An approval asked with a deadline (tt_agent_ask_approval_ttl) expired
     * unanswered (the approval.expired event is out): withdraw it and tell
     * the run, which goes on or ends cleanly. NULL: the agent asks none. */
    void (*expire)(tt_session *s, const char *approval_id);
    /* Stop the step in flight; *cancelled says whether there was one. */
    int (*cancel)(tt_session *s, int *cancelled);
    /* Free the runtime (the session is evicted, closed or the server stops). */
    void (*release)(tt_session *s);
    /* Stop (1) or resume (0) receiving the model call in flight, and keep
     * receiving stopped for a call started while paused (its sockets are
     * behind). May be called again with the same value. NULL: the agent's
     * output is not paced by a model. */
    void (*pause)(tt_session *s, int paused);
} tt_agent_ops;

/* The prompt template named name ("chat.system"), or NULL. */
const tt_prompt *tt_agent_prompt(const tt_agent_env *env, const char *name);

/* Who s's model calls are for: its tenant, user, API key id, agent and
 * session; the feature is the session input's "feature" (a string), else
 * feature_default (an assistant's), else the agent's name. */
void tt_agent_attribution(const tt_session *s, const char *feature_default,
                          tt_llm_attribution *out);
/* Load every *.md template in dir into env (at start-up). */
int tt_agent_load_prompts(tt_agent_env *env, const char *dir, char *err, size_t n);
void tt_agent_free_prompts(tt_agent_env *env);

/* The agent called name (built-in or configured), or NULL. */
const tt_agent_ops *tt_agent_find(const tt_agent_env *env, const char *name);

/* A timer on loop for an agent's runtime, allocated and initialised, its
 * data set; NULL without memory. tt_agent_timer_close() stops it and frees it
 * once libuv has closed it (never before: the loop may still hold it). */
uv_timer_t *tt_agent_timer_new(uv_loop_t *loop, void *data);
void tt_agent_timer_close(uv_timer_t *t);
/* A runtime for s of size zeroed bytes, set as s->agent_rt, and its timer on
 * env's loop (data: the runtime) in *timer, for the agent to keep; NULL
 * without memory (nothing is set). Freed by the agent's release. */
void *tt_agent_rt_new(tt_session *s, const tt_agent_env *env, size_t size, uv_timer_t **timer);
/* Names of all agents as a JSON array (new reference). */
json_t *tt_agent_names(const tt_agent_env *env);
/* Every agent as [{name, description, needs_model, rewind}] (new reference), in the
 * order of tt_agent_names(): what the page's picker says of each. */
json_t *tt_agent_catalog(const tt_agent_env *env);

/* Load the assistants of file (NULL: none) into env, checking that their
 * prompts and tools exist. TT_EINVAL with a message naming the field. */
int tt_agent_load_assistants(tt_agent_env *env, const char *file, char *err, size_t n);
void tt_agent_free_assistants(tt_agent_env *env);

/* Bind s to its agent (start when new, resume when loaded). */
int tt_agent_bind(tt_session *s, const tt_agent_env *env, int resumed);
void tt_agent_unbind(tt_session *s);
/* Back-pressure: pause (1) or resume (0) s's model call, when its agent can. */
void tt_agent_pause(tt_session *s, int paused);

/* The shared front of each operation; errors carry a message in err. */
int tt_agent_say(tt_session *s, const char *text, const char *client_msg_id, int *duplicate,
                 char *err, size_t n);
/* The same, with *queued (new object or NULL) the ok's fields when the say
 * was queued (on_busy "queue": queued, queue_id, seq, position). */
int tt_agent_say_q(tt_session *s, const char *text, const char *client_msg_id, int *duplicate,
                   json_t **queued, char *err, size_t n);
int tt_agent_answer(tt_session *s, const char *question_id, const json_t *value, char *err,
                    size_t n);
int tt_agent_decide(tt_session *s, const char *approval_id, tt_decision d, const char *comment,
                    char *err, size_t n);
/* The same with edits (NULL: none): only with approve, only on an approval
 * whose event lists them in `editable`; approval.decided records them. */
int tt_agent_decide_edits(tt_session *s, const char *approval_id, tt_decision d,
                          const char *comment, const json_t *edits, char *err, size_t n);
int tt_agent_cancel(tt_session *s, int *cancelled);
/* regenerate (text NULL) or say with replaces (text): closed sessions,
 * repeated client_msg_id (*duplicate), agents without rewind. */
int tt_agent_rewind(tt_session *s, const char *message_id, const char *text,
                    const char *client_msg_id, int *duplicate, char *err, size_t n);
/* Stop work in flight and close the session for good. */
int tt_agent_close(tt_session *s);

/* For agents: a string of the persisted agent state, or NULL. */
const char *tt_agent_state_str(const tt_session *s, const char *key);
/* For agents: set (v consumed; NULL stores null) a key of the persisted state. */
void tt_agent_state_set(tt_session *s, const char *key, json_t *v);

/* For agents: the agent's mode, the key of its persisted state its operations
 * branch on ("mode" for the chat and echo agents, "status" for the step
 * engine), or NULL. */
const char *tt_agent_mode(const tt_session *s, const char *key);
/* For agents: the one place a mode changes. Setting the mode it is in is no
 * change; a change is logged through env->log ("agent mode": session, agent,
 * key, from, to), once per transition, never per token. */
void tt_agent_set_mode(const tt_agent_env *env, tt_session *s, const char *key, const char *to);

/* For agents, in their rewind: check message_id and rewind the transcript.
 * Edit (text given): message_id must be a user message; the transcript goes
 * back to before it. Regenerate: message_id must be an assistant message;
 * the transcript goes back to just after the user turn it answers, whose
 * text is put in *said (valid while the transcript holds it). TT_ENOTFOUND
 * (not in the conversation: superseded, or trimmed), TT_EINVAL (the wrong
 * role), TT_ECONFLICT (no user turn before it) with a message in err. */
int tt_agent_rewind_to(tt_session *s, const char *message_id, int edit, const char **said,
                       char *err, size_t n);
#define TT_AGENT_FINGERPRINT_MAX 72
/* A plan's fingerprint: "sha256:" and the 64 hex digits of SHA-256 over the
 * plan as compact JSON with sorted keys; "" when out of memory (it then
 * matches no decide). */
void tt_agent_plan_fingerprint(const json_t *plan, char out[TT_AGENT_FINGERPRINT_MAX]);
/* Ask for a decision: body {approval_id, title, plan} (consumed) gets the
 * plan's `fingerprint`, becomes the session's pending approval and is
 * emitted as an `approval` event. */
void tt_agent_ask_approval(tt_session *s, json_t *body);
/* The same with a deadline ttl_ms from now (0: none): the event carries
 * `expires_at`; past it the approval expires (agents/front.h) and the
 * agent's expire operation is called. */
void tt_agent_ask_approval_ttl(tt_session *s, json_t *body, int64_t ttl_ms);

/* For agents: record the turn's id and emit the "user" event. */
void tt_agent_accept_turn(tt_session *s, const char *text, const char *client_msg_id);

extern const tt_agent_ops tt_agent_echo;
extern const tt_agent_ops tt_agent_chat;
/* The chat agent's operations with impl = an assistant definition. */
void tt_agent_chat_ops(const tt_assistant_def *def, tt_agent_ops *out);
extern const tt_agent_ops tt_agent_doc_analyst;
extern const tt_agent_ops tt_agent_photo_organizer;

#endif
