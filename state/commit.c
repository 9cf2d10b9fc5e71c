/* The group commit: one LMDB write transaction per loop pass (see
 * registry.h). */
#include <assert.h>
#include <stdlib.h>

#include "protocol/errors.h"
#include "state/archive.h"
#include "state/registry_private.h"
#include "state/replica.h"
#include "state/transcript.h"

const double tt_commit_bucket_bounds[12] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

/* One session's share of a commit, prepared before the write so the write
 * callback can run again after a map resize. */
typedef struct commit_item {
    tt_session *s;
    char *record; /* in the batch's records, or its own allocation when owned */
    size_t record_len;
    size_t record_off; /* in the batch's records, until the batch is prepared */
    int record_in_arena;
    int record_owned;
    tt_transcript_batch transcript; /* written with the record */
    uint64_t first_seq;
    uint64_t from; /* events (from, head] are written */
    uint64_t head;
    int active;
    int err; /* why this session could not be committed (0: it was) */
} commit_item;

typedef struct commit_batch {
    commit_item *items;
    size_t n;
    tt_archive *archive; /* the registry's, for fill_commit */
    tt_buf records;      /* the registry's, taken for the pass (a nested pass gets its own) */
} commit_batch;

static int fill_commit(tt_store_txn *txn, void *arg)
{
    commit_batch *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        commit_item *it = &b->items[i];
        tt_session *s = it->s;
        int rc = 0;
        if (it->err)
            continue; /* left out: its record could not be encoded */
        for (uint64_t q = it->from + 1; rc == 0 && q <= it->head; q++) {
            const tt_frame *f = &s->ring[q % s->ring_cap];
            assert(q >= s->ring_first);
            rc = tt_store_put_event(txn, s->id, q, tt_frame_text(f), f->len);
        }
        if (rc == 0 && b->archive && it->head > it->from)
            rc = tt_archive_fill(b->archive, txn, s);
        if (rc == 0 && it->record) {
            char owner[TT_OWNER_KEY_MAX];
            tt_owner_key(s->tenant, s->user, owner, sizeof owner);
            rc = tt_store_put_session(txn, s->id, owner, it->record, it->record_len);
            if (rc == 0)
                rc = tt_transcript_write(txn, s, &it->transcript);
        }
        if (rc == 0 && it->first_seq != s->first_seq)
            rc = tt_store_trim_events(txn, s->id, it->first_seq);
        if (rc == 0 && it->active != s->active_stored)
            rc = tt_store_set_active(txn, s->id, it->active);
        if (rc)
            return rc;
    }
    return 0;
}

/* The records' buffer goes back to the registry for the next pass, unless
 * it grew large in this one (or a nested pass already left one there). */
static void batch_free(tt_registry *reg, commit_batch *b)
{
    if (b->records.alloc > TT_RECORDS_KEEP || reg->records.mem)
        tt_buf_free(&b->records);
    tt_buf_reset(&b->records);
    if (!reg->records.mem)
        reg->records = b->records;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].record_owned)
            free(b->items[i].record);
        tt_transcript_batch_free(&b->items[i].transcript);
    }
    free(b->items);
}

/* The session's record into the pass's buffer; alone when that is full. */
static void prepare_record(commit_batch *b, commit_item *it)
{
    it->record_off = b->records.len;
    int rc = tt_session_record_append(it->s, &b->records, &it->record_len);
    if (rc == 0) {
        it->record_in_arena = 1;
        return;
    }
    if (rc == TT_ETOOLARGE) {
        it->record = tt_session_record(it->s, &it->record_len);
        it->record_owned = it->record != NULL;
    }
}

static int batch_prepare(tt_registry *reg, commit_batch *b)
{
    size_t n = 0;
    for (tt_session *s = reg->dirty; s; s = s->next_dirty)
        n++;
    b->items = calloc(n ? n : 1, sizeof *b->items);
    if (!b->items)
        return TT_ENOMEM;
    for (tt_session *s = reg->dirty; s; s = s->next_dirty) {
        commit_item *it = &b->items[b->n++];
        it->s = s;
        it->from = s->stored_head;
        it->head = s->head;
        it->active = s->state == TT_STATE_RUNNING;
        it->first_seq = s->first_seq;
        uint64_t keep = reg->opt.retain_events;
        if (keep && s->head >= keep && s->head - keep + 1 > s->first_seq) {
            it->first_seq = s->head - keep + 1;
            s->record_dirty = 1;
        }
        if (s->record_dirty || it->active != s->active_stored) {
            uint64_t saved = s->first_seq;
            s->first_seq = it->first_seq; /* the record describes the state after commit */
            prepare_record(b, it);
            s->first_seq = saved;
            if (!(it->record_in_arena || it->record_owned) ||
                tt_transcript_prepare(s, &it->transcript) != 0)
                it->err = TT_EINTERNAL; /* unencodable (or no memory): this session only */
        }
    }
    for (size_t i = 0; i < b->n; i++) { /* the buffer has stopped moving */
        if (b->items[i].record_in_arena)
            b->items[i].record = tt_buf_data(&b->records) + b->items[i].record_off;
    }
    return 0;
}

static void observe_latency(tt_registry *reg, double secs)
{
    reg->stats.commit_seconds_sum += secs;
    for (size_t i = 0; i < 12; i++) {
        if (secs <= tt_commit_bucket_bounds[i]) {
            reg->stats.commit_buckets[i]++;
            return;
        }
    }
}

static void count_failure(tt_registry *reg, int rc)
{
    reg->stats.commit_failures++;
    if (rc == TT_EFULL)
        reg->stats.commit_store_full++;
}

const char *tt_store_health_name(tt_store_health h)
{
    switch (h) {
    case TT_STORE_HEALTHY:
        return "healthy";
    case TT_STORE_FAILING:
        return "failing";
    case TT_STORE_FULL:
        return "full";
    default:
        return "unknown";
    }
}

/* The one place the store's health changes: the gauge follows, the change
 * is counted and told to hooks.health (which logs it) once. */
static void set_health(tt_registry *reg, tt_store_health to, int err)
{
    assert(to < TT_STORE_HEALTH__LAST);
    if (reg->health == to)
        return;
    tt_store_health from = reg->health;
    reg->health = to;
    reg->stats.store_health = (uint64_t)to;
    reg->stats.store_health_changes++;
    if (reg->hooks.health)
        reg->hooks.health(from, to, err, reg->hooks.ud);
}

static void set_health_after(tt_registry *reg, int rc)
{
    set_health(reg,
               rc == 0          ? TT_STORE_HEALTHY
               : rc == TT_EFULL ? TT_STORE_FULL
                                : TT_STORE_FAILING,
               rc);
}

/* Write the batch in one transaction; when that fails, write each session
 * alone so that one session that cannot be stored does not stop the others.
 * Sets each item's err; returns the first error. */
static int batch_write(tt_registry *reg, commit_batch *b)
{
    size_t live = 0;
    int first = 0;
    for (size_t i = 0; i < b->n; i++) {
        live += !b->items[i].err;
        if (b->items[i].err && !first)
            first = b->items[i].err;
    }
    if (live == 0)
        return first;
    int rc = tt_store_write(reg->store, fill_commit, b);
    if (rc == 0)
        return first;
    count_failure(reg, rc);
    for (size_t i = 0; i < b->n; i++) {
        commit_item *it = &b->items[i];
        if (it->err)
            continue;
        commit_batch one = {.items = it, .n = 1, .archive = b->archive};
        it->err = live == 1 ? rc : tt_store_write(reg->store, fill_commit, &one);
        if (it->err && live > 1)
            count_failure(reg, it->err);
        if (it->err && !first)
            first = it->err;
    }
    return first;
}

/* The session's uncommitted changes cannot be stored: fail what waits on
 * them now; the session leaves memory at the end of the pass. */
static void discard_session(tt_registry *reg, tt_session *s, int err)
{
    s->discard_err = err;
    s->next_dirty = reg->discarded;
    reg->discarded = s;
    reg->stats.sessions_discarded++;
    if (reg->hooks.discard)
        reg->hooks.discard(s, err, reg->hooks.ud);
}

/* What LMDB now holds of s. */
static void apply_local(commit_item *it)
{
    tt_session *s = it->s;
    s->stored_head = it->head;
    s->first_seq = it->first_seq;
    s->active_stored = it->active;
    if (it->record) {
        s->record_dirty = 0;
        s->record_head = it->head;
        s->stored = 1;
        tt_transcript_committed(s, &it->transcript);
    }
}

/* Events of s up to head are committed for good: cursors may hand them out. */
static void make_durable(tt_registry *reg, tt_session *s, uint64_t head)
{
    if (head <= s->committed)
        return;
    if (reg->archive)
        tt_archive_committed(reg->archive, s, head);
    reg->stats.events_appended += head - s->committed;
    s->committed = head;
    tt_session_ring_after_commit(s);
}

/* Hand the cursors of s what they may now send. */
static void deliver_session(tt_registry *reg, tt_session *s)
{
    for (tt_cursor *c = s->cursors, *next; c; c = next) {
        next = c->s_next;
        if (tt_cursor_lag(c) > 0 || c->snapshot.buf || c->snapshot_wanted)
            reg->hooks.deliver(c, reg->hooks.ud);
    }
}

/* Replicated mode: the item's share goes to PostgreSQL. */
static int stage_item(tt_registry *reg, commit_item *it)
{
    tt_session *s = it->s;
    uint64_t n = it->head - it->from;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    int rc = texts && lens ? 0 : TT_ENOMEM;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        const tt_frame *f = &s->ring[(it->from + 1 + i) % s->ring_cap];
        texts[i] = tt_frame_text(f);
        lens[i] = f->len;
    }
    tt_replica_item ri = {.sid = s->id,
                          .tenant = s->tenant,
                          .user = s->user,
                          .agent = s->agent,
                          .epoch = s->epoch,
                          .head = it->head,
                          .active = it->active,
                          .record = it->record,
                          .record_len = it->record_len,
                          .events = texts,
                          .event_lens = lens,
                          .from = it->from + 1,
                          .n_events = n,
                          .entries = it->record ? (const char *const *)it->transcript.texts : NULL,
                          .entry_lens = it->record ? it->transcript.lens : NULL,
                          .tfrom = it->transcript.from,
                          .n_entries = it->record ? it->transcript.n : 0};
    if (rc == 0)
        rc = tt_replica_stage(reg->replica, &ri);
    free(texts);
    free(lens);
    return rc;
}

int tt_registry_flush(tt_registry *reg)
{
    if (!reg->dirty && !reg->force_pass)
        return 0;
    reg->force_pass = 0;
    if (reg->replica && tt_replica_full(reg->replica)) {
        uv_idle_stop(&reg->commit_idle); /* until the database took some: passes_done */
        return 0;
    }
    commit_batch b = {.archive = reg->archive, .records = reg->records};
    tt_buf_init(&reg->records, TT_RECORDS_CAP);
    uint64_t t0 = uv_hrtime();
    int rc = batch_prepare(reg, &b);
    if (rc) {
        batch_free(reg, &b); /* no memory even for the batch: everything stays dirty */
        count_failure(reg, rc);
        set_health_after(reg, rc);
        return rc;
    }
    rc = batch_write(reg, &b);
    set_health_after(reg, rc);
    size_t applied = 0;
    for (size_t i = 0; i < b.n; i++)
        applied += !b.items[i].err;
    if (applied) {
        observe_latency(reg, (double)(uv_hrtime() - t0) / 1e9);
        reg->stats.commits++;
    }

    /* Apply the batch, then deliver: a deliver hook may append nothing and
     * free nothing, but it may detach cursors of its own connection. */
    reg->dirty = NULL;
    for (size_t i = 0; i < b.n; i++) {
        b.items[i].s->next_dirty = NULL;
        b.items[i].s->in_dirty_list = 0;
    }
    for (size_t i = 0; i < b.n; i++) {
        commit_item *it = &b.items[i];
        if (!it->err && reg->replica && stage_item(reg, it) != 0)
            it->err = TT_ENOMEM; /* in LMDB, but not on its way to the system of record */
        if (it->err) {
            discard_session(reg, it->s, it->err);
            continue;
        }
        apply_local(it);
        if (!reg->replica)
            make_durable(reg, it->s, it->head);
    }
    reg->passes++;
    if (reg->replica)
        tt_replica_pass_end(reg->replica, reg->passes);
    else {
        reg->done_pass = reg->passes;
        if (reg->hooks.committed)
            reg->hooks.committed(reg->passes, reg->hooks.ud);
    }
    for (size_t i = 0; i < b.n; i++) {
        tt_session *s = b.items[i].s;
        if (b.items[i].err)
            continue;
        /* Events appended after this batch was prepared (none today) stay dirty. */
        if (s->stored_head < s->head || s->record_dirty)
            tt_registry_mark_dirty(reg, s);
        if (!reg->replica)
            deliver_session(reg, s);
    }
    batch_free(reg, &b);
    tt_archive_kick(reg->archive);
    if (!reg->dirty)
        uv_idle_stop(&reg->commit_idle);
    return rc;
}

/* Free the sessions discarded during this pass, at a point where nothing
 * up the stack holds them. Their next use reloads the committed state. */
void tt_commit_drop_discarded(tt_registry *reg)
{
    while (reg->discarded) {
        tt_session *s = reg->discarded;
        reg->discarded = s->next_dirty;
        s->next_dirty = NULL;
        if (s->cursors && reg->hooks.discard) /* attached since: detach them too */
            reg->hooks.discard(s, s->discard_err, reg->hooks.ud);
        tt_registry_session_drop(reg, s);
    }
}

void tt_commit_on_check(uv_check_t *h)
{
    tt_registry *reg = h->data;
    tt_registry_flush(reg);
    tt_commit_drop_discarded(reg);
}

void tt_commit_on_idle(uv_idle_t *h)
{
    (void)h; /* its only job is to keep uv_run from blocking in poll */
}

/* Replicated mode: the replica's reports. */

void tt_registry_durable(const char *sid, uint64_t head, uint64_t epoch, void *ud)
{
    tt_registry *reg = ud;
    tt_session *s = tt_map_get(&reg->sessions, sid);
    if (!s || s->discard_err)
        return;
    s->epoch = epoch;
    make_durable(reg, s, head);
    if (!s->in_deliver_list) {
        s->in_deliver_list = 1;
        s->next_deliver = reg->deliver;
        reg->deliver = s;
    }
}

void tt_registry_passes_done(uint64_t pass, void *ud)
{
    tt_registry *reg = ud;
    reg->done_pass = pass;
    if (reg->hooks.committed)
        reg->hooks.committed(pass, reg->hooks.ud);
    while (reg->deliver) {
        tt_session *s = reg->deliver;
        reg->deliver = s->next_deliver;
        s->next_deliver = NULL;
        s->in_deliver_list = 0;
        if (!s->discard_err)
            deliver_session(reg, s);
    }
    if (reg->dirty)
        (void)uv_idle_start(&reg->commit_idle, tt_commit_on_idle);
}

/* s belongs to another node now: out of the dirty list, its clients told,
 * dropped at the end of the pass (its LMDB copy is replaced on the next
 * acquire). */
void tt_commit_session_moved(tt_registry *reg, tt_session *s)
{
    if (s->discard_err)
        return;
    for (tt_session **pp = &reg->dirty; *pp; pp = &(*pp)->next_dirty) {
        if (*pp == s) {
            *pp = s->next_dirty;
            break;
        }
    }
    for (tt_session **pp = &reg->deliver; *pp; pp = &(*pp)->next_deliver) {
        if (*pp == s) {
            *pp = s->next_deliver;
            break;
        }
    }
    s->in_dirty_list = s->in_deliver_list = 0;
    s->discard_err = TT_EFULL;
    s->next_dirty = reg->discarded;
    reg->discarded = s;
    if (reg->hooks.moved)
        reg->hooks.moved(s, reg->hooks.ud);
    else if (reg->hooks.discard)
        reg->hooks.discard(s, TT_EFULL, reg->hooks.ud);
    (void)uv_idle_start(&reg->commit_idle, tt_commit_on_idle); /* so the pass ends and drops it */
}

void tt_registry_fenced(const char *sid, void *ud)
{
    tt_registry *reg = ud;
    tt_session *s = tt_map_get(&reg->sessions, sid);
    if (s)
        tt_commit_session_moved(reg, s);
}
