/* What agents/agent.c adds around every agent, per session: the queue of
 * says that arrived while a turn ran (on_busy "queue"), and the expiry of
 * an open approval. Private to agents/ (agent.c and the agents that ask
 * approvals with a deadline).
 *
 * The queue lives in agent_state "say_queue": [{queue_id, text,
 * client_msg_id?, seq}] in arrival order, at most TT_AGENT_QUEUE_MAX items
 * and TT_AGENT_QUEUE_BYTES_MAX bytes of text, stored with the session (a
 * restart keeps it). A queued say is announced with a `say.queued` event
 * {queue_id, text, client_msg_id?, position} (its seq is the say's
 * acknowledgement). Each time the session comes to rest (idle, done,
 * failed) the first one is taken on the next loop pass: `say.dequeued`
 * {queue_id, taken: true} and the turn's `user` event, in one commit; when
 * the agent still refuses it, a second `say.dequeued` {queue_id, taken:
 * false, error} follows and the next is tried.
 *
 * An approval asked with a deadline (tt_agent_ask_approval_ttl) carries
 * `expires_at` (RFC 3339); agent_state "approval_deadline" {approval_id,
 * at_ms, expired} keeps it across restarts. A timer, a load, or a decide
 * that comes too late expires it: an `approval.expired` event
 * {approval_id, expired_at}, then the agent's expire operation (the run is
 * told and goes on, or ends cleanly). A decide on an expired approval is
 * conflict with reason "expired", also after a restart. */
#ifndef TT_AGENT_FRONT_H
#define TT_AGENT_FRONT_H

#include "agents/agent.h"

#define TT_AGENT_QUEUE_MAX 8
#define TT_AGENT_QUEUE_BYTES_MAX (1u << 20) /* bytes of text all queued says may hold */

/* Set up s's front (after the agent's start or resume): runs what a restart
 * left due (a queued say of an idle session, an approval past its
 * deadline), arms the timers. TT_ENOMEM. */
int tt_front_bind(tt_session *s, const tt_agent_env *env);
void tt_front_release(tt_session *s);

/* 1 when a say now goes to the queue (policy "queue", and a turn runs or
 * says wait already). */
int tt_front_queues(const tt_session *s);
/* Queue a say: the say.queued event; its seq, queue_id and position in
 * *fields (new object) for the ok. TT_ELIMIT when the queue is full (in
 * says or in bytes). */
int tt_front_enqueue(tt_session *s, const char *text, const char *client_msg_id, json_t **fields,
                     char *err, size_t n);
/* Drop the queue (the session is closed). */
void tt_front_clear_queue(tt_session *s);

/* The approval about to be asked (body: its event body, given expires_at)
 * gets a deadline ttl_ms from now; once it is pending, tt_front_arm_expiry()
 * arms the timer. */
void tt_front_deadline(tt_session *s, json_t *body, int64_t ttl_ms);
void tt_front_arm_expiry(tt_session *s);
/* Before a decide: TT_ECONFLICT with "expired: ..." in err when approval_id
 * expired (now, at its deadline, the expiry is carried out first), else 0. */
int tt_front_refuse_expired(tt_session *s, const char *approval_id, char *err, size_t n);
/* For an agent that finds the pending approval past its deadline itself (at
 * a resume): the approval.expired event, and the deadline marked expired
 * (nothing when what is pending is not an approval with a deadline). */
void tt_front_note_expired(tt_session *s);
/* 1 when the pending approval is past its deadline. */
int tt_front_approval_due(const tt_session *s);

#endif
