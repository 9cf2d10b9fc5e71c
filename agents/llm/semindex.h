/* The semantic cache's vectors in memory (semcache.h): one partition per
 * tenant, route, model and conversation context (the SHA-256 the cache
 * computes), each a contiguous array of unit-length float vectors, rows of
 * `dim` floats one after the other, searched by a dot-product loop the
 * compiler vectorises (eight independent sums: no reassociation needed).
 *
 * Entries carry an id (the SHA-256 of their partition and text), an expiry
 * and a last use. A search skips nothing in its loop: the best row at or over
 * the threshold that has expired is removed and the search runs again. An
 * insert past max_entries (all partitions) evicts the least recently used
 * entry. Removed ids are handed back (tt_semindex_gone) so the caller deletes
 * them from its storage.
 *
 * Thread-safe: every operation takes the index's mutex (the cache runs them in
 * libuv's thread pool). */
#ifndef TT_SEMINDEX_H
#define TT_SEMINDEX_H

#include <stddef.h>
#include <stdint.h>

#define TT_SEM_KEY_LEN 32
#define TT_SEM_DIM_MAX 4096

typedef struct tt_semindex tt_semindex;

/* Ids removed by an operation (expired or evicted): malloc'd, the caller
 * frees ids (tt_semindex_gone_free). */
typedef struct tt_semindex_gone {
    unsigned char (*ids)[TT_SEM_KEY_LEN];
    size_t n;
} tt_semindex_gone;
void tt_semindex_gone_free(tt_semindex_gone *g);

/* max_entries >= 1. TT_EINVAL, TT_ENOMEM. */
int tt_semindex_new(size_t max_entries, tt_semindex **out);
void tt_semindex_free(tt_semindex *ix);

/* v scaled to unit length: 0, or TT_EINVAL (zero, NaN or infinite). */
int tt_semindex_normalise(float *v, size_t dim);
/* The dot product of two rows of dim floats. */
float tt_semindex_dot(const float *a, const float *b, size_t dim);
/* The row of vecs (n rows of dim floats) with the largest dot product with q,
 * and *score; -1 when n is 0. */
long tt_semindex_best(const float *vecs, size_t n, size_t dim, const float *q, float *score);

/* The best entry of partition part with dim floats whose cosine with q (unit
 * length) is >= threshold and which has not expired at now_ms: 0, its id and
 * *score (its last use becomes now_ms); TT_ENOTFOUND otherwise (*score: the
 * best score seen, -2 when the partition is empty or of another dim). */
int tt_semindex_search(tt_semindex *ix, const unsigned char part[TT_SEM_KEY_LEN], const float *q,
                       size_t dim, float threshold, int64_t now_ms,
                       unsigned char id[TT_SEM_KEY_LEN], float *score, tt_semindex_gone *gone);

/* Add (or replace, by id) an entry: q (unit length, copied) of dim floats,
 * kept until expires_ms. A partition holds one dim: a vector of another dim
 * replaces the partition (the embeddings model changed). 0, TT_EINVAL (dim 0
 * or over TT_SEM_DIM_MAX), TT_ENOMEM. */
int tt_semindex_insert(tt_semindex *ix, const unsigned char part[TT_SEM_KEY_LEN],
                       const unsigned char id[TT_SEM_KEY_LEN], const float *q, size_t dim,
                       int64_t expires_ms, int64_t now_ms, tt_semindex_gone *gone);

/* An entry read back from storage (ids are unique there): appended without
 * the insert's look for its id and without evicting (linear, not quadratic,
 * in a start-up's entries; last use 0). TT_EFULL at max_entries, TT_EINVAL
 * for a dim other than the partition's (or 0, or over the max), TT_ENOMEM. */
int tt_semindex_load(tt_semindex *ix, const unsigned char part[TT_SEM_KEY_LEN],
                     const unsigned char id[TT_SEM_KEY_LEN], const float *q, size_t dim,
                     int64_t expires_ms);

/* Remove an entry by id (its stored answer is gone): 1 when it was there. */
int tt_semindex_remove(tt_semindex *ix, const unsigned char id[TT_SEM_KEY_LEN]);

/* Entries in all partitions, and partitions. */
size_t tt_semindex_size(tt_semindex *ix);
size_t tt_semindex_partitions(tt_semindex *ix);

#endif
