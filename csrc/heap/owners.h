/* owners.h: which object owns each separately allocated buffer.
 *
 * Layer: heap analysis. A list's item array, a dict's keys table and
 * values array, a set's hash table, a bytearray's bytes, an array.array's
 * items, an instance's values array (3.11/3.12) are memory blocks of their
 * own; a memory
 * profiler sees them as anonymous buffers. ml_owners_graph goes once over
 * the objects of a reference graph (graph/refgraph.h: the live heap) and
 * names each by its owner: "list (items)",
 * "bytearray (data)", and for the dict that is an instance's __dict__ (or
 * a module's, a class's) "dict (keys) of Lesson". Objects whose memory is
 * one block (str, bytes, int, tuple) own no buffer. Version differences
 * (where each buffer starts) are in compat (ml_compat_owned_buffers).
 *
 * GIL held; never calls into Python (libc malloc only), so the heap does
 * not change during the walk. Callbacks get borrowed pointers.
 */
#ifndef ML_OWNERS_H
#define ML_OWNERS_H

#include "graph/refgraph.h"

/* Whose attribute table a dict is. */
typedef enum {
    ML_OWNERS_OF_NONE = 0,
    ML_OWNERS_OF_INSTANCE = 1, /* `of` is the instance's class */
    ML_OWNERS_OF_MODULE = 2,
    ML_OWNERS_OF_TYPE = 3,
} ml_owners_of;

/* Called for each buffer: `o` owns `buf`; for a dict, `of_kind` and `of`
 * say whose __dict__ it is. Return 0 to go on, -1 to stop. */
typedef int (*ml_owners_fn)(void *arg, PyObject *o, const ml_compat_buf *buf, ml_owners_of of_kind,
                            PyTypeObject *of);

/* Call fn for every buffer owned by an object of graph g. Returns 0, or
 * -1 when out of memory or stopped. */
int ml_owners_graph(const ml_refgraph *g, ml_owners_fn fn, void *arg);

/* The same for every live object, found by one walk of the heap
 * (heap/walk.h) without building a graph: what `memlens run` does at exit
 * when it names buffers but computes no holders. *objects: the objects
 * walked. Returns 0, or -1 when out of memory or stopped. */
int ml_owners_heap(ml_owners_fn fn, void *arg, uint64_t *objects);

/* "items", "keys", "values", "table", "data" ("buffer" for others). */
const char *ml_owners_role(unsigned role);

/* The label of a buffer into buf (NUL-terminated, cut to cap): "TYPE
 * (role)", and for an attribute dict " of OWNER" ("of module", "of
 * type"). Returns its length. */
size_t ml_owners_label(char *buf, size_t cap, const char *type, size_t tlen, unsigned role,
                       ml_owners_of of_kind, const char *of, size_t oflen);

#endif /* ML_OWNERS_H */
