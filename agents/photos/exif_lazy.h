/* libexif loaded on first use (exif_lazy.c, as agents/llm/curl_lazy.h does
 * for libcurl): only a photo scan reads EXIF, and mapping libexif at exec
 * cost about 2 ms of every start-up (its tag tables are thousands of
 * relocations). A thread calling during another's load waits for it. If
 * libexif cannot be loaded, exif_data_new() returns NULL (as out of memory:
 * the photo is described without its EXIF) and the rest, which need its
 * ExifData, do nothing. A libexif function not yet called anywhere must be
 * added there (the link fails otherwise). */
#ifndef TT_EXIF_LAZY_H
#define TT_EXIF_LAZY_H

/* Load libexif now if needed (blocks while it loads): 0, or TT_EIO. */
int tt_exif_load(void);
/* 1 once libexif is loaded (never blocks). */
int tt_exif_loaded(void);

#endif
