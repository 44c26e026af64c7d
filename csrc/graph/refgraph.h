/* refgraph.h: the reference graph of the live heap, in compact arrays.
 *
 * Layer: heap analysis. ml_refgraph_build walks every live object once
 * (heap/walk.h: the same objects a census counts, memlens' own types left
 * out) and records, in that same walk, each object's referents: what
 * tp_traverse visits, plus what it leaves out on purpose (all-str dict
 * keys, a heap type's names, code objects' contents), the same referents
 * the walker follows. A weak reference's referent is never an edge
 * (weakref tp_traverse visits only the callback).
 *
 * Layout (CSR): node i is objs[i], nodes in address order; its successors are
 * succ[off[i] .. off[i+1]), its predecessors pred[roff[i] .. roff[i+1]).
 * 8 (object) + 4 + 4 (offsets) + 4 (shallow size; sizes of 4 GiB and
 * more are kept aside) bytes per node and 4 + 4 per reference;
 * ml_refgraph_find is a binary search of objs: O(log n). While building,
 * the nodes are numbered in address order through an index of their
 * addresses (graph/noderank.h: ~16 KiB per MiB of address space holding
 * objects), with no sort and no hash table, and the walk's referents take
 * 8 bytes each and the walk order 20 bytes per node; all freed before
 * build returns.
 *
 * Needs the GIL, and no Python code may run between build and the last
 * use of a node's object: the graph holds borrowed pointers.
 */
#ifndef ML_REFGRAPH_H
#define ML_REFGRAPH_H

#include "compat/compat.h"

typedef uint32_t ml_node;
#define ML_NODE_NONE UINT32_MAX

typedef struct ml_refgraph ml_refgraph;

/* Walk the heap and build the graph. NULL when out of memory (or more
 * than 4 G nodes or references); no Python exception set. */
ml_refgraph *ml_refgraph_build(void);

void ml_refgraph_free(ml_refgraph *g);

size_t ml_refgraph_count(const ml_refgraph *g);
size_t ml_refgraph_edges(const ml_refgraph *g);

/* Node n's object (borrowed). */
PyObject *ml_refgraph_object(const ml_refgraph *g, ml_node n);

/* Node of `o`, or ML_NODE_NONE (not in the heap graph, or memlens' own). */
ml_node ml_refgraph_find(const ml_refgraph *g, PyObject *o);

/* Shallow size of node n, as the census counts it (sys.getsizeof, plus an
 * instance's dict-less values array; types sized by a Python __sizeof__
 * get their fixed C part). */
uint64_t ml_refgraph_size(const ml_refgraph *g, ml_node n);

/* Successors / predecessors of n (a node referring to another twice
 * appears twice). */
const ml_node *ml_refgraph_succ(const ml_refgraph *g, ml_node n, size_t *count);
const ml_node *ml_refgraph_pred(const ml_refgraph *g, ml_node n, size_t *count);

/* Bytes the graph's arrays take (for the bench: bytes per object). */
size_t ml_refgraph_memory(const ml_refgraph *g);

/* Build a graph from explicit edges (tests of the algorithms: nodes carry
 * no object, `sizes` may be NULL for 1 each; sizes of 4 GiB or more count
 * 1). NULL when out of memory. */
ml_refgraph *ml_refgraph_from_edges(size_t n, const uint32_t *from, const uint32_t *to, size_t nedges,
                                    const uint64_t *sizes);

#endif /* ML_REFGRAPH_H */
