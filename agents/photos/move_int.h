/* Private to agents/photos: helpers move.c shares with journal.c and plan.c. */
#ifndef TT_PHOTOS_MOVE_INT_H
#define TT_PHOTOS_MOVE_INT_H

/* tt_photos_move() with the check applied to dest chosen: undo moves files
 * back to source names, which may hold characters we would not create. */
int tt_photos_move_impl(int rootfd, const char *src, const char *dest, unsigned flags,
                        unsigned dest_check);

/* *present = whether rel exists beneath the root (see move.c). */
int tt_photos_present(int rootfd, const char *rel, int *present);

#endif
