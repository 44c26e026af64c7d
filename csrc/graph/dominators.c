/* dominators.c: SEMI-NCA dominators and retained sizes (see dominators.h). */
#include "graph/dominators.h"

#include <stdlib.h>
#include <string.h>

/* Arrays indexed by DFS number (0 = the virtual root, 1..n the nodes). */
typedef struct {
    uint32_t *pre;    /* node -> number, 0 = not yet visited */
    ml_node *vertex;  /* number -> node */
    uint32_t *parent; /* DFS tree parent (number), then the immediate dominator */
    uint32_t *anc;    /* compressible ancestor */
    uint32_t *label;
    uint32_t *semi;
    uint8_t *is_root;
    uint32_t *stack, *spos, *cstack; /* DFS stack; eval's compression stack */
    uint32_t count;
} ml_dom_work;

/* Number everything reachable from `s` (a root), depth first. */
static void
ml_dom_dfs(const ml_refgraph *g, const ml_roots *r, ml_dom_work *w, ml_node s)
{
    size_t top = 0;
    w->pre[s] = ++w->count;
    w->vertex[w->count] = s;
    w->parent[w->count] = 0;
    w->is_root[s] = 1;
    w->stack[top] = s;
    w->spos[top++] = 0;
    while (top) {
        ml_node v = w->stack[top - 1];
        size_t c = 0;
        const ml_node *succ = r->excluded[v] ? NULL : ml_refgraph_succ(g, v, &c);
        uint32_t pos = w->spos[top - 1];
        while (pos < c && w->pre[succ[pos]])
            pos++;
        if (pos == c) {
            top--;
            continue;
        }
        w->spos[top - 1] = pos + 1;
        ml_node x = succ[pos];
        w->pre[x] = ++w->count;
        w->vertex[w->count] = x;
        w->parent[w->count] = w->pre[v];
        w->stack[top] = x;
        w->spos[top++] = 0;
    }
}

/* The label with the smallest semidominator on v's compressed path to
 * the forest root (nodes numbered >= last are linked). */
static uint32_t
ml_dom_eval(ml_dom_work *w, uint32_t v, uint32_t last)
{
    if (w->anc[v] < last)
        return w->label[v];
    size_t top = 0;
    uint32_t x = v;
    do {
        w->cstack[top++] = x;
        x = w->anc[x];
    } while (w->anc[x] >= last);
    uint32_t p = x, plabel = w->label[p];
    uint32_t y = v;
    while (top) {
        y = w->cstack[--top];
        w->anc[y] = w->anc[p];
        if (w->semi[plabel] < w->semi[w->label[y]])
            w->label[y] = plabel;
        else
            plabel = w->label[y];
        p = y;
    }
    return w->label[y];
}

static void
ml_dom_work_release(ml_dom_work *w)
{
    free(w->pre);
    free(w->vertex);
    free(w->anc);
    free(w->label);
    free(w->semi);
    free(w->is_root);
    free(w->stack); /* cstack is stack: the DFS is over when eval runs */
    free(w->spos);
    free(w->parent);
}

/* The tree (tree = 1: with order, koff and kids) or retained sizes only. */
static int
ml_dominators_run(const ml_refgraph *g, const ml_roots *r, ml_domtree *t, int tree)
{
    size_t n = ml_refgraph_count(g), n1 = n + 1;
    ml_dom_work w;
    memset(&w, 0, sizeof(w));
    memset(t, 0, sizeof(*t));
    w.pre = calloc(n1, sizeof(*w.pre));
    w.vertex = malloc(n1 * sizeof(*w.vertex));
    w.parent = malloc(n1 * sizeof(*w.parent));
    w.anc = malloc(n1 * sizeof(*w.anc));
    w.label = malloc(n1 * sizeof(*w.label));
    w.semi = malloc(n1 * sizeof(*w.semi));
    w.is_root = calloc(n1, 1);
    w.stack = malloc(n1 * sizeof(*w.stack));
    w.spos = malloc(n1 * sizeof(*w.spos));
    w.cstack = w.stack;
    t->n = n;
    t->idom = malloc(n1 * sizeof(*t->idom));
    t->retained = calloc(n1, sizeof(*t->retained));
    if (tree) {
        t->order = malloc(n1 * sizeof(*t->order));
        t->koff = calloc(n1 + 1, sizeof(*t->koff));
        t->kids = malloc(n1 * sizeof(*t->kids));
    }
    if (!w.pre || !w.vertex || !w.parent || !w.anc || !w.label || !w.semi || !w.is_root || !w.stack ||
        !w.spos || !t->idom || !t->retained || (tree && (!t->order || !t->koff || !t->kids)))
        goto fail;

    /* number the nodes: from the roots in order, then what they miss */
    w.vertex[0] = ML_NODE_NONE;
    w.parent[0] = 0;
    for (size_t i = 0; i < r->n; i++) {
        ml_node v = r->roots[i].node;
        if (!w.pre[v])
            ml_dom_dfs(g, r, &w, v);
        else
            w.is_root[v] = 1;
    }
    t->nreached = w.count;
    for (size_t v = 0; v < n; v++) {
        if (!w.pre[v])
            ml_dom_dfs(g, r, &w, (ml_node)v);
    }
    for (uint32_t i = 0; i <= w.count; i++) {
        w.anc[i] = w.parent[i];
        w.label[i] = i;
        w.semi[i] = i;
    }

    /* semidominators, last number first */
    for (uint32_t i = w.count; i >= 1; i--) {
        ml_node v = w.vertex[i];
        uint32_t s = w.is_root[v] ? 0 : w.parent[i];
        size_t c;
        const ml_node *pred = ml_refgraph_pred(g, v, &c);
        for (size_t e = 0; e < c && s; e++) {
            if (r->excluded[pred[e]])
                continue;
            uint32_t u = w.pre[pred[e]];
            uint32_t su = w.semi[ml_dom_eval(&w, u, i + 1)];
            if (su < s)
                s = su;
        }
        w.semi[i] = s;
    }
    /* immediate dominators: the nearest ancestor at or above the semi */
    for (uint32_t i = 1; i <= w.count; i++) {
        uint32_t d = w.parent[i];
        while (d > w.semi[i])
            d = w.parent[d];
        w.parent[i] = d;
    }

    /* results by node; retained sizes last number first (idom < self) */
    for (uint32_t i = 1; i <= w.count; i++) {
        ml_node v = w.vertex[i];
        if (tree)
            t->order[i - 1] = v;
        t->idom[v] = w.parent[i] ? w.vertex[w.parent[i]] : ML_NODE_NONE;
        t->retained[v] = ml_refgraph_size(g, v);
        t->total += t->retained[v];
    }
    for (uint32_t i = w.count; i >= 1; i--) {
        ml_node v = w.vertex[i];
        if (t->idom[v] != ML_NODE_NONE)
            t->retained[t->idom[v]] += t->retained[v];
    }
    if (!tree) {
        ml_dom_work_release(&w);
        return 0;
    }
    /* children of each node (n: the virtual root), in DFS order */
    for (size_t v = 0; v < n; v++)
        t->koff[(t->idom[v] == ML_NODE_NONE ? n : t->idom[v]) + 1]++;
    for (size_t v = 0; v < n1; v++)
        t->koff[v + 1] += t->koff[v];
    memcpy(w.stack, t->koff, n1 * sizeof(*w.stack));
    for (size_t i = 0; i < n; i++) {
        ml_node v = t->order[i];
        ml_node d = t->idom[v] == ML_NODE_NONE ? (ml_node)n : t->idom[v];
        t->kids[w.stack[d]++] = v;
    }
    ml_dom_work_release(&w);
    return 0;
fail:
    ml_dom_work_release(&w);
    ml_domtree_release(t);
    return -1;
}

int
ml_dominators_compute(const ml_refgraph *g, const ml_roots *r, ml_domtree *t)
{
    return ml_dominators_run(g, r, t, 1);
}

int
ml_dominators_retained(const ml_refgraph *g, const ml_roots *r, ml_domtree *t)
{
    return ml_dominators_run(g, r, t, 0);
}

void
ml_domtree_release(ml_domtree *t)
{
    free(t->idom);
    free(t->retained);
    free(t->order);
    free(t->koff);
    free(t->kids);
    memset(t, 0, sizeof(*t));
}

int
ml_dominators_by_type(const ml_domtree *t, const uint32_t *type_of, size_t ntypes, uint64_t *out)
{
    size_t n = t->n;
    uint32_t *active = calloc(ntypes ? ntypes : 1, sizeof(*active));
    ml_node *stack = malloc((n + 1) * sizeof(*stack));
    uint32_t *pos = malloc((n + 1) * sizeof(*pos));
    if (!active || !stack || !pos) {
        free(active);
        free(stack);
        free(pos);
        return -1;
    }
    memset(out, 0, ntypes * sizeof(*out));
    /* depth first over the tree, counting the types on the way down */
    size_t top = 0;
    stack[top] = (ml_node)n;
    pos[top++] = t->koff[n];
    while (top) {
        ml_node v = stack[top - 1];
        if (pos[top - 1] == t->koff[v + 1]) {
            top--;
            if (v != n)
                active[type_of[v]]--;
            continue;
        }
        ml_node c = t->kids[pos[top - 1]++];
        if (!active[type_of[c]])
            out[type_of[c]] += t->retained[c];
        active[type_of[c]]++;
        stack[top] = c;
        pos[top++] = t->koff[c];
    }
    free(active);
    free(stack);
    free(pos);
    return 0;
}

size_t
ml_dominators_top(const ml_domtree *t, size_t top, ml_node *out)
{
    size_t k = 0;
    size_t n = t->n;
    for (uint32_t i = t->koff[n]; i < t->koff[n + 1]; i++) {
        ml_node v = t->kids[i];
        /* insertion into the sorted top list */
        size_t j;
        if (k < top)
            j = k++;
        else if (top && t->retained[v] > t->retained[out[top - 1]])
            j = top - 1;
        else
            continue;
        while (j > 0 && t->retained[out[j - 1]] < t->retained[v]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = v;
    }
    return k;
}

ml_node
ml_dominators_accumulation(const ml_domtree *t, ml_node v, double share)
{
    for (;;) {
        ml_node best = ML_NODE_NONE;
        for (uint32_t i = t->koff[v]; i < t->koff[v + 1]; i++) {
            ml_node c = t->kids[i];
            if (best == ML_NODE_NONE || t->retained[c] > t->retained[best])
                best = c;
        }
        if (best == ML_NODE_NONE || (double)t->retained[best] < share * (double)t->retained[v])
            return v;
        v = best;
    }
}

int
ml_dominators_subtree(const ml_domtree *t, ml_node v, ml_node **out, size_t *nout)
{
    size_t cap = 64, k = 0, head = 0;
    ml_node *q = malloc(cap * sizeof(*q));
    if (!q)
        return -1;
    q[k++] = v;
    while (head < k) {
        ml_node x = q[head++];
        uint32_t nk = t->koff[x + 1] - t->koff[x];
        if (k + nk > cap) {
            while (k + nk > cap)
                cap *= 2;
            ml_node *p = realloc(q, cap * sizeof(*q));
            if (!p) {
                free(q);
                return -1;
            }
            q = p;
        }
        memcpy(q + k, t->kids + t->koff[x], nk * sizeof(*q));
        k += nk;
    }
    *out = q;
    *nout = k;
    return 0;
}
