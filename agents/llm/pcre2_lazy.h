/* PCRE2 (8-bit) loaded on first use (pcre2_lazy.c), so a start-up that
 * compiles no regular expression never maps libpcre2-8.
 *
 * Any PCRE2 function Tether calls (the redaction detectors, the BPE
 * tokenizer's split pattern, JSON Schema "pattern") loads it (dlopen, dlsym)
 * if it is not loaded yet; a thread calling while another loads it waits for
 * that load. The server loads it in libuv's thread pool once it listens
 * (server.c), so the loop normally finds it ready. If it cannot be loaded,
 * pcre2_compile() fails with TT_PCRE2_UNAVAILABLE, whose message
 * (pcre2_get_error_message) says why; nothing else can be reached without a
 * compiled pattern, and freeing NULL does nothing. */
#ifndef TT_PCRE2_LAZY_H
#define TT_PCRE2_LAZY_H

/* The error code pcre2_compile() sets when PCRE2 cannot be loaded (PCRE2's
 * own compile errors are 101 and up, its match errors negative and small). */
#define TT_PCRE2_UNAVAILABLE (-10000)

/* Load PCRE2 now if needed (blocks while it loads): 0, or TT_EIO. */
int tt_pcre2_load(void);
/* 1 once PCRE2 is loaded (never blocks). */
int tt_pcre2_loaded(void);
/* Why it could not be loaded ("" when loaded, "not loaded yet" before). */
const char *tt_pcre2_error(void);

#endif
