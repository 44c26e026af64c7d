/* walk.h: reach every live object once, without recursion and without
 * creating Python objects.
 *
 * Layer: heap analysis. Two ways in:
 *  - ml_walk_heap: every object of the interpreter that the GC lists hold,
 *    plus everything reachable from them that the GC does not track (str,
 *    int, float, bytes, untracked tuples and dicts, static types), plus
 *    the locals of every thread's running frames (3.11+ keeps them outside
 *    objects). Tracked objects come from the lists, so only untracked ones
 *    enter the visited set.
 *  - ml_walk_from: everything reachable from some roots, through a filter
 *    that can stop the walk at some objects (deep size).
 * Referents come from tp_traverse of GC objects, as gc.get_referents sees
 * them, plus what tp_traverse leaves out on purpose because it cannot make
 * cycles: all-str dict keys, a heap type's name/qualname/__slots__, and
 * the constants, names and tables of code objects. Exact dicts, tuples
 * and lists, the bulk of most heaps, are read directly instead (the same
 * referents, one pass, no callback per item). Pending objects sit on an
 * explicit C stack: a million-deep chain costs a million stack slots of
 * heap memory, not C stack frames.
 *
 * The walk is bound by cache misses on objects it has not touched yet, so
 * it prefetches what it knows it will read: the GC lists a few objects
 * ahead, container items a few ahead, the entries of a dict it reaches.
 *
 * memlens never counts itself: instances of memlens' own types
 * (ml_walk_set_own_types: snapshots, diffs, deep sizes, the engine's id
 * buffers) are neither handed to fn nor traversed, in every walk. Their
 * data is kept in containers the GC does not track (str/int dicts, bytes,
 * engine buffers), so nothing of theirs is on the GC lists either: what
 * only they hold is never reached.
 *
 * GIL held throughout; nothing here calls into Python or allocates Python
 * objects, so no other thread runs while a walk is in progress. The
 * callback gets borrowed pointers; it must not run Python code or free
 * objects (it may take references).
 */
#ifndef ML_WALK_H
#define ML_WALK_H

#include "compat/compat.h"
#include "heap/addrbits.h"
#include "heap/dictstat.h"
#include "heap/ownset.h"

typedef struct ml_walk ml_walk;

/* Called once for each object reached, after its referents have been
 * reached (pushed, not yet handed to fn); for an exact dict, w->dict_kind
 * then holds its kind (dictstat.h), found while reading its entries.
 * Return 0 to go on, -1 to stop the walk (the walk then returns -1). */
typedef int (*ml_walk_fn)(ml_walk *w, PyObject *o, void *arg);

/* For ml_walk_from: 1 to reach referent `o`, 0 to leave it (and what only
 * it leads to) out. */
typedef int (*ml_walk_filter)(PyObject *o, void *arg);

struct ml_walk {
    ml_addrbits seen;    /* untracked objects reached (all, in from-mode) */
    PyObject **stack;    /* objects reached, not yet handed to fn */
    size_t n, cap;
    int gc_mode;         /* tracked referents skipped: the lists hold them */
    int oom;
    ml_walk_fn fn;
    ml_walk_filter filter;
    void *arg;
    size_t reached;      /* objects handed to fn */
    size_t max_stack;    /* deepest the stack went */
    ml_dictkind dict_kind; /* while fn runs on an exact dict: its kind */
    /* ml_walk_heap_refs: while fn runs on o, o's referents (each visit,
     * tracked or not, in order) are refs[ref_mark .. nrefs) */
    PyObject **refs;
    size_t nrefs, caprefs, ref_mark;
    int record;
    ml_ownset own;       /* ml_walk_heap: memlens' part, left out (ownset.h) */
};

/* Walk the whole heap: fn(o) once per live object. Once memlens has
 * registered the modules it imported to run a program (ownset.h), what
 * only memlens holds is left out, as memlens' own types are. Returns 0,
 * or -1 when out of memory or when fn stopped it. */
int ml_walk_heap(ml_walk_fn fn, void *arg, ml_walk *w);

/* ml_walk_heap, also recording every object's referents for fn (see
 * refs in struct ml_walk: the reference graph's edges, one traversal for
 * both). The caller may take w->refs after the walk (set it to NULL
 * before ml_walk_release), or leave it to ml_walk_release. */
int ml_walk_heap_refs(ml_walk_fn fn, void *arg, ml_walk *w);

/* Walk from `roots` (each reached even if the filter would refuse it),
 * following referents that `filter` (may be NULL) accepts. Returns 0 or
 * -1 as ml_walk_heap. */
int ml_walk_from(PyObject *const *roots, size_t nroots, ml_walk_filter filter, ml_walk_fn fn,
                 void *arg, ml_walk *w);

/* The types whose instances every walk leaves out (exact types, at most
 * ML_WALK_MAX_OWN; references are kept for the life of the process). Adds
 * to those given before. Returns 0, or -1 when there is no room. */
#define ML_WALK_MAX_OWN 32
int ml_walk_add_own_type(PyTypeObject *tp);

/* Those types (the engine holds a reference to each): *n of them. */
PyTypeObject *const *ml_walk_own_types(size_t *n);

/* Stop the GC tracking dict `d` when nothing in it can be part of a
 * cycle: every key and value is an object the GC does not track, or a
 * dict of such objects (checked one level down). For the instance dicts
 * of memlens' own types (an int subclass cannot have __slots__), so that
 * what they hold is never on the GC lists. A later insertion of a
 * tracked object tracks the dict again (CPython does), so this is the
 * same as the untracking the GC itself does to such dicts in a full
 * collection. Returns 1 if `d` is now untracked, else 0. */
int ml_walk_untrack_dict(PyObject *d);

/* From inside fn: reach `o` too (e.g. the type of an object, which
 * tp_traverse does not visit for static types). Returns 0, or -1 when out
 * of memory. */
int ml_walk_reach(ml_walk *w, PyObject *o);

/* From inside fn: reach o's attribute dict too, when o is an instance (not
 * a type, a module or an exact dict): 3.13 traverses an instance's inline
 * values, not a dict made from them. *values: the bytes of o's values
 * array (ml_compat_instance_dict), 0 when none. Returns 0, or -1 when out
 * of memory. */
int ml_walk_reach_instance_dict(ml_walk *w, PyObject *o, size_t *values);

/* From inside fn: remember tracked object `o` as handed to fn, for
 * ml_walk_seen (the walk remembers untracked objects itself). Returns 0,
 * or -1 when out of memory. */
int ml_walk_mark(ml_walk *w, PyObject *o);

/* After a complete walk, before ml_walk_release: 1 if `o` was handed to
 * fn, for an untracked object or one marked with ml_walk_mark; else 0. */
int ml_walk_seen(const ml_walk *w, PyObject *o);

/* Free the visited set and stack after a walk. */
void ml_walk_release(ml_walk *w);

#endif /* ML_WALK_H */
