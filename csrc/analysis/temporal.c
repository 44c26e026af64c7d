/* temporal.c: intervals of held bytes per (node, type) over time buckets,
 * for the flame graph's time slider (temporal.h says what they mean).
 *
 * Pass 1 finds each bucket's highest heap point: the bucket width starts at
 * 1 us and doubles (pairs of buckets merged, the higher point kept, the
 * earlier on ties) whenever an event falls past the last bucket, so the
 * duration need not be known in advance. It also notes, for each bucket
 * peak, the last allocation seq at that moment: seqs grow with the events,
 * so "allocated at or before the bucket's peak" is "seq <= peak_seq[b]".
 * Pass 2 turns each FREE (and, at the end, each live block) into the run of
 * bucket peaks it was held at, and sums the runs by (node, type, b0, b1).
 */
#include "analysis/temporal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ML_TEMPORAL_NONE UINT32_MAX

/* An open-addressing table from a two-word key to a 32-bit index. */
typedef struct {
    uint64_t a, b;
    uint32_t value;  /* ML_TEMPORAL_NONE: empty slot */
} ml_temporal_slot;

typedef struct {
    ml_temporal_slot *slots;
    size_t mask, count;
} ml_temporal_map;

static uint64_t
ml_temporal_hash(uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static int
ml_temporal_map_init(ml_temporal_map *m, size_t cap)
{
    m->slots = malloc(cap * sizeof(*m->slots));
    if (!m->slots)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].value = ML_TEMPORAL_NONE;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static ml_temporal_slot *
ml_temporal_map_slot(const ml_temporal_map *m, uint64_t a, uint64_t b)
{
    size_t i = ml_temporal_hash(a, b) & m->mask;
    while (m->slots[i].value != ML_TEMPORAL_NONE && (m->slots[i].a != a || m->slots[i].b != b))
        i = (i + 1) & m->mask;
    return &m->slots[i];
}

static int
ml_temporal_map_grow(ml_temporal_map *m)
{
    ml_temporal_map bigger;
    if (ml_temporal_map_init(&bigger, (m->mask + 1) * 2) < 0)
        return -1;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i].value != ML_TEMPORAL_NONE)
            *ml_temporal_map_slot(&bigger, m->slots[i].a, m->slots[i].b) = m->slots[i];
    bigger.count = m->count;
    free(m->slots);
    *m = bigger;
    return 0;
}

/* The value of (a, b), or `fresh` stored as its value when absent;
 * ML_TEMPORAL_NONE when out of memory. */
static uint32_t
ml_temporal_map_get(ml_temporal_map *m, uint64_t a, uint64_t b, uint32_t fresh)
{
    ml_temporal_slot *s = ml_temporal_map_slot(m, a, b);
    if (s->value != ML_TEMPORAL_NONE)
        return s->value;
    if ((m->count + 1) * 8 > (m->mask + 1) * 5) {
        if (ml_temporal_map_grow(m) < 0)
            return ML_TEMPORAL_NONE;
        s = ml_temporal_map_slot(m, a, b);
    }
    s->a = a;
    s->b = b;
    s->value = fresh;
    m->count++;
    return fresh;
}

/* Growable arrays. */
static int
ml_temporal_reserve(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Bucket peaks while pass 1 runs. */
typedef struct {
    uint64_t top, time_us, event, seq;
} ml_temporal_bucket;

typedef struct {
    ml_reader *r;
    ml_temporal *t;
    ml_temporal_map frames, children, ivl_index;
    size_t frames_cap, nodes_cap, ivl_cap;
    uint32_t *stack_node;       /* by stack id: its node, or NONE */
    size_t stack_cap;
    uint64_t *peak_seq;         /* by bucket */
    ml_frame_id *chain;         /* scratch for resolving a stack */
    size_t chain_cap;
} ml_temporal_build_state;

static uint32_t
ml_temporal_frame_of(ml_temporal_build_state *st, ml_code_id code, int32_t line)
{
    ml_temporal *t = st->t;
    uint32_t i = ml_temporal_map_get(&st->frames, code, (uint32_t)line, (uint32_t)t->nframes);
    if (i == ML_TEMPORAL_NONE || i < t->nframes)
        return i;
    if (ml_temporal_reserve((void **)&t->frames, &st->frames_cap, t->nframes + 1, sizeof(*t->frames)) < 0)
        return ML_TEMPORAL_NONE;
    t->frames[t->nframes].code = code;
    t->frames[t->nframes].line = line;
    t->nframes++;
    return i;
}

static uint32_t
ml_temporal_child(ml_temporal_build_state *st, uint32_t parent, uint32_t frame)
{
    ml_temporal *t = st->t;
    if (frame == ML_TEMPORAL_NONE)
        return ML_TEMPORAL_NONE;
    uint32_t n = ml_temporal_map_get(&st->children, parent, frame, (uint32_t)t->nnodes);
    if (n == ML_TEMPORAL_NONE || n < t->nnodes)
        return n;
    size_t cap = st->nodes_cap;
    if (ml_temporal_reserve((void **)&t->parent, &st->nodes_cap, t->nnodes + 1, sizeof(uint32_t)) < 0)
        return ML_TEMPORAL_NONE;
    if (st->nodes_cap != cap) {  /* frame[] grows with parent[] */
        uint32_t *f = realloc(t->frame, st->nodes_cap * sizeof(uint32_t));
        if (!f)
            return ML_TEMPORAL_NONE;
        t->frame = f;
    }
    t->parent[t->nnodes] = parent;
    t->frame[t->nnodes] = frame;
    t->nnodes++;
    return n;
}

/* The node of a stack (memoized by stack id); NONE when out of memory. */
static uint32_t
ml_temporal_node_of(ml_temporal_build_state *st, ml_frame_id stack)
{
    if (stack == 0)
        return ml_temporal_child(st, 0, ml_temporal_frame_of(st, 0, 0));
    size_t old = st->stack_cap;
    if (ml_temporal_reserve((void **)&st->stack_node, &st->stack_cap, (size_t)stack + 1,
                            sizeof(uint32_t)) < 0)
        return ML_TEMPORAL_NONE;
    for (size_t i = old; i < st->stack_cap; i++)
        st->stack_node[i] = ML_TEMPORAL_NONE;
    if (st->stack_node[stack] != ML_TEMPORAL_NONE)
        return st->stack_node[stack];
    /* walk out to a memoized frame or the outermost one, then back in */
    size_t n = 0;
    uint32_t node = 0;
    for (ml_frame_id f = stack; f; ) {
        if (f < st->stack_cap && st->stack_node[f] != ML_TEMPORAL_NONE) {
            node = st->stack_node[f];
            break;
        }
        if (ml_temporal_reserve((void **)&st->chain, &st->chain_cap, n + 1, sizeof(*st->chain)) < 0)
            return ML_TEMPORAL_NONE;
        st->chain[n++] = f;
        const ml_frame_info *fi = ml_reader_frame(st->r, f);
        f = fi ? fi->parent : 0;
        if (n > (size_t)ml_reader_nframes(st->r))  /* a cycle: the reader forbids it, be safe */
            break;
    }
    while (n--) {
        ml_frame_id f = st->chain[n];
        const ml_frame_info *fi = ml_reader_frame(st->r, f);
        node = ml_temporal_child(st, node, ml_temporal_frame_of(st, fi ? fi->code : 0,
                                                                 ml_reader_frame_line(st->r, f)));
        if (node == ML_TEMPORAL_NONE)
            return node;
        if (f < st->stack_cap)
            st->stack_node[f] = node;
    }
    return node;
}

static int
ml_temporal_add(ml_temporal_build_state *st, ml_frame_id stack, ml_type_id type, ml_seq seq,
                uint32_t b1, uint64_t size)
{
    ml_temporal *t = st->t;
    /* b0: the first bucket whose peak came at or after this allocation */
    uint32_t lo = 0, hi = t->nbuckets;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (st->peak_seq[mid] >= seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo >= b1)
        return 0;  /* held at no bucket peak */
    uint32_t node = ml_temporal_node_of(st, stack);
    if (node == ML_TEMPORAL_NONE)
        return -1;
    uint64_t key_b = ((uint64_t)type << 32) | ((uint64_t)lo << 16) | b1;
    uint32_t i = ml_temporal_map_get(&st->ivl_index, node, key_b, (uint32_t)t->nivl);
    if (i == ML_TEMPORAL_NONE)
        return -1;
    if (i == t->nivl) {
        if (ml_temporal_reserve((void **)&t->ivl, &st->ivl_cap, t->nivl + 1, sizeof(*t->ivl)) < 0)
            return -1;
        ml_temporal_ivl *v = &t->ivl[t->nivl++];
        v->node = node;
        v->type = type;
        v->b0 = lo;
        v->b1 = b1;
        v->bytes = v->blocks = 0;
    }
    t->ivl[i].bytes += size;
    t->ivl[i].blocks++;
    return 0;
}

typedef struct {
    ml_temporal_build_state *st;
    int failed;
} ml_temporal_live_arg;

static int
ml_temporal_live_visit(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type,
                       ml_domain domain)
{
    ml_temporal_live_arg *a = arg;
    if (ml_temporal_add(a->st, stack, type, seq, a->st->t->nbuckets, size) < 0) {
        a->failed = 1;
        return 1;
    }
    return 0;
}

/* Pass 1: the bucket peaks into b[0 .. *nb). */
static int
ml_temporal_peaks(ml_reader *r, uint32_t cap, const ml_progress *pg, ml_temporal_bucket *b,
                  uint32_t *nb, uint64_t *width, char *err, size_t errcap)
{
    ml_event ev;
    uint64_t heap = 0, nev = 0, seq = 0, w = 1;
    uint32_t cur = 0;
    int rc;
    memset(&b[0], 0, sizeof(b[0]));
    ml_reader_rewind(r);
    while ((rc = ml_reader_next(r, &ev)) == 1) {
        nev++;
        if (ml_progress_tick(pg, 1, r, nev, err, errcap) < 0)
            return -1;
        uint64_t k = ev.time_us / w;
        while (k >= cap) {
            /* halve the resolution: bucket i becomes the higher of 2i, 2i+1 */
            for (uint32_t i = 0; 2 * i <= cur; i++) {
                ml_temporal_bucket m = b[2 * i];
                if (2 * i + 1 <= cur && b[2 * i + 1].top > m.top)
                    m = b[2 * i + 1];
                b[i] = m;
            }
            cur /= 2;
            w *= 2;
            k = ev.time_us / w;
        }
        if (k > cur) {
            for (uint32_t i = cur + 1; i <= (uint32_t)k; i++) {
                b[i].top = heap;
                b[i].time_us = (uint64_t)i * w;
                b[i].event = nev - 1;
                b[i].seq = seq;
            }
            cur = (uint32_t)k;
        }
        if (ev.kind == ML_EV_ALLOC) {
            heap += ev.size;
            seq = ev.seq;
        } else if (ev.kind == ML_EV_FREE) {
            heap -= ev.size;
        } else {
            continue;
        }
        if (heap > b[cur].top) {
            b[cur].top = heap;
            b[cur].time_us = ev.time_us;
            b[cur].event = nev;
            b[cur].seq = seq;
        }
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        return -1;
    }
    *nb = cur + 1;
    *width = w;
    return 0;
}

static int
ml_temporal_ivl_cmp(const void *a, const void *b)
{
    const ml_temporal_ivl *x = a, *y = b;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    if (x->b0 != y->b0)
        return x->b0 < y->b0 ? -1 : 1;
    return x->b1 < y->b1 ? -1 : x->b1 > y->b1;
}

/* Sort the intervals and derive the steps of each (node, type). */
static int
ml_temporal_steps(ml_temporal *t)
{
    size_t n = t->nbuckets;
    int64_t *db = calloc(n + 1, sizeof(int64_t)), *dc = calloc(n + 1, sizeof(int64_t));
    size_t cap = 0;
    if (!db || !dc)
        goto nomem;
    qsort(t->ivl, t->nivl, sizeof(*t->ivl), ml_temporal_ivl_cmp);
    for (size_t i = 0; i < t->nivl; ) {
        size_t j = i;
        uint32_t lo = t->ivl[i].b0, hi = 0;
        for (; j < t->nivl && t->ivl[j].node == t->ivl[i].node && t->ivl[j].type == t->ivl[i].type; j++) {
            const ml_temporal_ivl *v = &t->ivl[j];
            db[v->b0] += (int64_t)v->bytes;
            dc[v->b0] += (int64_t)v->blocks;
            db[v->b1] -= (int64_t)v->bytes;
            dc[v->b1] -= (int64_t)v->blocks;
            if (v->b1 > hi)
                hi = v->b1;
        }
        for (uint32_t k = lo; k <= hi && k < n; k++) {
            if (db[k] || dc[k]) {
                if (ml_temporal_reserve((void **)&t->steps, &cap, t->nsteps + 1, sizeof(*t->steps)) < 0)
                    goto nomem;
                ml_temporal_step *s = &t->steps[t->nsteps++];
                s->node = t->ivl[i].node;
                s->type = t->ivl[i].type;
                s->bucket = k;
                s->dbytes = db[k];
                s->dblocks = dc[k];
            }
        }
        for (uint32_t k = lo; k <= hi; k++)
            db[k] = dc[k] = 0;
        i = j;
    }
    free(db);
    free(dc);
    return 0;
nomem:
    free(db);
    free(dc);
    return -1;
}

int
ml_temporal_build(ml_reader *r, uint32_t nbuckets, const ml_progress *pg, ml_temporal *out,
                  char *err, size_t errcap)
{
    ml_temporal_build_state st;
    ml_temporal_bucket *b = NULL;
    memset(out, 0, sizeof(*out));
    memset(&st, 0, sizeof(st));
    st.r = r;
    st.t = out;
    if (nbuckets < 2 || nbuckets > ML_TEMPORAL_MAX_BUCKETS) {
        snprintf(err, errcap, "the number of time buckets must be 2 to %d", ML_TEMPORAL_MAX_BUCKETS);
        return -1;
    }
    b = malloc(nbuckets * sizeof(*b));
    if (!b)
        goto nomem;
    if (ml_temporal_peaks(r, nbuckets, pg, b, &out->nbuckets, &out->width_us, err, errcap) < 0)
        goto fail;
    out->duration_us = ml_reader_time(r);
    out->top = malloc(out->nbuckets * sizeof(uint64_t));
    out->top_time_us = malloc(out->nbuckets * sizeof(uint64_t));
    out->top_event = malloc(out->nbuckets * sizeof(uint64_t));
    st.peak_seq = malloc(out->nbuckets * sizeof(uint64_t));
    if (!out->top || !out->top_time_us || !out->top_event || !st.peak_seq)
        goto nomem;
    for (uint32_t i = 0; i < out->nbuckets; i++) {
        out->top[i] = b[i].top;
        out->top_time_us[i] = b[i].time_us;
        out->top_event[i] = b[i].event;
        st.peak_seq[i] = b[i].seq;
    }
    free(b);
    b = NULL;
    if (ml_temporal_map_init(&st.frames, 1024) < 0 || ml_temporal_map_init(&st.children, 1024) < 0 ||
        ml_temporal_map_init(&st.ivl_index, 1024) < 0)
        goto nomem;
    /* the root */
    if (ml_temporal_reserve((void **)&out->parent, &st.nodes_cap, 1, sizeof(uint32_t)) < 0 ||
        !(out->frame = malloc(st.nodes_cap * sizeof(uint32_t))))
        goto nomem;
    out->parent[0] = out->frame[0] = ML_TEMPORAL_NONE;
    out->nnodes = 1;

    /* pass 2 */
    ml_event ev;
    uint64_t nev = 0;
    uint32_t b1 = 0;  /* buckets whose peak event came before the current event */
    int rc;
    ml_reader_rewind(r);
    while ((rc = ml_reader_next(r, &ev)) == 1) {
        nev++;
        if (ml_progress_tick(pg, 2, r, nev, err, errcap) < 0)
            goto fail;
        while (b1 < out->nbuckets && out->top_event[b1] < nev)
            b1++;
        if (ev.kind == ML_EV_FREE && ml_temporal_add(&st, ev.stack, ev.type, ev.seq, b1, ev.size) < 0)
            goto nomem;
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        goto fail;
    }
    ml_temporal_live_arg la = {&st, 0};
    ml_reader_live_foreach(r, ml_temporal_live_visit, &la);
    if (la.failed || ml_temporal_steps(out) < 0)
        goto nomem;
    free(st.frames.slots);
    free(st.children.slots);
    free(st.ivl_index.slots);
    free(st.stack_node);
    free(st.peak_seq);
    free(st.chain);
    return 0;
nomem:
    snprintf(err, errcap, "out of memory");
fail:
    free(b);
    free(st.frames.slots);
    free(st.children.slots);
    free(st.ivl_index.slots);
    free(st.stack_node);
    free(st.peak_seq);
    free(st.chain);
    ml_temporal_release(out);
    return -1;
}

void
ml_temporal_release(ml_temporal *t)
{
    free(t->top);
    free(t->top_time_us);
    free(t->top_event);
    free(t->parent);
    free(t->frame);
    free(t->frames);
    free(t->ivl);
    free(t->steps);
    memset(t, 0, sizeof(*t));
}
