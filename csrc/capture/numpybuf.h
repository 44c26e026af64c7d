/* numpybuf.h: NumPy array data as its own kind, "numpy.ndarray (data)".
 *
 * Layer: capture. NumPy (1.22+, NEP 49) allocates every array's data
 * through a handler, a PyDataMem_Handler struct held by a capsule named
 * "mem_handler". The default one (C-API slot 306, PyDataMem_DefaultHandler)
 * is a global struct in NumPy; this module wraps its four functions in
 * place: each calls NumPy's own function, then tells the tracker about the
 * block (ml_tracker_buffer_alloc / _free), which records it like a RAW
 * block of kind "numpy.ndarray (data)" with the Python stack of the thread.
 *
 * Why the default handler and not PyDataMem_SetHandler: the handler set by
 * PyDataMem_SetHandler lives in a ContextVar, and a thread started on
 * CPython 3.10-3.13 runs in a fresh context, so arrays made in other threads
 * would be missed. Why not PyTraceMalloc_Track (which NumPy also calls):
 * it does nothing unless tracemalloc itself traces, and catching it without
 * tracemalloc means patching NumPy's PLT entries. A handler set by the
 * program itself (another allocator) is left alone: its arrays are not
 * typed (docs/NUMPY.md).
 *
 * Installed once, when a capture starts with NumPy imported, or when the
 * program imports NumPy later: NumPy's module init makes the default
 * handler's capsule (PyCapsule_New, before any array can be allocated) and
 * the tracker, classifying that new block as a capsule at its next hook
 * call, hands it to ml_numpybuf_capsule, which wraps it. (Not an audit
 * hook on "import" events: once any audit hook exists, CPython builds an
 * argument tuple for every audited call, id() included, for the rest of the
 * process.) Never removed: the wrappers pass straight through when nothing
 * records.
 * All functions here need the GIL; the wrappers themselves may run without
 * it (NumPy may allocate with the GIL released).
 */
#ifndef ML_NUMPYBUF_H
#define ML_NUMPYBUF_H

#include "compat/compat.h"

/* Wrap NumPy's default handler if NumPy is imported and not wrapped yet,
 * else wrap it when ml_numpybuf_capsule meets it. Returns 0; never raises.
 * GIL held. */
int ml_numpybuf_start(void);

/* A capsule was just made (its fields are set): if ml_numpybuf_start ran
 * and it is NumPy's default handler, wrap it. Inside the allocator hooks
 * (GIL held): only reads the capsule, never allocates nor raises. */
void ml_numpybuf_capsule(PyObject *capsule);

/* 1 when NumPy's default handler is wrapped. */
int ml_numpybuf_installed(void);

#endif /* ML_NUMPYBUF_H */
