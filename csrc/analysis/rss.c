/* rss.c: the RSS breakdown (see rss.h). */
#include "analysis/rss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ml_rss_part_names[ML_RSS_NPARTS] = {
    [ML_PART_PYMALLOC_USED] = "pymalloc_used", [ML_PART_PYMALLOC_FREE] = "pymalloc_free",
    [ML_PART_TRACED_LARGE] = "traced_c_heap",  [ML_PART_NATIVE] = "native_traced",
    [ML_PART_C_UNTRACED] = "c_heap_untraced",  [ML_PART_C_FREE] = "c_heap_free",
    [ML_PART_FILE] = "file_backed",            [ML_PART_STACKS] = "thread_stacks",
    [ML_PART_OWN] = "memlens_tables",          [ML_PART_UNEXPLAINED] = "unexplained",
};

/* a - b, or 0 when b is larger */
static int64_t
ml_rss_sub(uint64_t a, uint64_t b)
{
    return a > b ? (int64_t)(a - b) : 0;
}

void
ml_rss_parts_of(const uint64_t *f, int64_t *parts)
{
    uint64_t traced_large = f[ML_RSS_TRACED] > f[ML_RSS_TRACED_SMALL] ? f[ML_RSS_TRACED] - f[ML_RSS_TRACED_SMALL] : 0;
    if (!f[ML_RSS_ARENA_COUNT] && !f[ML_RSS_PYMALLOC_USED]) /* no pymalloc (PYTHONMALLOC=malloc) */
        traced_large = f[ML_RSS_TRACED];
    /* traced blocks the C heap serves cannot exceed what it has in use */
    if (traced_large > f[ML_RSS_MALLOC_USED] && f[ML_RSS_MALLOC_USED])
        traced_large = f[ML_RSS_MALLOC_USED];
    parts[ML_PART_PYMALLOC_USED] = (int64_t)f[ML_RSS_PYMALLOC_USED];
    parts[ML_PART_PYMALLOC_FREE] = ml_rss_sub(f[ML_RSS_ARENAS], f[ML_RSS_PYMALLOC_USED]);
    uint64_t untraced = (uint64_t)ml_rss_sub(f[ML_RSS_MALLOC_USED], traced_large + f[ML_RSS_NATIVE]);
    uint64_t c_free = f[ML_RSS_MALLOC_FREE];
    if (f[ML_RSS_ANON_OTHER]) {
        /* The C heap's resident bytes are measured: the unnamed mappings
         * but pymalloc's arenas and memlens' mmaps. Blocks in use need not
         * be resident (calloc'd pages never touched): the C-heap parts are
         * capped at it, the untraced estimate first, then the traced
         * blocks; the free space is what is left, at most what the
         * allocator says is free. */
        uint64_t left = (uint64_t)ml_rss_sub(f[ML_RSS_ANON_OTHER], f[ML_RSS_ARENAS] + f[ML_RSS_OWN]);
        if (traced_large > left)
            traced_large = left;
        left -= traced_large;
        if (untraced > left)
            untraced = left;
        left -= untraced;
        if (c_free > left)
            c_free = left;
    }
    parts[ML_PART_TRACED_LARGE] = (int64_t)traced_large;
    parts[ML_PART_NATIVE] = (int64_t)f[ML_RSS_NATIVE];
    parts[ML_PART_C_UNTRACED] = (int64_t)untraced;
    parts[ML_PART_C_FREE] = (int64_t)c_free;
    /* files: measured by mapping (memlens' data moves to its own part); a
     * sample without the field: what is not anonymous */
    parts[ML_PART_FILE] = f[ML_RSS_FILES] ? ml_rss_sub(f[ML_RSS_FILES], f[ML_RSS_OWN_STATIC])
                                          : ml_rss_sub(f[ML_RSS_TOTAL], f[ML_RSS_ANON]);
    parts[ML_PART_STACKS] = (int64_t)f[ML_RSS_STACKS];
    parts[ML_PART_OWN] = (int64_t)(f[ML_RSS_OWN] + f[ML_RSS_OWN_STATIC]);
    int64_t sum = 0;
    for (int i = 0; i < ML_PART_UNEXPLAINED; i++)
        sum += parts[i];
    parts[ML_PART_UNEXPLAINED] = (int64_t)f[ML_RSS_TOTAL] - sum;
}

void
ml_rss_series_release(ml_rss_series *s)
{
    free(s->points);
    memset(s, 0, sizeof(*s));
}

/* Keep every other point (the series is full). */
static void
ml_rss_thin(ml_rss_series *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i += 2)
        s->points[k++] = s->points[i];
    s->n = k;
    s->stride *= 2;
}

int
ml_rss_read(ml_reader *r, ml_rss_series *s, size_t max_points, const ml_progress *pg, char *err,
            size_t errcap)
{
    memset(s, 0, sizeof(*s));
    s->cap = max_points < 2 ? 2 : max_points;
    s->stride = 1;
    s->points = malloc(s->cap * sizeof(*s->points));
    if (!s->points) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    ml_reader_rewind(r);
    ml_event ev;
    int rc;
    uint64_t nread = 0;
    while ((rc = ml_reader_next(r, &ev)) == 1) {
        if (ml_progress_tick(pg, 1, r, ++nread, err, errcap) < 0) {
            ml_rss_series_release(s);
            return -1;
        }
        if (ev.kind != ML_EV_RSS)
            continue;
        ml_rss_point pt = {.time_us = ev.time_us};
        memcpy(pt.f, ev.rss_fields, sizeof(pt.f));
        if (!s->samples || pt.f[ML_RSS_TOTAL] > s->peak.f[ML_RSS_TOTAL])
            s->peak = pt;
        s->end = pt;
        if (s->samples++ % s->stride == 0) {
            if (s->n == s->cap)
                ml_rss_thin(s);
            if ((s->samples - 1) % s->stride == 0)
                s->points[s->n++] = pt;
        }
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        ml_rss_series_release(s);
        return -1;
    }
    s->truncated = ml_reader_truncated(r);
    return 0;
}
