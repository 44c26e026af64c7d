/* cycles.c: the unreachable set on a side table (see cycles.h). */
#include "heap/cycles.h"

#include <stdlib.h>
#include <string.h>

#include "heap/objsize.h"

#define ML_CYC_NONE UINT32_MAX
#define ML_CYC_EXAMPLE_TRIES 16 /* members tried as the start of an example cycle */

/* The side table: tracked objects, their refcounts less the references
 * from the others, and an address -> index hash. */
typedef struct {
    PyObject **objs;
    int64_t *refs;
    uint32_t n, cap;
    uint32_t *slots;        /* index + 1, 0 = empty */
    size_t mask;
    int bits;
} ml_cyc_table;

static int
ml_cyc_add(PyObject *o, void *arg)
{
    ml_cyc_table *t = arg;
    if (t->n == t->cap) {
        if (t->cap >= UINT32_MAX / 2)
            return -1;
        uint32_t ncap = t->cap ? t->cap * 2 : 4096;
        PyObject **n = realloc(t->objs, (size_t)ncap * sizeof(*n));
        if (!n)
            return -1;
        t->objs = n;
        t->cap = ncap;
    }
    t->objs[t->n++] = o;
    return 0;
}

static inline size_t
ml_cyc_hash(const ml_cyc_table *t, const void *p)
{
    return (size_t)(((uintptr_t)p * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - t->bits));
}

static inline uint32_t
ml_cyc_find(const ml_cyc_table *t, const void *p)
{
    for (size_t k = ml_cyc_hash(t, p);; k = (k + 1) & t->mask) {
        uint32_t s = t->slots[k];
        if (!s)
            return ML_CYC_NONE;
        if (t->objs[s - 1] == p)
            return s - 1;
    }
}

static void
ml_cyc_table_release(ml_cyc_table *t)
{
    free(t->objs);
    free(t->refs);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* Fill the table from the collector's lists (all: every generation, else
 * the collectable ones). 0, -1 out of memory, -2 while collecting. */
static int
ml_cyc_table_build(ml_cyc_table *t, int all)
{
    memset(t, 0, sizeof(*t));
    if (ml_compat_gc_collecting(PyThreadState_Get()))
        return -2;
    int rc = all ? ml_compat_gc_foreach(ml_cyc_add, t) : ml_compat_gc_foreach_collectable(ml_cyc_add, t);
    if (rc)
        goto oom;
    t->bits = 4;
    while (((size_t)1 << t->bits) < (size_t)t->n * 2 + 16)
        t->bits++;
    t->mask = ((size_t)1 << t->bits) - 1;
    t->slots = calloc(t->mask + 1, sizeof(*t->slots));
    t->refs = malloc(((size_t)t->n + 1) * sizeof(*t->refs));
    if (!t->slots || !t->refs)
        goto oom;
    for (uint32_t i = 0; i < t->n; i++) {
        size_t k = ml_cyc_hash(t, t->objs[i]);
        while (t->slots[k])
            k = (k + 1) & t->mask;
        t->slots[k] = i + 1;
        t->refs[i] = (int64_t)Py_REFCNT(t->objs[i]);
    }
    return 0;
oom:
    ml_cyc_table_release(t);
    return -1;
}

/* ---- visitors (tp_traverse calls them; they never fail) ---- */

typedef struct {
    ml_cyc_table *t;
    uint32_t cur;
    uint8_t *flag;          /* reachable / in the forward set */
    uint32_t *stack;
    size_t nstack;
    uint32_t *uf;           /* union-find parents */
    /* edge list (ml_cycles_of) */
    uint32_t *efrom, *eto;
    size_t nedges, ecap;
    int oom;
} ml_cyc_ctx;

static int
ml_cyc_visit_decref(PyObject *o, void *arg)
{
    ml_cyc_ctx *c = arg;
    uint32_t j = o ? ml_cyc_find(c->t, o) : ML_CYC_NONE;
    if (j != ML_CYC_NONE)
        c->t->refs[j]--;
    return 0;
}

/* Mark and push a referent not yet flagged. */
static int
ml_cyc_visit_mark(PyObject *o, void *arg)
{
    ml_cyc_ctx *c = arg;
    uint32_t j = o ? ml_cyc_find(c->t, o) : ML_CYC_NONE;
    if (j != ML_CYC_NONE && !c->flag[j]) {
        c->flag[j] = 1;
        c->stack[c->nstack++] = j; /* each index is pushed once: n slots suffice */
    }
    return 0;
}

static int ml_cyc_skipped(PyObject *from, PyObject *to);

static int
ml_cyc_visit_mark_kept(PyObject *o, void *arg)
{
    ml_cyc_ctx *c = arg;
    return o && ml_cyc_skipped(c->t->objs[c->cur], o) ? 0 : ml_cyc_visit_mark(o, arg);
}

static uint32_t
ml_cyc_root(uint32_t *uf, uint32_t i)
{
    while (uf[i] != i) {
        uf[i] = uf[uf[i]];
        i = uf[i];
    }
    return i;
}

static int
ml_cyc_visit_union(PyObject *o, void *arg)
{
    ml_cyc_ctx *c = arg;
    uint32_t j = o ? ml_cyc_find(c->t, o) : ML_CYC_NONE;
    if (j != ML_CYC_NONE && !c->flag[j]) {
        uint32_t a = ml_cyc_root(c->uf, c->cur), b = ml_cyc_root(c->uf, j);
        if (a != b)
            c->uf[a < b ? b : a] = a < b ? a : b;
    }
    return 0;
}

/* ml_cycles_of leaves out references that make everything one cycle: to
 * type objects (every instance refers to its class, whose methods' globals
 * hold the module), to modules, and from a function to its globals and
 * builtins. */
static int
ml_cyc_skipped(PyObject *from, PyObject *to)
{
    if (PyType_Check(to) || PyModule_Check(to))
        return 1;
    return PyFunction_Check(from) && (to == ((PyFunctionObject *)from)->func_globals ||
                                      to == ((PyFunctionObject *)from)->func_builtins);
}

static int
ml_cyc_visit_edge(PyObject *o, void *arg)
{
    ml_cyc_ctx *c = arg;
    uint32_t j = o && !ml_cyc_skipped(c->t->objs[c->cur], o) ? ml_cyc_find(c->t, o) : ML_CYC_NONE;
    if (j == ML_CYC_NONE || c->oom)
        return 0;
    if (c->nedges == c->ecap) {
        size_t ncap = c->ecap ? c->ecap * 2 : 1024;
        uint32_t *a = realloc(c->efrom, ncap * sizeof(*a));
        if (a)
            c->efrom = a;
        uint32_t *b = a ? realloc(c->eto, ncap * sizeof(*b)) : NULL;
        if (!a || !b) {
            c->oom = 1;
            return 0;
        }
        c->eto = b;
        c->ecap = ncap;
    }
    c->efrom[c->nedges] = c->cur;
    c->eto[c->nedges++] = j;
    return 0;
}

static void
ml_cyc_traverse(PyObject *o, visitproc visit, ml_cyc_ctx *c)
{
    traverseproc tr = Py_TYPE(o)->tp_traverse;
    if (tr && !ml_compat_traverse_unsafe(o))
        tr(o, visit, c);
}

/* Flag (in c->flag) everything reachable from the flagged objects on c->stack. */
static void
ml_cyc_spread(ml_cyc_ctx *c)
{
    while (c->nstack) {
        uint32_t i = c->stack[--c->nstack];
        ml_cyc_traverse(c->t->objs[i], ml_cyc_visit_mark, c);
    }
}

static size_t
ml_cyc_size(PyObject *o)
{
    size_t size;
    ml_objsize_c(o, &size); /* never __sizeof__ here: no Python code runs on garbage */
    return size;
}

/* ---- the example cycle of an island: the shortest cycle through one of
 * its members, by breadth-first search over the island's references ---- */

typedef struct {
    ml_cyc_table *t;
    const uint32_t *island_of; /* island per object (ML_CYC_NONE: not garbage) */
    uint32_t island;
    uint32_t *prev;            /* BFS parent; ML_CYC_NONE = not seen */
    uint32_t *queue;
    size_t qhead, qtail;
    uint32_t start, closing;   /* closing: the member whose edge returns to start */
    uint32_t cur;
} ml_cyc_bfs;

static int
ml_cyc_visit_bfs(PyObject *o, void *arg)
{
    ml_cyc_bfs *b = arg;
    uint32_t j = o ? ml_cyc_find(b->t, o) : ML_CYC_NONE;
    if (j == ML_CYC_NONE || b->closing != ML_CYC_NONE || b->island_of[j] != b->island)
        return 0;
    if (j == b->start) {
        b->closing = b->cur;
        return 0;
    }
    if (b->prev[j] == ML_CYC_NONE) {
        b->prev[j] = b->cur;
        b->queue[b->qtail++] = j;
    }
    return 0;
}

/* The shortest cycle through `start` into *isl; 0 found, 1 none, -1 oom. */
static int
ml_cyc_cycle_from(ml_cyc_bfs *b, uint32_t start, ml_cycle_island *isl)
{
    b->start = start;
    b->closing = ML_CYC_NONE;
    b->qhead = b->qtail = 0;
    b->queue[b->qtail++] = start;
    b->prev[start] = start;
    while (b->qhead < b->qtail && b->closing == ML_CYC_NONE) {
        b->cur = b->queue[b->qhead++];
        traverseproc tr = Py_TYPE(b->t->objs[b->cur])->tp_traverse;
        if (tr && !ml_compat_traverse_unsafe(b->t->objs[b->cur]))
            tr(b->t->objs[b->cur], ml_cyc_visit_bfs, b);
    }
    int rc = 1;
    if (b->closing != ML_CYC_NONE) {
        size_t len = 1;
        for (uint32_t v = b->closing; v != start; v = b->prev[v])
            len++;
        isl->objs = malloc(len * sizeof(*isl->objs));
        isl->edge_from = malloc(len * sizeof(uint32_t));
        isl->edge_to = malloc(len * sizeof(uint32_t));
        if (!isl->objs || !isl->edge_from || !isl->edge_to) {
            free(isl->objs);
            free(isl->edge_from);
            free(isl->edge_to);
            memset(isl, 0, sizeof(*isl));
            rc = -1;
        } else {
            size_t k = len;
            for (uint32_t v = b->closing; v != start; v = b->prev[v])
                isl->objs[--k] = b->t->objs[v];
            isl->objs[0] = b->t->objs[start];
            isl->n = isl->nedges = len;
            for (size_t e = 0; e < len; e++) {
                isl->edge_from[e] = (uint32_t)e;
                isl->edge_to[e] = (uint32_t)((e + 1) % len);
            }
            rc = 0;
        }
    }
    for (size_t q = 0; q < b->qtail; q++) /* reset what this search touched */
        b->prev[b->queue[q]] = ML_CYC_NONE;
    return rc;
}

/* ---- grouping ---- */

static int
ml_cyc_ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (PyTypeObject *const *)a, y = (uintptr_t) * (PyTypeObject *const *)b;
    return x < y ? -1 : x > y;
}

static int
ml_cyc_type_cmp(const void *pa, const void *pb)
{
    const ml_cycle_type *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count < b->count ? 1 : -1;
    return ml_cyc_ptr_cmp(&a->type, &b->type);
}

static int
ml_cyc_group_cmp(const void *pa, const void *pb)
{
    const ml_cycle_group *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return a->objects < b->objects ? 1 : a->objects > b->objects ? -1 : 0;
}

typedef struct {
    ml_cycle_group g;
    PyTypeObject **key;     /* sorted distinct types */
    size_t nkey;
    uint64_t hash;
    uint32_t example_island;
} ml_cyc_gbuild;

/* Group the islands. members: unreachable indices ordered by island, with
 * start offsets `first` (nisl + 1 entries). mgroup, mtype (NULL, or one
 * entry per member position): each member's final group and the index of
 * its type in that group's sorted types. */
static int
ml_cyc_group(ml_cyc_table *t, const uint32_t *members, const uint32_t *first, uint32_t nisl,
             const uint32_t *island_of, ml_cycles *out, uint32_t *mgroup, uint32_t *mtype)
{
    uint32_t *kmap = NULL, *newpos = NULL, *order = NULL; /* cycline: members' group, type */
    size_t *koff = NULL;
    ml_cyc_gbuild *gb = NULL;
    size_t ng = 0, gcap = 0;
    PyTypeObject **tmp = NULL;
    size_t tcap = 0;
    int rc = -1;
    for (uint32_t is = 0; is < nisl; is++) {
        size_t m = first[is + 1] - first[is];
        if (m > tcap) {
            PyTypeObject **n = realloc(tmp, m * sizeof(*n));
            if (!n)
                goto done;
            tmp = n;
            tcap = m;
        }
        for (size_t k = 0; k < m; k++)
            tmp[k] = Py_TYPE(t->objs[members[first[is] + k]]);
        qsort(tmp, m, sizeof(*tmp), ml_cyc_ptr_cmp);
        size_t nk = 0;
        for (size_t k = 0; k < m; k++)
            if (!nk || tmp[nk - 1] != tmp[k])
                tmp[nk++] = tmp[k];
        uint64_t h = UINT64_C(0xCBF29CE484222325);
        for (size_t k = 0; k < nk; k++)
            h = (h ^ (uintptr_t)tmp[k]) * UINT64_C(0x100000001B3);
        size_t gi = 0;
        for (; gi < ng; gi++)
            if (gb[gi].hash == h && gb[gi].nkey == nk && !memcmp(gb[gi].key, tmp, nk * sizeof(*tmp)))
                break;
        if (gi == ng) {
            if (ng == gcap) {
                size_t ncap = gcap ? gcap * 2 : 16;
                ml_cyc_gbuild *n = realloc(gb, ncap * sizeof(*n));
                if (!n)
                    goto done;
                gb = n;
                gcap = ncap;
            }
            ml_cyc_gbuild *g = &gb[ng];
            memset(g, 0, sizeof(*g));
            g->key = malloc(nk * sizeof(*tmp));
            g->g.types = calloc(nk, sizeof(*g->g.types));
            if (!g->key || !g->g.types) {
                free(g->key);
                free(g->g.types);
                goto done;
            }
            memcpy(g->key, tmp, nk * sizeof(*tmp));
            for (size_t k = 0; k < nk; k++)
                g->g.types[k].type = tmp[k];
            g->nkey = g->g.ntypes = nk;
            g->hash = h;
            g->example_island = is;
            ng++;
        }
        ml_cyc_gbuild *g = &gb[gi];
        g->g.islands++;
        for (size_t k = 0; k < m; k++) {
            PyObject *o = t->objs[members[first[is] + k]];
            PyTypeObject *otp = Py_TYPE(o);
            PyTypeObject **pos = bsearch(&otp, g->key, g->nkey, sizeof(*g->key), ml_cyc_ptr_cmp);
            ml_cycle_type *ct = &g->g.types[pos - g->key];
            if (mgroup) {
                mgroup[first[is] + k] = (uint32_t)gi;
                mtype[first[is] + k] = (uint32_t)(pos - g->key);
            }
            size_t sz = ml_cyc_size(o);
            ct->count++;
            ct->bytes += sz;
            g->g.objects++;
            g->g.bytes += sz;
        }
    }
    /* the example cycles, then the groups in their final order */
    out->groups = calloc(ng ? ng : 1, sizeof(*out->groups));
    out->islands = calloc(ng ? ng : 1, sizeof(*out->islands));
    ml_cyc_bfs b = {.t = t, .island_of = island_of};
    b.prev = malloc(((size_t)t->n + 1) * sizeof(*b.prev));
    b.queue = malloc(((size_t)t->n + 1) * sizeof(*b.queue));
    if (!out->groups || !out->islands || !b.prev || !b.queue) {
        free(b.prev);
        free(b.queue);
        goto done;
    }
    memset(b.prev, 0xFF, ((size_t)t->n + 1) * sizeof(*b.prev));
    if (mgroup) {
        koff = malloc((ng + 1) * sizeof(*koff));
        size_t nk = 0;
        for (size_t gi = 0; koff && gi < ng; gi++) {
            koff[gi] = nk;
            nk += gb[gi].nkey;
        }
        kmap = malloc((nk + 1) * sizeof(*kmap));
        newpos = malloc((ng + 1) * sizeof(*newpos));
        order = malloc((ng + 1) * sizeof(*order));
        if (!koff || !kmap || !newpos || !order) {
            free(b.prev);
            free(b.queue);
            goto done;
        }
    }
    for (size_t gi = 0; gi < ng; gi++) {
        uint32_t is = gb[gi].example_island;
        b.island = is;
        size_t m = first[is + 1] - first[is];
        for (size_t k = 0; k < m && k < ML_CYC_EXAMPLE_TRIES; k++) {
            int r = ml_cyc_cycle_from(&b, members[first[is] + k], &out->islands[gi]);
            if (r <= 0)
                break;
        }
        gb[gi].g.example = gi;
        qsort(gb[gi].g.types, gb[gi].g.ntypes, sizeof(*gb[gi].g.types), ml_cyc_type_cmp);
        for (size_t s = 0; kmap && s < gb[gi].g.ntypes; s++) { /* key index -> sorted index */
            PyTypeObject **pos = bsearch(&gb[gi].g.types[s].type, gb[gi].key, gb[gi].nkey,
                                         sizeof(*gb[gi].key), ml_cyc_ptr_cmp);
            kmap[koff[gi] + (size_t)(pos - gb[gi].key)] = (uint32_t)s;
        }
    }
    free(b.prev);
    free(b.queue);
    /* sort groups and their islands together */
    for (size_t gi = 0; gi < ng; gi++) {
        out->groups[gi] = gb[gi].g;
        if (order)
            order[gi] = (uint32_t)gi;
    }
    /* a selection sort on an index keeps groups and islands paired */
    for (size_t i = 0; i < ng; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < ng; j++)
            if (ml_cyc_group_cmp(&out->groups[j], &out->groups[best]) < 0)
                best = j;
        if (best != i) {
            ml_cycle_group tg = out->groups[i];
            out->groups[i] = out->groups[best];
            out->groups[best] = tg;
            ml_cycle_island ti = out->islands[i];
            out->islands[i] = out->islands[best];
            out->islands[best] = ti;
            if (order) {
                uint32_t to = order[i];
                order[i] = order[best];
                order[best] = to;
            }
        }
        out->groups[i].example = i;
    }
    if (mgroup) {
        for (size_t i = 0; i < ng; i++)
            newpos[order[i]] = (uint32_t)i;
        for (size_t p = 0; p < first[nisl]; p++) {
            uint32_t g0 = mgroup[p];
            mtype[p] = kmap[koff[g0] + mtype[p]];
            mgroup[p] = newpos[g0];
        }
    }
    out->ngroups = ng;
    for (size_t gi = 0; gi < ng; gi++)
        gb[gi].g.types = NULL; /* now owned by out */
    rc = 0;
done:
    for (size_t gi = 0; gi < ng; gi++) {
        free(gb[gi].key);
        free(gb[gi].g.types);
    }
    free(gb);
    free(tmp);
    free(kmap);
    free(koff);
    free(newpos);
    free(order);
    return rc;
}

/* Steps 1 and 2 of the collector on the side table: subtract the
 * references from inside the set, then flag what is held from outside and
 * all it reaches. c->flag and c->stack hold t->n + 1 entries. */
static void
ml_cyc_mark_reachable(ml_cyc_ctx *c)
{
    ml_cyc_table *t = c->t;
    for (uint32_t i = 0; i < t->n; i++)
        ml_cyc_traverse(t->objs[i], ml_cyc_visit_decref, c);
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->refs[i] > 0 && !c->flag[i]) {
            c->flag[i] = 1;
            c->stack[c->nstack++] = i;
            ml_cyc_spread(c);
        }
    }
}

/* cycline: out->members from the member positions of ml_cyc_group. */
static int
ml_cyc_members_alloc(ml_cycles *out, size_t n)
{
    out->members = malloc((n + 1) * sizeof(*out->members));
    out->member_group = malloc((n + 1) * sizeof(*out->member_group));
    out->member_type = malloc((n + 1) * sizeof(*out->member_type));
    out->nmembers = n;
    return out->members && out->member_group && out->member_type ? 0 : -1;
}

int
ml_cycles_find(ml_cycles *out, int want_members)
{
    memset(out, 0, sizeof(*out));
    ml_cyc_table t;
    int rc = ml_cyc_table_build(&t, 0);
    if (rc < 0)
        return rc;
    rc = -1;
    ml_cyc_ctx c = {.t = &t};
    uint32_t *island_of = NULL, *members = NULL, *first = NULL;
    c.flag = calloc((size_t)t.n + 1, 1);
    c.stack = malloc(((size_t)t.n + 1) * sizeof(*c.stack));
    c.uf = malloc(((size_t)t.n + 1) * sizeof(*c.uf));
    if (!c.flag || !c.stack || !c.uf)
        goto done;
    out->examined = t.n;
    ml_cyc_mark_reachable(&c);
    /* 3. islands of the rest */
    for (uint32_t i = 0; i < t.n; i++)
        c.uf[i] = i;
    for (uint32_t i = 0; i < t.n; i++) {
        if (c.flag[i])
            continue;
        c.cur = i;
        ml_cyc_traverse(t.objs[i], ml_cyc_visit_union, &c);
    }
    island_of = malloc(((size_t)t.n + 1) * sizeof(*island_of));
    members = malloc(((size_t)t.n + 1) * sizeof(*members));
    first = calloc((size_t)t.n + 2, sizeof(*first));
    if (!island_of || !members || !first)
        goto done;
    uint32_t nisl = 0;
    /* island ids in order of their roots (a root is its island's smallest index) */
    for (uint32_t i = 0; i < t.n; i++) {
        island_of[i] = ML_CYC_NONE;
        if (c.flag[i])
            continue;
        uint32_t r = ml_cyc_root(c.uf, i);
        island_of[i] = r == i ? nisl++ : island_of[r];
        first[island_of[i] + 1]++;
        out->objects++;
    }
    for (uint32_t k = 0; k < nisl; k++)
        first[k + 1] += first[k];
    {
        uint32_t *fill = c.stack; /* reused as the fill cursor per island */
        memcpy(fill, first, (size_t)nisl * sizeof(*fill));
        for (uint32_t i = 0; i < t.n; i++)
            if (island_of[i] != ML_CYC_NONE)
                members[fill[island_of[i]]++] = i;
    }
    if (want_members && ml_cyc_members_alloc(out, first[nisl]) < 0)
        goto done;
    if (ml_cyc_group(&t, members, first, nisl, island_of, out, out->member_group, out->member_type) < 0)
        goto done;
    for (size_t p = 0; p < out->nmembers; p++)
        out->members[p] = t.objs[members[p]];
    for (size_t gi = 0; gi < out->ngroups; gi++)
        out->bytes += out->groups[gi].bytes;
    rc = 0;
done:
    free(c.flag);
    free(c.stack);
    free(c.uf);
    free(island_of);
    free(members);
    free(first);
    ml_cyc_table_release(&t);
    if (rc < 0)
        ml_cycles_release(out);
    return rc;
}

int
ml_cycles_of(PyObject *obj, ml_cycles *out, int want_members)
{
    memset(out, 0, sizeof(*out));
    ml_cyc_table t;
    int rc = ml_cyc_table_build(&t, 1);
    if (rc < 0)
        return rc;
    rc = -1;
    ml_cyc_ctx c = {.t = &t};
    uint32_t *island_of = NULL, *members = NULL, *radj = NULL, *rfirst = NULL;
    uint8_t *back = NULL;
    out->examined = t.n;
    uint32_t s = ml_cyc_find(&t, obj);
    if (s == ML_CYC_NONE) {
        ml_cyc_table_release(&t);
        return 0;
    }
    c.flag = calloc((size_t)t.n + 1, 1);
    c.stack = malloc(((size_t)t.n + 1) * sizeof(*c.stack));
    back = calloc((size_t)t.n + 1, 1);
    if (!c.flag || !c.stack || !back)
        goto done;
    /* forward: what obj reaches (by the references ml_cyc_skipped keeps),
     * with the edges between those objects */
    c.flag[s] = 1;
    c.stack[c.nstack++] = s;
    while (c.nstack) {
        c.cur = c.stack[--c.nstack];
        ml_cyc_traverse(t.objs[c.cur], ml_cyc_visit_mark_kept, &c);
    }
    for (uint32_t i = 0; i < t.n; i++) {
        if (!c.flag[i])
            continue;
        c.cur = i;
        ml_cyc_traverse(t.objs[i], ml_cyc_visit_edge, &c);
    }
    if (c.oom)
        goto done;
    /* backward over the reversed edges, within the forward set */
    rfirst = calloc((size_t)t.n + 2, sizeof(*rfirst));
    radj = malloc((c.nedges + 1) * sizeof(*radj));
    if (!rfirst || !radj)
        goto done;
    for (size_t e = 0; e < c.nedges; e++)
        rfirst[c.eto[e] + 1]++;
    for (uint32_t i = 0; i < t.n; i++)
        rfirst[i + 1] += rfirst[i];
    for (size_t e = 0; e < c.nedges; e++)
        radj[rfirst[c.eto[e]]++] = c.efrom[e];
    for (uint32_t i = t.n; i > 0; i--) /* the fill moved each start to the next one's */
        rfirst[i] = rfirst[i - 1];
    rfirst[0] = 0;
    size_t nst = 0;
    back[s] = 1;
    c.stack[nst++] = s;
    while (nst) {
        uint32_t v = c.stack[--nst];
        for (uint32_t k = rfirst[v]; k < rfirst[v + 1]; k++) {
            uint32_t u = radj[k];
            if (c.flag[u] && !back[u]) {
                back[u] = 1;
                c.stack[nst++] = u;
            }
        }
    }
    /* the component: one island */
    island_of = malloc(((size_t)t.n + 1) * sizeof(*island_of));
    members = malloc(((size_t)t.n + 1) * sizeof(*members));
    if (!island_of || !members)
        goto done;
    uint32_t m = 0;
    int self_loop = 0;
    for (size_t e = 0; e < c.nedges; e++)
        if (c.efrom[e] == s && c.eto[e] == s)
            self_loop = 1;
    for (uint32_t i = 0; i < t.n; i++) {
        island_of[i] = c.flag[i] && back[i] ? 0 : ML_CYC_NONE;
        if (island_of[i] == 0)
            members[m++] = i;
    }
    if (m > 1 || self_loop) {
        uint32_t first[2] = {0, m};
        /* the example cycle starts at obj */
        for (uint32_t k = 0; k < m; k++)
            if (members[k] == s) {
                members[k] = members[0];
                members[0] = s;
            }
        if (want_members && ml_cyc_members_alloc(out, m) < 0)
            goto done;
        if (ml_cyc_group(&t, members, first, 1, island_of, out, out->member_group, out->member_type) < 0)
            goto done;
        for (size_t p = 0; p < out->nmembers; p++)
            out->members[p] = t.objs[members[p]];
        out->objects = out->groups[0].objects;
        out->bytes = out->groups[0].bytes;
    }
    rc = 0;
done:
    free(c.flag);
    free(c.stack);
    free(c.efrom);
    free(c.eto);
    free(back);
    free(rfirst);
    free(radj);
    free(island_of);
    free(members);
    ml_cyc_table_release(&t);
    if (rc < 0)
        ml_cycles_release(out);
    return rc;
}

void
ml_cycles_release(ml_cycles *c)
{
    for (size_t i = 0; i < c->ngroups; i++) {
        free(c->groups[i].types);
        if (c->islands) {
            free(c->islands[i].objs);
            free(c->islands[i].edge_from);
            free(c->islands[i].edge_to);
        }
    }
    free(c->groups);
    free(c->islands);
    free(c->members);
    free(c->member_group);
    free(c->member_type);
    memset(c, 0, sizeof(*c));
}

/* ---- gcexit: the unreachable set as a list, with what only it holds ---- */

/* Objects outside the side table (not tracked by the collector) that the
 * unreachable set refers to: address -> references counted from freed
 * objects. */
typedef struct {
    PyObject **keys;
    uint64_t *count;
    size_t mask, n;
} ml_cyc_ext;

typedef struct {
    ml_cyc_table *t;
    ml_cyc_ext ext;
    PyObject **work;        /* freed untracked objects whose referents are not counted yet */
    size_t nwork, capwork;
    ml_cycles_visit fn;
    void *arg;
    uint64_t objects;
    int fail;               /* -1 out of memory, or fn's nonzero return */
} ml_cyc_free_ctx;

static int
ml_cyc_ext_grow(ml_cyc_ext *e)
{
    size_t cap = e->mask ? (e->mask + 1) * 2 : 1024;
    PyObject **keys = calloc(cap, sizeof(*keys));
    uint64_t *count = malloc(cap * sizeof(*count));
    if (!keys || !count) {
        free(keys);
        free(count);
        return -1;
    }
    for (size_t i = 0; e->mask && i <= e->mask; i++) {
        if (!e->keys[i])
            continue;
        size_t k = (size_t)(((uintptr_t)e->keys[i] * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
        while (keys[k])
            k = (k + 1) & (cap - 1);
        keys[k] = e->keys[i];
        count[k] = e->count[i];
    }
    free(e->keys);
    free(e->count);
    e->keys = keys;
    e->count = count;
    e->mask = cap - 1;
    return 0;
}

/* One more reference to untracked `o` from a freed object: the count it
 * has now (0 when out of memory). */
static uint64_t
ml_cyc_ext_add(ml_cyc_ext *e, PyObject *o)
{
    if ((e->n + 1) * 2 > e->mask + 1 && ml_cyc_ext_grow(e) < 0)
        return 0;
    size_t k = (size_t)(((uintptr_t)o * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & e->mask;
    while (e->keys[k] && e->keys[k] != o)
        k = (k + 1) & e->mask;
    if (!e->keys[k]) {
        e->keys[k] = o;
        e->count[k] = 0;
        e->n++;
    }
    return ++e->count[k];
}

/* A referent of a freed object: an untracked one goes with the set once
 * every reference it has comes from freed objects. */
static int
ml_cyc_visit_free(PyObject *o, void *arg)
{
    ml_cyc_free_ctx *f = arg;
    if (!o || f->fail || ml_cyc_find(f->t, o) != ML_CYC_NONE)
        return 0; /* in the side table: reachable, or unreachable and listed already */
    uint64_t n = ml_cyc_ext_add(&f->ext, o);
    if (!n) {
        f->fail = -1;
        return 0;
    }
    if (n != (uint64_t)Py_REFCNT(o))
        return 0; /* immortal objects never get there */
    if (f->nwork == f->capwork) {
        size_t cap = f->capwork ? f->capwork * 2 : 1024;
        PyObject **w = realloc(f->work, cap * sizeof(*w));
        if (!w) {
            f->fail = -1;
            return 0;
        }
        f->work = w;
        f->capwork = cap;
    }
    f->work[f->nwork++] = o;
    f->objects++;
    int rc = f->fn(f->arg, o);
    if (rc)
        f->fail = rc;
    return 0;
}

static void
ml_cyc_free_traverse(PyObject *o, ml_cyc_free_ctx *f)
{
    traverseproc tr = Py_TYPE(o)->tp_traverse;
    if (tr && PyType_IS_GC(Py_TYPE(o)) && !ml_compat_traverse_unsafe(o))
        tr(o, ml_cyc_visit_free, f);
}

int
ml_cycles_unreachable(ml_cycles_visit fn, void *arg, uint64_t *objects)
{
    *objects = 0;
    ml_cyc_table t;
    int rc = ml_cyc_table_build(&t, 0);
    if (rc < 0)
        return rc;
    ml_cyc_ctx c = {.t = &t};
    ml_cyc_free_ctx f = {.t = &t, .fn = fn, .arg = arg};
    rc = -1;
    c.flag = calloc((size_t)t.n + 1, 1);
    c.stack = malloc(((size_t)t.n + 1) * sizeof(*c.stack));
    if (!c.flag || !c.stack)
        goto done;
    ml_cyc_mark_reachable(&c);
    for (uint32_t i = 0; i < t.n && !f.fail; i++) {
        if (c.flag[i])
            continue;
        f.objects++;
        int r = fn(arg, t.objs[i]);
        if (r)
            f.fail = r;
    }
    for (uint32_t i = 0; i < t.n && !f.fail; i++)
        if (!c.flag[i])
            ml_cyc_free_traverse(t.objs[i], &f);
    while (f.nwork && !f.fail)
        ml_cyc_free_traverse(f.work[--f.nwork], &f);
    rc = f.fail;
    *objects = f.objects;
done:
    free(c.flag);
    free(c.stack);
    free(f.ext.keys);
    free(f.ext.count);
    free(f.work);
    ml_cyc_table_release(&t);
    return rc;
}
