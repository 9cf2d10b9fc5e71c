/* The added cost per model call of attribution, the budget check with its
 * reservation, and the rate-limit check (issue 13: under 5 µs each), timed
 * in a loop against a baseline loop in the same run. Not a test: it prints
 * one JSON object. Build and run (a Release build for real figures):
 *
 *   cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build-release --target bench_checks -j2
 *   build-release/tests/unit/bench_checks [iterations]
 *
 * The tables hold 64 tenants of 64 keys (4096 key scopes: the table is
 * full) and every kind of budget and limit is configured, so each check
 * walks all its scopes: tenant, user, key, agent, feature, session and run
 * for a budget; key, user, tenant and IP for a limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/llm/gate.h"
#include "agents/llm/route.h"
#include "protocol/utf8.h"
#include "server/budgets.h"
#include "server/limits.h"

#define TENANTS 64
#define KEYS 64

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

static void attribution(tt_llm_attribution *a, int t, int k)
{
    char tenant[32], key[32];
    snprintf(tenant, sizeof tenant, "tenant-%d", t);
    snprintf(key, sizeof key, "k_%012d", t * KEYS + k);
    *a = (tt_llm_attribution){0};
    tt_utf8_copy(a->tenant, sizeof a->tenant, tenant);
    tt_utf8_copy(a->user, sizeof a->user, "alice@example.com");
    tt_utf8_copy(a->key_id, sizeof a->key_id, key);
    tt_utf8_copy(a->agent, sizeof a->agent, "chat");
    tt_utf8_copy(a->session, sizeof a->session, "s_0123456789abcdef0123");
    tt_utf8_copy(a->feature, sizeof a->feature, "support");
}

static const char LIMITS[] =
    "{\"default\": {\"tenant\": {\"rpm\": 1000000000, \"tpm\": 1000000000, \"daily_usd\": 1000000},"
    " \"user\": {\"rpm\": 1000000000, \"monthly_usd\": 1000000},"
    " \"key\": {\"rpm\": 1000000000, \"daily_usd\": 1000000},"
    " \"ip\": {\"rpm\": 1000000000}, \"agent\": {\"daily_usd\": 1000000},"
    " \"feature\": {\"daily_usd\": 1000000}, \"session\": {\"usd\": 1000000},"
    " \"run\": {\"usd\": 1000000}}}";

static const char ROUTES[] =
    "{\"routes\": {\"default\": [{\"provider\": \"openai\", \"model\": \"gpt-4o-mini\","
    " \"base_url\": \"http://127.0.0.1:9\"}]},"
    " \"prices\": {\"gpt-4o-mini\": {\"prompt_per_mtok\": 0.15, \"completion_per_mtok\": 0.6}}}";

typedef struct fixture {
    tt_limits_conf conf;
    tt_routes routes;
    tt_budgets b;
    tt_limits l;
    tt_llm_attribution *as;
    tt_llm_request req;
} fixture;

static int setup(fixture *f)
{
    static char prompt[1024];
    static tt_llm_message msgs[2];
    char err[256];
    json_t *root = json_loads(LIMITS, 0, NULL), *rj = json_loads(ROUTES, 0, NULL);
    int rc = tt_limits_conf_parse(&f->conf, root, err, sizeof err);
    if (rc == 0)
        rc = tt_routes_parse(rj, "", NULL, &f->routes, err, sizeof err);
    json_decref(root);
    json_decref(rj);
    if (rc || tt_budgets_init(&f->b, &f->conf, NULL, 20513) || tt_limits_init(&f->l, &f->conf)) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    f->as = calloc(TENANTS * KEYS, sizeof *f->as);
    for (int i = 0; f->as && i < TENANTS * KEYS; i++)
        attribution(&f->as[i], i / KEYS, i % KEYS);
    memset(prompt, 'a', sizeof prompt - 1);
    msgs[0] = (tt_llm_message){.role = "system", .content = "You are helpful."};
    msgs[1] = (tt_llm_message){.role = "user", .content = prompt};
    f->req = (tt_llm_request){.messages = msgs, .n_messages = 2, .max_tokens = 256};
    return f->as ? 0 : 1;
}

/* ns per call of each check (index 0: the baseline loop). */
static int run(fixture *f, long n, double ns[5])
{
    uint64_t x = 0;
    char why[256];
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        x += (uint64_t)f->as[i & (TENANTS * KEYS - 1)].tenant[7];
    ns[0] = (now_ns() - t0) / (double)n;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        tt_llm_attribution a;
        attribution(&a, (int)(i & (TENANTS - 1)), (int)((i >> 6) & (KEYS - 1)));
        x += (uint64_t)a.tenant[7];
    }
    ns[1] = (now_ns() - t0) / (double)n;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        tt_llm_gate_ask ask;
        tt_llm_gate_estimate(&f->routes, &f->routes.routes[0], NULL, &f->req, &f->as[i & 4095],
                             &ask);
        x += (uint64_t)ask.prompt_tokens;
    }
    ns[2] = (now_ns() - t0) / (double)n;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t hold = 0;
        if (tt_budgets_reserve(&f->b, &f->as[i & 4095], 1000, 20513, (uint64_t)i, &hold) != 0)
            return 2;
        tt_budgets_release(&f->b, hold);
        x += hold;
    }
    ns[3] = (now_ns() - t0) / (double)n;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        const tt_llm_attribution *a = &f->as[i & 4095];
        tt_limits_who who = {
            .tenant = a->tenant, .user = a->user, .key_id = a->key_id, .ip = "203.0.113.7"};
        int64_t wait = 0;
        if (tt_limits_admit(&f->l, &who, (uint64_t)i / 1000, &wait, why, sizeof why) != 0)
            return 3;
        x += (uint64_t)wait;
    }
    ns[4] = (now_ns() - t0) / (double)n;
    sink = x;
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    static fixture f;
    double ns[5];
    int rc = setup(&f);
    if (rc == 0)
        rc = run(&f, n > 0 ? n : 1, ns);
    if (rc == 0)
        printf("{\"iterations\": %ld, \"tracked_key_scopes\": %d, \"baseline_ns\": %.1f,"
               " \"attribution_ns\": %.1f, \"estimate_1kib_prompt_ns\": %.1f,"
               " \"budget_reserve_release_ns\": %.1f, \"limit_admit_ns\": %.1f,"
               " \"budget_with_estimate_ns\": %.1f, \"budget_scopes_tracked\": %zu,"
               " \"limit_scopes_tracked\": %zu, \"untracked\": %llu}\n",
               n, TENANTS * KEYS, ns[0], ns[1] - ns[0], ns[2] - ns[0], ns[3] - ns[0], ns[4] - ns[0],
               ns[2] + ns[3] - 2 * ns[0], f.b.tab.n, f.l.tab.n,
               (unsigned long long)(f.b.tab.untracked + f.l.tab.untracked));
    tt_routes_free(&f.routes);
    tt_budgets_free(&f.b);
    tt_limits_free(&f.l);
    tt_limits_conf_free(&f.conf);
    free(f.as);
    return rc;
}
