/* make_photo_library DIR N [DUP_EVERY] [SIZE]: writes N real JPEG photos with
 * EXIF (dates, cameras, orientation, GPS on some) under DIR in year/month
 * folders, with an exact duplicate every DUP_EVERY files, for the
 * photo-organiser's integration tests and benchmark. */
#include <stdio.h>
#include <stdlib.h>

#include "photo_fixtures.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR N [DUP_EVERY] [SIZE]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    int dup = argc > 3 ? atoi(argv[3]) : 0;
    int size = argc > 4 ? atoi(argv[4]) : 32;
    if (n < 0 || n > 1000000 || dup < 0 || size < 8 || size > 4096) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    if (pf_mkdirs(argv[1]) != 0 || pf_generate(argv[1], n, size, size * 3 / 4, dup) != 0) {
        fprintf(stderr, "could not write the library under %s\n", argv[1]);
        return 1;
    }
    return 0;
}
