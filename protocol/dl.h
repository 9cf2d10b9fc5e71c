/* A shared library loaded on first use (dlopen, dlsym), for the libraries
 * most start-ups never need (libcurl, libpq, libexif, PCRE2: see their
 * *_lazy.c).
 *
 * Each user keeps a table of function pointers and a tt_dl_lib naming the
 * library, the symbols and where each goes in the table. tt_dl_load() loads
 * it once: a thread calling while another loads it waits for that load; a
 * load that failed is not tried again. */
#ifndef TT_DL_H
#define TT_DL_H

#include <pthread.h>
#include <stddef.h>

typedef struct tt_dl_sym {
    const char *name; /* the symbol */
    size_t offset;    /* where its address goes in the table */
} tt_dl_sym;

/* One entry of a table of type T: its field f, the symbol name. */
#define TT_DL_SYM(T, f, name)                                                                      \
    {                                                                                              \
        (name), offsetof(T, f)                                                                     \
    }

typedef struct tt_dl_lib {
    const char *soname; /* e.g. "libpq.so.5" */
    const tt_dl_sym *syms;
    size_t n_syms;
    void *table;
    /* Run once every symbol is found (e.g. curl_global_init): 0, or -1 with
     * the reason in why (size n). NULL: nothing. */
    int (*after)(char *why, size_t n);
    pthread_mutex_t lock; /* PTHREAD_MUTEX_INITIALIZER */
    int tried;            /* under lock */
    int loaded;           /* atomic: every symbol found, after() done */
    char why[256];        /* else why not (set before tried) */
} tt_dl_lib;

/* Load it now if needed (blocks while another thread loads it): 0, or TT_EIO. */
int tt_dl_load(tt_dl_lib *lib);
/* 1 once it is loaded (never blocks). */
int tt_dl_loaded(tt_dl_lib *lib);
/* Why it could not be loaded: "" when loaded, "not loaded yet" before. */
const char *tt_dl_error(tt_dl_lib *lib);

#endif
