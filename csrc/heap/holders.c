/* holders.c: shortest paths from the modules, as patterns (see holders.h).
 *
 * Strings (hop texts) and patterns are interned in open-addressing tables;
 * a pattern is (parent pattern, type hop, edge hop). The queue of the
 * breadth-first walk holds (object, pattern) pairs; an address bitmap
 * marks the objects reached.
 */
#include "heap/holders.h"

#include <stdlib.h>
#include <string.h>

#include "heap/addrbits.h"
#include "heap/addrset.h"

/* Dicts with at most this many items name their values by key. */
#define ML_HOLDERS_SMALL_DICT 16
#define ML_HOLDERS_KEY_MAX 60

typedef struct {
    uint32_t parent, tyhop, edge; /* string ids (0: no type hop) */
    uint32_t depth;
} ml_pattern;

typedef struct {
    PyObject *o;
    uint32_t pattern;
} ml_qitem;

struct ml_holders {
    ml_holders_name_fn name;
    void *name_arg;
    /* strings: bytes in `text`, string i at text + soff[i], slen[i] */
    char *text;
    size_t tlen, tcap;
    size_t *soff, *slen;
    uint32_t nstr, strcap;
    uint32_t *stab; /* string ids by hash */
    size_t smask;
    /* patterns, ids 1..npat */
    ml_pattern *pat;
    uint32_t npat, patcap;
    uint32_t *ptab;
    size_t pmask;
    ml_addrset tyhops; /* type -> string id of "(Name)" */
    /* the walk */
    ml_addrbits seen;
    ml_qitem *q;
    size_t qhead, qlen, qcap;
    ml_holders_fn fn;
    void *arg;
    size_t reached;
    int failed;
};

static uint64_t
ml_holders_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int
ml_holders_grow_tab(uint32_t **tab, size_t *mask, uint32_t count)
{
    if (*tab && (size_t)(count + 1) * 2 <= *mask + 1)
        return 0;
    size_t n = *tab ? (*mask + 1) * 2 : 1024;
    uint32_t *t = calloc(n, sizeof(*t));
    if (!t)
        return -1;
    free(*tab);
    *tab = t;
    *mask = n - 1;
    return 1; /* rehash needed */
}

static uint64_t
ml_holders_pat_hash(const ml_pattern *p)
{
    return ((uint64_t)p->parent * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)p->tyhop * 0xC2B2AE3D27D4EB4Full) ^
           ((uint64_t)p->edge * 0x165667B19E3779F9ull);
}

/* The id of string s (added when new); 0 when out of memory. */
static uint32_t
ml_holders_str(ml_holders *h, const char *s, size_t n)
{
    int g = ml_holders_grow_tab(&h->stab, &h->smask, h->nstr);
    if (g < 0)
        return 0;
    if (g > 0) {
        for (uint32_t id = 1; id <= h->nstr; id++) {
            size_t i = ml_holders_hash(h->text + h->soff[id], h->slen[id]) & h->smask;
            while (h->stab[i])
                i = (i + 1) & h->smask;
            h->stab[i] = id;
        }
    }
    size_t i = ml_holders_hash(s, n) & h->smask;
    for (; h->stab[i]; i = (i + 1) & h->smask) {
        uint32_t id = h->stab[i];
        if (h->slen[id] == n && !memcmp(h->text + h->soff[id], s, n))
            return id;
    }
    if (h->nstr + 2 > h->strcap) {
        uint32_t cap = h->strcap ? h->strcap * 2 : 256;
        size_t *no = realloc(h->soff, cap * sizeof(*no));
        if (!no)
            return 0;
        h->soff = no;
        size_t *nl = realloc(h->slen, cap * sizeof(*nl));
        if (!nl)
            return 0;
        h->slen = nl;
        h->strcap = cap;
    }
    if (h->tlen + n > h->tcap) {
        size_t cap = h->tcap ? h->tcap * 2 : 4096;
        while (cap < h->tlen + n)
            cap *= 2;
        char *nt = realloc(h->text, cap);
        if (!nt)
            return 0;
        h->text = nt;
        h->tcap = cap;
    }
    memcpy(h->text + h->tlen, s, n);
    uint32_t id = ++h->nstr;
    h->soff[id] = h->tlen;
    h->slen[id] = n;
    h->tlen += n;
    h->stab[i] = id;
    return id;
}

/* The id of pattern (parent, tyhop, edge); 0 when out of memory. */
static uint32_t
ml_holders_pattern(ml_holders *h, uint32_t parent, uint32_t tyhop, uint32_t edge)
{
    ml_pattern key = {parent, tyhop, edge, parent ? h->pat[parent].depth + 1 : 0};
    int g = ml_holders_grow_tab(&h->ptab, &h->pmask, h->npat);
    if (g < 0)
        return 0;
    if (g > 0) {
        for (uint32_t id = 1; id <= h->npat; id++) {
            size_t i = ml_holders_pat_hash(&h->pat[id]) & h->pmask;
            while (h->ptab[i])
                i = (i + 1) & h->pmask;
            h->ptab[i] = id;
        }
    }
    size_t i = ml_holders_pat_hash(&key) & h->pmask;
    for (; h->ptab[i]; i = (i + 1) & h->pmask) {
        const ml_pattern *p = &h->pat[h->ptab[i]];
        if (p->parent == parent && p->tyhop == tyhop && p->edge == edge)
            return h->ptab[i];
    }
    if (h->npat + 2 > h->patcap) {
        uint32_t cap = h->patcap ? h->patcap * 2 : 256;
        ml_pattern *np = realloc(h->pat, cap * sizeof(*np));
        if (!np)
            return 0;
        h->pat = np;
        h->patcap = cap;
    }
    uint32_t id = ++h->npat;
    h->pat[id] = key;
    h->ptab[i] = id;
    return id;
}

ml_holders *
ml_holders_new(ml_holders_name_fn name, void *name_arg)
{
    ml_holders *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->name = name;
    h->name_arg = name_arg;
    if (ml_addrset_init(&h->tyhops, 256, 1) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

void
ml_holders_free(ml_holders *h)
{
    if (!h)
        return;
    free(h->text);
    free(h->soff);
    free(h->slen);
    free(h->stab);
    free(h->pat);
    free(h->ptab);
    free(h->q);
    ml_addrset_release(&h->tyhops);
    ml_addrbits_release(&h->seen);
    free(h);
}

uint32_t
ml_holders_count(const ml_holders *h)
{
    return h->npat;
}

size_t
ml_holders_hops(const ml_holders *h, uint32_t p, const char **hops, size_t *lens, size_t cap)
{
    /* count first, then fill from the end */
    size_t n = 0;
    for (uint32_t q = p; q; q = h->pat[q].parent)
        n += 1 + (h->pat[q].tyhop != 0);
    if (n > cap)
        n = cap; /* never: depth is bounded; keep the root end */
    size_t k = n;
    for (uint32_t q = p; q && k; q = h->pat[q].parent) {
        const ml_pattern *pt = &h->pat[q];
        hops[--k] = h->text + h->soff[pt->edge];
        lens[k] = h->slen[pt->edge];
        if (pt->tyhop && k) {
            hops[--k] = h->text + h->soff[pt->tyhop];
            lens[k] = h->slen[pt->tyhop];
        }
    }
    return n;
}

/* ---- the walk ---- */

/* "(Name)" of tp's instances, as a string id (0: out of memory). */
static uint32_t
ml_holders_tyhop(ml_holders *h, PyTypeObject *tp)
{
    uint32_t id;
    if (ml_addrset_get(&h->tyhops, (uintptr_t)tp, &id))
        return id;
    size_t len = 0;
    const char *name = h->name ? h->name(h->name_arg, tp, &len) : NULL;
    if (!name) {
        name = "?";
        len = 1;
    }
    char buf[256];
    if (len > sizeof(buf) - 3)
        len = sizeof(buf) - 3;
    buf[0] = '(';
    memcpy(buf + 1, name, len);
    buf[len + 1] = ')';
    id = ml_holders_str(h, buf, len + 2);
    if (id && ml_addrset_put(&h->tyhops, (uintptr_t)tp, id) < 0)
        return 0;
    return id;
}

/* Reach `o` through pattern (parent, tyhop, edge): queue it and tell fn. */
static void
ml_holders_reach(ml_holders *h, PyObject *o, uint32_t parent, uint32_t tyhop, uint32_t edge)
{
    if (!o || h->failed)
        return;
    int added = ml_addrbits_add(&h->seen, (uintptr_t)o);
    if (added <= 0) {
        h->failed |= added < 0;
        return;
    }
    uint32_t p;
    if (parent && h->pat[parent].depth >= ML_HOLDERS_DEPTH) {
        static const char more[] = "...";
        uint32_t e = ml_holders_str(h, more, 3);
        p = h->pat[parent].edge == e ? parent : ml_holders_pattern(h, parent, 0, e);
    } else {
        p = ml_holders_pattern(h, parent, tyhop, edge);
    }
    if (!p || !edge) {
        h->failed = 1;
        return;
    }
    if (h->qlen == h->qcap) {
        if (h->qhead > h->qcap / 2) { /* slide the pending part down */
            memmove(h->q, h->q + h->qhead, (h->qlen - h->qhead) * sizeof(*h->q));
            h->qlen -= h->qhead;
            h->qhead = 0;
        } else {
            size_t cap = h->qcap ? h->qcap * 2 : 4096;
            ml_qitem *nq = realloc(h->q, cap * sizeof(*nq));
            if (!nq) {
                h->failed = 1;
                return;
            }
            h->q = nq;
            h->qcap = cap;
        }
    }
    h->q[h->qlen++] = (ml_qitem){o, p};
    h->reached++;
    if (h->fn(h->arg, o, p) < 0)
        h->failed = 1;
}

/* A hop text from a str: prefix + the string (cut) + suffix. */
static uint32_t
ml_holders_str_hop(ml_holders *h, const char *prefix, PyObject *s, const char *suffix)
{
    char buf[ML_HOLDERS_KEY_MAX * 4 + 16], enc[ML_HOLDERS_KEY_MAX * 4];
    const char *u;
    size_t n = ml_compat_str_utf8(s, enc, sizeof(enc), &u);
    if (n > ML_HOLDERS_KEY_MAX * 2)
        n = ML_HOLDERS_KEY_MAX * 2;
    size_t pl = strlen(prefix), sl = strlen(suffix);
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, u, n);
    memcpy(buf + pl + n, suffix, sl);
    return ml_holders_str(h, buf, pl + n + sl);
}

/* The items of a dict: values named by key; keys themselves "(key)". */
static void
ml_holders_dict_items(ml_holders *h, PyObject *d, uint32_t p, uint32_t tyhop, int attrs)
{
    ml_compat_dict_entries e;
    ml_compat_dict_entries_of(d, &e);
    size_t used = (size_t)PyDict_GET_SIZE(d);
    uint32_t generic = ml_holders_str(h, "[key]", 5), keyhop = ml_holders_str(h, "(key)", 5);
    for (size_t i = 0; i < e.n && !h->failed; i++) {
        PyObject *v = e.values[i * e.vstride], *k = e.keys[i * e.kstride];
        if (!v)
            continue;
        uint32_t edge = generic;
        int strkey = k && PyUnicode_CheckExact(k);
        if (attrs && strkey)
            edge = ml_holders_str_hop(h, ".", k, "");
        else if (!attrs && strkey && used <= ML_HOLDERS_SMALL_DICT)
            edge = ml_holders_str_hop(h, "['", k, "']");
        if (!attrs && k && !strkey)
            ml_holders_reach(h, k, p, tyhop, keyhop);
        ml_holders_reach(h, v, p, tyhop, edge);
    }
}

typedef struct {
    ml_holders *h;
    uint32_t p, tyhop, edge;
} ml_holders_visit_ctx;

static int
ml_holders_visit(PyObject *o, void *arg)
{
    ml_holders_visit_ctx *c = arg;
    ml_holders_reach(c->h, o, c->p, c->tyhop, c->edge);
    return c->h->failed;
}

/* A dict that is an attribute table: reached with its owner (same
 * pattern), its items as attributes. */
static void
ml_holders_attr_dict(ml_holders *h, PyObject *d, uint32_t p, uint32_t tyhop)
{
    if (!d || !PyDict_Check(d))
        return;
    int added = ml_addrbits_add(&h->seen, (uintptr_t)d);
    if (added < 0)
        h->failed = 1;
    if (added <= 0)
        return;
    h->reached++;
    if (h->fn(h->arg, d, p) < 0) {
        h->failed = 1;
        return;
    }
    ml_holders_dict_items(h, d, p, tyhop, 1);
}

static void
ml_holders_expand(ml_holders *h, PyObject *o, uint32_t p, int root)
{
    PyTypeObject *tp = Py_TYPE(o);
    uint32_t tyhop = root ? 0 : ml_holders_tyhop(h, tp);
    if (!root && !tyhop) {
        h->failed = 1;
        return;
    }
    if (PyModule_Check(o)) {
        ml_holders_attr_dict(h, PyModule_GetDict(o), p, tyhop);
        return;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject **items = PyList_Check(o) ? ((PyListObject *)o)->ob_item : ((PyTupleObject *)o)->ob_item;
        uint32_t edge = ml_holders_str(h, "[i]", 3);
        for (Py_ssize_t i = 0; i < Py_SIZE(o) && !h->failed; i++)
            ml_holders_reach(h, items[i], p, tyhop, edge);
        return;
    }
    if (PyDict_Check(o)) {
        ml_holders_dict_items(h, o, p, tyhop, 0);
        return;
    }
    if (PyType_Check(o))
        ml_holders_attr_dict(h, ml_compat_type_dict((PyTypeObject *)o), p, tyhop);
    else if (!PyAnySet_Check(o)) {
        size_t vb;
        ml_holders_attr_dict(h, ml_compat_instance_dict(o, &vb), p, tyhop);
    }
    if (!(tp->tp_flags & Py_TPFLAGS_HAVE_GC) || !tp->tp_traverse || h->failed ||
        ml_compat_traverse_unsafe(o))
        return;
    if (tp->tp_is_gc && !tp->tp_is_gc(o)) /* a static type: not a GC object */
        return;
    ml_holders_visit_ctx c = {h, p, tyhop, 0};
    c.edge = PyAnySet_Check(o) ? ml_holders_str(h, "{item}", 6) : ml_holders_str(h, "(ref)", 5);
    tp->tp_traverse(o, ml_holders_visit, &c);
}

/* Queue one module of sys.modules as a root named "module NAME". */
static void
ml_holders_root(ml_holders *h, PyObject *name, PyObject *mod)
{
    if (!mod || !PyModule_Check(mod) || !name || !PyUnicode_Check(name))
        return;
    if (ml_addrbits_has(&h->seen, (uintptr_t)mod))
        return;
    uint32_t edge = ml_holders_str_hop(h, "module ", name, "");
    if (!edge) {
        h->failed = 1;
        return;
    }
    ml_holders_reach(h, mod, 0, 0, edge);
}

int
ml_holders_walk(ml_holders *h, ml_holders_fn fn, void *arg, size_t *reached)
{
    h->fn = fn;
    h->arg = arg;
    h->reached = 0;
    h->failed = 0;
    h->qhead = h->qlen = 0;
    ml_addrbits_release(&h->seen);
    if (ml_addrbits_init(&h->seen) < 0)
        return -1;
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    if (modules && PyDict_Check(modules)) {
        PyObject *main_name = NULL;
        ml_compat_dict_entries e;
        ml_compat_dict_entries_of(modules, &e);
        for (size_t i = 0; i < e.n; i++) { /* __main__ first: its names win */
            PyObject *k = e.keys[i * e.kstride];
            if (e.values[i * e.vstride] && k && PyUnicode_Check(k) &&
                PyUnicode_CompareWithASCIIString(k, "__main__") == 0) {
                main_name = k;
                ml_holders_root(h, k, e.values[i * e.vstride]);
            }
        }
        for (size_t i = 0; i < e.n && !h->failed; i++) {
            if (e.values[i * e.vstride] && e.keys[i * e.kstride] != main_name)
                ml_holders_root(h, e.keys[i * e.kstride], e.values[i * e.vstride]);
        }
        /* sys.modules itself is reached through module sys */
    }
    size_t nroots = h->qlen;
    size_t done = 0;
    while (h->qhead < h->qlen && !h->failed) {
        ml_qitem it = h->q[h->qhead++];
        ml_holders_expand(h, it.o, it.pattern, done++ < nroots);
    }
    if (reached)
        *reached = h->reached;
    return h->failed ? -1 : 0;
}
