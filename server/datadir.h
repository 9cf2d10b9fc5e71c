/* Why the data directory cannot be used, named: what the start-up says (and
 * exits with) when the store does not open, and what `tether --check-config`
 * reports before a start. Each cause has its own exit code (README.md,
 * "Exit codes"):
 *
 *   3  another server holds it (the lock file tether.lock, with its pid)
 *   4  its parent directory does not exist
 *   5  it, or a component of its path, is not a directory
 *   6  permission denied (to create it, or to read and write it)
 *   7  the file system has no free space
 *
 * The checks follow the start-up: stat, mkdir's parent, access(2) for read,
 * write and search, the lock taken and let go at once (flock LOCK_NB),
 * statvfs for free blocks. They run after tt_store_open() failed, so a
 * healthy start pays nothing; the store's own error stands when none fits. */
#ifndef TT_DATADIR_H
#define TT_DATADIR_H

#include <stddef.h>

typedef enum tt_datadir_state {
    TT_DATADIR_OK = 0,
    TT_DATADIR_HELD = 3,
    TT_DATADIR_NO_PARENT = 4,
    TT_DATADIR_NOT_DIR = 5,
    TT_DATADIR_DENIED = 6,
    TT_DATADIR_FULL = 7,
} tt_datadir_state;

typedef struct tt_datadir_report {
    tt_datadir_state state;
    const char *message; /* one sentence naming the cause; "" when OK */
    char path[1024];     /* the path it is about (the directory, its parent or the lock) */
    long pid;            /* TT_DATADIR_HELD: the holder's pid from the lock file; 0 unknown */
    int exists;          /* the directory exists (else it would be created) */
} tt_datadir_report;

/* Diagnose dir. Never fails; out->state says what was found. */
void tt_datadir_check(const char *dir, tt_datadir_report *out);

/* Free bytes a new store needs before LMDB is asked to create one. */
#define TT_DATADIR_NEW_MIN_FREE (1u << 20)

/* Called before the store opens: when dir holds no store yet (no data.mdb)
 * and its file system (or its parent's) has less than TT_DATADIR_NEW_MIN_FREE
 * bytes free, out->state is TT_DATADIR_FULL. LMDB maps the files it creates,
 * and a page the file system cannot back is a SIGBUS rather than an error
 * (seen on a full tmpfs). An existing store opens on a full disk (reads go
 * on), so it is not refused. */
void tt_datadir_check_new(const char *dir, tt_datadir_report *out);

#endif
