/* live.c: the live-block table (see live.h for the design and invariants). */
#include "analysis/live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ML_LIVE_INITIAL_BITS 10
/* Grow when count reaches 5/8 of the capacity: linear probing stays short
 * (Fibonacci hashing spreads consecutive seqs evenly) and memory stays below
 * 2.6 slots per live block after a doubling. */
#define ML_LIVE_FULL(count, cap) ((count) * 8 >= (cap) * 5)

#define ML_DOM_SHIFT ML_LIVE_DOM_SHIFT

static int
ml_live_alloc_slots(ml_live *t, unsigned bits)
{
    ml_live_slot *s = calloc((size_t)1 << bits, sizeof(*s));
    if (!s)
        return -1;
    t->slots = s;
    t->mask = ((uint64_t)1 << bits) - 1;
    t->shift = 64 - bits;
    return 0;
}

int
ml_live_init(ml_live *t)
{
    memset(t, 0, sizeof(*t));
    t->ring = calloc(ML_LIVE_RING, sizeof(*t->ring));
    if (!t->ring || ml_live_alloc_slots(t, ML_LIVE_INITIAL_BITS) < 0) {
        ml_live_release(t);
        return -1;
    }
    return 0;
}

void
ml_live_release(ml_live *t)
{
    free(t->ring);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

void
ml_live_clear(ml_live *t)
{
    if (t->ring)
        memset(t->ring, 0, ML_LIVE_RING * sizeof(*t->ring));
    if (t->slots)
        memset(t->slots, 0, (size_t)(t->mask + 1) * sizeof(*t->slots));
    t->count = 0;
    t->hcount = 0;
    t->bytes = 0;
}

/* Place an entry known to be absent; the table has room. */
static inline void
ml_live_place(ml_live *t, const ml_live_slot *e)
{
    uint64_t i = ml_live_home(t, e->seq);
    while (t->slots[i].seq)
        i = (i + 1) & t->mask;
    t->slots[i] = *e;
}

static int
ml_live_grow(ml_live *t)
{
    ml_live old = *t;
    unsigned bits = 64 - t->shift + 1;
    if (bits > 40 || ml_live_alloc_slots(t, bits) < 0) {
        *t = old;
        return -1;
    }
    for (uint64_t i = 0; i <= old.mask; i++)
        if (old.slots[i].seq)
            ml_live_place(t, &old.slots[i]);
    free(old.slots);
    return 0;
}

int
ml_live_insert_evict(ml_live *t, ml_seq seq, const ml_live_block *b)
{
    ml_live_slot *r = &t->ring[seq & (ML_LIVE_RING - 1)];
    /* an older block still lives in this ring slot: it moves to the hash */
    if (ML_LIVE_FULL(t->hcount + 1, t->mask + 1) && ml_live_grow(t) < 0)
        return -1;
    ml_live_place(t, r);
    t->hcount++;
    r->seq = seq;
    r->size_dom = b->size | (uint64_t)b->domain << ML_DOM_SHIFT;
    r->stack = b->stack;
    r->type = b->type;
    t->count++;
    t->bytes += b->size;
    return 0;
}

static inline void
ml_live_unpack(const ml_live_slot *s, ml_live_block *out)
{
    out->size = s->size_dom & ML_LIVE_SIZE_MAX;
    out->domain = (ml_domain)(s->size_dom >> ML_DOM_SHIFT);
    out->stack = s->stack;
    out->type = s->type;
}

static inline int64_t
ml_live_lookup(const ml_live *t, ml_seq seq)
{
    uint64_t i = ml_live_home(t, seq);
    for (;;) {
        ml_seq s = t->slots[i].seq;
        if (s == seq)
            return (int64_t)i;
        if (!s)
            return -1;
        i = (i + 1) & t->mask;
    }
}

int
ml_live_find(const ml_live *t, ml_seq seq, ml_live_block *out)
{
    if (!seq)
        return -1;
    const ml_live_slot *r = &t->ring[seq & (ML_LIVE_RING - 1)];
    if (r->seq == seq) {
        ml_live_unpack(r, out);
        return 0;
    }
    int64_t i = ml_live_lookup(t, seq);
    if (i < 0)
        return -1;
    ml_live_unpack(&t->slots[i], out);
    return 0;
}

int
ml_live_remove_hashed(ml_live *t, ml_seq seq, ml_live_block *out)
{
    if (!seq)
        return -1;
    int64_t found = ml_live_lookup(t, seq);
    if (found < 0)
        return -1;
    uint64_t hole = (uint64_t)found;
    ml_live_unpack(&t->slots[hole], out);
    t->count--;
    t->hcount--;
    t->bytes -= out->size;
    /* Backward shift: pull later entries of the cluster into the hole when
     * the hole lies between their home and their slot. */
    uint64_t j = hole;
    for (;;) {
        j = (j + 1) & t->mask;
        ml_seq s = t->slots[j].seq;
        if (!s)
            break;
        uint64_t home = ml_live_home(t, s);
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].seq = 0;
    return 0;
}

static int
ml_live_visit(const ml_live_slot *s, uint64_t n, ml_live_visit_fn fn, void *arg)
{
    for (uint64_t i = 0; i < n; i++) {
        if (!s[i].seq)
            continue;
        ml_live_block b;
        ml_live_unpack(&s[i], &b);
        if (fn(arg, s[i].seq, &b))
            return 1;
    }
    return 0;
}

void
ml_live_foreach(const ml_live *t, ml_live_visit_fn fn, void *arg)
{
    if (!t->slots)
        return;
    if (!ml_live_visit(t->slots, t->mask + 1, fn, arg))
        ml_live_visit(t->ring, ML_LIVE_RING, fn, arg);
}

int
ml_live_check(const ml_live *t, char *msg, size_t cap)
{
    uint64_t count = 0, bytes = 0;
    for (uint64_t i = 0; i < ML_LIVE_RING; i++) {
        const ml_live_slot *s = &t->ring[i];
        if (!s->seq)
            continue;
        count++;
        bytes += s->size_dom & ML_LIVE_SIZE_MAX;
        if ((s->seq & (ML_LIVE_RING - 1)) != i) {
            snprintf(msg, cap, "ring slot %llu holds seq %llu", (unsigned long long)i,
                     (unsigned long long)s->seq);
            return -1;
        }
        if (ml_live_lookup(t, s->seq) >= 0) {
            snprintf(msg, cap, "seq %llu is in the ring and the hash", (unsigned long long)s->seq);
            return -1;
        }
    }
    uint64_t in_ring = count;
    for (uint64_t i = 0; i <= t->mask; i++) {
        const ml_live_slot *s = &t->slots[i];
        if (!s->seq)
            continue;
        count++;
        bytes += s->size_dom & ML_LIVE_SIZE_MAX;
        if ((s->size_dom >> ML_DOM_SHIFT) > ML_DOMAIN_OBJ) {
            snprintf(msg, cap, "slot %llu: domain 3", (unsigned long long)i);
            return -1;
        }
        for (uint64_t k = ml_live_home(t, s->seq); k != i; k = (k + 1) & t->mask) {
            if (!t->slots[k].seq) {
                snprintf(msg, cap, "seq %llu in slot %llu is unreachable (hole at %llu)",
                         (unsigned long long)s->seq, (unsigned long long)i, (unsigned long long)k);
                return -1;
            }
        }
    }
    if (count != t->count || bytes != t->bytes || count - in_ring != t->hcount) {
        snprintf(msg, cap, "count %llu/%llu bytes %llu/%llu do not match the entries",
                 (unsigned long long)t->count, (unsigned long long)count,
                 (unsigned long long)t->bytes, (unsigned long long)bytes);
        return -1;
    }
    if (ML_LIVE_FULL(t->hcount, t->mask + 1) && t->hcount) {
        snprintf(msg, cap, "load %llu/%llu above the limit", (unsigned long long)t->hcount,
                 (unsigned long long)(t->mask + 1));
        return -1;
    }
    return 0;
}
