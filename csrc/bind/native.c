/* native.c: bindings of native/hooks.h (`memlens run --native`). */
#include "bind/bind.h"

#include <errno.h>
#include "native/hooks.h"
#include "native/symbols.h"
#include "native/unwind.h"

static PyObject *
ml_py_native_enable(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"stacks", NULL};
    int stacks = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:native_enable", kwlist, &stacks))
        return NULL;
    if (ml_native_enable(stacks) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *
ml_py_native_disable(PyObject *self, PyObject *unused)
{
    ml_native_disable();
    Py_RETURN_NONE;
}

static PyObject *
ml_py_native_stats(PyObject *self, PyObject *unused)
{
    ml_native_stats st;
    ml_unwind_stats us;
    ml_native_get_stats(&st);
    ml_unwind_get_stats(&us);
    return Py_BuildValue("{snsnsnsn}", "objects", (Py_ssize_t)st.objects, "slots", (Py_ssize_t)st.slots,
                         "native_stacks", (Py_ssize_t)us.stacks, "mappings", (Py_ssize_t)us.mappings);
}

/* nstacks: read_native_stacks(path): what a capture holds of native stacks. */
static PyObject *
ml_py_read_native_stacks(PyObject *self, PyObject *arg)
{
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_event ev;
    int rc;
    uint64_t native_allocs = 0, allocs = 0;
    while ((rc = ml_reader_next(r, &ev)) > 0)
        if (ev.kind == ML_EV_ALLOC) {
            allocs++;
            native_allocs += ev.nstack != 0;
        }
    if (rc < 0) {
        PyObject *res = ml_py_report_failed(ml_reader_error(r));
        ml_reader_free(r);
        return res;
    }
    uint32_t nmaps, nst = ml_reader_nnative_stacks(r);
    const ml_mapping_info *maps = ml_reader_mappings(r, &nmaps);
    ml_symbols *syms = ml_symbols_new();
    PyObject *d = PyDict_New(), *ml = PyList_New(0), *sl = PyList_New(0);
    if (!syms || !d || !ml || !sl)
        goto fail;
    for (uint32_t i = 0; i < nmaps; i++) {
        PyObject *m = Py_BuildValue("{sKsKsKsNsy#}", "start", (unsigned long long)maps[i].start, "end",
                                    (unsigned long long)maps[i].end, "offset", (unsigned long long)maps[i].offset,
                                    "path", ml_py_fsstr(maps[i].path), "build_id", (const char *)maps[i].build_id,
                                    (Py_ssize_t)maps[i].build_id_len);
        if (!m || PyList_Append(ml, m) < 0) {
            Py_XDECREF(m);
            goto fail;
        }
        Py_DECREF(m);
    }
    for (uint32_t id = 1; id <= nst; id++) {
        uint32_t n;
        const uint64_t *a = ml_reader_native_stack(r, id, &n);
        PyObject *frames = PyList_New(n);
        if (!frames || PyList_Append(sl, frames) < 0) {
            Py_XDECREF(frames);
            goto fail;
        }
        Py_DECREF(frames);
        for (uint32_t i = 0; i < n; i++) {
            ml_symbol sy;
            if (ml_symbols_lookup(syms, maps, nmaps, a[i], &sy) < 0) {
                PyErr_NoMemory();
                goto fail;
            }
            PyObject *f = Py_BuildValue("{sKsNsNsK}", "address", (unsigned long long)a[i], "function",
                                        sy.func ? ml_py_str(sy.func) : Py_NewRef(Py_None), "lib",
                                        sy.lib ? ml_py_fsstr(sy.lib) : Py_NewRef(Py_None), "offset",
                                        (unsigned long long)sy.offset);
            if (!f)
                goto fail;
            PyList_SET_ITEM(frames, i, f);
        }
    }
    rc = ml_py_put(d, "mappings", ml);
    ml = NULL;
    if (rc < 0 || (rc = ml_py_put(d, "stacks", sl), sl = NULL, rc < 0))
        goto fail;
    if (ml_py_put(d, "native_allocs", PyLong_FromUnsignedLongLong(native_allocs)) < 0 ||
        ml_py_put(d, "allocs", PyLong_FromUnsignedLongLong(allocs)) < 0)
        goto fail_put;
    ml_symbols_free(syms);
    ml_reader_free(r);
    return d;
fail:
    Py_XDECREF(ml);
    Py_XDECREF(sl);
fail_put:
    Py_XDECREF(d);
    ml_symbols_free(syms);
    ml_reader_free(r);
    return NULL;
}

PyMethodDef ml_bind_native_methods[] = {
    {"read_native_stacks", ml_py_read_native_stacks, METH_O,
     "read_native_stacks(path) -> {'stacks': [[{'address', 'function', 'lib', 'offset'}, ...] innermost "
     "first, by id - 1], 'mappings': [{'start', 'end', 'offset', 'path', 'build_id'}], 'native_allocs': "
     "ALLOCs with a native stack, 'allocs'} (--native-stacks captures; symbolised here)."},
    {"native_enable", (PyCFunction)(void (*)(void))ml_py_native_enable, METH_VARARGS | METH_KEYWORDS,
     "native_enable(stacks=False): patch the loaded objects' allocator calls and record them (--native); "
     "stacks: with their native caller chains (--native-stacks)."},
    {"native_disable", ml_py_native_disable, METH_NOARGS, "Stop recording native allocator calls."},
    {"native_stats", ml_py_native_stats, METH_NOARGS, "{'objects': patched objects, 'slots': GOT slots, 'native_stacks': distinct native stacks, 'mappings': executable segments known}."},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_native_init(PyObject *m)
{
    return 0;
}
