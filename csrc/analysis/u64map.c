/* u64map.c: uint64 -> uint32 map (see u64map.h). */
#include "analysis/u64map.h"

#include <stdlib.h>
#include <string.h>

static inline size_t
ml_u64map_home(size_t cap, uint64_t key)
{
    key ^= key >> 31;
    key *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(key >> 17) & (cap - 1);
}

void
ml_u64map_release(ml_u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static int
ml_u64map_grow(ml_u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 256;
    ml_u64map n = {calloc(ncap, sizeof(uint64_t)), calloc(ncap, sizeof(uint32_t)), ncap, m->n};
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->vals[i])
            continue;
        size_t j = ml_u64map_home(ncap, m->keys[i]);
        while (n.vals[j])
            j = (j + 1) & (ncap - 1);
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
    }
    ml_u64map_release(m);
    *m = n;
    return 0;
}

/* The slot of key, or of the empty slot where it would go (cap > 0). */
static size_t
ml_u64map_slot(const ml_u64map *m, uint64_t key)
{
    size_t i = ml_u64map_home(m->cap, key);
    while (m->vals[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

int64_t
ml_u64map_find(const ml_u64map *m, uint64_t key)
{
    if (!m->cap)
        return -1;
    size_t i = ml_u64map_slot(m, key);
    return m->vals[i] ? (int64_t)m->vals[i] - 1 : -1;
}

int64_t
ml_u64map_get(ml_u64map *m, uint64_t key, uint32_t fresh)
{
    if ((m->n + 1) * 2 > m->cap && ml_u64map_grow(m) < 0)
        return -1;
    size_t i = ml_u64map_slot(m, key);
    if (m->vals[i])
        return (int64_t)m->vals[i] - 1;
    m->keys[i] = key;
    m->vals[i] = fresh + 1;
    m->n++;
    return fresh;
}

int
ml_u64map_set(ml_u64map *m, uint64_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap && ml_u64map_grow(m) < 0)
        return -1;
    size_t i = ml_u64map_slot(m, key);
    if (!m->vals[i])
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val + 1;
    return 0;
}
