/* calltree.c: the call tree of a capture (see calltree.h).
 *
 * During the pass, values are kept per cell, a (stack, type, thread) triple
 * interned in a hash table, in arrays indexed by cell id; a live block
 * remembers its cell (and its thread's allocation count when it was made)
 * in a live table of its own. Everything keyed by strings (functions,
 * frames, nodes) is done once at the end, per distinct stack.
 */
#include "analysis/calltree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/live.h"
#include "analysis/u64map.h"
#include "native/symbols.h"

const char *const ml_calltree_view_names[ML_CT_NVIEWS] = {
    "peak", "end", "allocated", "temporary", "range", "range_new",
};

/* ---- interned triples of uint32 (cells) ---- */

typedef struct {
    uint32_t *a, *b, *c;  /* the triple of each id */
    uint32_t n, cap;
    uint32_t *slots;      /* id + 1; 0 = empty */
    size_t scap;
} ml_ct_keys;

static inline size_t
ml_ct_keys_home(size_t scap, uint32_t a, uint32_t b, uint32_t c)
{
    uint64_t k = ((uint64_t)a << 32 | b) ^ ((uint64_t)c * UINT64_C(0xC2B2AE3D27D4EB4F));
    k ^= k >> 31;
    k *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(k >> 17) & (scap - 1);
}

static void
ml_ct_keys_release(ml_ct_keys *k)
{
    free(k->a);
    free(k->b);
    free(k->c);
    free(k->slots);
    memset(k, 0, sizeof(*k));
}

static int
ml_ct_keys_rehash(ml_ct_keys *k)
{
    size_t ncap = k->scap ? k->scap * 2 : 1024;
    uint32_t *s = calloc(ncap, sizeof(uint32_t));
    if (!s)
        return -1;
    for (uint32_t id = 0; id < k->n; id++) {
        size_t j = ml_ct_keys_home(ncap, k->a[id], k->b[id], k->c[id]);
        while (s[j])
            j = (j + 1) & (ncap - 1);
        s[j] = id + 1;
    }
    free(k->slots);
    k->slots = s;
    k->scap = ncap;
    return 0;
}

/* Id of the triple, interned when new (*fresh set to 1); -1 out of memory. */
static int64_t
ml_ct_keys_get(ml_ct_keys *k, uint32_t a, uint32_t b, uint32_t c, int *fresh)
{
    *fresh = 0;
    if (((size_t)k->n + 1) * 2 > k->scap && ml_ct_keys_rehash(k) < 0)
        return -1;
    size_t i = ml_ct_keys_home(k->scap, a, b, c);
    for (uint32_t v; (v = k->slots[i]); i = (i + 1) & (k->scap - 1))
        if (k->a[v - 1] == a && k->b[v - 1] == b && k->c[v - 1] == c)
            return v - 1;
    if (k->n == UINT32_MAX - 1)
        return -1;
    if (k->n == k->cap) {
        uint32_t ncap = k->cap ? (k->cap > UINT32_MAX / 2 ? UINT32_MAX - 1 : k->cap * 2) : 1024;
        uint32_t *na = realloc(k->a, (size_t)ncap * sizeof(uint32_t));
        if (!na)
            return -1;
        k->a = na;
        uint32_t *nb = realloc(k->b, (size_t)ncap * sizeof(uint32_t));
        if (!nb)
            return -1;
        k->b = nb;
        uint32_t *nc = realloc(k->c, (size_t)ncap * sizeof(uint32_t));
        if (!nc)
            return -1;
        k->c = nc;
        k->cap = ncap;
    }
    k->a[k->n] = a;
    k->b[k->n] = b;
    k->c[k->n] = c;
    k->slots[i] = k->n + 1;
    *fresh = 1;
    return k->n++;
}

/* ---- per-cell sums, and deltas since a candidate maximum ---- */

typedef struct {
    uint64_t *bytes, *count;
} ml_ct_sums;

/* Deltas reset at each new candidate: only the cells touched since the last
 * reset are cleared (the touched list), as in the summary. */
typedef struct {
    ml_ct_sums s;
    uint8_t *dirty;
    uint32_t *touched;
    size_t ntouched;
} ml_ct_delta;

static inline void
ml_ct_delta_add(ml_ct_delta *d, uint32_t cell, uint64_t bytes, uint64_t count)
{
    if (!d->dirty[cell]) {
        d->dirty[cell] = 1;
        d->touched[d->ntouched++] = cell;
    }
    d->s.bytes[cell] += bytes;
    d->s.count[cell] += count;
}

static inline void
ml_ct_delta_reset(ml_ct_delta *d)
{
    for (size_t i = 0; i < d->ntouched; i++) {
        uint32_t c = d->touched[i];
        d->s.bytes[c] = d->s.count[c] = 0;
        d->dirty[c] = 0;
    }
    d->ntouched = 0;
}

/* The whole state of one build. */
typedef struct {
    ml_reader *r;
    ml_calltree_opts o;
    ml_ct_keys cells;            /* (stack, type, thread index) */
    uint32_t ccap;               /* cells the arrays below cover */
    ml_ct_sums alloc, live, temp, rnew;
    ml_ct_delta pdelta, rdelta;
    ml_u64map thread_map;        /* thread id -> thread index */
    ml_thread_id *threads;
    uint64_t *thread_allocs;     /* allocations made so far per thread index */
    uint32_t nthreads, tcap;
    ml_thread_id last_thread;
    uint32_t last_tidx;          /* UINT32_MAX: no cache */
    ml_live table;               /* seq -> (size, cell, thread's allocation index) */
    int table_ok;
    /* nstacks: a block with a native stack has the cell stack
     * ML_CT_NATIVE | combo, combo indexing (Python stack, native stack) */
    ml_u64map combo_map;
    uint32_t *combo_stack, *combo_nstack;
    uint32_t ncombos, combo_cap;
} ml_ct_state;

#define ML_CT_NATIVE 0x80000000u

/* nstacks: the cell stack of (stack, nstack); UINT32_MAX out of memory. */
static uint32_t
ml_ct_combo(ml_ct_state *st, uint32_t stack, uint32_t nstack)
{
    int64_t v = ml_u64map_get(&st->combo_map, (uint64_t)stack << 32 | nstack, st->ncombos);
    if (v < 0 || v >= (int64_t)ML_CT_NATIVE - 1)
        return UINT32_MAX;
    if ((uint32_t)v == st->ncombos) {
        if (st->ncombos == st->combo_cap) {
            uint32_t cap = st->combo_cap ? st->combo_cap * 2 : 256;
            uint32_t *a = realloc(st->combo_stack, (size_t)cap * sizeof(uint32_t));
            if (!a)
                return UINT32_MAX;
            st->combo_stack = a;
            uint32_t *b = realloc(st->combo_nstack, (size_t)cap * sizeof(uint32_t));
            if (!b)
                return UINT32_MAX;
            st->combo_nstack = b;
            st->combo_cap = cap;
        }
        st->combo_stack[st->ncombos] = stack;
        st->combo_nstack[st->ncombos] = nstack;
        st->ncombos++;
    }
    return ML_CT_NATIVE | (uint32_t)v;
}

static int
ml_ct_sums_grow(ml_ct_sums *s, uint32_t old, uint32_t ncap)
{
    uint64_t *b = realloc(s->bytes, (size_t)ncap * sizeof(uint64_t));
    if (!b)
        return -1;
    s->bytes = b;
    uint64_t *c = realloc(s->count, (size_t)ncap * sizeof(uint64_t));
    if (!c)
        return -1;
    s->count = c;
    memset(b + old, 0, (size_t)(ncap - old) * sizeof(uint64_t));
    memset(c + old, 0, (size_t)(ncap - old) * sizeof(uint64_t));
    return 0;
}

static int
ml_ct_delta_grow(ml_ct_delta *d, uint32_t old, uint32_t ncap)
{
    if (ml_ct_sums_grow(&d->s, old, ncap) < 0)
        return -1;
    uint8_t *nd = realloc(d->dirty, ncap);
    if (!nd)
        return -1;
    d->dirty = nd;
    memset(nd + old, 0, ncap - old);
    uint32_t *nt = realloc(d->touched, (size_t)ncap * sizeof(uint32_t));
    if (!nt)
        return -1;
    d->touched = nt;
    return 0;
}

static void
ml_ct_sums_release(ml_ct_sums *s)
{
    free(s->bytes);
    free(s->count);
    memset(s, 0, sizeof(*s));
}

static void
ml_ct_delta_release(ml_ct_delta *d)
{
    ml_ct_sums_release(&d->s);
    free(d->dirty);
    free(d->touched);
    memset(d, 0, sizeof(*d));
}

#define ML_CT_WANT(st, v) ((st)->o.views & (1u << (v)))

/* Make the per-cell arrays cover cell id `cell`. */
static int
ml_ct_reserve(ml_ct_state *st, uint32_t cell)
{
    if (cell < st->ccap)
        return 0;
    uint32_t old = st->ccap;
    uint32_t ncap = old ? old * 2 : 1024;
    if (ncap <= cell)
        ncap = cell + 1;
    if (ml_ct_sums_grow(&st->alloc, old, ncap) < 0 || ml_ct_sums_grow(&st->live, old, ncap) < 0)
        return -1;
    if (ML_CT_WANT(st, ML_CT_TEMPORARY) && ml_ct_sums_grow(&st->temp, old, ncap) < 0)
        return -1;
    if (ML_CT_WANT(st, ML_CT_RANGE_NEW) && ml_ct_sums_grow(&st->rnew, old, ncap) < 0)
        return -1;
    if (ML_CT_WANT(st, ML_CT_PEAK) && ml_ct_delta_grow(&st->pdelta, old, ncap) < 0)
        return -1;
    if (ML_CT_WANT(st, ML_CT_RANGE) && ml_ct_delta_grow(&st->rdelta, old, ncap) < 0)
        return -1;
    st->ccap = ncap;
    return 0;
}

/* Thread index of a capture thread id; -1 out of memory. */
static int64_t
ml_ct_thread(ml_ct_state *st, ml_thread_id id)
{
    if (st->last_tidx != UINT32_MAX && st->last_thread == id)
        return st->last_tidx;
    int64_t v = ml_u64map_get(&st->thread_map, id, st->nthreads);
    if (v < 0)
        return -1;
    if ((uint32_t)v == st->nthreads) {
        if (st->nthreads == st->tcap) {
            uint32_t ncap = st->tcap ? st->tcap * 2 : 16;
            ml_thread_id *nt = realloc(st->threads, (size_t)ncap * sizeof(*nt));
            if (!nt)
                return -1;
            st->threads = nt;
            uint64_t *na = realloc(st->thread_allocs, (size_t)ncap * sizeof(*na));
            if (!na)
                return -1;
            st->thread_allocs = na;
            st->tcap = ncap;
        }
        st->threads[st->nthreads] = id;
        st->thread_allocs[st->nthreads] = 0;
        st->nthreads++;
    }
    st->last_thread = id;
    st->last_tidx = (uint32_t)v;
    return v;
}

static void
ml_ct_state_release(ml_ct_state *st)
{
    ml_ct_keys_release(&st->cells);
    ml_ct_sums_release(&st->alloc);
    ml_ct_sums_release(&st->live);
    ml_ct_sums_release(&st->temp);
    ml_ct_sums_release(&st->rnew);
    ml_ct_delta_release(&st->pdelta);
    ml_ct_delta_release(&st->rdelta);
    ml_u64map_release(&st->thread_map);
    free(st->threads);
    free(st->thread_allocs);
    if (st->table_ok)
        ml_live_release(&st->table);
    ml_u64map_release(&st->combo_map);
    free(st->combo_stack);
    free(st->combo_nstack);
}

/* ---- the pass ---- */

static int
ml_ct_pass(ml_ct_state *st, const ml_progress *pg, ml_calltree *out, char *err, size_t errcap)
{
    ml_reader *r = st->r;
    ml_event ev;
    uint64_t nread = 0, heap = 0, tn = st->o.temporary_n;
    uint64_t t0 = st->o.t0_us, t1 = st->o.t1_us;
    int want_peak = ML_CT_WANT(st, ML_CT_PEAK) != 0, want_temp = ML_CT_WANT(st, ML_CT_TEMPORARY) != 0,
        want_range = ML_CT_WANT(st, ML_CT_RANGE) != 0, want_rnew = ML_CT_WANT(st, ML_CT_RANGE_NEW) != 0;
    int rstarted = 0;
    ml_seq rnew_first = 0;   /* seq of the first ALLOC at t0 or later */
    uint64_t last_stack = UINT64_MAX;
    uint32_t last_type = 0, last_tidx = 0, last_cell = 0;
    int rc;

    if (tn > UINT32_MAX)
        tn = UINT32_MAX;
    for (;;) {
        if (ml_progress_tick(pg, 1, r, nread, err, errcap) < 0)
            return -1;
        rc = ml_reader_next(r, &ev);
        if (rc < 0) {
            snprintf(err, errcap, "%s", ml_reader_error(r));
            return -1;
        }
        if (rc == 0)
            break;
        nread++;
        out->events++;
        if (ev.kind == ML_EV_REUSE) {
            out->reuses++;
            continue;
        }
        if (ev.kind != ML_EV_ALLOC && ev.kind != ML_EV_FREE)
            continue;
        if ((want_range || want_rnew) && !rstarted && ev.time_us >= t0) {
            /* the state at t0: every earlier event applied */
            rstarted = 1;
            out->range_high_bytes = heap;
            out->range_high_time_us = t0;
            if (want_range)
                ml_ct_delta_reset(&st->rdelta);
        }
        if (ev.kind == ML_EV_ALLOC) {
            int64_t tidx = ml_ct_thread(st, ev.thread);
            if (tidx < 0)
                goto oom;
            if (ev.nstack) { /* nstacks: native frames under the Python stack */
                uint32_t cs = ml_ct_combo(st, ev.stack, ev.nstack);
                if (cs == UINT32_MAX)
                    goto oom;
                ev.stack = cs;
            }
            uint32_t cell;
            if (ev.stack == last_stack && ev.type == last_type && (uint32_t)tidx == last_tidx) {
                cell = last_cell;
            } else {
                int fresh;
                int64_t c = ml_ct_keys_get(&st->cells, ev.stack, ev.type, (uint32_t)tidx, &fresh);
                if (c < 0 || ml_ct_reserve(st, (uint32_t)c) < 0)
                    goto oom;
                cell = (uint32_t)c;
                last_stack = ev.stack;
                last_type = ev.type;
                last_tidx = (uint32_t)tidx;
                last_cell = cell;
            }
            out->allocations++;
            out->allocated_bytes += ev.size;
            heap += ev.size;
            st->alloc.bytes[cell] += ev.size;
            st->alloc.count[cell]++;
            st->live.bytes[cell] += ev.size;
            st->live.count[cell]++;
            ml_live_block blk = {ev.size, cell, (uint32_t)st->thread_allocs[tidx]++, 0};
            if (st->table_ok && ml_live_insert(&st->table, ev.seq, &blk) < 0)
                goto oom;
            if (want_peak) {
                if (heap > out->peak_bytes) {
                    out->peak_bytes = heap;
                    out->peak_time_us = ev.time_us;
                    ml_ct_delta_reset(&st->pdelta);
                } else {
                    ml_ct_delta_add(&st->pdelta, cell, -ev.size, (uint64_t)-1);
                }
            } else if (heap > out->peak_bytes) {
                out->peak_bytes = heap;
                out->peak_time_us = ev.time_us;
            }
            if (rstarted) {
                int in_range = ev.time_us <= t1;
                if (want_range) {
                    if (in_range && heap > out->range_high_bytes) {
                        out->range_high_bytes = heap;
                        out->range_high_time_us = ev.time_us;
                        ml_ct_delta_reset(&st->rdelta);
                    } else {
                        ml_ct_delta_add(&st->rdelta, cell, -ev.size, (uint64_t)-1);
                    }
                }
                if (want_rnew && in_range) {
                    if (!rnew_first)
                        rnew_first = ev.seq;
                    st->rnew.bytes[cell] += ev.size;
                    st->rnew.count[cell]++;
                }
            }
        } else if (!st->table_ok) {
            out->frees++;
            heap -= ev.size;
        } else {
            ml_live_block blk;
            if (ml_live_remove(&st->table, ev.seq, &blk) < 0) {
                snprintf(err, errcap, "FREE of block %llu, unknown to the call tree",
                         (unsigned long long)ev.seq);
                return -1;
            }
            uint32_t cell = blk.stack;
            out->frees++;
            heap -= blk.size;
            st->live.bytes[cell] -= blk.size;
            st->live.count[cell]--;
            if (want_peak)
                ml_ct_delta_add(&st->pdelta, cell, blk.size, 1);
            if (want_range && rstarted)
                ml_ct_delta_add(&st->rdelta, cell, blk.size, 1);
            if (want_rnew && rnew_first && ev.seq >= rnew_first && ev.time_us <= t1) {
                st->rnew.bytes[cell] -= blk.size;
                st->rnew.count[cell]--;
            }
            if (want_temp) {
                int64_t tidx = ml_ct_thread(st, ev.thread);
                if (tidx < 0)
                    goto oom;
                /* allocations the thread made after this block, mod 2^32 */
                uint32_t since = (uint32_t)st->thread_allocs[tidx] - blk.type - 1;
                if (st->cells.c[cell] == (uint32_t)tidx && since < tn) {
                    st->temp.bytes[cell] += blk.size;
                    st->temp.count[cell]++;
                }
            }
        }
    }
    if (!rstarted) {
        /* t0 after the last event: the state at t0 is the end */
        out->range_high_bytes = heap;
        out->range_high_time_us = t0;
    }
    out->duration_us = ml_reader_time(r);
    out->end_bytes = ml_reader_live_bytes(r);
    out->end_count = ml_reader_live_count(r);
    out->truncated = ml_reader_truncated(r);
    return 0;
oom:
    snprintf(err, errcap, "out of memory while building the call tree");
    return -1;
}

/* ---- the tree, once per distinct stack ---- */

static uint64_t
ml_ct_hash_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001B3);
    return (h ^ 0xFF) * UINT64_C(0x100000001B3);
}

/* canon[c]: the first code with c's file and name. */
static int
ml_ct_canon(ml_reader *r, uint32_t *canon, uint32_t ncodes)
{
    ml_u64map by_name = {0};
    for (uint32_t c = 1; c <= ncodes; c++) {
        const ml_code_info *ci = ml_reader_code(r, c);
        uint64_t h = ml_ct_hash_str(ml_ct_hash_str(UINT64_C(0xCBF29CE484222325), ci->file), ci->name);
        for (;;) {
            int64_t v = ml_u64map_get(&by_name, h, c);
            if (v < 0) {
                ml_u64map_release(&by_name);
                return -1;
            }
            const ml_code_info *o = ml_reader_code(r, (uint32_t)v);
            if ((uint32_t)v == c || (!strcmp(o->file, ci->file) && !strcmp(o->name, ci->name))) {
                canon[c] = (uint32_t)v;
                break;
            }
            h = h * UINT64_C(0x100000001B3) + 1; /* a collision: the next key */
        }
    }
    ml_u64map_release(&by_name);
    return 0;
}

static int
ml_ct_push_u32(uint32_t **a, uint32_t n, uint32_t *cap, uint32_t v)
{
    if (n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 256;
        uint32_t *na = realloc(*a, (size_t)ncap * sizeof(uint32_t));
        if (!na)
            return -1;
        *a = na;
        *cap = ncap;
    }
    (*a)[n] = v;
    return 0;
}

/* The final (bytes, count) of a view for a cell. */
static inline void
ml_ct_value(const ml_ct_state *st, int view, uint32_t c, uint64_t *b, uint64_t *n)
{
    switch (view) {
    case ML_CT_PEAK:
        *b = st->live.bytes[c] + st->pdelta.s.bytes[c];
        *n = st->live.count[c] + st->pdelta.s.count[c];
        break;
    case ML_CT_END:
        *b = st->live.bytes[c];
        *n = st->live.count[c];
        break;
    case ML_CT_ALLOCATED:
        *b = st->alloc.bytes[c];
        *n = st->alloc.count[c];
        break;
    case ML_CT_TEMPORARY:
        *b = st->temp.bytes[c];
        *n = st->temp.count[c];
        break;
    case ML_CT_RANGE:
        *b = st->live.bytes[c] + st->rdelta.s.bytes[c];
        *n = st->live.count[c] + st->rdelta.s.count[c];
        break;
    default:
        *b = st->rnew.bytes[c];
        *n = st->rnew.count[c];
        break;
    }
}

static int
ml_ct_tree(ml_ct_state *st, ml_calltree *out)
{
    ml_reader *r = st->r;
    uint32_t ncodes = ml_reader_ncodes(r), nstacks = ml_reader_nframes(r), ncells = st->cells.n;
    uint32_t ntypes_r = ml_reader_ntypes(r);
    uint32_t *canon = calloc((size_t)ncodes + 1, sizeof(uint32_t));
    uint32_t *node_of = calloc((size_t)nstacks + 1, sizeof(uint32_t)); /* node + 1 */
    uint8_t *needed = calloc((size_t)nstacks + 1, 1);
    uint32_t *type_idx = malloc(((size_t)ntypes_r + 1) * sizeof(uint32_t));
    uint32_t *ocell = malloc(((size_t)ncells + 1) * sizeof(uint32_t));
    uint8_t *used = calloc((size_t)ncells + 1, 1);
    ml_u64map frame_map = {0}, child_map = {0};
    ml_ct_keys okeys = {0};
    uint32_t tcap = 0;
    uint32_t *fcode = NULL, *fline = NULL;
    int rc = -1;
    /* nstacks */
    uint8_t *combo_used = calloc((size_t)st->ncombos + 1, 1);
    uint32_t *combo_node = calloc((size_t)st->ncombos + 1, sizeof(uint32_t));
    size_t native_extra = 0;
    ml_u64map native_map = {0};
    ml_symbols *syms = NULL;

    if (!combo_used || !combo_node)
        goto done;
    if (!canon || !node_of || !needed || !type_idx || !ocell || !used || ml_ct_canon(r, canon, ncodes) < 0)
        goto done;
    for (uint32_t t = 0; t <= ntypes_r; t++)
        type_idx[t] = UINT32_MAX;
    /* the cells with a value in some view, and the stacks they need */
    for (uint32_t c = 0; c < ncells; c++) {
        for (int v = 0; v < ML_CT_NVIEWS; v++) {
            uint64_t b, n;
            if (!ML_CT_WANT(st, v))
                continue;
            ml_ct_value(st, v, c, &b, &n);
            if (b || n) {
                used[c] = 1;
                break;
            }
        }
        if (used[c] && st->cells.a[c] <= nstacks)
            needed[st->cells.a[c]] = 1;
        else if (used[c] && (st->cells.a[c] & ML_CT_NATIVE)) { /* nstacks */
            uint32_t k = st->cells.a[c] & ~ML_CT_NATIVE, ps = st->combo_stack[k];
            needed[ps <= nstacks ? ps : 0] = 1;
            if (!combo_used[k]) {
                combo_used[k] = 1;
                uint32_t n;
                (void)ml_reader_native_stack(r, st->combo_nstack[k], &n);
                native_extra += n;
            }
        }
    }
    for (uint32_t f = nstacks; f >= 1; f--)
        if (needed[f]) {
            const ml_frame_info *fi = ml_reader_frame(r, f);
            if (fi && fi->parent)
                needed[fi->parent] = 1;
        }
    /* every needed stack makes at most one frame and one node */
    uint32_t nneeded = 0;
    for (uint32_t f = 0; f <= nstacks; f++)
        nneeded += needed[f];
    size_t cap = (size_t)nneeded + 1 + native_extra;
    out->parent = malloc(cap * sizeof(uint32_t));
    out->frame = malloc(cap * sizeof(uint32_t));
    fcode = malloc(cap * sizeof(uint32_t));
    fline = malloc(cap * sizeof(uint32_t));
    if (!out->parent || !out->frame || !fcode || !fline)
        goto done;
    if (native_extra && !(out->frame_native = calloc(cap, 1)))
        goto done;
    out->parent[0] = out->frame[0] = UINT32_MAX; /* the root */
    out->nnodes = 1;
    for (uint32_t f = 0; f <= nstacks; f++) {
        if (!needed[f])
            continue;
        const ml_frame_info *fi = ml_reader_frame(r, f);
        uint32_t code = 0, parent_node = 0;
        int32_t line = 0;
        if (fi) {
            code = fi->code <= ncodes ? canon[fi->code] : fi->code;
            line = ml_reader_frame_line(r, f);
            if (fi->parent)
                parent_node = node_of[fi->parent] - 1;
        }
        int64_t fidx = ml_u64map_get(&frame_map, (uint64_t)code << 32 | (uint32_t)line, out->nframes);
        if (fidx < 0)
            goto done;
        if ((uint32_t)fidx == out->nframes) {
            fcode[out->nframes] = code;
            fline[out->nframes] = (uint32_t)line;
            out->nframes++;
        }
        int64_t node = ml_u64map_get(&child_map, (uint64_t)parent_node << 32 | (uint32_t)fidx, out->nnodes);
        if (node < 0)
            goto done;
        if ((uint32_t)node == out->nnodes) {
            out->parent[out->nnodes] = parent_node;
            out->frame[out->nnodes] = (uint32_t)fidx;
            out->nnodes++;
        }
        node_of[f] = (uint32_t)node + 1;
    }
    /* nstacks: the native frames of each used (Python stack, native stack) */
    if (native_extra) {
        uint32_t nmaps;
        const ml_mapping_info *maps = ml_reader_mappings(r, &nmaps);
        if (!(syms = ml_symbols_new()))
            goto done;
        uint32_t ncap = 0;
        for (uint32_t k = 0; k < st->ncombos; k++) {
            if (!combo_used[k])
                continue;
            uint32_t ps = st->combo_stack[k], n;
            const uint64_t *addrs = ml_reader_native_stack(r, st->combo_nstack[k], &n);
            uint32_t node = node_of[ps <= nstacks ? ps : 0] - 1;
            for (uint32_t i = n; i-- > 0;) { /* outermost first */
                ml_symbol sym;
                if (ml_symbols_lookup(syms, maps, nmaps, addrs[i], &sym) < 0)
                    goto done;
                /* a function is its name in its file; an unknown address is itself */
                uint64_t key = sym.func ? (uint64_t)(uintptr_t)sym.func : (1ull << 63 | addrs[i]);
                int64_t fidx = ml_u64map_get(&native_map, key, out->nframes);
                if (fidx < 0)
                    goto done;
                if ((uint32_t)fidx == out->nframes) {
                    if (out->nnative == ncap) {
                        ncap = ncap ? ncap * 2 : 64;
                        char **a = realloc(out->native_func, ncap * sizeof(char *));
                        if (!a)
                            goto done;
                        out->native_func = a;
                        char **b = realloc(out->native_lib, ncap * sizeof(char *));
                        if (!b)
                            goto done;
                        out->native_lib = b;
                        uint64_t *o = realloc(out->native_offset, ncap * sizeof(uint64_t));
                        if (!o)
                            goto done;
                        out->native_offset = o;
                    }
                    uint32_t j = out->nnative++;
                    out->native_func[j] = sym.func ? strdup(sym.func) : NULL;
                    out->native_lib[j] = sym.lib ? strdup(sym.lib) : NULL;
                    out->native_offset[j] = sym.func ? 0 : sym.offset;
                    if ((sym.func && !out->native_func[j]) || (sym.lib && !out->native_lib[j]))
                        goto done;
                    fcode[out->nframes] = j;
                    fline[out->nframes] = 0;
                    out->frame_native[out->nframes] = 1;
                    out->nframes++;
                }
                int64_t nd = ml_u64map_get(&child_map, (uint64_t)node << 32 | (uint32_t)fidx, out->nnodes);
                if (nd < 0)
                    goto done;
                if ((uint32_t)nd == out->nnodes) {
                    out->parent[out->nnodes] = node;
                    out->frame[out->nnodes] = (uint32_t)fidx;
                    out->nnodes++;
                }
                node = (uint32_t)nd;
            }
            combo_node[k] = node;
        }
    }
    /* merge cells that fall on the same (node, type, thread) */
    for (uint32_t c = 0; c < ncells; c++) {
        if (!used[c])
            continue;
        uint32_t stack = st->cells.a[c], type = st->cells.b[c];
        if (type > ntypes_r)
            type = 0;
        if (type_idx[type] == UINT32_MAX) {
            if (ml_ct_push_u32(&out->types, out->ntypes, &tcap, type) < 0)
                goto done;
            type_idx[type] = out->ntypes++;
        }
        int fresh;
        uint32_t onode = stack <= nstacks ? node_of[stack] - 1 : 0;
        if (stack & ML_CT_NATIVE) /* nstacks */
            onode = combo_node[stack & ~ML_CT_NATIVE];
        int64_t o = ml_ct_keys_get(&okeys, onode, type_idx[type], st->cells.c[c], &fresh);
        if (o < 0)
            goto done;
        ocell[c] = (uint32_t)o;
    }
    for (int v = 0; v < ML_CT_NVIEWS; v++) {
        if (!ML_CT_WANT(st, v))
            continue;
        ml_calltree_values *vals = &out->views[v];
        size_t no = okeys.n ? okeys.n : 1;
        uint64_t *b = calloc(no, sizeof(uint64_t)), *n = calloc(no, sizeof(uint64_t));
        if (!b || !n) {
            free(b);
            free(n);
            goto done;
        }
        for (uint32_t c = 0; c < ncells; c++) {
            if (!used[c])
                continue;
            uint64_t cb, cn;
            ml_ct_value(st, v, c, &cb, &cn);
            b[ocell[c]] += cb;
            n[ocell[c]] += cn;
        }
        size_t k = 0;
        for (uint32_t o = 0; o < okeys.n; o++)
            k += (b[o] || n[o]);
        vals->node = malloc((k ? k : 1) * sizeof(uint32_t));
        vals->type = malloc((k ? k : 1) * sizeof(uint32_t));
        vals->thread = malloc((k ? k : 1) * sizeof(uint32_t));
        vals->bytes = malloc((k ? k : 1) * sizeof(uint64_t));
        vals->count = malloc((k ? k : 1) * sizeof(uint64_t));
        if (!vals->node || !vals->type || !vals->thread || !vals->bytes || !vals->count) {
            free(b);
            free(n);
            goto done;
        }
        for (uint32_t o = 0; o < okeys.n; o++) {
            if (!b[o] && !n[o])
                continue;
            vals->node[vals->n] = okeys.a[o];
            vals->type[vals->n] = okeys.b[o];
            vals->thread[vals->n] = okeys.c[o];
            vals->bytes[vals->n] = b[o];
            vals->count[vals->n] = n[o];
            vals->n++;
        }
        free(b);
        free(n);
    }
    out->frame_code = fcode;
    out->frame_line = (int32_t *)fline;
    fcode = fline = NULL;
    out->threads = st->threads;
    out->nthreads = st->nthreads;
    st->threads = NULL;
    rc = 0;
done:
    free(fcode);
    free(fline);
    free(canon);
    free(node_of);
    free(needed);
    free(type_idx);
    free(ocell);
    free(used);
    ml_u64map_release(&frame_map);
    ml_u64map_release(&child_map);
    ml_ct_keys_release(&okeys);
    free(combo_used);
    free(combo_node);
    ml_u64map_release(&native_map);
    ml_symbols_free(syms);
    return rc;
}

int
ml_calltree_build(ml_reader *r, const ml_calltree_opts *opts, const ml_progress *pg, ml_calltree *out,
                  char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    if (!opts->views || opts->views >= (1u << ML_CT_NVIEWS)) {
        snprintf(err, errcap, "no call tree view asked for");
        return -1;
    }
    if ((opts->views & (1u << ML_CT_RANGE | 1u << ML_CT_RANGE_NEW)) && opts->t0_us > opts->t1_us) {
        snprintf(err, errcap, "the range starts after it ends");
        return -1;
    }
    ml_ct_state st;
    memset(&st, 0, sizeof(st));
    st.r = r;
    st.o = *opts;
    if (st.o.temporary_n < 1)
        st.o.temporary_n = 1;
    st.last_tidx = UINT32_MAX;
    /* every view but ALLOCATED needs the cell of each freed block */
    if (opts->views & ~(1u << ML_CT_ALLOCATED)) {
        if (ml_live_init(&st.table) < 0) {
            snprintf(err, errcap, "out of memory while building the call tree");
            return -1;
        }
        st.table_ok = 1;
    }
    ml_reader_rewind(r);
    if (ml_ct_pass(&st, pg, out, err, errcap) < 0)
        goto fail;
    if (ml_ct_tree(&st, out) < 0) {
        snprintf(err, errcap, "out of memory while building the call tree");
        goto fail;
    }
    ml_ct_state_release(&st);
    return 0;
fail:
    ml_ct_state_release(&st);
    ml_calltree_release(out);
    return -1;
}

void
ml_calltree_release(ml_calltree *t)
{
    free(t->frame_code);
    free(t->frame_line);
    for (uint32_t i = 0; i < t->nnative; i++) { /* nstacks */
        free(t->native_func[i]);
        free(t->native_lib[i]);
    }
    free(t->native_func);
    free(t->native_lib);
    free(t->native_offset);
    free(t->frame_native);
    free(t->parent);
    free(t->frame);
    free(t->types);
    free(t->threads);
    for (int v = 0; v < ML_CT_NVIEWS; v++) {
        free(t->views[v].node);
        free(t->views[v].type);
        free(t->views[v].thread);
        free(t->views[v].bytes);
        free(t->views[v].count);
    }
    memset(t, 0, sizeof(*t));
}
