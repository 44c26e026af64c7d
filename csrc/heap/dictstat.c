/* dictstat.c: dict kinds by key content, counted by (kind, size). */
#include "heap/dictstat.h"

#include <stdlib.h>
#include <string.h>

static const char *const ml_dictkind_names[ML_DICTKIND_COUNT] = {
    "split", "str-interned", "str", "general", "empty",
};

const char *
ml_dictkind_name(ml_dictkind k)
{
    return (unsigned)k < ML_DICTKIND_COUNT ? ml_dictkind_names[k] : "?";
}

int
ml_dictstat_init(ml_dictstat *s)
{
    memset(s, 0, sizeof(*s));
    return ml_addrset_init(&s->index, 64, 1);
}

void
ml_dictstat_release(ml_dictstat *s)
{
    free(s->rows);
    ml_addrset_release(&s->index);
    memset(s, 0, sizeof(*s));
}

int
ml_dictstat_add(ml_dictstat *s, ml_dictkind kind, size_t size)
{
    uintptr_t key = ((uintptr_t)size << 3) | (uintptr_t)kind;
    uint32_t row;
    if (!ml_addrset_get(&s->index, key, &row)) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64;
            ml_dictstat_row *r = realloc(s->rows, cap * sizeof(*r));
            if (!r)
                return -1;
            s->rows = r;
            s->cap = cap;
        }
        row = (uint32_t)s->n;
        if (ml_addrset_add(&s->index, key, row) < 0)
            return -1;
        s->rows[row].kind = (uint8_t)kind;
        s->rows[row].size = size;
        s->rows[row].count = 0;
        s->n++;
    }
    s->rows[row].count++;
    return 0;
}
