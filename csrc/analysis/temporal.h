/* temporal.h: what the call tree held over time, in a form a page can cut
 * into any time range without reading the capture again (the flame graph's
 * time slider).
 *
 * Layer: analysis. Pure C, libc malloc, no Python API; reads through
 * analysis/reader.h. csrc/bind/temporal.c converts the result.
 *
 * The capture's duration is cut into B buckets of equal width (B between
 * nbuckets/2 and nbuckets: the width doubles while the capture is read, so
 * one pass finds it). For each bucket b the traced heap's highest point
 * inside it is found: the first event that reached it (peak_event[b]) and
 * its time. A block is "held at bucket b" when it was allocated at or
 * before peak_event[b] and freed after it. Since those events only grow with
 * b, the buckets that hold a block form one run [b0, b1); so the result is a
 * list of intervals (node, type, b0, b1, bytes, blocks), summed over blocks
 * with the same key. The tree held at the highest point of any run of
 * buckets [i, j] is then: pick k in [i, j] with the highest top[k] (the
 * first on ties), keep the intervals with b0 <= k < b1. For the bucket of the
 * global peak that is exactly the live blocks at the peak (the same event as
 * `memlens summary`'s peak).
 *
 * Nodes merge stacks from the outermost frame in by (code, line): node 0 is
 * the root; a frame is (code, line), code 0 meaning "no Python stack".
 * Two passes over the capture (bucket peaks, then intervals); memory is
 * bounded by stacks x types x buckets^2 (in practice by the stacks), not by
 * the events.
 */
#ifndef ML_TEMPORAL_H
#define ML_TEMPORAL_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/report.h"

#define ML_TEMPORAL_MAX_BUCKETS 4096

typedef struct {
    ml_code_id code;    /* 0: no Python stack */
    int32_t line;
} ml_temporal_frame;

typedef struct {
    uint32_t node;      /* index into nodes */
    ml_type_id type;    /* reader type id, 0 = untyped */
    uint32_t b0, b1;    /* held at the bucket peaks b0 .. b1 - 1 */
    uint64_t bytes, blocks;
} ml_temporal_ivl;

/* The intervals of one (node, type) as a step function over the buckets:
 * what it holds at bucket k is the sum of its steps with bucket <= k. A
 * (node, type) whose blocks die at many different times has thousands of
 * intervals but at most nbuckets steps; this is what the page carries. */
typedef struct {
    uint32_t node;
    ml_type_id type;
    uint32_t bucket;
    int64_t dbytes, dblocks;
} ml_temporal_step;

typedef struct {
    uint32_t nbuckets;
    uint64_t width_us;          /* bucket b covers [b * width_us, (b + 1) * width_us) */
    uint64_t *top;              /* highest heap in each bucket (the heap at its start when
                                 * no event falls in it) */
    uint64_t *top_time_us;      /* when it was reached */
    uint64_t *top_event;        /* 1-based index of the event that reached it (0: the start) */
    uint64_t duration_us;
    /* the node tree */
    uint32_t *parent;           /* parent[0] = UINT32_MAX (the root) */
    uint32_t *frame;            /* index into frames; frame[0] = UINT32_MAX */
    size_t nnodes;
    ml_temporal_frame *frames;
    size_t nframes;
    ml_temporal_ivl *ivl;       /* by (node, type), then b0, b1 */
    size_t nivl;
    ml_temporal_step *steps;    /* by (node, type), then bucket; no zero step */
    size_t nsteps;
} ml_temporal;

/* Build *out (zeroed first) from the capture: nbuckets in 2..ML_TEMPORAL_MAX_BUCKETS.
 * Returns 0, or -1 with a one-line message in err (corrupt capture, out of
 * memory, interrupted); on failure *out holds nothing to release. The reader's
 * definitions stay loaded, so codes can be named afterwards. */
int ml_temporal_build(ml_reader *r, uint32_t nbuckets, const ml_progress *pg, ml_temporal *out,
                      char *err, size_t errcap);
void ml_temporal_release(ml_temporal *t);

#endif /* ML_TEMPORAL_H */
