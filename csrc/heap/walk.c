/* walk.c: the explicit-stack heap walker (see walk.h). */
#include "heap/walk.h"

#include "graph/typekind.h"

#include <stdlib.h>
#include <string.h>

/* How many entries ahead the container loops prefetch the referents'
 * headers: the walk is bound by cache misses on objects it has not
 * touched yet, and a loop over items knows the next addresses early. */
#define ML_WALK_AHEAD 4

/* memlens' own types (walk.h), process-wide: set at import, with the GIL. */
static PyTypeObject *ml_walk_own[ML_WALK_MAX_OWN];
static size_t ml_walk_nown;

int
ml_walk_add_own_type(PyTypeObject *tp)
{
    for (size_t i = 0; i < ml_walk_nown; i++) {
        if (ml_walk_own[i] == tp)
            return 0;
    }
    if (ml_walk_nown == ML_WALK_MAX_OWN)
        return -1;
    Py_INCREF(tp);
    ml_walk_own[ml_walk_nown++] = tp;
    return 0;
}

PyTypeObject *const *
ml_walk_own_types(size_t *n)
{
    *n = ml_walk_nown;
    return ml_walk_own;
}

static inline int
ml_walk_is_own(PyTypeObject *tp)
{
    for (size_t i = 0; i < ml_walk_nown; i++) {
        if (ml_walk_own[i] == tp)
            return 1;
    }
    return 0;
}

static int
ml_walk_push(ml_walk *w, PyObject *o)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        PyObject **s = realloc(w->stack, cap * sizeof(*s));
        if (!s)
            return -1;
        w->stack = s;
        w->cap = cap;
    }
    w->stack[w->n++] = o;
    if (w->n > w->max_stack)
        w->max_stack = w->n;
    return 0;
}

static inline int
ml_walk_reach_inline(ml_walk *w, PyObject *o)
{
    if (!o)
        return 0;
    if (w->gc_mode && ml_compat_gc_tracked(o))
        return 0; /* the GC lists hand it to fn */
    int rc = ml_addrbits_add(&w->seen, (uintptr_t)o);
    if (rc < 0 || (rc == 1 && ml_walk_push(w, o) < 0)) {
        w->oom = 1;
        return -1;
    }
    /* a dict's entries are a separate block: ask for it now, it is read
     * when the dict comes off the stack */
    if (rc == 1 && Py_TYPE(o) == &PyDict_Type)
        __builtin_prefetch(((PyDictObject *)o)->ma_keys);
    return 0;
}

int
ml_walk_reach(ml_walk *w, PyObject *o)
{
    return ml_walk_reach_inline(w, o);
}

int
ml_walk_reach_instance_dict(ml_walk *w, PyObject *o, size_t *values)
{
    PyTypeObject *tp = Py_TYPE(o);
    *values = 0;
    if ((ml_typekind_info(tp)->kind & (ML_TK_TYPE | ML_TK_MODULE)) || tp == &PyDict_Type)
        return 0;
    PyObject *d = ml_compat_instance_dict(o, values);
    return d ? ml_walk_reach_inline(w, d) : 0;
}

/* A referent of the object being walked: through the filter, then reached.
 * Returns 0, or -1 when out of memory. */
static inline int
ml_walk_ref(ml_walk *w, PyObject *o)
{
    if (o && w->filter && !w->filter(o, w->arg))
        return 0;
    if (w->record && o) {
        if (w->nrefs == w->caprefs) {
            size_t cap = w->caprefs ? w->caprefs * 2 : 65536;
            PyObject **r = realloc(w->refs, cap * sizeof(*r));
            if (!r) {
                w->oom = 1;
                return -1;
            }
            w->refs = r;
            w->caprefs = cap;
        }
        w->refs[w->nrefs++] = o;
    }
    return ml_walk_reach_inline(w, o);
}

/* visitproc for tp_traverse: nonzero stops that object's traversal. */
static int
ml_walk_visit(PyObject *o, void *arg)
{
    return ml_walk_ref(arg, o) < 0 ? 1 : 0;
}

/* Keys and values of a dict in one pass over its entries, read in place
 * (dict_traverse skips str keys); notes the dict's kind on the way. */
static int
ml_walk_dict(ml_walk *w, PyObject *d)
{
    ml_compat_dict_entries e;
    ml_compat_dict_entries_of(d, &e);
    ml_dictkind kind = ml_dictkind_start(d);
    for (size_t i = 0; i < e.n && i < ML_WALK_AHEAD; i++) {
        __builtin_prefetch(e.keys[i * e.kstride]);
        __builtin_prefetch(e.values[i * e.vstride]);
    }
    for (size_t i = 0; i < e.n; i++) {
        if (i + ML_WALK_AHEAD < e.n) {
            __builtin_prefetch(e.keys[(i + ML_WALK_AHEAD) * e.kstride]);
            __builtin_prefetch(e.values[(i + ML_WALK_AHEAD) * e.vstride]);
        }
        PyObject *value = e.values[i * e.vstride];
        if (!value)
            continue;
        PyObject *key = e.keys[i * e.kstride];
        kind = ml_dictkind_key(kind, key);
        if (ml_walk_ref(w, key) < 0 || ml_walk_ref(w, value) < 0)
            return -1;
    }
    w->dict_kind = kind;
    return 0;
}

/* The items of a tuple or list, as their tp_traverse visits them. */
static int
ml_walk_items(ml_walk *w, PyObject *const *items, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n && i < ML_WALK_AHEAD; i++)
        __builtin_prefetch(items[i]);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + ML_WALK_AHEAD < n)
            __builtin_prefetch(items[i + ML_WALK_AHEAD]);
        if (ml_walk_ref(w, items[i]) < 0)
            return -1;
    }
    return 0;
}

/* References tp_traverse leaves out because they cannot form cycles, but
 * that hold memory: dict keys when they are all str (every version skips
 * them), a heap type's name, qualname and __slots__, and the contents of
 * code objects (not GC objects at all). */
static void
ml_walk_extra(ml_walk *w, PyObject *o)
{
    if (PyDict_Check(o)) {
        /* str keys: dict_traverse visits every other key */
        ml_compat_dict_entries e;
        ml_compat_dict_entries_of(o, &e);
        for (size_t i = 0; i < e.n; i++) {
            if (e.values[i * e.vstride] && PyUnicode_CheckExact(e.keys[i * e.kstride]) &&
                ml_walk_visit(e.keys[i * e.kstride], w))
                return;
        }
    } else if (PyType_Check(o) && (((PyTypeObject *)o)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyHeapTypeObject *et = (PyHeapTypeObject *)o;
        (void)(ml_walk_visit(et->ht_name, w) || ml_walk_visit(et->ht_qualname, w) ||
               ml_walk_visit(et->ht_slots, w));
    } else if (PyCode_Check(o)) {
        ml_compat_code_visit(o, ml_walk_visit, w);
    }
}

/* Reach o's referents, then hand o to fn (so that for a dict fn sees its
 * kind, found on the way). */
static int
ml_walk_one(ml_walk *w, PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    int rc;
    if (ml_walk_is_own(tp))
        return 0; /* memlens' own: not counted, nothing of it followed */
    if (ml_ownset_has(&w->own, o))
        return 0; /* only memlens holds it: nothing of it is the program's */
    w->reached++;
    w->ref_mark = w->nrefs;
    if (tp == &PyDict_Type) {
        rc = ml_walk_dict(w, o);
    } else if (tp == &PyTuple_Type) {
        rc = ml_walk_items(w, ((PyTupleObject *)o)->ob_item, Py_SIZE(o));
    } else if (tp == &PyList_Type) {
        rc = ml_walk_items(w, ((PyListObject *)o)->ob_item, Py_SIZE(o));
    } else {
        traverseproc trav = tp->tp_traverse;
        if (trav && PyObject_IS_GC(o) && !ml_compat_traverse_unsafe(o))
            trav(o, ml_walk_visit, w);
        if (!w->oom)
            ml_walk_extra(w, o);
        rc = w->oom ? -1 : 0;
    }
    if (rc < 0)
        return -1;
    return w->fn(w, o, w->arg);
}

static int
ml_walk_drain(ml_walk *w)
{
    while (w->n) {
        PyObject *o = w->stack[--w->n];
        if (ml_walk_one(w, o) < 0)
            return -1;
    }
    return 0;
}

static int
ml_walk_gc_cb(PyObject *o, void *arg)
{
    ml_walk *w = arg;
    if (ml_walk_one(w, o) < 0 || ml_walk_drain(w) < 0)
        return -1;
    return 0;
}

static int
ml_walk_start(ml_walk *w, ml_walk_fn fn, ml_walk_filter filter, void *arg, size_t expect)
{
    memset(w, 0, sizeof(*w));
    w->fn = fn;
    w->filter = filter;
    w->arg = arg;
    (void)expect;
    return ml_addrbits_init(&w->seen);
}

static int
ml_walk_heap_mode(ml_walk_fn fn, void *arg, ml_walk *w, int record)
{
    if (ml_walk_start(w, fn, NULL, arg, 1 << 16) < 0)
        return -1;
    w->gc_mode = 1;
    w->record = record;
    if (ml_ownset_active() && ml_ownset_find(&w->own) < 0)
        return -1;
    if (ml_compat_gc_foreach(ml_walk_gc_cb, w) != 0)
        return -1;
    /* Locals of running frames (3.11+ keeps them outside frame objects):
     * no object's referents */
    w->record = 0;
    ml_compat_frames_visit(ml_walk_visit, w);
    w->record = record;
    if (w->oom || ml_walk_drain(w) < 0)
        return -1;
    return 0;
}

int
ml_walk_heap(ml_walk_fn fn, void *arg, ml_walk *w)
{
    return ml_walk_heap_mode(fn, arg, w, 0);
}

int
ml_walk_heap_refs(ml_walk_fn fn, void *arg, ml_walk *w)
{
    return ml_walk_heap_mode(fn, arg, w, 1);
}

int
ml_walk_from(PyObject *const *roots, size_t nroots, ml_walk_filter filter, ml_walk_fn fn,
             void *arg, ml_walk *w)
{
    if (ml_walk_start(w, fn, filter, arg, 1024) < 0)
        return -1;
    for (size_t i = 0; i < nroots; i++) {
        if (ml_walk_reach(w, roots[i]) < 0)
            return -1;
        if (ml_walk_drain(w) < 0)
            return -1;
    }
    return 0;
}

int
ml_walk_mark(ml_walk *w, PyObject *o)
{
    /* a gc-mode walk never asks the visited set about tracked objects, so
     * marking them changes nothing in the walk */
    if (ml_addrbits_add(&w->seen, (uintptr_t)o) < 0) {
        w->oom = 1;
        return -1;
    }
    return 0;
}

int
ml_walk_seen(const ml_walk *w, PyObject *o)
{
    return ml_addrbits_has(&w->seen, (uintptr_t)o);
}

/* 1 if the GC does not track `o`, and (depth > 0) a dict's items are such. */
static int
ml_walk_atomic(PyObject *o, int depth)
{
    if (!PyObject_IS_GC(o) || !PyObject_GC_IsTracked(o))
        return 1;
    if (depth <= 0 || !PyDict_CheckExact(o))
        return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(o, &pos, &k, &v)) {
        if (!ml_walk_atomic(k, 0) || !ml_walk_atomic(v, 0))
            return 0;
    }
    return 1;
}

int
ml_walk_untrack_dict(PyObject *d)
{
    if (!PyDict_CheckExact(d))
        return 0;
    if (!PyObject_GC_IsTracked(d))
        return 1;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!ml_walk_atomic(k, 0) || !ml_walk_atomic(v, 1))
            return 0;
    }
    PyObject_GC_UnTrack(d);
    return 1;
}

void
ml_walk_release(ml_walk *w)
{
    ml_addrbits_release(&w->seen);
    ml_ownset_release(&w->own);
    free(w->stack);
    w->stack = NULL;
    w->n = w->cap = 0;
    free(w->refs);
    w->refs = NULL;
    w->nrefs = w->caprefs = 0;
}
