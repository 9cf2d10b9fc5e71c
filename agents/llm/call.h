/* One logical model call: a route alias in, one normalized stream out, with
 * retries, backoff, failover, token limits, cost and one log line per
 * provider attempt (a successful one only with log_ok). Everything above (the chat agent, the
 * OpenAI-compatible gateway) calls models through this header only.
 *
 *   tt_llm_service   the process-wide part: the HTTP transport, the routes,
 *                    prices and limits, the tokenizer, the log sink.
 *   tt_llm_call      one call; owns a copy of its request.
 *
 * The stream a caller sees: TEXT / TOOL_CALL / USAGE events from the current
 * attempt. When an attempt fails after it already produced output and
 * another attempt follows, on_restart() is called first, so the caller can
 * withdraw what it showed (message.discard) — output is never silently
 * duplicated. on_done() ends every call exactly once (success, a classified
 * error, or a cancel).
 *
 * The call's own work before each attempt (hashing, counting tokens to fit
 * the budget, building the provider's body) runs in libuv's thread pool when
 * the request holds more than TT_CALL_PREPARE_INLINE_MAX bytes of text, so a
 * request of megabytes never holds the loop; hooks still run on the loop. */
#ifndef TT_CALL_H
#define TT_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "agents/llm/gate.h"
#include "agents/llm/llm.h"

typedef struct tt_llm_service tt_llm_service;
typedef struct tt_llm_call tt_llm_call;
typedef struct tt_llm_cache tt_llm_cache; /* the exact response cache (cache.h) */

/* One JSON object per provider attempt (the caller writes it to its log). */
typedef void (*tt_llm_log_fn)(json_t *line, void *ud);

/* One provider attempt as it is paid for: handed to the usage hook right
 * after the attempt's log line, on the loop (the server writes its ledger
 * row and counts the key's tokens). Pointers live for the hook only. */
typedef struct tt_llm_usage {
    const tt_llm_attribution *attr; /* never NULL (all "" when the caller gave none) */
    const char *route, *model, *target, *outcome; /* outcome: "ok" or an error class */
    int64_t prompt_tokens, completion_tokens, latency_ms;
    double cost_usd;
    int cache_hit; /* answered by the response cache (cache.h): no provider call, cost 0 */
} tt_llm_usage;
typedef void (*tt_llm_usage_fn)(const tt_llm_usage *u, void *ud);

typedef struct tt_llm_service_options {
    uv_loop_t *loop;
    const char *routes_file;   /* JSON routes file, or NULL: routes from the environment */
    char **envp;               /* where key_env names are resolved */
    const char *tokenizer_dir; /* where BPE rank files are; NULL: estimates only */
    tt_llm_log_fn log;
    void *log_ud;
    int log_ok; /* log successful attempts too; 0: only failed ones (and breaker changes) */
    tt_llm_usage_fn usage; /* every provider attempt, or NULL */
    void *usage_ud;
    tt_llm_cache *cache; /* the response cache (cache.h; the caller's), or NULL: none */
    tt_llm_gate gate;    /* reserve before each call, release after (gate.h); zero: none */
} tt_llm_service_options;

typedef struct tt_llm_result {
    tt_llm_error error; /* cls NONE on success */
    int64_t prompt_tokens, completion_tokens;
    double cost_usd;
    char model[128];           /* the model that answered */
    char target[160];          /* provider/region of the answering target */
    const char *finish_reason; /* static string */
    int attempts;
    size_t dropped_messages; /* oldest turns dropped to fit the context */
    int64_t ttft_ms, total_ms;
    int cached; /* replayed from the response cache (cache.h): cost_usd is 0 */
} tt_llm_result;

typedef struct tt_llm_call_hooks {
    void (*on_event)(tt_llm_call *c, const tt_llm_event *ev, void *ud);
    /* A new attempt starts after output was already passed on. */
    void (*on_restart)(tt_llm_call *c, const tt_llm_error *why, void *ud);
    void (*on_done)(tt_llm_call *c, const tt_llm_result *r, void *ud);
} tt_llm_call_hooks;

/* Build the service. *err (size n) says what is wrong with the routes. */
int tt_llm_service_new(const tt_llm_service_options *opt, tt_llm_service **out, char *err,
                       size_t n);
/* Cancel every call (each gets on_done) and free once the loop closed the
 * handles and every preparation in the thread pool came back. */
/* Load every tokenizer the routes' targets need, in loop's thread pool
 * (the server calls it once listening: start-up does not wait for tens of
 * milliseconds of rank files); a call needing one meanwhile waits for it.
 * 0, or a libuv error (then each loads on first use). */
int tt_llm_service_preload(tt_llm_service *s);
void tt_llm_service_close(tt_llm_service *s);

/* The HTTP transport the service uses (HTTP tools share it). */
struct tt_http *tt_llm_service_http(tt_llm_service *s);

/* The token counts the service remembers (call_request.h), for statistics. */
struct tt_token_cache *tt_llm_service_token_cache(tt_llm_service *s);

/* Write a line (consumed) to the service's log sink. */
void tt_llm_service_log(tt_llm_service *s, json_t *line);

/* Is there a route with this alias? */
int tt_llm_service_has_route(const tt_llm_service *s, const char *alias);

/* Is any route configured? Names of the configured aliases (new reference). */
int tt_llm_service_configured(const tt_llm_service *s);
json_t *tt_llm_service_aliases(const tt_llm_service *s);

/* Start a call of alias with req (copied). NULL alias: the first route.
 * TT_ENOTFOUND for an unknown alias; the gate's error (TT_EBUDGET) when it
 * refuses the call's reservation (gate.h): nothing is sent.
 * On a route with "redact" (route.h; route_redact.c) the messages' PII is
 * sent as placeholders and the events carry the values back. */
int tt_llm_call_start(tt_llm_service *s, const char *alias, const tt_llm_request *req,
                      const tt_llm_call_hooks *hooks, void *ud, tt_llm_call **out);

/* The same, asking every target of the route for model instead of its own
 * (the gateway's pass-through of a model name). TT_EINVAL: an empty model or
 * one of 128 bytes or more. */
int tt_llm_call_start_model(tt_llm_service *s, const char *alias, const char *model,
                            const tt_llm_request *req, const tt_llm_call_hooks *hooks, void *ud,
                            tt_llm_call **out);

/* The model the attempt in flight asks for (valid during the call's hooks). */
const char *tt_llm_call_model(const tt_llm_call *c);

/* The routes (NULL for a NULL s); service.c builds the lookups above on it. */
struct tt_routes;
const struct tt_routes *tt_llm_service_routes(const tt_llm_service *s);
/* Hand a usage row to the service's usage hook (embed.c: an embeddings call). */
void tt_llm_service_report(tt_llm_service *s, const tt_llm_usage *u);

/* Route alias (NULL: the first route), or NULL (agents/llm only: embed.c). */
struct tt_route;
const struct tt_route *tt_llm_service_find_route(const tt_llm_service *s, const char *alias);

/* The alias of the first route with a target of this model name, or NULL. */
const char *tt_llm_service_route_of_model(const tt_llm_service *s, const char *model);

/* Every route and what is behind it: [{alias, targets: [{provider, model}]}]
 * (new reference). */
json_t *tt_llm_service_models(const tt_llm_service *s);

/* Abort: the provider connection is closed at once; on_done follows with
 * class CANCELLED (before this returns, unless called from a hook of c). */
void tt_llm_call_cancel(tt_llm_call *c);

/* Pause or resume the upstream transfer, or the replay of a cached answer
 * (gateway back-pressure; resumed, the rest of a replay may be passed on,
 * and on_done called, before this returns). */
void tt_llm_call_pause(tt_llm_call *c, int paused);

#endif
