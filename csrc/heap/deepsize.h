/* deepsize.h: bytes reachable from some objects, each counted once.
 *
 * Layer: heap analysis. Follows tp_traverse referents from the roots
 * (walk.h, explicit stack, visited set), never into objects that are
 * instances of the stop types (by default modules, classes, functions and
 * code objects: shared program structure, not data). The roots themselves
 * are always counted. Sizes as objsize.h, plus an instance's attribute
 * values array where it has no dict (3.11+), optionally rounded up to a
 * multiple of `align` bytes per object (pympler.asizeof rounds to 8).
 *
 * GIL held. The walk runs no Python code; deferred __sizeof__ calls run
 * afterwards.
 */
#ifndef ML_DEEPSIZE_H
#define ML_DEEPSIZE_H

#include "compat/compat.h"
#include "heap/objsize.h"

typedef struct {
    ml_typetab types; /* per-type count and bytes */
    uint64_t total, count;
    size_t align;
    size_t max_stack;
} ml_deepsize;

/* Size everything reachable from roots[0..n) not crossing into instances
 * of the types in `stop` (a tuple of types, borrowed). align 0 or 1: exact.
 * Returns 0 with `ds` filled (release it with ml_deepsize_release), or -1
 * when out of memory (nothing to release, no exception set). May run
 * Python code (deferred __sizeof__). */
int ml_deepsize_run(ml_deepsize *ds, PyObject *const *roots, size_t n, PyObject *stop, size_t align);

void ml_deepsize_release(ml_deepsize *ds);

#endif /* ML_DEEPSIZE_H */
