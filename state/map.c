/* Open-addressing string map (see map.h). FNV-1a hashing; load factor <= 1/2. */
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/map.h"

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void tt_map_init(tt_map *m)
{
    memset(m, 0, sizeof *m);
}

void tt_map_free(tt_map *m)
{
    free(m->slots);
    tt_map_init(m);
}

static tt_map_entry *find(const tt_map *m, const char *key, size_t h)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        tt_map_entry *e = &m->slots[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    }
}

void *tt_map_get(const tt_map *m, const char *key)
{
    tt_map_entry *e = find(m, key, hash_str(key));
    return e ? e->value : NULL;
}

static void insert_slot(tt_map_entry *slots, size_t cap, tt_map_entry e)
{
    size_t i = e.hash & (cap - 1);
    while (slots[i].key)
        i = (i + 1) & (cap - 1);
    slots[i] = e;
}

static int grow(tt_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    tt_map_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return TT_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key)
            insert_slot(slots, cap, m->slots[i]);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int tt_map_put(tt_map *m, const char *key, void *value)
{
    size_t h = hash_str(key);
    tt_map_entry *e = find(m, key, h);
    if (e) {
        e->key = key;
        e->value = value;
        return 0;
    }
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0)
        return TT_ENOMEM;
    insert_slot(m->slots, m->cap, (tt_map_entry){key, value, h});
    m->count++;
    return 0;
}

void *tt_map_del(tt_map *m, const char *key)
{
    tt_map_entry *e = find(m, key, hash_str(key));
    if (!e)
        return NULL;
    void *value = e->value;
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(e - m->slots);
    /* Backward-shift: pull later entries of the same probe run into the hole. */
    for (size_t i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
        size_t home = m->slots[i].hash & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    memset(&m->slots[hole], 0, sizeof m->slots[hole]);
    m->count--;
    return value;
}

void *tt_map_next(const tt_map *m, size_t *pos)
{
    while (*pos < m->cap) {
        tt_map_entry *e = &m->slots[(*pos)++];
        if (e->key)
            return e->value;
    }
    return NULL;
}
