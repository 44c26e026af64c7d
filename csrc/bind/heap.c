/* heap.c: bindings of the live-heap walker (heap/): census, new objects,
 * deep size, object sizes. */
#include "bind/bind.h"
#include "heap/deepsize.h"
#include "heap/heap.h"
#include "heap/ownset.h"
#include "heap/walk.h"

/* A census's object addresses handed to Python without a copy: a
 * read-only buffer (of uintptr_t) over the engine's array, freed with the
 * object. Its __sizeof__ counts the array; censuses never see it (an own
 * type of memlens, walk.h). */
typedef struct {
    PyObject_HEAD
    uintptr_t *ids;
    size_t n;
} ml_heap_ids_object;

static int
ml_heap_ids_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    ml_heap_ids_object *o = (ml_heap_ids_object *)self;
    static uintptr_t none;
    return PyBuffer_FillInfo(view, self, o->ids ? (void *)o->ids : (void *)&none,
                             (Py_ssize_t)(o->n * sizeof(uintptr_t)), 1, flags);
}

static void
ml_heap_ids_dealloc(PyObject *self)
{
    free(((ml_heap_ids_object *)self)->ids);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
ml_heap_ids_sizeof(PyObject *self, PyObject *unused)
{
    ml_heap_ids_object *o = (ml_heap_ids_object *)self;
    return PyLong_FromSize_t(sizeof(*o) + o->n * sizeof(uintptr_t));
}

static PyMethodDef ml_heap_ids_methods[] = {
    {"__sizeof__", ml_heap_ids_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyBufferProcs ml_heap_ids_as_buffer = {ml_heap_ids_getbuffer, NULL};

static PyTypeObject ml_heap_ids_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memlens._engine.HeapIds",
    .tp_basicsize = sizeof(ml_heap_ids_object),
    .tp_dealloc = ml_heap_ids_dealloc,
    .tp_as_buffer = &ml_heap_ids_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Object addresses of a heap census: a read-only buffer of uintptr_t.",
    .tp_methods = ml_heap_ids_methods,
};

static const char *const ml_heap_what_names[] = {
    "objects", "dict of class", "dict of module", "dict of type", "dict (no owner)",
};

static PyObject *
ml_heap_snapshot_py(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ids", NULL};
    int want_ids = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:heap_snapshot", kwlist, &want_ids))
        return NULL;
    ml_heap *h = ml_heap_take(want_ids);
    if (!h)
        return PyErr_NoMemory();
    PyObject *result = NULL, *rows = NULL, *dicts = NULL, *ids = NULL;
    size_t n, nids;
    const ml_heap_row *r = ml_heap_rows(h, &n);
    const ml_dictstat *ds = ml_heap_dicts(h);
    ml_heap_stats st;
    ml_heap_get_stats(h, &st);
    if (!(rows = PyList_New((Py_ssize_t)n)) || !(dicts = PyList_New((Py_ssize_t)ds->n)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("OsKK", (PyObject *)r[i].tp, ml_heap_what_names[r[i].what],
                                    (unsigned long long)r[i].count, (unsigned long long)r[i].bytes);
        if (!t)
            goto done;
        PyList_SET_ITEM(rows, (Py_ssize_t)i, t);
    }
    for (size_t i = 0; i < ds->n; i++) {
        const ml_dictstat_row *d = &ds->rows[i];
        PyObject *t = Py_BuildValue("sKK", ml_dictkind_name((ml_dictkind)d->kind),
                                    (unsigned long long)d->size, (unsigned long long)d->count);
        if (!t)
            goto done;
        PyList_SET_ITEM(dicts, (Py_ssize_t)i, t);
    }
    if (want_ids) {
        ml_heap_ids_object *o = PyObject_New(ml_heap_ids_object, &ml_heap_ids_type);
        if (!o)
            goto done;
        o->ids = ml_heap_detach_ids(h, &nids);
        o->n = nids;
        ids = (PyObject *)o;
    } else {
        ids = Py_NewRef(Py_None);
    }
    result = Py_BuildValue("{sOsOsOsKsKsKsKsKsKsi}", "rows", rows, "dicts", dicts, "ids", ids,
                           "count", (unsigned long long)st.count, "bytes", (unsigned long long)st.bytes,
                           "sizeof_calls", (unsigned long long)st.sizeof_calls,
                           "sizeof_errors", (unsigned long long)st.sizeof_errors,
                           "sizeof_clamped", (unsigned long long)st.sizeof_clamped,
                           "max_stack", (unsigned long long)st.max_stack,
                           "gc_collecting", st.gc_collecting);
done:
    Py_XDECREF(rows);
    Py_XDECREF(dicts);
    Py_XDECREF(ids);
    ml_heap_free(h);
    return result;
}

static PyObject *
ml_heap_new_objects_py(PyObject *self, PyObject *args)
{
    Py_buffer now, before;
    PyObject *tp, *list = NULL;
    PyObject **objs;
    size_t n;
    if (!PyArg_ParseTuple(args, "y*y*O:heap_new_objects", &now, &before, &tp))
        return NULL;
    if (tp != Py_None && !PyType_Check(tp)) {
        PyErr_SetString(PyExc_TypeError, "type must be a type or None");
        goto done;
    }
    if (ml_heap_new_objects(now.buf, (size_t)now.len / sizeof(uintptr_t), before.buf,
                            (size_t)before.len / sizeof(uintptr_t),
                            tp == Py_None ? NULL : (PyTypeObject *)tp, &objs, &n) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        if (list)
            PyList_SET_ITEM(list, (Py_ssize_t)i, objs[i]);
        else
            Py_DECREF(objs[i]);
    }
    free(objs);
done:
    PyBuffer_Release(&now);
    PyBuffer_Release(&before);
    return list;
}

static PyObject *
ml_heap_deep_size_py(PyObject *self, PyObject *args)
{
    PyObject *roots, *stop;
    Py_ssize_t align;
    ml_deepsize ds;
    if (!PyArg_ParseTuple(args, "O!O!n:deep_size", &PyTuple_Type, &roots, &PyTuple_Type, &stop, &align))
        return NULL;
    if (ml_deepsize_run(&ds, &PyTuple_GET_ITEM(roots, 0), (size_t)PyTuple_GET_SIZE(roots), stop,
                        align > 0 ? (size_t)align : 0) < 0)
        return PyErr_NoMemory();
    PyObject *result = NULL, *rows = PyList_New((Py_ssize_t)ds.types.nrows);
    for (size_t i = 0; rows && i < ds.types.nrows; i++) {
        ml_typestat *t = &ds.types.rows[i];
        PyObject *row = Py_BuildValue("OKK", (PyObject *)t->tp, (unsigned long long)t->count,
                                      (unsigned long long)t->bytes);
        if (!row)
            goto done;
        PyList_SET_ITEM(rows, (Py_ssize_t)i, row);
    }
    if (rows)
        result = Py_BuildValue("{sKsKsOsKsKsKsK}", "bytes", (unsigned long long)ds.total,
                               "count", (unsigned long long)ds.count, "rows", rows,
                               "sizeof_calls", (unsigned long long)ds.types.sizeof_calls,
                               "sizeof_errors", (unsigned long long)ds.types.sizeof_errors,
                               "sizeof_clamped", (unsigned long long)ds.types.sizeof_clamped,
                               "max_stack", (unsigned long long)ds.max_stack);
done:
    Py_XDECREF(rows);
    ml_deepsize_release(&ds);
    return result;
}

static PyObject *
ml_heap_own_type_py(PyObject *self, PyObject *tp)
{
    if (!PyType_Check(tp)) {
        PyErr_SetString(PyExc_TypeError, "heap_own_type: a type is required");
        return NULL;
    }
    if (ml_walk_add_own_type((PyTypeObject *)tp) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "heap_own_type: too many types");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
ml_heap_untrack_dict_py(PyObject *self, PyObject *d)
{
    return PyBool_FromLong(ml_walk_untrack_dict(d));
}

static PyObject *
ml_heap_object_size_py(PyObject *self, PyObject *o)
{
    size_t size, values = 0;
    int flag = 0;
    int call = ml_objsize_c(o, &size);
    if (call)
        size = ml_objsize_call(o, &flag);
    if (!PyType_Check(o) && !PyModule_Check(o))
        (void)ml_compat_instance_dict(o, &values);
    return Py_BuildValue("nnOi", (Py_ssize_t)size, (Py_ssize_t)values, call ? Py_False : Py_True, flag);
}

/* ---- memlens' own imports (heap/ownset.h) ---- */

static PyObject *
ml_heap_own_modules_py(PyObject *self, PyObject *args)
{
    PyObject *names, *own_dir, *entry;
    if (!PyArg_ParseTuple(args, "OOO:heap_own_modules", &names, &own_dir, &entry) ||
        ml_ownset_register(names, own_dir, entry) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ml_heap_own_find_py(PyObject *self, PyObject *unused)
{
    ml_ownset s;
    if (ml_ownset_find(&s) < 0)
        return PyErr_NoMemory();
    unsigned long long candidates = s.candidates, count = s.count;
    ml_ownset_release(&s);
    return Py_BuildValue("{sKsK}", "candidates", candidates, "own", count);
}

int
ml_bind_heap_init(PyObject *m)
{
    if (PyType_Ready(&ml_heap_ids_type) < 0 || ml_walk_add_own_type(&ml_heap_ids_type) < 0 ||
        ml_ownset_setup() < 0)
        return -1;
    return ml_objsize_setup();
}

PyMethodDef ml_bind_heap_methods[] = {
    {"heap_snapshot", (PyCFunction)(void (*)(void))ml_heap_snapshot_py, METH_VARARGS | METH_KEYWORDS,
     "heap_snapshot(ids=True) -> dict: census of every live object."},
    {"heap_new_objects", ml_heap_new_objects_py, METH_VARARGS,
     "heap_new_objects(now_ids, before_ids, type|None) -> list of live objects new since."},
    {"deep_size", ml_heap_deep_size_py, METH_VARARGS,
     "deep_size(roots, stop_types, align) -> dict: bytes reachable from roots."},
    {"object_size", ml_heap_object_size_py, METH_O,
     "object_size(o) -> (getsizeof bytes, values bytes, computed in C, flag)."},
    {"heap_own_type", ml_heap_own_type_py, METH_O,
     "heap_own_type(tp): no census, diff or deep size ever counts instances of tp (memlens' own)."},
    {"heap_untrack_dict", ml_heap_untrack_dict_py, METH_O,
     "heap_untrack_dict(d) -> bool: the GC stops tracking d if nothing in it can make a cycle."},
    {"heap_own_modules", ml_heap_own_modules_py, METH_VARARGS,
     "heap_own_modules(names, own_dir, entry_code): from now on every census leaves out what only "
     "memlens holds (the modules named, memlens.*, memlens' frames from entry_code out)."},
    {"heap_own_find", ml_heap_own_find_py, METH_NOARGS,
     "heap_own_find() -> {candidates, own}: the size of memlens' part of the heap now."},
    {NULL, NULL, 0, NULL},
};
