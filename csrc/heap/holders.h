/* holders.h: what holds each live object, as a path from a named root.
 *
 * Layer: heap analysis. A breadth-first walk from the modules of
 * sys.modules (__main__ first) gives every object it reaches the shortest
 * path from one of them, named hop by hop: "module __main__", ".KEEP",
 * "(list)", "[i]". Paths are kept as patterns, not per object: the items
 * of a list all get "[i]", the values of a big dict "[key]" (a small
 * dict's say "['name']"), so that the 25,000 objects of one list share one
 * pattern. Edges: a module's or an instance's attributes (".name", read
 * from its __dict__, which is not a hop of its own), items of lists and
 * tuples ("[i]"), dict values, set members ("{item}"), a class's
 * attributes; any other referent (tp_traverse) is "(ref)". Weak references
 * are not edges (tp_traverse of a weakref does not visit its referent).
 * Patterns deeper than ML_HOLDERS_DEPTH hops end in "...".
 *
 * This is the minimal path search of memlens run's heap at exit: roots
 * are the modules only (no thread frames, no "held by C code").
 *
 * GIL held; never calls into Python and never allocates Python objects
 * (libc malloc only), so nothing changes while it runs.
 */
#ifndef ML_HOLDERS_H
#define ML_HOLDERS_H

#include "compat/compat.h"

#define ML_HOLDERS_DEPTH 12

typedef struct ml_holders ml_holders;

/* The name of a type as the caller's report names it (NULL: "?"). */
typedef const char *(*ml_holders_name_fn)(void *arg, PyTypeObject *tp, size_t *len);
/* Called once for each object reached, with its pattern (1, 2, ...).
 * Return 0 to go on, -1 to stop the walk. */
typedef int (*ml_holders_fn)(void *arg, PyObject *o, uint32_t pattern);

ml_holders *ml_holders_new(ml_holders_name_fn name, void *name_arg);
void ml_holders_free(ml_holders *h);

/* Walk from the roots. Returns 0, or -1 when out of memory or when fn
 * stopped it. *reached (if not NULL) gets the objects reached. */
int ml_holders_walk(ml_holders *h, ml_holders_fn fn, void *arg, size_t *reached);

/* Patterns made so far (ids 1..n). */
uint32_t ml_holders_count(const ml_holders *h);
/* The hops of pattern p, root first, into hops/lens (at most cap; the
 * strings are owned by h). Returns the number of hops. */
size_t ml_holders_hops(const ml_holders *h, uint32_t p, const char **hops, size_t *lens, size_t cap);

#endif /* ML_HOLDERS_H */
