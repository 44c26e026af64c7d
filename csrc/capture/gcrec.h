/* gcrec.h: records the cyclic garbage collector's collections inside the
 * profiled process.
 *
 * Layer: capture. Uses the Python C API (GIL held for every call). The only
 * portable way to see collections on 3.10-3.13 is gc.callbacks: this module
 * puts C callables (builtin functions, no Python frame) into the list the
 * collector calls. When the list holds callbacks of the program's, two:
 *
 *   - "stop" recorder at index 0: it runs first when a collection ends,
 *     before the program's own callbacks;
 *   - "start" recorder at the end: it runs last when a collection starts,
 *     after the program's own callbacks.
 *
 * When the list is empty (the usual case: `memlens run` installs them before
 * the program starts), one recorder for both phases, first and last at once:
 * half the calls per collection.
 *
 * So the window between the start and the stop is the collection itself,
 * and the frees the collecting thread makes in it are the collector's. The
 * collector builds a fresh `info` dict for each phase and frees it after the callbacks; the start
 * recorder keeps a reference to the start dict (and to the "start" str of
 * its call) until the stop recorder has
 * reported the end, so that its frees fall after the window, not inside it.
 * Neither dict may go back to CPython's free lists (on by default): the
 * program's next dict or dict keys would take the block unseen and be
 * charged to the collection's line. So the recorders let them go with
 * ml_freelists_drop_dict, which frees their blocks through the allocator:
 * the start dict at the stop, the stop dict (which CPython would free after
 * the last callback) at the next start or at ml_gcrec_release.
 * The blocks CPython makes only because the recorders are in the list are
 * not the program's: the tracker keeps them out of the capture (the hide
 * sink; tracker.c, ml_hide_gc_call), and hears from the let-go sink when
 * the recorders have let an info dict go, so that whatever of it someone
 * still holds is recorded then.
 * The recorders allocate nothing and never raise (a malformed call is
 * ignored). The program's callbacks still run and see the same info; a
 * program that clears gc.callbacks just ends the recording.
 *
 * Users: the tracker (a capture in progress: a sink that writes GC_START and
 * GC_STOP records) and memlens.start_gc_recording(). The recorders stay in
 * gc.callbacks while either uses them, and are removed (by identity, wherever
 * they are) when both are done, leaving the list as the program left it.
 */
#ifndef ML_GCREC_H
#define ML_GCREC_H

#include <stddef.h>
#include <stdint.h>

#include "compat/compat.h" /* Python.h */

enum { ML_GCREC_START = 0, ML_GCREC_STOP = 1 };

/* Called by the recorders on the collecting thread, GIL held, inside the
 * collection: must not allocate through Python nor raise. */
typedef void (*ml_gcrec_sink)(int phase, unsigned generation, uint64_t collected,
                              uint64_t uncollectable);
/* Called by the recorders (same thread and rules) with the blocks CPython
 * made for a call only because the recorders are in gc.callbacks (borrowed;
 * either may be NULL): the info dict, when no callback of the program is
 * in the list (CPython makes one only for a non-empty list), and on
 * 3.10/3.11 the phase str (made per call there; 3.12+ make one per
 * collection, callbacks or not: the program's). The recorders hold them
 * until they let go of everything they hold, which they do between a
 * let-go sink call with begin = 1 and one with begin = 0: the frees of
 * these blocks happen there and nowhere else, unless someone else holds
 * them (then they are still alive after it). */
typedef void (*ml_gcrec_hide_sink)(PyObject *info, PyObject *phase_str);
typedef void (*ml_gcrec_let_go_sink)(int begin);

#define ML_GCREC_GENERATIONS 3

/* What the recorders saw since recording began (ml_gcrec_stats). */
typedef struct {
    uint64_t collections[ML_GCREC_GENERATIONS];
    uint64_t collected[ML_GCREC_GENERATIONS];
    uint64_t uncollectable[ML_GCREC_GENERATIONS];
    uint64_t pause_ns[ML_GCREC_GENERATIONS]; /* total pause per generation */
    uint64_t pauses;                         /* collections with a start and a stop */
    uint64_t pause_total_ns, pause_max_ns, pause_p50_ns, pause_p99_ns;
    uint64_t elapsed_ns;                     /* since recording began */
    int recording;                           /* the recorders are in gc.callbacks */
} ml_gcrec_stats;

/* Make the three recorders and the keys they read, at the module's import
 * (GIL held), so that every run has them, recording or not; the recorders
 * are kept off the GC lists. A run with MEMLENS_NO_GC_RECORD then differs
 * from one that records by the recording alone. The two recorders made when
 * the recording began were two more objects in the youngest generation's
 * count (the program's collections came two allocations earlier) and
 * shifted where its later objects landed: that alone, with nothing
 * recorded, cost bench_gc's cycles workload 2.5% on 3.12 (BENCHMARKS.md,
 * session 11). 0, or -1 with an exception set. */
int ml_gcrec_init(void);

/* The tracker's use: install the recorders (if not in place) and send each
 * collection to `sink`. Returns 0, or -1 (no exception left set) when
 * gc.callbacks cannot be reached. */
int ml_gcrec_attach(ml_gcrec_sink sink, ml_gcrec_hide_sink hide, ml_gcrec_let_go_sink let_go);
/* No more calls to the sink; the recorders go when no user is left. */
void ml_gcrec_detach(void);
/* Let go of the info dicts the recorders hold (the last collection's), so
 * that their frees are recorded: the tracker calls it while its hooks still
 * record, before ml_gcrec_detach. Never raises. */
void ml_gcrec_release(void);

/* gcexit: at the stop of a collection that appended objects to gc.garbage
 * (uncollectable ones, or all it found with gc.DEBUG_SAVEALL), before the
 * stop sink, `sink` gets them (borrowed, in list order; the list is not
 * changed).
 * gc.garbage is the module's attribute when this is called (a program
 * that rebinds the attribute does not change the collector's list). NULL
 * ends it. GIL held, outside a collection. */
typedef void (*ml_gcrec_uncollectable_sink)(PyObject *const *objs, size_t n);
void ml_gcrec_attach_uncollectable(ml_gcrec_uncollectable_sink sink);

/* memlens.start_gc_recording() / stop_gc_recording(): the counters of
 * ml_gcrec_stats, without a capture. Start returns 0, or -1 with a Python
 * exception set. Starting twice keeps the counters; stop ends this use. */
int ml_gcrec_start(void);
void ml_gcrec_stop(void);

/* Fill *out. Returns 0, or -1 when out of memory for the percentiles. */
int ml_gcrec_stats_get(ml_gcrec_stats *out);

#endif /* ML_GCREC_H */
