#define _GNU_SOURCE 1
#include <Python.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Blocks made by the test, by slot; each slot remembers how to free it. */
#define SLOTS 64
static void *blocks[SLOTS];
static size_t sizes[SLOTS];
static int kinds[SLOTS];

static void *
make(int kind, size_t size)
{
    void *p = NULL;
    switch (kind) {
    case 0: p = malloc(size); break;
    case 1: p = calloc(size / 8, 8); break;
    case 2: p = realloc(malloc(16), size); break;
    case 3: if (posix_memalign(&p, 64, size)) p = NULL; break;
    case 4: p = aligned_alloc(64, size); break;
    case 5: p = memalign(64, size); break;
    case 6: p = valloc(size); break;
    case 7: p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) p = NULL; break;
    }
    if (p && kind != 7)
        ((char *)p)[0] = 1;
    return p;
}

static PyObject *
put(int slot, int kind, size_t size, void *p)
{
    if (!p)
        return PyErr_NoMemory();
    blocks[slot] = p; sizes[slot] = size; kinds[slot] = kind;
    Py_RETURN_NONE;
}

static PyObject *
py_alloc(PyObject *self, PyObject *args)
{
    int slot, kind; Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "iin", &slot, &kind, &size)) return NULL;
    return put(slot, kind, (size_t)size, make(kind, (size_t)size));
}

static PyObject *
py_alloc_nogil(PyObject *self, PyObject *args)
{
    int slot, kind; Py_ssize_t size; void *p;
    if (!PyArg_ParseTuple(args, "iin", &slot, &kind, &size)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    p = make(kind, (size_t)size);
    Py_END_ALLOW_THREADS
    return put(slot, kind, (size_t)size, p);
}

static void *
thread_main(void *arg)
{
    size_t size = (size_t)arg;
    return malloc(size);
}

/* A thread that never had Python frames makes one block. */
static PyObject *
py_alloc_cthread(PyObject *self, PyObject *args)
{
    int slot; Py_ssize_t size; void *p = NULL; pthread_t th;
    if (!PyArg_ParseTuple(args, "in", &slot, &size)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (pthread_create(&th, NULL, thread_main, (void *)(size_t)size) == 0)
        pthread_join(th, &p);
    Py_END_ALLOW_THREADS
    return put(slot, 0, (size_t)size, p);
}

static PyObject *
py_release(PyObject *self, PyObject *args)
{
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) return NULL;
    if (kinds[slot] == 7) munmap(blocks[slot], sizes[slot]); else free(blocks[slot]);
    blocks[slot] = NULL;
    Py_RETURN_NONE;
}

/* mremap a slot's mapping (kind 7) to new_size, letting it move. */
static PyObject *
py_remap(PyObject *self, PyObject *args)
{
    int slot; Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "in", &slot, &size)) return NULL;
    void *p = mremap(blocks[slot], sizes[slot], (size_t)size, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) return PyErr_SetFromErrno(PyExc_OSError);
    blocks[slot] = p; sizes[slot] = (size_t)size;
    Py_RETURN_NONE;
}

/* Write every byte of a slot's block (resident, for the RSS tests). */
static PyObject *
py_touch(PyObject *self, PyObject *args)
{
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) return NULL;
    memset(blocks[slot], 1, sizes[slot]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"alloc", py_alloc, METH_VARARGS, NULL},
    {"alloc_nogil", py_alloc_nogil, METH_VARARGS, NULL},
    {"alloc_cthread", py_alloc_cthread, METH_VARARGS, NULL},
    {"release", py_release, METH_VARARGS, NULL},
    {"touch", py_touch, METH_VARARGS, NULL},
    {"remap", py_remap, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "mlnat", NULL, -1, methods};
PyMODINIT_FUNC PyInit_mlnat(void) { return PyModule_Create(&mod); }
