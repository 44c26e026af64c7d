/* linemeter.h: live line-by-line memory of @memlens.profile functions.
 *
 * Layer: capture (runs in the profiled process, on line events of decorated
 * functions only). Pure C apart from reading the tracker's counters
 * (capture/tracker.h); its own memory comes from libc malloc, which the
 * tracker does not see, so metering never shows up in the figures.
 *
 * Model: a meter per decorated code object. Each call pushes a frame (per
 * thread) holding the counters at its last event and the line running. A line
 * event charges the counter delta since the frame's last event to the line
 * that was running (callees included), then makes the new line current. The
 * interval before the first line is charged to the `def` line, the interval
 * after the last line event (until the call returns) to the last line. So
 * the increments of a call's lines sum to the counter delta across the call:
 * for each meter, sum(increment) == net, exactly (ml_linemeter_stats.net).
 *
 * Profiler noise: where the interpreter allocates an argument for the line
 * callback (sys.monitoring passes the line number as an int, a fresh object
 * above 256), the binding reports its size with ml_linemeter_noise() and the
 * meter takes it out of the counters it reads.
 *
 * Threads: all calls need the GIL (they are made from Python callbacks).
 */
#ifndef ML_LINEMETER_H
#define ML_LINEMETER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ml_linemeter ml_linemeter;

typedef struct {
    int32_t line;
    int64_t increment;
    uint64_t allocated, allocations;
    uint64_t occurrences;  /* line events */
    int64_t heap;          /* traced heap when the line last finished */
} ml_linemeter_row;

typedef struct {
    uint64_t calls;
    int64_t net;           /* sum over calls of (heap at exit - heap at entry) */
    uint64_t allocated, allocations;
} ml_linemeter_stats;

/* The meter of `key` (a code object), created on first use with lines
 * counted from `firstline` (its `def` line). NULL when out of memory. */
ml_linemeter *ml_linemeter_get(const void *key, int32_t firstline);
/* The meter of `key`, or NULL if it was never created. */
ml_linemeter *ml_linemeter_find(const void *key);

/* A call of the function starts on `thread` (any per-thread pointer).
 * Returns 0, or -1 when out of memory (the call is then not metered). */
int ml_linemeter_enter(ml_linemeter *m, const void *thread);
/* Line `line` starts in the innermost metered call on `thread` (ignored, but
 * counted, when the thread has no call in this meter, e.g. a resumed
 * generator). */
void ml_linemeter_line(ml_linemeter *m, const void *thread, int32_t line);
/* The innermost call on `thread` returns. */
void ml_linemeter_exit(ml_linemeter *m, const void *thread);

/* The interpreter allocated `bytes` for a callback argument just before the
 * current callback and frees it right after (see above). */
void ml_linemeter_noise(uint64_t bytes);

/* Rows with at least one event or charge, by line; *n set. Valid until the
 * next call on the meter. Stats into *st. */
const ml_linemeter_row *ml_linemeter_rows(ml_linemeter *m, size_t *n, ml_linemeter_stats *st);
/* Forget the figures of every meter (calls in progress stay open). */
void ml_linemeter_reset_all(void);

#endif /* ML_LINEMETER_H */
