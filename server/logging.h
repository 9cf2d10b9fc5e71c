/* Structured logs: one JSON object per line on stderr,
 * {"ts":"...","level":"info","msg":"listening", ...fields}. No message text
 * from users or models is ever logged by default. */
#ifndef TT_LOGGING_H
#define TT_LOGGING_H

#include <jansson.h>

typedef enum tt_level { TT_DEBUG, TT_INFO, TT_WARN, TT_ERROR } tt_level;

/* Set the least severe level printed ("debug", "info", "warn", "error"). */
void tt_log_set_level(const char *name);

/* Log msg with fields (an object, consumed; may be NULL). */
void tt_log(tt_level level, const char *msg, json_t *fields);

#endif
