/* libexif, loaded when first needed (see exif_lazy.h). Each libexif function
 * Tether calls is defined here under its own name and forwards to the one
 * dlsym() found; the binary does not list libexif.so.12 as needed. These
 * definitions are not exported (an executable exports only what a library it
 * links refers to), so libexif's own calls stay inside libexif. */
#include <libexif/exif-data.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "agents/photos/exif_lazy.h"
#include "protocol/dl.h"
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

static const tt_dl_sym syms[] = {
    TT_DL_SYM(__typeof__(X), exif_data_new, "exif_data_new"),
    TT_DL_SYM(__typeof__(X), exif_data_unref, "exif_data_unref"),
    TT_DL_SYM(__typeof__(X), exif_data_unset_option, "exif_data_unset_option"),
    TT_DL_SYM(__typeof__(X), exif_data_load_data, "exif_data_load_data"),
    TT_DL_SYM(__typeof__(X), exif_data_get_byte_order, "exif_data_get_byte_order"),
    TT_DL_SYM(__typeof__(X), exif_content_get_entry, "exif_content_get_entry"),
    TT_DL_SYM(__typeof__(X), exif_get_short, "exif_get_short"),
    TT_DL_SYM(__typeof__(X), exif_get_long, "exif_get_long"),
};

static tt_dl_lib lib = {.soname = LIBEXIF_SONAME,
                        .syms = syms,
                        .n_syms = sizeof syms / sizeof syms[0],
                        .table = &X,
                        .lock = PTHREAD_MUTEX_INITIALIZER};

int tt_exif_loaded(void)
{
    return tt_dl_loaded(&lib);
}

int tt_exif_load(void)
{
    return tt_dl_load(&lib);
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
