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
        s.f[ML_RSS_NATIVE] = c.heap_native < 0 ? 0 : (uint64_t)c.heap_native;
    }
    return ml_rss_dict(s.f, 0);
}

/* The "arenas kept by few objects" part of rss_report: at most top
 * groups (0 = all); names read from r. */
static PyObject *
ml_rss_arenas_dict(ml_reader *r, const ml_arena_report *a, size_t top)
{
    size_t n = top && top < a->ngroups ? top : a->ngroups;
    PyObject *groups = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; groups && i < n; i++) {
        const ml_arena_group *g = &a->groups[i];
        const ml_code_info *c = ml_reader_code(r, g->code);
        PyObject *d = Py_BuildValue(
            "{s:N,s:N,s:i,s:N,s:K,s:K,s:K}", "function", ml_py_str(c ? c->name : "<no Python stack>"), "file",
            ml_py_fsstr(c ? c->file : ""), "line", (int)g->line, "type",
            ml_py_str(g->type ? ml_reader_type_name(r, g->type) : "<untyped>"), "blocks",
            (unsigned long long)g->blocks, "bytes", (unsigned long long)g->bytes, "arenas",
            (unsigned long long)g->arenas);
        if (!d) {
            Py_CLEAR(groups);
            break;
        }
        PyList_SET_ITEM(groups, (Py_ssize_t)i, d);
    }
    if (!groups)
        return NULL;
    PyObject *list = PyList_New((Py_ssize_t)a->nlist);
    for (size_t i = 0; list && i < a->nlist; i++) {
        const struct ml_sparse_arena *e = &a->list[i];
        PyObject *d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K}", "base", (unsigned long long)e->base, "size",
                                    (unsigned long long)e->size, "resident", (unsigned long long)e->resident,
                                    "used", (unsigned long long)e->used, "blocks", (unsigned long long)e->blocks,
                                    "bytes", (unsigned long long)e->bytes);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    if (!list) {
        Py_DECREF(groups);
        return NULL;
    }
    return Py_BuildValue("{s:I,s:K,s:K,s:K,s:K,s:{s:K,s:K,s:K,s:K,s:K,s:K,s:N},s:n,s:N}", "threshold_pct", a->pct,
                         "arenas", (unsigned long long)a->arenas, "size", (unsigned long long)a->size,
                         "resident", (unsigned long long)a->resident, "used", (unsigned long long)a->used,
                         "mostly_empty", "arenas", (unsigned long long)a->sparse, "size",
                         (unsigned long long)a->sparse_size, "resident", (unsigned long long)a->sparse_resident,
                         "used", (unsigned long long)a->sparse_used, "blocks", (unsigned long long)a->sparse_blocks,
                         "bytes", (unsigned long long)a->sparse_bytes, "list", list, "groups_total", (Py_ssize_t)a->ngroups,
                         "groups", groups);
}

/* rss_report's result (bind.h). */
PyObject *
ml_py_rss_result(ml_reader *r, ml_rss_series *s, size_t arena_top)
{
    PyObject *arenas = ml_rss_arenas_dict(r, &s->arenas, arena_top);
    if (!arenas) {
        ml_rss_series_release(s);
        return NULL;
    }
    PyObject *points = PyList_New((Py_ssize_t)s->n);
    for (size_t i = 0; points && i < s->n; i++) {
        PyObject *d = ml_rss_dict(s->points[i].f, s->points[i].time_us);
        if (!d) {
            Py_CLEAR(points);
            break;
        }
        PyList_SET_ITEM(points, (Py_ssize_t)i, d);
    }
    PyObject *res = NULL;
    if (points)
        res = Py_BuildValue("{s:N,s:N,s:N,s:K,s:O,s:N}", "points", points, "peak",
                            s->samples ? ml_rss_dict(s->peak.f, s->peak.time_us) : Py_NewRef(Py_None), "end",
                            s->samples ? ml_rss_dict(s->end.f, s->end.time_us) : Py_NewRef(Py_None), "samples",
                            (unsigned long long)s->samples, "truncated", s->truncated ? Py_True : Py_False,
                            "arenas", arenas);
    else
        Py_DECREF(arenas);
    ml_rss_series_release(s);
    return res;
}

/* rss_report(path, max_points=2000, arena_pct=25, arena_top=10, progress=None)
 *   -> dict(points, peak, end, samples, truncated, arenas) */
static PyObject *
ml_py_rss_report(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "max_points", "arena_pct", "arena_top", "progress", NULL};
    PyObject *path;
    Py_ssize_t max_points = 2000, arena_top = 10;
    unsigned arena_pct = 25;
    ml_py_progress pp = {Py_None, NULL};
    ml_progress pg = {ml_py_progress_call, &pp};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|nInO", kwlist, PyUnicode_FSConverter, &path, &max_points,
                                     &arena_pct, &arena_top, &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_rss_series s;
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp,
              ml_rss_read(r, &s, max_points < 2 ? 2 : (size_t)max_points, arena_pct, &pg, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    PyObject *res = ml_py_rss_result(r, &s, arena_top < 0 ? 0 : (size_t)arena_top);
    ml_reader_free(r);
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
     "rss_report(path, max_points=2000, arena_pct=25, arena_top=10, progress=None) -> dict"},
    {"numpy_hooked", ml_py_numpy_hooked, METH_NOARGS, "numpy_hooked() -> bool"},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_rss_init(PyObject *m)
{
    (void)m;
    return ml_rsssample_setup();
}
