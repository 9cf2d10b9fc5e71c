/* The fixture and the helpers the store tests share (see store_fixture.h). */
#define _GNU_SOURCE
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/errors.h"
#include "state/store.h"
#include "store_fixture.h"

/* ---- fixture ---- */

int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tt_store_test_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/db", f->dir);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(p);
}

int teardown(void **state)
{
    fx *f = *state;
    tt_store_close(f->st);
    int rc = nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

int open_with(fx *f, size_t map, size_t max, tt_sync_policy sync)
{
    tt_store_options o = {.path = f->path, .map_size = map, .map_size_max = max, .sync = sync};
    return tt_store_open(&o, &f->st);
}

void reopen(fx *f)
{
    tt_store_close(f->st);
    f->st = NULL;
    assert_int_equal(open_with(f, 0, 0, TT_SYNC_COMMIT), 0);
}

/* ---- writing ---- */

/* The text of event seq of sid, padded with pad letters. */
size_t ev_text(char *buf, size_t cap, const char *sid, uint64_t seq, size_t pad)
{
    int n = snprintf(buf, cap, "{\"sid\":\"%s\",\"seq\":%" PRIu64 ",\"pad\":\"", sid, seq);
    size_t len = (size_t)n;
    for (size_t i = 0; i < pad && len + 3 < cap; i++)
        buf[len++] = (char)('a' + (seq + i) % 26);
    buf[len++] = '"';
    buf[len++] = '}';
    buf[len] = '\0';
    return len;
}

int fill_events(tt_store_txn *txn, void *arg)
{
    ev_batch *b = arg;
    char buf[4096];
    b->calls++;
    for (uint64_t q = b->first; q <= b->last; q++) {
        size_t len = ev_text(buf, sizeof buf, b->sid, q, b->pad);
        int rc = tt_store_put_event(txn, b->sid, q, buf, len);
        if (rc && !b->ignore_errors)
            return rc;
        if (q == UINT64_MAX)
            break;
    }
    return 0;
}

int put_events(tt_store *st, const char *sid, uint64_t first, uint64_t last, size_t pad)
{
    ev_batch b = {sid, first, last, pad, 0, 0};
    return tt_store_write(st, fill_events, &b);
}

int fill_ops(tt_store_txn *txn, void *arg)
{
    const ops *o = arg;
    for (size_t i = 0; i < o->n; i++) {
        const op *p = &o->v[i];
        size_t len = p->text ? strlen(p->text) : 0;
        int rc = 0;
        switch (p->kind) {
        case OP_EVENT:
            rc = tt_store_put_event(txn, p->sid, p->n, p->text, len);
            break;
        case OP_SESSION:
            rc = tt_store_put_session(txn, p->sid, p->user, p->text, len);
            break;
        case OP_TRIM:
            rc = tt_store_trim_events(txn, p->sid, p->n);
            break;
        case OP_ACTIVE:
            rc = tt_store_set_active(txn, p->sid, (int)p->n);
            break;
        case OP_META:
            rc = tt_store_put_meta(txn, p->sid, p->text, len);
            break;
        case OP_FAIL:
            rc = (int)(int64_t)p->n;
            break;
        case OP_ENTRY:
            rc = tt_store_put_transcript(txn, p->sid, p->n, p->text, len);
            break;
        case OP_TRIM_ENTRIES:
            rc = tt_store_trim_transcript(txn, p->sid, p->n);
            break;
        default:
            rc = TT_EINTERNAL;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- reading ---- */

int on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    seen *s = arg;
    char buf[4096];
    size_t want = ev_text(buf, sizeof buf, s->sid, seq, s->pad);
    if (len != want || memcmp(json, buf, len) != 0 || (s->expect && seq != s->expect))
        s->bad++;
    if (s->n++ == 0)
        s->first = seq;
    s->last = seq;
    s->expect = seq + 1;
    return s->stop_at && seq == s->stop_at ? s->stop_rc : 0;
}

seen read_all(tt_store *st, const char *sid, uint64_t after, size_t max, size_t pad)
{
    seen s = {.sid = sid, .pad = pad}; /* order is checked from the first event on */
    assert_int_equal(tt_store_read_events(st, sid, after, max, on_event, &s), 0);
    assert_int_equal(s.bad, 0);
    return s;
}

int on_session(const char *sid, const char *json, size_t len, void *arg)
{
    names *nm = arg;
    size_t used = strlen(nm->buf);
    if (json)
        snprintf(nm->buf + used, sizeof nm->buf - used, "%s=%.*s;", sid, (int)len, json);
    else
        snprintf(nm->buf + used, sizeof nm->buf - used, "%s;", sid);
    nm->null_json += !json && len == 0;
    nm->calls++;
    return nm->stop_after && nm->calls == nm->stop_after ? 99 : 0;
}

uint64_t last_seq(tt_store *st, const char *sid)
{
    uint64_t q = 12345;
    assert_int_equal(tt_store_last_seq(st, sid, &q), 0);
    return q;
}
