/* capture.c: bindings of capture/tracker.h: start/stop tracking, counters,
 * marks, fork hooks, type names. */
#include "bind/bind.h"

#include <errno.h>
#include <string.h>
#include "capture/tracker.h"

/* Tell the tracker where memlens' own Python code is (the package folder,
 * as its code objects name their files), once. Returns 0, or -1 with an
 * exception set. */
static int
ml_py_set_own_dir(void)
{
    static int done;
    if (done)
        return 0;
    PyObject *pkg = PyImport_ImportModule("memlens");
    PyObject *path = pkg ? PyObject_GetAttrString(pkg, "__path__") : NULL;
    PyObject *dir = path && PyList_Check(path) && PyList_GET_SIZE(path) ? PyList_GET_ITEM(path, 0) : NULL;
    Py_ssize_t len = 0;
    const char *utf8 = dir && PyUnicode_Check(dir) ? PyUnicode_AsUTF8AndSize(dir, &len) : NULL;
    int rc = 0;
    if (utf8 && ml_tracker_set_own_dir(utf8, (size_t)len) < 0) {
        PyErr_NoMemory();
        rc = -1;
    }
    if (!utf8 && PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_MemoryError))
        PyErr_Clear(); /* no package folder (embedded?): nothing is left out */
    else if (!utf8 && PyErr_Occurred())
        rc = -1;
    Py_XDECREF(path);
    Py_XDECREF(pkg);
    done = rc == 0;
    return rc;
}

static PyObject *
ml_py_start(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path",      "force",     "meta_json", "max_frames", "follow_fork",
                             "sample_ms", "stop_code", "compress",  "exact",      NULL};
    PyObject *path = Py_None, *stop = Py_None;
    const char *meta = "{}";
    Py_ssize_t meta_len = 2;
    int force = 0, max_frames = 128, follow_fork = 0, sample_ms = 10, compress = 0, exact = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Ops#ipiOip", kwlist, &path, &force, &meta, &meta_len,
                                     &max_frames, &follow_fork, &sample_ms, &stop, &compress, &exact))
        return NULL;
    PyObject *path_bytes = NULL;
    if (path != Py_None && !PyUnicode_FSConverter(path, &path_bytes))
        return NULL;
    if (stop != Py_None && !PyCode_Check(stop)) {
        Py_XDECREF(path_bytes);
        return PyErr_Format(PyExc_TypeError, "stop_code must be a code object");
    }
    ml_tracker_set_stop_code(stop == Py_None ? NULL : (PyCodeObject *)stop);
    if (ml_py_set_own_dir() < 0) {
        Py_XDECREF(path_bytes);
        return NULL;
    }
    ml_tracker_options opt = {path_bytes ? PyBytes_AS_STRING(path_bytes) : NULL, force, meta, (size_t)meta_len,
                              max_frames, follow_fork, sample_ms, compress, exact};
    int rc = ml_tracker_start(&opt);
    if (rc < 0) {
        if (errno == EBUSY)
            PyErr_SetString(PyExc_RuntimeError, "memlens is already tracking in this process");
        else
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    }
    Py_XDECREF(path_bytes);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ml_py_stop(PyObject *self, PyObject *unused)
{
    ml_tracker_stats st;
    int rc = ml_tracker_stop(&st);
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsisisi}", "allocations", st.allocs, "frees", st.frees, "dropped",
                         st.dropped, "nostack", st.nostack, "truncated", st.truncated, "reuses", st.reuses,
                         "hook_drains", st.hook_drains, "bytes_written", st.bytes_written, "bytes_lost",
                         st.bytes_lost, "tracer_lost", st.tracer_lost, "compressed", st.compressed, "ok", rc == 0);
}

static PyObject *
ml_py_active(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(ml_tracker_active());
}

static PyObject *
ml_py_counters(PyObject *self, PyObject *unused)
{
    ml_counters c;
    ml_tracker_counters(&c);
    return Py_BuildValue("{sLsKsKsK}", "heap", (long long)c.heap, "allocated_bytes", c.allocated_bytes,
                         "allocations", c.allocations, "peak", c.peak);
}

static PyObject *
ml_py_reset_peak(PyObject *self, PyObject *unused)
{
    ml_tracker_reset_peak();
    Py_RETURN_NONE;
}

/* ---- pytop: windows of the counters-only session ---- */

static PyObject *
ml_py_window_begin(PyObject *self, PyObject *unused)
{
    if (ml_tracker_window_begin() == 0)
        Py_RETURN_NONE;
    if (errno == EBUSY)
        return PyErr_Format(PyExc_RuntimeError, "no counters-only session is running");
    return PyErr_NoMemory();
}

/* A window's name as str (a file name keeps its bytes: surrogateescape). */
static PyObject *
ml_py_window_text(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static PyObject *
ml_py_window_end(PyObject *self, PyObject *unused)
{
    ml_windows_top top;
    if (ml_tracker_window_end(&top) < 0) {
        ml_windows_top_release(&top);
        return PyErr_NoMemory();
    }
    PyObject *sa = ml_py_window_text(top.site_allocated), *ta = ml_py_window_text(top.type_allocated);
    PyObject *sl = ml_py_window_text(top.site_left), *tl = ml_py_window_text(top.type_left);
    PyObject *r = NULL;
    if (sa && ta && sl && tl)
        r = Py_BuildValue("{sOsKsOsKsOsKsOsK}", "site_allocated", sa, "site_allocated_bytes",
                          top.site_allocated_bytes, "type_allocated", ta, "type_allocated_bytes",
                          top.type_allocated_bytes, "site_left", sl, "site_left_bytes", top.site_left_bytes,
                          "type_left", tl, "type_left_bytes", top.type_left_bytes);
    Py_XDECREF(sa);
    Py_XDECREF(ta);
    Py_XDECREF(sl);
    Py_XDECREF(tl);
    ml_windows_top_release(&top);
    return r;
}

static PyObject *
ml_py_mark(PyObject *self, PyObject *args)
{
    unsigned kind;
    const char *label;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "Is#", &kind, &label, &len))
        return NULL;
    ml_tracker_mark(kind, label, (size_t)len);
    Py_RETURN_NONE;
}

static PyObject *
ml_py_flush(PyObject *self, PyObject *unused)
{
    ml_tracker_flush();
    Py_RETURN_NONE;
}

static PyObject *
ml_py_after_fork_child(PyObject *self, PyObject *unused)
{
    if (ml_tracker_after_fork_child() < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyBool_FromLong(ml_tracker_active());
}

static PyObject *
ml_py_before_fork(PyObject *self, PyObject *unused)
{
    ml_tracker_before_fork();
    Py_RETURN_NONE;
}

static PyObject *
ml_py_after_fork_parent(PyObject *self, PyObject *unused)
{
    ml_tracker_after_fork_parent();
    Py_RETURN_NONE;
}

/* type_name(tp): the census's name of a type (ml_tracker_type_name). */
int ml_typenames_init(void); /* capture/types.h, whose ml_types clashes with analysis/report.h */

static PyObject *
ml_py_census_type_name(PyObject *self, PyObject *tp)
{
    if (!PyType_Check(tp)) {
        PyErr_SetString(PyExc_TypeError, "type_name() takes a type");
        return NULL;
    }
    size_t len;
    const char *name = ml_tracker_type_name((PyTypeObject *)tp, &len);
    if (!name)
        return PyErr_NoMemory();
    return PyUnicode_DecodeUTF8(name, (Py_ssize_t)len, "replace");
}

/* The sampler thread must not exist when os.fork() counts the process'
 * threads (3.12+ warns about forking a multi-threaded process, after the
 * fork and before the after_in_parent hooks): it stops in a `before` hook
 * and starts again in an after_in_parent hook. Registered once, at import,
 * after the type names table (types.h) is set up. */
int
ml_bind_capture_init(PyObject *m)
{
    if (ml_typenames_init() < 0)
        return -1;
    PyObject *os = PyImport_ImportModule("os");
    PyObject *reg = os ? PyObject_GetAttrString(os, "register_at_fork") : NULL;
    PyObject *before = reg ? PyObject_GetAttrString(m, "_before_fork") : NULL;
    PyObject *after = before ? PyObject_GetAttrString(m, "_after_fork_parent") : NULL;
    PyObject *kw = after ? Py_BuildValue("{sOsO}", "before", before, "after_in_parent", after) : NULL;
    PyObject *args = kw ? PyTuple_New(0) : NULL;
    PyObject *r = args ? PyObject_Call(reg, args, kw) : NULL;
    int rc = r ? 0 : -1;
    Py_XDECREF(r);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(after);
    Py_XDECREF(before);
    Py_XDECREF(reg);
    Py_XDECREF(os);
    return rc;
}

PyMethodDef ml_bind_capture_methods[] = {
    {"start", (PyCFunction)(void (*)(void))ml_py_start, METH_VARARGS | METH_KEYWORDS,
     "start(path=None, force=False, meta_json='{}', max_frames=128, follow_fork=False, "
     "sample_ms=10, stop_code=None, compress=0, exact=False): start tracking (path None: "
     "counters only; compress 1-9: write the zlib container while running; exact: free lists "
     "off while recording)."},
    {"stop", ml_py_stop, METH_NOARGS, "stop() -> dict: stop tracking, close the capture."},
    {"active", ml_py_active, METH_NOARGS, "active() -> bool"},
    {"counters", ml_py_counters, METH_NOARGS, "counters() -> dict(heap, allocated_bytes, allocations, peak)"},
    {"reset_peak", ml_py_reset_peak, METH_NOARGS, "reset_peak(): peak = current heap."},
    {"window_begin", ml_py_window_begin, METH_NOARGS,
     "window_begin(): (counters-only session) count sites and types from now (pytest --memlens)."},
    {"window_end", ml_py_window_end, METH_NOARGS,
     "window_end() -> dict: the window's top site and type by bytes allocated and by bytes left "
     "allocated (site_allocated, type_allocated, site_left, type_left and their *_bytes)."},
    {"mark", ml_py_mark, METH_VARARGS, "mark(kind, label): MARK record (1 enter, 2 exit, 3 label)."},
    {"flush", ml_py_flush, METH_NOARGS, "flush(): write buffered records now."},
    {"_after_fork_child", ml_py_after_fork_child, METH_NOARGS, "os.fork child hook."},
    {"_before_fork", ml_py_before_fork, METH_NOARGS, "os.fork hook: the sampler thread stops."},
    {"_after_fork_parent", ml_py_after_fork_parent, METH_NOARGS,
     "os.fork hook: the sampler thread starts again."},
    {"type_name", ml_py_census_type_name, METH_O,
     "type_name(tp) -> str: the type's unique name (types.h)."},
    {NULL, NULL, 0, NULL},
};
