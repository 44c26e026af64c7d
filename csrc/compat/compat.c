/* compat.c: version-specific reads of CPython's internal structs. */
#define Py_BUILD_CORE 1
#include "compat/compat.h"

#if PY_VERSION_HEX < 0x030B0000
#include "frameobject.h"
#else
#include "internal/pycore_frame.h"
#include "internal/pycore_code.h"
#endif
#include "internal/pycore_object.h"
#include "internal/pycore_interp.h"
#if PY_VERSION_HEX >= 0x030C0000
#include "internal/pycore_pystate.h"
#endif

#include <stdlib.h>
#include <string.h>

PyThreadState *
ml_compat_tstate_gil_held(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyThreadState_GetCurrent();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

PyThreadState *
ml_compat_tstate_with_gil(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked(); /* this thread's, NULL if detached */
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyThreadState_GetCurrent();
#else
    /* 3.10/3.11: the GIL holder's tstate, whichever thread that is. */
    PyThreadState *ts = _PyThreadState_UncheckedGet();
    if (ts && ts->thread_id == PyThread_get_thread_ident())
        return ts;
    return NULL;
#endif
}

int
ml_compat_walk(PyThreadState *ts, ml_pyframe *out, int max, const PyCodeObject *stop, int *truncated)
{
    int n = 0;
    *truncated = 0;
#if PY_VERSION_HEX < 0x030B0000
    for (PyFrameObject *f = ts->frame; f; f = f->f_back) {
        if (f->f_code == stop)
            break;
        if (n == max) {
            *truncated = 1;
            break;
        }
        out[n].code = f->f_code;
        out[n].offset = f->f_lasti < 0 ? 0 : (uint32_t)f->f_lasti * 2;
        out[n].frame = f;
        out[n].ip = (const void *)(intptr_t)f->f_lasti;
        n++;
    }
#else
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame *f = ts->current_frame;
#else
    _PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
#endif
    /* Only frames still being set up are incomplete, and only the innermost
     * ones can be: once a complete frame is found, its callers are complete
     * too, so their code objects are never touched. */
    int settled = 0;
    for (; f; f = f->previous) {
#if PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK)
            continue; /* shim frame */
#endif
#if PY_VERSION_HEX >= 0x030D0000
        PyObject *ex = f->f_executable;
        if (!ex || !PyCode_Check(ex))
            continue;
        PyCodeObject *co = (PyCodeObject *)ex;
        _Py_CODEUNIT *ip = f->instr_ptr;
#else
        PyCodeObject *co = f->f_code;
        _Py_CODEUNIT *ip = f->prev_instr;
#endif
        if (!settled) {
            if (f->owner != FRAME_OWNED_BY_GENERATOR && ip < _PyCode_CODE(co) + co->_co_firsttraceable)
                continue; /* incomplete frame */
            settled = 1;
        }
        if (co == stop)
            break;
        if (n == max) {
            *truncated = 1;
            break;
        }
        ptrdiff_t idx = ip - _PyCode_CODE(co);
        out[n].code = co;
        out[n].offset = idx < 0 ? 0 : (uint32_t)idx * 2;
        out[n].frame = f;
        out[n].ip = ip;
        n++;
    }
#endif
    return n;
}

/* How many of the cached chain's innermost frames may anchor the new one. */
#define ML_ANCHOR_WINDOW 4

#if PY_VERSION_HEX < 0x030B0000
typedef PyFrameObject ml_iframe;
#define ML_PREVIOUS(f) ((f)->f_back)
#else
typedef _PyInterpreterFrame ml_iframe;
#define ML_PREVIOUS(f) ((f)->previous)
#endif

/* The raw instruction position of f: on 3.11+ a pointer into its code
 * object's own byte code (so it also names the code); on 3.10 f_lasti. */
static inline const void *
ml_compat_raw_ip(ml_iframe *f)
{
#if PY_VERSION_HEX < 0x030B0000
    return (const void *)(intptr_t)f->f_lasti;
#elif PY_VERSION_HEX >= 0x030D0000
    return f->instr_ptr;
#else
    return f->prev_instr;
#endif
}

/* f's code object, NULL for a shim frame (3.12+: C-stack entry frames;
 * 3.13: frames not running a code object). */
static inline PyCodeObject *
ml_compat_frame_code(ml_iframe *f)
{
#if PY_VERSION_HEX < 0x030B0000
    return f->f_code;
#elif PY_VERSION_HEX >= 0x030D0000
    if (f->owner == FRAME_OWNED_BY_CSTACK || !f->f_executable || !PyCode_Check(f->f_executable))
        return NULL;
    return (PyCodeObject *)f->f_executable;
#else
#if PY_VERSION_HEX >= 0x030C0000
    if (f->owner == FRAME_OWNED_BY_CSTACK)
        return NULL;
#endif
    return f->f_code;
#endif
}

static inline int
ml_compat_incomplete(ml_iframe *f, PyCodeObject *co, const void *ip)
{
#if PY_VERSION_HEX < 0x030B0000
    (void)f, (void)co, (void)ip;
    return 0;
#else
    return f->owner != FRAME_OWNED_BY_GENERATOR && (const _Py_CODEUNIT *)ip < _PyCode_CODE(co) + co->_co_firsttraceable;
#endif
}

static inline uint32_t
ml_compat_offset(PyCodeObject *co, const void *ip)
{
#if PY_VERSION_HEX < 0x030B0000
    intptr_t lasti = (intptr_t)ip;
    return lasti < 0 ? 0 : (uint32_t)lasti * 2;
#else
    ptrdiff_t idx = (const _Py_CODEUNIT *)ip - _PyCode_CODE(co);
    return idx < 0 ? 0 : (uint32_t)idx * 2;
#endif
}

/* An instruction position no frame has: what incomplete frames are cached
 * with, so that they never match. */
#define ML_NO_IP ((const void *)1)

/* 1 if f records as entry e did: the same code at the same instruction. On
 * 3.11+ the instruction pointer alone says both (it points into the code
 * object, and a cached chain is dropped when a code object dies: stacks.h);
 * 3.10 compares the code
 * too. The frame's address does not matter here: equal (code, position) all
 * the way down is an equal stack, whichever invocations they are. */
static inline int
ml_compat_same_frame(ml_iframe *f, const ml_rawframe *e)
{
#if PY_VERSION_HEX < 0x030B0000
    return ml_compat_raw_ip(f) == e->ip && f->f_code == e->code;
#else
    return ml_compat_raw_ip(f) == e->ip;
#endif
}

/* 1 if `below`, the frame under a chain's outermost, ends it as `bottom`
 * did: the stop frame, or no frame. */
static inline int
ml_compat_ends_as(ml_iframe *below, const void *bottom, const PyCodeObject *stop)
{
    return bottom ? below && ml_compat_frame_code(below) == stop : !below;
}

/* 1 if the callers of f are frames recording as chain[b], chain[b-1], ...,
 * chain[0], and then the chain ends as it did. */
static int
ml_compat_callers_hold(ml_iframe *f, const ml_rawframe *chain, int b, const void *bottom, const PyCodeObject *stop)
{
    for (const ml_rawframe *e = chain + b; e >= chain; e--) {
        f = ML_PREVIOUS(f);
        if (!f || !ml_compat_same_frame(f, e))
            return 0;
    }
    return ml_compat_ends_as(ML_PREVIOUS(f), bottom, stop);
}

static ml_iframe *
ml_compat_top(PyThreadState *ts)
{
#if PY_VERSION_HEX < 0x030B0000
    return ts->frame;
#elif PY_VERSION_HEX >= 0x030D0000
    return ts->current_frame;
#else
    return ts->cframe ? ts->cframe->current_frame : NULL;
#endif
}

void
ml_compat_where(PyThreadState *ts, const void **frame, const void **ip)
{
    ml_iframe *f = ml_compat_top(ts);
    *frame = f;
    *ip = f ? ml_compat_raw_ip(f) : NULL;
}

int
ml_compat_runs(PyThreadState *ts, const PyCodeObject *code)
{
    for (ml_iframe *f = ml_compat_top(ts); f; f = ML_PREVIOUS(f))
        if (ml_compat_frame_code(f) == code)
            return 1;
    return 0;
}

int
ml_compat_still_at(PyThreadState *ts, const void *frame, const void *ip)
{
    for (ml_iframe *f = ml_compat_top(ts); f; f = ML_PREVIOUS(f))
        if ((const void *)f == frame)
            return ml_compat_raw_ip(f) == ip;
    return 0;
}

/* 1 if the callers of chain[a]'s frame (a live frame) record as
 * chain[a-1], ..., chain[0] and the chain ends as it did. The hot loop of
 * every hook call. While they are the same frames as last time, each link
 * is tested at the addresses the chain holds, so no load waits for the one
 * before (following f->previous would chain their latencies); a frame is
 * read only once the link above it has proved it live. From the first frame
 * that is another one, the rest is walked: other frames recording the same
 * (a new generator's frame, say) hold too, and *moved is that index. */
static int
ml_compat_chain_holds(const ml_rawframe *chain, int a, const void *bottom, const PyCodeObject *stop, int *moved)
{
    int k = a - 1;
    for (; k >= 0; k--) {
        ml_iframe *up = (ml_iframe *)chain[k + 1].frame, *g = (ml_iframe *)chain[k].frame;
        if (ML_PREVIOUS(up) != g)
            break;
        if (!ml_compat_same_frame(g, &chain[k]))
            return 0;
    }
    *moved = k;
    if (k < 0)
        return ml_compat_ends_as(ML_PREVIOUS((ml_iframe *)chain[0].frame), bottom, stop);
    return ml_compat_callers_hold((ml_iframe *)chain[k + 1].frame, chain, k, bottom, stop);
}

int
ml_compat_chain_unchanged(PyThreadState *ts, const PyCodeObject *stop, ml_rawframe *chain, int nchain,
                          const void *bottom)
{
    ml_iframe *f = ml_compat_top(ts);
    int k;
    if (!f || f != chain[nchain - 1].frame || !ml_compat_same_frame(f, &chain[nchain - 1]) ||
        !ml_compat_chain_holds(chain, nchain - 1, bottom, stop, &k))
        return 0;
    /* where moved frames are now, so that the next test takes the fast loop */
    for (ml_iframe *g = (ml_iframe *)chain[k + 1].frame; k >= 0; k--)
        chain[k].frame = g = ML_PREVIOUS(g);
    return 1;
}

int
ml_compat_walk_cached(PyThreadState *ts, const PyCodeObject *stop, const ml_rawframe *chain, int nchain,
                      const void *bottom, ml_rawframe *out, int cap, int *anchor, const void **new_bottom)
{
    int n = 0, settled = 0;
    int lo = nchain > ML_ANCHOR_WINDOW ? nchain - ML_ANCHOR_WINDOW : 0;
    ml_iframe *f = ml_compat_top(ts);
    *anchor = -1;
    for (; f; f = ML_PREVIOUS(f)) {
        for (int a = nchain - 1; a >= lo; a--) {
            if (chain[a].frame == (const void *)f) {
                int moved;
                if (ml_compat_same_frame(f, &chain[a]) && ml_compat_chain_holds(chain, a, bottom, stop, &moved)) {
                    *anchor = a;
                    *new_bottom = bottom;
                    return n;
                }
                break;
            }
        }
        PyCodeObject *co = ml_compat_frame_code(f);
        const void *ip = ml_compat_raw_ip(f);
        int skip = ML_SKIP_NONE;
        if (!co) {
            skip = ML_SKIP_SHIM;
        } else if (co == stop) {
            break;
        } else if (!settled) {
            if (ml_compat_incomplete(f, co, ip))
                skip = ML_SKIP_INCOMPLETE;
            else
                settled = 1;
        }
        if (n == cap)
            return -1;
        out[n] = (ml_rawframe){f, skip == ML_SKIP_INCOMPLETE ? ML_NO_IP : ip, co,
                               skip == ML_SKIP_NONE ? ml_compat_offset(co, ip) : 0, 0, 0, (uint8_t)skip};
        n++;
    }
    *new_bottom = f;
    return n;
}

size_t
ml_compat_preheader(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030B0000
    return _PyType_PreHeaderSize(tp);
#else
    return PyType_IS_GC(tp) ? sizeof(PyGC_Head) : 0;
#endif
}

PyObject *
ml_compat_code_name(PyCodeObject *co)
{
#if PY_VERSION_HEX >= 0x030B0000
    return co->co_qualname;
#else
    return co->co_name;
#endif
}

/* A growable pair of arrays for the line map. */
typedef struct {
    uint32_t *off;
    int32_t *line;
    size_t n, cap;
} ml_linebuf;

static int
ml_linebuf_push(ml_linebuf *b, uint32_t off, int32_t line)
{
    if (b->n && b->line[b->n - 1] == line)
        return 0; /* same line continues */
    if (b->n && b->off[b->n - 1] == off) {
        b->line[b->n - 1] = line; /* empty range: replace */
        if (b->n >= 2 && b->line[b->n - 2] == line)
            b->n--;
        return 0;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        uint32_t *o = realloc(b->off, cap * sizeof(*o));
        if (!o)
            return -1;
        b->off = o;
        int32_t *l = realloc(b->line, cap * sizeof(*l));
        if (!l)
            return -1;
        b->line = l;
        b->cap = cap;
    }
    b->off[b->n] = off;
    b->line[b->n] = line;
    b->n++;
    return 0;
}

#if PY_VERSION_HEX >= 0x030B0000
/* Location-table varints use 6-bit groups (Objects/locations.md). */
static unsigned
ml_loc_varint(const uint8_t **p, const uint8_t *end)
{
    unsigned val = 0, shift = 0;
    while (*p < end) {
        unsigned b = *(*p)++;
        val |= (b & 63) << shift;
        if (!(b & 64))
            break;
        shift += 6;
    }
    return val;
}

static int
ml_loc_svarint(const uint8_t **p, const uint8_t *end)
{
    unsigned uv = ml_loc_varint(p, end);
    return (uv & 1) ? -(int)(uv >> 1) : (int)(uv >> 1);
}
#endif

int
ml_compat_linemap(PyCodeObject *co, uint32_t **offsets, int32_t **lines, size_t *n)
{
    ml_linebuf b = {0};
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(co->co_linetable);
    const uint8_t *end = p + PyBytes_GET_SIZE(co->co_linetable);
    int line = co->co_firstlineno;
    uint32_t addr = 0;
#if PY_VERSION_HEX < 0x030B0000
    while (p + 1 < end) {
        unsigned sdelta = p[0];
        int ldelta = (int8_t)p[1];
        p += 2;
        int here;
        if (ldelta == -128) {
            here = 0;
        } else {
            line += ldelta;
            here = line;
        }
        if (sdelta && ml_linebuf_push(&b, addr, here) < 0)
            goto nomem;
        addr += sdelta;
    }
#else
    while (p < end) {
        unsigned first = *p++;
        unsigned code = (first >> 3) & 15;
        uint32_t len = ((first & 7) + 1) * 2; /* code units -> bytes */
        int here;
        if (code == 15) {
            here = 0;
        } else if (code == 14) {
            line += ml_loc_svarint(&p, end);
            ml_loc_varint(&p, end);
            ml_loc_varint(&p, end);
            ml_loc_varint(&p, end);
            here = line;
        } else if (code == 13) {
            line += ml_loc_svarint(&p, end);
            here = line;
        } else if (code >= 10) {
            line += (int)code - 10;
            p += 2;
            here = line;
        } else {
            p += 1;
            here = line;
        }
        if (ml_linebuf_push(&b, addr, here < 0 ? 0 : here) < 0)
            goto nomem;
        addr += len;
    }
#endif
    *offsets = b.off;
    *lines = b.line;
    *n = b.n;
    return 0;
nomem:
    free(b.off);
    free(b.line);
    return -1;
}

size_t
ml_compat_str_utf8(PyObject *s, char *buf, size_t cap, const char **out)
{
    if (!s || !PyUnicode_Check(s)) {
        *out = "?";
        return 1;
    }
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        *out = (const char *)PyUnicode_DATA(s);
        return (size_t)PyUnicode_GET_LENGTH(s);
    }
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t len = PyUnicode_GET_LENGTH(s);
    size_t o = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        char tmp[4];
        size_t k;
        if (c < 0x80) {
            tmp[0] = (char)c;
            k = 1;
        } else if (c >= 0xDC80 && c <= 0xDCFF) {
            /* a byte that was not UTF-8 in a file name (surrogateescape, as
             * os.fsdecode makes it): write the byte back, as os.fsencode */
            tmp[0] = (char)(c - 0xDC00);
            k = 1;
        } else if (c < 0x800) {
            tmp[0] = (char)(0xC0 | (c >> 6));
            tmp[1] = (char)(0x80 | (c & 0x3F));
            k = 2;
        } else if (c < 0x10000) {
            tmp[0] = (char)(0xE0 | (c >> 12));
            tmp[1] = (char)(0x80 | ((c >> 6) & 0x3F));
            tmp[2] = (char)(0x80 | (c & 0x3F));
            k = 3;
        } else {
            tmp[0] = (char)(0xF0 | (c >> 18));
            tmp[1] = (char)(0x80 | ((c >> 12) & 0x3F));
            tmp[2] = (char)(0x80 | ((c >> 6) & 0x3F));
            tmp[3] = (char)(0x80 | (c & 0x3F));
            k = 4;
        }
        if (o + k > cap)
            break;
        memcpy(buf + o, tmp, k);
        o += k;
    }
    *out = buf;
    return o;
}

/* ---- object-creation tracer ---- */

#if PY_VERSION_HEX >= 0x030D0000
static ml_create_fn ml_compat_create_fn;
static PyRefTracer ml_compat_prev_tracer;
static void *ml_compat_prev_data;

static int
ml_compat_tracer(PyObject *op, PyRefTracerEvent ev, void *data)
{
    if (ev == PyRefTracer_CREATE)
        ml_compat_create_fn(op);
    if (ml_compat_prev_tracer)
        return ml_compat_prev_tracer(op, ev, ml_compat_prev_data);
    return 0;
}

int ml_compat_have_reftracer(void) { return 1; }

int
ml_compat_reftracer_install(ml_create_fn fn)
{
    void *data = NULL;
    PyRefTracer prev = PyRefTracer_GetTracer(&data);
    if (prev != ml_compat_tracer) {
        ml_compat_prev_tracer = prev;
        ml_compat_prev_data = data;
    }
    ml_compat_create_fn = fn;
    return PyRefTracer_SetTracer(ml_compat_tracer, NULL);
}

int
ml_compat_reftracer_is_ours(void)
{
    void *data;
    return PyRefTracer_GetTracer(&data) == ml_compat_tracer;
}

void
ml_compat_reftracer_uninstall(void)
{
    void *data;
    if (PyRefTracer_GetTracer(&data) == ml_compat_tracer)
        PyRefTracer_SetTracer(ml_compat_prev_tracer, ml_compat_prev_data);
}
#else
int ml_compat_have_reftracer(void) { return 0; }
int ml_compat_reftracer_install(ml_create_fn fn) { (void)fn; return -1; }
int ml_compat_reftracer_is_ours(void) { return 0; }
void ml_compat_reftracer_uninstall(void) {}
#endif

/* ---- dict keys recognition (tracker's buffer kinds) ---- */

int
ml_compat_is_dict_keys(const void *block, size_t size)
{
    const uint8_t *b = block;
    if (size < 40)
        return 0;
    Py_ssize_t refcnt;
    memcpy(&refcnt, b, sizeof(refcnt));
    if (refcnt != 1)
        return 0;
#if PY_VERSION_HEX < 0x030B0000
    /* { refcnt, dk_size, dk_lookup, dk_usable, dk_nentries, indices... } */
    Py_ssize_t dk_size;
    memcpy(&dk_size, b + 8, sizeof(dk_size));
    if (dk_size < 8 || dk_size > ((Py_ssize_t)1 << 40) || (dk_size & (dk_size - 1)))
        return 0;
    size_t ix = dk_size <= 0xff ? 1 : dk_size <= 0xffff ? 2 : dk_size <= 0xffffffffLL ? 4 : 8;
    size_t usable = ((size_t)dk_size << 1) / 3;
    return size == 40 + ix * (size_t)dk_size + 24 * usable;
#else
    /* { refcnt, u8 log2_size, u8 log2_index_bytes, u8 kind, u32 version, usable, nentries } */
    unsigned log2_size = b[8], log2_index = b[9], kind = b[10];
    if (log2_size < 3 || log2_size > 40 || log2_index < log2_size || log2_index > log2_size + 3 || kind > 2)
        return 0;
    size_t usable = (((size_t)1 << log2_size) << 1) / 3;
    return size == 32 + ((size_t)1 << log2_index) + usable * (kind == 0 ? 24 : 16);
#endif
}

int
ml_compat_gc_collecting(PyThreadState *ts)
{
    return ts && ts->interp && ts->interp->gc.collecting != 0;
}

int
ml_compat_refcnt_ok(Py_ssize_t refcnt)
{
    return refcnt >= 1 && refcnt <= ((Py_ssize_t)1 << 40);
}

/* ---- heap analysis (issue 3) : definitions below this line ---- */

#include <stddef.h>

#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_dict.h"
#endif
#if PY_VERSION_HEX >= 0x030C0000
#include "internal/pycore_long.h"
#include "internal/pycore_typeobject.h"
#endif

#define ML_GC_AHEAD 8

int
ml_compat_gc_foreach(ml_compat_gc_fn fn, void *arg)
{
    struct _gc_runtime_state *gcs = &PyInterpreterState_Get()->gc;
    PyGC_Head *heads[NUM_GENERATIONS + 1];
    for (int i = 0; i < NUM_GENERATIONS; i++)
        heads[i] = &gcs->generations[i].head;
    heads[NUM_GENERATIONS] = &gcs->permanent_generation.head;
    for (int i = 0; i <= NUM_GENERATIONS; i++) {
        PyGC_Head *head = heads[i];
        /* A second cursor runs ML_GC_AHEAD objects ahead and prefetches
         * them: a linked list gives the next address only once the
         * current object is loaded, and the walk is bound by those
         * misses. fn does not change the lists, so the cursor stays
         * valid. */
        PyGC_Head *ahead = (PyGC_Head *)head->_gc_next;
        for (int k = 0; k < ML_GC_AHEAD && ahead != head; k++)
            ahead = (PyGC_Head *)ahead->_gc_next;
        for (PyGC_Head *g = (PyGC_Head *)head->_gc_next; g != head;
             g = (PyGC_Head *)g->_gc_next) {
            if (ahead != head) {
                __builtin_prefetch((char *)(ahead + 1) + sizeof(PyObject)); /* the object's fields */
                ahead = (PyGC_Head *)ahead->_gc_next;
            }
            int rc = fn((PyObject *)(g + 1), arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}

Py_ssize_t
ml_compat_sizeof_extra_of_type(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
    return (Py_ssize_t)_PyType_PreHeaderSize(tp);
#else
    if (tp->tp_is_gc)
        return -1;
#if PY_VERSION_HEX >= 0x030D0000
    return PyType_IS_GC(tp) ? (Py_ssize_t)_PyType_PreHeaderSize(tp) : 0;
#else
    return PyType_IS_GC(tp) ? (Py_ssize_t)sizeof(PyGC_Head) : 0;
#endif
#endif
}

size_t
ml_compat_sizeof_extra(PyObject *o)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_IS_GC(o) ? _PyType_PreHeaderSize(Py_TYPE(o)) : 0;
#elif PY_VERSION_HEX >= 0x030B0000
    return _PyType_PreHeaderSize(Py_TYPE(o));
#else
    return PyObject_IS_GC(o) ? sizeof(PyGC_Head) : 0;
#endif
}

size_t
ml_compat_str_sizeof(PyObject *o)
{
    /* Mirrors unicode___sizeof__ of each version. */
    size_t size;
#if PY_VERSION_HEX < 0x030C0000
    if (!PyUnicode_IS_READY(o)) {
        /* legacy string still being built: only the wide buffer exists */
        size = sizeof(PyUnicodeObject);
        if (((PyASCIIObject *)o)->wstr)
            size += (((PyCompactUnicodeObject *)o)->wstr_length + 1) * sizeof(wchar_t);
        return size;
    }
#endif
    size_t len = (size_t)PyUnicode_GET_LENGTH(o);
    size_t kind = (size_t)PyUnicode_KIND(o);
    if (PyUnicode_IS_COMPACT_ASCII(o)) {
        size = sizeof(PyASCIIObject) + len + 1;
    } else if (PyUnicode_IS_COMPACT(o)) {
        size = sizeof(PyCompactUnicodeObject) + (len + 1) * kind;
    } else {
        size = sizeof(PyUnicodeObject);
        if (((PyUnicodeObject *)o)->data.any)
            size += (len + 1) * kind;
    }
#if PY_VERSION_HEX < 0x030C0000
    wchar_t *wstr = ((PyASCIIObject *)o)->wstr;
    if (wstr && (void *)wstr != PyUnicode_DATA(o)) {
        size_t wlen = PyUnicode_IS_COMPACT_ASCII(o) ? len
                                                    : (size_t)((PyCompactUnicodeObject *)o)->wstr_length;
        size += (wlen + 1) * sizeof(wchar_t);
    }
#endif
    if (!PyUnicode_IS_COMPACT_ASCII(o)) {
        PyCompactUnicodeObject *c = (PyCompactUnicodeObject *)o;
        if (c->utf8 && (void *)c->utf8 != PyUnicode_DATA(o))
            size += (size_t)c->utf8_length + 1;
    }
    return size;
}

size_t
ml_compat_int_sizeof(PyObject *o)
{
#if PY_VERSION_HEX >= 0x030C0000
    size_t ndigits = (size_t)_PyLong_DigitCount((PyLongObject *)o);
    if (ndigits == 0)
        ndigits = 1;
    return offsetof(PyLongObject, long_value.ob_digit) + ndigits * sizeof(digit);
#else
    Py_ssize_t n = Py_SIZE(o);
    size_t ndigits = (size_t)(n < 0 ? -n : n);
#if PY_VERSION_HEX >= 0x030B0000
    if (ndigits == 0)
        ndigits = 1; /* 3.11 counts zero's digit too */
#endif
    return offsetof(PyLongObject, ob_digit) + ndigits * sizeof(digit);
#endif
}

#if PY_VERSION_HEX < 0x030B0000
/* 3.10: Objects/dict-common.h is not installed. Its keys object is
 * {refcnt, size, lookup, usable, nentries, indices[]} (40 bytes), then
 * dk_size index slots of 1, 2, 4 or 8 bytes, then the entries. */
struct ml_keys310 {
    Py_ssize_t dk_refcnt, dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable, dk_nentries;
    char dk_indices[];
};

struct ml_entry310 {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
};

static size_t
ml_compat_ixsize310(size_t n)
{
    return n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;
}
#endif

/* Bytes of a keys object: _PyDict_KeysSize, which is not exported. */
static size_t
ml_compat_keys_size(PyDictKeysObject *k)
{
#if PY_VERSION_HEX >= 0x030B0000
    size_t n = (size_t)1 << k->dk_log2_size;
    size_t es = k->dk_kind == DICT_KEYS_GENERAL ? sizeof(PyDictKeyEntry) : sizeof(PyDictUnicodeEntry);
    return sizeof(PyDictKeysObject) + ((size_t)1 << k->dk_log2_index_bytes) + (2 * n / 3) * es;
#else
    struct ml_keys310 *kk = (struct ml_keys310 *)k;
    size_t n = (size_t)kk->dk_size;
    return sizeof(struct ml_keys310) + ml_compat_ixsize310(n) * n +
           (2 * n / 3) * sizeof(struct ml_entry310);
#endif
}

size_t
ml_compat_dict_sizeof(PyObject *o)
{
    PyDictObject *mp = (PyDictObject *)o;
    if (mp->ma_values)
        return (size_t)_PyDict_SizeOf(mp);
    /* _PyDict_SizeOf of a combined dict, without the call (3.10-3.13
     * agree): the struct, plus the keys when this dict alone owns them. */
#if PY_VERSION_HEX >= 0x030B0000
    Py_ssize_t refcnt = mp->ma_keys->dk_refcnt;
#else
    Py_ssize_t refcnt = ((struct ml_keys310 *)mp->ma_keys)->dk_refcnt;
#endif
    size_t size = (size_t)Py_TYPE(o)->tp_basicsize;
    if (refcnt == 1)
        size += ml_compat_keys_size(mp->ma_keys);
    return size;
}

int
ml_compat_dict_is_split(PyObject *d)
{
    PyDictObject *mp = (PyDictObject *)d;
#if PY_VERSION_HEX >= 0x030B0000
    return mp->ma_values != NULL;
#else
    /* An empty dict points at the static empty values and the shared empty
     * keys (one slot); split keys have at least PyDict_MINSIZE (8) slots. */
    return mp->ma_values != NULL && ((struct ml_keys310 *)mp->ma_keys)->dk_size > 1;
#endif
}

void
ml_compat_dict_entries_of(PyObject *d, ml_compat_dict_entries *e)
{
    PyDictObject *mp = (PyDictObject *)d;
#if PY_VERSION_HEX >= 0x030B0000
    PyDictKeysObject *k = mp->ma_keys;
    size_t n = (size_t)k->dk_nentries;
    if (n == 0) {
        /* nothing to read; and the shared empty keys (dk_log2_index_bytes
         * 0) would put "its entries" at a misaligned address */
        memset(e, 0, sizeof(*e));
        return;
    }
    if (DK_IS_UNICODE(k)) {
        PyDictUnicodeEntry *u = DK_UNICODE_ENTRIES(k);
        e->keys = &u->me_key;
        e->values = &u->me_value;
        e->kstride = e->vstride = sizeof(*u) / sizeof(PyObject *);
    } else {
        PyDictKeyEntry *g = DK_ENTRIES(k);
        e->keys = &g->me_key;
        e->values = &g->me_value;
        e->kstride = e->vstride = sizeof(*g) / sizeof(PyObject *);
    }
    if (mp->ma_values) {
        /* split: slot i of the values goes with shared key i; the array
         * has a slot for every shared key (they never outgrow it) */
        e->values = mp->ma_values->values;
        e->vstride = 1;
#if PY_VERSION_HEX >= 0x030D0000
        if (n > mp->ma_values->capacity)
            n = mp->ma_values->capacity;
#endif
    }
    e->n = n;
#else
    struct ml_keys310 *k = (struct ml_keys310 *)mp->ma_keys;
    struct ml_entry310 *ent =
        (struct ml_entry310 *)(k->dk_indices + (size_t)k->dk_size * ml_compat_ixsize310((size_t)k->dk_size));
    e->keys = &ent->me_key;
    e->values = &ent->me_value;
    e->kstride = e->vstride = sizeof(*ent) / sizeof(PyObject *);
    e->n = (size_t)k->dk_nentries;
    if (mp->ma_values) {
        /* split: the items are the first ma_used shared keys, in order */
        e->values = mp->ma_values;
        e->vstride = 1;
        e->n = (size_t)mp->ma_used;
    }
#endif
}

size_t
ml_compat_type_sizeof(PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return sizeof(PyTypeObject);
    PyHeapTypeObject *et = (PyHeapTypeObject *)tp;
    size_t size = sizeof(PyHeapTypeObject);
    if (et->ht_cached_keys)
        size += ml_compat_keys_size(et->ht_cached_keys);
    return size;
}

/* Slots of an instance's values array. Creating an instance takes one
 * from the class's shared keys' usable count while it is above 1, so the
 * first instances of a class get bigger arrays than the later ones (29,
 * 28, ... down to the keys' entries + 1); the keys' entries + usable now
 * is the size of the arrays made since the count settled, and the smallest
 * any instance has. */
#if PY_VERSION_HEX >= 0x030B0000
static size_t
ml_compat_values_now(PyObject *o)
{
    PyDictKeysObject *keys = ((PyHeapTypeObject *)Py_TYPE(o))->ht_cached_keys;
    return keys ? (size_t)(keys->dk_nentries + keys->dk_usable) : 0;
}
#endif

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
/* 3.11/3.12: a values array without a dict is a PyMem block of a prefix
 * (insertion order, used count, and its own size p = round8(slots + 2) in
 * the byte before the array) and the slots. The slot count itself is not
 * stored: p says it is in [p - 9, p - 2], and it is at least the count now.
 * When p is the prefix of the count now, the count now (exact for every
 * instance made after the count settled; up to 7 slots short for the few
 * made just before); else the instance is one of the first and p - 6 (3
 * slots over to 4 short). docs/HEAP.md gives the bounds; tests measure
 * them against tracemalloc. */
static size_t
ml_compat_values_bytes(PyObject *o, PyDictValues *values)
{
    size_t now = ml_compat_values_now(o);
    size_t prefix = ((uint8_t *)values)[-1];
    size_t slots = now;
    if (!now)
        return 0;
    if (_Py_SIZE_ROUND_UP(now + 2, sizeof(PyObject *)) < prefix)
        slots = prefix - 6;
    return prefix + slots * sizeof(PyObject *);
}
#endif

PyObject *
ml_compat_instance_dict(PyObject *o, size_t *values_bytes)
{
    PyTypeObject *tp = Py_TYPE(o);
    *values_bytes = 0;
#if PY_VERSION_HEX >= 0x030B0000
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
#if PY_VERSION_HEX >= 0x030D0000
        if (tp->tp_flags & Py_TPFLAGS_INLINE_VALUES) {
            /* allocated with the object, whether or not a dict exists,
             * for the shared keys' usable size before creating the
             * instance took one from it: one slot more than its capacity
             * unless the count had settled (capacity == the size now; the
             * instance that settled it is one slot short here) */
            PyDictValues *v = _PyObject_InlineValues(o);
            size_t cap = v->capacity, now = ml_compat_values_now(o);
            if (now && cap > now)
                cap++;
            *values_bytes = _Py_SIZE_ROUND_UP(cap, sizeof(PyObject *)) + (cap + 1) * sizeof(PyObject *);
        }
        return (PyObject *)_PyObject_ManagedDictPointer(o)->dict;
#elif PY_VERSION_HEX >= 0x030C0000
        PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
        if (_PyDictOrValues_IsValues(dorv)) {
            *values_bytes = ml_compat_values_bytes(o, _PyDictOrValues_GetValues(dorv));
            return NULL;
        }
        return dorv.dict;
#else
        PyDictValues *values = *_PyObject_ValuesPointer(o);
        if (values) {
            *values_bytes = ml_compat_values_bytes(o, values);
            return NULL;
        }
        return *_PyObject_ManagedDictPointer(o);
#endif
    }
#endif
    if (tp->tp_dictoffset == 0)
        return NULL;
    PyObject **p = _PyObject_GetDictPtr(o); /* no managed dict: plain pointer */
    return p ? *p : NULL;
}

PyObject *
ml_compat_type_dict(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030C0000
    return _PyType_GetDict(tp);
#else
    return tp->tp_dict;
#endif
}

void
ml_compat_frames_visit(visitproc visit, void *arg)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts; ts = PyThreadState_Next(ts)) {
#if PY_VERSION_HEX >= 0x030D0000
        _PyInterpreterFrame *f = ts->current_frame;
#else
        _PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
#endif
        for (; f; f = f->previous) {
#if PY_VERSION_HEX >= 0x030D0000
            if (f->owner == FRAME_OWNED_BY_CSTACK || !f->f_executable || !PyCode_Check(f->f_executable))
                continue;
            PyCodeObject *co = (PyCodeObject *)f->f_executable;
            _Py_CODEUNIT *ip = f->instr_ptr;
#else
#if PY_VERSION_HEX >= 0x030C0000
            if (f->owner == FRAME_OWNED_BY_CSTACK)
                continue;
#endif
            PyCodeObject *co = f->f_code;
            _Py_CODEUNIT *ip = f->prev_instr;
#endif
            if (f->owner != FRAME_OWNED_BY_GENERATOR && ip < _PyCode_CODE(co) + co->_co_firsttraceable)
                continue; /* incomplete frame: locals not set yet */
            if (visit((PyObject *)co, arg) || visit(f->f_globals, arg) || visit(f->f_builtins, arg) ||
                visit(f->f_locals, arg))
                return;
            for (int i = 0; i < co->co_nlocalsplus; i++) {
                if (visit(f->localsplus[i], arg))
                    return;
            }
        }
    }
#else
    (void)visit;
    (void)arg;
#endif
}

void
ml_compat_code_visit(PyObject *o, visitproc visit, void *arg)
{
    PyCodeObject *co = (PyCodeObject *)o;
    PyObject *refs[] = {
        co->co_consts, co->co_names, co->co_filename, co->co_name, co->co_linetable,
#if PY_VERSION_HEX >= 0x030B0000
        co->co_qualname, co->co_exceptiontable, co->co_localsplusnames, co->co_localspluskinds,
#else
        co->co_code, co->co_varnames, co->co_freevars, co->co_cellvars,
#endif
    };
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        if (refs[i] && visit(refs[i], arg))
            return;
    }
}

/* ---- reference graph (issue 11, csrc/graph/) ---- */

void
ml_compat_frames_locals(ml_compat_local_fn fn, void *arg)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts; ts = PyThreadState_Next(ts)) {
        unsigned long tid = ts->thread_id;
        int depth = 0;
#if PY_VERSION_HEX >= 0x030B0000
#if PY_VERSION_HEX >= 0x030D0000
        _PyInterpreterFrame *f = ts->current_frame;
#else
        _PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
#endif
        for (; f; f = f->previous) {
#if PY_VERSION_HEX >= 0x030D0000
            if (f->owner == FRAME_OWNED_BY_CSTACK || !f->f_executable || !PyCode_Check(f->f_executable))
                continue;
            PyCodeObject *co = (PyCodeObject *)f->f_executable;
            _Py_CODEUNIT *ip = f->instr_ptr;
#else
#if PY_VERSION_HEX >= 0x030C0000
            if (f->owner == FRAME_OWNED_BY_CSTACK)
                continue;
#endif
            PyCodeObject *co = f->f_code;
            _Py_CODEUNIT *ip = f->prev_instr;
#endif
            if (f->owner != FRAME_OWNED_BY_GENERATOR && ip < _PyCode_CODE(co) + co->_co_firsttraceable)
                continue; /* incomplete frame: locals not set yet */
            Py_ssize_t off = ip - _PyCode_CODE(co);
            int line = PyCode_Addr2Line(co, (int)(off < 0 ? 0 : off) * (int)sizeof(_Py_CODEUNIT));
            PyObject *names = co->co_localsplusnames;
            for (int i = 0; i < co->co_nlocalsplus && i < PyTuple_GET_SIZE(names); i++) {
                PyObject *v = f->localsplus[i];
                if (v && fn(tid, depth, co, line, PyTuple_GET_ITEM(names, i), v, arg))
                    return;
            }
            depth++;
        }
#else
        for (PyFrameObject *f = ts->frame; f; f = f->f_back) {
            PyCodeObject *co = f->f_code;
            int line = PyFrame_GetLineNumber(f);
            Py_ssize_t nl = PyTuple_GET_SIZE(co->co_varnames), nc = PyTuple_GET_SIZE(co->co_cellvars),
                       nf = PyTuple_GET_SIZE(co->co_freevars);
            for (Py_ssize_t i = 0; i < nl + nc + nf; i++) {
                PyObject *v = f->f_localsplus[i];
                PyObject *name = i < nl ? PyTuple_GET_ITEM(co->co_varnames, i)
                                 : i < nl + nc ? PyTuple_GET_ITEM(co->co_cellvars, i - nl)
                                               : PyTuple_GET_ITEM(co->co_freevars, i - nl - nc);
                if (v && fn(tid, depth, co, line, name, v, arg))
                    return;
            }
            depth++;
        }
#endif
    }
}

int
ml_compat_frameobj_code(PyObject *o, PyCodeObject **code)
{
    if (!PyFrame_Check(o))
        return 0;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *ex = ((PyFrameObject *)o)->f_frame->f_executable;
    if (!ex || !PyCode_Check(ex))
        return 0;
    *code = (PyCodeObject *)ex;
#elif PY_VERSION_HEX >= 0x030B0000
    *code = ((PyFrameObject *)o)->f_frame->f_code;
#else
    *code = ((PyFrameObject *)o)->f_code;
#endif
    return 1;
}

size_t
ml_compat_instance_attr_index(PyObject *o, PyObject *value, PyObject **name)
{
    *name = NULL;
#if PY_VERSION_HEX >= 0x030B0000
    PyTypeObject *tp = Py_TYPE(o);
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return 0;
    PyDictValues *values = NULL;
#if PY_VERSION_HEX >= 0x030D0000
    if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES))
        return 0;
    values = _PyObject_InlineValues(o);
    if (!values->valid)
        return 0;
#elif PY_VERSION_HEX >= 0x030C0000
    PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
    if (!_PyDictOrValues_IsValues(dorv))
        return 0;
    values = _PyDictOrValues_GetValues(dorv);
#else
    values = *_PyObject_ValuesPointer(o);
#endif
    PyDictKeysObject *keys = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (!values || !keys || keys->dk_kind != DICT_KEYS_SPLIT)
        return 0;
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        if (values->values[i] == value) {
            *name = entries[i].me_key;
            return (size_t)i + 1;
        }
    }
#else
    (void)o;
    (void)value;
#endif
    return 0;
}

PyObject *
ml_compat_instance_attr(PyObject *o, PyObject *value)
{
    PyObject *name;
    ml_compat_instance_attr_index(o, value, &name);
    return name;
}

#if PY_VERSION_HEX >= 0x030B0000
PyAPI_FUNC(int) _PyObject_DebugMallocStats(FILE *out);
#endif

int
ml_compat_pymalloc_stats(FILE *out)
{
    return _PyObject_DebugMallocStats(out);
}

/* rss: struct pool_header of Objects/obmalloc.c (3.10, 3.11) and
 * Include/internal/pycore_obmalloc.h (3.12, 3.13): the same fields. */
struct ml_pool_header {
    union {
        void *padding;
        unsigned int count;
    } ref;
    void *freeblock;
    void *nextpool, *prevpool;
    unsigned int arenaindex, szidx, nextoffset, maxnextoffset;
};
#define ML_POOL_ALIGN 16u   /* ALIGNMENT on 64-bit (8 on 32-bit) */
#define ML_POOL_CLASSES 32u /* NB_SMALL_SIZE_CLASSES: 512 / ALIGNMENT */

size_t
ml_compat_pymalloc_pool_size(size_t arena_size)
{
    return sizeof(void *) > 4 && arena_size >= ((size_t)1 << 20) ? (size_t)1 << 14 : (size_t)1 << 12;
}

int
ml_compat_pymalloc_pool(const void *pool, size_t pool_size, uint32_t *count, uint32_t *block, uint32_t *first,
                        uint32_t *end)
{
    const struct ml_pool_header *h = pool;
    size_t align = sizeof(void *) > 4 ? ML_POOL_ALIGN : 8u;
    size_t overhead = (sizeof(*h) + align - 1) / align * align; /* POOL_OVERHEAD */
    if (h->ref.count == 0 || h->szidx >= (sizeof(void *) > 4 ? ML_POOL_CLASSES : 64u))
        return -1;
    size_t bsize = (h->szidx + 1) * align;
    size_t stop = h->nextoffset < pool_size ? h->nextoffset : pool_size;
    if (stop < overhead || (size_t)h->ref.count * bsize > pool_size - overhead)
        return -1;
    *count = h->ref.count;
    *block = (uint32_t)bsize;
    *first = (uint32_t)overhead;
    *end = (uint32_t)stop;
    return 0;
}

/* ---- garbage collector (issue 12): definitions below this line ---- */

int
ml_compat_gc_foreach_collectable(ml_compat_gc_fn fn, void *arg)
{
    struct _gc_runtime_state *gcs = &PyInterpreterState_Get()->gc;
    for (int i = 0; i < NUM_GENERATIONS; i++) {
        PyGC_Head *head = &gcs->generations[i].head;
        for (PyGC_Head *g = (PyGC_Head *)head->_gc_next; g != head; g = (PyGC_Head *)g->_gc_next) {
            int rc = fn((PyObject *)(g + 1), arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- heap at exit (issue 11, buffer owners) ---- */

/* The block of a dict's separate values array, or 0 when it has none of
 * its own (combined dict; 3.13 values inside the instance). */
static uintptr_t
ml_compat_values_block(void *values)
{
    if (!values)
        return 0;
#if PY_VERSION_HEX >= 0x030D0000
    if (((PyDictValues *)values)->embedded)
        return 0;
    return (uintptr_t)values;
#elif PY_VERSION_HEX >= 0x030B0000
    /* a prefix whose size is the byte just before the array */
    return (uintptr_t)values - ((uint8_t *)values)[-1];
#else
    return (uintptr_t)values;
#endif
}

/* The array module's array object (Modules/arraymodule.c, the same in
 * 3.10-3.13; not in a public header). */
typedef struct {
    PyObject_VAR_HEAD
    char *ob_item;
    Py_ssize_t allocated;
    const void *ob_descr;
    PyObject *weakreflist;
    Py_ssize_t ob_exports;
} ml_arrayobject;

int
ml_compat_derives_from(PyTypeObject *tp, const char *dotted)
{
    for (PyTypeObject *t = tp; t; t = t->tp_base)
        if (t->tp_name && strcmp(t->tp_name, dotted) == 0)
            return t == tp ? 1 : 2;
    return 0;
}

/* 1 if tp is array.array (a heap type made from a spec since 3.10) or
 * derives from it. */
static int
ml_compat_is_array(PyTypeObject *tp)
{
    /* the common case, decided without reading names */
    return tp->tp_basicsize >= (Py_ssize_t)sizeof(ml_arrayobject) && ml_compat_derives_from(tp, "array.array");
}

int
ml_compat_owned_buffers(PyObject *o, ml_compat_buf *out)
{
    PyTypeObject *tp = Py_TYPE(o);
    int n = 0;
    if (PyList_Check(o)) {
        PyListObject *l = (PyListObject *)o;
        if (l->ob_item && l->allocated > 0)
            out[n++] = (ml_compat_buf){(uintptr_t)l->ob_item, ML_COMPAT_BUF_ITEMS};
    } else if (PyDict_Check(o)) {
        PyDictObject *mp = (PyDictObject *)o;
#if PY_VERSION_HEX >= 0x030B0000
        Py_ssize_t refcnt = mp->ma_keys->dk_refcnt;
#else
        Py_ssize_t refcnt = ((struct ml_keys310 *)mp->ma_keys)->dk_refcnt;
#endif
        if (refcnt == 1)
            out[n++] = (ml_compat_buf){(uintptr_t)mp->ma_keys, ML_COMPAT_BUF_KEYS};
        uintptr_t v = ml_compat_dict_is_split(o) ? ml_compat_values_block((void *)mp->ma_values) : 0;
        if (v)
            out[n++] = (ml_compat_buf){v, ML_COMPAT_BUF_VALUES};
    } else if (PyAnySet_Check(o)) {
        PySetObject *so = (PySetObject *)o;
        if (so->table && so->table != so->smalltable)
            out[n++] = (ml_compat_buf){(uintptr_t)so->table, ML_COMPAT_BUF_TABLE};
    } else if (PyByteArray_Check(o)) {
        PyByteArrayObject *b = (PyByteArrayObject *)o;
        if (b->ob_bytes && b->ob_alloc > 0)
            out[n++] = (ml_compat_buf){(uintptr_t)b->ob_bytes, ML_COMPAT_BUF_DATA};
    } else if (ml_compat_is_array(tp)) {
        ml_arrayobject *a = (ml_arrayobject *)o;
        if (a->ob_item && a->allocated > 0)
            out[n++] = (ml_compat_buf){(uintptr_t)a->ob_item, ML_COMPAT_BUF_DATA};
    }
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
    /* an instance whose attributes sit in a values array without a dict */
    if (n < ML_COMPAT_MAX_BUFS && (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) && !PyType_Check(o)) {
#if PY_VERSION_HEX >= 0x030C0000
        PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
        PyDictValues *values = _PyDictOrValues_IsValues(dorv) ? _PyDictOrValues_GetValues(dorv) : NULL;
#else
        PyDictValues *values = *_PyObject_ValuesPointer(o);
#endif
        uintptr_t v = ml_compat_values_block(values);
        if (v)
            out[n++] = (ml_compat_buf){v, ML_COMPAT_BUF_VALUES};
    }
#else
    (void)tp;
#endif
    return n;
}

int
ml_compat_type_owns_buffers(PyTypeObject *tp)
{
    if (PyType_IsSubtype(tp, &PyList_Type) || PyType_IsSubtype(tp, &PyDict_Type) ||
        PyType_IsSubtype(tp, &PySet_Type) || PyType_IsSubtype(tp, &PyFrozenSet_Type) ||
        PyType_IsSubtype(tp, &PyByteArray_Type) || ml_compat_is_array(tp))
        return 1;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
    if ((tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) && !PyType_IsSubtype(tp, &PyType_Type))
        return 1; /* a values array without a dict */
#endif
    return 0;
}

int
ml_compat_traverse_unsafe(PyObject *o)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyModule_CheckExact(o))
        return 0;
    unsigned long v = Py_Version;
    if (!((v >= 0x030C0000 && v < 0x030C06A0) || (v >= 0x030D0000 && v < 0x030D01A0)))
        return 0;
    PyModuleDef *def = PyModule_GetDef(o);
    return def && def->m_name && strcmp(def->m_name, "_asyncio") == 0;
#else
    (void)o;
    return 0;
#endif
}

/* ---- memlens' own part of the heap (heap/ownset.c) ---- */

void
ml_compat_own_frames(ml_compat_frame_pick pick, visitproc visit, void *arg)
{
    PyThreadState *ts = PyThreadState_Get();
    size_t depth = 0;
#if PY_VERSION_HEX < 0x030B0000
    for (PyFrameObject *f = ts->frame; f; f = f->f_back) {
        if (f->f_gen)
            continue; /* the generator holds it */
        if (pick(arg, (PyObject *)f->f_code, depth++) && visit((PyObject *)f, arg))
            return;
    }
#else
    for (ml_iframe *f = ml_compat_top(ts); f; f = f->previous) {
        PyCodeObject *co = ml_compat_frame_code(f);
        if (!co || f->owner == FRAME_OWNED_BY_GENERATOR)
            continue; /* a shim frame; or the generator holds what it refers to */
        if (ml_compat_incomplete(f, co, ml_compat_raw_ip(f)))
            continue; /* incomplete frame */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *func = f->f_funcobj;
#else
        PyObject *func = (PyObject *)f->f_func;
#endif
        if (!pick(arg, (PyObject *)co, depth++))
            continue;
        if (visit((PyObject *)co, arg) || (func && visit(func, arg)) ||
            (f->f_locals && visit(f->f_locals, arg)) ||
            (f->frame_obj && visit((PyObject *)f->frame_obj, arg)))
            return;
        int n = co->co_nlocalsplus;
        int top = f->stacktop >= n && f->stacktop <= n + co->co_stacksize ? f->stacktop : n;
        for (int i = 0; i < top; i++) {
            if (f->localsplus[i] && visit(f->localsplus[i], arg))
                return;
        }
    }
#endif
}

PyObject *
ml_compat_frame_back(PyObject *f)
{
    return PyFrame_Check(f) ? (PyObject *)((PyFrameObject *)f)->f_back : NULL;
}

#if PY_VERSION_HEX < 0x030B0000
/* 3.10 marks a dict whose keys dict_traverse visits by its lookup
 * function (lookdict, static in dictobject.c): learnt once from a dict
 * with an int key. */
static void *ml_compat_lookdict310;
#endif

int
ml_compat_own_setup(void)
{
#if PY_VERSION_HEX < 0x030B0000
    PyObject *probe = PyDict_New(), *one = PyLong_FromLong(1);
    int rc = probe && one ? PyDict_SetItem(probe, one, one) : -1;
    if (rc == 0)
        ml_compat_lookdict310 = ((struct ml_keys310 *)((PyDictObject *)probe)->ma_keys)->dk_lookup;
    Py_XDECREF(probe);
    Py_XDECREF(one);
    return rc;
#else
    return 0;
#endif
}

int
ml_compat_dict_keys_untraversed(PyObject *d)
{
    PyDictObject *mp = (PyDictObject *)d;
    if (mp->ma_values)
        return 0;
#if PY_VERSION_HEX >= 0x030B0000
    return DK_IS_UNICODE(mp->ma_keys) ? 1 : 0;
#else
    /* unknown lookdict: say visited (nothing is subtracted twice) */
    return ml_compat_lookdict310 && ((struct ml_keys310 *)mp->ma_keys)->dk_lookup != ml_compat_lookdict310;
#endif
}

void
ml_compat_extension_modules_visit(visitproc visit, void *arg)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *list = interp->imports.modules_by_index;
#else
    PyObject *list = interp->modules_by_index;
#endif
    if (!list || !PyList_Check(list))
        return;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *m = PyList_GET_ITEM(list, i);
        if (m && PyModule_Check(m) && visit(m, arg))
            return;
    }
}

void
ml_compat_at_fork_visit(visitproc visit, void *arg)
{
#ifdef HAVE_FORK
    PyInterpreterState *interp = PyInterpreterState_Get();
    PyObject *lists[] = {interp->before_forkers, interp->after_forkers_parent, interp->after_forkers_child};
    for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
        if (!lists[k] || !PyList_Check(lists[k]))
            continue;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lists[k]); i++) {
            PyObject *o = PyList_GET_ITEM(lists[k], i);
            if (o && visit(o, arg))
                return;
        }
    }
#else
    (void)visit;
    (void)arg;
#endif
}
