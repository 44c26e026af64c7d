/* live.h: the table of live blocks of a capture, keyed by allocation seq.
 *
 * Layer: analysis. Pure C, libc malloc, no Python API. The reader inserts a
 * block at every ALLOC and removes it at its FREE, so a FREE event can carry
 * the size, stack, type and domain of the block it frees.
 *
 * Two parts. Seqs are given out in order and most blocks die young, so the
 * newest blocks sit in a ring indexed by seq (the last ML_LIVE_RING seqs:
 * inserting and freeing them touches memory that is already in cache). A
 * block that is still live when its ring slot is needed by a newer seq moves
 * to an open-addressing hash table with linear probing and backward-shift
 * deletion (no tombstones: a table that sees a billion inserts and removes
 * stays as fast as a fresh one). The hash finds slots by Fibonacci hashing
 * of the seq: an identity hash would let a dense run of long-lived blocks
 * form one cluster that later seqs wrap onto. The ring's side of insert and
 * remove is inline (below); the hash's is in live.c. The hash's cache misses
 * are most of a reading's time when many blocks outlive the ring, so an
 * insert prefetches the hash slot of the block that leaves the ring a few
 * inserts later (BENCHMARKS.md, "Reading captures", session 8).
 * Invariants (ml_live_check): a ring entry sits at index seq % ring size; a
 * hash entry sits at or after its home slot with no empty slot in between;
 * no seq is in both; count and bytes match the entries; the hash load stays
 * below 5/8.
 * Not thread-safe; one table per reader.
 */
#ifndef ML_LIVE_H
#define ML_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "format/format.h"

/* Sizes are stored with the domain in their top two bits. A size that does
 * not fit (>= 2^62 bytes: no allocator returns that) is refused by the reader
 * as corrupt before it gets here. */
#define ML_LIVE_SIZE_MAX ((UINT64_C(1) << 62) - 1)

typedef struct {
    ml_seq seq;        /* 0 = empty slot */
    uint64_t size_dom; /* size | domain << 62 */
    ml_frame_id stack;
    ml_type_id type;
} ml_live_slot;

#ifndef ML_LIVE_RING_BITS
#define ML_LIVE_RING_BITS 15
#endif
#define ML_LIVE_RING ((uint64_t)1 << ML_LIVE_RING_BITS)

typedef struct {
    ml_live_slot *ring;  /* ML_LIVE_RING slots, indexed by seq % ML_LIVE_RING */
    ml_live_slot *slots; /* the hash table of older blocks */
    uint64_t mask;       /* hash capacity - 1; capacity is a power of two */
    unsigned shift;      /* 64 - log2(hash capacity) */
    uint64_t hcount;     /* entries in the hash */
    uint64_t count;      /* entries in all */
    uint64_t bytes;      /* sum of the sizes of the entries */
} ml_live;

/* A live block as the callers see it. */
typedef struct {
    uint64_t size;
    ml_frame_id stack;
    ml_type_id type;
    ml_domain domain;
} ml_live_block;

/* Empty table with a small initial capacity. Returns 0, or -1 out of memory
 * (the table is then left empty and unusable: release it). */
int ml_live_init(ml_live *t);
/* Free the slots; the table may be init'ed again. */
void ml_live_release(ml_live *t);
/* Remove every entry, keeping the capacity. */
void ml_live_clear(ml_live *t);

/* Add a block whose seq is greater than every seq inserted before (the
 * reader's seqs only grow). Returns 0, or -1 out of memory (table unchanged). */
static inline int ml_live_insert(ml_live *t, ml_seq seq, const ml_live_block *b);
/* Remove the block `seq` and copy it to *out. Returns 0, or -1 when no block
 * has that seq (table unchanged). */
static inline int ml_live_remove(ml_live *t, ml_seq seq, ml_live_block *out);
/* Copy the block `seq` to *out without removing it: 0, or -1 when absent. */
int ml_live_find(const ml_live *t, ml_seq seq, ml_live_block *out);

/* Call fn for each entry (in no particular order); stops when fn returns
 * nonzero. */
typedef int (*ml_live_visit_fn)(void *arg, ml_seq seq, const ml_live_block *b);
void ml_live_foreach(const ml_live *t, ml_live_visit_fn fn, void *arg);

/* Check the invariants above. Returns 0, or -1 with a description in msg. */
int ml_live_check(const ml_live *t, char *msg, size_t cap);

/* ---- the two hot operations, inline: the reader calls them for every
 * ALLOC and FREE, and most of them touch only the ring ---- */

#define ML_LIVE_DOM_SHIFT 62

/* The slow paths (live.c): the ring slot's older block moves to the hash
 * before `seq` takes the slot; a block not in the ring is taken from the hash. */
int ml_live_insert_evict(ml_live *t, ml_seq seq, const ml_live_block *b);
int ml_live_remove_hashed(ml_live *t, ml_seq seq, ml_live_block *out);

/* The hash slot where seq's search starts (Fibonacci hashing). */
static inline uint64_t
ml_live_home(const ml_live *t, ml_seq seq)
{
    return (seq * UINT64_C(0x9E3779B97F4A7C15)) >> t->shift;
}

/* How many inserts ahead ml_live_insert looks: the block then in that ring
 * slot will move to the hash, whose slot is a cache miss (the hash is tens
 * of megabytes); fetching it this early hides the miss behind the inserts
 * in between. */
#define ML_LIVE_AHEAD 16

static inline int
ml_live_insert(ml_live *t, ml_seq seq, const ml_live_block *b)
{
    const ml_live_slot *next = &t->ring[(seq + ML_LIVE_AHEAD) & (ML_LIVE_RING - 1)];
    if (next->seq)
        __builtin_prefetch(&t->slots[ml_live_home(t, next->seq)], 1);
    ml_live_slot *r = &t->ring[seq & (ML_LIVE_RING - 1)];
    if (__builtin_expect(r->seq != 0, 0))
        return ml_live_insert_evict(t, seq, b);
    r->seq = seq;
    r->size_dom = b->size | (uint64_t)b->domain << ML_LIVE_DOM_SHIFT;
    r->stack = b->stack;
    r->type = b->type;
    t->count++;
    t->bytes += b->size;
    return 0;
}

static inline int
ml_live_remove(ml_live *t, ml_seq seq, ml_live_block *out)
{
    ml_live_slot *r = &t->ring[seq & (ML_LIVE_RING - 1)];
    if (__builtin_expect(r->seq != seq || !seq, 0))
        return ml_live_remove_hashed(t, seq, out);
    out->size = r->size_dom & ML_LIVE_SIZE_MAX;
    out->domain = (ml_domain)(r->size_dom >> ML_LIVE_DOM_SHIFT);
    out->stack = r->stack;
    out->type = r->type;
    r->seq = 0;
    t->count--;
    t->bytes -= out->size;
    return 0;
}

#endif /* ML_LIVE_H */
