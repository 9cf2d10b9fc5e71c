/* Format sniffing, JPEG/PNG headers and EXIF through libexif (see meta.h).
 *
 * libexif parses at most 64 KiB of EXIF (it caps the length itself) and is
 * given only the APP1 segment of a JPEG or the start of a TIFF. Its
 * FOLLOW_SPECIFICATION option is turned off: with it, libexif "fixes" data on
 * load by inventing mandatory tags, DateTime set to now among them. */
#include "agents/photos/meta.h"

#include <libexif/exif-data.h>
#include <stdlib.h>
#include <string.h>

#include "agents/photos/path.h"

static const unsigned char EXIF_HDR[6] = {'E', 'x', 'i', 'f', 0, 0};
#define EXIF_CAP 0xfffe /* libexif never reads further */

static uint32_t be16(const unsigned char *p)
{
    return ((uint32_t)p[0] << 8) | p[1];
}

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static const char *sniff(const unsigned char *h, size_t n)
{
    if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff)
        return "jpeg";
    if (n >= 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8))
        return "png";
    if (n >= 4 && (!memcmp(h, "II*\0", 4) || !memcmp(h, "MM\0*", 4)))
        return "tiff";
    if (n >= 12 && !memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WEBP", 4))
        return "webp";
    if (n >= 12 && !memcmp(h + 4, "ftyp", 4)) {
        static const char *const brands[] = {"heic", "heix", "heim", "heis", "hevc",
                                             "hevx", "mif1", "msf1", "avif"};
        for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++)
            if (!memcmp(h + 8, brands[i], 4))
                return i == 8 ? "avif" : "heic";
    }
    return "unknown";
}

/* Copies an EXIF ASCII value as clean text: stops at NUL, keeps valid UTF-8
 * sequences, turns other bytes and control characters into '?', trims
 * spaces, and stops before TT_PHOTOS_TEXT_MAX bytes. */
static void copy_text(char *dst, const ExifEntry *e)
{
    dst[0] = '\0';
    if (!e || !e->data || (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED))
        return;
    const char *s = (const char *)e->data;
    size_t n = strnlen(s, e->size), i = 0, o = 0;
    while (i < n && s[i] == ' ')
        i++;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (len > n - i || !tt_photos_utf8_valid(s + i, len))
            len = 0;
        if (o + (len ? len : 1) > TT_PHOTOS_TEXT_MAX)
            break;
        if (len == 0 || (len == 1 && (c < 0x20 || c == 0x7f))) {
            dst[o++] = '?';
            i++;
        } else {
            memcpy(dst + o, s + i, len);
            o += len;
            i += len;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

static int get_uint(const ExifEntry *e, ExifByteOrder bo, uint32_t *v)
{
    if (!e || !e->data || e->components < 1)
        return 0;
    if (e->format == EXIF_FORMAT_SHORT && e->size >= 2) {
        *v = exif_get_short(e->data, bo);
        return 1;
    }
    if (e->format == EXIF_FORMAT_LONG && e->size >= 4) {
        *v = exif_get_long(e->data, bo);
        return 1;
    }
    return 0;
}

static int num(const char *s, int n, int lo, int hi)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi ? v : -1;
}

/* "YYYY:MM:DD HH:MM:SS" (EXIF 2.3, 4.6.4) to ISO 8601 without a zone: EXIF
 * dates are the camera's local time. Blank or zeroed dates are absent. */
static int exif_date(const ExifEntry *e, char out[20])
{
    if (!e || !e->data || e->format != EXIF_FORMAT_ASCII || e->size < 19)
        return 0;
    const char *s = (const char *)e->data;
    int y = num(s, 4, 1, 9999), mo = num(s + 5, 2, 1, 12), d = num(s + 8, 2, 1, 31);
    int h = num(s + 11, 2, 0, 23), mi = num(s + 14, 2, 0, 59), se = num(s + 17, 2, 0, 60);
    int seps = (s[4] == ':' || s[4] == '-') && s[7] == s[4] && (s[10] == ' ' || s[10] == 'T') &&
               s[13] == ':' && s[16] == ':';
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0 || !seps)
        return 0;
    memcpy(out, s, 19);
    out[4] = out[7] = '-';
    out[10] = 'T';
    out[19] = '\0';
    return 1;
}

static void read_exif(const unsigned char *d, size_t n, tt_photos_meta *m)
{
    ExifData *ed = exif_data_new();
    if (!ed)
        return;
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, d, (unsigned int)(n > EXIF_CAP ? EXIF_CAP : n));
    ExifByteOrder bo = exif_data_get_byte_order(ed);

    unsigned entries = 0;
    for (int i = 0; i < EXIF_IFD_COUNT; i++)
        entries += ed->ifd[i] ? ed->ifd[i]->count : 0;
    m->has_exif = entries > 0;

    ExifContent *ifd0 = ed->ifd[EXIF_IFD_0], *exif = ed->ifd[EXIF_IFD_EXIF],
                *gps = ed->ifd[EXIF_IFD_GPS];
    if (!exif_date(exif_content_get_entry(exif, EXIF_TAG_DATE_TIME_ORIGINAL), m->taken))
        exif_date(exif_content_get_entry(ifd0, EXIF_TAG_DATE_TIME), m->taken);
    copy_text(m->make, exif_content_get_entry(ifd0, EXIF_TAG_MAKE));
    copy_text(m->model, exif_content_get_entry(ifd0, EXIF_TAG_MODEL));

    uint32_t v;
    if (get_uint(exif_content_get_entry(ifd0, EXIF_TAG_ORIENTATION), bo, &v) && v >= 1 && v <= 8)
        m->orientation = (int)v;
    m->gps = exif_content_get_entry(gps, (ExifTag)EXIF_TAG_GPS_LATITUDE) &&
             exif_content_get_entry(gps, (ExifTag)EXIF_TAG_GPS_LONGITUDE);

    uint32_t w = 0, h = 0;
    if (get_uint(exif_content_get_entry(exif, EXIF_TAG_PIXEL_X_DIMENSION), bo, &w) &&
        get_uint(exif_content_get_entry(exif, EXIF_TAG_PIXEL_Y_DIMENSION), bo, &h) && w && h) {
        m->width = w;
        m->height = h;
    } else if (!strcmp(m->format, "tiff") &&
               get_uint(exif_content_get_entry(ifd0, EXIF_TAG_IMAGE_WIDTH), bo, &w) &&
               get_uint(exif_content_get_entry(ifd0, EXIF_TAG_IMAGE_LENGTH), bo, &h) && w && h) {
        m->width = w;
        m->height = h;
    }
    exif_data_unref(ed);
}

static int is_sof(unsigned char mk)
{
    return mk >= 0xc0 && mk <= 0xcf && mk != 0xc4 && mk != 0xc8 && mk != 0xcc;
}

/* Walks the JPEG marker segments up to the scan data: the first APP1 that
 * holds EXIF (returned, its length in *exif_len), and the frame header
 * (SOFn) for the pixel size (*w, *ht; 0 when not found). */
static const unsigned char *jpeg_walk(const unsigned char *h, size_t n, size_t *exif_len,
                                      uint32_t *w, uint32_t *ht)
{
    const unsigned char *exif = NULL;
    size_t i = 2;
    *exif_len = 0;
    *w = *ht = 0;
    while (i + 4 <= n) {
        if (h[i] != 0xff)
            break; /* lost sync: not a marker */
        unsigned char mk = h[i + 1];
        if (mk == 0xff) { /* fill byte */
            i++;
            continue;
        }
        if (mk == 0xd8 || mk == 0x01 || (mk >= 0xd0 && mk <= 0xd7)) {
            i += 2;
            continue;
        }
        if (mk == 0xd9 || mk == 0xda)
            break;
        size_t seglen = be16(h + i + 2);
        if (seglen < 2)
            break;
        const unsigned char *seg = h + i + 4;
        size_t datalen = seglen - 2, avail = n - (i + 4);
        if (mk == 0xe1 && !exif && datalen >= 6 && datalen <= avail && !memcmp(seg, EXIF_HDR, 6)) {
            exif = seg;
            *exif_len = datalen;
        } else if (is_sof(mk) && datalen >= 5 && avail >= 5 && !*w) {
            *ht = be16(seg + 1);
            *w = be16(seg + 3);
        }
        i += 2 + seglen;
    }
    return exif;
}

static void parse_jpeg(const unsigned char *h, size_t n, tt_photos_meta *m)
{
    size_t exif_len;
    uint32_t w, ht;
    const unsigned char *exif = jpeg_walk(h, n, &exif_len, &w, &ht);
    if (exif)
        read_exif(exif, exif_len, m);
    if (!m->width && w && ht) {
        m->width = w;
        m->height = ht;
    }
}

int tt_photos_exif_thumb(const unsigned char *head, size_t len, unsigned char **out,
                         size_t *out_len)
{
    size_t exif_len;
    uint32_t w, ht;
    *out = NULL;
    *out_len = 0;
    if (strcmp(sniff(head, len), "jpeg") != 0)
        return 0;
    const unsigned char *exif = jpeg_walk(head, len, &exif_len, &w, &ht);
    ExifData *ed = exif ? exif_data_new() : NULL;
    if (!ed)
        return 0;
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, exif, (unsigned int)(exif_len > EXIF_CAP ? EXIF_CAP : exif_len));
    /* Only a JPEG thumbnail (SOI first) is served: the page shows it as is. */
    if (ed->data && ed->size >= 4 && ed->size <= TT_PHOTOS_THUMB_EXIF_MAX && ed->data[0] == 0xff &&
        ed->data[1] == 0xd8 && (*out = malloc(ed->size)) != NULL) {
        memcpy(*out, ed->data, ed->size);
        *out_len = ed->size;
    }
    exif_data_unref(ed);
    return *out != NULL;
}

static void parse_tiff(const unsigned char *h, size_t n, tt_photos_meta *m)
{
    /* libexif wants the APP1 form: "Exif\0\0" then the TIFF structure. IFDs
     * past the first 64 KiB of the file are out of its reach. */
    size_t take = n > EXIF_CAP - sizeof EXIF_HDR ? EXIF_CAP - sizeof EXIF_HDR : n;
    unsigned char *buf = malloc(take + sizeof EXIF_HDR);
    if (!buf)
        return;
    memcpy(buf, EXIF_HDR, sizeof EXIF_HDR);
    memcpy(buf + sizeof EXIF_HDR, h, take);
    read_exif(buf, take + sizeof EXIF_HDR, m);
    free(buf);
}

void tt_photos_meta_parse(const unsigned char *head, size_t len, tt_photos_meta *m)
{
    memset(m, 0, sizeof *m);
    m->format = sniff(head, len);
    if (!strcmp(m->format, "jpeg")) {
        parse_jpeg(head, len, m);
    } else if (!strcmp(m->format, "tiff")) {
        parse_tiff(head, len, m);
    } else if (!strcmp(m->format, "png")) {
        /* The signature, then IHDR first: length 13, type, width, height. */
        if (len >= 24 && be32(head + 8) == 13 && !memcmp(head + 12, "IHDR", 4)) {
            m->width = be32(head + 16);
            m->height = be32(head + 20);
            if (m->width > 0x7fffffff || m->height > 0x7fffffff || !m->width || !m->height)
                m->width = m->height = 0;
        }
    }
}
