/* suspects.h: Eclipse MAT's second kind of leak suspect, many instances
 * of one class, over a dominator tree (dominators.h).
 *
 * Layer: heap analysis, after ml_dominators_compute; no Python C API, no
 * GIL needed (plain arrays). A class's retained bytes are the retained
 * sizes of its "top" instances: those no other instance of the same class
 * dominates (so nothing counts twice; the same sum as
 * ml_dominators_by_type). Its accumulation point is the deepest node of
 * the dominator tree under which at least `share` of those bytes lie: the
 * nearest dominator most of the instances share (the list that holds
 * them, a module's globals). When no single node holds that share (the
 * instances hang from different roots) there is none.
 */
#ifndef ML_SUSPECTS_H
#define ML_SUSPECTS_H

#include "graph/dominators.h"

typedef struct {
    uint32_t type;        /* the class (a type_of number) */
    uint64_t count;       /* instances of it in the heap */
    uint64_t top;         /* of them, not dominated by another instance */
    uint64_t retained;    /* what the top instances retain together */
    ml_node point;        /* accumulation point, ML_NODE_NONE = none */
    uint64_t point_share; /* bytes of `retained` under the point */
} ml_class_suspect;

/* Classes whose instances together retain at least `threshold` (0..1) of
 * t->total, biggest first, at most `max` of them into out; returns how
 * many, or -1 when out of memory. `eligible[type]` (may be NULL: all)
 * says which type numbers may be suspects (e.g. not the dicts that belong
 * to instances). A class one instance of which retains >= share of its
 * bytes is no suspect of this kind (that instance is one of the first
 * kind, "one object retains much"). Of the other classes over threshold,
 * one whose retained bytes lie mostly (>= share) below instances of
 * another of them, at most 4 below each such instance on average, is a
 * part of that one and left out (the str attributes of 10,000 leaked
 * records are not a second suspect; the records, many to a list, are
 * not a part of the lists). */
int ml_suspects_classes(const ml_domtree *t, const uint32_t *type_of, size_t ntypes, const uint8_t *eligible,
                        double threshold, double share, ml_class_suspect *out, size_t max);

#endif /* ML_SUSPECTS_H */
