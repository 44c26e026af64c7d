/* hooks.h: `memlens run --native`: the C allocator calls of extension
 * modules and shared libraries, recorded by the tracker.
 *
 * Layer: native (capture side). The replacements of malloc, calloc,
 * realloc, free, posix_memalign, aligned_alloc, memalign, valloc, and of
 * anonymous mmap/munmap/mremap are installed in the GOT of every loaded
 * object but these: the dynamic loader, the vDSO, libc (its own calls are
 * not the program's: they would count glibc's internals and memlens'),
 * sanitizer runtimes, memlens' engine, and libpython / the python
 * executable, whose allocations the PyMem hooks record already (so
 * nothing is counted twice). In libpython and the executable only dlopen
 * is replaced, so that an extension module imported later is patched as
 * soon as it is loaded; libraries that objects load with dlopen are
 * patched the same way, and in _ctypes, dlsym hands out the replacements
 * (ctypes calling libc's malloc is recorded).
 *
 * Each replacement calls the real function, then (recording on, and not
 * inside memlens) tells the tracker, with the kind of the library that
 * called (from the return address). A thread-local guard keeps the
 * tracker's own work out. Without the GIL the tracker takes its lock;
 * PyEval_SaveThread/RestoreThread of patched objects are wrapped so that
 * such a thread keeps the Python stack it released the GIL at.
 *
 * Threads: ml_native_enable needs the GIL; the replacements run on any
 * thread. Patches stay for the process' life: with recording off the
 * replacements cost a flag test.
 */
#ifndef ML_NATIVE_HOOKS_H
#define ML_NATIVE_HOOKS_H

#include <stddef.h>

/* Patch every loaded object (once; later calls rescan for new objects) and
 * turn recording of native calls on; with `stacks` (--native-stacks) each
 * allocation also gets its native caller chain (native/unwind.h). Returns the number of objects patched
 * so far, or -1 (errno) when an object could not be patched. GIL held. */
int ml_native_enable(int stacks);
/* Turn recording of native calls off (the patches stay). */
void ml_native_disable(void);

/* What the native side knows, for tests and `memlens run`. */
typedef struct {
    size_t objects;   /* objects patched for allocations */
    size_t slots;     /* GOT slots rewritten */
} ml_native_stats;
void ml_native_get_stats(ml_native_stats *out);

#endif /* ML_NATIVE_HOOKS_H */
