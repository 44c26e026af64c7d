/* heap.h: a census of the live heap ("what is in my heap right now?").
 *
 * Layer: heap analysis. ml_heap_take walks every live object once
 * (walk.h), counts it under its type with its size (objsize.h), records
 * every exact dict with its kind and size (dictstat.h) and who owns it,
 * and optionally every object's address (for snapshot diffs).
 *
 * Dict owners, as guppy's heapy names them: a dict that is an instance's
 * __dict__ is "dict of <Class>", a module's is "dict of module", a
 * class's "dict of type", any other "dict (no owner)". An instance whose
 * attributes live in a values array without a dict object (3.11+) is
 * charged its values too, under its own type.
 *
 * Phases: the walk runs with the GIL held and no Python code (other
 * threads cannot run or mutate anything); then dict owners are resolved,
 * still in C; only then are the deferred __sizeof__ calls made, which may
 * run Python code. The census holds references to every type it names.
 */
#ifndef ML_HEAP_H
#define ML_HEAP_H

#include "compat/compat.h"
#include "heap/dictstat.h"
#include "heap/objsize.h"

typedef struct ml_heap ml_heap;

/* What a row counts. */
typedef enum {
    ML_HEAP_OBJECTS = 0,       /* objects of exactly `tp` (not dict rows) */
    ML_HEAP_DICT_OF_CLASS = 1, /* __dict__s of instances of `tp` */
    ML_HEAP_DICT_OF_MODULE = 2,
    ML_HEAP_DICT_OF_TYPE = 3,
    ML_HEAP_DICT_NO_OWNER = 4,
} ml_heap_what;

typedef struct {
    PyTypeObject *tp; /* borrowed from the census (it holds a reference) */
    uint8_t what;     /* ml_heap_what; for 2-4 tp is dict */
    uint64_t count;
    uint64_t bytes;
} ml_heap_row;

typedef struct {
    uint64_t count, bytes;
    uint64_t sizeof_calls, sizeof_errors, sizeof_clamped;
    uint64_t max_stack;   /* deepest the walker's stack went */
    int gc_collecting;    /* the GC was collecting: its private lists were missed */
} ml_heap_stats;

/* Take a census of the heap; want_ids=1 also records every object's
 * address. Returns the census, or NULL when out of memory (no Python
 * exception set). May run Python code (deferred __sizeof__). */
ml_heap *ml_heap_take(int want_ids);

/* Rows (object rows and dict rows), in no particular order. */
const ml_heap_row *ml_heap_rows(const ml_heap *h, size_t *n);

/* The dict table. */
const ml_dictstat *ml_heap_dicts(const ml_heap *h);

/* Hand over the addresses of every object counted, in walk order,
 * without copying them: the caller owns the array (free()); the census
 * then has none. NULL and *n = 0 if none were recorded. */
uintptr_t *ml_heap_detach_ids(ml_heap *h, size_t *n);

void ml_heap_get_stats(const ml_heap *h, ml_heap_stats *out);

/* Drop the census and its type references. */
void ml_heap_free(ml_heap *h);

/* Sort addresses ascending (radix sort, malloc'd scratch). Returns 0, or
 * -1 when out of memory (array unchanged). */
int ml_heap_sort_ids(uintptr_t *ids, size_t n);

/* The live objects whose address is in `now` and not in `before` (any
 * order: sorted copies are made here), of exactly type `tp` (NULL: any):
 * new references stored into *out (malloc'd, *nout of them; the caller
 * decrefs and frees). Walks the
 * heap again, so only objects still alive come back. Returns 0, or -1
 * when out of memory. */
int ml_heap_new_objects(const uintptr_t *now, size_t nnow, const uintptr_t *before, size_t nbefore,
                        PyTypeObject *tp, PyObject ***out, size_t *nout);

#endif /* ML_HEAP_H */
