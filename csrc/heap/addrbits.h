/* addrbits.h: the heap walker's visited set: one bit per 16-byte granule
 * of address space, in 8 KiB bitmaps of 1 MiB chunks found through a small
 * open-addressing directory.
 *
 * Addresses in the same granule are one entry, so the addresses stored
 * must be at least 16 bytes apart: object addresses are (every object
 * starts with a 16-byte PyObject header, and objects do not overlap).
 *
 * Layer: heap analysis. Pure C (libc malloc). Objects that live near each
 * other in memory share a bitmap, so marking a million objects touches a
 * few hundred cache-friendly bitmaps instead of a 16 MiB hash table.
 * Not thread-safe: used with the GIL held.
 */
#ifndef ML_ADDRBITS_H
#define ML_ADDRBITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uintptr_t *chunks;  /* chunk number + 1 (0 = empty slot) */
    uint64_t **bits;    /* bitmap of each chunk */
    size_t mask, used;
    uintptr_t last_chunk; /* one-entry cache */
    uint64_t *last_bits;
    size_t marked;      /* addresses marked */
} ml_addrbits;

/* Empty set. Returns 0, or -1 when out of memory (nothing to release). */
int ml_addrbits_init(ml_addrbits *s);

/* Free all bitmaps; the struct can be initialised again. */
void ml_addrbits_release(ml_addrbits *s);

/* Mark `addr`: 1 if it was not marked, 0 if it was, -1 when out of
 * memory (set unchanged). */
int ml_addrbits_add(ml_addrbits *s, uintptr_t addr);

/* 1 if `addr` is marked. */
int ml_addrbits_has(const ml_addrbits *s, uintptr_t addr);

#endif /* ML_ADDRBITS_H */
