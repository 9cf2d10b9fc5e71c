/* Who a limit or a budget is for (a scope: a tenant, a user of a tenant, an
 * API key, an agent or a feature of a tenant, a session, a session's run, a
 * client IP), and a fixed table of them shared by the rate limits
 * (limits.h) and the budgets (budgets.h).
 *
 * The table is open addressing over TT_SCOPES_CAP slots (FNV-1a of the kind
 * and name), each name looked for in a window of TT_SCOPES_PROBE slots: a
 * lookup is a hash and a few compares whatever the number of scopes. A new
 * scope takes a free slot of its window, else the slot seen longest ago
 * that the owner lets go (keep() says which must stay: a budget with a
 * reservation, a limit still in use); when none may go it is not tracked
 * (the owner decides what that means). Loop thread only. */
#ifndef TT_SCOPES_H
#define TT_SCOPES_H

#include <stddef.h>
#include <stdint.h>

#define TT_SCOPES_CAP 8192 /* a power of two */
#define TT_SCOPES_PROBE 32
#define TT_SCOPE_NAME_MAX 192 /* "tenant/user" and the like */

typedef enum tt_scope_kind {
    TT_SCOPE_TENANT,
    TT_SCOPE_USER, /* named "tenant/user" */
    TT_SCOPE_KEY,
    TT_SCOPE_AGENT,   /* named "tenant/agent" */
    TT_SCOPE_FEATURE, /* named "tenant/feature" */
    TT_SCOPE_SESSION,
    TT_SCOPE_RUN, /* named by its session: the spend since the session's latest turn began */
    TT_SCOPE_IP,
    TT_SCOPE__LAST
} tt_scope_kind;

/* What a scope may use; 0: no limit. */
typedef struct tt_scope_limits {
    int64_t rpm, tpm;                 /* requests and model tokens per minute */
    int64_t daily_nusd, monthly_nusd; /* nano-USD per UTC day and month */
    int64_t total_nusd;               /* a session or run, for its whole life */
} tt_scope_limits;

typedef struct tt_scope {
    uint32_t hash;
    uint8_t kind, used;
    char name[TT_SCOPE_NAME_MAX];
    char tenant[64]; /* whose it is ("" for an IP) */
    tt_scope_limits lim;
    uint64_t seen_ms;
    double req_tat, tok_tat; /* GCRA: theoretical arrival times, loop ms */
    int64_t day, month;      /* of the sums below */
    int64_t day_nusd, month_nusd, total_nusd, reserved_nusd;
} tt_scope;

typedef struct tt_scopes {
    tt_scope *t; /* TT_SCOPES_CAP */
    size_t n;
    uint64_t untracked; /* scopes that found no slot */
} tt_scopes;

/* "tenant", "user", "key", "agent", "feature", "session", "run", "ip". */
const char *tt_scope_kind_name(tt_scope_kind k);

int tt_scopes_init(tt_scopes *s);
void tt_scopes_free(tt_scopes *s);

/* The scope (kind, name), or NULL. */
tt_scope *tt_scopes_find(const tt_scopes *s, tt_scope_kind k, const char *name);

/* The scope (kind, name), added (zeroed but for its names, lim and seen_ms)
 * when new; NULL when its window is full of scopes keep() holds on to
 * (keep NULL: any may go). */
tt_scope *tt_scopes_get(tt_scopes *s, tt_scope_kind k, const char *name, const char *tenant,
                        const tt_scope_limits *lim, uint64_t now_ms,
                        int (*keep)(const tt_scope *e, uint64_t now_ms));

/* name = a + "/" + b in out (size n), cut at n. */
void tt_scope_join(char *out, size_t n, const char *a, const char *b);

#endif
