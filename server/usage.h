/* What model calls cost, and who pays: the server's side of the cost ledger
 * (state/ledger.h), its Prometheus counters, GET /v1/usage and the rate
 * limits per API key, user, tenant and IP (limits.h), the budgets with
 * their reservations (budgets.h) and the --limits file (limits_conf.h).
 *
 * Every provider attempt reaches tt_usage_on_llm (the model service's usage
 * hook, agents/llm/call.h), on the loop: a ledger row is queued (no I/O),
 * the counters of its (tenant, model) grow, and its tokens are charged to
 * the key's and the tenant's buckets. Queued rows are written in one
 * transaction every --usage-flush-ms, or at once when TT_LEDGER_QUEUE_MAX
 * are waiting, and at shutdown.
 *
 * Counters are kept for at most TT_USAGE_SERIES_MAX (tenant, model) pairs;
 * later pairs are counted under tenant="_other", model="_other", so the
 * label cardinality of /metrics is bounded whatever the traffic (tenants
 * come from the API keys, models from the routes file). */
#ifndef TT_USAGE_H
#define TT_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/call.h"
#include "protocol/buf.h"
#include "server/budgets.h"
#include "server/limits.h"
#include "server/limits_conf.h"
#include "state/ledger.h"

#define TT_USAGE_SERIES_MAX 128

struct tt_server;

typedef struct tt_usage_series {
    char tenant[64], model[128];
    uint64_t calls, errors, prompt_tokens, completion_tokens;
    double cost_usd;
} tt_usage_series;

typedef struct tt_usage {
    struct tt_server *srv;
    tt_ledger *ledger;
    uv_timer_t timer; /* the periodic flush */
    int timer_open;
    tt_limits_conf conf; /* the flags and --limits */
    tt_limits limits;
    tt_budgets budgets;
    tt_usage_series series[TT_USAGE_SERIES_MAX + 1]; /* the last one: "_other" */
    size_t n_series;
    uint64_t flush_errors;
} tt_usage;

/* Open the ledger on the server's store and start the flush timer. */
int tt_usage_start(struct tt_server *srv, tt_usage *u);
/* Stop the timer (closed asynchronously) and write what is queued. */
void tt_usage_stop(tt_usage *u);
/* Write what is queued and free the ledger (after the model service is
 * closed: cancelled calls still report). */
void tt_usage_free(tt_usage *u);

/* Read the limits: the flags, then the --limits file. TT_EINVAL with the
 * reason (naming the JSON path) in err (size n). */
int tt_usage_limits_load(const struct tt_server *srv, tt_limits_conf *conf, char *err, size_t n);

/* May a request of who start now? (Its key, user and tenant when it may
 * call a model; its IP for every socket request of that kind and every
 * /v1/ HTTP route.) 0; or TT_ERATE (*retry_after_s set) or TT_EBUDGET (a
 * budget of its tenant, user or key is spent), with the reason in why (size
 * n). Counted against the rate limits when 0. Before tt_usage_start (a
 * zeroed tt_usage): always 0. */
int tt_usage_admit(tt_usage *u, const tt_limits_who *who, int64_t *retry_after_s, char *why,
                   size_t n);

/* The model service's gate (agents/llm/gate.h; ud: the server): reserve a
 * call's estimate against its budgets, release it when it ends. */
int tt_usage_gate_reserve(const tt_llm_gate_ask *a, void *ud, uint64_t *hold);
void tt_usage_gate_release(uint64_t hold, void *ud);

/* A say to s: unless s is still running (the say will be refused), a new
 * run begins and the run's budget starts again from zero. */
struct tt_session;
void tt_usage_turn_begin(tt_usage *u, const struct tt_session *s);

/* GET /v1/budgets for an API key of tenant: 200 and *body (malloc'd JSON). */
int tt_usage_budgets_answer(tt_usage *u, const char *tenant, char **body, size_t *len);

/* The model service's usage hook (ud: the server). */
void tt_usage_on_llm(const tt_llm_usage *lu, void *ud);

/* GET /v1/usage for an API key of tenant: the query string args (from, to,
 * group_by; NULL when absent) and whether CSV is wanted. Returns the HTTP
 * status; *body (malloc'd) and *type are the answer (an error body is
 * {"error": {"code", "message"}}). */
int tt_usage_answer(tt_usage *u, const char *tenant, const char *from, const char *to,
                    const char *group_by, int csv, char **body, size_t *len, const char **type);

/* The counters, in Prometheus text format (malloc'd; NULL on OOM). */
char *tt_usage_metrics_text(const tt_usage *u);

#endif
