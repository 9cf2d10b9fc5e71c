/* What the photo organiser's file work costs: scan (warm and cold cache),
 * summary, journal, execution and undo of a plan moving every photo, on a
 * generated library of real JPEGs. Each phase runs in a child process so its
 * peak RSS is its own (wait4).
 *
 *   TT_PHOTOS_BENCH=1000 TT_PHOTOS_BENCH_SIZE=1600x1200 ./test_photos_bench
 *
 * Without TT_PHOTOS_BENCH it runs a 40-photo smoke test. */
#define _GNU_SOURCE /* nftw, wait4 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/photos/move.h"
#include "agents/photos/path.h"
#include "agents/photos/scan.h"
#include "photo_fixtures.h"
#include "protocol/errors.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int evict(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type == FTW_F) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            (void)fdatasync(fd); /* dirty pages are not dropped */
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    return 0;
}

typedef enum phase { BASELINE, SCAN, FULL } phase;

/* A plan moving every photo of scan to sorted/<year>/<n>.jpg. */
static json_t *plan_every_photo(const json_t *scan)
{
    json_t *folders = json_array(), *moves = json_array(), *seen = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(scan, "photos"), i, p)
    {
        const char *taken = json_string_value(json_object_get(p, "taken"));
        char year[5] = "none", dir[64], dest[128];
        if (taken)
            snprintf(year, sizeof year, "%.4s", taken);
        snprintf(dir, sizeof dir, "sorted/%s", year);
        if (!json_object_get(seen, dir)) {
            json_object_set_new(seen, dir, json_true());
            json_array_append_new(folders, json_string(dir));
        }
        snprintf(dest, sizeof dest, "%s/%05zu.jpg", dir, i);
        json_array_append_new(
            moves, json_pack("{s:O, s:s}", "src", json_object_get(p, "path"), "dest", dest));
    }
    json_decref(seen);
    return json_pack("{s:o, s:o}", "folders", folders, "moves", moves);
}

/* In the child: scans the library under fd into *scan, reports into line;
 * returns the length written. */
static int time_scan(int fd, json_t **scan, char *line, size_t n)
{
    double t0 = now();
    if (tt_photos_scan(fd, NULL, scan))
        _exit(3);
    double t1 = now();
    json_t *tot = json_object_get(*scan, "totals");
    double mb = (double)json_integer_value(json_object_get(tot, "bytes")) / 1048576.0;
    json_int_t files = json_integer_value(json_object_get(tot, "files"));
    return snprintf(line, n, "scan %lld photos, %.1f MB in %.3f s (%.0f photos/s, %.0f MB/s)",
                    (long long)files, mb, t1 - t0, (double)files / (t1 - t0), mb / (t1 - t0));
}

/* In the child: the summary, then a plan moving every photo journalled,
 * executed and undone, each timed into line. */
static void time_summary_and_moves(int fd, const json_t *scan, char *line, size_t n)
{
    char *sum;
    double t2 = now();
    if (tt_photos_summary(scan, 4096, &sum))
        _exit(4);
    double t3 = now();
    json_t *plan = plan_every_photo(scan);
    json_t *j = NULL, *problems = NULL, *entry;
    size_t i;
    double t4 = now();
    if (tt_photos_journal_new(fd, plan, &j, &problems))
        _exit(5);
    double t5 = now();
    json_array_foreach(j, i, entry)
    {
        if (tt_photos_journal_apply(fd, entry, 0, NULL))
            _exit(6);
    }
    double t6 = now();
    tt_photos_counts c = {0};
    if (tt_photos_undo(fd, j, &c, 0) || c.failed || c.conflicts)
        _exit(7);
    double t7 = now();
    snprintf(line, n,
             "; summary %zu bytes in %.3f s; journal of %zu entries in %.3f s; "
             "executed with fsync in %.3f s; undone in %.3f s",
             strlen(sum), t3 - t2, json_array_size(j), t5 - t4, t6 - t5, t7 - t6);
    free(sum);
    json_decref(j);
    json_decref(plan);
}

/* The child's side of a phase: does the work, writes its report line to wfd
 * and exits (non-zero on a failure). */
__attribute__((noreturn)) static void child_phase(const char *root, phase ph, int wfd)
{
    char line[1024] = "ok";
    if (ph != BASELINE) {
        int fd = -1;
        json_t *scan = NULL;
        if (tt_photos_open_root(root, &fd))
            _exit(2);
        int k = time_scan(fd, &scan, line, sizeof line);
        if (ph == FULL)
            time_summary_and_moves(fd, scan, line + k, sizeof line - (size_t)k);
        json_decref(scan);
        close(fd);
    }
    FILE *w = fdopen(wfd, "w");
    fputs(line, w);
    fclose(w);
    _exit(0);
}

/* Runs one phase in a child: returns its report line and peak RSS in KiB. */
static void run_phase(const char *root, phase ph, char *report, size_t n, long *rss_kib)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_phase(root, ph, fds[1]);
    }
    close(fds[1]);
    FILE *r = fdopen(fds[0], "r");
    size_t got = fread(report, 1, n - 1, r);
    report[got] = '\0';
    fclose(r);
    int status;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("phase %d failed: status %d", ph, status);
    *rss_kib = ru.ru_maxrss;
}

static void test_photos_bench(void **state)
{
    const char *env = getenv("TT_PHOTOS_BENCH"), *size = getenv("TT_PHOTOS_BENCH_SIZE");
    int n = env ? atoi(env) : 40, w = 640, h = 480;
    if (size && sscanf(size, "%dx%d", &w, &h) != 2)
        fail_msg("TT_PHOTOS_BENCH_SIZE is WxH");
    char base[] = "/tmp/tt_photos_bench_XXXXXX";
    assert_non_null(mkdtemp(base));
    double t0 = now();
    assert_int_equal(pf_generate(base, n, w, h, 20), 0);
    printf("generated %d photos of %dx%d in %.1f s\n", n, w, h, now() - t0);

    char report[1024];
    long rss;
    run_phase(base, BASELINE, report, sizeof report, &rss);
    printf("baseline child: max RSS %ld KiB\n", rss);
    run_phase(base, SCAN, report, sizeof report, &rss);
    printf("warm cache: %s; max RSS %ld KiB\n", report, rss);
    nftw(base, evict, 16, FTW_PHYS);
    run_phase(base, SCAN, report, sizeof report, &rss);
    printf("cold cache (fadvise DONTNEED): %s; max RSS %ld KiB\n", report, rss);
    json_t *before = pf_tree(base);
    run_phase(base, FULL, report, sizeof report, &rss);
    printf("full: %s; max RSS %ld KiB\n", report, rss);
    json_t *after = pf_tree(base);
    assert_true(json_equal(before, after)); /* undo restored every byte */
    json_decref(before);
    json_decref(after);

    photo_fixture f = {0};
    snprintf(f.base, sizeof f.base, "%s", base);
    photo_fixture_remove(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_photos_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
