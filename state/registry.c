/* The registry: sessions in memory, group commit, eviction (see registry.h).
 *
 * The (void) uv_*_init and uv_*_start calls cannot fail: init only fills the
 * struct for a timer, idle or check handle, and start fails only on a closing
 * handle or a NULL callback, which these never are. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "state/archive.h"
#include "state/cluster.h"
#include "protocol/frame.h"
#include "state/map.h"
#include "state/registry_private.h"
#include "state/replica.h"
#include "state/transcript.h"

static void on_maintenance(uv_timer_t *t);

int tt_registry_new(uv_loop_t *loop, tt_store *store, const tt_registry_options *opt,
                    const tt_registry_hooks *hooks, tt_registry **out)
{
    tt_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return TT_ENOMEM;
    reg->loop = loop;
    reg->store = store;
    reg->opt = *opt;
    reg->hooks = *hooks;
    tt_map_init(&reg->sessions);
    tt_buf_init(&reg->records, TT_RECORDS_CAP);
    (void)uv_check_init(loop, &reg->commit_check);
    (void)uv_idle_init(loop, &reg->commit_idle);
    (void)uv_timer_init(loop, &reg->maintenance);
    reg->commit_check.data = reg->commit_idle.data = reg;
    reg->maintenance.data = reg;
    reg->open_handles = 3;
    (void)uv_check_start(&reg->commit_check, tt_commit_on_check);
    uv_unref((uv_handle_t *)&reg->commit_check);
    uint64_t period = 1000;
    if (opt->idle_evict_ms > 0 && (uint64_t)opt->idle_evict_ms / 2 < period)
        period = (uint64_t)opt->idle_evict_ms / 2 + 1;
    if (opt->sync_interval_ms > 0 && (uint64_t)opt->sync_interval_ms < period)
        period = (uint64_t)opt->sync_interval_ms;
    (void)uv_timer_start(&reg->maintenance, on_maintenance, period, period);
    uv_unref((uv_handle_t *)&reg->maintenance);
    *out = reg;
    return 0;
}

void tt_registry_mark_dirty(tt_registry *reg, tt_session *s)
{
    if (s->in_dirty_list || s->discard_err)
        return; /* a session being discarded commits nothing more */
    s->in_dirty_list = 1;
    s->next_dirty = reg->dirty;
    reg->dirty = s;
    (void)uv_idle_start(&reg->commit_idle, tt_commit_on_idle);
}

static int session_insert(tt_registry *reg, tt_session *s, int resumed)
{
    if (tt_map_put(&reg->sessions, s->id, s) != 0)
        return TT_ENOMEM;
    int rc = reg->hooks.bind ? reg->hooks.bind(s, resumed, reg->hooks.ud) : 0;
    if (rc) {
        tt_map_del(&reg->sessions, s->id);
        return rc;
    }
    reg->stats.sessions_memory = reg->sessions.count;
    return 0;
}

/* TT_ELIMIT when tenant/user owns max_sessions_per_owner sessions: those in
 * the store and those created since the last commit. */
static int owner_at_cap(tt_registry *reg, const char *user, const char *tenant)
{
    uint64_t cap = reg->opt.max_sessions_per_owner, fresh = 0, stored = 0;
    if (!cap)
        return 0;
    for (tt_session *s = reg->dirty; s; s = s->next_dirty)
        fresh += !s->stored && strcmp(s->user, user) == 0 && strcmp(s->tenant, tenant) == 0;
    if (fresh >= cap)
        return TT_ELIMIT;
    char owner[TT_OWNER_KEY_MAX];
    tt_owner_key(tenant, user, owner, sizeof owner);
    int rc = tt_store_count_user(reg->store, owner, cap - fresh, &stored);
    if (rc)
        return rc;
    return fresh + stored >= cap ? TT_ELIMIT : 0;
}

int tt_registry_create(tt_registry *reg, const char *user, const char *tenant, const char *agent,
                       json_t *input, json_t *metadata, tt_session **out)
{
    return tt_registry_create_id(reg, NULL, user, tenant, agent, input, metadata, out);
}

int tt_registry_create_id(tt_registry *reg, const char *id, const char *user, const char *tenant,
                          const char *agent, json_t *input, json_t *metadata, tt_session **out)
{
    if (id && (!id[0] || strlen(id) > TT_SESSION_ID_MAX))
        return TT_EINVAL;
    if (id && tt_map_get(&reg->sessions, id))
        return TT_ECONFLICT;
    int rc = owner_at_cap(reg, user, tenant);
    if (rc)
        return rc;
    tt_session *s = tt_session_new(reg);
    if (!s)
        return TT_ENOMEM;
    if (id)
        snprintf(s->id, sizeof s->id, "%s", id);
    else
        tt_new_id("s", s->id, sizeof s->id);
    tt_utf8_copy(s->user, sizeof s->user, user);
    tt_utf8_copy(s->tenant, sizeof s->tenant, tenant);
    tt_utf8_copy(s->agent, sizeof s->agent, agent);
    s->created_ms = s->updated_ms = tt_wall_ms();
    s->last_used_ms = (int64_t)uv_now(reg->loop);
    /* Kept NULL while empty (session.h): most sessions have neither. */
    int input_empty = !input || (json_is_object(input) && json_object_size(input) == 0);
    int meta_empty = !metadata || (json_is_object(metadata) && json_object_size(metadata) == 0);
    if (!input_empty)
        s->input = json_deep_copy(input);
    if (!meta_empty) {
        s->metadata = json_deep_copy(metadata);
        const char *title = json_string_value(json_object_get(metadata, "title"));
        if (title)
            tt_utf8_copy(s->title, sizeof s->title, title);
    }
    if ((!input_empty && !s->input) || (!meta_empty && !s->metadata)) {
        tt_session_free(s);
        return TT_ENOMEM;
    }
    tt_session_touch(s);
    rc = session_insert(reg, s, 0);
    if (rc) {
        /* Nothing was committed: drop it from the dirty list and free it. */
        tt_session **pp = &reg->dirty;
        while (*pp && *pp != s)
            pp = &(*pp)->next_dirty;
        if (*pp)
            *pp = s->next_dirty;
        tt_session_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int load(tt_registry *reg, const char *sid, tt_session **out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = tt_store_get_session(reg->store, sid, &text, &len);
    if (rc)
        return rc;
    tt_session *s = tt_session_new(reg);
    if (!s) {
        free(text);
        return TT_ENOMEM;
    }
    rc = tt_session_load_record(s, text, len);
    free(text);
    if (rc == 0)
        rc = tt_transcript_load(s, reg->store);
    uint64_t last = 0;
    if (rc == 0)
        rc = tt_store_last_seq(reg->store, s->id, &last);
    if (rc == 0 && last > s->head) {
        /* Events committed after the record was last written. */
        s->head = s->committed = last;
        s->ring_first = last + 1;
    }
    s->stored_head = s->committed;
    s->active_stored = s->state == TT_STATE_RUNNING;
    s->stored = 1;
    s->last_used_ms = (int64_t)uv_now(reg->loop);
    if (rc == 0)
        rc = session_insert(reg, s, 1);
    if (rc) {
        tt_session_free(s);
        return rc;
    }
    reg->stats.sessions_loaded++;
    *out = s;
    return 0;
}

int tt_registry_get(tt_registry *reg, const char *sid, tt_session **out)
{
    tt_session *s = tt_map_get(&reg->sessions, sid);
    if (s && s->discard_err)
        return s->discard_err;
    if (s) {
        s->last_used_ms = (int64_t)uv_now(reg->loop);
        *out = s;
        return 0;
    }
    if (reg->cluster)
        return TT_EFULL; /* not acquired: tt_registry_acquire first */
    return load(reg, sid, out);
}

typedef struct list_ctx {
    tt_registry *reg;
    json_t *arr;
    size_t limit, max_bytes, bytes;
    char last[TT_SESSION_ID_MAX + 1]; /* the last session on the page */
    int more;                         /* a session did not fit: there is a next page */
} list_ctx;

#define LIST_PAGE_FULL 1 /* list_one's "stop here", not an error */

static int list_add(list_ctx *lc, const char *sid, json_t *summary)
{
    if (!summary)
        return TT_ENOMEM;
    size_t len = json_dumpb(summary, NULL, 0, JSON_COMPACT) + 1;
    size_t n = json_array_size(lc->arr);
    if (n >= lc->limit || (n > 0 && lc->bytes + len > lc->max_bytes)) {
        json_decref(summary);
        lc->more = 1;
        return LIST_PAGE_FULL;
    }
    if (json_array_append_new(lc->arr, summary))
        return TT_ENOMEM;
    lc->bytes += len;
    tt_utf8_copy(lc->last, sizeof lc->last, sid);
    return 0;
}

/* One listed session: from memory when held here, else from its record,
 * whose head is raised to head (the last event stored or committed). An
 * unreadable record is skipped, not fatal to the listing. */
static int list_session(list_ctx *lc, const char *sid, const char *json, size_t len, uint64_t head)
{
    tt_session *live = tt_map_get(&lc->reg->sessions, sid);
    if (live && !live->discard_err)
        return list_add(lc, sid, tt_session_summary(live));
    tt_session *s = tt_session_new(lc->reg);
    if (!s)
        return TT_ENOMEM;
    int rc = tt_session_load_record(s, json, len);
    if (rc == 0 && head > s->head)
        s->head = head;
    rc = rc == 0 ? list_add(lc, sid, tt_session_summary(s)) : 0;
    tt_session_free(s);
    return rc;
}

static int list_one(const char *sid, const char *json, size_t len, void *arg)
{
    list_ctx *lc = arg;
    uint64_t last = 0;
    if (tt_map_get(&lc->reg->sessions, sid) == NULL)
        (void)tt_store_last_seq(lc->reg->store, sid, &last);
    return list_session(lc, sid, json, len, last);
}

int tt_registry_list(tt_registry *reg, const char *owner, const char *after, size_t limit,
                     size_t max_bytes, json_t **out, char next[TT_SESSION_ID_MAX + 1])
{
    list_ctx lc = {.reg = reg, .arr = json_array(), .limit = limit, .max_bytes = max_bytes};
    if (!lc.arr)
        return TT_ENOMEM;
    /* Sessions created this pass are not in the store yet. A session that
     * cannot be committed is being discarded: the listing shows what is stored. */
    tt_registry_flush(reg);
    int rc = tt_store_list_user_after(reg->store, owner, after, list_one, &lc);
    if (rc && rc != LIST_PAGE_FULL) {
        json_decref(lc.arr);
        return rc;
    }
    tt_utf8_copy(next, TT_SESSION_ID_MAX + 1, lc.more ? lc.last : "");
    *out = lc.arr;
    return 0;
}

typedef struct list_wait {
    tt_registry *reg;
    tt_registry_list_fn cb; /* NULL: cancelled */
    void *ud;
    size_t limit, max_bytes;
    char re[TT_ID_MAX + 1];
    struct list_wait *next;
} list_wait;

/* One row of the cluster's listing: from memory when held here. */
static int list_row(list_ctx *lc, const PGresult *res, int i)
{
    return list_session(lc, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        (size_t)PQgetlength(res, i, 1), strtoull(PQgetvalue(res, i, 2), NULL, 10));
}

static void on_cluster_list(int err, const PGresult *res, void *ud)
{
    list_wait *w = ud;
    tt_registry *reg = w->reg;
    for (list_wait **pp = &reg->listing; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    list_ctx lc = {.reg = reg, .arr = json_array(), .limit = w->limit, .max_bytes = w->max_bytes};
    int rc = err ? err : lc.arr ? 0 : TT_ENOMEM;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = list_row(&lc, res, i);
    if (rc == LIST_PAGE_FULL)
        rc = 0;
    if (rc == 0 && !lc.more && (size_t)PQntuples(res) > w->limit)
        lc.more = 1;
    if (w->cb)
        w->cb(rc, rc ? NULL : lc.arr, lc.more ? lc.last : "", w->re, w->ud);
    json_decref(lc.arr);
    free(w);
}

int tt_registry_list_async(tt_registry *reg, const char *tenant, const char *user,
                           const char *after, size_t limit, size_t max_bytes, const char *re,
                           tt_registry_list_fn cb, void *ud)
{
    if (!reg->cluster) {
        char owner[TT_OWNER_KEY_MAX], next[TT_SESSION_ID_MAX + 1];
        tt_owner_key(tenant, user, owner, sizeof owner);
        json_t *arr = NULL;
        int rc = tt_registry_list(reg, owner, after, limit, max_bytes, &arr, next);
        cb(rc, arr, rc ? "" : next, re, ud);
        json_decref(arr);
        return 0;
    }
    list_wait *w = calloc(1, sizeof *w);
    if (!w)
        return TT_ENOMEM;
    *w = (list_wait){.reg = reg, .cb = cb, .ud = ud, .limit = limit, .max_bytes = max_bytes};
    snprintf(w->re, sizeof w->re, "%s", re ? re : "");
    tt_registry_flush(reg); /* sessions created this pass: staged, in the next batch */
    int rc = tt_cluster_list(reg->cluster, tenant, user, after, limit + 1, on_cluster_list, w);
    if (rc) {
        free(w);
        return rc;
    }
    w->next = reg->listing;
    reg->listing = w;
    return 0;
}

static int resume_one(const char *sid, const char *json, size_t len, void *arg)
{
    tt_registry *reg = ((void **)arg)[0];
    size_t *count = ((void **)arg)[1];
    tt_session *s;
    if (tt_registry_get(reg, sid, &s) == 0)
        (*count)++;
    return 0;
}

int tt_registry_resume_active(tt_registry *reg, size_t *resumed)
{
    size_t count = 0;
    void *ctx[2] = {reg, &count};
    int rc = tt_store_list_active(reg->store, resume_one, ctx);
    *resumed = count;
    return rc;
}

static int evictable(const tt_registry *reg, const tt_session *s, int64_t now)
{
    return !s->cursors && !s->in_dirty_list && s->committed == s->head && !s->record_dirty &&
           s->state != TT_STATE_RUNNING && now - s->last_used_ms >= reg->opt.idle_evict_ms;
}

void tt_registry_session_drop(tt_registry *reg, tt_session *s)
{
    if (reg->hooks.unbind)
        reg->hooks.unbind(s, reg->hooks.ud);
    tt_map_del(&reg->sessions, s->id);
    tt_session_free(s);
    reg->stats.sessions_memory = reg->sessions.count;
}

static void evict_idle(tt_registry *reg)
{
    int64_t now = (int64_t)uv_now(reg->loop);
    size_t pos = 0;
    tt_session *s;
    /* Collect first: the map must not change while it is iterated. */
    tt_session **victims = NULL;
    size_t n = 0, cap = 0;
    while ((s = tt_map_next(&reg->sessions, &pos))) {
        if (s->discard_err)
            continue; /* the end of the pass drops it */
        if (s->record_head != s->head && !s->in_dirty_list && !s->cursors) {
            tt_session_touch(s); /* write the record's final head before evicting */
            continue;
        }
        if (!evictable(reg, s, now))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            tt_session **v = realloc(victims, ncap * sizeof *v);
            if (!v)
                break;
            victims = v;
            cap = ncap;
        }
        victims[n++] = s;
    }
    for (size_t i = 0; i < n; i++)
        tt_registry_session_drop(reg, victims[i]);
    reg->stats.sessions_evicted += n;
    free(victims);
}

static void registry_free(tt_registry *reg)
{
    tt_buf_free(&reg->records);
    free(reg);
}

static void on_handle_closed(uv_handle_t *h)
{
    tt_registry *reg = h->data;
    if (--reg->open_handles == 0)
        registry_free(reg);
}

/* The periodic fsync (--sync periodic) runs in the libuv pool: fdatasync of
 * the data file took 11-16 ms once a second under load, all of it on the
 * loop (issue 18). One at a time; the job counts as an open handle, so the
 * registry outlives it, and tt_store_close (after the loop has run dry)
 * comes after it. */
typedef struct sync_job {
    uv_work_t req;
    tt_registry *reg;
    int (*fn)(int fd);
    int fd;
    int rc;
    uint64_t ns; /* how long the fdatasync took (the loop's wait before) */
} sync_job;

static void sync_work(uv_work_t *w)
{
    sync_job *j = w->data;
    uint64_t t0 = uv_hrtime();
    j->rc = j->fn(j->fd);
    j->ns = uv_hrtime() - t0;
}

static void sync_done(uv_work_t *w, int status)
{
    sync_job *j = w->data;
    tt_registry *reg = j->reg;
    reg->syncing = 0;
    if (status == 0 && j->rc == 0)
        reg->stats.syncs++;
    else
        reg->stats.sync_failures++;
    reg->stats.sync_us_total += j->ns / 1000;
    if (j->ns / 1000 > reg->stats.sync_us_max)
        reg->stats.sync_us_max = j->ns / 1000;
    /* Closing: what the last flush wrote may have missed this sync, and the
     * close skipped its own while this one ran. At close the loop may wait. */
    if (reg->closing)
        (void)j->fn(j->fd);
    free(j);
    if (--reg->open_handles == 0)
        registry_free(reg);
}

static void start_sync(tt_registry *reg)
{
    int fd = -1;
    if (tt_store_sync_fd(reg->store, &fd) != 0)
        return;
    sync_job *j = calloc(1, sizeof *j);
    if (!j)
        return; /* the next tick tries again */
    *j = (sync_job){
        .reg = reg, .fn = reg->opt.sync_fn ? reg->opt.sync_fn : tt_store_fdsync, .fd = fd};
    j->req.data = j;
    if (uv_queue_work(reg->loop, &j->req, sync_work, sync_done) != 0) {
        free(j);
        return;
    }
    reg->syncing = 1;
    reg->open_handles++;
}

uint64_t tt_session_backlog(const tt_session *s)
{
    uint64_t worst = 0;
    for (const tt_cursor *c = s->cursors; c; c = c->s_next) {
        uint64_t b = c->next > s->head ? 0 : s->head + 1 - c->next;
        if (c->owner_kind == 0 && !c->owner_closing && b > worst)
            worst = b;
    }
    return worst;
}

uint64_t tt_registry_pause_lag(const tt_registry *reg)
{
    uint64_t half = reg ? reg->opt.max_lag_events / 2 : 0;
    return half && half < TT_FLOW_PAUSE_LAG ? half : TT_FLOW_PAUSE_LAG;
}

int tt_registry_syncing(const tt_registry *reg)
{
    return reg && reg->syncing;
}

static void on_maintenance(uv_timer_t *t)
{
    tt_registry *reg = t->data;
    if (reg->opt.idle_evict_ms > 0)
        evict_idle(reg);
    int64_t now = (int64_t)uv_now(reg->loop);
    if (reg->opt.sync_interval_ms > 0 && !reg->syncing &&
        now - reg->last_sync_ms >= reg->opt.sync_interval_ms) {
        start_sync(reg);
        reg->last_sync_ms = now;
    }
}

void tt_registry_close(tt_registry *reg)
{
    if (!reg || reg->closing)
        return;
    reg->closing = 1;
    tt_registry_flush(reg);
    tt_commit_drop_discarded(reg);
    size_t pos = 0;
    tt_session *s;
    tt_session **all = calloc(reg->sessions.count + 1, sizeof *all);
    size_t n = 0;
    while (all && (s = tt_map_next(&reg->sessions, &pos)))
        all[n++] = s;
    for (size_t i = 0; i < n; i++)
        tt_registry_session_drop(reg, all[i]);
    free(all);
    tt_map_free(&reg->sessions);
    uv_close((uv_handle_t *)&reg->commit_check, on_handle_closed);
    uv_close((uv_handle_t *)&reg->commit_idle, on_handle_closed);
    uv_close((uv_handle_t *)&reg->maintenance, on_handle_closed);
}

typedef struct delete_ctx {
    const char *sid;
    const char *owner;
} delete_ctx;

static int fill_delete(tt_store_txn *txn, void *arg)
{
    const delete_ctx *d = arg;
    return tt_store_delete_session(txn, d->sid, d->owner);
}

int tt_registry_delete(tt_registry *reg, tt_session *s, void (*detach)(tt_session *s, void *ud),
                       void *ud)
{
    if (s->discard_err)
        return s->discard_err;
    if (s->in_dirty_list) {
        /* Commit what waits first: the replies held for it go out, and a
         * session created this pass has its owners entry to delete. */
        tt_registry_flush(reg);
        if (s->discard_err)
            return s->discard_err;
    }
    char owner[TT_OWNER_KEY_MAX];
    tt_owner_key(s->tenant, s->user, owner, sizeof owner);
    delete_ctx d = {.sid = s->id, .owner = owner};
    int rc = tt_store_write(reg->store, fill_delete, &d);
    if (rc)
        return rc;
    if (s->in_dirty_list) { /* changed since the flush: nothing of it is kept */
        tt_session **pp = &reg->dirty;
        while (*pp && *pp != s)
            pp = &(*pp)->next_dirty;
        if (*pp)
            *pp = s->next_dirty;
        s->in_dirty_list = 0;
        s->next_dirty = NULL;
        if (!reg->dirty)
            uv_idle_stop(&reg->commit_idle);
    }
    if (reg->replica) { /* and in the system of record, in the next pass */
        rc = tt_replica_stage_delete(reg->replica, s->id, s->epoch ? s->epoch : 1);
        reg->force_pass = 1;
        (void)uv_idle_start(&reg->commit_idle, tt_commit_on_idle);
    }
    if (detach)
        detach(s, ud);
    assert(!s->cursors);
    tt_registry_session_drop(reg, s);
    return rc;
}

void tt_registry_foreach(tt_registry *reg, void (*fn)(tt_session *s, void *ud), void *ud)
{
    size_t pos = 0;
    tt_session *s;
    while ((s = tt_map_next(&reg->sessions, &pos)))
        fn(s, ud);
}

const tt_registry_stats *tt_registry_stats_get(const tt_registry *reg)
{
    return &reg->stats;
}

const tt_registry_options *tt_registry_options_get(const tt_registry *reg)
{
    return &reg->opt;
}

uv_loop_t *tt_registry_loop(const tt_registry *reg)
{
    return reg->loop;
}

tt_store *tt_registry_store(const tt_registry *reg)
{
    return reg->store;
}

void tt_registry_set_archive(tt_registry *reg, tt_archive *archive)
{
    reg->archive = archive;
}

int tt_registry_dirty(const tt_registry *reg)
{
    return reg->dirty != NULL;
}

int tt_registry_failing(const tt_registry *reg)
{
    return reg->health != TT_STORE_HEALTHY;
}

/* Replicated mode: acquiring sessions from the cluster. */

typedef struct acquire_wait {
    tt_registry *reg;
    tt_registry_ready_fn cb; /* NULL: cancelled */
    void *ud;
    struct acquire_wait *next, *prev;
} acquire_wait;

void tt_registry_set_replica(tt_registry *reg, struct tt_replica *replica,
                             struct tt_cluster *cluster)
{
    reg->replica = replica;
    reg->cluster = cluster;
}

int tt_registry_replicated(const tt_registry *reg)
{
    return reg->replica != NULL;
}

uint64_t tt_registry_reply_pass(const tt_registry *reg)
{
    uint64_t p = reg->dirty || reg->force_pass ? reg->passes + 1 : reg->passes;
    return p > reg->done_pass ? p : 0;
}

/* Load an acquired session (its LMDB copy was just replaced). */
static int load_acquired(tt_registry *reg, const char *sid, uint64_t epoch)
{
    tt_session *s = tt_map_get(&reg->sessions, sid);
    if (s)
        return s->discard_err;
    int rc = load(reg, sid, &s);
    if (rc == 0)
        s->epoch = epoch;
    return rc;
}

static void on_acquired(int err, const char *sid, uint64_t epoch, void *ud)
{
    acquire_wait *w = ud;
    tt_registry *reg = w->reg;
    if (w->prev)
        w->prev->next = w->next;
    else
        reg->acquiring = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (err == 0)
        err = load_acquired(reg, sid, epoch);
    if (w->cb)
        w->cb(err, sid, w->ud);
    free(w);
}

int tt_registry_acquire(tt_registry *reg, const char *sid, tt_registry_ready_fn cb, void *ud)
{
    tt_session *s = tt_map_get(&reg->sessions, sid);
    if (!reg->cluster || (s && !s->discard_err))
        return 1;
    acquire_wait *w = calloc(1, sizeof *w);
    if (!w)
        return TT_ENOMEM;
    *w = (acquire_wait){.reg = reg, .cb = cb, .ud = ud, .next = reg->acquiring};
    int rc = tt_cluster_acquire(reg->cluster, sid, on_acquired, w);
    if (rc) {
        free(w);
        return rc;
    }
    if (reg->acquiring)
        reg->acquiring->prev = w;
    reg->acquiring = w;
    return 0;
}

void tt_registry_acquire_cancel(tt_registry *reg, void *ud)
{
    for (list_wait *l = reg->listing; l; l = l->next)
        if (l->ud == ud)
            l->cb = NULL;
    for (acquire_wait *w = reg->acquiring; w; w = w->next)
        if (w->ud == ud)
            w->cb = NULL;
}

void tt_registry_moved(const char *sid, uint64_t epoch, void *ud)
{
    tt_registry *reg = ud;
    tt_session *s = tt_map_get(&reg->sessions, sid);
    if (s && s->epoch < epoch)
        tt_commit_session_moved(reg, s);
}

void tt_registry_adopted(const char *sid, uint64_t epoch, void *ud)
{
    tt_registry *reg = ud;
    (void)load_acquired(reg, sid, epoch); /* bound as resumed: its agent carries on */
}

int tt_registry_held(const char *sid, void *ud)
{
    tt_registry *reg = ud;
    return tt_map_get(&reg->sessions, sid) != NULL;
}
