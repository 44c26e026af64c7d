/* timeline.c: series, marks and the exact peak (see timeline.h).
 *
 * Pass 1 collects MEMORY samples and MARKs and follows the traced heap event
 * by event to find the peak (the first time the maximum was reached). Pass 2
 * replays the events up to that one and groups the live blocks by site.
 */
#include "analysis/timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *ml_timeline_strndup(const char *s, size_t n);

/* Open-addressing map (code, line) -> bytes, blocks, for the peak's sites. */
typedef struct {
    uint64_t key; /* code << 32 | line, 0 = empty slot (code ids start at 1) */
    uint64_t bytes, blocks;
} ml_timeline_site;

typedef struct {
    ml_timeline_site *slots;
    size_t cap, len;
    const ml_reader *r;
    int failed;
} ml_timeline_sites;

typedef struct {
    ml_timeline_sites sites, types;
} ml_timeline_groups;

static int
ml_timeline_sites_grow(ml_timeline_sites *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    ml_timeline_site *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = (size_t)(m->slots[i].key * 0x9E3779B97F4A7C15ull >> 20) & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

static int
ml_timeline_map_add(ml_timeline_sites *m, uint64_t key, uint64_t size)
{
    if ((m->len + 1) * 2 > m->cap && ml_timeline_sites_grow(m) < 0) {
        m->failed = 1;
        return 1;
    }
    size_t j = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & (m->cap - 1);
    while (m->slots[j].key && m->slots[j].key != key)
        j = (j + 1) & (m->cap - 1);
    if (!m->slots[j].key) {
        m->slots[j].key = key;
        m->len++;
    }
    m->slots[j].bytes += size;
    m->slots[j].blocks++;
    return 0;
}

static int
ml_timeline_groups_add(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack,
                       ml_type_id type, ml_domain domain)
{
    ml_timeline_groups *g = arg;
    const ml_frame_info *fi = stack ? ml_reader_frame(g->sites.r, stack) : NULL;
    if (fi && ml_timeline_map_add(&g->sites, (uint64_t)fi->code << 32 |
                                  (uint32_t)ml_reader_frame_line(g->sites.r, stack), size))
        return 1;
    return ml_timeline_map_add(&g->types, (uint64_t)type + 1, size);
}

static int
ml_timeline_site_cmp(const void *a, const void *b)
{
    const ml_timeline_site *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* The top entries of a map, most bytes first, into *out (malloc'ed). */
static int
ml_timeline_top(ml_timeline_sites *m, const ml_reader *r, int sites,
                struct ml_timeline_group **out, size_t *nout)
{
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            m->slots[n++] = m->slots[i];
    qsort(m->slots, n, sizeof(*m->slots), ml_timeline_site_cmp);
    m->len = 0; /* the map is consumed */
    if (n > ML_TIMELINE_TOP)
        n = ML_TIMELINE_TOP;
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out)
        return -1;
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        struct ml_timeline_group *g = &(*out)[i];
        uint64_t key = m->slots[i].key;
        g->bytes = m->slots[i].bytes;
        g->blocks = m->slots[i].blocks;
        if (sites) {
            const ml_code_info *ci = ml_reader_code(r, (ml_code_id)(key >> 32));
            g->line = (int32_t)(uint32_t)key;
            g->file = ml_timeline_strndup(ci ? ci->file : "?", strlen(ci ? ci->file : "?"));
            g->function = ml_timeline_strndup(ci ? ci->name : "?", strlen(ci ? ci->name : "?"));
            if (!g->file || !g->function)
                return -1;
        } else {
            const char *name = key > 1 ? ml_reader_type_name(r, (ml_type_id)(key - 1)) : NULL;
            if (!name)
                name = "(unknown)";
            g->type = ml_timeline_strndup(name, strlen(name));
            if (!g->type)
                return -1;
        }
    }
    return 0;
}

static char *
ml_timeline_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static void
ml_timeline_groups_free(struct ml_timeline_group *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++) {
        free(g[i].file);
        free(g[i].function);
        free(g[i].type);
    }
    free(g);
}

void
ml_timeline_release(ml_timeline *t)
{
    ml_timeline_groups_free(t->top_sites, t->ntop_sites);
    ml_timeline_groups_free(t->top_types, t->ntop_types);
    for (size_t i = 0; i < t->nmarks; i++)
        free(t->marks[i].label);
    free(t->marks);
    free(t->gcs);
    free(t->points);
    free(t->top_file);
    free(t->top_function);
    memset(t, 0, sizeof(*t));
}

/* The series is at its limit: merge pairs of points (the later one's time
 * and samples, the higher heap_max), so each point stands for twice as many
 * samples from now on. */
static void
ml_timeline_halve(ml_timeline *t, uint64_t *stride)
{
    size_t n = 0;
    for (size_t i = 0; i < t->npoints; i += 2, n++) {
        ml_timeline_point p = t->points[i];
        if (i + 1 < t->npoints) {
            const ml_timeline_point *q = &t->points[i + 1];
            uint64_t top = p.heap_max > q->heap_max ? p.heap_max : q->heap_max;
            p = *q;
            p.heap_max = top;
        }
        t->points[n] = p;
    }
    t->npoints = n;
    *stride *= 2;
}

/* gc: collections being paired in pass 1. */
typedef struct {
    size_t cap;
    size_t open;           /* index of the collection started and not stopped */
    int state;             /* 0 none open, 1 open at `open`, 2 open but not kept */
    ml_thread_id thread;   /* the collecting thread of the open one */
} ml_timeline_gcscan;

/* The list is full: drop the youngest generation kept (counted). */
static void
ml_timeline_gc_thin(ml_timeline *t, ml_timeline_gcscan *g)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ngcs; i++) {
        if (t->gcs[i].generation <= t->gcs_min_generation) {
            t->gcs_dropped++;
            if (g->state == 1 && g->open == i)
                g->state = 2;
            continue;
        }
        if (g->state == 1 && g->open == i)
            g->open = n;
        t->gcs[n++] = t->gcs[i];
    }
    t->ngcs = n;
    t->gcs_min_generation++;
}

/* A GC_START or GC_STOP record. 0, or -1 when out of memory. */
static int
ml_timeline_gc_event(ml_timeline *t, ml_timeline_gcscan *g, const ml_event *ev)
{
    if (ev->kind == ML_EV_GC_STOP && g->state && g->thread == ev->thread) {
        if (g->state == 1) {
            ml_timeline_gc *c = &t->gcs[g->open];
            c->end_us = ev->time_us >= c->start_us ? ev->time_us : c->start_us;
            c->collected = ev->gc_collected;
            c->uncollectable = ev->gc_uncollectable;
            c->complete = 1;
        }
        g->state = 0;
        return 0;
    }
    /* a start, or a stop whose start was not recorded */
    while (t->ngcs == ML_TIMELINE_MAX_GCS && t->gcs_min_generation < ML_TIMELINE_GC_GENERATIONS)
        ml_timeline_gc_thin(t, g);
    int keep = ev->gc_generation >= t->gcs_min_generation && t->ngcs < ML_TIMELINE_MAX_GCS;
    if (ev->kind == ML_EV_GC_START) {
        g->state = keep ? 1 : 2;
        g->thread = ev->thread;
        g->open = t->ngcs;
    }
    if (!keep) {
        t->gcs_dropped++;
        return 0;
    }
    if (t->ngcs == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 64;
        ml_timeline_gc *n = realloc(t->gcs, ncap * sizeof(*n));
        if (!n)
            return -1;
        t->gcs = n;
        g->cap = ncap;
    }
    ml_timeline_gc c = {ev->time_us, ev->time_us, 0, 0, ev->gc_generation, 0};
    if (ev->kind == ML_EV_GC_STOP) {
        c.collected = ev->gc_collected;
        c.uncollectable = ev->gc_uncollectable;
    }
    t->gcs[t->ngcs++] = c;
    return 0;
}

/* Pass 1. Returns the number of heap events up to and including the peak. */
static int
ml_timeline_scan(ml_reader *r, ml_timeline *t, uint64_t *peak_event, const ml_progress *pg,
                 char *err, size_t errcap)
{
    size_t pcap = 0, mcap = 0;
    uint64_t stride = 1, pending = 0; /* samples per point once the series is halved */
    uint64_t nheap_events = 0, blocks = 0, nread = 0;
    int64_t heap = 0, interval_max = 0; /* highest heap since the last sample */
    ml_event ev;
    ml_timeline_gcscan gcscan = {0};
    int rc;
    ml_reader_rewind(r);
    while ((rc = ml_reader_next(r, &ev)) == 1) {
        if (ml_progress_tick(pg, 1, r, ++nread, err, errcap) < 0)
            return -1;
        t->end_us = ev.time_us;
        switch (ev.kind) {
        case ML_EV_GC_START:
        case ML_EV_GC_STOP:
            if (ml_timeline_gc_event(t, &gcscan, &ev) < 0)
                goto nomem;
            break;
        case ML_EV_ALLOC:
        case ML_EV_FREE:
            nheap_events++;
            if (ev.kind == ML_EV_ALLOC) {
                heap += (int64_t)ev.size;
                blocks++;
            } else {
                heap -= (int64_t)ev.size;
                blocks--;
            }
            if (heap > interval_max)
                interval_max = heap;
            if (heap > 0 && (uint64_t)heap > t->peak_heap) {
                t->peak_heap = (uint64_t)heap;
                t->peak_time_us = ev.time_us;
                t->peak_blocks = blocks;
                *peak_event = nheap_events;
            }
            break;
        case ML_EV_MEMORY:
            if (pending) {
                /* inside a merged interval: its last sample stands for it,
                 * with the highest heap seen in any of its parts */
                ml_timeline_point *last = &t->points[t->npoints - 1];
                uint64_t top = (uint64_t)interval_max > ev.heap ? (uint64_t)interval_max : ev.heap;
                last->time_us = ev.time_us;
                last->rss = ev.rss;
                last->heap = ev.heap;
                last->heap_max = top > last->heap_max ? top : last->heap_max;
                interval_max = heap;
                if (++pending == stride)
                    pending = 0;
                break;
            }
            if (t->npoints == ML_TIMELINE_MAX_POINTS) {
                ml_timeline_halve(t, &stride);
                pending = 0;
            }
            if (stride > 1)
                pending = 1; /* this sample opens a new merged interval */
            if (t->npoints == pcap) {
                size_t ncap = pcap ? pcap * 2 : 256;
                ml_timeline_point *np = realloc(t->points, ncap * sizeof(*np));
                if (!np)
                    goto nomem;
                t->points = np;
                pcap = ncap;
            }
            t->points[t->npoints++] = (ml_timeline_point){
                ev.time_us, ev.rss, ev.heap,
                (uint64_t)interval_max > ev.heap ? (uint64_t)interval_max : ev.heap};
            interval_max = heap;
            break;
        case ML_EV_MARK:
            if (t->nmarks == ML_TIMELINE_MAX_MARKS) {
                t->marks_dropped++;
                break;
            }
            if (t->nmarks == mcap) {
                size_t ncap = mcap ? mcap * 2 : 64;
                ml_timeline_mark *nm = realloc(t->marks, ncap * sizeof(*nm));
                if (!nm)
                    goto nomem;
                t->marks = nm;
                mcap = ncap;
            }
            {
                size_t len = ev.text ? ev.text_len : 0;
                if (len > ML_TIMELINE_MAX_LABEL)
                    len = ML_TIMELINE_MAX_LABEL;
                char *label = ml_timeline_strndup(ev.text ? ev.text : "", len);
                if (!label)
                    goto nomem;
                t->marks[t->nmarks++] = (ml_timeline_mark){ev.time_us, ev.mark_kind, label};
            }
            break;
        default:
            break;
        }
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        return -1;
    }
    t->truncated = ml_reader_truncated(r);
    return 0;
nomem:
    snprintf(err, errcap, "out of memory while reading the timeline");
    return -1;
}

/* Pass 2: replay to the peak, then find the site holding the most bytes. */
static int
ml_timeline_peak_site(ml_reader *r, ml_timeline *t, uint64_t peak_event, const ml_progress *pg,
                      char *err, size_t errcap)
{
    ml_event ev;
    uint64_t n = 0, nread = 0;
    int rc = 1;
    ml_reader_rewind(r);
    while (n < peak_event && (rc = ml_reader_next(r, &ev)) == 1) {
        if (ml_progress_tick(pg, 2, r, ++nread, err, errcap) < 0)
            return -1;
        n += ev.kind == ML_EV_ALLOC || ev.kind == ML_EV_FREE;
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        return -1;
    }
    ml_timeline_groups g = {.sites = {.r = r}, .types = {.r = r}};
    if (ml_timeline_sites_grow(&g.sites) < 0 || ml_timeline_sites_grow(&g.types) < 0)
        goto nomem;
    ml_reader_live_foreach(r, ml_timeline_groups_add, &g);
    if (g.sites.failed || g.types.failed)
        goto nomem;
    if (ml_timeline_top(&g.sites, r, 1, &t->top_sites, &t->ntop_sites) < 0 ||
        ml_timeline_top(&g.types, r, 0, &t->top_types, &t->ntop_types) < 0)
        goto nomem;
    if (t->ntop_sites) {
        const struct ml_timeline_group *best = &t->top_sites[0];
        t->top_line = best->line;
        t->top_bytes = best->bytes;
        t->top_blocks = best->blocks;
        t->top_file = ml_timeline_strndup(best->file, strlen(best->file));
        t->top_function = ml_timeline_strndup(best->function, strlen(best->function));
        if (!t->top_file || !t->top_function)
            goto nomem;
    }
    free(g.sites.slots);
    free(g.types.slots);
    return 0;
nomem:
    free(g.sites.slots);
    free(g.types.slots);
    snprintf(err, errcap, "out of memory while grouping the blocks at the peak");
    return -1;
}

int
ml_timeline_build(ml_reader *r, ml_timeline *t, const ml_progress *pg, char *err, size_t errcap)
{
    uint64_t peak_event = 0;
    memset(t, 0, sizeof(*t));
    if (ml_timeline_scan(r, t, &peak_event, pg, err, errcap) < 0)
        goto fail;
    if (peak_event && ml_timeline_peak_site(r, t, peak_event, pg, err, errcap) < 0)
        goto fail;
    return 0;
fail:
    ml_timeline_release(t);
    return -1;
}
