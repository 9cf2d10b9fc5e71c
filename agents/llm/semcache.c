/* The semantic cache (see semcache.h): which calls, their partition and
 * text, the embedding, the search and the insert in the thread pool, and the
 * storage's part. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/llm/cache.h"
#include "agents/llm/embed.h"
#include "agents/llm/semcache.h"
#include "protocol/errors.h"

struct tt_llm_semcache {
    tt_llm_semcache_store store;
    uv_loop_t *loop;
    tt_llm_service *svc;
    tt_route_semcache set;
    tt_semindex *ix;
    tt_llm_semcache_stats stats;
    unsigned jobs; /* in the thread pool: a closed cache is freed by the last */
    int closing;
};

typedef struct job job;

struct tt_llm_semcache_call {
    tt_llm_semcache *s;
    double threshold;
    int64_t ttl_ms;
    int keyed, looked;
    unsigned char part[TT_SEM_KEY_LEN], id[TT_SEM_KEY_LEN];
    char *text;
    size_t text_len;
    float *vec; /* the text's vector, after a miss */
    size_t dim;
    float score;
    tt_llm_embed *embed; /* the embedding in flight */
    uv_timer_t *timer;   /* the lookup's deadline; closed asynchronously */
    job *job;            /* the search in the thread pool */
    void (*done)(void *ud, char *data, size_t len);
    void *ud;
};

/* A search (sc set until the call goes) or an insert (sc NULL). */
struct job {
    uv_work_t w;
    tt_llm_semcache *s;
    tt_llm_semcache_call *sc;
    int insert;
    char *body; /* the embeddings response (search), or NULL when it failed */
    size_t len;
    unsigned char part[TT_SEM_KEY_LEN], id[TT_SEM_KEY_LEN];
    float *vec;
    size_t dim;
    float threshold, score;
    int64_t now_ms, expires_ms;
    int rc; /* search: 0 found, TT_ENOTFOUND, TT_EINVAL (no usable vector) */
    tt_semindex_gone gone;
};

static int64_t wall_ms(const tt_llm_semcache *s)
{
    if (s->store.now_ms)
        return s->store.now_ms(s->store.ud);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tt_llm_semcache_new(const tt_llm_semcache_store *store, tt_llm_semcache **out)
{
    tt_llm_semcache *s = calloc(1, sizeof *s);
    if (!s)
        return TT_ENOMEM;
    s->store = *store;
    *out = s;
    return 0;
}

static void really_free(tt_llm_semcache *s)
{
    tt_semindex_free(s->ix);
    free(s);
}

void tt_llm_semcache_free(tt_llm_semcache *s)
{
    if (!s)
        return;
    s->closing = 1;
    s->svc = NULL; /* no lookup starts any more */
    if (s->jobs == 0)
        really_free(s);
}

int tt_llm_semcache_bind(tt_llm_semcache *s, uv_loop_t *loop, tt_llm_service *svc,
                         const tt_route_semcache *set)
{
    if (!set || !set->configured || set->max_entries < 1)
        return TT_EINVAL;
    tt_semindex_free(s->ix);
    s->ix = NULL;
    int rc = tt_semindex_new((size_t)set->max_entries, &s->ix);
    if (rc)
        return rc;
    s->loop = loop;
    s->svc = svc;
    s->set = *set;
    return 0;
}

int tt_llm_semcache_bound(const tt_llm_semcache *s)
{
    return s && s->svc && s->ix;
}

int tt_llm_semcache_load(tt_llm_semcache *s, const unsigned char id[TT_SEM_KEY_LEN],
                         const unsigned char part[TT_SEM_KEY_LEN], int64_t expires_ms,
                         const float *vec, size_t dim)
{
    if (!tt_llm_semcache_bound(s))
        return TT_EINVAL;
    if (expires_ms <= wall_ms(s))
        return TT_ENOTFOUND;
    if (dim == 0 || dim > TT_SEM_DIM_MAX)
        return TT_EINVAL;
    float *v = malloc(dim * sizeof *v); /* normalised again: the stored bytes are not trusted */
    int rc = v ? 0 : TT_ENOMEM;
    if (rc == 0) {
        memcpy(v, vec, dim * sizeof *v);
        rc = tt_semindex_normalise(v, dim);
    }
    if (rc == 0)
        rc = tt_semindex_load(s->ix, part, id, v, dim, expires_ms);
    free(v);
    return rc;
}

void tt_llm_semcache_stats_get(tt_llm_semcache *s, tt_llm_semcache_stats *out)
{
    *out = s ? s->stats : (tt_llm_semcache_stats){0};
    out->entries = s && s->ix ? tt_semindex_size(s->ix) : 0;
}

/* ---- which calls ---------------------------------------------------------- */

tt_llm_semcache_call *tt_llm_semcache_call_new(tt_llm_semcache *s, const tt_route *route,
                                               const tt_llm_request *req)
{
    const tt_llm_semantic *opt = req->semantic && req->semantic->enabled ? req->semantic : NULL;
    if (!tt_llm_semcache_bound(s) || s->closing || !route || route->sem_mode < 0 ||
        (route->sem_mode == 0 && !opt) || req->n_messages == 0)
        return NULL;
    size_t users = 0;
    for (size_t i = 0; i < req->n_messages; i++)
        users += req->messages[i].role && strcmp(req->messages[i].role, "user") == 0;
    const tt_llm_message *last = &req->messages[req->n_messages - 1];
    if (!last->role || strcmp(last->role, "user") != 0 || !last->content)
        return NULL;
    if (users > 1 && !route->sem_multi_turn && !(opt && opt->multi_turn))
        return NULL; /* a follow-up means what the conversation before it means */
    if (req->n_tools > 0 && !route->sem_tools && !(opt && opt->tools))
        return NULL; /* an answer may be a tool call that depends on more than the words */
    tt_llm_semcache_call *sc = calloc(1, sizeof *sc);
    if (!sc)
        return NULL;
    sc->s = s;
    sc->threshold = opt && opt->threshold > 0  ? opt->threshold
                    : route->sem_threshold > 0 ? route->sem_threshold
                                               : s->set.threshold;
    sc->ttl_ms = (route->sem_ttl_s > 0 ? route->sem_ttl_s : s->set.ttl_s) * 1000;
    return sc;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void stop_timer(tt_llm_semcache_call *sc)
{
    if (sc->timer) {
        uv_timer_stop(sc->timer);
        uv_close((uv_handle_t *)sc->timer, free_timer);
        sc->timer = NULL;
    }
}

void tt_llm_semcache_call_free(tt_llm_semcache_call *sc)
{
    if (!sc)
        return;
    stop_timer(sc);
    tt_llm_embed_cancel(sc->embed);
    if (sc->job)
        sc->job->sc = NULL; /* its end finds the call gone */
    free(sc->text);
    free(sc->vec);
    free(sc);
}

/* SHA-256 of a then b: 0, or -1 (no digest: the call is not looked up). */
static int sha2(unsigned char out[TT_SEM_KEY_LEN], const void *a, size_t alen, const void *b,
                size_t blen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned n = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, a, alen) == 1 && EVP_DigestUpdate(md, b, blen) == 1 &&
             EVP_DigestFinal_ex(md, out, &n) == 1 && n == TT_SEM_KEY_LEN;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

void tt_llm_semcache_call_key(tt_llm_semcache_call *sc, const tt_call_request *r,
                              const char *tenant, const char *route, const char *model)
{
    size_t n = sc ? json_array_size(r->messages) : 0;
    if (!sc || sc->keyed || n == 0)
        return;
    json_t *last = json_array_get(r->messages, n - 1);
    const json_t *content = json_object_get(last, "content");
    size_t len = json_string_length(content);
    if (!json_is_string(content) || len == 0 || len > TT_SEMCACHE_TEXT_MAX)
        return;
    json_t *prefix = json_array();
    for (size_t i = 0; prefix && i + 1 < n; i++)
        json_array_append(prefix, json_array_get(r->messages, i));
    tt_call_request before = *r;
    before.messages = prefix;
    char *canon = NULL;
    size_t clen = 0;
    int rc =
        prefix ? tt_llm_cache_canonical(&before, tenant, route, model, &canon, &clen) : TT_ENOMEM;
    json_decref(prefix);
    sc->text = rc == 0 ? malloc(len + 1) : NULL;
    if (sc->text) {
        memcpy(sc->text, json_string_value(content), len);
        sc->text[len] = '\0';
        sc->text_len = len;
        sc->keyed = sha2(sc->part, "semantic\n", 9, canon, clen) == 0 &&
                    sha2(sc->id, sc->part, sizeof sc->part, sc->text, len) == 0;
    }
    free(canon);
}

const unsigned char *tt_llm_semcache_call_id(const tt_llm_semcache_call *sc)
{
    return sc->id;
}

double tt_llm_semcache_call_score(const tt_llm_semcache_call *sc)
{
    return sc ? sc->score : 0;
}

/* ---- the thread pool ---------------------------------------------------------- */

/* The embeddings response's first vector, normalised: 0 and job->vec. */
static int parse_vector(job *j)
{
    json_t *doc = j->body ? json_loadb(j->body, j->len, 0, NULL) : NULL;
    const json_t *arr =
        json_object_get(json_array_get(json_object_get(doc, "data"), 0), "embedding");
    size_t dim = json_array_size(arr);
    int rc = dim > 0 && dim <= TT_SEM_DIM_MAX ? 0 : TT_EINVAL;
    j->vec = rc == 0 ? malloc(dim * sizeof *j->vec) : NULL;
    if (rc == 0 && !j->vec)
        rc = TT_ENOMEM;
    for (size_t i = 0; rc == 0 && i < dim; i++) {
        const json_t *x = json_array_get(arr, i);
        if (!json_is_number(x))
            rc = TT_EINVAL;
        else
            j->vec[i] = (float)json_number_value(x);
    }
    if (rc == 0)
        rc = tt_semindex_normalise(j->vec, dim);
    json_decref(doc);
    if (rc) {
        free(j->vec);
        j->vec = NULL;
        return rc;
    }
    j->dim = dim;
    return 0;
}

static void job_work(uv_work_t *w)
{
    job *j = w->data;
    if (j->insert) {
        j->rc = tt_semindex_insert(j->s->ix, j->part, j->id, j->vec, j->dim, j->expires_ms,
                                   j->now_ms, &j->gone);
        return;
    }
    j->rc = parse_vector(j);
    if (j->rc == 0)
        j->rc = tt_semindex_search(j->s->ix, j->part, j->vec, j->dim, j->threshold, j->now_ms,
                                   j->id, &j->score, &j->gone);
}

static void job_free(job *j)
{
    tt_semindex_gone_free(&j->gone);
    free(j->body);
    free(j->vec);
    free(j);
}

/* A search's end, the call still there: hit (the answer read) or miss. */
static void searched(tt_llm_semcache *s, tt_llm_semcache_call *sc, job *j)
{
    char *data = NULL;
    size_t len = 0;
    stop_timer(sc);
    sc->score = j->score;
    if (j->rc == 0 && s->store.get(s->store.ud, j->id, wall_ms(s), &data, &len) != 0) {
        (void)tt_semindex_remove(s->ix, j->id); /* the store lost it: never found again */
        data = NULL;
    }
    if (j->rc != 0 && j->rc != TT_ENOTFOUND)
        s->stats.embed_errors++;
    if (data) {
        s->stats.hits++;
    } else {
        s->stats.misses++;
        if (j->vec) { /* kept for the answer's store */
            sc->vec = j->vec;
            sc->dim = j->dim;
            j->vec = NULL;
        }
    }
    sc->done(sc->ud, data, len);
}

static void job_after(uv_work_t *w, int status)
{
    job *j = w->data;
    tt_llm_semcache *s = j->s;
    s->jobs--;
    for (size_t i = 0; i < j->gone.n && s->store.del; i++)
        s->store.del(s->store.ud, j->gone.ids[i]);
    s->stats.removed += j->gone.n;
    if (j->insert && (status != 0 || j->rc != 0)) {
        s->stats.not_stored++;
        s->store.del(s->store.ud, j->id);
    }
    tt_llm_semcache_call *sc = j->sc;
    if (sc) {
        sc->job = NULL;
        if (status != 0)
            j->rc = TT_EINVAL;
        if (!s->closing)
            searched(s, sc, j);
    }
    job_free(j);
    if (s->closing && s->jobs == 0)
        really_free(s);
}

static int queue(tt_llm_semcache *s, job *j)
{
    j->s = s;
    j->w.data = j;
    if (uv_queue_work(s->loop, &j->w, job_work, job_after) != 0)
        return TT_EINTERNAL;
    s->jobs++;
    return 0;
}

/* ---- lookup and store ------------------------------------------------------------- */

static void on_embedded(int status, const char *body, size_t len, const char *model, void *ud)
{
    (void)model;
    tt_llm_semcache_call *sc = ud;
    tt_llm_semcache *s = sc->s;
    sc->embed = NULL;
    job *j = calloc(1, sizeof *j);
    if (j && status == 200) { /* anything else: a job without a body, a miss */
        j->body = malloc(len + 1);
        if (j->body) {
            memcpy(j->body, body, len);
            j->len = len;
        }
    }
    if (j) {
        j->sc = sc;
        memcpy(j->part, sc->part, sizeof j->part);
        j->threshold = (float)sc->threshold;
        j->now_ms = wall_ms(s);
    }
    if (j && queue(s, j) == 0) {
        sc->job = j; /* the done follows from the loop, never under this callback */
        return;
    }
    if (j)
        job_free(j);
    stop_timer(sc);
    s->stats.embed_errors++;
    s->stats.misses++;
    sc->done(sc->ud, NULL, 0);
}

/* Past the lookup's deadline: the embedding or the search is dropped, and
 * the call goes on as a miss (nothing is stored for it). */
static void on_timeout(uv_timer_t *t)
{
    tt_llm_semcache_call *sc = t->data;
    stop_timer(sc);
    tt_llm_embed_cancel(sc->embed);
    sc->embed = NULL;
    if (sc->job)
        sc->job->sc = NULL;
    sc->job = NULL;
    sc->s->stats.timeouts++;
    sc->s->stats.misses++;
    sc->done(sc->ud, NULL, 0);
}

int tt_llm_semcache_call_lookup(tt_llm_semcache_call *sc, const tt_llm_attribution *attr,
                                void (*done)(void *ud, char *data, size_t len), void *ud)
{
    if (!sc || !sc->keyed || sc->looked || sc->s->closing)
        return 0;
    sc->looked = 1;
    tt_llm_semcache *s = sc->s;
    json_t *req = json_pack("{s:s%}", "input", sc->text, sc->text_len);
    if (req && s->set.dimensions > 0)
        json_object_set_new(req, "dimensions", json_integer((json_int_t)s->set.dimensions));
    sc->done = done;
    sc->ud = ud;
    int rc = req ? tt_llm_embed_start_as(s->svc, s->set.embed_route, NULL, req, attr, on_embedded,
                                         sc, &sc->embed)
                 : TT_ENOMEM;
    json_decref(req);
    if (rc) {
        sc->embed = NULL;
        s->stats.embed_errors++;
        s->stats.misses++;
        return 0;
    }
    sc->timer = malloc(sizeof *sc->timer);
    if (sc->timer) { /* init only fills the struct; start fails only on a closing handle */
        (void)uv_timer_init(s->loop, sc->timer);
        sc->timer->data = sc;
        (void)uv_timer_start(sc->timer, on_timeout, (uint64_t)s->set.lookup_timeout_ms, 0);
    }
    return 1;
}

void tt_llm_semcache_call_store(tt_llm_semcache_call *sc, const char *data, size_t len)
{
    if (!sc || !sc->vec || sc->s->closing)
        return;
    tt_llm_semcache *s = sc->s;
    int64_t now = wall_ms(s);
    job *j = calloc(1, sizeof *j);
    if (!j || s->store.put(s->store.ud, sc->id, sc->part, now + sc->ttl_ms, sc->vec, sc->dim, data,
                           len) != 0) {
        free(j);
        s->stats.not_stored++;
        return;
    }
    s->stats.stored++;
    *j = (job){
        .insert = 1, .vec = sc->vec, .dim = sc->dim, .now_ms = now, .expires_ms = now + sc->ttl_ms};
    memcpy(j->part, sc->part, sizeof j->part);
    memcpy(j->id, sc->id, sizeof j->id);
    sc->vec = NULL; /* the job's now */
    if (queue(s, j) != 0) {
        s->stats.not_stored++;
        s->store.del(s->store.ud, j->id);
        job_free(j);
    }
}
