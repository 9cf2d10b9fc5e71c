/* Backoff, circuit breakers and the failover planner (see retry.h).
 *
 * The planner is a pure function of the call's history: it keeps no state
 * of its own between steps, so what it decides can always be explained from
 * the attempts recorded (and replayed in tests). */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "agents/llm/retry.h"
#include "protocol/errors.h"

void tt_retry_policy_default(tt_retry_policy *p)
{
    memset(p, 0, sizeof *p); /* no observer */
    p->max_attempts = 4;
    p->base_ms = 250;
    p->max_backoff_ms = 8000;
    p->max_total_ms = 60000;
    p->breaker_failures = 5;
    p->breaker_cooldown_ms = 30000;
}

uint64_t tt_retry_splitmix(void *ud)
{
    uint64_t *s = ud;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int64_t tt_retry_backoff_cap(const tt_retry_policy *p, unsigned attempt)
{
    int64_t cap = p->base_ms > 0 ? p->base_ms : 0;
    /* Double until the cap is reached; never shift into overflow. */
    for (unsigned i = 0; i < attempt && cap > 0 && cap < p->max_backoff_ms; i++)
        cap = cap > INT64_MAX / 2 ? INT64_MAX : cap * 2;
    if (cap > p->max_backoff_ms)
        cap = p->max_backoff_ms;
    return cap > 0 ? cap : 0;
}

int64_t tt_retry_backoff(const tt_retry_policy *p, unsigned attempt, tt_retry_rand_fn rnd, void *ud)
{
    int64_t cap = tt_retry_backoff_cap(p, attempt);
    if (cap == 0)
        return 0;
    /* The top 53 bits as a fraction in [0, 1), scaled to [0, cap]: uniform,
     * and monotonic in the random value (0 gives 0, UINT64_MAX gives cap). */
    double u = (double)(rnd(ud) >> 11) * (1.0 / 9007199254740992.0);
    int64_t d = (int64_t)(u * ((double)cap + 1.0));
    return d > cap ? cap : d;
}

/* ---- Circuit breaker ---- */

void tt_breaker_init(tt_breaker *b, const char *name)
{
    memset(b, 0, sizeof *b);
    b->state = TT_BREAKER_CLOSED;
    if (name)
        snprintf(b->name, sizeof b->name, "%s", name);
}

/* The one place a breaker changes state: the observer hears of each change
 * once, with the reason. Setting the state it is already in is no change. */
static void breaker_set_state(tt_breaker *b, const tt_retry_policy *p, tt_breaker_state to,
                              const char *reason)
{
    assert(to < TT_BREAKER__LAST);
    if (b->state == to)
        return;
    tt_breaker_transition t = {
        .target = b->name, .from = b->state, .to = to, .reason = reason, .failures = b->failures};
    b->state = to;
    if (p->on_breaker)
        p->on_breaker(&t, p->on_breaker_ud);
}

json_t *tt_breaker_transition_json(const tt_breaker_transition *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "msg", "circuit breaker", "target",
                     t->target, "from", tt_breaker_state_name(t->from), "to",
                     tt_breaker_state_name(t->to), "reason", t->reason, "failures", t->failures);
}

const char *tt_breaker_state_name(tt_breaker_state s)
{
    switch (s) {
    case TT_BREAKER_CLOSED:
        return "closed";
    case TT_BREAKER_OPEN:
        return "open";
    case TT_BREAKER_HALF_OPEN:
        return "half_open";
    default:
        return "unknown";
    }
}

int tt_breaker_counts(tt_llm_error_class cls)
{
    switch (cls) {
    case TT_LLM_ERR_RATE_LIMITED:
    case TT_LLM_ERR_OVERLOADED:
    case TT_LLM_ERR_SERVER:
    case TT_LLM_ERR_TIMEOUT:
    case TT_LLM_ERR_NETWORK:
    case TT_LLM_ERR_MALFORMED:
        return 1;
    default:
        return 0;
    }
}

int tt_breaker_available(const tt_breaker *b, const tt_retry_policy *p, int64_t now_ms)
{
    switch (b->state) {
    case TT_BREAKER_CLOSED:
        return 1;
    case TT_BREAKER_OPEN:
        return now_ms - b->opened_ms >= p->breaker_cooldown_ms;
    case TT_BREAKER_HALF_OPEN:
        return !b->trial;
    default:
        assert(!"bad breaker state");
        return 0;
    }
}

int tt_breaker_acquire(tt_breaker *b, const tt_retry_policy *p, int64_t now_ms)
{
    if (!tt_breaker_available(b, p, now_ms))
        return 0;
    if (b->state == TT_BREAKER_OPEN)
        breaker_set_state(b, p, TT_BREAKER_HALF_OPEN, "cooldown over: one trial request");
    if (b->state == TT_BREAKER_HALF_OPEN)
        b->trial = 1;
    return 1;
}

static void breaker_open(tt_breaker *b, const tt_retry_policy *p, int64_t now_ms,
                         const char *reason)
{
    breaker_set_state(b, p, TT_BREAKER_OPEN, reason);
    b->opened_ms = now_ms;
    b->failures = 0;
    b->trial = 0;
}

void tt_breaker_record(tt_breaker *b, const tt_retry_policy *p, tt_llm_error_class cls,
                       int64_t now_ms)
{
    if (cls == TT_LLM_ERR_CANCELLED) {
        b->trial = 0;
        return;
    }
    if (!tt_breaker_counts(cls)) {
        breaker_set_state(b, p, TT_BREAKER_CLOSED, "the target answered");
        b->failures = 0;
        b->trial = 0;
        return;
    }
    switch (b->state) {
    case TT_BREAKER_CLOSED:
        if (++b->failures >= p->breaker_failures)
            breaker_open(b, p, now_ms, "consecutive failures");
        break;
    case TT_BREAKER_HALF_OPEN:
        breaker_open(b, p, now_ms, "the trial request failed");
        break;
    case TT_BREAKER_OPEN:
        /* A request let through before the breaker opened came back failing:
         * the breaker is open already, the cooldown keeps running. */
        break;
    default:
        assert(!"bad breaker state");
    }
}

/* ---- One logical call ---- */

int tt_retry_call_init(tt_retry_call *c, const tt_retry_policy *p, size_t n_targets, int64_t now_ms)
{
    memset(c, 0, sizeof *c);
    if (n_targets == 0 || n_targets > TT_RETRY_MAX_TARGETS || p->max_attempts < 1 ||
        p->max_attempts > TT_RETRY_MAX_ATTEMPTS || p->base_ms < 0 ||
        p->max_backoff_ms < p->base_ms || p->max_backoff_ms > TT_RETRY_MAX_MS ||
        p->max_total_ms < 0 || p->max_total_ms > TT_RETRY_MAX_MS || p->breaker_failures < 1 ||
        p->breaker_cooldown_ms < 0 || p->breaker_cooldown_ms > TT_RETRY_MAX_MS)
        return TT_EINVAL;
    c->policy = p;
    c->n_targets = n_targets;
    c->started_ms = now_ms;
    return 0;
}

int tt_retry_call_record(tt_retry_call *c, size_t target, const tt_llm_error *e, int64_t now_ms)
{
    if (target >= c->n_targets || e->cls == TT_LLM_ERR_NONE || e->cls >= TT_LLM_ERR__LAST)
        return TT_EINVAL;
    if (c->n_hist >= TT_RETRY_MAX_ATTEMPTS)
        return TT_EFULL;
    tt_retry_attempt *a = &c->hist[c->n_hist++];
    a->target = target;
    a->cls = e->cls;
    a->retry_after_ms = e->retry_after_ms >= 0 ? e->retry_after_ms : -1;
    a->ended_ms = now_ms;
    return 0;
}

static int transient(tt_llm_error_class cls)
{
    return cls == TT_LLM_ERR_SERVER || cls == TT_LLM_ERR_TIMEOUT || cls == TT_LLM_ERR_NETWORK;
}

static int throttled(tt_llm_error_class cls)
{
    return cls == TT_LLM_ERR_RATE_LIMITED || cls == TT_LLM_ERR_OVERLOADED;
}

/* What the history says about one target. */
typedef struct target_view {
    int failures;  /* attempts on it that failed */
    int transient; /* of which SERVER / TIMEOUT / NETWORK */
    int left_out;  /* AUTH or MALFORMED: not again in this call */
    int64_t ended; /* its last failure */
    int64_t retry_after;
    int usable;
    int64_t delay; /* from now until it is ready (<= 0: ready) */
} target_view;

static void give_up(tt_retry_step *out, tt_llm_error_class cls, const char *why)
{
    out->action = TT_RETRY_GIVE_UP;
    out->cls = cls;
    out->why = why;
}

static void try_target(tt_retry_step *out, size_t target, int64_t delay, const char *why)
{
    out->action = TT_RETRY_TRY;
    out->target = target;
    out->delay_ms = delay > 0 ? delay : 0;
    out->why = why;
}

static size_t count_class(const tt_retry_call *c, tt_llm_error_class cls)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_hist; i++)
        n += c->hist[i].cls == cls;
    return n;
}

/* The first attempt of a call: the first target in route order whose breaker
 * lets a request through, at once. */
static void plan_first_attempt(const tt_retry_call *c, const tt_breaker *breakers, int64_t now_ms,
                               tt_retry_step *out)
{
    for (size_t t = 0; t < c->n_targets; t++) {
        if (tt_breaker_available(&breakers[t], c->policy, now_ms)) {
            try_target(out, t, 0, "first attempt");
            return;
        }
    }
    out->breakers_open = 1;
    give_up(out, TT_LLM_ERR_OVERLOADED, "every target's circuit breaker is open");
}

/* The classes no other attempt can mend. Returns 1 when it gave up. */
static int plan_stop_on_class(const tt_retry_call *c, const tt_retry_attempt *last, int budget_left,
                              tt_retry_step *out)
{
    switch (last->cls) {
    case TT_LLM_ERR_CONTEXT_LENGTH:
        out->target = last->target;
        out->trim = count_class(c, TT_LLM_ERR_CONTEXT_LENGTH) == 1 && budget_left;
        give_up(out, last->cls, "prompt too long for the model");
        return 1;
    case TT_LLM_ERR_BAD_REQUEST:
    case TT_LLM_ERR_CONTENT_FILTER:
    case TT_LLM_ERR_CANCELLED:
        give_up(out, last->cls, "not retryable");
        return 1;
    case TT_LLM_ERR_NONE:
    case TT_LLM_ERR__LAST:
        assert(!"a history holds failures only");
        give_up(out, last->cls, "not a failure");
        return 1;
    default:
        return 0;
    }
}

/* Attempts, time, or a second malformed answer used up. Returns 1 when it
 * gave up. */
static int plan_stop_on_budget(const tt_retry_call *c, const tt_retry_attempt *last,
                               int attempts_left, int time_left, tt_retry_step *out)
{
    if (!attempts_left) {
        give_up(out, last->cls, "attempts exhausted");
        return 1;
    }
    if (!time_left) {
        give_up(out, last->cls, "time budget exhausted");
        return 1;
    }
    if (last->cls == TT_LLM_ERR_MALFORMED && count_class(c, TT_LLM_ERR_MALFORMED) > 1) {
        give_up(out, last->cls, "malformed response twice");
        return 1;
    }
    return 0;
}

/* Fold the history into one view per target. */
static void target_views_from_history(const tt_retry_call *c, target_view *v)
{
    memset(v, 0, sizeof(target_view) * TT_RETRY_MAX_TARGETS);
    for (size_t i = 0; i < c->n_hist; i++) {
        const tt_retry_attempt *a = &c->hist[i];
        target_view *tv = &v[a->target];
        tv->failures++;
        tv->transient += transient(a->cls);
        tv->left_out |= a->cls == TT_LLM_ERR_AUTH || a->cls == TT_LLM_ERR_MALFORMED;
        tv->ended = a->ended_ms;
        tv->retry_after = a->retry_after_ms;
    }
}

/* When a target that failed is ready again, from now: max(Retry-After,
 * backoff). Retry-After is the provider's word: never shortened, and a
 * target that cannot be retried inside the budget is given up on (returns
 * 0); the backoff is shortened to end inside it. */
static int target_ready_in(const tt_retry_policy *p, const target_view *tv, int64_t now_ms,
                           int64_t remaining, tt_retry_rand_fn rnd, void *rnd_ud, int64_t *delay)
{
    int64_t ra = tv->retry_after >= 0 ? tv->retry_after - (now_ms - tv->ended) : 0;
    if (ra >= remaining)
        return 0;
    int64_t bo =
        tv->ended - now_ms + tt_retry_backoff(p, (unsigned)(tv->failures - 1), rnd, rnd_ud);
    if (bo >= remaining)
        bo = remaining - 1;
    *delay = ra > bo ? ra : bo;
    return 1;
}

/* Mark which targets are usable and when each is ready. Returns 1 when some
 * target was left out only because its breaker is open. */
static int mark_usable_targets(const tt_retry_call *c, const tt_breaker *breakers, int64_t now_ms,
                               int64_t remaining, tt_retry_rand_fn rnd, void *rnd_ud,
                               target_view *v)
{
    int breaker_blocked = 0;
    for (size_t t = 0; t < c->n_targets; t++) {
        target_view *tv = &v[t];
        if (tv->left_out)
            continue;
        if (!tt_breaker_available(&breakers[t], c->policy, now_ms)) {
            breaker_blocked = 1;
            continue;
        }
        if (tv->failures == 0) {
            tv->usable = 1;
            tv->delay = 0;
            continue;
        }
        tv->usable = target_ready_in(c->policy, tv, now_ms, remaining, rnd, rnd_ud, &tv->delay);
    }
    return breaker_blocked;
}

/* Fail over from target f: the first target after it that is ready now,
 * else the one ready soonest (ties go to route order from f + 1). A
 * throttled target competes on its Retry-After; one that failed twice in a
 * row otherwise is the last resort. Returns SIZE_MAX when none is usable. */
static size_t failover_target(const tt_retry_call *c, const target_view *v, size_t f,
                              tt_llm_error_class last_cls)
{
    size_t best = SIZE_MAX;
    size_t others = transient(last_cls) ? c->n_targets - 1 : c->n_targets;
    for (size_t k = 1; k <= others; k++) {
        size_t t = (f + k) % c->n_targets;
        if (!v[t].usable)
            continue;
        if (v[t].delay <= 0)
            return t;
        if (best == SIZE_MAX || v[t].delay < v[best].delay)
            best = t;
    }
    if (best == SIZE_MAX && v[f].usable)
        best = f;
    return best;
}

static const char *failover_reason(size_t chosen, size_t failed, tt_llm_error_class last_cls)
{
    if (chosen == failed)
        return "retry the same target (no other is ready sooner)";
    if (throttled(last_cls))
        return "failover after rate limit or overload";
    if (last_cls == TT_LLM_ERR_AUTH)
        return "failover after an authentication failure";
    if (last_cls == TT_LLM_ERR_MALFORMED)
        return "failover after a malformed response";
    return "failover after repeated transient failures";
}

void tt_retry_plan(const tt_retry_call *c, const tt_breaker *breakers, int64_t now_ms,
                   tt_retry_rand_fn rnd, void *rnd_ud, tt_retry_step *out)
{
    memset(out, 0, sizeof *out);
    assert(c->n_targets >= 1 && c->n_targets <= TT_RETRY_MAX_TARGETS);
    if (c->n_hist == 0) {
        plan_first_attempt(c, breakers, now_ms, out);
        return;
    }

    const tt_retry_attempt *last = &c->hist[c->n_hist - 1];
    int64_t deadline = c->started_ms + c->policy->max_total_ms;
    int attempts_left = c->n_hist < (size_t)c->policy->max_attempts;
    int time_left = now_ms < deadline;
    if (plan_stop_on_class(c, last, attempts_left && time_left, out) ||
        plan_stop_on_budget(c, last, attempts_left, time_left, out))
        return;

    target_view v[TT_RETRY_MAX_TARGETS];
    target_views_from_history(c, v);
    int breaker_blocked =
        mark_usable_targets(c, breakers, now_ms, deadline - now_ms, rnd, rnd_ud, v);

    size_t f = last->target;
    if (transient(last->cls) && v[f].transient == 1 && v[f].usable) {
        try_target(out, f, v[f].delay, "retry after a transient failure");
        return;
    }
    size_t best = failover_target(c, v, f, last->cls);
    if (best == SIZE_MAX) {
        out->breakers_open = breaker_blocked;
        give_up(out, last->cls,
                breaker_blocked ? "no usable target; breakers open" : "no usable target");
        return;
    }
    try_target(out, best, v[best].delay, failover_reason(best, f, last->cls));
}
