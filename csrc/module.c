/* module.c: memlens._engine, registered from one init.
 *
 * The bindings live in csrc/bind/, one file per part of the engine (see
 * bind/bind.h); this file only builds the module from their method tables
 * and runs their init functions, in this order. A new part adds its file
 * and one line to each list below.
 */
#include "bind/bind.h"
#include "format/format.h"

static PyMethodDef *const ml_parts_methods[] = {
    ml_bind_capture_methods,
    ml_bind_reports_methods,
    ml_bind_timeline_methods,
    ml_bind_heap_methods,
    ml_bind_temporal_methods,
    ml_bind_calltree_methods,
    ml_bind_native_methods,
    ml_bind_graph_methods,
    ml_bind_rss_methods,
    ml_bind_gc_methods,
    ml_bind_atexit_methods,
};

/* Run after every method is registered: an init may look methods up. */
static int (*const ml_parts_init[])(PyObject *) = {
    ml_bind_capture_init,
    ml_bind_reports_init,
    ml_bind_timeline_init,
    ml_bind_heap_init,
    ml_bind_temporal_init,
    ml_bind_calltree_init,
    ml_bind_native_init,
    ml_bind_graph_init,
    ml_bind_rss_init,
    ml_bind_gc_init,
    ml_bind_atexit_init,
};

static struct PyModuleDef ml_module = {
    PyModuleDef_HEAD_INIT, "memlens._engine", "memlens C engine.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&ml_module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "FORMAT_VERSION", ML_FORMAT_VERSION) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof(ml_parts_methods) / sizeof(ml_parts_methods[0]); i++)
        if (PyModule_AddFunctions(m, ml_parts_methods[i]) < 0)
            goto fail;
    for (size_t i = 0; i < sizeof(ml_parts_init) / sizeof(ml_parts_init[0]); i++)
        if (ml_parts_init[i](m) < 0)
            goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
