/* Rate limits per API key, user, tenant and client IP (GCRA), shared by
 * every socket and every HTTP route (a new socket or connection does not
 * start fresh): requests per minute, counted when a request is accepted
 * (on a socket: session.open, say, answer and decide; over HTTP: every
 * /v1/ route for the IP, and the routes that may call a model for the key,
 * user and tenant), and model tokens per minute, charged after each
 * provider attempt with what it used. A request is refused while any of its
 * scopes is over, with the seconds until it would pass; a refusal counts
 * nothing.
 *
 * GCRA (the generic cell rate algorithm): each scope keeps a theoretical
 * arrival time (TAT). Requests: the emission interval is T = 60 s / rpm and
 * the tolerance a full minute's allowance (a burst of rpm requests); a
 * request passes when TAT - now <= 60 s - T, then TAT = max(TAT, now) + T.
 * Tokens: a call's size is known only when it ends, so TAT moves by
 * tokens x 60 s / tpm after it (it may run ahead: a debt) and a request
 * passes while TAT - now <= 60 s - 60 s / tpm (one token left). One number
 * per scope and limit, no timers: a check is a hash and a few compares.
 *
 * The limits come from limits_conf.h (defaults per kind and named
 * overrides); 0 disables a limit. At most TT_SCOPES_CAP scopes are tracked
 * (scopes.h); a scope still in use (TAT ahead of now) is kept, an idle one
 * may be replaced (an idle scope is full anyway). */
#ifndef TT_LIMITS_H
#define TT_LIMITS_H

#include <stdint.h>

#include "server/limits_conf.h"
#include "server/scopes.h"

/* Who a request is: any of them may be NULL or "" (not limited as such). */
typedef struct tt_limits_who {
    const char *tenant, *user, *key_id, *ip;
} tt_limits_who;

typedef struct tt_limits {
    const tt_limits_conf *conf; /* borrowed */
    int any[TT_SCOPE__LAST];    /* a kind with a rate limit somewhere */
    tt_scopes tab;
    uint64_t refused; /* requests refused */
} tt_limits;

int tt_limits_init(tt_limits *l, const tt_limits_conf *conf);
void tt_limits_free(tt_limits *l);

/* May one more request of who start at now_ms? 0 and it is counted; or
 * TT_ERATE with *retry_after_s (>= 1) and what is over in why (size n),
 * and nothing is counted. */
int tt_limits_admit(tt_limits *l, const tt_limits_who *who, uint64_t now_ms, int64_t *retry_after_s,
                    char *why, size_t n);

/* Charge the tokens a provider attempt used to each scope of who, the
 * client IP included (the call's attribution carries it: the socket of the
 * latest request to the session, or the gateway's connection). */
void tt_limits_charge(tt_limits *l, const tt_limits_who *who, int64_t tokens, uint64_t now_ms);

#endif
