/* The cost ledger's two databases (see ledger.h): rows and day sums. */
#include <string.h>

#include "protocol/errors.h"
#include "state/ledger.h"
#include "state/store_private.h"

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t rd_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Day numbers are >= 0 here (dates from 1970 on): the big-endian bytes sort
 * as the numbers do. */
int tt_store_put_usage(tt_store_txn *txn, int64_t day, int64_t ts_ms, uint32_t seq,
                       const char *json, size_t len)
{
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (day < 0 || !json)
        return TT_EINVAL;
    unsigned char k[20];
    be64(k, (uint64_t)day);
    be64(k + 8, (uint64_t)ts_ms);
    for (int i = 0; i < 4; i++)
        k[16 + i] = (unsigned char)(seq >> (24 - 8 * i));
    return tt_store_txn_put(txn, txn->st->usage, k, sizeof k, json, len);
}

int tt_store_add_usage_day(tt_store_txn *txn, int64_t day, const char *dims, size_t dlen,
                           const tt_ledger_sums *add)
{
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (day < 0 || 8 + dlen > txn->st->maxkey)
        return TT_EINVAL;
    unsigned char k[KEY_BUF];
    be64(k, (uint64_t)day);
    memcpy(k + 8, dims, dlen);
    MDB_val key = {8 + dlen, k}, val;
    tt_ledger_sums sum = {0};
    int mrc = mdb_get(txn->mdb, txn->st->usage_days, &key, &val);
    if (mrc == 0 && val.mv_size == sizeof sum)
        memcpy(&sum, val.mv_data, sizeof sum);
    else if (mrc && mrc != MDB_NOTFOUND)
        return tt_store_txn_fail(txn, mrc);
    sum.calls += add->calls;
    sum.errors += add->errors;
    sum.cache_hits += add->cache_hits;
    sum.prompt_tokens += add->prompt_tokens;
    sum.completion_tokens += add->completion_tokens;
    sum.latency_ms += add->latency_ms;
    sum.cost_usd += add->cost_usd;
    return tt_store_txn_put(txn, txn->st->usage_days, k, 8 + dlen, &sum, sizeof sum);
}

int tt_store_scan_usage_days(tt_store *st, int64_t from, int64_t to, tt_store_usage_day_fn fn,
                             void *ctx)
{
    if (from < 0 || to < from)
        return TT_EINVAL;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->usage_days, &txn, &cur);
    if (rc)
        return rc;
    unsigned char k[8];
    be64(k, (uint64_t)from);
    MDB_val key = {sizeof k, k}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (mrc == 0 && rc == 0) {
        if (key.mv_size < 8)
            break;
        int64_t day = (int64_t)rd_be64(key.mv_data);
        if (day > to)
            break;
        tt_ledger_sums sum = {0};
        if (val.mv_size == sizeof sum) {
            memcpy(&sum, val.mv_data, sizeof sum);
            rc = fn(day, (const char *)key.mv_data + 8, key.mv_size - 8, &sum, ctx);
        }
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, txn, cur, rc, mrc);
}

int tt_store_usage_last_key(tt_store *st, unsigned char key[TT_LEDGER_KEY_LEN], int *found)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    *found = 0;
    int rc = tt_store_rd_cursor(st, st->usage, &txn, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == 0 && k.mv_size == TT_LEDGER_KEY_LEN) {
        memcpy(key, k.mv_data, TT_LEDGER_KEY_LEN);
        *found = 1;
    }
    return tt_store_rd_cursor_end(st, txn, cur, 0, mrc);
}

int tt_store_read_usage(tt_store *st, const unsigned char *after, size_t max,
                        tt_store_usage_row_fn fn, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->usage, &txn, &cur);
    if (rc)
        return rc;
    unsigned char zero[TT_LEDGER_KEY_LEN] = {0};
    MDB_val key = {TT_LEDGER_KEY_LEN, (void *)(after ? after : zero)}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (mrc == 0 && after && key.mv_size == TT_LEDGER_KEY_LEN &&
        memcmp(key.mv_data, after, TT_LEDGER_KEY_LEN) == 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT); /* strictly after */
    for (size_t n = 0; mrc == 0 && rc == 0 && n < max; n++) {
        if (key.mv_size == TT_LEDGER_KEY_LEN)
            rc = fn(key.mv_data, val.mv_data, val.mv_size, ctx);
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, txn, cur, rc, mrc);
}
