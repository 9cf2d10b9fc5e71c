/* Cursors: one socket's position in one session's log (see session.h).
 * Split from session.c, whose ring they read. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/registry.h"
#include "state/session.h"

/* A cursor hands out, in order: a snapshot when the socket could not be
 * recovered, then every committed event from `next` on. Recent events come
 * from the session's ring; older ones are read from the store in batches of
 * REPLAY_BATCH, so a long replay holds at most one batch in memory. */

#define REPLAY_BATCH 256

static void replay_clear(tt_cursor *c)
{
    for (size_t i = 0; i < c->replay_n; i++)
        tt_frame_release(&c->replay[i]);
    free(c->replay);
    c->replay = NULL;
    c->replay_n = c->replay_pos = 0;
}

/* Jump to the committed head, starting with a snapshot of the current state. */
static int start_with_snapshot(tt_cursor *c)
{
    tt_session *s = c->session;
    replay_clear(c);
    tt_frame_release(&c->snapshot);
    json_t *snap = tt_session_snapshot(s);
    if (!snap)
        return TT_ENOMEM; /* or a released transcript not read back */
    int rc = tt_event_encode("snapshot", s->id, s->committed, tt_wall_ms(), snap,
                             tt_registry_options_get(s->reg)->headroom, &c->snapshot);
    c->next = s->committed + 1;
    tt_session_rest_release(s); /* at rest, the transcript the snapshot read goes again */
    return rc;
}

/* A cursor may start right after `after`: the events from there on are in
 * the log (committed, or to be committed: handed out once they are), not
 * too many of them. */
static int resumable(const tt_session *s, uint64_t after)
{
    const tt_registry_options *opt = tt_registry_options_get(s->reg);
    return after <= s->committed && after + 1 >= s->first_seq &&
           (opt->max_lag_events == 0 || s->committed - after <= opt->max_lag_events);
}

int tt_cursor_attach(tt_session *s, void *owner, uint64_t after, int *recovered, tt_cursor **out)
{
    /* A snapshot must describe committed state only, and the head the caller
     * reports must be committed: commit first. Except for a session never
     * committed yet (just created: its opener attaches after 0 and is
     * answered once the session is committed): it joins the pass's group
     * commit rather than forcing a commit of its own; if that commit fails,
     * the session is discarded and no seq of it was durable anywhere. */
    if (s->committed < s->head && !(s->committed == 0 && resumable(s, after))) {
        int rc = tt_registry_flush(s->reg);
        if (s->discard_err)
            return s->discard_err; /* s itself could not be committed */
        if (s->committed < s->head && (rc || !tt_registry_replicated(s->reg)))
            return rc ? rc : TT_EINTERNAL;
    }
    tt_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return TT_ENOMEM;
    c->session = s;
    c->owner = owner;
    c->next = after + 1;
    int ok = resumable(s, after);
    if (!ok && s->committed < s->head) {
        c->snapshot_wanted = 1; /* replicated: the snapshot once the database has it all */
        c->next = s->committed + 1;
    } else if (!ok && start_with_snapshot(c) != 0) {
        free(c);
        return TT_ENOMEM;
    }
    c->s_next = s->cursors;
    if (s->cursors)
        s->cursors->s_prev = c;
    s->cursors = c;
    *recovered = ok;
    *out = c;
    return 0;
}

void tt_cursor_detach(tt_cursor *c)
{
    if (!c)
        return;
    tt_session *s = c->session;
    if (c->s_prev)
        c->s_prev->s_next = c->s_next;
    else
        s->cursors = c->s_next;
    if (c->s_next)
        c->s_next->s_prev = c->s_prev;
    replay_clear(c);
    tt_frame_release(&c->snapshot);
    free(c);
    tt_session_ring_release_idle(s);
}

uint64_t tt_cursor_lag(const tt_cursor *c)
{
    uint64_t committed = c->session->committed;
    return c->next > committed ? 0 : committed + 1 - c->next;
}

typedef struct replay_ctx {
    tt_cursor *c;
    uint64_t expect;
    size_t headroom;
} replay_ctx;

static int replay_one(uint64_t seq, const char *json, size_t len, void *arg)
{
    replay_ctx *rc = arg;
    if (seq != rc->expect)
        return TT_ENOTFOUND; /* a hole: the events were trimmed meanwhile */
    tt_cursor *c = rc->c;
    if (tt_frame_from_text(json, len, rc->headroom, &c->replay[c->replay_n]) != 0)
        return TT_ENOMEM;
    c->replay_n++;
    rc->expect++;
    return 0;
}

static int replay_load(tt_cursor *c)
{
    tt_session *s = c->session;
    replay_clear(c);
    /* Never read past what the ring holds: those come from memory. */
    uint64_t upto = s->ring_first - 1;
    size_t want = REPLAY_BATCH;
    if (upto - c->next + 1 < want)
        want = (size_t)(upto - c->next + 1);
    c->replay = calloc(want, sizeof *c->replay);
    if (!c->replay)
        return TT_ENOMEM;
    replay_ctx ctx = {c, c->next, tt_registry_options_get(s->reg)->headroom};
    int rc =
        tt_store_read_events(tt_registry_store(s->reg), s->id, c->next - 1, want, replay_one, &ctx);
    if (rc == 0 && c->replay_n == 0)
        rc = TT_ENOTFOUND;
    return rc;
}

static const tt_frame *peek_raw(tt_cursor *c, int *err)
{
    tt_session *s = c->session;
    *err = 0;
    if (c->snapshot.buf)
        return &c->snapshot;
    if (c->snapshot_wanted) {
        if (s->committed < s->head)
            return NULL;
        c->snapshot_wanted = 0;
        *err = start_with_snapshot(c);
        return *err ? NULL : &c->snapshot;
    }
    if (c->next > s->committed)
        return NULL;
    if (c->next < s->first_seq) {
        /* Retention trimmed what this cursor still had to send. A snapshot
         * must describe committed state only: wait for the next commit. */
        if (s->committed < s->head)
            return NULL;
        *err = start_with_snapshot(c);
        return *err ? NULL : &c->snapshot;
    }
    if (c->next >= s->ring_first)
        return &s->ring[c->next % s->ring_cap];
    if (c->replay_pos >= c->replay_n) {
        int rc = replay_load(c);
        if (rc == TT_ENOTFOUND && s->committed < s->head)
            return NULL; /* as above: a snapshot after the next commit */
        if (rc == TT_ENOTFOUND) {
            *err = start_with_snapshot(c);
            return *err ? NULL : &c->snapshot;
        }
        if (rc) {
            *err = rc;
            return NULL;
        }
    }
    return &c->replay[c->replay_pos];
}

void tt_cursor_compact(tt_cursor *c)
{
    const char *mid = json_string_value(json_object_get(c->session->streaming, "message_id"));
    c->compact_until = c->session->committed;
    snprintf(c->compact_keep, sizeof c->compact_keep, "%s", mid ? mid : "");
}

/* A delta of a message other than compact_keep (events start with type,
 * session, seq and ts, then message_id: PROTOCOL.md section 1). */
static int compacted_away(const tt_cursor *c, const tt_frame *f)
{
    static const char delta[] = "{\"type\":\"delta\",";
    static const char key[] = "\"message_id\":\"";
    const char *text = tt_frame_text(f);
    if (f->len < sizeof delta || memcmp(text, delta, sizeof delta - 1) != 0)
        return 0;
    const char *id = NULL;
    for (size_t i = sizeof delta - 1; !id && i + sizeof key - 1 <= f->len; i++) {
        if (memcmp(text + i, key, sizeof key - 1) == 0)
            id = text + i + sizeof key - 1;
    }
    if (!id)
        return 0;
    size_t keep = strlen(c->compact_keep);
    return !(keep && (size_t)(text + f->len - id) > keep &&
             memcmp(id, c->compact_keep, keep) == 0 && id[keep] == '"');
}

const tt_frame *tt_cursor_peek(tt_cursor *c, int *err)
{
    for (;;) {
        const tt_frame *f = peek_raw(c, err);
        if (!f || c->snapshot.buf || c->next > c->compact_until || !compacted_away(c, f))
            return f;
        tt_cursor_advance(c); /* a delta of a message finished before the attach */
    }
}

void tt_cursor_advance(tt_cursor *c)
{
    if (c->snapshot.buf) {
        tt_frame_release(&c->snapshot);
        return;
    }
    assert(c->next <= c->session->committed);
    if (c->next < c->session->ring_first && c->replay_pos < c->replay_n) {
        tt_frame_release(&c->replay[c->replay_pos]);
        c->replay_pos++;
    }
    c->next++;
    if (c->next > c->session->committed)
        tt_session_ring_release_idle(c->session);
}
