/* owners.c: buffers named by their owners (see owners.h).
 *
 * One pass over the graph's objects. An attribute dict is named after its
 * owner, which the pass may meet before or after the dict: a dict met on
 * its own is put aside, and named once the pass is over, unless its owner
 * claimed it.
 */
#include "heap/owners.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/typekind.h"
#include "heap/addrset.h"
#include "heap/walk.h"

#define ML_OWNERS_AHEAD 8

typedef struct {
    ml_owners_fn fn;
    void *arg;
    ml_addrset claimed; /* attribute dicts named after their owner */
    PyObject **dicts;   /* other dicts: named at the end if not claimed */
    size_t ndicts, capdicts;
    uint64_t objects;   /* ml_owners_heap: objects the walk handed over */
    int failed;
} ml_owners_ctx;

static int
ml_owners_emit(ml_owners_ctx *c, PyObject *o, ml_owners_of of_kind, PyTypeObject *of)
{
    ml_compat_buf bufs[ML_COMPAT_MAX_BUFS];
    int n = ml_compat_owned_buffers(o, bufs);
    for (int i = 0; i < n; i++) {
        if (c->fn(c->arg, o, &bufs[i], of_kind, of) < 0)
            return -1;
    }
    return 0;
}

/* The attribute dict d of an owner: named now, and claimed. */
static int
ml_owners_claim(ml_owners_ctx *c, PyObject *d, ml_owners_of of_kind, PyTypeObject *of)
{
    if (!d || !PyDict_Check(d))
        return 0;
    int added = ml_addrset_add(&c->claimed, (uintptr_t)d, 0);
    if (added < 0)
        return -1;
    return added ? ml_owners_emit(c, d, of_kind, of) : 0;
}

static int
ml_owners_visit(ml_owners_ctx *c, PyObject *o)
{
    unsigned kind = ml_typekind_of(Py_TYPE(o));
    if (kind & ML_TK_DICT) {
        if (c->ndicts == c->capdicts) {
            size_t cap = c->capdicts ? c->capdicts * 2 : 1024;
            PyObject **nd = realloc(c->dicts, cap * sizeof(*nd));
            if (!nd)
                return -1;
            c->dicts = nd;
            c->capdicts = cap;
        }
        c->dicts[c->ndicts++] = o;
        return 0;
    }
    if (kind & ML_TK_MODULE)
        return ml_owners_claim(c, PyModule_GetDict(o), ML_OWNERS_OF_MODULE, NULL);
    if (kind & ML_TK_TYPE)
        return ml_owners_claim(c, ml_compat_type_dict((PyTypeObject *)o), ML_OWNERS_OF_TYPE, NULL);
    if ((kind & ML_TK_BUFFERS) && ml_owners_emit(c, o, ML_OWNERS_OF_NONE, NULL) < 0)
        return -1;
    size_t vb;
    PyObject *d = kind & ML_TK_SET ? NULL : ml_compat_instance_dict(o, &vb);
    return ml_owners_claim(c, d, ML_OWNERS_OF_INSTANCE, Py_TYPE(o));
}

/* The dicts met on their own that no owner claimed: named last. */
static int
ml_owners_finish(ml_owners_ctx *c)
{
    for (size_t i = 0; i < c->ndicts; i++) {
        if (ml_addrset_get(&c->claimed, (uintptr_t)c->dicts[i], NULL))
            continue;
        if (ml_owners_emit(c, c->dicts[i], ML_OWNERS_OF_NONE, NULL) < 0)
            return -1;
    }
    return 0;
}

int
ml_owners_graph(const ml_refgraph *g, ml_owners_fn fn, void *arg)
{
    ml_owners_ctx c = {.fn = fn, .arg = arg};
    int rc = -1;
    if (ml_addrset_init(&c.claimed, 1024, 0) < 0)
        return -1;
    size_t n = ml_refgraph_count(g);
    for (size_t i = 0; i < n; i++) {
        if (i + ML_OWNERS_AHEAD < n) /* the objects come in address order: a miss each, unless asked early */
            __builtin_prefetch(ml_refgraph_object(g, (ml_node)(i + ML_OWNERS_AHEAD)));
        if (ml_owners_visit(&c, ml_refgraph_object(g, (ml_node)i)) < 0)
            goto release;
    }
    rc = ml_owners_finish(&c);
release:
    free(c.dicts);
    ml_addrset_release(&c.claimed);
    return rc;
}

/* One object of ml_owners_heap's walk (its attribute dict reached too, as
 * the reference graph's walk does). */
static int
ml_owners_walk_cb(ml_walk *w, PyObject *o, void *arg)
{
    ml_owners_ctx *c = arg;
    c->objects++;
    size_t values;
    if (ml_walk_reach_instance_dict(w, o, &values) < 0)
        return -1;
    return ml_owners_visit(c, o);
}

int
ml_owners_heap(ml_owners_fn fn, void *arg, uint64_t *objects)
{
    ml_owners_ctx c = {.fn = fn, .arg = arg};
    ml_walk w;
    *objects = 0;
    if (ml_addrset_init(&c.claimed, 1024, 0) < 0)
        return -1;
    int rc = ml_walk_heap(ml_owners_walk_cb, &c, &w);
    ml_walk_release(&w);
    if (rc == 0)
        rc = ml_owners_finish(&c);
    *objects = c.objects;
    free(c.dicts);
    ml_addrset_release(&c.claimed);
    return rc;
}

const char *
ml_owners_role(unsigned role)
{
    switch (role) {
    case ML_COMPAT_BUF_ITEMS: return "items";
    case ML_COMPAT_BUF_KEYS: return "keys";
    case ML_COMPAT_BUF_VALUES: return "values";
    case ML_COMPAT_BUF_TABLE: return "table";
    case ML_COMPAT_BUF_DATA: return "data";
    default: return "buffer";
    }
}

size_t
ml_owners_label(char *buf, size_t cap, const char *type, size_t tlen, unsigned role,
                ml_owners_of of_kind, const char *of, size_t oflen)
{
    int n;
    if (of_kind == ML_OWNERS_OF_INSTANCE && of)
        n = snprintf(buf, cap, "%.*s (%s) of %.*s", (int)tlen, type, ml_owners_role(role), (int)oflen, of);
    else if (of_kind == ML_OWNERS_OF_MODULE || of_kind == ML_OWNERS_OF_TYPE)
        n = snprintf(buf, cap, "%.*s (%s) of %s", (int)tlen, type, ml_owners_role(role),
                     of_kind == ML_OWNERS_OF_MODULE ? "module" : "type");
    else
        n = snprintf(buf, cap, "%.*s (%s)", (int)tlen, type, ml_owners_role(role));
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
