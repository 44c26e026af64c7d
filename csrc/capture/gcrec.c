/* gcrec.c: the collector's start and stop, seen through gc.callbacks (see
 * gcrec.h for why two recorders and why the start info dict is kept). */
#include "capture/gcrec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat/compat.h"
#include "compat/freelists.h"

#define ML_GCREC_HELD_STRS 8

static struct {
    PyObject *callbacks;      /* the collector's list (gc.callbacks at install) */
    PyObject *start_cb, *stop_cb; /* a list the program had filled: one at each end */
    PyObject *both_cb;            /* an empty list: one for both phases */
    PyObject *k_generation, *k_collected, *k_uncollectable, *s_start, *s_stop;
    PyObject *held_info;      /* the start phase's info dict, until the stop */
    PyObject *held_stop;      /* the stop phase's info dict, until the next start */
    /* phase strs until the next ml_gcrec_drop_held: the start call's (freed
     * inside the window otherwise), and on 3.10/3.11 every call's (hidden) */
    PyObject *held_strs[ML_GCREC_HELD_STRS];
    int nheld_strs;
    ml_gcrec_sink sink;
    ml_gcrec_hide_sink hide;
    ml_gcrec_let_go_sink let_go;
    int user_recording;       /* ml_gcrec_start */
    /* counters (GIL) */
    ml_gcrec_stats st;
    uint64_t began_ns, start_ns;
    int in_collection;
    unsigned generation;
    uint32_t *pauses_us;      /* every pause, for the percentiles */
    size_t npauses, cap;
} mlg;

static uint64_t
ml_gcrec_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* An unsigned value of the info dict (0 when absent or not an int); never
 * allocates (the keys are interned once at install). */
static uint64_t
ml_gcrec_info(PyObject *info, PyObject *key)
{
    PyObject *v = PyDict_Check(info) ? PyDict_GetItemWithError(info, key) : NULL;
    if (!v || !PyLong_Check(v)) {
        PyErr_Clear();
        return 0;
    }
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return x;
}

/* 1 when `phase` is the str `want` (interned "start"/"stop"; compared by
 * value as well, without allocating). */
static int
ml_gcrec_is(PyObject *phase, PyObject *want)
{
    if (phase == want)
        return 1;
    return PyUnicode_Check(phase) && PyUnicode_Compare(phase, want) == 0;
}

/* Let an info dict go so that its blocks do not stay on CPython's free
 * lists: with the lists on (the default), the program's next dict or dict
 * keys would take them unseen and be charged to the collection's line
 * (freelists.h, ml_freelists_drop_dict). Its frees go through the hooks. */
static void
ml_gcrec_drop(PyObject **held)
{
    PyObject *d = *held;
    if (!d)
        return;
    *held = NULL;
    ml_freelists_drop_dict(d);
}

/* Let go of everything the recorders hold, telling the let-go sink before
 * and after: the frees of the blocks the tracker hid happen in between. */
static void
ml_gcrec_drop_held(void)
{
    if (mlg.let_go)
        mlg.let_go(1);
    while (mlg.nheld_strs > 0) {
        mlg.nheld_strs--;
        Py_CLEAR(mlg.held_strs[mlg.nheld_strs]); /* a macro: no side effects in its argument */
    }
    ml_gcrec_drop(&mlg.held_info);
    ml_gcrec_drop(&mlg.held_stop);
    if (mlg.let_go)
        mlg.let_go(0);
}

void
ml_gcrec_release(void)
{
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    ml_gcrec_drop_held();
    PyErr_Restore(exc_type, exc, tb);
}

/* ---- gcexit: the objects a collection appends to gc.garbage ---- */

static struct {
    ml_gcrec_uncollectable_sink sink;
    PyObject *garbage;        /* the collector's gc.garbage list (taken at the first start) */
    Py_ssize_t start_len;     /* its length when the collection started */
} mlgx;

/* At a start: where the collection's appends to gc.garbage will begin. */
static void
ml_gcrec_garbage_mark(void)
{
    mlgx.start_len = mlgx.sink && mlgx.garbage ? PyList_GET_SIZE(mlgx.garbage) : 0;
}

/* At a stop: give the items the collection appended to gc.garbage
 * (borrowed; the list is not changed) to the sink. Not only when CPython
 * reports uncollectable objects: with gc.DEBUG_SAVEALL it counts what it
 * saves as collected, and reports 0 uncollectable. */
static void
ml_gcrec_garbage_report(void)
{
    if (!mlgx.sink || !mlgx.garbage)
        return;
    Py_ssize_t n = PyList_GET_SIZE(mlgx.garbage);
    if (n > mlgx.start_len)
        mlgx.sink(((PyListObject *)mlgx.garbage)->ob_item + mlgx.start_len, (size_t)(n - mlgx.start_len));
    mlgx.start_len = n;
}

void
ml_gcrec_attach_uncollectable(ml_gcrec_uncollectable_sink sink)
{
    mlgx.sink = NULL;
    Py_CLEAR(mlgx.garbage);
    if (!sink)
        return;
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *g = gc ? PyObject_GetAttrString(gc, "garbage") : NULL;
    Py_XDECREF(gc);
    if (g && PyList_Check(g)) {
        mlgx.garbage = g; /* the collector's own list (the module's attribute at start) */
        mlgx.sink = sink;
    } else {
        Py_XDECREF(g);
    }
    PyErr_Clear();
    PyErr_Restore(exc_type, exc, tb);
}

/* Hold phase str `s` until the next ml_gcrec_drop_held (once). 1 if held. */
static int
ml_gcrec_hold_str(PyObject *s)
{
    for (int i = 0; i < mlg.nheld_strs; i++)
        if (mlg.held_strs[i] == s)
            return 1;
    if (mlg.nheld_strs == ML_GCREC_HELD_STRS)
        return 0;
    Py_INCREF(s);
    mlg.held_strs[mlg.nheld_strs++] = s;
    return 1;
}

static int
ml_gcrec_is_recorder(PyObject *o)
{
    return o == mlg.start_cb || o == mlg.stop_cb || o == mlg.both_cb;
}

/* Give the hide sink what CPython made for this call only because the
 * recorders are in gc.callbacks (gcrec.h), and hold it until the next
 * ml_gcrec_drop_held, so that it is freed there: the info dict of the
 * recorder that handles the phase (`handling`; the caller holds it), and
 * on 3.10/3.11 the call's phase str. */
static void
ml_gcrec_hide(PyObject *const *args, Py_ssize_t nargs, int handling)
{
    if (!mlg.hide || nargs != 2 || !mlg.callbacks)
        return;
    PyObject *info = handling ? args[1] : NULL;
    for (Py_ssize_t i = 0; info && i < PyList_GET_SIZE(mlg.callbacks); i++) {
        PyObject *o = PyList_GET_ITEM(mlg.callbacks, i);
        if (!ml_gcrec_is_recorder(o))
            info = NULL; /* the program's callback gets it too */
    }
    PyObject *phase_str = NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (ml_gcrec_hold_str(args[0]))
        phase_str = args[0];
#endif
    if (info || phase_str)
        mlg.hide(info, phase_str);
}

static PyObject *
ml_gcrec_on_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !ml_gcrec_is(args[0], mlg.s_start)) {
        ml_gcrec_hide(args, nargs, 0);
        Py_RETURN_NONE;
    }
    /* the last stop's dict, and an earlier start without its stop (the
     * stop recorder was removed): let them go now, before the window opens */
    ml_gcrec_drop_held();
    ml_gcrec_hide(args, nargs, 1);
    Py_INCREF(args[1]);
    mlg.held_info = args[1];
    /* the "start" str CPython made for this call is freed after it returns,
     * inside the window: kept too, so it is not counted as garbage */
    ml_gcrec_hold_str(args[0]);
    uint64_t gen = ml_gcrec_info(args[1], mlg.k_generation);
    mlg.generation = gen < ML_GCREC_GENERATIONS ? (unsigned)gen : ML_GCREC_GENERATIONS - 1;
    mlg.in_collection = 1;
    ml_gcrec_garbage_mark(); /* gcexit */
    if (mlg.sink)
        mlg.sink(ML_GCREC_START, mlg.generation, 0, 0);
    mlg.start_ns = ml_gcrec_now_ns(); /* last: the sink's cost is not the collector's */
    Py_RETURN_NONE;
}

static void
ml_gcrec_add_pause(uint64_t ns)
{
    ml_gcrec_stats *s = &mlg.st;
    s->pauses++;
    s->pause_total_ns += ns;
    s->pause_ns[mlg.generation] += ns;
    if (ns > s->pause_max_ns)
        s->pause_max_ns = ns;
    if (mlg.npauses == mlg.cap) {
        size_t ncap = mlg.cap ? mlg.cap * 2 : 1024;
        uint32_t *n = realloc(mlg.pauses_us, ncap * sizeof(*n));
        if (!n)
            return; /* the percentiles then miss this one */
        mlg.pauses_us = n;
        mlg.cap = ncap;
    }
    uint64_t us = (ns + 500) / 1000;
    mlg.pauses_us[mlg.npauses++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static PyObject *
ml_gcrec_on_stop(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !ml_gcrec_is(args[0], mlg.s_stop)) {
        ml_gcrec_hide(args, nargs, 0);
        Py_RETURN_NONE;
    }
    uint64_t end = ml_gcrec_now_ns();
    uint64_t collected = ml_gcrec_info(args[1], mlg.k_collected);
    uint64_t uncollectable = ml_gcrec_info(args[1], mlg.k_uncollectable);
    uint64_t gen = ml_gcrec_info(args[1], mlg.k_generation);
    unsigned g = gen < ML_GCREC_GENERATIONS ? (unsigned)gen : ML_GCREC_GENERATIONS - 1;
    ml_gcrec_garbage_report(); /* gcexit: before the GC_STOP */
    if (mlg.sink)
        mlg.sink(ML_GCREC_STOP, g, collected, uncollectable);
    mlg.generation = g;
    mlg.st.collections[g]++;
    mlg.st.collected[g] += collected;
    mlg.st.uncollectable[g] += uncollectable;
    if (mlg.in_collection)
        ml_gcrec_add_pause(end - mlg.start_ns);
    mlg.in_collection = 0;
    /* after the stop is recorded: the start dict's frees are not the
     * collector's; the stop dict is kept until it can be dropped the same
     * way (CPython lets it go after the last callback) */
    ml_gcrec_drop_held();
    ml_gcrec_hide(args, nargs, 1);
    Py_INCREF(args[1]);
    mlg.held_stop = args[1];
    Py_RETURN_NONE;
}

/* The one recorder of a list that was empty: first and last at once. */
static PyObject *
ml_gcrec_on_both(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2 && ml_gcrec_is(args[0], mlg.s_start))
        return ml_gcrec_on_start(self, args, nargs);
    return ml_gcrec_on_stop(self, args, nargs);
}

static PyMethodDef ml_gcrec_start_def = {"memlens_gc_start_recorder", (PyCFunction)(void (*)(void))ml_gcrec_on_start,
                                         METH_FASTCALL, "memlens: marks the start of a collection"};
static PyMethodDef ml_gcrec_stop_def = {"memlens_gc_stop_recorder", (PyCFunction)(void (*)(void))ml_gcrec_on_stop,
                                        METH_FASTCALL, "memlens: marks the end of a collection"};
static PyMethodDef ml_gcrec_both_def = {"memlens_gc_recorder", (PyCFunction)(void (*)(void))ml_gcrec_on_both,
                                        METH_FASTCALL, "memlens: marks the start and the end of a collection"};

int
ml_gcrec_init(void)
{
    if (mlg.start_cb)
        return 0;
    mlg.start_cb = PyCFunction_New(&ml_gcrec_start_def, NULL);
    mlg.stop_cb = PyCFunction_New(&ml_gcrec_stop_def, NULL);
    mlg.both_cb = PyCFunction_New(&ml_gcrec_both_def, NULL);
    mlg.k_generation = PyUnicode_InternFromString("generation");
    mlg.k_collected = PyUnicode_InternFromString("collected");
    mlg.k_uncollectable = PyUnicode_InternFromString("uncollectable");
    mlg.s_start = PyUnicode_InternFromString("start");
    mlg.s_stop = PyUnicode_InternFromString("stop");
    if (!mlg.start_cb || !mlg.stop_cb || !mlg.both_cb || !mlg.k_generation || !mlg.k_collected ||
        !mlg.k_uncollectable || !mlg.s_start || !mlg.s_stop) {
        Py_CLEAR(mlg.start_cb);
        Py_CLEAR(mlg.stop_cb);
        Py_CLEAR(mlg.both_cb);
        return -1;
    }
    /* They refer to nothing, so no cycle can go through them: off the GC
     * lists, where a census or gc.get_objects() of the program would find
     * them, whether they are recording or not. */
    PyObject_GC_UnTrack(mlg.start_cb);
    PyObject_GC_UnTrack(mlg.stop_cb);
    PyObject_GC_UnTrack(mlg.both_cb);
    return 0;
}

/* Put the recorders into gc.callbacks. 0, or -1 with an exception set. */
static int
ml_gcrec_install(void)
{
    if (mlg.callbacks)
        return 0;
    if (ml_gcrec_init() < 0)
        return -1;
    PyObject *gc = PyImport_ImportModule("gc");
    if (!gc)
        return -1;
    PyObject *cbs = PyObject_GetAttrString(gc, "callbacks");
    Py_DECREF(gc);
    if (!cbs)
        return -1;
    if (!PyList_Check(cbs)) {
        PyErr_SetString(PyExc_TypeError, "gc.callbacks is not a list");
        Py_DECREF(cbs);
        return -1;
    }
    /* alone in the list, one recorder is first and last: half the calls
     * (and on 3.10/3.11 half the phase strs and argument tuples) */
    int err = PyList_GET_SIZE(cbs) == 0 ? PyList_Append(cbs, mlg.both_cb) < 0
                                        : PyList_Insert(cbs, 0, mlg.stop_cb) < 0 || PyList_Append(cbs, mlg.start_cb) < 0;
    if (err) {
        Py_DECREF(cbs);
        return -1;
    }
    mlg.callbacks = cbs;
    mlg.began_ns = ml_gcrec_now_ns();
    mlg.in_collection = 0;
    return 0;
}

/* Take the recorders out of the list, wherever the program moved them. */
static void
ml_gcrec_uninstall(void)
{
    if (!mlg.callbacks)
        return;
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    for (Py_ssize_t i = PyList_GET_SIZE(mlg.callbacks) - 1; i >= 0; i--) {
        if (i >= PyList_GET_SIZE(mlg.callbacks))
            continue;
        PyObject *o = PyList_GET_ITEM(mlg.callbacks, i);
        if (ml_gcrec_is_recorder(o) && PySequence_DelItem(mlg.callbacks, i) < 0)
            PyErr_Clear();
    }
    Py_CLEAR(mlg.callbacks);
    ml_gcrec_drop_held();
    mlg.in_collection = 0;
    PyErr_Restore(exc_type, exc, tb);
}

static void
ml_gcrec_reset(void)
{
    memset(&mlg.st, 0, sizeof(mlg.st));
    mlg.npauses = 0;
}

int
ml_gcrec_attach(ml_gcrec_sink sink, ml_gcrec_hide_sink hide, ml_gcrec_let_go_sink let_go)
{
    if (!mlg.callbacks)
        ml_gcrec_reset();
    if (ml_gcrec_install() < 0) {
        PyErr_Clear();
        return -1;
    }
    mlg.sink = sink;
    mlg.hide = hide;
    mlg.let_go = let_go;
    return 0;
}

void
ml_gcrec_detach(void)
{
    mlg.sink = NULL;
    mlg.hide = NULL;
    mlg.let_go = NULL;
    if (!mlg.user_recording)
        ml_gcrec_uninstall();
}

int
ml_gcrec_start(void)
{
    if (mlg.user_recording)
        return 0;
    if (!mlg.callbacks)
        ml_gcrec_reset();
    if (ml_gcrec_install() < 0)
        return -1;
    mlg.user_recording = 1;
    return 0;
}

void
ml_gcrec_stop(void)
{
    mlg.user_recording = 0;
    if (!mlg.sink)
        ml_gcrec_uninstall();
}

static int
ml_gcrec_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int
ml_gcrec_stats_get(ml_gcrec_stats *out)
{
    *out = mlg.st;
    out->recording = mlg.callbacks != NULL;
    out->elapsed_ns = mlg.began_ns ? ml_gcrec_now_ns() - mlg.began_ns : 0;
    if (!mlg.npauses)
        return 0;
    uint32_t *s = malloc(mlg.npauses * sizeof(*s));
    if (!s)
        return -1;
    memcpy(s, mlg.pauses_us, mlg.npauses * sizeof(*s));
    qsort(s, mlg.npauses, sizeof(*s), ml_gcrec_cmp_u32);
    /* nearest rank */
    size_t i50 = (mlg.npauses * 50 + 99) / 100, i99 = (mlg.npauses * 99 + 99) / 100;
    out->pause_p50_ns = (uint64_t)s[i50 ? i50 - 1 : 0] * 1000;
    out->pause_p99_ns = (uint64_t)s[i99 ? i99 - 1 : 0] * 1000;
    free(s);
    return 0;
}
