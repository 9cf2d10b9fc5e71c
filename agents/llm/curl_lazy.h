/* libcurl loaded on first use (curl_lazy.c), so a start-up that makes no
 * model or tool call never maps libcurl and its 27 dependencies.
 *
 * Any libcurl function Tether calls loads it (dlopen, dlsym, and
 * curl_global_init(CURL_GLOBAL_DEFAULT) once) if it is not loaded yet; a
 * thread calling while another loads it waits for that load. The server
 * loads it in libuv's thread pool once it listens (server.c), so the loop
 * normally finds it ready. If libcurl cannot be loaded, the functions fail as
 * libcurl does without memory or with a bad handle (NULL, CURLE_FAILED_INIT,
 * CURLM_BAD_HANDLE): a transfer fails to start, nothing crashes. */
#ifndef TT_CURL_LAZY_H
#define TT_CURL_LAZY_H

/* Load libcurl now if needed (blocks while it loads): 0, or TT_EIO. */
int tt_curl_load(void);
/* 1 once libcurl is loaded and initialised (never blocks). */
int tt_curl_loaded(void);
/* Why it could not be loaded ("" when loaded). */
const char *tt_curl_error(void);

#endif
