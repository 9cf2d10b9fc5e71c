/* The cost ledger's server side: the usage hook, the counters, GET
 * /v1/usage (see usage.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/usage.h"

#define CSV_MAX (8u << 20) /* a CSV answer's bytes (10,000 groups fit) */

static void on_flush_timer(uv_timer_t *t)
{
    tt_usage *u = t->data;
    if (tt_ledger_queued(u->ledger) == 0)
        return;
    int rc = tt_ledger_flush(u->ledger);
    if (rc) {
        u->flush_errors++;
        tt_log(TT_WARN, "usage ledger not written; kept queued",
               json_pack("{s:s}", "error", tt_strerror(rc)));
    }
}

int tt_usage_start(tt_server *srv, tt_usage *u)
{
    u->srv = srv;
    char err[640];
    int rc = tt_usage_limits_load(srv, &u->conf, err, sizeof err);
    if (rc) {
        tt_log(TT_ERROR, "bad limits", json_pack("{s:s}", "error", err));
        return rc;
    }
    if ((rc = tt_limits_init(&u->limits, &u->conf)) != 0)
        return rc;
    snprintf(u->series[TT_USAGE_SERIES_MAX].tenant, sizeof u->series[0].tenant, "_other");
    snprintf(u->series[TT_USAGE_SERIES_MAX].model, sizeof u->series[0].model, "_other");
    rc = tt_ledger_new(srv->store, &u->ledger);
    if (rc)
        return rc;
    rc = tt_budgets_init(&u->budgets, &u->conf, u->ledger, tt_ledger_day_of_ms(tt_wall_ms()));
    if (rc)
        return rc;
    (void)uv_timer_init(&srv->loop, &u->timer); /* only fills the struct */
    u->timer.data = u;
    u->timer_open = 1;
    uint64_t every = (uint64_t)srv->cfg.usage_flush_ms;
    return uv_timer_start(&u->timer, on_flush_timer, every, every) ? TT_EINTERNAL : 0;
}

void tt_usage_stop(tt_usage *u)
{
    if (u->timer_open) {
        uv_close((uv_handle_t *)&u->timer, NULL);
        u->timer_open = 0;
    }
    if (u->ledger)
        (void)tt_ledger_flush(u->ledger);
}

void tt_usage_free(tt_usage *u)
{
    tt_ledger_free(u->ledger); /* writes what is queued */
    u->ledger = NULL;
    tt_budgets_free(&u->budgets);
    tt_limits_free(&u->limits);
    tt_limits_conf_free(&u->conf);
}

static tt_usage_series *series_for(tt_usage *u, const char *tenant, const char *model)
{
    for (size_t i = 0; i < u->n_series; i++)
        if (strcmp(u->series[i].tenant, tenant) == 0 && strcmp(u->series[i].model, model) == 0)
            return &u->series[i];
    if (u->n_series == TT_USAGE_SERIES_MAX)
        return &u->series[TT_USAGE_SERIES_MAX];
    tt_usage_series *s = &u->series[u->n_series++];
    tt_utf8_copy(s->tenant, sizeof s->tenant, tenant);
    tt_utf8_copy(s->model, sizeof s->model, model);
    return s;
}

void tt_usage_on_llm(const tt_llm_usage *lu, void *ud)
{
    tt_server *srv = ud;
    tt_usage *u = &srv->usage;
    if (!u->ledger)
        return;
    const tt_llm_attribution *a = lu->attr;
    tt_ledger_row r = {.ts_ms = tt_wall_ms(),
                       .prompt_tokens = lu->prompt_tokens,
                       .completion_tokens = lu->completion_tokens,
                       .latency_ms = lu->latency_ms,
                       .cost_usd = lu->cost_usd,
                       .cache_hit = lu->cache_hit};
    tt_utf8_copy(r.tenant, sizeof r.tenant, a->tenant);
    tt_utf8_copy(r.user, sizeof r.user, a->user);
    tt_utf8_copy(r.key_id, sizeof r.key_id, a->key_id);
    tt_utf8_copy(r.agent, sizeof r.agent, a->agent);
    if (a->session[0]) { /* a reference, not the id: deleting a session leaves no id behind */
        char hex[65];
        tt_sha256_hex(a->session, strlen(a->session), hex);
        snprintf(r.session, sizeof r.session, "sha256:%.16s", hex);
    }
    tt_utf8_copy(r.feature, sizeof r.feature, a->feature);
    tt_utf8_copy(r.model, sizeof r.model, lu->model);
    tt_utf8_copy(r.route, sizeof r.route, lu->route);
    tt_utf8_copy(r.target, sizeof r.target, lu->target);
    tt_utf8_copy(r.outcome, sizeof r.outcome, lu->outcome);
    if (tt_ledger_add(u->ledger, &r) == 1)
        on_flush_timer(&u->timer);
    tt_usage_series *s = series_for(u, a->tenant, lu->model);
    s->calls++;
    s->errors += strcmp(lu->outcome, "ok") != 0;
    s->prompt_tokens += (uint64_t)(lu->prompt_tokens > 0 ? lu->prompt_tokens : 0);
    s->completion_tokens += (uint64_t)(lu->completion_tokens > 0 ? lu->completion_tokens : 0);
    s->cost_usd += lu->cost_usd;
    tt_limits_who who = {.tenant = a->tenant, .user = a->user, .key_id = a->key_id, .ip = a->ip};
    tt_limits_charge(&u->limits, &who, lu->prompt_tokens + lu->completion_tokens,
                     uv_now(&srv->loop));
    tt_budgets_spend(&u->budgets, a, llround(lu->cost_usd * TT_NUSD_PER_USD),
                     tt_ledger_day_of_ms(r.ts_ms), uv_now(&srv->loop));
}

/* A capped text being built: the first failed append fails all of it. */
typedef struct out {
    tt_buf b;
    int failed;
} out;

static void add(out *o, const char *s, size_t n)
{
    if (!o->failed && tt_buf_append(&o->b, s, n) != 0)
        o->failed = 1;
}

static char *take(out *o, size_t *len)
{
    if (o->failed) {
        tt_buf_free(&o->b);
        return NULL;
    }
    return tt_buf_take(&o->b, len);
}

static int error_body(int status, int err, const char *msg, char **body, size_t *len,
                      const char **type)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", tt_err_wire(err), "message", msg);
    *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *len = *body ? strlen(*body) : 0;
    *type = "application/json";
    return *body ? status : 500;
}

/* One CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(out *b, const char *s, int last)
{
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            add(b, "\"", 1);
        add(b, p, 1);
    }
    if (quote)
        add(b, "\"", 1);
    add(b, last ? "\n" : ",", 1);
}

static const char *const csv_sums[] = {
    "calls",    "errors",        "cache_hits", "prompt_tokens", "completion_tokens",
    "cost_usd", "latency_ms_avg"};
#define N_SUMS (sizeof csv_sums / sizeof csv_sums[0])

/* The groups of a query's answer as CSV: the group's own columns, then the sums. */
static char *to_csv(json_t *res, tt_ledger_group g, size_t *len)
{
    out b = {0};
    tt_buf_init(&b.b, CSV_MAX);
    const char *cols[2] = {tt_ledger_group_name(g), NULL};
    if (g == TT_LEDGER_BY_USER) {
        cols[0] = "tenant";
        cols[1] = "user";
    }
    size_t ncols = cols[1] ? 2 : 1;
    for (size_t i = 0; i < ncols; i++)
        csv_field(&b, cols[i], 0);
    for (size_t i = 0; i < N_SUMS; i++)
        csv_field(&b, csv_sums[i], i + 1 == N_SUMS);
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(res, "groups"), i, row)
    {
        for (size_t c = 0; c < ncols; c++)
            csv_field(&b, json_string_value(json_object_get(row, cols[c])), 0);
        for (size_t c = 0; c < N_SUMS; c++) {
            char num[64];
            json_t *v = json_object_get(row, csv_sums[c]);
            if (json_is_real(v))
                snprintf(num, sizeof num, "%.10g", json_real_value(v));
            else
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            csv_field(&b, num, c + 1 == N_SUMS);
        }
    }
    return take(&b, len);
}

int tt_usage_answer(tt_usage *u, const char *tenant, const char *from, const char *to,
                    const char *group_by, int csv, char **body, size_t *len, const char **type)
{
    tt_ledger_group g = TT_LEDGER_BY_DAY;
    int64_t today = tt_ledger_day_of_ms(tt_wall_ms()), dfrom = today, dto = today;
    if (group_by && tt_ledger_group_parse(group_by, &g) != 0)
        return error_body(400, TT_EINVAL,
                          "group_by must be tenant, user, key, feature, agent, model or day", body,
                          len, type);
    if ((to && tt_ledger_day_parse(to, &dto) != 0) ||
        (from && tt_ledger_day_parse(from, &dfrom) != 0))
        return error_body(400, TT_EINVAL, "from and to must be dates, YYYY-MM-DD (UTC)", body, len,
                          type);
    if (!from && to)
        dfrom = dto;
    if (dto < dfrom || dto - dfrom >= TT_LEDGER_RANGE_DAYS_MAX)
        return error_body(400, TT_EINVAL, "from must not be after to, nor 3660 days before it",
                          body, len, type);
    json_t *res = NULL;
    int rc = u->ledger ? tt_ledger_query(u->ledger, dfrom, dto, tenant, g, &res) : TT_EFULL;
    if (rc)
        return error_body(503, rc, "the usage ledger could not be read", body, len, type);
    char df[16], dt[16];
    tt_ledger_day_format(dfrom, df, sizeof df);
    tt_ledger_day_format(dto, dt, sizeof dt);
    json_object_set_new(res, "from", json_string(df));
    json_object_set_new(res, "to", json_string(dt));
    json_object_set_new(res, "group_by", json_string(tt_ledger_group_name(g)));
    json_object_set_new(res, "tenant", json_string(tenant));
    *body = csv ? to_csv(res, g, len) : json_dumps(res, JSON_COMPACT);
    json_decref(res);
    if (!*body)
        return error_body(500, TT_ENOMEM, "the answer could not be built", body, len, type);
    if (!csv)
        *len = strlen(*body);
    *type = csv ? "text/csv" : "application/json";
    return 200;
}

/* A label value with \, " and line breaks escaped (Prometheus text format). */
static void label(out *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\' || *p == '"')
            add(b, "\\", 1);
        if (*p == '\n')
            add(b, "\\n", 2);
        else
            add(b, p, 1);
    }
}

static void series_line(out *b, const char *name, const tt_usage_series *s, const char *extra,
                        double v)
{
    char num[64];
    add(b, name, strlen(name));
    add(b, "{tenant=\"", 9);
    label(b, s->tenant);
    add(b, "\",model=\"", 9);
    label(b, s->model);
    add(b, "\"", 1);
    add(b, extra, strlen(extra));
    int n = snprintf(num, sizeof num, "} %.10g\n", v);
    add(b, num, (size_t)n);
}

char *tt_usage_metrics_text(const tt_usage *u)
{
    static const char *const help[] = {
        "# HELP tether_llm_calls_total Provider attempts by tenant and model\n"
        "# TYPE tether_llm_calls_total counter\n",
        "# HELP tether_llm_tokens_total Model tokens by tenant, model and direction\n"
        "# TYPE tether_llm_tokens_total counter\n",
        "# HELP tether_llm_cost_usd_total Model cost in USD by tenant and model\n"
        "# TYPE tether_llm_cost_usd_total counter\n"};
    out b = {0};
    tt_buf_init(&b.b, 1u << 20);
    size_t n = u->n_series;
    const tt_usage_series *other = &u->series[TT_USAGE_SERIES_MAX];
    for (int m = 0; m < 3; m++) {
        add(&b, help[m], strlen(help[m]));
        for (size_t i = 0; i <= n; i++) {
            const tt_usage_series *s = i < n ? &u->series[i] : other;
            if (i == n && other->calls == 0)
                break;
            if (m == 0)
                series_line(&b, "tether_llm_calls_total", s, "", (double)s->calls);
            if (m == 1) {
                series_line(&b, "tether_llm_tokens_total", s, ",direction=\"prompt\"",
                            (double)s->prompt_tokens);
                series_line(&b, "tether_llm_tokens_total", s, ",direction=\"completion\"",
                            (double)s->completion_tokens);
            }
            if (m == 2)
                series_line(&b, "tether_llm_cost_usd_total", s, "", s->cost_usd);
        }
    }
    char line[1024];
    int len = snprintf(
        line, sizeof line,
        "# HELP tether_rate_limited_total Requests refused by the key, user, tenant and IP "
        "limits\n# TYPE tether_rate_limited_total counter\n"
        "tether_rate_limited_total %llu\n"
        "# HELP tether_budget_refused_total Requests and model calls refused by a budget\n"
        "# TYPE tether_budget_refused_total counter\ntether_budget_refused_total %llu\n"
        "# HELP tether_budget_reservations Model calls in flight holding a reservation\n"
        "# TYPE tether_budget_reservations gauge\ntether_budget_reservations %zu\n"
        "# HELP tether_scopes_untracked_total Scopes that found no slot in a full table\n"
        "# TYPE tether_scopes_untracked_total counter\ntether_scopes_untracked_total %llu\n",
        (unsigned long long)u->limits.refused, (unsigned long long)u->budgets.refused,
        u->budgets.n_holds,
        (unsigned long long)(u->limits.tab.untracked + u->budgets.tab.untracked));
    add(&b, line, (size_t)len);
    return take(&b, NULL);
}
