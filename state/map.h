/* A string-keyed hash map (open addressing, linear probing, backward-shift
 * deletion). Keys are borrowed: the value must own its key and outlive its
 * entry. Used for the sessions held in memory. */
#ifndef TT_MAP_H
#define TT_MAP_H

#include <stddef.h>

typedef struct tt_map_entry {
    const char *key;
    void *value;
    size_t hash;
} tt_map_entry;

typedef struct tt_map {
    tt_map_entry *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} tt_map;

/* The map starts empty and grows on demand; release with tt_map_free(). */
void tt_map_init(tt_map *m);
void tt_map_free(tt_map *m);

void *tt_map_get(const tt_map *m, const char *key);
/* Insert or replace. Returns 0 or TT_ENOMEM. */
int tt_map_put(tt_map *m, const char *key, void *value);
/* Remove key; returns the value that was there, or NULL. */
void *tt_map_del(tt_map *m, const char *key);

/* Iterate: *pos starts at 0; returns the next value or NULL at the end. The
 * map must not change during an iteration. */
void *tt_map_next(const tt_map *m, size_t *pos);

#endif
