/* gc.c: bindings of the garbage-collector parts: the `gc` report
 * (analysis/gcreport.h), the in-process recording (capture/gcrec.h) and the
 * unreachable set (heap/cycles.h). */
#include "bind/bind.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/gcreport.h"
#include "analysis/seqsites.h" /* cycline */
#include "capture/gcrec.h"
#include "capture/tracker.h"
#include "heap/cycles.h"

/* The innermost frame of a stack as {function, file, line}. */
static PyObject *
ml_py_gc_site(ml_reader *r, ml_frame_id stack)
{
    const ml_frame_info *f = ml_reader_frame(r, stack);
    const ml_code_info *c = f ? ml_reader_code(r, f->code) : NULL;
    return Py_BuildValue("{s:N,s:N,s:i}", "function", ml_py_str(c ? c->name : "<no Python stack>"),
                         "file", ml_py_fsstr(c ? c->file : ""), "line",
                         f ? (int)ml_reader_frame_line(r, stack) : 0);
}

static PyObject *
ml_py_gc_collection(ml_reader *r, const ml_gc_collection *c)
{
    return Py_BuildValue("{s:K,s:K,s:I,s:K,s:K,s:K,s:K,s:N}", "start_us", (unsigned long long)c->start_us,
                         "pause_us", (unsigned long long)c->pause_us, "generation", c->generation,
                         "collected", (unsigned long long)c->collected, "uncollectable",
                         (unsigned long long)c->uncollectable, "freed_bytes",
                         (unsigned long long)c->freed_bytes, "freed_blocks",
                         (unsigned long long)c->freed_blocks, "site", ml_py_gc_site(r, c->stack));
}

static PyObject *
ml_py_gc_report(ml_reader *r, const ml_gc_report *g)
{
    PyObject *gens = PyList_New(0), *longest = PyList_New(0), *garbage = PyList_New(0);
    for (unsigned i = 0; gens && i < g->ngen; i++) {
        const ml_gc_generation *s = &g->gen[i];
        PyObject *d = Py_BuildValue("{s:I,s:K,s:K,s:K,s:K}", "generation", i, "collections",
                                    (unsigned long long)s->collections, "collected",
                                    (unsigned long long)s->collected, "uncollectable",
                                    (unsigned long long)s->uncollectable, "pause_us",
                                    (unsigned long long)s->pause_us);
        if (!d || PyList_Append(gens, d) < 0)
            Py_CLEAR(gens);
        Py_XDECREF(d);
    }
    for (size_t i = 0; longest && i < g->nlongest; i++) {
        PyObject *d = ml_py_gc_collection(r, &g->longest[i]);
        if (!d || PyList_Append(longest, d) < 0)
            Py_CLEAR(longest);
        Py_XDECREF(d);
    }
    for (size_t i = 0; garbage && i < g->ngarbage; i++) {
        const ml_site_row *row = &g->garbage[i];
        PyObject *d = ml_py_gc_site(r, row->stack);
        if (!d || ml_py_put(d, "type", ml_py_str(row->type ? ml_reader_type_name(r, row->type) : "<untyped>")) < 0 ||
            ml_py_put(d, "bytes", PyLong_FromUnsignedLongLong(row->bytes)) < 0 ||
            ml_py_put(d, "count", PyLong_FromUnsignedLongLong(row->count)) < 0 ||
            PyList_Append(garbage, d) < 0)
            Py_CLEAR(garbage);
        Py_XDECREF(d);
    }
    if (!gens || !longest || !garbage) {
        Py_XDECREF(gens);
        Py_XDECREF(longest);
        Py_XDECREF(garbage);
        return NULL;
    }
    return Py_BuildValue(
        "{s:K,s:O,s:O,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:n,s:N,s:N,s:N}", "duration_us",
        (unsigned long long)g->duration_us, "truncated", g->truncated ? Py_True : Py_False,
        "has_records", g->has_records ? Py_True : Py_False, "collections",
        (unsigned long long)g->collections, "incomplete", (unsigned long long)g->incomplete, "pauses",
        (unsigned long long)g->pauses, "pause_total_us", (unsigned long long)g->pause_total_us,
        "pause_p50_us", (unsigned long long)g->pause_p50_us, "pause_p99_us",
        (unsigned long long)g->pause_p99_us, "pause_max_us", (unsigned long long)g->pause_max_us,
        "freed_bytes", (unsigned long long)g->freed_bytes, "freed_blocks",
        (unsigned long long)g->freed_blocks, "uncollectable", (unsigned long long)g->uncollectable,
        "garbage_groups", (Py_ssize_t)g->garbage_groups, "generations", gens, "longest", longest,
        "garbage", garbage);
}

/* gcexit: uncollectable objects by (site, type): "uncollectable_recorded"
 * (the capture has UNCOLLECTABLE records), "uncollectable_bytes",
 * "uncollectable_blocks", "uncollectable_groups", "uncollectable_rows". */
static int
ml_py_gc_uncollectable(PyObject *res, ml_reader *r, const ml_gc_report *g)
{
    PyObject *rows = PyList_New(0);
    for (size_t i = 0; rows && i < g->nuncoll; i++) {
        const ml_site_row *row = &g->uncoll[i];
        PyObject *d = ml_py_gc_site(r, row->stack);
        if (!d || ml_py_put(d, "type", ml_py_str(row->type ? ml_reader_type_name(r, row->type) : "<untyped>")) < 0 ||
            ml_py_put(d, "bytes", PyLong_FromUnsignedLongLong(row->bytes)) < 0 ||
            ml_py_put(d, "count", PyLong_FromUnsignedLongLong(row->count)) < 0 ||
            PyList_Append(rows, d) < 0)
            Py_CLEAR(rows);
        Py_XDECREF(d);
    }
    return ml_py_put(res, "uncollectable_rows", rows) < 0 ||
                   ml_py_put(res, "uncollectable_recorded", PyBool_FromLong(g->has_uncollectable)) < 0 ||
                   ml_py_put(res, "uncollectable_bytes", PyLong_FromUnsignedLongLong(g->uncoll_bytes)) < 0 ||
                   ml_py_put(res, "uncollectable_blocks", PyLong_FromUnsignedLongLong(g->uncoll_blocks)) < 0 ||
                   ml_py_put(res, "uncollectable_groups", PyLong_FromSize_t(g->uncoll_groups)) < 0
               ? -1
               : 0;
}

static PyObject *
ml_py_read_gc(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "top", "progress", NULL};
    PyObject *path;
    Py_ssize_t top = 20;
    ml_py_progress pp = {Py_None, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|nO", kwlist, PyUnicode_FSConverter, &path, &top,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_gc_report g;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_gcreport_run(r, top > 0 ? (size_t)top : 0, &pg, &g, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    PyObject *res = ml_py_gc_report(r, &g);
    if (res && ml_py_gc_uncollectable(res, r, &g) < 0) /* gcexit */
        Py_CLEAR(res);
    ml_gcreport_release(&g);
    ml_reader_free(r);
    return res;
}

/* ---- in the running process ---- */

static PyObject *
ml_py_type_str(PyTypeObject *tp)
{
    size_t len;
    const char *name = ml_tracker_type_name(tp, &len);
    if (!name)
        return PyErr_NoMemory();
    return PyUnicode_DecodeUTF8(name, (Py_ssize_t)len, "replace");
}

/* A short label for a node of a picture: its type, and the name of a
 * function, class or module (read from the struct: no code runs). */
static PyObject *
ml_py_node_label(PyObject *o)
{
    PyObject *name = NULL;
    if (PyFunction_Check(o))
        name = ((PyFunctionObject *)o)->func_qualname;
    else if (PyType_Check(o))
        name = ((PyHeapTypeObject *)o)->ht_qualname;
    if (PyType_Check(o) && !(((PyTypeObject *)o)->tp_flags & Py_TPFLAGS_HEAPTYPE))
        name = NULL;
    if (name && PyUnicode_Check(name)) {
        Py_INCREF(name);
        return name;
    }
    Py_RETURN_NONE;
}

static PyObject *
ml_py_cycles_result(ml_cycles *c)
{
    PyObject *groups = PyList_New(0);
    for (size_t i = 0; groups && i < c->ngroups; i++) {
        const ml_cycle_group *g = &c->groups[i];
        const ml_cycle_island *isl = &c->islands[i];
        PyObject *types = PyList_New(0), *nodes = PyList_New(0), *edges = PyList_New(0);
        for (size_t k = 0; types && k < g->ntypes; k++) {
            PyObject *t = Py_BuildValue("(NKK)", ml_py_type_str(g->types[k].type),
                                        (unsigned long long)g->types[k].count,
                                        (unsigned long long)g->types[k].bytes);
            if (!t || PyList_Append(types, t) < 0)
                Py_CLEAR(types);
            Py_XDECREF(t);
        }
        for (size_t k = 0; nodes && k < isl->n; k++) {
            size_t sz = 0;
            PyObject *t = Py_BuildValue("(NNK)", ml_py_type_str(Py_TYPE(isl->objs[k])),
                                        ml_py_node_label(isl->objs[k]),
                                        (unsigned long long)(uintptr_t)isl->objs[k]);
            (void)sz;
            if (!t || PyList_Append(nodes, t) < 0)
                Py_CLEAR(nodes);
            Py_XDECREF(t);
        }
        for (size_t k = 0; edges && k < isl->nedges; k++) {
            PyObject *t = Py_BuildValue("(II)", isl->edge_from[k], isl->edge_to[k]);
            if (!t || PyList_Append(edges, t) < 0)
                Py_CLEAR(edges);
            Py_XDECREF(t);
        }
        PyObject *d = NULL;
        if (types && nodes && edges)
            d = Py_BuildValue("{s:N,s:K,s:K,s:K,s:N,s:N}", "types", types, "islands",
                              (unsigned long long)g->islands, "objects", (unsigned long long)g->objects,
                              "bytes", (unsigned long long)g->bytes, "nodes", nodes, "edges", edges);
        else {
            Py_XDECREF(types);
            Py_XDECREF(nodes);
            Py_XDECREF(edges);
        }
        if (!d || PyList_Append(groups, d) < 0)
            Py_CLEAR(groups);
        Py_XDECREF(d);
    }
    if (!groups)
        return NULL;
    return Py_BuildValue("{s:K,s:K,s:K,s:N}", "examined", (unsigned long long)c->examined, "objects",
                         (unsigned long long)c->objects, "bytes", (unsigned long long)c->bytes,
                         "groups", groups);
}

/* cycline: under `memlens run`, the allocation sites of the groups'
 * objects: the seqs of their blocks (tracker), then one pass over the
 * capture written so far (analysis/seqsites.h). */
typedef struct {
    ml_seq *seqs;
    uint32_t *labels;      /* (group, type) as koff[group] + type index */
    uint32_t *label_group, *label_type;
    size_t n, nlabels, nnodes; /* the example nodes come last, unlabelled */
    char path[64];
    const char *note;      /* why there are no sites (NULL: there are) */
} ml_py_cycle_seqs;

static void
ml_py_cycle_seqs_release(ml_py_cycle_seqs *q)
{
    free(q->seqs);
    free(q->labels);
    free(q->label_group);
    free(q->label_type);
}

/* Fill q from c (the objects still valid: GIL held, no collection). 0, or
 * -1 out of memory; no capture is not an error (q->note says it). */
static int
ml_py_cycle_seqs_take(const ml_cycles *c, ml_py_cycle_seqs *q)
{
    memset(q, 0, sizeof(*q));
    for (size_t g = 0; g < c->ngroups; g++) {
        q->nlabels += c->groups[g].ntypes;
        q->nnodes += c->islands ? c->islands[g].n : 0;
    }
    q->n = c->nmembers + q->nnodes;
    PyObject **objs = malloc((q->n + 1) * sizeof(*objs));
    size_t *koff = malloc((c->ngroups + 1) * sizeof(*koff));
    q->seqs = malloc((q->n + 1) * sizeof(*q->seqs));
    q->labels = malloc((q->n + 1) * sizeof(*q->labels));
    q->label_group = malloc((q->nlabels + 1) * sizeof(*q->label_group));
    q->label_type = malloc((q->nlabels + 1) * sizeof(*q->label_type));
    if (!objs || !koff || !q->seqs || !q->labels || !q->label_group || !q->label_type) {
        free(objs);
        free(koff);
        return -1;
    }
    size_t nl = 0, k = 0;
    for (size_t g = 0; g < c->ngroups; g++) {
        koff[g] = nl;
        for (size_t t = 0; t < c->groups[g].ntypes; t++, nl++) {
            q->label_group[nl] = (uint32_t)g;
            q->label_type[nl] = (uint32_t)t;
        }
    }
    for (size_t i = 0; i < c->nmembers; i++, k++) {
        objs[k] = c->members[i];
        q->labels[k] = (uint32_t)(koff[c->member_group[i]] + c->member_type[i]);
    }
    for (size_t g = 0; g < c->ngroups && c->islands; g++)
        for (size_t i = 0; i < c->islands[g].n; i++, k++) {
            objs[k] = c->islands[g].objs[i];
            q->labels[k] = ML_SEQSITES_NOLABEL;
        }
    if (ml_tracker_object_seqs(objs, q->n, q->seqs, q->path, sizeof(q->path)) < 0)
        q->note = errno == ESPIPE ? "the capture is not a regular file (a pipe): no allocation lines"
                                  : "not running under `memlens run`: no allocation lines";
    free(objs);
    free(koff);
    return 0;
}

/* The sites into the result: each group's "sites" [{type, function, file,
 * line, count}] (most first), each node's "site" ({function, file, line} or
 * None); "lines": whether sites were looked up, "lines_note": why not. */
static int
ml_py_cycle_sites_put(PyObject *res, const ml_py_cycle_seqs *q, const ml_seqsites *s)
{
    PyObject *groups = PyDict_GetItemString(res, "groups"); /* borrowed */
    if (!groups || !PyList_Check(groups))
        return -1;
    size_t node = q->n - q->nnodes;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(groups); g++) {
        PyObject *gd = PyList_GET_ITEM(groups, g);
        PyObject *types = PyDict_GetItemString(gd, "types");
        PyObject *nodes = PyDict_GetItemString(gd, "nodes");
        PyObject *rows = PyList_New(0);
        if (!rows || ml_py_put(gd, "sites", rows) < 0)
            return -1;
        for (size_t i = 0; s && i < s->nrows; i++) {
            const ml_seqsite_row *row = &s->rows[i];
            if (q->label_group[row->label] != (uint32_t)g)
                continue;
            const ml_seqsite *site = &s->sites[row->site];
            PyObject *tname = PyTuple_GET_ITEM(PyList_GET_ITEM(types, q->label_type[row->label]), 0);
            PyObject *d = Py_BuildValue("{s:O,s:N,s:N,s:i,s:K}", "type", tname, "function",
                                        ml_py_str(site->function), "file", ml_py_fsstr(site->file),
                                        "line", (int)site->line, "count", (unsigned long long)row->count);
            if (!d || PyList_Append(rows, d) < 0) {
                Py_XDECREF(d);
                return -1;
            }
            Py_DECREF(d);
        }
        for (Py_ssize_t i = 0; nodes && i < PyList_GET_SIZE(nodes); i++, node++) {
            uint32_t si = s && node < q->n ? s->site_of[node] : UINT32_MAX;
            PyObject *site = Py_None;
            if (si != UINT32_MAX)
                site = Py_BuildValue("{s:N,s:N,s:i}", "function", ml_py_str(s->sites[si].function), "file",
                                     ml_py_fsstr(s->sites[si].file), "line", (int)s->sites[si].line);
            else
                Py_INCREF(site);
            PyObject *old = PyList_GET_ITEM(nodes, i);
            PyObject *t = site ? Py_BuildValue("(OOOO)", PyTuple_GET_ITEM(old, 0), PyTuple_GET_ITEM(old, 1),
                                               PyTuple_GET_ITEM(old, 2), site)
                               : NULL;
            Py_XDECREF(site);
            if (!t)
                return -1;
            PyList_SetItem(nodes, i, t);
        }
    }
    return ml_py_put(res, "lines", PyBool_FromLong(s != NULL)) < 0 ||
                   ml_py_put(res, "lines_note", q->note ? PyUnicode_DecodeUTF8(q->note, (Py_ssize_t)strlen(q->note), "replace")
                                                        : (Py_INCREF(Py_None), Py_None)) < 0
               ? -1
               : 0;
}

static PyObject *
ml_py_cycles(PyObject *self, PyObject *args)
{
    PyObject *obj = NULL;
    if (!PyArg_ParseTuple(args, "|O", &obj))
        return NULL;
    /* No collection may free the (borrowed) objects while the result is
     * built: the collector stays off for that time (no Python code runs
     * meanwhile, so the program cannot tell). */
    int gc_was = PyGC_Disable();
    ml_cycles c;
    int rc = obj ? ml_cycles_of(obj, &c, 1) : ml_cycles_find(&c, 1);
    if (rc < 0) {
        if (gc_was)
            PyGC_Enable();
        if (rc == -2)
            PyErr_SetString(PyExc_RuntimeError, "memlens.cycles() cannot run while the collector collects");
        else
            PyErr_NoMemory();
        return NULL;
    }
    ml_py_cycle_seqs q;
    PyObject *res = NULL;
    if (ml_py_cycle_seqs_take(&c, &q) < 0)
        PyErr_NoMemory();
    else
        res = ml_py_cycles_result(&c);
    ml_cycles_release(&c);
    if (gc_was)
        PyGC_Enable();
    /* the objects are not used from here: the pass runs without the GIL */
    ml_seqsites s;
    memset(&s, 0, sizeof(s));
    char err[ML_PY_ERRCAP], note[ML_PY_ERRCAP + 64];
    if (res && !q.note) {
        ml_py_progress pp = {Py_None, NULL};
        ML_PY_RUN(rc, pp, ml_seqsites_find(q.path, q.seqs, q.labels, q.n, &s, err, sizeof(err)));
        if (rc < 0) { /* the capture cannot be read back: the groups without lines */
            snprintf(note, sizeof(note), "no allocation lines: the capture cannot be read back (%s)", err);
            q.note = note;
        }
    }
    if (res && ml_py_cycle_sites_put(res, &q, q.note ? NULL : &s) < 0)
        Py_CLEAR(res);
    if (!q.note)
        ml_seqsites_release(&s);
    ml_py_cycle_seqs_release(&q);
    return res;
}

static PyObject *
ml_py_gc_stats(PyObject *self, PyObject *unused)
{
    ml_gcrec_stats s;
    if (ml_gcrec_stats_get(&s) < 0)
        return PyErr_NoMemory();
    PyObject *gens = PyList_New(0);
    for (unsigned i = 0; gens && i < ML_GCREC_GENERATIONS; i++) {
        PyObject *d = Py_BuildValue("{s:I,s:K,s:K,s:K,s:K}", "generation", i, "collections",
                                    (unsigned long long)s.collections[i], "collected",
                                    (unsigned long long)s.collected[i], "uncollectable",
                                    (unsigned long long)s.uncollectable[i], "pause_ns",
                                    (unsigned long long)s.pause_ns[i]);
        if (!d || PyList_Append(gens, d) < 0)
            Py_CLEAR(gens);
        Py_XDECREF(d);
    }
    if (!gens)
        return NULL;
    return Py_BuildValue("{s:O,s:K,s:K,s:K,s:K,s:K,s:K,s:N}", "recording",
                         s.recording ? Py_True : Py_False, "pauses", (unsigned long long)s.pauses,
                         "pause_total_ns", (unsigned long long)s.pause_total_ns, "pause_max_ns",
                         (unsigned long long)s.pause_max_ns, "pause_p50_ns",
                         (unsigned long long)s.pause_p50_ns, "pause_p99_ns",
                         (unsigned long long)s.pause_p99_ns, "elapsed_ns",
                         (unsigned long long)s.elapsed_ns, "generations", gens);
}

static PyObject *
ml_py_gc_start_recording(PyObject *self, PyObject *unused)
{
    if (ml_gcrec_start() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ml_py_gc_stop_recording(PyObject *self, PyObject *unused)
{
    ml_gcrec_stop();
    Py_RETURN_NONE;
}

/* gcexit: gc_at_exit() -> {objects, blocks, duration_us} | None when no
 * capture file is written. */
static PyObject *
ml_py_gc_at_exit(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    ml_gcexit_stats st;
    if (ml_tracker_garbage_at_exit(&st) < 0) {
        if (errno == ENOENT)
            Py_RETURN_NONE;
        if (errno == EBUSY)
            return PyErr_Format(PyExc_RuntimeError, "gc_at_exit: the collector is running");
        return PyErr_NoMemory();
    }
    return Py_BuildValue("{sKsKsK}", "objects", (unsigned long long)st.objects, "blocks",
                         (unsigned long long)st.blocks, "duration_us", (unsigned long long)st.duration_us);
}

/* gcexit: the leaks rows' garbage at exit; "garbage_at_exit" is None
 * when the capture has no GARBAGE_AT_EXIT record. */
int
ml_py_leak_garbage(PyObject *res, const ml_leaks *l)
{
    PyObject *rows = PyDict_GetItemString(res, "leaks"); /* borrowed */
    if (!rows || !PyList_Check(rows) || (size_t)PyList_GET_SIZE(rows) != l->nrows)
        return -1;
    for (size_t i = 0; i < l->nrows; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (ml_py_put(row, "garbage_bytes", PyLong_FromUnsignedLongLong(l->rows[i].garbage_bytes)) < 0 ||
            ml_py_put(row, "garbage_blocks", PyLong_FromUnsignedLongLong(l->rows[i].garbage_count)) < 0)
            return -1;
    }
    PyObject *g = Py_None;
    if (l->garbage_records)
        g = Py_BuildValue("{sKsK}", "bytes", (unsigned long long)l->garbage_bytes, "blocks",
                          (unsigned long long)l->garbage_count);
    else
        Py_INCREF(g);
    return ml_py_put(res, "garbage_at_exit", g);
}

PyMethodDef ml_bind_gc_methods[] = {
    {"read_gc", (PyCFunction)(void (*)(void))ml_py_read_gc, METH_VARARGS | METH_KEYWORDS,
     "read_gc(path, top=20, progress=None): the collections, pauses and garbage of a capture."},
    {"cycles", ml_py_cycles, METH_VARARGS,
     "cycles([obj]): the unreachable set now, grouped (or the component of obj)."},
    {"gc_stats", ml_py_gc_stats, METH_NOARGS, "gc_stats(): collections and pauses recorded so far."},
    {"gc_start_recording", ml_py_gc_start_recording, METH_NOARGS, "Put the recorders into gc.callbacks."},
    {"gc_stop_recording", ml_py_gc_stop_recording, METH_NOARGS, "End memlens.start_gc_recording()."},
    {"gc_at_exit", ml_py_gc_at_exit, METH_NOARGS,
     "gc_at_exit() -> dict | None: write the cyclic garbage a full collection would free now "
     "(GARBAGE_AT_EXIT records; nothing collected); None when not capturing to a file."},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_gc_init(PyObject *m)
{
    (void)m;
    return ml_gcrec_init(); /* the recorders exist in every run (gcrec.h) */
}
