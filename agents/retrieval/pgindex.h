/* Retrieval's PostgreSQL index (--database-url): every document and chunk
 * also lives in PostgreSQL, so every node sharing the database sees them
 * (agents/retrieval/README.md, "PostgreSQL").
 *
 *   rag_collections  (tenant, collection) -> version, bumped by every write
 *                    and delete of one of its documents
 *   rag_documents    (tenant, collection, id) -> title, record (JSON, the
 *                    LMDB record's fields), embedding (the mean of its
 *                    chunks' vectors, unit length; real[] or NULL)
 *   rag_chunks       (tenant, collection, document, pos) -> title, text,
 *                    tsv (to_tsvector('english', text), GIN index),
 *                    embedding (real[], unit length, or NULL)
 *
 * Names are `text COLLATE "C"`, so the primary key's order is strcmp's.
 *
 * The statements of one service go through one connection (its own, opened
 * by server/database.c), one at a time, in the order asked (tt_rpg queues
 * them, copying their parameters). A statement asked while the database is
 * not up fails at once (the caller answers 503); one in flight when the
 * connection drops fails through its callback.
 *
 * Loop thread only. */
#ifndef TT_RETRIEVAL_PGINDEX_H
#define TT_RETRIEVAL_PGINDEX_H

#include <stddef.h>

#include "state/pg.h"

#define TT_RPG_QUEUE_MAX 1024 /* statements waiting on one connection */

/* The migration that makes the tables (appended after the archive's and the
 * replica's, server/database.c). */
extern const char *const tt_rpg_migrations[];
extern const size_t tt_rpg_n_migrations;

typedef struct tt_rpg tt_rpg;
typedef struct tt_rpg_op tt_rpg_op;

/* A queue of statements on pg (borrowed: it must outlive every statement
 * sent, which tt_pg_close's failing of the one in flight ensures). */
int tt_rpg_new(tt_pg *pg, tt_rpg **out);
/* Statements waiting are dropped (their callbacks not called); the one in
 * flight is orphaned: its callback frees it when libpq answers. */
void tt_rpg_free(tt_rpg *q);
/* 1 when the connection is up. */
int tt_rpg_up(const tt_rpg *q);

/* Queue one statement (values copied; NULL values are SQL NULL). The
 * callback runs later, never from inside this call, unless cancelled.
 * TT_ECONFLICT when the database is not up, TT_EFULL past
 * TT_RPG_QUEUE_MAX, TT_ENOMEM. *out (may be NULL) is for tt_rpg_cancel. */
int tt_rpg_send(tt_rpg *q, const char *sql, int n, const char *const *values, tt_pg_result_fn cb,
                void *ud, tt_rpg_op **out);
/* Its callback will not be called. */
void tt_rpg_cancel(tt_rpg_op *op);

#endif
