/* graph.c: bindings of the reference graph (graph/): why(), retained
 * sizes, dominators, the neighbourhood pictures, .heapsnapshot.
 *
 * Every call builds the graph, answers, and frees it, all with the GIL
 * held and no Python code run in between (the graph's pointers are
 * borrowed). Objects handed back to Python sit in a GraphHold: an own
 * type of memlens (no walk sees it or follows it), so a result kept in a
 * variable never shows in a later census or path. The data beside it is
 * tuples of str and int, untracked here so the GC lists never hold them.
 */
#include "bind/bind.h"
#include "graph/dominators.h"
#include "graph/heapsnapshot.h"
#include "graph/paths.h"
#include "graph/refgraph.h"
#include "graph/roots.h"
#include "graph/suspects.h"
#include "heap/walk.h"

#include <stdlib.h>
#include <string.h>

/* ---- GraphHold: strong references to objects, invisible to walks ---- */

typedef struct ml_hold_object {
    PyObject_HEAD
    PyObject **objs;
    Py_ssize_t n;
    struct ml_hold_object *prev, *next; /* every live hold (GIL) */
} ml_hold_object;

static ml_hold_object *ml_holds;

/* ml_roots_hidden_fn: what the live holds reference. */
static void
ml_hold_visit_all(visitproc visit, void *arg)
{
    for (ml_hold_object *h = ml_holds; h; h = h->next)
        for (Py_ssize_t i = 0; i < h->n; i++)
            if (h->objs[i])
                visit(h->objs[i], arg);
}

static void
ml_hold_dealloc(PyObject *self)
{
    ml_hold_object *h = (ml_hold_object *)self;
    if (h->prev)
        h->prev->next = h->next;
    else if (ml_holds == h)
        ml_holds = h->next;
    if (h->next)
        h->next->prev = h->prev;
    for (Py_ssize_t i = 0; i < h->n; i++)
        Py_XDECREF(h->objs[i]);
    free(h->objs);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t
ml_hold_len(PyObject *self)
{
    return ((ml_hold_object *)self)->n;
}

static PyObject *
ml_hold_item(PyObject *self, Py_ssize_t i)
{
    ml_hold_object *h = (ml_hold_object *)self;
    if (i < 0 || i >= h->n) {
        PyErr_SetString(PyExc_IndexError, "GraphHold index out of range");
        return NULL;
    }
    return Py_NewRef(h->objs[i]);
}

static PySequenceMethods ml_hold_as_sequence = {.sq_length = ml_hold_len, .sq_item = ml_hold_item};

static PyTypeObject ml_hold_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memlens._engine.GraphHold",
    .tp_basicsize = sizeof(ml_hold_object),
    .tp_dealloc = ml_hold_dealloc,
    .tp_as_sequence = &ml_hold_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Objects of a memlens graph result (no census or path ever sees this holder).",
};

/* A hold of n objects, none stored yet (NULL slots). */
static ml_hold_object *
ml_hold_new(size_t n)
{
    ml_hold_object *h = PyObject_New(ml_hold_object, &ml_hold_type);
    if (!h)
        return NULL;
    h->n = (Py_ssize_t)n;
    h->prev = h->next = NULL;
    h->objs = calloc(n ? n : 1, sizeof(*h->objs));
    if (h->objs) {
        h->next = ml_holds;
        if (ml_holds)
            ml_holds->prev = h;
        ml_holds = h;
    } else {
        h->n = 0;
        Py_DECREF(h);
        PyErr_NoMemory();
        return NULL;
    }
    return h;
}

static void
ml_hold_set(ml_hold_object *h, size_t i, PyObject *o)
{
    h->objs[i] = Py_NewRef(o);
}

/* A tuple built here of str and int only: the GC need not track it. */
static PyObject *
ml_graph_untracked(PyObject *t)
{
    if (t && PyObject_GC_IsTracked(t))
        PyObject_GC_UnTrack(t);
    return t;
}

static PyObject *
ml_graph_edge(PyObject *src, PyObject *dst)
{
    char buf[256];
    size_t len = ml_paths_edge_name(src, dst, buf, sizeof(buf));
    return PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
}

static PyObject *
ml_graph_root_name(const ml_roots *r, size_t i)
{
    char buf[1024];
    size_t len = ml_roots_name(r, i, buf, sizeof(buf));
    return PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
}

/* Build graph + roots. `targets` are never "held by C code" (the
 * caller's own references make their counts exceed what the graph
 * shows); neither are the containers memlens made for this call (`args`,
 * the argument tuple, and `extra`, may be NULL), which are moreover never
 * followed: they are memlens' own, not the program's. path_search: the
 * caller's locals are not roots (roots.h). */
static ml_refgraph *
ml_graph_open(const char *skip, PyObject *const *targets, size_t ntargets, ml_node *tnodes, ml_roots *r,
              PyObject *args, PyObject *extra, int path_search)
{
    ml_roots_skip_caller(path_search);
    ml_node *not_c = malloc((ntargets + 2) * sizeof(*not_c));
    ml_refgraph *g = not_c ? ml_refgraph_build() : NULL;
    if (!g) {
        free(not_c);
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i < ntargets; i++)
        not_c[i] = tnodes[i] = ml_refgraph_find(g, targets[i]);
    not_c[ntargets] = ml_refgraph_find(g, args);
    not_c[ntargets + 1] = extra ? ml_refgraph_find(g, extra) : ML_NODE_NONE;
    int rc = ml_roots_find(g, skip, not_c, ntargets + 2, r);
    ml_roots_skip_caller(0);
    if (rc == 0) {
        for (size_t i = ntargets; i < ntargets + 2; i++)
            if (not_c[i] != ML_NODE_NONE)
                r->excluded[not_c[i]] = 1;
    }
    free(not_c);
    if (rc < 0) {
        ml_refgraph_free(g);
        PyErr_NoMemory();
        return NULL;
    }
    return g;
}

/* ---- why ---- */

static PyObject *
ml_graph_why_py(PyObject *self, PyObject *args)
{
    PyObject *obj;
    Py_ssize_t max_paths, max_depth;
    const char *skip;
    if (!PyArg_ParseTuple(args, "Onns:graph_why", &obj, &max_paths, &max_depth, &skip))
        return NULL;
    ml_roots r;
    ml_node target;
    ml_refgraph *g = ml_graph_open(skip, &obj, 1, &target, &r, args, NULL, 1);
    if (!g)
        return NULL;
    PyObject *result = NULL;
    ml_path *paths = NULL;
    size_t np = 0;
    if (target == ML_NODE_NONE) {
        result = Py_BuildValue("(OO)", Py_None, Py_None);
        goto done;
    }
    if (ml_paths_find(g, &r, target, max_paths > 0 ? (size_t)max_paths : 1, max_depth > 0 ? (size_t)max_depth : 0,
                      &paths, &np) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    size_t total = 0;
    for (size_t i = 0; i < np; i++)
        total += paths[i].len;
    ml_hold_object *hold = ml_hold_new(total);
    PyObject *meta = hold ? PyTuple_New((Py_ssize_t)np) : NULL;
    if (!meta) {
        Py_XDECREF(hold);
        goto done;
    }
    size_t at = 0;
    for (size_t i = 0; i < np; i++) {
        const ml_path *p = &paths[i];
        const ml_root *root = &r.roots[p->root];
        PyObject *edges = PyTuple_New((Py_ssize_t)(p->len - 1));
        for (size_t k = 0; edges && k + 1 < p->len; k++) {
            PyObject *e = ml_graph_edge(ml_refgraph_object(g, p->nodes[k]), ml_refgraph_object(g, p->nodes[k + 1]));
            if (!e) {
                Py_CLEAR(edges);
                break;
            }
            PyTuple_SET_ITEM(edges, (Py_ssize_t)k, e);
        }
        PyObject *t = edges ? Py_BuildValue("(iNknnN)", root->kind, ml_graph_root_name(&r, p->root),
                                            root->kind == ML_ROOT_LOCAL ? root->thread : 0UL, (Py_ssize_t)at,
                                            (Py_ssize_t)p->len, ml_graph_untracked(edges))
                            : NULL;
        if (!t) {
            Py_DECREF(meta);
            Py_DECREF(hold);
            goto done;
        }
        PyTuple_SET_ITEM(meta, (Py_ssize_t)i, ml_graph_untracked(t));
        for (size_t k = 0; k < p->len; k++)
            ml_hold_set(hold, at++, ml_refgraph_object(g, p->nodes[k]));
    }
    result = Py_BuildValue("(NN)", ml_graph_untracked(meta), (PyObject *)hold);
done:
    ml_paths_free(paths, np);
    ml_roots_release(&r);
    ml_refgraph_free(g);
    return result;
}

/* ---- retained sizes of given objects ---- */

static PyObject *
ml_graph_retained_py(PyObject *self, PyObject *args)
{
    PyObject *objs;
    const char *skip;
    if (!PyArg_ParseTuple(args, "O!s:graph_retained", &PyTuple_Type, &objs, &skip))
        return NULL;
    size_t n = (size_t)PyTuple_GET_SIZE(objs);
    ml_node *nodes = malloc((n ? n : 1) * sizeof(*nodes));
    if (!nodes)
        return PyErr_NoMemory();
    ml_roots r;
    ml_refgraph *g = ml_graph_open(skip, &PyTuple_GET_ITEM(objs, 0), n, nodes, &r, args, objs, 0);
    PyObject *result = NULL;
    if (!g)
        goto free_nodes;
    ml_domtree t;
    if (ml_dominators_compute(g, &r, &t) < 0) {
        PyErr_NoMemory();
        goto free_graph;
    }
    result = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; result && i < n; i++) {
        PyObject *v = nodes[i] == ML_NODE_NONE ? PyLong_FromLong(-1)
                                               : PyLong_FromUnsignedLongLong(t.retained[nodes[i]]);
        if (!v) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, (Py_ssize_t)i, v);
    }
    ml_domtree_release(&t);
free_graph:
    ml_roots_release(&r);
    ml_refgraph_free(g);
free_nodes:
    free(nodes);
    return result;
}

/* ---- the whole heap: retained per census row, top dominators, suspects ---- */

/* Census row of each node, as heap.c names rows: (type, what) with what
 * 0 objects, 1 dict of class, 2 dict of module, 3 dict of type. */
typedef struct {
    PyTypeObject **tp;
    uint8_t *what;
    size_t n, cap;
} ml_graph_rows;

static int64_t
ml_graph_row_of(ml_graph_rows *rows, PyTypeObject *tp, uint8_t what)
{
    for (size_t i = 0; i < rows->n; i++) /* few rows; a linear scan per new (type, what) below */
        if (rows->tp[i] == tp && rows->what[i] == what)
            return (int64_t)i;
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 256;
        PyTypeObject **a = realloc(rows->tp, cap * sizeof(*a));
        if (!a)
            return -1;
        rows->tp = a;
        uint8_t *b = realloc(rows->what, cap);
        if (!b)
            return -1;
        rows->what = b;
        rows->cap = cap;
    }
    rows->tp[rows->n] = tp;
    rows->what[rows->n] = what;
    return (int64_t)rows->n++;
}

/* type_of[v] for every node; dicts get their owner's row. */
static int
ml_graph_classify(const ml_refgraph *g, ml_graph_rows *rows, uint32_t *type_of)
{
    size_t n = ml_refgraph_count(g);
    /* direct-mapped cache: exact type -> object row */
    struct {
        PyTypeObject *tp;
        uint32_t row;
    } cache[256];
    memset(cache, 0, sizeof(cache));
    for (size_t v = 0; v < n; v++) {
        PyTypeObject *tp = Py_TYPE(ml_refgraph_object(g, (ml_node)v));
        size_t h = ((uintptr_t)tp >> 4) & 255;
        if (cache[h].tp != tp) {
            int64_t row = ml_graph_row_of(rows, tp, 0);
            if (row < 0)
                return -1;
            cache[h].tp = tp;
            cache[h].row = (uint32_t)row;
        }
        type_of[v] = cache[h].row;
    }
    /* owned dicts: a dict node right after its owner among the owner's
     * successors; look each owner's dict up among its successors */
    for (size_t v = 0; v < n; v++) {
        PyObject *o = ml_refgraph_object(g, (ml_node)v);
        PyObject *d = NULL;
        uint8_t what;
        PyTypeObject *tp = Py_TYPE(o);
        if (tp == &PyDict_Type)
            continue;
        if (PyModule_Check(o)) {
            d = PyModule_GetDict(o);
            what = 2;
        } else if (PyType_Check(o)) {
            d = ml_compat_type_dict((PyTypeObject *)o);
            what = 3;
        } else {
            size_t values;
            d = ml_compat_instance_dict(o, &values);
            what = 1;
        }
        if (!d || !PyDict_CheckExact(d))
            continue;
        size_t c;
        const ml_node *s = ml_refgraph_succ(g, (ml_node)v, &c);
        for (size_t e = 0; e < c; e++) {
            if (ml_refgraph_object(g, s[e]) != d)
                continue;
            int64_t row = ml_graph_row_of(rows, what == 1 ? tp : &PyDict_Type, what);
            if (row < 0)
                return -1;
            type_of[s[e]] = (uint32_t)row;
            break;
        }
    }
    return 0;
}

static const char *const ml_graph_what_names[] = {"objects", "dict of class", "dict of module", "dict of type"};

/* What node v retains, by census row: the 3 rows with most bytes. */
static PyObject *
ml_graph_breakdown(const ml_refgraph *g, const ml_domtree *t, const uint32_t *type_of, const ml_graph_rows *rows,
                   ml_node v)
{
    ml_node *sub;
    size_t ns;
    if (ml_dominators_subtree(t, v, &sub, &ns) < 0)
        return PyErr_NoMemory();
    uint64_t *bytes = calloc(rows->n, sizeof(*bytes)), *count = calloc(rows->n, sizeof(*count));
    PyObject *list = NULL;
    if (!bytes || !count) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < ns; i++) {
        bytes[type_of[sub[i]]] += ml_refgraph_size(g, sub[i]);
        count[type_of[sub[i]]]++;
    }
    list = PyList_New(0);
    for (int k = 0; list && k < 3; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < rows->n; i++)
            if (count[i] && (best == SIZE_MAX || bytes[i] > bytes[best]))
                best = i;
        if (best == SIZE_MAX)
            break;
        PyObject *row = Py_BuildValue("(OsKK)", (PyObject *)rows->tp[best], ml_graph_what_names[rows->what[best]],
                                      (unsigned long long)count[best], (unsigned long long)bytes[best]);
        if (!row || PyList_Append(list, row) < 0) {
            Py_XDECREF(row);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(row);
        count[best] = 0;
    }
done:
    free(sub);
    free(bytes);
    free(count);
    return list;
}

/* ---- class leak suspects (Eclipse MAT's "many instances of one class") ---- */

#define ML_GRAPH_MAX_CLASS_SUSPECTS 16

/* The module name of node v when a root names it ("module X"), else None. */
static PyObject *
ml_graph_node_root_name(const ml_roots *r, ml_node v)
{
    for (size_t j = 0; j < r->named; j++)
        if (r->roots[j].node == v)
            return ml_graph_root_name(r, j);
    return Py_NewRef(Py_None);
}

/* (rows, hold): per class suspect (tp, what, count, top, retained,
 * point_retained, (point_tp, point_what) | None, point_root_name | None);
 * hold[i] = the accumulation point (None when there is none). Only object
 * rows are classes (a class's instance dicts go with the class). */
static PyObject *
ml_graph_class_suspects(const ml_refgraph *g, const ml_roots *r, const ml_domtree *t, const uint32_t *type_of,
                        const ml_graph_rows *rows, double threshold)
{
    ml_class_suspect found[ML_GRAPH_MAX_CLASS_SUSPECTS];
    uint8_t *eligible = malloc(rows->n ? rows->n : 1);
    if (!eligible)
        return PyErr_NoMemory();
    for (size_t i = 0; i < rows->n; i++)
        eligible[i] = rows->what[i] == 0;
    int k = ml_suspects_classes(t, type_of, rows->n, eligible, threshold, 0.8, found, ML_GRAPH_MAX_CLASS_SUSPECTS);
    free(eligible);
    if (k < 0)
        return PyErr_NoMemory();
    ml_hold_object *hold = ml_hold_new((size_t)k);
    PyObject *list = hold ? PyList_New(k) : NULL;
    for (int i = 0; list && i < k; i++) {
        const ml_class_suspect *s = &found[i];
        PyObject *point = Py_NewRef(Py_None), *pname = Py_NewRef(Py_None);
        if (s->point != ML_NODE_NONE) {
            Py_SETREF(point, Py_BuildValue("(Os)", (PyObject *)rows->tp[type_of[s->point]],
                                           ml_graph_what_names[rows->what[type_of[s->point]]]));
            Py_SETREF(pname, ml_graph_node_root_name(r, s->point));
            ml_hold_set(hold, (size_t)i, ml_refgraph_object(g, s->point));
        } else {
            ml_hold_set(hold, (size_t)i, Py_None);
        }
        PyObject *row = NULL;
        if (point && pname) { /* "N": both are consumed, also on failure */
            row = Py_BuildValue("(OsKKKKNN)", (PyObject *)rows->tp[s->type], ml_graph_what_names[rows->what[s->type]],
                                (unsigned long long)s->count, (unsigned long long)s->top,
                                (unsigned long long)s->retained, (unsigned long long)s->point_share, point, pname);
        } else {
            Py_XDECREF(point);
            Py_XDECREF(pname);
        }
        if (!row) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, row);
    }
    PyObject *result = list ? Py_BuildValue("(NO)", list, (PyObject *)hold) : NULL;
    Py_XDECREF(hold);
    return result;
}

static PyObject *
ml_graph_heap_py(PyObject *self, PyObject *args)
{
    const char *skip;
    Py_ssize_t top;
    double threshold;
    if (!PyArg_ParseTuple(args, "snd:graph_heap", &skip, &top, &threshold))
        return NULL;
    ml_roots r;
    ml_refgraph *g = ml_graph_open(skip, NULL, 0, NULL, &r, args, NULL, 0);
    if (!g)
        return NULL;
    size_t n = ml_refgraph_count(g);
    PyObject *result = NULL, *rowlist = NULL, *tops = NULL;
    ml_graph_rows rows = {0};
    uint32_t *type_of = malloc((n ? n : 1) * sizeof(*type_of));
    uint64_t *by_row = NULL;
    ml_node *best = malloc(((size_t)top > 0 ? (size_t)top : 1) * sizeof(*best));
    ml_hold_object *hold = NULL;
    ml_domtree t;
    memset(&t, 0, sizeof(t));
    if (!type_of || !best || ml_dominators_compute(g, &r, &t) < 0 || ml_graph_classify(g, &rows, type_of) < 0 ||
        !(by_row = malloc((rows.n ? rows.n : 1) * sizeof(*by_row))) ||
        ml_dominators_by_type(&t, type_of, rows.n, by_row) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    rowlist = PyList_New((Py_ssize_t)rows.n);
    for (size_t i = 0; rowlist && i < rows.n; i++) {
        PyObject *row = Py_BuildValue("(OsK)", (PyObject *)rows.tp[i], ml_graph_what_names[rows.what[i]],
                                      (unsigned long long)by_row[i]);
        if (!row) {
            Py_CLEAR(rowlist);
            break;
        }
        PyList_SET_ITEM(rowlist, (Py_ssize_t)i, row);
    }
    if (!rowlist)
        goto done;
    /* the top dominators (children of the virtual root), each with its
     * accumulation point and what it retains */
    size_t k = ml_dominators_top(&t, top > 0 ? (size_t)top : 0, best);
    hold = ml_hold_new(2 * k);
    tops = hold ? PyList_New((Py_ssize_t)k) : NULL;
    for (size_t i = 0; tops && i < k; i++) {
        ml_node v = best[i], acc = ml_dominators_accumulation(&t, v, 0.8);
        ml_hold_set(hold, 2 * i, ml_refgraph_object(g, v));
        ml_hold_set(hold, 2 * i + 1, ml_refgraph_object(g, acc));
        PyObject *rootname = NULL;
        for (size_t j = 0; j < r.named && !rootname; j++)
            if (r.roots[j].node == v)
                rootname = ml_graph_root_name(&r, j);
        if (!rootname)
            rootname = Py_NewRef(Py_None);
        PyObject *row = Py_BuildValue("(OsKKNKNN)", (PyObject *)rows.tp[type_of[v]],
                                      ml_graph_what_names[rows.what[type_of[v]]], (unsigned long long)t.retained[v],
                                      (unsigned long long)ml_refgraph_size(g, v), rootname,
                                      (unsigned long long)t.retained[acc],
                                      Py_BuildValue("(Os)", (PyObject *)rows.tp[type_of[acc]],
                                                    ml_graph_what_names[rows.what[type_of[acc]]]),
                                      ml_graph_breakdown(g, &t, type_of, &rows, v));
        if (!row) {
            Py_CLEAR(tops);
            break;
        }
        PyList_SET_ITEM(tops, (Py_ssize_t)i, row);
    }
    if (!tops)
        goto done;
    PyObject *classes = ml_graph_class_suspects(g, &r, &t, type_of, &rows, threshold);
    if (!classes)
        goto done;
    result = Py_BuildValue("{sOsOsOsKsKsKsKsN}", "rows", rowlist, "top", tops, "hold", (PyObject *)hold,
                           "total", (unsigned long long)t.total, "count", (unsigned long long)n,
                           "edges", (unsigned long long)ml_refgraph_edges(g),
                           "graph_bytes", (unsigned long long)ml_refgraph_memory(g), "classes", classes);
done:
    Py_XDECREF(rowlist);
    Py_XDECREF(tops);
    Py_XDECREF(hold);
    free(rows.tp);
    free(rows.what);
    free(type_of);
    free(by_row);
    free(best);
    ml_domtree_release(&t);
    ml_roots_release(&r);
    ml_refgraph_free(g);
    return result;
}

/* ---- .heapsnapshot ---- */

static PyObject *
ml_graph_heapsnapshot_py(PyObject *self, PyObject *args)
{
    int fd;
    const char *skip;
    if (!PyArg_ParseTuple(args, "is:graph_heapsnapshot", &fd, &skip))
        return NULL;
    ml_roots r;
    ml_refgraph *g = ml_graph_open(skip, NULL, 0, NULL, &r, args, NULL, 0);
    if (!g)
        return NULL;
    PyObject *result = NULL;
    ml_domtree t;
    if (ml_dominators_compute(g, &r, &t) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (ml_heapsnapshot_write(fd, g, &r, &t) < 0)
        PyErr_SetFromErrno(PyExc_OSError);
    else
        result = Py_BuildValue("{sKsKsK}", "count", (unsigned long long)ml_refgraph_count(g), "edges",
                               (unsigned long long)ml_refgraph_edges(g), "total", (unsigned long long)t.total);
    ml_domtree_release(&t);
done:
    ml_roots_release(&r);
    ml_refgraph_free(g);
    return result;
}

/* ---- the neighbourhood of one object (refs / backrefs pictures) ---- */

static PyObject *
ml_graph_neighbourhood_py(PyObject *self, PyObject *args)
{
    PyObject *obj;
    Py_ssize_t depth, max_items;
    int backward;
    const char *skip;
    if (!PyArg_ParseTuple(args, "Onpns:graph_neighbourhood", &obj, &depth, &backward, &max_items, &skip))
        return NULL;
    ml_roots r;
    ml_node target;
    ml_refgraph *g = ml_graph_open(skip, &obj, 1, &target, &r, args, NULL, 1);
    if (!g)
        return NULL;
    size_t n = ml_refgraph_count(g);
    PyObject *result = NULL, *edges = NULL, *nodes = NULL;
    uint32_t *seen = NULL; /* node -> index in the picture + 1 */
    ml_node *queue = NULL;
    uint32_t *dist = NULL;
    ml_hold_object *hold = NULL;
    if (target == ML_NODE_NONE) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    seen = calloc(n, sizeof(*seen));
    queue = malloc(n * sizeof(*queue));
    dist = malloc(n * sizeof(*dist));
    edges = PyList_New(0);
    nodes = PyList_New(0);
    if (!seen || !queue || !dist || !edges || !nodes) {
        PyErr_NoMemory();
        goto done;
    }
    size_t head = 0, tail = 0;
    queue[tail++] = target;
    seen[target] = 1;
    dist[0] = 0;
    while (head < tail) {
        size_t qi = head++;
        ml_node v = queue[qi];
        size_t c = 0;
        const ml_node *nb = NULL;
        if ((size_t)dist[qi] < (size_t)depth && !r.excluded[v])
            nb = backward ? ml_refgraph_pred(g, v, &c) : ml_refgraph_succ(g, v, &c);
        size_t shown = 0, omitted = 0;
        for (size_t e = 0; e < c; e++) {
            ml_node u = nb[e];
            if (r.excluded[u])
                continue;
            if (shown >= (size_t)max_items) {
                omitted++; /* not named: naming scans the container */
                continue;
            }
            PyObject *src = ml_refgraph_object(g, backward ? u : v), *dst = ml_refgraph_object(g, backward ? v : u);
            PyObject *name = ml_graph_edge(src, dst);
            if (!name)
                goto done;
            /* a str or int dict key is already the edge's name */
            if ((PyUnicode_CheckExact(dst) || PyLong_CheckExact(dst)) &&
                PyUnicode_CompareWithASCIIString(name, "(key)") == 0) {
                Py_DECREF(name);
                continue;
            }
            if (!seen[u]) {
                seen[u] = (uint32_t)tail + 1;
                dist[tail] = dist[qi] + 1;
                queue[tail++] = u;
            }
            shown++;
            PyObject *edge = Py_BuildValue("(IIN)", backward ? seen[u] - 1 : (unsigned)qi,
                                           backward ? (unsigned)qi : seen[u] - 1, name);
            if (!edge || PyList_Append(edges, edge) < 0) {
                Py_XDECREF(edge);
                goto done;
            }
            Py_DECREF(edge);
        }
        /* size, omitted neighbours, root name (backward pictures end there) */
        PyObject *rootname = NULL;
        for (size_t j = 0; backward && j < r.named && !rootname; j++)
            if (r.roots[j].node == v)
                rootname = ml_graph_root_name(&r, j);
        PyObject *node = Py_BuildValue("(KnN)", (unsigned long long)ml_refgraph_size(g, v), (Py_ssize_t)omitted,
                                       rootname ? rootname : Py_NewRef(Py_None));
        if (!node || PyList_Append(nodes, node) < 0) {
            Py_XDECREF(node);
            goto done;
        }
        Py_DECREF(node);
    }
    hold = ml_hold_new(tail);
    if (!hold)
        goto done;
    for (size_t i = 0; i < tail; i++)
        ml_hold_set(hold, i, ml_refgraph_object(g, queue[i]));
    PyObject *tn = PySequence_Tuple(nodes), *te = PySequence_Tuple(edges);
    if (tn && te) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tn); i++)
            ml_graph_untracked(PyTuple_GET_ITEM(tn, i));
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(te); i++)
            ml_graph_untracked(PyTuple_GET_ITEM(te, i));
        result = Py_BuildValue("(NNO)", ml_graph_untracked(tn), ml_graph_untracked(te), (PyObject *)hold);
    } else {
        Py_XDECREF(tn);
        Py_XDECREF(te);
    }
done:
    Py_XDECREF(hold);
    Py_XDECREF(edges);
    Py_XDECREF(nodes);
    free(seen);
    free(queue);
    free(dist);
    ml_roots_release(&r);
    ml_refgraph_free(g);
    return result;
}

/* ---- objgraph parity: leaking objects, backward search, by type ---- */

static PyObject *
ml_graph_leaking_py(PyObject *self, PyObject *args)
{
    const char *skip;
    if (!PyArg_ParseTuple(args, "s:graph_leaking", &skip))
        return NULL;
    ml_roots r;
    ml_refgraph *g = ml_graph_open(skip, NULL, 0, NULL, &r, args, NULL, 0);
    if (!g)
        return NULL;
    size_t n = ml_refgraph_count(g);
    uint8_t *named = calloc(n ? n : 1, 1);
    PyObject *list = named ? PyList_New(0) : PyErr_NoMemory();
    for (size_t i = 0; named && i < r.named; i++)
        named[r.roots[i].node] = 1;
    for (size_t v = 0; list && v < n; v++) {
        size_t c = 0;
        const ml_node *p = ml_refgraph_pred(g, (ml_node)v, &c);
        size_t live = 0;
        for (size_t e = 0; e < c; e++)
            live += !r.excluded[p[e]];
        PyObject *o = ml_refgraph_object(g, (ml_node)v);
        /* no referrer, not a named root, a GC object as objgraph asks
         * (not a type: static types have none) */
        if (live || named[v] || r.excluded[v] || !PyObject_IS_GC(o) || PyType_Check(o))
            continue;
        if (PyList_Append(list, o) < 0)
            Py_CLEAR(list);
    }
    free(named);
    ml_roots_release(&r);
    ml_refgraph_free(g);
    return list;
}

static PyObject *
ml_graph_backward_py(PyObject *self, PyObject *args)
{
    PyObject *obj;
    Py_ssize_t max_depth;
    const char *skip;
    if (!PyArg_ParseTuple(args, "Ons:graph_backward", &obj, &max_depth, &skip))
        return NULL;
    ml_roots r;
    ml_node target;
    ml_refgraph *g = ml_graph_open(skip, &obj, 1, &target, &r, args, NULL, 1);
    if (!g)
        return NULL;
    size_t n = ml_refgraph_count(g);
    PyObject *result = NULL, *parents = NULL;
    uint32_t *index = calloc(n ? n : 1, sizeof(*index));
    ml_node *queue = malloc((n ? n : 1) * sizeof(*queue));
    uint32_t *par = malloc((n ? n : 1) * sizeof(*par)), *dist = malloc((n ? n : 1) * sizeof(*dist));
    if (!index || !queue || !par || !dist) {
        PyErr_NoMemory();
        goto done;
    }
    if (target == ML_NODE_NONE) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    size_t head = 0, tail = 0;
    queue[tail] = target;
    par[tail] = UINT32_MAX;
    dist[tail++] = 0;
    index[target] = 1;
    while (head < tail) {
        size_t qi = head++;
        if (max_depth > 0 && dist[qi] >= (size_t)max_depth)
            continue;
        size_t c;
        const ml_node *p = ml_refgraph_pred(g, queue[qi], &c);
        for (size_t e = 0; e < c; e++) {
            ml_node u = p[e];
            if (index[u] || r.excluded[u])
                continue;
            index[u] = (uint32_t)tail + 1;
            queue[tail] = u;
            par[tail] = (uint32_t)qi;
            dist[tail++] = dist[qi] + 1;
        }
    }
    ml_hold_object *hold = ml_hold_new(tail);
    parents = hold ? PyTuple_New((Py_ssize_t)tail) : NULL;
    for (size_t i = 0; parents && i < tail; i++) {
        ml_hold_set(hold, i, ml_refgraph_object(g, queue[i]));
        PyTuple_SET_ITEM(parents, (Py_ssize_t)i, PyLong_FromLong(par[i] == UINT32_MAX ? -1 : (long)par[i]));
    }
    if (parents)
        result = Py_BuildValue("(NN)", ml_graph_untracked(parents), (PyObject *)hold);
    else
        Py_XDECREF(hold);
done:
    free(index);
    free(queue);
    free(par);
    free(dist);
    ml_roots_release(&r);
    ml_refgraph_free(g);
    return result;
}

typedef struct {
    PyObject *types; /* tuple */
    PyObject *list;
    uint64_t count;
    int want;
} ml_graph_oftype;

static int
ml_graph_oftype_cb(ml_walk *w, PyObject *o, void *arg)
{
    ml_graph_oftype *s = arg;
    PyTypeObject *tp = Py_TYPE(o);
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) && ml_walk_reach(w, (PyObject *)tp) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(s->types); i++) {
        if ((PyObject *)tp == PyTuple_GET_ITEM(s->types, i)) {
            s->count++;
            if (s->want && PyList_Append(s->list, o) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

/* Objects of exactly these types (a list), or how many (want=0). The
 * list's own appends run no Python code. */
static PyObject *
ml_graph_of_types_py(PyObject *self, PyObject *args)
{
    PyObject *types;
    int want;
    if (!PyArg_ParseTuple(args, "O!p:graph_of_types", &PyTuple_Type, &types, &want))
        return NULL;
    ml_graph_oftype s = {types, want ? PyList_New(0) : NULL, 0, want};
    if (want && !s.list)
        return NULL;
    /* the list grows during the walk: untracked until the walk ends, so the
     * GC lists the walk reads never change under it */
    if (s.list)
        PyObject_GC_UnTrack(s.list);
    ml_walk w;
    int rc = ml_walk_heap(ml_graph_oftype_cb, &s, &w);
    ml_walk_release(&w);
    if (rc < 0) {
        Py_XDECREF(s.list);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    if (!want)
        return PyLong_FromUnsignedLongLong(s.count);
    PyObject_GC_Track(s.list);
    return s.list;
}

/* ---- the algorithms on a given graph (tests) ---- */

static int
ml_graph_u32s(PyObject *seq, uint32_t **out, size_t *n, size_t limit)
{
    PyObject *fast = PySequence_Fast(seq, "a sequence of ints is required");
    if (!fast)
        return -1;
    *n = (size_t)PySequence_Fast_GET_SIZE(fast);
    *out = malloc((*n ? *n : 1) * sizeof(**out));
    if (!*out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        unsigned long v = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i));
        if (PyErr_Occurred() || v >= limit) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "node number out of range");
            free(*out);
            Py_DECREF(fast);
            return -1;
        }
        (*out)[i] = (uint32_t)v;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *
ml_graph_dominators_test_py(PyObject *self, PyObject *args)
{
    Py_ssize_t n;
    PyObject *from_o, *to_o, *roots_o;
    if (!PyArg_ParseTuple(args, "nOOO:graph_dominators_test", &n, &from_o, &to_o, &roots_o))
        return NULL;
    if (n < 0 || n >= (Py_ssize_t)UINT32_MAX - 1)
        return PyErr_Format(PyExc_ValueError, "bad node count");
    uint32_t *from = NULL, *to = NULL, *roots = NULL;
    size_t nf, nt, nr;
    PyObject *result = NULL;
    if (ml_graph_u32s(from_o, &from, &nf, (size_t)n) < 0)
        return NULL;
    if (ml_graph_u32s(to_o, &to, &nt, (size_t)n) < 0)
        goto free_from;
    if (ml_graph_u32s(roots_o, &roots, &nr, (size_t)n) < 0)
        goto free_to;
    if (nf != nt) {
        PyErr_SetString(PyExc_ValueError, "from and to differ in length");
        goto free_roots;
    }
    ml_refgraph *g = ml_refgraph_from_edges((size_t)n, from, to, nf, NULL);
    ml_roots r;
    ml_domtree t;
    if (!g || ml_roots_given(g, roots, nr, &r) < 0) {
        ml_refgraph_free(g);
        PyErr_NoMemory();
        goto free_roots;
    }
    if (ml_dominators_compute(g, &r, &t) == 0) {
        PyObject *idom = PyList_New(n), *ret = PyList_New(n);
        for (Py_ssize_t i = 0; idom && ret && i < n; i++) {
            PyList_SET_ITEM(idom, i, PyLong_FromLong(t.idom[i] == ML_NODE_NONE ? -1 : (long)t.idom[i]));
            PyList_SET_ITEM(ret, i, PyLong_FromUnsignedLongLong(t.retained[i]));
        }
        if (idom && ret)
            result = Py_BuildValue("(NN)", idom, ret);
        else {
            Py_XDECREF(idom);
            Py_XDECREF(ret);
        }
        ml_domtree_release(&t);
    } else {
        PyErr_NoMemory();
    }
    ml_roots_release(&r);
    ml_refgraph_free(g);
free_roots:
    free(roots);
free_to:
    free(to);
free_from:
    free(from);
    return result;
}

/* Untrack a tuple memlens built whose items are all untracked (nested
 * tuples untracked first): no census then meets it on the GC lists. */
static int
ml_graph_untrack_tree(PyObject *o)
{
    if (!PyObject_IS_GC(o) || !PyObject_GC_IsTracked(o))
        return 1;
    if (!PyTuple_CheckExact(o))
        return 0;
    int all = 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++)
        all &= ml_graph_untrack_tree(PyTuple_GET_ITEM(o, i));
    if (all)
        PyObject_GC_UnTrack(o);
    return all;
}

static PyObject *
ml_graph_untrack_py(PyObject *self, PyObject *o)
{
    return PyBool_FromLong(ml_graph_untrack_tree(o));
}

/* graph_suspects_test(n, from, to, roots, sizes, types, ntypes, threshold)
 * -> [(type, count, top, retained, point | -1, point_share)]: the class
 * suspects of a given graph (tests; every type eligible, share 0.8). */
static PyObject *
ml_graph_suspects_test_py(PyObject *self, PyObject *args)
{
    Py_ssize_t n, ntypes;
    double threshold;
    PyObject *seqs[5];
    if (!PyArg_ParseTuple(args, "nOOOOOnd:graph_suspects_test", &n, &seqs[0], &seqs[1], &seqs[2], &seqs[3],
                          &seqs[4], &ntypes, &threshold))
        return NULL;
    if (n < 0 || n >= (Py_ssize_t)UINT32_MAX - 1 || ntypes <= 0 || ntypes > 1 << 20)
        return PyErr_Format(PyExc_ValueError, "bad node or type count");
    uint32_t *a[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t len[5];
    size_t limits[5] = {(size_t)n, (size_t)n, (size_t)n, (size_t)1 << 30, (size_t)ntypes};
    PyObject *result = NULL;
    uint64_t *sizes = NULL;
    ml_refgraph *g = NULL;
    for (int i = 0; i < 5; i++)
        if (ml_graph_u32s(seqs[i], &a[i], &len[i], limits[i]) < 0)
            goto free_arrays;
    if (len[0] != len[1] || len[3] != (size_t)n || len[4] != (size_t)n) {
        PyErr_SetString(PyExc_ValueError, "from/to, sizes/types lengths differ");
        goto free_arrays;
    }
    sizes = malloc((n ? (size_t)n : 1) * sizeof(*sizes));
    for (Py_ssize_t i = 0; sizes && i < n; i++)
        sizes[i] = a[3][i];
    g = sizes ? ml_refgraph_from_edges((size_t)n, a[0], a[1], len[0], sizes) : NULL;
    ml_roots r;
    ml_domtree t;
    if (!g || ml_roots_given(g, a[2], len[2], &r) < 0) {
        PyErr_NoMemory();
        goto free_arrays;
    }
    ml_class_suspect found[ML_GRAPH_MAX_CLASS_SUSPECTS];
    int k = -1;
    if (ml_dominators_compute(g, &r, &t) == 0) {
        k = ml_suspects_classes(&t, a[4], (size_t)ntypes, NULL, threshold, 0.8, found, ML_GRAPH_MAX_CLASS_SUSPECTS);
        ml_domtree_release(&t);
    }
    ml_roots_release(&r);
    if (k < 0) {
        PyErr_NoMemory();
        goto free_arrays;
    }
    result = PyList_New(k);
    for (int i = 0; result && i < k; i++) {
        const ml_class_suspect *c = &found[i];
        PyObject *row = Py_BuildValue("(IKKKlK)", c->type, (unsigned long long)c->count, (unsigned long long)c->top,
                                      (unsigned long long)c->retained,
                                      c->point == ML_NODE_NONE ? -1L : (long)c->point,
                                      (unsigned long long)c->point_share);
        if (!row)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, i, row);
    }
free_arrays:
    ml_refgraph_free(g);
    free(sizes);
    for (int i = 0; i < 5; i++)
        free(a[i]);
    return result;
}

int
ml_bind_graph_init(PyObject *m)
{
    if (PyType_Ready(&ml_hold_type) < 0 || ml_walk_add_own_type(&ml_hold_type) < 0)
        return -1;
    ml_roots_set_hidden(ml_hold_visit_all);
    return 0;
}

/* The calls that walk the live heap keep borrowed pointers to every object
 * they met until their result holds its own references. Allocating that
 * result may start a collection, which would free the unreachable cycles
 * the walk met (and a GraphHold would then take a reference to freed
 * memory: a 3.10 test suite crashed so). The collector is off for the
 * call, as for memlens.cycles() (bind/gc.c). */
#define ML_GRAPH_NOGC(fn)                                                                          \
    static PyObject *fn##_nogc(PyObject *self, PyObject *args)                                     \
    {                                                                                              \
        int was = PyGC_Disable();                                                                  \
        PyObject *r = fn(self, args);                                                              \
        if (was)                                                                                   \
            PyGC_Enable();                                                                         \
        return r;                                                                                  \
    }
ML_GRAPH_NOGC(ml_graph_why_py)
ML_GRAPH_NOGC(ml_graph_retained_py)
ML_GRAPH_NOGC(ml_graph_heap_py)
ML_GRAPH_NOGC(ml_graph_heapsnapshot_py)
ML_GRAPH_NOGC(ml_graph_neighbourhood_py)
ML_GRAPH_NOGC(ml_graph_leaking_py)
ML_GRAPH_NOGC(ml_graph_backward_py)
ML_GRAPH_NOGC(ml_graph_of_types_py)

PyMethodDef ml_bind_graph_methods[] = {
    {"graph_why", ml_graph_why_py_nogc, METH_VARARGS,
     "graph_why(obj, max_paths, max_depth, skip_prefix) -> (paths, hold) | (None, None)."},
    {"graph_retained", ml_graph_retained_py_nogc, METH_VARARGS,
     "graph_retained(objs, skip_prefix) -> tuple of retained bytes (-1: not in the heap graph)."},
    {"graph_heap", ml_graph_heap_py_nogc, METH_VARARGS,
     "graph_heap(skip_prefix, top, threshold) -> dict: retained per census row, top dominators, class suspects "
     "(classes retaining >= threshold)."},
    {"graph_heapsnapshot", ml_graph_heapsnapshot_py_nogc, METH_VARARGS,
     "graph_heapsnapshot(fd, skip_prefix) -> dict: write the heap as a V8 .heapsnapshot."},
    {"graph_neighbourhood", ml_graph_neighbourhood_py_nogc, METH_VARARGS,
     "graph_neighbourhood(obj, depth, backward, max_items, skip_prefix) -> (nodes, edges, hold) | None."},
    {"graph_leaking", ml_graph_leaking_py_nogc, METH_VARARGS,
     "graph_leaking(skip_prefix) -> list of GC objects nothing refers to."},
    {"graph_backward", ml_graph_backward_py_nogc, METH_VARARGS,
     "graph_backward(obj, max_depth, skip_prefix) -> (parents, hold): referrers breadth first."},
    {"graph_of_types", ml_graph_of_types_py_nogc, METH_VARARGS,
     "graph_of_types(types, want_objects) -> list of objects of exactly those types, or their count."},
    {"graph_untrack", ml_graph_untrack_py, METH_O,
     "graph_untrack(t) -> bool: untrack tuple t (and nested tuples) when it holds only untracked objects."},
    {"graph_dominators_test", ml_graph_dominators_test_py, METH_VARARGS,
     "graph_dominators_test(n, from, to, roots) -> (idom, retained) on a given graph (tests)."},
    {"graph_suspects_test", ml_graph_suspects_test_py, METH_VARARGS,
     "graph_suspects_test(n, from, to, roots, sizes, types, ntypes, threshold) -> class suspects (tests)."},
    {NULL, NULL, 0, NULL},
};
