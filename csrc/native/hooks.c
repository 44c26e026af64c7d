/* hooks.c: the replacements of the C allocator's functions in loaded
 * objects, and the table of those objects (see hooks.h). */
#define _GNU_SOURCE 1
#include "native/hooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture/tracker.h"
#include "native/elf.h"
#include "native/unwind.h"

#define ML_TLS __thread __attribute__((tls_model("initial-exec")))
/* Recording on; a stale read is harmless: the tracker checks its own flag. */
#define ML_NATIVE_ON() atomic_load_explicit(&ml_native_on, memory_order_relaxed)
#define ML_NATIVE_LIBS_MAX 4096

/* A loaded object patched for allocations. Entries are only appended, and
 * are immutable once counted in ml_native_nlibs: the hooks read them
 * without a lock. An object unloaded keeps its entry; a newer one loaded
 * at the same addresses is found first (the table is searched backwards). */
typedef struct {
    uintptr_t base, lo, hi;
    uintptr_t probe;     /* a patched GOT slot (0: none) */
    void *probe_to;      /* what it was set to */
    ml_native_kind kind; /* kind.name: the file name, without folders */
} ml_native_lib;

static atomic_int ml_native_on;
static ml_native_lib ml_native_libs[ML_NATIVE_LIBS_MAX];
static atomic_size_t ml_native_nlibs;
static pthread_mutex_t ml_native_scan_mx = PTHREAD_MUTEX_INITIALIZER;
static size_t ml_native_slots;
/* Calls from an address no patched object holds (a ctypes call comes
 * from libffi's trampoline, which may be in an excluded object). */
static ml_native_kind ml_native_unknown = {.name = "unknown"};
/* This thread's last hit (index + 1), valid while the table has as many
 * entries as then (a newer entry may cover the same addresses). */
static ML_TLS size_t ml_native_last, ml_native_last_n;

/* The kind of the object holding code address `a`. */
static ml_native_kind *
ml_native_kind_at(uintptr_t a)
{
    size_t n = atomic_load_explicit(&ml_native_nlibs, memory_order_acquire);
    size_t last = ml_native_last;
    if (last && ml_native_last_n == n && a >= ml_native_libs[last - 1].lo && a < ml_native_libs[last - 1].hi)
        return &ml_native_libs[last - 1].kind;
    for (size_t i = n; i-- > 0;)
        if (a >= ml_native_libs[i].lo && a < ml_native_libs[i].hi) {
            ml_native_last = i + 1;
            ml_native_last_n = n;
            return &ml_native_libs[i].kind;
        }
    return &ml_native_unknown;
}

/* ---- the replacements ---- */

#define ML_CALLER() ml_native_kind_at((uintptr_t)__builtin_return_address(0))
/* nstacks: the native caller chain's id (0 without --native-stacks) */
#define ML_NSTACK() ml_unwind_stack()

static void *
ml_native_malloc(size_t size)
{
    void *p = malloc(size);
    if (p && ML_NATIVE_ON())
        ml_tracker_native_alloc(p, size, ML_CALLER(), ML_NSTACK());
    return p;
}

static void *
ml_native_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p && ML_NATIVE_ON()) /* n * size did not overflow: calloc succeeded */
        ml_tracker_native_alloc(p, n * size, ML_CALLER(), ML_NSTACK());
    return p;
}

static void *
ml_native_realloc(void *old, size_t size)
{
    if (!ML_NATIVE_ON())
        return realloc(old, size);
    ml_native_kind *k = ML_CALLER();
    uint32_t ns = ML_NSTACK();
    /* the old block's free first, before its address can be handed out
     * again (if realloc fails, a rare out-of-memory, the block is left
     * out of the capture from here on) */
    if (old)
        ml_tracker_native_free(old);
    void *p = realloc(old, size);
    if (p)
        ml_tracker_native_alloc(p, size, k, ns);
    return p;
}

static void
ml_native_free(void *p)
{
    if (p && ML_NATIVE_ON()) /* before the address can be handed out again */
        ml_tracker_native_free(p);
    free(p);
}

static int
ml_native_posix_memalign(void **out, size_t align, size_t size)
{
    int rc = posix_memalign(out, align, size);
    if (rc == 0 && *out && ML_NATIVE_ON())
        ml_tracker_native_alloc(*out, size, ML_CALLER(), ML_NSTACK());
    return rc;
}

static void *
ml_native_aligned_alloc(size_t align, size_t size)
{
    void *p = aligned_alloc(align, size);
    if (p && ML_NATIVE_ON())
        ml_tracker_native_alloc(p, size, ML_CALLER(), ML_NSTACK());
    return p;
}

/* glibc's obsolete ones, still exported and used */
extern void *memalign(size_t align, size_t size);
extern void *valloc(size_t size);

static void *
ml_native_memalign(size_t align, size_t size)
{
    void *p = memalign(align, size);
    if (p && ML_NATIVE_ON())
        ml_tracker_native_alloc(p, size, ML_CALLER(), ML_NSTACK());
    return p;
}

static void *
ml_native_valloc(size_t size)
{
    void *p = valloc(size);
    if (p && ML_NATIVE_ON())
        ml_tracker_native_alloc(p, size, ML_CALLER(), ML_NSTACK());
    return p;
}

/* Anonymous mappings only: a file mapping is not heap. */
static void *
ml_native_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && (flags & MAP_ANONYMOUS) && ML_NATIVE_ON())
        ml_tracker_native_alloc(p, len, ML_CALLER(), ML_NSTACK());
    return p;
}

/* An unmapping that starts at a recorded mapping frees it (whole). */
static int
ml_native_munmap(void *addr, size_t len)
{
    if (ML_NATIVE_ON())
        ml_tracker_native_free(addr);
    return munmap(addr, len);
}

static void *
ml_native_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    ml_native_kind *k = ML_NATIVE_ON() ? ML_CALLER() : NULL;
    uint32_t ns = k ? ML_NSTACK() : 0;
    /* the old mapping's free first, before another thread's mmap can get
     * its addresses (if mremap fails, the mapping is left out of the
     * capture from here on, as realloc's block) */
    if (k)
        ml_tracker_native_free(old);
    void *p = mremap(old, old_len, new_len, flags, want);
    if (p != MAP_FAILED && k)
        ml_tracker_native_alloc(p, new_len, k, ns);
    return p;
}

/* ---- objects loaded later ---- */

static int ml_native_scan(void);

/* dlopen as the object at `caller` would: a bare file name is looked up
 * in the caller's search path (its RPATH/RUNPATH), which a plain call from
 * here would not see. */
static void *
ml_native_dlopen_as(const char *file, int flags, const void *caller)
{
    if (!file || strchr(file, '/'))
        return dlopen(file, flags);
    void *h = dlopen(file, flags | RTLD_NOLOAD); /* loaded already (soname) */
    if (h)
        return h;
    Dl_info info;
    void *self = NULL;
    if (dladdr(caller, &info) && info.dli_fname && info.dli_fname[0])
        self = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    Dl_serinfo size, *si = NULL;
    if (self && dlinfo(self, RTLD_DI_SERINFOSIZE, &size) == 0 && (si = malloc(size.dls_size))) {
        si->dls_size = size.dls_size;
        si->dls_cnt = size.dls_cnt;
        if (dlinfo(self, RTLD_DI_SERINFO, si) == 0) {
            for (unsigned i = 0; i < si->dls_cnt && !h; i++) {
                const char *dir = si->dls_serpath[i].dls_name;
                size_t dl = strlen(dir), fl = strlen(file);
                char *path = malloc(dl + fl + 2);
                if (!path)
                    break;
                memcpy(path, dir, dl);
                path[dl] = '/';
                memcpy(path + dl + 1, file, fl + 1);
                if (access(path, F_OK) == 0)
                    h = dlopen(path, flags);
                free(path);
            }
        }
        free(si);
    }
    if (self)
        dlclose(self);
    return h ? h : dlopen(file, flags);
}

static void *
ml_native_dlopen(const char *file, int flags)
{
    void *h = ml_native_dlopen_as(file, flags, __builtin_return_address(0));
    if (h && ML_NATIVE_ON()) {
        int e = errno;
        (void)ml_native_scan(); /* an object that cannot be patched stays unpatched */
        errno = e;
    }
    return h;
}

/* _ctypes looks functions up by name: hand out the replacements. */
static void *ml_native_dlsym(void *handle, const char *name);

/* The first ml_native_defined_n objects' kinds (and "unknown") have their
 * TYPE_DEF in the capture whose generation "unknown" had then: the GIL
 * releases after that skip the pass over the table (SQLite releases the
 * GIL at every step). Relaxed: a stale pair only costs one more pass. */
static atomic_size_t ml_native_defined_n;
static _Atomic uint64_t ml_native_defined_gen;

/* Py_BEGIN_ALLOW_THREADS in a patched object: keep the stack, and define
 * every object's kind in the capture first (a thread without the GIL
 * cannot). */
static PyThreadState *
ml_native_save_thread(void)
{
    if (ML_NATIVE_ON()) {
        size_t n = atomic_load_explicit(&ml_native_nlibs, memory_order_acquire);
        int ok = ml_tracker_native_define(&ml_native_unknown);
        uint64_t gen = atomic_load_explicit(&ml_native_unknown.generation, memory_order_relaxed);
        if (!ok || n != atomic_load_explicit(&ml_native_defined_n, memory_order_relaxed) ||
            gen != atomic_load_explicit(&ml_native_defined_gen, memory_order_relaxed)) {
            for (size_t i = 0; i < n; i++)
                ok &= ml_tracker_native_define(&ml_native_libs[i].kind);
            if (ok) {
                atomic_store_explicit(&ml_native_defined_gen, gen, memory_order_relaxed);
                atomic_store_explicit(&ml_native_defined_n, n, memory_order_relaxed);
            }
        }
        ml_tracker_native_gil_release();
    }
    return PyEval_SaveThread();
}

static void
ml_native_restore_thread(PyThreadState *ts)
{
    PyEval_RestoreThread(ts);
    ml_tracker_native_gil_acquired();
}

static const ml_elf_hook ml_native_alloc_hooks[] = {
    {"malloc", (void *)ml_native_malloc},
    {"calloc", (void *)ml_native_calloc},
    {"realloc", (void *)ml_native_realloc},
    {"free", (void *)ml_native_free},
    {"posix_memalign", (void *)ml_native_posix_memalign},
    {"aligned_alloc", (void *)ml_native_aligned_alloc},
    {"memalign", (void *)ml_native_memalign},
    {"valloc", (void *)ml_native_valloc},
    {"mmap", (void *)ml_native_mmap},
    {"mmap64", (void *)ml_native_mmap},
    {"munmap", (void *)ml_native_munmap},
    {"mremap", (void *)ml_native_mremap},
    {"dlopen", (void *)ml_native_dlopen},
    {"PyEval_SaveThread", (void *)ml_native_save_thread},
    {"PyEval_RestoreThread", (void *)ml_native_restore_thread},
    {"dlsym", (void *)ml_native_dlsym}, /* last: in _ctypes only */
};
#define ML_NATIVE_NHOOKS (sizeof(ml_native_alloc_hooks) / sizeof(ml_native_alloc_hooks[0]))
static const ml_elf_hook ml_native_dlopen_hook[] = {{"dlopen", (void *)ml_native_dlopen}};

static void *
ml_native_dlsym(void *handle, const char *name)
{
    void *f = dlsym(handle, name);
    if (!f || !name)
        return f;
    for (size_t i = 0; i < 12; i++) /* the allocation functions */
        if (!strcmp(name, ml_native_alloc_hooks[i].name)) {
            /* only the C library's function, not a library's own of that name */
            if (f == dlsym(RTLD_DEFAULT, name))
                return ml_native_alloc_hooks[i].to;
            break;
        }
    return f;
}

/* ---- the scan ---- */

static const char *
ml_native_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int
ml_native_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

enum { ML_PATCH_NONE, ML_PATCH_DLOPEN, ML_PATCH_ALL, ML_PATCH_ALL_DLSYM };

/* How much of object `name` (full path; "" for the executable) to patch. */
static int
ml_native_policy(const struct dl_phdr_info *info)
{
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = ml_native_basename(name);
    uintptr_t lo, hi, self = (uintptr_t)&ml_native_policy;
    ml_elf_range(info, &lo, &hi);
    if (self >= lo && self < hi) /* memlens' engine */
        return ML_PATCH_NONE;
    if (!name[0] || ml_native_prefix(base, "libpython"))
        return ML_PATCH_DLOPEN; /* its allocations are the PyMem hooks' */
    static const char *skip[] = {"linux-vdso", "linux-gate", "ld-linux", "ld-musl", "ld64.so", "libc.so",
                                 "libc-", "libdl.so", "libpthread.so", "libasan", "libubsan", "liblsan",
                                 "libtsan", "libhwasan"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (ml_native_prefix(base, skip[i]))
            return ML_PATCH_NONE;
    /* objects without a name in the list (the vDSO on some kernels) */
    if (!lo || !hi)
        return ML_PATCH_NONE;
    return ml_native_prefix(base, "_ctypes") ? ML_PATCH_ALL_DLSYM : ML_PATCH_ALL;
}

/* The entry of the object loaded at `base` as `name`, or NULL. */
static ml_native_lib *
ml_native_find(uintptr_t base, const char *name)
{
    size_t n = atomic_load_explicit(&ml_native_nlibs, memory_order_relaxed);
    for (size_t i = n; i-- > 0;)
        if (ml_native_libs[i].base == base && !strcmp(ml_native_libs[i].kind.name, ml_native_basename(name)))
            return &ml_native_libs[i];
    return NULL;
}

typedef struct {
    int failed;
    int err;
} ml_scan_state;

static int
ml_native_scan_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    ml_scan_state *st = arg;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    ml_unwind_add_object(info); /* nstacks: its mappings (with --native-stacks) */
    int policy = ml_native_policy(info);
    if (policy == ML_PATCH_NONE)
        return 0;
    if (policy == ML_PATCH_DLOPEN) { /* cheap and idempotent: done every scan */
        if (ml_elf_patch(info, ml_native_dlopen_hook, 1, NULL) < 0)
            st->failed = 1, st->err = errno;
        return 0;
    }
    size_t nhooks = ML_NATIVE_NHOOKS - (policy != ML_PATCH_ALL_DLSYM);
    ml_native_lib *known = ml_native_find(info->dlpi_addr, name);
    if (known) {
        /* patched already, unless it was unloaded and loaded again there */
        if (known->probe && *(void *const *)known->probe != known->probe_to &&
            ml_elf_patch(info, ml_native_alloc_hooks, nhooks, NULL) < 0)
            st->failed = 1, st->err = errno;
        return 0;
    }
    size_t n = atomic_load_explicit(&ml_native_nlibs, memory_order_relaxed);
    if (n == ML_NATIVE_LIBS_MAX)
        return 0; /* not recorded: the process has loaded 4096 objects */
    char *copy = strdup(ml_native_basename(name));
    if (!copy) {
        st->failed = 1, st->err = ENOMEM;
        return 0;
    }
    uintptr_t probe;
    int k = ml_elf_patch(info, ml_native_alloc_hooks, nhooks, &probe);
    if (k < 0) {
        st->failed = 1, st->err = errno;
        free(copy);
        return 0;
    }
    ml_native_slots += (size_t)k;
    ml_native_lib *l = &ml_native_libs[n];
    l->base = info->dlpi_addr;
    l->probe = probe;
    l->probe_to = probe ? *(void *const *)probe : NULL;
    ml_elf_range(info, &l->lo, &l->hi);
    l->kind.name = copy;
    l->kind.id = 0;
    atomic_store_explicit(&l->kind.generation, 0, memory_order_relaxed);
    atomic_store_explicit(&ml_native_nlibs, n + 1, memory_order_release);
    return 0;
}

static int
ml_native_scan(void)
{
    ml_scan_state st = {0, 0};
    pthread_mutex_lock(&ml_native_scan_mx);
    dl_iterate_phdr(ml_native_scan_one, &st);
    pthread_mutex_unlock(&ml_native_scan_mx);
    if (st.failed) {
        errno = st.err;
        return -1;
    }
    return 0;
}

int
ml_native_enable(int stacks)
{
    if (stacks) { /* nstacks: before the scan, which records the mappings */
        ml_unwind_init();
        ml_unwind_set_enabled(1);
    }
    atomic_store(&ml_native_on, 1); /* before the scan: a dlopen meanwhile rescans */
    if (ml_native_scan() < 0)
        return -1;
    return (int)atomic_load(&ml_native_nlibs);
}

void
ml_native_disable(void)
{
    atomic_store(&ml_native_on, 0);
    ml_unwind_set_enabled(0);
}

void
ml_native_get_stats(ml_native_stats *out)
{
    pthread_mutex_lock(&ml_native_scan_mx);
    out->objects = atomic_load(&ml_native_nlibs);
    out->slots = ml_native_slots;
    pthread_mutex_unlock(&ml_native_scan_mx);
}
