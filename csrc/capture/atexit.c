/* atexit.c: the heap-at-exit pass (see atexit.h). */
#define _GNU_SOURCE 1
#include "capture/atexit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heap/holders.h"
#include "graph/typekind.h"
#include "heap/owners.h"

/* A buffer's label ("list (items)", "dict (values) of Lesson") as a type
 * id, by what makes it: most buffers of a heap share a few labels, so the
 * name is formatted and interned once per (type, role, owner kind, owner
 * type), not once per buffer. */
typedef struct {
    PyTypeObject *tp, *of;
    unsigned role, of_kind;
    ml_type_id id; /* 0: empty slot */
} ml_atexit_label;

#define ML_ATEXIT_LABELS 256 /* a power of two */
#define ML_ATEXIT_AHEAD 8    /* objects prefetched ahead of a pass */

/* Owners waiting for their OWNERS record, in the walk's order. */
typedef struct {
    ml_seq seq[ML_OWNERS_MAX], owner[ML_OWNERS_MAX];
    ml_type_id type[ML_OWNERS_MAX];
    size_t n;
} ml_atexit_owners;

/* The held blocks: pair i is block seq[i], reached with pattern pat[i]
 * under holder hold[i]. */
typedef struct {
    const ml_atexit_env *env;
    ml_atexit_stats *st;
    ml_seq *seq;
    uint32_t *pat;
    ml_node *hold;
    size_t npairs, cap;
    ml_atexit_label labels[ML_ATEXIT_LABELS];
    ml_atexit_owners *owners; /* the OWNERS record being filled */
} ml_atexit_ctx;

/* Frames of code whose file name starts with this are memlens' own. */
static char ml_atexit_skip[1024];

void
ml_atexit_set_skip(const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n >= sizeof(ml_atexit_skip))
        n = 0; /* too long to be ours: skip nothing rather than a prefix of it */
    memcpy(ml_atexit_skip, prefix, n);
    ml_atexit_skip[n] = 0;
}

static uint64_t
ml_atexit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The seq of the block that holds object o (0: not recorded). */
static ml_seq
ml_atexit_seq_of_object(const ml_atexit_env *env, PyObject *o)
{
    return env->seq_of(env->arg, (uintptr_t)o - ml_compat_preheader(Py_TYPE(o)));
}

/* The label's type id of a buffer (0 when out of memory): from the
 * cache, else named and interned (then cached; a colliding entry is
 * replaced). */
static ml_type_id
ml_atexit_label_of(ml_atexit_ctx *c, PyTypeObject *tp, unsigned role, ml_owners_of of_kind, PyTypeObject *of)
{
    uintptr_t h = ((uintptr_t)tp >> 4) * 0x9E3779B1u ^ ((uintptr_t)of >> 4) * 0x85EBCA77u ^ role * 31u ^
                  (unsigned)of_kind;
    ml_atexit_label *e = &c->labels[(h ^ h >> 16) & (ML_ATEXIT_LABELS - 1)];
    if (e->id && e->tp == tp && e->of == of && e->role == role && e->of_kind == (unsigned)of_kind)
        return e->id;
    const ml_atexit_env *env = c->env;
    size_t tlen, oflen = 0;
    const char *tname = env->type_name(env->arg, tp, &tlen);
    const char *ofname = of ? env->type_name(env->arg, of, &oflen) : NULL;
    if (!tname)
        return 0;
    char label[512];
    size_t n = ml_owners_label(label, sizeof(label), tname, tlen, role, of_kind, ofname, oflen);
    ml_type_id id = env->label(env->arg, label, n);
    if (id)
        *e = (ml_atexit_label){tp, of, role, (unsigned)of_kind, id};
    return id;
}

static int
ml_atexit_owner(void *arg, PyObject *o, const ml_compat_buf *buf, ml_owners_of of_kind, PyTypeObject *of)
{
    ml_atexit_ctx *c = arg;
    const ml_atexit_env *env = c->env;
    ml_seq seq = env->seq_of(env->arg, buf->block);
    if (!seq)
        return 0; /* not recorded: allocated before the capture */
    ml_type_id type = ml_atexit_label_of(c, Py_TYPE(o), buf->role, of_kind, of);
    if (!type)
        return -1;
    ml_atexit_owners *b = c->owners;
    b->seq[b->n] = seq;
    b->owner[b->n] = ml_atexit_seq_of_object(env, o);
    b->type[b->n] = type;
    if (++b->n == ML_OWNERS_MAX) {
        ml_writer_owners(env->w, b->seq, b->owner, b->type, b->n);
        b->n = 0;
    }
    c->st->owners++;
    return 0;
}

/* The owners not written yet, as the last OWNERS record (their labels'
 * TYPE_DEFs were written before them, as each label was made). Returns rc. */
static int
ml_atexit_owners_flush(ml_atexit_ctx *c, int rc)
{
    ml_atexit_owners *b = c->owners;
    if (b->n)
        ml_writer_owners(c->env->w, b->seq, b->owner, b->type, b->n);
    b->n = 0;
    return rc;
}

static int
ml_atexit_grow_pairs(ml_atexit_ctx *c, size_t cap)
{
    ml_seq *sq = realloc(c->seq, cap * sizeof(*sq));
    if (sq)
        c->seq = sq;
    uint32_t *pt = realloc(c->pat, cap * sizeof(*pt));
    if (pt)
        c->pat = pt;
    ml_node *hd = realloc(c->hold, cap * sizeof(*hd));
    if (hd)
        c->hold = hd;
    if (!sq || !pt || !hd)
        return -1;
    c->cap = cap;
    return 0;
}

static inline int
ml_atexit_add_pair(ml_atexit_ctx *c, uint32_t pattern, ml_node holder, ml_seq seq)
{
    if (c->npairs == c->cap && ml_atexit_grow_pairs(c, c->cap * 2) < 0)
        return -1;
    c->seq[c->npairs] = seq;
    c->pat[c->npairs] = pattern;
    c->hold[c->npairs++] = holder;
    return 0;
}

/* The recorded blocks of every reached object (it and the buffers it
 * owns), with its pattern and holder, in node order: the graph numbers the
 * objects by address, so the objects and their entries in the block table
 * are read in address order (the search's order would jump across the
 * heap); the writer sorts each pattern's seqs. */
static int
ml_atexit_collect(ml_atexit_ctx *c, const ml_refgraph *g, const ml_holders *h)
{
    const ml_atexit_env *env = c->env;
    size_t n = ml_refgraph_count(g);
    /* a block per object and some buffers: rarely grown (pages of the
     * part not used are never touched) */
    if (ml_atexit_grow_pairs(c, n + n / 2 + 64) < 0)
        return -1;
    for (size_t v = 0; v < n; v++) {
        if (v + ML_ATEXIT_AHEAD < n)
            __builtin_prefetch(ml_refgraph_object(g, (ml_node)(v + ML_ATEXIT_AHEAD)));
        uint32_t p = ml_holders_pattern_of(h, (ml_node)v);
        if (!p)
            continue;
        PyObject *o = ml_refgraph_object(g, (ml_node)v);
        ml_node holder = ml_holders_holder_of(h, (ml_node)v);
        ml_seq seq = ml_atexit_seq_of_object(env, o);
        if (seq && ml_atexit_add_pair(c, p, holder, seq) < 0)
            return -1;
        ml_compat_buf bufs[ML_COMPAT_MAX_BUFS];
        int nb = ml_typekind_of(Py_TYPE(o)) & ML_TK_BUFFERS ? ml_compat_owned_buffers(o, bufs) : 0;
        for (int i = 0; i < nb; i++) {
            ml_seq b = env->seq_of(env->arg, bufs[i].block);
            if (b && ml_atexit_add_pair(c, p, holder, b) < 0)
                return -1;
        }
    }
    return 0;
}

static const char *
ml_atexit_name(void *arg, PyTypeObject *tp, size_t *len)
{
    const ml_atexit_env *env = arg;
    return env->type_name(env->arg, tp, len);
}

/* Sort seqs a[0..n) ascending (LSD radix sort, a byte a pass, as many
 * passes as the largest seq needs), tmp of n seqs as scratch. Returns
 * the array that holds the result (a or tmp). */
static ml_seq *
ml_atexit_sort_seqs(ml_seq *a, ml_seq *tmp, size_t n)
{
    ml_seq max = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] > max)
            max = a[i];
    for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 8) {
        size_t count[256 + 1] = {0};
        for (size_t i = 0; i < n; i++)
            count[((a[i] >> shift) & 255) + 1]++;
        for (size_t d = 1; d <= 256; d++)
            count[d] += count[d - 1];
        for (size_t i = 0; i < n; i++)
            tmp[count[(a[i] >> shift) & 255]++] = a[i];
        ml_seq *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* The retained bytes of the distinct holders hold[0..n) of pattern p
 * (stamp: per node, the last pattern that counted it). Holders of one
 * pattern never dominate one another (each is reached before the objects
 * it dominates, at a shorter pattern), so their retained sizes add up; a
 * cut pattern's may: 0, not measured. */
static uint64_t
ml_atexit_retained(const ml_holders *h, uint32_t p, const ml_node *hold, size_t n, uint32_t *stamp)
{
    if (ml_holders_cut(h, p))
        return 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        ml_node v = hold[i];
        if (v != ML_NODE_NONE && stamp[v] != p) {
            stamp[v] = p;
            sum += ml_holders_retained(h, v);
        }
    }
    return sum;
}

/* HOLDER and HELD records: the pairs bucketed by pattern, seqs ascending. */
static int
ml_atexit_write_holders(ml_atexit_ctx *c, const ml_holders *h, size_t nodes)
{
    uint32_t np = ml_holders_count(h);
    size_t *start = calloc((size_t)np + 2, sizeof(*start));
    size_t m = c->npairs ? c->npairs : 1;
    ml_seq *seqs = malloc(m * sizeof(*seqs));
    ml_node *holds = malloc(m * sizeof(*holds));
    uint32_t *stamp = calloc(nodes ? nodes : 1, sizeof(*stamp));
    int rc = -1;
    if (!start || !seqs || !holds || !stamp)
        goto free_all;
    for (size_t i = 0; i < c->npairs; i++)
        start[c->pat[i] + 1]++;
    for (uint32_t p = 1; p <= np + 1; p++)
        start[p] += start[p - 1];
    for (size_t i = 0; i < c->npairs; i++) { /* start[p] moves to the end of bucket p */
        size_t j = start[c->pat[i]]++;
        seqs[j] = c->seq[i];
        holds[j] = c->hold[i];
    }
    ml_seq *scratch = c->seq; /* free now: scratch for the sorts */
    uint32_t id = 0;
    for (uint32_t p = 1; p <= np; p++) {
        /* bucket p is [start[p-1], start[p]) now */
        size_t from = start[p - 1], to = start[p];
        if (to <= from)
            continue;
        size_t n = to - from, k = 0;
        ml_seq *q = seqs + from;
        for (size_t i = 1; i < n; i++) {
            if (q[i] < q[i - 1]) {
                ml_seq *r = ml_atexit_sort_seqs(q, scratch, n);
                if (r != q)
                    memcpy(q, r, n * sizeof(*q));
                break;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (!k || q[i] != q[k - 1]) /* a block reached twice (never: one search) */
                q[k++] = q[i];
        const char *hops[2 * ML_HOLDERS_DEPTH + 4];
        size_t lens[2 * ML_HOLDERS_DEPTH + 4];
        size_t nh = ml_holders_hops(h, p, hops, lens, sizeof(hops) / sizeof(hops[0]));
        ml_writer_holder(c->env->w, ++id, hops, lens, nh, ml_atexit_retained(h, p, holds + from, n, stamp));
        for (size_t i = 0; i < k; i += ML_HELD_MAX)
            ml_writer_held(c->env->w, id, q + i, k - i < ML_HELD_MAX ? k - i : ML_HELD_MAX);
        c->st->holders++;
        c->st->held += k;
    }
    rc = 0;
free_all:
    free(start);
    free(seqs);
    free(holds);
    free(stamp);
    return rc;
}

int
ml_atexit_snapshot(const ml_atexit_env *env, unsigned kind, ml_atexit_stats *stats)
{
    ml_atexit_stats st = {0};
    ml_atexit_ctx c = {.env = env, .st = &st};
    uint64_t t0 = ml_atexit_now_us();
    int rc = -1;
    ml_roots r;
    ml_holders *h = NULL;
    ml_writer_snapshot(env->w, kind, 0, 0);
    c.owners = calloc(1, sizeof(*c.owners));
    if (!c.owners)
        goto end;
    if (kind == ML_SNAP_OWNERS) { /* one walk, buffers named; no graph, no holders */
        rc = ml_atexit_owners_flush(&c, ml_owners_heap(ml_atexit_owner, &c, &st.objects));
        goto end;
    }
    ml_refgraph *g = ml_refgraph_build();
    if (!g)
        goto end;
    st.objects = ml_refgraph_count(g);
    if (ml_atexit_owners_flush(&c, ml_owners_graph(g, ml_atexit_owner, &c)) < 0 ||
        ml_roots_find(g, ml_atexit_skip, NULL, 0, &r) < 0)
        goto free_graph;
    h = ml_holders_build(g, &r, ml_atexit_name, (void *)env);
    if (h && ml_atexit_collect(&c, g, h) == 0 && ml_atexit_write_holders(&c, h, (size_t)st.objects) == 0)
        rc = 0;
    ml_holders_free(h);
    ml_roots_release(&r);
free_graph:
    ml_refgraph_free(g);
end:
    free(c.owners);
    free(c.seq);
    free(c.pat);
    free(c.hold);
    st.duration_us = ml_atexit_now_us() - t0;
    ml_writer_snapshot(env->w, ML_SNAP_END, st.objects, st.duration_us);
    if (stats)
        *stats = st;
    return rc;
}
