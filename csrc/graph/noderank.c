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
    while (r->chunks[i] && r->chunks[i] != key)
        i = (i + 1) & r->mask;
    return i;
}

static int
ml_noderank_alloc_dir(ml_noderank *r, size_t cap)
{
    r->chunks = calloc(cap, sizeof(*r->chunks));
    r->bits = calloc(cap, sizeof(*r->bits));
    r->ranks = calloc(cap, sizeof(*r->ranks));
    r->base = calloc(cap, sizeof(*r->base));
    r->mask = cap - 1;
    return r->chunks && r->bits && r->ranks && r->base ? 0 : -1;
}

static void
ml_noderank_free_dir(ml_noderank *r)
{
    free(r->chunks);
    free(r->bits);
    free(r->ranks);
    free(r->base);
}

int
ml_noderank_init(ml_noderank *r)
{
    memset(r, 0, sizeof(*r));
    if (ml_noderank_alloc_dir(r, 256) < 0) {
        ml_noderank_free_dir(r);
        memset(r, 0, sizeof(*r));
        return -1;
    }
    return 0;
}

void
ml_noderank_release(ml_noderank *r)
{
    for (size_t i = 0; r->chunks && i <= r->mask; i++) {
        free(r->bits[i]);
        free(r->ranks[i]);
    }
    ml_noderank_free_dir(r);
    memset(r, 0, sizeof(*r));
}

static int
ml_noderank_grow(ml_noderank *r)
{
    ml_noderank bigger = *r;
    if (ml_noderank_alloc_dir(&bigger, (r->mask + 1) * 2) < 0) {
        ml_noderank_free_dir(&bigger);
        return -1;
    }
    for (size_t i = 0; i <= r->mask; i++) {
        if (!r->chunks[i])
            continue;
        size_t j = ml_noderank_slot(&bigger, r->chunks[i]);
        bigger.chunks[j] = r->chunks[i];
        bigger.bits[j] = r->bits[i];
    }
    ml_noderank_free_dir(r);
    *r = bigger;
    return 0;
}

int
ml_noderank_add(ml_noderank *r, uintptr_t addr)
{
    uintptr_t key = (addr >> ML_NR_CHUNK_SHIFT) + 1;
    uint64_t *bits = r->last_bits;
    if (key != r->last_chunk) {
        size_t i = ml_noderank_slot(r, key);
        if (!r->chunks[i]) {
            if ((r->used + 1) * 2 > r->mask + 1) {
                if (ml_noderank_grow(r) < 0)
                    return -1;
                i = ml_noderank_slot(r, key);
            }
            uint64_t *b = calloc(ML_NR_WORDS, sizeof(uint64_t));
            if (!b)
                return -1;
            r->chunks[i] = key;
            r->bits[i] = b;
            r->used++;
        }
        r->last_chunk = key;
        bits = r->last_bits = r->bits[i];
    }
    size_t g = (addr & (((uintptr_t)1 << ML_NR_CHUNK_SHIFT) - 1)) >> ML_NR_GRANULE_SHIFT;
    uint64_t bit = (uint64_t)1 << (g & 63);
    if (bits[g >> 6] & bit)
        return 0;
    bits[g >> 6] |= bit;
    r->count++;
    return 1;
}

typedef struct {
    uintptr_t key;
    size_t slot;
} ml_noderank_chunk;

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
        if (r->chunks[i])
            order[k++] = (ml_noderank_chunk){r->chunks[i], i};
    qsort(order, k, sizeof(*order), ml_noderank_cmp_chunk);
    uint32_t below = 0;
    for (size_t c = 0; c < k; c++) {
        size_t i = order[c].slot;
        uint32_t *ranks = malloc(ML_NR_WORDS * sizeof(*ranks));
        if (!ranks) {
            free(order);
            return -1;
        }
        r->ranks[i] = ranks;
        r->base[i] = below;
        uint32_t in = 0;
        const uint64_t *bits = r->bits[i];
        for (size_t w = 0; w < ML_NR_WORDS; w++) {
            ranks[w] = in;
            in += ml_noderank_popcount(bits[w]);
        }
        below += in;
    }
    free(order);
    r->frozen = 1;
    return 0;
}

uint32_t
ml_noderank_of(const ml_noderank *r, uintptr_t addr)
{
    uintptr_t key = (addr >> ML_NR_CHUNK_SHIFT) + 1;
    size_t i = ml_noderank_slot(r, key);
    if (!r->chunks[i])
        return UINT32_MAX;
    size_t g = (addr & (((uintptr_t)1 << ML_NR_CHUNK_SHIFT) - 1)) >> ML_NR_GRANULE_SHIFT;
    uint64_t word = r->bits[i][g >> 6], below = ((uint64_t)1 << (g & 63)) - 1;
    if (!((word >> (g & 63)) & 1))
        return UINT32_MAX;
    return r->base[i] + r->ranks[i][g >> 6] + ml_noderank_popcount(word & below);
}

size_t
ml_noderank_memory(const ml_noderank *r)
{
    return (r->mask + 1) * (sizeof(*r->chunks) + sizeof(*r->bits) + sizeof(*r->ranks) + sizeof(*r->base)) +
           r->used * ML_NR_WORDS * (sizeof(uint64_t) + sizeof(uint32_t));
}
