/* native.c: bindings of native/hooks.h (`memlens run --native`). */
#include "bind/bind.h"

#include <errno.h>
#include "native/hooks.h"

static PyObject *
ml_py_native_enable(PyObject *self, PyObject *unused)
{
    if (ml_native_enable() < 0)
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
    ml_native_get_stats(&st);
    return Py_BuildValue("{snsn}", "objects", (Py_ssize_t)st.objects, "slots", (Py_ssize_t)st.slots);
}

PyMethodDef ml_bind_native_methods[] = {
    {"native_enable", ml_py_native_enable, METH_NOARGS,
     "Patch the loaded objects' allocator calls and record them (--native)."},
    {"native_disable", ml_py_native_disable, METH_NOARGS, "Stop recording native allocator calls."},
    {"native_stats", ml_py_native_stats, METH_NOARGS, "{'objects': patched objects, 'slots': GOT slots}."},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_native_init(PyObject *m)
{
    return 0;
}
