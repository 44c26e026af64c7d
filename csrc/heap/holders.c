/* holders.c: shortest paths from the roots, as patterns, with retained
 * sizes (see holders.h).
 *
 * Strings (hop texts) and patterns are interned in open-addressing tables;
 * a pattern is (parent pattern, type hop, edge hop). The breadth-first
 * search runs over the graph's successor arrays; when a node is expanded,
 * the children it reaches first are named together, so that naming the
 * children of a dict or list costs one pass over it, not one per child.
 */
#include "heap/holders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/dominators.h"
#include "graph/paths.h"
#include "graph/typekind.h"
#include "heap/addrset.h"

/* Dicts with at most this many items name their values by key. */
#define ML_HOLDERS_SMALL_DICT 16
#define ML_HOLDERS_KEY_MAX 60
#define ML_HOLDERS_HOP_MAX 512

typedef struct {
    uint32_t parent, tyhop, edge; /* string ids (0: no type hop) */
    uint32_t depth;
    uint8_t cut;
} ml_pattern;

/* A dict being named: value or key object -> entry index. */
typedef struct {
    PyObject *o;
    uint32_t entry; /* index + 1; high bit: the key, not the value */
} ml_holders_slot;

#define ML_HOLDERS_KEY_BIT 0x80000000u

/* Edge names by (type, word of the object that holds the referent): for
 * a fixed-size object the name of a referent found at one place in it is
 * the same for every object of the type. Direct-mapped, so a collision
 * only costs a recomputation. */
#define ML_HOLDERS_MEMO 4096
#define ML_HOLDERS_VALUES_WORD 0x40000000u /* + slot: a place in the attribute values */
typedef struct {
    PyTypeObject *tp;
    uint32_t word, edge;
} ml_holders_edge_memo;

struct ml_holders {
    const ml_refgraph *g;
    const ml_roots *r;
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
    /* per node */
    uint32_t *pattern; /* 0: not reached */
    ml_node *holder;   /* the object the last edge leaves (owner of an attribute table) */
    ml_node *via;      /* whose type names the hop after this node: its owner for an attribute table */
    uint8_t *attrs;    /* 1: an attribute table (module, class or instance __dict__) */
    ml_node *queue;
    size_t qhead, qlen;
    /* the children of the node being expanded */
    ml_node *kids;
    size_t nkids, capkids;
    ml_holders_slot *slots;
    size_t capslots;
    ml_holders_edge_memo memo[ML_HOLDERS_MEMO];
    ml_domtree dom;
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

static uint32_t
ml_holders_lit(ml_holders *h, const char *s)
{
    return ml_holders_str(h, s, strlen(s));
}

/* The id of pattern (parent, tyhop, edge); 0 when out of memory. */
static uint32_t
ml_holders_intern(ml_holders *h, uint32_t parent, uint32_t tyhop, uint32_t edge)
{
    ml_pattern key = {parent, tyhop, edge, parent ? h->pat[parent].depth + 1 : 0, 0};
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

/* The pattern one edge below `parent`; past ML_HOLDERS_DEPTH, "...". */
static uint32_t
ml_holders_pattern(ml_holders *h, uint32_t parent, uint32_t tyhop, uint32_t edge)
{
    if (!parent || h->pat[parent].depth < ML_HOLDERS_DEPTH)
        return ml_holders_intern(h, parent, tyhop, edge);
    if (h->pat[parent].cut)
        return parent;
    uint32_t p = ml_holders_intern(h, parent, 0, ml_holders_lit(h, "..."));
    if (p)
        h->pat[p].cut = 1;
    return p;
}

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

/* ---- names of roots ---- */

/* The name of thread `tid` from threading._active (its Thread's _name),
 * read in place; 0 when not found. */
static size_t
ml_holders_thread_name(ml_holders *h, unsigned long tid, char *buf, size_t cap)
{
    PyObject *modules = PySys_GetObject("modules"), *threading = NULL, *active = NULL;
    if (!modules || !PyDict_Check(modules))
        return 0;
    ml_compat_dict_entries e;
    ml_compat_dict_entries_of(modules, &e);
    for (size_t i = 0; i < e.n && !threading; i++) {
        PyObject *k = e.keys[i * e.kstride], *v = e.values[i * e.vstride];
        if (v && k && PyUnicode_CheckExact(k) && PyModule_Check(v) &&
            PyUnicode_CompareWithASCIIString(k, "threading") == 0)
            threading = v;
    }
    if (!threading)
        return 0;
    ml_compat_dict_entries_of(PyModule_GetDict(threading), &e);
    for (size_t i = 0; i < e.n && !active; i++) {
        PyObject *k = e.keys[i * e.kstride], *v = e.values[i * e.vstride];
        if (v && k && PyUnicode_CheckExact(k) && PyDict_CheckExact(v) &&
            PyUnicode_CompareWithASCIIString(k, "_active") == 0)
            active = v;
    }
    if (!active)
        return 0;
    PyObject *thread = NULL;
    ml_compat_dict_entries_of(active, &e);
    for (size_t i = 0; i < e.n && !thread; i++) {
        PyObject *k = e.keys[i * e.kstride], *v = e.values[i * e.vstride];
        if (v && k && PyLong_CheckExact(k)) {
            unsigned long id = PyLong_AsUnsignedLong(k);
            if (id == (unsigned long)-1 && PyErr_Occurred())
                PyErr_Clear();
            else if (id == tid)
                thread = v;
        }
    }
    if (!thread)
        return 0;
    size_t vb;
    PyObject *d = ml_compat_instance_dict(thread, &vb), *name = NULL;
    if (d && PyDict_Check(d)) { /* a dict of its own (3.10, or made on 3.11+) */
        ml_compat_dict_entries_of(d, &e);
        for (size_t i = 0; i < e.n && !name; i++) {
            PyObject *k = e.keys[i * e.kstride], *v = e.values[i * e.vstride];
            if (v && k && PyUnicode_CheckExact(k) && PyUnicode_Check(v) &&
                PyUnicode_CompareWithASCIIString(k, "_name") == 0)
                name = v;
        }
    }
    if (name) {
        const char *u;
        size_t len = ml_compat_str_utf8(name, buf, cap, &u);
        if (u != buf && len < cap)
            memmove(buf, u, len);
        return len < cap ? len : 0;
    }
    ml_node t = ml_refgraph_find(h->g, thread);
    if (t == ML_NODE_NONE)
        return 0;
    size_t count;
    const ml_node *s = ml_refgraph_succ(h->g, t, &count);
    for (size_t i = 0; i < count; i++) {
        PyObject *o = ml_refgraph_object(h->g, s[i]);
        char edge[64];
        if (!PyUnicode_CheckExact(o))
            continue;
        size_t n = ml_paths_edge_name(thread, o, edge, sizeof(edge));
        if (n == 6 && memcmp(edge, "._name", 6) == 0) {
            const char *u;
            size_t len = ml_compat_str_utf8(o, buf, cap, &u);
            if (u != buf && len < cap)
                memmove(buf, u, len);
            return len < cap ? len : 0;
        }
    }
    return 0;
}

/* The hop naming root i: "module NAME", "thread NAME, frame f() in
 * FILE:LINE, local 'x'", "sys.modules", "held by C code". */
static uint32_t
ml_holders_root_hop(ml_holders *h, size_t i)
{
    const ml_root *x = &h->r->roots[i];
    char buf[ML_HOLDERS_HOP_MAX];
    size_t n;
    if (x->kind == ML_ROOT_LOCAL) {
        char tname[128], b1[128], b2[128], b3[200];
        const char *s1, *s2, *s3;
        size_t lt = ml_holders_thread_name(h, x->thread, tname, sizeof(tname));
        size_t l1 = ml_compat_str_utf8(x->code->co_name, b1, sizeof(b1), &s1);
        size_t l2 = ml_compat_str_utf8(x->name, b2, sizeof(b2), &s2);
        size_t l3 = ml_compat_str_utf8(x->code->co_filename, b3, sizeof(b3), &s3);
        int k = lt ? snprintf(buf, sizeof(buf), "thread %.*s, ", (int)lt, tname)
                   : snprintf(buf, sizeof(buf), "thread %lu, ", x->thread);
        if (k < 0)
            k = 0;
        int m = snprintf(buf + k, sizeof(buf) - (size_t)k, "frame %.*s() in %.*s:%d, local '%.*s'", (int)l1, s1,
                         (int)l3, s3, x->line, (int)l2, s2);
        n = (size_t)k + (m < 0 ? 0 : (size_t)m);
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
    } else {
        n = ml_roots_name(h->r, i, buf, sizeof(buf));
    }
    return ml_holders_str(h, buf, n);
}

/* ---- the search ---- */

/* Reach node v from the node being expanded (`from`, ML_NODE_NONE for a
 * root) with pattern p. */
static void
ml_holders_reach(ml_holders *h, ml_node v, ml_node from, uint32_t p)
{
    if (!p) {
        h->failed = 1;
        return;
    }
    h->pattern[v] = p;
    h->holder[v] = from == ML_NODE_NONE ? v : h->via[from];
    h->via[v] = v;
    h->queue[h->qlen++] = v;
}

/* A dict's value or key object -> its entry, for the kids of one dict. */
static int
ml_holders_index_dict(ml_holders *h, const ml_compat_dict_entries *e, size_t *mask)
{
    size_t need = 4;
    while (need < e->n * 4)
        need *= 2;
    if (need > h->capslots) {
        ml_holders_slot *s = realloc(h->slots, need * sizeof(*s));
        if (!s)
            return -1;
        h->slots = s;
        h->capslots = need;
    }
    memset(h->slots, 0, need * sizeof(*h->slots));
    *mask = need - 1;
    for (size_t i = 0; i < e->n; i++) {
        PyObject *v = e->values[i * e->vstride], *k = e->keys[i * e->kstride];
        if (!v)
            continue;
        PyObject *objs[2] = {v, k};
        for (int w = 0; w < 2; w++) {
            if (!objs[w])
                continue;
            size_t j = ((uint64_t)(uintptr_t)objs[w] >> 4) * 0x9E3779B97F4A7C15ull >> 20 & *mask;
            while (h->slots[j].o && h->slots[j].o != objs[w])
                j = (j + 1) & *mask;
            if (!h->slots[j].o) /* the first entry that has it names it */
                h->slots[j] = (ml_holders_slot){objs[w], (uint32_t)(i + 1) | (w ? ML_HOLDERS_KEY_BIT : 0)};
        }
    }
    return 0;
}

/* The edge name of dict d's kid o: ".name" in an attribute table,
 * "['name']" / "[3]" in a small dict, "[key]" in a big one, "(key)". */
static uint32_t
ml_holders_dict_edge(ml_holders *h, const ml_compat_dict_entries *e, size_t mask, PyObject *o, int attrs,
                     size_t used)
{
    size_t j = ((uint64_t)(uintptr_t)o >> 4) * 0x9E3779B97F4A7C15ull >> 20 & mask;
    while (h->slots[j].o && h->slots[j].o != o)
        j = (j + 1) & mask;
    if (!h->slots[j].o)
        return ml_holders_lit(h, "(referent)");
    if (h->slots[j].entry & ML_HOLDERS_KEY_BIT)
        return ml_holders_lit(h, "(key)");
    PyObject *k = e->keys[((h->slots[j].entry & ~ML_HOLDERS_KEY_BIT) - 1) * e->kstride];
    if (!attrs && used > ML_HOLDERS_SMALL_DICT)
        return ml_holders_lit(h, "[key]");
    char buf[ML_HOLDERS_KEY_MAX * 4 + 16];
    size_t n;
    if (attrs && k && PyUnicode_Check(k)) {
        char enc[ML_HOLDERS_KEY_MAX * 4];
        const char *u;
        n = ml_compat_str_utf8(k, enc, sizeof(enc), &u);
        if (n > ML_HOLDERS_KEY_MAX * 2)
            n = ML_HOLDERS_KEY_MAX * 2;
        buf[0] = '.';
        memcpy(buf + 1, u, n);
        n++;
    } else if (k) {
        n = ml_paths_key_name(k, buf, sizeof(buf));
    } else {
        return ml_holders_lit(h, "[key]");
    }
    return ml_holders_str(h, buf, n);
}

/* The edge name of o's referent k (ml_paths_edge_name), as a string id;
 * 0 when out of memory. The name is memoised by (type, place) when k sits
 * in exactly one word of a fixed-size o (past its reference count), or,
 * in no word, in one slot of a plain instance's attribute values (3.11+):
 * for every object of the type, the name of a referent found there is the
 * same. */
static uint32_t
ml_holders_edge(ml_holders *h, PyObject *o, PyObject *k)
{
    PyTypeObject *tp = Py_TYPE(o);
    size_t word = 0, seen = 0;
    if (tp->tp_itemsize == 0) {
        PyObject *const *w = (PyObject *const *)o;
        size_t nw = (size_t)tp->tp_basicsize / sizeof(PyObject *);
        for (size_t i = 1; i < nw; i++) {
            if (w[i] == k) {
                word = i;
                seen++;
            }
        }
    }
    if (seen > 1) /* twice: which one the name is of is not known */
        word = 0;
    PyObject *name;
    size_t slot;
    if (!seen && !(ml_typekind_of(tp) & (ML_TK_DICT | ML_TK_SEQ | ML_TK_SET | ML_TK_MODULE | ML_TK_TYPE)) &&
        (slot = ml_compat_instance_attr_index(o, k, &name)) != 0) {
        size_t vb;
        if (ml_compat_instance_dict(o, &vb) != k) /* else ".__dict__" (3.13: a dict over the values) */
            word = ML_HOLDERS_VALUES_WORD + slot;
    }
    ml_holders_edge_memo *m = NULL;
    if (word) {
        size_t i = (((uintptr_t)tp >> 4) * 0x9E3779B97F4A7C15ull + word * 0xC2B2AE3D27D4EB4Full) >> 52;
        m = &h->memo[i % ML_HOLDERS_MEMO];
        if (m->tp == tp && m->word == word)
            return m->edge;
    }
    char buf[ML_HOLDERS_HOP_MAX];
    uint32_t edge = ml_holders_str(h, buf, ml_paths_edge_name(o, k, buf, sizeof(buf)));
    if (m && edge)
        *m = (ml_holders_edge_memo){tp, (uint32_t)word, edge};
    return edge;
}

/* Expand node u: reach its successors not reached yet, naming the edges. */
static void
ml_holders_expand(ml_holders *h, ml_node u)
{
    size_t count;
    const ml_node *s = ml_refgraph_succ(h->g, u, &count);
    h->nkids = 0;
    for (size_t i = 0; i < count; i++) {
        ml_node v = s[i];
        if (h->pattern[v] || h->r->excluded[v])
            continue;
        if (h->nkids == h->capkids) {
            size_t cap = h->capkids ? h->capkids * 2 : 256;
            ml_node *nk = realloc(h->kids, cap * sizeof(*nk));
            if (!nk) {
                h->failed = 1;
                return;
            }
            h->kids = nk;
            h->capkids = cap;
        }
        h->kids[h->nkids++] = v;
        h->pattern[v] = UINT32_MAX; /* claimed: named below */
    }
    if (!h->nkids)
        return;
    PyObject *o = ml_refgraph_object(h->g, u);
    ml_node owner = h->via[u];
    int root_table = h->attrs[u] && owner == u; /* a module's globals: no type hop */
    uint32_t tyhop = root_table ? 0 : ml_holders_tyhop(h, Py_TYPE(ml_refgraph_object(h->g, owner)));
    uint32_t parent = h->pattern[u];
    if (!root_table && !tyhop) {
        h->failed = 1;
        return;
    }
    unsigned kind = ml_typekind_of(Py_TYPE(o));
    if (kind & ML_TK_DICT) {
        ml_compat_dict_entries e;
        size_t mask;
        ml_compat_dict_entries_of(o, &e);
        if (ml_holders_index_dict(h, &e, &mask) < 0) {
            h->failed = 1;
            return;
        }
        size_t used = (size_t)PyDict_GET_SIZE(o);
        for (size_t i = 0; i < h->nkids && !h->failed; i++) {
            PyObject *k = ml_refgraph_object(h->g, h->kids[i]);
            uint32_t edge = ml_holders_dict_edge(h, &e, mask, k, h->attrs[u], used);
            ml_holders_reach(h, h->kids[i], u, edge ? ml_holders_pattern(h, parent, tyhop, edge) : 0);
        }
        return;
    }
    uint32_t same = 0; /* the edge of every kid, when the container says */
    if ((kind & ML_TK_SEQ) || ((kind & ML_TK_DEQUE) && ml_typekind_is_deque(Py_TYPE(o)) == 1))
        same = ml_holders_lit(h, "[i]"); /* a deque's only referents are its items (a subclass's: named one by one) */
    else if (kind & ML_TK_SET)
        same = ml_holders_lit(h, "{item}");
    PyObject *table = NULL;
    if (!same) {
        size_t vb;
        if (kind & ML_TK_MODULE)
            table = PyModule_GetDict(o);
        else if (kind & ML_TK_TYPE)
            table = (PyObject *)ml_compat_type_dict((PyTypeObject *)o);
        else
            table = ml_compat_instance_dict(o, &vb);
    }
    for (size_t i = 0; i < h->nkids && !h->failed; i++) {
        ml_node v = h->kids[i];
        PyObject *k = ml_refgraph_object(h->g, v);
        if (table && k == table && PyDict_Check(k)) {
            /* the owner's attribute table: no hop of its own, so its
             * pattern and its holder are the owner's (not the owner: a
             * pattern's holders must not dominate one another) */
            ml_holders_reach(h, v, u, parent);
            h->holder[v] = h->holder[u];
            h->attrs[v] = 1;
            h->via[v] = owner;
            continue;
        }
        /* a heap type's instance also refers to its type (".__class__", not an item) */
        uint32_t edge = same && k != (PyObject *)Py_TYPE(o) ? same : ml_holders_edge(h, o, k);
        ml_holders_reach(h, v, u, edge ? ml_holders_pattern(h, parent, tyhop, edge) : 0);
    }
}

static void
ml_holders_drain(ml_holders *h)
{
    while (h->qhead < h->qlen && !h->failed)
        ml_holders_expand(h, h->queue[h->qhead++]);
}

/* Queue root i when its node is not reached yet. */
static void
ml_holders_root(ml_holders *h, size_t i)
{
    ml_node v = h->r->roots[i].node;
    if (h->pattern[v] || h->r->excluded[v])
        return;
    uint32_t hop = ml_holders_root_hop(h, i);
    ml_holders_reach(h, v, ML_NODE_NONE, hop ? ml_holders_pattern(h, 0, 0, hop) : 0);
    if (h->r->roots[i].kind == ML_ROOT_MODULE)
        h->attrs[v] = 1;
}

static int
ml_holders_is_main(const ml_root *x)
{
    return x->kind == ML_ROOT_MODULE && x->name && PyUnicode_Check(x->name) &&
           PyUnicode_CompareWithASCIIString(x->name, "__main__") == 0;
}

ml_holders *
ml_holders_build(const ml_refgraph *g, const ml_roots *r, ml_holders_name_fn name, void *name_arg)
{
    size_t n = ml_refgraph_count(g), m = n ? n : 1;
    ml_holders *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->g = g;
    h->r = r;
    h->name = name;
    h->name_arg = name_arg;
    h->pattern = calloc(m, sizeof(*h->pattern));
    h->holder = malloc(m * sizeof(*h->holder));
    h->via = malloc(m * sizeof(*h->via));
    h->attrs = calloc(m, 1);
    h->queue = malloc(m * sizeof(*h->queue));
    if (!h->pattern || !h->holder || !h->via || !h->attrs || !h->queue ||
        ml_addrset_init(&h->tyhops, 256, 1) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        h->holder[i] = ML_NODE_NONE;
    /* __main__ first: its names win; then the other named roots; then
     * "held by C code" for what they do not reach */
    for (size_t i = 0; i < r->named; i++)
        if (ml_holders_is_main(&r->roots[i]))
            ml_holders_root(h, i);
    for (size_t i = 0; i < r->named && !h->failed; i++)
        ml_holders_root(h, i);
    ml_holders_drain(h);
    for (size_t i = r->named; i < r->n && !h->failed; i++) {
        ml_holders_root(h, i);
        ml_holders_drain(h);
    }
    if (h->failed || ml_dominators_retained(g, r, &h->dom) < 0)
        goto fail;
    return h;
fail:
    ml_holders_free(h);
    return NULL;
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
    free(h->pattern);
    free(h->holder);
    free(h->via);
    free(h->attrs);
    free(h->queue);
    free(h->kids);
    free(h->slots);
    ml_addrset_release(&h->tyhops);
    ml_domtree_release(&h->dom);
    free(h);
}

uint32_t
ml_holders_pattern_of(const ml_holders *h, ml_node v)
{
    return v < ml_refgraph_count(h->g) ? h->pattern[v] : 0;
}

ml_node
ml_holders_holder_of(const ml_holders *h, ml_node v)
{
    return v < ml_refgraph_count(h->g) ? h->holder[v] : ML_NODE_NONE;
}

uint64_t
ml_holders_retained(const ml_holders *h, ml_node v)
{
    return v < h->dom.n ? h->dom.retained[v] : 0;
}

const ml_node *
ml_holders_reached(const ml_holders *h, size_t *n)
{
    *n = h->qlen;
    return h->queue;
}

uint32_t
ml_holders_count(const ml_holders *h)
{
    return h->npat;
}

int
ml_holders_cut(const ml_holders *h, uint32_t p)
{
    return p && p <= h->npat && h->pat[p].cut;
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
