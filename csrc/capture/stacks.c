/* stacks.c: stack interning (see stacks.h). */
#include "capture/stacks.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    PyCodeObject *code; /* NULL = empty */
    ml_code_id id;
} ml_code_slot;

typedef struct {
    uint32_t parent, code, offset, id; /* id 0 = empty */
} ml_node_slot;

/* The id given to the profiler's own code objects: never defined, never
 * in a stack (ml_stacks_set_own_dir). */
#define ML_CODE_OWN UINT32_MAX

/* Bits of the code filter (ml_stacks_may_be_code): 8 KiB, in L1/L2. */
#define ML_CODE_BITS (1u << 16)

struct ml_stacks {
    ml_writer *w;
    uint64_t generation, dropped;
    ml_code_slot *codes;
    size_t code_mask, ncodes; /* ncodes: ids given (live codes are fewer) */
    size_t nlive;             /* codes in the table */
    ml_node_slot *nodes;
    size_t node_mask, nnodes;
    /* a bit per hash of every code address the table held (never cleared):
     * most frees are of no code object, and this answers them from cache */
    uint64_t code_bits[ML_CODE_BITS / 64];
    char *own;                /* "<the profiler's package folder>/" */
    size_t own_len;
};

/* Generations of code addresses, process-wide, so that no two tables (and
 * no table before and after a code death) ever share one. GIL held. */
static uint64_t ml_stacks_generations;

static inline size_t
ml_stacks_hash_ptr(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 24);
}

static inline size_t
ml_stacks_hash_node(uint32_t parent, uint32_t code, uint32_t offset)
{
    uint64_t h = ((uint64_t)parent << 32 | code) * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)offset * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h >> 24);
}

/* The code's bit in code_bits: word *word, mask returned. */
static inline uint64_t
ml_stacks_code_bit(const void *co, size_t *word)
{
    size_t h = (size_t)(((uint64_t)(uintptr_t)co >> 4) * 0x9E3779B97F4A7C15ull >> 48) % ML_CODE_BITS;
    *word = h / 64;
    return 1ull << (h % 64);
}

ml_stacks *
ml_stacks_new(ml_writer *w)
{
    ml_stacks *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->w = w;
    s->generation = ++ml_stacks_generations;
    s->codes = calloc(1024, sizeof(ml_code_slot));
    s->nodes = calloc(4096, sizeof(ml_node_slot));
    if (!s->codes || !s->nodes) {
        free(s->codes);
        free(s->nodes);
        free(s);
        return NULL;
    }
    s->code_mask = 1023;
    s->node_mask = 4095;
    return s;
}

void
ml_stacks_free(ml_stacks *s)
{
    if (!s)
        return;
    free(s->own);
    free(s->codes);
    free(s->nodes);
    free(s);
}

uint64_t ml_stacks_dropped(const ml_stacks *s) { return s->dropped; }
uint64_t ml_stacks_generation(const ml_stacks *s) { return s->generation; }

uint64_t
ml_stacks_renew(ml_stacks *s)
{
    return s->generation = ++ml_stacks_generations;
}

int
ml_stacks_set_own_dir(ml_stacks *s, const char *dir, size_t len)
{
    char *own = malloc(len + 2);
    if (!own)
        return -1;
    memcpy(own, dir, len);
    own[len] = '/';
    own[len + 1] = 0;
    free(s->own);
    s->own = own;
    s->own_len = len + 1;
    return 0;
}

static int
ml_stacks_grow_codes(ml_stacks *s)
{
    size_t n = (s->code_mask + 1) * 2;
    ml_code_slot *ns = calloc(n, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i <= s->code_mask; i++) {
        if (!s->codes[i].code)
            continue;
        size_t j = ml_stacks_hash_ptr(s->codes[i].code) & (n - 1);
        while (ns[j].code)
            j = (j + 1) & (n - 1);
        ns[j] = s->codes[i];
    }
    free(s->codes);
    s->codes = ns;
    s->code_mask = n - 1;
    return 0;
}

/* Write CODE_DEF for a new code object: file, qualified name, line map. */
static void
ml_stacks_define_code(ml_stacks *s, ml_code_id id, PyCodeObject *co, const char *file, size_t flen)
{
    static char nbuf[1024]; /* under the GIL */
    const char *name;
    size_t nlen = ml_compat_str_utf8(ml_compat_code_name(co), nbuf, sizeof(nbuf), &name);
    uint32_t *offs = NULL;
    int32_t *lines = NULL;
    size_t n = 0;
    if (ml_compat_linemap(co, &offs, &lines, &n) < 0)
        n = 0; /* out of memory: the code still gets a name, lines show as 0 */
    ml_writer_code_def(s->w, id, file, flen, name, nlen, (uint32_t)co->co_firstlineno, offs, lines, n);
    free(offs);
    free(lines);
}

static ml_code_id
ml_stacks_code_id_slow(ml_stacks *s, PyCodeObject *co)
{
    size_t i = ml_stacks_hash_ptr(co) & s->code_mask;
    while (s->codes[i].code) {
        if (s->codes[i].code == co)
            return s->codes[i].id;
        i = (i + 1) & s->code_mask;
    }
    /* 3.11 clears a returning frame before popping it: if that frame held
     * the last reference, its code is being deallocated (its fields already
     * released) while the frame is still the thread's innermost. Never
     * define it, nor remember an address that is about to be freed: its
     * frame is left out, as the profiler's own are. */
    if (Py_REFCNT(co) <= 0)
        return ML_CODE_OWN;
    if ((s->nlive + 1) * 2 > s->code_mask + 1) {
        if (ml_stacks_grow_codes(s) < 0)
            return 0;
        return ml_stacks_code_id_slow(s, co);
    }
    /* No reference is taken: the program decides when its code dies, and
     * ml_stacks_code_freed then forgets the address. Everything the
     * reports need (file, name, line table) is copied into CODE_DEF now.
     * The profiler's own code is remembered as such and never defined. */
    static char fbuf[4096]; /* under the GIL */
    const char *file;
    size_t flen = ml_compat_str_utf8(co->co_filename, fbuf, sizeof(fbuf), &file);
    int own = s->own_len && flen > s->own_len && memcmp(file, s->own, s->own_len) == 0;
    ml_code_id id = own ? ML_CODE_OWN : (ml_code_id)++s->ncodes;
    s->nlive++;
    s->codes[i].code = co;
    s->codes[i].id = id;
    size_t word;
    uint64_t bit = ml_stacks_code_bit(co, &word);
    s->code_bits[word] |= bit;
    if (!own)
        ml_stacks_define_code(s, id, co, file, flen);
    return id;
}

int
ml_stacks_may_be_code(const ml_stacks *s, const void *block)
{
    size_t word;
    uint64_t bit = ml_stacks_code_bit(block, &word);
    return (s->code_bits[word] & bit) != 0;
}

int
ml_stacks_code_freed(ml_stacks *s, const void *block)
{
    size_t i = ml_stacks_hash_ptr(block) & s->code_mask;
    while (s->codes[i].code != block) {
        if (!s->codes[i].code)
            return 0;
        i = (i + 1) & s->code_mask;
    }
    /* backward-shift delete: no tombstones, so the inline first probe stays exact */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & s->code_mask;
        if (!s->codes[j].code)
            break;
        size_t home = ml_stacks_hash_ptr(s->codes[j].code) & s->code_mask;
        if (((j - home) & s->code_mask) >= ((j - hole) & s->code_mask)) {
            s->codes[hole] = s->codes[j];
            hole = j;
        }
    }
    s->codes[hole].code = NULL;
    s->codes[hole].id = 0;
    s->nlive--;
    /* a new code object may take this address, and a new frame the address
     * of one that ran it: every thread's cached chain is stale */
    s->generation = ++ml_stacks_generations;
    return 1;
}

static int
ml_stacks_grow_nodes(ml_stacks *s)
{
    size_t n = (s->node_mask + 1) * 2;
    ml_node_slot *ns = calloc(n, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i <= s->node_mask; i++) {
        ml_node_slot *o = &s->nodes[i];
        if (!o->id)
            continue;
        size_t j = ml_stacks_hash_node(o->parent, o->code, o->offset) & (n - 1);
        while (ns[j].id)
            j = (j + 1) & (n - 1);
        ns[j] = *o;
    }
    free(s->nodes);
    s->nodes = ns;
    s->node_mask = n - 1;
    return 0;
}

/* The id of a code object; its first probe inline (the common hit). */
static inline ml_code_id
ml_stacks_code_id(ml_stacks *s, PyCodeObject *co)
{
    const ml_code_slot *c = &s->codes[ml_stacks_hash_ptr(co) & s->code_mask];
    return c->code == co ? c->id : ml_stacks_code_id_slow(s, co);
}

static ml_frame_id
ml_stacks_node_slow(ml_stacks *s, ml_frame_id parent, ml_code_id code, uint32_t offset)
{
    if ((s->nnodes + 1) * 2 > s->node_mask + 1 && ml_stacks_grow_nodes(s) < 0)
        return 0;
    size_t i = ml_stacks_hash_node(parent, code, offset) & s->node_mask;
    while (s->nodes[i].id) {
        ml_node_slot *o = &s->nodes[i];
        if (o->parent == parent && o->code == code && o->offset == offset)
            return o->id;
        i = (i + 1) & s->node_mask;
    }
    ml_frame_id id = (ml_frame_id)++s->nnodes;
    s->nodes[i] = (ml_node_slot){parent, code, offset, id};
    ml_writer_frame_def(s->w, id, parent, code, offset);
    return id;
}

/* The node (parent, code, offset), made if new; first probe inline. */
static inline ml_frame_id
ml_stacks_node(ml_stacks *s, ml_frame_id parent, ml_code_id code, uint32_t offset)
{
    const ml_node_slot *o = &s->nodes[ml_stacks_hash_node(parent, code, offset) & s->node_mask];
    if (o->id && o->parent == parent && o->code == code && o->offset == offset)
        return o->id;
    return ml_stacks_node_slow(s, parent, code, offset);
}

ml_frame_id
ml_stacks_intern(ml_stacks *s, const ml_pyframe *frames, int n, int *own)
{
    ml_frame_id id = 0;
    *own = 0;
    for (int j = n - 1; j >= 0; j--) {
        ml_code_id code = ml_stacks_code_id(s, frames[j].code);
        *own = code == ML_CODE_OWN;
        if (*own)
            continue;
        ml_frame_id next = code ? ml_stacks_node(s, id, code, frames[j].offset) : 0;
        if (!next) {
            s->dropped++;
            return id;
        }
        id = next;
    }
    return id;
}

static int
ml_stack_cache_reserve(ml_stack_cache *c, int n)
{
    if (n <= c->cap)
        return 0;
    int cap = n < 64 ? 64 : n * 2;
    ml_rawframe *f = realloc(c->chain, (size_t)cap * sizeof(*f));
    if (!f)
        return -1;
    c->chain = f;
    c->cap = cap;
    return 0;
}

/* Give chain[from .. to) their stack ids, from chain[from - 1]'s. Returns
 * 0, or -1 past max_frames. Out of memory leaves the rest at the last id. */
static int
ml_stacks_number(ml_stacks *s, ml_rawframe *chain, int from, int to, int max_frames)
{
    ml_frame_id id = from ? chain[from - 1].node : 0;
    uint32_t depth = from ? chain[from - 1].depth : 0;
    uint8_t own = from ? chain[from - 1].own : 0;
    for (int j = from; j < to; j++) {
        ml_rawframe *e = &chain[j];
        if (e->skip == ML_SKIP_NONE) {
            ml_code_id code = ml_stacks_code_id(s, e->code);
            own = code == ML_CODE_OWN;
            if (!own) {
                if (++depth > (uint32_t)max_frames)
                    return -1;
                ml_frame_id next = code ? ml_stacks_node(s, id, code, e->offset) : 0;
                if (next)
                    id = next;
                else
                    s->dropped++;
            }
        }
        e->node = id;
        e->depth = depth;
        e->own = own;
    }
    return 0;
}

int
ml_stacks_intern_chain(ml_stacks *s, ml_stack_cache *c, const ml_rawframe *fresh, int n, int anchor,
                       const void *bottom, int max_frames, ml_frame_id *id)
{
    int from = anchor + 1; /* the cached chain is kept up to the anchor */
    if (c->generation != s->generation) {
        /* another capture's ids: the kept frames are numbered again */
        c->generation = s->generation;
        from = 0;
    }
    int total = anchor + 1 + n;
    if (ml_stack_cache_reserve(c, total) < 0) {
        s->dropped++;
        c->n = 0;
        *id = 0;
        return 0;
    }
    for (int k = 0; k < n; k++)
        c->chain[anchor + 1 + k] = fresh[n - 1 - k];
    c->bottom = bottom;
    if (ml_stacks_number(s, c->chain, from, total, max_frames) < 0) {
        c->n = 0;
        return -1;
    }
    c->n = total;
    *id = total ? c->chain[total - 1].node : 0;
    return 0;
}

void
ml_stack_cache_release(ml_stack_cache *c)
{
    free(c->chain);
    memset(c, 0, sizeof(*c));
}
