/* calltree.c: binding of analysis/calltree.h (read_calltree).
 *
 * The tree comes back as parallel lists of ints and strings (compact in
 * JSON for the flame graph page): see /docs/TREE.md for the shape. */
#include "bind/bind.h"

#include "analysis/calltree.h"

static PyObject *
ml_py_u32_list(const uint32_t *a, size_t n, int root_minus_one)
{
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *v = root_minus_one && a[i] == UINT32_MAX ? PyLong_FromLong(-1)
                                                           : PyLong_FromUnsignedLong(a[i]);
        if (!v) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

static PyObject *
ml_py_u64_list(const uint64_t *a, size_t n)
{
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(a[i]);
        if (!v) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

/* The views argument: a name or a sequence of names, as a bit set; -1 with
 * ValueError / TypeError set. */
static int
ml_py_views(PyObject *arg, unsigned *views)
{
    PyObject *seq = PyUnicode_Check(arg) ? PyTuple_Pack(1, arg) : PySequence_Tuple(arg);
    if (!seq)
        return -1;
    *views = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        PyObject *it = PyTuple_GET_ITEM(seq, i);
        const char *name = PyUnicode_Check(it) ? PyUnicode_AsUTF8(it) : NULL;
        int v = 0;
        for (; name && v < ML_CT_NVIEWS; v++)
            if (!strcmp(name, ml_calltree_view_names[v]))
                break;
        if (!name || v == ML_CT_NVIEWS) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError,
                             "unknown call tree view %R (peak, end, allocated, temporary, range, "
                             "range_new)", it);
            Py_DECREF(seq);
            return -1;
        }
        *views |= 1u << v;
    }
    Py_DECREF(seq);
    if (!*views) {
        PyErr_SetString(PyExc_ValueError, "no call tree view asked for");
        return -1;
    }
    return 0;
}

static PyObject *
ml_py_calltree_dict(ml_reader *r, const ml_calltree *t)
{
    static const char *const trailer_names[ML_TRAILER_COUNT] = {
        "allocs", "frees", "dropped", "nostack", "truncated_stacks"};
    PyObject *d = PyDict_New(), *o;
    if (!d)
        return NULL;
    if (ml_py_put(d, "events", PyLong_FromUnsignedLongLong(t->events)) < 0 ||
        ml_py_put(d, "allocations", PyLong_FromUnsignedLongLong(t->allocations)) < 0 ||
        ml_py_put(d, "allocated_bytes", PyLong_FromUnsignedLongLong(t->allocated_bytes)) < 0 ||
        ml_py_put(d, "frees", PyLong_FromUnsignedLongLong(t->frees)) < 0 ||
        ml_py_put(d, "reuses", PyLong_FromUnsignedLongLong(t->reuses)) < 0 ||
        ml_py_put(d, "duration_us", PyLong_FromUnsignedLongLong(t->duration_us)) < 0 ||
        ml_py_put(d, "end_bytes", PyLong_FromUnsignedLongLong(t->end_bytes)) < 0 ||
        ml_py_put(d, "end_count", PyLong_FromUnsignedLongLong(t->end_count)) < 0 ||
        ml_py_put(d, "truncated", PyBool_FromLong(t->truncated)) < 0 ||
        ml_py_put(d, "peak_bytes", PyLong_FromUnsignedLongLong(t->peak_bytes)) < 0 ||
        ml_py_put(d, "peak_time_us", PyLong_FromUnsignedLongLong(t->peak_time_us)) < 0)
        goto fail;
    if (t->truncated) {
        Py_INCREF(Py_None);
        o = Py_None;
    } else {
        o = PyDict_New();
        for (unsigned i = 0; o && i < ML_TRAILER_COUNT; i++)
            if (ml_py_put(o, trailer_names[i], PyLong_FromUnsignedLongLong(ml_reader_trailer(r, i))) < 0)
                Py_CLEAR(o);
    }
    if (ml_py_put(d, "trailer", o) < 0)
        goto fail;
    /* frames */
    PyObject *fn = PyList_New(t->nframes), *ff = PyList_New(t->nframes);
    if (!fn || !ff) {
        Py_XDECREF(fn);
        Py_XDECREF(ff);
        goto fail;
    }
    for (uint32_t i = 0; i < t->nframes; i++) {
        PyObject *a, *b;
        if (t->frame_native && t->frame_native[i]) { /* nstacks: function, library file name */
            uint32_t j = t->frame_code[i];
            a = ml_py_str(t->native_func[j] ? t->native_func[j] : "??");
            b = ml_py_fsstr(t->native_lib[j] ? t->native_lib[j] : "?");
        } else {
            const ml_code_info *c = ml_reader_code(r, t->frame_code[i]);
            a = ml_py_str(c ? c->name : "<no Python stack>");
            b = ml_py_fsstr(c ? c->file : "");
        }
        if (!a || !b) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_DECREF(fn);
            Py_DECREF(ff);
            goto fail;
        }
        PyList_SET_ITEM(fn, i, a);
        PyList_SET_ITEM(ff, i, b);
    }
    o = PyDict_New();
    if (!o || ml_py_put(o, "function", fn) < 0) {
        Py_XDECREF(o);
        Py_DECREF(ff);
        goto fail;
    }
    if (ml_py_put(o, "file", ff) < 0 ||
        ml_py_put(o, "line", ml_py_u32_list((const uint32_t *)t->frame_line, t->nframes, 0)) < 0) {
        Py_DECREF(o);
        goto fail;
    }
    /* lines are signed: fix the rare negative ones */
    PyObject *lines = PyDict_GetItemString(o, "line");
    for (uint32_t i = 0; i < t->nframes; i++)
        if (t->frame_line[i] < 0) {
            PyObject *v = PyLong_FromLong(t->frame_line[i]);
            if (!v || PyList_SetItem(lines, i, v) < 0) {
                Py_DECREF(o);
                goto fail;
            }
        }
    /* nstacks: "native": 1 for a native frame (present only when there are some) */
    if (t->frame_native) {
        PyObject *nl = PyList_New(t->nframes);
        for (uint32_t i = 0; nl && i < t->nframes; i++)
            PyList_SET_ITEM(nl, i, PyLong_FromLong(t->frame_native[i]));
        if (ml_py_put(o, "native", nl) < 0) {
            Py_DECREF(o);
            goto fail;
        }
    }
    if (ml_py_put(d, "frames", o) < 0)
        goto fail;
    /* types */
    o = PyList_New(t->ntypes);
    for (uint32_t i = 0; o && i < t->ntypes; i++) {
        PyObject *s = ml_py_str(t->types[i] ? ml_reader_type_name(r, t->types[i]) : "<untyped>");
        if (!s)
            Py_CLEAR(o);
        else
            PyList_SET_ITEM(o, i, s);
    }
    if (ml_py_put(d, "types", o) < 0)
        goto fail;
    /* threads */
    PyObject *tn = PyList_New(t->nthreads);
    for (uint32_t i = 0; tn && i < t->nthreads; i++) {
        const char *name = ml_reader_thread_name(r, t->threads[i], NULL);
        PyObject *s = name ? ml_py_str(name) : (Py_INCREF(Py_None), Py_None);
        if (!s)
            Py_CLEAR(tn);
        else
            PyList_SET_ITEM(tn, i, s);
    }
    if (!tn)
        goto fail;
    o = PyDict_New();
    if (!o || ml_py_put(o, "id", ml_py_u32_list(t->threads, t->nthreads, 0)) < 0 ||
        ml_py_put(o, "name", tn) < 0) {
        Py_XDECREF(o);
        goto fail;
    }
    if (ml_py_put(d, "threads", o) < 0)
        goto fail;
    /* nodes */
    o = PyDict_New();
    if (!o || ml_py_put(o, "parent", ml_py_u32_list(t->parent, t->nnodes, 1)) < 0 ||
        ml_py_put(o, "frame", ml_py_u32_list(t->frame, t->nnodes, 1)) < 0) {
        Py_XDECREF(o);
        goto fail;
    }
    if (ml_py_put(d, "nodes", o) < 0)
        goto fail;
    /* views */
    PyObject *views = PyDict_New();
    if (!views)
        goto fail;
    if (ml_py_put(d, "views", views) < 0)
        goto fail;
    for (int v = 0; v < ML_CT_NVIEWS; v++) {
        const ml_calltree_values *vals = &t->views[v];
        if (!vals->node)
            continue;
        o = PyDict_New();
        if (!o || ml_py_put(o, "node", ml_py_u32_list(vals->node, vals->n, 0)) < 0 ||
            ml_py_put(o, "type", ml_py_u32_list(vals->type, vals->n, 0)) < 0 ||
            ml_py_put(o, "thread", ml_py_u32_list(vals->thread, vals->n, 0)) < 0 ||
            ml_py_put(o, "bytes", ml_py_u64_list(vals->bytes, vals->n)) < 0 ||
            ml_py_put(o, "count", ml_py_u64_list(vals->count, vals->n)) < 0 ||
            PyDict_SetItemString(views, ml_calltree_view_names[v], o) < 0) {
            Py_XDECREF(o);
            goto fail;
        }
        Py_DECREF(o);
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *
ml_py_read_calltree(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "views", "temporary_n", "t0_us", "t1_us", "progress", NULL};
    PyObject *path, *views_arg = NULL, *t0 = Py_None, *t1 = Py_None;
    unsigned long long tn = 1;
    ml_py_progress pp = {Py_None, NULL};
    ml_calltree_opts opts = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O$KOOO", kwlist, PyUnicode_FSConverter, &path,
                                     &views_arg, &tn, &t0, &t1, &pp.callback))
        return NULL;
    opts.views = 1u << ML_CT_PEAK;
    if (views_arg && ml_py_views(views_arg, &opts.views) < 0)
        goto bad_args;
    if (tn < 1) {
        PyErr_SetString(PyExc_ValueError, "temporary_n must be at least 1");
        goto bad_args;
    }
    opts.temporary_n = tn;
    if (opts.views & (1u << ML_CT_RANGE | 1u << ML_CT_RANGE_NEW)) {
        if (t0 == Py_None || t1 == Py_None) {
            PyErr_SetString(PyExc_ValueError, "the range views need t0_us and t1_us");
            goto bad_args;
        }
        opts.t0_us = PyLong_AsUnsignedLongLong(t0);
        if (PyErr_Occurred())
            goto bad_args;
        opts.t1_us = PyLong_AsUnsignedLongLong(t1);
        if (PyErr_Occurred())
            goto bad_args;
        if (opts.t0_us > opts.t1_us) {
            PyErr_SetString(PyExc_ValueError, "the range starts after it ends (t0_us > t1_us)");
            goto bad_args;
        }
    }
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_calltree t;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_calltree_build(r, &opts, &pg, &t, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    PyObject *res = ml_py_calltree_dict(r, &t);
    if (res && (opts.views & (1u << ML_CT_RANGE | 1u << ML_CT_RANGE_NEW))) {
        PyObject *rd = Py_BuildValue("{s:K,s:K,s:K,s:K}", "t0_us", opts.t0_us, "t1_us", opts.t1_us,
                                     "high_bytes", (unsigned long long)t.range_high_bytes,
                                     "high_time_us", (unsigned long long)t.range_high_time_us);
        if (ml_py_put(res, "range", rd) < 0)
            Py_CLEAR(res);
    }
    ml_calltree_release(&t);
    ml_reader_free(r);
    return res;
bad_args:
    Py_DECREF(path);
    return NULL;
}

PyMethodDef ml_bind_calltree_methods[] = {
    {"read_calltree", (PyCFunction)(void (*)(void))ml_py_read_calltree, METH_VARARGS | METH_KEYWORDS,
     "read_calltree(path, views='peak', *, temporary_n=1, t0_us=None, t1_us=None, progress=None)"
     " -> dict: the call tree of a capture for one or more views (docs/TREE.md)."},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_calltree_init(PyObject *m)
{
    return 0;
}
