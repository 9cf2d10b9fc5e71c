/* What a photo's first bytes say about it: format, EXIF fields, pixel size.
 *
 * Private to agents/photos (scan.c calls it). Pure: parses a buffer holding
 * the start of a file, no I/O, no globals, safe to call from any thread.
 * Every string it returns was cleaned: valid UTF-8, no control characters,
 * bounded; they remain untrusted text from the file. */
#ifndef TT_PHOTOS_META_H
#define TT_PHOTOS_META_H

#include <stddef.h>
#include <stdint.h>

/* How much of a file's start tt_photos_meta_parse() wants: EXIF lives in a
 * JPEG APP1 segment of at most 64 KiB, and the SOF marker follows the APPn
 * segments; a file whose SOF lies further has no pixel size from it. */
#define TT_PHOTOS_HEAD_BYTES (256 * 1024)
#define TT_PHOTOS_TEXT_MAX 64 /* bytes kept of a make or model string */

typedef struct tt_photos_meta {
    const char *format;                 /* "jpeg", "png", "tiff", "heic", "webp", "unknown" */
    int has_exif;                       /* EXIF data found with at least one entry */
    char taken[20];                     /* "YYYY-MM-DDTHH:MM:SS" (camera local time) or "" */
    char make[TT_PHOTOS_TEXT_MAX + 1];  /* "" when absent */
    char model[TT_PHOTOS_TEXT_MAX + 1]; /* "" when absent */
    int orientation;                    /* 1..8, 0 when absent or out of range */
    int gps;                            /* GPS latitude and longitude present */
    uint32_t width, height;             /* 0 when unknown */
} tt_photos_meta;

/* Fills m from the first len bytes of a file (len may be the whole file).
 * Never fails: what cannot be read is left empty or zero. */
void tt_photos_meta_parse(const unsigned char *head, size_t len, tt_photos_meta *m);

/* Most bytes of an EXIF thumbnail (it lives in one 64 KiB APP1 segment). */
#define TT_PHOTOS_THUMB_EXIF_MAX (64 * 1024)

/* The JPEG thumbnail embedded in a JPEG's EXIF (IFD1), found in the first
 * len bytes of the file: 1 and *out (malloc'd, the caller frees) of *out_len
 * bytes; 0 when there is none (not a JPEG, no EXIF, no JPEG thumbnail) or
 * memory ran out. */
int tt_photos_exif_thumb(const unsigned char *head, size_t len, unsigned char **out,
                         size_t *out_len);

#endif
