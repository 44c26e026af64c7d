/* roots.c: named roots and "held by C code" (see roots.h). */
#include "graph/roots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ml_roots_hidden_fn ml_roots_hidden;
static int ml_roots_caller_skipped;

void
ml_roots_skip_caller(int on)
{
    ml_roots_caller_skipped = on;
}

void
ml_roots_set_hidden(ml_roots_hidden_fn fn)
{
    ml_roots_hidden = fn;
}

typedef struct {
    const ml_refgraph *g;
    ml_roots *r;
    uint32_t *indeg;   /* references seen, per node */
    size_t cap;
    const char *skip;
    size_t skiplen;
    unsigned long self_tid; /* this thread ... */
    int caller_depth;       /* ... and the depth of the frame that called memlens, or -1 */
    PyCodeObject *caller_code;
    int oom;
} ml_roots_builder;

static int
ml_roots_push(ml_roots_builder *b, ml_root root)
{
    ml_roots *r = b->r;
    if (r->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        ml_root *p = realloc(r->roots, cap * sizeof(*p));
        if (!p) {
            b->oom = 1;
            return -1;
        }
        r->roots = p;
        b->cap = cap;
    }
    r->roots[r->n++] = root;
    return 0;
}

static int
ml_roots_skipped_code(const ml_roots_builder *b, PyCodeObject *co)
{
    if (!b->skiplen)
        return 0;
    char buf[4096];
    const char *s;
    size_t len = ml_compat_str_utf8(co->co_filename, buf, sizeof(buf), &s);
    return len >= b->skiplen && memcmp(s, b->skip, b->skiplen) == 0;
}

static ml_node
ml_roots_lookup(const ml_roots_builder *b, PyObject *o)
{
    return ml_refgraph_find(b->g, o);
}

static int
ml_roots_local(unsigned long tid, int depth, PyCodeObject *co, int line, PyObject *name, PyObject *value,
               void *arg)
{
    ml_roots_builder *b = arg;
    ml_node n = ml_roots_lookup(b, value);
    if (n == ML_NODE_NONE)
        return 0;
    int skipped = ml_roots_skipped_code(b, co);
    if (!skipped && ml_roots_caller_skipped && tid == b->self_tid) {
        if (b->caller_depth < 0) {
            b->caller_depth = depth;
            b->caller_code = co;
        }
        skipped = depth == b->caller_depth;
    }
    if (skipped) {
        /* memlens' own frame, or the one asking: not a root, but a
         * reference seen */
        if (b->indeg[n] != UINT32_MAX)
            b->indeg[n]++;
        return 0;
    }
    ml_root root = {n, ML_ROOT_LOCAL, line, depth, tid, name, co};
    return ml_roots_push(b, root);
}

/* visitproc: one reference memlens holds out of sight. */
static int
ml_roots_hidden_visit(PyObject *o, void *arg)
{
    ml_roots_builder *b = arg;
    ml_node n = ml_roots_lookup(b, o);
    if (n != ML_NODE_NONE && b->indeg[n] != UINT32_MAX)
        b->indeg[n]++;
    return 0;
}

int
ml_roots_find(const ml_refgraph *g, const char *skip_prefix, const ml_node *not_c, size_t n_not_c, ml_roots *r)
{
    size_t n = ml_refgraph_count(g);
    memset(r, 0, sizeof(*r));
    ml_roots_builder b = {.g = g, .r = r, .skip = skip_prefix, .skiplen = skip_prefix ? strlen(skip_prefix) : 0,
                          .caller_depth = -1};
    b.self_tid = PyThreadState_Get()->thread_id;
    uint32_t *indeg = calloc(n ? n : 1, sizeof(*indeg));
    b.indeg = indeg;
    r->excluded = calloc(n ? n : 1, 1);
    if (!r->excluded || !indeg)
        goto fail;
    /* references seen: every edge (memlens' own frame objects' too) */
    for (size_t i = 0; i < n; i++) {
        size_t c;
        (void)ml_refgraph_pred(g, (ml_node)i, &c);
        indeg[i] = (uint32_t)c;
    }
    for (size_t i = 0; i < n_not_c; i++)
        if (not_c[i] < n)
            indeg[not_c[i]] = UINT32_MAX;

    /* module globals, in sys.modules order */
    PyObject *modules = PySys_GetObject("modules"); /* borrowed, no Python code */
    if (modules && PyDict_Check(modules)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(modules, &pos, &k, &v)) {
            if (!PyModule_Check(v) || !PyUnicode_Check(k))
                continue;
            ml_node d = ml_roots_lookup(&b, PyModule_GetDict(v));
            if (d != ML_NODE_NONE && ml_roots_push(&b, (ml_root){d, ML_ROOT_MODULE, 0, 0, 0, k, NULL}) < 0)
                goto fail;
        }
        ml_node sm = ml_roots_lookup(&b, modules);
        if (sm != ML_NODE_NONE && ml_roots_push(&b, (ml_root){sm, ML_ROOT_SYS_MODULES, 0, 0, 0, NULL, NULL}) < 0)
            goto fail;
    }
    ml_compat_frames_locals(ml_roots_local, &b);
    if (b.oom)
        goto fail;
    r->named = r->n;

    /* held by C code: more references than the graph shows; and, in the
     * same pass over the objects, the frame objects of memlens' own frames
     * and of the caller's (a debugger or traceback may have made one):
     * never followed */
    if (ml_roots_hidden)
        ml_roots_hidden(ml_roots_hidden_visit, &b);
    for (size_t i = 0; i < n; i++) {
        PyObject *o = ml_refgraph_object(g, (ml_node)i);
        PyCodeObject *co;
        if (ml_compat_frameobj_code(o, &co) && (co == b.caller_code || ml_roots_skipped_code(&b, co))) {
            r->excluded[i] = 1;
            continue;
        }
        if (indeg[i] == UINT32_MAX)
            continue;
        if ((uint64_t)Py_REFCNT(o) > indeg[i] &&
            ml_roots_push(&b, (ml_root){(ml_node)i, ML_ROOT_C, 0, 0, 0, NULL, NULL}) < 0)
            goto fail;
    }
    free(indeg);
    return 0;
fail:
    free(indeg);
    ml_roots_release(r);
    return -1;
}

int
ml_roots_given(const ml_refgraph *g, const ml_node *nodes, size_t n, ml_roots *r)
{
    memset(r, 0, sizeof(*r));
    r->excluded = calloc(ml_refgraph_count(g) + 1, 1);
    r->roots = calloc(n ? n : 1, sizeof(*r->roots));
    if (!r->excluded || !r->roots) {
        ml_roots_release(r);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        r->roots[i] = (ml_root){nodes[i], ML_ROOT_EXTRA, 0, 0, 0, NULL, NULL};
    r->n = r->named = n;
    return 0;
}

void
ml_roots_release(ml_roots *r)
{
    free(r->roots);
    free(r->excluded);
    memset(r, 0, sizeof(*r));
}

size_t
ml_roots_name(const ml_roots *r, size_t i, char *buf, size_t cap)
{
    const ml_root *x = &r->roots[i];
    char b1[256], b2[256], b3[512];
    const char *s1, *s2, *s3;
    int len = 0;
    switch (x->kind) {
    case ML_ROOT_MODULE:
    {
        size_t l1 = ml_compat_str_utf8(x->name, b1, sizeof(b1), &s1);
        len = snprintf(buf, cap, "module %.*s", (int)l1, s1);
    }
        break;
    case ML_ROOT_SYS_MODULES:
        len = snprintf(buf, cap, "sys.modules");
        break;
    case ML_ROOT_LOCAL: {
        size_t l1 = ml_compat_str_utf8(x->code->co_name, b1, sizeof(b1), &s1);
        size_t l2 = ml_compat_str_utf8(x->name, b2, sizeof(b2), &s2);
        size_t l3 = ml_compat_str_utf8(x->code->co_filename, b3, sizeof(b3), &s3);
        len = snprintf(buf, cap, "thread %lu, frame %.*s() in %.*s:%d, local '%.*s'", x->thread, (int)l1, s1,
                       (int)l3, s3, x->line, (int)l2, s2);
        break;
    }
    case ML_ROOT_C:
        len = snprintf(buf, cap, "held by C code");
        break;
    default:
        len = snprintf(buf, cap, "root");
    }
    if (len < 0)
        len = 0;
    return (size_t)len < cap ? (size_t)len : (cap ? cap - 1 : 0);
}
