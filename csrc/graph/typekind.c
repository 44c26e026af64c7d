/* typekind.c: per-type answers, cached (see typekind.h). */
#include "graph/typekind.h"

#define ML_TK_SLOTS 1024

static struct {
    PyTypeObject *tp;
    uint32_t gen;
    unsigned kind;
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
    return k;
}

unsigned
ml_typekind_of(PyTypeObject *tp)
{
    size_t i = ((uintptr_t)tp >> 4) * 0x9E3779B97F4A7C15ull >> 54; /* 10 bits */
    if (ml_tk_cache[i].tp != tp || ml_tk_cache[i].gen != ml_tk_gen) {
        ml_tk_cache[i].tp = tp;
        ml_tk_cache[i].gen = ml_tk_gen;
        ml_tk_cache[i].kind = ml_typekind_compute(tp);
    }
    return ml_tk_cache[i].kind;
}
