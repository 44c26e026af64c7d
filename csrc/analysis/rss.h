/* rss.h: the RSS breakdown, from RSS_SAMPLE records or a live sample.
 *
 * Layer: analysis. Pure C, no Python API. A sample's fields (ML_RSS_* of
 * format.h) become parts that add up to the RSS exactly: every part but
 * the last is measured, "unexplained" is what is left (negative when the
 * measured parts count memory that is not resident, such as calloc'd
 * pages never touched). Reading a capture is one pass, memory bounded by
 * max_points (the series is thinned by halves when it fills; the peak and
 * the last sample are always kept exactly).
 */
#ifndef ML_ANALYSIS_RSS_H
#define ML_ANALYSIS_RSS_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/report.h" /* ml_progress */

/* The parts, in the order reports list them (names: ml_rss_part_names). */
enum ml_rss_part {
    ML_PART_PYMALLOC_USED = 0, /* Python objects in pymalloc's blocks */
    ML_PART_PYMALLOC_FREE,     /* pymalloc arenas minus what they hold */
    ML_PART_TRACED_LARGE,      /* traced blocks in the C heap: buffers and objects > 512 B, NumPy data */
    ML_PART_NATIVE,            /* native heap traced with --native */
    ML_PART_C_UNTRACED,        /* the C heap in use, not traced */
    ML_PART_C_FREE,            /* the C allocator's free and fragmented space */
    ML_PART_FILE,              /* code and libraries: file-backed and shared pages */
    ML_PART_STACKS,            /* thread stacks */
    ML_PART_OWN,               /* memlens' own tables */
    ML_PART_UNEXPLAINED,       /* the rest */
    ML_RSS_NPARTS
};

/* Short names ("pymalloc_used", ...), the JSON keys. */
extern const char *const ml_rss_part_names[ML_RSS_NPARTS];

/* The parts of one sample; their sum is f[ML_RSS_TOTAL]. */
void ml_rss_parts_of(const uint64_t *f, int64_t *parts);

typedef struct {
    uint64_t time_us;
    uint64_t f[ML_RSS_NFIELDS];
} ml_rss_point;

typedef struct {
    ml_rss_point *points; /* every `stride`-th sample, in time order */
    size_t n, cap, stride;
    uint64_t samples;     /* RSS_SAMPLE records read */
    ml_rss_point peak;    /* the sample with the highest RSS (first of equals) */
    ml_rss_point end;     /* the last sample */
    int truncated;        /* the capture ends without its trailer */
} ml_rss_series;

/* Read every RSS_SAMPLE of the capture r (from its start) into *s, at
 * most max_points (>= 2) in the series. Returns 0, or -1 with err set
 * (a corrupt capture, out of memory); *s is then released. */
int ml_rss_read(ml_reader *r, ml_rss_series *s, size_t max_points, const ml_progress *pg, char *err,
                size_t errcap);
void ml_rss_series_release(ml_rss_series *s);

#endif /* ML_ANALYSIS_RSS_H */
