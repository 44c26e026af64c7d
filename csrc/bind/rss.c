/* rss.c: bindings of the RSS breakdown (capture/rsssample.h,
 * analysis/rss.h) and of NumPy's buffer hook (capture/numpybuf.h). */
#include "bind/bind.h"

#include "analysis/rss.h"
#include "capture/numpybuf.h"
#include "capture/rsssample.h"
#include "capture/tracker.h"

/* {"fields": {name: int}, "parts": {name: int}} of one sample */
static PyObject *
ml_rss_dict(const uint64_t *f, uint64_t time_us)
{
    static const char *const fields[ML_RSS_NFIELDS] = {
        "rss", "anonymous", "thread_stacks", "arenas_resident", "pymalloc_used", "malloc_used",
        "malloc_free", "memlens_tables", "traced", "traced_small", "native_traced", "arenas", "file_backed", "memlens_static",
        "anon_other"};
    int64_t parts[ML_RSS_NPARTS];
    ml_rss_parts_of(f, parts);
    PyObject *fd = PyDict_New(), *pd = PyDict_New();
    int bad = !fd || !pd;
    for (int i = 0; !bad && i < ML_RSS_NFIELDS; i++)
        bad = ml_py_put(fd, fields[i], PyLong_FromUnsignedLongLong(f[i])) < 0;
    for (int i = 0; !bad && i < ML_RSS_NPARTS; i++)
        bad = ml_py_put(pd, ml_rss_part_names[i], PyLong_FromLongLong(parts[i])) < 0;
    if (bad) {
        Py_XDECREF(fd);
        Py_XDECREF(pd);
        return NULL;
    }
    return Py_BuildValue("{s:d,s:N,s:N}", "time_s", (double)time_us / 1e6, "fields", fd, "parts", pd);
}

/* rss_now() -> dict: the breakdown of this process now */
static PyObject *
ml_py_rss_now(PyObject *self, PyObject *unused)
{
    ml_rss_sample s;
    memset(&s, 0, sizeof(s));
    ml_tracker_pymalloc_stats();
    if (ml_rsssample_take(&s, 1) < 0)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc/self/smaps_rollup");
    s.f[ML_RSS_OWN] = ml_tracker_own_bytes();
    if (ml_tracker_active()) {
        ml_counters c;
        ml_tracker_counters(&c);
        s.f[ML_RSS_TRACED] = c.heap < 0 ? 0 : (uint64_t)c.heap;
        s.f[ML_RSS_TRACED_SMALL] = c.heap_small < 0 ? 0 : (uint64_t)c.heap_small;
    }
    return ml_rss_dict(s.f, 0);
}

/* rss_report(path, max_points=2000, progress=None) -> dict(points, peak, end, samples, truncated) */
static PyObject *
ml_py_rss_report(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "max_points", "progress", NULL};
    PyObject *path;
    Py_ssize_t max_points = 2000;
    ml_py_progress pp = {Py_None, NULL};
    ml_progress pg = {ml_py_progress_call, &pp};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|nO", kwlist, PyUnicode_FSConverter, &path, &max_points,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_rss_series s;
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_rss_read(r, &s, max_points < 2 ? 2 : (size_t)max_points, &pg, err, sizeof(err)));
    ml_reader_free(r);
    if (rc < 0)
        return ml_py_report_failed(err);
    PyObject *points = PyList_New((Py_ssize_t)s.n);
    for (size_t i = 0; points && i < s.n; i++) {
        PyObject *d = ml_rss_dict(s.points[i].f, s.points[i].time_us);
        if (!d) {
            Py_CLEAR(points);
            break;
        }
        PyList_SET_ITEM(points, (Py_ssize_t)i, d);
    }
    PyObject *res = NULL;
    if (points)
        res = Py_BuildValue("{s:N,s:N,s:N,s:K,s:O}", "points", points, "peak",
                            s.samples ? ml_rss_dict(s.peak.f, s.peak.time_us) : Py_NewRef(Py_None), "end",
                            s.samples ? ml_rss_dict(s.end.f, s.end.time_us) : Py_NewRef(Py_None), "samples",
                            (unsigned long long)s.samples, "truncated", s.truncated ? Py_True : Py_False);
    ml_rss_series_release(&s);
    return res;
}

/* numpy_hooked() -> bool: NumPy's default data handler is wrapped */
static PyObject *
ml_py_numpy_hooked(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(ml_numpybuf_installed());
}

PyMethodDef ml_bind_rss_methods[] = {
    {"rss_now", ml_py_rss_now, METH_NOARGS, "rss_now() -> dict: where this process' RSS goes now"},
    {"rss_report", (PyCFunction)(void (*)(void))ml_py_rss_report, METH_VARARGS | METH_KEYWORDS,
     "rss_report(path, max_points=2000, progress=None) -> dict"},
    {"numpy_hooked", ml_py_numpy_hooked, METH_NOARGS, "numpy_hooked() -> bool"},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_rss_init(PyObject *m)
{
    (void)m;
    return ml_rsssample_setup();
}
