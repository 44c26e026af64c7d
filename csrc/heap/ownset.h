/* ownset.h: the objects only memlens holds, when memlens runs a program in
 * its own process (`memlens heap SCRIPT`), so that no census counts them.
 *
 * Layer: heap analysis. memlens imports modules to run the program
 * (memlens.*, argparse, re, json, runpy...) that plain `python SCRIPT`
 * would not have. The command registers them when the program starts
 * (ml_ownset_register: the names of the modules imported between the
 * first line of memlens/__init__.py and the program's start); every
 * ml_walk_heap then finds, before it walks, the part of the heap only
 * memlens holds (ml_ownset_find) and leaves it out.
 *
 * The method is the collector's "subtract internal references", on a side
 * table, without touching GC state:
 *  1. Candidates C: everything reachable (tp_traverse, plus the references
 *     it leaves out: all-str dict keys, a class's names, code contents, an
 *     instance's class) from the registered modules and every `memlens*`
 *     module, from memlens' own frames (the calling thread's frames whose
 *     code lives in memlens' package directory, and every frame from the
 *     program's entry point `entry_code` outwards: the launcher's, runpy's,
 *     memlens' CLI), and from the objects the engine's own C tables hold.
 *     Other modules and their dicts are not entered (they are the program's
 *     or the interpreter's).
 *  2. For each candidate: its refcount, less every reference from another
 *     candidate and from the interpreter's bookkeeping of memlens' modules
 *     and classes: sys.modules' entries, the table of single-phase
 *     extension modules, the at-fork callables their imports registered,
 *     the weak reference each base class keeps to a subclass; less the
 *     references of memlens' frames and of the engine's tables (each
 *     reference subtracted once: a reference left unseen only makes an
 *     object count as the program's).
 *  3. A positive remainder means a reference from outside: the object is
 *     the program's, and so is what it reaches inside C. Reached through a
 *     module (one the program holds), that is everything, a function's
 *     globals included, and the module of globals so reached too; reached
 *     otherwise (a function alone, or a temporary on a value stack of
 *     memlens that the interpreter does not show), a function's globals
 *     are not followed. A frame's f_back never is.
 *  4. What is left is memlens-only.
 * Linear in |C|, whatever the size of the rest of the heap. A frame that is
 * calling into C does not expose its value stack (3.10: no running frame
 * does): a temporary there counts as the program's, with what it reaches.
 *
 * GIL held; ml_ownset_find never calls Python code and never allocates
 * Python objects (libc malloc only): no collection can run while it holds
 * borrowed pointers.
 */
#ifndef ML_OWNSET_H
#define ML_OWNSET_H

#include "compat/compat.h"
#include "heap/addrbits.h"

typedef struct {
    ml_addrbits own;     /* memlens-only objects */
    uint64_t candidates; /* |C| */
    uint64_t count;      /* memlens-only objects */
} ml_ownset;

/* Start leaving memlens' part out of every ml_walk_heap: `names` is a
 * frozenset of the module names memlens imported to run the program,
 * `own_dir` memlens' package directory (str, ending in a separator),
 * `entry_code` the code of the function that runs the program (frames
 * from it outwards are memlens'). Holds references to the three. The
 * calling thread is the one whose bottom frames are memlens' when the
 * program has ended. names None: stop leaving anything out. Returns 0, or
 * -1 (type error: Python exception set). */
int ml_ownset_register(PyObject *names, PyObject *own_dir, PyObject *entry_code);

/* 1 once ml_ownset_register has been called. */
int ml_ownset_active(void);

/* Find memlens' part of the heap now (steps 1-4 above) into *out (to be
 * released). Returns 0, or -1 when out of memory (*out empty). Without a
 * registration, the set is empty. */
int ml_ownset_find(ml_ownset *out);

/* 1 if `o` is memlens-only in `s`. */
static inline int
ml_ownset_has(const ml_ownset *s, PyObject *o)
{
    return s->count && ml_addrbits_has(&s->own, (uintptr_t)o);
}

void ml_ownset_release(ml_ownset *s);

/* Once at import: see ml_compat_own_setup. */
int ml_ownset_setup(void);

#endif /* ML_OWNSET_H */
