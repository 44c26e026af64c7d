/* blocks.h: the table of live blocks the tracker has seen allocated.
 *
 * Layer: capture; runs inside allocator hooks (mmap/libc malloc only, no
 * Python). Maps a block address to what the file needs on free: its
 * allocation sequence number and size.
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
    uint64_t seq;  /* its ALLOC record's (1 for every block when there is no file) */
    uint64_t size;
    int mark;      /* set by ml_blocks_mark (the tracker: a native block, --native) */
} ml_block;

typedef struct ml_blocks ml_blocks;

ml_blocks *ml_blocks_new(void);
void ml_blocks_free(ml_blocks *t);
/* Record a live block. Returns 0, or -1 when out of memory. */
int ml_blocks_put(ml_blocks *t, uintptr_t ptr, uint64_t seq, uint64_t size);
/* Mark the live block at ptr (cleared when the block is taken or put
 * again). Returns 1, or 0 when ptr is not live. */
int ml_blocks_mark(ml_blocks *t, uintptr_t ptr);
/* 1 and *out filled if ptr is live (and forgets the block), else 0. */
int ml_blocks_take(ml_blocks *t, uintptr_t ptr, ml_block *out);
/* 1 and *out filled if ptr is live (the block stays), else 0. */
int ml_blocks_get(const ml_blocks *t, uintptr_t ptr, ml_block *out);
/* Start loading ptr's entry into the cache (a put or take comes soon). */
void ml_blocks_prefetch(const ml_blocks *t, uintptr_t ptr);
void ml_blocks_clear(ml_blocks *t);
/* Bytes of the map's own memory resident now (its mmap'd chunks, by
 * mincore). Lock held, like every other call. */
uint64_t ml_blocks_resident(const ml_blocks *t);

#endif /* ML_BLOCKS_H */
