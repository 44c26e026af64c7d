/* windows.h: the top site and the top type of a stretch of the tracker's
 * counters-only session (no capture file): pytest's --memlens table opens
 * one window per test body and reads, when it closes, the line and the
 * type that allocated the most bytes in it, and those that hold the most
 * of what it left allocated.
 *
 * Layer: capture; runs inside the allocator hooks of the counters-only
 * paths (tracker.c), with the tracker's lock held. Exact: every
 * allocation, none sampled.
 * - A site is the innermost Python frame of the allocating thread, kept as
 *   (code object, instruction offset): lines are resolved when the window
 *   closes (or when the code object is freed inside it, since its address
 *   may then hold another code). An allocation whose innermost frame is
 *   memlens' own code (files under the own folder) is memlens', not the
 *   window's: it is counted by the tracker and left out here. One made
 *   without the GIL has no site.
 * - A type is read from the object header at the next hook call, as the
 *   capture's pending blocks are (types.h): until then the block waits
 *   here and enters the block map when it is typed.
 * - What the window left allocated: each block the window made carries in
 *   its block-map seq (window number, site slot, type id); its free takes
 *   its bytes off those two.
 * Threads: the pending blocks, the code and type tables are the GIL
 * holder's (the producer); the figures are the lock holder's. No Python
 * object is made and nothing is allocated through CPython.
 */
#ifndef ML_WINDOWS_H
#define ML_WINDOWS_H

#include <stddef.h>
#include <stdint.h>

#include "capture/blocks.h"
#include "compat/compat.h"
#include "format/format.h"

typedef struct ml_windows ml_windows;

/* Seqs of blocks made outside a window (the counters-only value). */
#define ML_WINDOWS_NO_SEQ 1

/* A new, closed window set; frames of files under own_dir (len bytes, no
 * trailing '/'; NULL: none) are memlens' own. NULL when out of memory. */
ml_windows *ml_windows_new(const char *own_dir, size_t own_len);
void ml_windows_free(ml_windows *w);

/* Open a window: its figures start at zero (the blocks of a window left
 * open enter `b` first). Returns 0. GIL and lock held. */
int ml_windows_begin(ml_windows *w, ml_blocks *b, uint64_t *dropped);

/* A block of `size` bytes was allocated at p (lock held). ts: the
 * allocating thread's state when it holds the GIL of the session's
 * interpreter, else NULL (no site, no type). Types the blocks still
 * pending when ts allows it. Returns the seq to put into the block map
 * for p, or 0 when p waits to be typed (this module puts it into `b`
 * later). *dropped counts the blocks the map could not take. */
uint64_t ml_windows_alloc_unlocked(ml_windows *w, ml_blocks *b, PyThreadState *ts, uintptr_t p, size_t size,
                                   ml_domain domain, uint64_t *dropped);

/* p is about to be reallocated (GIL held, before the realloc: its memory
 * is still valid): a pending p is typed now. */
void ml_windows_before_realloc(ml_windows *w, uintptr_t p);

/* p is being freed (lock held; `gil`: the caller holds the session's GIL,
 * and p's memory is still valid). A pending p enters the map now, so the
 * free finds it; an OBJ block that is a code or type object the tables
 * know is forgotten. */
void ml_windows_before_free_unlocked(ml_windows *w, ml_blocks *b, int gil, uintptr_t p, ml_domain domain,
                                     uint64_t *dropped);

/* The block-map entry (seq, size) of a block was just freed (lock held). */
void ml_windows_freed_unlocked(ml_windows *w, uint64_t seq, uint64_t size);

/* The result of a window; strings are malloc'd (NULL: none). */
typedef struct {
    char *site_allocated;      /* "file:line (function)" that allocated the most bytes */
    char *type_allocated;      /* the type that did */
    char *site_left;           /* ... that holds the most of what the window left allocated */
    char *type_left;
    uint64_t site_allocated_bytes, type_allocated_bytes, site_left_bytes, type_left_bytes;
} ml_windows_top;

/* Close the window: its pending blocks are typed (and put into `b`), and
 * *out is filled. Returns 0, or -1 when out of memory (*out then holds
 * what could be named). GIL and lock held. */
int ml_windows_end(ml_windows *w, ml_blocks *b, ml_windows_top *out, uint64_t *dropped);
void ml_windows_top_release(ml_windows_top *t);

#endif /* ML_WINDOWS_H */
