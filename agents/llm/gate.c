/* The budget gate before a model call (see gate.h). */
#include <string.h>
#include <stdlib.h>

#include "agents/llm/call.h"
#include "agents/llm/gate.h"
#include "agents/llm/route.h"
#include "agents/llm/tokenizer.h"

/* The bytes estimated by the byte-class rules, about 2 ns a byte; past
 * them every byte counts one token (the bound no byte-level BPE exceeds),
 * so the estimate stays conservative and costs the loop at most ~0.2 ms. */
#define ESTIMATED_BYTES_MAX (64 * 1024)

static size_t est(const char *text, size_t *left)
{
    size_t len = strlen(text), k = len < *left ? len : *left;
    *left -= k;
    return tt_tokenizer_estimate(text, k) + (len - k);
}

/* The prompt's tokens: messages (tool calls as their JSON text) and tools. */
static int64_t prompt_estimate(const tt_llm_request *req)
{
    size_t left = ESTIMATED_BYTES_MAX;
    size_t total = TT_TOKENIZER_ESTIMATE_REPLY_PRIMER;
    for (size_t i = 0; i < req->n_messages; i++) {
        const tt_llm_message *m = &req->messages[i];
        const char *role = m->role ? m->role : "user";
        total += TT_TOKENIZER_ESTIMATE_PER_MESSAGE + est(role, &left);
        if (m->content)
            total += est(m->content, &left);
        if (m->tool_calls) {
            char *t = json_dumps(m->tool_calls, JSON_COMPACT);
            total += t ? est(t, &left) : 0;
            free(t);
        }
    }
    for (size_t i = 0; i < req->n_tools; i++) {
        const tt_llm_tool *t = &req->tools[i];
        total += t->name ? est(t->name, &left) : 0;
        total += t->description ? est(t->description, &left) : 0;
        char *p = t->parameters ? json_dumps(t->parameters, JSON_COMPACT) : NULL;
        total += p ? est(p, &left) : 0;
        free(p);
    }
    if (req->response_schema) {
        char *p = json_dumps(req->response_schema, JSON_COMPACT);
        total += p ? est(p, &left) : 0;
        free(p);
    }
    return (int64_t)total;
}

void tt_llm_gate_estimate(const tt_routes *routes, const tt_route *route, const char *model,
                          const tt_llm_request *req, const tt_llm_attribution *attr,
                          tt_llm_gate_ask *out)
{
    static const tt_llm_attribution none;
    *out = (tt_llm_gate_ask){.attr = attr ? attr : &none, .route = route->alias};
    out->prompt_tokens = prompt_estimate(req);
    int64_t cap = routes->max_completion_tokens > 0 ? routes->max_completion_tokens
                                                    : TT_ROUTE_DEFAULT_MAX_COMPLETION;
    out->completion_tokens = req->max_tokens > 0 && req->max_tokens < cap ? req->max_tokens : cap;
    for (size_t i = 0; i < route->n_targets; i++) {
        const char *m = model ? model : route->targets[i].model;
        double usd =
            tt_route_cost(&routes->prices, m, out->prompt_tokens, out->completion_tokens, NULL);
        if (usd > out->usd)
            out->usd = usd;
    }
}

int tt_llm_gate_reserve(const tt_llm_gate *g, const tt_routes *routes, const tt_route *route,
                        const char *model, const tt_llm_request *req,
                        const tt_llm_attribution *attr, uint64_t *hold)
{
    *hold = 0;
    if (!g || !g->reserve)
        return 0;
    tt_llm_gate_ask a;
    tt_llm_gate_estimate(routes, route, model, req, attr, &a);
    return g->reserve(&a, g->ud, hold);
}

void tt_llm_gate_release(const tt_llm_gate *g, uint64_t hold)
{
    if (hold && g && g->release)
        g->release(hold, g->ud);
}

/* The plain start lives here to keep call.c within its size (call.h). */
int tt_llm_call_start(tt_llm_service *s, const char *alias, const tt_llm_request *req,
                      const tt_llm_call_hooks *hooks, void *ud, tt_llm_call **out)
{
    return tt_llm_call_start_model(s, alias, NULL, req, hooks, ud, out);
}
