/* GET /v1/photos/thumb?session=<id>&path=<relative path>: one photo of the
 * caller's own library, for the thumbnails of the photo organiser's plan
 * preview (web/dom.js).
 *
 * Authenticated like the AI SDK routes (tt_http_who_get: a JWT, an API key,
 * or nothing in open mode). The session must be the caller's own and a
 * photo-organizer session; the path is relative to the library the organiser
 * works on (agents/photos/thumb.h), read in libuv's thread pool: the EXIF
 * thumbnail of a JPEG that has one, else the file itself up to
 * TT_PHOTOS_THUMB_FILE_MAX (2 MiB), else 413. Errors: 400 (no session or a
 * bad path), 401, 403 (another user's session, not a photo-organizer one, a
 * symlink), 404, 413, 415 (not an image a browser shows). */
#ifndef TT_PHOTOS_THUMB_ROUTE_H
#define TT_PHOTOS_THUMB_ROUTE_H

#include <stddef.h>
#include <libwebsockets.h>

struct tt_server;
struct thumb_job;

/* A request's thumbnail: in flight (job), then done with the answer. */
typedef struct tt_thumb_wait {
    struct thumb_job *job;
    int done, status;
    const char *type;
    char *body; /* malloc'd */
    size_t len;
} tt_thumb_wait;

/* 1 if path is /v1/photos/thumb. */
int tt_thumb_route(const char *path);

/* Start the request: the job queued (w->job set; the connection is asked to
 * write once w->done), or w->done at once with an error answer. */
void tt_thumb_get(struct tt_server *srv, struct lws *wsi, const char *authorization,
                  tt_thumb_wait *w);

/* Detach a job in flight (it frees itself) and drop an answer not sent. */
void tt_thumb_wait_clear(tt_thumb_wait *w);

#endif
