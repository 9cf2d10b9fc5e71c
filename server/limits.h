/* Rate limits per API key and per tenant, shared by every socket and the
 * gateway (a new socket does not start fresh): requests per minute, counted
 * when a request that may call a model is accepted (POST
 * /v1/chat/completions; session.open, say, answer and decide on a socket),
 * and model tokens per minute, charged after each provider attempt with
 * what it used. A request is refused while either bucket of its key or its
 * tenant is empty, with the seconds until it would pass.
 *
 * Token buckets refilled continuously (the full minute's allowance is the
 * burst). A bucket of tokens may go into debt: a call's size is known only
 * when it ends, and the debt delays the next request. 0 disables a limit.
 * At most TT_LIMITS_MAX_BUCKETS keys and as many tenants are tracked; a new
 * one replaces the entry idle longest (an idle bucket is full anyway, unless
 * it is in debt: then it is kept). */
#ifndef TT_LIMITS_H
#define TT_LIMITS_H

#include <stdint.h>

#define TT_LIMITS_MAX_BUCKETS 256
#define TT_LIMITS_NAME_MAX 128

typedef struct tt_limit_rates {
    int64_t key_requests_per_min, key_tokens_per_min;
    int64_t tenant_requests_per_min, tenant_tokens_per_min;
} tt_limit_rates;

typedef struct tt_limit_bucket {
    char name[TT_LIMITS_NAME_MAX];
    double requests, tokens;
    uint64_t ms; /* last refill */
} tt_limit_bucket;

typedef struct tt_limits {
    tt_limit_rates rates;
    tt_limit_bucket keys[TT_LIMITS_MAX_BUCKETS], tenants[TT_LIMITS_MAX_BUCKETS];
    uint64_t refused; /* requests refused */
} tt_limits;

void tt_limits_init(tt_limits *l, const tt_limit_rates *rates);

/* May one more request of key_id (of tenant) start at now_ms? 0 and it is
 * counted; or TT_ERATE with *retry_after_s (>= 1) and what is over in
 * why (size n), and nothing is counted. */
int tt_limits_admit(tt_limits *l, const char *tenant, const char *key_id, uint64_t now_ms,
                    int64_t *retry_after_s, char *why, size_t n);

/* Charge the tokens a provider attempt used. */
void tt_limits_charge(tt_limits *l, const char *tenant, const char *key_id, int64_t tokens,
                      uint64_t now_ms);

#endif
