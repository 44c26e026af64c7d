/* noderank.h: object address -> node number, for a set of objects numbered
 * in address order, with no sort and no hash table per object.
 *
 * Layer: heap analysis (the reference graph's index, refgraph.h). One bit
 * per 16-byte granule of address space, in bitmaps of 1 MiB chunks found
 * through a small open-addressing directory (as heap/addrbits.h), plus,
 * once every address is in, a running count per 64-bit word and a base
 * per chunk in address order: the node number of an address is the
 * number of addresses below it, a popcount away. About 16 KiB per MiB of
 * address space that holds objects (~1 byte per object on a dense heap);
 * a lookup touches the directory, one bitmap word and one count.
 *
 * Distinct objects never share a granule (every object starts with a
 * 16-byte header and objects do not overlap), so a marked granule is
 * exactly one object's: an address that is not an object's start is not
 * in the set unless it falls in a marked object's first 16 bytes, which
 * no PyObject pointer does.
 *
 * Pure C (libc malloc); not thread-safe (GIL held by the graph's users).
 */
#ifndef ML_NODERANK_H
#define ML_NODERANK_H

#include <stddef.h>
#include <stdint.h>

/* One 64-bit word of a chunk's bitmap and the addresses in the chunk's
 * earlier words (together: a lookup reads one cache line). */
typedef struct {
    uint64_t bits;
    uint32_t rank;
} ml_noderank_word;

typedef struct {
    uintptr_t key;            /* chunk number + 1 (0 = empty slot) */
    uint32_t base;            /* addresses in the chunks below it */
    ml_noderank_word *words;
} ml_noderank_chunk;

typedef struct {
    ml_noderank_chunk *dir;   /* open addressing by chunk number */
    size_t mask, used;
    uintptr_t last_key;       /* one-entry cache for adds */
    ml_noderank_word *last_words;
    size_t count;             /* addresses added */
} ml_noderank;

/* Empty set. Returns 0, or -1 when out of memory (nothing to release). */
int ml_noderank_init(ml_noderank *r);
void ml_noderank_release(ml_noderank *r);

/* Add object address `addr` (before ml_noderank_freeze). Returns 1 when
 * added, 0 when it was in already, -1 when out of memory. */
int ml_noderank_add(ml_noderank *r, uintptr_t addr);

/* Number the addresses in address order (0..count-1); no adds after.
 * Returns 0, or -1 when out of memory. */
int ml_noderank_freeze(ml_noderank *r);

/* The number of `addr` after ml_noderank_freeze, or UINT32_MAX when it
 * is not in the set. */
uint32_t ml_noderank_of(const ml_noderank *r, uintptr_t addr);

/* Bytes its arrays take. */
size_t ml_noderank_memory(const ml_noderank *r);

#endif /* ML_NODERANK_H */
