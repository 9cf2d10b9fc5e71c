/* The libuv event-lib plugin found without listing the library directory
 * (see evlib_scan.h). lws refers to scandir(), so the linker exports this
 * definition from the executable and lws's call comes here; every call that
 * is not lws's scan of its plugin directory goes on to libc's. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <lws_config.h> /* LWS_INSTALL_LIBDIR: where this lws looks for its plugins */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/evlib_scan.h"

typedef int (*scandir_fn)(const char *, struct dirent ***, int (*)(const struct dirent *),
                          int (*)(const struct dirent **, const struct dirent **));

static _Thread_local int scanning; /* between begin and end, on this thread */
static unsigned short_count;       /* atomic */

void tt_evlib_scan_begin(void)
{
    scanning = 1;
}

void tt_evlib_scan_end(void)
{
    scanning = 0;
}

unsigned tt_evlib_scan_short_count(void)
{
    return __atomic_load_n(&short_count, __ATOMIC_RELAXED);
}

/* The plugin's entry alone, as scandir() would have listed it (filter
 * applied; malloc'd as glibc's, which the caller frees one by one): the
 * count, or -1 when the short way does not apply (the file is not there). */
static int plugin_alone(struct dirent ***list, int (*filter)(const struct dirent *))
{
    struct stat st;
    if (lstat(LWS_INSTALL_LIBDIR "/" TT_EVLIB_UV_FILE, &st) != 0 ||
        !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
        return -1;
    struct dirent *d = calloc(1, sizeof *d);
    struct dirent **l = malloc(sizeof *l);
    if (!d || !l) {
        free(d);
        free(l);
        return -1; /* libc's way reports its own failure */
    }
    d->d_ino = st.st_ino;
    d->d_type = S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
    d->d_reclen = sizeof *d;
    memcpy(d->d_name, TT_EVLIB_UV_FILE, sizeof TT_EVLIB_UV_FILE);
    if (filter && !filter(d)) {
        free(d);
        *list = l; /* an empty list, as scandir() gives one */
        return 0;
    }
    l[0] = d;
    *list = l;
    return 1;
}

int scandir(const char *dir, struct dirent ***list, int (*filter)(const struct dirent *),
            int (*compar)(const struct dirent **, const struct dirent **))
{
    if (scanning && strcmp(dir, LWS_INSTALL_LIBDIR) == 0) {
        int n = plugin_alone(list, filter);
        if (n >= 0) {
            __atomic_add_fetch(&short_count, 1, __ATOMIC_RELAXED);
            return n;
        }
    }
    scandir_fn libc = (scandir_fn)dlsym(RTLD_NEXT, "scandir");
    if (!libc) {
        errno = ENOSYS;
        return -1;
    }
    return libc(dir, list, filter, compar);
}
