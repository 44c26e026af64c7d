/* freelists.c: CPython's free lists off while recording (see freelists.h). */
#define Py_BUILD_CORE 1
#include "compat/freelists.h"

#include <limits.h>

#include "internal/pycore_interp.h"
#include "internal/pycore_context.h"
#if PY_VERSION_HEX < 0x030B0000
#include "frameobject.h"
#endif

/* A count no free list reaches: a linked list with this count and no
 * head is "full and empty" (push frees, pop allocates) on every version
 * (3.13 compares it unsigned, so a negative count would do as well). */
#define ML_FL_FULL (INT_MAX / 2)

static int ml_fl_wrapped;

/* The interpreter of the thread running a dealloc (GIL held). */
static inline PyInterpreterState *
ml_fl_interp(void)
{
    return ml_compat_tstate_gil_held()->interp;
}

/* Free a parked GC object (GC head only in front) / a plain block. */
static void
ml_fl_gc_del(void *op, ml_freelists_free_fn on_free)
{
    on_free((char *)op - ML_GC_HEAD_SIZE, ML_FREELISTS_OBJ);
    PyObject_GC_Del(op);
}

static void
ml_fl_obj_free(void *block, ml_freelists_free_fn on_free)
{
    on_free(block, ML_FREELISTS_OBJ);
    PyObject_Free(block);
}

/* ---- the slice cache (one object), every version ---- */

static destructor ml_fl_slice_dealloc0;

static PySliceObject **
ml_fl_slice_cache(PyInterpreterState *interp)
{
#if PY_VERSION_HEX >= 0x030D0000
    return &interp->object_state.freelists.slices.slice_cache;
#else
    return &interp->slice_cache;
#endif
}

static void
ml_fl_slice_dealloc(PyObject *op)
{
    ml_fl_slice_dealloc0(op);
    PySliceObject **cache = ml_fl_slice_cache(ml_fl_interp());
    if (*cache == (PySliceObject *)op) { /* parked: take it back */
        *cache = NULL;
        PyObject_GC_Del(op);
    }
}

#if PY_VERSION_HEX < 0x030D0000
/* ---- 3.10-3.12: list and dict free lists are arrays: wrap tp_dealloc ---- */

static destructor ml_fl_list_dealloc0, ml_fl_dict_dealloc0;

static void
ml_fl_list_take_back(PyInterpreterState *interp, PyObject *op)
{
    struct _Py_list_state *st = &interp->list;
    if (st->numfree > 0 && (PyObject *)st->free_list[st->numfree - 1] == op) {
        st->numfree--;
        PyObject_GC_Del(op);
    }
}

/* The original untracks the list first, then guards the recursion with
 * the trashcan keyed on its own tp_dealloc (which is now this function):
 * do both here, so deep nests are freed as without memlens. */
static void
ml_fl_list_dealloc(PyObject *op)
{
    PyInterpreterState *interp = ml_fl_interp();
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, ml_fl_list_dealloc)
    ml_fl_list_dealloc0(op);
    ml_fl_list_take_back(interp, op);
    Py_TRASHCAN_END
}

static void
ml_fl_dict_take_back(PyInterpreterState *interp, PyObject *op)
{
    struct _Py_dict_state *st = &interp->dict_state;
    if (st->numfree > 0 && (PyObject *)st->free_list[st->numfree - 1] == op) {
        st->numfree--;
        PyObject_GC_Del(op);
    }
    /* the keys table the dict just released */
    while (st->keys_numfree > 0)
        PyObject_Free(st->keys_free_list[--st->keys_numfree]);
}

static void
ml_fl_dict_dealloc(PyObject *op)
{
    PyInterpreterState *interp = ml_fl_interp();
#if PY_VERSION_HEX >= 0x030C0000
    /* a watched dict is told of its death before it is untracked, and may
     * be resurrected: leave its dealloc exactly as it is */
    _Py_COMP_DIAG_PUSH
    _Py_COMP_DIAG_IGNORE_DEPR_DECLS
    int watched = (((PyDictObject *)op)->ma_version_tag & ((1u << DICT_MAX_WATCHERS) - 1)) != 0;
    _Py_COMP_DIAG_POP
    if (watched) {
        ml_fl_dict_dealloc0(op);
        ml_fl_dict_take_back(interp, op);
        return;
    }
#endif
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, ml_fl_dict_dealloc)
    ml_fl_dict_dealloc0(op);
    ml_fl_dict_take_back(interp, op);
    Py_TRASHCAN_END
}

/* Contexts: a list linked through ctx_weakreflist, taken while its count
 * is not 0. Async generator values and asend objects: arrays. No
 * trashcan in their deallocs. */
static destructor ml_fl_context_dealloc0, ml_fl_agval_dealloc0, ml_fl_asend_dealloc0;

static void
ml_fl_context_dealloc(PyObject *op)
{
    ml_fl_context_dealloc0(op);
    struct _Py_context_state *st = &ml_fl_interp()->context;
    if ((PyObject *)st->freelist == op) {
        st->freelist = (PyContext *)((PyContext *)op)->ctx_weakreflist;
        st->numfree--;
        PyObject_GC_Del(op);
    }
}

static void
ml_fl_agval_dealloc(PyObject *op)
{
    ml_fl_agval_dealloc0(op);
    struct _Py_async_gen_state *st = &ml_fl_interp()->async_gen;
    if (st->value_numfree > 0 && (PyObject *)st->value_freelist[st->value_numfree - 1] == op) {
        st->value_numfree--;
        PyObject_GC_Del(op);
    }
}

static void
ml_fl_asend_dealloc(PyObject *op)
{
    ml_fl_asend_dealloc0(op);
    struct _Py_async_gen_state *st = &ml_fl_interp()->async_gen;
    if (st->asend_numfree > 0 && (PyObject *)st->asend_freelist[st->asend_numfree - 1] == op) {
        st->asend_numfree--;
        PyObject_GC_Del(op);
    }
}

#if PY_VERSION_HEX < 0x030B0000
/* 3.10: a code object keeps its last dead frame (co_zombieframe) for its
 * next call; the frame dealloc has its own unconditional trashcan. */
static destructor ml_fl_frame_dealloc0;

static void
ml_fl_frame_dealloc(PyObject *op)
{
    PyCodeObject *co = ((PyFrameObject *)op)->f_code;
    Py_INCREF(co); /* the frame's reference may be the last */
    ml_fl_frame_dealloc0(op);
    if (co->co_zombieframe == (void *)op) {
        co->co_zombieframe = NULL;
        PyObject_GC_Del(op);
    }
    Py_DECREF(co);
}
#define ML_FL_TUPLE_FIRST 1 /* entry 0 holds the empty tuple */
#define ML_FL_NTUPLES PyTuple_MAXSAVESIZE
#else
#define ML_FL_TUPLE_FIRST 0 /* entry i: tuples of length i + 1 */
#define ML_FL_NTUPLES PyTuple_NFREELISTS
#endif

size_t
ml_freelists_off(PyInterpreterState *interp, ml_freelists_free_fn on_free)
{
    size_t n = 0;
    struct _Py_float_state *fs = &interp->float_state;
    PyFloatObject *f = fs->free_list; /* linked through ob_type */
    fs->free_list = NULL;
    fs->numfree = ML_FL_FULL;
    for (; f; n++) {
        PyFloatObject *next = (PyFloatObject *)Py_TYPE(f);
        ml_fl_obj_free(f, on_free);
        f = next;
    }
    struct _Py_tuple_state *ts = &interp->tuple;
    for (int i = ML_FL_TUPLE_FIRST; i < ML_FL_NTUPLES; i++) {
        PyTupleObject *t = ts->free_list[i]; /* linked through ob_item[0] */
        ts->free_list[i] = NULL;
        ts->numfree[i] = ML_FL_FULL;
        for (; t; n++) {
            PyTupleObject *next = (PyTupleObject *)t->ob_item[0];
            ml_fl_gc_del(t, on_free);
            t = next;
        }
    }
    struct _Py_list_state *ls = &interp->list;
    for (; ls->numfree > 0; n++)
        ml_fl_gc_del(ls->free_list[--ls->numfree], on_free);
    struct _Py_dict_state *ds = &interp->dict_state;
    for (; ds->numfree > 0; n++)
        ml_fl_gc_del(ds->free_list[--ds->numfree], on_free);
    for (; ds->keys_numfree > 0; n++)
        ml_fl_obj_free(ds->keys_free_list[--ds->keys_numfree], on_free);
    PySliceObject **sc = ml_fl_slice_cache(interp);
    if (*sc) {
        ml_fl_gc_del(*sc, on_free);
        *sc = NULL;
        n++;
    }
    struct _Py_context_state *cs = &interp->context;
    while (cs->freelist) {
        PyContext *c = cs->freelist;
        cs->freelist = (PyContext *)c->ctx_weakreflist;
        cs->numfree--;
        ml_fl_gc_del(c, on_free);
        n++;
    }
    struct _Py_async_gen_state *as = &interp->async_gen;
    for (; as->value_numfree > 0; n++)
        ml_fl_gc_del(as->value_freelist[--as->value_numfree], on_free);
    for (; as->asend_numfree > 0; n++)
        ml_fl_gc_del(as->asend_freelist[--as->asend_numfree], on_free);
#if PY_VERSION_HEX < 0x030B0000
    struct _Py_frame_state *frs = &interp->frame;
    PyFrameObject *fr = frs->free_list; /* linked through f_back */
    frs->free_list = NULL;
    frs->numfree = ML_FL_FULL;
    for (; fr; n++) {
        PyFrameObject *next = fr->f_back;
        ml_fl_gc_del(fr, on_free);
        fr = next;
    }
#endif
    if (!ml_fl_wrapped) {
        ml_fl_wrapped = 1;
        ml_fl_list_dealloc0 = PyList_Type.tp_dealloc;
        PyList_Type.tp_dealloc = ml_fl_list_dealloc;
        ml_fl_dict_dealloc0 = PyDict_Type.tp_dealloc;
        PyDict_Type.tp_dealloc = ml_fl_dict_dealloc;
        ml_fl_slice_dealloc0 = PySlice_Type.tp_dealloc;
        PySlice_Type.tp_dealloc = ml_fl_slice_dealloc;
        ml_fl_context_dealloc0 = PyContext_Type.tp_dealloc;
        PyContext_Type.tp_dealloc = ml_fl_context_dealloc;
        ml_fl_agval_dealloc0 = _PyAsyncGenWrappedValue_Type.tp_dealloc;
        _PyAsyncGenWrappedValue_Type.tp_dealloc = ml_fl_agval_dealloc;
        ml_fl_asend_dealloc0 = _PyAsyncGenASend_Type.tp_dealloc;
        _PyAsyncGenASend_Type.tp_dealloc = ml_fl_asend_dealloc;
#if PY_VERSION_HEX < 0x030B0000
        ml_fl_frame_dealloc0 = PyFrame_Type.tp_dealloc;
        PyFrame_Type.tp_dealloc = ml_fl_frame_dealloc;
#endif
    }
    return n;
}

int
ml_freelists_stale(PyInterpreterState *interp)
{
    /* a collection resets every list at once; dict keys are also parked
     * by resizes between two hook calls */
    return interp->float_state.numfree != ML_FL_FULL ||
           interp->tuple.numfree[ML_FL_TUPLE_FIRST] != ML_FL_FULL || interp->dict_state.keys_numfree != 0 ||
           interp->dict_state.numfree != 0 || interp->list.numfree != 0
#if PY_VERSION_HEX < 0x030B0000
           || interp->frame.numfree != ML_FL_FULL
#endif
        ;
}

void
ml_freelists_on(PyInterpreterState *interp)
{
    if (ml_fl_wrapped) {
        ml_fl_wrapped = 0;
        PyList_Type.tp_dealloc = ml_fl_list_dealloc0;
        PyDict_Type.tp_dealloc = ml_fl_dict_dealloc0;
        PySlice_Type.tp_dealloc = ml_fl_slice_dealloc0;
        PyContext_Type.tp_dealloc = ml_fl_context_dealloc0;
        _PyAsyncGenWrappedValue_Type.tp_dealloc = ml_fl_agval_dealloc0;
        _PyAsyncGenASend_Type.tp_dealloc = ml_fl_asend_dealloc0;
#if PY_VERSION_HEX < 0x030B0000
        PyFrame_Type.tp_dealloc = ml_fl_frame_dealloc0;
#endif
    }
    /* the linked lists are empty: an empty count turns them back on */
    if (interp->float_state.numfree == ML_FL_FULL && !interp->float_state.free_list)
        interp->float_state.numfree = 0;
    for (int i = ML_FL_TUPLE_FIRST; i < ML_FL_NTUPLES; i++)
        if (interp->tuple.numfree[i] == ML_FL_FULL && !interp->tuple.free_list[i])
            interp->tuple.numfree[i] = 0;
#if PY_VERSION_HEX < 0x030B0000
    if (interp->frame.numfree == ML_FL_FULL && !interp->frame.free_list)
        interp->frame.numfree = 0;
#endif
}

#else
/* ---- 3.13: all lists in interp->object_state.freelists; a negative count
 * is the interpreter's own "off" for the arrays (list, dict, dict keys) ---- */

#define ML_FL(interp) (&(interp)->object_state.freelists)

size_t
ml_freelists_off(PyInterpreterState *interp, ml_freelists_free_fn on_free)
{
    struct _Py_object_freelists *fl = ML_FL(interp);
    size_t n = 0;
    PyFloatObject *f = fl->floats.items; /* linked through ob_type */
    fl->floats.items = NULL;
    fl->floats.numfree = ML_FL_FULL;
    for (; f; n++) {
        PyFloatObject *next = (PyFloatObject *)Py_TYPE(f);
        ml_fl_obj_free(f, on_free);
        f = next;
    }
    for (int i = 0; i < PyTuple_NFREELISTS; i++) {
        PyTupleObject *t = fl->tuples.items[i]; /* linked through ob_item[0] */
        fl->tuples.items[i] = NULL;
        fl->tuples.numfree[i] = ML_FL_FULL;
        for (; t; n++) {
            PyTupleObject *next = (PyTupleObject *)t->ob_item[0];
            ml_fl_gc_del(t, on_free);
            t = next;
        }
    }
    for (; fl->lists.numfree > 0; n++)
        ml_fl_gc_del(fl->lists.items[--fl->lists.numfree], on_free);
    fl->lists.numfree = -1;
    for (; fl->dicts.numfree > 0; n++)
        ml_fl_gc_del(fl->dicts.items[--fl->dicts.numfree], on_free);
    fl->dicts.numfree = -1;
    for (; fl->dictkeys.numfree > 0; n++) { /* keys tables come from PyMem_Malloc on 3.13 */
        void *k = fl->dictkeys.items[--fl->dictkeys.numfree];
        on_free(k, ML_FREELISTS_MEM);
        PyMem_Free(k);
    }
    fl->dictkeys.numfree = -1;
    PyContext *c = fl->contexts.items; /* linked through ctx_weakreflist */
    fl->contexts.items = NULL;
    fl->contexts.numfree = -1;
    for (; c; n++) {
        PyContext *next = (PyContext *)c->ctx_weakreflist;
        ml_fl_gc_del(c, on_free);
        c = next;
    }
    for (; fl->async_gens.numfree > 0; n++)
        ml_fl_gc_del(fl->async_gens.items[--fl->async_gens.numfree], on_free);
    fl->async_gens.numfree = -1;
    for (; fl->async_gen_asends.numfree > 0; n++)
        ml_fl_gc_del(fl->async_gen_asends.items[--fl->async_gen_asends.numfree], on_free);
    fl->async_gen_asends.numfree = -1;
    PySliceObject **sc = ml_fl_slice_cache(interp);
    if (*sc) {
        ml_fl_gc_del(*sc, on_free);
        *sc = NULL;
        n++;
    }
    if (!ml_fl_wrapped) {
        ml_fl_wrapped = 1;
        ml_fl_slice_dealloc0 = PySlice_Type.tp_dealloc;
        PySlice_Type.tp_dealloc = ml_fl_slice_dealloc;
    }
    return n;
}

int
ml_freelists_stale(PyInterpreterState *interp)
{
    struct _Py_object_freelists *fl = ML_FL(interp);
    return fl->floats.numfree != ML_FL_FULL || fl->tuples.numfree[0] != ML_FL_FULL || fl->lists.numfree != -1 ||
           fl->dicts.numfree != -1 || fl->dictkeys.numfree != -1 || fl->contexts.numfree != -1 ||
           fl->async_gens.numfree != -1 || fl->async_gen_asends.numfree != -1;
}

void
ml_freelists_on(PyInterpreterState *interp)
{
    struct _Py_object_freelists *fl = ML_FL(interp);
    if (ml_fl_wrapped) {
        ml_fl_wrapped = 0;
        PySlice_Type.tp_dealloc = ml_fl_slice_dealloc0;
    }
    if (fl->floats.numfree == ML_FL_FULL && !fl->floats.items)
        fl->floats.numfree = 0;
    for (int i = 0; i < PyTuple_NFREELISTS; i++)
        if (fl->tuples.numfree[i] == ML_FL_FULL && !fl->tuples.items[i])
            fl->tuples.numfree[i] = 0;
    if (fl->lists.numfree == -1)
        fl->lists.numfree = 0;
    if (fl->dicts.numfree == -1)
        fl->dicts.numfree = 0;
    if (fl->dictkeys.numfree == -1)
        fl->dictkeys.numfree = 0;
    if (fl->contexts.numfree == -1 && !fl->contexts.items)
        fl->contexts.numfree = 0;
    if (fl->async_gens.numfree == -1)
        fl->async_gens.numfree = 0;
    if (fl->async_gen_asends.numfree == -1)
        fl->async_gen_asends.numfree = 0;
}
#endif

/* ---- one dict's blocks kept off the free lists (gcrec's info dicts) ---- */

void
ml_freelists_drop_dict(PyObject *op)
{
    if (!PyDict_CheckExact(op) || Py_REFCNT(op) > 1) {
        Py_DECREF(op);
        return;
    }
    void *keys = ((PyDictObject *)op)->ma_keys;
    PyInterpreterState *interp = ml_fl_interp();
    Py_DECREF(op); /* the dict's own dealloc: it may park the dict and its keys */
#if PY_VERSION_HEX < 0x030D0000
    struct _Py_dict_state *st = &interp->dict_state;
    if (st->numfree > 0 && (PyObject *)st->free_list[st->numfree - 1] == op) {
        st->numfree--;
        PyObject_GC_Del(op);
    }
    if (st->keys_numfree > 0 && (void *)st->keys_free_list[st->keys_numfree - 1] == keys) {
        st->keys_numfree--;
        PyObject_Free(keys);
    }
#else
    struct _Py_object_freelists *fl = ML_FL(interp);
    if (fl->dicts.numfree > 0 && (PyObject *)fl->dicts.items[fl->dicts.numfree - 1] == op) {
        fl->dicts.numfree--;
        PyObject_GC_Del(op);
    }
    if (fl->dictkeys.numfree > 0 && (void *)fl->dictkeys.items[fl->dictkeys.numfree - 1] == keys) {
        fl->dictkeys.numfree--;
        PyMem_Free(keys); /* keys tables come from PyMem_Malloc on 3.13 */
    }
#endif
}
