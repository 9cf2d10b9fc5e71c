/* Archive mode: committed events copied to PostgreSQL (see archive.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "protocol/buf.h"
#include "protocol/errors.h"
#include "state/archive.h"
#include "state/map.h"

#define MARKER_PREFIX "archive\x1f"
#define MARKER_MAX (sizeof MARKER_PREFIX + TT_SESSION_ID_MAX)
#define ARCHIVE_MARKS 16            /* commit times kept per pending session */
#define BATCH_BUF_CAP (1024u << 20) /* a statement's text: PostgreSQL's own limit */
#define READ_STOP 1                 /* batch_event's "this batch is full" */

const char *const tt_archive_migrations[] = {
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id text PRIMARY KEY,"
    "  tenant text NOT NULL,"
    "  user_name text NOT NULL,"
    "  agent text NOT NULL,"
    "  archived_seq bigint NOT NULL DEFAULT 0,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS events ("
    "  session text NOT NULL,"
    "  seq bigint NOT NULL,"
    "  type text NOT NULL,"
    "  body json NOT NULL,"
    "  archived_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (session, seq))",
};
const size_t tt_archive_n_migrations = sizeof tt_archive_migrations / sizeof(char *);

/* One statement per batch: $1 the events [[session, seq, event], ...], $2
 * the sessions [[id, tenant, user, agent, archived_seq], ...]. */
static const char BATCH_SQL[] =
    "WITH s AS (INSERT INTO sessions (id, tenant, user_name, agent, archived_seq) "
    "SELECT x->>0, x->>1, x->>2, x->>3, (x->>4)::bigint FROM json_array_elements($2::json) x "
    "ON CONFLICT (id) DO UPDATE SET archived_seq = GREATEST(sessions.archived_seq, "
    "EXCLUDED.archived_seq), updated_at = now() RETURNING 1), "
    "e AS (INSERT INTO events (session, seq, type, body) "
    "SELECT x->>0, (x->>1)::bigint, coalesce(x->2->>'type', ''), x->2 "
    "FROM json_array_elements($1::json) x ON CONFLICT (session, seq) DO NOTHING RETURNING 1) "
    "SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM s)";

typedef struct mark {
    uint64_t seq; /* events up to here were committed at ms */
    uint64_t ms;
} mark;

typedef struct entry {
    char id[TT_SESSION_ID_MAX + 1];
    char tenant[TT_TENANT_MAX], user[TT_USER_MAX], agent[TT_SESSION_ID_MAX + 1];
    uint64_t archived;  /* events up to here are in the database (or lost) */
    uint64_t committed; /* events up to here are in LMDB */
    mark marks[ARCHIVE_MARKS];
    size_t n_marks;
    int marker_stale; /* archived moved since the marker was written */
} entry;

typedef struct batch_item {
    entry *e;
    uint64_t to;   /* the batch archives (e->archived, to] */
    uint64_t lost; /* of those, trimmed from LMDB before they were read */
} batch_item;

struct tt_archive {
    uv_loop_t *loop;
    tt_store *store;
    tt_pg *pg;
    tt_archive_options opt;
    tt_archive_stats stats;
    tt_map entries;
    size_t scan_pos; /* where the next batch starts looking: every session gets its turn */
    batch_item *items;
    size_t n_items;
    uint64_t batch_events; /* events sent in the batch in flight */
    int in_flight;
    uv_timer_t retry;
    uv_timer_t markers; /* writes the stale markers, at most every marker_flush_ms */
    int open_handles;
};

static void marker_key(char out[MARKER_MAX + 1], const char *sid)
{
    snprintf(out, MARKER_MAX + 1, "%s%s", MARKER_PREFIX, sid);
}

static void add_mark(entry *e, uint64_t seq, uint64_t ms)
{
    if (e->n_marks == ARCHIVE_MARKS) { /* merge the two oldest: the age stays an upper bound */
        e->marks[1].ms = e->marks[0].ms;
        memmove(e->marks, e->marks + 1, (ARCHIVE_MARKS - 1) * sizeof *e->marks);
        e->n_marks--;
    }
    e->marks[e->n_marks++] = (mark){.seq = seq, .ms = ms};
}

static void drop_marks_upto(entry *e, uint64_t seq)
{
    size_t i = 0;
    while (i < e->n_marks && e->marks[i].seq <= seq)
        i++;
    memmove(e->marks, e->marks + i, (e->n_marks - i) * sizeof *e->marks);
    e->n_marks -= i;
}

static entry *entry_new(tt_archive *a, const char *sid)
{
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->id, sizeof e->id, "%s", sid);
    if (tt_map_put(&a->entries, e->id, e) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

static int load_marker(const char *key, const char *val, size_t len, void *ud)
{
    tt_archive *a = ud;
    const char *sid = key + strlen(MARKER_PREFIX);
    if (!*sid || strlen(sid) > TT_SESSION_ID_MAX)
        return 0;
    char num[24] = {0};
    memcpy(num, val, len < sizeof num - 1 ? len : sizeof num - 1);
    entry *e = entry_new(a, sid);
    if (!e)
        return TT_ENOMEM;
    e->archived = strtoull(num, NULL, 10);
    return 0;
}

/* An entry rebuilt from its marker: its committed seq and owner from LMDB. */
static void complete_loaded(tt_archive *a, entry *e)
{
    (void)tt_store_last_seq(a->store, e->id, &e->committed);
    if (e->committed < e->archived)
        e->committed = e->archived;
    add_mark(e, e->committed, uv_now(a->loop));
    char *rec = NULL;
    size_t len = 0;
    if (tt_store_get_session(a->store, e->id, &rec, &len) != 0)
        return;
    json_t *r = json_loadb(rec, len, 0, NULL);
    free(rec);
    const char *t = json_string_value(json_object_get(r, "tenant"));
    const char *u = json_string_value(json_object_get(r, "user"));
    const char *g = json_string_value(json_object_get(r, "agent"));
    snprintf(e->tenant, sizeof e->tenant, "%s", t ? t : "");
    snprintf(e->user, sizeof e->user, "%s", u ? u : "");
    snprintf(e->agent, sizeof e->agent, "%s", g ? g : "");
    json_decref(r);
}

int tt_archive_new(uv_loop_t *loop, tt_store *store, const tt_archive_options *opt,
                   tt_archive **out)
{
    tt_archive *a = calloc(1, sizeof *a);
    if (!a)
        return TT_ENOMEM;
    a->loop = loop;
    a->store = store;
    a->opt = *opt;
    a->opt.batch_events = opt->batch_events ? opt->batch_events : 1000;
    a->opt.batch_bytes = opt->batch_bytes ? opt->batch_bytes : (1u << 20);
    a->opt.retry_ms = opt->retry_ms ? opt->retry_ms : 1000;
    a->opt.marker_flush_ms = opt->marker_flush_ms ? opt->marker_flush_ms : 200;
    tt_map_init(&a->entries);
    a->items = calloc(a->opt.batch_events, sizeof *a->items);
    int rc = a->items ? tt_store_list_meta(store, MARKER_PREFIX, load_marker, a) : TT_ENOMEM;
    size_t pos = 0;
    for (entry *e; rc == 0 && (e = tt_map_next(&a->entries, &pos));)
        complete_loaded(a, e);
    (void)uv_timer_init(loop, &a->retry);
    (void)uv_timer_init(loop, &a->markers);
    a->retry.data = a->markers.data = a;
    a->open_handles = 2;
    if (rc) {
        tt_archive_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void tt_archive_set_pg(tt_archive *a, tt_pg *pg)
{
    a->pg = pg;
}

static void on_handle_closed(uv_handle_t *h)
{
    tt_archive *a = h->data;
    if (--a->open_handles > 0)
        return;
    size_t pos = 0;
    for (entry *e; (e = tt_map_next(&a->entries, &pos));)
        free(e);
    tt_map_free(&a->entries);
    free(a->items);
    free(a);
}

void tt_archive_free(tt_archive *a)
{
    if (!a)
        return;
    (void)tt_archive_flush_markers(a); /* fewer events sent again after a restart */
    uv_close((uv_handle_t *)&a->retry, on_handle_closed);
    uv_close((uv_handle_t *)&a->markers, on_handle_closed);
}

int tt_archive_fill(tt_archive *a, tt_store_txn *txn, const tt_session *s)
{
    if (tt_map_get(&a->entries, s->id))
        return 0; /* its marker is there already */
    char key[MARKER_MAX + 1], val[24];
    marker_key(key, s->id);
    int n = snprintf(val, sizeof val, "%" PRIu64, s->committed);
    return tt_store_put_meta(txn, key, val, (size_t)n);
}

void tt_archive_committed(tt_archive *a, const tt_session *s, uint64_t head)
{
    entry *e = tt_map_get(&a->entries, s->id);
    if (!e) {
        e = entry_new(a, s->id);
        if (!e)
            return; /* no memory: the marker written in the commit brings it back at restart */
        e->archived = s->committed;
        snprintf(e->tenant, sizeof e->tenant, "%s", s->tenant);
        snprintf(e->user, sizeof e->user, "%s", s->user);
        snprintf(e->agent, sizeof e->agent, "%s", s->agent);
    }
    if (head > e->committed) {
        e->committed = head;
        add_mark(e, head, uv_now(a->loop));
    }
}

typedef struct build {
    tt_archive *a;
    tt_buf events;
    char *sid_json; /* the entry's id as a JSON string */
    entry *e;
    uint64_t last; /* the last seq of e read into the batch */
    uint64_t lost; /* of e's, trimmed before they were read */
    uint64_t n;    /* events in the batch */
    int failed;
} build;

static int batch_event(uint64_t seq, const char *json, size_t len, void *ud)
{
    build *b = ud;
    if (seq > b->e->committed)
        return READ_STOP;
    if (seq > b->last + 1)
        b->lost += seq - b->last - 1; /* trimmed before it was archived */
    if (tt_buf_appendf(&b->events, "%s[%s,%" PRIu64 ",", b->n ? "," : "", b->sid_json, seq) ||
        tt_buf_append(&b->events, json, len) || tt_buf_append(&b->events, "]", 1)) {
        b->failed = 1;
        return READ_STOP;
    }
    b->last = seq;
    b->n++;
    if (b->n >= b->a->opt.batch_events || b->events.len > b->a->opt.batch_bytes)
        return READ_STOP;
    return 0;
}

/* Add entry e's next events to the batch. */
static int build_entry(build *b, entry *e)
{
    tt_archive *a = b->a;
    json_t *js = json_string(e->id);
    b->sid_json = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (!b->sid_json)
        return TT_ENOMEM;
    b->e = e;
    b->last = e->archived;
    b->lost = 0;
    size_t room = a->opt.batch_events - b->n;
    int rc = tt_store_read_events(a->store, e->id, e->archived, room, batch_event, b);
    free(b->sid_json);
    b->sid_json = NULL;
    if (b->failed || (rc && rc != READ_STOP))
        return b->failed ? TT_ENOMEM : rc;
    if (b->last == e->archived && rc != READ_STOP) { /* nothing left in LMDB: all trimmed */
        b->lost = e->committed - e->archived;
        b->last = e->committed;
    }
    if (b->last > e->archived)
        a->items[a->n_items++] = (batch_item){.e = e, .to = b->last, .lost = b->lost};
    return 0;
}

static char *sessions_json(tt_archive *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < a->n_items; i++) {
        entry *e = a->items[i].e;
        if (json_array_append_new(arr, json_pack("[s,s,s,s,I]", e->id, e->tenant, e->user, e->agent,
                                                 (json_int_t)a->items[i].to))) {
            json_decref(arr);
            return NULL;
        }
    }
    char *out = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return out;
}

static void on_batch(int err, const PGresult *res, const char *msg, void *ud);

/* Collect the next batch, from where the last one stopped. 0 with
 * n_items 0: nothing is pending. */
static int build_batch(tt_archive *a, build *b)
{
    a->n_items = 0;
    size_t count = a->entries.count, seen = 0;
    size_t pos = a->scan_pos;
    int wrapped = 0;
    while (seen < count && b->n < a->opt.batch_events && b->events.len <= a->opt.batch_bytes &&
           a->n_items < a->opt.batch_events) {
        entry *e = tt_map_next(&a->entries, &pos);
        if (!e) { /* the end of the table: wrap around, once */
            if (wrapped)
                break;
            wrapped = 1;
            pos = 0;
            continue;
        }
        seen++;
        if (e->committed > e->archived) {
            int rc = build_entry(b, e);
            if (rc)
                return rc;
        }
    }
    a->scan_pos = pos;
    return 0;
}

int tt_archive_batch_next(tt_archive *a, char **events, char **sessions, uint64_t *n_events)
{
    *events = *sessions = NULL;
    *n_events = 0;
    if (a->in_flight)
        return TT_ECONFLICT;
    build b = {.a = a};
    tt_buf_init(&b.events, BATCH_BUF_CAP);
    int rc = tt_buf_append(&b.events, "[", 1);
    if (rc == 0)
        rc = build_batch(a, &b);
    if (rc == 0 && a->n_items) {
        *sessions = sessions_json(a);
        if (!*sessions || tt_buf_append(&b.events, "]", 1) != 0)
            rc = TT_ENOMEM;
    }
    if (rc == 0 && a->n_items) {
        *events = tt_buf_take(&b.events, NULL);
        rc = *events ? 0 : TT_ENOMEM;
    }
    tt_buf_free(&b.events);
    if (rc || !a->n_items) {
        free(*sessions);
        *sessions = NULL;
        a->n_items = 0;
        return rc;
    }
    a->in_flight = 1;
    a->batch_events = *n_events = b.n;
    return 0;
}

void tt_archive_kick(tt_archive *a)
{
    if (!a || a->in_flight || !a->pg || tt_pg_state_get(a->pg) != TT_PG_UP || tt_pg_busy(a->pg) ||
        uv_is_active((uv_handle_t *)&a->retry))
        return;
    char *events = NULL, *sessions = NULL;
    uint64_t n = 0;
    if (tt_archive_batch_next(a, &events, &sessions, &n) == 0 && events) {
        const char *params[2] = {events, sessions};
        if (tt_pg_query(a->pg, BATCH_SQL, 2, params, on_batch, a) != 0) {
            a->in_flight = 0; /* the connection went down: sent again once it is up */
            a->n_items = 0;
        }
    }
    free(events);
    free(sessions);
}

/* The stale markers: rewritten, or deleted when caught up. */
static int fill_markers(tt_store_txn *txn, void *ud)
{
    tt_archive *a = ud;
    size_t pos = 0;
    for (entry *e; (e = tt_map_next(&a->entries, &pos));) {
        if (!e->marker_stale)
            continue;
        char key[MARKER_MAX + 1], val[24];
        marker_key(key, e->id);
        int n = snprintf(val, sizeof val, "%" PRIu64, e->archived);
        int rc = e->archived >= e->committed ? tt_store_del_meta(txn, key)
                                             : tt_store_put_meta(txn, key, val, (size_t)n);
        if (rc)
            return rc;
    }
    return 0;
}

static void on_markers(uv_timer_t *t)
{
    tt_archive *a = t->data;
    if (tt_archive_flush_markers(a) != 0)
        (void)uv_timer_start(&a->markers, on_markers, a->opt.marker_flush_ms, 0);
}

int tt_archive_flush_markers(tt_archive *a)
{
    size_t n = 0, pos = 0;
    for (entry *e; (e = tt_map_next(&a->entries, &pos));)
        n += e->marker_stale;
    if (n == 0)
        return 0;
    entry **done = malloc(n * sizeof *done);
    int rc = done ? tt_store_write(a->store, fill_markers, a) : TT_ENOMEM;
    if (rc) {
        a->stats.marker_failures++; /* kept stale: written later, or sent again at restart */
        free(done);
        return rc;
    }
    size_t n_done = 0;
    pos = 0;
    for (entry *e; (e = tt_map_next(&a->entries, &pos));) {
        if (e->marker_stale && e->archived >= e->committed)
            done[n_done++] = e; /* caught up, its marker gone: the entry goes too */
        e->marker_stale = 0;
    }
    for (size_t i = 0; i < n_done; i++) {
        tt_map_del(&a->entries, done[i]->id);
        free(done[i]);
    }
    free(done);
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    tt_archive_kick(t->data);
}

void tt_archive_batch_done(tt_archive *a, int err, uint64_t inserted)
{
    if (!a->in_flight)
        return;
    a->in_flight = 0;
    if (err) {
        a->stats.batch_failures++;
        a->n_items = 0;
        /* Down: tt_archive_kick again when it is up. Up: the statement failed; later. */
        (void)uv_timer_start(&a->retry, on_retry, a->opt.retry_ms, 0);
        return;
    }
    a->stats.batches++;
    a->stats.events += inserted;
    a->stats.duplicates += a->batch_events > inserted ? a->batch_events - inserted : 0;
    for (size_t i = 0; i < a->n_items; i++) {
        entry *e = a->items[i].e;
        a->stats.lost_events += a->items[i].lost;
        if (a->items[i].to > e->archived)
            e->archived = a->items[i].to;
        drop_marks_upto(e, e->archived);
    }
    for (size_t i = 0; i < a->n_items; i++)
        a->items[i].e->marker_stale = 1;
    if (!uv_is_active((uv_handle_t *)&a->markers))
        (void)uv_timer_start(&a->markers, on_markers, a->opt.marker_flush_ms, 0);
    a->n_items = 0;
    tt_archive_kick(a);
}

static void on_batch(int err, const PGresult *res, const char *msg, void *ud)
{
    uint64_t inserted = 0;
    if (!err && PQntuples(res) == 1)
        inserted = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    tt_archive_batch_done(ud, err, inserted);
}

const tt_archive_stats *tt_archive_stats_get(const tt_archive *a)
{
    return &a->stats;
}

void tt_archive_lag(const tt_archive *a, uint64_t now_ms, uint64_t *events, double *seconds)
{
    uint64_t n = 0, oldest = now_ms;
    size_t pos = 0;
    for (entry *e; (e = tt_map_next(&a->entries, &pos));) {
        if (e->committed <= e->archived)
            continue;
        n += e->committed - e->archived;
        if (e->n_marks && e->marks[0].ms < oldest)
            oldest = e->marks[0].ms;
    }
    *events = n;
    *seconds = n ? (double)(now_ms - oldest) / 1000.0 : 0.0;
}
