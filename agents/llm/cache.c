/* The exact response cache (see cache.h): the canonical request and its
 * key, the record of a call's answer, its encoding, and its replay. */
#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/llm/adapter.h"
#include "agents/llm/cache.h"
#include "agents/llm/semcache.h"
#include "protocol/buf.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

#define MAGIC "TTC1"
#define FIELD_MAX 1024 /* bytes of a stored model, target or finish reason */

struct tt_llm_cache {
    tt_llm_cache_store store;
    int bound;
    tt_route_cache settings;
    tt_llm_log_fn log;
    void *log_ud;
    int log_ok;
    tt_llm_usage_fn usage;
    void *usage_ud;
    tt_llm_cache_stats stats;
    size_t n_routes;
    char (*aliases)[TT_ROUTE_ALIAS_MAX + 1];
    uint64_t (*route_counts)[2]; /* hits, misses */
    tt_llm_semcache *sem;        /* the semantic cache (semcache.h), or NULL */
    tt_route_semcache sem_set;   /* the routes file's "semantic_cache" */
};

typedef struct reader {
    const unsigned char *p, *end;
    int bad;
} reader;

struct tt_llm_cache_call {
    tt_llm_cache *cache;
    int exact;                 /* the exact cache applies (else only the semantic one) */
    tt_llm_semcache_call *sem; /* the semantic cache's part, or NULL */
    int looked;                /* the lookups ran (once a call) */
    int sem_waiting;           /* a semantic lookup is in flight: resume(call) follows */
    int sem_hit;               /* the answer being replayed is the semantic cache's */
    int ready;                 /* a semantic hit is read: the next replay passes it on */
    void (*resume)(tt_llm_call *);
    size_t route_index;
    char route[TT_ROUTE_ALIAS_MAX + 1];
    char model[TT_ROUTE_MODEL_MAX + 1];
    tt_llm_attribution attr;
    int64_t ttl_ms;
    int keyed;
    unsigned char key[TT_LLM_CACHE_KEY_LEN];
    tt_buf rec;   /* the answering attempt's events, encoded */
    int attempt;  /* the attempt rec holds */
    int rec_full; /* an event did not fit: nothing is stored */
    /* a hit being replayed: the answer, where it is at, whom it goes to */
    char *data;
    reader rd;
    tt_llm_result res;
    tt_llm_result *out;
    tt_llm_call *call;
    void (*on_event)(tt_llm_call *, const tt_llm_event *, void *);
    void *ud;
    int64_t start_ms;
    int replaying; /* events are being passed on (a cancel from a hook only marks it) */
    int paused;    /* the caller paused the replay (tt_llm_cache_pause) */
    int cancelled;
};

/* ---- the service's cache ---------------------------------------------------- */

int tt_llm_cache_new(const tt_llm_cache_store *store, tt_llm_cache **out)
{
    tt_llm_cache *c = calloc(1, sizeof *c);
    if (!c)
        return TT_ENOMEM;
    c->store = *store;
    *out = c;
    return 0;
}

void tt_llm_cache_free(tt_llm_cache *c)
{
    if (!c)
        return;
    free(c->aliases);
    free(c->route_counts);
    free(c);
}

void tt_llm_cache_bind(tt_llm_cache *c, const tt_llm_service_options *opt, const tt_routes *routes)
{
    if (!c)
        return;
    c->log = opt->log;
    c->log_ud = opt->log_ud;
    c->log_ok = opt->log_ok;
    c->usage = opt->usage;
    c->usage_ud = opt->usage_ud;
    c->settings = routes->cache;
    c->sem_set = routes->semcache;
    free(c->aliases);
    free(c->route_counts);
    c->n_routes = 0;
    c->aliases = calloc(routes->n_routes + 1, sizeof *c->aliases);
    c->route_counts = calloc(routes->n_routes + 1, sizeof *c->route_counts);
    if (c->aliases && c->route_counts)
        c->n_routes = routes->n_routes;
    for (size_t i = 0; i < c->n_routes; i++)
        snprintf(c->aliases[i], sizeof c->aliases[i], "%s", routes->routes[i].alias);
    c->bound = 1;
}

void tt_llm_cache_set_semantic(tt_llm_cache *c, tt_llm_semcache *sem)
{
    if (c)
        c->sem = sem;
}

const tt_route_semcache *tt_llm_cache_semantic_settings(const tt_llm_cache *c)
{
    return c && c->bound && c->sem_set.configured ? &c->sem_set : NULL;
}

const tt_route_cache *tt_llm_cache_settings(const tt_llm_cache *c)
{
    return c && c->bound ? &c->settings : NULL;
}

void tt_llm_cache_stats_get(const tt_llm_cache *c, tt_llm_cache_stats *out)
{
    *out = c ? c->stats : (tt_llm_cache_stats){0};
}

size_t tt_llm_cache_n_routes(const tt_llm_cache *c)
{
    return c ? c->n_routes : 0;
}

const char *tt_llm_cache_route_alias(const tt_llm_cache *c, size_t i)
{
    return c && i < c->n_routes ? c->aliases[i] : "";
}

void tt_llm_cache_route_stats(const tt_llm_cache *c, size_t i, uint64_t *hits, uint64_t *misses)
{
    int ok = c && i < c->n_routes;
    *hits = ok ? c->route_counts[i][0] : 0;
    *misses = ok ? c->route_counts[i][1] : 0;
}

static void count(tt_llm_cache_call *cc, int hit)
{
    tt_llm_cache *c = cc->cache;
    if (hit)
        c->stats.hits++;
    else
        c->stats.misses++;
    if (cc->route_index < c->n_routes)
        c->route_counts[cc->route_index][hit ? 0 : 1]++;
}

static int64_t wall_ms(const tt_llm_cache *c)
{
    if (c->store.now_ms)
        return c->store.now_ms(c->store.ud);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the canonical request ----------------------------------------------------- */

/* A deep copy of v with its numbers normalised: a real with an integral
 * value (|x| < 2^53) becomes that integer, so 1.0 and 1 are one number. In
 * messages' tool calls, "arguments" text that is JSON becomes {"json": v}
 * (its key order then does not count either; a text that is not JSON stays
 * the string, which an object never equals). */
static json_t *norm(json_t *v, int args)
{
    switch (json_typeof(v)) {
    case JSON_REAL: {
        double x = json_real_value(v);
        if (x == floor(x) && fabs(x) < 9007199254740992.0)
            return json_integer((json_int_t)x);
        return json_real(x);
    }
    case JSON_OBJECT: {
        json_t *o = json_object();
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            json_t *n = NULL;
            if (args && strcmp(k, "arguments") == 0 && json_is_string(m)) {
                json_t *parsed = json_loadb(json_string_value(m), json_string_length(m),
                                            JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                n = parsed ? json_pack("{s:o}", "json", norm(parsed, 0)) : NULL;
                json_decref(parsed);
            }
            if (!n)
                n = norm(m, args);
            if (!o || !n || json_object_set_new(o, k, n) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case JSON_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < json_array_size(v); i++)
            if (json_array_append_new(a, norm(json_array_get(v, i), args)) != 0) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    default:
        return json_incref(v);
    }
}

int tt_llm_cache_canonical(const tt_call_request *r, const char *tenant, const char *route,
                           const char *model, char **out, size_t *len)
{
    json_t *temp = json_real(r->temperature);
    json_t *doc =
        json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:n}", "v", 1, "tenant",
                  tenant ? tenant : "", "route", route ? route : "", "model", model ? model : "",
                  "messages", norm(r->messages ? r->messages : json_null(), 1), "tools",
                  norm(r->tools ? r->tools : json_null(), 0), "response_format",
                  norm(r->response_schema ? r->response_schema : json_null(), 0), "temperature",
                  r->temperature < 0 ? json_null() : norm(temp, 0), "max_tokens",
                  (json_int_t)r->max_tokens, "tool_choice");
    json_decref(temp);
    char *text =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(doc);
    if (!text)
        return TT_ENOMEM;
    *out = text;
    *len = strlen(text);
    return 0;
}

int tt_llm_cache_key(const tt_call_request *r, const char *tenant, const char *route,
                     const char *model, unsigned char key[TT_LLM_CACHE_KEY_LEN])
{
    char *text;
    size_t len;
    int rc = tt_llm_cache_canonical(r, tenant, route, model, &text, &len);
    if (rc)
        return rc;
    SHA256((const unsigned char *)text, len, key);
    free(text);
    return 0;
}

/* ---- one call ---------------------------------------------------------------- */

tt_llm_cache_call *tt_llm_cache_call_new(tt_llm_cache *c, const tt_routes *routes,
                                         const tt_route *route, const char *model,
                                         const tt_llm_request *req)
{
    if (!c || !c->bound)
        return NULL;
    int exact = c->settings.enabled && route && route->cache_mode >= 0 && c->store.get &&
                (route->cache_mode == 1 || req->temperature == 0 || req->cache);
    tt_llm_semcache_call *sem = tt_llm_semcache_call_new(c->sem, route, req);
    tt_llm_cache_call *cc = exact || sem ? calloc(1, sizeof *cc) : NULL;
    if (!cc) {
        tt_llm_semcache_call_free(sem);
        return NULL;
    }
    cc->cache = c;
    cc->exact = exact;
    cc->sem = sem;
    cc->route_index = (size_t)(route - routes->routes);
    snprintf(cc->route, sizeof cc->route, "%s", route->alias);
    snprintf(cc->model, sizeof cc->model, "%s", model ? model : "");
    if (req->attr)
        cc->attr = *req->attr;
    int64_t ttl_s = route->cache_ttl_s > 0 ? route->cache_ttl_s : c->settings.ttl_s;
    cc->ttl_ms = ttl_s * 1000;
    tt_buf_init(&cc->rec, (size_t)c->settings.entry_max_bytes);
    return cc;
}

void tt_llm_cache_call_free(tt_llm_cache_call *cc)
{
    if (!cc)
        return;
    tt_buf_free(&cc->rec);
    free(cc->data);
    tt_llm_semcache_call_free(cc->sem);
    free(cc);
}

void tt_llm_cache_call_key(tt_llm_cache_call *cc, const tt_call_request *r)
{
    if (cc && !cc->keyed && cc->exact)
        cc->keyed = tt_llm_cache_key(r, cc->attr.tenant, cc->route, cc->model, cc->key) == 0;
    if (cc)
        tt_llm_semcache_call_key(cc->sem, r, cc->attr.tenant, cc->route, cc->model);
}

/* ---- the stored answer: "TTC1", then records of a kind byte and
 * length-prefixed (u32, big-endian) fields:
 *   'M' prompt tokens, completion tokens (8 bytes each), finish reason,
 *       model, target (first)
 *   'T' text
 *   'C' tool index (4 bytes), a byte of flags (1: id, 2: name), id, name,
 *       arguments ---- */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int put_bytes(tt_buf *b, const char *s, size_t n)
{
    unsigned char len[4];
    put_u32(len, (uint32_t)n);
    int rc = tt_buf_append(b, len, 4);
    return rc ? rc : tt_buf_append(b, s ? s : "", n);
}

/* s, at most max bytes of it (the size of the field it is in). */
static int put_str(tt_buf *b, const char *s, size_t max)
{
    return put_bytes(b, s, s ? strnlen(s, max < FIELD_MAX ? max : FIELD_MAX) : 0);
}

void tt_llm_cache_record(tt_llm_cache_call *cc, int attempt, const tt_llm_event *ev)
{
    if (!cc || (ev->kind != TT_LLM_EV_TEXT && ev->kind != TT_LLM_EV_TOOL_CALL))
        return;
    if (attempt != cc->attempt) { /* an attempt after one that failed: start again */
        tt_buf_reset(&cc->rec);
        cc->attempt = attempt;
        cc->rec_full = 0;
    }
    if (cc->rec_full)
        return;
    tt_buf *b = &cc->rec;
    int rc;
    if (ev->kind == TT_LLM_EV_TEXT) {
        rc = tt_buf_append(b, "T", 1);
        if (rc == 0)
            rc = put_bytes(b, ev->text, ev->text_len);
    } else {
        unsigned char head[6] = {'C'};
        put_u32(head + 1, (uint32_t)ev->tool_index);
        head[5] = (unsigned char)((ev->tool_id ? 1 : 0) | (ev->tool_name ? 2 : 0));
        rc = tt_buf_append(b, head, sizeof head);
        if (rc == 0 && ev->tool_id)
            rc = put_str(b, ev->tool_id, FIELD_MAX);
        if (rc == 0 && ev->tool_name)
            rc = put_str(b, ev->tool_name, FIELD_MAX);
        if (rc == 0)
            rc = put_bytes(b, ev->args, ev->args_len);
    }
    if (rc)
        cc->rec_full = 1;
}

void tt_llm_cache_store_result(tt_llm_cache_call *cc, const tt_llm_result *r)
{
    if (!cc || (!cc->keyed && !cc->sem) || r->cached)
        return;
    tt_llm_cache *c = cc->cache;
    tt_buf out;
    tt_buf_init(&out, (size_t)c->settings.entry_max_bytes + 4096);
    unsigned char tokens[17] = {'M'};
    for (int i = 0; i < 8; i++) {
        tokens[1 + i] = (unsigned char)((uint64_t)r->prompt_tokens >> (56 - 8 * i));
        tokens[9 + i] = (unsigned char)((uint64_t)r->completion_tokens >> (56 - 8 * i));
    }
    int rc = cc->rec_full ? TT_ETOOLARGE : tt_buf_append(&out, MAGIC, 4);
    if (rc == 0)
        rc = tt_buf_append(&out, tokens, sizeof tokens);
    if (rc == 0)
        rc = put_str(&out, r->finish_reason ? r->finish_reason : "stop", FIELD_MAX);
    if (rc == 0)
        rc = put_str(&out, r->model, sizeof r->model);
    if (rc == 0)
        rc = put_str(&out, r->target, sizeof r->target);
    if (rc == 0)
        rc = tt_buf_append(&out, tt_buf_str(&cc->rec), cc->rec.len);
    if (rc == 0)
        tt_llm_semcache_call_store(cc->sem, tt_buf_str(&out), out.len);
    if (rc == 0 && cc->keyed)
        rc = c->store.put(c->store.ud, cc->key, wall_ms(c), cc->ttl_ms, tt_buf_str(&out), out.len);
    if (cc->keyed && rc < 0)
        c->stats.not_stored++;
    else if (cc->keyed)
        c->stats.stored++;
    tt_buf_free(&out);
}

/* ---- replay ------------------------------------------------------------------ */

static const char *get_bytes(reader *rd, size_t *n)
{
    if (rd->bad || rd->end - rd->p < 4) {
        rd->bad = 1;
        return NULL;
    }
    uint32_t len = get_u32(rd->p);
    rd->p += 4;
    if ((size_t)(rd->end - rd->p) < len) {
        rd->bad = 1;
        return NULL;
    }
    const char *s = (const char *)rd->p;
    rd->p += len;
    *n = len;
    return s;
}

/* A field into buf (NUL-terminated, cut to n - 1 bytes on a UTF-8 boundary). */
static void get_field(reader *rd, char *buf, size_t n)
{
    size_t len = 0;
    const char *s = get_bytes(rd, &len);
    tt_utf8_copyn(buf, n, s ? s : "", s ? len : 0);
}

static const char *finish_static(const char *s)
{
    static const char *const known[] = {"stop", "length", "tool_calls", "content_filter"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s, known[i]) == 0)
            return known[i];
    return "stop";
}

static int64_t get_i64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Check the stored answer whole before anything is passed on: 0 and its
 * result fields, the reader at the first event; else TT_EINVAL. */
static int read_head(reader *rd, tt_llm_result *r)
{
    if (rd->end - rd->p < 4 + 17 || memcmp(rd->p, MAGIC, 4) != 0 || rd->p[4] != 'M')
        return TT_EINVAL;
    r->prompt_tokens = get_i64(rd->p + 5);
    r->completion_tokens = get_i64(rd->p + 13);
    rd->p += 4 + 17;
    char finish[32];
    get_field(rd, finish, sizeof finish);
    r->finish_reason = finish_static(finish);
    get_field(rd, r->model, sizeof r->model);
    get_field(rd, r->target, sizeof r->target);
    reader probe = *rd; /* every event well formed */
    while (!probe.bad && probe.p < probe.end) {
        unsigned char kind = *probe.p++;
        size_t n;
        if (kind == 'C' && probe.end - probe.p >= 5) {
            unsigned flags = probe.p[4];
            probe.p += 5;
            if (flags & 1)
                (void)get_bytes(&probe, &n);
            if (flags & 2)
                (void)get_bytes(&probe, &n);
        } else if (kind != 'T') {
            probe.bad = 1;
        }
        (void)get_bytes(&probe, &n);
    }
    return rd->bad || probe.bad ? TT_EINVAL : 0;
}

/* One event from rd (checked by read_head) into ev; its strings point into
 * the answer or into id and name. */
static void next_event(reader *rd, tt_llm_event *ev, char *id, char *name, size_t n)
{
    unsigned char kind = *rd->p++;
    *ev = (tt_llm_event){.kind = TT_LLM_EV_TEXT, .prompt_tokens = -1, .completion_tokens = -1};
    if (kind == 'T') {
        ev->text = get_bytes(rd, &ev->text_len);
        return;
    }
    ev->kind = TT_LLM_EV_TOOL_CALL;
    ev->tool_index = (int)get_u32(rd->p);
    unsigned flags = rd->p[4];
    rd->p += 5;
    if (flags & 1) {
        get_field(rd, id, n);
        ev->tool_id = id;
    }
    if (flags & 2) {
        get_field(rd, name, n);
        ev->tool_name = name;
    }
    ev->args = get_bytes(rd, &ev->args_len);
}

/* The hit's usage row (tokens and cost 0: nothing was spent) and log line. */
static void report_hit(tt_llm_cache_call *cc, const tt_llm_result *r, int64_t latency_ms)
{
    tt_llm_cache *c = cc->cache;
    if (c->usage) {
        tt_llm_usage u = {.attr = &cc->attr,
                          .route = cc->route,
                          .model = r->model,
                          .target = r->target,
                          .outcome = "ok",
                          .latency_ms = latency_ms,
                          .cache_hit = 1};
        c->usage(&u, c->usage_ud);
    }
    if (!c->log || !c->log_ok)
        return;
    char key[17];
    const unsigned char *k = cc->sem_hit ? tt_llm_semcache_call_id(cc->sem) : cc->key;
    for (int i = 0; i < 8; i++)
        snprintf(key + 2 * i, 3, "%02x", k[i]);
    json_t *line =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:f}", "msg", "llm call",
                  "cache_key", key, "route", cc->route, "model", r->model, "target", r->target,
                  "prompt_tokens", (json_int_t)0, "completion_tokens", (json_int_t)0, "latency_ms",
                  (json_int_t)latency_ms, "outcome", "ok", "cost_usd", 0.0);
    if (!line)
        return;
    tt_llm_attribution_log(line, &cc->attr);
    json_object_set_new(line, "cache_hit", json_true());
    json_object_set_new(line, "cache", json_string(cc->sem_hit ? "semantic" : "exact"));
    if (cc->sem_hit)
        json_object_set_new(line, "similarity",
                            json_real(round(tt_llm_semcache_call_score(cc->sem) * 1e4) / 1e4));
    c->log(line, c->log_ud);
}

/* Pass events on until the answer ends, the caller pauses or cancels:
 * 1 when the replay is over (the result is filled), 2 when paused. */
static int pump(tt_llm_cache_call *cc)
{
    char id[256], name[256];
    cc->replaying = 1;
    while (cc->rd.p < cc->rd.end && !cc->cancelled && !cc->paused) {
        tt_llm_event ev;
        next_event(&cc->rd, &ev, id, name, sizeof id);
        cc->on_event(cc->call, &ev, cc->ud);
    }
    cc->replaying = 0;
    if (cc->rd.p < cc->rd.end && !cc->cancelled)
        return 2;
    free(cc->data);
    cc->data = NULL;
    cc->res.cost_usd = 0;
    cc->res.cached = 1;
    cc->res.ttft_ms = 0;
    *cc->out = cc->res;
    if (!cc->cancelled)
        report_hit(cc, cc->out, wall_ms(cc->cache) - cc->start_ms);
    return 1;
}

/* An answer read: checked whole (0, the reader at its first event), else it
 * is freed and counted as corrupt. */
static int take(tt_llm_cache_call *cc, char *data, size_t len)
{
    cc->data = data;
    cc->rd = (reader){(const unsigned char *)data, (const unsigned char *)data + len, 0};
    cc->res = *cc->out;
    if (read_head(&cc->rd, &cc->res) == 0)
        return 0;
    free(cc->data);
    cc->data = NULL;
    cc->cache->stats.corrupt++;
    return TT_EINVAL;
}

/* The semantic lookup's end (semcache.h): its answer or NULL; the call goes
 * on through resume (which replays a hit, or sends the request). */
static void sem_done(void *ud, char *data, size_t len)
{
    tt_llm_cache_call *cc = ud;
    cc->sem_waiting = 0;
    if (data && take(cc, data, len) == 0)
        cc->ready = cc->sem_hit = 1;
    cc->resume(cc->call);
}

int tt_llm_cache_replay(tt_llm_cache_call *cc, tt_llm_call *call,
                        void (*on_event)(tt_llm_call *, const tt_llm_event *, void *), void *ud,
                        tt_llm_result *r, void (*resume)(tt_llm_call *))
{
    if (!cc || cc->sem_waiting)
        return cc ? 3 : 0;
    cc->out = r;
    cc->call = call;
    cc->on_event = on_event;
    cc->ud = ud;
    if (cc->ready) {
        cc->ready = 0;
        return pump(cc);
    }
    if (cc->looked)
        return 0;
    cc->looked = 1;
    tt_llm_cache *c = cc->cache;
    cc->start_ms = wall_ms(c);
    char *data = NULL;
    size_t len = 0;
    if (cc->keyed && c->store.get(c->store.ud, cc->key, cc->start_ms, &data, &len) == 0 &&
        take(cc, data, len) == 0) {
        count(cc, 1);
        return pump(cc);
    }
    if (cc->keyed)
        count(cc, 0);
    if (!tt_llm_semcache_call_lookup(cc->sem, &cc->attr, sem_done, cc))
        return 0;
    cc->sem_waiting = 1;
    cc->resume = resume;
    return 3;
}

int tt_llm_cache_pause(tt_llm_cache_call *cc, int paused)
{
    if (!cc)
        return 0;
    cc->paused = paused; /* also before a semantic hit's replay starts */
    return !cc->data || cc->ready || paused || cc->replaying ? 0 : pump(cc);
}

int tt_llm_cache_cancel(tt_llm_cache_call *cc)
{
    if (!cc)
        return 0;
    cc->cancelled = 1;
    return cc->replaying;
}
