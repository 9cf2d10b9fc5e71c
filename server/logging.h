/* Structured logs: one JSON object per line on stderr,
 * {"ts":"...","level":"info","msg":"listening", ...fields}. No message text
 * from users or models is ever logged by default, and what user text does
 * reach a line (an upstream error quoting the prompt, a tool's arguments in
 * an error) has its PII replaced by placeholders unless --log-redact off. */
#ifndef TT_LOGGING_H
#define TT_LOGGING_H

#include <stdint.h>
#include <jansson.h>

typedef enum tt_level { TT_DEBUG, TT_INFO, TT_WARN, TT_ERROR } tt_level;

/* Set the least severe level printed ("debug", "info", "warn", "error"). */
void tt_log_set_level(const char *name);

/* Redact every string of a line (e-mails, phones, cards, IBANs:
 * agents/llm/redact.h) before printing it: on by default (--log-redact). */
void tt_log_set_redact(int on);

/* Would a line of this level be printed? (Skip building one that would not.) */
int tt_log_enabled(tt_level level);

/* Log msg with fields (an object, consumed; may be NULL). */
void tt_log(tt_level level, const char *msg, json_t *fields);

/* A line that can repeat at the rate of an error (a failing accept, a
 * refused connection): printed at most once per TT_LOG_THROTTLE_MS, with
 * "repeated": how many were left out since the previous one. Zero-init. */
#define TT_LOG_THROTTLE_MS 1000
typedef struct tt_log_throttle {
    uint64_t last_ms;    /* when the last line was printed */
    uint64_t suppressed; /* lines left out since */
    int printed;         /* a line was printed once */
} tt_log_throttle;

/* tt_log() through t at loop time now_ms (fields consumed either way). */
void tt_log_throttled(tt_log_throttle *t, uint64_t now_ms, tt_level level, const char *msg,
                      json_t *fields);

#endif
