/* Replicated mode: each committed pass written to PostgreSQL behind a fence
 * (see replica.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "state/map.h"
#include "state/replica.h"
#include "state/session.h"

#define STAGE_BUF_CAP (1024u << 20) /* PostgreSQL's own limit for one value */

const char *const tt_replica_migrations[] = {
    "CREATE TABLE IF NOT EXISTS owners ("
    "  session text PRIMARY KEY,"
    "  node text NOT NULL,"
    "  epoch bigint NOT NULL,"
    "  lease_until timestamptz NOT NULL,"
    "  head bigint NOT NULL DEFAULT 0,"
    "  active boolean NOT NULL DEFAULT false);"
    "CREATE INDEX IF NOT EXISTS owners_orphans ON owners (lease_until) WHERE active;"
    "CREATE TABLE IF NOT EXISTS records ("
    "  session text PRIMARY KEY,"
    "  record json NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS transcript ("
    "  session text NOT NULL,"
    "  idx bigint NOT NULL,"
    "  entry json NOT NULL,"
    "  PRIMARY KEY (session, idx))",
};
const size_t tt_replica_n_migrations = sizeof tt_replica_migrations / sizeof(char *);

/* $1 node, $2 lease ms, $3 owners [[id, epoch, head, active, tenant, user,
 * agent], ...], $4 records [[id, record], ...], $5 events [[id, seq, event],
 * ...], $6 transcript [[id, index, entry], ...]. The fence: f renews the
 * sessions this node owns at the epoch it holds, c claims new ones (epoch 1,
 * or already ours at 1: a batch sent again); only sessions in ok are
 * written. All in one statement, so one transaction. */
static const char BATCH_SQL[] =
    "WITH x AS (SELECT o->>0 AS id, (o->>1)::bigint AS epoch, (o->>2)::bigint AS head, "
    "(o->>3)::boolean AS active, o->>4 AS tenant, o->>5 AS user_name, o->>6 AS agent "
    "FROM json_array_elements($3::json) o), "
    "f AS (UPDATE owners w SET lease_until = now() + $2::bigint * interval '1 millisecond', "
    "head = x.head, active = x.active FROM x WHERE w.session = x.id AND x.epoch > 0 "
    "AND w.node = $1 AND w.epoch = x.epoch RETURNING w.session), "
    "c AS (INSERT INTO owners (session, node, epoch, lease_until, head, active) "
    "SELECT x.id, $1, 1, now() + $2::bigint * interval '1 millisecond', x.head, x.active "
    "FROM x WHERE x.epoch = 0 ON CONFLICT (session) DO UPDATE SET lease_until = "
    "EXCLUDED.lease_until, head = EXCLUDED.head, active = EXCLUDED.active "
    "WHERE owners.node = EXCLUDED.node AND owners.epoch = 1 RETURNING owners.session), "
    "ok AS (SELECT session FROM f UNION ALL SELECT session FROM c), "
    "s AS (INSERT INTO sessions (id, tenant, user_name, agent, archived_seq) "
    "SELECT x.id, x.tenant, x.user_name, x.agent, x.head FROM x WHERE x.id IN "
    "(SELECT session FROM ok) ON CONFLICT (id) DO UPDATE SET archived_seq = "
    "GREATEST(sessions.archived_seq, EXCLUDED.archived_seq), updated_at = now() RETURNING 1), "
    "r AS (INSERT INTO records (session, record) SELECT o->>0, o->1 FROM "
    "json_array_elements($4::json) o WHERE o->>0 IN (SELECT session FROM ok) "
    "ON CONFLICT (session) DO UPDATE SET record = EXCLUDED.record, updated_at = now() "
    "RETURNING 1), "
    "e AS (INSERT INTO events (session, seq, type, body) SELECT o->>0, (o->>1)::bigint, "
    "coalesce(o->2->>'type', ''), o->2 FROM json_array_elements($5::json) o "
    "WHERE o->>0 IN (SELECT session FROM ok) ON CONFLICT (session, seq) DO NOTHING "
    "RETURNING 1), "
    "t AS (INSERT INTO transcript (session, idx, entry) SELECT o->>0, (o->>1)::bigint, o->2 "
    "FROM json_array_elements($6::json) o WHERE o->>0 IN (SELECT session FROM ok) "
    "ON CONFLICT (session, idx) DO UPDATE SET entry = EXCLUDED.entry RETURNING 1) "
    "SELECT session FROM ok";

/* $1 node, $2 [[id, epoch], ...]: sessions deleted for good, behind the
 * same fence (after the batch that held their last changes). */
static const char DELETE_SQL[] =
    "WITH f AS (DELETE FROM owners o USING (SELECT x->>0 AS id, (x->>1)::bigint AS epoch "
    "FROM json_array_elements($2::json) x) d WHERE o.session = d.id AND o.node = $1 "
    "AND o.epoch = d.epoch RETURNING o.session), "
    "e AS (DELETE FROM events WHERE session IN (SELECT session FROM f)), "
    "t AS (DELETE FROM transcript WHERE session IN (SELECT session FROM f)), "
    "r AS (DELETE FROM records WHERE session IN (SELECT session FROM f)), "
    "s AS (DELETE FROM sessions WHERE id IN (SELECT session FROM f)) "
    "SELECT count(*) FROM f";

/* sid as a JSON string (malloc'd), or NULL without memory. */
static char *sid_json_of(const char *sid)
{
    json_t *js = json_string(sid);
    char *out = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    return out;
}

/* One session in a batch: its fence row and its latest record. */
typedef struct staged_session {
    char id[TT_SESSION_ID_MAX + 1];
    char tenant[TT_TENANT_MAX], user[TT_USER_MAX], agent[TT_SESSION_ID_MAX + 1];
    uint64_t epoch, head;
    int active;
    char *record; /* the latest staged, or NULL */
    size_t record_len;
    int ok; /* the fence passed (set from the result) */
} staged_session;

/* What goes in one statement. */
typedef struct batch {
    tt_map sessions; /* id -> staged_session */
    tt_buf events, entries;
    uint64_t n_events;
    uint64_t pass; /* the last pass staged whole in it (0: none) */
    size_t bytes;
    uint64_t t0;     /* when its first pass was staged (uv_hrtime) */
    char *params[4]; /* built at send: owners, records, events, entries */
    json_t *deletes; /* [[id, epoch], ...] deleted after the batch, or NULL */
    int deleting;    /* the batch is in: the deletes are in flight */
} batch;

struct tt_replica {
    uv_loop_t *loop;
    tt_pg *pg;
    char *node;
    char lease[24];
    tt_replica_options opt;
    tt_replica_hooks hooks;
    tt_replica_stats stats;
    batch staged, flight;
    int in_flight;
    uv_timer_t retry;
    int retry_closed;
};

static void batch_init(batch *b)
{
    tt_map_init(&b->sessions);
    tt_buf_init(&b->events, STAGE_BUF_CAP);
    tt_buf_init(&b->entries, STAGE_BUF_CAP);
}

static void batch_clear(batch *b)
{
    size_t pos = 0;
    staged_session *ss;
    while ((ss = tt_map_next(&b->sessions, &pos))) {
        free(ss->record);
        free(ss);
    }
    tt_map_free(&b->sessions);
    tt_buf_free(&b->events);
    tt_buf_free(&b->entries);
    for (size_t i = 0; i < 4; i++)
        free(b->params[i]);
    json_decref(b->deletes);
    memset(b, 0, sizeof *b);
    batch_init(b);
}

int tt_replica_new(uv_loop_t *loop, tt_pg *pg, const tt_replica_options *opt,
                   const tt_replica_hooks *hooks, tt_replica **out)
{
    tt_replica *r = calloc(1, sizeof *r);
    if (!r || !(r->node = strdup(opt->node_id ? opt->node_id : ""))) {
        free(r);
        return TT_ENOMEM;
    }
    r->loop = loop;
    r->pg = pg;
    r->opt = *opt;
    r->opt.node_id = r->node;
    r->opt.lease_ms = opt->lease_ms ? opt->lease_ms : 10000;
    r->opt.max_bytes = opt->max_bytes ? opt->max_bytes : (64u << 20);
    r->opt.retry_ms = opt->retry_ms ? opt->retry_ms : 500;
    snprintf(r->lease, sizeof r->lease, "%" PRIu64, r->opt.lease_ms);
    r->hooks = *hooks;
    batch_init(&r->staged);
    batch_init(&r->flight);
    (void)uv_timer_init(loop, &r->retry);
    r->retry.data = r;
    *out = r;
    return 0;
}

static void on_retry_closed(uv_handle_t *h)
{
    tt_replica *r = h->data;
    batch_clear(&r->staged);
    batch_clear(&r->flight);
    tt_map_free(&r->staged.sessions);
    tt_map_free(&r->flight.sessions);
    free(r->node);
    free(r);
}

void tt_replica_free(tt_replica *r)
{
    if (!r)
        return;
    r->hooks.durable = NULL;
    r->hooks.fenced = NULL;
    r->hooks.passes_done = NULL;
    uv_close((uv_handle_t *)&r->retry, on_retry_closed);
}

static int append_rows(tt_buf *b, const char *sid_json, uint64_t from, uint64_t n,
                       const char *const *texts, const size_t *lens)
{
    for (uint64_t i = 0; i < n; i++) {
        if (tt_buf_appendf(b, "%s[%s,%" PRIu64 ",", b->len ? "," : "", sid_json, from + i) ||
            tt_buf_append(b, texts[i], lens[i]) || tt_buf_append(b, "]", 1))
            return TT_ENOMEM;
    }
    return 0;
}

static staged_session *staged_get(batch *b, const tt_replica_item *it)
{
    staged_session *ss = tt_map_get(&b->sessions, it->sid);
    if (ss)
        return ss;
    ss = calloc(1, sizeof *ss);
    if (!ss)
        return NULL;
    snprintf(ss->id, sizeof ss->id, "%s", it->sid);
    snprintf(ss->tenant, sizeof ss->tenant, "%s", it->tenant);
    snprintf(ss->user, sizeof ss->user, "%s", it->user);
    snprintf(ss->agent, sizeof ss->agent, "%s", it->agent);
    if (tt_map_put(&b->sessions, ss->id, ss) != 0) {
        free(ss);
        return NULL;
    }
    return ss;
}

int tt_replica_stage(tt_replica *r, const tt_replica_item *it)
{
    batch *b = &r->staged;
    staged_session *ss = staged_get(b, it);
    char *sid_json = sid_json_of(it->sid);
    size_t before = b->events.len + b->entries.len;
    int rc = ss && sid_json ? 0 : TT_ENOMEM;
    if (rc == 0)
        rc = append_rows(&b->events, sid_json, it->from, it->n_events, it->events, it->event_lens);
    if (rc == 0)
        rc = append_rows(&b->entries, sid_json, it->tfrom, it->n_entries, it->entries,
                         it->entry_lens);
    free(sid_json);
    if (rc == 0 && it->record) {
        char *rec = malloc(it->record_len + 1);
        if (!rec)
            return TT_ENOMEM;
        memcpy(rec, it->record, it->record_len);
        rec[it->record_len] = '\0';
        b->bytes += it->record_len;
        free(ss->record);
        ss->record = rec;
        ss->record_len = it->record_len;
    }
    if (rc)
        return rc;
    if (!b->t0)
        b->t0 = uv_hrtime();
    ss->epoch = it->epoch;
    ss->head = it->head;
    ss->active = it->active;
    b->n_events += it->n_events;
    b->bytes += b->events.len + b->entries.len - before;
    r->stats.staged_bytes = r->staged.bytes + r->flight.bytes;
    return 0;
}

int tt_replica_stage_delete(tt_replica *r, const char *sid, uint64_t epoch)
{
    batch *b = &r->staged;
    if (!b->deletes && !(b->deletes = json_array()))
        return TT_ENOMEM;
    return json_array_append_new(b->deletes, json_pack("[s,I]", sid, (json_int_t)epoch)) ? TT_ENOMEM
                                                                                         : 0;
}

int tt_replica_full(const tt_replica *r)
{
    return r->staged.bytes + r->flight.bytes >= r->opt.max_bytes;
}

int tt_replica_pending(const tt_replica *r)
{
    return r->in_flight || r->staged.sessions.count > 0 || r->staged.pass != 0 || r->staged.deletes;
}

/* The owners and records parameters, from the staged sessions. */
static int build_params(batch *b)
{
    json_t *owners = json_array();
    size_t pos = 0;
    staged_session *ss;
    int rc = owners ? 0 : TT_ENOMEM;
    tt_buf rec;
    tt_buf_init(&rec, STAGE_BUF_CAP);
    rc = rc ? rc : tt_buf_append(&rec, "[", 1);
    while (rc == 0 && (ss = tt_map_next(&b->sessions, &pos))) {
        if (json_array_append_new(owners, json_pack("[s,I,I,b,s,s,s]", ss->id,
                                                    (json_int_t)ss->epoch, (json_int_t)ss->head,
                                                    ss->active, ss->tenant, ss->user, ss->agent)) !=
            0)
            rc = TT_ENOMEM;
        if (rc == 0 && ss->record) {
            char *sid_json = sid_json_of(ss->id);
            if (!sid_json || tt_buf_appendf(&rec, "%s[%s,", rec.len > 1 ? "," : "", sid_json) ||
                tt_buf_append(&rec, ss->record, ss->record_len) || tt_buf_append(&rec, "]", 1))
                rc = TT_ENOMEM;
            free(sid_json);
        }
    }
    if (rc == 0 && tt_buf_append(&rec, "]", 1))
        rc = TT_ENOMEM;
    b->params[0] = rc ? NULL : json_dumps(owners, JSON_COMPACT);
    b->params[1] = rc ? NULL : tt_buf_take(&rec, NULL);
    json_decref(owners);
    tt_buf_free(&rec);
    for (int i = 2; rc == 0 && i < 4; i++) {
        tt_buf *src = i == 2 ? &b->events : &b->entries;
        size_t n = src->len;
        b->params[i] = malloc(n + 3);
        if (!b->params[i]) {
            rc = TT_ENOMEM;
            break;
        }
        b->params[i][0] = '[';
        memcpy(b->params[i] + 1, tt_buf_str(src), n);
        memcpy(b->params[i] + 1 + n, "]", 2);
    }
    if (rc || !b->params[0] || !b->params[1]) {
        for (size_t i = 0; i < 4; i++) {
            free(b->params[i]);
            b->params[i] = NULL;
        }
        return TT_ENOMEM;
    }
    return 0;
}

static void observe(tt_replica *r, double secs)
{
    static const double bounds[12] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                      0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
    r->stats.latency_sum += secs;
    for (size_t i = 0; i < 12; i++) {
        if (secs <= bounds[i]) {
            r->stats.latency_buckets[i]++;
            return;
        }
    }
}

static void send_flight(tt_replica *r);

static void on_retry(uv_timer_t *t)
{
    tt_replica *r = t->data;
    if (r->in_flight)
        send_flight(r);
}

/* The batch committed: tell the registry which sessions are durable and
 * which were fenced. */
static void flight_sessions(tt_replica *r, const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        staged_session *ss = tt_map_get(&r->flight.sessions, PQgetvalue(res, i, 0));
        if (ss)
            ss->ok = 1;
    }
    r->stats.batches++;
    r->stats.events += r->flight.n_events;
    observe(r, (double)(uv_hrtime() - r->flight.t0) / 1e9);
    size_t pos = 0;
    staged_session *ss;
    while ((ss = tt_map_next(&r->flight.sessions, &pos))) {
        if (ss->ok && r->hooks.durable)
            r->hooks.durable(ss->id, ss->head, ss->epoch ? ss->epoch : 1, r->hooks.ud);
        else if (!ss->ok) {
            r->stats.fenced++;
            if (r->hooks.fenced)
                r->hooks.fenced(ss->id, r->hooks.ud);
        }
    }
}

/* The flight is over: its passes are done; send what was staged since. */
static void flight_done(tt_replica *r)
{
    uint64_t pass = r->flight.pass;
    batch_clear(&r->flight);
    r->in_flight = 0;
    r->stats.staged_bytes = r->staged.bytes;
    if (pass && r->hooks.passes_done)
        r->hooks.passes_done(pass, r->hooks.ud);
    tt_replica_kick(r);
}

static void on_result(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_replica *r = ud;
    (void)msg;
    if (err) {
        r->stats.batch_failures++;
        (void)uv_timer_start(&r->retry, on_retry, r->opt.retry_ms, 0);
        return; /* sent again, unchanged: the fence passes again for our epoch */
    }
    if (r->flight.deleting) {
        long n = PQntuples(res) == 1 ? atol(PQgetvalue(res, 0, 0)) : 0;
        r->stats.deleted += (uint64_t)n;
        r->stats.delete_refused += json_array_size(r->flight.deletes) - (size_t)n;
        flight_done(r);
        return;
    }
    flight_sessions(r, res);
    if (r->flight.deletes) { /* the batch is in: now the deletes, then done */
        r->flight.deleting = 1;
        send_flight(r);
        return;
    }
    flight_done(r);
}

static void send_flight(tt_replica *r)
{
    if (!r->pg || tt_pg_state_get(r->pg) != TT_PG_UP || tt_pg_busy(r->pg))
        return; /* tt_replica_kick runs again when the connection is up */
    if (!r->flight.params[0] && build_params(&r->flight) != 0) {
        r->stats.batch_failures++; /* no memory: try again later */
        (void)uv_timer_start(&r->retry, on_retry, r->opt.retry_ms, 0);
        return;
    }
    int rc;
    if (r->flight.deleting || r->flight.sessions.count == 0) {
        r->flight.deleting = 1;
        char *dels = json_dumps(r->flight.deletes, JSON_COMPACT);
        const char *values[2] = {r->node, dels};
        rc = dels ? tt_pg_query(r->pg, DELETE_SQL, 2, values, on_result, r) : TT_ENOMEM;
        free(dels);
    } else {
        const char *values[6] = {r->node,
                                 r->lease,
                                 r->flight.params[0],
                                 r->flight.params[1],
                                 r->flight.params[2],
                                 r->flight.params[3]};
        rc = tt_pg_query(r->pg, BATCH_SQL, 6, values, on_result, r);
    }
    if (rc != 0)
        (void)uv_timer_start(&r->retry, on_retry, r->opt.retry_ms, 0);
}

void tt_replica_kick(tt_replica *r)
{
    if (!r)
        return;
    if (r->in_flight) {
        if (!uv_is_active((uv_handle_t *)&r->retry))
            send_flight(r);
        return;
    }
    if (r->staged.pass && r->staged.sessions.count == 0 && !r->staged.deletes) {
        uint64_t pass = r->staged.pass; /* passes that staged nothing: done at once */
        r->staged.pass = 0;
        if (r->hooks.passes_done)
            r->hooks.passes_done(pass, r->hooks.ud);
        return;
    }
    if (r->staged.sessions.count == 0 && !r->staged.deletes)
        return;
    r->flight = r->staged;
    memset(&r->staged, 0, sizeof r->staged);
    batch_init(&r->staged);
    r->in_flight = 1;
    send_flight(r);
}

void tt_replica_pass_end(tt_replica *r, uint64_t pass)
{
    r->staged.pass = pass;
    tt_replica_kick(r);
}

const tt_replica_stats *tt_replica_stats_get(const tt_replica *r)
{
    return &r->stats;
}
