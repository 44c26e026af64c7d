/* atexit.h: the heap-at-exit pass of a capture (format.h 0x10..0x13).
 *
 * Layer: capture, run by the tracker (ml_tracker_snapshot) when the
 * program ends, before the interpreter tears its modules down, or on
 * demand (memlens.snapshot_now(), a signal). It builds the reference graph
 * of the live heap once (graph/refgraph.h) and its named roots
 * (graph/roots.h), names the buffers still allocated by their owners
 * (heap/owners.h: OWNER records), and finds what holds each recorded
 * block and the retained size of that holder (heap/holders.h: HOLDER and
 * HELD records), between a SNAPSHOT record of its kind and a SNAPSHOT end
 * record with the number of objects walked and the time it took.
 *
 * GIL held, the tracker's re-entrancy guard set (the pass's own memory is
 * libc malloc and is not recorded) and its lock held (the block table and
 * the writer do not change meanwhile). Never calls into Python.
 */
#ifndef ML_ATEXIT_H
#define ML_ATEXIT_H

#include "capture/writer.h"
#include "compat/compat.h"

/* What the pass needs from the tracker. */
typedef struct {
    void *arg;
    /* the seq of the recorded live block starting at `block`, else 0 */
    ml_seq (*seq_of)(void *arg, uintptr_t block);
    /* the capture's name of type tp (NULL when out of memory) */
    const char *(*type_name)(void *arg, PyTypeObject *tp, size_t *len);
    /* the id of a buffer kind named `name`, its TYPE_DEF written into w
     * when new (0 when out of memory) */
    ml_type_id (*label)(void *arg, const char *name, size_t len);
    ml_writer *w;
} ml_atexit_env;

typedef struct {
    uint64_t objects;   /* objects walked */
    uint64_t owners;    /* OWNER records */
    uint64_t holders;   /* HOLDER records */
    uint64_t held;      /* blocks in HELD records */
    uint64_t duration_us;
} ml_atexit_stats;

/* Frames whose code's file name starts with `prefix` (memlens' own
 * package) are not roots; NULL or "" (the default): every frame is.
 * Copied; GIL held. */
void ml_atexit_set_skip(const char *prefix);

/* Run the pass of `kind` (ML_SNAP_EXIT, _CALL, _SIGNAL) and write its
 * records. ML_SNAP_OWNERS (the default at exit) names the buffers only:
 * one walk of the heap (heap/owners.h ml_owners_heap), OWNERS records, no
 * reference graph, no HOLDER or HELD records. Returns 0, or -1 when out
 * of memory (the records written so far stay; the SNAPSHOT end record is
 * written in both cases). */
int ml_atexit_snapshot(const ml_atexit_env *env, unsigned kind, ml_atexit_stats *stats);

#endif /* ML_ATEXIT_H */
