/* A session's record in the store (session.h): written directly on every
 * commit it changed in (protocol/jsonw.h, no json_t built), read back with
 * jansson at a load. Split from session.c. */
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/jsonw.h"
#include "protocol/names.h"
#include "protocol/utf8.h"
#include "state/session.h"
#include "state/transcript.h"

#define RECORD_VERSION 2 /* 1: the transcript inline (read, never written) */
/* A record past this does not encode (the session is not committed, see
 * README): far above what its capped parts can add up to. */
#define RECORD_BYTES_MAX ((size_t)64 << 20)
#define RECORD_RESERVE 2048 /* most records never grow past it */

static void copy_str(char *dst, size_t n, const char *src)
{
    tt_utf8_copy(dst, n, src);
}

/* A key (a literal without escapes) and its value, appended: rc kept. */
static int rec_key(tt_buf *b, int rc, const char *key)
{
    if (rc == 0)
        rc = tt_buf_append(b, ",\"", 2);
    if (rc == 0)
        rc = tt_buf_append(b, key, strlen(key));
    if (rc == 0)
        rc = tt_buf_append(b, "\":", 2);
    return rc;
}

static int rec_str(tt_buf *b, int rc, const char *key, const char *v)
{
    rc = rec_key(b, rc, key);
    return rc ? rc : tt_jw_str(b, v);
}

static int rec_int(tt_buf *b, int rc, const char *key, int64_t v)
{
    rc = rec_key(b, rc, key);
    return rc ? rc : tt_jw_i64(b, v);
}

/* v NULL: null when nullable, else the record does not encode. */
static int rec_json(tt_buf *b, int rc, const char *key, const json_t *v, int nullable)
{
    if (!v && !nullable)
        return TT_EINVAL;
    rc = rec_key(b, rc, key);
    if (rc == 0)
        rc = v ? tt_jw_value(b, v) : tt_buf_append(b, "null", 4);
    return rc;
}

/* An object or array the session keeps as NULL while empty: `empty` then. */
static int rec_json_or(tt_buf *b, int rc, const char *key, const json_t *v, const char *empty)
{
    rc = rec_key(b, rc, key);
    if (rc == 0)
        rc = v ? tt_jw_value(b, v) : tt_buf_append(b, empty, strlen(empty));
    return rc;
}

/* The usage totals as json_pack("{s:I, s:I, s:f}") dumped them. */
static int rec_usage(tt_buf *b, int rc, const tt_session *s)
{
    rc = rec_key(b, rc, "usage");
    if (rc == 0)
        rc = tt_buf_append(b, "{\"prompt_tokens\":", 17);
    if (rc == 0)
        rc = tt_jw_i64(b, s->usage_prompt_tokens);
    if (rc == 0)
        rc = tt_buf_append(b, ",\"completion_tokens\":", 21);
    if (rc == 0)
        rc = tt_jw_i64(b, s->usage_completion_tokens);
    if (rc == 0)
        rc = tt_buf_append(b, ",\"cost_usd\":", 12);
    if (rc == 0)
        rc = tt_jw_real(b, s->usage_cost_usd);
    return rc ? rc : tt_buf_append(b, "}", 1);
}

/* The record, written directly (protocol/jsonw.h): the keys and values
 * json_pack would give, in the same order, without building a json_t of it
 * on every commit. Appended to out, then a NUL (not counted in *len); out
 * unchanged on failure. */
int tt_session_record_append(const tt_session *s, tt_buf *out, size_t *len)
{
    size_t start = out->len;
    int rc = tt_buf_append(out, "{\"v\":", 5);
    if (rc == 0)
        rc = tt_jw_i64(out, RECORD_VERSION);
    rc = rec_str(out, rc, "id", s->id);
    rc = rec_str(out, rc, "user", s->user);
    rc = rec_str(out, rc, "tenant", s->tenant);
    rc = rec_str(out, rc, "agent", s->agent);
    rc = rec_str(out, rc, "title", s->title);
    rc = rec_str(out, rc, "state", tt_state_name(s->state));
    rc = rec_str(out, rc, "step", s->step);
    rc = rec_int(out, rc, "created_at", s->created_ms);
    rc = rec_int(out, rc, "updated_at", s->updated_ms);
    rc = rec_int(out, rc, "head", (int64_t)s->head);
    rc = rec_int(out, rc, "first_seq", (int64_t)s->first_seq);
    rc = rec_json(out, rc, "agent_state", s->agent_state, 0);
    rc = rec_json(out, rc, "pending", s->pending, 1);
    rc = rec_json_or(out, rc, "input", s->input, "{}");
    rc = rec_json_or(out, rc, "metadata", s->metadata, "{}");
    rc = rec_json_or(out, rc, "client_msg_ids", s->client_msg_ids, "[]");
    rc = rec_json(out, rc, "streaming", s->streaming, 1);
    if (s->key_id[0])
        rc = rec_str(out, rc, "key_id", s->key_id);
    if (s->has_usage)
        rc = rec_usage(out, rc, s);
    if (s->on_busy[0])
        rc = rec_str(out, rc, "on_busy", s->on_busy);
    if (rc == 0)
        rc = tt_transcript_record_write(s, out);
    if (rc == 0)
        rc = tt_buf_append(out, "}", 1);
    if (rc == 0 && out->len - start > RECORD_BYTES_MAX)
        rc = TT_ETOOLARGE;
    if (rc == 0)
        *len = out->len - start;
    if (rc == 0)
        rc = tt_buf_append(out, "", 1); /* the NUL after it, kept */
    if (rc)
        tt_buf_truncate(out, start);
    return rc;
}

char *tt_session_record(const tt_session *s, size_t *len)
{
    tt_buf b;
    tt_buf_init(&b, RECORD_BYTES_MAX + 1);
    if (tt_buf_reserve(&b, RECORD_RESERVE) != 0 || tt_session_record_append(s, &b, len) != 0) {
        tt_buf_free(&b);
        return NULL;
    }
    return tt_buf_take(&b, NULL);
}

/* An empty object or array is left NULL: an idle session keeps no empty
 * jansson values (the record writes them back as {} and []). */
static void replace_json(json_t **slot, json_t *v, int (*is_type)(const json_t *))
{
    if (v && is_type(v)) {
        json_decref(*slot);
        *slot = json_incref(v);
    }
}

static int is_object(const json_t *v)
{
    return json_is_object(v);
}

static int is_full_object(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) > 0;
}

static int is_full_array(const json_t *v)
{
    return json_is_array(v) && json_array_size(v) > 0;
}

/* The open message, without its text (a restart loses the stream). A record
 * of an earlier build does not say: one "restart" discard is then taken. */
static void load_streaming(tt_session *s, json_t *r)
{
    json_t *open = json_object_get(r, "streaming");
    const char *mid = json_string_value(json_object_get(open, "message_id"));
    const char *role = json_string_value(json_object_get(open, "role"));
    s->streaming_unknown = open == NULL;
    if (mid && role)
        s->streaming = json_pack("{s:s, s:s}", "message_id", mid, "role", role);
}

int tt_session_load_record(tt_session *s, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *r = json_loadb(text, len, 0, &jerr);
    if (!r)
        return TT_EINVAL;
    int rc = TT_EINVAL;
    json_int_t v = 0, created = 0, updated = 0, head = 0, first = 1;
    const char *id, *user, *tenant, *agent, *title, *state, *step;
    if (json_unpack(r, "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "v", &v,
                    "id", &id, "user", &user, "tenant", &tenant, "agent", &agent, "title", &title,
                    "state", &state, "step", &step, "created_at", &created, "updated_at", &updated,
                    "head", &head, "first_seq", &first) != 0)
        goto done;
    if ((v != RECORD_VERSION && v != 1) || tt_state_parse(state, &s->state) != 0 || head < 0 ||
        first < 1 || tt_transcript_record_get(s, r, (int)v) != 0)
        goto done;
    copy_str(s->id, sizeof s->id, id);
    copy_str(s->user, sizeof s->user, user);
    copy_str(s->tenant, sizeof s->tenant, tenant);
    copy_str(s->agent, sizeof s->agent, agent);
    copy_str(s->title, sizeof s->title, title);
    tt_name_strip(s->title); /* stored before titles were checked */
    copy_str(s->step, sizeof s->step, step);
    const char *kid = json_string_value(json_object_get(r, "key_id"));
    copy_str(s->key_id, sizeof s->key_id, kid ? kid : "");
    const char *on_busy = json_string_value(json_object_get(r, "on_busy"));
    copy_str(s->on_busy, sizeof s->on_busy, on_busy ? on_busy : "");
    s->created_ms = created;
    s->updated_ms = updated;
    s->head = s->committed = s->record_head = (uint64_t)head;
    s->first_seq = (uint64_t)first;
    s->ring_first = s->head + 1;
    replace_json(&s->agent_state, json_object_get(r, "agent_state"), is_object);
    replace_json(&s->input, json_object_get(r, "input"), is_full_object);
    replace_json(&s->metadata, json_object_get(r, "metadata"), is_full_object);
    replace_json(&s->client_msg_ids, json_object_get(r, "client_msg_ids"), is_full_array);
    json_t *usage = json_object_get(r, "usage");
    if (json_is_object(usage)) {
        s->has_usage = 1;
        s->usage_prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        s->usage_completion_tokens =
            json_integer_value(json_object_get(usage, "completion_tokens"));
        s->usage_cost_usd = json_number_value(json_object_get(usage, "cost_usd"));
    }
    json_t *pending = json_object_get(r, "pending");
    if (json_is_object(pending))
        s->pending = json_incref(pending);
    load_streaming(s, r);
    rc = 0;
done:
    json_decref(r);
    return rc;
}
