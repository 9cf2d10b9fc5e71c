/* Sessions, their event log, and cursors.
 *
 * A session is one conversation with one agent, owned by one user. Its event
 * log is the truth: everything a client can see is an event with the next
 * seq. Events are appended in memory and written to LMDB by the registry's
 * group commit at the end of the loop pass; only committed events are ever
 * handed to a cursor, so a crash can never show a client a seq that is later
 * reused (ARCHITECTURE.md, "Commit before send").
 *
 * A cursor is one socket's position in one session's log: live delivery,
 * replay after reconnect, and a slow reader are the same code path. Events
 * come from the in-memory ring when recent, else from the store in batches,
 * so a lagging socket costs no extra memory.
 *
 * Invariants: first_seq <= committed + 1; committed <= head;
 * for every cursor, next <= committed + 1 (it never passes the commit point). */
#ifndef TT_SESSION_H
#define TT_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "protocol/buf.h"
#include "protocol/event.h"
#include "state/store.h"

typedef struct tt_registry tt_registry;
typedef struct tt_session tt_session;
typedef struct tt_cursor tt_cursor;

typedef enum tt_state {
    TT_STATE_IDLE,             /* waiting for the user's next turn */
    TT_STATE_RUNNING,          /* the agent is working (resumed after a restart) */
    TT_STATE_WAITING_INPUT,    /* a question is pending */
    TT_STATE_WAITING_APPROVAL, /* an approval is pending */
    TT_STATE_DONE,             /* the agent finished its task */
    TT_STATE_FAILED,           /* the agent stopped on an error */
    TT_STATE_CLOSED,           /* closed for good by the user */
    TT_STATE__LAST
} tt_state;

const char *tt_state_name(tt_state st);
int tt_state_parse(const char *name, tt_state *out);

#define TT_USER_MAX 128
#define TT_TENANT_MAX 128
#define TT_TITLE_MAX 80
#define TT_STEP_MAX 48
/* Bytes of a streamed message's text kept for snapshots (the agents stop a
 * reply at this size too). */
#define TT_SESSION_STREAMING_MAX (8u << 20)
/* An API key's public id: "k_" and 12 hex digits of its SHA-256 (server/auth.h). */
#define TT_KEY_ID_MAX 32

struct tt_session {
    char id[TT_SESSION_ID_MAX + 1];
    char user[TT_USER_MAX];
    char tenant[TT_TENANT_MAX];
    char agent[TT_SESSION_ID_MAX + 1];
    char title[TT_TITLE_MAX + 1];
    char step[TT_STEP_MAX];
    char key_id[TT_KEY_ID_MAX]; /* the API key behind the latest request ("" unknown) */
    char client_ip[64]; /* the client IP of the latest request (in memory only; "" unknown) */
    char on_busy[16];   /* a say while a turn runs: "" (reject), "interrupt" or "queue" (stored) */
    tt_state state;
    int64_t created_ms, updated_ms; /* wall clock */

    uint64_t head;      /* last appended seq (0: none yet) */
    uint64_t committed; /* last seq known to be in the store */
    uint64_t first_seq; /* oldest seq still kept in the store */

    json_t *agent_state; /* the agent's persisted state (object, owned) */
    json_t *pending;     /* pending question/approval event body, or NULL */
    /* [{role, message_id, text}] (owned): read it through
     * tt_session_transcript(), never directly. Private to state/: it holds
     * the entries from transcript_mem_first on (NULL: none); those before,
     * from transcript_first, were released at rest and are in the store
     * (tt_session_rest_release). */
    json_t *transcript_mem;
    json_t *input;          /* session.open input (owned, object; NULL while empty) */
    json_t *metadata;       /* session.open metadata (owned, object; NULL while empty) */
    json_t *client_msg_ids; /* recent say ids, bounded (owned, array; NULL while empty) */
    /* {prompt_tokens, completion_tokens, cost_usd}: the sum of every
     * message.end's usage, superseded answers included (stored; has_usage 0:
     * none). Plain numbers, no json_t kept: tt_session_usage() builds one. */
    int has_usage;
    int64_t usage_prompt_tokens, usage_completion_tokens;
    double usage_cost_usd;
    /* The message in flight (tt_session_message_*; read-only outside state/). */
    json_t *streaming;     /* {message_id, role} of the open message, or NULL (stored) */
    tt_buf streaming_text; /* its text so far, up to TT_SESSION_STREAMING_MAX */
    int streaming_unknown; /* loaded from a record of a build that did not store it */

    /* The agent's runtime, owned by agents/ (timers, in-flight calls). */
    const void *agent_ops;
    void *agent_rt;
    /* agents/agent.c's own per-session runtime (the queue's and the
     * approval expiry's timer), and what runs each time the state comes to
     * rest: idle, done or failed (NULL: nothing); set and freed by agents/. */
    void *agent_front;
    void (*on_rest)(tt_session *s);
    /* The server's back-pressure (server/flow.c): a socket of this session is
     * far behind, so the agent's model call is paused since flow_since_ms. */
    int flow_paused;
    uint64_t flow_since_ms;

    /* Private to state/. */
    tt_registry *reg;
    tt_frame *ring; /* recent events; index seq % ring_cap */
    size_t ring_cap;
    uint64_t ring_first; /* seq of the oldest event in the ring */
    tt_cursor *cursors;
    tt_session *next_dirty;
    int in_dirty_list;
    int record_dirty;     /* the record must be rewritten at the next commit */
    int active_stored;    /* what the store's "active" index says */
    int stored;           /* the record is in the store (counts towards the owner's cap) */
    int discard_err;      /* non-zero: the changes not committed are being thrown away */
    uint64_t record_head; /* head when the record was last written */
    uint64_t
        stored_head; /* events up to here are in LMDB (replicated mode: maybe not yet durable) */
    uint64_t epoch;  /* replicated mode: the ownership epoch held (0: new, not claimed yet) */
    tt_session *next_deliver; /* replicated mode: made durable by the batch being reported */
    int in_deliver_list;
    /* transcript[0]'s index, and the entries the store holds (transcript.h) */
    uint64_t transcript_first, transcript_stored_first, transcript_stored;
    uint64_t transcript_mem_first; /* transcript_mem[0]'s index (see transcript_mem) */
    /* tt_transcript_entry_bytes of the entries in memory, and of those
     * released (an upper bound once trimming dropped some unread) */
    size_t transcript_mem_bytes, transcript_front_bytes;
    /* after a rewind: the highest index the store may still hold past the
     * transcript's end (0: none); the next commit deletes them */
    uint64_t transcript_stale;
    int64_t last_used_ms; /* monotonic, for eviction */
};

/* Append an event with the next seq (body consumed; may be NULL). Returns the
 * seq, or 0 when the event could not be appended (a bug or out of memory).
 * Only appends: user turns and the message lifecycle go through the calls
 * below, which keep the transcript and the message in flight. */
uint64_t tt_session_emit(tt_session *s, const char *type, json_t *body);

/* Append a user turn: "user" {message_id (fresh), text, client_msg_id (left
 * out when NULL)} and its transcript entry; the first turn titles the
 * session. Returns the seq, or 0 when it could not be appended (nothing
 * changed: text not UTF-8, out of memory). */
uint64_t tt_session_user_message(tt_session *s, const char *text, const char *client_msg_id);

/* --- the message lifecycle --------------------------------------------------
 * Every message an agent streams goes through these calls, never through
 * tt_session_emit(): message.start, any number of deltas, then message.end or
 * message.discard (protocol/PROTOCOL.md), each event right after the other
 * calls' events in the log. At most one message is open per session.
 *
 * Who owns what: the session owns the message in flight. Its id and role are
 * in the stored record (written in the commit of its events), so after a
 * restart the agent can withdraw it by id; its text so far is in memory only
 * (a snapshot carries it, message.end carries it whole, a restart loses it
 * with the stream it withdraws). The transcript entry is the session's,
 * written at message.end. The agent owns a copy of the id (out_id), and
 * decides when to end or withdraw.
 *
 * A call out of order is refused with an error code and changes nothing:
 * TT_ECONFLICT for a start while a message is open, or a delta, end or
 * discard naming a message that is not the open one; TT_EINVAL for a role or
 * a discard reason the protocol does not have, or text that is not UTF-8;
 * TT_ENOMEM when the event could not be appended. */
#define TT_MESSAGE_ID_MAX 40

/* Open a message of `role` (the protocol streams "assistant" only) under a
 * fresh id, copied into out_id (n >= TT_MESSAGE_ID_MAX): message.start
 * {message_id, role}. */
int tt_session_message_start(tt_session *s, const char *role, char *out_id, size_t n);

/* Add text[0..len) to the open message id: delta {message_id, text}. */
int tt_session_message_delta(tt_session *s, const char *id, const char *text, size_t len);

/* Close the open message id: message.end {message_id, text, usage}, where
 * text is every delta's text in order, and add it to the transcript. usage
 * (an object: prompt_tokens, completion_tokens, cost_usd, model, cached) is
 * consumed, also on failure, and added to s->usage (the snapshot's totals). */
int tt_session_message_end(tt_session *s, const char *id, json_t *usage);
/* The same with the sources the answer drew on (a JSON array, consumed;
 * NULL: none) as message.end's "citations". */
int tt_session_message_end_cited(tt_session *s, const char *id, json_t *usage, json_t *citations);

/* Withdraw the open message id: message.discard {message_id, reason}, reason
 * one of "cancelled", "restart", "retry", "error"; its text is dropped. After
 * loading a record written before the open message was stored, one discard
 * with reason "restart" is taken for the id the agent kept. */
int tt_session_message_discard(tt_session *s, const char *id, const char *reason);

/* The open message's id (valid until the next lifecycle call), or NULL. */
const char *tt_session_message_open(const tt_session *s);

/* Rewind the conversation to before message_id (a message of the
 * transcript): a "rewind" event {message_id, reason} ("regenerate" or
 * "edit"), and that transcript entry and every later one are dropped, so the
 * next model call no longer sees them. The event log keeps everything: the
 * superseded events stay, the rewind event says from where they no longer
 * count. TT_ECONFLICT while a message is open; TT_ENOTFOUND when message_id
 * is not in the transcript (superseded already, or trimmed); TT_EINVAL for
 * another reason; TT_ENOMEM when the event could not be appended. */
int tt_session_rewind(tt_session *s, const char *message_id, const char *reason);

/* The transcript, an array of {role, message_id, text} owned by the session
 * (valid until the session next changes or is committed at rest). Entries
 * released at rest are read back from the store first: NULL only when that
 * read failed (the session is unchanged then). */
json_t *tt_session_transcript(tt_session *s);

/* Its number of entries, without reading a released transcript back. */
size_t tt_session_transcript_size(const tt_session *s);

/* The index in the transcript of the entry of message_id, or -1 (also when
 * a released transcript could not be read back). */
long tt_session_transcript_find(tt_session *s, const char *message_id);

/* Change state and step, emitting a "state" event when either changed. */
void tt_session_set_state(tt_session *s, tt_state st, const char *step);

/* Set (consumes) or clear (NULL) the pending question/approval. */
void tt_session_set_pending(tt_session *s, json_t *pending);

/* Say the record (agent_state, title, ...) changed and must be written. */
void tt_session_touch(tt_session *s);

/* 1 if a say with this client_msg_id was already applied (among the last 64). */
int tt_session_seen_msg_id(const tt_session *s, const char *client_msg_id);
/* Remember a say's client_msg_id once the turn is applied. */
void tt_session_remember_msg_id(tt_session *s, const char *client_msg_id);

/* The whole current state as a snapshot event body (new reference; NULL
 * when out of memory or a released transcript could not be read back). */
json_t *tt_session_snapshot(tt_session *s);

/* The usage totals {prompt_tokens, completion_tokens, cost_usd} (new
 * reference), or NULL when no message ended with usage yet. */
json_t *tt_session_usage(const tt_session *s);

/* A summary for session.list: {session, agent, state, title, updated_at, head}. */
json_t *tt_session_summary(const tt_session *s);

/* Fresh random ids: "<prefix>_" + 24 hex digits into out (size n >= 32). */
void tt_new_id(const char *prefix, char *out, size_t n);

/* "tenant\x1fuser": the key a user's sessions are listed by in the store,
 * into out (n >= TT_OWNER_KEY_MAX). A "\x1f" or "\x1e" in the tenant is
 * escaped as "\x1e" 'F' or 'E', so no two (tenant, user) pairs share a key;
 * a valid tenant (protocol/names.h) holds neither, so its key is as before. */
#define TT_OWNER_KEY_MAX (2 * (TT_TENANT_MAX - 1) + 1 + TT_USER_MAX)
void tt_owner_key(const char *tenant, const char *user, char *out, size_t n);

/* Wall-clock milliseconds since the epoch. */
int64_t tt_wall_ms(void);

/* --- cursors --------------------------------------------------------------- */

struct tt_cursor {
    tt_session *session;
    void *owner;           /* the connection that reads through this cursor */
    tt_cursor *owner_next; /* the owner's own list; managed by the owner */
    int owner_kind;        /* set by the owner: 0 a WebSocket, 1 an HTTP event stream */
    int owner_closing;     /* set by the owner: it is going, its backlog holds nothing back */
    uint64_t next;         /* next seq to hand out */
    /* private */
    tt_cursor *s_next, *s_prev;
    tt_frame snapshot;   /* pending snapshot frame (buf NULL when none) */
    int snapshot_wanted; /* replicated mode: a snapshot once everything appended is durable */
    tt_frame *replay;    /* batch read from the store */
    size_t replay_n, replay_pos;
    uint64_t compact_until;               /* tt_cursor_compact: the head at the attach */
    char compact_keep[TT_MESSAGE_ID_MAX]; /* ... and the message then in flight ("") */
};

/* Attach owner to s after seq `after`. When the events after `after` are no
 * longer kept, or are more than max_lag_events behind, or `after` is ahead of
 * the head, *recovered is 0 and the cursor starts with a snapshot of the
 * current state; otherwise 1. Caller detaches with tt_cursor_detach(). */
int tt_cursor_attach(tt_session *s, void *owner, uint64_t after, int *recovered, tt_cursor **out);

/* Compacted catch-up: the deltas up to the current head of every message
 * but the one in flight now are skipped (its message.start and message.end,
 * which holds the whole text, still come), so a client attaching from far
 * back gets finished messages whole and only the message in flight token by
 * token. The seqs it sees then have gaps where deltas were skipped. */
void tt_cursor_compact(tt_cursor *c);

/* Detach and free. */
void tt_cursor_detach(tt_cursor *c);

/* The next frame to send, or NULL when the cursor has caught up with the
 * committed head. The frame stays valid until tt_cursor_advance(). *err is
 * set on a store read failure. */
const tt_frame *tt_cursor_peek(tt_cursor *c, int *err);
void tt_cursor_advance(tt_cursor *c);

/* Committed events this cursor has not yet handed out. */
uint64_t tt_cursor_lag(const tt_cursor *c);

/* --- private to state/ ----------------------------------------------------- */
tt_session *tt_session_new(tt_registry *reg);
void tt_session_free(tt_session *s);
/* Serialise the record for the store (malloc'd, caller frees). */
char *tt_session_record(const tt_session *s, size_t *len);
/* The same appended to out, then a NUL not counted in *len: 0, or an error
 * with out unchanged (TT_ETOOLARGE past the record's cap or out's). */
int tt_session_record_append(const tt_session *s, tt_buf *out, size_t *len);
/* Fill s from a stored record. TT_EINVAL when the record is not usable. */
int tt_session_load_record(tt_session *s, const char *json, size_t len);
void tt_session_ring_after_commit(tt_session *s);
/* Free the ring of a session at rest whose readers all have every event. */
void tt_session_ring_release_idle(tt_session *s);
/* Release what a session at rest (nothing uncommitted, not running, no
 * message open) reads back from the store when it needs it again: its
 * transcript's entries (tt_session_transcript reads them back; a new entry
 * is appended without them). Returns 1 when it released them (counted in
 * the registry's stats). Called after each commit (tt_session_ring_after_commit)
 * and after a snapshot is made. */
int tt_session_rest_release(tt_session *s);

#endif
