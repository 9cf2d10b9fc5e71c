/* libexif, loaded when first needed (see exif_lazy.h). Each libexif function
 * Tether calls is defined here under its own name and forwards to the one
 * dlsym() found; the binary does not list libexif.so.12 as needed. These
 * definitions are not exported (an executable exports only what a library it
 * links refers to), so libexif's own calls stay inside libexif. */
#include <dlfcn.h>
#include <libexif/exif-data.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "agents/photos/exif_lazy.h"
#include "protocol/errors.h"

#define LIBEXIF_SONAME "libexif.so.12"

static struct {
    ExifData *(*exif_data_new)(void);
    void (*exif_data_unref)(ExifData *);
    void (*exif_data_unset_option)(ExifData *, ExifDataOption);
    void (*exif_data_load_data)(ExifData *, const unsigned char *, unsigned int);
    ExifByteOrder (*exif_data_get_byte_order)(ExifData *);
    ExifEntry *(*exif_content_get_entry)(ExifContent *, ExifTag);
    ExifShort (*exif_get_short)(const unsigned char *, ExifByteOrder);
    ExifLong (*exif_get_long)(const unsigned char *, ExifByteOrder);
} X;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;

static void load(void)
{
    void *h = dlopen(LIBEXIF_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    static const struct {
        const char *name;
        size_t offset;
    } syms[] = {
        {"exif_data_new", offsetof(__typeof__(X), exif_data_new)},
        {"exif_data_unref", offsetof(__typeof__(X), exif_data_unref)},
        {"exif_data_unset_option", offsetof(__typeof__(X), exif_data_unset_option)},
        {"exif_data_load_data", offsetof(__typeof__(X), exif_data_load_data)},
        {"exif_data_get_byte_order", offsetof(__typeof__(X), exif_data_get_byte_order)},
        {"exif_content_get_entry", offsetof(__typeof__(X), exif_content_get_entry)},
        {"exif_get_short", offsetof(__typeof__(X), exif_get_short)},
        {"exif_get_long", offsetof(__typeof__(X), exif_get_long)},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *f = dlsym(h, syms[i].name);
        if (!f)
            return; /* the handle stays: dlclose of a library half used is not worth it */
        memcpy((char *)&X + syms[i].offset, &f, sizeof f);
    }
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
}

int tt_exif_loaded(void)
{
    return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE);
}

int tt_exif_load(void)
{
    if (tt_exif_loaded())
        return 0;
    (void)pthread_once(&once, load); /* another thread loading it: wait for it */
    return tt_exif_loaded() ? 0 : TT_EIO;
}

/* ---- libexif's functions: load on first use, else do nothing ---------- */

ExifData *exif_data_new(void)
{
    return tt_exif_load() ? NULL : X.exif_data_new();
}

void exif_data_unref(ExifData *d)
{
    if (tt_exif_loaded())
        X.exif_data_unref(d);
}

void exif_data_unset_option(ExifData *d, ExifDataOption o)
{
    if (tt_exif_loaded())
        X.exif_data_unset_option(d, o);
}

void exif_data_load_data(ExifData *d, const unsigned char *b, unsigned int size)
{
    if (tt_exif_loaded())
        X.exif_data_load_data(d, b, size);
}

ExifByteOrder exif_data_get_byte_order(ExifData *d)
{
    return tt_exif_loaded() ? X.exif_data_get_byte_order(d) : EXIF_BYTE_ORDER_MOTOROLA;
}

ExifEntry *exif_content_get_entry(ExifContent *c, ExifTag t)
{
    return tt_exif_loaded() ? X.exif_content_get_entry(c, t) : NULL;
}

ExifShort exif_get_short(const unsigned char *b, ExifByteOrder o)
{
    return tt_exif_load() ? 0 : X.exif_get_short(b, o);
}

ExifLong exif_get_long(const unsigned char *b, ExifByteOrder o)
{
    return tt_exif_load() ? 0 : X.exif_get_long(b, o);
}
