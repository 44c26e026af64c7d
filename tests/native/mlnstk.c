/* mlnstk.c: the test extension of tests/test_native_stacks.py. outer()
 * (the module's function) calls the static middle(), which calls
 * inner_alloc(), which mallocs 1 MiB: built with -O0
 * -fno-omit-frame-pointer -fno-inline so that each is a frame of its own. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MLNSTK_SIZE (1 << 20)

static void *kept[64];
static int nkept;

__attribute__((noinline)) void *
inner_alloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        memset(p, 1, n);
    return p;
}

static __attribute__((noinline)) void *
middle(size_t n)
{
    void *p = inner_alloc(n);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return p;
}

PyObject *
outer(PyObject *self, PyObject *unused)
{
    if (nkept == 64)
        return PyErr_NoMemory();
    void *p = middle(MLNSTK_SIZE);
    if (!p)
        return PyErr_NoMemory();
    kept[nkept++] = p;
    Py_RETURN_NONE;
}

/* the same without the GIL (Py_BEGIN_ALLOW_THREADS) */
PyObject *
outer_nogil(PyObject *self, PyObject *unused)
{
    void *p;
    if (nkept == 64)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    p = middle(MLNSTK_SIZE);
    Py_END_ALLOW_THREADS
    if (!p)
        return PyErr_NoMemory();
    kept[nkept++] = p;
    Py_RETURN_NONE;
}

/* from a thread of its own, with no Python frames */
static void *
thread_main(void *arg)
{
    return middle(MLNSTK_SIZE);
}

PyObject *
outer_thread(PyObject *self, PyObject *unused)
{
    pthread_t t;
    void *p = NULL;
    if (nkept == 64)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    if (pthread_create(&t, NULL, thread_main, NULL) == 0)
        pthread_join(t, &p);
    Py_END_ALLOW_THREADS
    if (!p)
        return PyErr_NoMemory();
    kept[nkept++] = p;
    Py_RETURN_NONE;
}

static PyObject *
release(PyObject *self, PyObject *unused)
{
    while (nkept)
        free(kept[--nkept]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"outer", outer, METH_NOARGS, "malloc 1 MiB through middle() and inner_alloc(); kept"},
    {"outer_nogil", outer_nogil, METH_NOARGS, "outer() with the GIL released"},
    {"outer_thread", outer_thread, METH_NOARGS, "middle() in a new thread without Python frames"},
    {"release", release, METH_NOARGS, "free the kept blocks"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "mlnstk", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_mlnstk(void)
{
    return PyModule_Create(&mod);
}
