/* blocks.c: the live-block shadow map (see blocks.h).
 *
 * Entry (64 bits): bit 63 present, bit 62 marked, bits 40..61 size (22 bits;
 * all ones = look in the side table), bits 0..39 seq.
 * Levels: dir[addr >> 36] -> mid[(addr >> 20) & 0xFFFF] -> chunk of 65536
 * entries (512 KiB of virtual memory per MiB of address space).
 */
#include "capture/blocks.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ML_PRESENT (1ull << 63)
#define ML_MARK (1ull << 62)
#define ML_SIZE_SHIFT 40
#define ML_SIZE_BIG 0x3FFFFFull
#define ML_SEQ_MASK ((1ull << 40) - 1)
#define ML_CHUNK_ENTRIES (1u << 16)
#define ML_MID_ENTRIES (1u << 16)
#define ML_DIR_ENTRIES (1u << 12) /* 48-bit addresses */

typedef uint64_t ml_entry;

/* Side table: open addressing for odd pointers and big sizes. */
typedef struct {
    uintptr_t ptr;
    uint64_t seq, size;
    int mark; /* an odd pointer's (an aligned one's mark is in its entry) */
} ml_side_entry;

struct ml_blocks {
    ml_entry **dir[ML_DIR_ENTRIES];
    ml_side_entry *side;
    size_t side_mask, side_count;
};

ml_blocks *
ml_blocks_new(void)
{
    return calloc(1, sizeof(ml_blocks));
}

uint64_t
ml_blocks_resident(const ml_blocks *t)
{
    unsigned char vec[ML_CHUNK_ENTRIES * sizeof(ml_entry) / 4096];
    uint64_t pages = 0;
    for (size_t d = 0; d < ML_DIR_ENTRIES; d++) {
        ml_entry **mid = t->dir[d];
        for (size_t m = 0; mid && m < ML_MID_ENTRIES; m++) {
            if (!mid[m] || mincore(mid[m], ML_CHUNK_ENTRIES * sizeof(ml_entry), vec) != 0)
                continue;
            for (size_t i = 0; i < sizeof(vec); i++)
                pages += vec[i] & 1;
        }
    }
    return pages * 4096 + (t->side_mask ? (t->side_mask + 1) * sizeof(ml_side_entry) : 0);
}

void
ml_blocks_clear(ml_blocks *t)
{
    for (size_t d = 0; d < ML_DIR_ENTRIES; d++) {
        ml_entry **mid = t->dir[d];
        if (!mid)
            continue;
        for (size_t m = 0; m < ML_MID_ENTRIES; m++)
            if (mid[m])
                munmap(mid[m], ML_CHUNK_ENTRIES * sizeof(ml_entry));
        free(mid);
        t->dir[d] = NULL;
    }
    free(t->side);
    t->side = NULL;
    t->side_mask = t->side_count = 0;
}

void
ml_blocks_free(ml_blocks *t)
{
    if (t) {
        ml_blocks_clear(t);
        free(t);
    }
}

/* The entry for ptr; NULL if its chunk does not exist (and !create). */
static inline ml_entry *
ml_blocks_slot(const ml_blocks *t, uintptr_t ptr, int create)
{
    size_t d = (ptr >> 36) & (ML_DIR_ENTRIES - 1);
    ml_entry **mid = t->dir[d];
    if (!mid) {
        if (!create)
            return NULL;
        mid = calloc(ML_MID_ENTRIES, sizeof(*mid));
        if (!mid)
            return NULL;
        ((ml_blocks *)t)->dir[d] = mid;
    }
    size_t m = (ptr >> 20) & (ML_MID_ENTRIES - 1);
    ml_entry *chunk = mid[m];
    if (!chunk) {
        if (!create)
            return NULL;
        chunk = mmap(NULL, ML_CHUNK_ENTRIES * sizeof(ml_entry), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (chunk == MAP_FAILED)
            return NULL;
        mid[m] = chunk;
    }
    return &chunk[(ptr >> 4) & (ML_CHUNK_ENTRIES - 1)];
}

void
ml_blocks_prefetch(const ml_blocks *t, uintptr_t ptr)
{
    ml_entry *e = ml_blocks_slot(t, ptr, 0);
    if (e)
        __builtin_prefetch(e, 1);
}

/* ---- side table ---- */

static inline size_t
ml_side_hash(const ml_blocks *t, uintptr_t p)
{
    return (size_t)((uint64_t)p * 0x9E3779B97F4A7C15ull >> 32) & t->side_mask;
}

static ml_side_entry *
ml_side_find(const ml_blocks *t, uintptr_t ptr)
{
    if (!t->side)
        return NULL;
    size_t i = ml_side_hash(t, ptr);
    while (t->side[i].ptr) {
        if (t->side[i].ptr == ptr)
            return &t->side[i];
        i = (i + 1) & t->side_mask;
    }
    return NULL;
}

static int
ml_side_put(ml_blocks *t, uintptr_t ptr, uint64_t seq, uint64_t size)
{
    if ((t->side_count + 1) * 2 > t->side_mask + 1 || !t->side) {
        size_t n = t->side ? (t->side_mask + 1) * 2 : 256;
        ml_side_entry *ns = calloc(n, sizeof(*ns)), *old = t->side;
        if (!ns)
            return -1;
        size_t oldn = t->side ? t->side_mask + 1 : 0;
        t->side = ns;
        t->side_mask = n - 1;
        for (size_t i = 0; i < oldn; i++) {
            if (!old[i].ptr)
                continue;
            size_t j = ml_side_hash(t, old[i].ptr);
            while (ns[j].ptr)
                j = (j + 1) & t->side_mask;
            ns[j] = old[i];
        }
        free(old);
    }
    size_t i = ml_side_hash(t, ptr);
    while (t->side[i].ptr && t->side[i].ptr != ptr)
        i = (i + 1) & t->side_mask;
    if (!t->side[i].ptr)
        t->side_count++;
    t->side[i] = (ml_side_entry){ptr, seq, size, 0};
    return 0;
}

static void
ml_side_remove(ml_blocks *t, ml_side_entry *e)
{
    size_t hole = (size_t)(e - t->side), j = hole;
    for (;;) {
        j = (j + 1) & t->side_mask;
        if (!t->side[j].ptr)
            break;
        size_t home = ml_side_hash(t, t->side[j].ptr);
        if (((j - home) & t->side_mask) >= ((j - hole) & t->side_mask)) {
            t->side[hole] = t->side[j];
            hole = j;
        }
    }
    t->side[hole].ptr = 0;
    t->side_count--;
}

/* ---- operations ---- */

static inline ml_entry
ml_blocks_pack(uint64_t seq, uint64_t size)
{
    return ML_PRESENT | size << ML_SIZE_SHIFT | (seq & ML_SEQ_MASK);
}

int
ml_blocks_put(ml_blocks *t, uintptr_t ptr, uint64_t seq, uint64_t size)
{
    if (ptr & 15)
        return ml_side_put(t, ptr, seq, size);
    ml_entry *e = ml_blocks_slot(t, ptr, 1);
    if (!e)
        return -1;
    uint64_t sz = size;
    if (size >= ML_SIZE_BIG) {
        if (ml_side_put(t, ptr, seq, size) < 0)
            return -1;
        sz = ML_SIZE_BIG;
    }
    *e = ml_blocks_pack(seq, sz);
    return 0;
}


int
ml_blocks_mark(ml_blocks *t, uintptr_t ptr)
{
    if (ptr & 15) {
        ml_side_entry *s = ml_side_find(t, ptr);
        if (s)
            s->mark = 1;
        return s != NULL;
    }
    ml_entry *e = ml_blocks_slot(t, ptr, 0);
    if (!e || !(*e & ML_PRESENT))
        return 0;
    *e |= ML_MARK;
    return 1;
}

int
ml_blocks_take(ml_blocks *t, uintptr_t ptr, ml_block *out)
{
    ml_side_entry *s;
    int mark;
    if (ptr & 15) {
        if (!(s = ml_side_find(t, ptr)))
            return 0;
        mark = s->mark;
        goto side;
    }
    ml_entry *e = ml_blocks_slot(t, ptr, 0);
    if (!e || !(*e & ML_PRESENT))
        return 0;
    uint64_t v = *e;
    *e = 0;
    mark = (v & ML_MARK) != 0;
    if (((v >> ML_SIZE_SHIFT) & ML_SIZE_BIG) == ML_SIZE_BIG) {
        if (!(s = ml_side_find(t, ptr)))
            return 0;
        goto side;
    }
    out->seq = v & ML_SEQ_MASK;
    out->size = (v >> ML_SIZE_SHIFT) & ML_SIZE_BIG;
    out->mark = mark;
    return 1;
side:
    out->seq = s->seq;
    out->size = s->size;
    out->mark = mark;
    ml_side_remove(t, s);
    return 1;
}


int
ml_blocks_get(const ml_blocks *t, uintptr_t ptr, ml_block *out)
{
    ml_side_entry *s;
    int mark = 0;
    if (!(ptr & 15)) {
        ml_entry *e = ml_blocks_slot(t, ptr, 0);
        if (!e || !(*e & ML_PRESENT))
            return 0;
        uint64_t v = *e;
        mark = (v & ML_MARK) != 0;
        if (((v >> ML_SIZE_SHIFT) & ML_SIZE_BIG) != ML_SIZE_BIG) {
            out->seq = v & ML_SEQ_MASK;
            out->size = (v >> ML_SIZE_SHIFT) & ML_SIZE_BIG;
            out->mark = mark;
            return 1;
        }
    }
    if (!(s = ml_side_find(t, ptr)))
        return 0;
    out->seq = s->seq;
    out->size = s->size;
    out->mark = (ptr & 15) ? s->mark : mark;
    return 1;
}
