#include "protocol/errors.h"

const char *tt_strerror(int err)
{
    switch (err) {
    case TT_OK:
        return "success";
    case TT_ENOMEM:
        return "out of memory";
    case TT_EINVAL:
        return "invalid input";
    case TT_ENOTFOUND:
        return "not found";
    case TT_ECONFLICT:
        return "conflict";
    case TT_EFORBIDDEN:
        return "forbidden";
    case TT_EAUTH:
        return "authentication failed";
    case TT_EEXPIRED:
        return "token expired";
    case TT_ETOOLARGE:
        return "too large";
    case TT_ERATE:
        return "rate limited";
    case TT_EIO:
        return "storage or I/O failure";
    case TT_ESCHEMA:
        return "unsupported storage schema";
    case TT_EFULL:
        return "resource full";
    case TT_EINTERNAL:
        return "internal error";
    case TT_ELIMIT:
        return "limit exceeded";
    case TT_EBUDGET:
        return "budget exceeded";
    default:
        return "unknown error";
    }
}

const char *tt_err_wire(int err)
{
    switch (err) {
    case TT_EINVAL:
        return "bad_request";
    case TT_ENOTFOUND:
        return "not_found";
    case TT_ECONFLICT:
        return "conflict";
    case TT_EFORBIDDEN:
        return "forbidden";
    case TT_EAUTH:
    case TT_EEXPIRED:
        return "unauthenticated";
    case TT_ETOOLARGE:
        return "too_large";
    case TT_ERATE:
        return "rate_limited";
    case TT_EFULL:
        return "unavailable";
    case TT_ELIMIT:
        return "limit_exceeded";
    case TT_EBUDGET:
        return "budget_exceeded";
    default:
        return "internal";
    }
}
