/* types.c: block classification and type interning (see types.h). */
#define _GNU_SOURCE 1
#include "capture/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
    PyTypeObject *tp; /* NULL = empty */
    ml_type_id id;
    uint32_t preheader; /* ml_compat_preheader(tp): fixed once the type is ready */
    size_t minsize;     /* the smallest block an instance can have (see ml_types_minsize) */
} ml_type_slot;

typedef struct {
    PyTypeObject *tp;
    uint32_t flags;   /* ML_TYPEF_* */
    const char *name; /* owned by t->names; NULL for the buffer kinds */
} ml_type_info;

#define ML_HEAP_BITS 8192
#define ML_NEG_CACHE 1024

struct ml_types {
    ml_writer *w;
    ml_type_slot *slots;
    size_t mask, count;
    ml_type_info *info; /* by id */
    size_t ninfo, cap;
    uintptr_t neg[ML_NEG_CACHE]; /* pointers known not to be types */
    /* a bit per hash of every heap type the table holds (never cleared):
     * most frees are of no type, and this answers them from L1 */
    uint64_t heap_bits[ML_HEAP_BITS / 64];
    ml_typenames *names;
    /* heap at exit: buffer kinds named by owner (ml_types_label) */
    struct ml_label { char *name; size_t len; ml_type_id id; } *labels;
    size_t label_mask, nlabels;
    ml_type_id capsule; /* PyCapsule_Type's id once met (ml_types_capsule) */
};

/* ---- reads of memory that may not be mapped ---- */

/* Copy n bytes from addr; -1 (never a fault) if they are not readable.
 * getpid() each time: a forked child reads its own memory. */
static int
ml_types_safe_read(const void *addr, void *out, size_t n)
{
    struct iovec local = {out, n}, remote = {(void *)addr, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* Copy a NUL-terminated string from untrusted memory; returns its length
 * (0 if unreadable). */
static size_t
ml_types_safe_string(const char *src, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        size_t chunk = cap - n < 64 ? cap - n : 64;
        /* never cross a page boundary in one read: the next page may be unmapped */
        size_t to_page = 4096 - ((uintptr_t)(src + n) & 4095);
        if (chunk > to_page)
            chunk = to_page;
        if (ml_types_safe_read(src + n, buf + n, chunk) < 0)
            return 0;
        void *nul = memchr(buf + n, 0, chunk);
        if (nul)
            return (size_t)((char *)nul - buf);
        n += chunk;
    }
    return cap;
}

/* 1 if `o` is readable and an exact instance of `tp`. */
static int
ml_types_safe_isinstance(const void *o, PyTypeObject *tp)
{
    PyObject head;
    return o && ml_types_safe_read(o, &head, sizeof(head)) == 0 && Py_TYPE(&head) == tp;
}

/* ---- names (see types.h) ---- */

typedef struct {
    uint64_t hash;          /* 0 = empty slot */
    const PyTypeObject *tp; /* NULL once the type died: never matched again */
    char *name;             /* malloc'd, NUL-terminated */
} ml_name_slot;

struct ml_typenames {
    ml_name_slot *slots;
    size_t mask, count;
    PyObject *module_key; /* "__module__" */
};

static destructor ml_types_class_dealloc; /* a class statement's tp_dealloc */

/* Every class statement gives its class the same tp_dealloc: learn it from
 * a class the import system always has (making one would leave a garbage
 * type behind). Without it, every type is named as a C type. */
int
ml_typenames_init(void)
{
    if (ml_types_class_dealloc)
        return 0;
    PyObject *mod = PyImport_ImportModule("_frozen_importlib");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "ModuleSpec") : NULL;
    if (cls && PyType_Check(cls) && PyType_HasFeature((PyTypeObject *)cls, Py_TPFLAGS_HEAPTYPE))
        ml_types_class_dealloc = ((PyTypeObject *)cls)->tp_dealloc;
    Py_XDECREF(cls);
    Py_XDECREF(mod);
    PyErr_Clear();
    return 0;
}

ml_typenames *
ml_typenames_new(void)
{
    ml_typenames *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->slots = calloc(256, sizeof(ml_name_slot));
    if (!n->slots) {
        free(n);
        return NULL;
    }
    n->mask = 255;
    n->module_key = PyUnicode_InternFromString("__module__");
    return n;
}

void
ml_typenames_free(ml_typenames *n)
{
    if (!n)
        return;
    for (size_t i = 0; i <= n->mask; i++)
        free(n->slots[i].name);
    free(n->slots);
    free(n);
}

static uint64_t
ml_typenames_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

/* The slot holding `name`, or the empty slot where it would go. */
static ml_name_slot *
ml_typenames_find(ml_typenames *n, const char *name, size_t len, uint64_t h)
{
    size_t i = (size_t)h & n->mask;
    while (n->slots[i].hash) {
        ml_name_slot *s = &n->slots[i];
        if (s->hash == h && strlen(s->name) == len && memcmp(s->name, name, len) == 0)
            return s;
        i = (i + 1) & n->mask;
    }
    return &n->slots[i];
}

static int
ml_typenames_grow(ml_typenames *n)
{
    size_t cap = (n->mask + 1) * 2;
    ml_name_slot *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i <= n->mask; i++) {
        if (!n->slots[i].hash)
            continue;
        size_t j = (size_t)n->slots[i].hash & (cap - 1);
        while (ns[j].hash)
            j = (j + 1) & (cap - 1);
        ns[j] = n->slots[i];
    }
    free(n->slots);
    n->slots = ns;
    n->mask = cap - 1;
    return 0;
}

/* "module.QualName" for heap types, tp_name for static types. Only reads
 * the type through checked copies: it may be the first time we meet it. */
static size_t
ml_typenames_base(ml_typenames *n, PyTypeObject *tp, char *buf, size_t cap)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return ml_types_safe_string(tp->tp_name, buf, cap);
    PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
    const char *mod = NULL, *qual = NULL;
    size_t mlen = 0, qlen = 0;
    char mbuf[256], qbuf[512];
    PyObject *m = NULL;
    if (tp->tp_dict && n->module_key && ml_types_safe_isinstance(tp->tp_dict, &PyDict_Type))
        m = PyDict_GetItem(tp->tp_dict, n->module_key);
    if (m && PyUnicode_Check(m))
        mlen = ml_compat_str_utf8(m, mbuf, sizeof(mbuf), &mod);
    if (ml_types_safe_isinstance(ht->ht_qualname, &PyUnicode_Type)) {
        qlen = ml_compat_str_utf8(ht->ht_qualname, qbuf, sizeof(qbuf), &qual);
    } else {
        qlen = ml_types_safe_string(tp->tp_name, qbuf, sizeof(qbuf));
        qual = qbuf;
    }
    size_t len = 0;
    if (mlen && !(mlen == 8 && memcmp(mod, "builtins", 8) == 0)) {
        len = mlen < cap ? mlen : cap;
        memcpy(buf, mod, len);
        if (len < cap)
            buf[len++] = '.';
    }
    size_t q = qlen < cap - len ? qlen : cap - len;
    memcpy(buf + len, qual, q);
    return len + q;
}

const char *
ml_typenames_name(ml_typenames *n, PyTypeObject *tp, size_t *len)
{
    char name[1100];
    size_t base = ml_typenames_base(n, tp, name, 1024);
    const char *kind = ml_types_class_dealloc && tp->tp_dealloc == ml_types_class_dealloc ? "Python class" : "C type";
    for (int round = 0;; round++) {
        size_t l = base;
        if (round == 1)
            l += (size_t)snprintf(name + base, sizeof(name) - base, " (%s)", kind);
        else if (round > 1)
            l += (size_t)snprintf(name + base, sizeof(name) - base, " (%s #%d)", kind, round);
        if (l >= sizeof(name))
            l = sizeof(name) - 1;
        uint64_t h = ml_typenames_hash(name, l);
        ml_name_slot *s = ml_typenames_find(n, name, l, h);
        if (s->hash) {
            if (s->tp == tp) {
                *len = l;
                return s->name;
            }
            continue; /* taken by another type (or a dead one) */
        }
        if ((n->count + 1) * 2 > n->mask + 1) {
            if (ml_typenames_grow(n) < 0)
                return NULL;
            s = ml_typenames_find(n, name, l, h);
        }
        char *copy = malloc(l + 1);
        if (!copy)
            return NULL;
        memcpy(copy, name, l);
        copy[l] = 0;
        *s = (ml_name_slot){h, tp, copy};
        n->count++;
        *len = l;
        return copy;
    }
}

/* tp died: its name stays taken, by nobody. */
static void
ml_typenames_bury(ml_typenames *n, const char *name)
{
    size_t len = strlen(name);
    ml_name_slot *s = ml_typenames_find(n, name, len, ml_typenames_hash(name, len));
    if (s->hash)
        s->tp = NULL;
}

static inline size_t
ml_types_hash(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p >> 3) * 0x9E3779B97F4A7C15ull >> 28);
}

/* tp's bit in heap_bits: word *word, mask returned */
static inline uint64_t
ml_types_heap_bit(const void *tp, size_t *word)
{
    size_t h = ml_types_hash(tp) % ML_HEAP_BITS;
    *word = h / 64;
    return 1ull << (h % 64);
}

static ml_type_id
ml_types_add_info(ml_types *t, PyTypeObject *tp, uint32_t flags, const char *name, size_t len, int keep_name)
{
    if (t->ninfo + 1 >= t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        ml_type_info *ni = realloc(t->info, cap * sizeof(*ni));
        if (!ni)
            return 0;
        t->info = ni;
        t->cap = cap;
    }
    ml_type_id id = (ml_type_id)++t->ninfo;
    t->info[id] = (ml_type_info){tp, flags, keep_name ? name : NULL};
    ml_writer_type_def(t->w, id, name, len, flags);
    return id;
}

ml_type_id
ml_types_add_kind(ml_types *t, const char *name, size_t len)
{
    return ml_types_add_info(t, NULL, ML_TYPEF_BUFFER, name, len, 0);
}

/* The buffer kinds' names, by id. */
static const char *const ml_types_kinds[] = {NULL, "<raw>", "<PyMem buffer>", "<PyObject buffer>", "<dict keys>"};

ml_types *
ml_types_new(ml_writer *w)
{
    ml_types *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->w = w;
    t->slots = calloc(1024, sizeof(ml_type_slot));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->mask = 1023;
    t->names = ml_typenames_new();
    if (!t->names) {
        free(t->slots);
        free(t);
        return NULL;
    }
    for (int i = ML_KIND_RAW; i <= ML_KIND_DICT_KEYS; i++)
        ml_types_add_info(t, NULL, ML_TYPEF_BUFFER, ml_types_kinds[i], strlen(ml_types_kinds[i]), 0);
    return t;
}

void
ml_types_free(ml_types *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t->info);
    for (size_t i = 0; t->labels && i <= t->label_mask; i++)
        free(t->labels[i].name);
    free(t->labels);
    ml_typenames_free(t->names);
    free(t);
}

static ml_type_slot *
ml_types_find(ml_types *t, const PyTypeObject *tp)
{
    size_t i = ml_types_hash(tp) & t->mask;
    while (t->slots[i].tp) {
        if (t->slots[i].tp == tp)
            return &t->slots[i];
        i = (i + 1) & t->mask;
    }
    return &t->slots[i];
}

static int
ml_types_grow(ml_types *t)
{
    size_t n = (t->mask + 1) * 2;
    ml_type_slot *ns = calloc(n, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].tp)
            continue;
        size_t j = ml_types_hash(t->slots[i].tp) & (n - 1);
        while (ns[j].tp)
            j = (j + 1) & (n - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->mask = n - 1;
    return 0;
}

/* The smallest block an instance of tp can live in, for the size test of
 * ml_types_classify. PyType_GenericAlloc never allocates less than
 * tp_basicsize (variable-size objects, __slots__ and 3.13's inline values
 * only add to it). A type with an allocator of its own may: datetime and
 * time allocate naive objects without the tzinfo field, below
 * tp_basicsize; str's tp_basicsize is that of the non-compact layout. For
 * those only the header is required. */
static size_t
ml_types_minsize(PyTypeObject *tp)
{
    if (tp == &PyUnicode_Type || tp->tp_alloc != PyType_GenericAlloc)
        return sizeof(PyObject);
    return (size_t)tp->tp_basicsize;
}

static ml_type_id
ml_types_intern(ml_types *t, PyTypeObject *tp, ml_type_slot *slot)
{
    if ((t->count + 1) * 2 > t->mask + 1) {
        if (ml_types_grow(t) < 0)
            return 0;
        slot = ml_types_find(t, tp);
    }
    size_t len;
    const char *name = ml_typenames_name(t->names, tp, &len);
    if (!name)
        return 0;
    uint32_t flags = PyType_HasFeature(tp, Py_TPFLAGS_TYPE_SUBCLASS) ? ML_TYPEF_METATYPE : 0;
    ml_type_id id = ml_types_add_info(t, tp, flags, name, len, 1);
    if (!id)
        return 0;
    slot->tp = tp;
    slot->id = id;
    slot->preheader = (uint32_t)ml_compat_preheader(tp);
    slot->minsize = ml_types_minsize(tp);
    t->count++;
    if (tp == &PyCapsule_Type)
        t->capsule = id;
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) { /* only these are ever freed */
        size_t word;
        uint64_t bit = ml_types_heap_bit(tp, &word);
        t->heap_bits[word] |= bit;
    }
    return id;
}

const char *
ml_types_known_name(const ml_types *t, PyTypeObject *tp)
{
    const ml_type_slot *s = ml_types_find((ml_types *)t, tp); /* only reads */
    return s->tp ? t->info[s->id].name : NULL;
}

const char *
ml_types_id_name(const ml_types *t, ml_type_id id)
{
    if (id >= ML_KIND_RAW && id <= ML_KIND_DICT_KEYS)
        return ml_types_kinds[id];
    return id && id <= t->ninfo ? t->info[id].name : NULL;
}

ml_type_id
ml_types_capsule(const ml_types *t)
{
    return t->capsule;
}

ml_type_id
ml_types_of(ml_types *t, PyTypeObject *tp)
{
    ml_type_slot *s = ml_types_find(t, tp);
    return s->tp ? s->id : ml_types_intern(t, tp, s);
}

/* The slot of a candidate ob_type read from a block, or NULL if it is not
 * a live, ready type object. */
static const ml_type_slot *
ml_types_check(ml_types *t, uintptr_t cand)
{
    if (cand < 65536 || (cand & 7) || cand >= ((uintptr_t)1 << 47))
        return NULL;
    ml_type_slot *s = ml_types_find(t, (PyTypeObject *)cand);
    if (s->tp)
        return s;
    size_t ni = (cand >> 3) & (ML_NEG_CACHE - 1);
    if (t->neg[ni] == cand)
        return NULL;
    /* unknown pointer: read it without trusting it */
    PyObject head;
    unsigned long flags;
    if (ml_types_safe_read((void *)cand, &head, sizeof(head)) < 0 ||
        ml_types_safe_read((char *)cand + offsetof(PyTypeObject, tp_flags), &flags, sizeof(flags)) < 0)
        goto not_a_type;
    PyTypeObject *meta = Py_TYPE(&head);
    if (meta != &PyType_Type) {
        unsigned long mflags;
        if (!meta || ((uintptr_t)meta & 7) ||
            ml_types_safe_read((char *)meta + offsetof(PyTypeObject, tp_flags), &mflags, sizeof(mflags)) < 0 ||
            !(mflags & Py_TPFLAGS_TYPE_SUBCLASS))
            goto not_a_type;
    }
    if (!(flags & Py_TPFLAGS_READY) || (flags & Py_TPFLAGS_READYING))
        return NULL; /* a type being built: may become valid, do not cache */
    Py_ssize_t sizes[2];
    char c;
    const char *name;
    if (ml_types_safe_read((char *)cand + offsetof(PyTypeObject, tp_basicsize), sizes, sizeof(sizes)) < 0 ||
        sizes[0] < (Py_ssize_t)sizeof(PyObject) || sizes[0] > (1 << 20) || sizes[1] < 0 || sizes[1] > (1 << 20) ||
        ml_types_safe_read((char *)cand + offsetof(PyTypeObject, tp_name), &name, sizeof(name)) < 0 ||
        ml_types_safe_read(name, &c, 1) < 0)
        goto not_a_type;
    if (!ml_types_intern(t, (PyTypeObject *)cand, s))
        return NULL;
    return ml_types_find(t, (PyTypeObject *)cand); /* the table may have grown */
not_a_type:
    t->neg[ni] = cand;
    return NULL;
}

ml_type_id
ml_types_classify(ml_types *t, const void *block, size_t size, ml_domain domain, int freeing)
{
    if (domain == ML_DOMAIN_RAW)
        return ML_KIND_RAW;
    /* the strict test first: its fields must agree with the block size */
    if (ml_compat_is_dict_keys(block, size))
        return ML_KIND_DICT_KEYS;
    if (domain == ML_DOMAIN_MEM)
        return ML_KIND_MEM; /* objects are allocated in the OBJ domain */
    const char *b = block;
    for (size_t off = 0; off <= 32 && off + sizeof(PyObject) <= size; off += 16) {
        const PyObject *op = (const PyObject *)(b + off);
        Py_ssize_t rc = Py_REFCNT(op);
        if (!(ml_compat_refcnt_ok(rc) || (freeing && rc == 0)))
            continue;
        const ml_type_slot *ts = ml_types_check(t, (uintptr_t)Py_TYPE(op));
        if (!ts || ts->preheader != off)
            continue;
        if (size < off + ts->minsize)
            continue;
        return ts->id;
    }
    return ML_KIND_OBJ;
}

static void
ml_types_forget(ml_types *t, const PyTypeObject *tp)
{
    size_t i = ml_types_hash(tp) & t->mask;
    while (t->slots[i].tp) {
        if (t->slots[i].tp == tp)
            break;
        i = (i + 1) & t->mask;
    }
    if (!t->slots[i].tp)
        return;
    const char *name = t->info[t->slots[i].id].name;
    if (name) /* a new type made at this address gets a name of its own */
        ml_typenames_bury(t->names, name);
    /* backward-shift delete */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (!t->slots[j].tp)
            break;
        size_t home = ml_types_hash(t->slots[j].tp) & t->mask;
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].tp = NULL;
    t->count--;
}

int
ml_types_may_be_type(const ml_types *t, const void *block)
{
    const PyTypeObject *tp = (const PyTypeObject *)((const char *)block + ML_GC_HEAD_SIZE);
    size_t word;
    uint64_t bit = ml_types_heap_bit(tp, &word);
    /* ml_types_find only reads the table */
    return (t->heap_bits[word] & bit) && ml_types_find((ml_types *)t, tp)->tp != NULL;
}

void
ml_types_type_freed(ml_types *t, const void *block)
{
    /* type objects are GC objects without other pre-header fields */
    ml_types_forget(t, (const PyTypeObject *)((const char *)block + ML_GC_HEAD_SIZE));
}

/* ---- heap at exit: buffer kinds named by owner ---- */

static size_t
ml_types_label_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return (size_t)h;
}

ml_type_id
ml_types_label(ml_types *t, const char *name, size_t len)
{
    if (!t->labels || (t->nlabels + 1) * 2 > t->label_mask + 1) {
        size_t n = t->labels ? (t->label_mask + 1) * 2 : 256;
        struct ml_label *nl = calloc(n, sizeof(*nl));
        if (!nl)
            return 0;
        for (size_t i = 0; t->labels && i <= t->label_mask; i++) {
            if (!t->labels[i].name)
                continue;
            size_t j = ml_types_label_hash(t->labels[i].name, t->labels[i].len) & (n - 1);
            while (nl[j].name)
                j = (j + 1) & (n - 1);
            nl[j] = t->labels[i];
        }
        free(t->labels);
        t->labels = nl;
        t->label_mask = n - 1;
    }
    size_t i = ml_types_label_hash(name, len) & t->label_mask;
    for (; t->labels[i].name; i = (i + 1) & t->label_mask) {
        if (t->labels[i].len == len && !memcmp(t->labels[i].name, name, len))
            return t->labels[i].id;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, name, len);
    copy[len] = 0;
    ml_type_id id = ml_types_add_info(t, NULL, ML_TYPEF_BUFFER, copy, len, 0);
    if (!id) {
        free(copy);
        return 0;
    }
    t->labels[i] = (struct ml_label){copy, len, id};
    t->nlabels++;
    return id;
}

const char *
ml_types_name(ml_types *t, PyTypeObject *tp, size_t *len)
{
    const ml_type_slot *s = ml_types_find(t, tp);
    if (s->tp) {
        const char *n = t->info[s->id].name;
        if (n) {
            *len = strlen(n);
            return n;
        }
    }
    return ml_typenames_name(t->names, tp, len);
}
