/* rss.c: the RSS breakdown (see rss.h). */
#include "analysis/rss.h"

#include "analysis/u64map.h"

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
    /* the native heap traced with --native is part of the traced heap */
    uint64_t native = f[ML_RSS_NATIVE] < traced_large ? f[ML_RSS_NATIVE] : traced_large;
    traced_large -= native;
    /* traced blocks the C heap serves cannot exceed what it has in use */
    if (traced_large > f[ML_RSS_MALLOC_USED] && f[ML_RSS_MALLOC_USED])
        traced_large = f[ML_RSS_MALLOC_USED];
    parts[ML_PART_PYMALLOC_USED] = (int64_t)f[ML_RSS_PYMALLOC_USED];
    parts[ML_PART_PYMALLOC_FREE] = ml_rss_sub(f[ML_RSS_ARENAS], f[ML_RSS_PYMALLOC_USED]);
    uint64_t untraced = (uint64_t)ml_rss_sub(f[ML_RSS_MALLOC_USED], traced_large + native);
    uint64_t c_free = f[ML_RSS_MALLOC_FREE];
    if (f[ML_RSS_ANON_OTHER]) {
        /* The C heap's resident bytes are measured: the unnamed mappings
         * but pymalloc's arenas and memlens' mmaps. Blocks in use need not
         * be resident (calloc'd pages never touched): the C-heap parts are
         * capped at it, the untraced estimate first, then the native and
         * the traced blocks; the free space is what is left, at most what
         * the allocator says is free. */
        uint64_t left = (uint64_t)ml_rss_sub(f[ML_RSS_ANON_OTHER], f[ML_RSS_ARENAS] + f[ML_RSS_OWN]);
        if (traced_large > left)
            traced_large = left;
        left -= traced_large;
        if (native > left)
            native = left;
        left -= native;
        if (untraced > left)
            untraced = left;
        left -= untraced;
        if (c_free > left)
            c_free = left;
    }
    parts[ML_PART_TRACED_LARGE] = (int64_t)traced_large;
    parts[ML_PART_NATIVE] = (int64_t)native;
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
    free(s->arenas.groups);
    free(s->arenas.list);
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

/* The group of (code, line, type), made when new; NULL out of memory. */
static ml_arena_group *
ml_rss_group(ml_arena_report *a, ml_u64map *index, ml_code_id code, int32_t line, ml_type_id type)
{
    /* the key: 24 bits of type, 20 of code, 20 of line, then the map's
     * value is checked against the full triple (a collision probes on) */
    uint64_t key = ((uint64_t)type << 40) ^ ((uint64_t)code << 20) ^ (uint64_t)(uint32_t)line;
    for (;;) {
        int64_t v = ml_u64map_get(index, key, (uint32_t)a->ngroups);
        if (v < 0)
            return NULL;
        if ((size_t)v < a->ngroups) {
            ml_arena_group *g = &a->groups[v];
            if (g->code == code && g->line == line && g->type == type)
                return g;
            key = key * 0x9E3779B97F4A7C15ull + 1;
            continue;
        }
        if (a->ngroups == a->gcap) {
            size_t cap = a->gcap ? a->gcap * 2 : 64;
            ml_arena_group *gs = realloc(a->groups, cap * sizeof(*gs));
            if (!gs)
                return NULL;
            a->groups = gs;
            a->gcap = cap;
        }
        ml_arena_group *g = &a->groups[a->ngroups++];
        *g = (ml_arena_group){.code = code, .line = line, .type = type};
        return g;
    }
}

static int
ml_rss_group_cmp(const void *x, const void *y)
{
    const ml_arena_group *a = x, *b = y;
    if (a->blocks != b->blocks)
        return a->blocks < b->blocks ? 1 : -1;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    if (a->code != b->code)
        return a->code < b->code ? -1 : 1;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return a->type < b->type ? -1 : a->type > b->type;
}

/* 1 when type t names the native heap ("<native: LIBRARY>"); flags[t]:
 * 0 unknown, 1 no, 2 yes. -1 out of memory. */
static int
ml_rss_is_native(ml_reader *r, ml_type_id t, unsigned char **flags, size_t *cap)
{
    if (t >= *cap) {
        size_t n = *cap ? *cap : 256;
        while (n <= t)
            n *= 2;
        unsigned char *f = realloc(*flags, n);
        if (!f)
            return -1;
        memset(f + *cap, 0, n - *cap);
        *flags = f;
        *cap = n;
    }
    if (!(*flags)[t]) {
        const char *name = ml_reader_type_name(r, t);
        (*flags)[t] = name && strncmp(name, "<native: ", 9) == 0 ? 2 : 1;
    }
    return (*flags)[t] == 2;
}

int
ml_rss_begin(ml_rss_reading *st, ml_rss_series *s, size_t max_points, unsigned arena_pct, char *err,
             size_t errcap)
{
    memset(st, 0, sizeof(*st));
    memset(s, 0, sizeof(*s));
    st->s = s;
    s->cap = max_points < 2 ? 2 : max_points;
    s->stride = 1;
    s->arenas.pct = arena_pct > ML_ARENA_BLOCKS_PCT ? ML_ARENA_BLOCKS_PCT : arena_pct;
    s->points = malloc(s->cap * sizeof(*s->points));
    if (!s->points) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    return 0;
}

int
ml_rss_feed(ml_rss_reading *st, ml_reader *r, const ml_event *ev)
{
    ml_rss_series *s = st->s;
    ml_arena_report *ar = &s->arenas;
    switch (ev->kind) {
    case ML_EV_ALLOC:
    case ML_EV_FREE:
        if (ev->domain == ML_DOMAIN_RAW && ev->type) {
            int k = ml_rss_is_native(r, ev->type, &st->native_type, &st->native_cap);
            if (k < 0)
                return -1;
            if (k)
                st->native += ev->kind == ML_EV_ALLOC ? (int64_t)ev->size : -(int64_t)ev->size;
        }
        break;
    case ML_EV_RSS: {
        ml_rss_point pt = {.time_us = ev->time_us};
        memcpy(pt.f, ev->rss_fields, sizeof(pt.f));
        if (!pt.f[ML_RSS_NATIVE] && st->native > 0)
            pt.f[ML_RSS_NATIVE] = (uint64_t)st->native;
        if (!s->samples || pt.f[ML_RSS_TOTAL] > s->peak.f[ML_RSS_TOTAL])
            s->peak = pt;
        s->end = pt;
        if (s->samples++ % s->stride == 0) {
            if (s->n == s->cap)
                ml_rss_thin(s);
            if ((s->samples - 1) % s->stride == 0)
                s->points[s->n++] = pt;
        }
        break;
    }
    case ML_EV_ARENA: {
        uint64_t i = ev->arena_index;
        if (i >= st->sparse_cap) {
            size_t cap = st->sparse_cap ? st->sparse_cap * 2 : 64;
            while (cap <= i)
                cap *= 2;
            uint32_t *b = realloc(st->sparse, cap * sizeof(*b));
            if (!b)
                return -1;
            memset(b + st->sparse_cap, 0, (cap - st->sparse_cap) * sizeof(*b));
            st->sparse = b;
            st->sparse_cap = cap;
        }
        ar->arenas++;
        ar->size += ev->arena_size;
        ar->resident += ev->arena_resident;
        ar->used += ev->arena_used;
        if (ev->arena_used * 100 <= ev->arena_size * ar->pct && ar->nlist < UINT32_MAX) {
            if (ar->nlist == ar->lcap) {
                size_t cap = ar->lcap ? ar->lcap * 2 : 64;
                struct ml_sparse_arena *l = realloc(ar->list, cap * sizeof(*l));
                if (!l)
                    return -1;
                ar->list = l;
                ar->lcap = cap;
            }
            ar->list[ar->nlist++] = (struct ml_sparse_arena){ev->arena_base, ev->arena_size, ev->arena_resident,
                                                             ev->arena_used, 0, 0};
            st->sparse[i] = (uint32_t)ar->nlist;
            ar->sparse++;
            ar->sparse_size += ev->arena_size;
            ar->sparse_resident += ev->arena_resident;
            ar->sparse_used += ev->arena_used;
        }
        break;
    }
    case ML_EV_ARENA_BLOCKS: {
        uint64_t i = ev->arena_index;
        if (i >= st->sparse_cap || !st->sparse[i])
            break;
        struct ml_sparse_arena *one = &ar->list[st->sparse[i] - 1];
        for (size_t k = 0; k < ev->nheld; k++) {
            uint64_t size;
            ml_frame_id stack;
            ml_type_id type;
            if (ml_reader_live_find(r, ev->held[k], &size, &stack, &type, NULL) < 0)
                continue; /* freed before the end: not in the arena now */
            const ml_frame_info *f = ml_reader_frame(r, stack);
            ml_arena_group *g = ml_rss_group(ar, &st->groups, f ? f->code : 0,
                                             f ? ml_reader_frame_line(r, stack) : 0, type);
            if (!g)
                return -1;
            g->blocks++;
            g->bytes += size;
            if (g->last_arena != i + 1) {
                g->last_arena = i + 1;
                g->arenas++;
            }
            ar->sparse_blocks++;
            ar->sparse_bytes += size;
            one->blocks++;
            one->bytes += size;
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static void
ml_rss_reading_release(ml_rss_reading *st)
{
    free(st->native_type);
    free(st->sparse);
    ml_u64map_release(&st->groups);
    st->native_type = NULL;
    st->sparse = NULL;
}

void
ml_rss_end(ml_rss_reading *st, ml_reader *r)
{
    ml_rss_series *s = st->s;
    if (s->arenas.ngroups)
        qsort(s->arenas.groups, s->arenas.ngroups, sizeof(*s->arenas.groups), ml_rss_group_cmp);
    s->truncated = ml_reader_truncated(r);
    ml_rss_reading_release(st);
}

void
ml_rss_abort(ml_rss_reading *st)
{
    ml_rss_reading_release(st);
    ml_rss_series_release(st->s);
}

int
ml_rss_read(ml_reader *r, ml_rss_series *s, size_t max_points, unsigned arena_pct, const ml_progress *pg,
            char *err, size_t errcap)
{
    ml_rss_reading st;
    if (ml_rss_begin(&st, s, max_points, arena_pct, err, errcap) < 0)
        return -1;
    ml_reader_rewind(r);
    ml_event ev;
    int rc;
    uint64_t nread = 0;
    while ((rc = ml_reader_next(r, &ev)) == 1) {
        if (ml_progress_tick(pg, 1, r, ++nread, err, errcap) < 0)
            goto fail;
        if (ml_rss_feed(&st, r, &ev) < 0) {
            snprintf(err, errcap, "out of memory");
            goto fail;
        }
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        goto fail;
    }
    ml_rss_end(&st, r);
    return 0;
fail:
    ml_rss_abort(&st);
    return -1;
}
