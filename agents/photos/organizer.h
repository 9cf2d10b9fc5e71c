/* Inside the photo organiser (organizer.c, organizer_plan.c,
 * organizer_execute.c); other code uses tt_agent_photo_organizer only. */
#ifndef TT_PHOTO_ORGANIZER_H
#define TT_PHOTO_ORGANIZER_H

#include <stddef.h>
#include <jansson.h>

#include "agents/engine/engine.h"

const char *tt_photos_data_str(tt_run *run, const char *key);
void tt_photos_data_set(tt_run *run, const char *key, json_t *v);

/* Open the session's library as a root descriptor: photos_root/<tenant>/<user>,
 * or photos_root/<user> without a tenant (tenant "default", or "local" in open
 * mode). A tenant or user name that is not a safe folder name
 * (tt_photos_owner_check) is TT_EINVAL, a user without a tenant named like a
 * key's tenant TT_EFORBIDDEN; why (size n) says so in words for the user. */
int tt_photos_library(tt_run *run, int *fd, char *why, size_t n);

/* Check a proposed plan against the scan in data: every src a scanned photo,
 * once; every dest a clean relative path, unique, inside a planned folder;
 * folders clean. On success *tree is the folder tree with counts
 * ([{name, count, children, files?, files_more?}], new reference): count is
 * the photos a folder and its subfolders get; files the moves into the
 * folder itself ({src, dest}), in the plan's order, up to
 * TT_PHOTOS_PREVIEW_BYTES for the whole tree; files_more the moves into it
 * left out of that preview. TT_EINVAL with why otherwise. */
#define TT_PHOTOS_PREVIEW_BYTES (256u << 10)
int tt_photos_plan_check(json_t *data, json_t *plan, char *why, size_t n, json_t **tree);

/* The journal of the session's runs keeps every entry that may still be
 * undone: a new run drops only the undone ones (never a journal that can
 * still be undone) and appends its own. 0 or TT_ENOMEM. */
int tt_photos_keep_undoable(tt_run *run);
/* 1 if "undo" has something to do: a journal entry not undone yet. */
int tt_photos_undoable(tt_run *run);

int tt_photos_step_execute(tt_run *run);
int tt_photos_step_undo(tt_run *run);

#endif
