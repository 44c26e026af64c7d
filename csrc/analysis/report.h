/* report.h: the summary, types and leaks reports, aggregated over a reader.
 *
 * Layer: analysis. Pure C, libc malloc, no Python API: csrc/bind/ turns the
 * results into Python objects, memlens/reports.py formats them.
 *
 * Definitions used by every report (docs/REPORTS.md says the same for users):
 *  - heap: the sum of the sizes of the live blocks (traced heap, not RSS).
 *    realloc is recorded by the tracker as FREE + ALLOC.
 *  - site: the innermost Python frame of a stack: (code file, function,
 *    line). Stacks with the same innermost frame are one site; code objects
 *    with the same file and name are one function. A site keeps as its
 *    representative `stack` the stack that contributes the most bytes to it.
 *    Stack 0 (no Python stack: allocations made without the GIL or outside
 *    any Python frame) is a site of its own, with code 0 and line 0.
 *  - REUSE (3.13: an object created in a block that stayed allocated, taken
 *    from a free list) counts as one allocation AND one free of its type: it
 *    proves the previous occupant died. It adds no bytes and does not change
 *    the heap or the alive count.
 *
 * The peak: the summary finds the live blocks at the peak in the same single
 * pass, as (live at the end) - (allocated after the peak) + (freed after the
 * peak), per stack; tests check it against a replay up to the peak event.
 *
 * Each report reads the capture from the start (it rewinds the reader) and
 * leaves the reader's definitions loaded, so ml_reader_code() and
 * ml_reader_frame() can name the sites afterwards. A capture cut short is
 * reported up to its end with `truncated` set; a corrupt record fails the
 * report (-1, with the reader's message in err).
 * Not thread-safe: one report at a time per reader.
 */
#ifndef ML_REPORT_H
#define ML_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/exitheap.h"
#include "analysis/reader.h"

/* Called about every million events: pass is 1 (every report reads the file
 * once), pos/size in bytes.
 * A nonzero return stops the report (it then fails with err "interrupted"). */
typedef int (*ml_progress_fn)(void *arg, int pass, uint64_t pos, uint64_t size);

typedef struct {
    ml_progress_fn fn;  /* NULL: no progress */
    void *arg;
} ml_progress;

/* For the other aggregators (timeline, lines): call pg (when not NULL) about
 * every million events; n counts the events read in this pass. Returns 0 to
 * go on, or -1 with err "interrupted" when the callback says stop. */
int ml_progress_tick(const ml_progress *pg, int pass, const ml_reader *r, uint64_t n, char *err,
                     size_t errcap);

#define ML_REPORT_MAX_NOTES 16

/* What every report knows about the capture as a whole. */
typedef struct {
    uint64_t events;           /* events read */
    uint64_t allocations, allocated_bytes, frees, reuses;
    uint64_t duration_us;      /* time of the last record */
    uint64_t end_bytes, end_count; /* heap at the end */
    int truncated;             /* no TRAILER: the process was killed */
    uint64_t trailer[ML_TRAILER_COUNT];
    /* NOTE records, distinct texts in order of appearance (malloc'd) */
    char *notes[ML_REPORT_MAX_NOTES];
    unsigned note_kinds[ML_REPORT_MAX_NOTES];
    size_t nnotes;
    uint64_t notes_dropped;    /* distinct notes beyond ML_REPORT_MAX_NOTES */
    /* garbage collector (GC records; docs/GC.md): collections (GC_STOP),
     * their pauses, and the frees of the collecting thread inside them */
    int gc_records;
    uint64_t gc_collections, gc_pause_us, gc_freed_bytes, gc_freed_blocks;
    int gc_in;                 /* reading inside a collection (of gc_thread) */
    ml_thread_id gc_thread;
    uint64_t gc_start_us;
} ml_report_totals;

/* One row of a site table (or of the leaks table, which adds the type). */
typedef struct {
    ml_code_id code;     /* the site's function (the first code with its file
                          * and name); 0 = no Python stack */
    int32_t line;
    ml_type_id type;     /* leaks: the blocks' type (0 = untyped) */
    ml_frame_id stack;   /* representative stack (innermost frame first) */
    uint64_t bytes, count;
    /* leaks, heap at exit: the holder (exitheap.h) that reaches most of the
     * group's bytes (0: none), and the bytes and blocks it reaches */
    uint32_t holder;
    uint64_t held_bytes, held_count;
    /* leaks, gcexit: of the group, the blocks a full collection at the end
     * would have freed (GARBAGE_AT_EXIT records) */
    uint64_t garbage_bytes, garbage_count;
} ml_site_row;

typedef struct {
    ml_report_totals totals;
    uint64_t peak_bytes;       /* the maximum of the heap */
    uint64_t peak_event;       /* 1-based index of the event that reached it (0: none) */
    uint64_t peak_time_us;
    /* sites, biggest first, at most `top` each */
    ml_site_row *at_peak, *allocated, *at_end;
    size_t n_at_peak, n_allocated, n_at_end;
    /* gcexit: of the heap at the end, the blocks a full collection would
     * have freed (GARBAGE_AT_EXIT records; garbage_records 0: none) */
    int garbage_records;
    uint64_t garbage_bytes, garbage_count;
} ml_summary;

typedef struct {
    ml_type_id type;           /* 0 = untyped */
    uint64_t allocs, frees;    /* REUSE counts in both */
    uint64_t peak_alive;       /* max over time of allocs - frees */
    uint64_t alive, alive_bytes;   /* at the end */
    uint64_t allocated_bytes;
} ml_type_row;

typedef struct {
    ml_report_totals totals;
    ml_type_row *rows;         /* every type with an allocation, by type id */
    size_t nrows;
} ml_types;

typedef struct {
    ml_report_totals totals;
    ml_site_row *rows;         /* (site, type) groups, biggest first, at most top */
    size_t nrows;
    size_t ngroups;            /* groups before the cut to `top` */
    ml_exitheap heap;          /* the capture's last heap snapshot; buffers named by owner */
    /* gcexit: the GARBAGE_AT_EXIT seqs (seq -> 1); the capture has such
     * records; live blocks in the set, over every group */
    ml_u64map garbage;
    int garbage_records;
    uint64_t garbage_bytes, garbage_count;
} ml_leaks;

/* Each fills *out (zeroed first) and returns 0, or -1 with a one-line
 * message in err (corrupt capture, out of memory, interrupted); on failure
 * *out holds nothing to release. top = 0 keeps every row. */
int ml_report_summary(ml_reader *r, size_t top, const ml_progress *progress, ml_summary *out,
                      char *err, size_t errcap);
int ml_report_types(ml_reader *r, const ml_progress *progress, ml_types *out, char *err,
                    size_t errcap);
int ml_report_leaks(ml_reader *r, size_t top, const ml_progress *progress, ml_leaks *out,
                    char *err, size_t errcap);

/* ml_report_summary, calling tap(tap_arg, r, ev) with every event of its
 * pass as it is read (the reader stands at that event), so that another
 * reading shares the pass (`memlens summary`'s RSS section: analysis/rss.h
 * ml_rss_feed). A tap returning -1 fails the summary as out of memory. */
typedef int (*ml_report_tap)(void *arg, ml_reader *r, const ml_event *ev);
int ml_report_summary_tap(ml_reader *r, size_t top, const ml_progress *progress, ml_report_tap tap,
                          void *tap_arg, ml_summary *out, char *err, size_t errcap);

void ml_summary_release(ml_summary *s);
void ml_types_release(ml_types *t);
void ml_leaks_release(ml_leaks *l);

#endif /* ML_REPORT_H */
