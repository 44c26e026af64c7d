/* roots.h: the named roots of the heap graph, and "held by C code".
 *
 * Layer: heap analysis, over a refgraph (refgraph.h). A path to an object
 * starts at a root a person can name:
 *   - module globals: the __dict__ of every module in sys.modules
 *     ("module app.cache"), then sys.modules itself;
 *   - the locals of every running frame of every thread
 *     ("thread 140.., frame handle() in app.py:40, local 'batch'"); frames
 *     whose file name starts with a skip prefix (memlens' own package) are
 *     left out, and so are their frame objects (never followed); so is,
 *     after ml_roots_skip_caller(1), the frame that called memlens (the
 *     first other frame of this thread: for a path search its locals are
 *     the question, not the answer); their references still count as
 *     seen;
 *   - "held by C code": an object whose reference count exceeds the
 *     references the graph sees (a C extension's static, the interpreter
 *     state, a caller's C stack). These come after every named root: a
 *     path starts there only when no named root reaches the object.
 * Class attributes are reached through the module that defines the class
 * (module app .Cls .attr).
 *
 * GIL held; borrowed pointers, as the graph's.
 */
#ifndef ML_ROOTS_H
#define ML_ROOTS_H

#include "graph/refgraph.h"

typedef enum {
    ML_ROOT_MODULE = 1,      /* a module's __dict__ */
    ML_ROOT_SYS_MODULES = 2, /* the sys.modules dict */
    ML_ROOT_LOCAL = 3,       /* a frame's local slot */
    ML_ROOT_C = 4,           /* refcount > references seen */
    ML_ROOT_EXTRA = 5,       /* given by the caller (tests) */
} ml_root_kind;

typedef struct {
    ml_node node;
    uint8_t kind;          /* ml_root_kind */
    int line;              /* ML_ROOT_LOCAL: the frame's line */
    int depth;             /* ML_ROOT_LOCAL: 0 innermost */
    unsigned long thread;  /* ML_ROOT_LOCAL: thread ident */
    PyObject *name;        /* module name / local name (borrowed str) */
    PyCodeObject *code;    /* ML_ROOT_LOCAL */
} ml_root;

typedef struct {
    ml_root *roots;    /* named roots first, then C-held */
    size_t n, named;   /* roots[0..named) are named */
    uint8_t *excluded; /* per node: 1 = memlens' own frame object, never followed */
} ml_roots;

/* Find the roots of graph g. `skip_prefix` (may be NULL or ""): frames of
 * code whose file name starts with it are not roots. Nodes in `not_c`
 * (may be NULL; n of them) are never "held by C code" roots (the objects
 * a caller asks about: its own references make their counts exceed).
 * Returns 0, or -1 when out of memory (r then empty). */
int ml_roots_find(const ml_refgraph *g, const char *skip_prefix, const ml_node *not_c, size_t n_not_c,
                  ml_roots *r);

/* Roots given as node numbers (tests of the algorithms), all ML_ROOT_EXTRA. */
int ml_roots_given(const ml_refgraph *g, const ml_node *nodes, size_t n, ml_roots *r);

void ml_roots_release(ml_roots *r);

/* References memlens holds where no walk sees them (result holders): a
 * function that calls visit(o, arg) once per such reference. Counted as
 * seen, so they never make an object "held by C code". Set once, at
 * import (GIL held). */
typedef void (*ml_roots_hidden_fn)(visitproc visit, void *arg);
void ml_roots_set_hidden(ml_roots_hidden_fn fn);

/* 1: the next ml_roots_find calls leave out the calling frame's locals
 * (path searches); 0 (the default): they are roots like any other frame's
 * (retained sizes: what the caller holds is not freed). GIL held. */
void ml_roots_skip_caller(int on);

/* A one-line name of root i ("module app.cache", "thread 1403.., frame
 * f() in app.py:40, local 'x'", "held by C code"), truncated to cap.
 * Returns the length written. */
size_t ml_roots_name(const ml_roots *r, size_t i, char *buf, size_t cap);

#endif /* ML_ROOTS_H */
