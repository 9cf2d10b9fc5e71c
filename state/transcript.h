/* A session's transcript in the store: one entry per LMDB value, append-only.
 *
 * In memory the transcript is one JSON array (tt_session_transcript(), what
 * the snapshot and the chat agent read), of which a session committed at
 * rest keeps none: its entries are read back from the store when next read,
 * and a new entry is appended without them (s->transcript_mem holds the
 * entries from s->transcript_mem_first on). In the store each entry is written once,
 * under its index, in the same group commit as the events of its turn; the
 * session record keeps only the bounds (transcript_first, transcript_count),
 * so the cost of a commit no longer grows with the transcript. Trimming to
 * transcript_max deletes entries from the front.
 *
 * Indices count from 1 and never repeat: the transcript's entry i has index
 * s->transcript_first + i. The store holds [transcript_stored_first,
 * transcript_stored]; the commit that writes the record also writes the
 * entries past transcript_stored and deletes those before transcript_first.
 * A rewind (tt_session_rewind) drops entries from the end in memory: the
 * entries from the rewind point on are written again as the conversation
 * goes on, and those the store still holds past the end are deleted by the
 * next commit (the record's count already leaves them out of a load).
 *
 * Records of record version 1 carry the whole transcript inline: they are
 * read as before, and the first commit that rewrites such a record moves the
 * entries into the transcript database. Private to state/; the code is in
 * store_log.c, beside the transcript database's own operations. */
#ifndef TT_TRANSCRIPT_H
#define TT_TRANSCRIPT_H

#include <jansson.h>

#include "protocol/buf.h"

#include "state/session.h"
#include "state/store.h"

/* The transcript's share of one commit, prepared before the write transaction
 * so that the fill callback can replay it after a map resize. */
typedef struct tt_transcript_batch {
    char **texts; /* encoded entries, texts[i] has index from + i (owned) */
    size_t *lens;
    size_t n;
    uint64_t from;
    uint64_t first; /* entries before this index are deleted */
    uint64_t
        stale;    /* after a rewind: entries past the end up to this index are deleted (0: none) */
    uint64_t end; /* the last index (first - 1 when empty) */
} tt_transcript_batch;

/* Encode the entries the store does not have yet. The caller writes them
 * with tt_transcript_write(), then calls tt_transcript_committed() once the
 * transaction committed, and frees the batch with tt_transcript_batch_free()
 * in every case. */
int tt_transcript_prepare(const tt_session *s, tt_transcript_batch *b);
int tt_transcript_write(tt_store_txn *txn, const tt_session *s, const tt_transcript_batch *b);
void tt_transcript_committed(tt_session *s, const tt_transcript_batch *b);
void tt_transcript_batch_free(tt_transcript_batch *b);

/* Append the transcript's bounds to a session record being written (an
 * object with members already, left open): 0, or the buffer's error. */
int tt_transcript_record_write(const tt_session *s, tt_buf *record);

/* Read the transcript part of a stored record of the given version: the
 * bounds (version 2; TT_EINVAL when missing or malformed), or the inline
 * transcript (version 1). */
int tt_transcript_record_get(tt_session *s, json_t *record, int version);

/* Read the entries the record's bounds name back from the store into
 * s->transcript_mem. TT_EINVAL when the store does not hold all of them. */
int tt_transcript_load(tt_session *s, tt_store *st);

/* What an entry weighs for the release at rest: its text's bytes and a
 * fixed allowance for the rest (0 for NULL); the sum over an array. */
size_t tt_transcript_entry_bytes(const json_t *entry);
size_t tt_transcript_bytes(const json_t *entries);

/* The entries released at rest, [transcript_first, transcript_mem_first),
 * read back from the store into a new array (*out). TT_EINVAL when the store
 * does not hold all of them. */
int tt_transcript_read_front(const tt_session *s, tt_store *st, json_t **out);

#endif
