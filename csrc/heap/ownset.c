/* ownset.c: memlens' own part of the heap (see ownset.h). */
#include "heap/ownset.h"
#include "heap/walk.h"

#include <stdlib.h>
#include <string.h>

#include "pythread.h"

#define ML_OWN_NONE UINT32_MAX

/* The registration (ml_ownset_register), process-wide, with the GIL. */
static PyObject *ml_own_names, *ml_own_dir, *ml_own_entry, *ml_own_prefix;
static unsigned long ml_own_thread;

/* The side table: candidates, their refcounts less the references seen,
 * and an address -> index hash; stops: addresses not entered. */
typedef struct {
    PyObject **objs;
    int64_t *refs;
    uint8_t *flag;       /* held from outside (step 3) */
    uint32_t n, cap;
    uint32_t *slots;     /* index + 1, 0 = empty */
    size_t mask;
    uint32_t *work;      /* candidates whose referents are not seen yet */
    size_t nwork;
    PyObject **stops;    /* open addressing, NULL = empty */
    size_t smask;
    PyObject *cur_type;  /* heap type of the object being traversed */
    int type_seen;       /* its traverse visited that type */
    PyObject *gate;      /* step 3: the referent not to follow */
    uint8_t mark;        /* step 3: the mark of the object being followed */
    uint32_t *module_of; /* step 3: for a module's dict, the module's index */
    size_t entry_depth;  /* frames from this depth outwards are memlens' */
    int oom;
} ml_own_ctx;

static inline size_t
ml_own_hash(const void *p)
{
    return (size_t)(((uintptr_t)p >> 4) * UINT64_C(0x9E3779B97F4A7C15) >> 20);
}

static inline uint32_t
ml_own_find_index(const ml_own_ctx *c, const void *p)
{
    for (size_t k = ml_own_hash(p) & c->mask;; k = (k + 1) & c->mask) {
        uint32_t s = c->slots[k];
        if (!s)
            return ML_OWN_NONE;
        if (c->objs[s - 1] == p)
            return s - 1;
    }
}

static inline int
ml_own_is_stop(const ml_own_ctx *c, const void *p)
{
    for (size_t k = ml_own_hash(p) & c->smask;; k = (k + 1) & c->smask) {
        if (!c->stops[k])
            return 0;
        if (c->stops[k] == p)
            return 1;
    }
}

static int
ml_own_rehash(ml_own_ctx *c, size_t size)
{
    uint32_t *slots = calloc(size, sizeof(*slots));
    if (!slots)
        return -1;
    free(c->slots);
    c->slots = slots;
    c->mask = size - 1;
    for (uint32_t i = 0; i < c->n; i++) {
        size_t k = ml_own_hash(c->objs[i]) & c->mask;
        while (c->slots[k])
            k = (k + 1) & c->mask;
        c->slots[k] = i + 1;
    }
    return 0;
}

/* The candidate index of `o`, added (refcount copied, queued) when new;
 * ML_OWN_NONE when out of memory. */
static uint32_t
ml_own_add(ml_own_ctx *c, PyObject *o)
{
    uint32_t i = ml_own_find_index(c, o);
    if (i != ML_OWN_NONE)
        return i;
    if (c->n == c->cap) {
        if (c->cap >= UINT32_MAX / 2)
            return ML_OWN_NONE;
        uint32_t cap = c->cap ? c->cap * 2 : 4096;
        PyObject **objs = realloc(c->objs, (size_t)cap * sizeof(*objs));
        if (objs)
            c->objs = objs;
        int64_t *refs = objs ? realloc(c->refs, (size_t)cap * sizeof(*refs)) : NULL;
        if (refs)
            c->refs = refs;
        uint32_t *work = refs ? realloc(c->work, (size_t)cap * sizeof(*work)) : NULL;
        if (!work)
            return ML_OWN_NONE;
        c->work = work;
        c->cap = cap;
    }
    if (((size_t)c->n + 1) * 2 > c->mask + 1 && ml_own_rehash(c, (c->mask + 1) * 2) < 0)
        return ML_OWN_NONE;
    i = c->n++;
    c->objs[i] = o;
    c->refs[i] = (int64_t)Py_REFCNT(o);
    size_t k = ml_own_hash(o) & c->mask;
    while (c->slots[k])
        k = (k + 1) & c->mask;
    c->slots[k] = i + 1;
    c->work[c->nwork++] = i; /* each index is queued once: cap slots suffice */
    return i;
}

/* visitproc of steps 1-2: one reference to `o` from memlens' side. */
static int
ml_own_visit_sub(PyObject *o, void *arg)
{
    ml_own_ctx *c = arg;
    if (!o)
        return 0;
    if (o == c->cur_type)
        c->type_seen = 1;
    if (ml_own_is_stop(c, o))
        return 0;
    uint32_t i = ml_own_add(c, o);
    if (i == ML_OWN_NONE) {
        c->oom = 1;
        return 1;
    }
    c->refs[i]--;
    return 0;
}

/* visitproc: a reference to `o` from the interpreter's bookkeeping
 * (sys.modules, the extension module table): subtracted when `o` is one of
 * memlens' modules, ignored otherwise. */
static int
ml_own_visit_root(PyObject *o, void *arg)
{
    ml_own_ctx *c = arg;
    return ml_own_is_stop(c, o) ? 0 : ml_own_visit_sub(o, c);
}

/* The weak reference to class `tp` that each of its bases keeps in its
 * table of subclasses (type.__subclasses__: one shared reference object,
 * one entry per base), as a candidate less those entries. */
static PyObject *
ml_own_subclass_ref_of(PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) || !tp->tp_bases || !PyTuple_Check(tp->tp_bases))
        return NULL;
    for (PyWeakReference *r = (PyWeakReference *)tp->tp_weaklist; r; r = r->wr_next) {
        if (Py_TYPE(r) == &_PyWeakref_RefType && !r->wr_callback)
            return (PyObject *)r;
    }
    return NULL;
}

static void
ml_own_subclass_ref(ml_own_ctx *c, PyTypeObject *tp)
{
    PyObject *r = ml_own_subclass_ref_of(tp);
    for (Py_ssize_t i = 0; r && i < PyTuple_GET_SIZE(tp->tp_bases) && !c->oom; i++)
        (void)ml_own_visit_sub(r, c);
}

/* visitproc: a callable os.register_at_fork() holds. Subtracted when it
 * is memlens': a candidate already, a bound method of one, or a function
 * of one of memlens' modules (random's `_inst.seed`, threading's
 * `_after_fork`); a program's stays the program's. */
static int
ml_own_visit_at_fork(PyObject *o, void *arg)
{
    ml_own_ctx *c = arg;
    PyObject *owner = PyMethod_Check(o) ? PyMethod_GET_SELF(o) : PyFunction_Check(o) ? PyFunction_GET_GLOBALS(o) : o;
    if (ml_own_find_index(c, o) == ML_OWN_NONE && ml_own_find_index(c, owner) == ML_OWN_NONE)
        return 0;
    return ml_own_visit_sub(o, c);
}

/* Step 3's marks: held from outside, weakly (a function's globals are not
 * followed) or fully (reached through a module: everything is). */
#define ML_OWN_WEAK 1
#define ML_OWN_FULL 2

/* Mark candidate `o` (at least `mark`) and queue it when that is more
 * than it had. */
static void
ml_own_mark(ml_own_ctx *c, PyObject *o, uint8_t mark)
{
    uint32_t i = o ? ml_own_find_index(c, o) : ML_OWN_NONE;
    if (i == ML_OWN_NONE)
        return;
    if (PyModule_Check(o))
        mark = ML_OWN_FULL;
    if (c->flag[i] < mark) {
        c->work[c->nwork++] = i; /* twice at most (weak, then full): 2n slots */
        c->flag[i] = mark;
        /* a module's dict the program fully holds (a function's globals,
         * reached from a module of the program's) was imported: the module
         * too (its entry in sys.modules) */
        if (mark == ML_OWN_FULL && c->module_of[i] != ML_OWN_NONE)
            ml_own_mark(c, c->objs[c->module_of[i]], ML_OWN_FULL);
    }
}

/* visitproc of step 3: `o` is reached from an object held from outside. */
static int
ml_own_visit_mark(PyObject *o, void *arg)
{
    ml_own_ctx *c = arg;
    if (o && o != c->gate)
        ml_own_mark(c, o, c->mark);
    return 0;
}

/* Every reference `o` holds, each once: tp_traverse, then what it leaves
 * out on purpose (walk.c reaches the same objects). */
static void
ml_own_referents(ml_own_ctx *c, PyObject *o, visitproc visit)
{
    PyTypeObject *tp = Py_TYPE(o);
    c->cur_type = (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) ? (PyObject *)tp : NULL;
    c->type_seen = 0;
    if (tp->tp_traverse && PyObject_IS_GC(o) && !ml_compat_traverse_unsafe(o) && tp->tp_traverse(o, visit, c))
        return;
    if (PyDict_Check(o)) {
        if (ml_compat_dict_keys_untraversed(o)) {
            ml_compat_dict_entries e;
            ml_compat_dict_entries_of(o, &e);
            for (size_t i = 0; i < e.n; i++) {
                if (e.values[i * e.vstride] && visit(e.keys[i * e.kstride], c))
                    return;
            }
        }
    } else if (PyType_Check(o) && (tp = (PyTypeObject *)o, tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyHeapTypeObject *et = (PyHeapTypeObject *)o;
        if ((et->ht_name && visit(et->ht_name, c)) || (et->ht_qualname && visit(et->ht_qualname, c)) ||
            (et->ht_slots && visit(et->ht_slots, c)))
            return;
    } else if (PyCode_Check(o)) {
        ml_compat_code_visit(o, visit, c);
    }
    /* an instance holds its class; a traverse that did not say so (a
     * non-GC instance, an extension type) has it visited here */
    if (c->cur_type && !c->type_seen)
        (void)visit(c->cur_type, c);
}

static int
ml_own_add_stop(ml_own_ctx *c, PyObject *o)
{
    if (!o)
        return 0;
    for (size_t k = ml_own_hash(o) & c->smask;; k = (k + 1) & c->smask) {
        if (!c->stops[k]) {
            c->stops[k] = o;
            return 0;
        }
        if (c->stops[k] == o)
            return 0;
    }
}

/* A memlens module by name: "memlens" or "memlens.*" (imported at any
 * time), or one of the registered names. */
static int
ml_own_is_root_name(PyObject *key)
{
    if (!PyUnicode_Check(key))
        return 0;
    if (PyUnicode_CompareWithASCIIString(key, "memlens") == 0 ||
        PyUnicode_Tailmatch(key, ml_own_prefix, 0, PY_SSIZE_T_MAX, -1) == 1)
        return 1;
    return PySet_Contains(ml_own_names, key) == 1;
}

/* ---- memlens' frames ---- */

typedef struct {
    ml_own_ctx *c;
    size_t entry; /* depth of the entry frame; SIZE_MAX: not on the stack */
} ml_own_frames;

static int
ml_own_pick_entry(void *arg, PyObject *code, size_t depth)
{
    ml_own_frames *f = arg;
    if (code == ml_own_entry && f->entry == SIZE_MAX)
        f->entry = depth;
    return 0;
}

static int
ml_own_pick(void *arg, PyObject *code, size_t depth)
{
    ml_own_frames *f = arg;
    if (depth >= f->entry)
        return 1;
    PyObject *file = ((PyCodeObject *)code)->co_filename;
    if (!file || !PyUnicode_Check(file))
        return 0;
    Py_ssize_t r = PyUnicode_Tailmatch(file, ml_own_dir, 0, PY_SSIZE_T_MAX, -1);
    if (r < 0) {
        PyErr_Clear();
        return 0;
    }
    return (int)r;
}

static int
ml_own_visit_frame_ref(PyObject *o, void *arg)
{
    ml_own_frames *f = arg;
    return ml_own_visit_sub(o, f->c);
}

/* ---- steps ---- */

static int
ml_own_roots(ml_own_ctx *c)
{
    PyObject *modules = PyImport_GetModuleDict();
    Py_ssize_t pos = 0;
    PyObject *key, *mod;
    size_t nmods = modules ? (size_t)PyDict_GET_SIZE(modules) : 0;
    size_t size = 64;
    while (size < nmods * 4 + 16)
        size *= 2;
    c->stops = calloc(size, sizeof(*c->stops));
    if (!c->stops || ml_own_rehash(c, 4096) < 0)
        return -1;
    c->smask = size - 1;
    /* the modules that are not memlens', and their dicts: not entered */
    while (modules && PyDict_Next(modules, &pos, &key, &mod)) {
        if (PyModule_Check(mod) && !ml_own_is_root_name(key))
            (void)(ml_own_add_stop(c, mod) || ml_own_add_stop(c, PyModule_GetDict(mod)));
    }
    PyErr_Clear();
    /* memlens' modules, less sys.modules' reference to each */
    pos = 0;
    while (modules && PyDict_Next(modules, &pos, &key, &mod)) {
        if (PyModule_Check(mod) && ml_own_visit_root(mod, c))
            return -1;
    }
    /* the interpreter's table of extension modules (memlens._engine,
     * _random...): a stop is never entered, so only memlens' are counted */
    ml_compat_extension_modules_visit(ml_own_visit_root, c);
    if (c->oom)
        return -1;
    /* what the engine's tables hold */
    PyObject *held[] = {ml_own_names, ml_own_dir, ml_own_entry, ml_own_prefix};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        if (ml_own_visit_sub(held[i], c))
            return -1;
    }
    size_t ntypes;
    PyTypeObject *const *types = ml_walk_own_types(&ntypes);
    for (size_t i = 0; i < ntypes; i++) {
        if (ml_own_visit_sub((PyObject *)types[i], c))
            return -1;
    }
    /* memlens' frames, less their references */
    ml_own_frames f = {c, SIZE_MAX};
    ml_compat_own_frames(ml_own_pick_entry, ml_own_visit_frame_ref, &f);
    if (f.entry == SIZE_MAX && PyThread_get_thread_ident() == ml_own_thread)
        f.entry = 0; /* the program has ended: every frame here is memlens' */
    ml_compat_own_frames(ml_own_pick, ml_own_visit_frame_ref, &f);
    return c->oom ? -1 : 0;
}

static void
ml_own_release_ctx(ml_own_ctx *c)
{
    free(c->objs);
    free(c->refs);
    free(c->flag);
    free(c->module_of);
    free(c->slots);
    free(c->work);
    free(c->stops);
}

/* Steps 1-2 for the candidates queued: subtract each one's references from
 * the ones it refers to (queueing those met first), until none is left or
 * memory runs out (c->oom). */
static void
ml_own_subtract_pending(ml_own_ctx *c)
{
    while (c->nwork && !c->oom) {
        uint32_t i = c->work[--c->nwork];
        ml_own_referents(c, c->objs[i], ml_own_visit_sub);
        if (PyType_Check(c->objs[i]))
            ml_own_subclass_ref(c, (PyTypeObject *)c->objs[i]);
    }
}

int
ml_ownset_find(ml_ownset *out)
{
    memset(out, 0, sizeof(*out));
    if (ml_addrbits_init(&out->own) < 0)
        return -1;
    if (!ml_own_names)
        return 0;
    ml_own_ctx c;
    memset(&c, 0, sizeof(c));
    /* steps 1-2: the candidates, each reference from one subtracted */
    if (ml_own_roots(&c) < 0)
        goto fail;
    ml_own_subtract_pending(&c);
    /* the at-fork callables of memlens' modules, and what they alone reach */
    ml_compat_at_fork_visit(ml_own_visit_at_fork, &c);
    ml_own_subtract_pending(&c);
    if (c.oom)
        goto fail;
    /* step 3: held from outside, and what that reaches */
    c.flag = calloc((size_t)c.n + 1, 1);
    c.module_of = malloc(((size_t)c.n + 1) * sizeof(*c.module_of));
    uint32_t *work = realloc(c.work, ((size_t)c.n * 2 + 1) * sizeof(*work));
    if (work)
        c.work = work;
    if (!c.flag || !c.module_of || !work)
        goto fail;
    memset(c.module_of, 0xFF, ((size_t)c.n + 1) * sizeof(*c.module_of));
    for (uint32_t i = 0; i < c.n; i++) {
        if (PyModule_Check(c.objs[i])) {
            uint32_t d = ml_own_find_index(&c, PyModule_GetDict(c.objs[i]));
            if (d != ML_OWN_NONE)
                c.module_of[d] = i;
        }
    }
    for (uint32_t i = 0; i < c.n; i++) {
        if (c.refs[i] <= 0 || c.flag[i])
            continue;
        ml_own_mark(&c, c.objs[i], ML_OWN_WEAK);
        while (c.nwork) {
            PyObject *o = c.objs[c.work[--c.nwork]];
            c.mark = c.flag[ml_own_find_index(&c, o)];
            c.gate = PyFunction_Check(o) && c.mark == ML_OWN_WEAK ? PyFunction_GET_GLOBALS(o)
                                                                   : ml_compat_frame_back(o);
            ml_own_referents(&c, o, ml_own_visit_mark);
            if (PyType_Check(o)) /* a class of the program's: its entries too */
                (void)ml_own_visit_mark(ml_own_subclass_ref_of((PyTypeObject *)o), &c);
        }
    }
    c.gate = NULL;
    /* step 4 */
    out->candidates = c.n;
    for (uint32_t i = 0; i < c.n; i++) {
        if (c.flag[i])
            continue;
        if (ml_addrbits_add(&out->own, (uintptr_t)c.objs[i]) < 0)
            goto fail;
        out->count++;
    }
    ml_own_release_ctx(&c);
    return 0;
fail:
    ml_own_release_ctx(&c);
    ml_ownset_release(out);
    return -1;
}

void
ml_ownset_release(ml_ownset *s)
{
    ml_addrbits_release(&s->own);
    s->count = s->candidates = 0;
}

int
ml_ownset_register(PyObject *names, PyObject *own_dir, PyObject *entry_code)
{
    if (names == Py_None) {
        Py_CLEAR(ml_own_names);
        Py_CLEAR(ml_own_dir);
        Py_CLEAR(ml_own_entry);
        return 0;
    }
    if (!PyFrozenSet_Check(names) || !PyUnicode_Check(own_dir) || !PyCode_Check(entry_code)) {
        PyErr_SetString(PyExc_TypeError, "heap_own_modules(frozenset of names, str, code), or (None, None, None)");
        return -1;
    }
    if (!ml_own_prefix && !(ml_own_prefix = PyUnicode_FromString("memlens.")))
        return -1;
    Py_INCREF(names);
    Py_INCREF(own_dir);
    Py_INCREF(entry_code);
    Py_XSETREF(ml_own_names, names);
    Py_XSETREF(ml_own_dir, own_dir);
    Py_XSETREF(ml_own_entry, entry_code);
    ml_own_thread = PyThread_get_thread_ident();
    return 0;
}

int
ml_ownset_active(void)
{
    return ml_own_names != NULL;
}

int
ml_ownset_setup(void)
{
    return ml_compat_own_setup();
}
