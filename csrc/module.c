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
/* Reports over a capture file (analysis/report.h). Each binding opens the
 * capture, runs one report with the GIL released (the progress callback
 * takes it back to call Python and to notice Ctrl-C), and converts the rows
 * to plain dicts and lists. A file that cannot be used raises OSError (from
 * the OS, with errno) or ValueError (not a capture, newer version, corrupt),
 * with the reader's one-line message. */
#include "analysis/report.h"

#define ML_PY_ERRCAP 600

typedef struct {
    PyObject *callback; /* None or callable(pass, pos, size) */
    PyThreadState *saved;
} ml_py_progress;

static int
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

static ml_reader *
ml_py_open(PyObject *path)
{
    char err[ML_PY_ERRCAP];
    ml_reader *r = ml_reader_open(PyBytes_AS_STRING(path), err, sizeof(err));
    if (!r) {
        if (errno)
            PyErr_SetObject(PyExc_OSError, Py_BuildValue("(is)", errno, err));
        else
            PyErr_SetString(PyExc_ValueError, err);
    }
    return r;
}

/* Set d[key] = v and drop the reference to v; -1 if v is NULL or on error. */
static int
ml_py_put(PyObject *d, const char *key, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *
ml_py_str(const char *s)
{
    return PyUnicode_DecodeUTF8(s ? s : "", s ? (Py_ssize_t)strlen(s) : 0, "replace");
}

static PyObject *
ml_py_type_name(ml_reader *r, ml_type_id type)
{
    return ml_py_str(type ? ml_reader_type_name(r, type) : "<untyped>");
}

/* One frame as {function, file, line}. */
static PyObject *
ml_py_frame(ml_reader *r, ml_code_id code, int32_t line)
{
    const ml_code_info *c = ml_reader_code(r, code);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    if (ml_py_put(d, "function", ml_py_str(c ? c->name : "<no Python stack>")) < 0 ||
        ml_py_put(d, "file", ml_py_str(c ? c->file : "")) < 0 ||
        ml_py_put(d, "line", PyLong_FromLong(line)) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* A stack as a list of frames, innermost first (empty for stack 0). */
static PyObject *
ml_py_stack(ml_reader *r, ml_frame_id stack)
{
    PyObject *l = PyList_New(0);
    for (const ml_frame_info *f; l && (f = ml_reader_frame(r, stack)); stack = f->parent) {
        PyObject *fr = ml_py_frame(r, f->code, ml_reader_frame_line(r, stack));
        if (!fr || PyList_Append(l, fr) < 0) {
            Py_XDECREF(fr);
            Py_CLEAR(l);
            break;
        }
        Py_DECREF(fr);
    }
    return l;
}

static PyObject *
ml_py_rows(ml_reader *r, const ml_site_row *rows, size_t n, int with_type)
{
    PyObject *l = PyList_New(0);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *d = ml_py_frame(r, rows[i].code, rows[i].line);
        if (!d || (with_type && ml_py_put(d, "type", ml_py_type_name(r, rows[i].type)) < 0) ||
            ml_py_put(d, "bytes", PyLong_FromUnsignedLongLong(rows[i].bytes)) < 0 ||
            ml_py_put(d, "count", PyLong_FromUnsignedLongLong(rows[i].count)) < 0 ||
            ml_py_put(d, "stack", ml_py_stack(r, rows[i].stack)) < 0 || PyList_Append(l, d) < 0)
            Py_CLEAR(l);
        Py_XDECREF(d);
    }
    return l;
}

/* The totals every report shares, as a dict. */
static PyObject *
ml_py_totals(const ml_report_totals *t)
{
    static const char *const trailer_names[ML_TRAILER_COUNT] = {
        "allocs", "frees", "dropped", "nostack", "truncated_stacks"};
    PyObject *d = PyDict_New(), *notes = NULL, *trailer = NULL;
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
        ml_py_put(d, "notes_dropped", PyLong_FromUnsignedLongLong(t->notes_dropped)) < 0)
        goto fail;
    if (t->truncated) {
        trailer = Py_None;
        Py_INCREF(trailer);
    } else {
        trailer = PyDict_New();
        for (unsigned i = 0; trailer && i < ML_TRAILER_COUNT; i++)
            if (ml_py_put(trailer, trailer_names[i], PyLong_FromUnsignedLongLong(t->trailer[i])) < 0)
                Py_CLEAR(trailer);
    }
    if (ml_py_put(d, "trailer", trailer) < 0)
        goto fail;
    notes = PyList_New(0);
    for (size_t i = 0; notes && i < t->nnotes; i++) {
        PyObject *n = Py_BuildValue("(IN)", t->note_kinds[i], ml_py_str(t->notes[i]));
        if (!n || PyList_Append(notes, n) < 0)
            Py_CLEAR(notes);
        Py_XDECREF(n);
    }
    if (ml_py_put(d, "notes", notes) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* Run `call` with the GIL released; returns its result. */
#define ML_PY_RUN(rc, pp, call)                                \
    do {                                                       \
        (pp).saved = PyEval_SaveThread();                      \
        (rc) = (call);                                         \
        PyEval_RestoreThread((pp).saved);                      \
    } while (0)

static PyObject *
ml_py_report_failed(const char *err)
{
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, err);
    return NULL;
}

static PyObject *
ml_py_read_summary(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "top", "progress", NULL};
    PyObject *path, *res = NULL;
    Py_ssize_t top = 10;
    ml_py_progress pp = {Py_None, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|nO", kwlist, PyUnicode_FSConverter, &path, &top,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_summary s;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_report_summary(r, top > 0 ? (size_t)top : 0, &pg, &s, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    res = ml_py_totals(&s.totals);
    if (!res || ml_py_put(res, "peak_bytes", PyLong_FromUnsignedLongLong(s.peak_bytes)) < 0 ||
        ml_py_put(res, "peak_event", PyLong_FromUnsignedLongLong(s.peak_event)) < 0 ||
        ml_py_put(res, "peak_time_us", PyLong_FromUnsignedLongLong(s.peak_time_us)) < 0 ||
        ml_py_put(res, "top_peak", ml_py_rows(r, s.at_peak, s.n_at_peak, 0)) < 0 ||
        ml_py_put(res, "top_allocated", ml_py_rows(r, s.allocated, s.n_allocated, 0)) < 0 ||
        ml_py_put(res, "top_end", ml_py_rows(r, s.at_end, s.n_at_end, 0)) < 0)
        Py_CLEAR(res);
    ml_summary_release(&s);
    ml_reader_free(r);
    return res;
}

static PyObject *
ml_py_read_types(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "progress", NULL};
    PyObject *path, *res = NULL, *rows = NULL;
    ml_py_progress pp = {Py_None, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O", kwlist, PyUnicode_FSConverter, &path,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_types t;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_report_types(r, &pg, &t, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    rows = PyList_New(0);
    for (size_t i = 0; rows && i < t.nrows; i++) {
        const ml_type_row *row = &t.rows[i];
        PyObject *d = PyDict_New();
        if (!d || ml_py_put(d, "type", ml_py_type_name(r, row->type)) < 0 ||
            ml_py_put(d, "type_id", PyLong_FromUnsignedLong(row->type)) < 0 ||
            ml_py_put(d, "flags", PyLong_FromUnsignedLong(ml_reader_type_flags(r, row->type))) < 0 ||
            ml_py_put(d, "allocs", PyLong_FromUnsignedLongLong(row->allocs)) < 0 ||
            ml_py_put(d, "frees", PyLong_FromUnsignedLongLong(row->frees)) < 0 ||
            ml_py_put(d, "peak_alive", PyLong_FromUnsignedLongLong(row->peak_alive)) < 0 ||
            ml_py_put(d, "alive", PyLong_FromUnsignedLongLong(row->alive)) < 0 ||
            ml_py_put(d, "alive_bytes", PyLong_FromUnsignedLongLong(row->alive_bytes)) < 0 ||
            ml_py_put(d, "allocated_bytes", PyLong_FromUnsignedLongLong(row->allocated_bytes)) < 0 ||
            PyList_Append(rows, d) < 0)
            Py_CLEAR(rows);
        Py_XDECREF(d);
    }
    res = ml_py_totals(&t.totals);
    if (res && ml_py_put(res, "types", rows) < 0)
        Py_CLEAR(res);
    else if (!res)
        Py_XDECREF(rows);
    ml_types_release(&t);
    ml_reader_free(r);
    return res;
}

static PyObject *
ml_py_read_leaks(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "top", "progress", NULL};
    PyObject *path, *res = NULL;
    Py_ssize_t top = 0;
    ml_py_progress pp = {Py_None, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|nO", kwlist, PyUnicode_FSConverter, &path, &top,
                                     &pp.callback))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_leaks l;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc;
    ML_PY_RUN(rc, pp, ml_report_leaks(r, top > 0 ? (size_t)top : 0, &pg, &l, err, sizeof(err)));
    if (rc < 0) {
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    res = ml_py_totals(&l.totals);
    if (!res || ml_py_put(res, "groups", PyLong_FromSize_t(l.ngroups)) < 0 ||
        ml_py_put(res, "leaks", ml_py_rows(r, l.rows, l.nrows, 1)) < 0)
        Py_CLEAR(res);
    ml_leaks_release(&l);
    ml_reader_free(r);
    return res;
}

static PyObject *
ml_py_read_meta(PyObject *self, PyObject *args)
{
    PyObject *path, *res;
    if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    size_t len;
    const char *json = ml_reader_meta(r, &len);
    res = Py_BuildValue("{s:N,s:K}", "json", PyUnicode_DecodeUTF8(json, (Py_ssize_t)len, "replace"),
                        "size", (unsigned long long)ml_reader_size(r));
    ml_reader_free(r);
    return res;
}

/* Every event as a dict (tests and debugging: the `parse` of memlens). */
static PyObject *
ml_py_event(ml_reader *r, const ml_event *ev)
{
    static const char *const kinds[] = {"", "alloc", "free", "reuse", "memory", "mark", "fork", "note"};
    PyObject *d = Py_BuildValue("{s:s,s:K,s:I}", "kind", kinds[ev->kind], "time_us",
                                (unsigned long long)ev->time_us, "thread", ev->thread);
    if (!d)
        return NULL;
    int rc = 0;
    switch (ev->kind) {
    case ML_EV_ALLOC:
    case ML_EV_FREE:
        rc = ml_py_put(d, "domain", PyLong_FromLong(ev->domain)) < 0 ||
             ml_py_put(d, "seq", PyLong_FromUnsignedLongLong(ev->seq)) < 0 ||
             ml_py_put(d, "size", PyLong_FromUnsignedLongLong(ev->size)) < 0 ||
             ml_py_put(d, "stack", PyLong_FromUnsignedLong(ev->stack)) < 0 ||
             ml_py_put(d, "type", PyLong_FromUnsignedLong(ev->type)) < 0 ||
             (ev->kind == ML_EV_FREE &&
              ml_py_put(d, "at_stack", PyLong_FromUnsignedLong(ev->at_stack)) < 0);
        break;
    case ML_EV_REUSE:
        rc = ml_py_put(d, "type", PyLong_FromUnsignedLong(ev->type)) < 0 ||
             ml_py_put(d, "stack", PyLong_FromUnsignedLong(ev->stack)) < 0;
        break;
    case ML_EV_MEMORY:
        rc = ml_py_put(d, "rss", PyLong_FromUnsignedLongLong(ev->rss)) < 0 ||
             ml_py_put(d, "heap", PyLong_FromUnsignedLongLong(ev->heap)) < 0;
        break;
    case ML_EV_MARK:
    case ML_EV_NOTE:
        rc = ml_py_put(d, ev->kind == ML_EV_MARK ? "mark_kind" : "note_kind",
                       PyLong_FromUnsignedLong(ev->mark_kind)) < 0 ||
             ml_py_put(d, "text",
                       PyUnicode_DecodeUTF8(ev->text, (Py_ssize_t)ev->text_len, "replace")) < 0;
        break;
    case ML_EV_FORK:
        rc = ml_py_put(d, "child_pid", PyLong_FromUnsignedLongLong(ev->child_pid)) < 0;
        break;
    }
    if (rc) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* The definitions a reader holds, as lists indexed by id - 1. */
static PyObject *
ml_py_definitions(ml_reader *r)
{
    PyObject *codes = PyList_New(0), *frames = PyList_New(0), *types = PyList_New(0);
    PyObject *res = NULL;
    if (!codes || !frames || !types)
        goto done;
    for (uint32_t i = 1; i <= ml_reader_ncodes(r); i++) {
        const ml_code_info *c = ml_reader_code(r, i);
        PyObject *map = PyList_New(0);
        for (size_t k = 0; map && k < c->nlines; k++) {
            PyObject *pair = Py_BuildValue("(Ii)", c->offsets[k], c->lines[k]);
            if (!pair || PyList_Append(map, pair) < 0)
                Py_CLEAR(map);
            Py_XDECREF(pair);
        }
        PyObject *d = map ? Py_BuildValue("{s:N,s:N,s:I,s:N}", "file", ml_py_str(c->file), "name",
                                          ml_py_str(c->name), "firstlineno", c->firstlineno,
                                          "linemap", map)
                          : NULL;
        if (!d || PyList_Append(codes, d) < 0) {
            Py_XDECREF(d);
            goto done;
        }
        Py_DECREF(d);
    }
    for (uint32_t i = 1; i <= ml_reader_nframes(r); i++) {
        const ml_frame_info *f = ml_reader_frame(r, i);
        PyObject *d = Py_BuildValue("{s:I,s:I,s:I,s:i}", "parent", f->parent, "code", f->code,
                                    "offset", f->offset, "line", ml_reader_frame_line(r, i));
        if (!d || PyList_Append(frames, d) < 0) {
            Py_XDECREF(d);
            goto done;
        }
        Py_DECREF(d);
    }
    for (uint32_t i = 1; i <= ml_reader_ntypes(r); i++) {
        PyObject *d = Py_BuildValue("{s:N,s:I}", "name", ml_py_str(ml_reader_type_name(r, i)),
                                    "flags", ml_reader_type_flags(r, i));
        if (!d || PyList_Append(types, d) < 0) {
            Py_XDECREF(d);
            goto done;
        }
        Py_DECREF(d);
    }
    res = Py_BuildValue("{s:O,s:O,s:O}", "codes", codes, "frames", frames, "types", types);
done:
    Py_XDECREF(codes);
    Py_XDECREF(frames);
    Py_XDECREF(types);
    return res;
}

static PyObject *
ml_py_read_events(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "limit", NULL};
    PyObject *path, *events = NULL, *res = NULL;
    Py_ssize_t limit = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|n", kwlist, PyUnicode_FSConverter, &path, &limit))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    events = PyList_New(0);
    ml_event ev;
    int rc = 0;
    while (events && (limit < 0 || PyList_GET_SIZE(events) < limit) && (rc = ml_reader_next(r, &ev)) > 0) {
        PyObject *d = ml_py_event(r, &ev);
        if (!d || PyList_Append(events, d) < 0)
            Py_CLEAR(events);
        Py_XDECREF(d);
    }
    if (events && rc < 0) {
        PyErr_SetString(PyExc_ValueError, ml_reader_error(r));
        Py_CLEAR(events);
    }
    if (events) {
        PyObject *trailer = PyList_New(ML_TRAILER_COUNT);
        for (unsigned i = 0; trailer && i < ML_TRAILER_COUNT; i++) {
            PyObject *v = PyLong_FromUnsignedLongLong(ml_reader_trailer(r, i));
            if (!v)
                Py_CLEAR(trailer);
            else
                PyList_SET_ITEM(trailer, i, v);
        }
        PyObject *defs = ml_py_definitions(r);
        res = defs && trailer ? defs : NULL;
        if (res && (ml_py_put(res, "events", events) < 0 ||
                    ml_py_put(res, "truncated", PyBool_FromLong(ml_reader_truncated(r))) < 0 ||
                    ml_py_put(res, "trailer", trailer) < 0))
            Py_CLEAR(res);
        else if (!res) {
            Py_XDECREF(defs);
            Py_XDECREF(trailer);
            Py_DECREF(events);
        }
    }
    ml_reader_free(r);
    return res;
}

#define ML_ANALYSIS_METHODS                                                                        \
    {"read_summary", (PyCFunction)(void (*)(void))ml_py_read_summary, METH_VARARGS | METH_KEYWORDS, \
     "read_summary(path, top=10, progress=None) -> dict: peak, totals, top sites."},               \
    {"read_types", (PyCFunction)(void (*)(void))ml_py_read_types, METH_VARARGS | METH_KEYWORDS,     \
     "read_types(path, progress=None) -> dict: per-type counts under 'types'."},                   \
    {"read_leaks", (PyCFunction)(void (*)(void))ml_py_read_leaks, METH_VARARGS | METH_KEYWORDS,     \
     "read_leaks(path, top=0, progress=None) -> dict: live blocks at the end by (site, type)."},   \
    {"read_meta", ml_py_read_meta, METH_VARARGS, "read_meta(path) -> {'json': str, 'size': int}."}, \
    {"read_events", (PyCFunction)(void (*)(void))ml_py_read_events, METH_VARARGS | METH_KEYWORDS,   \
     "read_events(path, limit=-1) -> dict: every event and definition (tests, debugging)."},
static int ml_analysis_init(PyObject *m) { return 0; }
/* ==== end analysis bindings ==== */

/* ==== timeline bindings ==== */
#define ML_TIMELINE_METHODS
static int ml_timeline_init(PyObject *m) { return 0; }
/* ==== end timeline bindings ==== */

/* ==== heap bindings ==== */
#include "heap/deepsize.h"
#include "heap/heap.h"

static const char *const ml_heap_what_names[] = {
    "objects", "dict of class", "dict of module", "dict of type", "dict (no owner)",
};

static PyObject *
ml_heap_snapshot_py(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ids", NULL};
    int want_ids = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:heap_snapshot", kwlist, &want_ids))
        return NULL;
    ml_heap *h = ml_heap_take(want_ids);
    if (!h)
        return PyErr_NoMemory();
    PyObject *result = NULL, *rows = NULL, *dicts = NULL, *ids = NULL;
    size_t n, nids;
    const ml_heap_row *r = ml_heap_rows(h, &n);
    const ml_dictstat *ds = ml_heap_dicts(h);
    const uintptr_t *idv = ml_heap_ids(h, &nids);
    ml_heap_stats st;
    ml_heap_get_stats(h, &st);
    if (!(rows = PyList_New((Py_ssize_t)n)) || !(dicts = PyList_New((Py_ssize_t)ds->n)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("OsKK", (PyObject *)r[i].tp, ml_heap_what_names[r[i].what],
                                    (unsigned long long)r[i].count, (unsigned long long)r[i].bytes);
        if (!t)
            goto done;
        PyList_SET_ITEM(rows, (Py_ssize_t)i, t);
    }
    for (size_t i = 0; i < ds->n; i++) {
        const ml_dictstat_row *d = &ds->rows[i];
        PyObject *t = Py_BuildValue("sKK", ml_dictkind_name((ml_dictkind)d->kind),
                                    (unsigned long long)d->size, (unsigned long long)d->count);
        if (!t)
            goto done;
        PyList_SET_ITEM(dicts, (Py_ssize_t)i, t);
    }
    if (idv)
        ids = PyBytes_FromStringAndSize((const char *)idv, (Py_ssize_t)(nids * sizeof(*idv)));
    else
        ids = Py_NewRef(Py_None);
    if (!ids)
        goto done;
    result = Py_BuildValue("{sOsOsOsKsKsKsKsKsKsi}", "rows", rows, "dicts", dicts, "ids", ids,
                           "count", (unsigned long long)st.count, "bytes", (unsigned long long)st.bytes,
                           "sizeof_calls", (unsigned long long)st.sizeof_calls,
                           "sizeof_errors", (unsigned long long)st.sizeof_errors,
                           "sizeof_clamped", (unsigned long long)st.sizeof_clamped,
                           "max_stack", (unsigned long long)st.max_stack,
                           "gc_collecting", st.gc_collecting);
done:
    Py_XDECREF(rows);
    Py_XDECREF(dicts);
    Py_XDECREF(ids);
    ml_heap_free(h);
    return result;
}

static PyObject *
ml_heap_new_objects_py(PyObject *self, PyObject *args)
{
    Py_buffer now, before;
    PyObject *tp, *list = NULL;
    PyObject **objs;
    size_t n;
    if (!PyArg_ParseTuple(args, "y*y*O:heap_new_objects", &now, &before, &tp))
        return NULL;
    if (tp != Py_None && !PyType_Check(tp)) {
        PyErr_SetString(PyExc_TypeError, "type must be a type or None");
        goto done;
    }
    if (ml_heap_new_objects(now.buf, (size_t)now.len / sizeof(uintptr_t), before.buf,
                            (size_t)before.len / sizeof(uintptr_t),
                            tp == Py_None ? NULL : (PyTypeObject *)tp, &objs, &n) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        if (list)
            PyList_SET_ITEM(list, (Py_ssize_t)i, objs[i]);
        else
            Py_DECREF(objs[i]);
    }
    free(objs);
done:
    PyBuffer_Release(&now);
    PyBuffer_Release(&before);
    return list;
}

static PyObject *
ml_heap_deep_size_py(PyObject *self, PyObject *args)
{
    PyObject *roots, *stop;
    Py_ssize_t align;
    ml_deepsize ds;
    if (!PyArg_ParseTuple(args, "O!O!n:deep_size", &PyTuple_Type, &roots, &PyTuple_Type, &stop, &align))
        return NULL;
    if (ml_deepsize_run(&ds, &PyTuple_GET_ITEM(roots, 0), (size_t)PyTuple_GET_SIZE(roots), stop,
                        align > 0 ? (size_t)align : 0) < 0)
        return PyErr_NoMemory();
    PyObject *result = NULL, *rows = PyList_New((Py_ssize_t)ds.types.nrows);
    for (size_t i = 0; rows && i < ds.types.nrows; i++) {
        ml_typestat *t = &ds.types.rows[i];
        PyObject *row = Py_BuildValue("OKK", (PyObject *)t->tp, (unsigned long long)t->count,
                                      (unsigned long long)t->bytes);
        if (!row)
            goto done;
        PyList_SET_ITEM(rows, (Py_ssize_t)i, row);
    }
    if (rows)
        result = Py_BuildValue("{sKsKsOsKsKsKsK}", "bytes", (unsigned long long)ds.total,
                               "count", (unsigned long long)ds.count, "rows", rows,
                               "sizeof_calls", (unsigned long long)ds.types.sizeof_calls,
                               "sizeof_errors", (unsigned long long)ds.types.sizeof_errors,
                               "sizeof_clamped", (unsigned long long)ds.types.sizeof_clamped,
                               "max_stack", (unsigned long long)ds.max_stack);
done:
    Py_XDECREF(rows);
    ml_deepsize_release(&ds);
    return result;
}

static PyObject *
ml_heap_object_size_py(PyObject *self, PyObject *o)
{
    size_t size, values = 0;
    int flag = 0;
    int call = ml_objsize_c(o, &size);
    if (call)
        size = ml_objsize_call(o, &flag);
    if (!PyType_Check(o) && !PyModule_Check(o))
        (void)ml_compat_instance_dict(o, &values);
    return Py_BuildValue("nnOi", (Py_ssize_t)size, (Py_ssize_t)values, call ? Py_False : Py_True, flag);
}

#define ML_HEAP_METHODS                                                                          \
    {"heap_snapshot", (PyCFunction)(void (*)(void))ml_heap_snapshot_py, METH_VARARGS | METH_KEYWORDS, \
     "heap_snapshot(ids=True) -> dict: census of every live object."},                           \
    {"heap_new_objects", ml_heap_new_objects_py, METH_VARARGS,                                   \
     "heap_new_objects(now_ids, before_ids, type|None) -> list of live objects new since."},     \
    {"deep_size", ml_heap_deep_size_py, METH_VARARGS,                                            \
     "deep_size(roots, stop_types, align) -> dict: bytes reachable from roots."},                \
    {"object_size", ml_heap_object_size_py, METH_O,                                              \
     "object_size(o) -> (getsizeof bytes, values bytes, computed in C, flag)."},

static int
ml_heap_init(PyObject *m)
{
    return ml_objsize_setup();
}
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
