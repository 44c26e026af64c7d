/* common.c: helpers every binding file uses (bind.h). */
#include "bind/bind.h"

#include <errno.h>

int
ml_py_progress_call(void *arg, int pass, uint64_t pos, uint64_t size)
{
    ml_py_progress *p = arg;
    int stop = 0;
    PyEval_RestoreThread(p->saved);
    if (PyErr_CheckSignals() < 0) {
        stop = 1;
    } else if (p->callback && p->callback != Py_None) {
        PyObject *res = PyObject_CallFunction(p->callback, "iKK", pass, (unsigned long long)pos,
                                              (unsigned long long)size);
        if (!res)
            stop = 1;
        Py_XDECREF(res);
    }
    p->saved = PyEval_SaveThread();
    return stop;
}

/* The reader's interrupt check (it runs without the GIL): take the GIL and
 * run the signal handlers, so Ctrl-C stops a long read. Nonzero: stop (the
 * exception is then set). */
int
ml_py_check_signals(void *unused)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() < 0;
    PyGILState_Release(g);
    return stop;
}

/* A reader's message, decoded as the file system would (paths in it may hold
 * bytes that are not UTF-8). */
PyObject *
ml_py_errstr(const char *err)
{
    return PyUnicode_DecodeFSDefault(err);
}

ml_reader *
ml_py_open(PyObject *path)
{
    char err[ML_PY_ERRCAP];
    ml_reader *r = ml_reader_open(PyBytes_AS_STRING(path), err, sizeof(err));
    if (!r) {
        PyObject *msg = ml_py_errstr(err);
        if (!msg)
            return NULL;
        int e = errno;
        if (e) {
            PyObject *args = Py_BuildValue("(iO)", e, msg);
            if (args)
                PyErr_SetObject(PyExc_OSError, args);
            Py_XDECREF(args);
        } else {
            PyErr_SetObject(PyExc_ValueError, msg);
        }
        Py_DECREF(msg);
        return NULL;
    }
    ml_reader_set_check(r, ml_py_check_signals, NULL);
    return r;
}

/* Set d[key] = v and drop the reference to v; -1 if v is NULL or on error. */
int
ml_py_put(PyObject *d, const char *key, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

PyObject *
ml_py_str(const char *s)
{
    return PyUnicode_DecodeUTF8(s ? s : "", s ? (Py_ssize_t)strlen(s) : 0, "replace");
}

/* A file name from a capture: its bytes as the file system encoding reads
 * them (surrogateescape), so os.fsencode() gives them back exactly. */
PyObject *
ml_py_fsstr(const char *s)
{
    return PyUnicode_DecodeFSDefault(s ? s : "");
}

PyObject *
ml_py_report_failed(const char *err)
{
    if (!PyErr_Occurred()) {
        PyObject *msg = ml_py_errstr(err);
        if (msg) {
            PyErr_SetObject(PyExc_ValueError, msg);
            Py_DECREF(msg);
        }
    }
    return NULL;
}
