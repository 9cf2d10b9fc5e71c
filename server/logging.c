/* JSON-lines logging (see logging.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/event.h"
#include "server/logging.h"
#include "state/session.h"

static const char *names[] = {"debug", "info", "warn", "error"};
static tt_level threshold = TT_INFO; /* set once at start-up, before the loop runs */

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
    if (line && fields)
        json_object_update(line, fields);
    json_decref(fields);
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
