/* stacks.h: interns Python stacks into a tree of frame ids.
 *
 * Layer: capture; runs inside allocator hooks with the GIL held and the
 * tracker's lock taken. A stack is a path in a tree whose nodes are
 * (parent, code, instruction offset); a node's id names the whole stack.
 * New code objects and nodes are written to the file once (CODE_DEF,
 * FRAME_DEF), so an event carries one integer. Each thread keeps its last
 * stack (ml_stack_cache): the shared outer part of consecutive stacks is
 * matched by comparing pointers, and only the new inner part is hashed.
 * Interned code objects get a strong reference (so their address is not
 * reused while the table lives); ml_stacks_free drops them (GIL needed).
 */
#ifndef ML_STACKS_H
#define ML_STACKS_H

#include "capture/writer.h"
#include "compat/compat.h"

typedef struct ml_stacks ml_stacks;

/* A thread's last stack, outermost first. Owned by the thread's state. */
typedef struct {
    uint64_t generation;   /* of the ml_stacks it belongs to */
    int depth, cap;
    ml_pyframe *frames;
    ml_frame_id *ids;
} ml_stack_cache;

ml_stacks *ml_stacks_new(ml_writer *w, uint64_t generation);
/* Free the tables; with the GIL held also drops the code references
 * (pass drop_refs=0 when the interpreter is gone or in a forked child). */
void ml_stacks_free(ml_stacks *s, int drop_refs);

/* Intern the n frames (innermost first). Returns the stack id (0 for n == 0),
 * or 0 when out of memory (counted in *dropped). */
ml_frame_id ml_stacks_intern(ml_stacks *s, ml_stack_cache *cache, const ml_pyframe *frames, int n);
/* The same for a stack whose `shared` outer frames equal the cached stack's
 * first `shared` frames (ml_compat_walk_shared) and whose n newer inner
 * frames are in `frames`, innermost first. */
ml_frame_id ml_stacks_intern_shared(ml_stacks *s, ml_stack_cache *cache, const ml_pyframe *frames, int n,
                                    int shared);
/* The cached stack to give ml_compat_walk_shared as its hint, outermost
 * first, and its depth (NULL, 0 when it belongs to another capture). */
int ml_stack_cache_hint(const ml_stacks *s, const ml_stack_cache *cache, const ml_pyframe **prev);
uint64_t ml_stacks_dropped(const ml_stacks *s);

void ml_stack_cache_release(ml_stack_cache *c);

#endif /* ML_STACKS_H */
