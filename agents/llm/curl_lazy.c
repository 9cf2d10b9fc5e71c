/* libcurl, loaded when first needed rather than when the process starts
 * (see curl_lazy.h). Each libcurl function Tether calls is defined here
 * under its own name and forwards to the one dlsym() found, so callers
 * include <curl/curl.h> and call libcurl as usual. The binary does not list
 * libcurl.so.4 as needed: loading it and its 27 dependencies cost several
 * milliseconds of every start-up (tests/bench/README.md, "Cold start").
 *
 * These definitions are not exported (an executable exports only what a
 * library it links refers to), so libcurl's own calls stay inside libcurl. */
#define CURL_DISABLE_TYPECHECK 1 /* the variadic functions are defined here */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "agents/llm/curl_lazy.h"
#include "protocol/dl.h"
#include "protocol/errors.h"

#define LIBCURL_SONAME "libcurl.so.4"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    CURLcode (*easy_pause)(CURL *, int);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    void (*free)(void *);
    time_t (*getdate)(const char *, const time_t *);
    CURLU *(*url)(void);
    CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
    CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
    void (*url_cleanup)(CURLU *);
} C;

static const tt_dl_sym syms[] = {
    TT_DL_SYM(__typeof__(C), global_init, "curl_global_init"),
    TT_DL_SYM(__typeof__(C), easy_init, "curl_easy_init"),
    TT_DL_SYM(__typeof__(C), easy_setopt, "curl_easy_setopt"),
    TT_DL_SYM(__typeof__(C), easy_getinfo, "curl_easy_getinfo"),
    TT_DL_SYM(__typeof__(C), easy_pause, "curl_easy_pause"),
    TT_DL_SYM(__typeof__(C), easy_cleanup, "curl_easy_cleanup"),
    TT_DL_SYM(__typeof__(C), easy_reset, "curl_easy_reset"),
    TT_DL_SYM(__typeof__(C), easy_strerror, "curl_easy_strerror"),
    TT_DL_SYM(__typeof__(C), multi_init, "curl_multi_init"),
    TT_DL_SYM(__typeof__(C), multi_setopt, "curl_multi_setopt"),
    TT_DL_SYM(__typeof__(C), multi_add_handle, "curl_multi_add_handle"),
    TT_DL_SYM(__typeof__(C), multi_remove_handle, "curl_multi_remove_handle"),
    TT_DL_SYM(__typeof__(C), multi_assign, "curl_multi_assign"),
    TT_DL_SYM(__typeof__(C), multi_socket_action, "curl_multi_socket_action"),
    TT_DL_SYM(__typeof__(C), multi_info_read, "curl_multi_info_read"),
    TT_DL_SYM(__typeof__(C), multi_cleanup, "curl_multi_cleanup"),
    TT_DL_SYM(__typeof__(C), slist_append, "curl_slist_append"),
    TT_DL_SYM(__typeof__(C), slist_free_all, "curl_slist_free_all"),
    TT_DL_SYM(__typeof__(C), free, "curl_free"),
    TT_DL_SYM(__typeof__(C), getdate, "curl_getdate"),
    TT_DL_SYM(__typeof__(C), url, "curl_url"),
    TT_DL_SYM(__typeof__(C), url_set, "curl_url_set"),
    TT_DL_SYM(__typeof__(C), url_get, "curl_url_get"),
    TT_DL_SYM(__typeof__(C), url_cleanup, "curl_url_cleanup"),
};

/* Once every symbol is found: curl_global_init, once for the process. */
static int global_init(char *why, size_t n)
{
    if (C.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        return 0;
    snprintf(why, n, "curl_global_init failed");
    return -1;
}

static tt_dl_lib lib = {.soname = LIBCURL_SONAME,
                        .syms = syms,
                        .n_syms = sizeof syms / sizeof syms[0],
                        .table = &C,
                        .after = global_init,
                        .lock = PTHREAD_MUTEX_INITIALIZER};

int tt_curl_load(void)
{
    return tt_dl_load(&lib);
}

int tt_curl_loaded(void)
{
    return tt_dl_loaded(&lib);
}

const char *tt_curl_error(void)
{
    return tt_dl_error(&lib);
}

/* ---- libcurl's functions: load on first use, else fail as libcurl would -- */

CURLcode curl_global_init(long flags)
{
    (void)flags; /* the load initialises with CURL_GLOBAL_DEFAULT, once */
    return tt_curl_load() ? CURLE_FAILED_INIT : CURLE_OK;
}

CURL *curl_easy_init(void)
{
    return tt_curl_load() ? NULL : C.easy_init();
}

/* An option's argument type is given by its number's range (curl.h). */
CURLcode curl_easy_setopt(CURL *e, CURLoption opt, ...)
{
    if (!tt_curl_loaded())
        return CURLE_FAILED_INIT; /* no handle can exist yet */
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = C.easy_setopt(e, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT || opt >= CURLOPTTYPE_BLOB)
        rc = C.easy_setopt(e, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = C.easy_setopt(e, opt, va_arg(ap, void (*)(void)));
    else
        rc = C.easy_setopt(e, opt, va_arg(ap, curl_off_t));
    va_end(ap);
    return rc;
}

/* Every CURLINFO takes a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *e, CURLINFO info, ...)
{
    if (!tt_curl_loaded())
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    CURLcode rc = C.easy_getinfo(e, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

CURLcode curl_easy_pause(CURL *e, int bitmask)
{
    return tt_curl_loaded() ? C.easy_pause(e, bitmask) : CURLE_FAILED_INIT;
}

void curl_easy_cleanup(CURL *e)
{
    if (tt_curl_loaded())
        C.easy_cleanup(e);
}

void curl_easy_reset(CURL *e)
{
    if (tt_curl_loaded())
        C.easy_reset(e);
}

const char *curl_easy_strerror(CURLcode code)
{
    return tt_curl_loaded() ? C.easy_strerror(code) : "libcurl is not loaded";
}

CURLM *curl_multi_init(void)
{
    return tt_curl_load() ? NULL : C.multi_init();
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    if (!tt_curl_loaded())
        return CURLM_BAD_HANDLE;
    va_list ap;
    va_start(ap, opt);
    CURLMcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = C.multi_setopt(m, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = C.multi_setopt(m, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = C.multi_setopt(m, opt, va_arg(ap, void (*)(void)));
    else
        rc = C.multi_setopt(m, opt, va_arg(ap, curl_off_t));
    va_end(ap);
    return rc;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *e)
{
    return tt_curl_loaded() ? C.multi_add_handle(m, e) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *e)
{
    return tt_curl_loaded() ? C.multi_remove_handle(m, e) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p)
{
    return tt_curl_loaded() ? C.multi_assign(m, s, p) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev, int *running)
{
    return tt_curl_loaded() ? C.multi_socket_action(m, s, ev, running) : CURLM_BAD_HANDLE;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    if (tt_curl_loaded())
        return C.multi_info_read(m, left);
    *left = 0;
    return NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
    return tt_curl_loaded() ? C.multi_cleanup(m) : CURLM_BAD_HANDLE;
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return tt_curl_load() ? NULL : C.slist_append(l, s);
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (tt_curl_loaded())
        C.slist_free_all(l);
}

void curl_free(void *p)
{
    if (tt_curl_loaded())
        C.free(p);
}

time_t curl_getdate(const char *s, const time_t *unused)
{
    return tt_curl_load() ? -1 : C.getdate(s, unused);
}

CURLU *curl_url(void)
{
    return tt_curl_load() ? NULL : C.url();
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
    return tt_curl_loaded() ? C.url_set(u, what, part, flags) : CURLUE_BAD_HANDLE;
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
    return tt_curl_loaded() ? C.url_get(u, what, part, flags) : CURLUE_BAD_HANDLE;
}

void curl_url_cleanup(CURLU *u)
{
    if (tt_curl_loaded())
        C.url_cleanup(u);
}
