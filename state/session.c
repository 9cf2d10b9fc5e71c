/* Sessions: the in-memory event ring, state, transcript and the message
 * lifecycle (see session.h). The cursors that read the ring are in cursor.c,
 * the stored record in session_record.c, the commit in registry.c and commit.c. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "protocol/base64.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/event_text.h"
#include "protocol/names.h"
#include "protocol/utf8.h"
#include "state/registry.h"
#include "state/registry_private.h"
#include "state/session.h"
#include "state/transcript.h"

#define CLIENT_MSG_IDS_MAX 64
#define RING_INITIAL 16

static const char *state_names[TT_STATE__LAST] = {
    "idle", "running", "waiting_input", "waiting_approval", "done", "failed", "closed",
};

const char *tt_state_name(tt_state st)
{
    return ((unsigned)st < TT_STATE__LAST) ? state_names[st] : "unknown";
}

int tt_state_parse(const char *name, tt_state *out)
{
    for (int i = 0; name && i < TT_STATE__LAST; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (tt_state)i;
            return 0;
        }
    }
    return TT_EINVAL;
}

void tt_owner_key(const char *tenant, const char *user, char *out, size_t n)
{
    assert(n >= TT_OWNER_KEY_MAX);
    size_t o = 0;
    for (size_t i = 0; tenant[i] && i < TT_TENANT_MAX - 1; i++) {
        if (tenant[i] == '\x1e' || tenant[i] == '\x1f')
            out[o++] = '\x1e'; /* then 'E' or 'F': the tenant never holds a separator */
        out[o++] = tenant[i] == '\x1e' ? 'E' : tenant[i] == '\x1f' ? 'F' : tenant[i];
    }
    snprintf(out + o, n - o, "\x1f%.*s", TT_USER_MAX - 1, user);
}

int64_t tt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tt_new_id(const char *prefix, char *out, size_t n)
{
    unsigned char raw[12];
    if (uv_random(NULL, NULL, raw, sizeof raw, 0, NULL) != 0) {
        /* uv_random only fails when the OS has no entropy source at all. */
        abort();
    }
    int w = snprintf(out, n, "%s_", prefix);
    if (w < 0 || (size_t)w + 2 >= n)
        return; /* no room for a digit pair (snprintf cut the prefix, or out is full) */
    size_t pairs = (n - (size_t)w - 1) / 2; /* whole pairs that fit before the NUL */
    tt_hex_encode(raw, pairs < sizeof raw ? pairs : sizeof raw, out + w);
}

static void copy_str(char *dst, size_t n, const char *src)
{
    tt_utf8_copy(dst, n, src);
}

tt_session *tt_session_new(tt_registry *reg)
{
    tt_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->reg = reg;
    tt_buf_init(&s->streaming_text, TT_SESSION_STREAMING_MAX);
    s->ring_cap = RING_INITIAL; /* grows on demand up to memory_events */
    s->ring = calloc(s->ring_cap, sizeof *s->ring);
    s->agent_state = json_object();
    s->first_seq = 1;
    s->ring_first = 1;
    s->transcript_first = s->transcript_stored_first = s->transcript_mem_first = 1;
    if (!s->ring || !s->agent_state) {
        tt_session_free(s);
        return NULL;
    }
    return s;
}

void tt_session_free(tt_session *s)
{
    if (!s)
        return;
    assert(s->cursors == NULL);
    for (size_t i = 0; s->ring && i < s->ring_cap; i++)
        tt_frame_release(&s->ring[i]);
    free(s->ring);
    json_decref(s->agent_state);
    json_decref(s->pending);
    json_decref(s->transcript_mem);
    json_decref(s->input);
    json_decref(s->metadata);
    json_decref(s->client_msg_ids);
    json_decref(s->streaming);
    tt_buf_free(&s->streaming_text);
    free(s);
}

/* Make room for seq head+1. A full ring grows up to memory_events; past that
 * the oldest committed event is dropped. Uncommitted events are never
 * dropped: the ring grows for them whatever its size. */
static int ring_make_room(tt_session *s)
{
    uint64_t count = s->head + 1 - s->ring_first;
    if (count < s->ring_cap)
        return 0;
    if (s->ring_first <= s->committed &&
        s->ring_cap >= tt_registry_options_get(s->reg)->memory_events) {
        tt_frame_release(&s->ring[s->ring_first % s->ring_cap]);
        s->ring_first++;
        return 0;
    }
    size_t cap = s->ring_cap ? s->ring_cap * 2 : RING_INITIAL; /* 0: released at rest */
    tt_frame *ring = calloc(cap, sizeof *ring);
    if (!ring)
        return TT_ENOMEM;
    for (uint64_t q = s->ring_first; q <= s->head; q++)
        ring[q % cap] = s->ring[q % s->ring_cap];
    free(s->ring);
    s->ring = ring;
    s->ring_cap = cap;
    return 0;
}

/* A session at rest whose every event is committed and stored, and whose
 * every reader has handed out all of them, keeps no ring: a reader attaching
 * later reads the events from the store (as after a load), and the next
 * event allocates a ring again. An idle session then costs no event memory. */
void tt_session_ring_release_idle(tt_session *s)
{
    if (!s->ring || s->committed != s->head || s->stored_head != s->head ||
        s->state == TT_STATE_RUNNING || s->streaming)
        return;
    for (const tt_cursor *c = s->cursors; c; c = c->s_next) {
        if (c->next <= s->committed || c->snapshot.buf || c->snapshot_wanted)
            return;
    }
    for (size_t i = 0; i < s->ring_cap; i++)
        tt_frame_release(&s->ring[i]);
    free(s->ring);
    s->ring = NULL;
    s->ring_cap = 0;
    s->ring_first = s->head + 1;
}

/* After a commit, drop committed events beyond the configured memory budget. */
void tt_session_ring_after_commit(tt_session *s)
{
    size_t keep = tt_registry_options_get(s->reg)->memory_events;
    while (s->ring_first <= s->committed && s->head + 1 - s->ring_first > keep) {
        tt_frame_release(&s->ring[s->ring_first % s->ring_cap]);
        s->ring_first++;
    }
    tt_session_ring_release_idle(s);
    tt_session_rest_release(s);
}

/* --- the transcript, released at rest (session.h) -------------------------- */

/* The index of the last entry (transcript_first - 1 when empty). */
static uint64_t transcript_end(const tt_session *s)
{
    return s->transcript_mem_first + json_array_size(s->transcript_mem) - 1;
}

/* A transcript larger than this stays in memory at rest: reading it back
 * (an LMDB read and a JSON parse, on the loop) stays near a millisecond. */
#define REST_RELEASE_BYTES_MAX ((size_t)256 << 10)

json_t *tt_session_transcript(tt_session *s)
{
    if (!s->transcript_mem && !(s->transcript_mem = json_array()))
        return NULL;
    if (s->transcript_mem_first > s->transcript_first) {
        /* The front was released: read it back (the store holds it). */
        json_t *front = NULL;
        if (tt_transcript_read_front(s, tt_registry_store(s->reg), &front) != 0)
            return NULL;
        if (json_array_extend(front, s->transcript_mem) != 0) {
            json_decref(front);
            return NULL;
        }
        json_decref(s->transcript_mem);
        s->transcript_mem = front;
        s->transcript_mem_first = s->transcript_first;
        s->transcript_mem_bytes = tt_transcript_bytes(front);
        s->transcript_front_bytes = 0;
    }
    return s->transcript_mem;
}

size_t tt_session_transcript_size(const tt_session *s)
{
    return (size_t)(transcript_end(s) + 1 - s->transcript_first);
}

int tt_session_rest_release(tt_session *s)
{
    if (!s->transcript_mem || s->in_dirty_list || s->record_dirty || s->discard_err ||
        s->committed != s->head || s->stored_head != s->head || s->state == TT_STATE_RUNNING ||
        s->streaming)
        return 0;
    /* Only entries the store holds, all of them (transcript.h). */
    uint64_t end = transcript_end(s);
    if (s->transcript_stored_first != s->transcript_first || s->transcript_stale != 0 ||
        s->transcript_stored != end)
        return 0;
    size_t bytes = s->transcript_front_bytes + s->transcript_mem_bytes;
    if (bytes > REST_RELEASE_BYTES_MAX)
        return 0; /* kept: too large to read back on the loop */
    json_decref(s->transcript_mem);
    s->transcript_mem = NULL;
    s->transcript_mem_first = end + 1;
    s->transcript_front_bytes = bytes;
    s->transcript_mem_bytes = 0;
    s->reg->stats.sessions_rest_released++;
    return 1;
}

/* 0, or TT_ENOMEM when the entry could not be added. Only the end of the
 * transcript is needed: a released front is not read back. */
static int transcript_add(tt_session *s, const char *role, const char *message_id, json_t *text)
{
    if (!s->transcript_mem && !(s->transcript_mem = json_array()))
        return TT_ENOMEM;
    json_t *entry =
        json_pack("{s:s, s:s, s:O}", "role", role, "message_id", message_id, "text", text);
    size_t bytes = tt_transcript_entry_bytes(entry);
    if (!entry || json_array_append_new(s->transcript_mem, entry) != 0)
        return TT_ENOMEM;
    s->transcript_mem_bytes += bytes;
    size_t max = tt_registry_options_get(s->reg)->transcript_max;
    while (max && tt_session_transcript_size(s) > max) {
        if (s->transcript_mem_first == s->transcript_first) {
            s->transcript_mem_bytes -=
                tt_transcript_entry_bytes(json_array_get(s->transcript_mem, 0));
            json_array_remove(s->transcript_mem, 0);
            s->transcript_mem_first++;
        }
        /* A released entry: the next commit deletes it from the store
         * (transcript_front_bytes stays an upper bound). */
        s->transcript_first++;
    }
    tt_session_touch(s);
    return 0;
}

static uint64_t emit(tt_session *s, const char *type, json_t *body, const char *id,
                     const char *text, size_t len)
{
    if (ring_make_room(s) != 0) {
        json_decref(body);
        return 0;
    }
    uint64_t seq = s->head + 1;
    int64_t now = tt_wall_ms();
    tt_frame *f = &s->ring[seq % s->ring_cap];
    size_t hr = tt_registry_options_get(s->reg)->headroom; /* id: a delta (event_text.h) */
    if ((id ? tt_event_encode_text(type, s->id, seq, now, id, text, len, hr, f)
            : tt_event_encode(type, s->id, seq, now, body, hr, f)) != 0)
        return 0;
    s->head = seq;
    s->updated_ms = now;
    s->last_used_ms = (int64_t)uv_now(tt_registry_loop(s->reg));
    tt_registry_mark_dirty(s->reg, s);
    return seq;
}
uint64_t tt_session_emit(tt_session *s, const char *type, json_t *body)
{
    return emit(s, type, body, NULL, NULL, 0);
}

uint64_t tt_session_user_message(tt_session *s, const char *text, const char *client_msg_id)
{
    char mid[TT_MESSAGE_ID_MAX];
    tt_new_id("m", mid, sizeof mid);
    json_t *body = json_pack("{s:s, s:s, s:s?}", "message_id", mid, "text", text, "client_msg_id",
                             client_msg_id);
    if (!body)
        return 0;
    json_t *said = json_incref(json_object_get(body, "text"));
    uint64_t seq = tt_session_emit(s, "user", body);
    if (seq)
        transcript_add(s, "user", mid, said);
    if (seq && s->title[0] == '\0') {
        tt_utf8_copy(s->title, sizeof s->title, text);
        tt_name_strip(s->title); /* a title is shown in lists: no bidi or invisible characters */
    }
    json_decref(said);
    return seq;
}

/* --- the message lifecycle (session.h) ------------------------------------ */

static const char *const discard_reasons[] = {"cancelled", "restart", "retry", "error"};

const char *tt_session_message_open(const tt_session *s)
{
    return json_string_value(json_object_get(s->streaming, "message_id"));
}

static int is_open(const tt_session *s, const char *id)
{
    const char *open = tt_session_message_open(s);
    return open && id && strcmp(open, id) == 0;
}

/* Nothing is in flight any more; the record says so at the next commit. */
static void streaming_close(tt_session *s)
{
    json_decref(s->streaming);
    s->streaming = NULL;
    tt_buf_free(&s->streaming_text); /* an idle session keeps no text buffer */
    s->streaming_unknown = 0;
    tt_session_touch(s);
}

int tt_session_message_start(tt_session *s, const char *role, char *out_id, size_t n)
{
    assert(n >= TT_MESSAGE_ID_MAX);
    if (!role || strcmp(role, "assistant") != 0)
        return TT_EINVAL;
    if (s->streaming)
        return TT_ECONFLICT;
    char mid[TT_MESSAGE_ID_MAX];
    tt_new_id("m", mid, sizeof mid);
    json_t *open = json_pack("{s:s, s:s}", "message_id", mid, "role", role);
    json_t *body = json_deep_copy(open);
    if (!body || tt_session_emit(s, "message.start", body) == 0) {
        json_decref(open);
        return TT_ENOMEM;
    }
    s->streaming = open;
    tt_buf_reset(&s->streaming_text);
    s->streaming_unknown = 0;
    tt_session_touch(s);
    snprintf(out_id, n, "%s", mid);
    return 0;
}

int tt_session_message_delta(tt_session *s, const char *id, const char *text, size_t len)
{
    if (!is_open(s, id))
        return TT_ECONFLICT;
    /* Room first: a delta that would pass TT_SESSION_STREAMING_MAX is refused
     * whole (TT_ETOOLARGE) and nothing is emitted; TT_EINVAL: not UTF-8. */
    int rc = text && tt_utf8_valid(text, len) ? tt_buf_reserve(&s->streaming_text, len) : TT_EINVAL;
    if (rc != 0)
        return rc;
    if (emit(s, "delta", NULL, id, text, len) == 0)
        return TT_ENOMEM;
    rc = tt_buf_append(&s->streaming_text, text, len);
    assert(rc == 0); /* reserved above */
    return rc;
}

/* A message's usage into the session's totals (a cost that would not be
 * finite leaves them as they were, as json_pack refused it before). */
static void usage_add(tt_session *s, const json_t *u)
{
    if (!json_is_object(u))
        return;
    double cost = s->usage_cost_usd + json_number_value(json_object_get(u, "cost_usd"));
    if (!isfinite(cost))
        return;
    s->usage_prompt_tokens += json_integer_value(json_object_get(u, "prompt_tokens"));
    s->usage_completion_tokens += json_integer_value(json_object_get(u, "completion_tokens"));
    s->usage_cost_usd = cost;
    s->has_usage = 1;
}

json_t *tt_session_usage(const tt_session *s)
{
    if (!s->has_usage)
        return NULL;
    return json_pack("{s:I, s:I, s:f}", "prompt_tokens", (json_int_t)s->usage_prompt_tokens,
                     "completion_tokens", (json_int_t)s->usage_completion_tokens, "cost_usd",
                     s->usage_cost_usd);
}

int tt_session_message_end(tt_session *s, const char *id, json_t *usage)
{
    return tt_session_message_end_cited(s, id, usage, NULL);
}

int tt_session_message_end_cited(tt_session *s, const char *id, json_t *usage, json_t *citations)
{
    if (!is_open(s, id)) {
        json_decref(usage);
        json_decref(citations);
        return TT_ECONFLICT;
    }
    char mid[TT_MESSAGE_ID_MAX];
    tt_utf8_copy(mid, sizeof mid, id); /* id may be the open message's own string */
    json_t *text = json_stringn(tt_buf_str(&s->streaming_text), s->streaming_text.len);
    json_t *body =
        text ? json_pack("{s:s, s:O, s:O?}", "message_id", mid, "text", text, "usage", usage)
             : NULL;
    if (body && citations)
        json_object_set(body, "citations", citations);
    json_decref(citations);
    if (!body || tt_session_emit(s, "message.end", body) == 0) {
        json_decref(usage);
        json_decref(text);
        return TT_ENOMEM;
    }
    usage_add(s, usage);
    json_decref(usage);
    transcript_add(s, json_string_value(json_object_get(s->streaming, "role")), mid, text);
    json_decref(text);
    streaming_close(s);
    return 0;
}

int tt_session_message_discard(tt_session *s, const char *id, const char *reason)
{
    int known = 0;
    for (size_t i = 0; reason && i < sizeof discard_reasons / sizeof *discard_reasons; i++)
        known |= strcmp(reason, discard_reasons[i]) == 0;
    if (!known)
        return TT_EINVAL;
    int legacy = !s->streaming && s->streaming_unknown && id && strcmp(reason, "restart") == 0;
    if (!legacy && !is_open(s, id))
        return TT_ECONFLICT;
    json_t *body = json_pack("{s:s, s:s}", "message_id", id, "reason", reason);
    if (!body)
        return TT_EINVAL; /* id not UTF-8 */
    if (tt_session_emit(s, "message.discard", body) == 0)
        return TT_ENOMEM;
    streaming_close(s);
    return 0;
}

long tt_session_transcript_find(tt_session *s, const char *message_id)
{
    size_t i;
    json_t *t;
    json_array_foreach(tt_session_transcript(s), i, t)
    {
        const char *mid = json_string_value(json_object_get(t, "message_id"));
        if (mid && message_id && strcmp(mid, message_id) == 0)
            return (long)i;
    }
    return -1;
}

int tt_session_rewind(tt_session *s, const char *message_id, const char *reason)
{
    if (!reason || (strcmp(reason, "regenerate") != 0 && strcmp(reason, "edit") != 0))
        return TT_EINVAL;
    if (s->streaming)
        return TT_ECONFLICT;
    if (!tt_session_transcript(s))
        return TT_EIO; /* released at rest and not read back */
    long at = tt_session_transcript_find(s, message_id);
    if (at < 0)
        return TT_ENOTFOUND;
    json_t *body = json_pack("{s:s, s:s}", "message_id", message_id, "reason", reason);
    if (!body || tt_session_emit(s, "rewind", body) == 0)
        return TT_ENOMEM;
    json_t *t = tt_session_transcript(s); /* read back by the find above */
    while (json_array_size(t) > (size_t)at) {
        s->transcript_mem_bytes -= tt_transcript_entry_bytes(json_array_get(t, (size_t)at));
        json_array_remove(t, (size_t)at);
    }
    /* The store's entries from here on are rewritten by the next appends;
     * those left past the end are deleted at the next commit (transcript.h). */
    uint64_t last = s->transcript_first + (uint64_t)at - 1;
    if (s->transcript_stored > last) {
        if (s->transcript_stored > s->transcript_stale)
            s->transcript_stale = s->transcript_stored;
        s->transcript_stored = last;
    }
    tt_session_touch(s);
    return 0;
}

void tt_session_set_state(tt_session *s, tt_state st, const char *step)
{
    if (!step)
        step = s->step;
    if (s->state == st && strcmp(s->step, step) == 0 && s->head > 0)
        return;
    s->state = st;
    if (step != s->step)
        copy_str(s->step, sizeof s->step, step);
    tt_session_touch(s);
    tt_session_emit(s, "state",
                    json_pack("{s:s, s:s}", "state", tt_state_name(st), "step", s->step));
    if (s->on_rest && (st == TT_STATE_IDLE || st == TT_STATE_DONE || st == TT_STATE_FAILED))
        s->on_rest(s);
}

void tt_session_set_pending(tt_session *s, json_t *pending)
{
    json_decref(s->pending);
    s->pending = pending;
    tt_session_touch(s);
}

void tt_session_touch(tt_session *s)
{
    s->record_dirty = 1;
    tt_registry_mark_dirty(s->reg, s);
}

int tt_session_seen_msg_id(const tt_session *s, const char *client_msg_id)
{
    size_t i;
    json_t *v;
    json_array_foreach(s->client_msg_ids, i, v)
    {
        const char *seen = json_string_value(v);
        if (seen && strcmp(seen, client_msg_id) == 0)
            return 1;
    }
    return 0;
}

void tt_session_remember_msg_id(tt_session *s, const char *client_msg_id)
{
    if (!s->client_msg_ids && !(s->client_msg_ids = json_array()))
        return; /* out of memory: the id is not remembered */
    json_array_append_new(s->client_msg_ids, json_string(client_msg_id));
    while (json_array_size(s->client_msg_ids) > CLIENT_MSG_IDS_MAX)
        json_array_remove(s->client_msg_ids, 0);
    tt_session_touch(s);
}

json_t *tt_session_snapshot(tt_session *s)
{
    json_t *transcript = tt_session_transcript(s);
    if (!transcript)
        return NULL;
    json_t *streaming = NULL;
    if (s->streaming) {
        streaming = json_deep_copy(s->streaming);
        json_object_set_new(streaming, "text",
                            json_stringn(tt_buf_str(&s->streaming_text), s->streaming_text.len));
    }
    json_t *snap =
        json_pack("{s:s, s:s, s:s, s:s, s:O, s:O?, s:O, s:O?}", "state", tt_state_name(s->state),
                  "step", s->step, "agent", s->agent, "title", s->title, "transcript", transcript,
                  "pending", s->pending, "agent_state", s->agent_state, "streaming", streaming);
    json_decref(streaming);
    if (snap && s->has_usage)
        json_object_set_new(snap, "usage", tt_session_usage(s));
    return snap;
}

json_t *tt_session_summary(const tt_session *s)
{
    char ts[32];
    tt_rfc3339(s->updated_ms, ts);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "session", s->id, "agent", s->agent, "state",
                     tt_state_name(s->state), "title", s->title, "updated_at", ts, "head",
                     (json_int_t)s->head);
}
