/* agents/photos/thumb.c and meta.c's tt_photos_exif_thumb: the EXIF
 * thumbnail of a JPEG that has one, else the file under the cap; paths out of
 * the library, symlinks, folders and non-images refused; garbage survived. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/photos/meta.h"
#include "agents/photos/thumb.h"
#include "photo_fixtures.h"

typedef struct lib {
    char root[64], file0[160], file1[160];
} lib;

static void lib_make(lib *l)
{
    snprintf(l->root, sizeof l->root, "/tmp/tt-thumb-XXXXXX");
    assert_non_null(mkdtemp(l->root));
    assert_int_equal(pf_generate(l->root, 2, 32, 24, 0), 0);
    snprintf(l->file0, sizeof l->file0, "%s/2015/01/IMG_00000.jpg", l->root);
    snprintf(l->file1, sizeof l->file1, "%s/2016/01/IMG_00001.jpg", l->root);
}

static void lib_remove(lib *l)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", l->root);
    assert_int_equal(system(cmd), 0);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_photos_thumb_exif_or_file(void **state)
{
    (void)state;
    lib l;
    lib_make(&l);
    char why[512];
    tt_photos_thumb t;
    /* IMG_00000 carries a 16x12 EXIF thumbnail: served even under a tiny cap. */
    assert_int_equal(tt_photos_thumb_read(l.root, "2015/01/IMG_00000.jpg", 10, &t, why, sizeof why),
                     TT_THUMB_OK);
    assert_true(t.from_exif);
    assert_string_equal(t.type, "image/jpeg");
    assert_true(t.len > 4 && (long)t.len < file_size(l.file0));
    assert_true(t.data[0] == 0xff && t.data[1] == 0xd8);
    free(t.data);
    /* IMG_00001 has none: the file itself, under the cap; 413 over it. */
    assert_int_equal(
        tt_photos_thumb_read(l.root, "2016/01/IMG_00001.jpg", 1 << 20, &t, why, sizeof why),
        TT_THUMB_OK);
    assert_false(t.from_exif);
    assert_int_equal((long)t.len, file_size(l.file1));
    free(t.data);
    assert_int_equal(
        tt_photos_thumb_read(l.root, "2016/01/IMG_00001.jpg", 100, &t, why, sizeof why),
        TT_THUMB_TOO_LARGE);
    assert_null(t.data);
    assert_non_null(strstr(why, "no EXIF thumbnail"));
    lib_remove(&l);
}

static void test_photos_thumb_refusals(void **state)
{
    (void)state;
    lib l;
    lib_make(&l);
    char why[512], path[200];
    tt_photos_thumb t;
    snprintf(path, sizeof path, "%s/notes.txt", l.root);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not a photo\n", fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/link.jpg", l.root);
    assert_int_equal(symlink(l.file0, path), 0); /* inside the library, still refused */
    snprintf(path, sizeof path, "%s/dirlink", l.root);
    assert_int_equal(symlink(l.root, path), 0);
    static const struct {
        const char *rel;
        tt_photos_thumb_rc rc;
    } cases[] = {
        {"../x.jpg", TT_THUMB_BAD_PATH},
        {"2015/../../x.jpg", TT_THUMB_BAD_PATH},
        {"/etc/passwd", TT_THUMB_BAD_PATH},
        {"", TT_THUMB_BAD_PATH},
        {"2015//01/IMG_00000.jpg", TT_THUMB_BAD_PATH},
        {"link.jpg", TT_THUMB_FORBIDDEN},
        {"dirlink/2015/01/IMG_00000.jpg", TT_THUMB_FORBIDDEN},
        {"notes.txt", TT_THUMB_NOT_IMAGE},
        {"2015", TT_THUMB_NOT_IMAGE},
        {"missing.jpg", TT_THUMB_NOT_FOUND},
        {"nope/missing.jpg", TT_THUMB_NOT_FOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why[0] = '\0';
        tt_photos_thumb_rc rc =
            tt_photos_thumb_read(l.root, cases[i].rel, 1 << 20, &t, why, sizeof why);
        if (rc != cases[i].rc)
            fail_msg("%s: %d, want %d (%s)", cases[i].rel, rc, cases[i].rc, why);
        assert_null(t.data);
        assert_true(why[0] != '\0');
    }
    assert_int_equal(
        tt_photos_thumb_read("/nonexistent-tt-lib", "a.jpg", 1 << 20, &t, why, sizeof why),
        TT_THUMB_NOT_FOUND);
    lib_remove(&l);
}

static void test_photos_exif_thumb_survives_garbage(void **state)
{
    (void)state;
    unsigned char buf[4096];
    unsigned char *out;
    size_t n;
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 24);
        }
        /* a JPEG start and an APP1 "Exif" header, then noise */
        static const unsigned char start[12] = {0xff, 0xd8, 0xff, 0xe1, 0x0f, 0xa0,
                                                'E',  'x',  'i',  'f',  0,    0};
        memcpy(buf, start, sizeof start);
        if (tt_photos_exif_thumb(buf, sizeof buf - (size_t)round, &out, &n)) {
            assert_true(n >= 4 && out[0] == 0xff && out[1] == 0xd8);
            free(out);
        }
    }
    assert_int_equal(tt_photos_exif_thumb((const unsigned char *)"\x89PNG", 4, &out, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_photos_thumb_exif_or_file),
        cmocka_unit_test(test_photos_thumb_refusals),
        cmocka_unit_test(test_photos_exif_thumb_survives_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
