/* The server's side of the rate limits and budgets: the limits read at
 * start-up, the admission of a request, the model service's gate, GET
 * /v1/budgets (see usage.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/usage.h"
#include "state/session.h"

#define NUSD_PER_CENT 10000000LL

int tt_usage_limits_load(const tt_server *srv, tt_limits_conf *conf, char *err, size_t n)
{
    const tt_config *c = &srv->cfg;
    *conf = (tt_limits_conf){0};
    conf->defaults[TT_SCOPE_KEY] =
        (tt_scope_limits){.rpm = c->key_requests_per_min,
                          .tpm = c->key_tokens_per_min,
                          .daily_nusd = c->key_daily_budget_cents * NUSD_PER_CENT,
                          .monthly_nusd = c->key_monthly_budget_cents * NUSD_PER_CENT};
    conf->defaults[TT_SCOPE_TENANT] =
        (tt_scope_limits){.rpm = c->tenant_requests_per_min,
                          .tpm = c->tenant_tokens_per_min,
                          .daily_nusd = c->tenant_daily_budget_cents * NUSD_PER_CENT,
                          .monthly_nusd = c->tenant_monthly_budget_cents * NUSD_PER_CENT};
    if (!c->limits_file[0])
        return 0;
    return tt_limits_conf_load(conf, c->limits_file, err, n);
}

int tt_usage_admit(tt_usage *u, const tt_limits_who *who, int64_t *retry_after_s, char *why,
                   size_t n)
{
    if (!u->srv)
        return 0;      /* not started (no ledger, no limits): nothing to refuse */
    if (who->tenant) { /* a budget already spent: refused before anything is read */
        tt_llm_attribution a = {0};
        snprintf(a.tenant, sizeof a.tenant, "%s", who->tenant);
        snprintf(a.user, sizeof a.user, "%s", who->user ? who->user : "");
        snprintf(a.key_id, sizeof a.key_id, "%s", who->key_id ? who->key_id : "");
        if (tt_budgets_reserve(&u->budgets, &a, 0, tt_ledger_day_of_ms(tt_wall_ms()),
                               uv_now(&u->srv->loop), NULL) != 0) {
            snprintf(why, n, "%s", u->budgets.why);
            return TT_EBUDGET;
        }
    }
    return tt_limits_admit(&u->limits, who, uv_now(&u->srv->loop), retry_after_s, why, n);
}

int tt_usage_gate_reserve(const tt_llm_gate_ask *a, void *ud, uint64_t *hold)
{
    tt_server *srv = ud;
    tt_usage *u = &srv->usage;
    if (!u->srv) {
        *hold = 0;
        return 0;
    }
    int64_t nusd = (int64_t)ceil(a->usd * TT_NUSD_PER_USD);
    int rc = tt_budgets_reserve(&u->budgets, a->attr, nusd, tt_ledger_day_of_ms(tt_wall_ms()),
                                uv_now(&srv->loop), hold);
    /* A run stopped is worth a line; a flood of refused gateway calls is
     * counted (tether_budget_refused_total) and logged at debug only. */
    tt_level level = a->attr->session[0] ? TT_INFO : TT_DEBUG;
    if (rc && tt_log_enabled(level))
        tt_log(level, "model call refused: budget",
               json_pack("{s:s, s:s, s:s, s:s, s:f}", "tenant", a->attr->tenant, "agent",
                         a->attr->agent, "session", a->attr->session, "reason", u->budgets.why,
                         "estimate_usd", a->usd));
    return rc;
}

void tt_usage_gate_release(uint64_t hold, void *ud)
{
    tt_server *srv = ud;
    if (srv->usage.srv)
        tt_budgets_release(&srv->usage.budgets, hold);
}

void tt_usage_turn_begin(tt_usage *u, const tt_session *s)
{
    if (u->srv && s->state != TT_STATE_RUNNING)
        tt_budgets_run_begin(&u->budgets, s->id);
}

int tt_usage_budgets_answer(tt_usage *u, const char *tenant, char **body, size_t *len)
{
    int64_t today = tt_ledger_day_of_ms(tt_wall_ms());
    char day[16];
    tt_ledger_day_format(today, day, sizeof day);
    json_t *o = json_pack("{s:s, s:s, s:o}", "tenant", tenant, "day", day, "budgets",
                          u->srv ? tt_budgets_list(&u->budgets, tenant, today) : json_array());
    *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *len = *body ? strlen(*body) : 0;
    return *body ? 200 : 500;
}
