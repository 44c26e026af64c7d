/* gcreport.c: the `gc` report (see gcreport.h). */
#include "analysis/gcreport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (site, type) -> row: open addressing over a power-of-two table. */
typedef struct {
    ml_site_row *rows;
    size_t cap, n;
} ml_gcreport_map;

static uint64_t
ml_gcreport_hash(ml_code_id code, int32_t line, ml_type_id type)
{
    uint64_t h = ((uint64_t)code << 32 | (uint32_t)line) * UINT64_C(0x9E3779B97F4A7C15);
    h ^= (uint64_t)type * UINT64_C(0xC2B2AE3D27D4EB4F);
    return h ^ h >> 29;
}

static int
ml_gcreport_map_grow(ml_gcreport_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 256;
    ml_site_row *n = calloc(ncap, sizeof(*n));
    if (!n)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        ml_site_row *o = &m->rows[i];
        if (!o->count)
            continue;
        size_t k = ml_gcreport_hash(o->code, o->line, o->type) & (ncap - 1);
        while (n[k].count)
            k = (k + 1) & (ncap - 1);
        n[k] = *o;
    }
    free(m->rows);
    m->rows = n;
    m->cap = ncap;
    return 0;
}

/* Add a freed block to its row; -1 out of memory. */
static int
ml_gcreport_map_add(ml_gcreport_map *m, ml_code_id code, int32_t line, ml_type_id type,
                    ml_frame_id stack, uint64_t bytes)
{
    if ((m->n + 1) * 4 > m->cap * 3 && ml_gcreport_map_grow(m) < 0)
        return -1;
    size_t k = ml_gcreport_hash(code, line, type) & (m->cap - 1);
    for (;; k = (k + 1) & (m->cap - 1)) {
        ml_site_row *row = &m->rows[k];
        if (!row->count) {
            *row = (ml_site_row){code, line, type, stack, bytes, 1};
            m->n++;
            return 0;
        }
        if (row->code == code && row->line == line && row->type == type) {
            row->bytes += bytes;
            row->count++;
            return 0;
        }
    }
}

static int
ml_gcreport_row_cmp(const void *pa, const void *pb)
{
    const ml_site_row *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    if (a->count != b->count)
        return a->count < b->count ? 1 : -1;
    if (a->code != b->code)
        return a->code < b->code ? -1 : 1;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return a->type < b->type ? -1 : a->type > b->type;
}

static int
ml_gcreport_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Keep c among the `top` longest pauses (longest first; ties: earliest). */
static void
ml_gcreport_keep_longest(ml_gc_report *g, size_t top, const ml_gc_collection *c)
{
    size_t n = g->nlongest;
    if (n == top && g->longest[n - 1].pause_us >= c->pause_us)
        return;
    size_t i = n < top ? n : n - 1;
    while (i > 0 && g->longest[i - 1].pause_us < c->pause_us) {
        g->longest[i] = g->longest[i - 1];
        i--;
    }
    g->longest[i] = *c;
    if (n < top)
        g->nlongest++;
}

/* ---- gcexit: uncollectable objects (gc.garbage) by (site, type) ---- */

/* The blocks of one UNCOLLECTABLE record (still live: they are in
 * gc.garbage) added to their rows. -1 out of memory. */
static int
ml_gcreport_uncollectable(ml_reader *r, const ml_event *ev, ml_gcreport_map *m, ml_gc_report *out)
{
    out->has_uncollectable = 1;
    for (size_t i = 0; i < ev->n_gc_seqs; i++) {
        uint64_t size;
        ml_frame_id stack;
        ml_type_id type;
        if (ml_reader_live_get(r, ev->gc_seqs[i], &size, &stack, &type) < 0)
            continue; /* freed already (never in a capture memlens wrote) */
        const ml_frame_info *f = ml_reader_frame(r, stack);
        ml_code_id code = f ? f->code : 0;
        int32_t line = f ? ml_reader_frame_line(r, stack) : 0;
        if (ml_gcreport_map_add(m, code, line, type, stack, size) < 0)
            return -1;
        out->uncoll_bytes += size;
        out->uncoll_blocks++;
    }
    return 0;
}

static void
ml_gcreport_uncollectable_rows(ml_gcreport_map *m, size_t top, ml_gc_report *out)
{
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->rows[i].count)
            m->rows[n++] = m->rows[i];
    if (n)
        qsort(m->rows, n, sizeof(*m->rows), ml_gcreport_row_cmp);
    out->uncoll_groups = n;
    out->uncoll = m->rows;
    out->nuncoll = top && n > top ? top : n;
}

#define ML_GCREPORT_LONGEST_MAX 1000 /* top = 0 ("all") keeps this many pauses */

int
ml_gcreport_run(ml_reader *r, size_t top, const ml_progress *pg, ml_gc_report *out, char *err,
                size_t errcap)
{
    memset(out, 0, sizeof(*out));
    ml_gcreport_map map = {0};
    ml_gcreport_map umap = {0}; /* gcexit: uncollectable */
    uint32_t *pauses = NULL;
    size_t npauses = 0, pcap = 0;
    size_t keep = top && top < ML_GCREPORT_LONGEST_MAX ? top : ML_GCREPORT_LONGEST_MAX;
    ml_gc_collection cur;
    int in_gc = 0;
    ml_event ev;
    uint64_t nread = 0;
    int rc;

    out->longest = calloc(keep, sizeof(*out->longest));
    if (!out->longest)
        goto oom;
    ml_reader_rewind(r);
    while ((rc = ml_reader_next(r, &ev)) > 0) {
        if (ml_progress_tick(pg, 1, r, ++nread, err, errcap) < 0)
            goto fail;
        switch (ev.kind) {
        case ML_EV_GC_START:
            out->has_records = 1;
            if (in_gc)
                out->incomplete++;
            memset(&cur, 0, sizeof(cur));
            cur.start_us = ev.time_us;
            cur.generation = ev.gc_generation;
            cur.stack = ev.stack;
            cur.thread = ev.thread;
            in_gc = 1;
            break;
        case ML_EV_GC_STOP: {
            out->has_records = 1;
            unsigned gen = ev.gc_generation;
            ml_gc_generation *gs = &out->gen[gen];
            gs->collections++;
            gs->collected += ev.gc_collected;
            gs->uncollectable += ev.gc_uncollectable;
            out->collections++;
            out->uncollectable += ev.gc_uncollectable;
            if (gen + 1 > out->ngen)
                out->ngen = gen + 1;
            if (!in_gc || cur.thread != ev.thread)
                break; /* no start seen: a collection without a pause */
            in_gc = 0;
            cur.pause_us = ev.time_us > cur.start_us ? ev.time_us - cur.start_us : 0;
            cur.generation = gen;
            cur.collected = ev.gc_collected;
            cur.uncollectable = ev.gc_uncollectable;
            gs->pause_us += cur.pause_us;
            out->pauses++;
            out->pause_total_us += cur.pause_us;
            if (cur.pause_us > out->pause_max_us)
                out->pause_max_us = cur.pause_us;
            if (npauses == pcap) {
                size_t ncap = pcap ? pcap * 2 : 1024;
                uint32_t *n = realloc(pauses, ncap * sizeof(*n));
                if (!n)
                    goto oom;
                pauses = n;
                pcap = ncap;
            }
            pauses[npauses++] = cur.pause_us > UINT32_MAX ? UINT32_MAX : (uint32_t)cur.pause_us;
            ml_gcreport_keep_longest(out, keep, &cur);
            break;
        }
        case ML_EV_FREE:
            if (!in_gc || ev.thread != cur.thread)
                break;
            cur.freed_bytes += ev.size;
            cur.freed_blocks++;
            out->freed_bytes += ev.size;
            out->freed_blocks++;
            {
                const ml_frame_info *f = ml_reader_frame(r, ev.stack);
                ml_code_id code = f ? f->code : 0;
                int32_t line = f ? ml_reader_frame_line(r, ev.stack) : 0;
                if (ml_gcreport_map_add(&map, code, line, ev.type, ev.stack, ev.size) < 0)
                    goto oom;
            }
            break;
        case ML_EV_UNCOLLECTABLE: /* gcexit */
            if (ml_gcreport_uncollectable(r, &ev, &umap, out) < 0)
                goto oom;
            break;
        default:
            break;
        }
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        goto fail;
    }
    if (in_gc)
        out->incomplete++;
    if (out->ngen < 3)
        out->ngen = 3;
    out->duration_us = ml_reader_time(r);
    out->truncated = ml_reader_truncated(r);
    if (npauses) {
        qsort(pauses, npauses, sizeof(*pauses), ml_gcreport_u32_cmp);
        size_t i50 = (npauses * 50 + 99) / 100, i99 = (npauses * 99 + 99) / 100;
        out->pause_p50_us = pauses[i50 ? i50 - 1 : 0];
        out->pause_p99_us = pauses[i99 ? i99 - 1 : 0];
    }
    free(pauses);
    /* the rows, compacted and sorted */
    size_t n = 0;
    for (size_t i = 0; i < map.cap; i++)
        if (map.rows[i].count)
            map.rows[n++] = map.rows[i];
    if (n)
        qsort(map.rows, n, sizeof(*map.rows), ml_gcreport_row_cmp);
    out->garbage_groups = n;
    out->garbage = map.rows;
    out->ngarbage = top && n > top ? top : n;
    ml_gcreport_uncollectable_rows(&umap, top, out); /* gcexit */
    return 0;
oom:
    snprintf(err, errcap, "out of memory while reading the collections");
fail:
    free(pauses);
    free(map.rows);
    free(umap.rows);
    free(out->longest);
    memset(out, 0, sizeof(*out));
    return -1;
}

void
ml_gcreport_release(ml_gc_report *g)
{
    free(g->longest);
    free(g->garbage);
    free(g->uncoll);
    memset(g, 0, sizeof(*g));
}
