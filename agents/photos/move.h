/* Executing a photo move plan inside the library root, journaled and undoable.
 *
 * Every operation is idempotent and checkable, and nothing is ever
 * overwritten: files move with renameat2(RENAME_NOREPLACE), folders are made
 * with mkdirat, and every path is resolved beneath the root descriptor one
 * component at a time without following symlinks (path.h).
 *
 * The journal is plain JSON data the caller persists; this module never
 * stores it. It is an array of entries, one per operation:
 *   {"op": "mkdir", "dest": "2021/07", "final_dest": "2021/07", "state": ...}
 *   {"op": "move", "src": "IMG_1.jpg", "dest": "2021/07/IMG_1.jpg",
 *    "final_dest": "2021/07/IMG_1 (2).jpg", "fp": "...", "state": ...}
 * state is "intent" (recorded, maybe not done), "done" or "undone";
 * final_dest is where the file goes (dest, or a free name after a conflict);
 * fp, set when a move is done, is the moved file's inode, size and mtime;
 * an optional "problem" ("conflict" | "missing" | "changed" | "error") says
 * why an intent could not be carried out, or why a done entry could not be
 * undone (it stays "done", so undo can be tried again once the user has
 * resolved it). Entries are decoded strictly: no other keys.
 *
 * Crash protocol (the caller's side):
 *  1. tt_photos_journal_new() from the approved plan; persist the journal,
 *     every entry "intent", and wait for the commit.
 *  2. For each entry in order, tt_photos_journal_apply(); it marks the entry
 *     "done" in memory. Persist the journal (batching is fine: a lost "done"
 *     is found again on disk by recovery). In batches,
 *     tt_photos_journal_apply_batched() on each entry, then
 *     tt_photos_dirs_sync() once (each folder touched fsynced once), then
 *     persist the batch's "done" entries.
 *  3. On a conflict, tt_photos_journal_resolve() picks a free final_dest;
 *     persist the journal BEFORE applying the entry again. A move whose
 *     final_dest was not persisted first could not be found after a crash.
 *  4. After a crash, tt_photos_journal_recover() looks at the disk for each
 *     "intent" entry (tt_photos_move_check) and either marks it done, or
 *     does it, exactly once; then persist. Running it twice changes nothing.
 *  5. tt_photos_undo() reverses done entries, last first; persist after.
 *     It also decides from the disk, so a crash during undo is undone by
 *     running undo again.
 * Known limit: "done" is inferred as "source absent, destination present";
 * if a user deletes a source whose destination already existed, recovery
 * takes that for done; its fp is then the other file's, which undo moves
 * back. A file changed or replaced after a recorded move is never moved
 * back: its fp no longer matches ("changed"). */
#ifndef TT_PHOTOS_MOVE_H
#define TT_PHOTOS_MOVE_H

#include <jansson.h>
#include <stdint.h>

#define TT_PHOTOS_PLAN_MAX_MOVES 100000  /* moves in one plan */
#define TT_PHOTOS_PLAN_MAX_FOLDERS 10000 /* folders in one plan */
#define TT_PHOTOS_PROBLEMS_MAX 50        /* problems listed by plan validation */
#define TT_PHOTOS_SUFFIX_MAX 999         /* " (2)" .. " (999)" tried by free_name */

/* Flags for operations. */
#define TT_PHOTOS_NOSYNC 1u /* skip the fsync of changed directories (tests) */

/* Folders changed by a batch of operations, to be fsynced once each when the
 * batch ends (tt_photos_dirs_sync) instead of twice per move: what a batch
 * reports done is on disk once the sync returns, which must come before the
 * caller persists those entries as "done". At most TT_PHOTOS_DIRS_MAX are
 * held; adding one more syncs the held ones first. Zero-initialise. */
#define TT_PHOTOS_DIRS_MAX 1024
typedef struct tt_photos_dirs {
    char *rel[TT_PHOTOS_DIRS_MAX]; /* relative folders, "" for the root, each once */
    size_t n;
} tt_photos_dirs;

/* Adds the folder holding rel (a path beneath the root). 0, TT_ENOMEM, or
 * the error of the sync an overflow caused. */
int tt_photos_dirs_add_parent(int rootfd, tt_photos_dirs *d, const char *rel)
    __attribute__((warn_unused_result));

/* fsyncs every folder held (one that is gone is skipped: what it held went
 * with it) and empties the set. 0, or the first error met (TT_EIO, ...). */
int tt_photos_dirs_sync(int rootfd, tt_photos_dirs *d) __attribute__((warn_unused_result));

/* Empties the set without syncing. */
void tt_photos_dirs_clear(tt_photos_dirs *d);

/* What the disk says about a move (tt_photos_move_check). */
typedef enum tt_photos_check {
    TT_PHOTOS_NOT_DONE, /* source present, destination absent */
    TT_PHOTOS_DONE,     /* source absent, destination present */
    TT_PHOTOS_CONFLICT, /* both present */
    TT_PHOTOS_MISSING,  /* neither present */
    TT_PHOTOS_CHECK_LAST
} tt_photos_check;

/* "not_done", "done", "conflict", "missing". Never NULL. */
const char *tt_photos_check_name(tt_photos_check c);

/* What recover or undo did, per entry. */
typedef struct tt_photos_counts {
    int64_t acted;     /* operations carried out now */
    int64_t already;   /* effect already on disk: only the state was updated */
    int64_t conflicts; /* both ends present: left alone, never overwritten */
    int64_t missing;   /* neither end present */
    int64_t kept;      /* undo: created folders left because not empty */
    int64_t failed;    /* OS errors (EIO, permissions, a symlink in the path) */
} tt_photos_counts;

/* Makes folder rel (and its missing parents) beneath rootfd, never through a
 * symlink. An existing folder is success. *created (if not NULL) counts the
 * folders made. TT_EFORBIDDEN for a symlink in the path, TT_EINVAL for a bad
 * path or a file in the way, TT_EIO. */
int tt_photos_mkdir(int rootfd, const char *rel, int *created, unsigned flags)
    __attribute__((warn_unused_result));

/* Moves regular file src to dest (whose folder must exist). Never replaces:
 * TT_ECONFLICT when dest exists, TT_ENOTFOUND when src does not,
 * TT_EFORBIDDEN for a symlink (as src or in a path), TT_EINVAL for bad paths
 * or a src that is not a regular file, TT_EIO (including a filesystem
 * without RENAME_NOREPLACE: there is no unsafe fallback). */
int tt_photos_move(int rootfd, const char *src, const char *dest, unsigned flags)
    __attribute__((warn_unused_result));

/* Looks at both ends of a move without changing anything. 0 and *out, or
 * TT_EINVAL / TT_EFORBIDDEN (symlink in a path) / TT_EIO. A missing parent
 * folder counts as absent. */
int tt_photos_move_check(int rootfd, const char *src, const char *dest, tt_photos_check *out)
    __attribute__((warn_unused_result));

/* A free name near dest: dest itself if absent, else "name (2).ext", then
 * (3)... up to TT_PHOTOS_SUFFIX_MAX. Writes it to out (outlen bytes).
 * TT_EFULL when none is free, TT_ETOOLARGE when out is too small. */
int tt_photos_free_name(int rootfd, const char *dest, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* Checks a plan {"folders": [rel...], "moves": [{"src": rel, "dest": rel}]}
 * against the disk: paths relative, clean, no '..', no symlink in any
 * existing part; sources are regular files; no source or destination used
 * twice, no destination that is another move's source; each destination's
 * folder is in folders (or a parent of one) or already exists; within the
 * size limits above. Returns 0, or TT_EINVAL with *problems (caller frees)
 * an array of up to TT_PHOTOS_PROBLEMS_MAX {path, reason}. A destination
 * that exists is not a problem here: it is a conflict when applied. */
int tt_photos_plan_validate(int rootfd, const json_t *plan, json_t **problems)
    __attribute__((warn_unused_result));

/* Validates the plan (as above, *problems on TT_EINVAL) and builds its
 * journal: a mkdir entry for each folder that does not exist yet, parents
 * first, then one move entry per move in plan order, all "intent". Folders
 * that already exist get no entry, so undo never removes them. Caller frees
 * *journal with json_decref(). */
int tt_photos_journal_new(int rootfd, const json_t *plan, json_t **journal, json_t **problems)
    __attribute__((warn_unused_result));

/* Carries out one "intent" entry if the disk says it is not done yet, and
 * marks it "done" (a "done" or "undone" entry is left alone: 0). On a
 * conflict or a missing source the entry stays "intent" with a "problem"
 * and the result is TT_ECONFLICT or TT_ENOTFOUND. *acted (if not NULL) is 1
 * when something changed on disk. TT_EINVAL for a malformed entry. */
int tt_photos_journal_apply(int rootfd, json_t *entry, unsigned flags, int *acted)
    __attribute__((warn_unused_result));

/* tt_photos_journal_apply() without its fsyncs: the folders it changed (or,
 * for an entry the disk shows already done, would have) go into dirs, to be
 * synced by tt_photos_dirs_sync() before the caller persists the batch. */
int tt_photos_journal_apply_batched(int rootfd, json_t *entry, tt_photos_dirs *dirs, int *acted)
    __attribute__((warn_unused_result));

/* For a move entry in conflict: sets final_dest to a free name next to dest
 * (tt_photos_free_name) and clears the problem. The caller persists the
 * journal before applying the entry again. */
int tt_photos_journal_resolve(int rootfd, json_t *entry) __attribute__((warn_unused_result));

/* After a crash: applies every "intent" entry in order, each exactly once
 * (what the disk shows done is only marked). Adds to *counts. Returns 0, or
 * the first OS error met (the others are still attempted); conflicts and
 * missing files are counted, not errors. TT_EINVAL for a malformed journal,
 * before anything is touched. */
int tt_photos_journal_recover(int rootfd, json_t *journal, tt_photos_counts *counts, unsigned flags)
    __attribute__((warn_unused_result));

/* Undoes the journal, last entry first: each move that the disk shows done
 * goes back to its source (never overwriting), each created folder is
 * removed if empty (kept otherwise), and entries become "undone". A move
 * that cannot be undone stays "done" with a problem: "conflict" (a file is
 * at the source again), "missing" (the moved file is gone), "changed" (it
 * differs from the file moved), "error"; a move never made (an intent whose
 * ends are both absent) becomes "undone". Running it again retries only
 * what is left. Returns as tt_photos_journal_recover. */
int tt_photos_undo(int rootfd, json_t *journal, tt_photos_counts *counts, unsigned flags)
    __attribute__((warn_unused_result));

#endif
