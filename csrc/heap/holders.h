/* holders.h: what holds each live object, as a path from a named root,
 * and the retained size of its holder.
 *
 * Layer: heap analysis, over the reference graph of csrc/graph (refgraph.h,
 * its named roots roots.h, its dominator tree dominators.h). One
 * breadth-first search from the named roots (module globals, __main__
 * first; sys.modules; every thread's frame locals), then from the "held by
 * C code" roots for what they do not reach, gives every reached object the
 * shortest path from one root, named hop by hop: "module __main__",
 * ".KEEP", "(list)", "[i]". Paths are kept as patterns, not per object:
 * the items of a list all get "[i]", the values of a dict of more than 16
 * items "[key]" (a smaller one's say "['name']"), so that the 25,000
 * objects of one list share one pattern. An attribute table (a module's,
 * a class's or an instance's __dict__) is no hop of its own: its values
 * read ".name" after their owner's type. Other edges are named as
 * memlens.why() names them (paths.h). Weak references are not edges.
 * Patterns deeper than ML_HOLDERS_DEPTH edges end in "...".
 *
 * The holder of a reached object is the object its last edge leaves (the
 * owner, for an attribute table); a root's objects are their own holders.
 * Its retained size is the dominator tree's (the bytes freed if it went
 * away).
 *
 * GIL held; never calls into Python and never allocates Python objects
 * (libc malloc only); borrowed pointers, as the graph's.
 */
#ifndef ML_HOLDERS_H
#define ML_HOLDERS_H

#include "graph/roots.h"

#define ML_HOLDERS_DEPTH 12

typedef struct ml_holders ml_holders;

/* The name of a type as the caller's report names it (NULL: "?"). */
typedef const char *(*ml_holders_name_fn)(void *arg, PyTypeObject *tp, size_t *len);

/* Search graph g from roots r and compute its dominator tree. NULL when
 * out of memory. g and r must outlive the result. */
ml_holders *ml_holders_build(const ml_refgraph *g, const ml_roots *r, ml_holders_name_fn name, void *name_arg);
void ml_holders_free(ml_holders *h);

/* Node v's pattern (1..count), 0 when no root reaches it. */
uint32_t ml_holders_pattern_of(const ml_holders *h, ml_node v);
/* The holder of reached node v (ML_NODE_NONE when unreached). */
ml_node ml_holders_holder_of(const ml_holders *h, ml_node v);
/* Retained bytes of node v. */
uint64_t ml_holders_retained(const ml_holders *h, ml_node v);

/* The reached nodes, in the order the search reached them (*n of them):
 * a container's items in its order, which for most containers is the
 * order their blocks were allocated in. */
const ml_node *ml_holders_reached(const ml_holders *h, size_t *n);

/* Patterns made (ids 1..n). */
uint32_t ml_holders_count(const ml_holders *h);
/* 1 when pattern p was cut at ML_HOLDERS_DEPTH (its objects' holders may
 * hold one another). */
int ml_holders_cut(const ml_holders *h, uint32_t p);
/* The hops of pattern p, root first, into hops/lens (at most cap; the
 * strings are owned by h). Returns the number of hops. */
size_t ml_holders_hops(const ml_holders *h, uint32_t p, const char **hops, size_t *lens, size_t cap);

#endif /* ML_HOLDERS_H */
