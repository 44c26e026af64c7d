/* refgraph.c: the reference graph of the live heap (see refgraph.h). */
#include "graph/refgraph.h"
#include "heap/heap.h"
#include "heap/objsize.h"
#include "heap/walk.h"

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
    size_t n, cap, nedges, capedges;
};

/* ---- build: pass 1 lists the objects, pass 2 their referents ---- */

typedef struct {
    ml_refgraph *g;
    uint32_t *slots; /* open addressing: node + 1, 0 empty */
    size_t mask;
    int oom;
} ml_refgraph_builder;

static inline size_t
ml_refgraph_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 20);
}

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

static int
ml_refgraph_list_cb(ml_walk *w, PyObject *o, void *arg)
{
    ml_refgraph *g = arg;
    PyTypeObject *tp = Py_TYPE(o);
    /* static types are no one's referent in tp_traverse: reach them too */
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) && ml_walk_reach(w, (PyObject *)tp) < 0)
        return -1;
    if (!PyType_Check(o) && !PyModule_Check(o) && tp != &PyDict_Type) {
        size_t values;
        PyObject *d = ml_compat_instance_dict(o, &values);
        /* 3.13 traverses the inline values, not a dict made from them */
        if (d && ml_walk_reach(w, d) < 0)
            return -1;
    }
    if (g->n + 1 >= UINT32_MAX)
        return -1;
    if (ml_refgraph_grow((void **)&g->objs, &g->cap, g->n + 1, sizeof(*g->objs)) < 0)
        return -1;
    g->objs[g->n++] = o;
    return 0;
}

static int
ml_refgraph_index(ml_refgraph_builder *b)
{
    size_t n = b->g->n, size = 1024;
    while (size < 2 * n)
        size *= 2;
    b->slots = calloc(size, sizeof(*b->slots));
    if (!b->slots)
        return -1;
    b->mask = size - 1;
    for (size_t i = 0; i < n; i++) {
        size_t h = ml_refgraph_hash(b->g->objs[i]) & b->mask;
        while (b->slots[h])
            h = (h + 1) & b->mask;
        b->slots[h] = (uint32_t)i + 1;
    }
    return 0;
}

static inline ml_node
ml_refgraph_lookup(const ml_refgraph_builder *b, PyObject *o)
{
    size_t h = ml_refgraph_hash(o) & b->mask;
    uint32_t s;
    while ((s = b->slots[h])) {
        if (b->g->objs[s - 1] == o)
            return s - 1;
        h = (h + 1) & b->mask;
    }
    return ML_NODE_NONE;
}

/* visitproc: one referent of the object being recorded. */
static int
ml_refgraph_visit(PyObject *o, void *arg)
{
    ml_refgraph_builder *b = arg;
    ml_refgraph *g = b->g;
    if (!o)
        return 0;
    ml_node t = ml_refgraph_lookup(b, o);
    if (t == ML_NODE_NONE)
        return 0; /* memlens' own, or not in the walk */
    if (g->nedges + 1 >= UINT32_MAX ||
        ml_refgraph_grow((void **)&g->succ, &g->capedges, g->nedges + 1, sizeof(*g->succ)) < 0) {
        b->oom = 1;
        return 1;
    }
    g->succ[g->nedges++] = t;
    return 0;
}

/* The referents the walker follows (walk.c): tp_traverse, or the items of
 * an exact dict (keys too), tuple or list read in place; plus what
 * tp_traverse leaves out (str dict keys, heap type names, code contents). */
static void
ml_refgraph_referents(PyObject *o, visitproc visit, void *arg)
{
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyDict_Type) {
        ml_compat_dict_entries e;
        ml_compat_dict_entries_of(o, &e);
        for (size_t i = 0; i < e.n; i++) {
            PyObject *v = e.values[i * e.vstride];
            if (v && (visit(e.keys[i * e.kstride], arg) || visit(v, arg)))
                return;
        }
        return;
    }
    if (tp == &PyTuple_Type || tp == &PyList_Type) {
        PyObject **items = tp == &PyTuple_Type ? ((PyTupleObject *)o)->ob_item : ((PyListObject *)o)->ob_item;
        for (Py_ssize_t i = 0; i < Py_SIZE(o); i++) {
            if (visit(items[i], arg))
                return;
        }
        return;
    }
    if (tp->tp_traverse && PyObject_IS_GC(o) && !ml_compat_traverse_unsafe(o) && tp->tp_traverse(o, visit, arg))
        return;
    if (PyDict_Check(o)) {
        /* a dict subclass: str keys, which dict_traverse skips (a key
         * it visited is then an edge twice: harmless) */
        ml_compat_dict_entries e;
        ml_compat_dict_entries_of(o, &e);
        for (size_t i = 0; i < e.n; i++) {
            if (e.values[i * e.vstride] && PyUnicode_CheckExact(e.keys[i * e.kstride]) &&
                visit(e.keys[i * e.kstride], arg))
                return;
        }
    } else if (PyType_Check(o) && (((PyTypeObject *)o)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyHeapTypeObject *et = (PyHeapTypeObject *)o;
        (void)((et->ht_name && visit(et->ht_name, arg)) || (et->ht_qualname && visit(et->ht_qualname, arg)) ||
               (et->ht_slots && visit(et->ht_slots, arg)));
    } else if (PyCode_Check(o)) {
        ml_compat_code_visit(o, visit, arg);
    }
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

static uint64_t
ml_refgraph_shallow(PyObject *o)
{
    size_t size = 0, values = 0;
    (void)ml_objsize_c(o, &size);
    if (!PyType_Check(o) && !PyModule_Check(o) && Py_TYPE(o) != &PyDict_Type)
        (void)ml_compat_instance_dict(o, &values);
    return (uint64_t)size + values;
}

ml_refgraph *
ml_refgraph_build(void)
{
    ml_refgraph *g = calloc(1, sizeof(*g));
    ml_refgraph_builder b = {g, NULL, 0, 0};
    ml_walk w;
    if (!g)
        return NULL;
    int rc = ml_walk_heap(ml_refgraph_list_cb, g, &w);
    ml_walk_release(&w);
    /* nodes in address order: ml_refgraph_find is then a binary search
     * of objs, with no other array kept */
    if (rc < 0 || ml_heap_sort_ids((uintptr_t *)g->objs, g->n) < 0 || ml_refgraph_index(&b) < 0)
        goto fail;
    g->off = malloc((g->n + 1) * sizeof(*g->off));
    g->size = malloc((g->n ? g->n : 1) * sizeof(*g->size));
    if (!g->off || !g->size)
        goto fail;
    for (size_t i = 0; i < g->n; i++) {
        PyObject *o = g->objs[i];
        g->off[i] = (uint32_t)g->nedges;
        uint64_t size = ml_refgraph_shallow(o);
        g->size[i] = size < UINT32_MAX ? (uint32_t)size : UINT32_MAX;
        if (size >= UINT32_MAX) {
            if (ml_refgraph_grow((void **)&g->big, &g->capbig, g->nbig + 1, sizeof(*g->big)) < 0)
                goto fail;
            g->big[g->nbig++] = (ml_refgraph_big){(ml_node)i, size};
        }
        ml_refgraph_referents(o, ml_refgraph_visit, &b);
        if (b.oom)
            goto fail;
    }
    g->off[g->n] = (uint32_t)g->nedges;
    free(b.slots);
    b.slots = NULL;
    if (ml_refgraph_reverse(g) < 0)
        goto fail;
    return g;
fail:
    free(b.slots);
    ml_refgraph_free(g);
    return NULL;
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
           g->nbig * sizeof(*g->big) +
           g->nedges * (sizeof(*g->succ) + sizeof(*g->pred));
}
