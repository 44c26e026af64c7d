/* numpybuf.c: NumPy's default data handler, wrapped (see numpybuf.h). */
#include "capture/numpybuf.h"

#include <stdatomic.h>
#include <string.h>

#include "capture/tracker.h"

/* NumPy's ndarraytypes.h, NEP 49 (1.22+); the layout is part of its ABI. */
typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr, size_t size);
} ml_npy_allocator;

typedef struct {
    char name[127];
    uint8_t version;
    ml_npy_allocator allocator;
} ml_npy_handler;

#define ML_NPY_SLOT_FEATURE_VERSION 211 /* PyArray_GetNDArrayCFeatureVersion */
#define ML_NPY_SLOT_DEFAULT_HANDLER 306 /* &PyDataMem_DefaultHandler */
#define ML_NPY_FEATURE_NEP49 0x0000000fu /* NPY_1_22_API_VERSION */
#define ML_NPY_CAPSULE "mem_handler"     /* MEM_HANDLER_CAPSULE_NAME */

static ml_npy_allocator ml_numpybuf_orig; /* NumPy's own functions */
static atomic_int ml_numpybuf_done;
static int ml_numpybuf_watching; /* a capture asked for the wrap: capsules are checked */

/* NumPy's functions run with the hooks quiet: NumPy 2.5 allocates data
 * with PyMem_RawMalloc, which would record the block a second time, as
 * "<raw>". */
static void *
ml_numpybuf_malloc(void *ctx, size_t size)
{
    int was = ml_tracker_quiet_begin();
    void *p = ml_numpybuf_orig.malloc(ctx, size);
    ml_tracker_quiet_end(was);
    ml_tracker_buffer_alloc(p, size, ML_BUFFER_NUMPY);
    return p;
}

static void *
ml_numpybuf_calloc(void *ctx, size_t nelem, size_t elsize)
{
    int was = ml_tracker_quiet_begin();
    void *p = ml_numpybuf_orig.calloc(ctx, nelem, elsize);
    ml_tracker_quiet_end(was);
    ml_tracker_buffer_alloc(p, nelem * elsize, ML_BUFFER_NUMPY);
    return p;
}

static void *
ml_numpybuf_realloc(void *ctx, void *ptr, size_t size)
{
    int was = ml_tracker_quiet_begin();
    void *p = ml_numpybuf_orig.realloc(ctx, ptr, size);
    ml_tracker_quiet_end(was);
    if (p) {
        if (ptr)
            ml_tracker_buffer_free(ptr);
        ml_tracker_buffer_alloc(p, size, ML_BUFFER_NUMPY);
    }
    return p;
}

static void
ml_numpybuf_free(void *ctx, void *ptr, size_t size)
{
    if (ptr)
        ml_tracker_buffer_free(ptr);
    int was = ml_tracker_quiet_begin();
    ml_numpybuf_orig.free(ctx, ptr, size);
    ml_tracker_quiet_end(was);
}

/* NumPy's C-API table from the module that holds it, or NULL (no
 * exception left set). */
static void **
ml_numpybuf_api(PyObject *mod)
{
    PyObject *cap = PyObject_GetAttrString(mod, "_ARRAY_API");
    if (!cap) {
        PyErr_Clear();
        return NULL;
    }
    void **api = PyCapsule_IsValid(cap, NULL) ? PyCapsule_GetPointer(cap, NULL) : NULL;
    Py_DECREF(cap);
    PyErr_Clear();
    return api;
}

/* Wrap h if it is NumPy's default handler (not wrapped yet). Reads only,
 * never allocates: also called from inside the allocator hooks. */
static void
ml_numpybuf_wrap_handler(ml_npy_handler *h)
{
    if (!h || h->version != 1 || strncmp(h->name, "default_allocator", sizeof(h->name)) != 0 ||
        h->allocator.malloc == ml_numpybuf_malloc)
        return;
    ml_numpybuf_orig = h->allocator;
    /* each pointer is one aligned store: a thread allocating meanwhile
     * calls either NumPy's function or ours, both right */
    h->allocator.malloc = ml_numpybuf_malloc;
    h->allocator.calloc = ml_numpybuf_calloc;
    h->allocator.realloc = ml_numpybuf_realloc;
    h->allocator.free = ml_numpybuf_free;
    atomic_store(&ml_numpybuf_done, 1);
}

/* Wrap the default handler of the NumPy whose C-API table is `api`. */
static void
ml_numpybuf_wrap(void **api)
{
    unsigned (*feature)(void) = (unsigned (*)(void))api[ML_NPY_SLOT_FEATURE_VERSION];
    if (!feature || feature() < ML_NPY_FEATURE_NEP49)
        return; /* NumPy before 1.22: no handler; its data stays "<raw>"-less */
    PyObject **slot = (PyObject **)api[ML_NPY_SLOT_DEFAULT_HANDLER];
    if (!slot || !*slot || !PyCapsule_IsValid(*slot, ML_NPY_CAPSULE))
        return;
    ml_numpybuf_wrap_handler(PyCapsule_GetPointer(*slot, ML_NPY_CAPSULE));
}

/* Wrap the handler if NumPy's core extension is in sys.modules (borrowed
 * lookups only: no allocation on the program's import path). */
static void
ml_numpybuf_try(void *unused)
{
    (void)unused;
    static PyObject *names[2];
    if (!names[0]) {
        names[0] = PyUnicode_InternFromString("numpy._core._multiarray_umath");
        names[1] = PyUnicode_InternFromString("numpy.core._multiarray_umath");
        if (!names[0] || !names[1]) {
            PyErr_Clear();
            Py_CLEAR(names[0]);
            Py_CLEAR(names[1]);
            return;
        }
    }
    PyObject *modules = PyImport_GetModuleDict();
    for (int i = 0; i < 2 && !atomic_load(&ml_numpybuf_done); i++) {
        PyObject *mod = modules ? PyDict_GetItemWithError(modules, names[i]) : NULL;
        if (!mod) {
            PyErr_Clear();
            continue;
        }
        void **api = ml_numpybuf_api(mod);
        if (api)
            ml_numpybuf_wrap(api);
    }
}

int
ml_numpybuf_start(void)
{
    if (atomic_load(&ml_numpybuf_done))
        return 0;
    ml_numpybuf_try(NULL);
    ml_numpybuf_watching = 1;
    return 0;
}

void
ml_numpybuf_capsule(PyObject *capsule)
{
    /* PyCapsule_IsValid and PyCapsule_GetPointer only read (no exception
     * for a valid capsule) */
    if (!ml_numpybuf_watching || atomic_load_explicit(&ml_numpybuf_done, memory_order_relaxed) ||
        !PyCapsule_IsValid(capsule, ML_NPY_CAPSULE))
        return;
    ml_numpybuf_wrap_handler(PyCapsule_GetPointer(capsule, ML_NPY_CAPSULE));
}

int
ml_numpybuf_installed(void)
{
    return atomic_load(&ml_numpybuf_done);
}
