/* types.h: what Python type lives in a block, and type ids for the file.
 *
 * Layer: capture; runs inside allocator hooks with the GIL held (the
 * tracker's producer side: the GIL serialises it, no lock is taken).
 * A block is classified by reading the object header the interpreter
 * wrote into it (at offsets 0, 16 or 32, depending on the pre-header):
 * refcount plausible, ob_type a live type object whose pre-header matches
 * the offset, block at least as large as the smallest instance of the type
 * (tp_basicsize, or only the header for types with an allocator of their
 * own, such as naive datetime objects). A type pointer not
 * seen before is first checked with process_vm_readv, so a junk pointer
 * costs a syscall, never a crash. Blocks that are not objects get a buffer
 * kind ("<dict keys>", "<PyMem buffer>", ...). Each type gets an id and one
 * TYPE_DEF record with its name, unique in the capture (below).
 */
#ifndef ML_TYPES_H
#define ML_TYPES_H

#include "capture/writer.h"
#include "compat/compat.h"

typedef struct ml_types ml_types;

/* Buffer kinds, defined first in every capture (ids 1..4). */
enum {
    ML_KIND_RAW = 1,       /* "<raw>": PyMem_RawMalloc */
    ML_KIND_MEM = 2,       /* "<PyMem buffer>" */
    ML_KIND_OBJ = 3,       /* "<PyObject buffer>": OBJ block that is not an object */
    ML_KIND_DICT_KEYS = 4, /* "<dict keys>" */
};

ml_types *ml_types_new(ml_writer *w);
void ml_types_free(ml_types *t);

/* Type id of the block just allocated (header written since), or a buffer
 * kind. `freeing`: the block is being freed now (refcount may be 0). */
ml_type_id ml_types_classify(ml_types *t, const void *block, size_t size, ml_domain domain, int freeing);
/* A buffer kind of its own (TYPE_DEF with ML_TYPEF_BUFFER), such as
 * "<native: libfoo.so>" (--native) or "numpy.ndarray (data)" (rss): a new
 * id each call (the caller keeps it).
 * 0 when out of memory. GIL held. */
ml_type_id ml_types_add_kind(ml_types *t, const char *name, size_t len);
/* PyCapsule_Type's id, 0 until the capture meets a capsule (the tracker
 * hands new capsules to numpybuf). */
ml_type_id ml_types_capsule(const ml_types *t);
/* Type id of a type object known to be live (creation tracer). */
ml_type_id ml_types_of(ml_types *t, PyTypeObject *tp);
/* The capture's name of tp if the capture has met it, else NULL (GIL). */
const char *ml_types_known_name(const ml_types *t, PyTypeObject *tp);
/* The name of id, a type or one of the four buffer kinds above, as its
 * TYPE_DEF says; NULL for 0, the other kinds and ids the table never gave
 * (capture/windows.h names a window's top type with it). */
const char *ml_types_id_name(const ml_types *t, ml_type_id id);

/* Heap at exit: the id of the buffer kind `name` ("list (items)"), its
 * TYPE_DEF (flag ML_TYPEF_BUFFER) written when it is new in the capture.
 * 0 when out of memory. */
ml_type_id ml_types_label(ml_types *t, const char *name, size_t len);
/* The capture's unique name of tp (ml_typenames_name); NULL when out of
 * memory. GIL held. */
const char *ml_types_name(ml_types *t, PyTypeObject *tp, size_t *len);

/* ---- type names: one rule for the capture and the census ----
 *
 * A type's name is "module.QualName": tp_name for a static (C) type,
 * __module__ + "." + __qualname__ for a heap type ("builtins." left out).
 * Two different types never get the same name from one ml_typenames: a
 * type whose name is taken is "NAME (C type)" or "NAME (Python class)",
 * then "NAME (Python class #2)", #3, ... in the order they are first named
 * (the pure-Python and the C datetime.datetime of 3.10-3.12, a class
 * defined again). Names are kept for the table's life, also when a type
 * dies, so a later type never takes a dead one's name. */
typedef struct ml_typenames ml_typenames;

/* Learn what marks a Python class (a class statement's tp_dealloc).
 * Calls Python: once, at module import. Returns 0. */
int ml_typenames_init(void);
ml_typenames *ml_typenames_new(void);
void ml_typenames_free(ml_typenames *n);
/* The unique name of tp (see above), owned by n; *len gets its length.
 * tp is read through checked copies, so it may be a pointer met for the
 * first time (inside allocator hooks: never calls into Python, never
 * allocates through CPython). NULL when out of memory. GIL held. */
const char *ml_typenames_name(ml_typenames *n, PyTypeObject *tp, size_t *len);

/* 1 if the block being freed may hold a heap type the table knows (static
 * types are never freed). */
int ml_types_may_be_type(const ml_types *t, const void *block);
/* A block that may hold a type object is being freed: forget that type's
 * address (a new type may be made there). */
void ml_types_type_freed(ml_types *t, const void *block);

#endif /* ML_TYPES_H */
