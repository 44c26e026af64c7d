/* deepsize.c: deep size of objects (see deepsize.h). */
#include "heap/deepsize.h"
#include "heap/walk.h"

#include <string.h>

typedef struct {
    ml_deepsize *ds;
    PyObject *stop;    /* tuple of types */
    ml_addrset decided; /* type address -> 1 stop, 2 go */
    PyTypeObject *last_tp;
    int last_go;
} ml_deepsize_ctx;

static int
ml_deepsize_filter(PyObject *o, void *arg)
{
    ml_deepsize_ctx *c = arg;
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == c->last_tp)
        return c->last_go;
    uint32_t v;
    if (!ml_addrset_get(&c->decided, (uintptr_t)tp, &v)) {
        v = 2;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(c->stop); i++) {
            PyObject *t = PyTuple_GET_ITEM(c->stop, i);
            if (PyType_Check(t) && PyType_IsSubtype(tp, (PyTypeObject *)t)) {
                v = 1;
                break;
            }
        }
        /* out of memory here only costs the cache */
        (void)ml_addrset_add(&c->decided, (uintptr_t)tp, v);
    }
    c->last_tp = tp;
    c->last_go = v == 2;
    return c->last_go;
}

static size_t
ml_deepsize_round(size_t size, size_t align)
{
    return align > 1 ? (size + align - 1) / align * align : size;
}

static int
ml_deepsize_count(ml_walk *w, PyObject *o, void *arg)
{
    ml_deepsize_ctx *c = arg;
    ml_deepsize *ds = c->ds;
    int fresh;
    int64_t r = ml_typetab_row(&ds->types, Py_TYPE(o), &fresh);
    if (r < 0)
        return -1;
    size_t size;
    int deferred = ml_typetab_size(&ds->types, (uint32_t)r, o, &size);
    if (deferred < 0)
        return -1;
    if (!PyType_Check(o) && !PyModule_Check(o)) {
        size_t values = 0;
        PyObject *d = ml_compat_instance_dict(o, &values);
        size += values;
        /* 3.13 traverses the inline values, not a dict made from them */
        if (d && ml_walk_reach(w, d) < 0)
            return -1;
    }
    ds->types.rows[r].count++;
    if (!deferred || size)
        ds->types.rows[r].bytes += ml_deepsize_round(size, ds->align);
    return 0;
}

int
ml_deepsize_run(ml_deepsize *ds, PyObject *const *roots, size_t n, PyObject *stop, size_t align)
{
    ml_deepsize_ctx c;
    ml_walk w;
    memset(ds, 0, sizeof(*ds));
    memset(&c, 0, sizeof(c));
    c.ds = ds;
    c.stop = stop;
    ds->align = align;
    if (ml_typetab_init(&ds->types) < 0)
        return -1;
    ds->types.align = align;
    if (ml_addrset_init(&c.decided, 64, 1) < 0) {
        ml_typetab_release(&ds->types);
        return -1;
    }
    int rc = ml_walk_from(roots, n, ml_deepsize_filter, ml_deepsize_count, &c, &w);
    ds->max_stack = w.max_stack;
    ml_walk_release(&w);
    ml_addrset_release(&c.decided);
    if (rc < 0) {
        ml_typetab_release(&ds->types);
        return -1;
    }
    ml_typetab_run_deferred(&ds->types);
    for (size_t i = 0; i < ds->types.nrows; i++) {
        ds->total += ds->types.rows[i].bytes;
        ds->count += ds->types.rows[i].count;
    }
    return 0;
}

void
ml_deepsize_release(ml_deepsize *ds)
{
    ml_typetab_release(&ds->types);
}
