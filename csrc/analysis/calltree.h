/* calltree.h: the call tree of a capture, with bytes and blocks per node,
 * type and thread, for several views built in one pass.
 *
 * Layer: analysis. Pure C, libc malloc, no Python API: csrc/bind/calltree.c
 * turns a tree into Python lists, memlens/calltree.py and the tree, export
 * and compare commands use it.
 *
 * The tree: a frame is (function, line), a function being the code objects
 * with the same file and name (as the reports' sites). Stacks are merged
 * from the outermost frame in: two stacks share a node while their frames
 * from the outermost agree. Node 0 is the root (no frame); a block made
 * without a Python stack hangs under the frame "<no Python stack>" (code 0,
 * line 0) right below the root. A parent's index is always smaller than its
 * children's. Values are SELF values: a node's total is its own plus its
 * descendants'. Only nodes on the path of some value are in the tree.
 *
 * The views (docs/TREE.md says the same for users):
 *  - PEAK: blocks live at the global peak (the first ALLOC that brought the
 *    heap to its maximum: the summary's peak).
 *  - END: blocks live when the capture ends.
 *  - ALLOCATED: every ALLOC (REUSE events are not allocations here).
 *  - TEMPORARY: ALLOCs freed by the thread that made them before that
 *    thread made temporary_n more allocations (memray's temporary
 *    allocations; n = 1: freed before the thread's next allocation).
 *  - RANGE: blocks live at the highest heap within [t0, t1]: the candidates
 *    are the state at t0 (every event before t0 applied) and the state after
 *    each ALLOC at a time in [t0, t1]; the first maximum wins. t0 == t1 is
 *    "held at time t0".
 *  - RANGE_NEW: blocks allocated at a time in [t0, t1] and still live at t1.
 * Each value is attributed to the thread that allocated the block.
 *
 * Cost: one pass over the capture; memory grows with the distinct (stack,
 * type, thread) cells and the live blocks (a table beside the reader's, that
 * remembers each live block's cell), never with the events. The peak and
 * range views use the summary's delta trick: live at the peak = live at the
 * end + (freed since the peak) - (allocated since the peak), per cell.
 * Not thread-safe: one tree at a time per reader.
 */
#ifndef ML_CALLTREE_H
#define ML_CALLTREE_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/report.h"

typedef enum {
    ML_CT_PEAK = 0,
    ML_CT_END,
    ML_CT_ALLOCATED,
    ML_CT_TEMPORARY,
    ML_CT_RANGE,
    ML_CT_RANGE_NEW,
    ML_CT_NVIEWS
} ml_calltree_view;

/* View names as the API and the CLI spell them ("peak", "end", ...). */
extern const char *const ml_calltree_view_names[ML_CT_NVIEWS];

typedef struct {
    unsigned views;          /* bit (1 << ml_calltree_view) per view wanted */
    uint64_t temporary_n;    /* TEMPORARY: allocations after which a free is not temporary (>= 1) */
    uint64_t t0_us, t1_us;   /* RANGE, RANGE_NEW: t0 <= t1 */
} ml_calltree_opts;

/* The self values of one view: entries of (node, type index, thread index). */
typedef struct {
    uint32_t *node, *type, *thread;
    uint64_t *bytes, *count;
    size_t n;
} ml_calltree_values;

typedef struct {
    /* frames: index -> (code, line); code is the canonical code of its
     * function (0: "<no Python stack>") */
    ml_code_id *frame_code;
    int32_t *frame_line;
    uint32_t nframes;
    /* nstacks: native frames (captures of --native-stacks): frame i is one
     * when frame_native[i] is 1; then frame_code[i] indexes native_func
     * (NULL: not found, "??"), native_lib (the object's file name; NULL: in
     * no known mapping) and native_offset (the address' offset in the
     * file), and frame_line[i] is 0. They hang under the Python frame that
     * was running (or "<no Python stack>"), outermost first. NULL / 0
     * without native stacks. */
    uint8_t *frame_native;
    char **native_func, **native_lib;
    uint64_t *native_offset;
    uint32_t nnative;
    /* nodes: parent (UINT32_MAX for the root) and frame (UINT32_MAX for the root) */
    uint32_t *parent, *frame;
    uint32_t nnodes;
    /* the reader's ids of the types and threads the values name */
    ml_type_id *types;
    uint32_t ntypes;
    ml_thread_id *threads;
    uint32_t nthreads;
    ml_calltree_values views[ML_CT_NVIEWS];  /* empty when not asked for */
    /* totals */
    uint64_t events, allocations, allocated_bytes, frees, reuses;
    uint64_t duration_us, end_bytes, end_count;
    int truncated;
    uint64_t peak_bytes, peak_time_us;
    uint64_t range_high_bytes, range_high_time_us;  /* RANGE */
} ml_calltree;

/* Read the capture from its start (rewinds) and build the tree for the views
 * in opts. Fills *out (zeroed first) and returns 0, or -1 with a one-line
 * message in err (corrupt capture, out of memory, interrupted, bad opts); on
 * failure *out holds nothing to release. The reader's definitions stay
 * loaded so that ml_reader_code() names the frames. */
int ml_calltree_build(ml_reader *r, const ml_calltree_opts *opts, const ml_progress *progress,
                      ml_calltree *out, char *err, size_t errcap);
void ml_calltree_release(ml_calltree *t);

#endif /* ML_CALLTREE_H */
