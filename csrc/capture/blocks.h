/* blocks.h: the table of live blocks the tracker has seen allocated.
 *
 * Layer: capture; runs inside allocator hooks (libc malloc only, no Python).
 * Maps a block address to what the file needs on free: its allocation
 * sequence number, size and type. Open addressing with linear probing and
 * backward-shift deletion, so lookups never meet tombstones.
 * Not thread-safe: the tracker's lock protects it.
 */
#ifndef ML_BLOCKS_H
#define ML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uintptr_t ptr;  /* 0 = empty slot */
    uint64_t seq;   /* 0 = not written yet (pending classification) */
    uint64_t size;
    uint32_t type;
    uint32_t domain;
} ml_block;

typedef struct ml_blocks ml_blocks;

ml_blocks *ml_blocks_new(void);
void ml_blocks_free(ml_blocks *t);
/* Insert or overwrite. Returns the entry, or NULL when out of memory. */
ml_block *ml_blocks_put(ml_blocks *t, uintptr_t ptr);
/* The entry for ptr, or NULL. Valid until the next put/remove. */
ml_block *ml_blocks_get(ml_blocks *t, uintptr_t ptr);
/* Remove ptr; copies the entry to *out and returns 1, or returns 0 if absent. */
int ml_blocks_remove(ml_blocks *t, uintptr_t ptr, ml_block *out);
size_t ml_blocks_count(const ml_blocks *t);
void ml_blocks_clear(ml_blocks *t);

#endif /* ML_BLOCKS_H */
