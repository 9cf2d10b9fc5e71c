/* The library walk and the per-photo read (see scan.h).
 *
 * Two passes. The walk lists candidate photos (name, size, inode) and the
 * skipped entries, growing *total as it goes; the read then opens each
 * candidate again beneath the root (its folder once per run of candidates
 * in it), checks it is still the same regular file, hashes it and parses
 * its head, bumping *done, on up to opts->threads threads. The walk holds
 * one descriptor per directory level, a reader one folder and one file;
 * depth is bounded. */
#include "agents/photos/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agents/photos/meta.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

#define DEPTH_HARD_MAX 64 /* whatever the options say: bounds stack and descriptors */
#define CAMERAS_MAX 100

typedef struct cand {
    char *rel;
    dev_t dev;
    ino_t ino;
} cand;

typedef struct photo {
    char *rel;
    int64_t size, mtime;
    char sha[65];
    tt_photos_meta meta;
} photo;

typedef struct scan {
    const tt_photos_scan_opts *o;
    int rootfd;
    cand *cands;
    size_t ncands, capcands;
    photo *photos;
    size_t nphotos;
    json_t *skipped;
    int64_t nskipped, entries;
    int truncated, stop;
    /* the read pass, shared by its threads */
    const char **reasons; /* per candidate: why skipped, or NULL when read */
    size_t next;          /* the next candidate to read (atomic) */
    int err;              /* the first error that ends the scan (atomic) */
} scan;

/* One reading thread's own state: its buffer, its hash and the folder of
 * the candidate it read last (consecutive candidates mostly share it). */
typedef struct reader {
    scan *s;
    unsigned char *buf; /* TT_PHOTOS_HEAD_BYTES */
    EVP_MD_CTX *md;
    char dir[TT_PHOTOS_REL_MAX + 1];
    int dirfd; /* dir opened beneath the root, or -1 */
} reader;

static int cancelled(const scan *s)
{
    return s->o->cancel && __atomic_load_n(s->o->cancel, __ATOMIC_RELAXED);
}

static void bump(volatile int64_t *counter)
{
    if (counter)
        __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

static int is_photo_name(const char *name)
{
    static const char *const exts[] = {"jpg", "jpeg", "png", "heic", "webp", "tif", "tiff"};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot + 1, exts[i]))
            return 1;
    return 0;
}

/* Copies s into out (cap bytes) with every byte of an invalid UTF-8 sequence
 * replaced by '?', so a name that is not UTF-8 can still be shown. */
static void lossy(const char *s, char *out, size_t cap)
{
    size_t i = 0, o = 0, n = strlen(s);
    while (i < n && o + 5 < cap) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (len > n - i || !tt_photos_utf8_valid(s + i, len)) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    out[o] = '\0';
}

static int skip(scan *s, const char *path, const char *reason)
{
    s->nskipped++;
    if (s->nskipped > s->o->max_skipped)
        return TT_OK;
    json_t *e = json_pack("{s:s, s:s}", "path", path, "reason", reason);
    if (!e || json_array_append_new(s->skipped, e))
        return TT_ENOMEM;
    return TT_OK;
}

static int add_cand(scan *s, const char *rel, const struct stat *st)
{
    if (s->ncands == s->capcands) {
        size_t cap = s->capcands ? s->capcands * 2 : 256;
        cand *c = realloc(s->cands, cap * sizeof *c);
        if (!c)
            return TT_ENOMEM;
        s->cands = c;
        s->capcands = cap;
    }
    char *dup = strdup(rel);
    if (!dup)
        return TT_ENOMEM;
    s->cands[s->ncands++] = (cand){dup, st->st_dev, st->st_ino};
    bump(s->o->total);
    return TT_OK;
}

static int walk(scan *s, int dirfd, const char *prefix, int depth);

static int visit(scan *s, int dirfd, const char *prefix, const char *name, int depth)
{
    char rel[TT_PHOTOS_REL_MAX + 1], shown[TT_PHOTOS_REL_MAX + 1];
    int n = snprintf(rel, sizeof rel, "%s%s%s", prefix, *prefix ? "/" : "", name);
    if (n < 0 || (size_t)n >= sizeof rel) {
        lossy(rel, shown, 256);
        return skip(s, shown, "path_too_long");
    }
    if (!tt_photos_utf8_valid(name, strlen(name))) {
        lossy(rel, shown, sizeof shown);
        return skip(s, shown, "bad_name");
    }
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? TT_OK : skip(s, rel, "unreadable");
    if (S_ISLNK(st.st_mode))
        return skip(s, rel, "symlink");
    if (S_ISDIR(st.st_mode)) {
        if (depth >= s->o->max_depth || depth >= DEPTH_HARD_MAX)
            return skip(s, rel, "too_deep");
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return skip(s, rel, errno == ELOOP || errno == ENOTDIR ? "changed" : "unreadable");
        int rc = walk(s, fd, rel, depth + 1);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode))
        return skip(s, rel, "special_file");
    if (!is_photo_name(name))
        return skip(s, rel, "not_photo");
    if ((int64_t)s->ncands >= s->o->max_files) {
        s->truncated = 1;
        return skip(s, rel, "file_limit");
    }
    if (st.st_size > s->o->max_file_bytes)
        return skip(s, rel, "too_large");
    return add_cand(s, rel, &st);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads one directory's names (sorted, for a stable order), then visits them. */
static int walk(scan *s, int dirfd, const char *prefix, int depth)
{
    /* A new open file description, not dup(): a dup shares the directory
     * offset with dirfd, and so with any other scan of the same root. */
    int dup = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0)
            close(dup);
        return *prefix ? skip(s, prefix, "unreadable") : TT_EIO;
    }
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    int rc = TT_OK, read_err = 0;
    while (!s->stop) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            read_err = errno != 0;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (++s->entries > s->o->max_entries) {
            s->truncated = s->stop = 1;
            rc = skip(s, *prefix ? prefix : ".", "entry_limit");
            break;
        }
        if (nnames == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                rc = TT_ENOMEM;
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[nnames] = strdup(de->d_name))) {
            rc = TT_ENOMEM;
            break;
        }
        nnames++;
    }
    if (read_err && rc == TT_OK)
        rc = *prefix ? skip(s, prefix, "read_error") : TT_EIO;
    closedir(d);

    if (nnames)
        qsort(names, nnames, sizeof *names, cmp_str);
    for (size_t i = 0; i < nnames && rc == TT_OK; i++) {
        if (cancelled(s))
            rc = TT_ECONFLICT;
        else
            rc = visit(s, dirfd, prefix, names[i], depth);
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return rc;
}

static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Hashes and parses one candidate. Returns 0 with *reason NULL when p was
 * filled, 0 with a skip reason, or an error that ends the scan. */
/* Opens candidate c for reading: its folder beneath the root as everywhere
 * (no symlink followed), once for a run of candidates in it rather than
 * once per photo, then the file. A descriptor, or -1 with *reason set. */
static int open_cand(reader *w, const cand *c, const char **reason)
{
    const char *slash = strrchr(c->rel, '/'), *leaf = slash ? slash + 1 : c->rel;
    size_t dlen = slash ? (size_t)(slash - c->rel) : 0;
    int rc = TT_OK;
    if (w->dirfd < 0 || strlen(w->dir) != dlen || memcmp(w->dir, c->rel, dlen)) {
        if (w->dirfd >= 0)
            close(w->dirfd);
        w->dirfd = -1;
        memcpy(w->dir, c->rel, dlen);
        w->dir[dlen] = '\0';
        rc = tt_photos_open_dir(w->s->rootfd, w->dir, 0, NULL, &w->dirfd);
    }
    if (rc) {
        w->dirfd = -1;
        *reason = rc == TT_ENOTFOUND ? "changed" : "unreadable";
        return -1;
    }
    int fd = openat(w->dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    int err = errno;
    if (fd < 0)
        *reason = err == EACCES || err == EPERM   ? "unreadable"
                  : err == ENOENT || err == ELOOP ? "changed"
                                                  : "read_error";
    return fd;
}

static int read_photo(reader *w, const cand *c, photo *p, const char **reason)
{
    scan *s = w->s;
    *reason = NULL;
    int rc = TT_OK, fd = open_cand(w, c, reason);
    if (fd < 0)
        return TT_OK;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != c->dev || st.st_ino != c->ino) {
        close(fd);
        *reason = "changed";
        return TT_OK;
    }
    if (st.st_size > s->o->max_file_bytes) {
        close(fd);
        *reason = "too_large"; /* it grew since the walk */
        return TT_OK;
    }
    /* The file as it was opened: st_size bytes (fewer if it shrank), read in
     * TT_PHOTOS_HEAD_BYTES pieces; the first piece feeds both the EXIF parse
     * and the hash. Knowing the size saves a read() that would only find the
     * end, and the read-ahead hint for a file that fits one piece. */
    if (st.st_size > TT_PHOTOS_HEAD_BYTES)
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int64_t total = 0;
    size_t want = st.st_size < TT_PHOTOS_HEAD_BYTES ? (size_t)st.st_size : TT_PHOTOS_HEAD_BYTES;
    ssize_t n = read_full(fd, w->buf, want);
    if (n >= 0) {
        tt_photos_meta_parse(w->buf, (size_t)n, &p->meta);
        if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
            rc = TT_ENOMEM;
    }
    while (n >= 0 && !rc) {
        total += n;
        if (n > 0 && EVP_DigestUpdate(w->md, w->buf, (size_t)n) != 1)
            rc = TT_ENOMEM;
        else if ((size_t)n < want || total >= st.st_size)
            break; /* read_full() comes back short only at end of file */
        else if (cancelled(s))
            rc = TT_ECONFLICT;
        else {
            want = st.st_size - total < TT_PHOTOS_HEAD_BYTES ? (size_t)(st.st_size - total)
                                                             : TT_PHOTOS_HEAD_BYTES;
            n = read_full(fd, w->buf, want);
        }
    }
    if (n < 0 && !rc)
        *reason = "read_error";
    if (!rc && !*reason && EVP_DigestFinal_ex(w->md, md, &mdlen) != 1)
        rc = TT_ENOMEM;
    close(fd);
    if (rc || *reason)
        return rc;

    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen && i < 32; i++) {
        p->sha[2 * i] = hex[md[i] >> 4];
        p->sha[2 * i + 1] = hex[md[i] & 15];
    }
    p->sha[64] = '\0';
    p->rel = c->rel;
    p->size = total;
    p->mtime = (int64_t)st.st_mtim.tv_sec;
    return TT_OK;
}

/* Reads candidates until none is left, or the scan is cancelled or failed;
 * each result goes to the candidate's own slot, so the order of the threads
 * does not show in the result. */
static void *read_some(void *arg)
{
    reader *w = arg;
    scan *s = w->s;
    for (;;) {
        size_t i = __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED);
        if (i >= s->ncands || __atomic_load_n(&s->err, __ATOMIC_RELAXED))
            break;
        int rc = cancelled(s) ? TT_ECONFLICT
                              : read_photo(w, &s->cands[i], &s->photos[i], &s->reasons[i]);
        if (rc) {
            int none = TT_OK;
            __atomic_compare_exchange_n(&s->err, &none, rc, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
            break;
        }
        bump(s->o->done);
    }
    if (w->dirfd >= 0)
        close(w->dirfd);
    w->dirfd = -1;
    return NULL;
}

/* The read pass on up to opts->threads threads: this one and helpers it
 * starts and joins (fewer when there are few photos, or a thread cannot be
 * made). Then the photos read are packed in candidate order and the skipped
 * ones listed, as a single thread would have.
 *
 * The helpers are plain threads, not libuv pool work items, on purpose:
 * this runs inside a pool job, and a pool job cannot queue work itself
 * (uv_queue_work is for the loop thread only), so helpers in the pool would
 * be queued through the loop and joined here: a pool job waiting for pool
 * jobs. libuv's pool has 4 threads; four scans at once (four users) would
 * hold all four, each waiting for a helper that can never start, and with
 * them every other pool user (the registry's fsync, thumbnails, the model
 * calls' preparation). tests/bench/pool_nesting.c shows it: 3 jobs that
 * each join a helper job finish in ms, 4 wait until their timeout. Helpers
 * queued from the loop without a join (the last reader to finish builds the
 * result) cannot deadlock, but would hold two of the four shared threads
 * per scan for its whole read, so two scans would stall every other pool
 * user for seconds; a plain helper holds no pool thread, lives only while
 * its scan's pool job runs (so at most 4 x (threads - 1) exist), and costs
 * one pthread_create per scan. */
static int read_all(scan *s)
{
    size_t want = s->o->threads < 1 ? 1 : (size_t)s->o->threads, nw = 0;
    if (want > TT_PHOTOS_SCAN_THREADS_MAX)
        want = TT_PHOTOS_SCAN_THREADS_MAX;
    if (want > 1 + s->ncands / 32)
        want = 1 + s->ncands / 32;
    reader w[TT_PHOTOS_SCAN_THREADS_MAX];
    pthread_t tid[TT_PHOTOS_SCAN_THREADS_MAX];
    int rc = TT_OK;
    for (; nw < want; nw++) {
        w[nw] = (reader){
            .s = s, .buf = malloc(TT_PHOTOS_HEAD_BYTES), .md = EVP_MD_CTX_new(), .dirfd = -1};
        if (!w[nw].buf || !w[nw].md) {
            free(w[nw].buf);
            EVP_MD_CTX_free(w[nw].md);
            break;
        }
        if (nw > 0 && pthread_create(&tid[nw], NULL, read_some, &w[nw]) != 0) {
            free(w[nw].buf);
            EVP_MD_CTX_free(w[nw].md);
            break; /* the threads made so far do the work */
        }
    }
    if (nw == 0)
        return TT_ENOMEM;
    read_some(&w[0]);
    for (size_t k = 0; k < nw; k++) {
        if (k > 0)
            pthread_join(tid[k], NULL);
        free(w[k].buf);
        EVP_MD_CTX_free(w[k].md);
    }
    rc = __atomic_load_n(&s->err, __ATOMIC_RELAXED);
    for (size_t i = 0; i < s->ncands && !rc; i++) {
        if (s->reasons[i])
            rc = skip(s, s->cands[i].rel, s->reasons[i]);
        else
            s->photos[s->nphotos++] = s->photos[i]; /* i >= nphotos: packs in place */
    }
    return rc;
}

static int cmp_photo_path(const void *a, const void *b)
{
    return strcmp(((const photo *)a)->rel, ((const photo *)b)->rel);
}

static int cmp_photo_sha(const void *a, const void *b)
{
    const photo *x = *(const photo *const *)a, *y = *(const photo *const *)b;
    int c = strcmp(x->sha, y->sha);
    return c ? c : strcmp(x->rel, y->rel);
}

/* One name per camera: model "Canon EOS 5D" from make "Canon", "NIKON D750"
 * from "NIKON CORPORATION" (the model repeats the make's first word), else
 * "Apple iPhone 12"; "unknown" without either. */
static void camera_key(const tt_photos_meta *m, char *out, size_t cap)
{
    size_t ml = strcspn(m->make, " ");
    if (!*m->make && !*m->model)
        snprintf(out, cap, "unknown");
    else if (!*m->model)
        tt_utf8_copy(out, cap, m->make);
    else if (!*m->make || !strncasecmp(m->model, m->make, ml))
        tt_utf8_copy(out, cap, m->model);
    else
        tt_utf8_snprintf(out, cap, "%s %s", m->make, m->model);
}

/* obj[key] += 1; once obj holds max_keys keys, new keys count as "other". */
static int count(json_t *obj, const char *key, size_t max_keys)
{
    json_t *v = json_object_get(obj, key);
    if (!v && max_keys && json_object_size(obj) >= max_keys) {
        key = "other";
        v = json_object_get(obj, key);
    }
    json_int_t n = v ? json_integer_value(v) : 0;
    return json_object_set_new(obj, key, json_integer(n + 1)) ? TT_ENOMEM : TT_OK;
}

static json_t *photo_json(const photo *p)
{
    char mtime[32] = "";
    time_t t = (time_t)p->mtime;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(mtime, sizeof mtime, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const tt_photos_meta *m = &p->meta;
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:b, s:s?, s:s?, s:s?, s:o?, s:b, s:o?, s:o?}",
                     "path", p->rel, "size", (json_int_t)p->size, "mtime", mtime, "sha256", p->sha,
                     "format", m->format, "exif", m->has_exif, "taken", *m->taken ? m->taken : NULL,
                     "make", *m->make ? m->make : NULL, "model", *m->model ? m->model : NULL,
                     "orientation", m->orientation ? json_integer(m->orientation) : NULL, "gps",
                     m->gps, "width", m->width ? json_integer(m->width) : NULL, "height",
                     m->height ? json_integer(m->height) : NULL);
}

static int build(scan *s, json_t **out)
{
    int rc = TT_ENOMEM;
    json_t *photos = json_array(), *dups = json_array(), *years = json_object(),
           *cams = json_object(), *formats = json_object(), *res = NULL;
    const photo **bysha = s->nphotos ? malloc(s->nphotos * sizeof *bysha) : NULL;
    if (!photos || !dups || !years || !cams || !formats || (s->nphotos && !bysha))
        goto fail;

    qsort(s->photos, s->nphotos, sizeof *s->photos, cmp_photo_path);
    int64_t bytes = 0, with_exif = 0, with_gps = 0, dup_files = 0;
    for (size_t i = 0; i < s->nphotos; i++) {
        const photo *p = &s->photos[i];
        char year[5] = "", cam[2 * TT_PHOTOS_TEXT_MAX + 2];
        if (*p->meta.taken)
            memcpy(year, p->meta.taken, 4);
        camera_key(&p->meta, cam, sizeof cam);
        json_t *pj = photo_json(p);
        if (!pj || json_array_append_new(photos, pj) || count(years, *year ? year : "unknown", 0) ||
            count(cams, cam, CAMERAS_MAX) || count(formats, p->meta.format, 0))
            goto fail;
        bytes += p->size;
        with_exif += p->meta.has_exif != 0;
        with_gps += p->meta.gps != 0;
        bysha[i] = p;
    }

    if (s->nphotos)
        qsort(bysha, s->nphotos, sizeof *bysha, cmp_photo_sha);
    for (size_t i = 0; i < s->nphotos;) {
        size_t j = i + 1;
        while (j < s->nphotos && !strcmp(bysha[j]->sha, bysha[i]->sha))
            j++;
        if (j - i > 1) {
            json_t *g = json_array();
            if (!g || json_array_append_new(dups, g))
                goto fail;
            for (size_t k = i; k < j; k++)
                if (json_array_append_new(g, json_string(bysha[k]->rel)))
                    goto fail;
            dup_files += (int64_t)(j - i);
        }
        i = j;
    }

    res = json_pack("{s:o, s:o, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o, s:o}}",
                    "photos", photos, "duplicates", dups, "skipped", s->skipped, "totals", "files",
                    (json_int_t)s->nphotos, "bytes", (json_int_t)bytes, "with_exif",
                    (json_int_t)with_exif, "with_gps", (json_int_t)with_gps, "skipped",
                    (json_int_t)s->nskipped, "duplicate_groups", (json_int_t)json_array_size(dups),
                    "duplicate_files", (json_int_t)dup_files, "truncated", s->truncated, "by_year",
                    years, "by_camera", cams, "by_format", formats);
    photos = dups = years = cams = formats = NULL; /* stolen by json_pack, even on failure */
    if (!res)
        goto fail;
    *out = res;
    rc = TT_OK;
fail:
    json_decref(photos);
    json_decref(dups);
    json_decref(years);
    json_decref(cams);
    json_decref(formats);
    free(bysha);
    return rc;
}

void tt_photos_scan_opts_init(tt_photos_scan_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_depth = 16;
    o->max_files = 100000;
    o->max_entries = 1000000;
    o->max_file_bytes = 256 * 1024 * 1024;
    o->max_skipped = 1000;
    o->threads = 2;
}

int tt_photos_scan(int rootfd, const tt_photos_scan_opts *opts, json_t **out)
{
    *out = NULL;
    tt_photos_scan_opts defaults;
    if (!opts) {
        tt_photos_scan_opts_init(&defaults);
        opts = &defaults;
    }
    scan s = {.o = opts, .rootfd = rootfd};
    if (opts->done)
        __atomic_store_n(opts->done, 0, __ATOMIC_RELAXED);
    if (opts->total)
        __atomic_store_n(opts->total, 0, __ATOMIC_RELAXED);

    int rc = TT_ENOMEM;
    s.skipped = json_array();
    if (!s.skipped)
        goto done;
    rc = cancelled(&s) ? TT_ECONFLICT : walk(&s, rootfd, "", 0);
    if (rc)
        goto done;

    rc = TT_ENOMEM;
    if (s.ncands && (!(s.photos = calloc(s.ncands, sizeof *s.photos)) ||
                     !(s.reasons = calloc(s.ncands, sizeof *s.reasons))))
        goto done;
    rc = s.ncands ? read_all(&s) : TT_OK;
    if (!rc)
        rc = build(&s, out);
done:
    for (size_t i = 0; i < s.ncands; i++)
        free(s.cands[i].rel);
    free(s.cands);
    free(s.photos);
    free(s.reasons);
    json_decref(s.skipped);
    return rc;
}
