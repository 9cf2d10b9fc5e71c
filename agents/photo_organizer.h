/* Inside the photo organiser (photo_organizer.c, photo_plan.c,
 * photo_execute.c); other code uses tt_agent_photo_organizer only. */
#ifndef TT_PHOTO_ORGANIZER_H
#define TT_PHOTO_ORGANIZER_H

#include <stddef.h>
#include <jansson.h>

#include "agents/engine.h"

const char *tt_photos_data_str(tt_run *run, const char *key);
void tt_photos_data_set(tt_run *run, const char *key, json_t *v);

/* Open the user's library (photos_root/<user>) as a root descriptor. */
int tt_photos_library(tt_run *run, int *fd);

/* Check a proposed plan against the scan in data: every src a scanned photo,
 * once; every dest a clean relative path, unique, inside a planned folder;
 * folders clean. On success *tree is the folder tree with counts
 * ([{name, count, children}], new reference). TT_EINVAL with why otherwise. */
int tt_photos_plan_check(json_t *data, json_t *plan, char *why, size_t n, json_t **tree);

int tt_photos_step_execute(tt_run *run);
int tt_photos_step_undo(tt_run *run);

#endif
