/* tracker.h: the capture engine, which runs inside the profiled process.
 *
 * Layer: capture. Hooks all three allocator domains (RAW, MEM, OBJ) once and
 * never unhooks; an atomic flag turns recording on and off. For every
 * allocation it records size, thread, time, the Python stack as interned
 * (code, offset) frames, and the Python type of the block (read from the
 * object header at the next hook call; on 3.13 from the creation tracer).
 * A sampler thread writes RSS and the traced heap every 10 ms and flushes.
 *
 * Threads: the hooks are thread-safe; RAW hooks may run without the GIL (no
 * stack is taken then). ml_tracker_start/stop/mark need the GIL.
 * Fork: a child stops recording, or with follow_fork records into its own
 * file "<path>.<childpid>". Errors inside hooks are counted, never raised.
 */
#ifndef ML_TRACKER_H
#define ML_TRACKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *path;       /* capture file; NULL = counters only, no file */
    int force;              /* overwrite an existing file */
    const char *meta_json;  /* header metadata */
    size_t meta_len;
    int max_frames;         /* frames kept per stack (innermost), >= 1 */
    int follow_fork;        /* children record into "<path>.<pid>" */
    int sample_ms;          /* MEMORY sample and flush interval */
    int compress_level;     /* 1-9: write the zlib container during the run; 0: raw */
    int exact;              /* CPython's free lists off while recording (freelists.h):
                             * exact alive counts, more events */
} ml_tracker_options;

/* Start recording. Returns 0, or -1 with errno set (file exists, no memory,
 * already tracking: EBUSY). */
int ml_tracker_start(const ml_tracker_options *opt);

typedef struct {
    uint64_t allocs, frees, dropped, nostack, truncated, reuses;
    uint64_t hook_drains; /* times a hook drained the full event ring itself */
    uint64_t bytes_written, bytes_lost;
    int tracer_lost; /* 3.13: the creation tracer was replaced by someone */
    int compressed;  /* the file is the compressed container (zlib was loaded) */
} ml_tracker_stats;

/* Stop recording, write the trailer, close the file. Returns 0, or -1 if the
 * file lost bytes (disk full...). Fills *stats when not NULL. */
int ml_tracker_stop(ml_tracker_stats *stats);
int ml_tracker_active(void);

/* Live counters, cheap to read at any time (also without a file):
 * bytes currently allocated (traced heap), bytes and blocks allocated so far. */
typedef struct {
    int64_t heap;
    uint64_t allocated_bytes, allocations, peak;
    int64_t heap_small; /* rss: of heap, MEM/OBJ blocks of <= 512 bytes (pymalloc's) */
    int64_t heap_native; /* native: of heap, the native blocks (--native, typed <native: ...>) */
} ml_counters;
void ml_tracker_counters(ml_counters *out);
/* Reset the peak to the current heap (for %memit-style measurements). */
void ml_tracker_reset_peak(void);

/* pytop: windows of a counters-only session (path NULL; capture/windows.h):
 * between _begin and _end, the site (innermost Python frame not memlens'
 * own) and the type of every allocation are counted, exactly, so that _end
 * names the line and the type that allocated the most bytes in the window,
 * and those holding the most of what it left allocated. _begin returns 0,
 * or -1 with errno EBUSY (no counters-only session runs) or ENOMEM; it
 * restarts an open window. _end fills *out (release it with
 * ml_windows_top_release; all NULL without an open window) and returns 0,
 * or -1 (ENOMEM: *out holds what could be named). GIL held. */
#include "capture/windows.h"
int ml_tracker_window_begin(void);
int ml_tracker_window_end(ml_windows_top *out);

/* Write a MARK record (ML_MARK_*) at the current time. No-op without a file. */
void ml_tracker_mark(unsigned kind, const char *label, size_t len);

/* Heap at exit (capture/atexit.h): walk the live heap now and write its
 * buffer owners and holders into the capture, as a snapshot of `kind`
 * (ML_SNAP_EXIT when the program has ended, ML_SNAP_CALL, ML_SNAP_SIGNAL).
 * Returns 0, or -1 with errno: ENOENT when no capture file is being
 * written, ENOMEM (the records written so far stay). *stats (if not NULL)
 * gets the pass's counts. GIL held; no Python code runs meanwhile. */
#include "capture/atexit.h"
int ml_tracker_snapshot(unsigned kind, ml_atexit_stats *stats);

/* gcexit: the cyclic garbage a full collection would free now, written as
 * GARBAGE_AT_EXIT records (capture/gcexit.h); nothing is collected.
 * Returns 0, or -1 with errno ENOENT (no capture file), ENOMEM (nothing
 * written) or EBUSY (called during a collection). GIL held. */
#include "capture/gcexit.h"
int ml_tracker_garbage_at_exit(ml_gcexit_stats *stats);

/* Flush buffered records now (os._exit path). */
void ml_tracker_flush(void);

/* In a child made by os.fork: with follow_fork, start recording into
 * "<path>.<pid>"; else stop for good. Returns 0, or -1 (errno). GIL held. */
int ml_tracker_after_fork_child(void);

/* os.fork() hooks (before, and after in the parent): the sampler thread
 * stops before the fork and starts again after it, so that the program
 * forks a process with the threads it made itself (3.12+ warns when a
 * process with several threads forks). Events meanwhile wait in the ring
 * (a hook drains it if it fills). GIL held. */
void ml_tracker_before_fork(void);
void ml_tracker_after_fork_parent(void);

/* Frames from this code object outwards are the profiler's own (its entry
 * point that runs the program): stacks stop before them, and on the calling
 * thread (the one that runs the program) allocations outside it are the
 * profiler's own and not recorded (frees are, with no stack). GIL held. */
#include "compat/compat.h"
void ml_tracker_set_stop_code(PyCodeObject *code);

/* Code of files under this folder (the memlens package) is the profiler's
 * own, for the captures started from now on: its frames are left out of
 * stacks and the allocations it makes itself are not recorded. Returns 0,
 * or -1 when out of memory. */
int ml_tracker_set_own_dir(const char *dir, size_t len);

/* The name of type tp by the rule of capture/types.h: the running
 * capture's name when it has met tp (so the census and `types` agree),
 * else a name unique among those this function gave in the process.
 * *len gets its length; NULL when out of memory. GIL held. */
const char *ml_tracker_type_name(PyTypeObject *tp, size_t *len);

/* ---- native allocations (`memlens run --native`, native/hooks.h) ----
 *
 * The native hooks call these from any thread, with or without the GIL;
 * they never raise and take the engine lock only as the other hooks do.
 * A native block is an ALLOC record of the RAW domain whose type is the
 * buffer kind of the library that called ("<native: libfoo.so.1>"). With
 * the GIL it carries the thread's Python stack; without it, the stack the
 * thread had when it released the GIL through PyEval_SaveThread from a
 * hooked library (ml_tracker_native_gil_release), else none (counted in
 * the trailer's NOSTACK). */
#include <stdatomic.h>
typedef struct {
    _Atomic uint64_t generation; /* capture whose TYPE_DEF `id` is */
    uint32_t id;
    const char *name;            /* library file name, shown in the kind */
} ml_native_kind;

/* Record a native block of `size` bytes at p made by a library of kind k,
 * with native stack `nstack` (native/unwind.h; 0 = none). */
void ml_tracker_native_alloc(void *p, size_t size, ml_native_kind *k, uint32_t nstack);
/* Record the free of p (before it is released). */
void ml_tracker_native_free(void *p);
/* Give k its TYPE_DEF in the running capture now, so that allocations
 * made later without the GIL find it. Returns 1 when k has its TYPE_DEF
 * in the running capture (made now or before), 0 when not (no capture,
 * no GIL, inside memlens, out of memory). */
int ml_tracker_native_define(ml_native_kind *k);
/* This thread is about to release the GIL (GIL held): keep its Python
 * stack for the native allocations it makes without the GIL. */
void ml_tracker_native_gil_release(void);
/* ... and has taken it back: forget that stack. */
void ml_tracker_native_gil_acquired(void);

/* ---- buffer owners (NumPy: capture/numpybuf.h) and RSS samples ---- */

/* Kinds of buffer a library hands the tracker; each is a buffer kind of
 * its own in the capture (TYPE_DEF with ML_TYPEF_BUFFER). */
typedef enum {
    ML_BUFFER_NUMPY = 1, /* "numpy.ndarray (data)" */
    ML_BUFFER_COUNT
} ml_buffer_kind;

/* Block p of `size` bytes was just allocated by a buffer owner: record it
 * as a RAW block of `kind` with the calling thread's Python stack (none
 * without the GIL). p may be NULL (nothing happens). Any thread. */
void ml_tracker_buffer_alloc(void *p, size_t size, ml_buffer_kind kind);
/* Block p of a buffer owner is being freed. Any thread. */
void ml_tracker_buffer_free(void *p);

/* Quiet the allocator hooks on this thread (a buffer owner's allocator may
 * call PyMem_RawMalloc itself: NumPy 2.5 does; its block is recorded once,
 * as the owner's kind). Returns what _end restores. Any thread. */
int ml_tracker_quiet_begin(void);
void ml_tracker_quiet_end(int was);

/* Run fn(arg) as the profiler's own work: what it allocates is not
 * recorded. GIL held. */
void ml_tracker_run_own(void (*fn)(void *), void *arg);

/* rss: take pymalloc's figures now (ml_rsssample_pymalloc, with the OBJ
 * allocator CPython's own for the call: it reports only then). GIL held. */
void ml_tracker_pymalloc_stats(void);

/* Bytes the tracker holds for itself now (event ring pages touched, block
 * map, stacks and types tables, write buffers): memlens' own tables in
 * the RSS breakdown. Any thread; approximate by a page. */
uint64_t ml_tracker_own_bytes(void);

/* cycline: the ALLOC seqs of objs[0..n)'s blocks in the capture being
 * written (seqs[i] 0: allocated before it, or not seen), with the ring
 * drained and the file flushed first, so that every seq given is in the
 * file; *path (pathcap bytes) gets a path that reads the capture from its
 * start (/proc/self/fd/N: the file even if it was moved). GIL held. 0, or
 * -1 with errno ENOENT (no capture: not under `memlens run`, or only
 * counters) or ESPIPE (the capture is not a regular file: a pipe). */
int ml_tracker_object_seqs(PyObject *const *objs, size_t n, ml_seq *seqs, char *path, size_t pathcap);

#endif /* ML_TRACKER_H */
