/* Error codes shared by every Tether module.
 *
 * Functions return 0 on success and a negative tt_err on failure; results
 * travel in out-parameters. tt_err_wire() maps a code to the wire protocol's
 * error string (protocol/PROTOCOL.md, "Errors"). */
#ifndef TT_ERRORS_H
#define TT_ERRORS_H

typedef enum tt_err {
    TT_OK = 0,
    TT_ENOMEM = -1,     /* allocation failed */
    TT_EINVAL = -2,     /* malformed input or missing field (bad_request) */
    TT_ENOTFOUND = -3,  /* no such session, key, question (not_found) */
    TT_ECONFLICT = -4,  /* valid request, wrong moment (conflict) */
    TT_EFORBIDDEN = -5, /* authenticated but not allowed (forbidden) */
    TT_EAUTH = -6,      /* missing or bad credentials (unauthenticated) */
    TT_EEXPIRED = -7,   /* token expired (unauthenticated) */
    TT_ETOOLARGE = -8,  /* over a size limit (too_large) */
    TT_ERATE = -9,      /* over a rate limit (rate_limited) */
    TT_EIO = -10,       /* storage or OS failure (internal) */
    TT_ESCHEMA = -11,   /* stored data has a schema this build cannot use */
    TT_EFULL = -12,     /* a bounded resource is full (unavailable) */
    TT_EINTERNAL = -13, /* a bug: an invariant did not hold (internal) */
    TT_ELIMIT = -14,    /* a per-user quota is used up (limit_exceeded) */
    TT_EBUDGET = -15,   /* a spending budget has no room for the call (budget_exceeded) */
    TT_ERR_LAST = -16
} tt_err;

/* A human-readable, static message for a code. Never NULL. */
const char *tt_strerror(int err);

/* The protocol's error code string ("bad_request", ...). Never NULL. */
const char *tt_err_wire(int err);

#endif
