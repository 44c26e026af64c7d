/* objsize.c: per-object sizes computed in C, and the per-type table.
 *
 * The C sizes mirror each builtin's __sizeof__ (Objects/ of 3.10-3.13)
 * plus what sys.getsizeof adds (compat: GC head and pre-header); the tests
 * compare them with sys.getsizeof object by object.
 */
#include "heap/objsize.h"

#include <stdlib.h>
#include <string.h>

struct ml_deferred {
    PyObject *o; /* strong reference */
    uint32_t row;
};

/* Which __sizeof__ each builtin resolves to (borrowed: they live in the
 * static types' dicts as long as the interpreter does). */
static struct {
    PyObject *name;
    PyObject *object, *tuple, *bytes, *int_, *str, *list, *dict, *set, *frozenset, *bytearray,
        *type;
} ml_sizeofs;

int
ml_objsize_setup(void)
{
    if (ml_sizeofs.name)
        return 0;
    PyObject *name = PyUnicode_InternFromString("__sizeof__");
    if (!name)
        return -1;
    ml_sizeofs.name = name;
    ml_sizeofs.object = _PyType_Lookup(&PyBaseObject_Type, name);
    ml_sizeofs.tuple = _PyType_Lookup(&PyTuple_Type, name);
    ml_sizeofs.bytes = _PyType_Lookup(&PyBytes_Type, name);
    ml_sizeofs.int_ = _PyType_Lookup(&PyLong_Type, name);
    ml_sizeofs.str = _PyType_Lookup(&PyUnicode_Type, name);
    ml_sizeofs.list = _PyType_Lookup(&PyList_Type, name);
    ml_sizeofs.dict = _PyType_Lookup(&PyDict_Type, name);
    ml_sizeofs.set = _PyType_Lookup(&PySet_Type, name);
    ml_sizeofs.frozenset = _PyType_Lookup(&PyFrozenSet_Type, name);
    ml_sizeofs.bytearray = _PyType_Lookup(&PyByteArray_Type, name);
    ml_sizeofs.type = _PyType_Lookup(&PyType_Type, name);
    if (!ml_sizeofs.object) {
        PyErr_SetString(PyExc_RuntimeError, "memlens: object.__sizeof__ not found");
        return -1;
    }
    return 0;
}

static ml_sizer
ml_objsize_sizer_of(PyTypeObject *tp)
{
    PyObject *m = _PyType_Lookup(tp, ml_sizeofs.name);
    if (!m)
        return ML_SIZER_CALL;
    if (m == ml_sizeofs.object || m == ml_sizeofs.tuple || m == ml_sizeofs.bytes)
        return ML_SIZER_GENERIC;
    if (m == ml_sizeofs.int_)
        return ML_SIZER_INT;
    if (m == ml_sizeofs.str)
        return ML_SIZER_STR;
    if (m == ml_sizeofs.list)
        return ML_SIZER_LIST;
    if (m == ml_sizeofs.dict)
        return ML_SIZER_DICT;
    if (m == ml_sizeofs.set || m == ml_sizeofs.frozenset)
        return ML_SIZER_SET;
    if (m == ml_sizeofs.bytearray)
        return ML_SIZER_BYTEARRAY;
    if (m == ml_sizeofs.type)
        return ML_SIZER_TYPE;
    return ML_SIZER_CALL;
}

/* object.__sizeof__: the fixed part every object has. */
static size_t
ml_objsize_generic(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    size_t size = (size_t)tp->tp_basicsize;
    if (tp->tp_itemsize) {
        Py_ssize_t n = Py_SIZE(o);
        size_t items = (size_t)(n < 0 ? -n : n) * (size_t)tp->tp_itemsize;
        /* A type with an item size but no ob_size (3.11+ frames) would
         * give garbage here; object.__sizeof__ gives the same garbage. */
        if (items < ((size_t)1 << 40))
            size += items;
    }
    return size;
}

static size_t
ml_objsize_by(ml_sizer sizer, PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    switch (sizer) {
    case ML_SIZER_INT:
        return ml_compat_int_sizeof(o);
    case ML_SIZER_STR:
        return ml_compat_str_sizeof(o);
    case ML_SIZER_LIST:
        return (size_t)tp->tp_basicsize + (size_t)((PyListObject *)o)->allocated * sizeof(PyObject *);
    case ML_SIZER_DICT:
        return ml_compat_dict_sizeof(o);
    case ML_SIZER_SET: {
        PySetObject *so = (PySetObject *)o;
        size_t size = (size_t)tp->tp_basicsize;
        if (so->table != so->smalltable)
            size += ((size_t)so->mask + 1) * sizeof(setentry);
        return size;
    }
    case ML_SIZER_BYTEARRAY:
        return (size_t)tp->tp_basicsize + (size_t)((PyByteArrayObject *)o)->ob_alloc;
    case ML_SIZER_TYPE:
        return ml_compat_type_sizeof((PyTypeObject *)o);
    default:
        return ml_objsize_generic(o);
    }
}

ml_sizer
ml_objsize_sizer(PyTypeObject *tp)
{
    return ml_objsize_sizer_of(tp);
}

size_t
ml_objsize_by_sizer(ml_sizer sizer, PyObject *o)
{
    return ml_objsize_by(sizer, o);
}

int
ml_objsize_c(PyObject *o, size_t *size)
{
    ml_sizer s = ml_objsize_sizer_of(Py_TYPE(o));
    *size = ml_objsize_by(s, o) + ml_compat_sizeof_extra(o);
    return s == ML_SIZER_CALL;
}

int
ml_typetab_init(ml_typetab *t)
{
    memset(t, 0, sizeof(*t));
    return ml_addrset_init(&t->index, 256, 1);
}

void
ml_typetab_release(ml_typetab *t)
{
    for (size_t i = 0; i < t->ndeferred; i++)
        Py_DECREF(t->deferred[i].o);
    for (size_t i = 0; i < t->nrows; i++)
        Py_DECREF(t->rows[i].tp);
    free(t->deferred);
    free(t->rows);
    ml_addrset_release(&t->index);
    memset(t, 0, sizeof(*t));
}

int64_t
ml_typetab_row(ml_typetab *t, PyTypeObject *tp, int *fresh)
{
    uint32_t row;
    size_t slot = ((uintptr_t)tp >> 4) & 63;
    *fresh = 0;
    if (t->cache[slot].tp == tp)
        return t->cache[slot].row;
    if (!ml_addrset_get(&t->index, (uintptr_t)tp, &row)) {
        if (t->nrows == t->caprows) {
            size_t cap = t->caprows ? t->caprows * 2 : 256;
            ml_typestat *r = realloc(t->rows, cap * sizeof(*r));
            if (!r)
                return -1;
            t->rows = r;
            t->caprows = cap;
        }
        row = (uint32_t)t->nrows;
        if (ml_addrset_add(&t->index, (uintptr_t)tp, row) < 0)
            return -1;
        ml_typestat *r = &t->rows[t->nrows++];
        Py_INCREF(tp);
        r->tp = tp;
        r->sizer = (uint8_t)ml_objsize_sizer_of(tp);
        r->extra = (int32_t)ml_compat_sizeof_extra_of_type(tp);
        r->count = r->bytes = 0;
        *fresh = 1;
    }
    t->cache[slot].tp = tp;
    t->cache[slot].row = row;
    return row;
}

int
ml_typetab_size(ml_typetab *t, uint32_t row, PyObject *o, size_t *size)
{
    const ml_typestat *r = &t->rows[row];
    ml_sizer s = (ml_sizer)r->sizer;
    if (s != ML_SIZER_CALL) {
        *size = ml_objsize_by(s, o) + (r->extra >= 0 ? (size_t)r->extra : ml_compat_sizeof_extra(o));
        return 0;
    }
    if (t->ndeferred == t->capdeferred) {
        size_t cap = t->capdeferred ? t->capdeferred * 2 : 1024;
        ml_deferred *d = realloc(t->deferred, cap * sizeof(*d));
        if (!d)
            return -1;
        t->deferred = d;
        t->capdeferred = cap;
    }
    Py_INCREF(o);
    t->deferred[t->ndeferred].o = o;
    t->deferred[t->ndeferred].row = row;
    t->ndeferred++;
    *size = 0;
    return 1;
}

/* Results below an object header or above this are lies (no single
 * object is 1 TiB). */
#define ML_OBJSIZE_MAX ((Py_ssize_t)1 << 40)

size_t
ml_objsize_call(PyObject *o, int *flag)
{
    /* Fallback when __sizeof__ fails or lies: the fixed struct size. */
    size_t fixed = (size_t)Py_TYPE(o)->tp_basicsize;
    size_t extra = ml_compat_sizeof_extra(o);
    Py_ssize_t v = -1;
    *flag = 0;
    /* Look __sizeof__ up on the type, as sys.getsizeof does, so an
     * instance attribute cannot shadow it. */
    PyObject *descr = _PyType_Lookup(Py_TYPE(o), ml_sizeofs.name);
    if (!descr) {
        *flag = 1;
        return fixed + extra;
    }
    Py_INCREF(descr);
    PyObject *res;
    descrgetfunc get = Py_TYPE(descr)->tp_descr_get;
    if (get) {
        PyObject *bound = get(descr, o, (PyObject *)Py_TYPE(o));
        res = bound ? PyObject_CallNoArgs(bound) : NULL;
        Py_XDECREF(bound);
    } else {
        res = PyObject_CallOneArg(descr, o);
    }
    Py_DECREF(descr);
    int is_int = res && PyLong_Check(res);
    if (is_int)
        v = PyLong_AsSsize_t(res);
    Py_XDECREF(res);
    if (!is_int || PyErr_Occurred()) {
        PyErr_Clear();
        /* raised or not an int: an error; an int too big to convert: a lie */
        *flag = is_int ? 2 : 1;
        return fixed + extra;
    }
    if (v < (Py_ssize_t)sizeof(PyObject) || v > ML_OBJSIZE_MAX) {
        *flag = 2;
        return fixed + extra;
    }
    return (size_t)v + extra;
}

void
ml_typetab_run_deferred(ml_typetab *t)
{
    /* Take the list first: __sizeof__ may re-enter memlens. */
    ml_deferred *list = t->deferred;
    size_t n = t->ndeferred;
    t->deferred = NULL;
    t->ndeferred = t->capdeferred = 0;
    for (size_t i = 0; i < n; i++) {
        int flag;
        size_t size = ml_objsize_call(list[i].o, &flag);
        t->sizeof_calls++;
        if (flag == 1)
            t->sizeof_errors++;
        else if (flag == 2)
            t->sizeof_clamped++;
        if (t->align > 1)
            size = (size + t->align - 1) / t->align * t->align;
        t->rows[list[i].row].bytes += size;
        Py_DECREF(list[i].o);
    }
    free(list);
}
