/* gcreport.h: the `gc` report: the collector's collections, pauses and the
 * garbage it freed, from the GC_START/GC_STOP records of a capture.
 *
 * Layer: analysis. Pure C, libc malloc, no Python API (csrc/bind/gc.c turns
 * the result into Python objects, memlens/commands/gc.py prints it).
 *
 * Definitions (docs/GC.md says the same for users):
 *  - a collection is a GC_START followed by a GC_STOP; its pause is the
 *    difference of their exact times. A GC_STOP without a start (the
 *    recorder was added during a collection) counts as a collection
 *    without a pause; a GC_START followed by another GC_START or by the end
 *    (the program removed the stop recorder, or was killed) is "incomplete".
 *  - the collector's garbage: the FREE events of the collecting thread
 *    between a GC_START and its GC_STOP (the writer keeps events in order
 *    per process, and only the thread holding the GIL runs the collector).
 *    Frees other threads make meanwhile (a finalizer released the GIL) are
 *    theirs, not the collector's.
 *  - garbage rows are grouped by (allocation site, type): the site is the
 *    innermost frame of the stack that allocated the block, as in `leaks`.
 *
 * Memory: one 4-byte pause per collection (for the percentiles), the longest
 * `top` collections, and one row per (site, type) of garbage. Linear time.
 */
#ifndef ML_GCREPORT_H
#define ML_GCREPORT_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/report.h"

#define ML_GCREPORT_GENERATIONS (ML_GC_GENERATION_MAX + 1)

typedef struct {
    uint64_t start_us, pause_us;
    unsigned generation;
    uint64_t collected, uncollectable;
    ml_frame_id stack;          /* where the collecting thread was (0 = unknown) */
    ml_thread_id thread;
    uint64_t freed_bytes, freed_blocks; /* the collector's frees in this one */
} ml_gc_collection;

typedef struct {
    uint64_t collections, collected, uncollectable, pause_us;
} ml_gc_generation;

typedef struct {
    uint64_t duration_us;       /* of the capture */
    int truncated;
    int has_records;            /* the capture holds GC records at all */
    ml_gc_generation gen[ML_GCREPORT_GENERATIONS];
    unsigned ngen;              /* generations seen + 1 (at least 3) */
    uint64_t collections, incomplete;
    uint64_t pauses, pause_total_us, pause_p50_us, pause_p99_us, pause_max_us;
    ml_gc_collection *longest;  /* longest pauses first, at most top */
    size_t nlongest;
    uint64_t freed_bytes, freed_blocks; /* all the collector's frees */
    uint64_t uncollectable;
    ml_site_row *garbage;       /* (site, type) rows, most bytes first, at most top */
    size_t ngarbage, garbage_groups;
    /* gcexit: the blocks of the objects put into gc.garbage (UNCOLLECTABLE
     * records), by (site, type) like garbage; has_uncollectable: the
     * capture has such records */
    int has_uncollectable;
    uint64_t uncoll_bytes, uncoll_blocks;
    ml_site_row *uncoll;
    size_t nuncoll, uncoll_groups;
} ml_gc_report;

/* Read the capture and fill *out (zeroed first). Returns 0, or -1 with a
 * one-line message in err (corrupt, out of memory, interrupted); *out then
 * holds nothing to release. top = 0 keeps every row. */
int ml_gcreport_run(ml_reader *r, size_t top, const ml_progress *pg, ml_gc_report *out, char *err,
                    size_t errcap);
void ml_gcreport_release(ml_gc_report *g);

#endif /* ML_GCREPORT_H */
