/* windows.c: the top site and type of a window of the counters-only
 * session (see windows.h). */
#include "capture/windows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/types.h"
#include "capture/writer.h"

/* Blocks allocated while the GC collects wait to be typed until it is
 * done (tracker.c's rule); past this many the oldest is typed anyway. */
#define ML_WIN_PENDING_MAX 32
/* A block's seq (the block map keeps 40 bits): window number << 20 |
 * its (site, type) pair's slot. Window numbers start at 1, so every seq of
 * a window is above ML_WINDOWS_NO_SEQ; they wrap after 2^20 windows (a
 * block left by the window 2^20 windows before that is freed in it would
 * be taken off a pair of this one: never below zero). A window with more
 * pairs (sites) than the field holds charges the rest to none (the
 * figures stay exact, only the ranking misses them). */
#define ML_WIN_FIELD_BITS 20
#define ML_WIN_FIELD_MAX ((1u << ML_WIN_FIELD_BITS) - 1)
#define ML_WIN_NUMBER_MASK ((UINT64_C(1) << 20) - 1)

typedef struct {
    PyCodeObject *code; /* NULL once resolved early (its code was freed) */
    uint32_t offset;
    char *text;         /* "file:line (function)" when resolved early */
    uint64_t allocated, left;
    int32_t line;       /* at the end (ml_windows_group_lines) */
} ml_win_site;

typedef struct {
    PyCodeObject *code; /* NULL = empty */
    int own;
} ml_win_code;

typedef struct {
    uint32_t site;
    ml_type_id type;
} ml_win_pair;

typedef struct {
    uintptr_t ptr;
    size_t size;
    uint32_t site;
    ml_type_id type; /* 0: not typed yet */
    ml_domain domain;
} ml_win_pending;

struct ml_windows {
    int open;
    uint64_t number;       /* of the open (or last) window */
    char *own;             /* "dir/" or NULL */
    size_t own_len;
    /* types (GIL): the session's table, its TYPE_DEFs into a memory buffer */
    ml_writer *defs;
    ml_types *types;
    /* per window (lock): sites by (code, offset); slot 0 = none */
    ml_win_site *sites;
    size_t nsites, sites_cap;
    uint32_t *site_index;  /* open addressing: slot numbers, 0 = empty */
    size_t site_mask;
    /* per window (lock): bytes by type id; `touched` lists the ids to clear */
    uint64_t *type_allocated, *type_left;
    size_t types_cap;
    ml_type_id *touched;
    size_t ntouched, touched_cap;
    /* per window (lock): the (site, type) pairs blocks are charged to; slot 0 = none */
    ml_win_pair *pairs;
    size_t npairs, pairs_cap;
    uint32_t *pair_index;  /* open addressing: slot numbers, 0 = empty */
    size_t pair_mask;
    /* per window (GIL): code objects met, with their "own" flag */
    ml_win_code *codes;
    size_t code_mask, ncodes;
    /* the last answers of ml_windows_site_now and ml_windows_pair_of (a
     * loop allocates at one place): forgotten when the window opens and
     * when that code is freed */
    PyCodeObject *last_code;
    uint32_t last_offset, last_site;
    uint32_t last_pair, last_pair_site;
    ml_type_id last_pair_type;
    /* blocks not typed yet, oldest first (GIL) */
    ml_win_pending pending[ML_WIN_PENDING_MAX];
    int npending;
};

static size_t
ml_windows_hash(uintptr_t p, uint32_t off)
{
    uint64_t h = ((uint64_t)p >> 4) * UINT64_C(0x9E3779B97F4A7C15) ^ ((uint64_t)off * UINT64_C(0xC2B2AE3D27D4EB4F));
    return (size_t)(h ^ (h >> 29));
}

ml_windows *
ml_windows_new(const char *own_dir, size_t own_len)
{
    ml_windows *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    if (own_dir && own_len) {
        w->own = malloc(own_len + 2);
        if (!w->own)
            goto fail;
        memcpy(w->own, own_dir, own_len);
        w->own[own_len] = '/';
        w->own[own_len + 1] = 0;
        w->own_len = own_len + 1;
    }
    w->defs = ml_writer_open_mem();
    w->types = w->defs ? ml_types_new(w->defs) : NULL;
    w->site_index = calloc(1024, sizeof(*w->site_index));
    w->codes = calloc(256, sizeof(*w->codes));
    w->sites = calloc(256, sizeof(*w->sites));
    w->pairs = calloc(256, sizeof(*w->pairs));
    w->pair_index = calloc(1024, sizeof(*w->pair_index));
    if (!w->types || !w->site_index || !w->codes || !w->sites || !w->pairs || !w->pair_index)
        goto fail;
    w->pair_mask = 1023;
    w->pairs_cap = 256;
    w->npairs = 1;
    w->site_mask = 1023;
    w->code_mask = 255;
    w->sites_cap = 256;
    w->nsites = 1; /* slot 0: none */
    return w;
fail:
    ml_windows_free(w);
    return NULL;
}

static void
ml_windows_clear_sites(ml_windows *w)
{
    for (size_t i = 1; i < w->nsites; i++)
        free(w->sites[i].text);
    w->nsites = 1;
    memset(&w->sites[0], 0, sizeof(w->sites[0]));
    memset(w->site_index, 0, (w->site_mask + 1) * sizeof(*w->site_index));
}

void
ml_windows_free(ml_windows *w)
{
    if (!w)
        return;
    if (w->sites)
        ml_windows_clear_sites(w);
    free(w->sites);
    free(w->site_index);
    free(w->type_allocated);
    free(w->type_left);
    free(w->touched);
    free(w->pairs);
    free(w->pair_index);
    free(w->codes);
    ml_types_free(w->types);
    if (w->defs)
        ml_writer_close(w->defs);
    free(w->own);
    free(w);
}

static void ml_windows_settle(ml_windows *w, ml_blocks *b, int i, int freeing, uint64_t *dropped);

int
ml_windows_begin(ml_windows *w, ml_blocks *b, uint64_t *dropped)
{
    while (w->npending) /* a window left open: its blocks enter the map first */
        ml_windows_settle(w, b, 0, 0, dropped);
    ml_windows_clear_sites(w);
    for (size_t i = 0; i < w->ntouched; i++)
        w->type_allocated[w->touched[i]] = w->type_left[w->touched[i]] = 0;
    w->ntouched = 0;
    w->npairs = 1;
    memset(w->pair_index, 0, (w->pair_mask + 1) * sizeof(*w->pair_index));
    memset(w->codes, 0, (w->code_mask + 1) * sizeof(*w->codes));
    w->ncodes = 0;
    w->npending = 0;
    w->last_code = NULL;
    w->last_pair = 0;
    w->number = (w->number + 1) & ML_WIN_NUMBER_MASK;
    if (!w->number)
        w->number = 1;
    w->open = 1;
    return 0;
}

/* ---- code objects: own or not (GIL) ---- */

static int
ml_windows_grow_codes(ml_windows *w)
{
    size_t n = (w->code_mask + 1) * 2;
    ml_win_code *nc = calloc(n, sizeof(*nc));
    if (!nc)
        return -1;
    for (size_t i = 0; i <= w->code_mask; i++) {
        if (!w->codes[i].code)
            continue;
        size_t j = ml_windows_hash((uintptr_t)w->codes[i].code, 0) & (n - 1);
        while (nc[j].code)
            j = (j + 1) & (n - 1);
        nc[j] = w->codes[i];
    }
    free(w->codes);
    w->codes = nc;
    w->code_mask = n - 1;
    return 0;
}

/* 1 if co is memlens' own code (or one being freed: never named), 0 if
 * not, -1 when out of memory. */
static int
ml_windows_code_own(ml_windows *w, PyCodeObject *co)
{
    size_t i = ml_windows_hash((uintptr_t)co, 0) & w->code_mask;
    while (w->codes[i].code) {
        if (w->codes[i].code == co)
            return w->codes[i].own;
        i = (i + 1) & w->code_mask;
    }
    /* 3.11 may clear a returning frame whose code is being deallocated
     * while it is still the innermost: never remember such an address */
    if (Py_REFCNT(co) <= 0)
        return 1;
    if ((w->ncodes + 1) * 2 > w->code_mask + 1) {
        if (ml_windows_grow_codes(w) < 0)
            return -1;
        return ml_windows_code_own(w, co);
    }
    static char fbuf[4096]; /* under the GIL */
    const char *file;
    size_t flen = ml_compat_str_utf8(co->co_filename, fbuf, sizeof(fbuf), &file);
    int own = w->own_len && flen > w->own_len && memcmp(file, w->own, w->own_len) == 0;
    w->codes[i].code = co;
    w->codes[i].own = own;
    w->ncodes++;
    return own;
}

/* ---- sites (lock) ---- */

/* "file:line (function)" of (co, offset), malloc'd; NULL when out of
 * memory. `offs`/`lines`/`n`: co's line map (n = 0: line 0). */
static int32_t
ml_windows_line(uint32_t offset, const uint32_t *offs, const int32_t *lines, size_t n)
{
    size_t lo = 0, hi = n; /* the last run starting at or before offset */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (offs[mid] <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lines[lo - 1] : 0;
}

static char *
ml_windows_site_text(PyCodeObject *co, uint32_t offset, const uint32_t *offs, const int32_t *lines, size_t n)
{
    static char fbuf[4096], nbuf[1024]; /* under the GIL */
    const char *file, *name;
    size_t flen = ml_compat_str_utf8(co->co_filename, fbuf, sizeof(fbuf), &file);
    size_t nlen = ml_compat_str_utf8(ml_compat_code_name(co), nbuf, sizeof(nbuf), &name);
    int32_t line = ml_windows_line(offset, offs, lines, n);
    size_t cap = flen + nlen + 32;
    char *s = malloc(cap);
    if (s)
        snprintf(s, cap, "%.*s:%d (%.*s)", (int)flen, file, (int)line, (int)nlen, name);
    return s;
}

static int
ml_windows_grow_sites(ml_windows *w)
{
    if (w->nsites == w->sites_cap) {
        ml_win_site *ns = realloc(w->sites, w->sites_cap * 2 * sizeof(*ns));
        if (!ns)
            return -1;
        w->sites = ns;
        w->sites_cap *= 2;
    }
    if ((w->nsites + 1) * 2 > w->site_mask + 1) {
        size_t n = (w->site_mask + 1) * 2;
        uint32_t *ni = calloc(n, sizeof(*ni));
        if (!ni)
            return -1;
        for (uint32_t s = 1; s < w->nsites; s++) {
            if (!w->sites[s].code)
                continue; /* resolved early: never looked up again */
            size_t j = ml_windows_hash((uintptr_t)w->sites[s].code, w->sites[s].offset) & (n - 1);
            while (ni[j])
                j = (j + 1) & (n - 1);
            ni[j] = s;
        }
        free(w->site_index);
        w->site_index = ni;
        w->site_mask = n - 1;
    }
    return 0;
}

/* The slot of (co, offset), made on first use; 0 when out of room. */
static uint32_t
ml_windows_site_of(ml_windows *w, PyCodeObject *co, uint32_t offset)
{
    size_t i = ml_windows_hash((uintptr_t)co, offset) & w->site_mask;
    for (uint32_t s; (s = w->site_index[i]); i = (i + 1) & w->site_mask)
        if (w->sites[s].code == co && w->sites[s].offset == offset)
            return s;
    if (w->nsites > ML_WIN_FIELD_MAX)
        return 0;
    if (w->nsites == w->sites_cap || (w->nsites + 1) * 2 > w->site_mask + 1) {
        if (ml_windows_grow_sites(w) < 0)
            return 0;
        return ml_windows_site_of(w, co, offset);
    }
    uint32_t s = (uint32_t)w->nsites++;
    w->sites[s] = (ml_win_site){.code = co, .offset = offset};
    w->site_index[i] = s;
    return s;
}

/* ml_windows_site_now's answer for memlens' own allocations. */
#define ML_WIN_OWN UINT32_MAX

/* The site of an allocation made now by ts (GIL held): its innermost
 * frame; ML_WIN_OWN when that frame runs memlens' own code (the
 * allocation is memlens', not the test's: the capture leaves such
 * allocations out too); 0 without frames, or out of memory. */
static uint32_t
ml_windows_site_now(ml_windows *w, PyThreadState *ts)
{
    ml_pyframe frames[1];
    int truncated = 0;
    if (ml_compat_walk(ts, frames, 1, NULL, &truncated) <= 0)
        return 0;
    if (frames[0].code == w->last_code && frames[0].offset == w->last_offset)
        return w->last_site;
    int own = ml_windows_code_own(w, frames[0].code);
    uint32_t site = own > 0 ? ML_WIN_OWN : own < 0 ? 0 : ml_windows_site_of(w, frames[0].code, frames[0].offset);
    if (own >= 0 && site) { /* never remembers a failure, nor a code being freed */
        w->last_code = frames[0].code;
        w->last_offset = frames[0].offset;
        w->last_site = site;
    }
    return site;
}

/* ---- types (lock for the figures) ---- */

static int
ml_windows_type_room(ml_windows *w, ml_type_id id)
{
    if (id >= w->types_cap) {
        size_t cap = w->types_cap ? w->types_cap : 256;
        while (cap <= id)
            cap *= 2;
        uint64_t *a = realloc(w->type_allocated, cap * sizeof(*a));
        if (!a)
            return -1;
        w->type_allocated = a;
        uint64_t *l = realloc(w->type_left, cap * sizeof(*l));
        if (!l)
            return -1;
        w->type_left = l;
        memset(a + w->types_cap, 0, (cap - w->types_cap) * sizeof(*a));
        memset(l + w->types_cap, 0, (cap - w->types_cap) * sizeof(*l));
        w->types_cap = cap;
    }
    if (!w->type_allocated[id] && !w->type_left[id]) {
        if (w->ntouched == w->touched_cap) {
            size_t cap = w->touched_cap ? w->touched_cap * 2 : 256;
            ml_type_id *t = realloc(w->touched, cap * sizeof(*t));
            if (!t)
                return -1;
            w->touched = t;
            w->touched_cap = cap;
        }
        w->touched[w->ntouched++] = id;
    }
    return 0;
}

static int
ml_windows_grow_pairs(ml_windows *w)
{
    if (w->npairs == w->pairs_cap) {
        ml_win_pair *np = realloc(w->pairs, w->pairs_cap * 2 * sizeof(*np));
        if (!np)
            return -1;
        w->pairs = np;
        w->pairs_cap *= 2;
    }
    if ((w->npairs + 1) * 2 > w->pair_mask + 1) {
        size_t n = (w->pair_mask + 1) * 2;
        uint32_t *ni = calloc(n, sizeof(*ni));
        if (!ni)
            return -1;
        for (uint32_t k = 1; k < w->npairs; k++) {
            size_t j = ml_windows_hash(w->pairs[k].site, w->pairs[k].type) & (n - 1);
            while (ni[j])
                j = (j + 1) & (n - 1);
            ni[j] = k;
        }
        free(w->pair_index);
        w->pair_index = ni;
        w->pair_mask = n - 1;
    }
    return 0;
}

/* The slot of (site, type), made on first use; 0 when out of room. */
static uint32_t
ml_windows_pair_of(ml_windows *w, uint32_t site, ml_type_id type)
{
    if (w->last_pair && w->last_pair_site == site && w->last_pair_type == type)
        return w->last_pair;
    size_t i = ml_windows_hash(site, type) & w->pair_mask;
    for (uint32_t k; (k = w->pair_index[i]); i = (i + 1) & w->pair_mask)
        if (w->pairs[k].site == site && w->pairs[k].type == type) {
            w->last_pair = k;
            w->last_pair_site = site;
            w->last_pair_type = type;
            return k;
        }
    if (w->npairs > ML_WIN_FIELD_MAX)
        return 0;
    if (w->npairs == w->pairs_cap || (w->npairs + 1) * 2 > w->pair_mask + 1) {
        if (ml_windows_grow_pairs(w) < 0)
            return 0;
        return ml_windows_pair_of(w, site, type);
    }
    uint32_t k = (uint32_t)w->npairs++;
    w->pairs[k] = (ml_win_pair){site, type};
    w->pair_index[i] = k;
    w->last_pair = k;
    w->last_pair_site = site;
    w->last_pair_type = type;
    return k;
}

/* Charge a block of the open window to its site and type; returns its seq. */
static uint64_t
ml_windows_charge(ml_windows *w, uint32_t site, ml_type_id type, size_t size)
{
    w->sites[site].allocated += size;
    w->sites[site].left += size;
    if (type && ml_windows_type_room(w, type) < 0)
        type = 0;
    else if (type) {
        w->type_allocated[type] += size;
        w->type_left[type] += size;
    }
    uint32_t pair = site || type ? ml_windows_pair_of(w, site, type) : 0;
    return w->number << ML_WIN_FIELD_BITS | pair;
}

/* Type pending block i (if it is not yet), charge it and put it into the
 * map; drops it from the queue. */
static void
ml_windows_settle(ml_windows *w, ml_blocks *b, int i, int freeing, uint64_t *dropped)
{
    ml_win_pending *pb = &w->pending[i];
    if (!pb->type)
        pb->type = ml_types_classify(w->types, (const void *)pb->ptr, pb->size, pb->domain, freeing);
    uint64_t seq = ml_windows_charge(w, pb->site, pb->type, pb->size);
    if (ml_blocks_put(b, pb->ptr, seq, pb->size) < 0)
        (*dropped)++;
    if (i != --w->npending)
        memmove(&w->pending[i], &w->pending[i + 1], (size_t)(w->npending - i) * sizeof(*pb));
}

static int
ml_windows_pending_find(const ml_windows *w, uintptr_t p)
{
    for (int i = w->npending - 1; i >= 0; i--)
        if (w->pending[i].ptr == p)
            return i;
    return -1;
}

uint64_t
ml_windows_alloc_unlocked(ml_windows *w, ml_blocks *b, PyThreadState *ts, uintptr_t p, size_t size,
                          ml_domain domain, uint64_t *dropped)
{
    if (!w->open)
        return ML_WINDOWS_NO_SEQ;
    if (!ts) /* no GIL: no frames, no header to read */
        return ml_windows_charge(w, 0, domain == ML_DOMAIN_RAW ? ML_KIND_RAW : 0, size);
    /* RAW calls may come before the object header is written (a wrapper's
     * tables): only MEM/OBJ calls type the pending blocks */
    if (domain != ML_DOMAIN_RAW && w->npending && !ml_compat_gc_collecting(ts))
        while (w->npending)
            ml_windows_settle(w, b, 0, 0, dropped);
    uint32_t site = ml_windows_site_now(w, ts);
    if (site == ML_WIN_OWN)
        return ML_WINDOWS_NO_SEQ; /* counted, never ranked */
    if (domain == ML_DOMAIN_OBJ || (domain == ML_DOMAIN_MEM && ML_COMPAT_MEM_HOLDS_DICT_KEYS)) {
        if (w->npending == ML_WIN_PENDING_MAX)
            ml_windows_settle(w, b, 0, 0, dropped);
        w->pending[w->npending++] = (ml_win_pending){p, size, site, 0, domain};
        return 0;
    }
    return ml_windows_charge(w, site, domain == ML_DOMAIN_RAW ? ML_KIND_RAW : ML_KIND_MEM, size);
}

void
ml_windows_before_realloc(ml_windows *w, uintptr_t p)
{
    int i = w->npending ? ml_windows_pending_find(w, p) : -1;
    if (i >= 0 && !w->pending[i].type)
        w->pending[i].type = ml_types_classify(w->types, (const void *)p, w->pending[i].size,
                                               w->pending[i].domain, 0);
}

/* A code object the window met is being freed: name its sites now (its
 * address may hold another code soon) and forget it. GIL held. */
static void
ml_windows_code_freed(ml_windows *w, PyCodeObject *co)
{
    size_t i = ml_windows_hash((uintptr_t)co, 0) & w->code_mask;
    while (w->codes[i].code != co) {
        if (!w->codes[i].code)
            return;
        i = (i + 1) & w->code_mask;
    }
    if (w->last_code == co)
        w->last_code = NULL;
    uint32_t *offs = NULL;
    int32_t *lines = NULL;
    size_t n = 0;
    int have_map = 0;
    for (uint32_t s = 1; s < w->nsites; s++) {
        if (w->sites[s].code != co)
            continue;
        if (!have_map) {
            if (ml_compat_linemap(co, &offs, &lines, &n) < 0)
                n = 0;
            have_map = 1;
        }
        w->sites[s].text = ml_windows_site_text(co, w->sites[s].offset, offs, lines, n);
        w->sites[s].code = NULL; /* its index entry stays: it never matches again */
    }
    free(offs);
    free(lines);
    /* backward-shift delete: the probe chains stay whole */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & w->code_mask;
        if (!w->codes[j].code)
            break;
        size_t home = ml_windows_hash((uintptr_t)w->codes[j].code, 0) & w->code_mask;
        if ((j > hole && (home <= hole || home > j)) || (j < hole && home <= hole && home > j)) {
            w->codes[hole] = w->codes[j];
            hole = j;
        }
    }
    w->codes[hole].code = NULL;
    w->ncodes--;
}

void
ml_windows_before_free_unlocked(ml_windows *w, ml_blocks *b, int gil, uintptr_t p, ml_domain domain,
                                uint64_t *dropped)
{
    if (!gil)
        return;
    if (w->open && w->npending) {
        int i = ml_windows_pending_find(w, p);
        if (i >= 0)
            ml_windows_settle(w, b, i, 1, dropped);
    }
    if (domain != ML_DOMAIN_OBJ)
        return;
    if (ml_types_may_be_type(w->types, (const void *)p))
        ml_types_type_freed(w->types, (const void *)p);
    /* code objects have no pre-header: their type is at the block's start */
    if (w->open && w->ncodes && Py_TYPE((PyObject *)p) == &PyCode_Type)
        ml_windows_code_freed(w, (PyCodeObject *)p);
}

void
ml_windows_freed_unlocked(ml_windows *w, uint64_t seq, uint64_t size)
{
    if (!w->open || seq >> ML_WIN_FIELD_BITS != w->number)
        return; /* made outside this window */
    uint32_t pair = (uint32_t)(seq & ML_WIN_FIELD_MAX);
    if (!pair || pair >= w->npairs)
        return;
    uint32_t site = w->pairs[pair].site;
    ml_type_id type = w->pairs[pair].type;
    if (site < w->nsites && w->sites[site].left >= size)
        w->sites[site].left -= size;
    if (type && type < w->types_cap && w->type_left[type] >= size)
        w->type_left[type] -= size;
}

/* ---- the end ---- */

static const char *
ml_windows_type_name(ml_windows *w, ml_type_id id)
{
    return ml_types_id_name(w->types, id);
}

static char *
ml_windows_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Slots of one code object (or, for slots named early, of one name): their
 * lines are summed together. */
typedef struct {
    ml_win_site **slot;       /* [n], sorted by line once named */
    size_t n;
    uint64_t allocated, left; /* over the group: a bound on any of its lines */
    int done;                 /* best lines found */
    uint64_t best_allocated, best_left;
    char *text_allocated, *text_left; /* their names (malloc'd) */
} ml_win_group;

static int
ml_windows_cmp_slot(const void *a, const void *b)
{
    const ml_win_site *x = *(ml_win_site *const *)a, *y = *(ml_win_site *const *)b;
    uintptr_t cx = (uintptr_t)x->code, cy = (uintptr_t)y->code;
    if (cx != cy)
        return cx < cy ? -1 : 1;
    if (!cx) /* named early: by name */
        return strcmp(x->text ? x->text : "?", y->text ? y->text : "?");
    return 0;
}

static int
ml_windows_cmp_line(const void *a, const void *b)
{
    const ml_win_site *x = *(ml_win_site *const *)a, *y = *(ml_win_site *const *)b;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* The line of each slot of g (one code's line map for all), then the line
 * with the most bytes allocated and the one with the most left, named. */
static void
ml_windows_group_lines(ml_win_group *g)
{
    g->done = 1;
    PyCodeObject *co = g->slot[0]->code;
    uint32_t *offs = NULL;
    int32_t *lines = NULL;
    size_t nmap = 0;
    if (!co) { /* one name: one line */
        g->best_allocated = g->allocated;
        g->best_left = g->left;
        g->text_allocated = ml_windows_strdup(g->slot[0]->text);
        g->text_left = ml_windows_strdup(g->slot[0]->text);
        return;
    }
    if (ml_compat_linemap(co, &offs, &lines, &nmap) < 0)
        nmap = 0;
    for (size_t i = 0; i < g->n; i++)
        g->slot[i]->line = ml_windows_line(g->slot[i]->offset, offs, lines, nmap);
    qsort(g->slot, g->n, sizeof(*g->slot), ml_windows_cmp_line);
    const ml_win_site *best_a = NULL, *best_l = NULL;
    for (size_t i = 0; i < g->n;) {
        size_t j = i;
        uint64_t a = 0, l = 0;
        for (; j < g->n && g->slot[j]->line == g->slot[i]->line; j++) {
            a += g->slot[j]->allocated;
            l += g->slot[j]->left;
        }
        if (a > g->best_allocated) {
            g->best_allocated = a;
            best_a = g->slot[i];
        }
        if (l > g->best_left) {
            g->best_left = l;
            best_l = g->slot[i];
        }
        i = j;
    }
    if (best_a)
        g->text_allocated = ml_windows_site_text(co, best_a->offset, offs, lines, nmap);
    if (best_l)
        g->text_left = ml_windows_site_text(co, best_l->offset, offs, lines, nmap);
    free(offs);
    free(lines);
}

/* The best line by `left` (else by allocated) over the groups: groups in
 * the order of their totals, each named only while its total can still
 * beat the best found (a line never holds more than its group). */
static char *
ml_windows_best_line(ml_win_group *groups, size_t ng, int left, uint64_t *bytes)
{
    const ml_win_group *best = NULL;
    *bytes = 0;
    for (;;) {
        ml_win_group *next = NULL; /* the largest group not looked at yet */
        for (size_t i = 0; i < ng; i++) {
            ml_win_group *g = &groups[i];
            uint64_t total = left ? g->left : g->allocated;
            if (total > *bytes && g != best && !(g->done && (left ? g->best_left : g->best_allocated) <= *bytes) &&
                (!next || total > (left ? next->left : next->allocated)))
                next = g;
        }
        if (!next)
            break;
        if (!next->done)
            ml_windows_group_lines(next);
        uint64_t b = left ? next->best_left : next->best_allocated;
        if (b > *bytes) {
            *bytes = b;
            best = next;
        } /* else: looked at and beaten, skipped from now on */
    }
    if (!best)
        return NULL;
    return ml_windows_strdup(left ? best->text_left : best->text_allocated);
}

/* The top sites, by bytes allocated and by bytes left. */
static int
ml_windows_top_sites(ml_windows *w, ml_windows_top *out)
{
    size_t n = w->nsites - 1;
    if (!n)
        return 0;
    ml_win_site **order = malloc(n * sizeof(*order));
    ml_win_group *groups = calloc(n, sizeof(*groups));
    int rc = -1;
    if (!order || !groups)
        goto done;
    for (size_t i = 0; i < n; i++)
        order[i] = &w->sites[i + 1];
    qsort(order, n, sizeof(*order), ml_windows_cmp_slot);
    size_t ng = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && ml_windows_cmp_slot(&order[i], &order[j]) == 0)
            j++;
        ml_win_group *g = &groups[ng++];
        g->slot = &order[i];
        g->n = j - i;
        for (size_t k = i; k < j; k++) {
            g->allocated += order[k]->allocated;
            g->left += order[k]->left;
        }
        i = j;
    }
    out->site_allocated = ml_windows_best_line(groups, ng, 0, &out->site_allocated_bytes);
    out->site_left = ml_windows_best_line(groups, ng, 1, &out->site_left_bytes);
    rc = (out->site_allocated_bytes && !out->site_allocated) || (out->site_left_bytes && !out->site_left) ? -1 : 0;
    for (size_t i = 0; i < ng; i++) {
        free(groups[i].text_allocated);
        free(groups[i].text_left);
    }
done:
    free(order);
    free(groups);
    return rc;
}

int
ml_windows_end(ml_windows *w, ml_blocks *b, ml_windows_top *out, uint64_t *dropped)
{
    memset(out, 0, sizeof(*out));
    if (!w->open)
        return 0;
    while (w->npending)
        ml_windows_settle(w, b, 0, 0, dropped);
    int rc = ml_windows_top_sites(w, out);
    ml_type_id best_a = 0, best_l = 0;
    for (size_t i = 0; i < w->ntouched; i++) {
        ml_type_id id = w->touched[i];
        if (w->type_allocated[id] > out->type_allocated_bytes) {
            out->type_allocated_bytes = w->type_allocated[id];
            best_a = id;
        }
        if (w->type_left[id] > out->type_left_bytes) {
            out->type_left_bytes = w->type_left[id];
            best_l = id;
        }
    }
    out->type_allocated = ml_windows_strdup(ml_windows_type_name(w, best_a));
    out->type_left = ml_windows_strdup(ml_windows_type_name(w, best_l));
    if ((best_a && !out->type_allocated) || (best_l && !out->type_left))
        rc = -1;
    w->open = 0;
    return rc;
}

void
ml_windows_top_release(ml_windows_top *t)
{
    free(t->site_allocated);
    free(t->type_allocated);
    free(t->site_left);
    free(t->type_left);
    memset(t, 0, sizeof(*t));
}
