/* paths.h: shortest reference paths from the roots, and edge names.
 *
 * Layer: heap analysis, over a refgraph and its roots. Two searches:
 *  - ml_paths_bfs: one forward breadth-first search from every named
 *    root, then from every "held by C code" root for what the named ones
 *    do not reach: afterwards the shortest path from a root to any node
 *    is read back in O(length) (many objects at once).
 *  - ml_paths_find: backward searches from one object over the
 *    predecessors, up to `max` paths, shortest first, each through a different referrer of the object (the
 *    last hop of each path found is banned for the next search); named
 *    roots only, or, when none reaches the object, "held by C code" ones.
 * Excluded nodes (memlens' own frames) are never on a path. A search
 * passes through C-held objects on its way to a named root.
 *
 * GIL held, borrowed pointers as the graph's; no Python code runs.
 */
#ifndef ML_PATHS_H
#define ML_PATHS_H

#include "graph/roots.h"

typedef struct {
    ml_node *parent; /* toward the root; ML_NODE_NONE for roots and unreached */
    uint32_t *root;  /* root index (in ml_roots) of each reached node, or UINT32_MAX */
    size_t n;
} ml_bfs;

/* Forward search from the roots. Returns 0, or -1 when out of memory. */
int ml_paths_bfs(const ml_refgraph *g, const ml_roots *r, ml_bfs *b);
void ml_paths_bfs_release(ml_bfs *b);

/* The path to `target` found by ml_paths_bfs: out[0] the root's node ...
 * out[len-1] the target (at most cap nodes stored; the full length is
 * returned, 0 when unreached); *root = its root index. */
size_t ml_paths_to(const ml_bfs *b, ml_node target, ml_node *out, size_t cap, uint32_t *root);

/* One path of ml_paths_find: nodes[0] is the root's node, nodes[len-1]
 * the target. */
typedef struct {
    uint32_t root; /* index in ml_roots */
    ml_node *nodes;
    size_t len;
} ml_path;

/* Up to `max` shortest paths to `target` (distinct last hops), no longer
 * than max_depth edges (0: no limit). *out (malloc'd, *nout of them; free
 * with ml_paths_free). Returns 0, or -1 when out of memory. */
int ml_paths_find(const ml_refgraph *g, const ml_roots *r, ml_node target, size_t max, size_t max_depth,
                  ml_path **out, size_t *nout);
void ml_paths_free(ml_path *p, size_t n);

/* The name of the edge src -> dst, as a person reads it: ".attr" (a slot,
 * member or known field), "['key']" / "[3]" (dict value, for a str or int
 * key), "(key)" (a dict key), "[i]" (list/tuple item), ".__dict__",
 * ".__class__", ".cell_contents", ".__self__", "{item}" (set member), or
 * "(referent)" when no rule knows it. Never calls Python; writes at most
 * cap bytes (NUL included) and returns the length. */
size_t ml_paths_edge_name(PyObject *src, PyObject *dst, char *buf, size_t cap);

/* A dict key as a subscript ("['name']", "[3]", "[<tuple key>]"). */
size_t ml_paths_key_name(PyObject *key, char *buf, size_t cap);

#endif /* ML_PATHS_H */
