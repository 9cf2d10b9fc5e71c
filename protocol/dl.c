/* A shared library loaded on first use (see dl.h). */
#include "protocol/dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"

/* Under lib->lock, once: 0 when every symbol is in the table. */
static int open_syms(tt_dl_lib *lib)
{
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(lib->why, sizeof lib->why, "%s", e ? e : "cannot load the library");
        return -1;
    }
    for (size_t i = 0; i < lib->n_syms; i++) {
        void *f = dlsym(h, lib->syms[i].name);
        if (!f) {
            snprintf(lib->why, sizeof lib->why, "%s has no %s", lib->soname, lib->syms[i].name);
            return -1; /* the handle stays: dlclose of a library half used is not worth it */
        }
        memcpy((char *)lib->table + lib->syms[i].offset, &f, sizeof f);
    }
    return 0;
}

int tt_dl_loaded(tt_dl_lib *lib)
{
    return __atomic_load_n(&lib->loaded, __ATOMIC_ACQUIRE);
}

int tt_dl_load(tt_dl_lib *lib)
{
    if (tt_dl_loaded(lib))
        return 0;
    pthread_mutex_lock(&lib->lock); /* another thread loading it: wait for it */
    if (!lib->tried) {
        if (open_syms(lib) == 0 && (!lib->after || lib->after(lib->why, sizeof lib->why) == 0))
            __atomic_store_n(&lib->loaded, 1, __ATOMIC_RELEASE);
        lib->tried = 1;
    }
    pthread_mutex_unlock(&lib->lock);
    return tt_dl_loaded(lib) ? 0 : TT_EIO;
}

const char *tt_dl_error(tt_dl_lib *lib)
{
    if (tt_dl_loaded(lib))
        return "";
    pthread_mutex_lock(&lib->lock);
    int tried = lib->tried;
    pthread_mutex_unlock(&lib->lock);
    return tried ? lib->why : "not loaded yet";
}
