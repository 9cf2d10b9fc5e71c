/* Retry, backoff, circuit breakers and failover for model calls, written once
 * above the adapters (ARCHITECTURE.md, principle 5).
 *
 * Pure logic: no I/O, no clock, no global state. Time comes in as a
 * parameter (milliseconds on any monotonic clock) and randomness from a
 * caller-supplied source, so every decision is reproducible in tests.
 *
 * One logical call goes like this (call.h does it on the loop):
 *
 *     tt_retry_call_init(&call, policy, n_targets, now);
 *     for (;;) {
 *         tt_retry_plan(&call, breakers, now, rnd, rnd_ud, &step);
 *         if (step.action == TT_RETRY_GIVE_UP) break;       // report step.cls
 *         wait step.delay_ms;
 *         if (!tt_breaker_acquire(&breakers[step.target], policy, now)) continue;  // re-plan
 *         outcome = attempt(step.target);
 *         tt_breaker_record(&breakers[step.target], policy, outcome.cls, now);
 *         if (outcome.cls == TT_LLM_ERR_NONE) break;         // done
 *         tt_retry_call_record(&call, step.target, &outcome, now);
 *     }
 *
 * An attempt that has already delivered output to a client must not be
 * retried (the words cannot be taken back); that is the caller's call. */
#ifndef TT_RETRY_H
#define TT_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/llm.h"

#define TT_RETRY_MAX_ATTEMPTS 16 /* max_attempts is at most this (the history is a fixed array) */
#define TT_RETRY_MAX_TARGETS 8   /* targets of one route */
#define TT_RETRY_MAX_MS (INT64_C(1) << 40) /* no duration in a policy is longer (~35 years) */

struct tt_breaker_transition;

/* Told of every breaker state change (see tt_breaker_transition). */
typedef void (*tt_breaker_observer)(const struct tt_breaker_transition *t, void *ud);

/* The policy, from the routes file's "retry" and "breaker" objects
 * (route.h); tt_retry_policy_default() gives the values in brackets. */
typedef struct tt_retry_policy {
    int max_attempts;       /* attempts per logical call, all targets, first one included [4] */
    int64_t base_ms;        /* backoff cap for a target's first failure [250] */
    int64_t max_backoff_ms; /* the cap never grows past this [8000] */
    int64_t max_total_ms;   /* no attempt starts later than this after the first [60000] */
    int breaker_failures;   /* consecutive failures that open a target's breaker [5] */
    int64_t breaker_cooldown_ms; /* an open breaker lets a trial through after this [30000] */
    /* Told of every breaker transition (the service logs it); NULL: nobody. */
    tt_breaker_observer on_breaker;
    void *on_breaker_ud;
} tt_retry_policy;

void tt_retry_policy_default(tt_retry_policy *p);

/* A source of uniformly distributed 64-bit values. */
typedef uint64_t (*tt_retry_rand_fn)(void *ud);

/* splitmix64 over the uint64_t that ud points to: fast, good enough for
 * jitter, not for secrets. The caller seeds it (e.g. from uv_hrtime()). */
uint64_t tt_retry_splitmix(void *ud);

/* Full-jitter backoff: a delay drawn uniformly from
 * [0, min(max_backoff_ms, base_ms * 2^attempt)], attempt counting from 0.
 * Spreading retries over the whole interval keeps many clients that failed
 * together from coming back together. */
int64_t tt_retry_backoff(const tt_retry_policy *p, unsigned attempt, tt_retry_rand_fn rnd,
                         void *ud);

/* The cap tt_retry_backoff() draws under (no randomness). */
int64_t tt_retry_backoff_cap(const tt_retry_policy *p, unsigned attempt);

/* ---- Circuit breaker: one per target, shared by every call to it ---- */

typedef enum tt_breaker_state {
    TT_BREAKER_CLOSED,    /* requests flow; consecutive failures are counted */
    TT_BREAKER_OPEN,      /* requests are refused until the cooldown has passed */
    TT_BREAKER_HALF_OPEN, /* cooldown over: one trial request at a time is let through */
    TT_BREAKER__LAST
} tt_breaker_state;

#define TT_BREAKER_NAME_MAX 160

/* Plain data: zero-initialised (or tt_breaker_init) is a closed breaker.
 * Used from the loop thread only. Its state changes only through one
 * function in retry.c, which tells the policy's on_breaker. */
typedef struct tt_breaker {
    tt_breaker_state state;
    int failures;                   /* consecutive failures counted while closed */
    int64_t opened_ms;              /* when it last opened */
    int trial;                      /* half-open: the one trial is in flight */
    char name[TT_BREAKER_NAME_MAX]; /* the target, for the transition log ("" unnamed) */
} tt_breaker;

/* One state change of a breaker, as told to tt_retry_policy.on_breaker. */
typedef struct tt_breaker_transition {
    const char *target; /* the breaker's name */
    tt_breaker_state from, to;
    const char *reason; /* static string: why it changed */
    int failures;       /* consecutive failures counted when it opened */
} tt_breaker_transition;

/* A closed breaker named name (may be NULL; cut to TT_BREAKER_NAME_MAX - 1 bytes). */
void tt_breaker_init(tt_breaker *b, const char *name);
const char *tt_breaker_state_name(tt_breaker_state s);

/* The transition as a log line {"msg":"circuit breaker", "target", "from",
 * "to", "reason", "failures"} (new reference; NULL when out of memory). */
json_t *tt_breaker_transition_json(const tt_breaker_transition *t);

/* Would tt_breaker_acquire() let a request through now? Changes nothing. */
int tt_breaker_available(const tt_breaker *b, const tt_retry_policy *p, int64_t now_ms);

/* Take a request slot: returns 1 and, when the cooldown has passed, moves
 * OPEN to HALF_OPEN and marks the trial in flight; returns 0 when refused.
 * Every acquire that returned 1 must be followed by one tt_breaker_record(). */
int tt_breaker_acquire(tt_breaker *b, const tt_retry_policy *p, int64_t now_ms);

/* The outcome of an acquired request. Classes that say the target is
 * unhealthy (RATE_LIMITED, OVERLOADED, SERVER, TIMEOUT, NETWORK, MALFORMED)
 * count as failures: breaker_failures in a row open a closed breaker, and a
 * failed trial opens a half-open one again. An answer from a working target
 * (NONE, CONTEXT_LENGTH, BAD_REQUEST, AUTH, CONTENT_FILTER) is a success: it
 * resets the count and closes the breaker (even an open one, when a request
 * let through before it opened comes back well: the target works).
 * CANCELLED says nothing about the target: a half-open breaker frees its
 * trial slot, nothing else. */
void tt_breaker_record(tt_breaker *b, const tt_retry_policy *p, tt_llm_error_class cls,
                       int64_t now_ms);

/* Does a failure of this class count against a target's breaker? */
int tt_breaker_counts(tt_llm_error_class cls);

/* ---- One logical call: its history and the planner ---- */

typedef struct tt_retry_attempt {
    size_t target;          /* index into the route's targets */
    tt_llm_error_class cls; /* how it failed (never NONE in a history) */
    int64_t retry_after_ms; /* the provider's Retry-After, -1 when it gave none */
    int64_t ended_ms;       /* when the failure was seen */
} tt_retry_attempt;

/* Plain data owned by the caller (no allocation, nothing to free). */
typedef struct tt_retry_call {
    const tt_retry_policy *policy; /* borrowed; outlives the call */
    size_t n_targets;
    int64_t started_ms;
    tt_retry_attempt hist[TT_RETRY_MAX_ATTEMPTS];
    size_t n_hist;
} tt_retry_call;

/* Start a call over n_targets targets (1..TT_RETRY_MAX_TARGETS) at now_ms.
 * Returns 0 or TT_EINVAL (bad count, or a policy out of range). */
int tt_retry_call_init(tt_retry_call *c, const tt_retry_policy *p, size_t n_targets,
                       int64_t now_ms);

/* Add a failed attempt to the history. Returns 0, TT_EINVAL for a target out
 * of range or class NONE, TT_EFULL when the history is full (the planner
 * gives up before that happens). */
int tt_retry_call_record(tt_retry_call *c, size_t target, const tt_llm_error *e, int64_t now_ms);

typedef enum tt_retry_action {
    TT_RETRY_TRY,     /* start an attempt on target after delay_ms */
    TT_RETRY_GIVE_UP, /* stop; report cls */
} tt_retry_action;

typedef struct tt_retry_step {
    tt_retry_action action;
    size_t target;          /* TRY: which target; GIVE_UP with trim: the one to try trimmed */
    int64_t delay_ms;       /* TRY: wait this long from now (0: at once) */
    tt_llm_error_class cls; /* GIVE_UP: the class to report */
    int trim;               /* GIVE_UP CONTEXT_LENGTH: the caller may shorten the prompt and
                               try `target` once more, recording into the same call */
    int breakers_open;      /* GIVE_UP: some target was left out only because its breaker is open */
    const char *why;        /* static text for logs: "failover after rate limit", ... */
} tt_retry_step;

/* Decide the next step of call c from its history, the targets' breakers
 * (n_targets of them, read only) and now. rnd draws backoff jitter.
 *
 * Rules, in order:
 *  - No attempt yet: the first target (route order) whose breaker is
 *    available, at once. None: GIVE_UP OVERLOADED with breakers_open
 *    (every target's breaker is open: the model is unavailable).
 *  - CONTEXT_LENGTH: not retried here. GIVE_UP CONTEXT_LENGTH; trim is set on
 *    the first one of the call if attempts and time remain (the caller may
 *    trim and retry once on step.target).
 *  - BAD_REQUEST, CONTENT_FILTER, CANCELLED: GIVE_UP with that class (the
 *    same request would fail the same way anywhere).
 *  - Any other class, once max_attempts attempts were made or the time
 *    budget (max_total_ms from the first attempt) is spent: GIVE_UP with the
 *    last class.
 *  - AUTH: that target is never tried again in this call (its key is bad);
 *    fail over to another (it may hold another key).
 *  - MALFORMED: retried once, on another target (the failing one is left
 *    out of the call); a second MALFORMED gives up.
 *  - SERVER, TIMEOUT, NETWORK: the first such failure on a target retries
 *    that same target after a backoff; a second one fails over.
 *  - RATE_LIMITED, OVERLOADED: fail over to the next target at once, so a
 *    throttled region is not hammered; a throttled target comes back only
 *    once its Retry-After and backoff have passed.
 * Failing over means: among the usable targets, the first one after the
 * failed target (route order, wrapping round) that is ready now; if none is
 * ready, the one ready soonest, after a delay. After SERVER, TIMEOUT or
 * NETWORK the failed target is only the last resort (no other usable
 * target); after RATE_LIMITED or OVERLOADED it competes on when its
 * Retry-After lets it back in. A target is usable when it is not left out
 * (AUTH, MALFORMED), its breaker is available, and its last Retry-After does
 * not reach past the time budget ("give up on that target and fail over").
 * A target that failed becomes ready at ended + max(Retry-After, backoff),
 * the backoff's attempt number being the count of that target's failures in
 * the call minus one. A Retry-After is never shortened; a backoff is
 * shortened to end inside the budget. No usable target: GIVE_UP with the
 * last class (breakers_open says whether breakers were among the reasons). */
void tt_retry_plan(const tt_retry_call *c, const tt_breaker *breakers, int64_t now_ms,
                   tt_retry_rand_fn rnd, void *rnd_ud, tt_retry_step *out);

#endif
