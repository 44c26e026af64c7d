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
 * No reference to a code object is kept: its file, name and line table
 * are copied into CODE_DEF when it is first seen. When the program frees a
 * code object (the tracker sees the free of its block, and asks
 * ml_stacks_may_be_code / ml_stacks_code_freed), its address is forgotten,
 * so a new code object there gets a new id, and the table's generation
 * changes: every thread's cached chain (which may name the dead code's
 * address and its frames') is walked afresh.
 * The profiler's own code (files under ml_stacks_set_own_dir's folder) is
 * never defined nor put in a stack: its frames are left out, and a frame
 * chain says which stacks have it innermost (ml_rawframe.own), so that the
 * tracker leaves its allocations out too.
 */
#ifndef ML_STACKS_H
#define ML_STACKS_H

#include "capture/writer.h"
#include "compat/compat.h"

typedef struct ml_stacks ml_stacks;

/* A thread's last frame chain (ml_compat_walk_cached), outermost first,
 * each frame with the stack id up to it. Owned by the thread's state. */
typedef struct {
    uint64_t generation;   /* of the ml_stacks its ids and code addresses
                            * belong to (ml_stacks_generation) */
    int n, cap;
    ml_rawframe *chain;
    const void *bottom;    /* the frame that ended the chain (stop frame or NULL) */
} ml_stack_cache;

/* A new table writing its definitions to w, with a generation no table
 * had before. NULL when out of memory. */
ml_stacks *ml_stacks_new(ml_writer *w);
void ml_stacks_free(ml_stacks *s);
/* The generation of the table's code addresses: a thread's cached chain
 * is valid only while its generation equals this. */
uint64_t ml_stacks_generation(const ml_stacks *s);
/* Move to a new generation (every cached chain is walked afresh, its ids
 * kept): what a cached chain says besides its frames changed. Returns it. */
uint64_t ml_stacks_renew(ml_stacks *s);

/* 1 if the block being freed may be a code object the table knows (a
 * filter: false positives, never false negatives). Cheap: for every free
 * of the OBJ domain, where code objects live. */
int ml_stacks_may_be_code(const ml_stacks *s, const void *block);
/* The block is being freed: if it is a code object of the table, forget
 * its address and move to a new generation; returns 1 then, else 0. GIL
 * held (the free of a code object always holds it). */
int ml_stacks_code_freed(ml_stacks *s, const void *block);

/* Code objects of files under `dir` (len bytes, no trailing '/') are the
 * profiler's own. Returns 0, or -1 when out of memory (nothing is own). */
int ml_stacks_set_own_dir(ml_stacks *s, const char *dir, size_t len);

/* Intern the n frames (innermost first), leaving out the profiler's own.
 * Returns the stack id (0 for n == 0), or 0 when out of memory (counted in
 * ml_stacks_dropped); *own is 1 when the innermost frame is the profiler's. */
ml_frame_id ml_stacks_intern(ml_stacks *s, const ml_pyframe *frames, int n, int *own);
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
