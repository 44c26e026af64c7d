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
 * offset of the instruction running in it. Lines are resolved later. */
typedef struct {
    PyCodeObject *code;
    uint32_t offset;
} ml_pyframe;

/* This thread's thread state if this thread holds the GIL, else NULL.
 * Safe without the GIL; never allocates. */
PyThreadState *ml_compat_tstate_with_gil(void);

/* Copy up to `max` frames of `ts`, innermost first, into `out`; skips
 * incomplete and shim frames, and stops before the first frame running
 * `stop` (the profiler's own entry point; NULL = none). Returns the count;
 * sets *truncated when more frames were left out. Needs the GIL held by
 * this thread; never allocates. */
int ml_compat_walk(PyThreadState *ts, ml_pyframe *out, int max, const PyCodeObject *stop, int *truncated);

/* Size of the GC header in front of a GC object (same in 3.10-3.13 GIL builds). */
#define ML_GC_HEAD_SIZE (2 * sizeof(void *))

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
 * and truncates. Returns the length. */
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

/* 1 while the cyclic GC of ts's interpreter is collecting. On 3.10/3.11 a
 * collection can run inside an allocation, before the new object's header
 * is written. Never allocates. */
int ml_compat_gc_collecting(PyThreadState *ts);

/* 1 if `refcnt` is plausible for a live object (immortal ones included). */
int ml_compat_refcnt_ok(Py_ssize_t refcnt);

/* ---- heap analysis (issue 3) : declarations below this line ---- */

#endif /* ML_COMPAT_H */
