/* Retrieval's PostgreSQL tables and its queue of statements (pgindex.h). */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "agents/retrieval/pgindex.h"

const char *const tt_rpg_migrations[] = {
    "CREATE TABLE IF NOT EXISTS rag_collections ("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  collection text COLLATE \"C\" NOT NULL,"
    "  version bigint NOT NULL DEFAULT 1,"
    "  PRIMARY KEY (tenant, collection));"
    "CREATE TABLE IF NOT EXISTS rag_documents ("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  collection text COLLATE \"C\" NOT NULL,"
    "  id text COLLATE \"C\" NOT NULL,"
    "  title text NOT NULL,"
    "  record json NOT NULL,"
    "  embedding real[],"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (tenant, collection, id));"
    "CREATE TABLE IF NOT EXISTS rag_chunks ("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  collection text COLLATE \"C\" NOT NULL,"
    "  document text COLLATE \"C\" NOT NULL,"
    "  pos integer NOT NULL,"
    "  title text NOT NULL,"
    "  text text NOT NULL,"
    "  tsv tsvector NOT NULL,"
    "  embedding real[],"
    "  tokens integer," /* the chunk's tokens, for its passage */
    "  PRIMARY KEY (tenant, collection, document, pos));"
    "CREATE INDEX IF NOT EXISTS rag_chunks_tsv ON rag_chunks USING gin (tsv)",
};
const size_t tt_rpg_n_migrations = sizeof tt_rpg_migrations / sizeof(char *);

struct tt_rpg_op {
    tt_rpg_op *next;
    tt_rpg *q; /* NULL: orphaned (the queue is gone) */
    const char *sql;
    int n;
    char **values;
    tt_pg_result_fn cb;
    void *ud;
    int cancelled;
};

struct tt_rpg {
    tt_pg *pg;
    tt_rpg_op *head, *tail; /* waiting */
    size_t n;
    tt_rpg_op *flight; /* sent, not back */
};

int tt_rpg_new(tt_pg *pg, tt_rpg **out)
{
    tt_rpg *q = calloc(1, sizeof *q);
    if (!q)
        return TT_ENOMEM;
    q->pg = pg;
    *out = q;
    return 0;
}

static void op_free(tt_rpg_op *op)
{
    for (int i = 0; i < op->n; i++)
        free(op->values[i]);
    free(op->values);
    free(op);
}

void tt_rpg_free(tt_rpg *q)
{
    if (!q)
        return;
    for (tt_rpg_op *op = q->head, *next; op; op = next) {
        next = op->next;
        op_free(op);
    }
    if (q->flight)
        q->flight->q = NULL;
    free(q);
}

int tt_rpg_up(const tt_rpg *q)
{
    return q && tt_pg_state_get(q->pg) == TT_PG_UP;
}

static void kick(tt_rpg *q);

static void on_result(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_rpg_op *op = ud;
    tt_rpg *q = op->q;
    if (q)
        q->flight = NULL;
    if (!op->cancelled && q)
        op->cb(err, res, msg, op->ud);
    op_free(op);
    if (q)
        kick(q);
}

/* Send the head when nothing is in flight; with the database away, every
 * waiting statement fails (their callbacks run now, from the loop). */
static void kick(tt_rpg *q)
{
    while (!q->flight && q->head) {
        tt_rpg_op *op = q->head;
        q->head = op->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        if (op->cancelled) {
            op_free(op);
            continue;
        }
        q->flight = op;
        int rc = tt_pg_query(q->pg, op->sql, op->n, (const char *const *)op->values, on_result, op);
        if (rc == 0)
            return;
        q->flight = NULL;
        op->cb(rc == TT_ECONFLICT ? TT_ECONFLICT : TT_EIO, NULL, "the database is not reachable",
               op->ud);
        op_free(op);
    }
}

int tt_rpg_send(tt_rpg *q, const char *sql, int n, const char *const *values, tt_pg_result_fn cb,
                void *ud, tt_rpg_op **out)
{
    if (!tt_rpg_up(q))
        return TT_ECONFLICT;
    if (q->n >= TT_RPG_QUEUE_MAX)
        return TT_EFULL;
    tt_rpg_op *op = calloc(1, sizeof *op);
    if (!op || !(op->values = calloc((size_t)n + 1, sizeof *op->values))) {
        free(op);
        return TT_ENOMEM;
    }
    op->q = q;
    op->sql = sql;
    op->cb = cb;
    op->ud = ud;
    for (; op->n < n; op->n++)
        if (values[op->n] && !(op->values[op->n] = strdup(values[op->n]))) {
            op_free(op);
            return TT_ENOMEM;
        }
    if (out)
        *out = op;
    if (!q->flight) { /* sent now: the callback comes with libpq's answer */
        int rc = tt_pg_query(q->pg, sql, n, (const char *const *)op->values, on_result, op);
        if (rc)
            op_free(op);
        else
            q->flight = op;
        return rc ? TT_ECONFLICT : 0;
    }
    if (q->tail)
        q->tail->next = op;
    else
        q->head = op;
    q->tail = op;
    q->n++;
    return 0;
}

void tt_rpg_cancel(tt_rpg_op *op)
{
    if (op)
        op->cancelled = 1;
}
