/* Encoding of events and replies (see event.h). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "protocol/errors.h"
#include "protocol/event.h"

void tt_rfc3339(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
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

int tt_frame_from_json(json_t *obj, size_t headroom, tt_frame *out)
{
    memset(out, 0, sizeof *out);
    if (!obj)
        return TT_ENOMEM;
    size_t len = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    int rc = TT_ENOMEM;
    if (len == 0)
        goto done;
    out->buf = malloc(headroom + len + 1);
    if (!out->buf)
        goto done;
    json_dumpb(obj, out->buf + headroom, len, JSON_COMPACT);
    out->buf[headroom + len] = '\0';
    out->headroom = headroom;
    out->len = len;
    rc = 0;
done:
    json_decref(obj);
    return rc;
}

int tt_event_encode(const char *type, const char *sid, uint64_t seq, int64_t ts_ms, json_t *body,
                    size_t headroom, tt_frame *out)
{
    char ts[32];
    tt_rfc3339(ts_ms, ts);
    json_t *ev = json_pack("{s:s, s:s, s:I, s:s}", "type", type, "session", sid, "seq",
                           (json_int_t)seq, "ts", ts);
    if (ev && body && json_object_update(ev, body) != 0) {
        json_decref(ev);
        ev = NULL;
    }
    json_decref(body);
    return tt_frame_from_json(ev, headroom, out);
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
