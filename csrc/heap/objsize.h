/* objsize.h: the size of one object, as sys.getsizeof reports it, computed
 * in C; and a per-type table of counts and bytes.
 *
 * Layer: heap analysis. Sizing a builtin object (int, float, str, bytes,
 * tuple, list, dict, set, frozenset, bytearray, type, and every type that
 * keeps object.__sizeof__) reads its struct and never calls into Python.
 * Types with their own __sizeof__ (code objects, deque, array, io objects,
 * OrderedDict, classes defining __sizeof__, extension buffers) are
 * *deferred*: the table keeps a strong reference to the object and calls
 * __sizeof__ later, guarded, in ml_typetab_run_deferred, after the walk
 * has finished and holds no borrowed pointer any more.
 *
 * Everything here needs the GIL. Only ml_typetab_run_deferred and
 * ml_typetab_release may run Python code (and so let other threads run).
 */
#ifndef ML_OBJSIZE_H
#define ML_OBJSIZE_H

#include "compat/compat.h"
#include "heap/addrset.h"

/* How a type's objects are sized. */
typedef enum {
    ML_SIZER_GENERIC = 0, /* tp_basicsize + |ob_size| * tp_itemsize */
    ML_SIZER_INT,
    ML_SIZER_STR,
    ML_SIZER_LIST,      /* + allocated slots */
    ML_SIZER_DICT,      /* CPython's _PyDict_SizeOf */
    ML_SIZER_SET,       /* + the hash table when not the small table */
    ML_SIZER_BYTEARRAY, /* + the allocated buffer */
    ML_SIZER_TYPE,      /* heap type struct + its shared keys */
    ML_SIZER_CALL,      /* only __sizeof__ knows: deferred */
} ml_sizer;

/* One row per type. */
typedef struct {
    PyTypeObject *tp; /* strong reference */
    uint8_t sizer;    /* ml_sizer */
    int32_t extra;    /* what sys.getsizeof adds, or -1: ask each object */
    uint64_t count;
    uint64_t bytes;
} ml_typestat;

typedef struct ml_deferred ml_deferred;

typedef struct {
    ml_typestat *rows;
    size_t nrows, caprows;
    ml_addrset index; /* type address -> row */
    struct {
        PyTypeObject *tp;
        uint32_t row;
    } cache[64]; /* direct-mapped: type address -> row */
    ml_deferred *deferred;
    size_t ndeferred, capdeferred;
    /* __sizeof__ calls made, failed (raised or not an int), and results
     * below an object header (16) or above 1 TiB; both are replaced by
     * tp_basicsize */
    uint64_t sizeof_calls, sizeof_errors, sizeof_clamped;
    size_t align; /* deferred sizes are rounded up to this (0: exact) */
} ml_typetab;

/* Look up the __sizeof__ implementations of the builtin types. Once, at
 * import. Returns 0, or -1 with a Python exception set. */
int ml_objsize_setup(void);

/* Empty table. Returns 0, or -1 when out of memory. */
int ml_typetab_init(ml_typetab *t);

/* Drop the type references and any deferred objects not yet sized (may
 * run finalizers). The struct can be initialised again. */
void ml_typetab_release(ml_typetab *t);

/* Row index of `tp`, adding a row (holding a reference to tp) the first
 * time; *fresh is then 1. Returns the index, or -1 when out of memory. */
int64_t ml_typetab_row(ml_typetab *t, PyTypeObject *tp, int *fresh);

/* Size of `o` (a `row` object): sets *size and returns 0 when C knows it
 * exactly; for a deferred type keeps a reference to `o`, sets *size to 0
 * and returns 1 (its bytes are added to its row by run_deferred); -1 when
 * out of memory. Never calls into Python. */
int ml_typetab_size(ml_typetab *t, uint32_t row, PyObject *o, size_t *size);

/* Size of `o` computed in C when possible: 0 and *size, or 1 when only
 * __sizeof__ knows (then *size is its fixed part). Never calls Python. */
int ml_objsize_c(PyObject *o, size_t *size);

/* ml_objsize_c in two halves, for a pass that sizes many objects of few
 * types: the sizer of tp (a type lookup: ask once per type), then the
 * size of o by it, without what sys.getsizeof adds. */
ml_sizer ml_objsize_sizer(PyTypeObject *tp);
size_t ml_objsize_by_sizer(ml_sizer sizer, PyObject *o);

/* Call __sizeof__ for every deferred object, add the result (plus what
 * sys.getsizeof adds) to its row's bytes and drop the reference.
 * Exceptions are cleared and counted; a result that lies is replaced by
 * the fixed size and counted. Runs Python code. Never fails. */
void ml_typetab_run_deferred(ml_typetab *t);

/* sys.getsizeof(o) with the same guards, for objects one at a time; sets
 * *flag to 1 on an error, 2 on a clamped result, else 0. Runs Python. */
size_t ml_objsize_call(PyObject *o, int *flag);

#endif /* ML_OBJSIZE_H */
