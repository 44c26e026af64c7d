/* dominators.h: the dominator tree of the heap graph and retained sizes.
 *
 * Layer: heap analysis, over a refgraph and its roots. A virtual root
 * points at every root (named and "held by C code"); objects it does not
 * reach (garbage cycles the GC has not collected yet, what only memlens'
 * own frames hold) are made roots too, in node (address) order, so every object has
 * a dominator. Object d dominates v when every path from the virtual root
 * to v passes through d; v's retained size is the sum of the shallow
 * sizes of the objects it dominates (itself included): the bytes freed if
 * v went away. Weak references are not edges (refgraph.h), so they never
 * retain. Excluded nodes (memlens' own frames) have no out-edges here.
 *
 * Algorithm: SEMI-NCA (Georgiadis; the semidominators of Lengauer-Tarjan
 * with path compression, then immediate dominators as nearest common
 * ancestors in DFS order), iterative (no recursion), O(E log N) at worst.
 * Temporary memory: about 32 bytes per node.
 */
#ifndef ML_DOMINATORS_H
#define ML_DOMINATORS_H

#include "graph/roots.h"

typedef struct {
    size_t n;
    ml_node *idom;      /* per node: its immediate dominator, ML_NODE_NONE = the virtual root */
    uint64_t *retained; /* per node */
    uint64_t total;     /* shallow bytes of every node */
    ml_node *order;     /* nodes in an order where idom comes first (DFS preorder) */
    size_t nreached;    /* order[0..nreached): reached from the roots; the rest were not */
    /* the tree's children: kids[koff[v] .. koff[v+1]); node n stands for
     * the virtual root */
    uint32_t *koff;
    ml_node *kids;
} ml_domtree;

/* Compute the dominator tree. Returns 0, or -1 when out of memory. */
int ml_dominators_compute(const ml_refgraph *g, const ml_roots *r, ml_domtree *t);
/* The same, but only idom, retained and total (order, koff and kids NULL:
 * none of the queries below): for callers that only read retained sizes. */
int ml_dominators_retained(const ml_refgraph *g, const ml_roots *r, ml_domtree *t);
void ml_domtree_release(ml_domtree *t);

/* Retained bytes per type, as Eclipse MAT's "retained heap" of a class:
 * for each type, the retained sizes of its objects that no other object
 * of the same type dominates (so nothing counts twice). type_of[v] is a
 * small type number (< ntypes) per node; out gets ntypes sums. 0 or -1. */
int ml_dominators_by_type(const ml_domtree *t, const uint32_t *type_of, size_t ntypes, uint64_t *out);

/* The children of the virtual root retaining the most: up to `top` nodes
 * into out (biggest first); returns how many. */
size_t ml_dominators_top(const ml_domtree *t, size_t top, ml_node *out);

/* From `v`, follow the child retaining the most while it keeps at least
 * `share` (0..1) of its parent's retained size: the accumulation point
 * (the container whose items hold most of it), as Eclipse MAT finds it. */
ml_node ml_dominators_accumulation(const ml_domtree *t, ml_node v, double share);

/* Every node dominated by v (itself included) into *out (malloc'd, *nout). */
int ml_dominators_subtree(const ml_domtree *t, ml_node v, ml_node **out, size_t *nout);

#endif /* ML_DOMINATORS_H */
