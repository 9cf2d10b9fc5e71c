/* Meta keys by prefix: deleting one, listing those under a prefix (the
 * archive's per-session markers, state/archive.c). */
#include <string.h>

#include "protocol/errors.h"
#include "state/store_private.h"

int tt_store_del_meta(tt_store_txn *txn, const char *key)
{
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    if (!key || !key[0] || strlen(key) > txn->st->maxkey)
        return TT_EINVAL;
    MDB_val k = {strlen(key), (void *)key};
    int mrc = mdb_del(txn->mdb, txn->st->meta, &k, NULL);
    if (mrc == MDB_NOTFOUND)
        return 0;
    return mrc ? tt_store_txn_fail(txn, mrc) : 0;
}

int tt_store_list_meta(tt_store *st, const char *prefix, tt_store_session_fn fn, void *ctx)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    if (!st || !fn || plen == 0 || plen >= KEY_BUF)
        return TT_EINVAL;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->meta, &t, &cur);
    if (rc)
        return rc;
    MDB_val key = {plen, (void *)prefix}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && key.mv_size >= plen && key.mv_size < KEY_BUF &&
           memcmp(key.mv_data, prefix, plen) == 0) {
        char k[KEY_BUF];
        memcpy(k, key.mv_data, key.mv_size);
        k[key.mv_size] = '\0';
        rc = fn(k, val.mv_data, val.mv_size, ctx);
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc);
}
