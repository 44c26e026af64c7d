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

#include <errno.h>

/* ==== capture bindings ==== */
#include "capture/tracker.h"

static PyObject *
ml_py_start(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "force", "meta_json", "max_frames", "follow_fork", "sample_ms", "stop_code", NULL};
    PyObject *path = Py_None, *stop = Py_None;
    const char *meta = "{}";
    Py_ssize_t meta_len = 2;
    int force = 0, max_frames = 128, follow_fork = 0, sample_ms = 10;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Ops#ipiO", kwlist, &path, &force, &meta, &meta_len,
                                     &max_frames, &follow_fork, &sample_ms, &stop))
        return NULL;
    PyObject *path_bytes = NULL;
    if (path != Py_None && !PyUnicode_FSConverter(path, &path_bytes))
        return NULL;
    if (stop != Py_None && !PyCode_Check(stop)) {
        Py_XDECREF(path_bytes);
        return PyErr_Format(PyExc_TypeError, "stop_code must be a code object");
    }
    ml_tracker_set_stop_code(stop == Py_None ? NULL : (PyCodeObject *)stop);
    ml_tracker_options opt = {path_bytes ? PyBytes_AS_STRING(path_bytes) : NULL, force, meta, (size_t)meta_len,
                              max_frames, follow_fork, sample_ms};
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
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsisi}", "allocations", st.allocs, "frees", st.frees, "dropped",
                         st.dropped, "nostack", st.nostack, "truncated", st.truncated, "reuses", st.reuses,
                         "bytes_written", st.bytes_written, "bytes_lost", st.bytes_lost, "tracer_lost",
                         st.tracer_lost, "ok", rc == 0);
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

#define ML_CAPTURE_METHODS                                                                         \
    {"start", (PyCFunction)(void (*)(void))ml_py_start, METH_VARARGS | METH_KEYWORDS,              \
     "start(path=None, force=False, meta_json='{}', max_frames=128, follow_fork=False, "          \
     "sample_ms=10, stop_code=None): start tracking (path None: counters only)."},                \
    {"stop", ml_py_stop, METH_NOARGS, "stop() -> dict: stop tracking, close the capture."},       \
    {"active", ml_py_active, METH_NOARGS, "active() -> bool"},                                     \
    {"counters", ml_py_counters, METH_NOARGS, "counters() -> dict(heap, allocated_bytes, allocations, peak)"}, \
    {"reset_peak", ml_py_reset_peak, METH_NOARGS, "reset_peak(): peak = current heap."},          \
    {"mark", ml_py_mark, METH_VARARGS, "mark(kind, label): MARK record (1 enter, 2 exit, 3 label)."}, \
    {"flush", ml_py_flush, METH_NOARGS, "flush(): write buffered records now."},                  \
    {"_after_fork_child", ml_py_after_fork_child, METH_NOARGS, "os.fork child hook."},

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
#define ML_HEAP_METHODS
static int ml_heap_init(PyObject *m) { return 0; }
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
