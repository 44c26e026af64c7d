/* u64map.h: a map from uint64 keys to uint32 values, for the aggregators of
 * the analysis layer (stack ids, block seqs, packed cells -> small indexes).
 *
 * Layer: analysis. Pure C, libc malloc, no Python API. Open addressing with
 * linear probing over a power-of-two table kept at most half full; no
 * deletion. A zeroed struct is an empty map. Not thread-safe.
 */
#ifndef ML_U64MAP_H
#define ML_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys;
    uint32_t *vals; /* value + 1; 0 = empty slot */
    size_t cap, n;
} ml_u64map;

/* Free the table; the map is empty (and usable) again. */
void ml_u64map_release(ml_u64map *m);
/* The value of key, or -1 when absent. */
int64_t ml_u64map_find(const ml_u64map *m, uint64_t key);
/* The value of key, or `fresh` (stored) when absent. -1 out of memory (the
 * map unchanged). `fresh` must be below UINT32_MAX. */
int64_t ml_u64map_get(ml_u64map *m, uint64_t key, uint32_t fresh);
/* key -> val, replacing any value. 0, or -1 out of memory (unchanged). */
int ml_u64map_set(ml_u64map *m, uint64_t key, uint32_t val);

#endif /* ML_U64MAP_H */
