/* noderank.c: address -> number in address order (see noderank.h). */
#include "graph/noderank.h"

#include <stdlib.h>
#include <string.h>

#define ML_NR_CHUNK_SHIFT 20 /* 1 MiB of address space */
#define ML_NR_GRANULE_SHIFT 4 /* one bit per 16 bytes */
#define ML_NR_WORDS (((size_t)1 << (ML_NR_CHUNK_SHIFT - ML_NR_GRANULE_SHIFT)) / 64)

/* Bits set in x (SWAR: the x86-64 baseline has no popcnt instruction). */
static inline uint32_t
ml_noderank_popcount(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

static inline size_t
ml_noderank_slot(const ml_noderank *r, uintptr_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & r->mask;
    while (r->dir[i].key && r->dir[i].key != key)
        i = (i + 1) & r->mask;
    return i;
}

int
ml_noderank_init(ml_noderank *r)
{
    memset(r, 0, sizeof(*r));
    r->dir = calloc(256, sizeof(*r->dir));
    if (!r->dir)
        return -1;
    r->mask = 255;
    return 0;
}

void
ml_noderank_release(ml_noderank *r)
{
    for (size_t i = 0; r->dir && i <= r->mask; i++)
        free(r->dir[i].words);
    free(r->dir);
    memset(r, 0, sizeof(*r));
}

static int
ml_noderank_grow(ml_noderank *r)
{
    ml_noderank bigger = *r;
    bigger.dir = calloc((r->mask + 1) * 2, sizeof(*bigger.dir));
    if (!bigger.dir)
        return -1;
    bigger.mask = (r->mask + 1) * 2 - 1;
    for (size_t i = 0; i <= r->mask; i++) {
        if (r->dir[i].key)
            bigger.dir[ml_noderank_slot(&bigger, r->dir[i].key)] = r->dir[i];
    }
    free(r->dir);
    *r = bigger;
    return 0;
}

int
ml_noderank_add(ml_noderank *r, uintptr_t addr)
{
    uintptr_t key = (addr >> ML_NR_CHUNK_SHIFT) + 1;
    ml_noderank_word *words = r->last_words;
    if (key != r->last_key) {
        size_t i = ml_noderank_slot(r, key);
        if (!r->dir[i].key) {
            if ((r->used + 1) * 2 > r->mask + 1) {
                if (ml_noderank_grow(r) < 0)
                    return -1;
                i = ml_noderank_slot(r, key);
            }
            ml_noderank_word *w = calloc(ML_NR_WORDS, sizeof(*w));
            if (!w)
                return -1;
            r->dir[i].key = key;
            r->dir[i].words = w;
            r->used++;
        }
        r->last_key = key;
        words = r->last_words = r->dir[i].words;
    }
    size_t g = (addr & (((uintptr_t)1 << ML_NR_CHUNK_SHIFT) - 1)) >> ML_NR_GRANULE_SHIFT;
    uint64_t bit = (uint64_t)1 << (g & 63);
    if (words[g >> 6].bits & bit)
        return 0;
    words[g >> 6].bits |= bit;
    r->count++;
    return 1;
}

static int
ml_noderank_cmp_chunk(const void *a, const void *b)
{
    uintptr_t x = ((const ml_noderank_chunk *)a)->key, y = ((const ml_noderank_chunk *)b)->key;
    return x < y ? -1 : x > y;
}

int
ml_noderank_freeze(ml_noderank *r)
{
    ml_noderank_chunk *order = malloc((r->used ? r->used : 1) * sizeof(*order));
    if (!order)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i <= r->mask; i++)
        if (r->dir[i].key)
            order[k++] = r->dir[i];
    qsort(order, k, sizeof(*order), ml_noderank_cmp_chunk);
    uint32_t below = 0;
    for (size_t c = 0; c < k; c++) {
        ml_noderank_chunk *d = &r->dir[ml_noderank_slot(r, order[c].key)];
        d->base = below;
        uint32_t in = 0;
        for (size_t w = 0; w < ML_NR_WORDS; w++) {
            d->words[w].rank = in;
            in += ml_noderank_popcount(d->words[w].bits);
        }
        below += in;
    }
    free(order);
    return 0;
}

uint32_t
ml_noderank_of(const ml_noderank *r, uintptr_t addr)
{
    uintptr_t key = (addr >> ML_NR_CHUNK_SHIFT) + 1;
    const ml_noderank_chunk *d = &r->dir[ml_noderank_slot(r, key)];
    if (!d->key)
        return UINT32_MAX;
    size_t g = (addr & (((uintptr_t)1 << ML_NR_CHUNK_SHIFT) - 1)) >> ML_NR_GRANULE_SHIFT;
    const ml_noderank_word *w = &d->words[g >> 6];
    uint64_t word = w->bits;
    if (!((word >> (g & 63)) & 1))
        return UINT32_MAX;
    return d->base + w->rank + ml_noderank_popcount(word & (((uint64_t)1 << (g & 63)) - 1));
}

size_t
ml_noderank_memory(const ml_noderank *r)
{
    return (r->mask + 1) * sizeof(*r->dir) + r->used * ML_NR_WORDS * sizeof(ml_noderank_word);
}
