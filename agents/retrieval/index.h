/* The in-process search index of one tenant's collection (retrieval.h):
 * BM25 over the chunks' words and cosine similarity over their embeddings,
 * fused by reciprocal rank fusion.
 *
 * Built once from the chunks (tt_rindex_add, then tt_rindex_build), then
 * immutable: any number of threads may search it at once. A change to the
 * collection builds a new index; the old one is freed when its last search
 * lets go (retrieval.c counts references).
 *
 * Words (BM25 terms): runs of ASCII letters and digits, lowercased, and
 * runs of non-ASCII bytes (so text in any script has terms), each cut to
 * TT_RINDEX_TERM_MAX bytes. BM25 with k1 = 1.2, b = 0.75 and the idf
 * ln(1 + (N - df + 0.5) / (df + 0.5)) (always positive).
 *
 * Vectors are kept normalised to unit length in one contiguous float array
 * (n x dims), so cosine similarity is a dot product. Chunks without an
 * embedding (none asked, or of another size than the query's) take part in
 * BM25 only. The build also keeps an int8 copy of each vector (one scale
 * per row): a search scans those rows (a quarter of the bytes: the scan is
 * memory-bound), keeps the best TT_RINDEX_RESCORE by that approximate
 * cosine, and re-scores them with the float vectors; the cosines it returns
 * and their order are exact, and a chunk is missed only when int8 rounding
 * moves it from the best 50 to past the best 256. BM25's per-posting
 * weight tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)) is computed at
 * build; a query adds idf x weight over its terms' postings.
 *
 * Fusion: the best TT_RINDEX_CANDIDATES of each list (BM25 score > 0;
 * cosine >= min_similarity), each chunk scored sum(1 / (60 + rank)) over
 * the lists it is in (rank from 1), the top k by that score; ties by
 * chunk order. */
#ifndef TT_RINDEX_H
#define TT_RINDEX_H

#include <stddef.h>
#include <stdint.h>

#define TT_RINDEX_TERM_MAX 64
#define TT_RINDEX_CANDIDATES 50 /* per list, before fusion */
#define TT_RINDEX_RRF_K 60
#define TT_RINDEX_K_MAX 50
#define TT_RINDEX_CHUNKS_MAX 2000000u
#define TT_RINDEX_DIMS_MAX 4096 /* longer vectors are scanned in float, unquantised */
#define TT_RINDEX_RESCORE 256   /* the int8 scan's best, re-scored in float */

typedef struct tt_rindex tt_rindex;

typedef struct tt_rindex_hit {
    uint32_t chunk;             /* index in add order */
    float score;                /* fused */
    float bm25;                 /* 0 when not among BM25's candidates */
    float cosine;               /* -2 when not computed (no vectors) */
    int bm25_rank, vector_rank; /* 1-based; 0: not in that list */
} tt_rindex_hit;

/* An empty index whose vectors have dims floats (0: keyword only). */
tt_rindex *tt_rindex_new(uint32_t dims);
void tt_rindex_free(tt_rindex *ix);

/* Add a chunk (text copied; vec of ix's dims, normalised here, or NULL).
 * Its number is the count of chunks added before it. TT_ETOOLARGE past
 * TT_RINDEX_CHUNKS_MAX, TT_ENOMEM. */
int tt_rindex_add(tt_rindex *ix, const char *text, size_t len, const float *vec);
/* Make the postings; after it the index is read-only. */
int tt_rindex_build(tt_rindex *ix);

size_t tt_rindex_size(const tt_rindex *ix);
uint32_t tt_rindex_dims(const tt_rindex *ix);
/* Bytes the index holds (text, vectors, postings, terms). */
size_t tt_rindex_memory(const tt_rindex *ix);
/* A chunk's text (borrowed from the index). */
const char *tt_rindex_text(const tt_rindex *ix, uint32_t chunk, size_t *len);

/* BM25 alone: the best n (<= TT_RINDEX_CANDIDATES) into hits, their count. */
size_t tt_rindex_bm25(const tt_rindex *ix, const char *query, size_t qlen, tt_rindex_hit *hits,
                      size_t n);
/* Cosine alone (qvec of ix's dims, need not be normalised): the best n
 * with cosine >= floor. */
size_t tt_rindex_vector(const tt_rindex *ix, const float *qvec, float floor, tt_rindex_hit *hits,
                        size_t n);
/* Reciprocal rank fusion of two ranked lists into out (k at most): count. */
size_t tt_rindex_rrf(const tt_rindex_hit *a, size_t na, const tt_rindex_hit *b, size_t nb,
                     tt_rindex_hit *out, size_t k);

/* The whole search: BM25 on query, cosine on qvec (NULL, or dims that do
 * not match: keyword only), fused, top k (1..TT_RINDEX_K_MAX) into out. */
size_t tt_rindex_search(const tt_rindex *ix, const char *query, size_t qlen, const float *qvec,
                        uint32_t qdims, float min_similarity, tt_rindex_hit *out, size_t k);

/* Terms of text, for tests: calls fn with each term (lowercased). */
void tt_rindex_terms(const char *text, size_t len, void (*fn)(const char *t, size_t n, void *ud),
                     void *ud);

#endif
