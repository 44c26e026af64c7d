/* timeline.h: memory over time from a capture file: the RSS and traced-heap
 * series, the user's marks (@memlens.profile enter/exit), and the exact peak
 * of the traced heap with the site that held most of it at that moment.
 *
 * Layer: analysis. Pure C, no Python API; reads through analysis/reader.h.
 *
 * The series are the MEMORY samples the tracker writes every sample_ms
 * (RSS and traced heap as the sampler saw them). The peak is exact: it is
 * computed from the ALLOC/FREE events, so it is found even when it falls
 * between two samples. The top site at the peak is the (code, line) of the
 * innermost frame of the live blocks' stacks that held the most bytes.
 * Ownership: the ml_timeline owns all its arrays and strings.
 */
#ifndef ML_TIMELINE_H
#define ML_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/report.h"

typedef struct {
    uint64_t time_us, rss, heap;
    uint64_t heap_max; /* highest traced heap since the previous sample, from the events */
} ml_timeline_point;

typedef struct {
    uint64_t time_us;
    unsigned kind;         /* ML_MARK_ENTER / EXIT / LABEL */
    char *label;           /* NUL-terminated */
} ml_timeline_mark;

/* gc: one collection (GC_START and its GC_STOP on the same thread). */
typedef struct {
    uint64_t start_us, end_us; /* end_us == start_us when incomplete */
    uint64_t collected, uncollectable; /* CPython's numbers at the stop (0 when none) */
    unsigned generation;
    int complete;          /* both records seen */
} ml_timeline_gc;

typedef struct {
    ml_timeline_point *points;
    size_t npoints;
    ml_timeline_mark *marks;
    size_t nmarks;
    uint64_t end_us;       /* time of the last record */
    /* exact peak of the traced heap (0 when nothing was allocated) */
    uint64_t peak_heap, peak_time_us, peak_blocks;
    /* top site at the peak: file/function NULL when no block had a stack */
    char *top_file, *top_function;
    int32_t top_line;
    uint64_t top_bytes, top_blocks;
    /* live blocks at the peak grouped by site and by type, most bytes first
     * (at most ML_TIMELINE_TOP of each) */
    struct ml_timeline_group {
        char *file, *function;  /* sites; NULL for types */
        int32_t line;
        char *type;             /* types: name, "(unknown)" for untyped blocks */
        uint64_t bytes, blocks;
    } *top_sites, *top_types;
    size_t ntop_sites, ntop_types;
    int truncated;         /* capture cut short (no trailer) */
    uint64_t marks_dropped; /* marks beyond ML_TIMELINE_MAX_MARKS */
    /* gc: the collections in time order; past ML_TIMELINE_MAX_GCS the
     * youngest generation still kept is dropped (counted, not kept), so the
     * older generations' collections, rarer and longer, stay */
    ml_timeline_gc *gcs;
    size_t ngcs;
    uint64_t gcs_dropped;
    unsigned gcs_min_generation; /* the youngest generation kept */
} ml_timeline;

#define ML_TIMELINE_TOP 10
/* Bounds, so that a hostile capture (a zlib bomb of MEMORY or MARK records)
 * cannot make the timeline take memory in proportion to its raw size: past
 * ML_TIMELINE_MAX_POINTS samples (about 2.9 hours at 10 ms) the series is
 * halved, pairs merged (the later sample, the higher heap_max), as often as
 * needed; marks past ML_TIMELINE_MAX_MARKS are counted, not kept; a label
 * keeps its first ML_TIMELINE_MAX_LABEL bytes. */
#define ML_TIMELINE_MAX_POINTS ((size_t)1 << 20)
#define ML_TIMELINE_MAX_MARKS ((size_t)1 << 20)
#define ML_TIMELINE_MAX_LABEL 1024
#define ML_TIMELINE_MAX_GCS ((size_t)1 << 16)
#define ML_TIMELINE_GC_GENERATIONS 3

/* Read the whole capture (two passes: series and peak, then the live blocks
 * at the peak) into *t, telling pg (may be NULL) the progress of each pass.
 * Returns 0, or -1 with a one-line message in err; on failure *t is left
 * empty. */
int ml_timeline_build(ml_reader *r, ml_timeline *t, const ml_progress *pg, char *err,
                      size_t errcap);
/* Free the contents of *t and zero it. */
void ml_timeline_release(ml_timeline *t);

#endif /* ML_TIMELINE_H */
