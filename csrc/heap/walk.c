/* walk.c: the explicit-stack heap walker (see walk.h). */
#include "heap/walk.h"

#include <stdlib.h>
#include <string.h>

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

int
ml_walk_reach(ml_walk *w, PyObject *o)
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
    return 0;
}

/* visitproc for tp_traverse: nonzero stops that object's traversal. */
static int
ml_walk_visit(PyObject *o, void *arg)
{
    ml_walk *w = arg;
    if (!o)
        return 0;
    if (w->filter && !w->filter(o, w->arg))
        return 0;
    return ml_walk_reach(w, o) < 0 ? 1 : 0;
}

/* References tp_traverse leaves out because they cannot form cycles, but
 * that hold memory: dict keys when they are all str (every version skips
 * them), a heap type's name, qualname and __slots__, and the contents of
 * code objects (not GC objects at all). */
static void
ml_walk_extra(ml_walk *w, PyObject *o)
{
    if (PyDict_Check(o)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(o, &pos, &key, &value)) {
            if (ml_walk_visit(key, w))
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

static int
ml_walk_one(ml_walk *w, PyObject *o)
{
    w->reached++;
    if (w->fn(w, o, w->arg) < 0)
        return -1;
    if (PyDict_CheckExact(o)) {
        /* one pass for keys and values (dict_traverse skips str keys) */
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(o, &pos, &key, &value)) {
            if (ml_walk_visit(key, w) || ml_walk_visit(value, w))
                break;
        }
        return w->oom ? -1 : 0;
    }
    traverseproc trav = Py_TYPE(o)->tp_traverse;
    if (trav && PyObject_IS_GC(o))
        trav(o, ml_walk_visit, w);
    if (!w->oom)
        ml_walk_extra(w, o);
    return w->oom ? -1 : 0;
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

int
ml_walk_heap(ml_walk_fn fn, void *arg, ml_walk *w)
{
    if (ml_walk_start(w, fn, NULL, arg, 1 << 16) < 0)
        return -1;
    w->gc_mode = 1;
    if (ml_compat_gc_foreach(ml_walk_gc_cb, w) != 0)
        return -1;
    /* Locals of running frames (3.11+ keeps them outside frame objects). */
    ml_compat_frames_visit(ml_walk_visit, w);
    if (w->oom || ml_walk_drain(w) < 0)
        return -1;
    return 0;
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

void
ml_walk_release(ml_walk *w)
{
    ml_addrbits_release(&w->seen);
    free(w->stack);
    w->stack = NULL;
    w->n = w->cap = 0;
}
