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
#include "analysis/u64map.h"

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

/* rss: "arenas kept by few objects". One (site, type) group of the live
 * recorded blocks found in mostly-empty arenas at the end. */
typedef struct {
    ml_code_id code;     /* the site: code and line of the allocating frame (0: no Python stack) */
    int32_t line;
    ml_type_id type;
    uint64_t blocks, bytes; /* live blocks of the group in those arenas */
    uint64_t arenas;        /* arenas holding at least one of them */
    uint64_t last_arena;    /* (while reading) arena index + 1 of the last counted */
} ml_arena_group;

typedef struct {
    unsigned pct;             /* an arena is mostly empty when used <= pct % of it */
    uint64_t arenas;          /* ARENA records (0: the capture has none) */
    uint64_t size, resident, used; /* of all of them, bytes */
    uint64_t sparse;          /* the mostly-empty arenas */
    uint64_t sparse_size, sparse_resident, sparse_used;
    uint64_t sparse_blocks, sparse_bytes; /* recorded live blocks found in them */
    ml_arena_group *groups;   /* by blocks, descending */
    size_t ngroups, gcap;
    struct ml_sparse_arena {  /* the mostly-empty arenas, in file order */
        uint64_t base, size, resident, used;
        uint64_t blocks, bytes; /* recorded live blocks found in it */
    } *list;
    size_t nlist, lcap;
} ml_arena_report;

typedef struct {
    ml_rss_point *points; /* every `stride`-th sample, in time order */
    size_t n, cap, stride;
    uint64_t samples;     /* RSS_SAMPLE records read */
    ml_rss_point peak;    /* the sample with the highest RSS (first of equals) */
    ml_rss_point end;     /* the last sample */
    int truncated;        /* the capture ends without its trailer */
    ml_arena_report arenas; /* the ARENA records at the end */
} ml_rss_series;

/* Read every RSS_SAMPLE of the capture r (from its start) into *s, at
 * most max_points (>= 2) in the series, and the ARENA / ARENA_BLOCKS
 * records into s->arenas (an arena is mostly empty when its used bytes
 * are at most arena_pct % of its size; the capture lists the blocks of
 * arenas up to ML_ARENA_BLOCKS_PCT %, so a larger arena_pct is cut to it).
 * The native heap traced with --native (live RAW blocks of a type
 * "<native: ...>") is computed from the events and put in a sample's
 * ML_RSS_NATIVE when the record has 0 there (the tracker writes 0).
 * Returns 0, or -1 with err set (a corrupt capture, out of memory); *s is
 * then released. Memory: the points, one entry per (site, type) group and
 * one flag per type. */
int ml_rss_read(ml_reader *r, ml_rss_series *s, size_t max_points, unsigned arena_pct, const ml_progress *pg,
                char *err, size_t errcap);
void ml_rss_series_release(ml_rss_series *s);

/* The same reading, fed one event at a time by a caller's own pass (so that
 * `memlens summary` reads the capture once): ml_rss_begin, then
 * ml_rss_feed with every event of the pass, from the start, in order, while
 * the reader stands at that event; then ml_rss_end (the series is done) or
 * ml_rss_abort (it is released). What ml_rss_read does is exactly this. */
typedef struct {
    ml_rss_series *s;
    int64_t native;             /* live bytes of the native heap traced with --native */
    unsigned char *native_type; /* per type: 0 unknown, 1 not native, 2 native */
    size_t native_cap;
    uint32_t *sparse;           /* arena i: its place in s->arenas.list + 1, 0 = not mostly empty */
    size_t sparse_cap;
    ml_u64map groups;           /* (site, type) -> index in s->arenas.groups */
} ml_rss_reading;

/* 0, or -1 with err set (out of memory; nothing to release). */
int ml_rss_begin(ml_rss_reading *st, ml_rss_series *s, size_t max_points, unsigned arena_pct, char *err,
                 size_t errcap);
/* 0, or -1 out of memory (then call ml_rss_abort). */
int ml_rss_feed(ml_rss_reading *st, ml_reader *r, const ml_event *ev);
void ml_rss_end(ml_rss_reading *st, ml_reader *r);
void ml_rss_abort(ml_rss_reading *st);

#endif /* ML_ANALYSIS_RSS_H */
