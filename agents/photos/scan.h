/* Scanning a photo library: what is there, taken when, with what, twice?
 *
 * tt_photos_scan() is plain blocking C meant for libuv's thread pool
 * (uv_queue_work): no loop, no globals, nothing shared but the three
 * counters in its options, which it updates and reads atomically. It reads
 * nothing outside the root: the walk goes through openat/fstatat/fdopendir
 * relative to the root's descriptor with O_NOFOLLOW everywhere; symlinks are
 * listed as skipped, never followed; every limit below is enforced.
 *
 * The result is a jansson object (documented at tt_photos_scan) and
 * tt_photos_summary() turns it into bounded text for a model. File names,
 * camera strings and folder names in both are untrusted user data. */
#ifndef TT_PHOTOS_SCAN_H
#define TT_PHOTOS_SCAN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TT_PHOTOS_SCAN_THREADS_MAX 8

/* Limits and progress. Initialise with tt_photos_scan_opts_init(); the
 * pointers belong to the caller and must outlive the scan. */
typedef struct tt_photos_scan_opts {
    int max_depth;          /* folder levels below the root walked (default 16) */
    int64_t max_files;      /* photos examined; more are skipped "file_limit" (100000) */
    int64_t max_entries;    /* directory entries seen in all; then the walk stops (1000000) */
    int64_t max_file_bytes; /* per photo; bigger ones are skipped "too_large" (256 MiB) */
    int64_t max_skipped;    /* skipped entries listed; the rest only counted (1000) */
    int threads; /* reading threads: the caller's and threads it starts and joins (2, at most
                  * TT_PHOTOS_SCAN_THREADS_MAX; one per 32 photos at most) */
    volatile int64_t *done;  /* photos read so far, or NULL */
    volatile int64_t *total; /* photos to read: grows during the walk, final after it, or NULL */
    volatile int *cancel;    /* set non-zero (from any thread) to stop the scan, or NULL */
} tt_photos_scan_opts;

/* The defaults above, with no progress counters and no cancel flag. */
void tt_photos_scan_opts_init(tt_photos_scan_opts *o);

/* Scans the library under rootfd (see tt_photos_open_root in path.h). On 0,
 * *out is a new object the caller frees with json_decref():
 *   photos:     [{path, size, mtime (ISO 8601 UTC), sha256 (hex), format,
 *                 exif (bool), taken ("YYYY-MM-DDTHH:MM:SS", camera local
 *                 time) | null, make | null, model | null, orientation
 *                 (1-8) | null, gps (bool), width | null, height | null}]
 *                sorted by path; width/height are the stored pixel size
 *                (EXIF PixelX/YDimension, else the JPEG SOF / PNG IHDR /
 *                TIFF ImageWidth), before any orientation is applied
 *   duplicates: [[path, ...]] groups of two or more with the same SHA-256
 *   skipped:    [{path, reason}] reason one of "symlink", "not_photo",
 *                "special_file", "too_large", "too_deep", "file_limit",
 *                "entry_limit", "unreadable", "read_error", "changed",
 *                "bad_name", "path_too_long" (at most max_skipped listed)
 *   totals:     {files, bytes, with_exif, with_gps, skipped, duplicate_groups,
 *                duplicate_files, truncated (bool: a limit cut the walk short),
 *                by_year: {"2021": n, ..., "unknown": n},
 *                by_camera: {"Make Model": n, ..., "unknown": n} (at most 100
 *                cameras, the rest under "other"), by_format: {"jpeg": n}}
 * A path that is not valid UTF-8 is skipped "bad_name" and shown with '?'.
 * Errors: TT_ECONFLICT when cancelled (no ECANCELED in protocol/errors.h
 * yet), TT_ENOMEM, TT_EIO if the root cannot be read; *out is then NULL. */
int tt_photos_scan(int rootfd, const tt_photos_scan_opts *opts, json_t **out)
    __attribute__((warn_unused_result));

/* A compact description of a scan result for a model prompt: counts, years,
 * cameras, formats, duplicates, skipped reasons and a few example names, at
 * most max_bytes bytes (>= 256) including the NUL. Names and camera strings
 * appear only as JSON string literals (ASCII, escaped), at most 8 of each,
 * each cut to 48 bytes. Caller frees *out with free(). TT_EINVAL when scan
 * is not a scan result, TT_ENOMEM. */
int tt_photos_summary(const json_t *scan, size_t max_bytes, char **out)
    __attribute__((warn_unused_result));

#endif
