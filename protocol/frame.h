/* Client messages: one JSON object per WebSocket text frame, decoded strictly
 * into a typed struct at the edge, so no inner code sees raw JSON it did not
 * expect (protocol/PROTOCOL.md is the contract).
 *
 * Decoding refuses: invalid JSON or UTF-8, a non-object, a missing or unknown
 * "type", a missing required field, a field of the wrong type, an unknown
 * field, a string over its limit. Every refusal is TT_EINVAL with a message
 * naming the field; the decoded id (if it was a string) is kept so the error
 * reply can carry "re". */
#ifndef TT_FRAME_H
#define TT_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define TT_ID_MAX 128         /* request ids, client_msg_id, question/approval ids */
#define TT_NAME_MAX 64        /* agent names, session ids */
#define TT_TOKEN_MAX 8192     /* same as TT_JWT_MAX_LEN */
#define TT_JSON_DEPTH_MAX 32  /* nesting allowed in input/metadata/value */
#define TT_LIST_LIMIT_MAX 200 /* session.list: most sessions asked for in one page */
#define TT_LIST_LIMIT_DEFAULT 50
#define TT_TITLE_WIRE_MAX 80 /* session.rename: bytes of a title */

typedef enum tt_msg_type {
    TT_MSG_HELLO, /* token, client */
    TT_MSG_PING,
    TT_MSG_SESSION_OPEN,   /* agent, input, metadata */
    TT_MSG_SESSION_ATTACH, /* session, after */
    TT_MSG_SESSION_DETACH, /* session */
    TT_MSG_SESSION_LIST,   /* limit, after (a session id) */
    TT_MSG_SESSION_CLOSE,  /* session */
    TT_MSG_SAY,            /* session, text, client_msg_id, replaces */
    TT_MSG_ANSWER,         /* session, question_id, value */
    TT_MSG_DECIDE,         /* session, approval_id, decision, comment, fingerprint, edits */
    TT_MSG_CANCEL,         /* session */
    TT_MSG_ACK,            /* session, seq */
    TT_MSG_SESSION_RENAME, /* session, title */
    TT_MSG_SESSION_DELETE, /* session */
    TT_MSG_REGENERATE,     /* session, message_id */
    TT_MSG__LAST
} tt_msg_type;

typedef enum tt_decision { TT_DECIDE_APPROVE, TT_DECIDE_REJECT, TT_DECIDE_REVISE } tt_decision;

/* Strings point into root and live as long as the message. */
typedef struct tt_msg {
    tt_msg_type type;
    json_t *root;
    const char *id;            /* request id or NULL */
    const char *token;         /* hello; NULL when absent */
    const char *client;        /* hello; NULL when absent */
    const char *agent;         /* session.open */
    json_t *input;             /* session.open; borrowed, may be NULL */
    json_t *metadata;          /* session.open; borrowed, may be NULL */
    const char *session;       /* every session-scoped message */
    uint64_t after;            /* session.attach (0 when absent) */
    int compact;               /* session.attach: finished messages whole, without their deltas */
    const char *text;          /* say */
    const char *client_msg_id; /* say; NULL when absent */
    const char *replaces;      /* say: the user message it edits; NULL when absent */
    const char *message_id;    /* regenerate: the assistant message answered again */
    const char *question_id;   /* answer */
    json_t *value;             /* answer; borrowed */
    const char *approval_id;   /* decide */
    tt_decision decision;      /* decide */
    const char *comment;       /* decide; NULL when absent */
    const char *fingerprint;   /* decide: the plan's fingerprint as shown; NULL when absent */
    json_t *edits;             /* decide: approve with these argument changes; borrowed, or NULL */
    uint64_t seq;              /* ack */
    uint64_t limit;            /* session.list; TT_LIST_LIMIT_DEFAULT when absent */
    const char *list_after;    /* session.list: the `next` of the previous page, or NULL */
    const char *title;         /* session.rename */
    const char *on_busy; /* session.open: "reject", "interrupt" or "queue"; NULL when absent */
} tt_msg;

/* Decode one frame. On failure writes a reason to err (size n) and returns
 * TT_EINVAL; out->id is still set when it could be read. Always release out
 * with tt_msg_free(), whatever the result. max_text bounds "text"/"comment". */
int tt_msg_decode(const char *buf, size_t len, size_t max_text, tt_msg *out, char *err, size_t n);
void tt_msg_free(tt_msg *m);

const char *tt_msg_type_name(tt_msg_type t);
const char *tt_decision_name(tt_decision d);

#endif
