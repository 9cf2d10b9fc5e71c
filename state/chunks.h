/* The document store of retrieval (agents/retrieval/retrieval.h): each
 * document's record and its chunks (text, token count, embedding), per
 * tenant and collection, in two LMDB databases created when missing (no
 * schema change, like the ledger's):
 *
 *   documents  tenant \x1f collection \x1f doc id -> the record, JSON:
 *              {"id", "title", "collection", "type", "bytes", "chunks",
 *               "tokens", "dims", "created_ms", "sha256"}
 *   chunks     tenant \x1f collection \x1f doc id \x1f big-endian u32 pos
 *              -> tt_chunk_hdr, then dims floats (the embedding, unit
 *              length, or none), then the text (UTF-8, no NUL)
 *
 * Tenant, collection and document id are checked names (protocol/names.h:
 * no control characters, so no \x1f), so one tenant's prefix never covers
 * another's: a scan of (tenant, collection) reads that pair's chunks only.
 * Writing a document replaces its record and every chunk it had, in the
 * caller's one write transaction (tt_store_write), so a reader sees the old
 * document or the new one, never a mix. Every call runs on the loop thread
 * (the store's read transactions are shared). */
#ifndef TT_CHUNKS_H
#define TT_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define TT_CHUNKS_COLLECTION_MAX 64   /* bytes of a collection name */
#define TT_CHUNKS_DOC_ID_MAX 128      /* bytes of a document id */
#define TT_CHUNKS_DIMS_MAX 4096       /* floats of one embedding */
#define TT_CHUNKS_TEXT_MAX (1u << 20) /* bytes of one chunk's text */

/* What a stored chunk starts with (native byte order: the store is local). */
typedef struct tt_chunk_hdr {
    uint32_t pos;      /* 0, 1, ... within its document */
    uint32_t tokens;   /* the chunk's token count */
    uint32_t dims;     /* floats that follow (0: no embedding) */
    uint32_t text_len; /* bytes of text after them */
} tt_chunk_hdr;

/* One chunk to write, or one read back (pointers borrowed; vec may be
 * unaligned in a read: copy it with memcpy). */
typedef struct tt_chunk_rec {
    uint32_t pos, tokens, dims;
    const float *vec; /* dims floats, or NULL when dims is 0 */
    const char *text;
    size_t text_len;
} tt_chunk_rec;

/* 0 when tenant, collection and id are usable in a key (names.h checks,
 * the byte caps above), else TT_EINVAL (id may be NULL: not checked). */
int tt_chunks_names_check(const char *tenant, const char *collection, const char *id);

/* Inside a fill callback: write the document's record (JSON text) and its n
 * chunks, removing whatever chunks it had before. *replaced (may be NULL)
 * says whether a record was there. TT_EINVAL for bad names or a chunk over
 * the caps; store errors as tt_store_write's. */
int tt_chunks_put(tt_store_txn *txn, const char *tenant, const char *collection, const char *id,
                  const char *record, size_t record_len, const tt_chunk_rec *chunks, size_t n,
                  int *replaced);

/* Inside a fill callback: delete the document's record and chunks. *found
 * says whether it existed (0 and nothing changed when not). */
int tt_chunks_delete(tt_store_txn *txn, const char *tenant, const char *collection, const char *id,
                     int *found);

/* Each record of the tenant's documents, in key order: of one collection,
 * or of all (collection NULL). fn's non-zero result stops the scan and is
 * returned. The record pointer is valid during the call only. */
typedef int (*tt_chunks_doc_fn)(const char *record, size_t len, void *ctx);
int tt_chunks_list(tt_store *st, const char *tenant, const char *collection, tt_chunks_doc_fn fn,
                   void *ctx);

/* Each chunk of (tenant, collection), in key order (document id, then
 * position), with its document id. A malformed value is TT_ESCHEMA. */
typedef int (*tt_chunks_chunk_fn)(const char *doc_id, size_t id_len, const tt_chunk_rec *c,
                                  void *ctx);
int tt_chunks_scan(tt_store *st, const char *tenant, const char *collection, tt_chunks_chunk_fn fn,
                   void *ctx);

/* The same in batches, so a large collection is read over several loop
 * passes: at most max chunks after *cursor (the key of the last chunk read
 * after the (tenant, collection) prefix; *cursor_len 0: from the start;
 * cursor holds TT_CHUNKS_CURSOR_MAX bytes), *cursor moved to the last one
 * read, *done set when the collection has no more. */
#define TT_CHUNKS_CURSOR_MAX (TT_CHUNKS_DOC_ID_MAX + 8)
int tt_chunks_scan_batch(tt_store *st, const char *tenant, const char *collection, char *cursor,
                         size_t *cursor_len, size_t max, tt_chunks_chunk_fn fn, void *ctx,
                         int *done);

/* One passage: the document's record and its chunk at pos, read in one
 * read transaction; fn is called once with both (valid during the call)
 * and its result returned. TT_ENOTFOUND when the document or that chunk is
 * not there, TT_EINVAL for bad names, TT_ESCHEMA for a malformed value. */
typedef int (*tt_chunks_get_fn)(const char *record, size_t record_len, const tt_chunk_rec *c,
                                void *ctx);
int tt_chunks_get(tt_store *st, const char *tenant, const char *collection, const char *id,
                  uint32_t pos, tt_chunks_get_fn fn, void *ctx);

#endif
