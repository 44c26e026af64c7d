/* rsssample.h: where the resident memory of this process goes, measured
 * from inside it.
 *
 * Layer: capture (also used by memlens.rss() in a running process). One
 * sample reads /proc/self/smaps_rollup (the RSS and its anonymous part),
 * /proc/self/smaps (thread stacks: "[stack]" and the anonymous mappings
 * that sit right above a PROT_NONE guard mapping, as glibc makes them),
 * the C allocator's statistics (glibc mallinfo2, found with dlsym so the
 * build needs nothing more; zeros elsewhere), pymalloc's arenas (resident
 * bytes by mincore, the arenas being known from a PyObject_SetArenaAllocator
 * hook; arenas made before the hook count as wholly resident) and the
 * bytes in pymalloc's allocated blocks (_PyObject_DebugMallocStats: needs
 * the GIL, so it is taken apart, ml_rsssample_pymalloc, and the latest
 * value is used).
 *
 * Threads: ml_rsssample_take runs on any thread, without the GIL (the
 * tracker's sampler thread); ml_rsssample_pymalloc and ml_rsssample_setup
 * need the GIL. Nothing here calls into Python or allocates through PyMem.
 */
#ifndef ML_RSSSAMPLE_H
#define ML_RSSSAMPLE_H

#include <stdint.h>

#include "format/format.h" /* ML_RSS_* fields */

typedef struct {
    uint64_t f[ML_RSS_NFIELDS];
} ml_rss_sample;

/* Install the arena allocator hook (once per process). GIL held, at
 * import. Returns 0. */
int ml_rsssample_setup(void);

/* Take the bytes in pymalloc's allocated blocks and the arena count now
 * (walks pymalloc's arenas: a few hundred microseconds per GiB). GIL held. */
void ml_rsssample_pymalloc(void);

/* Fill *s from /proc and the allocators; the traced, own (but
 * ML_RSS_OWN_STATIC) and native fields are left as they are (the caller
 * knows them). full: scan /proc/self/smaps (about a millisecond per few
 * hundred mappings); else, once a first scan was made, take stacks and
 * libraries as the last non-full call's scan found them and give the
 * change of the RSS to the unnamed mappings (the tracker scans every 10th
 * sample). A non-full call is the sampler's (one thread). Returns 0, or -1
 * when /proc/self/smaps_rollup cannot be read (then *s is unchanged). */
int ml_rsssample_take(ml_rss_sample *s, int full);

/* One live pymalloc arena, as its pool headers say. */
typedef struct {
    uintptr_t base;
    uint64_t size, resident; /* bytes; resident by mincore */
    uint32_t pools, pools_used; /* pools in it; those holding a block */
    uint64_t used;           /* bytes in its allocated blocks */
} ml_rss_arena;

/* A used pool's carved blocks: addresses first, first + block, ... < end. */
typedef struct {
    uintptr_t first, end;
    uint32_t block;
} ml_rss_pool;

/* Calls fn(arg, arena, pools, npools) for each arena known to the hook
 * (made after memlens' engine was imported), in no set order; pools: its
 * used pools (only pages that are resident are read: a pool in a page
 * that is not is taken as empty). Stops when fn returns nonzero. GIL
 * held (pool headers change under it); fn must not allocate through
 * PyMem. Returns the number of arenas visited (0 when pymalloc is not
 * the allocator: no arena was made), -1 out of memory. */
typedef int (*ml_rss_arena_fn)(void *arg, const ml_rss_arena *a, const ml_rss_pool *pools, size_t npools);
int ml_rsssample_arenas(ml_rss_arena_fn fn, void *arg);

#endif /* ML_RSSSAMPLE_H */
