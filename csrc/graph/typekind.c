/* typekind.c: per-type answers, cached (see typekind.h). */
#include "graph/typekind.h"

#include <string.h>
#include "heap/objsize.h"

#define ML_TK_SLOTS 1024

static struct {
    PyTypeObject *tp;
    uint32_t gen;
    ml_typeinfo info;
} ml_tk_cache[ML_TK_SLOTS];
static uint32_t ml_tk_gen = 1;

void
ml_typekind_reset(void)
{
    if (++ml_tk_gen == 0) { /* wrapped: old entries could match again */
        for (size_t i = 0; i < ML_TK_SLOTS; i++)
            ml_tk_cache[i].gen = 0;
        ml_tk_gen = 1;
    }
}

/* _collections' deque: a static type up to 3.11, a heap type made from a
 * spec after; either way named "collections.deque". */
int
ml_typekind_is_deque(PyTypeObject *tp)
{
    return ml_compat_derives_from(tp, "collections.deque");
}

static unsigned
ml_typekind_compute(PyTypeObject *tp)
{
    unsigned k = 0;
    if (PyType_FastSubclass(tp, Py_TPFLAGS_DICT_SUBCLASS))
        k |= ML_TK_DICT;
    if (PyType_FastSubclass(tp, Py_TPFLAGS_LIST_SUBCLASS) || PyType_FastSubclass(tp, Py_TPFLAGS_TUPLE_SUBCLASS))
        k |= ML_TK_SEQ;
    if (PyType_IsSubtype(tp, &PySet_Type) || PyType_IsSubtype(tp, &PyFrozenSet_Type))
        k |= ML_TK_SET;
    if (PyType_IsSubtype(tp, &PyModule_Type))
        k |= ML_TK_MODULE;
    if (PyType_FastSubclass(tp, Py_TPFLAGS_TYPE_SUBCLASS))
        k |= ML_TK_TYPE;
    if (ml_compat_type_owns_buffers(tp))
        k |= ML_TK_BUFFERS;
    if (ml_typekind_is_deque(tp))
        k |= ML_TK_DEQUE;
    return k;
}

const ml_typeinfo *
ml_typekind_info(PyTypeObject *tp)
{
    size_t i = ((uintptr_t)tp >> 4) * 0x9E3779B97F4A7C15ull >> 54; /* 10 bits */
    if (ml_tk_cache[i].tp != tp || ml_tk_cache[i].gen != ml_tk_gen) {
        Py_ssize_t extra = ml_compat_sizeof_extra_of_type(tp);
        ml_tk_cache[i].tp = tp;
        ml_tk_cache[i].gen = ml_tk_gen;
        ml_tk_cache[i].info.kind = ml_typekind_compute(tp);
        ml_tk_cache[i].info.sizer = (uint8_t)ml_objsize_sizer(tp);
        ml_tk_cache[i].info.extra = extra >= 0 && extra < INT32_MAX ? (int32_t)extra : -1;
    }
    return &ml_tk_cache[i].info;
}

unsigned
ml_typekind_of(PyTypeObject *tp)
{
    return ml_typekind_info(tp)->kind;
}

size_t
ml_typekind_size(PyObject *o)
{
    const ml_typeinfo *t = ml_typekind_info(Py_TYPE(o));
    size_t extra = t->extra >= 0 ? (size_t)t->extra : ml_compat_sizeof_extra(o);
    return ml_objsize_by_sizer((ml_sizer)t->sizer, o) + extra;
}
