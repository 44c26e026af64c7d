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
} ml_counters;
void ml_tracker_counters(ml_counters *out);
/* Reset the peak to the current heap (for %memit-style measurements). */
void ml_tracker_reset_peak(void);

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

#endif /* ML_TRACKER_H */
