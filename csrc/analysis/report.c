/* report.c: summary, types and leaks over a capture (see report.h).
 *
 * The per-event work is a few array updates indexed by stack or type id;
 * everything keyed by strings (sites) is done once per distinct stack at the
 * end, so a report costs little more than reading the file.
 */
#include "analysis/report.h"

#include "analysis/u64map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ML_PROGRESS_EVERY (1u << 20)

/* ---- sites: stacks grouped by innermost frame ---- */

typedef struct {
    ml_reader *r;
    uint32_t *canon;          /* code id -> first code id with its file and name */
    uint32_t ncodes;
    uint32_t *site_of_stack;  /* stack id -> site index + 1, 0 = not yet known */
    uint32_t nstacks;
    ml_u64map map;        /* (canon code, line) -> site index */
    struct { ml_code_id code; int32_t line; } *keys;
    uint32_t nsites, cap;
} ml_sites;

static uint64_t
ml_report_hash_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001B3);
    return (h ^ 0xFF) * UINT64_C(0x100000001B3);
}

static void
ml_sites_release(ml_sites *s)
{
    free(s->canon);
    free(s->site_of_stack);
    free(s->keys);
    ml_u64map_release(&s->map);
    memset(s, 0, sizeof(*s));
}

static int
ml_sites_init(ml_sites *s, ml_reader *r)
{
    memset(s, 0, sizeof(*s));
    s->r = r;
    s->ncodes = ml_reader_ncodes(r);
    s->nstacks = ml_reader_nframes(r);
    s->canon = calloc((size_t)s->ncodes + 1, sizeof(uint32_t));
    s->site_of_stack = calloc((size_t)s->nstacks + 1, sizeof(uint32_t));
    if (!s->canon || !s->site_of_stack)
        goto fail;
    /* canonical code per (file, name): hash -> candidates, compared by string */
    ml_u64map by_name = {0};
    for (uint32_t c = 1; c <= s->ncodes; c++) {
        const ml_code_info *ci = ml_reader_code(r, c);
        uint64_t h = ml_report_hash_str(ml_report_hash_str(UINT64_C(0xCBF29CE484222325), ci->file),
                                        ci->name);
        /* probe the hash chain: keys are hashes, equal hashes walk on */
        for (;;) {
            int64_t v = ml_u64map_get(&by_name, h, c);
            if (v < 0) {
                ml_u64map_release(&by_name);
                goto fail;
            }
            const ml_code_info *o = ml_reader_code(r, (uint32_t)v);
            if ((uint32_t)v == c || (!strcmp(o->file, ci->file) && !strcmp(o->name, ci->name))) {
                s->canon[c] = (uint32_t)v;
                break;
            }
            h = h * UINT64_C(0x100000001B3) + 1; /* a collision: try the next key */
        }
    }
    ml_u64map_release(&by_name);
    return 0;
fail:
    ml_sites_release(s);
    return -1;
}

/* Site index of a stack; -1 out of memory. */
static int64_t
ml_sites_of(ml_sites *s, ml_frame_id stack)
{
    if (stack <= s->nstacks && s->site_of_stack[stack])
        return s->site_of_stack[stack] - 1;
    ml_code_id code = 0;
    int32_t line = 0;
    const ml_frame_info *f = ml_reader_frame(s->r, stack);
    if (f) {
        code = f->code <= s->ncodes ? s->canon[f->code] : f->code;
        line = ml_reader_frame_line(s->r, stack);
    }
    uint64_t key = (uint64_t)code << 32 | (uint32_t)line;
    int64_t v = ml_u64map_get(&s->map, key, s->nsites);
    if (v < 0)
        return -1;
    if ((uint32_t)v == s->nsites) {
        if (s->nsites == s->cap) {
            uint32_t ncap = s->cap ? s->cap * 2 : 64;
            void *n = realloc(s->keys, (size_t)ncap * sizeof(*s->keys));
            if (!n)
                return -1;
            s->keys = n;
            s->cap = ncap;
        }
        s->keys[s->nsites].code = code;
        s->keys[s->nsites].line = line;
        s->nsites++;
    }
    if (stack <= s->nstacks)
        s->site_of_stack[stack] = (uint32_t)v + 1;
    return v;
}

static int
ml_report_row_cmp(const void *pa, const void *pb)
{
    const ml_site_row *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    if (a->code != b->code)
        return a->code < b->code ? -1 : 1;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    return 0;
}

/* Sort rows biggest first and keep `top` (0 = all). */
static void
ml_report_cut(ml_site_row *rows, size_t *n, size_t top)
{
    qsort(rows, *n, sizeof(*rows), ml_report_row_cmp);
    if (top && *n > top)
        *n = top;
}

/* Fold per-stack (bytes, count) into site rows, biggest first. */
static int
ml_sites_fold(ml_sites *s, const uint64_t *bytes, const uint64_t *count, uint32_t nstacks,
              size_t top, ml_site_row **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    for (uint32_t i = 0; i <= nstacks; i++)
        if (count[i] && ml_sites_of(s, i) < 0)
            return -1;
    if (!s->nsites)
        return 0;
    ml_site_row *rows = calloc(s->nsites, sizeof(*rows));
    uint64_t *best = calloc(s->nsites, sizeof(*best));
    if (!rows || !best) {
        free(rows);
        free(best);
        return -1;
    }
    for (uint32_t i = 0; i <= nstacks; i++) {
        if (!count[i])
            continue;
        uint32_t k = s->site_of_stack[i] - 1;
        ml_site_row *row = &rows[k];
        if (!row->count || bytes[i] > best[k]) {
            best[k] = bytes[i];
            row->stack = i;
        }
        row->bytes += bytes[i];
        row->count += count[i];
    }
    free(best);
    size_t n = 0;
    for (uint32_t k = 0; k < s->nsites; k++) {
        if (!rows[k].count)
            continue;
        rows[n] = rows[k];
        rows[n].code = s->keys[k].code;
        rows[n].line = s->keys[k].line;
        n++;
    }
    ml_report_cut(rows, &n, top);
    *out = rows;
    *nout = n;
    return 0;
}

/* ---- reading with totals and progress ---- */

int
ml_progress_tick(const ml_progress *pg, int pass, const ml_reader *r, uint64_t n, char *err,
                 size_t errcap)
{
    if (!pg || !pg->fn || !n || (n & (ML_PROGRESS_EVERY - 1)) != 0)
        return 0;
    if (pg->fn(pg->arg, pass, ml_reader_pos(r), ml_reader_size(r))) {
        snprintf(err, errcap, "interrupted");
        return -1;
    }
    return 0;
}

static void
ml_report_note(ml_report_totals *t, const ml_event *ev)
{
    size_t len = ev->text_len > 1000 ? 1000 : ev->text_len;
    for (size_t i = 0; i < t->nnotes; i++)
        if (t->note_kinds[i] == ev->mark_kind && strlen(t->notes[i]) == len &&
            !memcmp(t->notes[i], ev->text, len))
            return;
    if (t->nnotes == ML_REPORT_MAX_NOTES) {
        t->notes_dropped++;
        return;
    }
    char *s = malloc(len + 1);
    if (!s) {
        t->notes_dropped++;
        return;
    }
    memcpy(s, ev->text, len);
    s[len] = '\0';
    t->notes[t->nnotes] = s;
    t->note_kinds[t->nnotes++] = ev->mark_kind;
}

static void
ml_report_totals_release(ml_report_totals *t)
{
    for (size_t i = 0; i < t->nnotes; i++)
        free(t->notes[i]);
    t->nnotes = 0;
}

/* The next event; counts it in t when t is not NULL (pass 1). Returns as
 * ml_reader_next, or -1 with err set when progress says stop. Always
 * inline: it runs for every event of the reports' loops, and gcc had
 * stopped inlining it (~11% of `memlens types`' time, BENCHMARKS.md). */
static inline __attribute__((always_inline)) int
ml_report_next(ml_reader *r, ml_event *ev, uint64_t *nread, ml_report_totals *t,
               const ml_progress *pg, int pass, char *err, size_t errcap)
{
    if (pg && pg->fn && (*nread & (ML_PROGRESS_EVERY - 1)) == 0 && *nread &&
        pg->fn(pg->arg, pass, ml_reader_pos(r), ml_reader_size(r))) {
        snprintf(err, errcap, "interrupted");
        return -1;
    }
    int rc = ml_reader_next(r, ev);
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        return -1;
    }
    if (rc == 0)
        return 0;
    ++*nread;
    if (!t)
        return 1;
    t->events++;
    switch (ev->kind) {
    case ML_EV_ALLOC:
        t->allocations++;
        t->allocated_bytes += ev->size;
        break;
    case ML_EV_FREE:
        t->frees++;
        if (t->gc_in && ev->thread == t->gc_thread) {
            t->gc_freed_bytes += ev->size;
            t->gc_freed_blocks++;
        }
        break;
    case ML_EV_REUSE:
        t->reuses++;
        break;
    case ML_EV_NOTE:
        ml_report_note(t, ev);
        break;
    case ML_EV_GC_START: /* gc: as analysis/gcreport.h counts them */
        t->gc_records = 1;
        t->gc_in = 1;
        t->gc_thread = ev->thread;
        t->gc_start_us = ev->time_us;
        break;
    case ML_EV_GC_STOP:
        t->gc_records = 1;
        t->gc_collections++;
        if (t->gc_in && ev->thread == t->gc_thread && ev->time_us > t->gc_start_us)
            t->gc_pause_us += ev->time_us - t->gc_start_us;
        t->gc_in = 0;
        break;
    default:
        break;
    }
    return 1;
}

static void
ml_report_finish_totals(ml_reader *r, ml_report_totals *t)
{
    t->duration_us = ml_reader_time(r);
    t->end_bytes = ml_reader_live_bytes(r);
    t->end_count = ml_reader_live_count(r);
    t->truncated = ml_reader_truncated(r);
    for (unsigned i = 0; i < ML_TRAILER_COUNT; i++)
        t->trailer[i] = ml_reader_trailer(r, i);
}

/* Per-stack counters, grown to cover any stack id the reader defines. */
typedef struct {
    uint64_t *bytes, *count;
    uint32_t cap;
} ml_stack_sums;

static int
ml_stack_sums_init(ml_stack_sums *s, uint32_t nstacks)
{
    s->cap = nstacks + 1;
    s->bytes = calloc(s->cap, sizeof(uint64_t));
    s->count = calloc(s->cap, sizeof(uint64_t));
    return s->bytes && s->count ? 0 : -1;
}

static void
ml_stack_sums_release(ml_stack_sums *s)
{
    free(s->bytes);
    free(s->count);
    memset(s, 0, sizeof(*s));
}

static int
ml_stack_sums_reserve(ml_stack_sums *s, uint32_t stack)
{
    if (stack < s->cap)
        return 0;
    uint64_t ncap = (uint64_t)s->cap * 2;
    if (ncap <= stack)
        ncap = (uint64_t)stack + 1;
    uint64_t *b = realloc(s->bytes, ncap * sizeof(uint64_t));
    if (!b)
        return -1;
    s->bytes = b;
    uint64_t *c = realloc(s->count, ncap * sizeof(uint64_t));
    if (!c)
        return -1;
    s->count = c;
    memset(b + s->cap, 0, (ncap - s->cap) * sizeof(uint64_t));
    memset(c + s->cap, 0, (ncap - s->cap) * sizeof(uint64_t));
    s->cap = (uint32_t)ncap;
    return 0;
}

static int
ml_stack_sums_add_live(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type,
                       ml_domain domain)
{
    ml_stack_sums *s = arg;
    (void)seq, (void)type, (void)domain;
    /* stacks are always defined (the reader checks), so within cap */
    if (stack < s->cap) {
        s->bytes[stack] += size;
        s->count[stack]++;
    }
    return 0;
}

/* ---- summary ---- */

/* Per-stack change of the live blocks since the current peak candidate:
 * minus the blocks allocated after it, plus the blocks freed after it. At
 * the end, live at the peak = live at the end + this delta, so the summary
 * needs one pass instead of a second pass that replays up to the peak.
 * Arithmetic is modulo 2^64 (uint64): the sum comes out exact. A new peak
 * resets only the stacks touched since the last reset (the touched list), so
 * the reset costs O(1) per event on average even when every ALLOC of a
 * growing heap is a new peak. */
typedef struct {
    ml_stack_sums sums;   /* bytes, count deltas (mod 2^64) */
    uint8_t *dirty;       /* stack is in touched */
    uint32_t *touched;
    size_t ntouched;
    uint32_t dcap;        /* entries of dirty and touched */
} ml_peak_delta;

static int
ml_peak_delta_reserve(ml_peak_delta *d, uint32_t stack)
{
    if (ml_stack_sums_reserve(&d->sums, stack) < 0)
        return -1;
    if (d->dcap < d->sums.cap) {
        uint8_t *nd = realloc(d->dirty, d->sums.cap);
        if (!nd)
            return -1;
        d->dirty = nd;
        memset(nd + d->dcap, 0, d->sums.cap - d->dcap);
        uint32_t *nt = realloc(d->touched, (size_t)d->sums.cap * sizeof(uint32_t));
        if (!nt)
            return -1;
        d->touched = nt;
        d->dcap = d->sums.cap;
    }
    return 0;
}

static inline void
ml_peak_delta_add(ml_peak_delta *d, uint32_t stack, uint64_t bytes, uint64_t count)
{
    if (!d->dirty[stack]) {
        d->dirty[stack] = 1;
        d->touched[d->ntouched++] = stack;
    }
    d->sums.bytes[stack] += bytes;
    d->sums.count[stack] += count;
}

static inline void
ml_peak_delta_reset(ml_peak_delta *d)
{
    for (size_t i = 0; i < d->ntouched; i++) {
        uint32_t s = d->touched[i];
        d->sums.bytes[s] = d->sums.count[s] = 0;
        d->dirty[s] = 0;
    }
    d->ntouched = 0;
}

static void
ml_peak_delta_release(ml_peak_delta *d)
{
    ml_stack_sums_release(&d->sums);
    free(d->dirty);
    free(d->touched);
    memset(d, 0, sizeof(*d));
}

/* gcexit: the summary's garbage at exit: the live blocks in the set. */
typedef struct {
    const ml_u64map *set;
    ml_summary *s;
} ml_summary_garbage_acc;

static int
ml_summary_garbage_add(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type,
                       ml_domain domain)
{
    ml_summary_garbage_acc *a = arg;
    (void)stack, (void)type, (void)domain;
    if (ml_u64map_find(a->set, seq) >= 0) {
        a->s->garbage_bytes += size;
        a->s->garbage_count++;
    }
    return 0;
}

int
ml_report_summary(ml_reader *r, size_t top, const ml_progress *pg, ml_summary *out, char *err,
                  size_t errcap)
{
    return ml_report_summary_tap(r, top, pg, NULL, NULL, out, err, errcap);
}

int
ml_report_summary_tap(ml_reader *r, size_t top, const ml_progress *pg, ml_report_tap tap, void *tap_arg,
                      ml_summary *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    ml_report_totals *t = &out->totals;
    ml_stack_sums allocated = {0}, at_end = {0};
    ml_peak_delta delta = {0};
    ml_sites sites = {0};
    ml_u64map garbage = {0}; /* gcexit: GARBAGE_AT_EXIT seqs */
    ml_event ev;
    uint64_t nread = 0, heap = 0;
    int rc;

    ml_reader_rewind(r);
    uint32_t nstacks = ml_reader_nframes(r);
    if (ml_stack_sums_init(&allocated, nstacks) < 0 || ml_stack_sums_init(&delta.sums, nstacks) < 0 ||
        ml_peak_delta_reserve(&delta, nstacks) < 0)
        goto oom;
    while ((rc = ml_report_next(r, &ev, &nread, t, pg, 1, err, errcap)) > 0) {
        if (ev.kind == ML_EV_ALLOC) {
            if ((ev.stack >= allocated.cap || ev.stack >= delta.dcap) &&
                (ml_stack_sums_reserve(&allocated, ev.stack) < 0 ||
                 ml_peak_delta_reserve(&delta, ev.stack) < 0))
                goto oom;
            allocated.bytes[ev.stack] += ev.size;
            allocated.count[ev.stack]++;
            heap += ev.size;
            if (heap > out->peak_bytes) {
                out->peak_bytes = heap;
                out->peak_event = nread;
                out->peak_time_us = ev.time_us;
                ml_peak_delta_reset(&delta);
            } else {
                ml_peak_delta_add(&delta, ev.stack, -ev.size, (uint64_t)-1);
            }
        } else if (ev.kind == ML_EV_FREE) {
            heap -= ev.size;
            ml_peak_delta_add(&delta, ev.stack, ev.size, 1);
        } else if (ev.kind == ML_EV_GARBAGE_AT_EXIT) { /* gcexit */
            out->garbage_records = 1;
            for (size_t i = 0; i < ev.n_gc_seqs; i++)
                if (ml_u64map_set(&garbage, ev.gc_seqs[i], 1) < 0)
                    goto oom;
        }
        if (tap && tap(tap_arg, r, &ev) < 0)
            goto oom;
    }
    if (rc < 0)
        goto fail;
    ml_report_finish_totals(r, t);
    if (out->garbage_records) { /* gcexit */
        ml_summary_garbage_acc ga = {&garbage, out};
        ml_reader_live_foreach(r, ml_summary_garbage_add, &ga);
    }
    ml_u64map_release(&garbage);
    nstacks = ml_reader_nframes(r);
    if (ml_stack_sums_reserve(&allocated, nstacks) < 0 || ml_peak_delta_reserve(&delta, nstacks) < 0 ||
        ml_stack_sums_init(&at_end, nstacks) < 0)
        goto oom;
    ml_reader_live_foreach(r, ml_stack_sums_add_live, &at_end);
    /* live at the peak = live at the end + delta (in place, in delta) */
    for (uint32_t s = 0; s <= nstacks; s++) {
        delta.sums.bytes[s] += at_end.bytes[s];
        delta.sums.count[s] += at_end.count[s];
    }

    if (ml_sites_init(&sites, r) < 0 ||
        ml_sites_fold(&sites, delta.sums.bytes, delta.sums.count, nstacks, top, &out->at_peak,
                      &out->n_at_peak) < 0 ||
        ml_sites_fold(&sites, allocated.bytes, allocated.count, nstacks, top, &out->allocated,
                      &out->n_allocated) < 0 ||
        ml_sites_fold(&sites, at_end.bytes, at_end.count, nstacks, top, &out->at_end,
                      &out->n_at_end) < 0)
        goto oom;
    ml_sites_release(&sites);
    ml_stack_sums_release(&allocated);
    ml_stack_sums_release(&at_end);
    ml_peak_delta_release(&delta);
    return 0;

oom:
    snprintf(err, errcap, "out of memory while building the summary");
fail:
    ml_u64map_release(&garbage);
    ml_sites_release(&sites);
    ml_stack_sums_release(&allocated);
    ml_stack_sums_release(&at_end);
    ml_peak_delta_release(&delta);
    ml_summary_release(out);
    return -1;
}

void
ml_summary_release(ml_summary *s)
{
    ml_report_totals_release(&s->totals);
    free(s->at_peak);
    free(s->allocated);
    free(s->at_end);
    memset(s, 0, sizeof(*s));
}

/* ---- types ---- */

static int
ml_types_reserve(ml_type_row **rows, size_t *cap, uint32_t type)
{
    if (type < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 256;
    while (ncap <= type)
        ncap *= 2;
    ml_type_row *n = realloc(*rows, ncap * sizeof(*n));
    if (!n)
        return -1;
    memset(n + *cap, 0, (ncap - *cap) * sizeof(*n));
    *rows = n;
    *cap = ncap;
    return 0;
}

int
ml_report_types(ml_reader *r, const ml_progress *pg, ml_types *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    ml_type_row *rows = NULL;
    size_t cap = 0;
    ml_event ev;
    uint64_t nread = 0;
    int rc;

    ml_reader_rewind(r);
    if (ml_types_reserve(&rows, &cap, ml_reader_ntypes(r)) < 0)
        goto oom;
    while ((rc = ml_report_next(r, &ev, &nread, &out->totals, pg, 1, err, errcap)) > 0) {
        ml_type_row *row;
        switch (ev.kind) {
        case ML_EV_ALLOC:
            if (ml_types_reserve(&rows, &cap, ev.type) < 0)
                goto oom;
            row = &rows[ev.type];
            row->allocs++;
            row->allocated_bytes += ev.size;
            row->alive_bytes += ev.size;
            if (++row->alive > row->peak_alive)
                row->peak_alive = row->alive;
            break;
        case ML_EV_FREE:
            /* the block was allocated with this type, so it has a row */
            row = &rows[ev.type];
            row->frees++;
            row->alive--;
            row->alive_bytes -= ev.size;
            break;
        case ML_EV_REUSE:
            /* a new object in a block that never left: the old one died */
            if (ml_types_reserve(&rows, &cap, ev.type) < 0)
                goto oom;
            row = &rows[ev.type];
            row->allocs++;
            row->frees++;
            if (row->alive > row->peak_alive)
                row->peak_alive = row->alive;
            break;
        default:
            break;
        }
    }
    if (rc < 0)
        goto fail;
    ml_report_finish_totals(r, &out->totals);
    size_t n = 0;
    for (size_t i = 0; i < cap; i++) {
        if (!rows[i].allocs)
            continue;
        rows[n] = rows[i];
        rows[n].type = (ml_type_id)i;
        n++;
    }
    out->rows = rows;
    out->nrows = n;
    return 0;

oom:
    snprintf(err, errcap, "out of memory while building the types table");
fail:
    free(rows);
    ml_types_release(out);
    return -1;
}

void
ml_types_release(ml_types *t)
{
    ml_report_totals_release(&t->totals);
    free(t->rows);
    memset(t, 0, sizeof(*t));
}

/* ---- leaks ---- */

typedef struct {
    ml_u64map map;   /* (stack, type) -> index */
    ml_site_row *rows;   /* code/line unused here: per (stack, type) */
    size_t n, cap;
    int oom;
    const ml_exitheap *heap; /* buffers named by owner */
} ml_leak_acc;

static int
ml_leak_acc_add(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type,
                ml_domain domain)
{
    ml_leak_acc *a = arg;
    (void)domain;
    type = ml_exitheap_type(a->heap, seq, type);
    int64_t v = ml_u64map_get(&a->map, (uint64_t)stack << 32 | type, (uint32_t)a->n);
    if (v < 0)
        goto oom;
    if ((size_t)v == a->n) {
        if (a->n == a->cap) {
            size_t ncap = a->cap ? a->cap * 2 : 256;
            ml_site_row *nr = realloc(a->rows, ncap * sizeof(*nr));
            if (!nr)
                goto oom;
            a->rows = nr;
            a->cap = ncap;
        }
        memset(&a->rows[a->n], 0, sizeof(a->rows[0]));
        a->rows[a->n].stack = stack;
        a->rows[a->n].type = type;
        a->n++;
    }
    a->rows[v].bytes += size;
    a->rows[v].count++;
    return 0;
oom:
    a->oom = 1;
    return 1;
}

/* Heap at exit: each group's holder, the one that reaches most of its
 * bytes. Tallies (group, holder) over the live blocks. */
typedef struct {
    const ml_exitheap *heap;
    ml_sites *sites;
    ml_u64map *groups;
    ml_u64map tally;   /* group << 32 | holder -> index */
    uint64_t *bytes, *count;
    size_t n, cap;
    ml_site_row *rows;
    int oom;
} ml_leak_holders_acc;

static int
ml_leak_holders_add(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type,
                    ml_domain domain)
{
    ml_leak_holders_acc *a = arg;
    (void)domain;
    uint32_t h = ml_exitheap_holder_of(a->heap, seq);
    if (!h)
        return 0;
    type = ml_exitheap_type(a->heap, seq, type);
    int64_t site = ml_sites_of(a->sites, stack);
    if (site < 0)
        goto oom;
    int64_t g = ml_u64map_find(a->groups, (uint64_t)site << 32 | type);
    if (g < 0)
        return 0; /* never: every live block's group exists by now */
    int64_t t = ml_u64map_get(&a->tally, (uint64_t)g << 32 | h, (uint32_t)a->n);
    if (t < 0)
        goto oom;
    if ((size_t)t == a->n) {
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 256;
            uint64_t *nb = realloc(a->bytes, cap * sizeof(*nb));
            if (!nb)
                goto oom;
            a->bytes = nb;
            uint64_t *nc = realloc(a->count, cap * sizeof(*nc));
            if (!nc)
                goto oom;
            a->count = nc;
            a->cap = cap;
        }
        a->bytes[a->n] = a->count[a->n] = 0;
        a->n++;
    }
    a->bytes[t] += size;
    a->count[t]++;
    ml_site_row *row = &a->rows[g];
    if (a->bytes[t] > row->held_bytes || (a->bytes[t] == row->held_bytes && h < row->holder)) {
        row->holder = h;
        row->held_bytes = a->bytes[t];
        row->held_count = a->count[t];
    }
    return 0;
oom:
    a->oom = 1;
    return 1;
}

static int
ml_leak_holders(ml_reader *r, const ml_exitheap *heap, ml_sites *sites, ml_u64map *groups,
                ml_site_row *rows)
{
    ml_leak_holders_acc a = {.heap = heap, .sites = sites, .groups = groups, .rows = rows};
    ml_reader_live_foreach(r, ml_leak_holders_add, &a);
    ml_u64map_release(&a.tally);
    free(a.bytes);
    free(a.count);
    return a.oom ? -1 : 0;
}

/* ---- gcexit: garbage at exit in the leaks table ---- */

static int
ml_leak_garbage_event(ml_leaks *l, const ml_event *ev)
{
    l->garbage_records = 1;
    for (size_t i = 0; i < ev->n_gc_seqs; i++)
        if (ml_u64map_set(&l->garbage, ev->gc_seqs[i], 1) < 0)
            return -1;
    return 0;
}

typedef struct {
    ml_leaks *l;
    ml_sites *sites;
    ml_u64map *groups;
    ml_site_row *rows;
    int oom;
} ml_leak_garbage_acc;

static int
ml_leak_garbage_add(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type,
                    ml_domain domain)
{
    ml_leak_garbage_acc *a = arg;
    (void)domain;
    if (ml_u64map_find(&a->l->garbage, seq) < 0)
        return 0;
    type = ml_exitheap_type(&a->l->heap, seq, type);
    int64_t site = ml_sites_of(a->sites, stack);
    if (site < 0) {
        a->oom = 1;
        return 1;
    }
    int64_t g = ml_u64map_find(a->groups, (uint64_t)site << 32 | type);
    if (g < 0)
        return 0; /* never: every live block's group exists by now */
    a->rows[g].garbage_bytes += size;
    a->rows[g].garbage_count++;
    a->l->garbage_bytes += size;
    a->l->garbage_count++;
    return 0;
}

/* Each group's blocks in the GARBAGE_AT_EXIT set (those still live). */
static int
ml_leak_garbage(ml_reader *r, ml_leaks *l, ml_sites *sites, ml_u64map *groups, ml_site_row *rows)
{
    ml_leak_garbage_acc a = {.l = l, .sites = sites, .groups = groups, .rows = rows};
    ml_reader_live_foreach(r, ml_leak_garbage_add, &a);
    return a.oom ? -1 : 0;
}

/* ---- end of gcexit ---- */

int
ml_report_leaks(ml_reader *r, size_t top, const ml_progress *pg, ml_leaks *out, char *err,
                size_t errcap)
{
    memset(out, 0, sizeof(*out));
    ml_leak_acc acc = {0};
    ml_sites sites = {0};
    ml_u64map groups = {0};
    ml_site_row *rows = NULL;
    uint64_t *best = NULL;
    ml_event ev;
    uint64_t nread = 0;
    int rc;

    ml_reader_rewind(r);
    acc.heap = &out->heap;
    while ((rc = ml_report_next(r, &ev, &nread, &out->totals, pg, 1, err, errcap)) > 0) {
        if (ev.kind >= ML_EV_SNAPSHOT && ml_exitheap_event(&out->heap, &ev) < 0)
            goto oom;
        if (ev.kind == ML_EV_GARBAGE_AT_EXIT && ml_leak_garbage_event(out, &ev) < 0) /* gcexit */
            goto oom;
    }
    if (rc < 0)
        goto fail;
    ml_report_finish_totals(r, &out->totals);

    /* live blocks by (stack, type), then (stack, type) by (site, type) */
    ml_reader_live_foreach(r, ml_leak_acc_add, &acc);
    if (acc.oom || ml_sites_init(&sites, r) < 0)
        goto oom;
    rows = calloc(acc.n ? acc.n : 1, sizeof(*rows));
    best = calloc(acc.n ? acc.n : 1, sizeof(*best));
    if (!rows || !best)
        goto oom;
    size_t n = 0;
    for (size_t i = 0; i < acc.n; i++) {
        const ml_site_row *a = &acc.rows[i];
        int64_t site = ml_sites_of(&sites, a->stack);
        if (site < 0)
            goto oom;
        int64_t g = ml_u64map_get(&groups, (uint64_t)site << 32 | a->type, (uint32_t)n);
        if (g < 0)
            goto oom;
        if ((size_t)g == n) {
            rows[n].code = sites.keys[site].code;
            rows[n].line = sites.keys[site].line;
            rows[n].type = a->type;
            n++;
        }
        ml_site_row *row = &rows[g];
        if (!row->count || a->bytes > best[g]) {
            best[g] = a->bytes;
            row->stack = a->stack;
        }
        row->bytes += a->bytes;
        row->count += a->count;
    }
    out->ngroups = n;
    if (out->heap.nholders && ml_leak_holders(r, &out->heap, &sites, &groups, rows) < 0)
        goto oom;
    if (out->garbage_records && ml_leak_garbage(r, out, &sites, &groups, rows) < 0) /* gcexit */
        goto oom;
    ml_report_cut(rows, &n, top);
    out->rows = rows;
    out->nrows = n;
    free(best);
    free(acc.rows);
    ml_u64map_release(&acc.map);
    ml_u64map_release(&groups);
    ml_sites_release(&sites);
    return 0;

oom:
    snprintf(err, errcap, "out of memory while building the leaks table");
fail:
    free(rows);
    free(best);
    free(acc.rows);
    ml_u64map_release(&acc.map);
    ml_u64map_release(&groups);
    ml_sites_release(&sites);
    ml_leaks_release(out);
    return -1;
}

void
ml_leaks_release(ml_leaks *l)
{
    ml_report_totals_release(&l->totals);
    ml_exitheap_release(&l->heap);
    ml_u64map_release(&l->garbage); /* gcexit */
    free(l->rows);
    memset(l, 0, sizeof(*l));
}
