/* addrset.h: a set of object addresses, optionally with a 32-bit value
 * per address (open addressing, linear probing, libc malloc).
 *
 * Layer: heap analysis. Pure C: knows nothing of Python, so it can hold
 * millions of entries without creating one Python object. Address 0 is
 * never a key. The table stays at most half full; growth doubles it.
 * Not thread-safe: the heap walker uses it with the GIL held.
 */
#ifndef ML_ADDRSET_H
#define ML_ADDRSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uintptr_t *keys;  /* 0 = empty slot */
    uint32_t *vals;   /* NULL for a plain set */
    size_t mask;      /* capacity - 1; capacity is a power of two */
    unsigned shift;   /* 64 - log2(capacity): the hash's top bits pick the slot */
    size_t used;
} ml_addrset;

/* Empty set (with_values=1: a map to uint32). Returns 0, or -1 when out
 * of memory (the set is then left zeroed and needs no release). */
int ml_addrset_init(ml_addrset *s, size_t expected, int with_values);

/* Free the table; the struct can be initialised again. */
void ml_addrset_release(ml_addrset *s);

/* Add `addr`: returns 1 if it was new, 0 if already present, -1 when out of
 * memory (set unchanged). For a map the new entry's value is `val`; an
 * existing entry keeps its value. */
int ml_addrset_add(ml_addrset *s, uintptr_t addr, uint32_t val);

/* Set `addr` to `val`, adding it if absent. Returns 0, or -1 when out of
 * memory. Map only. */
int ml_addrset_put(ml_addrset *s, uintptr_t addr, uint32_t val);

/* 1 and *val (if non-NULL) when `addr` is present, else 0. */
int ml_addrset_get(const ml_addrset *s, uintptr_t addr, uint32_t *val);

/* Iterate over the entries, in no order: start with *pos = 0; each call
 * returns 1 with the next entry in *addr and *val (if non-NULL and a map),
 * or 0 at the end. The set must not change meanwhile. */
int ml_addrset_next(const ml_addrset *s, size_t *pos, uintptr_t *addr, uint32_t *val);

/* Invariant checker for tests: every key findable, count matches `used`.
 * Returns 0 when sane, -1 otherwise. */
int ml_addrset_check(const ml_addrset *s);

#endif /* ML_ADDRSET_H */
