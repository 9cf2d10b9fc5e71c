/* The ledger's rows copied to PostgreSQL's `usage` table (see usage_archive.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "state/usage_archive.h"

#define KEY_DONE                                                                                   \
    "usage_archive\x1f"                                                                            \
    "done"
#define KEY_STORE                                                                                  \
    "usage_archive\x1f"                                                                            \
    "store"
#define STORE_ID_HEX 16
#define BATCH_BUF_CAP (64u << 20)
#define READ_STOP 1

const char tt_usage_archive_migration[] =
    "CREATE TABLE IF NOT EXISTS usage ("
    "  id text PRIMARY KEY,"
    "  ts timestamptz NOT NULL,"
    "  day date NOT NULL,"
    "  tenant text NOT NULL,"
    "  user_name text NOT NULL,"
    "  key_id text NOT NULL,"
    "  agent text NOT NULL,"
    "  session text NOT NULL,"
    "  feature text NOT NULL,"
    "  model text NOT NULL,"
    "  route text NOT NULL,"
    "  target text NOT NULL,"
    "  outcome text NOT NULL,"
    "  cache_hit boolean NOT NULL,"
    "  prompt_tokens bigint NOT NULL,"
    "  completion_tokens bigint NOT NULL,"
    "  cost_usd double precision NOT NULL,"
    "  latency_ms bigint NOT NULL,"
    "  archived_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX IF NOT EXISTS usage_tenant_day ON usage (tenant, day)";

/* $1: [{"id", "row"}, ...]. Returns the rows inserted (the rest were there). */
static const char BATCH_SQL[] =
    "WITH i AS (INSERT INTO usage (id, ts, day, tenant, user_name, key_id, agent, session, "
    "feature, model, route, target, outcome, cache_hit, prompt_tokens, completion_tokens, "
    "cost_usd, latency_ms) "
    "SELECT x->>'id', to_timestamp((r->>'ts_ms')::bigint / 1000.0), "
    "(to_timestamp((r->>'ts_ms')::bigint / 1000.0) AT TIME ZONE 'UTC')::date, "
    "r->>'tenant', r->>'user', r->>'key_id', r->>'agent', r->>'session', r->>'feature', "
    "r->>'model', r->>'route', r->>'target', r->>'outcome', (r->>'cache_hit')::boolean, "
    "(r->>'prompt_tokens')::bigint, (r->>'completion_tokens')::bigint, "
    "(r->>'cost_usd')::double precision, (r->>'latency_ms')::bigint "
    "FROM json_array_elements($1::json) x, LATERAL (SELECT x->'row' AS r) y "
    "ON CONFLICT (id) DO NOTHING RETURNING 1) SELECT count(*) FROM i";

struct tt_usage_archive {
    uv_loop_t *loop;
    tt_store *store;
    const tt_ledger *ledger;
    tt_pg *pg;
    tt_usage_archive_options opt;
    tt_usage_archive_stats stats;
    char store_id[STORE_ID_HEX + 1];
    unsigned char done[TT_LEDGER_KEY_LEN]; /* the last key archived */
    int have_done;
    unsigned char batch_last[TT_LEDGER_KEY_LEN]; /* the batch in flight's last key */
    uint64_t batch_rows;
    int in_flight;
    uint64_t pending_base; /* rows after `done` at start-up ... */
    uint64_t written_base; /* ... when the ledger had written this many */
    uint64_t archived;     /* rows archived since start-up */
    uv_timer_t poll, retry;
    int open_handles;
};

static void hex(char *out, const unsigned char *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n)
        return TT_EINVAL;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return TT_EINVAL;
        out[i / 2] = (unsigned char)(i % 2 ? (out[i / 2] | v) : (v << 4));
    }
    return 0;
}

typedef struct put_ctx {
    const char *key, *val;
} put_ctx;

static int put_meta(tt_store_txn *txn, void *ud)
{
    put_ctx *p = ud;
    return tt_store_put_meta(txn, p->key, p->val, strlen(p->val));
}

/* The store's id: read, or made (random) and written once. */
static int load_store_id(tt_usage_archive *a)
{
    char *v = NULL;
    size_t len = 0;
    int rc = tt_store_get_meta(a->store, KEY_STORE, &v, &len);
    if (rc == 0 && len == STORE_ID_HEX) {
        memcpy(a->store_id, v, STORE_ID_HEX);
        a->store_id[STORE_ID_HEX] = '\0';
    }
    free(v);
    if (rc == 0 && len == STORE_ID_HEX)
        return 0;
    if (rc != 0 && rc != TT_ENOTFOUND)
        return rc;
    unsigned char r[STORE_ID_HEX / 2];
    if (uv_random(NULL, NULL, r, sizeof r, 0, NULL) != 0)
        return TT_EIO;
    hex(a->store_id, r, sizeof r);
    put_ctx p = {.key = KEY_STORE, .val = a->store_id};
    return tt_store_write(a->store, put_meta, &p);
}

static int load_done(tt_usage_archive *a)
{
    char *v = NULL;
    size_t len = 0;
    int rc = tt_store_get_meta(a->store, KEY_DONE, &v, &len);
    if (rc == 0)
        a->have_done = unhex(v, len, a->done, TT_LEDGER_KEY_LEN) == 0;
    free(v);
    return rc == TT_ENOTFOUND ? 0 : rc;
}

static int count_row(const unsigned char *key, const char *json, size_t len, void *ctx)
{
    (void)key, (void)json, (void)len;
    ++*(uint64_t *)ctx;
    return 0;
}

int tt_usage_archive_new(uv_loop_t *loop, tt_store *store, const tt_ledger *ledger,
                         const tt_usage_archive_options *opt, tt_usage_archive **out)
{
    tt_usage_archive *a = calloc(1, sizeof *a);
    if (!a)
        return TT_ENOMEM;
    a->loop = loop;
    a->store = store;
    a->ledger = ledger;
    a->opt = *opt;
    a->opt.batch_rows = opt->batch_rows ? opt->batch_rows : 1000;
    a->opt.poll_ms = opt->poll_ms ? opt->poll_ms : 200;
    a->opt.retry_ms = opt->retry_ms ? opt->retry_ms : 1000;
    a->written_base = tt_ledger_written(ledger);
    int rc = load_store_id(a);
    if (rc == 0)
        rc = load_done(a);
    if (rc == 0)
        rc = tt_store_read_usage(store, a->have_done ? a->done : NULL, SIZE_MAX, count_row,
                                 &a->pending_base);
    if (rc) {
        free(a);
        return rc;
    }
    (void)uv_timer_init(loop, &a->poll);
    (void)uv_timer_init(loop, &a->retry);
    a->poll.data = a->retry.data = a;
    a->open_handles = 2;
    *out = a;
    return 0;
}

/* Rows written to LMDB and not archived yet. */
static uint64_t pending(const tt_usage_archive *a)
{
    uint64_t total = a->pending_base + (tt_ledger_written(a->ledger) - a->written_base);
    return total > a->archived ? total - a->archived : 0;
}

static void on_poll(uv_timer_t *t)
{
    tt_usage_archive *a = t->data;
    if (pending(a))
        tt_usage_archive_kick(a);
}

void tt_usage_archive_set_pg(tt_usage_archive *a, tt_pg *pg)
{
    a->pg = pg;
    if (pg && !uv_is_active((uv_handle_t *)&a->poll))
        (void)uv_timer_start(&a->poll, on_poll, a->opt.poll_ms, a->opt.poll_ms);
}

static void on_closed(uv_handle_t *h)
{
    tt_usage_archive *a = h->data;
    if (--a->open_handles == 0)
        free(a);
}

void tt_usage_archive_free(tt_usage_archive *a)
{
    if (!a)
        return;
    uv_close((uv_handle_t *)&a->poll, on_closed);
    uv_close((uv_handle_t *)&a->retry, on_closed);
}

typedef struct build {
    tt_usage_archive *a;
    tt_buf out;
    uint64_t n;
    unsigned char last[TT_LEDGER_KEY_LEN];
} build;

static int batch_row(const unsigned char *key, const char *json, size_t len, void *ctx)
{
    build *b = ctx;
    char kh[2 * TT_LEDGER_KEY_LEN + 1];
    hex(kh, key, TT_LEDGER_KEY_LEN);
    if (tt_buf_appendf(&b->out, "%s{\"id\":\"%s-%s\",\"row\":", b->n ? "," : "", b->a->store_id,
                       kh) ||
        tt_buf_append(&b->out, json, len) || tt_buf_append(&b->out, "}", 1))
        return TT_ENOMEM;
    memcpy(b->last, key, TT_LEDGER_KEY_LEN);
    b->n++;
    return 0;
}

int tt_usage_archive_batch_next(tt_usage_archive *a, char **rows, uint64_t *n_rows)
{
    *rows = NULL;
    *n_rows = 0;
    if (a->in_flight)
        return TT_ECONFLICT;
    build b = {.a = a};
    tt_buf_init(&b.out, BATCH_BUF_CAP);
    int rc = tt_buf_append(&b.out, "[", 1);
    if (rc == 0)
        rc = tt_store_read_usage(a->store, a->have_done ? a->done : NULL, a->opt.batch_rows,
                                 batch_row, &b);
    if (rc == 0 && b.n)
        rc = tt_buf_append(&b.out, "]", 1);
    if (rc == 0 && b.n) {
        *rows = tt_buf_take(&b.out, NULL);
        rc = *rows ? 0 : TT_ENOMEM;
    }
    tt_buf_free(&b.out);
    if (rc || !b.n) {
        free(*rows);
        *rows = NULL;
        return rc;
    }
    memcpy(a->batch_last, b.last, TT_LEDGER_KEY_LEN);
    a->batch_rows = *n_rows = b.n;
    a->in_flight = 1;
    return 0;
}

static void on_batch(int err, const PGresult *res, const char *msg, void *ud)
{
    (void)msg;
    uint64_t inserted = 0;
    if (!err && PQntuples(res) == 1)
        inserted = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    tt_usage_archive_batch_done(ud, err, inserted);
}

void tt_usage_archive_kick(tt_usage_archive *a)
{
    if (!a || a->in_flight || !a->pg || tt_pg_state_get(a->pg) != TT_PG_UP || tt_pg_busy(a->pg) ||
        uv_is_active((uv_handle_t *)&a->retry))
        return;
    char *rows = NULL;
    uint64_t n = 0;
    if (tt_usage_archive_batch_next(a, &rows, &n) == 0 && rows) {
        const char *params[1] = {rows};
        if (tt_pg_query(a->pg, BATCH_SQL, 1, params, on_batch, a) != 0)
            a->in_flight = 0; /* the connection went down: sent again once it is up */
    }
    free(rows);
}

static void on_retry(uv_timer_t *t)
{
    tt_usage_archive_kick(t->data);
}

void tt_usage_archive_batch_done(tt_usage_archive *a, int err, uint64_t inserted)
{
    if (!a->in_flight)
        return;
    a->in_flight = 0;
    if (err) {
        a->stats.batch_failures++;
        (void)uv_timer_start(&a->retry, on_retry, a->opt.retry_ms, 0);
        return;
    }
    a->stats.batches++;
    a->stats.rows += inserted;
    a->stats.duplicates += a->batch_rows > inserted ? a->batch_rows - inserted : 0;
    a->archived += a->batch_rows;
    memcpy(a->done, a->batch_last, TT_LEDGER_KEY_LEN);
    a->have_done = 1;
    char kh[2 * TT_LEDGER_KEY_LEN + 1];
    hex(kh, a->done, TT_LEDGER_KEY_LEN);
    put_ctx p = {.key = KEY_DONE, .val = kh};
    if (tt_store_write(a->store, put_meta, &p) != 0)
        a->stats.marker_failures++; /* only means these rows are sent again after a restart */
    if (pending(a))
        tt_usage_archive_kick(a);
}

const tt_usage_archive_stats *tt_usage_archive_stats_get(const tt_usage_archive *a)
{
    return &a->stats;
}

static int first_ts(const unsigned char *key, const char *json, size_t len, void *ctx)
{
    (void)json, (void)len;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = (t << 8) | key[8 + i];
    *(int64_t *)ctx = (int64_t)t;
    return READ_STOP;
}

void tt_usage_archive_lag(const tt_usage_archive *a, int64_t now_ms, uint64_t *rows,
                          double *seconds)
{
    *rows = pending(a) + tt_ledger_queued(a->ledger); /* queued: not even in LMDB yet */
    *seconds = 0;
    int64_t ts = -1;
    if (*rows &&
        tt_store_read_usage(a->store, a->have_done ? a->done : NULL, 1, first_ts, &ts) ==
            READ_STOP &&
        ts >= 0 && now_ms > ts)
        *seconds = (double)(now_ms - ts) / 1000.0;
}
