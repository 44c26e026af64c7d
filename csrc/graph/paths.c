/* paths.c: shortest reference paths and edge names (see paths.h). */
#include "graph/paths.h"
#include "graph/typekind.h"

#include "structmember.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- forward search ---- */

static void
ml_paths_expand(const ml_refgraph *g, const ml_roots *r, ml_bfs *b, ml_node *queue, size_t *head, size_t *tail)
{
    while (*head < *tail) {
        ml_node v = queue[(*head)++];
        if (r->excluded[v])
            continue;
        size_t c;
        const ml_node *s = ml_refgraph_succ(g, v, &c);
        for (size_t e = 0; e < c; e++) {
            ml_node w = s[e];
            if (b->root[w] != UINT32_MAX || r->excluded[w])
                continue;
            b->root[w] = b->root[v];
            b->parent[w] = v;
            queue[(*tail)++] = w;
        }
    }
}

int
ml_paths_bfs(const ml_refgraph *g, const ml_roots *r, ml_bfs *b)
{
    size_t n = ml_refgraph_count(g);
    b->n = n;
    b->parent = malloc((n ? n : 1) * sizeof(*b->parent));
    b->root = malloc((n ? n : 1) * sizeof(*b->root));
    ml_node *queue = malloc((n ? n : 1) * sizeof(*queue));
    if (!b->parent || !b->root || !queue) {
        free(queue);
        ml_paths_bfs_release(b);
        return -1;
    }
    memset(b->parent, 0xff, n * sizeof(*b->parent));
    memset(b->root, 0xff, n * sizeof(*b->root));
    size_t head = 0, tail = 0;
    /* named roots first, expanded completely; then the C-held ones */
    for (int phase = 0; phase < 2; phase++) {
        size_t from = phase ? r->named : 0, to = phase ? r->n : r->named;
        for (size_t i = from; i < to; i++) {
            ml_node v = r->roots[i].node;
            if (b->root[v] != UINT32_MAX || r->excluded[v])
                continue;
            b->root[v] = (uint32_t)i;
            queue[tail++] = v;
        }
        ml_paths_expand(g, r, b, queue, &head, &tail);
    }
    free(queue);
    return 0;
}

void
ml_paths_bfs_release(ml_bfs *b)
{
    free(b->parent);
    free(b->root);
    b->parent = NULL;
    b->root = NULL;
}

size_t
ml_paths_to(const ml_bfs *b, ml_node target, ml_node *out, size_t cap, uint32_t *root)
{
    if (target >= b->n || b->root[target] == UINT32_MAX)
        return 0;
    size_t len = 0;
    for (ml_node v = target; v != ML_NODE_NONE; v = b->parent[v])
        len++;
    size_t i = len;
    for (ml_node v = target; v != ML_NODE_NONE; v = b->parent[v]) {
        i--;
        if (i < cap)
            out[i] = v;
    }
    *root = b->root[target];
    return len;
}

/* ---- backward search from one object ---- */

/* One backward search from `target`, never through banned or excluded
 * nodes: the nearest named root (*named = 1), else the nearest C-held
 * one; ML_NODE_NONE when neither. next[] and dist[] describe the path. */
static ml_node
ml_paths_search(const ml_refgraph *g, const ml_roots *r, const uint32_t *rootof, const uint8_t *banned,
                ml_node target, size_t max_depth, ml_node *next, uint32_t *dist, ml_node *queue, int *named)
{
    size_t n = ml_refgraph_count(g);
    ml_node first_c = ML_NODE_NONE;
    memset(dist, 0xff, n * sizeof(*dist));
    size_t head = 0, tail = 0;
    dist[target] = 0;
    next[target] = ML_NODE_NONE;
    queue[tail++] = target;
    while (head < tail) {
        ml_node v = queue[head++];
        uint32_t ri = rootof[v];
        if (ri && ri - 1 < r->named) {
            *named = 1;
            return v;
        }
        if (ri && first_c == ML_NODE_NONE)
            first_c = v; /* C-held: go on, a named root may lie beyond */
        if (max_depth && dist[v] >= max_depth)
            continue;
        size_t c;
        const ml_node *p = ml_refgraph_pred(g, v, &c);
        for (size_t e = 0; e < c; e++) {
            ml_node u = p[e];
            if (dist[u] != UINT32_MAX || r->excluded[u] || banned[u])
                continue;
            dist[u] = dist[v] + 1;
            next[u] = v;
            queue[tail++] = u;
        }
    }
    *named = 0;
    return first_c;
}

int
ml_paths_find(const ml_refgraph *g, const ml_roots *r, ml_node target, size_t max, size_t max_depth, ml_path **out,
              size_t *nout)
{
    size_t n = ml_refgraph_count(g);
    *out = NULL;
    *nout = 0;
    if (target >= n || max == 0)
        return 0;
    /* first root (named before C-held) of each node, + 1; 0 none */
    uint32_t *rootof = calloc(n, sizeof(*rootof));
    uint8_t *banned = calloc(n, 1);
    ml_node *next = malloc(n * sizeof(*next)); /* toward the target */
    uint32_t *dist = malloc(n * sizeof(*dist));
    ml_node *queue = malloc(n * sizeof(*queue));
    ml_path *paths = calloc(max, sizeof(*paths));
    size_t np = 0;
    int rc = -1, want_named = -1;
    if (!rootof || !banned || !next || !dist || !queue || !paths)
        goto done;
    for (size_t i = r->n; i-- > 0;)
        rootof[r->roots[i].node] = (uint32_t)i + 1;
    /* Each search gives the shortest path left; then the path's last
     * referrer of the target is banned, so the next one comes another
     * way. Named roots first; C-held ones only when no named root
     * reaches the target at all. */
    while (np < max) {
        int named;
        ml_node v = ml_paths_search(g, r, rootof, banned, target, max_depth, next, dist, queue, &named);
        if (v == ML_NODE_NONE)
            break;
        if (want_named < 0)
            want_named = named;
        if (named != want_named)
            break;
        size_t len = dist[v] + 1;
        ml_path *pa = &paths[np];
        pa->nodes = malloc(len * sizeof(*pa->nodes));
        if (!pa->nodes)
            goto done;
        pa->root = rootof[v] - 1;
        pa->len = len;
        np++;
        for (size_t i = 0; i < len; i++, v = next[v])
            pa->nodes[i] = v;
        if (len < 2)
            break; /* the target is a root itself */
        banned[pa->nodes[len - 2]] = 1;
    }
    *out = paths;
    *nout = np;
    paths = NULL;
    rc = 0;
done:
    if (paths)
        ml_paths_free(paths, np);
    free(rootof);
    free(banned);
    free(next);
    free(dist);
    free(queue);
    return rc;
}

void
ml_paths_free(ml_path *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].nodes);
    free(p);
}

/* ---- edge names ---- */

/* Member types that hold an object (structmember.h: T_OBJECT,
 * T_OBJECT_EX; the same numbers in 3.10-3.13). */
#define ML_PATHS_T_OBJECT 6
#define ML_PATHS_T_OBJECT_EX 16

static size_t
ml_paths_put(char *buf, size_t cap, const char *fmt, int len, const char *s)
{
    int n = snprintf(buf, cap, fmt, len, s);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : (cap ? cap - 1 : 0);
}

static size_t
ml_paths_lit(char *buf, size_t cap, const char *s)
{
    return ml_paths_put(buf, cap, "%.*s", (int)strlen(s), s);
}

size_t
ml_paths_key_name(PyObject *key, char *buf, size_t cap)
{
    char tmp[128];
    const char *s;
    if (PyUnicode_Check(key)) {
        size_t len = ml_compat_str_utf8(key, tmp, sizeof(tmp), &s);
        if (len > 100)
            len = 100;
        return ml_paths_put(buf, cap, "['%.*s']", (int)len, s);
    }
    if (PyLong_CheckExact(key)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            int n = snprintf(buf, cap, "[%lld]", v);
            return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
        }
        PyErr_Clear();
    }
    const char *tn = Py_TYPE(key)->tp_name;
    return ml_paths_put(buf, cap, "[<%.*s key>]", (int)strlen(tn), tn);
}

static size_t
ml_paths_members(PyObject *src, PyObject *dst, char *buf, size_t cap)
{
    for (PyTypeObject *t = Py_TYPE(src); t; t = t->tp_base) {
        for (PyMemberDef *m = t->tp_members; m && m->name; m++) {
            if (m->type != ML_PATHS_T_OBJECT && m->type != ML_PATHS_T_OBJECT_EX)
                continue;
            if (*(PyObject **)((char *)src + m->offset) == dst)
                return ml_paths_put(buf, cap, ".%.*s", (int)strlen(m->name), m->name);
        }
    }
    return 0;
}

size_t
ml_paths_edge_name(PyObject *src, PyObject *dst, char *buf, size_t cap)
{
    PyTypeObject *tp = Py_TYPE(src);
    if (PyDict_Check(src)) {
        ml_compat_dict_entries e;
        ml_compat_dict_entries_of(src, &e);
        for (size_t i = 0; i < e.n; i++) {
            if (e.values[i * e.vstride] == dst)
                return ml_paths_key_name(e.keys[i * e.kstride], buf, cap);
        }
        for (size_t i = 0; i < e.n; i++) {
            if (e.values[i * e.vstride] && e.keys[i * e.kstride] == dst)
                return ml_paths_lit(buf, cap, "(key)");
        }
    } else if (PyTuple_Check(src) || PyList_Check(src)) {
        PyObject **items = PyTuple_Check(src) ? ((PyTupleObject *)src)->ob_item : ((PyListObject *)src)->ob_item;
        for (Py_ssize_t i = 0; i < Py_SIZE(src); i++) {
            if (items[i] == dst) {
                int n = snprintf(buf, cap, "[%zd]", i);
                return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
            }
        }
    } else if (PyAnySet_Check(src)) {
        return ml_paths_lit(buf, cap, "{item}");
    } else if (PyModule_Check(src)) {
        if (PyModule_GetDict(src) == dst)
            return ml_paths_lit(buf, cap, ".__dict__");
    } else if (PyType_Check(src)) {
        PyTypeObject *t = (PyTypeObject *)src;
        if (ml_compat_type_dict(t) == dst)
            return ml_paths_lit(buf, cap, ".__dict__");
        if (t->tp_mro == dst)
            return ml_paths_lit(buf, cap, ".__mro__");
        if (t->tp_bases == dst)
            return ml_paths_lit(buf, cap, ".__bases__");
        if ((PyObject *)t->tp_base == dst)
            return ml_paths_lit(buf, cap, ".__base__");
        if (t->tp_flags & Py_TPFLAGS_HEAPTYPE) {
            PyHeapTypeObject *et = (PyHeapTypeObject *)t;
            if (et->ht_name == dst)
                return ml_paths_lit(buf, cap, ".__name__");
            if (et->ht_qualname == dst)
                return ml_paths_lit(buf, cap, ".__qualname__");
            if (et->ht_slots == dst)
                return ml_paths_lit(buf, cap, ".__slots__");
        }
    } else if (PyFunction_Check(src)) {
        PyFunctionObject *f = (PyFunctionObject *)src;
        static const char *const names[] = {".__code__", ".__globals__", ".__defaults__", ".__kwdefaults__",
                                            ".__closure__", ".__dict__", ".__name__", ".__qualname__",
                                            ".__annotations__", ".__doc__", ".__module__"};
        PyObject *fields[] = {f->func_code, f->func_globals, f->func_defaults, f->func_kwdefaults,
                              f->func_closure, f->func_dict, f->func_name, f->func_qualname,
                              f->func_annotations, f->func_doc, f->func_module};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            if (fields[i] == dst)
                return ml_paths_lit(buf, cap, names[i]);
        }
    } else if (PyCell_Check(src)) {
        return ml_paths_lit(buf, cap, ".cell_contents");
    } else if (PyCFunction_Check(src)) {
        if (PyCFunction_GET_SELF(src) == dst)
            return ml_paths_lit(buf, cap, ".__self__");
    } else if (PyCode_Check(src)) {
        PyCodeObject *co = (PyCodeObject *)src;
        if (co->co_consts == dst)
            return ml_paths_lit(buf, cap, ".co_consts");
        if (co->co_names == dst)
            return ml_paths_lit(buf, cap, ".co_names");
    }
    size_t n = ml_paths_members(src, dst, buf, cap);
    if (n)
        return n;
    if (!PyType_Check(src) && !PyModule_Check(src) && !PyDict_Check(src)) {
        size_t values;
        PyObject *d = ml_compat_instance_dict(src, &values);
        if (d == dst)
            return ml_paths_lit(buf, cap, ".__dict__");
        /* an attribute read from the values array (3.11+), or through the
         * dict those values became (3.13 still traverses them inline) */
        PyObject *name = ml_compat_instance_attr(src, dst);
        if (!name && d && PyDict_Check(d)) {
            ml_compat_dict_entries e;
            ml_compat_dict_entries_of(d, &e);
            for (size_t i = 0; i < e.n && !name; i++) {
                if (e.values[i * e.vstride] == dst && PyUnicode_Check(e.keys[i * e.kstride]))
                    name = e.keys[i * e.kstride];
            }
        }
        if (name) {
            char tmp[128];
            const char *s;
            size_t len = ml_compat_str_utf8(name, tmp, sizeof(tmp), &s);
            return ml_paths_put(buf, cap, ".%.*s", (int)(len > 100 ? 100 : len), s);
        }
    }
    if ((PyObject *)tp == dst)
        return ml_paths_lit(buf, cap, ".__class__");
    if (ml_typekind_is_deque(tp)) /* no attribute of it: an item */
        return ml_paths_lit(buf, cap, "[i]");
    return ml_paths_lit(buf, cap, "(referent)");
}
