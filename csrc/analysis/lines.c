/* lines.c: per-line attribution of a capture (see lines.h for the rule).
 *
 * One pass over the events. The list of rows a stack is charged to (one per
 * selected function in it) is computed once per stack id and kept: a frame id
 * names a whole stack, so the cache is an array indexed by frame id (ids are
 * dense: bounded by the FRAME_DEFs). An event only adds to its stack's sums,
 * which are charged to the stack's rows once, at the end: the work per event
 * is constant however many functions its stack holds.
 * Codes are matched against the selection once per code id.
 *
 * Bounds on hostile captures: computing a stack's charges walks its frames
 * once, with a generation-stamped mark per function instead of a scan of the
 * charges found so far, and stops at the first ancestor whose charges are
 * known (the parent of a stack is computed first), so a deep chain shared by
 * many stacks is walked once. Rows live in a hash map keyed by (function,
 * line): memory follows the lines that occur, never the values of line
 * numbers. Functions are found by a hash of (file, name, first line).
 */
#include "analysis/lines.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stack's charge: the row of the innermost frame of one selected function. */
typedef struct {
    uint32_t func;
    uint32_t row;          /* index into l->rows */
} ml_lines_charge;

typedef struct {
    ml_lines_func pub;
    char *file, *name;
    uint64_t hash;         /* of (file, name, firstlineno): l->fn_slots */
    ml_lines_row *rows;    /* this function's rows, made at the end of the run */
    int32_t *code_lines;   /* sorted and made unique at the end of the run */
    size_t ncode_lines, code_lines_cap;
} ml_lines_fn;

/* A row while the events are read; sorted by (func, line) at the end. */
typedef struct {
    ml_lines_row row;
    uint32_t func;
    uint64_t last;         /* number of the row's last event (1-based) */
} ml_lines_slot_row;

typedef struct {
    uint32_t off, n;       /* charges in l->pool[off .. off + n) */
    uint32_t sum;          /* its events' sums: l->sums[sum - 1], 0 = no event yet */
    int done;
} ml_lines_stack;

/* The events of one stack, added up while reading and charged to the
 * stack's rows at the end: the work per event does not grow with the
 * number of functions in its stack. */
typedef struct {
    int64_t increment;
    uint64_t allocated, allocations;
    uint64_t freed, frees;
    uint64_t last;         /* number of its last event (1-based), for `heap` */
    int64_t heap;          /* traced heap after its last event */
    uint64_t last_time_us;
} ml_lines_sum;

struct ml_lines {
    char **names;
    size_t nnames;
    char **files;
    size_t nfiles;
    char **file_real;      /* realpath() of each selected file, or NULL */

    ml_lines_fn *fns;
    size_t nfns, fns_cap;
    uint32_t *fn_slots;    /* open addressing: k + 1 of fns[k], 0 empty */
    size_t fn_slots_cap;   /* a power of two, at least twice nfns */
    uint32_t *fn_mark;     /* per function: the walk that last charged it */
    size_t fn_mark_cap;
    uint32_t walk;         /* generation of the current walk (0: none yet) */

    int32_t *code_fn;      /* per code id: 0 not yet looked at, -1 not selected, k + 1 */
    size_t code_cap;

    ml_lines_stack *stacks;
    size_t stacks_cap;
    ml_lines_charge *pool;
    size_t pool_len, pool_cap;
    ml_lines_sum *sums;
    size_t nsums, sums_cap;

    ml_lines_slot_row *rows;
    size_t nrows, rows_cap;
    uint32_t *row_slots;   /* open addressing: i + 1 of rows[i], 0 empty */
    size_t row_slots_cap;  /* a power of two, at least twice nrows */

    uint64_t events, unattributed;
};

static char *
ml_lines_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Grow *arr (element size esz) to hold at least `need` elements, zeroing the
 * new ones. Returns 0 or -1 (unchanged). */
static int
ml_lines_grow(void **arr, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * esz);
    if (!p)
        return -1;
    memset((char *)p + *cap * esz, 0, (ncap - *cap) * esz);
    *arr = p;
    *cap = ncap;
    return 0;
}

ml_lines *
ml_lines_new(void)
{
    return calloc(1, sizeof(ml_lines));
}

void
ml_lines_free(ml_lines *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nnames; i++)
        free(l->names[i]);
    for (size_t i = 0; i < l->nfiles; i++) {
        free(l->files[i]);
        free(l->file_real[i]);
    }
    free(l->names);
    free(l->files);
    free(l->file_real);
    for (size_t i = 0; i < l->nfns; i++) {
        free(l->fns[i].file);
        free(l->fns[i].name);
        free(l->fns[i].rows);
        free(l->fns[i].code_lines);
    }
    free(l->fns);
    free(l->fn_slots);
    free(l->fn_mark);
    free(l->rows);
    free(l->row_slots);
    free(l->code_fn);
    free(l->stacks);
    free(l->pool);
    free(l->sums);
    free(l);
}

static int
ml_lines_push_str(char ***arr, size_t *n, const char *s)
{
    char *d = ml_lines_strdup(s);
    char **p = d ? realloc(*arr, (*n + 1) * sizeof(char *)) : NULL;
    if (!p) {
        free(d);
        return -1;
    }
    p[*n] = d;
    *arr = p;
    (*n)++;
    return 0;
}

int
ml_lines_select_name(ml_lines *l, const char *name)
{
    return ml_lines_push_str(&l->names, &l->nnames, name);
}

int
ml_lines_select_file(ml_lines *l, const char *path)
{
    char **real = realloc(l->file_real, (l->nfiles + 1) * sizeof(char *));
    if (!real)
        return -1;
    l->file_real = real;
    if (ml_lines_push_str(&l->files, &l->nfiles, path) < 0)
        return -1;
    l->file_real[l->nfiles - 1] = realpath(path, NULL); /* NULL if it is gone */
    return 0;
}

/* a ends with "<sep>b" */
static int
ml_lines_ends_with(const char *a, char sep, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la > lb && a[la - lb - 1] == sep && strcmp(a + la - lb, b) == 0;
}

static int
ml_lines_name_matches(const char *sel, const char *code_name)
{
    if (strcmp(sel, code_name) == 0 || ml_lines_ends_with(code_name, '.', sel))
        return 1;
    /* 3.10 captures hold plain names: "Cls.meth" selects "meth" */
    return strchr(code_name, '.') == NULL && ml_lines_ends_with(sel, '.', code_name);
}

static int
ml_lines_file_matches(const ml_lines *l, size_t i, const char *file)
{
    const char *sel = l->files[i];
    if (strcmp(sel, file) == 0 || ml_lines_ends_with(file, '/', sel))
        return 1;
    if (!l->file_real[i] || file[0] == '<')
        return 0;
    char *real = realpath(file, NULL);
    int same = real && strcmp(real, l->file_real[i]) == 0;
    free(real);
    return same;
}

static int
ml_lines_selected(const ml_lines *l, const ml_code_info *ci)
{
    int ok = l->nnames == 0;
    for (size_t i = 0; i < l->nnames && !ok; i++)
        ok = ml_lines_name_matches(l->names[i], ci->name);
    if (!ok)
        return 0;
    if (l->nfiles == 0)
        return l->nnames > 0; /* nothing chosen at all selects nothing */
    for (size_t i = 0; i < l->nfiles; i++)
        if (ml_lines_file_matches(l, i, ci->file))
            return 1;
    return 0;
}

/* Add the lines of a code's line map (and its first line) to the function's
 * code lines; sorted and deduplicated in ml_lines_finish. Returns 0 or -1. */
static int
ml_lines_add_code_lines(ml_lines_fn *f, const ml_code_info *ci)
{
    size_t need = f->ncode_lines + ci->nlines + 1;
    if (ml_lines_grow((void **)&f->code_lines, &f->code_lines_cap, need, sizeof(int32_t)) < 0)
        return -1;
    if (ci->firstlineno > 0 && ci->firstlineno <= INT32_MAX)
        f->code_lines[f->ncode_lines++] = (int32_t)ci->firstlineno;
    for (size_t i = 0; i < ci->nlines; i++)
        if (ci->lines[i] > 0)
            f->code_lines[f->ncode_lines++] = ci->lines[i];
    return 0;
}

static int
ml_lines_int32_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* FNV-1a over the bytes of s and its NUL, continuing from h. */
static uint64_t
ml_lines_hash_str(uint64_t h, const char *s)
{
    do {
        h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    } while (*s++);
    return h;
}

static uint64_t
ml_lines_fn_hash(const ml_code_info *ci)
{
    uint64_t h = ml_lines_hash_str(0xCBF29CE484222325ull, ci->file);
    h = ml_lines_hash_str(h, ci->name);
    return (h ^ ci->firstlineno) * 0x100000001B3ull;
}

/* Rebuild an open-addressing table of `n` indices (stored + 1) at `ncap`
 * slots, from the hashes given by hash_of(i). Returns 0 or -1 (unchanged). */
static int
ml_lines_rehash(uint32_t **slots, size_t *cap, size_t ncap, size_t n,
                uint64_t (*hash_of)(const ml_lines *, size_t), const ml_lines *l)
{
    uint32_t *ns = calloc(ncap, sizeof(uint32_t));
    if (!ns)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)(hash_of(l, i) >> 17) & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = (uint32_t)i + 1;
    }
    free(*slots);
    *slots = ns;
    *cap = ncap;
    return 0;
}

static uint64_t
ml_lines_fn_hash_at(const ml_lines *l, size_t k)
{
    return l->fns[k].hash;
}

static uint64_t
ml_lines_row_hash(uint32_t func, int32_t line)
{
    return ((uint64_t)func << 32 | (uint32_t)line) * 0x9E3779B97F4A7C15ull;
}

static uint64_t
ml_lines_row_hash_at(const ml_lines *l, size_t i)
{
    return ml_lines_row_hash(l->rows[i].func, l->rows[i].row.line);
}

/* The function index (k >= 0) of a code, -1 if not selected, -2 on ENOMEM. */
static int32_t
ml_lines_code_fn(ml_lines *l, const ml_reader *r, ml_code_id code)
{
    if (ml_lines_grow((void **)&l->code_fn, &l->code_cap, (size_t)code + 1, sizeof(int32_t)) < 0)
        return -2;
    if (l->code_fn[code])
        return l->code_fn[code] > 0 ? l->code_fn[code] - 1 : -1;
    const ml_code_info *ci = ml_reader_code(r, code);
    if (!ci || !ml_lines_selected(l, ci)) {
        l->code_fn[code] = -1;
        return -1;
    }
    if ((l->nfns + 1) * 2 > l->fn_slots_cap &&
        ml_lines_rehash(&l->fn_slots, &l->fn_slots_cap, l->fn_slots_cap ? l->fn_slots_cap * 2 : 64,
                        l->nfns, ml_lines_fn_hash_at, l) < 0)
        return -2;
    uint64_t h = ml_lines_fn_hash(ci);
    size_t j = (size_t)(h >> 17) & (l->fn_slots_cap - 1);
    for (; l->fn_slots[j]; j = (j + 1) & (l->fn_slots_cap - 1)) {
        ml_lines_fn *f = &l->fns[l->fn_slots[j] - 1];
        if (f->hash == h && f->pub.firstlineno == ci->firstlineno &&
            strcmp(f->file, ci->file) == 0 && strcmp(f->name, ci->name) == 0)
            break;
    }
    size_t k;
    if (l->fn_slots[j]) {
        k = l->fn_slots[j] - 1;
    } else {
        k = l->nfns;
        if (k >= UINT32_MAX - 1 ||
            ml_lines_grow((void **)&l->fns, &l->fns_cap, k + 1, sizeof(ml_lines_fn)) < 0 ||
            ml_lines_grow((void **)&l->fn_mark, &l->fn_mark_cap, k + 1, sizeof(uint32_t)) < 0)
            return -2;
        ml_lines_fn *f = &l->fns[k];
        f->file = ml_lines_strdup(ci->file);
        f->name = ml_lines_strdup(ci->name);
        if (!f->file || !f->name) {
            free(f->file);
            free(f->name);
            memset(f, 0, sizeof(*f));
            return -2;
        }
        f->hash = h;
        f->pub.file = f->file;
        f->pub.name = f->name;
        f->pub.firstlineno = ci->firstlineno;
        l->fn_slots[j] = (uint32_t)k + 1;
        l->nfns++;
    }
    if (ml_lines_add_code_lines(&l->fns[k], ci) < 0)
        return -2;
    l->code_fn[code] = (int32_t)k + 1;
    return (int32_t)k;
}

/* The index of the row (func, line), made empty if new; lines below 1 share
 * row 0. Returns the index, or -1 when out of memory. */
static int64_t
ml_lines_row_index(ml_lines *l, uint32_t func, int32_t line)
{
    if (line < 0)
        line = 0;
    if ((l->nrows + 1) * 2 > l->row_slots_cap &&
        ml_lines_rehash(&l->row_slots, &l->row_slots_cap,
                        l->row_slots_cap ? l->row_slots_cap * 2 : 1024, l->nrows,
                        ml_lines_row_hash_at, l) < 0)
        return -1;
    size_t j = (size_t)(ml_lines_row_hash(func, line) >> 17) & (l->row_slots_cap - 1);
    for (; l->row_slots[j]; j = (j + 1) & (l->row_slots_cap - 1)) {
        const ml_lines_slot_row *w = &l->rows[l->row_slots[j] - 1];
        if (w->func == func && w->row.line == line)
            return (int64_t)l->row_slots[j] - 1;
    }
    if (l->nrows >= UINT32_MAX - 1 ||
        ml_lines_grow((void **)&l->rows, &l->rows_cap, l->nrows + 1, sizeof(*l->rows)) < 0)
        return -1;
    l->rows[l->nrows].func = func;
    l->rows[l->nrows].row.line = line;
    l->row_slots[j] = (uint32_t)l->nrows + 1;
    return (int64_t)l->nrows++;
}

/* Append a charge to the pool. Returns 0 or -1. */
static int
ml_lines_push_charge(ml_lines *l, uint32_t func, uint32_t row)
{
    if (ml_lines_grow((void **)&l->pool, &l->pool_cap, l->pool_len + 1,
                      sizeof(ml_lines_charge)) < 0)
        return -1;
    l->pool[l->pool_len].func = func;
    l->pool[l->pool_len].row = row;
    l->pool_len++;
    return 0;
}

/* Compute the charges of `stack` (its entry in l->stacks exists): walk from
 * it towards the root, charging each selected function at its first (the
 * innermost) frame, until the root or an ancestor whose charges are known,
 * whose charges for the functions not yet met are then copied. A function is
 * "met" when its fn_mark holds this walk's generation, so the work is linear
 * in the frames walked plus the ancestor's charges. Returns 0 or -1. */
static int
ml_lines_stack_walk(ml_lines *l, const ml_reader *r, ml_frame_id stack)
{
    size_t off = l->pool_len;
    if (++l->walk == 0) { /* wrapped: forget every mark */
        memset(l->fn_mark, 0, l->fn_mark_cap * sizeof(uint32_t));
        l->walk = 1;
    }
    for (ml_frame_id f = stack; f;) {
        if (f != stack && l->stacks[f].done) {
            ml_lines_stack known = l->stacks[f];
            for (uint32_t i = 0; i < known.n; i++) {
                ml_lines_charge c = l->pool[known.off + i];
                if (l->fn_mark[c.func] == l->walk)
                    continue;
                l->fn_mark[c.func] = l->walk;
                if (ml_lines_push_charge(l, c.func, c.row) < 0)
                    goto nomem;
            }
            break;
        }
        const ml_frame_info *fi = ml_reader_frame(r, f);
        if (!fi)
            break;
        int32_t k = ml_lines_code_fn(l, r, fi->code);
        if (k == -2)
            goto nomem;
        if (k >= 0 && l->fn_mark[k] != l->walk) {
            l->fn_mark[k] = l->walk;
            int64_t row = ml_lines_row_index(l, (uint32_t)k, ml_reader_frame_line(r, f));
            if (row < 0 || ml_lines_push_charge(l, (uint32_t)k, (uint32_t)row) < 0)
                goto nomem;
        }
        f = fi->parent;
    }
    if (l->pool_len - off > UINT32_MAX || off > UINT32_MAX)
        goto nomem;
    ml_lines_stack *s = &l->stacks[stack];
    s->off = (uint32_t)off;
    s->n = (uint32_t)(l->pool_len - off);
    s->done = 1;
    return 0;
nomem:
    l->pool_len = off;
    return -1;
}

/* The charges of a stack, computed once: innermost frame of each selected
 * function. Its parent's are computed first, so that stacks that differ only
 * in their innermost frame (the common case, and a deep recursion's) walk the
 * shared chain once. A known stack's codes have all been looked at, so the
 * functions appear in the same order as with a walk of every frame.
 * Returns the entry, or NULL when out of memory. */
static const ml_lines_stack *
ml_lines_stack_charges(ml_lines *l, const ml_reader *r, ml_frame_id stack)
{
    if (ml_lines_grow((void **)&l->stacks, &l->stacks_cap, (size_t)stack + 1,
                      sizeof(ml_lines_stack)) < 0)
        return NULL;
    if (l->stacks[stack].done)
        return &l->stacks[stack];
    const ml_frame_info *fi = ml_reader_frame(r, stack);
    /* functions are listed in order of first appearance, innermost frame
     * first, as a plain walk would meet them: look at this frame's code
     * before the parent's chain */
    if (fi && ml_lines_code_fn(l, r, fi->code) == -2)
        return NULL;
    if (fi && fi->parent && !l->stacks[fi->parent].done &&
        ml_lines_stack_walk(l, r, fi->parent) < 0)
        return NULL;
    if (ml_lines_stack_walk(l, r, stack) < 0)
        return NULL;
    return &l->stacks[stack];
}

/* Add one event of `bytes` (negative for a free) to its stack's sums.
 * Returns 0 or -1 when out of memory. */
static int
ml_lines_charge_event(ml_lines *l, const ml_reader *r, ml_frame_id stack, int64_t bytes,
                      int64_t heap_after, uint64_t time_us)
{
    l->events++;
    if (!stack) {
        l->unattributed++;
        return 0;
    }
    const ml_lines_stack *s = ml_lines_stack_charges(l, r, stack);
    if (!s)
        return -1;
    if (s->n == 0) {
        l->unattributed++;
        return 0;
    }
    if (!s->sum) {
        if (l->nsums >= UINT32_MAX - 1 ||
            ml_lines_grow((void **)&l->sums, &l->sums_cap, l->nsums + 1, sizeof(ml_lines_sum)) < 0)
            return -1;
        l->stacks[stack].sum = (uint32_t)++l->nsums;
    }
    ml_lines_sum *m = &l->sums[s->sum - 1];
    m->increment += bytes;
    if (bytes >= 0) {
        m->allocated += (uint64_t)bytes;
        m->allocations++;
    } else {
        m->freed += (uint64_t)-bytes;
        m->frees++;
    }
    m->last = l->events;
    m->heap = heap_after;
    m->last_time_us = time_us;
    return 0;
}

/* Charge every stack's sums to its rows and functions; a row's heap and
 * time are those of the latest event among its stacks. */
static void
ml_lines_charge_sums(ml_lines *l)
{
    for (size_t st = 0; st < l->stacks_cap; st++) {
        const ml_lines_stack *s = &l->stacks[st];
        if (!s->sum)
            continue;
        const ml_lines_sum *m = &l->sums[s->sum - 1];
        for (uint32_t i = 0; i < s->n; i++) {
            ml_lines_charge c = l->pool[s->off + i];
            ml_lines_fn *f = &l->fns[c.func];
            ml_lines_slot_row *w = &l->rows[c.row];
            w->row.increment += m->increment;
            w->row.allocated += m->allocated;
            w->row.allocations += m->allocations;
            w->row.freed += m->freed;
            w->row.frees += m->frees;
            if (m->last > w->last) {
                w->last = m->last;
                w->row.heap = m->heap;
                w->row.last_time_us = m->last_time_us;
            }
            f->pub.net += m->increment;
            f->pub.allocated += m->allocated;
            f->pub.allocations += m->allocations;
        }
    }
}

static int
ml_lines_slot_row_cmp(const void *a, const void *b)
{
    const ml_lines_slot_row *x = a, *y = b;
    if (x->func != y->func)
        return x->func < y->func ? -1 : 1;
    return (x->row.line > y->row.line) - (x->row.line < y->row.line);
}

/* Keep the rows that saw an event, per function in line order, and check
 * the sums. The rows' hash map is not used after this. */
static int
ml_lines_finish(ml_lines *l)
{
    ml_lines_charge_sums(l);
    if (l->nrows)
        qsort(l->rows, l->nrows, sizeof(*l->rows), ml_lines_slot_row_cmp);
    size_t i = 0;
    for (size_t k = 0; k < l->nfns; k++) {
        ml_lines_fn *f = &l->fns[k];
        size_t start = i, n = 0;
        for (; i < l->nrows && l->rows[i].func == k; i++)
            n += l->rows[i].row.allocations + l->rows[i].row.frees > 0;
        free(f->rows);
        f->rows = malloc((n ? n : 1) * sizeof(ml_lines_row));
        if (!f->rows)
            return -1;
        n = 0;
        int64_t sum = 0;
        for (size_t j = start; j < i; j++) {
            const ml_lines_row *w = &l->rows[j].row;
            if (w->allocations + w->frees == 0)
                continue;
            f->rows[n++] = *w;
            sum += w->increment;
        }
        f->pub.rows = f->rows;
        f->pub.nrows = n;
        if (f->ncode_lines) {
            qsort(f->code_lines, f->ncode_lines, sizeof(int32_t), ml_lines_int32_cmp);
            size_t u = 1;
            for (size_t j = 1; j < f->ncode_lines; j++)
                if (f->code_lines[j] != f->code_lines[u - 1])
                    f->code_lines[u++] = f->code_lines[j];
            f->ncode_lines = u;
        }
        f->pub.code_lines = f->code_lines;
        f->pub.ncode_lines = f->ncode_lines;
        f->pub.rows_sum = sum;
        f->pub.adds_up = sum == f->pub.net;
    }
    free(l->row_slots);
    l->row_slots = NULL;
    l->row_slots_cap = 0;
    return 0;
}

int
ml_lines_run(ml_lines *l, ml_reader *r, const ml_progress *pg, char *err, size_t errcap)
{
    ml_event ev;
    int64_t heap = 0;
    uint64_t nread = 0;
    int rc;
    ml_reader_rewind(r);
    while ((rc = ml_reader_next(r, &ev)) == 1) {
        if (ml_progress_tick(pg, 1, r, ++nread, err, errcap) < 0)
            return -1;
        int64_t bytes;
        ml_frame_id stack;
        if (ev.kind == ML_EV_ALLOC) {
            bytes = (int64_t)ev.size;
            stack = ev.stack;
        } else if (ev.kind == ML_EV_FREE) {
            bytes = -(int64_t)ev.size;
            stack = ev.at_stack;
        } else {
            continue;
        }
        heap += bytes;
        if (ml_lines_charge_event(l, r, stack, bytes, heap, ev.time_us) < 0) {
            snprintf(err, errcap, "out of memory while attributing lines");
            return -1;
        }
    }
    if (rc < 0) {
        snprintf(err, errcap, "%s", ml_reader_error(r));
        return -1;
    }
    if (ml_lines_finish(l) < 0) {
        snprintf(err, errcap, "out of memory while attributing lines");
        return -1;
    }
    return 0;
}

size_t
ml_lines_nfuncs(const ml_lines *l)
{
    return l->nfns;
}

const ml_lines_func *
ml_lines_func_at(const ml_lines *l, size_t i)
{
    return i < l->nfns ? &l->fns[i].pub : NULL;
}

uint64_t
ml_lines_events(const ml_lines *l)
{
    return l->events;
}

uint64_t
ml_lines_unattributed(const ml_lines *l)
{
    return l->unattributed;
}
