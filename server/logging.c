/* JSON-lines logging (see logging.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/redact.h"
#include "protocol/event.h"
#include "server/logging.h"
#include "state/session.h"

static const char *names[] = {"debug", "info", "warn", "error"};
static tt_level threshold = TT_INFO; /* set once at start-up, before the loop runs */
static int redact = 1;               /* the same */

void tt_log_set_redact(int on)
{
    redact = on;
}

/* One string value with its PII replaced (agents/llm/redact.h); placeholders
 * numbered per line. A value that cannot be redacted is not printed. */
static json_t *redacted(const char *s, size_t n, tt_redact_map *m)
{
    if (n > TT_REDACT_INPUT_MAX)
        return json_string("[not logged: too long to redact]");
    if (!tt_redact_default_may_match(s, n))
        return NULL; /* nothing to find: unchanged */
    tt_buf out;
    tt_buf_init(&out, 2 * (size_t)TT_REDACT_INPUT_MAX);
    const tt_redact *r = tt_redact_default();
    int rc = r ? tt_redact_text(r, m, s, n, &out) : -1;
    json_t *v = rc < 0    ? json_string("[not logged: redaction failed]")
                : rc == 0 ? NULL
                          : json_stringn(tt_buf_data(&out), out.len);
    tt_buf_free(&out);
    return v;
}

/* Every string in v (objects and arrays, at any depth) redacted in place;
 * the line's own "ts" and "level" (depth 0) are the server's: skipped. */
static void redact_json(json_t *v, tt_redact_map *m, int depth)
{
    const char *key;
    json_t *x;
    size_t i;
    if (depth > 32)
        return;
    json_object_foreach(v, key, x)
    {
        if (depth == 0 && (strcmp(key, "ts") == 0 || strcmp(key, "level") == 0))
            continue;
        json_t *nv =
            json_is_string(x) ? redacted(json_string_value(x), json_string_length(x), m) : NULL;
        if (nv)
            json_object_set_new(v, key, nv);
        else
            redact_json(x, m, depth + 1);
    }
    json_array_foreach(v, i, x)
    {
        json_t *nv =
            json_is_string(x) ? redacted(json_string_value(x), json_string_length(x), m) : NULL;
        if (nv)
            json_array_set_new(v, i, nv);
        else
            redact_json(x, m, depth + 1);
    }
}

void tt_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0)
            threshold = (tt_level)i;
    }
}

int tt_log_enabled(tt_level level)
{
    return level >= threshold;
}

void tt_log(tt_level level, const char *msg, json_t *fields)
{
    if (level < threshold) {
        json_decref(fields);
        return;
    }
    char ts[32];
    tt_rfc3339(tt_wall_ms(), ts);
    json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", names[level], "msg", msg);
    if (line && fields) {
        json_object_del(fields, "ts"); /* the line's own, which the redaction skips */
        json_object_del(fields, "level");
        json_object_update(line, fields);
    }
    json_decref(fields);
    tt_redact_map *m = redact && line ? tt_redact_map_new() : NULL;
    if (m) /* ts and level are the server's own: nothing to find there */
        redact_json(line, m, 0);
    tt_redact_map_free(m);
    if (!line)
        return;
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (text) {
        fprintf(stderr, "%s\n", text);
        free(text);
    }
}

void tt_log_throttled(tt_log_throttle *t, uint64_t now_ms, tt_level level, const char *msg,
                      json_t *fields)
{
    if (t->printed && now_ms - t->last_ms < TT_LOG_THROTTLE_MS) {
        t->suppressed++;
        json_decref(fields);
        return;
    }
    if (!fields)
        fields = json_object();
    json_object_set_new(fields, "repeated", json_integer((json_int_t)t->suppressed));
    t->printed = 1;
    t->last_ms = now_ms;
    t->suppressed = 0;
    tt_log(level, msg, fields);
}
