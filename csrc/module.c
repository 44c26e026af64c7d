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

#define ML_CAPTURE_METHODS                                                                         \
    {"start", (PyCFunction)(void (*)(void))ml_py_start, METH_VARARGS | METH_KEYWORDS,              \
     "start(path=None, force=False, meta_json='{}', max_frames=128, follow_fork=False, "          \
     "sample_ms=10, stop_code=None, compress=0, exact=False): start tracking (path None: "        \
     "counters only; compress 1-9: write the zlib container while running; exact: free lists "   \
     "off while recording)."},                                    \
    {"stop", ml_py_stop, METH_NOARGS, "stop() -> dict: stop tracking, close the capture."},       \
    {"active", ml_py_active, METH_NOARGS, "active() -> bool"},                                     \
    {"counters", ml_py_counters, METH_NOARGS, "counters() -> dict(heap, allocated_bytes, allocations, peak)"}, \
    {"reset_peak", ml_py_reset_peak, METH_NOARGS, "reset_peak(): peak = current heap."},          \
    {"mark", ml_py_mark, METH_VARARGS, "mark(kind, label): MARK record (1 enter, 2 exit, 3 label)."}, \
    {"flush", ml_py_flush, METH_NOARGS, "flush(): write buffered records now."},                  \
    {"_after_fork_child", ml_py_after_fork_child, METH_NOARGS, "os.fork child hook."},            \
    {"_before_fork", ml_py_before_fork, METH_NOARGS, "os.fork hook: the sampler thread stops."},  \
    {"_after_fork_parent", ml_py_after_fork_parent, METH_NOARGS,                                   \
     "os.fork hook: the sampler thread starts again."},                                   \
    {"type_name", ml_py_census_type_name, METH_O,                                                  \
     "type_name(tp) -> str: the type's unique name (types.h)."},

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
static int
ml_capture_init(PyObject *m)
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
/* ==== end capture bindings ==== */

/* ==== analysis bindings ==== */
/* Reports over a capture file (analysis/report.h). Each binding opens the
 * capture, runs one report with the GIL released (the progress callback
 * takes it back to call Python and to notice Ctrl-C), and converts the rows
 * to plain dicts and lists. A file that cannot be used raises OSError (from
 * the OS, with errno) or ValueError (not a capture, newer version, corrupt),
 * with the reader's one-line message. */
#include "analysis/report.h"
#include "analysis/zinflate.h"

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

/* The reader's interrupt check (it runs without the GIL): take the GIL and
 * run the signal handlers, so Ctrl-C stops a long read. Nonzero: stop (the
 * exception is then set). */
static int
ml_py_check_signals(void *unused)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() < 0;
    PyGILState_Release(g);
    return stop;
}

/* A reader's message, decoded as the file system would (paths in it may hold
 * bytes that are not UTF-8). */
static PyObject *
ml_py_errstr(const char *err)
{
    return PyUnicode_DecodeFSDefault(err);
}

static ml_reader *
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

/* A file name from a capture: its bytes as the file system encoding reads
 * them (surrogateescape), so os.fsencode() gives them back exactly. */
static PyObject *
ml_py_fsstr(const char *s)
{
    return PyUnicode_DecodeFSDefault(s ? s : "");
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
        ml_py_put(d, "file", ml_py_fsstr(c ? c->file : "")) < 0 ||
        ml_py_put(d, "line", PyLong_FromLong(line)) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* Frames per stack in a report row: the most `memlens run --max-frames`
 * records, so that a hostile capture's chain of a million frames cannot make
 * rows x depth frame objects. */
#define ML_PY_STACK_MAX 4096

/* A stack as a list of frames, innermost first (empty for stack 0). */
static PyObject *
ml_py_stack(ml_reader *r, ml_frame_id stack)
{
    PyObject *l = PyList_New(0);
    for (const ml_frame_info *f; l && PyList_GET_SIZE(l) < ML_PY_STACK_MAX &&
                                 (f = ml_reader_frame(r, stack));
         stack = f->parent) {
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
    if (!PyErr_Occurred()) {
        PyObject *msg = ml_py_errstr(err);
        if (msg) {
            PyErr_SetObject(PyExc_ValueError, msg);
            Py_DECREF(msg);
        }
    }
    return NULL;
}

/* The analysis bindings' common start: parse (path[, top], progress=None)
 * and open the capture. NULL with an exception set on failure. */
static ml_reader *
ml_py_open_args(PyObject *args, PyObject *kw, int with_top, Py_ssize_t *top, ml_py_progress *pp)
{
    static char *kwlist_top[] = {"path", "top", "progress", NULL};
    static char *kwlist[] = {"path", "progress", NULL};
    PyObject *path;
    pp->callback = Py_None;
    int ok = with_top ? PyArg_ParseTupleAndKeywords(args, kw, "O&|nO", kwlist_top, PyUnicode_FSConverter,
                                                    &path, top, &pp->callback)
                      : PyArg_ParseTupleAndKeywords(args, kw, "O&|O", kwlist, PyUnicode_FSConverter,
                                                    &path, &pp->callback);
    if (!ok)
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    return r;
}

static PyObject *
ml_py_read_summary(PyObject *self, PyObject *args, PyObject *kw)
{
    PyObject *res = NULL;
    Py_ssize_t top = 10;
    ml_py_progress pp = {Py_None, NULL};
    ml_reader *r = ml_py_open_args(args, kw, 1, &top, &pp);
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
    PyObject *res = NULL, *rows = NULL;
    ml_py_progress pp = {Py_None, NULL};
    ml_reader *r = ml_py_open_args(args, kw, 0, NULL, &pp);
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
    PyObject *res = NULL;
    Py_ssize_t top = 0;
    ml_py_progress pp = {Py_None, NULL};
    ml_reader *r = ml_py_open_args(args, kw, 1, &top, &pp);
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

/* Whether compressed captures are read by the engine (zlib loaded). */
static PyObject *
ml_py_inflate_available(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(ml_zinflate_available());
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
        PyObject *d = map ? Py_BuildValue("{s:N,s:N,s:I,s:N}", "file", ml_py_fsstr(c->file), "name",
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
        ml_py_report_failed(ml_reader_error(r));
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
    {"inflate_available", ml_py_inflate_available, METH_NOARGS,                                    \
     "inflate_available() -> bool: compressed captures are read by the engine (zlib loaded)."},    \
    {"read_events", (PyCFunction)(void (*)(void))ml_py_read_events, METH_VARARGS | METH_KEYWORDS,   \
     "read_events(path, limit=-1) -> dict: every event and definition (tests, debugging)."},
static int ml_analysis_init(PyObject *m) { return 0; }
/* ==== end analysis bindings ==== */

/* ==== timeline bindings ==== */
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
    return Py_BuildValue(
        "{s:O,s:N,s:N,s:N,s:N,s:N,s:K,s:O,s:{s:K,s:K,s:K,s:N,s:N,s:i,s:K,s:K}}", "meta", meta,
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

#define ML_TIMELINE_METHODS                                                              \
    {"lines", (PyCFunction)(void (*)(void))ml_tl_lines, METH_VARARGS | METH_KEYWORDS,       \
     "lines(path, names, files, progress=None) -> dict"},                                  \
    {"timeline", (PyCFunction)(void (*)(void))ml_tl_timeline, METH_VARARGS | METH_KEYWORDS, \
     "timeline(path, progress=None) -> dict"},                                            \
    {"timeline_meta", ml_tl_timeline_meta, METH_VARARGS, "timeline_meta(path) -> str"},  \
    {"meter_register", ml_tl_meter_register, METH_VARARGS, "meter_register(code)"},      \
    {"meter_enter", ml_tl_meter_enter, METH_O, "meter_enter(code)"},                     \
    {"meter_exit", ml_tl_meter_exit, METH_O, "meter_exit(code)"},                        \
    {"meter_line", (PyCFunction)(void (*)(void))ml_tl_meter_line, METH_FASTCALL,         \
     "sys.monitoring LINE callback"},                                                    \
    {"meter_trace", (PyCFunction)(void (*)(void))ml_tl_meter_trace, METH_FASTCALL,       \
     "trace function for metered code (sentinel of the C tracer)"},                      \
    {"meter_trace_on", ml_tl_meter_trace_on, METH_NOARGS, "install the C line tracer"},  \
    {"meter_rows", ml_tl_meter_rows, METH_O, "meter_rows(code) -> dict or None"},        \
    {"counters_into", ml_tl_counters_into, METH_O, "counters_into(buf): 4 int64, no allocation"}, \
    {"meter_reset", ml_tl_meter_reset, METH_NOARGS, "forget all meter figures"},         \
    {"meter_calibrate", ml_tl_meter_calibrate, METH_NOARGS, "meter_calibrate() -> bytes"},

static int
ml_timeline_init(PyObject *m)
{
    ml_tl_trace_fn = PyObject_GetAttrString(m, "meter_trace");
    return ml_tl_trace_fn ? 0 : -1;
}
/* ==== end timeline bindings ==== */

/* ==== heap bindings ==== */
#include "heap/deepsize.h"
#include "heap/heap.h"
#include "heap/walk.h"

/* A census's object addresses handed to Python without a copy: a
 * read-only buffer (of uintptr_t) over the engine's array, freed with the
 * object. Its __sizeof__ counts the array; censuses never see it (an own
 * type of memlens, walk.h). */
typedef struct {
    PyObject_HEAD
    uintptr_t *ids;
    size_t n;
} ml_heap_ids_object;

static int
ml_heap_ids_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    ml_heap_ids_object *o = (ml_heap_ids_object *)self;
    static uintptr_t none;
    return PyBuffer_FillInfo(view, self, o->ids ? (void *)o->ids : (void *)&none,
                             (Py_ssize_t)(o->n * sizeof(uintptr_t)), 1, flags);
}

static void
ml_heap_ids_dealloc(PyObject *self)
{
    free(((ml_heap_ids_object *)self)->ids);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
ml_heap_ids_sizeof(PyObject *self, PyObject *unused)
{
    ml_heap_ids_object *o = (ml_heap_ids_object *)self;
    return PyLong_FromSize_t(sizeof(*o) + o->n * sizeof(uintptr_t));
}

static PyMethodDef ml_heap_ids_methods[] = {
    {"__sizeof__", ml_heap_ids_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyBufferProcs ml_heap_ids_as_buffer = {ml_heap_ids_getbuffer, NULL};

static PyTypeObject ml_heap_ids_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memlens._engine.HeapIds",
    .tp_basicsize = sizeof(ml_heap_ids_object),
    .tp_dealloc = ml_heap_ids_dealloc,
    .tp_as_buffer = &ml_heap_ids_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Object addresses of a heap census: a read-only buffer of uintptr_t.",
    .tp_methods = ml_heap_ids_methods,
};

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
    if (want_ids) {
        ml_heap_ids_object *o = PyObject_New(ml_heap_ids_object, &ml_heap_ids_type);
        if (!o)
            goto done;
        o->ids = ml_heap_detach_ids(h, &nids);
        o->n = nids;
        ids = (PyObject *)o;
    } else {
        ids = Py_NewRef(Py_None);
    }
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
ml_heap_own_type_py(PyObject *self, PyObject *tp)
{
    if (!PyType_Check(tp)) {
        PyErr_SetString(PyExc_TypeError, "heap_own_type: a type is required");
        return NULL;
    }
    if (ml_walk_add_own_type((PyTypeObject *)tp) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "heap_own_type: too many types");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
ml_heap_untrack_dict_py(PyObject *self, PyObject *d)
{
    return PyBool_FromLong(ml_walk_untrack_dict(d));
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
     "object_size(o) -> (getsizeof bytes, values bytes, computed in C, flag)."},                \
    {"heap_own_type", ml_heap_own_type_py, METH_O,                                               \
     "heap_own_type(tp): no census, diff or deep size ever counts instances of tp (memlens' own)."}, \
    {"heap_untrack_dict", ml_heap_untrack_dict_py, METH_O,                                       \
     "heap_untrack_dict(d) -> bool: the GC stops tracking d if nothing in it can make a cycle."},

static int
ml_heap_init(PyObject *m)
{
    if (PyType_Ready(&ml_heap_ids_type) < 0 || ml_walk_add_own_type(&ml_heap_ids_type) < 0)
        return -1;
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
