/* addrbits.c: chunked bitmap of visited addresses (see addrbits.h). */
#include "heap/addrbits.h"

#include <stdlib.h>
#include <string.h>

#define ML_CHUNK_SHIFT 20                               /* 1 MiB of address space */
#define ML_GRANULE_SHIFT 4                              /* one bit per 16 bytes */
#define ML_CHUNK_WORDS (((size_t)1 << (ML_CHUNK_SHIFT - ML_GRANULE_SHIFT)) / 64)

static inline size_t
ml_addrbits_slot(const ml_addrbits *s, uintptr_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & s->mask;
    while (s->chunks[i] && s->chunks[i] != key)
        i = (i + 1) & s->mask;
    return i;
}

int
ml_addrbits_init(ml_addrbits *s)
{
    memset(s, 0, sizeof(*s));
    size_t cap = 256;
    s->chunks = calloc(cap, sizeof(*s->chunks));
    s->bits = calloc(cap, sizeof(*s->bits));
    if (!s->chunks || !s->bits) {
        free(s->chunks);
        free(s->bits);
        memset(s, 0, sizeof(*s));
        return -1;
    }
    s->mask = cap - 1;
    return 0;
}

void
ml_addrbits_release(ml_addrbits *s)
{
    for (size_t i = 0; s->bits && i <= s->mask; i++)
        free(s->bits[i]);
    free(s->chunks);
    free(s->bits);
    memset(s, 0, sizeof(*s));
}

static int
ml_addrbits_grow(ml_addrbits *s)
{
    size_t cap = (s->mask + 1) * 2;
    ml_addrbits bigger = *s;
    bigger.chunks = calloc(cap, sizeof(*bigger.chunks));
    bigger.bits = calloc(cap, sizeof(*bigger.bits));
    if (!bigger.chunks || !bigger.bits) {
        free(bigger.chunks);
        free(bigger.bits);
        return -1;
    }
    bigger.mask = cap - 1;
    for (size_t i = 0; i <= s->mask; i++) {
        if (!s->chunks[i])
            continue;
        size_t j = ml_addrbits_slot(&bigger, s->chunks[i]);
        bigger.chunks[j] = s->chunks[i];
        bigger.bits[j] = s->bits[i];
    }
    free(s->chunks);
    free(s->bits);
    *s = bigger;
    return 0;
}

/* Bitmap of the chunk holding `addr`, created if `create`. */
static uint64_t *
ml_addrbits_chunk(ml_addrbits *s, uintptr_t addr, int create)
{
    uintptr_t key = (addr >> ML_CHUNK_SHIFT) + 1;
    if (key == s->last_chunk)
        return s->last_bits;
    size_t i = ml_addrbits_slot(s, key);
    if (!s->chunks[i]) {
        if (!create)
            return NULL;
        if ((s->used + 1) * 2 > s->mask + 1) {
            if (ml_addrbits_grow(s) < 0)
                return NULL;
            i = ml_addrbits_slot(s, key);
        }
        uint64_t *bits = calloc(ML_CHUNK_WORDS, sizeof(uint64_t));
        if (!bits)
            return NULL;
        s->chunks[i] = key;
        s->bits[i] = bits;
        s->used++;
    }
    s->last_chunk = key;
    s->last_bits = s->bits[i];
    return s->bits[i];
}

int
ml_addrbits_add(ml_addrbits *s, uintptr_t addr)
{
    uint64_t *bits = ml_addrbits_chunk(s, addr, 1);
    if (!bits)
        return -1;
    size_t g = (addr & (((uintptr_t)1 << ML_CHUNK_SHIFT) - 1)) >> ML_GRANULE_SHIFT;
    uint64_t bit = (uint64_t)1 << (g & 63);
    if (bits[g >> 6] & bit)
        return 0;
    bits[g >> 6] |= bit;
    s->marked++;
    return 1;
}

int
ml_addrbits_has(const ml_addrbits *s, uintptr_t addr)
{
    uintptr_t key = (addr >> ML_CHUNK_SHIFT) + 1;
    if (!s->chunks)
        return 0;
    size_t i = ml_addrbits_slot(s, key);
    if (!s->chunks[i])
        return 0;
    size_t g = (addr & (((uintptr_t)1 << ML_CHUNK_SHIFT) - 1)) >> ML_GRANULE_SHIFT;
    return (s->bits[i][g >> 6] >> (g & 63)) & 1;
}
