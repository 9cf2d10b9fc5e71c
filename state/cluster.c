/* Session ownership across nodes (see cluster.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "protocol/errors.h"
#include "state/cluster.h"
#include "state/session.h"

#define ORPHANS_PER_SCAN 16

/* $1 node, $2 lease ms, $3 session ids (JSON array), $4 only expired leases
 * (orphans). The notification goes out when the statement commits. */
static const char ACQUIRE_SQL[] =
    "WITH a AS (UPDATE owners SET node = $1, epoch = epoch + 1, lease_until = now() + "
    "$2::bigint * interval '1 millisecond' WHERE session IN (SELECT json_array_elements_text("
    "$3::json)) AND (NOT $4::boolean OR lease_until < now()) RETURNING session, epoch) "
    "SELECT session, epoch, pg_notify('" TT_CLUSTER_CHANNEL
    "', session || ' ' || epoch || ' ' || $1) FROM a";

/* $1 session ids, $2 events to read back per session. Rows: kind (0 the
 * record with the head, 1 an event, 2 a transcript entry), session, number,
 * text; in session order, the record first. */
static const char READ_SQL[] =
    "WITH ids AS (SELECT json_array_elements_text($1::json) AS session) "
    "SELECT 0 AS kind, r.session, o.head AS n, r.record::text FROM records r "
    "JOIN owners o USING (session) WHERE r.session IN (SELECT session FROM ids) "
    "UNION ALL SELECT 1, e.session, e.seq, e.body::text FROM events e JOIN owners o "
    "USING (session) WHERE e.session IN (SELECT session FROM ids) AND e.seq > o.head - "
    "$2::bigint AND e.seq <= o.head "
    "UNION ALL SELECT 2, t.session, t.idx, t.entry::text FROM transcript t JOIN records r "
    "USING (session) WHERE t.session IN (SELECT session FROM ids) AND t.idx >= "
    "coalesce((r.record->>'transcript_first')::bigint, 1) ORDER BY 2, 1, 3";

/* Only leases still running: one that expired (the node was silent, or is
 * starting again) stays expired, so its running session is adopted. */
static const char RENEW_SQL[] = "UPDATE owners SET lease_until = now() + $2::bigint * "
                                "interval '1 millisecond' WHERE node = $1 AND lease_until > now()";

/* At start-up: what this node held before it stopped is nobody's now. */
static const char RELEASE_SQL[] = "UPDATE owners SET lease_until = now() WHERE node = $1 AND "
                                  "$2::text IS NOT NULL";

static const char ORPHANS_SQL[] =
    "SELECT session FROM owners WHERE active AND lease_until < now() LIMIT 16";

typedef struct waiter {
    char sid[TT_SESSION_ID_MAX + 1];
    tt_cluster_acquired_fn cb; /* NULL: an orphan (hooks.adopted) */
    void *ud;
    uint64_t epoch;
    int err;
    struct waiter *next;
} waiter;

typedef enum op { OP_NONE, OP_ACQUIRE, OP_READ, OP_RENEW, OP_ORPHANS, OP_RELEASE, OP_LIST } op;

/* $1 tenant, $2 user, $3 after, $4 limit. */
static const char LIST_SQL[] =
    "SELECT r.session, r.record::text, o.head FROM records r JOIN sessions s ON s.id = "
    "r.session JOIN owners o ON o.session = r.session WHERE s.tenant = $1 AND s.user_name = $2 "
    "AND r.session > $3 ORDER BY r.session LIMIT $4::bigint";

typedef struct list_req {
    char tenant[TT_TENANT_MAX], user[TT_USER_MAX], after[TT_SESSION_ID_MAX + 1], limit[24];
    tt_cluster_list_fn cb; /* NULL: cancelled */
    void *ud;
    struct list_req *next;
} list_req;

struct tt_cluster {
    uv_loop_t *loop;
    tt_pg *pg;
    tt_store *store;
    char *node;
    char lease[24], window[24];
    tt_cluster_options opt;
    tt_cluster_hooks hooks;
    tt_cluster_stats stats;
    list_req *lists, *lists_tail; /* not sent yet, in order */
    list_req *list_flight;
    size_t n_lists;
    waiter *waiting; /* not sent yet */
    waiter *flight;  /* in the acquire or read in flight */
    size_t n_waiting;
    char *ids;   /* the flight's ids as a JSON array */
    int orphans; /* the flight acquires orphans (only expired leases) */
    op op;
    int renew_due, scan_due, release_due;
    uint64_t up_since;      /* uv_now when the connection was last seen coming up */
    uint64_t seen_connects; /* the connection's attempts then (a change: it came back) */
    uv_timer_t renew, scan, retry;
    int open_handles;
};

static void next_op(tt_cluster *c);

static void on_renew_timer(uv_timer_t *t)
{
    tt_cluster *c = t->data;
    c->renew_due = 1;
    next_op(c);
}

static void on_scan_timer(uv_timer_t *t)
{
    tt_cluster *c = t->data;
    c->scan_due = 1;
    next_op(c);
}

static void on_retry_timer(uv_timer_t *t)
{
    next_op(t->data);
}

int tt_cluster_new(uv_loop_t *loop, tt_pg *pg, tt_store *store, const tt_cluster_options *opt,
                   const tt_cluster_hooks *hooks, tt_cluster **out)
{
    tt_cluster *c = calloc(1, sizeof *c);
    if (!c || !(c->node = strdup(opt->node_id ? opt->node_id : ""))) {
        free(c);
        return TT_ENOMEM;
    }
    c->loop = loop;
    c->pg = pg;
    c->store = store;
    c->opt = *opt;
    c->opt.node_id = c->node;
    c->opt.lease_ms = opt->lease_ms ? opt->lease_ms : 10000;
    c->opt.scan_ms = opt->scan_ms ? opt->scan_ms : c->opt.lease_ms / 2 + 1;
    c->opt.import_events = opt->import_events ? opt->import_events : 1000;
    c->opt.max_waiting = opt->max_waiting ? opt->max_waiting : 10000;
    snprintf(c->lease, sizeof c->lease, "%" PRIu64, c->opt.lease_ms);
    snprintf(c->window, sizeof c->window, "%" PRIu64, c->opt.import_events);
    c->hooks = *hooks;
    uv_timer_t *timers[3] = {&c->renew, &c->scan, &c->retry};
    for (int i = 0; i < 3; i++) {
        (void)uv_timer_init(loop, timers[i]);
        timers[i]->data = c;
    }
    c->open_handles = 3;
    *out = c;
    return 0;
}

void tt_cluster_start(tt_cluster *c)
{
    c->release_due = 1;
    next_op(c);
    uint64_t every = c->opt.lease_ms / 3 + 1;
    (void)uv_timer_start(&c->renew, on_renew_timer, every, every);
    (void)uv_timer_start(&c->scan, on_scan_timer, c->opt.scan_ms, c->opt.scan_ms);
}

/* Run and free a list of waiters. */
static void finish(tt_cluster *c, waiter *w)
{
    while (w) {
        waiter *next = w->next;
        if (w->cb)
            w->cb(w->err, w->sid, w->epoch, w->ud);
        else if (w->err == 0 && c->hooks.adopted) {
            c->stats.adopted++;
            c->hooks.adopted(w->sid, w->epoch, c->hooks.ud);
        }
        free(w);
        w = next;
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    tt_cluster *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->node);
    free(c);
}

void tt_cluster_free(tt_cluster *c)
{
    if (!c)
        return;
    c->hooks.adopted = NULL;
    c->hooks.moved = NULL;
    waiter *lists[2] = {c->flight, c->waiting};
    c->flight = c->waiting = NULL;
    while (c->lists) {
        list_req *l = c->lists;
        c->lists = l->next;
        if (l->cb)
            l->cb(TT_EIO, NULL, l->ud);
        free(l);
    }
    for (int i = 0; i < 2; i++) {
        for (waiter *w = lists[i]; w; w = w->next)
            w->err = TT_EIO;
        finish(c, lists[i]);
    }
    free(c->ids);
    c->ids = NULL;
    uv_close((uv_handle_t *)&c->renew, on_handle_closed);
    uv_close((uv_handle_t *)&c->scan, on_handle_closed);
    uv_close((uv_handle_t *)&c->retry, on_handle_closed);
}

static int add_waiter(tt_cluster *c, const char *sid, tt_cluster_acquired_fn cb, void *ud)
{
    if (c->n_waiting >= c->opt.max_waiting)
        return TT_EFULL;
    waiter *w = calloc(1, sizeof *w);
    if (!w)
        return TT_ENOMEM;
    snprintf(w->sid, sizeof w->sid, "%s", sid);
    w->cb = cb;
    w->ud = ud;
    for (waiter *f = c->orphans ? NULL : c->flight; cb && f; f = f->next) {
        if (strcmp(f->sid, sid) == 0) { /* in flight already: share its result */
            w->epoch = f->epoch;
            w->err = f->err;
            w->next = f->next;
            f->next = w;
            return 0;
        }
    }
    w->next = c->waiting;
    c->waiting = w;
    c->n_waiting++;
    return 0;
}

int tt_cluster_acquire(tt_cluster *c, const char *sid, tt_cluster_acquired_fn cb, void *ud)
{
    if (!sid || !*sid || strlen(sid) > TT_SESSION_ID_MAX)
        return TT_EINVAL;
    int rc = add_waiter(c, sid, cb, ud);
    if (rc == 0)
        (void)uv_timer_start(&c->retry, on_retry_timer, 0, 0); /* never from inside this call */
    return rc;
}

void tt_cluster_cancel(tt_cluster *c, void *ud)
{
    for (list_req *l = c->lists; l; l = l->next)
        if (l->ud == ud)
            l->cb = NULL;
    if (c->list_flight && c->list_flight->ud == ud)
        c->list_flight->cb = NULL;
    waiter *lists[2] = {c->flight, c->waiting};
    for (int i = 0; i < 2; i++)
        for (waiter *w = lists[i]; w; w = w->next)
            if (w->ud == ud && w->cb)
                w->cb = NULL, w->ud = NULL, w->err = TT_ENOTFOUND; /* dropped quietly */
}

/* The flight is over: its waiters hear their outcome, the next op runs. */
static void flight_end(tt_cluster *c)
{
    waiter *done = c->flight;
    c->flight = NULL;
    c->op = OP_NONE;
    free(c->ids);
    c->ids = NULL;
    finish(c, done);
    next_op(c);
}

/* Fail the flight with err. */
static void flight_fail(tt_cluster *c, int err)
{
    for (waiter *x = c->flight; x; x = x->next) {
        x->err = x->cb ? err : TT_EIO; /* orphans: found again by the next scan */
        c->stats.acquire_failures += err == TT_EIO;
    }
    flight_end(c);
}

/* The flight's ids as a JSON array (distinct). */
static char *flight_ids(const waiter *w)
{
    json_t *arr = json_array();
    json_t *seen = json_object();
    for (; arr && seen && w; w = w->next) {
        if (json_object_get(seen, w->sid))
            continue;
        json_object_set_new(seen, w->sid, json_true());
        json_array_append_new(arr, json_string(w->sid));
    }
    char *out = arr && seen ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    json_decref(seen);
    return out;
}

/* One session read back: its rows in the read result [first, end). */
typedef struct import_one {
    const PGresult *res;
    int first, end;
    const char *sid;
    int err;
} import_one;

typedef struct import_ctx {
    import_one *items;
    size_t n;
    uint64_t window;
} import_ctx;

/* The record to store: first_seq raised to the first event read back. */
static char *import_record(const import_one *it, char *owner, size_t owner_n, int *active)
{
    json_t *r = json_loads(PQgetvalue(it->res, it->first, 3), 0, NULL);
    const char *tenant = json_string_value(json_object_get(r, "tenant"));
    const char *user = json_string_value(json_object_get(r, "user"));
    const char *state = json_string_value(json_object_get(r, "state"));
    if (!r || !tenant || !user || !state) {
        json_decref(r);
        return NULL;
    }
    tt_owner_key(tenant, user, owner, owner_n);
    *active = strcmp(state, "running") == 0;
    uint64_t head = strtoull(PQgetvalue(it->res, it->first, 2), NULL, 10);
    uint64_t first = head + 1;
    if (it->first + 1 < it->end && atoi(PQgetvalue(it->res, it->first + 1, 0)) == 1)
        first = strtoull(PQgetvalue(it->res, it->first + 1, 2), NULL, 10);
    json_int_t rec_first = json_integer_value(json_object_get(r, "first_seq"));
    if ((uint64_t)rec_first < first)
        json_object_set_new(r, "first_seq", json_integer((json_int_t)first));
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return text;
}

static int import_session(tt_store_txn *txn, import_one *it)
{
    char owner[TT_OWNER_KEY_MAX];
    int active = 0;
    char *rec = import_record(it, owner, sizeof owner, &active);
    if (!rec)
        return it->err = TT_ESCHEMA, 0; /* this session only */
    int rc = tt_store_delete_session(txn, it->sid, owner);
    if (rc == 0)
        rc = tt_store_put_session(txn, it->sid, owner, rec, strlen(rec));
    free(rec);
    for (int i = it->first + 1; rc == 0 && i < it->end; i++) {
        int kind = atoi(PQgetvalue(it->res, i, 0));
        uint64_t n = strtoull(PQgetvalue(it->res, i, 2), NULL, 10);
        const char *text = PQgetvalue(it->res, i, 3);
        size_t len = (size_t)PQgetlength(it->res, i, 3);
        rc = kind == 1 ? tt_store_put_event(txn, it->sid, n, text, len)
                       : tt_store_put_transcript(txn, it->sid, n, text, len);
    }
    if (rc == 0)
        rc = tt_store_set_active(txn, it->sid, active);
    return rc;
}

static int fill_import(tt_store_txn *txn, void *arg)
{
    import_ctx *ic = arg;
    for (size_t i = 0; i < ic->n; i++) {
        ic->items[i].err = 0;
        int rc = import_session(txn, &ic->items[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Split the read result by session (each starts with its record row). */
static int import_all(tt_cluster *c, const PGresult *res, import_ctx *ic)
{
    int rows = PQntuples(res);
    ic->items = calloc((size_t)rows + 1, sizeof *ic->items);
    if (!ic->items)
        return TT_ENOMEM;
    for (int i = 0; i < rows; i++) {
        if (atoi(PQgetvalue(res, i, 0)) != 0)
            continue; /* rows of a session whose record row came first */
        import_one *it = &ic->items[ic->n++];
        it->res = res;
        it->first = i;
        it->sid = PQgetvalue(res, i, 1);
        it->end = i + 1;
        while (it->end < rows && strcmp(PQgetvalue(res, it->end, 1), it->sid) == 0)
            it->end++;
    }
    return ic->n ? tt_store_write(c->store, fill_import, ic) : 0;
}

static const import_one *imported(const import_ctx *ic, const char *sid)
{
    for (size_t i = 0; i < ic->n; i++)
        if (strcmp(ic->items[i].sid, sid) == 0)
            return &ic->items[i];
    return NULL;
}

static void on_read(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_cluster *c = ud;
    (void)msg;
    if (err) {
        flight_fail(c, TT_EIO);
        return;
    }
    import_ctx ic = {0};
    int rc = import_all(c, res, &ic);
    for (waiter *w = c->flight; w; w = w->next) {
        const import_one *it = imported(&ic, w->sid);
        if (w->err == 0 && (rc || !it || it->err))
            w->err = rc ? rc : it ? it->err : TT_ENOTFOUND;
        c->stats.acquires += w->err == 0;
        c->stats.acquire_failures += w->err != 0 && w->err != TT_ENOTFOUND;
    }
    free(ic.items);
    flight_end(c);
}

static void on_acquired(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_cluster *c = ud;
    (void)msg;
    if (err) {
        flight_fail(c, TT_EIO);
        return;
    }
    for (waiter *w = c->flight; w; w = w->next) {
        w->err = TT_ENOTFOUND;
        for (int i = 0; i < PQntuples(res); i++) {
            if (strcmp(PQgetvalue(res, i, 0), w->sid) == 0) {
                w->err = 0;
                w->epoch = strtoull(PQgetvalue(res, i, 1), NULL, 10);
            }
        }
        c->stats.not_found += w->err == TT_ENOTFOUND && w->cb;
    }
    const char *values[2] = {c->ids, c->window};
    c->op = OP_READ;
    if (PQntuples(res) == 0 || tt_pg_query(c->pg, READ_SQL, 2, values, on_read, c) != 0) {
        for (waiter *w = c->flight; PQntuples(res) && w; w = w->next)
            w->err = w->err ? w->err : TT_EIO; /* acquired, but not read back */
        flight_end(c);                         /* nothing acquired (or no connection) */
    }
}

static void send_acquire(tt_cluster *c, int orphans)
{
    c->flight = c->waiting;
    c->waiting = NULL;
    c->n_waiting = 0;
    c->orphans = orphans;
    c->ids = flight_ids(c->flight);
    const char *values[4] = {c->node, c->lease, c->ids, orphans ? "true" : "false"};
    c->op = OP_ACQUIRE;
    if (!c->ids || tt_pg_query(c->pg, ACQUIRE_SQL, 4, values, on_acquired, c) != 0)
        flight_fail(c, TT_EIO);
}

static void on_renewed(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_cluster *c = ud;
    (void)res;
    (void)msg;
    c->op = OP_NONE;
    c->stats.renewals += err == 0;
    next_op(c);
}

static void on_orphans(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_cluster *c = ud;
    (void)msg;
    c->op = OP_NONE;
    if (err || c->waiting) { /* clients first: the next scan finds the orphans again */
        next_op(c);
        return;
    }
    for (int i = 0; i < PQntuples(res) && i < ORPHANS_PER_SCAN; i++) {
        const char *sid = PQgetvalue(res, i, 0);
        if (!c->hooks.held ||
            !c->hooks.held(sid, c->hooks.ud)) /* ours, in memory: our next batch renews it */
            (void)add_waiter(c, sid, NULL, NULL);
    }
    if (c->waiting)
        send_acquire(c, 1);
    else
        next_op(c);
}

static void on_listed(int err, const PGresult *res, const char *msg, void *ud)
{
    tt_cluster *c = ud;
    (void)msg;
    list_req *l = c->list_flight;
    c->list_flight = NULL;
    c->op = OP_NONE;
    if (l && l->cb)
        l->cb(err ? TT_EIO : 0, err ? NULL : res, l->ud);
    free(l);
    next_op(c);
}

static void send_list(tt_cluster *c)
{
    list_req *l = c->lists;
    c->lists = l->next;
    if (!c->lists)
        c->lists_tail = NULL;
    c->n_lists--;
    c->list_flight = l;
    c->op = OP_LIST;
    const char *values[4] = {l->tenant, l->user, l->after, l->limit};
    if (tt_pg_query(c->pg, LIST_SQL, 4, values, on_listed, c) != 0)
        on_listed(TT_EIO, NULL, NULL, c);
}

int tt_cluster_list(tt_cluster *c, const char *tenant, const char *user, const char *after,
                    size_t limit, tt_cluster_list_fn cb, void *ud)
{
    if (c->n_lists >= c->opt.max_waiting)
        return TT_EFULL;
    list_req *l = calloc(1, sizeof *l);
    if (!l)
        return TT_ENOMEM;
    snprintf(l->tenant, sizeof l->tenant, "%s", tenant);
    snprintf(l->user, sizeof l->user, "%s", user);
    snprintf(l->after, sizeof l->after, "%s", after ? after : "");
    snprintf(l->limit, sizeof l->limit, "%zu", limit);
    l->cb = cb;
    l->ud = ud;
    if (c->lists_tail)
        c->lists_tail->next = l;
    else
        c->lists = l;
    c->lists_tail = l;
    c->n_lists++;
    (void)uv_timer_start(&c->retry, on_retry_timer, 0, 0); /* never from inside this call */
    return 0;
}

/* One statement at a time on the connection: a due renewal first (one short
 * statement every lease/3: behind a storm of acquires it would wait until the
 * storm ends, and this node's running sessions would expire and be adopted
 * while it serves them), then acquires, then lists, then a due orphan scan. */
static void next_op(tt_cluster *c)
{
    if (c->op != OP_NONE || !c->pg)
        return;
    if (tt_pg_state_get(c->pg) != TT_PG_UP || tt_pg_busy(c->pg)) {
        while (c->lists)  /* as acquires below */
            send_list(c); /* fails at once: not up */
        waiter *w =
            c->waiting; /* fail fast: the client retries; nothing waits on a database away */
        c->waiting = NULL;
        c->n_waiting = 0;
        for (waiter *x = w; x; x = x->next)
            x->err = TT_EIO;
        c->stats.acquire_failures += w != NULL;
        finish(c, w);
        return;
    }
    uint64_t connects = tt_pg_stats_get(c->pg)->connects;
    if (connects != c->seen_connects) {
        c->seen_connects = connects;
        c->up_since = uv_now(c->loop);
    }
    const char *values[2] = {c->node, c->lease};
    if (c->release_due) {
        c->release_due = 0;
        c->op = OP_RELEASE;
        if (tt_pg_query(c->pg, RELEASE_SQL, 2, values, on_renewed, c) != 0)
            c->op = OP_NONE;
    } else if (c->renew_due) {
        c->renew_due = 0;
        c->op = OP_RENEW;
        if (tt_pg_query(c->pg, RENEW_SQL, 2, values, on_renewed, c) != 0)
            c->op = OP_NONE;
    } else if (c->waiting) {
        send_acquire(c, 0);
    } else if (c->lists) {
        send_list(c);
    } else if (c->scan_due && uv_now(c->loop) - c->up_since >= c->opt.lease_ms) {
        /* Adopting waits one lease after the connection came back: owners cut
         * off by the same outage renew first (their next batch does). */
        c->scan_due = 0;
        c->op = OP_ORPHANS;
        if (tt_pg_query(c->pg, ORPHANS_SQL, 0, NULL, on_orphans, c) != 0)
            c->op = OP_NONE;
    }
}

void tt_cluster_notify(const char *payload, void *ud)
{
    tt_cluster *c = ud;
    const char *sp = strchr(payload, ' ');
    char *end = NULL;
    uint64_t epoch = sp ? strtoull(sp + 1, &end, 10) : 0;
    if (!sp || (size_t)(sp - payload) > TT_SESSION_ID_MAX || !end || *end != ' ' ||
        strcmp(end + 1, c->node) == 0)
        return; /* malformed, or this node's own acquire */
    char sid[TT_SESSION_ID_MAX + 1];
    memcpy(sid, payload, (size_t)(sp - payload));
    sid[sp - payload] = '\0';
    c->stats.moved++;
    if (c->hooks.moved)
        c->hooks.moved(sid, epoch, c->hooks.ud);
}

const tt_cluster_stats *tt_cluster_stats_get(const tt_cluster *c)
{
    return &c->stats;
}
