/* temporal.c: binding of analysis/temporal.h (the flame graph's time slider).
 *
 *   read_temporal(path, buckets=128, progress=None) -> dict
 *
 * with parallel lists, compact for the page: width_us, duration_us, top,
 * top_time_us, top_event (per bucket); frames {function, file, line};
 * nodes {parent, frame} (node 0 the root: parent -1, frame -1); types (names
 * by the capture's type id, index 0 "<untyped>"); steps {node, type,
 * bucket, bytes, count}: signed changes of what each (node, type) holds.
 * docs/FLAMEGRAPH.md says what they mean.
 */
#include "bind/bind.h"

#include "analysis/temporal.h"

/* A list of n numbers read by get(i); NULL on error. */
static PyObject *
ml_tp_list(size_t n, const void *base, size_t stride, int kind)
{
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        const char *p = (const char *)base + i * stride;
        PyObject *v;
        if (kind == 64)
            v = PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
        else if (kind == -64)
            v = PyLong_FromLongLong(*(const int64_t *)p);
        else if (kind == -32)  /* int32_t, or uint32_t with NONE as -1 */
            v = PyLong_FromLong(*(const int32_t *)p);
        else
            v = PyLong_FromUnsignedLong(*(const uint32_t *)p);
        if (!v) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

static PyObject *
ml_tp_frames(ml_reader *r, const ml_temporal *t)
{
    PyObject *fn = PyList_New((Py_ssize_t)t->nframes), *file = PyList_New((Py_ssize_t)t->nframes);
    PyObject *line = ml_tp_list(t->nframes, &t->frames[0].line, sizeof(t->frames[0]), -32);
    for (size_t i = 0; fn && file && line && i < t->nframes; i++) {
        const ml_code_info *c = t->frames[i].code ? ml_reader_code(r, t->frames[i].code) : NULL;
        PyObject *a = ml_py_str(c ? c->name : "<no Python stack>"), *b = ml_py_fsstr(c ? c->file : "");
        if (!a || !b) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_CLEAR(fn);
            break;
        }
        PyList_SET_ITEM(fn, (Py_ssize_t)i, a);
        PyList_SET_ITEM(file, (Py_ssize_t)i, b);
    }
    if (!fn || !file || !line) {
        Py_XDECREF(fn);
        Py_XDECREF(file);
        Py_XDECREF(line);
        return NULL;
    }
    return Py_BuildValue("{s:N,s:N,s:N}", "function", fn, "file", file, "line", line);
}

static PyObject *
ml_tp_types(ml_reader *r)
{
    uint32_t n = ml_reader_ntypes(r);
    PyObject *l = PyList_New((Py_ssize_t)n + 1);
    for (uint32_t i = 0; l && i <= n; i++) {
        PyObject *s = ml_py_str(i ? ml_reader_type_name(r, i) : "<untyped>");
        if (!s)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, i, s);
    }
    return l;
}

static PyObject *
ml_tp_dict(ml_reader *r, const ml_temporal *t)
{
    const ml_temporal_step *st = t->steps;
    size_t ss = sizeof(*st);
    PyObject *steps = Py_BuildValue(
        "{s:N,s:N,s:N,s:N,s:N}", "node", ml_tp_list(t->nsteps, st ? &st->node : NULL, ss, 32),
        "type", ml_tp_list(t->nsteps, st ? &st->type : NULL, ss, 32), "bucket",
        ml_tp_list(t->nsteps, st ? &st->bucket : NULL, ss, 32), "bytes",
        ml_tp_list(t->nsteps, st ? &st->dbytes : NULL, ss, -64), "count",
        ml_tp_list(t->nsteps, st ? &st->dblocks : NULL, ss, -64));
    PyObject *nodes = Py_BuildValue("{s:N,s:N}", "parent", ml_tp_list(t->nnodes, t->parent, 4, -32),
                                    "frame", ml_tp_list(t->nnodes, t->frame, 4, -32));
    return Py_BuildValue("{s:K,s:K,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "width_us",
                         (unsigned long long)t->width_us, "duration_us",
                         (unsigned long long)t->duration_us, "top", ml_tp_list(t->nbuckets, t->top, 8, 64),
                         "top_time_us", ml_tp_list(t->nbuckets, t->top_time_us, 8, 64), "top_event",
                         ml_tp_list(t->nbuckets, t->top_event, 8, 64), "frames", ml_tp_frames(r, t),
                         "nodes", nodes, "types", ml_tp_types(r), "steps", steps);
}

static PyObject *
ml_tp_read_temporal(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "buckets", "progress", NULL};
    PyObject *path, *res;
    unsigned int buckets = 128;
    ml_py_progress pp = {Py_None, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|IO", kwlist, PyUnicode_FSConverter, &path, &buckets,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_temporal t;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_temporal_build(r, buckets, &pg, &t, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    res = ml_tp_dict(r, &t);
    ml_temporal_release(&t);
    ml_reader_free(r);
    return res;
}

int
ml_bind_temporal_init(PyObject *m)
{
    return 0;
}

PyMethodDef ml_bind_temporal_methods[] = {
    {"read_temporal", (PyCFunction)(void (*)(void))ml_tp_read_temporal, METH_VARARGS | METH_KEYWORDS,
     "read_temporal(path, buckets=128, progress=None) -> dict: held bytes per (node, type) as runs "
     "of time-bucket peaks (the flame graph's time slider)."},
    {NULL, NULL, 0, NULL},
};
