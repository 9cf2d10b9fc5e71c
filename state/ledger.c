/* The cost ledger: queued rows, batched writes, day sums and grouped
 * queries (see ledger.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/jsonw.h"
#include "protocol/utf8.h"
#include "state/ledger.h"

#define DIMS 6 /* tenant, user, key, agent, feature, model */
#define SEP '\x1f'

struct tt_ledger {
    tt_store *st;
    tt_ledger_row *queue; /* TT_LEDGER_QUEUE_MAX rows, allocated once */
    size_t n;
    /* The last key written (day, ts_ms, seq): keys only grow (ledger.h).
     * fill computes the batch's into next_*, kept once it committed. */
    int64_t last_day, last_ts, next_day, next_ts;
    uint32_t last_seq, next_seq;
    int have_last, next_have;
    uint64_t dropped, written;
};

static const char *const group_names[TT_LEDGER_BY__LAST] = {
    [TT_LEDGER_BY_TENANT] = "tenant",   [TT_LEDGER_BY_USER] = "user",
    [TT_LEDGER_BY_KEY] = "key",         [TT_LEDGER_BY_AGENT] = "agent",
    [TT_LEDGER_BY_FEATURE] = "feature", [TT_LEDGER_BY_MODEL] = "model",
    [TT_LEDGER_BY_DAY] = "day"};

int tt_ledger_group_parse(const char *s, tt_ledger_group *out)
{
    for (int g = 0; s && g < TT_LEDGER_BY__LAST; g++)
        if (strcmp(s, group_names[g]) == 0) {
            *out = (tt_ledger_group)g;
            return 0;
        }
    return TT_EINVAL;
}

const char *tt_ledger_group_name(tt_ledger_group g)
{
    return g < TT_LEDGER_BY__LAST ? group_names[g] : "?";
}

/* ---- days (proleptic Gregorian, H. Hinnant's civil-from-days) ------------ */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void tt_ledger_day_format(int64_t z, char *out, size_t n)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    snprintf(out, n, "%04lld-%02u-%02u", (long long)(y + (m <= 2)), m, d);
}

int tt_ledger_day_parse(const char *s, int64_t *day)
{
    unsigned y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        sscanf(s, "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3 || y < 1970 || y > 9999 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return TT_EINVAL;
    int64_t z = days_from_civil(y, m, d);
    char back[16];
    tt_ledger_day_format(z, back, sizeof back);
    if (strcmp(back, s) != 0) /* 2026-02-30 and the like */
        return TT_EINVAL;
    *day = z;
    return 0;
}

int64_t tt_ledger_day_of_ms(int64_t ts_ms)
{
    return ts_ms >= 0 ? ts_ms / 86400000 : 0;
}

/* ---- queue and flush ------------------------------------------------------ */

int tt_ledger_new(tt_store *st, tt_ledger **out)
{
    tt_ledger *l = calloc(1, sizeof *l);
    if (l)
        l->queue = malloc(TT_LEDGER_QUEUE_MAX * sizeof *l->queue);
    if (!l || !l->queue) {
        free(l);
        return TT_ENOMEM;
    }
    l->st = st;
    unsigned char k[TT_LEDGER_KEY_LEN];
    int found = 0;
    int rc = tt_store_usage_last_key(st, k, &found);
    if (rc) {
        free(l->queue);
        free(l);
        return rc;
    }
    if (found) {
        uint64_t d = 0, t = 0;
        for (int i = 0; i < 8; i++) {
            d = (d << 8) | k[i];
            t = (t << 8) | k[8 + i];
        }
        l->last_day = (int64_t)d;
        l->last_ts = (int64_t)t;
        l->last_seq = (uint32_t)k[16] << 24 | (uint32_t)k[17] << 16 | (uint32_t)k[18] << 8 | k[19];
        l->have_last = 1;
    }
    *out = l;
    return 0;
}

uint64_t tt_ledger_written(const tt_ledger *l)
{
    return l ? l->written : 0;
}

/* The key of the next row of day and ts_ms: never before the last one. */
static void next_key(tt_ledger *l, int64_t day, int64_t ts, int64_t *kd, int64_t *kt, uint32_t *ks)
{
    if (l->next_have && (day < l->next_day || (day == l->next_day && ts <= l->next_ts))) {
        day = l->next_day; /* the clock stepped back, or the same millisecond */
        ts = l->next_ts;
        *ks = l->next_seq + 1;
    } else {
        *ks = 0;
    }
    *kd = l->next_day = day;
    *kt = l->next_ts = ts;
    l->next_seq = *ks;
    l->next_have = 1;
}

void tt_ledger_free(tt_ledger *l)
{
    if (!l)
        return;
    (void)tt_ledger_flush(l);
    free(l->queue);
    free(l);
}

int tt_ledger_add(tt_ledger *l, const tt_ledger_row *row)
{
    if (l->n == TT_LEDGER_QUEUE_MAX) { /* the store refuses: the oldest goes */
        memmove(l->queue, l->queue + 1, (l->n - 1) * sizeof *l->queue);
        l->n--;
        l->dropped++;
    }
    l->queue[l->n++] = *row;
    return l->n == TT_LEDGER_QUEUE_MAX;
}

size_t tt_ledger_queued(const tt_ledger *l)
{
    return l ? l->n : 0;
}

uint64_t tt_ledger_dropped(const tt_ledger *l)
{
    return l ? l->dropped : 0;
}

/* One field of a day-sum key: cut to TT_LEDGER_DIM_MAX bytes (on a UTF-8
 * boundary), with the separator and control bytes replaced. */
static size_t put_dim(char *out, const char *s)
{
    size_t n = tt_utf8_cut(s, TT_LEDGER_DIM_MAX);
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    return n;
}

static size_t row_dims(const tt_ledger_row *r, char *out)
{
    const char *f[DIMS] = {r->tenant, r->user, r->key_id, r->agent, r->feature, r->model};
    size_t n = 0;
    for (int i = 0; i < DIMS; i++) {
        if (i)
            out[n++] = SEP;
        n += put_dim(out + n, f[i]);
    }
    return n;
}

#define ROW_JSON_MAX (16 * 1024) /* ten fields of 128 bytes, each escaped at worst 6x */

/* "key": with its comma (none before the first). */
static int key(tt_buf *b, const char *k)
{
    int rc = b->len && tt_buf_data(b)[b->len - 1] != '{' ? tt_buf_append(b, ",", 1) : 0;
    rc = rc ? rc : tt_jw_str(b, k);
    return rc ? rc : tt_buf_append(b, ":", 1);
}

static int str_field(tt_buf *b, const char *k, const char *v)
{
    int rc = key(b, k);
    return rc ? rc : tt_jw_str(b, v);
}

static int int_field(tt_buf *b, const char *k, int64_t v)
{
    int rc = key(b, k);
    return rc ? rc : tt_jw_i64(b, v);
}

int tt_ledger_row_json(const tt_ledger_row *r, tt_buf *out)
{
    size_t before = out->len;
    const char *names[] = {"tenant",  "user",  "key_id", "agent",  "session",
                           "feature", "model", "route",  "target", "outcome"};
    const char *values[] = {r->tenant,  r->user,  r->key_id, r->agent,  r->session,
                            r->feature, r->model, r->route,  r->target, r->outcome};
    int rc = tt_buf_append(out, "{", 1);
    rc = rc ? rc : int_field(out, "ts_ms", r->ts_ms);
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !rc; i++)
        rc = str_field(out, names[i], values[i]);
    rc = rc ? rc : int_field(out, "prompt_tokens", r->prompt_tokens);
    rc = rc ? rc : int_field(out, "completion_tokens", r->completion_tokens);
    rc = rc ? rc : int_field(out, "latency_ms", r->latency_ms);
    rc = rc ? rc : key(out, "cost_usd");
    rc = rc ? rc : tt_jw_real(out, r->cost_usd); /* TT_EINVAL when not finite */
    rc = rc ? rc : key(out, "cache_hit");
    rc = rc ? rc : r->cache_hit ? tt_buf_append(out, "true}", 5) : tt_buf_append(out, "false}", 6);
    if (rc)
        tt_buf_truncate(out, before);
    return rc;
}

static int fill(tt_store_txn *txn, void *ctx)
{
    tt_ledger *l = ctx;
    char dims[DIMS * (TT_LEDGER_DIM_MAX + 1)];
    l->next_day = l->last_day; /* fill may run again (the map grew): start over */
    l->next_ts = l->last_ts;
    l->next_seq = l->last_seq;
    l->next_have = l->have_last;
    tt_buf row;
    tt_buf_init(&row, ROW_JSON_MAX);
    for (size_t i = 0; i < l->n; i++) {
        const tt_ledger_row *r = &l->queue[i];
        int64_t day = tt_ledger_day_of_ms(r->ts_ms);
        tt_buf_reset(&row);
        if (tt_ledger_row_json(r, &row) != 0) { /* not UTF-8, a cost not finite: as jansson */
            tt_buf_free(&row);
            return TT_ENOMEM;
        }
        int64_t kd, kt;
        uint32_t ks;
        next_key(l, day, r->ts_ms, &kd, &kt, &ks);
        int rc = tt_store_put_usage(txn, kd, kt, ks, tt_buf_data(&row), row.len);
        tt_ledger_sums add = {.calls = 1,
                              .errors = strcmp(r->outcome, "ok") != 0,
                              .cache_hits = r->cache_hit != 0,
                              .prompt_tokens = r->prompt_tokens,
                              .completion_tokens = r->completion_tokens,
                              .latency_ms = r->latency_ms,
                              .cost_usd = r->cost_usd};
        if (rc == 0)
            rc = tt_store_add_usage_day(txn, day, dims, row_dims(r, dims), &add);
        if (rc) {
            tt_buf_free(&row);
            return rc;
        }
    }
    tt_buf_free(&row);
    return 0;
}

int tt_ledger_flush(tt_ledger *l)
{
    if (!l || l->n == 0)
        return 0;
    int rc = tt_store_write(l->st, fill, l);
    if (rc == 0) {
        l->last_day = l->next_day;
        l->last_ts = l->next_ts;
        l->last_seq = l->next_seq;
        l->have_last = l->next_have;
        l->written += l->n;
        l->n = 0;
    }
    return rc;
}

/* ---- queries -------------------------------------------------------------- */

typedef struct group_acc {
    char key[DIMS * (TT_LEDGER_DIM_MAX + 1) + 16];
    json_t *fields; /* the group's own fields ({"feature": "x"}) */
    tt_ledger_sums sum;
} group_acc;

typedef struct query_ctx {
    const char *tenant;
    tt_ledger_group g;
    json_t *index; /* key -> integer index into groups */
    group_acc *groups;
    size_t n, cap;
    int truncated;
    tt_ledger_sums total;
} query_ctx;

static void sums_add(tt_ledger_sums *to, const tt_ledger_sums *s)
{
    to->calls += s->calls;
    to->errors += s->errors;
    to->cache_hits += s->cache_hits;
    to->prompt_tokens += s->prompt_tokens;
    to->completion_tokens += s->completion_tokens;
    to->latency_ms += s->latency_ms;
    to->cost_usd += s->cost_usd;
}

/* Split dims into its DIMS fields (copies, NUL-terminated). */
static int split_dims(const char *dims, size_t dlen, char f[DIMS][TT_LEDGER_DIM_MAX + 1])
{
    size_t start = 0;
    int i = 0;
    for (size_t p = 0; p <= dlen && i < DIMS; p++) {
        if (p == dlen || dims[p] == SEP) {
            size_t n = p - start;
            if (n > TT_LEDGER_DIM_MAX)
                return TT_EINVAL;
            memcpy(f[i], dims + start, n);
            f[i++][n] = '\0';
            start = p + 1;
        }
    }
    return i == DIMS ? 0 : TT_EINVAL;
}

static json_t *group_fields(const query_ctx *q, int64_t day, char f[DIMS][TT_LEDGER_DIM_MAX + 1],
                            char *key, size_t kn)
{
    char date[16];
    switch (q->g) {
    case TT_LEDGER_BY_DAY:
        tt_ledger_day_format(day, date, sizeof date);
        snprintf(key, kn, "%s", date);
        return json_pack("{s:s}", "day", date);
    case TT_LEDGER_BY_USER:
        snprintf(key, kn, "%s%c%s", f[0], SEP, f[1]);
        return json_pack("{s:s, s:s}", "tenant", f[0], "user", f[1]);
    default: {
        static const int col[TT_LEDGER_BY__LAST] = {[TT_LEDGER_BY_TENANT] = 0,
                                                    [TT_LEDGER_BY_KEY] = 2,
                                                    [TT_LEDGER_BY_AGENT] = 3,
                                                    [TT_LEDGER_BY_FEATURE] = 4,
                                                    [TT_LEDGER_BY_MODEL] = 5};
        snprintf(key, kn, "%s", f[col[q->g]]);
        return json_pack("{s:s}", tt_ledger_group_name(q->g), f[col[q->g]]);
    }
    }
}

static int on_day(int64_t day, const char *dims, size_t dlen, const tt_ledger_sums *s, void *ctx)
{
    query_ctx *q = ctx;
    char f[DIMS][TT_LEDGER_DIM_MAX + 1];
    if (split_dims(dims, dlen, f) != 0)
        return 0; /* not a key this build wrote: skipped */
    if (q->tenant && strcmp(f[0], q->tenant) != 0)
        return 0;
    group_acc probe = {0};
    json_t *fields = group_fields(q, day, f, probe.key, sizeof probe.key);
    if (!fields)
        return TT_ENOMEM;
    json_t *at = json_object_get(q->index, probe.key);
    if (!at && q->n == TT_LEDGER_GROUPS_MAX) {
        q->truncated = 1;
        json_decref(fields);
        sums_add(&q->total, s);
        return 0;
    }
    if (!at) {
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 64;
            group_acc *g = realloc(q->groups, cap * sizeof *g);
            if (!g) {
                json_decref(fields);
                return TT_ENOMEM;
            }
            q->groups = g;
            q->cap = cap;
        }
        probe.fields = fields;
        q->groups[q->n] = probe;
        json_object_set_new(q->index, probe.key, json_integer((json_int_t)q->n));
        at = json_object_get(q->index, probe.key);
        q->n++;
    } else {
        json_decref(fields);
    }
    sums_add(&q->groups[json_integer_value(at)].sum, s);
    sums_add(&q->total, s);
    return 0;
}

static json_t *sums_json(const tt_ledger_sums *s, json_t *into)
{
    json_t *o = into ? into : json_object();
    json_object_set_new(o, "calls", json_integer((json_int_t)s->calls));
    json_object_set_new(o, "errors", json_integer((json_int_t)s->errors));
    json_object_set_new(o, "cache_hits", json_integer((json_int_t)s->cache_hits));
    json_object_set_new(o, "prompt_tokens", json_integer((json_int_t)s->prompt_tokens));
    json_object_set_new(o, "completion_tokens", json_integer((json_int_t)s->completion_tokens));
    json_object_set_new(o, "cost_usd", json_real(s->cost_usd));
    json_object_set_new(
        o, "latency_ms_avg",
        json_integer(s->calls ? (json_int_t)(s->latency_ms / (int64_t)s->calls) : 0));
    return o;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const group_acc *)a)->key, ((const group_acc *)b)->key);
}

int tt_ledger_query(tt_ledger *l, int64_t from, int64_t to, const char *tenant, tt_ledger_group g,
                    json_t **out)
{
    if (from < 0 || to < from || to - from >= TT_LEDGER_RANGE_DAYS_MAX || g >= TT_LEDGER_BY__LAST)
        return TT_EINVAL;
    (void)tt_ledger_flush(l); /* a failure leaves them queued: answered without them */
    query_ctx q = {.tenant = tenant, .g = g, .index = json_object()};
    int rc = q.index ? tt_store_scan_usage_days(l->st, from, to, on_day, &q) : TT_ENOMEM;
    json_t *groups = rc == 0 ? json_array() : NULL;
    if (rc == 0 && !groups)
        rc = TT_ENOMEM;
    if (rc == 0 && q.n > 1)
        qsort(q.groups, q.n, sizeof *q.groups, by_key);
    for (size_t i = 0; i < q.n; i++) {
        if (groups)
            json_array_append_new(groups, sums_json(&q.groups[i].sum, q.groups[i].fields));
        else
            json_decref(q.groups[i].fields);
    }
    free(q.groups);
    json_decref(q.index);
    if (rc)
        return rc;
    *out = json_pack("{s:o, s:o, s:b}", "groups", groups, "total", sums_json(&q.total, NULL),
                     "truncated", q.truncated);
    return *out ? 0 : TT_ENOMEM;
}
