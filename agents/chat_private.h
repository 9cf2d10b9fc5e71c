/* Inside the chat agent: the runtime shared by chat.c (model calls, the
 * agent's operations) and chat_tools.c (tool rounds and their approvals).
 * Other agents use agent.h only. */
#ifndef TT_CHAT_PRIVATE_H
#define TT_CHAT_PRIVATE_H

#include <stddef.h>

#include "agents/agent.h"
#include "protocol/buf.h"

#define TT_CHAT_MAX_TOOL_CALLS 16                  /* tool calls the model may make in one round */
#define TT_CHAT_REPLY_MAX TT_SESSION_STREAMING_MAX /* bytes of one streamed reply's text */
#define TT_CHAT_ARGS_MAX (1u << 20)                /* bytes of one tool call's arguments */

/* One tool call as it streams in from the model. */
typedef struct tt_chat_call {
    int index; /* the provider's index of this call in the round (fragments share it) */
    char id[96];
    char name[64];
    tt_buf args; /* the model's JSON text, up to TT_CHAT_ARGS_MAX */
} tt_chat_call;

typedef struct tt_chat_rt {
    tt_session *s;
    const tt_agent_env *env;
    const tt_assistant_def *def; /* NULL: the plain chat agent */
    tt_llm_call *call;
    int paused;         /* its sockets are behind: receive nothing (tt_agent_pause) */
    uv_timer_t *resume; /* resumes the call in its own loop phase: never inside a delivery */
    tt_buf text;        /* the reply so far (for message.end), up to TT_CHAT_REPLY_MAX */
    int started;        /* message.start was emitted for the current attempt */
    int releasing;      /* the session is leaving memory: change nothing */
    char message_id[TT_MESSAGE_ID_MAX];
    int round;        /* model calls made in this turn */
    int tool_running; /* a tool is in flight; its outcome frees a releasing runtime */
    tt_chat_call calls[TT_CHAT_MAX_TOOL_CALLS];
    size_t n_calls;
} tt_chat_rt;

/* chat.c: call the model with the transcript and this turn's tool exchanges. */
int tt_chat_generate(tt_session *s);
/* chat.c: end the turn (idle), dropping its tool exchanges and any pending approval. */
void tt_chat_finish(tt_chat_rt *rt);
/* chat.c: forget the tool calls streamed in by the last model call. */
void tt_chat_calls_clear(tt_chat_rt *rt);
/* chat.c: free a runtime no session refers to any more. */
void tt_chat_free(tt_chat_rt *rt);

/* The model asked for tools (rt->calls, cleared here) after saying text
 * (or NULL): record them in the turn and run them. */
void tt_chat_tools_begin(tt_chat_rt *rt, const char *text);
/* After a restart: carry on with the round's calls (mode "tools") or keep
 * waiting for the pending approval (mode "approval"; an expired one counts
 * as refused). */
void tt_chat_tools_resume(tt_chat_rt *rt);
/* The user's decision on the pending tool call. TT_ECONFLICT with a message
 * when approval_id is not the pending call's, it expired, or d is revise. */
int tt_chat_tools_decide(tt_chat_rt *rt, const char *approval_id, tt_decision d, char *err,
                         size_t n);
/* The pending tool call's approval expired (agents/front.h): the call is
 * reported to the model as not run, and the round goes on. */
void tt_chat_tools_expire(tt_chat_rt *rt, const char *approval_id);
/* Approve the pending tool call with edits (argument names of the tool's
 * "editable" to new values): the edited arguments, checked against the
 * tool's parameters, are what runs and what the turn records. TT_EINVAL
 * (invalid edited call) or TT_ECONFLICT (not the pending call), nothing
 * changed. */
int tt_chat_tools_approve_edited(tt_chat_rt *rt, const char *approval_id, const json_t *edits,
                                 char *err, size_t n);
/* chat.c: this turn's tool exchanges as the model reads them (borrowed; created empty). */
json_t *tt_chat_turn(tt_session *s);

#endif
