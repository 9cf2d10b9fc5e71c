/* Retrieval's documents and chunks in LMDB (see chunks.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/names.h"
#include "state/chunks.h"
#include "state/session.h"
#include "state/store_private.h"

#define SEP '\x1f'

int tt_chunks_names_check(const char *tenant, const char *collection, const char *id)
{
    if (tt_name_check(tenant, TT_TENANT_MAX - 1, NULL) != 0 ||
        tt_name_check(collection, TT_CHUNKS_COLLECTION_MAX, NULL) != 0 ||
        (id && tt_name_check(id, TT_CHUNKS_DOC_ID_MAX, NULL) != 0))
        return TT_EINVAL;
    return 0;
}

/* "tenant\x1fcollection\x1f[id\x1f]" into k (KEY_BUF bytes): its length, or 0
 * for names that do not pass. */
static size_t prefix(char *k, const char *tenant, const char *collection, const char *id)
{
    if (tt_chunks_names_check(tenant, collection, id) != 0)
        return 0;
    int n = id ? snprintf(k, KEY_BUF, "%s%c%s%c%s%c", tenant, SEP, collection, SEP, id, SEP)
               : snprintf(k, KEY_BUF, "%s%c%s%c", tenant, SEP, collection, SEP);
    return n > 0 && n < KEY_BUF - 4 ? (size_t)n : 0;
}

/* Deletes every key of dbi starting with k[0..klen). */
static int delete_prefix(tt_store_txn *txn, MDB_dbi dbi, const char *k, size_t klen, int *found)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, dbi, &cur);
    if (mrc)
        return tt_store_txn_fail(txn, mrc);
    for (;;) { /* from the prefix again after each delete: no cursor state to trust */
        MDB_val key = {klen, (void *)k}, val;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (mrc || key.mv_size < klen || memcmp(key.mv_data, k, klen) != 0)
            break;
        if ((mrc = mdb_cursor_del(cur, 0)) != 0)
            break;
        if (found)
            *found = 1;
    }
    mdb_cursor_close(cur);
    return mrc && mrc != MDB_NOTFOUND ? tt_store_txn_fail(txn, mrc) : 0;
}

static int chunk_value(const tt_chunk_rec *c, unsigned char **out, size_t *len)
{
    if (c->dims > TT_CHUNKS_DIMS_MAX || (c->dims && !c->vec) || c->text_len > TT_CHUNKS_TEXT_MAX ||
        (c->text_len && !c->text))
        return TT_EINVAL;
    tt_chunk_hdr h = {
        .pos = c->pos, .tokens = c->tokens, .dims = c->dims, .text_len = (uint32_t)c->text_len};
    size_t vbytes = (size_t)c->dims * sizeof(float);
    *len = sizeof h + vbytes + c->text_len;
    unsigned char *v = malloc(*len ? *len : 1);
    if (!v)
        return TT_ENOMEM;
    memcpy(v, &h, sizeof h);
    if (vbytes)
        memcpy(v + sizeof h, c->vec, vbytes);
    if (c->text_len)
        memcpy(v + sizeof h + vbytes, c->text, c->text_len);
    *out = v;
    return 0;
}

int tt_chunks_put(tt_store_txn *txn, const char *tenant, const char *collection, const char *id,
                  const char *record, size_t record_len, const tt_chunk_rec *chunks, size_t n,
                  int *replaced)
{
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    char k[KEY_BUF];
    size_t klen = prefix(k, tenant, collection, id);
    if (!klen || !record || (n && !chunks))
        return TT_EINVAL;
    int had = 0;
    MDB_val dk = {klen - 1, k}, dv; /* the record's key has no trailing \x1f */
    int mrc = mdb_get(txn->mdb, txn->st->documents, &dk, &dv);
    if (mrc && mrc != MDB_NOTFOUND)
        return tt_store_txn_fail(txn, mrc);
    had = mrc == 0;
    if ((rc = delete_prefix(txn, txn->st->chunks, k, klen, NULL)) != 0)
        return rc;
    rc = tt_store_txn_put(txn, txn->st->documents, k, klen - 1, record, record_len);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char *v;
        size_t vlen;
        if ((rc = chunk_value(&chunks[i], &v, &vlen)) != 0)
            break;
        uint32_t pos = chunks[i].pos;
        for (int b = 0; b < 4; b++)
            k[klen + (size_t)b] = (char)(pos >> (24 - 8 * b));
        rc = tt_store_txn_put(txn, txn->st->chunks, k, klen + 4, v, vlen);
        free(v);
    }
    if (rc == 0 && replaced)
        *replaced = had;
    return rc;
}

int tt_chunks_delete(tt_store_txn *txn, const char *tenant, const char *collection, const char *id,
                     int *found)
{
    int rc = tt_store_txn_ready(txn);
    if (rc)
        return rc;
    char k[KEY_BUF];
    size_t klen = prefix(k, tenant, collection, id);
    if (!klen)
        return TT_EINVAL;
    *found = 0;
    MDB_val dk = {klen - 1, k};
    int mrc = mdb_del(txn->mdb, txn->st->documents, &dk, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        return tt_store_txn_fail(txn, mrc);
    *found = mrc == 0;
    return delete_prefix(txn, txn->st->chunks, k, klen, found);
}

int tt_chunks_list(tt_store *st, const char *tenant, const char *collection, tt_chunks_doc_fn fn,
                   void *ctx)
{
    char k[KEY_BUF];
    size_t klen;
    if (collection) {
        klen = prefix(k, tenant, collection, NULL);
    } else {
        int n = tt_name_check(tenant, TT_TENANT_MAX - 1, NULL) == 0
                    ? snprintf(k, sizeof k, "%s%c", tenant, SEP)
                    : 0;
        klen = n > 0 && n < KEY_BUF ? (size_t)n : 0;
    }
    if (!st || !fn || !klen)
        return TT_EINVAL;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->documents, &t, &cur);
    if (rc)
        return rc;
    MDB_val key = {klen, k}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && key.mv_size >= klen && memcmp(key.mv_data, k, klen) == 0) {
        rc = fn(val.mv_data, val.mv_size, ctx);
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc);
}

/* A stored chunk value into c (pointers into v): 0 or TT_ESCHEMA. */
static int chunk_read(const MDB_val *v, tt_chunk_rec *c)
{
    tt_chunk_hdr h;
    if (v->mv_size < sizeof h)
        return TT_ESCHEMA;
    memcpy(&h, v->mv_data, sizeof h);
    size_t vbytes = (size_t)h.dims * sizeof(float);
    if (h.dims > TT_CHUNKS_DIMS_MAX || v->mv_size != sizeof h + vbytes + h.text_len)
        return TT_ESCHEMA;
    const char *p = (const char *)v->mv_data + sizeof h;
    *c = (tt_chunk_rec){.pos = h.pos,
                        .tokens = h.tokens,
                        .dims = h.dims,
                        .vec = h.dims ? (const float *)(const void *)p : NULL,
                        .text = p + vbytes,
                        .text_len = h.text_len};
    return 0;
}

int tt_chunks_scan_batch(tt_store *st, const char *tenant, const char *collection, char *cursor,
                         size_t *cursor_len, size_t max, tt_chunks_chunk_fn fn, void *ctx,
                         int *done)
{
    char k[KEY_BUF];
    size_t klen = prefix(k, tenant, collection, NULL);
    if (!st || !fn || !klen || *cursor_len > TT_CHUNKS_CURSOR_MAX || klen + *cursor_len >= KEY_BUF)
        return TT_EINVAL;
    memcpy(k + klen, cursor, *cursor_len);
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->chunks, &t, &cur);
    if (rc)
        return rc;
    MDB_val key = {klen + *cursor_len, k}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (mrc == 0 && *cursor_len && key.mv_size == klen + *cursor_len &&
        memcmp(key.mv_data, k, key.mv_size) == 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT); /* the cursor's own chunk was read */
    size_t n = 0;
    *done = 0;
    while (rc == 0 && mrc == 0 && n < max && key.mv_size > klen + 5 &&
           key.mv_size - klen <= TT_CHUNKS_CURSOR_MAX && memcmp(key.mv_data, k, klen) == 0) {
        tt_chunk_rec c;
        const char *id = (const char *)key.mv_data + klen;
        rc = chunk_read(&val, &c);
        if (rc == 0)
            rc = fn(id, key.mv_size - klen - 5, &c, ctx);
        if (rc == 0) {
            *cursor_len = key.mv_size - klen;
            memcpy(cursor, id, *cursor_len);
            n++;
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
    }
    if (rc == 0 && (mrc == MDB_NOTFOUND ||
                    (mrc == 0 && (key.mv_size <= klen + 5 || memcmp(key.mv_data, k, klen) != 0))))
        *done = 1;
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc);
}

int tt_chunks_scan(tt_store *st, const char *tenant, const char *collection, tt_chunks_chunk_fn fn,
                   void *ctx)
{
    char k[KEY_BUF];
    size_t klen = prefix(k, tenant, collection, NULL);
    if (!st || !fn || !klen)
        return TT_EINVAL;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->chunks, &t, &cur);
    if (rc)
        return rc;
    MDB_val key = {klen, k}, val;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && key.mv_size > klen + 5 && memcmp(key.mv_data, k, klen) == 0) {
        tt_chunk_rec c;
        const char *id = (const char *)key.mv_data + klen;
        size_t id_len = key.mv_size - klen - 5; /* id, \x1f, be32 pos */
        rc = chunk_read(&val, &c);
        if (rc == 0)
            rc = fn(id, id_len, &c, ctx);
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc);
}

int tt_chunks_get(tt_store *st, const char *tenant, const char *collection, const char *id,
                  uint32_t pos, tt_chunks_get_fn fn, void *ctx)
{
    char k[KEY_BUF];
    size_t klen = id ? prefix(k, tenant, collection, id) : 0;
    if (!st || !fn || !klen)
        return TT_EINVAL;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = tt_store_rd_cursor(st, st->documents, &t, &cur);
    if (rc)
        return rc;
    MDB_val dk = {klen - 1, k}, rec, cv;
    int mrc = mdb_get(t, st->documents, &dk, &rec);
    if (mrc == 0) {
        for (int b = 0; b < 4; b++)
            k[klen + (size_t)b] = (char)(pos >> (24 - 8 * b));
        MDB_val ck = {klen + 4, k};
        mrc = mdb_get(t, st->chunks, &ck, &cv);
    }
    tt_chunk_rec c;
    if (mrc == MDB_NOTFOUND)
        rc = TT_ENOTFOUND;
    else if (mrc == 0 && (rc = chunk_read(&cv, &c)) == 0)
        rc = fn(rec.mv_data, rec.mv_size, &c, ctx);
    return tt_store_rd_cursor_end(st, t, cur, rc, mrc == MDB_NOTFOUND ? 0 : mrc);
}
