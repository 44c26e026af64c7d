/* blocks.c: live-block hash table (see blocks.h). */
#include "capture/blocks.h"

#include <stdlib.h>
#include <string.h>

struct ml_blocks {
    ml_block *slots;
    size_t mask, count;
};

static inline size_t
ml_blocks_hash(uintptr_t p)
{
    uint64_t h = (uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20);
}

ml_blocks *
ml_blocks_new(void)
{
    ml_blocks *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->slots = calloc(1 << 16, sizeof(ml_block));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->mask = (1 << 16) - 1;
    return t;
}

void
ml_blocks_free(ml_blocks *t)
{
    if (t) {
        free(t->slots);
        free(t);
    }
}

static int
ml_blocks_grow(ml_blocks *t)
{
    size_t n = (t->mask + 1) * 2;
    ml_block *ns = calloc(n, sizeof(ml_block));
    if (!ns)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        ml_block *b = &t->slots[i];
        if (!b->ptr)
            continue;
        size_t j = ml_blocks_hash(b->ptr) & (n - 1);
        while (ns[j].ptr)
            j = (j + 1) & (n - 1);
        ns[j] = *b;
    }
    free(t->slots);
    t->slots = ns;
    t->mask = n - 1;
    return 0;
}

ml_block *
ml_blocks_put(ml_blocks *t, uintptr_t ptr)
{
    if ((t->count + 1) * 4 > (t->mask + 1) * 3 && ml_blocks_grow(t) < 0)
        return NULL;
    size_t i = ml_blocks_hash(ptr) & t->mask;
    while (t->slots[i].ptr && t->slots[i].ptr != ptr)
        i = (i + 1) & t->mask;
    if (!t->slots[i].ptr)
        t->count++;
    memset(&t->slots[i], 0, sizeof(ml_block));
    t->slots[i].ptr = ptr;
    return &t->slots[i];
}

ml_block *
ml_blocks_get(ml_blocks *t, uintptr_t ptr)
{
    size_t i = ml_blocks_hash(ptr) & t->mask;
    for (;;) {
        ml_block *b = &t->slots[i];
        if (b->ptr == ptr)
            return b;
        if (!b->ptr)
            return NULL;
        i = (i + 1) & t->mask;
    }
}

int
ml_blocks_remove(ml_blocks *t, uintptr_t ptr, ml_block *out)
{
    size_t i = ml_blocks_hash(ptr) & t->mask;
    for (;;) {
        ml_block *b = &t->slots[i];
        if (!b->ptr)
            return 0;
        if (b->ptr == ptr)
            break;
        i = (i + 1) & t->mask;
    }
    if (out)
        *out = t->slots[i];
    /* backward-shift: pull later entries of the run into the hole */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (!t->slots[j].ptr)
            break;
        size_t home = ml_blocks_hash(t->slots[j].ptr) & t->mask;
        /* move j into hole if its home is not in (hole, j] cyclically */
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].ptr = 0;
    t->count--;
    return 1;
}

size_t ml_blocks_count(const ml_blocks *t) { return t->count; }

void
ml_blocks_clear(ml_blocks *t)
{
    memset(t->slots, 0, (t->mask + 1) * sizeof(ml_block));
    t->count = 0;
}
