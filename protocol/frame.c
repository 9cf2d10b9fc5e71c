/* Strict decoding of client frames into tt_msg (see frame.h).
 *
 * Each message type has a table of the fields it may carry. A field not in
 * the table is refused, so a typo in a client ("sesion") is a clear error
 * instead of a silently ignored field.
 *
 * Below, the other direction: encoding events and replies (event.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/errors.h"
#include "protocol/buf.h"
#include "protocol/event.h"
#include "protocol/jsonw.h"
#include "protocol/utf8.h"
#include "protocol/frame.h"

typedef enum field_kind {
    F_STR,    /* string, bounded by max (0: TT_ID_MAX) */
    F_TEXT,   /* string bounded by the caller's max_text */
    F_UINT,   /* non-negative integer */
    F_OBJECT, /* object, nesting bounded */
    F_ANY,    /* any JSON value, nesting bounded */
    F_DECISION,
    F_BOOL /* true or false, as an int */
} field_kind;

typedef struct field_spec {
    const char *name;
    field_kind kind;
    int required;
    size_t max;
    size_t offset; /* into tt_msg */
} field_spec;

#define OFF(f) offsetof(tt_msg, f)
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, 0, 0, 0                                                                           \
    }

static const field_spec hello_fields[] = {{"token", F_STR, 0, TT_TOKEN_MAX, OFF(token)},
                                          {"client", F_STR, 0, TT_ID_MAX, OFF(client)},
                                          END};
static const field_spec none_fields[] = {END};
static const field_spec open_fields[] = {{"agent", F_STR, 1, TT_NAME_MAX, OFF(agent)},
                                         {"input", F_OBJECT, 0, 0, OFF(input)},
                                         {"metadata", F_OBJECT, 0, 0, OFF(metadata)},
                                         {"on_busy", F_STR, 0, TT_NAME_MAX, OFF(on_busy)},
                                         END};
static const field_spec attach_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)},
                                           {"after", F_UINT, 0, 0, OFF(after)},
                                           {"compact", F_BOOL, 0, 0, OFF(compact)},
                                           END};
static const field_spec session_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)}, END};
static const field_spec say_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)},
                                        {"text", F_TEXT, 1, 0, OFF(text)},
                                        {"client_msg_id", F_STR, 0, TT_ID_MAX, OFF(client_msg_id)},
                                        {"replaces", F_STR, 0, TT_ID_MAX, OFF(replaces)},
                                        END};
static const field_spec regenerate_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)},
                                               {"message_id", F_STR, 1, TT_ID_MAX, OFF(message_id)},
                                               END};
static const field_spec answer_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)},
                                           {"question_id", F_STR, 1, TT_ID_MAX, OFF(question_id)},
                                           {"value", F_ANY, 1, 0, OFF(value)},
                                           END};
static const field_spec decide_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)},
                                           {"approval_id", F_STR, 1, TT_ID_MAX, OFF(approval_id)},
                                           {"decision", F_DECISION, 1, 0, OFF(decision)},
                                           {"comment", F_TEXT, 0, 0, OFF(comment)},
                                           {"fingerprint", F_STR, 0, TT_ID_MAX, OFF(fingerprint)},
                                           {"edits", F_OBJECT, 0, 0, OFF(edits)},
                                           END};
static const field_spec list_fields[] = {
    {"limit", F_UINT, 0, 0, OFF(limit)}, {"after", F_STR, 0, TT_NAME_MAX, OFF(list_after)}, END};
static const field_spec rename_fields[] = {{"session", F_STR, 1, TT_NAME_MAX, OFF(session)},
                                           {"title", F_STR, 1, TT_TITLE_WIRE_MAX, OFF(title)},
                                           END};
static const field_spec ack_fields[] = {
    {"session", F_STR, 1, TT_NAME_MAX, OFF(session)}, {"seq", F_UINT, 1, 0, OFF(seq)}, END};

static const struct {
    const char *name;
    const field_spec *fields;
} types[TT_MSG__LAST] = {
    [TT_MSG_HELLO] = {"hello", hello_fields},
    [TT_MSG_PING] = {"ping", none_fields},
    [TT_MSG_SESSION_OPEN] = {"session.open", open_fields},
    [TT_MSG_SESSION_ATTACH] = {"session.attach", attach_fields},
    [TT_MSG_SESSION_DETACH] = {"session.detach", session_fields},
    [TT_MSG_SESSION_LIST] = {"session.list", list_fields},
    [TT_MSG_SESSION_CLOSE] = {"session.close", session_fields},
    [TT_MSG_SAY] = {"say", say_fields},
    [TT_MSG_ANSWER] = {"answer", answer_fields},
    [TT_MSG_DECIDE] = {"decide", decide_fields},
    [TT_MSG_CANCEL] = {"cancel", session_fields},
    [TT_MSG_ACK] = {"ack", ack_fields},
    [TT_MSG_SESSION_RENAME] = {"session.rename", rename_fields},
    [TT_MSG_SESSION_DELETE] = {"session.delete", session_fields},
    [TT_MSG_REGENERATE] = {"regenerate", regenerate_fields},
};

static const char *decisions[] = {"approve", "reject", "revise"};

const char *tt_msg_type_name(tt_msg_type t)
{
    return (t >= 0 && t < TT_MSG__LAST) ? types[t].name : "unknown";
}

const char *tt_decision_name(tt_decision d)
{
    return ((unsigned)d < 3) ? decisions[d] : "unknown";
}

static int json_depth_ok(const json_t *v, int depth)
{
    if (depth > TT_JSON_DEPTH_MAX)
        return 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            if (!json_depth_ok(c, depth + 1))
                return 0;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            if (!json_depth_ok(c, depth + 1))
                return 0;
        }
    }
    return 1;
}

/* a may be the client's own text (a key, a type): cut safely. */
static int fail(char *err, size_t n, const char *fmt, const char *a)
{
    tt_utf8_snprintf(err, n, fmt, a);
    return TT_EINVAL;
}

static int decode_field(const field_spec *f, json_t *v, size_t max_text, tt_msg *out, char *err,
                        size_t n)
{
    char *slot = (char *)out + f->offset;
    switch (f->kind) {
    case F_STR:
    case F_TEXT: {
        if (!json_is_string(v))
            return fail(err, n, "field '%s' must be a string", f->name);
        size_t max = f->kind == F_TEXT ? max_text : f->max;
        size_t len = json_string_length(v);
        if (len > max)
            return fail(err, n, "field '%s' is too long", f->name);
        const char *s = json_string_value(v);
        if (memchr(s, '\0', len))
            return fail(err, n, "field '%s' contains a NUL character", f->name);
        if (f->kind == F_STR && f->required && len == 0)
            return fail(err, n, "field '%s' must not be empty", f->name);
        memcpy(slot, &s, sizeof s);
        return 0;
    }
    case F_UINT: {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return fail(err, n, "field '%s' must be a non-negative integer", f->name);
        uint64_t u = (uint64_t)json_integer_value(v);
        memcpy(slot, &u, sizeof u);
        return 0;
    }
    case F_OBJECT:
    case F_ANY:
        if (f->kind == F_OBJECT && !json_is_object(v))
            return fail(err, n, "field '%s' must be an object", f->name);
        if (!json_depth_ok(v, 1))
            return fail(err, n, "field '%s' is nested too deeply", f->name);
        memcpy(slot, &v, sizeof v);
        return 0;
    case F_BOOL: {
        if (!json_is_boolean(v))
            return fail(err, n, "field '%s' must be true or false", f->name);
        int b = json_is_true(v);
        memcpy(slot, &b, sizeof b);
        return 0;
    }
    case F_DECISION: {
        const char *s = json_string_value(v);
        for (int i = 0; s && i < 3; i++) {
            if (strcmp(s, decisions[i]) == 0) {
                out->decision = (tt_decision)i;
                return 0;
            }
        }
        return fail(err, n, "field '%s' must be approve, reject or revise", f->name);
    }
    }
    return TT_EINTERNAL;
}

int tt_msg_decode(const char *buf, size_t len, size_t max_text, tt_msg *out, char *err, size_t n)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    out->type = TT_MSG__LAST;

    out->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!out->root)
        return fail(err, n, "invalid JSON: %s", jerr.text);
    if (!json_is_object(out->root))
        return fail(err, n, "a frame must be a JSON object%s", "");

    json_t *id = json_object_get(out->root, "id");
    if (id) {
        if (!json_is_string(id) || json_string_length(id) > TT_ID_MAX)
            return fail(err, n, "field 'id' must be a string of at most 128 bytes%s", "");
        out->id = json_string_value(id);
    }
    const char *type = json_string_value(json_object_get(out->root, "type"));
    if (!type)
        return fail(err, n, "field 'type' is missing or not a string%s", "");
    for (int t = 0; t < TT_MSG__LAST; t++) {
        if (strcmp(type, types[t].name) == 0)
            out->type = (tt_msg_type)t;
    }
    if (out->type == TT_MSG__LAST)
        return fail(err, n, "unknown message type '%s'", type);

    const field_spec *fields = types[out->type].fields;
    const char *key;
    json_t *v;
    json_object_foreach(out->root, key, v)
    {
        if (strcmp(key, "type") == 0 || strcmp(key, "id") == 0)
            continue;
        const field_spec *f = fields;
        while (f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f->name)
            return fail(err, n, "unknown field '%s'", key);
        int rc = decode_field(f, v, max_text, out, err, n);
        if (rc)
            return rc;
    }
    for (const field_spec *f = fields; f->name; f++) {
        if (f->required && !json_object_get(out->root, f->name))
            return fail(err, n, "field '%s' is required", f->name);
    }
    if (out->type == TT_MSG_SESSION_LIST && !json_object_get(out->root, "limit"))
        out->limit = TT_LIST_LIMIT_DEFAULT;
    if (out->type == TT_MSG_SESSION_LIST && (out->limit < 1 || out->limit > TT_LIST_LIMIT_MAX))
        return fail(err, n, "field '%s' must be from 1 to 200", "limit");
    return 0;
}

void tt_msg_free(tt_msg *m)
{
    json_decref(m->root);
    m->root = NULL;
}

/* ---- Encoding events and replies (event.h) ---- */

/* The date and time to the second are formatted once a second (the loop's
 * events all fall in the same few seconds); the milliseconds every time. */
void tt_rfc3339(int64_t ms, char out[32])
{
    static _Thread_local int64_t cached_secs = INT64_MIN;
    static _Thread_local char cached[24];
    int64_t secs = ms / 1000, milli = ms % 1000;
    if (milli < 0) { /* before 1970: the second before, as gmtime_r counts */
        milli += 1000;
        secs--;
    }
    if (secs != cached_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
            snprintf(out, 32, "1970-01-01T00:00:00.000Z");
            return;
        }
        cached_secs = secs;
    }
    size_t n = strlen(cached);
    memcpy(out, cached, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + milli / 100);
    out[n + 2] = (char)('0' + milli / 10 % 10);
    out[n + 3] = (char)('0' + milli % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
}

int tt_frame_from_text(const char *text, size_t len, size_t headroom, tt_frame *out)
{
    out->buf = malloc(headroom + len + 1);
    if (!out->buf)
        return TT_ENOMEM;
    memcpy(out->buf + headroom, text, len);
    out->buf[headroom + len] = '\0';
    out->headroom = headroom;
    out->len = len;
    return 0;
}

/* The buffer's memory becomes the frame's, trimmed to its size (frames stay
 * in a session's ring). */
static int frame_take(tt_buf *b, tt_frame *out)
{
    char *mem = realloc(b->mem, b->headroom + b->len + 1);
    if (!mem)
        mem = b->mem;
    *out = (tt_frame){.buf = mem, .headroom = b->headroom, .len = b->len};
    b->mem = NULL;
    return 0;
}

int tt_frame_from_json(json_t *obj, size_t headroom, tt_frame *out)
{
    memset(out, 0, sizeof *out);
    if (!obj)
        return TT_ENOMEM;
    tt_buf b;
    tt_buf_init_headroom(&b, TT_EVENT_BYTES_MAX, headroom);
    int rc = tt_buf_reserve(&b, 240);
    if (rc == 0)
        rc = tt_jw_value(&b, obj);
    if (rc == 0 && b.len == 0)
        rc = TT_EINVAL;
    json_decref(obj);
    if (rc) {
        tt_buf_free(&b);
        return rc == TT_EINVAL ? TT_ENOMEM : rc;
    }
    return frame_take(&b, out);
}

/* A body that names one of the header's keys replaces its value in place
 * (json_object_update): the slow path keeps that. */
static int body_overrides(const json_t *body)
{
    static const char *const head[] = {"type", "session", "seq", "ts"};
    for (size_t i = 0; i < 4; i++) {
        if (json_object_get(body, head[i]))
            return 1;
    }
    return 0;
}

static int event_encode_json(const char *type, const char *sid, uint64_t seq, const char *ts,
                             json_t *body, size_t headroom, tt_frame *out)
{
    json_t *ev = json_pack("{s:s, s:s, s:I, s:s}", "type", type, "session", sid, "seq",
                           (json_int_t)seq, "ts", ts);
    if (ev && body && json_object_update(ev, body) != 0) {
        json_decref(ev);
        ev = NULL;
    }
    json_decref(body);
    return tt_frame_from_json(ev, headroom, out);
}

/* Written directly: the same bytes as the json_t path, without building it. */
int tt_event_encode(const char *type, const char *sid, uint64_t seq, int64_t ts_ms, json_t *body,
                    size_t headroom, tt_frame *out)
{
    char ts[32];
    tt_rfc3339(ts_ms, ts);
    memset(out, 0, sizeof *out);
    if (body && (!json_is_object(body) || body_overrides(body)))
        return event_encode_json(type, sid, seq, ts, body, headroom, out);
    tt_buf b;
    tt_buf_init_headroom(&b, TT_EVENT_BYTES_MAX, headroom);
    int rc = tt_buf_reserve(&b, 240);
    if (rc == 0)
        rc = tt_buf_append(&b, "{\"type\":", 8);
    if (rc == 0)
        rc = tt_jw_str(&b, type);
    if (rc == 0)
        rc = tt_buf_append(&b, ",\"session\":", 11);
    if (rc == 0)
        rc = tt_jw_str(&b, sid);
    if (rc == 0)
        rc = tt_buf_append(&b, ",\"seq\":", 7);
    if (rc == 0)
        rc = tt_jw_i64(&b, (int64_t)seq); /* as json_pack's json_int_t: the same bytes */
    if (rc == 0)
        rc = tt_buf_append(&b, ",\"ts\":", 6);
    if (rc == 0)
        rc = tt_jw_str(&b, ts);
    if (rc == 0 && body)
        rc = tt_jw_members(&b, body);
    if (rc == 0)
        rc = tt_buf_append(&b, "}", 1);
    json_decref(body);
    if (rc) {
        tt_buf_free(&b);
        return rc == TT_EINVAL ? TT_ENOMEM : rc;
    }
    return frame_take(&b, out);
}

void tt_frame_release(tt_frame *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = 0;
}

json_t *tt_reply_ok(const char *re, json_t *fields)
{
    json_t *r = json_pack("{s:s}", "type", "ok");
    if (r && re)
        json_object_set_new(r, "re", json_string(re));
    if (r && fields)
        json_object_update(r, fields);
    json_decref(fields);
    return r;
}

json_t *tt_reply_error(const char *re, const char *code, const char *msg, int retryable)
{
    json_t *r = json_pack("{s:s}", "type", "error");
    if (!r)
        return NULL;
    if (re)
        json_object_set_new(r, "re", json_string(re));
    json_object_set_new(r, "code", json_string(code));
    json_t *m = json_string(msg);
    json_object_set_new(r, "message", m ? m : json_string("(message was not valid UTF-8)"));
    json_object_set_new(r, "retryable", json_boolean(retryable));
    return r;
}
