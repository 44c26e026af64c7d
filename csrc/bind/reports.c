/* reports.c: bindings of analysis/report.h. */
#include "bind/bind.h"

#include <errno.h>
/* Reports over a capture file (analysis/report.h). Each binding opens the
 * capture, runs one report with the GIL released (the progress callback
 * takes it back to call Python and to notice Ctrl-C), and converts the rows
 * to plain dicts and lists. A file that cannot be used raises OSError (from
 * the OS, with errno) or ValueError (not a capture, newer version, corrupt),
 * with the reader's one-line message. */
#include "analysis/report.h"
#include "analysis/rss.h"
#include "analysis/zinflate.h"

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
        ml_py_put(d, "notes_dropped", PyLong_FromUnsignedLongLong(t->notes_dropped)) < 0 ||
        ml_py_put(d, "gc", !t->gc_records ? (Py_INCREF(Py_None), Py_None)
                                          : Py_BuildValue("{s:K,s:K,s:K,s:K}", "collections",
                                                          (unsigned long long)t->gc_collections,
                                                          "pause_us", (unsigned long long)t->gc_pause_us,
                                                          "freed_bytes", (unsigned long long)t->gc_freed_bytes,
                                                          "freed_blocks",
                                                          (unsigned long long)t->gc_freed_blocks)) < 0)
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

static int
ml_py_rss_tap(void *arg, ml_reader *r, const ml_event *ev)
{
    return ml_rss_feed(arg, r, ev);
}

static PyObject *
ml_py_read_summary(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "top", "progress", "rss_points", NULL};
    PyObject *res = NULL, *path;
    Py_ssize_t top = 10, rss_points = 0;
    ml_py_progress pp = {Py_None, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|nOn", kwlist, PyUnicode_FSConverter, &path, &top,
                                     &pp.callback, &rss_points))
        return NULL;
    ml_reader *r = ml_py_open(path);
    Py_DECREF(path);
    if (!r)
        return NULL;
    ml_summary s;
    ml_progress pg = {ml_py_progress_call, &pp};
    char err[ML_PY_ERRCAP];
    int rc = 0;
    /* rss: the RSS breakdown read in the same pass (rss_report's result, with its
     * default arena_pct 25 and arena_top 10) */
    ml_rss_series rs;
    ml_rss_reading rst;
    if (rss_points > 0 && ml_rss_begin(&rst, &rs, (size_t)rss_points, 25, err, sizeof(err)) < 0) {
        ml_reader_free(r);
        return PyErr_NoMemory();
    }
    ML_PY_RUN(rc, pp, ml_report_summary_tap(r, top > 0 ? (size_t)top : 0, &pg,
                                            rss_points > 0 ? ml_py_rss_tap : NULL, &rst, &s, err, sizeof(err)));
    if (rc < 0) {
        if (rss_points > 0)
            ml_rss_abort(&rst);
        ml_reader_free(r);
        return ml_py_report_failed(err);
    }
    PyObject *rss = Py_NewRef(Py_None);
    if (rss_points > 0) {
        ml_rss_end(&rst, r);
        Py_SETREF(rss, ml_py_rss_result(r, &rs, 10));
    }
    res = ml_py_totals(&s.totals);
    if (!res)
        Py_XDECREF(rss);
    else if (ml_py_put(res, "rss", rss) < 0 ||
             ml_py_put(res, "peak_bytes", PyLong_FromUnsignedLongLong(s.peak_bytes)) < 0 ||
        ml_py_put(res, "peak_event", PyLong_FromUnsignedLongLong(s.peak_event)) < 0 ||
        ml_py_put(res, "peak_time_us", PyLong_FromUnsignedLongLong(s.peak_time_us)) < 0 ||
        ml_py_put(res, "top_peak", ml_py_rows(r, s.at_peak, s.n_at_peak, 0)) < 0 ||
        ml_py_put(res, "top_allocated", ml_py_rows(r, s.allocated, s.n_allocated, 0)) < 0 ||
        ml_py_put(res, "top_end", ml_py_rows(r, s.at_end, s.n_at_end, 0)) < 0 ||
        ml_py_put(res, "garbage_at_exit", /* gcexit: None without GARBAGE_AT_EXIT records */
                  !s.garbage_records ? (Py_INCREF(Py_None), Py_None)
                                     : Py_BuildValue("{s:K,s:K}", "bytes", (unsigned long long)s.garbage_bytes,
                                                     "blocks", (unsigned long long)s.garbage_count)) < 0)
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
        ml_py_put(res, "leaks", ml_py_rows(r, l.rows, l.nrows, 1)) < 0 ||
        ml_py_leak_holders(res, &l) < 0 || /* heap at exit (bind/atexit.c) */
        ml_py_leak_garbage(res, &l) < 0)   /* gcexit (bind/gc.c) */
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
    const char *kind = (size_t)ev->kind < sizeof(kinds) / sizeof(*kinds) ? kinds[ev->kind]
                       : ev->kind == ML_EV_GC_START                       ? "gc_start"
                       : ev->kind == ML_EV_GC_STOP                        ? "gc_stop"
                       : ev->kind == ML_EV_RSS                            ? "rss"
                       : ev->kind == ML_EV_GARBAGE_AT_EXIT                ? "garbage_at_exit"
                       : ev->kind == ML_EV_UNCOLLECTABLE                  ? "uncollectable"
                                                                          : ml_py_exit_event_kind(ev->kind);
    PyObject *d = Py_BuildValue("{s:s,s:K,s:I}", "kind", kind, "time_us",
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
    case ML_EV_SNAPSHOT: /* heap at exit (bind/atexit.c) */
    case ML_EV_OWNER:
    case ML_EV_OWNERS:
    case ML_EV_HOLDER:
    case ML_EV_HELD:
        rc = ml_py_exit_event(d, ev) < 0;
        break;
    case ML_EV_RSS: { /* rss */
        PyObject *l = PyList_New(ML_RSS_NFIELDS);
        for (int i = 0; l && i < ML_RSS_NFIELDS; i++)
            PyList_SET_ITEM(l, i, PyLong_FromUnsignedLongLong(ev->rss_fields[i]));
        rc = ml_py_put(d, "fields", l) < 0;
        break;
    }
    case ML_EV_GC_START: /* gc */
        rc = ml_py_put(d, "generation", PyLong_FromUnsignedLong(ev->gc_generation)) < 0 ||
             ml_py_put(d, "stack", PyLong_FromUnsignedLong(ev->stack)) < 0;
        break;
    case ML_EV_GC_STOP:
        rc = ml_py_put(d, "generation", PyLong_FromUnsignedLong(ev->gc_generation)) < 0 ||
             ml_py_put(d, "collected", PyLong_FromUnsignedLongLong(ev->gc_collected)) < 0 ||
             ml_py_put(d, "uncollectable", PyLong_FromUnsignedLongLong(ev->gc_uncollectable)) < 0;
        break;
    case ML_EV_GARBAGE_AT_EXIT: /* gcexit */
    case ML_EV_UNCOLLECTABLE: {
        PyObject *l = PyList_New((Py_ssize_t)ev->n_gc_seqs);
        for (size_t i = 0; l && i < ev->n_gc_seqs; i++)
            PyList_SET_ITEM(l, (Py_ssize_t)i, PyLong_FromUnsignedLongLong(ev->gc_seqs[i]));
        rc = ml_py_put(d, "seqs", l) < 0;
        break;
    }
    default:
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

int
ml_bind_reports_init(PyObject *m)
{
    return 0;
}

PyMethodDef ml_bind_reports_methods[] = {
    {"read_summary", (PyCFunction)(void (*)(void))ml_py_read_summary, METH_VARARGS | METH_KEYWORDS,
     "read_summary(path, top=10, progress=None, rss_points=0) -> dict: peak, totals, top sites; "
     "with rss_points > 0, \"rss\" is rss_report(path, rss_points)'s result, read in the same pass."},
    {"read_types", (PyCFunction)(void (*)(void))ml_py_read_types, METH_VARARGS | METH_KEYWORDS,
     "read_types(path, progress=None) -> dict: per-type counts under 'types'."},
    {"read_leaks", (PyCFunction)(void (*)(void))ml_py_read_leaks, METH_VARARGS | METH_KEYWORDS,
     "read_leaks(path, top=0, progress=None) -> dict: live blocks at the end by (site, type)."},
    {"read_meta", ml_py_read_meta, METH_VARARGS, "read_meta(path) -> {'json': str, 'size': int}."},
    {"inflate_available", ml_py_inflate_available, METH_NOARGS,
     "inflate_available() -> bool: compressed captures are read by the engine (zlib loaded)."},
    {"read_events", (PyCFunction)(void (*)(void))ml_py_read_events, METH_VARARGS | METH_KEYWORDS,
     "read_events(path, limit=-1) -> dict: every event and definition (tests, debugging)."},
    {NULL, NULL, 0, NULL},
};
