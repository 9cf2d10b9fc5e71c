/* The budget gate before a model call (see gate.h). */
#include <string.h>
#include <stdlib.h>

#include "agents/llm/call.h"
#include "agents/llm/gate.h"
#include "agents/llm/route.h"
#include "agents/llm/tokenizer.h"

/* The prompt's tokens: messages (tool calls as their JSON text) and tools. */
static int64_t prompt_estimate(const tt_llm_request *req)
{
    size_t total = TT_TOKENIZER_ESTIMATE_REPLY_PRIMER;
    for (size_t i = 0; i < req->n_messages; i++) {
        const tt_llm_message *m = &req->messages[i];
        const char *role = m->role ? m->role : "user";
        total += TT_TOKENIZER_ESTIMATE_PER_MESSAGE + tt_tokenizer_estimate(role, strlen(role));
        if (m->content)
            total += tt_tokenizer_estimate(m->content, strlen(m->content));
        if (m->tool_calls) {
            char *t = json_dumps(m->tool_calls, JSON_COMPACT);
            total += t ? tt_tokenizer_estimate(t, strlen(t)) : 0;
            free(t);
        }
    }
    for (size_t i = 0; i < req->n_tools; i++) {
        const tt_llm_tool *t = &req->tools[i];
        total += t->name ? tt_tokenizer_estimate(t->name, strlen(t->name)) : 0;
        total += t->description ? tt_tokenizer_estimate(t->description, strlen(t->description)) : 0;
        char *p = t->parameters ? json_dumps(t->parameters, JSON_COMPACT) : NULL;
        total += p ? tt_tokenizer_estimate(p, strlen(p)) : 0;
        free(p);
    }
    if (req->response_schema) {
        char *p = json_dumps(req->response_schema, JSON_COMPACT);
        total += p ? tt_tokenizer_estimate(p, strlen(p)) : 0;
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
