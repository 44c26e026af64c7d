/* heapsnapshot.h: the heap graph as a V8 / Chrome DevTools .heapsnapshot.
 *
 * Layer: heap analysis, over a refgraph, its roots and its dominator
 * tree. The file is the JSON DevTools' Memory panel loads ("Load
 * profile"): snapshot.meta with V8's field lists, then flat nodes (7
 * numbers each: type, name, id, self_size, edge_count, trace_node_id,
 * detachedness), edges (3 each: type, name_or_index, to_node = index of
 * the target's first field) and the string table.
 *
 * Nodes: 0 is the synthetic root; 1 "(held by C code)" and 2
 * "(unreachable)" are synthetic groups; object i is node i + 3, of type
 * "object" named by its Python type (module-qualified, as the census),
 * self_size its shallow size (capped at 2^32 - 1: the format keeps
 * sizes in 32 bits). The root's edges go to the named roots ("property",
 * named as roots.h names them) and to the two groups, whose "element"
 * edges go to the C-held roots and to the objects no root reaches (as the
 * dominator tree makes them roots). Object edges are the graph's, in
 * order: "property" for an attribute or a str dict key (its name),
 * "element" for a list/tuple index, "internal" otherwise ("(key)",
 * "__dict__" ...). So DevTools' dominators and retained sizes equal
 * memlens' own.
 *
 * GIL held; no Python code runs while writing. Writes to `fd` (not
 * closed); returns 0, or -1 with errno set (write error or out of memory).
 */
#ifndef ML_HEAPSNAPSHOT_H
#define ML_HEAPSNAPSHOT_H

#include "graph/dominators.h"

int ml_heapsnapshot_write(int fd, const ml_refgraph *g, const ml_roots *r, const ml_domtree *t);

#endif /* ML_HEAPSNAPSHOT_H */
