/* GET /v1/photos/thumb (photos_thumb.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/photos/path.h"
#include "agents/photos/thumb.h"
#include "protocol/errors.h"
#include "server/photos_thumb.h"
#include "server/server.h"
#include "server/sse_out.h"

#define THUMB_JOBS_MAX 8 /* in flight at once: at most 8 x 2 MiB held */

static const char PATH_THUMB[] = "/v1/photos/thumb";

typedef struct thumb_job {
    uv_work_t work;
    tt_server *srv;
    struct lws *wsi;
    tt_thumb_wait *w; /* NULL once the request is gone */
    char library[4096];
    char rel[TT_PHOTOS_REL_MAX + 1];
    tt_photos_thumb out;
    tt_photos_thumb_rc rc;
    char why[TT_PHOTOS_REL_MAX + 256];
} thumb_job;

int tt_thumb_route(const char *path)
{
    return strcmp(path, PATH_THUMB) == 0;
}

static void fail(tt_server *srv, tt_thumb_wait *w, int status, int err, const char *why)
{
    const char *code = tt_err_wire(err);
    tt_metrics_error(&srv->metrics, code);
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", why);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    w->done = 1;
    w->status = text ? status : 500;
    w->type = "application/json";
    w->body = text;
    w->len = text ? strlen(text) : 0;
}

static void thumb_work(uv_work_t *req)
{
    thumb_job *j = req->data;
    j->rc = tt_photos_thumb_read(j->library, j->rel, TT_PHOTOS_THUMB_FILE_MAX, &j->out, j->why,
                                 sizeof j->why);
}

static void thumb_after(uv_work_t *req, int status)
{
    static const int http[] = {
        [TT_THUMB_OK] = 200,        [TT_THUMB_BAD_PATH] = 400,  [TT_THUMB_NOT_FOUND] = 404,
        [TT_THUMB_FORBIDDEN] = 403, [TT_THUMB_NOT_IMAGE] = 415, [TT_THUMB_TOO_LARGE] = 413,
        [TT_THUMB_IO] = 500};
    static const int err[] = {[TT_THUMB_OK] = 0,
                              [TT_THUMB_BAD_PATH] = TT_EINVAL,
                              [TT_THUMB_NOT_FOUND] = TT_ENOTFOUND,
                              [TT_THUMB_FORBIDDEN] = TT_EFORBIDDEN,
                              [TT_THUMB_NOT_IMAGE] = TT_EINVAL,
                              [TT_THUMB_TOO_LARGE] = TT_ETOOLARGE,
                              [TT_THUMB_IO] = TT_EIO};
    thumb_job *j = req->data;
    j->srv->thumb_jobs--;
    tt_thumb_wait *w = j->w;
    if (w && status != 0) {
        fail(j->srv, w, 503, TT_EFULL, "the read was cancelled; retry shortly");
    } else if (w && j->rc == TT_THUMB_OK) {
        *w = (tt_thumb_wait){.done = 1,
                             .status = 200,
                             .type = j->out.type,
                             .body = (char *)j->out.data,
                             .len = j->out.len};
        j->out.data = NULL;
    } else if (w) {
        fail(j->srv, w, http[j->rc], err[j->rc], j->why);
    }
    if (w) {
        w->job = NULL;
        lws_callback_on_writable(j->wsi);
    }
    free(j->out.data);
    free(j);
}

/* The caller's own photo-organizer session named by ?session=: 0 and the
 * library's path in j; else an error answer in w. */
static int check_session(tt_server *srv, const tt_http_who *who, const char *sid, thumb_job *j,
                         tt_thumb_wait *w)
{
    tt_session *s = NULL;
    int rc = tt_registry_get(srv->reg, sid, &s);
    if (rc == TT_ENOTFOUND || rc == TT_EINVAL) {
        fail(srv, w, 404, TT_ENOTFOUND, "no such session");
        return -1;
    }
    if (rc) {
        fail(srv, w, 503, TT_EFULL, "the session could not be loaded; retry shortly");
        return -1;
    }
    if (!tt_http_who_may(who, s)) {
        fail(srv, w, 403, TT_EFORBIDDEN, "this session belongs to another user");
        return -1;
    }
    if (strcmp(s->agent, "photo-organizer") != 0) {
        fail(srv, w, 403, TT_EFORBIDDEN, "this session is not a photo-organizer session");
        return -1;
    }
    if (!srv->agent_env.photos_root) {
        fail(srv, w, 404, TT_ENOTFOUND, "the server has no --photos-root");
        return -1;
    }
    char why[512];
    rc = tt_photos_library_of(&srv->agent_env, s->tenant, s->user, j->library, sizeof j->library,
                              why, sizeof why);
    if (rc) {
        fail(srv, w, rc == TT_EFORBIDDEN ? 403 : 404, rc, why);
        return -1;
    }
    return 0;
}

void tt_thumb_get(tt_server *srv, struct lws *wsi, const char *authorization, tt_thumb_wait *w)
{
    char sid[160], rel[TT_PHOTOS_REL_MAX + 8];
    tt_http_who who;
    memset(w, 0, sizeof *w);
    if (tt_http_who_get(srv, authorization, &who) != 0) {
        fail(srv, w, 401, TT_EAUTH, "a valid token or API key is required (Authorization: Bearer)");
        return;
    }
    const char *s = lws_get_urlarg_by_name(wsi, "session=", sid, sizeof sid);
    const char *p = lws_get_urlarg_by_name(wsi, "path=", rel, sizeof rel);
    thumb_job *j = NULL;
    if (!s || !*s || !p || !*p) {
        fail(srv, w, 400, TT_EINVAL, "session and path are required (?session=<id>&path=<rel>)");
    } else if (strlen(p) > TT_PHOTOS_REL_MAX) {
        fail(srv, w, 400, TT_EINVAL, "path is longer than 1024 bytes");
    } else if (srv->thumb_jobs >= THUMB_JOBS_MAX) {
        fail(srv, w, 503, TT_EFULL, "too many thumbnails being read; retry shortly");
    } else if (!(j = calloc(1, sizeof *j))) {
        fail(srv, w, 500, TT_ENOMEM, "out of memory");
    } else if (check_session(srv, &who, s, j, w) == 0) {
        snprintf(j->rel, sizeof j->rel, "%s", p);
        j->srv = srv;
        j->wsi = wsi;
        j->w = w;
        j->work.data = j;
        if (uv_queue_work(&srv->loop, &j->work, thumb_work, thumb_after) == 0) {
            w->job = j;
            srv->thumb_jobs++;
            j = NULL;
        } else {
            fail(srv, w, 503, TT_EFULL, "the thumbnail could not be queued; retry shortly");
        }
    }
    free(j);
    tt_http_who_clear(&who);
}

void tt_thumb_wait_clear(tt_thumb_wait *w)
{
    if (w->job)
        w->job->w = NULL; /* it frees itself when the thread pool is done */
    free(w->body);
    memset(w, 0, sizeof *w);
}
