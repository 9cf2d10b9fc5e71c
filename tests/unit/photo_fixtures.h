/* Test helper: a small photo library of real files, made by the tests.
 *
 * JPEGs are encoded with libjpeg and carry EXIF built with libexif; the PNG
 * is written by hand (IHDR, a stored-deflate IDAT, IEND); the TIFF is the
 * TIFF structure libexif saves. The library sits in <base>/lib, next to
 * <base>/outside, which symlinks in the library point at. pf_expected lists
 * what a scan must find in each photo. */
#ifndef TT_PHOTO_FIXTURES_H
#define TT_PHOTO_FIXTURES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct photo_fixture {
    char base[64];    /* the mkdtemp folder */
    char root[96];    /* base/lib: the library */
    char outside[96]; /* base/outside: never to be read by a scan */
} photo_fixture;

#define PF_LOCKED 1u /* add locked.jpg with mode 000 */

/* EXIF to attach to a generated image; NULL strings and zeros are left out. */
typedef struct pf_exif {
    const char *date_original; /* "YYYY:MM:DD HH:MM:SS" in the EXIF IFD */
    const char *date_time;     /* same format, in IFD0 */
    const char *make, *model;
    int orientation;           /* 1..8 */
    int gps;                   /* add GPS latitude/longitude (and refs) */
    uint32_t pixel_x, pixel_y; /* PixelX/YDimension */
    uint32_t image_w, image_h; /* ImageWidth/ImageLength in IFD0 (TIFF) */
    int motorola;              /* big-endian EXIF */
    int thumb;                 /* embed a 16x12 JPEG thumbnail (IFD1) */
} pf_exif;

typedef struct pf_jpeg {
    int w, h;
    unsigned seed;   /* pixel pattern: different seeds, different bytes */
    int progressive; /* SOF2 instead of SOF0 */
    int jfif;        /* write the JFIF APP0 before the EXIF APP1 */
    const pf_exif *exif;
} pf_jpeg;

/* What a scan must report for one photo of the fixture. */
typedef struct pf_expect {
    const char *path, *format, *taken, *make, *model;
    int orientation, gps, exif;
    int width, height;
} pf_expect;

extern const pf_expect pf_expected[];
extern const size_t pf_nexpected;

/* Builds the library; 0 on success. photo_fixture_remove() deletes it all. */
int photo_fixture_build(photo_fixture *f, unsigned flags);
void photo_fixture_remove(photo_fixture *f);

int pf_write_jpeg(const char *path, const pf_jpeg *spec);
int pf_write_png(const char *path, int w, int h, unsigned seed);
int pf_write_tiff(const char *path, const pf_exif *exif);
int pf_copy(const char *from, const char *to);
int pf_mkdirs(const char *path); /* mkdir -p */

/* The SHA-256 of a file as hex. */
int pf_sha256_file(const char *path, char hex[65]);

/* Everything under root as {"rel/path": "sha256:<hex>" | "dir" |
 * "link:<target>" | "unreadable"}, to compare layouts byte for byte. */
json_t *pf_tree(const char *root);

/* n generated photos (w x h, EXIF on most, a duplicate every dup_every)
 * spread over year/month folders under root, for measurements. */
int pf_generate(const char *root, int n, int w, int h, int dup_every);

#endif
