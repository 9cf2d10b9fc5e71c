/* The gate every model call passes before its first attempt: what the call
 * may cost at most is reserved by whoever pays (the server's budgets), and
 * released when the call ends (its real cost has by then been reported,
 * attempt by attempt, through the usage hook). A refusal ends the start of
 * the call: tt_llm_call_start returns the gate's error (TT_EBUDGET), no
 * provider is asked, and the caller says so (budget_exceeded).
 *
 * The estimate is an upper bound of one attempt: the prompt's tokens by
 * the rules of tt_tokenizer_estimate (conservative by design: never below
 * the real count on natural text, no rank data, about 2 µs a KiB) over the
 * first 64 KiB of text, and one token a byte past them (the bound no
 * byte-level BPE exceeds: a huge prompt costs the loop at most ~0.2 ms and
 * reserves more than it will use), plus the tools' and schema's JSON, plus
 * the completion cap (the request's
 * max_tokens, else the routes' max_completion_tokens), priced at the most
 * expensive target of the route (a failover may land on it). A model
 * without a price costs 0 and reserves nothing.
 *
 * Runs on the loop, synchronously: reserve and release are plain function
 * calls, so a check and its reservation happen with nothing in between (100
 * concurrent calls against room for 10 start exactly 10). */
#ifndef TT_LLM_GATE_H
#define TT_LLM_GATE_H

#include <stdint.h>

#include "agents/llm/llm.h"

struct tt_route;
struct tt_routes;

/* What a call asks to reserve. */
typedef struct tt_llm_gate_ask {
    const tt_llm_attribution *attr; /* never NULL */
    const char *route;              /* the alias */
    int64_t prompt_tokens;          /* estimated */
    int64_t completion_tokens;      /* the cap */
    double usd;                     /* the estimate's price */
} tt_llm_gate_ask;

typedef struct tt_llm_gate {
    /* 0 and *hold (0: nothing held), or a negative tt_err (TT_EBUDGET). */
    int (*reserve)(const tt_llm_gate_ask *a, void *ud, uint64_t *hold);
    void (*release)(uint64_t hold, void *ud); /* once per non-zero hold */
    void *ud;
} tt_llm_gate;

/* The estimate of one attempt of req on route (model: the gateway's
 * pass-through name, or NULL). Never fails. */
void tt_llm_gate_estimate(const struct tt_routes *routes, const struct tt_route *route,
                          const char *model, const tt_llm_request *req,
                          const tt_llm_attribution *attr, tt_llm_gate_ask *out);

/* Estimate and reserve (g without reserve: 0, nothing held). */
int tt_llm_gate_reserve(const tt_llm_gate *g, const struct tt_routes *routes,
                        const struct tt_route *route, const char *model, const tt_llm_request *req,
                        const tt_llm_attribution *attr, uint64_t *hold);

/* Release a hold (0: nothing). */
void tt_llm_gate_release(const tt_llm_gate *g, uint64_t hold);

#endif
