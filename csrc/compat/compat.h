/* compat.h: every difference between CPython 3.10, 3.11, 3.12 and 3.13 that
 * the engine depends on, behind small functions. No other file of the engine
 * tests PY_VERSION_HEX or includes CPython's internal headers.
 *
 * Layer: shared. The frame walk and the pre-header size run inside allocator
 * hooks: they only read interpreter structs and never allocate or call into
 * Python. Functions that allocate say so.
 *
 * The free-threaded build is refused here (and in setup.py): its object
 * header, GC and allocators differ (see docs/INTERNALS.md).
 */
#ifndef ML_COMPAT_H
#define ML_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#ifdef Py_GIL_DISABLED
#error "memlens v1 does not support the free-threaded CPython build; use a regular (GIL) build of CPython 3.10-3.13"
#endif

#if PY_VERSION_HEX < 0x030A0000 || PY_VERSION_HEX >= 0x030E0000
#error "memlens supports CPython 3.10 to 3.13"
#endif

/* One Python frame as the hooks record it: the code object and the byte
 * offset of the instruction running in it (lines are resolved later), plus
 * the frame's address and raw instruction position, which let the next walk
 * recognise the part of the stack that has not changed. */
typedef struct {
    PyCodeObject *code;
    uint32_t offset;
    const void *frame;
    const void *ip;
} ml_pyframe;

/* This thread's thread state if this thread holds the GIL, else NULL.
 * Safe without the GIL; never allocates. */
PyThreadState *ml_compat_tstate_with_gil(void);
/* The same when the caller knows this thread holds the GIL (MEM and OBJ
 * allocator calls): skips the thread-identity check. */
PyThreadState *ml_compat_tstate_gil_held(void);

/* Copy up to `max` frames of `ts`, innermost first, into `out`; skips
 * incomplete and shim frames, and stops before the first frame running
 * `stop` (the profiler's own entry point; NULL = none). Returns the count;
 * sets *truncated when more frames were left out. Needs the GIL held by
 * this thread; never allocates. */
int ml_compat_walk(PyThreadState *ts, ml_pyframe *out, int max, const PyCodeObject *stop, int *truncated);

/* 1 if one of ts's frames runs `code`. GIL held; never allocates. */
int ml_compat_runs(PyThreadState *ts, const PyCodeObject *code);

/* Size of the GC header in front of a GC object (same in 3.10-3.13 GIL builds). */
#define ML_GC_HEAD_SIZE (2 * sizeof(void *))

/* One frame of a thread's frame chain as the cached walk keeps it. The
 * chain holds every frame from the innermost to the stop frame, shims
 * included, so that "same chain" is a test of addresses and positions. */
enum { ML_SKIP_NONE = 0, ML_SKIP_SHIM = 1, ML_SKIP_INCOMPLETE = 2 };
typedef struct {
    const void *frame;    /* its address */
    const void *ip;       /* raw instruction position (3.10: f_lasti); a value
                           * no frame has for an incomplete frame, so it never matches */
    PyCodeObject *code;   /* NULL for a shim frame */
    uint32_t offset;      /* byte offset of the instruction (0 when skipped) */
    uint32_t node;        /* for the caller: the stack id up to this frame */
    uint32_t depth;       /* for the caller: frames in that stack */
    uint8_t skip;         /* ML_SKIP_*: not part of the recorded stack */
    uint8_t own;          /* for the caller: the innermost recorded-or-own frame
                           * up to this one is the profiler's own code */
} ml_rawframe;

/* The walk, with this thread's previous chain as a cache: `chain`
 * (outermost first, nchain frames; `bottom` is the frame that ended it: the
 * stop frame, or NULL). Walks innermost first, writing each frame into
 * `out`, until it meets a frame that is one of the chain's innermost few
 * (found by address), at the same instruction, whose callers record exactly
 * as the chain's (code and position of every frame, and the chain ending
 * the same way: an exact test of the stack). Then
 * *anchor is that frame's index in `chain`, and `out` holds the newer
 * frames above it (the return value). Without such a frame *anchor is -1,
 * `out` holds the whole chain and *new_bottom the frame that ended it.
 * Returns -1 when more than `cap` frames would be needed (the caller then
 * uses ml_compat_walk). GIL held; never allocates. */
int ml_compat_walk_cached(PyThreadState *ts, const PyCodeObject *stop, const ml_rawframe *chain, int nchain,
                          const void *bottom, ml_rawframe *out, int cap, int *anchor, const void **new_bottom);
/* 1 if the thread's frames are exactly `chain` (nchain >= 1) ended by
 * `bottom`: the common case of the walk above, tested first. Callers that
 * record the same from other frames (same code and positions: a new
 * generator's frame, say) count as unchanged, and their new addresses are
 * written into the chain. */
int ml_compat_chain_unchanged(PyThreadState *ts, const PyCodeObject *stop, ml_rawframe *chain, int nchain,
                              const void *bottom);

/* Where ts runs now: its innermost frame and that frame's raw instruction
 * position (NULL, NULL without frames). With ml_compat_still_at, tells
 * whether a call made from that frame has returned: 1 while `frame` is
 * among ts's frames at position `ip` (the call, or code it calls, is still
 * running). Never allocates; GIL held. */
void ml_compat_where(PyThreadState *ts, const void **frame, const void **ip);
int ml_compat_still_at(PyThreadState *ts, const void *frame, const void *ip);

/* Bytes in front of the object in its memory block (GC head, managed dict
 * and weakref pointers): 0, 16 or 32. Never allocates. */
size_t ml_compat_preheader(PyTypeObject *tp);

/* The code object's qualified name (its plain name on 3.10); borrowed. */
PyObject *ml_compat_code_name(PyCodeObject *co);

/* Decode the code's line table into runs: from byte offset offsets[i] the
 * line is lines[i] (0 = no line). Arrays come from malloc; the caller frees
 * both. Returns 0, or -1 when out of memory. Never calls into Python. */
int ml_compat_linemap(PyCodeObject *co, uint32_t **offsets, int32_t **lines, size_t *n);

/* UTF-8 view of a str without allocating through Python: for ASCII strings
 * it points into the object; otherwise it encodes into `buf` (cap bytes)
 * and truncates. U+DC80..U+DCFF (bytes that were not UTF-8, escaped by
 * surrogateescape) are written back as those bytes, as os.fsencode does, so
 * a file name keeps its bytes. Returns the length. */
size_t ml_compat_str_utf8(PyObject *s, char *buf, size_t cap, const char **out);

/* The object-creation tracer (3.13+): 1 where the interpreter has one. */
int ml_compat_have_reftracer(void);
typedef void (*ml_create_fn)(PyObject *op);
/* Install `fn` as the creation tracer, chaining to the one installed before.
 * Returns 0, or -1 without a tracer API. GIL held. */
int ml_compat_reftracer_install(ml_create_fn fn);
/* 1 if our tracer is still the installed one. */
int ml_compat_reftracer_is_ours(void);
void ml_compat_reftracer_uninstall(void);

/* 1 if the block (of `size` bytes, just written by the interpreter) holds a
 * fresh dict-keys table: its header fields agree with its size. Reads only
 * the first 40 bytes. Never allocates. */
int ml_compat_is_dict_keys(const void *block, size_t size);
/* 1 if blocks of the MEM domain may hold dict keys tables (3.13's
 * new_keys_object uses PyMem_Malloc; 3.10-3.12 use PyObject_Malloc). Where
 * they cannot, a MEM block is never an object nor a keys table, so the
 * tracker types it at once instead of reading it at the next hook call. */
#define ML_COMPAT_MEM_HOLDS_DICT_KEYS (PY_VERSION_HEX >= 0x030D0000)

/* 1 while the cyclic GC of ts's interpreter is collecting. On 3.10/3.11 a
 * collection can run inside an allocation, before the new object's header
 * is written; and objects then sit on the collector's private lists, where
 * a walk of the generations misses them. Never allocates. */
int ml_compat_gc_collecting(PyThreadState *ts);

/* 1 if `refcnt` is plausible for a live object (immortal ones included). */
int ml_compat_refcnt_ok(Py_ssize_t refcnt);

/* ---- heap analysis (issue 3) : declarations below this line ---- */


/* Heap analysis reads (csrc/heap/). All of them need the GIL held by this
 * thread, never call into Python, never allocate and never create an
 * instance __dict__ (they read managed-dict slots directly). */

/* PyObject_GC_IsTracked without the call: the walker asks it for every
 * referent. The GC head in front of a GC object is {_gc_next, _gc_prev}
 * on every GIL build of 3.10-3.13; _gc_next is 0 when untracked. */
static inline int
ml_compat_gc_tracked(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    if (!(tp->tp_flags & Py_TPFLAGS_HAVE_GC))
        return 0;
    if (tp->tp_is_gc && !tp->tp_is_gc(o))
        return 0;
    return ((const uintptr_t *)o)[-2] != 0;
}

/* Callback for ml_compat_gc_foreach: return 0 to go on, nonzero to stop. */
typedef int (*ml_compat_gc_fn)(PyObject *op, void *arg);

/* Call fn on every object of this interpreter's GC lists: generations 0-2,
 * then the permanent generation (gc.freeze). Returns fn's first nonzero
 * result, else 0. fn must not free, track or untrack objects. */
int ml_compat_gc_foreach(ml_compat_gc_fn fn, void *arg);

/* Visit what the running frames of every thread of this interpreter hold
 * outside any object: on 3.11+ the locals, cells and globals of each
 * interpreter frame (3.10 frames are GC objects, so nothing to do). Only
 * fully initialised frames; the value stack is left out. */
void ml_compat_frames_visit(visitproc visit, void *arg);

/* Visit the objects code object `co` holds (constants, names, byte code,
 * tables): code objects are not GC objects, so no tp_traverse shows them. */
void ml_compat_code_visit(PyObject *co, visitproc visit, void *arg);

/* What sys.getsizeof adds to __sizeof__() for `o`: the GC head and the
 * managed dict/weakref pre-header where this version counts them. */
size_t ml_compat_sizeof_extra(PyObject *o);

/* The same for every object of type `tp`, or -1 when it depends on the
 * object (types with tp_is_gc: type objects are GC objects or not). */
Py_ssize_t ml_compat_sizeof_extra_of_type(PyTypeObject *tp);

/* str.__sizeof__(o), computed in C (o is a str or str subclass). */
size_t ml_compat_str_sizeof(PyObject *o);

/* int.__sizeof__(o), computed in C (o is an int or int subclass). */
size_t ml_compat_int_sizeof(PyObject *o);

/* dict.__sizeof__(o) (CPython's own _PyDict_SizeOf; o is a dict). */
size_t ml_compat_dict_sizeof(PyObject *o);

/* type.__sizeof__(tp) computed in C: the heap-type struct plus its shared
 * (cached) keys, or the static struct. */
size_t ml_compat_type_sizeof(PyTypeObject *tp);

/* 1 if dict `d` is split (key-sharing): its keys live in the class's
 * shared keys object and its values in a separate array. 3.10 gives every
 * empty dict ({}, dict(), a cleared dict) a values array too (a static
 * one): those are not split. */
int ml_compat_dict_is_split(PyObject *d);

/* The entries of a dict, read in place (one call per dict instead of one
 * PyDict_Next call per item): for i < n, entry i is the key
 * keys[i * kstride] with the value values[i * vstride]; an entry whose
 * value is NULL is not an item (deleted, or a shared key this split dict
 * does not hold) and its key must be ignored. Valid until the dict is
 * next modified. */
typedef struct {
    PyObject *const *keys;
    PyObject *const *values;
    size_t kstride, vstride, n;
} ml_compat_dict_entries;

/* Fill *e with the entries of dict `d` (a dict or dict subclass). */
void ml_compat_dict_entries_of(PyObject *d, ml_compat_dict_entries *e);

/* The existing __dict__ of instance `o` (borrowed), or NULL when it has
 * none, without ever creating one. *values_bytes gets the bytes of an
 * attribute values array that the instance owns without a dict object and
 * that __sizeof__ does not count (3.11/3.12 separate array, 3.13 inline
 * values), else 0. Modules and types are not handled here. */
PyObject *ml_compat_instance_dict(PyObject *o, size_t *values_bytes);

/* The dict of attributes of type `tp` (borrowed; static builtin types keep
 * theirs in the interpreter on 3.12+), or NULL. */
PyObject *ml_compat_type_dict(PyTypeObject *tp);

/* ---- reference graph (issue 11, csrc/graph/) ---- */

/* Called for each local slot of each running frame of every thread of
 * this interpreter (innermost frame first, depth 0): the frame's code,
 * its current line, the slot's name and value (borrowed; cells and free
 * variables are the cell objects). Return nonzero to stop. */
typedef int (*ml_compat_local_fn)(unsigned long thread_id, int depth, PyCodeObject *co, int line,
                                  PyObject *name, PyObject *value, void *arg);

/* Run fn on every non-NULL local of every complete frame. Never calls
 * into Python; needs the GIL. */
void ml_compat_frames_locals(ml_compat_local_fn fn, void *arg);

/* 1 if `o` is a frame object (PyFrameObject); then *code is its code
 * object (borrowed). */
int ml_compat_frameobj_code(PyObject *o, PyCodeObject **code);

/* The attribute name (borrowed str) under which instance `o` holds
 * `value` in an attribute values array without a dict object (3.11+),
 * or NULL. */
PyObject *ml_compat_instance_attr(PyObject *o, PyObject *value);
/* The same, as the place: 1 + the index of the first slot of that array
 * holding `value` (0: none), and its name in *name. A type's slot i keeps
 * its name for as long as the type lives. */
size_t ml_compat_instance_attr_index(PyObject *o, PyObject *value, PyObject **name);

/* rss: pymalloc's statistics printed to `out` (sys._debugmallocstats);
 * 0 when pymalloc is not the allocator. The function is exported on
 * 3.10-3.13, declared in a public header on 3.10 and an internal one
 * after. GIL held. */
int ml_compat_pymalloc_stats(FILE *out);

/* rss: pymalloc's pools. The pool size in arenas of arena_size bytes
 * (3.10-3.13 on 64-bit: 16 KiB pools in 1 MiB arenas, else 4 KiB pools
 * in 256 KiB arenas), and what the header of the pool at `pool` (pool_size
 * bytes, readable) says: blocks allocated, block size, and the byte
 * offsets of its first block and of the end of the blocks carved so far
 * (the header is the same struct pool_header on 3.10-3.13). 0, or -1 when
 * the header is not a used pool's (then nothing is written). GIL held:
 * pymalloc changes headers under it. */
size_t ml_compat_pymalloc_pool_size(size_t arena_size);
int ml_compat_pymalloc_pool(const void *pool, size_t pool_size, uint32_t *count, uint32_t *block,
                            uint32_t *first, uint32_t *end);

/* ---- garbage collector (issue 12): declarations below this line ---- */

/* Call fn on every object the next full collection would examine: the GC
 * lists of generations 0-2 of this interpreter, not the permanent generation
 * (gc.freeze()). Same contract as ml_compat_gc_foreach. */
int ml_compat_gc_foreach_collectable(ml_compat_gc_fn fn, void *arg);


/* ---- heap at exit (issue 11, buffer owners): declarations below ---- */

/* What a buffer is to the object that owns it. */
typedef enum {
    ML_COMPAT_BUF_ITEMS = 1,  /* list: the item array */
    ML_COMPAT_BUF_KEYS = 2,   /* dict: its own keys table (not a class's shared one) */
    ML_COMPAT_BUF_VALUES = 3, /* dict (split) or instance: a separate values array */
    ML_COMPAT_BUF_TABLE = 4,  /* set, frozenset: the hash table (not the small one inside) */
    ML_COMPAT_BUF_DATA = 5,   /* bytearray, array.array (and subclasses): the bytes */
} ml_compat_buf_role;

typedef struct {
    uintptr_t block; /* start of the memory block the allocator returned */
    uint8_t role;    /* ml_compat_buf_role */
} ml_compat_buf;

#define ML_COMPAT_MAX_BUFS 2

/* The separately allocated buffers that object `o` owns (at most
 * ML_COMPAT_MAX_BUFS), as the addresses of the blocks the allocator gave
 * (a values array of 3.11/3.12 starts before the pointer the dict keeps).
 * Buffers inside the object or shared with others are left out. Returns
 * the count. GIL held; reads only, never allocates. */
int ml_compat_owned_buffers(PyObject *o, ml_compat_buf *out);
/* 0 when no instance of tp owns a buffer (ml_compat_owned_buffers returns
 * 0 for every one), so that a pass can skip them by type. */
int ml_compat_type_owns_buffers(PyTypeObject *tp);
/* 1 if tp's tp_name is `dotted` (a C type's "module.name", which no class
 * statement can give: a class's tp_name is its bare name), 2 if one of its
 * bases' is, else 0. Walks tp's bases; not cached. */
int ml_compat_derives_from(PyTypeObject *tp, const char *dotted);

/* 1 when tp_traverse of `o` must not be called: the `_asyncio` module on
 * CPython 3.12.0-3.12.5 and 3.13.0, whose traverse visits the dead
 * FutureIter objects of its free list (CPython gh-122695: a walk that
 * follows them loops or reads freed memory once asyncio has run). Its
 * referents are then no edges of memlens' walks (they are reachable
 * elsewhere: asyncio's Python module). Checked at run time (Py_Version). */
int ml_compat_traverse_unsafe(PyObject *o);

#endif /* ML_COMPAT_H */

/* ---- memlens' own part of the heap (heap/ownset.c) ---- */

/* Called by ml_compat_own_frames for each running frame of the calling
 * thread, innermost first (depth 0), with its code object: 1 to have the
 * frame's references visited, 0 to pass. */
typedef int (*ml_compat_frame_pick)(void *arg, PyObject *code, size_t depth);

/* Each running frame of the calling thread, innermost first: pick(code),
 * then, for a picked frame, visit() on every reference the frame holds
 * (one call per reference, so that the caller can subtract them from
 * refcounts). 3.10: the frame object itself, once (the evaluation loop's
 * reference; its locals are its own referents). 3.11+: the code, the
 * function, f_locals, the frame object if one was made, the locals, and
 * the value stack when the interpreter saved its depth (a frame that is
 * calling into C has none: its temporaries are not visited). Frames a
 * generator owns, incomplete frames and shims are skipped. GIL held;
 * reads only, never allocates. */
void ml_compat_own_frames(ml_compat_frame_pick pick, visitproc visit, void *arg);

/* The f_back field of `f` if it is a frame object (borrowed, may be NULL;
 * NULL for any other object), read without creating the previous frame's
 * object (3.11+ makes them lazily). */
PyObject *ml_compat_frame_back(PyObject *f);

/* 1 when dict `d`'s tp_traverse leaves its keys out although the dict
 * holds them (all-str keys of a table the dict owns), 0 when it visits
 * them or the keys are a class's shared ones (split table). */
int ml_compat_dict_keys_untraversed(PyObject *d);

/* Learn what ml_compat_dict_keys_untraversed needs (3.10: makes a dict):
 * once, at import. Returns 0, or -1 with a Python exception set. */
int ml_compat_own_setup(void);

/* visit() on every module the interpreter's table of single-phase
 * extension modules holds (one reference each: PyState_AddModule).
 * GIL held; reads only. */
void ml_compat_extension_modules_visit(visitproc visit, void *arg);

/* visit() on every callable os.register_at_fork() holds (one reference
 * each). GIL held; reads only. */
void ml_compat_at_fork_visit(visitproc visit, void *arg);
