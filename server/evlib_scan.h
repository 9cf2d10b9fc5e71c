/* The libuv event-lib plugin found without listing the library directory
 * (evlib_scan.c; tests/bench/README.md, "Cold start").
 *
 * Debian's libwebsockets 4.1 is built with LWS_WITH_EVLIB_PLUGINS: every
 * lws_create_context() with LWS_SERVER_OPTION_LIBUV lists LWS_INSTALL_LIBDIR
 * with scandir() (all of it, 1,286 entries here, each copied, then sorted)
 * only to dlopen the one plugin whose name holds "evlib_uv", and offers no
 * option to name it. This executable defines scandir() (libc's is reached
 * for every other call): between tt_evlib_scan_begin() and
 * tt_evlib_scan_end(), on the thread that called begin, a scandir() of
 * exactly LWS_INSTALL_LIBDIR answers with the plugin's file alone, after a
 * stat() finds it there and the caller's filter keeps it. When the file is
 * not where lws 4.1 puts it, the directory is listed as usual. */
#ifndef TT_EVLIB_SCAN_H
#define TT_EVLIB_SCAN_H

/* The plugin's file name in LWS_INSTALL_LIBDIR (lws's libuv event lib). */
#define TT_EVLIB_UV_FILE "libwebsockets-evlib_uv.so"

/* Around lws_create_context(): only scans made between the two, on this
 * thread, take the short way. */
void tt_evlib_scan_begin(void);
void tt_evlib_scan_end(void);

/* Scans of LWS_INSTALL_LIBDIR answered with the plugin alone so far
 * (tests, and the debug log). */
unsigned tt_evlib_scan_short_count(void);

#endif
