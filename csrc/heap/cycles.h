/* cycles.h: the cyclic garbage that exists right now, found without
 * collecting it (memlens.cycles()).
 *
 * Layer: heap analysis. Needs the GIL held by this thread for the whole
 * call; never calls into Python code, never allocates through Python and
 * never writes an object's GC state (gc_refs, list links): it only reads
 * refcounts and calls tp_traverse with its own visitor. Its memory is libc
 * malloc.
 *
 * The method is the collector's own, on a side table: take every object of
 * generations 0-2 (what a full collection examines; the permanent
 * generation of gc.freeze() is left out, as the collector leaves it), copy
 * its refcount, subtract the references each of them holds to the others
 * (tp_traverse). What remains > 0 is held from outside the set (a frame, a
 * frozen object, a C global): those objects, and everything they reach, are
 * reachable. The rest is the unreachable set a full collection would find
 * (before finalizers run: an object a __del__ resurrects is counted).
 *
 * Grouping: the unreachable objects split into islands (connected through
 * references, either way); an island's key is the set of the types in it.
 * Objects of equal islands' keys form one group.
 *
 * ml_cycles_of(obj): the strongly connected component of obj among the
 * tracked objects of every generation: the objects obj reaches that reach
 * obj back (the cycles obj is part of, garbage or not).
 */
#ifndef ML_CYCLES_H
#define ML_CYCLES_H

#include <stddef.h>
#include <stdint.h>

#include "compat/compat.h"

typedef struct {
    PyTypeObject *type;
    uint64_t count, bytes;
} ml_cycle_type;

typedef struct {
    ml_cycle_type *types;   /* distinct types of the group, most objects first */
    size_t ntypes;
    uint64_t islands, objects, bytes;
    size_t example;         /* an island of the group (index into islands) */
} ml_cycle_group;

/* One island: its objects (borrowed: valid while the caller holds the GIL
 * and runs no Python code) and the references between them (from, to:
 * indices into objs). */
typedef struct {
    PyObject **objs;
    size_t n;
    uint32_t *edge_from, *edge_to;
    size_t nedges;
} ml_cycle_island;

typedef struct {
    ml_cycle_group *groups; /* most bytes first */
    size_t ngroups;
    uint64_t objects, bytes; /* all unreachable objects */
    uint64_t examined;       /* objects in the side table */
    ml_cycle_island *islands; /* the example island of each group, by group */
    /* cycline: every object of the groups (borrowed, as islands' objs), with
     * its group and the index of its type in that group's types; filled
     * only when asked for (want_members), else NULL / 0 */
    PyObject **members;
    uint32_t *member_group, *member_type;
    size_t nmembers;
} ml_cycles;

/* The unreachable set now, grouped; with want_members, out->members too.
 * Returns 0, -1 out of memory, or -2 when the collector is running (its
 * objects are on private lists). */
int ml_cycles_find(ml_cycles *out, int want_members);
/* The component of obj as one group with its island (ngroups 0 when obj is
 * in no cycle or is not tracked); want_members as above. Same returns. */
int ml_cycles_of(PyObject *obj, ml_cycles *out, int want_members);
void ml_cycles_release(ml_cycles *c);

/* gcexit: every object a full collection now would free, each given once
 * to fn (borrowed; fn must not run Python code nor change any object): the
 * unreachable set of ml_cycles_find, then the objects the collector does
 * not track (an instance's str or int attribute, a tuple of them) whose
 * every reference comes from objects already given (found by counting
 * those references against the refcount). Objects of types without
 * tp_traverse are given but their own referents are not followed.
 * *objects: how many were given. Returns 0, -1 out of memory, -2 while
 * the collector runs, or fn's nonzero return (which stops the walk). */
typedef int (*ml_cycles_visit)(void *arg, PyObject *o);
int ml_cycles_unreachable(ml_cycles_visit fn, void *arg, uint64_t *objects);

#endif /* ML_CYCLES_H */
