/* types.c: block classification and type interning (see types.h). */
#define _GNU_SOURCE 1
#include "capture/types.h"

#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
    PyTypeObject *tp; /* NULL = empty */
    ml_type_id id;
    uint32_t preheader; /* ml_compat_preheader(tp): fixed once the type is ready */
    size_t basicsize;   /* tp_basicsize, fixed too */
} ml_type_slot;

typedef struct {
    PyTypeObject *tp;
    uint32_t flags; /* ML_TYPEF_* */
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
    pid_t pid;
    PyObject *module_key; /* "__module__" */
};

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
ml_types_add_info(ml_types *t, PyTypeObject *tp, uint32_t flags, const char *name, size_t len)
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
    t->info[id] = (ml_type_info){tp, flags};
    ml_writer_type_def(t->w, id, name, len, flags);
    return id;
}

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
    t->pid = getpid();
    t->module_key = PyUnicode_InternFromString("__module__");
    static const char *kinds[] = {"<raw>", "<PyMem buffer>", "<PyObject buffer>", "<dict keys>"};
    for (int i = 0; i < 4; i++)
        ml_types_add_info(t, NULL, ML_TYPEF_BUFFER, kinds[i], strlen(kinds[i]));
    return t;
}

void
ml_types_free(ml_types *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t->info);
    free(t);
}

static int
ml_types_safe_read(ml_types *t, const void *addr, void *out, size_t n)
{
    struct iovec local = {out, n}, remote = {(void *)addr, n};
    return process_vm_readv(t->pid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
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

/* Copy a NUL-terminated string from untrusted memory; returns its length
 * (0 if unreadable). */
static size_t
ml_types_safe_string(ml_types *t, const char *src, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        size_t chunk = cap - n < 64 ? cap - n : 64;
        /* never cross a page boundary in one read: the next page may be unmapped */
        size_t to_page = 4096 - ((uintptr_t)(src + n) & 4095);
        if (chunk > to_page)
            chunk = to_page;
        if (ml_types_safe_read(t, src + n, buf + n, chunk) < 0)
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
ml_types_safe_isinstance(ml_types *t, const void *o, PyTypeObject *tp)
{
    PyObject head;
    return o && ml_types_safe_read(t, o, &head, sizeof(head)) == 0 && Py_TYPE(&head) == tp;
}

/* "module.QualName" for classes, tp_name for static types. Only reads the
 * type through checked copies: it may be the first time we meet it. */
static size_t
ml_types_name(ml_types *t, PyTypeObject *tp, char *buf, size_t cap)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return ml_types_safe_string(t, tp->tp_name, buf, cap);
    PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
    const char *mod = NULL, *qual = NULL;
    size_t mlen = 0, qlen = 0;
    char mbuf[256], qbuf[512];
    PyObject *m = NULL;
    if (tp->tp_dict && t->module_key && ml_types_safe_isinstance(t, tp->tp_dict, &PyDict_Type))
        m = PyDict_GetItem(tp->tp_dict, t->module_key);
    if (m && PyUnicode_Check(m))
        mlen = ml_compat_str_utf8(m, mbuf, sizeof(mbuf), &mod);
    if (ml_types_safe_isinstance(t, ht->ht_qualname, &PyUnicode_Type)) {
        qlen = ml_compat_str_utf8(ht->ht_qualname, qbuf, sizeof(qbuf), &qual);
    } else {
        qlen = ml_types_safe_string(t, tp->tp_name, qbuf, sizeof(qbuf));
        qual = qbuf;
    }
    size_t n = 0;
    if (mlen && !(mlen == 8 && memcmp(mod, "builtins", 8) == 0)) {
        n = mlen < cap ? mlen : cap;
        memcpy(buf, mod, n);
        if (n < cap)
            buf[n++] = '.';
    }
    size_t q = qlen < cap - n ? qlen : cap - n;
    memcpy(buf + n, qual, q);
    return n + q;
}

static ml_type_id
ml_types_intern(ml_types *t, PyTypeObject *tp, ml_type_slot *slot)
{
    if ((t->count + 1) * 2 > t->mask + 1) {
        if (ml_types_grow(t) < 0)
            return 0;
        slot = ml_types_find(t, tp);
    }
    char name[1024];
    size_t len = ml_types_name(t, tp, name, sizeof(name));
    uint32_t flags = PyType_HasFeature(tp, Py_TPFLAGS_TYPE_SUBCLASS) ? ML_TYPEF_METATYPE : 0;
    ml_type_id id = ml_types_add_info(t, tp, flags, name, len);
    if (!id)
        return 0;
    slot->tp = tp;
    slot->id = id;
    slot->preheader = (uint32_t)ml_compat_preheader(tp);
    slot->basicsize = (size_t)tp->tp_basicsize;
    t->count++;
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) { /* only these are ever freed */
        size_t word;
        uint64_t bit = ml_types_heap_bit(tp, &word);
        t->heap_bits[word] |= bit;
    }
    return id;
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
    if (ml_types_safe_read(t, (void *)cand, &head, sizeof(head)) < 0 ||
        ml_types_safe_read(t, (char *)cand + offsetof(PyTypeObject, tp_flags), &flags, sizeof(flags)) < 0)
        goto not_a_type;
    PyTypeObject *meta = Py_TYPE(&head);
    if (meta != &PyType_Type) {
        unsigned long mflags;
        if (!meta || ((uintptr_t)meta & 7) ||
            ml_types_safe_read(t, (char *)meta + offsetof(PyTypeObject, tp_flags), &mflags, sizeof(mflags)) < 0 ||
            !(mflags & Py_TPFLAGS_TYPE_SUBCLASS))
            goto not_a_type;
    }
    if (!(flags & Py_TPFLAGS_READY) || (flags & Py_TPFLAGS_READYING))
        return NULL; /* a type being built: may become valid, do not cache */
    Py_ssize_t sizes[2];
    char c;
    const char *name;
    if (ml_types_safe_read(t, (char *)cand + offsetof(PyTypeObject, tp_basicsize), sizes, sizeof(sizes)) < 0 ||
        sizes[0] < (Py_ssize_t)sizeof(PyObject) || sizes[0] > (1 << 20) || sizes[1] < 0 || sizes[1] > (1 << 20) ||
        ml_types_safe_read(t, (char *)cand + offsetof(PyTypeObject, tp_name), &name, sizeof(name)) < 0 ||
        ml_types_safe_read(t, name, &c, 1) < 0)
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
        if (ts->tp != &PyUnicode_Type && size < off + ts->basicsize)
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
