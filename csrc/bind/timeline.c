/* timeline.c: bindings of analysis/lines.h, analysis/timeline.h and the
 * line meter (capture/linemeter.h). */
#include "bind/bind.h"
#include <frameobject.h> /* PyFrame_Check; public header on 3.10-3.13 */

#include "analysis/lines.h"
#include "analysis/timeline.h"
#include "capture/linemeter.h"
#include "capture/tracker.h"

/* Open a capture (path: bytes from PyUnicode_FSConverter) for a timeline
 * binding; NULL with ValueError set (callers show it as one line). */
static ml_reader *
ml_tl_open(PyObject *path)
{
    ml_reader *r = ml_py_open(path);
    if (!r && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *msg = value ? PyObject_GetAttrString(value, "strerror") : NULL;
        if (msg && msg != Py_None)
            PyErr_SetObject(PyExc_ValueError, msg);
        else
            PyErr_SetString(PyExc_ValueError, "cannot read the capture");
        Py_XDECREF(msg);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
    return r;
}

/* Set ValueError from a C message unless an exception (KeyboardInterrupt
 * from the interrupt check) is already set. */
static void
ml_tl_failed(const char *err)
{
    ml_py_report_failed(err);
}

static PyObject *
ml_py_fsstr_or_none(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return ml_py_fsstr(s);
}

static PyObject *
ml_py_str_or_none(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return ml_py_str(s);
}

static PyObject *
ml_tl_meta(const ml_reader *r)
{
    size_t len;
    const char *meta = ml_reader_meta(r, &len);
    return PyUnicode_DecodeUTF8(meta ? meta : "{}", meta ? (Py_ssize_t)len : 2, "replace");
}

static PyObject *
ml_tl_func_dict(const ml_lines_func *f)
{
    PyObject *rows = PyList_New((Py_ssize_t)f->nrows);
    if (!rows)
        return NULL;
    for (size_t i = 0; i < f->nrows; i++) {
        const ml_lines_row *w = &f->rows[i];
        PyObject *t = Py_BuildValue("(iLKKKKLK)", (int)w->line, (long long)w->increment,
                                    (unsigned long long)w->allocated,
                                    (unsigned long long)w->allocations,
                                    (unsigned long long)w->freed, (unsigned long long)w->frees,
                                    (long long)w->heap, (unsigned long long)w->last_time_us);
        if (!t) {
            Py_DECREF(rows);
            return NULL;
        }
        PyList_SET_ITEM(rows, (Py_ssize_t)i, t);
    }
    PyObject *code_lines = PyList_New((Py_ssize_t)f->ncode_lines);
    for (size_t i = 0; code_lines && i < f->ncode_lines; i++) {
        PyObject *n = PyLong_FromLong(f->code_lines[i]);
        if (!n) {
            Py_CLEAR(code_lines);
            break;
        }
        PyList_SET_ITEM(code_lines, (Py_ssize_t)i, n);
    }
    if (!code_lines) {
        Py_DECREF(rows);
        return NULL;
    }
    return Py_BuildValue("{s:N,s:N,s:I,s:L,s:K,s:K,s:L,s:O,s:N,s:N}", "file", ml_py_fsstr(f->file),
                         "function", ml_py_str(f->name), "firstlineno", (unsigned)f->firstlineno, "net",
                         (long long)f->net, "allocated", (unsigned long long)f->allocated,
                         "allocations", (unsigned long long)f->allocations, "rows_sum",
                         (long long)f->rows_sum, "adds_up", f->adds_up ? Py_True : Py_False,
                         "rows", rows, "code_lines", code_lines);
}

/* lines(path, names, files, progress=None) -> dict(meta, events, unattributed, functions) */
static PyObject *
ml_tl_lines(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "names", "files", "progress", NULL};
    PyObject *path, *names, *files, *funcs = NULL, *result = NULL;
    char err[ML_PY_ERRCAP];
    ml_py_progress pp = {Py_None, NULL};
    ml_progress pg = {ml_py_progress_call, &pp};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O!O!|O", kwlist, PyUnicode_FSConverter, &path,
                                     &PyList_Type, &names, &PyList_Type, &files, &pp.callback))
        return NULL;
    ml_reader *r = ml_tl_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_lines *l = ml_lines_new();
    if (!l)
        goto nomem;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names) + PyList_GET_SIZE(files); i++) {
        int is_name = i < PyList_GET_SIZE(names);
        PyObject *o = is_name ? PyList_GET_ITEM(names, i)
                              : PyList_GET_ITEM(files, i - PyList_GET_SIZE(names));
        /* names as UTF-8, files in the file system encoding: as the writer
         * wrote them (compat: ml_compat_str_utf8) */
        PyObject *b = is_name ? PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape")
                              : PyUnicode_EncodeFSDefault(o);
        if (!b)
            goto done;
        int sel = is_name ? ml_lines_select_name(l, PyBytes_AS_STRING(b))
                          : ml_lines_select_file(l, PyBytes_AS_STRING(b));
        Py_DECREF(b);
        if (sel < 0)
            goto nomem;
    }
    int rc;
    ML_PY_RUN(rc, pp, ml_lines_run(l, r, &pg, err, sizeof(err)));
    if (rc < 0) {
        ml_tl_failed(err);
        goto done;
    }
    funcs = PyList_New(0);
    for (size_t i = 0; funcs && i < ml_lines_nfuncs(l); i++) {
        PyObject *d = ml_tl_func_dict(ml_lines_func_at(l, i));
        if (!d || PyList_Append(funcs, d) < 0) {
            Py_XDECREF(d);
            Py_CLEAR(funcs);
            break;
        }
        Py_DECREF(d);
    }
    if (funcs)
        result = Py_BuildValue("{s:N,s:K,s:K,s:O,s:O}", "meta", ml_tl_meta(r), "events",
                               (unsigned long long)ml_lines_events(l), "unattributed",
                               (unsigned long long)ml_lines_unattributed(l), "functions", funcs,
                               "truncated", ml_reader_truncated(r) ? Py_True : Py_False);
    goto done;
nomem:
    PyErr_NoMemory();
done:
    Py_XDECREF(funcs);
    ml_lines_free(l);
    ml_reader_free(r);
    return result;
}

static PyObject *
ml_tl_groups(const struct ml_timeline_group *g, size_t n, int sites)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        /* file names in the file-system encoding, as the other reports decode them */
        PyObject *d = sites ? Py_BuildValue("{s:N,s:N,s:i,s:K,s:K}", "file", ml_py_fsstr(g[i].file),
                                            "function", ml_py_str(g[i].function), "line",
                                            (int)g[i].line, "bytes",
                                            (unsigned long long)g[i].bytes, "blocks",
                                            (unsigned long long)g[i].blocks)
                            : Py_BuildValue("{s:N,s:K,s:K}", "type", ml_py_str(g[i].type), "bytes",
                                            (unsigned long long)g[i].bytes, "blocks",
                                            (unsigned long long)g[i].blocks);
        if (!d)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    return list;
}

/* gc: [(start_us, end_us, generation, collected, uncollectable, complete)] */
static PyObject *
ml_tl_gcs(const ml_timeline *t)
{
    PyObject *out = PyList_New((Py_ssize_t)t->ngcs);
    for (size_t i = 0; out && i < t->ngcs; i++) {
        const ml_timeline_gc *c = &t->gcs[i];
        PyObject *g = Py_BuildValue("(KKIKKO)", (unsigned long long)c->start_us,
                                    (unsigned long long)c->end_us, c->generation,
                                    (unsigned long long)c->collected,
                                    (unsigned long long)c->uncollectable, c->complete ? Py_True : Py_False);
        if (!g) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, g);
    }
    return out;
}

static PyObject *
ml_tl_timeline_dict(const ml_timeline *t, PyObject *meta)
{
    PyObject *points = PyList_New((Py_ssize_t)t->npoints);
    PyObject *heap_max = PyList_New((Py_ssize_t)t->npoints);
    PyObject *marks = PyList_New((Py_ssize_t)t->nmarks);
    if (!points || !heap_max || !marks)
        goto fail;
    for (size_t i = 0; i < t->npoints; i++) {
        PyObject *p = Py_BuildValue("(KKK)", (unsigned long long)t->points[i].time_us,
                                    (unsigned long long)t->points[i].rss,
                                    (unsigned long long)t->points[i].heap);
        PyObject *m = PyLong_FromUnsignedLongLong(t->points[i].heap_max);
        if (!p || !m) {
            Py_XDECREF(p);
            Py_XDECREF(m);
            goto fail;
        }
        PyList_SET_ITEM(points, (Py_ssize_t)i, p);
        PyList_SET_ITEM(heap_max, (Py_ssize_t)i, m);
    }
    for (size_t i = 0; i < t->nmarks; i++) {
        PyObject *k = Py_BuildValue("(KIN)", (unsigned long long)t->marks[i].time_us,
                                    t->marks[i].kind, ml_py_str(t->marks[i].label));
        if (!k)
            goto fail;
        PyList_SET_ITEM(marks, (Py_ssize_t)i, k);
    }
    PyObject *gcs = ml_tl_gcs(t);
    if (!gcs)
        goto fail;
    return Py_BuildValue(
        "{s:N,s:K,s:O,s:N,s:N,s:N,s:N,s:N,s:K,s:O,s:{s:K,s:K,s:K,s:N,s:N,s:i,s:K,s:K}}", "gcs", gcs,
        "gcs_dropped", (unsigned long long)t->gcs_dropped, "meta", meta,
        "top_sites", ml_tl_groups(t->top_sites, t->ntop_sites, 1), "top_types",
        ml_tl_groups(t->top_types, t->ntop_types, 0), "points",
        points, "heap_max", heap_max, "marks", marks, "end_us", (unsigned long long)t->end_us, "truncated",
        t->truncated ? Py_True : Py_False, "peak", "heap", (unsigned long long)t->peak_heap,
        "time_us", (unsigned long long)t->peak_time_us, "blocks",
        (unsigned long long)t->peak_blocks, "file", ml_py_fsstr_or_none(t->top_file), "function",
        ml_py_str_or_none(t->top_function),
        "line", (int)t->top_line, "site_bytes", (unsigned long long)t->top_bytes, "site_blocks",
        (unsigned long long)t->top_blocks);
fail:
    Py_XDECREF(points);
    Py_XDECREF(heap_max);
    Py_XDECREF(marks);
    return NULL;
}

/* timeline(path, progress=None) -> dict(meta, points, marks, end_us, truncated, peak) */
static PyObject *
ml_tl_timeline(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "progress", NULL};
    PyObject *path;
    ml_timeline t;
    char err[ML_PY_ERRCAP];
    int rc;
    ml_py_progress pp = {Py_None, NULL};
    ml_progress pg = {ml_py_progress_call, &pp};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O", kwlist, PyUnicode_FSConverter, &path,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_tl_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ML_PY_RUN(rc, pp, ml_timeline_build(r, &t, &pg, err, sizeof(err)));
    PyObject *meta = rc < 0 ? NULL : ml_tl_meta(r);
    PyObject *result = meta ? ml_tl_timeline_dict(&t, meta) : NULL;
    if (rc < 0)
        ml_tl_failed(err);
    else
        ml_timeline_release(&t);
    Py_XDECREF(meta);
    ml_reader_free(r);
    return result;
}

/* timeline_meta(path) -> the header's JSON metadata (str) */
static PyObject *
ml_tl_timeline_meta(PyObject *self, PyObject *args)
{
    PyObject *path;
    if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path))
        return NULL;
    ml_reader *r = ml_tl_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    PyObject *meta = ml_tl_meta(r);
    ml_reader_free(r);
    return meta;
}

/* Line meters (@memlens.profile). Codes are kept alive by memlens.profile. */
static PyObject *ml_tl_trace_fn; /* linemeter_trace itself, for settrace */
static uint64_t ml_tl_int_bytes; /* what the interpreter allocates for a line int */

static PyObject *
ml_tl_meter_register(PyObject *self, PyObject *args)
{
    PyObject *code;
    if (!PyArg_ParseTuple(args, "O!", &PyCode_Type, &code))
        return NULL;
    if (!ml_linemeter_get(code, ((PyCodeObject *)code)->co_firstlineno))
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
ml_tl_meter_enter(PyObject *self, PyObject *code)
{
    ml_linemeter *m = ml_linemeter_find(code);
    if (m && ml_linemeter_enter(m, PyThreadState_Get()) < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
ml_tl_meter_exit(PyObject *self, PyObject *code)
{
    ml_linemeter *m = ml_linemeter_find(code);
    if (m)
        ml_linemeter_exit(m, PyThreadState_Get());
    Py_RETURN_NONE;
}

/* sys.monitoring LINE callback (3.12+): (code, line). The line int above 256
 * was allocated for this call by the interpreter: tell the meter. */
static PyObject *
ml_tl_meter_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "meter_line(code, line)");
        return NULL;
    }
    long line = PyLong_AsLong(args[1]);
    if (line == -1 && PyErr_Occurred())
        return NULL;
    ml_linemeter *m = ml_linemeter_find(args[0]);
    ml_linemeter_noise(line > 256 || line < -5 ? ml_tl_int_bytes : 0);
    if (m)
        ml_linemeter_line(m, PyThreadState_Get(), (int32_t)line);
    Py_RETURN_NONE;
}

/* The line tracer for 3.10/3.11 (C level, so Python does not build f_locals
 * for each event): only frames of metered code count. */
static int
ml_tl_ctrace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    if (what != PyTrace_LINE)
        return 0;
    PyCodeObject *code = PyFrame_GetCode(frame);
    ml_linemeter *m = ml_linemeter_find(code);
    Py_DECREF(code);
    if (m)
        ml_linemeter_line(m, PyThreadState_Get(), (int32_t)PyFrame_GetLineNumber(frame));
    return 0;
}

/* The same, callable from Python (sys.gettrace() returns it while the C
 * tracer is on, so memlens.profile can tell that it is on). */
static PyObject *
ml_tl_meter_trace(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyFrame_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "meter_trace(frame, event, arg)");
        return NULL;
    }
    if (PyUnicode_CompareWithASCIIString(args[1], "line") == 0)
        ml_tl_ctrace(NULL, (PyFrameObject *)args[0], PyTrace_LINE, NULL);
    Py_INCREF(ml_tl_trace_fn);
    return ml_tl_trace_fn;
}

/* Install the C line tracer on this thread (undo with sys.settrace(old)). */
static PyObject *
ml_tl_meter_trace_on(PyObject *self, PyObject *unused)
{
    PyEval_SetTrace(ml_tl_ctrace, ml_tl_trace_fn);
    Py_RETURN_NONE;
}

static PyObject *
ml_tl_meter_rows(PyObject *self, PyObject *code)
{
    ml_linemeter_stats st;
    size_t n;
    ml_linemeter *m = ml_linemeter_find(code);
    if (!m)
        Py_RETURN_NONE;
    const ml_linemeter_row *rows = ml_linemeter_rows(m, &n, &st);
    if (!rows)
        return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *t = Py_BuildValue("(iLKKKL)", (int)rows[i].line, (long long)rows[i].increment,
                                    (unsigned long long)rows[i].allocated,
                                    (unsigned long long)rows[i].allocations,
                                    (unsigned long long)rows[i].occurrences,
                                    (long long)rows[i].heap);
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    if (!list)
        return NULL;
    return Py_BuildValue("{s:K,s:L,s:K,s:K,s:N}", "calls", (unsigned long long)st.calls, "net",
                         (long long)st.net, "allocated", (unsigned long long)st.allocated,
                         "allocations", (unsigned long long)st.allocations, "rows", list);
}

static PyObject *
ml_tl_meter_reset(PyObject *self, PyObject *unused)
{
    ml_linemeter_reset_all();
    Py_RETURN_NONE;
}

/* meter_calibrate() -> bytes the interpreter allocates for one line number
 * above 256 passed to a monitoring callback (it calls PyLong_FromSsize_t
 * for each LINE event). Measured on the tracker's counters, so whatever the
 * tracker counts (request size) is what the meter takes out. */
static PyObject *
ml_tl_meter_calibrate(PyObject *self, PyObject *unused)
{
    ml_counters before, after;
    ml_tracker_counters(&before);
    PyObject *probe = PyLong_FromSsize_t(1000);
    ml_tracker_counters(&after);
    if (!probe)
        return NULL;
    Py_DECREF(probe);
    ml_tl_int_bytes = after.allocated_bytes - before.allocated_bytes;
    return PyLong_FromUnsignedLongLong((unsigned long long)ml_tl_int_bytes);
}

/* counters_into(buf): the tracker's counters (heap, allocated_bytes,
 * allocations, peak) written into a writable buffer of 4 int64, without
 * allocating anything, so that a measurement does not see itself (%memit). */
static PyObject *
ml_tl_counters_into(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    ml_counters c;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (view.len < 4 * (Py_ssize_t)sizeof(int64_t)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "counters_into needs a buffer of 4 int64");
        return NULL;
    }
    ml_tracker_counters(&c);
    int64_t v[4] = {c.heap, (int64_t)c.allocated_bytes, (int64_t)c.allocations, (int64_t)c.peak};
    memcpy(view.buf, v, sizeof(v));
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

int
ml_bind_timeline_init(PyObject *m)
{
    ml_tl_trace_fn = PyObject_GetAttrString(m, "meter_trace");
    return ml_tl_trace_fn ? 0 : -1;
}

PyMethodDef ml_bind_timeline_methods[] = {
    {"lines", (PyCFunction)(void (*)(void))ml_tl_lines, METH_VARARGS | METH_KEYWORDS,
     "lines(path, names, files, progress=None) -> dict"},
    {"timeline", (PyCFunction)(void (*)(void))ml_tl_timeline, METH_VARARGS | METH_KEYWORDS,
     "timeline(path, progress=None) -> dict"},
    {"timeline_meta", ml_tl_timeline_meta, METH_VARARGS, "timeline_meta(path) -> str"},
    {"meter_register", ml_tl_meter_register, METH_VARARGS, "meter_register(code)"},
    {"meter_enter", ml_tl_meter_enter, METH_O, "meter_enter(code)"},
    {"meter_exit", ml_tl_meter_exit, METH_O, "meter_exit(code)"},
    {"meter_line", (PyCFunction)(void (*)(void))ml_tl_meter_line, METH_FASTCALL,
     "sys.monitoring LINE callback"},
    {"meter_trace", (PyCFunction)(void (*)(void))ml_tl_meter_trace, METH_FASTCALL,
     "trace function for metered code (sentinel of the C tracer)"},
    {"meter_trace_on", ml_tl_meter_trace_on, METH_NOARGS, "install the C line tracer"},
    {"meter_rows", ml_tl_meter_rows, METH_O, "meter_rows(code) -> dict or None"},
    {"counters_into", ml_tl_counters_into, METH_O, "counters_into(buf): 4 int64, no allocation"},
    {"meter_reset", ml_tl_meter_reset, METH_NOARGS, "forget all meter figures"},
    {"meter_calibrate", ml_tl_meter_calibrate, METH_NOARGS, "meter_calibrate() -> bytes"},
    {NULL, NULL, 0, NULL},
};
