/* module.c: the one file that binds the engine to Python (memlens._engine).
 *
 * Every binding body is a line or two: parse arguments, call the engine,
 * convert the result. Python exceptions are set here and nowhere else.
 * Sections (one per area of the engine; each keeps its own method list):
 *   capture   capture/tracker.h     start/stop tracking, counters, marks
 *   analysis  analysis/report.h     summary, types, leaks from a capture
 *   timeline  analysis/timeline.h   line table and time series (issue 4)
 *   heap      heap/heap.h           live-heap walk, dict stats, deep size
 */
#include "compat/compat.h"

/* ==== capture bindings ==== */
#define ML_CAPTURE_METHODS
static int ml_capture_init(PyObject *m) { return 0; }
/* ==== end capture bindings ==== */

/* ==== analysis bindings ==== */
#define ML_ANALYSIS_METHODS
static int ml_analysis_init(PyObject *m) { return 0; }
/* ==== end analysis bindings ==== */

/* ==== timeline bindings ==== */
#define ML_TIMELINE_METHODS
static int ml_timeline_init(PyObject *m) { return 0; }
/* ==== end timeline bindings ==== */

/* ==== heap bindings ==== */
#include "heap/deepsize.h"
#include "heap/heap.h"

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
    const uintptr_t *idv = ml_heap_ids(h, &nids);
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
    if (idv)
        ids = PyBytes_FromStringAndSize((const char *)idv, (Py_ssize_t)(nids * sizeof(*idv)));
    else
        ids = Py_NewRef(Py_None);
    if (!ids)
        goto done;
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

#define ML_HEAP_METHODS                                                                          \
    {"heap_snapshot", (PyCFunction)(void (*)(void))ml_heap_snapshot_py, METH_VARARGS | METH_KEYWORDS, \
     "heap_snapshot(ids=True) -> dict: census of every live object."},                           \
    {"heap_new_objects", ml_heap_new_objects_py, METH_VARARGS,                                   \
     "heap_new_objects(now_ids, before_ids, type|None) -> list of live objects new since."},     \
    {"deep_size", ml_heap_deep_size_py, METH_VARARGS,                                            \
     "deep_size(roots, stop_types, align) -> dict: bytes reachable from roots."},                \
    {"object_size", ml_heap_object_size_py, METH_O,                                              \
     "object_size(o) -> (getsizeof bytes, values bytes, computed in C, flag)."},

static int
ml_heap_init(PyObject *m)
{
    return ml_objsize_setup();
}
/* ==== end heap bindings ==== */

static PyMethodDef ml_methods[] = {
    ML_CAPTURE_METHODS
    ML_ANALYSIS_METHODS
    ML_TIMELINE_METHODS
    ML_HEAP_METHODS
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ml_module = {
    PyModuleDef_HEAD_INIT, "memlens._engine", "memlens C engine.", -1, ml_methods,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&ml_module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "FORMAT_VERSION", 1) < 0 || ml_capture_init(m) < 0 ||
        ml_analysis_init(m) < 0 || ml_timeline_init(m) < 0 || ml_heap_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
