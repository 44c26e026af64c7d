/* addrset.c: open-addressing address set/map for the heap walker. */
#include "heap/addrset.h"

#include <stdlib.h>
#include <string.h>

/* Fibonacci hashing: multiply, keep the top bits (the low bits of a
 * product only depend on the low bits of the address). */
static inline size_t
ml_addrset_hash(const ml_addrset *s, uintptr_t a)
{
    return (size_t)(((uint64_t)a * 0x9E3779B97F4A7C15ull) >> s->shift);
}

static int
ml_addrset_alloc(ml_addrset *s, size_t cap, int with_values)
{
    s->keys = calloc(cap, sizeof(*s->keys));
    if (!s->keys)
        return -1;
    s->vals = NULL;
    if (with_values) {
        s->vals = malloc(cap * sizeof(*s->vals));
        if (!s->vals) {
            free(s->keys);
            s->keys = NULL;
            return -1;
        }
    }
    s->mask = cap - 1;
    s->used = 0;
    s->shift = 64;
    while (cap > 1) {
        cap >>= 1;
        s->shift--;
    }
    return 0;
}

int
ml_addrset_init(ml_addrset *s, size_t expected, int with_values)
{
    size_t cap = 64;
    while (cap < expected * 2)
        cap <<= 1;
    memset(s, 0, sizeof(*s));
    if (ml_addrset_alloc(s, cap, with_values) < 0) {
        memset(s, 0, sizeof(*s));
        return -1;
    }
    return 0;
}

void
ml_addrset_release(ml_addrset *s)
{
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof(*s));
}

/* Slot holding `addr`, or the empty slot where it would go. */
static inline size_t
ml_addrset_slot(const ml_addrset *s, uintptr_t addr)
{
    size_t i = ml_addrset_hash(s, addr);
    while (s->keys[i] && s->keys[i] != addr)
        i = (i + 1) & s->mask;
    return i;
}

static int
ml_addrset_grow(ml_addrset *s)
{
    ml_addrset bigger;
    if (ml_addrset_alloc(&bigger, (s->mask + 1) * 2, s->vals != NULL) < 0)
        return -1;
    for (size_t i = 0; i <= s->mask; i++) {
        if (!s->keys[i])
            continue;
        size_t j = ml_addrset_slot(&bigger, s->keys[i]);
        bigger.keys[j] = s->keys[i];
        if (s->vals)
            bigger.vals[j] = s->vals[i];
    }
    bigger.used = s->used;
    free(s->keys);
    free(s->vals);
    *s = bigger;
    return 0;
}

int
ml_addrset_add(ml_addrset *s, uintptr_t addr, uint32_t val)
{
    size_t i = ml_addrset_slot(s, addr);
    if (s->keys[i])
        return 0;
    if ((s->used + 1) * 2 > s->mask + 1) {
        if (ml_addrset_grow(s) < 0)
            return -1;
        i = ml_addrset_slot(s, addr);
    }
    s->keys[i] = addr;
    if (s->vals)
        s->vals[i] = val;
    s->used++;
    return 1;
}

int
ml_addrset_put(ml_addrset *s, uintptr_t addr, uint32_t val)
{
    int rc = ml_addrset_add(s, addr, val);
    if (rc < 0)
        return -1;
    if (rc == 0)
        s->vals[ml_addrset_slot(s, addr)] = val;
    return 0;
}

int
ml_addrset_get(const ml_addrset *s, uintptr_t addr, uint32_t *val)
{
    if (!s->keys || !addr)
        return 0;
    size_t i = ml_addrset_slot(s, addr);
    if (!s->keys[i])
        return 0;
    if (val && s->vals)
        *val = s->vals[i];
    return 1;
}

int
ml_addrset_next(const ml_addrset *s, size_t *pos, uintptr_t *addr, uint32_t *val)
{
    for (size_t i = *pos; s->keys && i <= s->mask; i++) {
        if (!s->keys[i])
            continue;
        *addr = s->keys[i];
        if (val && s->vals)
            *val = s->vals[i];
        *pos = i + 1;
        return 1;
    }
    return 0;
}

int
ml_addrset_check(const ml_addrset *s)
{
    size_t n = 0;
    for (size_t i = 0; s->keys && i <= s->mask; i++) {
        if (!s->keys[i])
            continue;
        n++;
        if (ml_addrset_slot(s, s->keys[i]) != i)
            return -1;
    }
    return n == s->used && n * 2 <= (s->keys ? s->mask + 1 : 0) ? 0 : -1;
}
