/* freelists.h: CPython's free lists turned off while memlens records.
 *
 * Layer: compat (every version difference of the free lists is here).
 *
 * CPython keeps dead objects of some builtin types on free lists and makes
 * the next object of the type in one of them, without calling the
 * allocator: the hooks would see neither the death nor the birth, so
 * "alive" would count dead objects and charge a new object to the line
 * that made the block's first occupant. While a capture records, every
 * free list of an object type is kept empty and off, so each object is
 * allocated and freed through the hooks:
 *
 *   - lists linked through their entries (float and tuple; 3.10's frames)
 *     are made to look full and empty: a dealloc frees through the
 *     allocator, an allocation finds nothing; on 3.13 every other list
 *     (list, dict, dict keys, context, async generator value and asend)
 *     gets a count of -1, the interpreter's own "off" state;
 *   - lists a count cannot turn off on 3.10-3.12 (list, dict, context,
 *     async generator value and asend), the slice cache (3.10-3.13) and
 *     3.10's zombie frames get a tp_dealloc that calls the type's own and
 *     then takes back, and frees, the object it just parked (with the
 *     trashcan depth guard of the original for list and dict);
 *   - dict keys tables on 3.10-3.12 (an array, filled from several
 *     places) are emptied at every allocation hook: a table parked by a
 *     resize is freed before any dict can take it.
 *
 * A full collection empties the lists and resets their counts (turning
 * the linked ones back on): ml_freelists_stale notices it at the next
 * allocation and ml_freelists_off is called again. Nothing changes for
 * the program but speed: its objects are the same, made and freed by the
 * allocator instead of a list.
 *
 * Every free list of an object type in 3.10-3.13 is covered.
 *
 * All functions need the GIL held by this thread and the interpreter that
 * records.
 */
#ifndef ML_FREELISTS_H
#define ML_FREELISTS_H

#include "compat/compat.h"

/* The allocator domain a parked block goes back to. */
enum { ML_FREELISTS_MEM = 1, ML_FREELISTS_OBJ = 2 };

/* Called for each block the lists held, just before ml_freelists_off
 * frees it (PyObject_GC_Del, PyObject_Free or PyMem_Free): the caller
 * holds its re-entrancy guard, so its hooks do not see that free and this
 * is where it records it. */
typedef void (*ml_freelists_free_fn)(void *block, int domain);

/* Empty every free list (each block goes to `on_free`, then is freed) and
 * keep them off; the first call also installs the tp_dealloc wrappers.
 * Returns the number of blocks freed. */
size_t ml_freelists_off(PyInterpreterState *interp, ml_freelists_free_fn on_free);

/* 1 if a list was reset or refilled since ml_freelists_off (a full
 * collection): call ml_freelists_off again. A few loads; never allocates. */
int ml_freelists_stale(PyInterpreterState *interp);

/* Turn the lists back on (empty) and remove the tp_dealloc wrappers. */
void ml_freelists_on(PyInterpreterState *interp);

/* Drop one reference to `op`. If it was a plain dict's last, its blocks
 * (the dict, and its keys table if that was not shared) do not stay
 * parked: the ones its dealloc put on top of the dict and dict keys free
 * lists are taken back and freed through the allocator, so the hooks see
 * those frees and no later dict takes the blocks unseen. For dicts CPython
 * makes for memlens' sake (gcrec's info dicts), with the lists on or off. */
void ml_freelists_drop_dict(PyObject *op);

#endif /* ML_FREELISTS_H */
