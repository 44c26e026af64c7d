/* refgraph.c: the reference graph of the live heap (see refgraph.h). */
#include "graph/refgraph.h"
#include "heap/heap.h"
#include "heap/objsize.h"
#include "heap/walk.h"
#include "graph/noderank.h"
#include "graph/typekind.h"

#include <stdlib.h>
#include <string.h>

/* A shallow size of 4 GiB - 1 or more: kept aside (size[] holds
 * UINT32_MAX), in node order. */
typedef struct {
    ml_node node;
    uint64_t size;
} ml_refgraph_big;

struct ml_refgraph {
    PyObject **objs;
    uint32_t *size;
    ml_refgraph_big *big;
    size_t nbig, capbig;
    uint32_t *off, *succ;  /* n + 1 offsets */
    uint32_t *roff, *pred;
    size_t n, nedges;
    ml_noderank rank;      /* object -> node, while building */
    int has_rank;
};

/* ---- build: one walk lists the objects and their referents (as
 * pointers, in walk order); the nodes are then numbered in address order
 * (noderank.h) and the referents turned into node numbers ---- */

typedef struct {
    ml_refgraph *g;
    PyObject **wobjs;   /* walk order */
    uint32_t *wstart, *wcount, *wsize;
    size_t n, cap;
    ml_refgraph_big *wbig; /* .node: walk index until numbered */
    size_t nbig, capbig;
} ml_refgraph_builder;

static int
ml_refgraph_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* o's shallow size, given its instance dict's values bytes. */
static uint64_t
ml_refgraph_shallow(PyObject *o, size_t values)
{
    return (uint64_t)ml_typekind_size(o) + values;
}

static int
ml_refgraph_grow_walk(ml_refgraph_builder *b)
{
    size_t cap = b->cap ? b->cap * 2 : 65536;
    PyObject **o = realloc(b->wobjs, cap * sizeof(*o));
    if (o)
        b->wobjs = o;
    uint32_t *s = realloc(b->wstart, cap * sizeof(*s));
    if (s)
        b->wstart = s;
    uint32_t *c = realloc(b->wcount, cap * sizeof(*c));
    if (c)
        b->wcount = c;
    uint32_t *z = realloc(b->wsize, cap * sizeof(*z));
    if (z)
        b->wsize = z;
    if (!o || !s || !c || !z)
        return -1;
    b->cap = cap;
    return 0;
}

/* One object of the walk, its referents just recorded (walk.h). */
static int
ml_refgraph_list_cb(ml_walk *w, PyObject *o, void *arg)
{
    ml_refgraph_builder *b = arg;
    PyTypeObject *tp = Py_TYPE(o);
    /* static types are no one's referent in tp_traverse: reach them too */
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) && ml_walk_reach(w, (PyObject *)tp) < 0)
        return -1;
    size_t values;
    if (ml_walk_reach_instance_dict(w, o, &values) < 0)
        return -1;
    if (b->n + 1 >= UINT32_MAX || w->nrefs >= UINT32_MAX)
        return -1;
    if (b->n == b->cap && ml_refgraph_grow_walk(b) < 0)
        return -1;
    if (ml_noderank_add(&b->g->rank, (uintptr_t)o) != 1)
        return -1; /* out of memory (or an object twice: never) */
    size_t i = b->n++;
    b->wobjs[i] = o;
    b->wstart[i] = (uint32_t)w->ref_mark;
    b->wcount[i] = (uint32_t)(w->nrefs - w->ref_mark);
    uint64_t size = ml_refgraph_shallow(o, values); /* now, while o is in the cache */
    b->wsize[i] = size < UINT32_MAX ? (uint32_t)size : UINT32_MAX;
    if (size >= UINT32_MAX) {
        if (ml_refgraph_grow((void **)&b->wbig, &b->capbig, b->nbig + 1, sizeof(*b->wbig)) < 0)
            return -1;
        b->wbig[b->nbig++] = (ml_refgraph_big){(ml_node)i, size};
    }
    return 0;
}

static int
ml_refgraph_reverse(ml_refgraph *g)
{
    size_t n = g->n;
    g->roff = calloc(n + 1, sizeof(*g->roff));
    g->pred = malloc((g->nedges ? g->nedges : 1) * sizeof(*g->pred));
    if (!g->roff || !g->pred)
        return -1;
    for (size_t e = 0; e < g->nedges; e++)
        g->roff[g->succ[e] + 1]++;
    for (size_t i = 0; i < n; i++)
        g->roff[i + 1] += g->roff[i];
    uint32_t *fill = malloc((n ? n : 1) * sizeof(*fill));
    if (!fill)
        return -1;
    memcpy(fill, g->roff, n * sizeof(*fill));
    for (size_t i = 0; i < n; i++) {
        for (uint32_t e = g->off[i]; e < g->off[i + 1]; e++)
            g->pred[fill[g->succ[e]]++] = (uint32_t)i;
    }
    free(fill);
    return 0;
}

static int
ml_refgraph_cmp_big(const void *a, const void *b)
{
    ml_node x = ((const ml_refgraph_big *)a)->node, y = ((const ml_refgraph_big *)b)->node;
    return x < y ? -1 : x > y;
}

/* Nodes in address order, edges as node numbers (CSR), from the walk's
 * lists. refs: the walk's referents, turned into node numbers in place. */
static int
ml_refgraph_number(ml_refgraph *g, ml_refgraph_builder *b, PyObject **refs)
{
    size_t n = b->n;
    uint32_t *ids = (uint32_t *)refs; /* node numbers, packed over the pointers */
    uint32_t *perm = malloc((n ? n : 1) * sizeof(*perm));
    g->n = n;
    g->objs = malloc((n ? n : 1) * sizeof(*g->objs));
    g->size = malloc((n ? n : 1) * sizeof(*g->size));
    g->off = calloc(n + 1, sizeof(*g->off));
    if (!perm || !g->objs || !g->size || !g->off || ml_noderank_freeze(&g->rank) < 0) {
        free(perm);
        return -1;
    }
    g->has_rank = 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = ml_noderank_of(&g->rank, (uintptr_t)b->wobjs[i]);
        perm[i] = v;
        g->objs[v] = b->wobjs[i];
        g->size[v] = b->wsize[i];
        /* referents -> node numbers; memlens' own and objects outside the
         * walk are no nodes (k <= r: the packed write never passes the read) */
        size_t from = b->wstart[i], to = from + b->wcount[i], first = k;
        for (size_t r = from; r < to; r++) {
            uint32_t t = ml_noderank_of(&g->rank, (uintptr_t)refs[r]);
            if (t != UINT32_MAX)
                ids[k++] = t;
        }
        b->wstart[i] = (uint32_t)first;
        b->wcount[i] = (uint32_t)(k - first);
        g->off[v + 1] = (uint32_t)(k - first);
    }
    for (size_t v = 0; v < n; v++)
        g->off[v + 1] += g->off[v];
    g->nedges = k;
    g->succ = malloc((k ? k : 1) * sizeof(*g->succ));
    if (!g->succ) {
        free(perm);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(g->succ + g->off[perm[i]], ids + b->wstart[i], b->wcount[i] * sizeof(*ids));
    for (size_t i = 0; i < b->nbig; i++)
        b->wbig[i].node = perm[b->wbig[i].node];
    if (b->nbig) /* qsort of a NULL base is undefined, even for 0 items */
        qsort(b->wbig, b->nbig, sizeof(*b->wbig), ml_refgraph_cmp_big);
    g->big = b->wbig;
    g->nbig = g->capbig = b->nbig;
    b->wbig = NULL;
    free(perm);
    return 0;
}

ml_refgraph *
ml_refgraph_build(void)
{
    ml_refgraph *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    ml_refgraph_builder b = {.g = g};
    ml_walk w;
    ml_typekind_reset();
    PyObject **refs = NULL;
    int rc = -1;
    if (ml_noderank_init(&g->rank) < 0) {
        free(g);
        return NULL;
    }
    if (ml_walk_heap_refs(ml_refgraph_list_cb, &b, &w) == 0) {
        refs = w.refs; /* ours now */
        w.refs = NULL;
        rc = 0;
    }
    ml_walk_release(&w);
    if (rc == 0)
        rc = ml_refgraph_number(g, &b, refs);
    /* the index served the numbering; finding an object later is a binary
     * search of objs (no memory kept for it) */
    ml_noderank_release(&g->rank);
    g->has_rank = 0;
    free(refs);
    free(b.wobjs);
    free(b.wstart);
    free(b.wcount);
    free(b.wsize);
    free(b.wbig);
    if (rc < 0 || ml_refgraph_reverse(g) < 0) {
        ml_refgraph_free(g);
        return NULL;
    }
    return g;
}

ml_refgraph *
ml_refgraph_from_edges(size_t n, const uint32_t *from, const uint32_t *to, size_t nedges, const uint64_t *sizes)
{
    ml_refgraph *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->n = n;
    g->objs = calloc(n ? n : 1, sizeof(*g->objs));
    g->size = malloc((n ? n : 1) * sizeof(*g->size));
    g->off = calloc(n + 1, sizeof(*g->off));
    g->succ = malloc((nedges ? nedges : 1) * sizeof(*g->succ));
    uint32_t *fill = malloc((n ? n : 1) * sizeof(*fill));
    if (!g->objs || !g->size || !g->off || !g->succ || !fill)
        goto fail;
    for (size_t i = 0; i < n; i++)
        g->size[i] = sizes && sizes[i] < UINT32_MAX ? (uint32_t)sizes[i] : 1;
    for (size_t e = 0; e < nedges; e++)
        g->off[from[e] + 1]++;
    for (size_t i = 0; i < n; i++)
        g->off[i + 1] += g->off[i];
    memcpy(fill, g->off, n * sizeof(*fill));
    for (size_t e = 0; e < nedges; e++)
        g->succ[fill[from[e]]++] = to[e];
    g->nedges = nedges;
    free(fill);
    fill = NULL;
    if (ml_refgraph_reverse(g) < 0)
        goto fail;
    return g;
fail:
    free(fill);
    ml_refgraph_free(g);
    return NULL;
}

void
ml_refgraph_free(ml_refgraph *g)
{
    if (!g)
        return;
    free(g->objs);
    free(g->size);
    free(g->big);
    free(g->off);
    free(g->succ);
    free(g->roff);
    free(g->pred);
    if (g->has_rank)
        ml_noderank_release(&g->rank);
    free(g);
}

size_t
ml_refgraph_count(const ml_refgraph *g)
{
    return g->n;
}

size_t
ml_refgraph_edges(const ml_refgraph *g)
{
    return g->nedges;
}

PyObject *
ml_refgraph_object(const ml_refgraph *g, ml_node n)
{
    return g->objs[n];
}

ml_node
ml_refgraph_find(const ml_refgraph *g, PyObject *o)
{
    if (g->has_rank) {
        uint32_t v = ml_noderank_of(&g->rank, (uintptr_t)o);
        return v != UINT32_MAX && g->objs[v] == o ? v : ML_NODE_NONE;
    }
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        PyObject *m = g->objs[mid];
        if (m == o)
            return (ml_node)mid;
        if ((uintptr_t)m < (uintptr_t)o)
            lo = mid + 1;
        else
            hi = mid;
    }
    return ML_NODE_NONE;
}

uint64_t
ml_refgraph_size(const ml_refgraph *g, ml_node n)
{
    if (g->size[n] != UINT32_MAX)
        return g->size[n];
    size_t lo = 0, hi = g->nbig;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->big[mid].node == n)
            return g->big[mid].size;
        if (g->big[mid].node < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return UINT32_MAX;
}

const ml_node *
ml_refgraph_succ(const ml_refgraph *g, ml_node n, size_t *count)
{
    *count = g->off[n + 1] - g->off[n];
    return g->succ + g->off[n];
}

const ml_node *
ml_refgraph_pred(const ml_refgraph *g, ml_node n, size_t *count)
{
    *count = g->roff[n + 1] - g->roff[n];
    return g->pred + g->roff[n];
}

size_t
ml_refgraph_memory(const ml_refgraph *g)
{
    return g->n * (sizeof(*g->objs) + sizeof(*g->size) + sizeof(*g->off) + sizeof(*g->roff)) +
           g->nbig * sizeof(*g->big) + (g->has_rank ? ml_noderank_memory(&g->rank) : 0) +
           g->nedges * (sizeof(*g->succ) + sizeof(*g->pred));
}
