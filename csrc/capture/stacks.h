/* stacks.h: interns Python stacks into a tree of frame ids.
 *
 * Layer: capture; runs inside allocator hooks with the GIL held (the
 * tracker's producer side: the GIL serialises it, no lock is taken).
 * A stack is a path in a tree whose nodes are (parent, code, instruction
 * offset); a node's id names the whole stack.
 * New code objects and nodes are written to the file once (CODE_DEF,
 * FRAME_DEF), so an event carries one integer. Each thread keeps its last
 * frame chain (ml_stack_cache) with the stack id at every frame: the outer
 * part it shares with the next stack is found by comparing frame addresses
 * and positions (ml_compat_walk_cached), and only the new inner part is
 * hashed; an unchanged stack costs no hashing at all.
 * Interned code objects get a strong reference (so their address is not
 * reused while the table lives); ml_stacks_free drops them (GIL needed).
 */
#ifndef ML_STACKS_H
#define ML_STACKS_H

#include "capture/writer.h"
#include "compat/compat.h"

typedef struct ml_stacks ml_stacks;

/* A thread's last frame chain (ml_compat_walk_cached), outermost first,
 * each frame with the stack id up to it. Owned by the thread's state. */
typedef struct {
    uint64_t generation;   /* of the ml_stacks its ids belong to (the tracker's
                            * capture generation: the tracker reads it directly) */
    int n, cap;
    ml_rawframe *chain;
    const void *bottom;    /* the frame that ended the chain (stop frame or NULL) */
} ml_stack_cache;

ml_stacks *ml_stacks_new(ml_writer *w, uint64_t generation);
/* Free the tables; with the GIL held also drops the code references
 * (pass drop_refs=0 when the interpreter is gone or in a forked child). */
void ml_stacks_free(ml_stacks *s, int drop_refs);

/* Intern the n frames (innermost first). Returns the stack id (0 for n == 0),
 * or 0 when out of memory (counted in ml_stacks_dropped). */
ml_frame_id ml_stacks_intern(ml_stacks *s, const ml_pyframe *frames, int n);
/* Intern what ml_compat_walk_cached found: the n new frames `fresh`
 * (innermost first) above chain[anchor] (-1: none, fresh is the whole chain,
 * ended by `bottom`), and make that the thread's cached chain. Returns 0
 * with *id set (0 for an empty stack, or when out of memory: counted), or
 * -1 when the stack has more than max_frames frames (the cache is then
 * emptied; the caller walks with ml_compat_walk, which truncates). */
int ml_stacks_intern_chain(ml_stacks *s, ml_stack_cache *cache, const ml_rawframe *fresh, int n, int anchor,
                           const void *bottom, int max_frames, ml_frame_id *id);
uint64_t ml_stacks_dropped(const ml_stacks *s);

void ml_stack_cache_release(ml_stack_cache *c);

#endif /* ML_STACKS_H */
