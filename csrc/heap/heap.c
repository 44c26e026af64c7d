/* heap.c: the heap census (see heap.h). */
#include "heap/heap.h"
#include "heap/walk.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t row; /* typetab row of the owner's class (or of dict) */
    uint8_t what;
    uint64_t count, bytes;
} ml_heap_dictrow;

/* What objects of a type can own a dict, decided once per type (a
 * module check per object would walk the type's MRO). */
typedef enum {
    ML_HEAP_OWNER_INSTANCE = 0, /* its instance __dict__, if any */
    ML_HEAP_OWNER_MODULE,
    ML_HEAP_OWNER_TYPE,
    ML_HEAP_OWNER_NONE, /* exact dicts: owned, never owners */
} ml_heap_owner;

struct ml_heap {
    ml_typetab types;
    uint8_t *owner; /* ml_heap_owner of each typetab row */
    size_t capowner;
    ml_addrset owners; /* dict address -> (typetab row << 3) | what */
    uint64_t ndicts, dict_bytes; /* exact dicts counted, before owners */
    ml_dictstat dstat;
    int want_ids;
    uintptr_t *ids;
    size_t nids, capids;
    ml_heap_row *rows;
    size_t nrows;
    ml_heap_stats stats;
};

static int
ml_heap_grow(void **arr, size_t *cap, size_t elem, size_t first)
{
    size_t ncap = *cap ? *cap * 2 : first;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int
ml_heap_own(ml_heap *h, PyObject *d, uint32_t row, ml_heap_what what)
{
    if (!d || !PyDict_CheckExact(d))
        return 0;
    return ml_addrset_put(&h->owners, (uintptr_t)d, (row << 3) | (uint32_t)what);
}

static ml_heap_owner
ml_heap_owner_of(PyTypeObject *tp)
{
    if (tp == &PyDict_Type)
        return ML_HEAP_OWNER_NONE;
    if (PyType_IsSubtype(tp, &PyModule_Type))
        return ML_HEAP_OWNER_MODULE;
    if (PyType_FastSubclass(tp, Py_TPFLAGS_TYPE_SUBCLASS))
        return ML_HEAP_OWNER_TYPE;
    return ML_HEAP_OWNER_INSTANCE;
}

/* ml_walk_fn: count one object. */
static int
ml_heap_count(ml_walk *w, PyObject *o, void *arg)
{
    ml_heap *h = arg;
    PyTypeObject *tp = Py_TYPE(o);
    int fresh;
    int64_t r = ml_typetab_row(&h->types, tp, &fresh);
    if (r < 0)
        return -1;
    uint32_t row = (uint32_t)r;
    if (fresh) {
        /* Static types are no one's referent in tp_traverse: reach them here. */
        if (ml_walk_reach(w, (PyObject *)tp) < 0)
            return -1;
        while (row >= h->capowner) {
            if (ml_heap_grow((void **)&h->owner, &h->capowner, sizeof(*h->owner), 256) < 0)
                return -1;
        }
        h->owner[row] = (uint8_t)ml_heap_owner_of(tp);
    }
    size_t size;
    if (ml_typetab_size(&h->types, row, o, &size) < 0)
        return -1;
    if (h->want_ids) {
        if (h->nids == h->capids &&
            ml_heap_grow((void **)&h->ids, &h->capids, sizeof(*h->ids), 1 << 16) < 0)
            return -1;
        h->ids[h->nids++] = (uintptr_t)o;
    }
    ml_heap_owner owner = (ml_heap_owner)h->owner[row];
    if (owner == ML_HEAP_OWNER_NONE) {
        /* Counted as "no owner" until every owner is known; then the owned
         * ones move (ml_heap_resolve_dicts), which asks the walk whether a
         * dict was counted: it remembers untracked objects, tracked dicts
         * are marked here. */
        if (ml_compat_gc_tracked(o) && ml_walk_mark(w, o) < 0)
            return -1;
        h->ndicts++;
        h->dict_bytes += size;
        return ml_dictstat_add(&h->dstat, w->dict_kind, size);
    }
    int rc = 0;
    if (owner == ML_HEAP_OWNER_MODULE) {
        rc = ml_heap_own(h, PyModule_GetDict(o), row, ML_HEAP_DICT_OF_MODULE);
    } else if (owner == ML_HEAP_OWNER_TYPE) {
        rc = ml_heap_own(h, ml_compat_type_dict((PyTypeObject *)o), row, ML_HEAP_DICT_OF_TYPE);
    } else {
        size_t values = 0;
        PyObject *d = ml_compat_instance_dict(o, &values);
        size += values;
        rc = ml_heap_own(h, d, row, ML_HEAP_DICT_OF_CLASS);
        /* 3.13 traverses the inline values, not a dict made from them */
        if (rc == 0 && d)
            rc = ml_walk_reach(w, d);
    }
    h->types.rows[row].count++;
    h->types.rows[row].bytes += size;
    return rc;
}

/* Move every counted dict that has an owner from the "no owner" row to
 * its owner's. Pure C, before any deferred __sizeof__ and before the walk
 * is released: the dict pointers in `owners` are borrowed, and the walk
 * knows which dicts were counted. Sizes are computed again, exactly as
 * when the dict was counted (nothing has changed since). */
static int
ml_heap_resolve_dicts(ml_heap *h, const ml_walk *w, ml_heap_dictrow **out, size_t *nout)
{
    ml_addrset index;
    ml_heap_dictrow *rows = NULL;
    size_t n = 0, cap = 0;
    int fresh;
    int64_t dict_row = ml_typetab_row(&h->types, &PyDict_Type, &fresh);
    if (dict_row < 0 || ml_addrset_init(&index, 64, 1) < 0)
        return -1;
    if (ml_heap_grow((void **)&rows, &cap, sizeof(*rows), 64) < 0)
        goto fail;
    rows[n++] = (ml_heap_dictrow){(uint32_t)dict_row, ML_HEAP_DICT_NO_OWNER, h->ndicts, h->dict_bytes};
    size_t pos = 0;
    uintptr_t d;
    uint32_t val;
    while (ml_addrset_next(&h->owners, &pos, &d, &val)) {
        if (!ml_walk_seen(w, (PyObject *)d))
            continue; /* never counted (the GC was collecting) */
        size_t size;
        if (ml_typetab_size(&h->types, (uint32_t)dict_row, (PyObject *)d, &size) < 0)
            goto fail;
        uint8_t what = (uint8_t)(val & 7);
        uint32_t row = what == ML_HEAP_DICT_OF_CLASS ? val >> 3 : (uint32_t)dict_row;
        uintptr_t key = ((uintptr_t)row << 3) | what;
        uint32_t at;
        if (!ml_addrset_get(&index, key, &at)) {
            if (n == cap && ml_heap_grow((void **)&rows, &cap, sizeof(*rows), 64) < 0)
                goto fail;
            at = (uint32_t)n;
            if (ml_addrset_add(&index, key, at) < 0)
                goto fail;
            rows[n++] = (ml_heap_dictrow){row, what, 0, 0};
        }
        rows[at].count++;
        rows[at].bytes += size;
        rows[0].count--;
        rows[0].bytes -= size;
    }
    ml_addrset_release(&index);
    *out = rows;
    *nout = n;
    return 0;
fail:
    ml_addrset_release(&index);
    free(rows);
    return -1;
}

static int
ml_heap_build_rows(ml_heap *h, const ml_heap_dictrow *drows, size_t nd)
{
    size_t max = h->types.nrows + nd;
    h->rows = malloc((max ? max : 1) * sizeof(*h->rows));
    if (!h->rows)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < h->types.nrows; i++) {
        ml_typestat *t = &h->types.rows[i];
        if (!t->count)
            continue;
        h->rows[n++] = (ml_heap_row){t->tp, ML_HEAP_OBJECTS, t->count, t->bytes};
    }
    for (size_t i = 0; i < nd; i++) {
        if (drows[i].count)
            h->rows[n++] = (ml_heap_row){h->types.rows[drows[i].row].tp, drows[i].what, drows[i].count,
                                         drows[i].bytes};
    }
    h->nrows = n;
    for (size_t i = 0; i < n; i++) {
        h->stats.count += h->rows[i].count;
        h->stats.bytes += h->rows[i].bytes;
    }
    return 0;
}

void
ml_heap_free(ml_heap *h)
{
    if (!h)
        return;
    ml_typetab_release(&h->types);
    free(h->owner);
    ml_addrset_release(&h->owners);
    ml_dictstat_release(&h->dstat);
    free(h->ids);
    free(h->rows);
    free(h);
}

ml_heap *
ml_heap_take(int want_ids)
{
    ml_heap *h = calloc(1, sizeof(*h));
    ml_walk w;
    ml_heap_dictrow *drows = NULL;
    size_t nd = 0;
    if (!h)
        return NULL;
    h->want_ids = want_ids;
    if (ml_typetab_init(&h->types) < 0 || ml_addrset_init(&h->owners, 4096, 1) < 0 ||
        ml_dictstat_init(&h->dstat) < 0)
        goto fail;
    h->stats.gc_collecting = ml_compat_gc_collecting(PyThreadState_Get());
    int rc = ml_walk_heap(ml_heap_count, h, &w);
    h->stats.max_stack = w.max_stack;
    if (rc == 0)
        rc = ml_heap_resolve_dicts(h, &w, &drows, &nd);
    ml_walk_release(&w);
    if (rc < 0)
        goto fail;
    ml_addrset_release(&h->owners);
    /* Python code may run from here on. */
    ml_typetab_run_deferred(&h->types);
    h->stats.sizeof_calls = h->types.sizeof_calls;
    h->stats.sizeof_errors = h->types.sizeof_errors;
    h->stats.sizeof_clamped = h->types.sizeof_clamped;
    if (ml_heap_build_rows(h, drows, nd) < 0)
        goto fail;
    free(drows);
    /* ids stay in walk order: sorting them is left to new_objects, which
     * most snapshots never call */
    return h;
fail:
    free(drows);
    ml_heap_free(h);
    return NULL;
}

const ml_heap_row *
ml_heap_rows(const ml_heap *h, size_t *n)
{
    *n = h->nrows;
    return h->rows;
}

const ml_dictstat *
ml_heap_dicts(const ml_heap *h)
{
    return &h->dstat;
}

uintptr_t *
ml_heap_detach_ids(ml_heap *h, size_t *n)
{
    uintptr_t *ids = h->want_ids ? h->ids : NULL;
    *n = ids ? h->nids : 0;
    if (ids && h->capids > h->nids + 4096) {
        /* give back the unused tail; a failed shrink keeps the array */
        uintptr_t *p = realloc(ids, (h->nids ? h->nids : 1) * sizeof(*ids));
        if (p)
            ids = p;
    }
    h->ids = NULL;
    h->nids = h->capids = 0;
    h->want_ids = 0;
    return ids;
}

void
ml_heap_get_stats(const ml_heap *h, ml_heap_stats *out)
{
    *out = h->stats;
}

int
ml_heap_sort_ids(uintptr_t *ids, size_t n)
{
    /* LSD radix sort, 16 bits a pass, only as many passes as the highest
     * address needs (3 for 48-bit user-space addresses). */
    if (n < 2)
        return 0;
    uintptr_t max = 0;
    for (size_t i = 0; i < n; i++)
        max |= ids[i];
    uintptr_t *tmp = malloc(n * sizeof(*tmp));
    size_t *counts = malloc(65536 * sizeof(*counts));
    if (!tmp || !counts) {
        free(tmp);
        free(counts);
        return -1;
    }
    uintptr_t *src = ids, *dst = tmp;
    for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 16) {
        memset(counts, 0, 65536 * sizeof(*counts));
        for (size_t i = 0; i < n; i++)
            counts[(src[i] >> shift) & 0xFFFF]++;
        size_t sum = 0;
        for (size_t b = 0; b < 65536; b++) {
            size_t c = counts[b];
            counts[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[counts[(src[i] >> shift) & 0xFFFF]++] = src[i];
        uintptr_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != ids)
        memcpy(ids, src, n * sizeof(*ids));
    free(tmp);
    free(counts);
    return 0;
}

static int
ml_heap_has(const uintptr_t *ids, size_t n, uintptr_t a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == a;
}

typedef struct {
    const uintptr_t *now, *before;
    size_t nnow, nbefore;
    PyTypeObject *tp;
    PyObject **out;
    size_t n, cap;
} ml_heap_newobj;

static int
ml_heap_collect_new(ml_walk *w, PyObject *o, void *arg)
{
    ml_heap_newobj *c = arg;
    (void)w;
    if (c->tp && Py_TYPE(o) != c->tp)
        return 0;
    if (!ml_heap_has(c->now, c->nnow, (uintptr_t)o) || ml_heap_has(c->before, c->nbefore, (uintptr_t)o))
        return 0;
    if (c->n == c->cap && ml_heap_grow((void **)&c->out, &c->cap, sizeof(*c->out), 256) < 0)
        return -1;
    Py_INCREF(o);
    c->out[c->n++] = o;
    return 0;
}

/* A sorted copy of ids (malloc), or NULL when out of memory. */
static uintptr_t *
ml_heap_sorted_copy(const uintptr_t *ids, size_t n)
{
    uintptr_t *copy = malloc((n ? n : 1) * sizeof(*copy));
    if (!copy)
        return NULL;
    memcpy(copy, ids, n * sizeof(*copy));
    if (ml_heap_sort_ids(copy, n) < 0) {
        free(copy);
        return NULL;
    }
    return copy;
}

int
ml_heap_new_objects(const uintptr_t *now, size_t nnow, const uintptr_t *before, size_t nbefore,
                    PyTypeObject *tp, PyObject ***out, size_t *nout)
{
    uintptr_t *snow = ml_heap_sorted_copy(now, nnow);
    uintptr_t *sbefore = snow ? ml_heap_sorted_copy(before, nbefore) : NULL;
    if (!sbefore) {
        free(snow);
        return -1;
    }
    ml_heap_newobj c = {snow, sbefore, nnow, nbefore, tp, NULL, 0, 0};
    ml_walk w;
    int rc = ml_walk_heap(ml_heap_collect_new, &c, &w);
    ml_walk_release(&w);
    free(snow);
    free(sbefore);
    if (rc < 0) {
        for (size_t i = 0; i < c.n; i++)
            Py_DECREF(c.out[i]);
        free(c.out);
        return -1;
    }
    *out = c.out;
    *nout = c.n;
    return 0;
}
