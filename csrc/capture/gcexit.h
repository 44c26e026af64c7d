/* gcexit.h: cyclic garbage in the capture (format.h 0x1A GARBAGE_AT_EXIT,
 * 0x1B UNCOLLECTABLE; docs/FORMAT.md "Garbage at exit, uncollectable").
 *
 * Layer: capture, run by the tracker (ml_tracker_garbage_at_exit,
 * ml_tracker_uncollectable) with the GIL held, the tracker's re-entrancy
 * guard set (this module's memory is libc malloc, never recorded) and its
 * lock held. Never calls into Python, never writes an object or the
 * collector's state.
 *
 * A set of objects becomes the seqs of their recorded blocks: each
 * object's own block and the buffers it owns (compat.h
 * ml_compat_owned_buffers: a list's items, a dict's keys and values, an
 * instance's values array), found in the tracker's live-block table;
 * blocks allocated before the capture have no seq and are left out. The
 * seqs are sorted and written as records of at most ML_GCSEQS_MAX.
 */
#ifndef ML_GCEXIT_H
#define ML_GCEXIT_H

#include "capture/atexit.h"

typedef struct {
    uint64_t objects;     /* objects in the set */
    uint64_t blocks;      /* recorded blocks written */
    uint64_t duration_us;
} ml_gcexit_stats;

/* GARBAGE_AT_EXIT: what a full collection would free now (heap/cycles.h
 * ml_cycles_unreachable), nothing collected. Returns 0, -1 out of memory
 * (no record written), -2 while the collector runs. */
int ml_gcexit_garbage(const ml_atexit_env *env, ml_gcexit_stats *stats);

/* UNCOLLECTABLE: the blocks of objs[0..n). Returns 0, or -1 out of memory
 * (no record written). */
int ml_gcexit_uncollectable(const ml_atexit_env *env, PyObject *const *objs, size_t n,
                            ml_gcexit_stats *stats);

#endif /* ML_GCEXIT_H */
