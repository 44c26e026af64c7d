/* lines.c: per-line attribution of a capture (see lines.h for the rule).
 *
 * One pass over the events. The work per event is small because the list of
 * (function, line) pairs a stack is charged to is computed once per stack id
 * and kept: a frame id names a whole stack, so the cache is an array indexed
 * by frame id. Codes are matched against the selection once per code id.
 */
#include "analysis/lines.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t func;
    int32_t line;
} ml_lines_charge;

typedef struct {
    ml_lines_func pub;
    char *file, *name;
    ml_lines_row *dense;   /* indexed by line number */
    size_t dense_cap;
    ml_lines_row *rows;    /* compacted at the end of the run */
    int32_t *code_lines;   /* sorted and made unique at the end of the run */
    size_t ncode_lines, code_lines_cap;
} ml_lines_fn;

typedef struct {
    uint32_t off, n;       /* charges in l->pool[off .. off + n) */
    int done;
} ml_lines_stack;

struct ml_lines {
    char **names;
    size_t nnames;
    char **files;
    size_t nfiles;
    char **file_real;      /* realpath() of each selected file, or NULL */

    ml_lines_fn *fns;
    size_t nfns, fns_cap;

    int32_t *code_fn;      /* per code id: 0 not yet looked at, -1 not selected, k + 1 */
    size_t code_cap;

    ml_lines_stack *stacks;
    size_t stacks_cap;
    ml_lines_charge *pool;
    size_t pool_len, pool_cap;

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
        free(l->fns[i].dense);
        free(l->fns[i].rows);
        free(l->fns[i].code_lines);
    }
    free(l->fns);
    free(l->code_fn);
    free(l->stacks);
    free(l->pool);
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
    size_t k;
    for (k = 0; k < l->nfns; k++) {
        ml_lines_fn *f = &l->fns[k];
        if (f->pub.firstlineno == ci->firstlineno && strcmp(f->file, ci->file) == 0 &&
            strcmp(f->name, ci->name) == 0)
            break;
    }
    if (k == l->nfns) {
        if (ml_lines_grow((void **)&l->fns, &l->fns_cap, l->nfns + 1, sizeof(ml_lines_fn)) < 0)
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
        f->pub.file = f->file;
        f->pub.name = f->name;
        f->pub.firstlineno = ci->firstlineno;
        l->nfns++;
    }
    if (ml_lines_add_code_lines(&l->fns[k], ci) < 0)
        return -2;
    l->code_fn[code] = (int32_t)k + 1;
    return (int32_t)k;
}

/* The charges of a stack, computed once: innermost frame of each selected
 * function. Returns the entry, or NULL when out of memory. */
static const ml_lines_stack *
ml_lines_stack_charges(ml_lines *l, const ml_reader *r, ml_frame_id stack)
{
    if (ml_lines_grow((void **)&l->stacks, &l->stacks_cap, (size_t)stack + 1,
                      sizeof(ml_lines_stack)) < 0)
        return NULL;
    ml_lines_stack *s = &l->stacks[stack];
    if (s->done)
        return s;
    size_t off = l->pool_len;
    for (ml_frame_id f = stack; f;) {
        const ml_frame_info *fi = ml_reader_frame(r, f);
        if (!fi)
            break;
        int32_t k = ml_lines_code_fn(l, r, fi->code);
        if (k == -2)
            goto nomem;
        if (k >= 0) {
            int seen = 0;
            for (size_t i = off; i < l->pool_len && !seen; i++)
                seen = l->pool[i].func == (uint32_t)k;
            if (!seen) {
                if (ml_lines_grow((void **)&l->pool, &l->pool_cap, l->pool_len + 1,
                                  sizeof(ml_lines_charge)) < 0)
                    goto nomem;
                l->pool[l->pool_len].func = (uint32_t)k;
                l->pool[l->pool_len].line = ml_reader_frame_line(r, f);
                l->pool_len++;
            }
        }
        f = fi->parent;
    }
    /* re-fetch: ml_lines_code_fn may not move stacks, but be explicit */
    s = &l->stacks[stack];
    s->off = (uint32_t)off;
    s->n = (uint32_t)(l->pool_len - off);
    s->done = 1;
    return s;
nomem:
    l->pool_len = off;
    return NULL;
}

static ml_lines_row *
ml_lines_row_of(ml_lines_fn *f, int32_t line)
{
    size_t idx = line > 0 ? (size_t)line : 0;
    if (ml_lines_grow((void **)&f->dense, &f->dense_cap, idx + 1, sizeof(ml_lines_row)) < 0)
        return NULL;
    ml_lines_row *row = &f->dense[idx];
    row->line = (int32_t)idx;
    return row;
}

/* Charge one event of `bytes` (negative for a free) to every function of the
 * stack. Returns 0 or -1 when out of memory. */
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
    for (uint32_t i = 0; i < s->n; i++) {
        ml_lines_charge c = l->pool[s->off + i];
        ml_lines_fn *f = &l->fns[c.func];
        ml_lines_row *row = ml_lines_row_of(f, c.line);
        if (!row)
            return -1;
        row->increment += bytes;
        f->pub.net += bytes;
        if (bytes >= 0) {
            row->allocated += (uint64_t)bytes;
            row->allocations++;
            f->pub.allocated += (uint64_t)bytes;
            f->pub.allocations++;
        } else {
            row->freed += (uint64_t)-bytes;
            row->frees++;
        }
        row->heap = heap_after;
        row->last_time_us = time_us;
    }
    return 0;
}

/* Keep the rows that saw an event, in line order, and check the sums. */
static int
ml_lines_finish(ml_lines *l)
{
    for (size_t k = 0; k < l->nfns; k++) {
        ml_lines_fn *f = &l->fns[k];
        size_t n = 0;
        for (size_t i = 0; i < f->dense_cap; i++)
            n += f->dense[i].allocations + f->dense[i].frees > 0;
        free(f->rows);
        f->rows = malloc((n ? n : 1) * sizeof(ml_lines_row));
        if (!f->rows)
            return -1;
        n = 0;
        int64_t sum = 0;
        for (size_t i = 0; i < f->dense_cap; i++) {
            if (f->dense[i].allocations + f->dense[i].frees == 0)
                continue;
            f->rows[n++] = f->dense[i];
            sum += f->dense[i].increment;
        }
        f->pub.rows = f->rows;
        f->pub.nrows = n;
        if (f->ncode_lines) {
            qsort(f->code_lines, f->ncode_lines, sizeof(int32_t), ml_lines_int32_cmp);
            size_t u = 1;
            for (size_t i = 1; i < f->ncode_lines; i++)
                if (f->code_lines[i] != f->code_lines[u - 1])
                    f->code_lines[u++] = f->code_lines[i];
            f->ncode_lines = u;
        }
        f->pub.code_lines = f->code_lines;
        f->pub.ncode_lines = f->ncode_lines;
        f->pub.rows_sum = sum;
        f->pub.adds_up = sum == f->pub.net;
    }
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
