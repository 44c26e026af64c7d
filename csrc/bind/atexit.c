/* atexit.c: bindings of the heap-at-exit pass (capture/atexit.h, through
 * ml_tracker_snapshot). */
#include "bind/bind.h"

#include <errno.h>
#include <string.h>
#include "capture/tracker.h"

/* exit_snapshot(kind) -> dict of the pass's counts, or None when no
 * capture file is being written. */
static PyObject *
ml_py_heap_snapshot(PyObject *self, PyObject *args)
{
    unsigned kind;
    const char *skip = NULL;
    if (!PyArg_ParseTuple(args, "I|s", &kind, &skip))
        return NULL;
    if (kind < ML_SNAP_EXIT || kind > ML_SNAP_OWNERS)
        return PyErr_Format(PyExc_ValueError, "exit_snapshot: kind must be 1, 2, 3 or 4");
    ml_atexit_stats st;
    if (skip)
        ml_atexit_set_skip(skip);
    if (ml_tracker_snapshot(kind, &st) < 0) {
        if (errno == ENOENT)
            Py_RETURN_NONE;
        return PyErr_NoMemory();
    }
    return Py_BuildValue("{sKsKsKsKsK}", "objects", st.objects, "owners", st.owners, "holders", st.holders,
                         "held", st.held, "duration_us", st.duration_us);
}

PyMethodDef ml_bind_atexit_methods[] = {
    {"exit_snapshot", ml_py_heap_snapshot, METH_VARARGS,
     "exit_snapshot(kind[, skip]) -> dict | None: write the live heap's buffer owners and holders into the "
     "capture (kind 1 at exit, 2 snapshot_now(), 3 signal; 4 at exit, owners only, and only when the "
     "capture has no snapshot yet: objects 0 then); frames of files starting with skip are not "
     "roots; None when not capturing to a file."},
    {NULL, NULL, 0, NULL},
};

int
ml_bind_atexit_init(PyObject *m)
{
    return 0;
}

static PyObject *
ml_py_holder(const ml_exitheap *x, const ml_site_row *row)
{
    const ml_exit_holder *h = ml_exitheap_holder(x, row->holder);
    if (!h)
        Py_RETURN_NONE;
    PyObject *path = PyList_New(0), *d = NULL;
    const char *s = h->text;
    for (size_t i = 0; path && i < h->nhops; i++) {
        PyObject *hop = ml_py_str(s);
        if (!hop || PyList_Append(path, hop) < 0)
            Py_CLEAR(path);
        Py_XDECREF(hop);
        s += strlen(s) + 1;
    }
    if (!path)
        return NULL;
    d = PyDict_New();
    if (!d || ml_py_put(d, "path", path) < 0 ||
        ml_py_put(d, "retained", PyLong_FromUnsignedLongLong(h->retained)) < 0 ||
        ml_py_put(d, "bytes", PyLong_FromUnsignedLongLong(row->held_bytes)) < 0 ||
        ml_py_put(d, "count", PyLong_FromUnsignedLongLong(row->held_count)) < 0) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

int
ml_py_leak_holders(PyObject *res, const ml_leaks *l)
{
    static const char *const kinds[] = {"end", "exit", "snapshot_now", "signal", "owners"};
    PyObject *rows = PyDict_GetItemString(res, "leaks"); /* borrowed */
    if (!rows || !PyList_Check(rows) || (size_t)PyList_GET_SIZE(rows) != l->nrows)
        return -1;
    for (size_t i = 0; i < l->nrows; i++) {
        if (ml_py_put(PyList_GET_ITEM(rows, i), "holder", ml_py_holder(&l->heap, &l->rows[i])) < 0)
            return -1;
    }
    /* heap_at_exit: a snapshot with holders; owners_at_exit: the pass at
     * exit that named the buffers only (ML_SNAP_OWNERS) */
    int owners_only = l->heap.snapshots && l->heap.kind == ML_SNAP_OWNERS;
    PyObject *snap = Py_None, *owners = Py_None;
    if (l->heap.snapshots && !owners_only) {
        snap = Py_BuildValue("{sssKsKsK}", "kind", kinds[l->heap.kind <= ML_SNAP_OWNERS ? l->heap.kind : 0],
                             "snapshots", l->heap.snapshots, "objects", l->heap.objects, "duration_us",
                             l->heap.duration_us);
    } else {
        Py_INCREF(snap);
    }
    if (owners_only)
        owners = Py_BuildValue("{sKsK}", "objects", l->heap.objects, "duration_us", l->heap.duration_us);
    else
        Py_INCREF(owners);
    if (ml_py_put(res, "owners_at_exit", owners) < 0) {
        Py_XDECREF(snap);
        return -1;
    }
    return ml_py_put(res, "heap_at_exit", snap);
}

const char *
ml_py_exit_event_kind(unsigned kind)
{
    switch (kind) {
    case ML_EV_SNAPSHOT: return "snapshot";
    case ML_EV_OWNER: return "owner";
    case ML_EV_OWNERS: return "owners";
    case ML_EV_HOLDER: return "holder";
    case ML_EV_HELD: return "held";
    default: return "unknown";
    }
}

int
ml_py_exit_event(PyObject *d, const ml_event *ev)
{
    PyObject *l;
    switch (ev->kind) {
    case ML_EV_SNAPSHOT:
        return ml_py_put(d, "snapshot_kind", PyLong_FromUnsignedLong(ev->mark_kind)) < 0 ||
                       ml_py_put(d, "objects", PyLong_FromUnsignedLongLong(ev->snap_objects)) < 0 ||
                       ml_py_put(d, "duration_us", PyLong_FromUnsignedLongLong(ev->snap_us)) < 0
                   ? -1 : 0;
    case ML_EV_OWNER:
        return ml_py_put(d, "seq", PyLong_FromUnsignedLongLong(ev->seq)) < 0 ||
                       ml_py_put(d, "owner_seq", PyLong_FromUnsignedLongLong(ev->owner_seq)) < 0 ||
                       ml_py_put(d, "type", PyLong_FromUnsignedLong(ev->type)) < 0
                   ? -1 : 0;
    case ML_EV_OWNERS: { /* "seqs", "owner_seqs", "types": one list each */
        PyObject *ls[3];
        for (int k = 0; k < 3; k++) {
            ls[k] = PyList_New((Py_ssize_t)ev->nheld);
            for (size_t i = 0; ls[k] && i < ev->nheld; i++) {
                PyObject *v = PyLong_FromUnsignedLongLong(k == 0 ? ev->held[i]
                                                          : k == 1 ? ev->owner_seqs[i] : ev->owner_types[i]);
                if (!v)
                    Py_CLEAR(ls[k]);
                else
                    PyList_SET_ITEM(ls[k], (Py_ssize_t)i, v);
            }
        }
        int bad = ml_py_put(d, "seqs", ls[0]) < 0;
        bad = ml_py_put(d, "owner_seqs", ls[1]) < 0 || bad;
        bad = ml_py_put(d, "types", ls[2]) < 0 || bad;
        return bad ? -1 : 0;
    }
    case ML_EV_HOLDER:
        l = PyList_New((Py_ssize_t)ev->nhops);
        for (size_t i = 0; l && i < ev->nhops; i++) {
            PyObject *s = PyUnicode_DecodeUTF8(ev->hops[i], (Py_ssize_t)ev->hop_lens[i], "replace");
            if (!s)
                Py_CLEAR(l);
            else
                PyList_SET_ITEM(l, (Py_ssize_t)i, s);
        }
        return ml_py_put(d, "holder", PyLong_FromUnsignedLong(ev->holder)) < 0 || ml_py_put(d, "path", l) < 0 ||
                       ml_py_put(d, "retained", PyLong_FromUnsignedLongLong(ev->retained)) < 0
                   ? -1 : 0;
    case ML_EV_HELD:
        l = PyList_New((Py_ssize_t)ev->nheld);
        for (size_t i = 0; l && i < ev->nheld; i++) {
            PyObject *s = PyLong_FromUnsignedLongLong(ev->held[i]);
            if (!s)
                Py_CLEAR(l);
            else
                PyList_SET_ITEM(l, (Py_ssize_t)i, s);
        }
        return ml_py_put(d, "holder", PyLong_FromUnsignedLong(ev->holder)) < 0 || ml_py_put(d, "seqs", l) < 0
                   ? -1 : 0;
    default:
        return 0;
    }
}
