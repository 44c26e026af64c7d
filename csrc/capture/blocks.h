/* blocks.h: the table of live blocks the tracker has seen allocated.
 *
 * Layer: capture; runs inside allocator hooks (mmap/libc malloc only, no
 * Python). Maps a block address to what the file needs on free: its
 * allocation sequence number and size, plus one flag bit.
 *
 * A shadow map indexed by address: one 8-byte entry per 16-byte granule,
 * in 1 MiB-of-heap chunks mapped on first use (pages the heap never uses
 * stay unbacked). Neighbouring blocks have neighbouring entries, so the
 * lookups share cache lines as the allocations do, and nothing ever
 * probes. Pointers that are not 16-byte aligned and sizes of 4 MiB or more
 * go to a small side hash table.
 * Not thread-safe: the tracker's lock protects it.
 */
#ifndef ML_BLOCKS_H
#define ML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seq;  /* 0 = not written yet (pending classification) */
    uint64_t size;
    int flag;      /* the block holds a type object (ML_TYPEF_METATYPE instance) */
} ml_block;

typedef struct ml_blocks ml_blocks;

ml_blocks *ml_blocks_new(void);
void ml_blocks_free(ml_blocks *t);
/* Record a live block. Returns 0, or -1 when out of memory. */
int ml_blocks_put(ml_blocks *t, uintptr_t ptr, uint64_t seq, uint64_t size, int flag);
/* The same, with ml_blocks_peek's slot for ptr (or NULL: found here). */
int ml_blocks_put_at(ml_blocks *t, uintptr_t ptr, void *slot, uint64_t seq, uint64_t size, int flag);
/* 1 and *out filled if ptr is live, else 0. */
int ml_blocks_get(ml_blocks *t, uintptr_t ptr, ml_block *out);
/* Like get, and forgets the block; `slot`: ml_blocks_peek's, or NULL. */
int ml_blocks_take(ml_blocks *t, uintptr_t ptr, void *slot, ml_block *out);
/* ptr's entry if its chunk exists (NULL for side-table pointers or an
 * unmapped chunk), loaded into the cache early. No lock needed: chunks are
 * never unmapped while the table lives, so the slot stays valid for
 * put_at/take under the lock as long as the table does (the tracker only
 * uses it with the GIL held, so no stop can free the table meanwhile). */
void *ml_blocks_peek(const ml_blocks *t, uintptr_t ptr);
/* 0 if ptr (with its peeked slot) surely is no live block, 1 if it may be.
 * Safe without the lock for a block the caller is freeing (nobody else can
 * insert it). */
int ml_blocks_maybe_live(uintptr_t ptr, const void *slot);
void ml_blocks_clear(ml_blocks *t);

#endif /* ML_BLOCKS_H */
