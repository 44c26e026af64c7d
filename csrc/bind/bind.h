/* bind.h: what the binding files share (memlens._engine).
 *
 * Layer: the only place that binds the engine to Python. Each file in
 * csrc/bind/ binds one part of the engine and exports its method table
 * (ml_bind_<part>_methods) and init function (ml_bind_<part>_init);
 * csrc/module.c registers them all from one PyInit. Every binding body is a
 * line or two: parse arguments, call the engine, convert the result. Python
 * exceptions are set here and nowhere else.
 *
 *   capture.c   capture/tracker.h     start/stop tracking, counters, marks
 *   reports.c   analysis/report.h     summary, types, leaks, raw events
 *   timeline.c  analysis/timeline.h   line table, time series, line meter
 *   heap.c      heap/heap.h           live-heap walk, dict stats, deep size
 *   temporal.c  analysis/temporal.h   held bytes over time buckets (flame graph)
 *   calltree.c  analysis/calltree.h   the call tree (read_calltree)
 *   native.c    native/hooks.h        --native: patch the loaded objects' allocator calls
 *   graph.c     graph/                    reference paths, dominators, .heapsnapshot
 *   rss.c       analysis/rss.h        RSS breakdown (live and from a capture), NumPy hook
 *   gc.c        analysis/gcreport.h, capture/gcrec.h, heap/cycles.h   the collector
 *   atexit.c    capture/atexit.h      heap at exit: buffer owners, holders
 *   common.c    helpers below: open a capture, progress, conversions
 */
#ifndef ML_BIND_H
#define ML_BIND_H

#include "compat/compat.h"

#include "analysis/reader.h"

#define ML_PY_ERRCAP 600

/* A report's progress callback: None or callable(pass, pos, size). */
typedef struct {
    PyObject *callback;
    PyThreadState *saved;
} ml_py_progress;

/* Run `call` with the GIL released; returns its result. */
#define ML_PY_RUN(rc, pp, call)                                \
    do {                                                       \
        (pp).saved = PyEval_SaveThread();                      \
        (rc) = (call);                                         \
        PyEval_RestoreThread((pp).saved);                      \
    } while (0)

/* The reader's progress callback (arg: ml_py_progress *); runs without
 * the GIL, takes it to call Python and to notice Ctrl-C. Nonzero: stop. */
int ml_py_progress_call(void *arg, int pass, uint64_t pos, uint64_t size);
/* The reader's interrupt check: nonzero (exception set) after Ctrl-C. */
int ml_py_check_signals(void *unused);
/* A reader's message as the file system decodes it. */
PyObject *ml_py_errstr(const char *err);
/* Open a capture (path: bytes from PyUnicode_FSConverter); NULL with
 * OSError (errno) or ValueError (the reader's one line) set. */
ml_reader *ml_py_open(PyObject *path);
/* d[key] = v, dropping the reference to v; -1 if v is NULL or on error. */
int ml_py_put(PyObject *d, const char *key, PyObject *v);
/* UTF-8 text from a capture (invalid bytes replaced). */
PyObject *ml_py_str(const char *s);
/* A file name from a capture (surrogateescape: os.fsencode gives it back). */
PyObject *ml_py_fsstr(const char *s);
/* NULL, with ValueError(err) set unless an exception is already set. */
PyObject *ml_py_report_failed(const char *err);

/* Heap at exit (bind/atexit.c): to the leaks result `res` (its "leaks"
 * rows made from l->rows, in order), each row's "holder" ({"path": [hops],
 * "retained", "bytes", "count"} or None) and "heap_at_exit" (the last
 * snapshot's kind, objects, duration_us; None without one). 0 or -1. */
#include "analysis/report.h"
int ml_py_leak_holders(PyObject *res, const ml_leaks *l);
/* gcexit: each leaks row's garbage_bytes/garbage_blocks and the totals (bind/gc.c) */
int ml_py_leak_garbage(PyObject *res, const ml_leaks *l);
/* rss (bind/rss.c): rss_report's result dict for the series *s read from r,
 * at most arena_top groups (0 = all); *s is released. NULL on error. */
#include "analysis/rss.h"
PyObject *ml_py_rss_result(ml_reader *r, ml_rss_series *s, size_t arena_top);
/* The name of a heap-at-exit event kind ("snapshot", "owner", "holder",
 * "held"; "unknown" for others), and its fields into dict d (0 or -1). */
const char *ml_py_exit_event_kind(unsigned kind);
int ml_py_exit_event(PyObject *d, const ml_event *ev);

extern PyMethodDef ml_bind_capture_methods[];
extern PyMethodDef ml_bind_reports_methods[];
extern PyMethodDef ml_bind_timeline_methods[];
extern PyMethodDef ml_bind_heap_methods[];
extern PyMethodDef ml_bind_temporal_methods[];
extern PyMethodDef ml_bind_calltree_methods[];
extern PyMethodDef ml_bind_native_methods[];
extern PyMethodDef ml_bind_graph_methods[];
extern PyMethodDef ml_bind_rss_methods[];
extern PyMethodDef ml_bind_gc_methods[];
extern PyMethodDef ml_bind_atexit_methods[];
int ml_bind_capture_init(PyObject *m);
int ml_bind_reports_init(PyObject *m);
int ml_bind_timeline_init(PyObject *m);
int ml_bind_heap_init(PyObject *m);
int ml_bind_temporal_init(PyObject *m);
int ml_bind_calltree_init(PyObject *m);
int ml_bind_native_init(PyObject *m);
int ml_bind_graph_init(PyObject *m);
int ml_bind_rss_init(PyObject *m);
int ml_bind_gc_init(PyObject *m);
int ml_bind_atexit_init(PyObject *m);

#endif
