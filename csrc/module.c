/* module.c: the one file that binds the engine to Python (memlens._engine).
 *
 * Every binding body is a line or two: parse arguments, call the engine,
 * convert the result. Python exceptions are set here and nowhere else.
 * Sections (one per area of the engine; each keeps its own method list):
 *   capture   capture/tracker.h     start/stop tracking, counters, marks
 *   analysis  analysis/report.h     summary, types, leaks from a capture
 *   timeline  analysis/timeline.h   line table and time series (issue 4)
 *   heap      heap/heap.h           live-heap walk, dict stats, deep size
 */
#include "compat/compat.h"

/* ==== capture bindings ==== */
#define ML_CAPTURE_METHODS
static int ml_capture_init(PyObject *m) { return 0; }
/* ==== end capture bindings ==== */

/* ==== analysis bindings ==== */
#define ML_ANALYSIS_METHODS
static int ml_analysis_init(PyObject *m) { return 0; }
/* ==== end analysis bindings ==== */

/* ==== timeline bindings ==== */
#define ML_TIMELINE_METHODS
static int ml_timeline_init(PyObject *m) { return 0; }
/* ==== end timeline bindings ==== */

/* ==== heap bindings ==== */
#define ML_HEAP_METHODS
static int ml_heap_init(PyObject *m) { return 0; }
/* ==== end heap bindings ==== */

static PyMethodDef ml_methods[] = {
    ML_CAPTURE_METHODS
    ML_ANALYSIS_METHODS
    ML_TIMELINE_METHODS
    ML_HEAP_METHODS
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ml_module = {
    PyModuleDef_HEAD_INIT, "memlens._engine", "memlens C engine.", -1, ml_methods,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&ml_module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "FORMAT_VERSION", 1) < 0 || ml_capture_init(m) < 0 ||
        ml_analysis_init(m) < 0 || ml_timeline_init(m) < 0 || ml_heap_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
