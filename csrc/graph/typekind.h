/* typekind.h: what the heap graph's passes ask of an object's type, asked
 * once per type.
 *
 * Layer: heap analysis. PyModule_Check, PyAnySet_Check and the like call
 * PyType_IsSubtype for every object that is not of the exact type; over a
 * million objects that is most of a pass's checks. ml_typekind_of answers
 * from a small direct-mapped cache, emptied by ml_typekind_reset at the
 * start of each pass (a type freed between two passes may leave its
 * address to another).
 *
 * GIL held (the cache is process-wide); never calls into Python.
 */
#ifndef ML_TYPEKIND_H
#define ML_TYPEKIND_H

#include "compat/compat.h"

enum {
    ML_TK_DICT = 1,    /* PyDict_Check */
    ML_TK_SEQ = 2,     /* PyList_Check or PyTuple_Check */
    ML_TK_SET = 4,     /* PyAnySet_Check */
    ML_TK_MODULE = 8,  /* PyModule_Check */
    ML_TK_TYPE = 16,   /* PyType_Check */
    ML_TK_BUFFERS = 32, /* may own buffers (ml_compat_type_owns_buffers) */
    ML_TK_DEQUE = 64    /* collections.deque or a subclass (ml_typekind_is_deque) */
};

/* What a pass needs of a type. */
typedef struct {
    unsigned kind;  /* ML_TK_ bits */
    uint8_t sizer;  /* heap/objsize.h ml_sizer */
    int32_t extra;  /* ml_compat_sizeof_extra_of_type, or -1: ask each object */
} ml_typeinfo;

/* 1 if tp is collections.deque, 2 if it derives from it, else 0 (a
 * deque's items have no index a reference can name without calling into
 * Python: "[i]"). Walks tp's bases; not cached. */
int ml_typekind_is_deque(PyTypeObject *tp);
/* Forget every type (call at the start of a pass). */
void ml_typekind_reset(void);

/* The ML_TK_ bits of tp. */
unsigned ml_typekind_of(PyTypeObject *tp);

/* All of it (the pointer is valid until the next call). */
const ml_typeinfo *ml_typekind_info(PyTypeObject *tp);

/* o's shallow C size as ml_objsize_c gives it (heap/objsize.h), its type's
 * part asked once per type. */
size_t ml_typekind_size(PyObject *o);

#endif /* ML_TYPEKIND_H */
