/* Tools a model may call. Each tool has a JSON Schema for its arguments
 * (the subset in schema.h), an executor, and a JSON result. Arguments from
 * the model are validated before anything runs: invalid arguments go back to
 * the model as a tool error and the tool is never executed.
 *
 * Two kinds:
 *  - built-in C tools: "current_time" ({"utc_offset_minutes"?} -> ISO time),
 *    "calculate" ({"expression"} -> number; + - * / ^ and parentheses on
 *    decimal numbers, nothing else) and "retrieve" ({"query", "k"?} -> the
 *    passages of the assistant's document collection that match; run by the
 *    chat agent, which knows the session's tenant: agents/retrieval/);
 *  - HTTP tools declared in a JSON file (--tools FILE):
 *      {"tools": [{"name": "weather", "description": "...",
 *                  "parameters": {JSON Schema}, "url": "https://...",
 *                  "method": "POST", "timeout_ms": 5000,
 *                  "secret_header": "X-Api-Key", "secret_env": "WEATHER_KEY",
 *                  "approval": true, "idempotent": false,
 *                  "approval_ttl_s": 600, "editable": ["to"]}]}
 *    called through libcurl on the loop with the arguments as a JSON body
 *    (POST) and the response body, which must be JSON, as the result. The
 *    secret is read at load from the variable secret_env names (a variable
 *    name, protocol/env.h) and never logged.
 *    Redirects are not followed (one could lead to another host): a 3xx is
 *    a failure that names its Location. "approval": true marks a tool that
 *    acts on the world (sends mail, pays, deletes): the chat agent asks the
 *    user to approve each call, with its exact arguments, before it runs.
 *    Every HTTP call carries an "Idempotency-Key" header (the caller's key,
 *    stable across retries and restarts). "idempotent": true declares a tool
 *    safe to send again with the same key after a crash cut it short; any
 *    other HTTP tool cut short is reported as "may have run", not re-sent.
 *    With "approval": true, "approval_ttl_s" (1 .. 30 days; default the
 *    server's --wait-expiry-s) is how long a call waits for its decide
 *    before it expires unanswered, and "editable" names the arguments the
 *    user may change when approving (decide `edits`; the edited arguments
 *    are checked against the parameters again). */
#ifndef TT_TOOLS_H
#define TT_TOOLS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "agents/llm/http.h"

#define TT_TOOLS_MAX 64
#define TT_TOOL_RESULT_MAX (256 * 1024) /* bytes of an HTTP tool's response */

typedef struct tt_tool tt_tool;

/* The outcome, exactly once: ok with a result, or not ok with an error
 * message the model may read. result is borrowed for the call. */
typedef void (*tt_tool_done_fn)(void *ud, int ok, json_t *result, const char *error);

typedef struct tt_toolbox {
    tt_tool *tools;
    size_t n;
    tt_http *http; /* borrowed: the transport for HTTP tools */
} tt_toolbox;

/* The built-in tools, plus the HTTP tools of file (NULL: none). envp gives
 * the secrets. TT_EINVAL with a message naming the tool and field. Free with
 * tt_tools_free(). */
int tt_tools_load(const char *file, char **envp, tt_http *http, tt_toolbox *out, char *err,
                  size_t n);
void tt_tools_free(tt_toolbox *box);

const tt_tool *tt_tools_find(const tt_toolbox *box, const char *name);
const char *tt_tool_name(const tt_tool *t);
const char *tt_tool_description(const tt_tool *t);
json_t *tt_tool_parameters(const tt_tool *t); /* borrowed */
/* 1 when every call of t waits for the user's approval ("approval": true). */
int tt_tool_needs_approval(const tt_tool *t);

/* 1 for the built-in "retrieve" (the chat agent runs it: chat_tools.c). */
int tt_tool_is_retrieve(const tt_tool *t);
/* 1 for a tool declared in the tools file (it calls a URL), 0 for a built-in. */
int tt_tool_is_http(const tt_tool *t);
#define TT_TOOL_APPROVAL_TTL_MAX_S (30 * 86400)
/* How long a call of t waits for its decide ("approval_ttl_s"; 0: not set). */
int64_t tt_tool_approval_ttl_ms(const tt_tool *t);
/* The argument names a decide may edit ("editable": borrowed array), or NULL. */
json_t *tt_tool_editable(const tt_tool *t);
/* 1 when the tools file declares t safe to send twice ("idempotent": true). */
int tt_tool_idempotent(const tt_tool *t);

/* 0 when args (JSON text from the model) parse and match t's schema, else
 * TT_EINVAL with why (the same words tt_tool_call would report). */
int tt_tool_check_args(const tt_tool *t, const char *args_json, char *why, size_t n);

/* The longest Idempotency-Key tt_tool_call accepts. */
#define TT_TOOL_IDEM_KEY_MAX 128

/* Validate args (JSON text from the model) and run the tool. done may run
 * before this returns (built-ins, invalid arguments) or later (HTTP). An
 * HTTP tool sends idem_key as its "Idempotency-Key" header (NULL: none); a
 * key longer than TT_TOOL_IDEM_KEY_MAX or with a byte outside printable
 * ASCII fails the call before anything is sent. */
void tt_tool_call(const tt_toolbox *box, const tt_tool *t, const char *args_json,
                  const char *idem_key, tt_tool_done_fn done, void *ud);

/* The calculator on its own (for tests): 0 and *out, or TT_EINVAL with why. */
int tt_tool_calculate(const char *expr, double *out, char *why, size_t n);

#endif
