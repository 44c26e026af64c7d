/* suspects.c: class leak suspects over the dominator tree (see suspects.h). */
#include "graph/suspects.h"

#include <stdlib.h>
#include <string.h>

/* Per pass over one class: under[v] = bytes of the class's top instances
 * in v's dominator subtree (index n: the virtual root); mark[v] bit 1:
 * v is an instance or below one; bit 2: v holds a covered instance (set
 * and cleared within a pass). near[v]: v's nearest strict dominator that
 * is an instance of a kept class (see ml_suspects_classes), or none. */
typedef struct {
    uint64_t *under;
    uint8_t *mark;
    ml_node *near;
} ml_suspects_work;

/* What of a class lies below instances of other kept classes. */
typedef struct {
    uint64_t bytes, count, holders;
} ml_suspects_cover;

/* Retained bytes and counts of class `type`; fills w->under, *biggest
 * (the most one top instance retains) and *cover (when w->near is set:
 * its top instances below instances of kept classes, and how many
 * distinct such instances hold them). */
static void
ml_suspects_pass(const ml_domtree *t, const uint32_t *type_of, uint32_t type, ml_suspects_work *w,
                 ml_class_suspect *s, uint64_t *biggest, ml_suspects_cover *cover)
{
    size_t n = t->n;
    memset(cover, 0, sizeof(*cover));
    memset(w->under, 0, (n + 1) * sizeof(*w->under));
    s->type = type;
    s->count = s->top = s->retained = 0;
    *biggest = 0;
    /* preorder: a node's dominator comes before it */
    for (size_t i = 0; i < n; i++) {
        ml_node v = t->order[i], d = t->idom[v];
        uint8_t above = d == ML_NODE_NONE ? 0 : (w->mark[d] & 1);
        w->mark[v] &= (uint8_t)~1u;
        if (type_of[v] == type) {
            s->count++;
            if (!above) {
                s->top++;
                s->retained += t->retained[v];
                if (t->retained[v] > *biggest)
                    *biggest = t->retained[v];
                w->under[v] = t->retained[v];
                ml_node h = w->near ? w->near[v] : ML_NODE_NONE;
                if (h != ML_NODE_NONE) {
                    cover->bytes += t->retained[v];
                    cover->count++;
                    if (!(w->mark[h] & 2)) {
                        w->mark[h] |= 2;
                        cover->holders++;
                    }
                }
            }
            w->mark[v] |= 1;
        } else if (above) {
            w->mark[v] |= 1;
        }
    }
    /* sums up the tree: last first, into the dominator */
    for (size_t i = n; i-- > 0;) {
        ml_node v = t->order[i], d = t->idom[v];
        w->under[d == ML_NODE_NONE ? n : d] += w->under[v];
        w->mark[v] &= (uint8_t)~2u;
    }
}

#define ML_SUSPECTS_PER_HOLDER 4

/* Walk down from the virtual root while one child holds >= share. */
static void
ml_suspects_point(const ml_domtree *t, const ml_suspects_work *w, double share, ml_class_suspect *s)
{
    size_t n = t->n;
    ml_node v = (ml_node)n;
    double need = share * (double)s->retained;
    for (;;) {
        ml_node next = ML_NODE_NONE;
        for (uint32_t i = t->koff[v]; i < t->koff[v + 1]; i++)
            if ((double)w->under[t->kids[i]] >= need && w->under[t->kids[i]]) {
                next = t->kids[i];
                break;
            }
        if (next == ML_NODE_NONE)
            break;
        v = next;
    }
    s->point = v == (ml_node)n ? ML_NODE_NONE : v;
    s->point_share = w->under[v];
}

int
ml_suspects_classes(const ml_domtree *t, const uint32_t *type_of, size_t ntypes, const uint8_t *eligible,
                    double threshold, double share, ml_class_suspect *out, size_t max)
{
    size_t n = t->n;
    ml_suspects_work w;
    uint64_t *by_type = malloc((ntypes ? ntypes : 1) * sizeof(*by_type));
    uint32_t *cand = malloc((ntypes ? ntypes : 1) * sizeof(*cand));
    w.under = malloc((n + 1) * sizeof(*w.under));
    w.mark = calloc(n + 1, 1);
    w.near = NULL;
    ml_node *near = malloc((n ? n : 1) * sizeof(*near));
    size_t k = 0, nc = 0;
    if (!by_type || !cand || !w.under || !w.mark || !near || ml_dominators_by_type(t, type_of, ntypes, by_type) < 0) {
        k = (size_t)-1;
        goto done;
    }
    /* candidates, biggest first (few: each holds >= threshold) */
    for (uint32_t c = 0; c < ntypes; c++) {
        if ((eligible && !eligible[c]) || !by_type[c] || (double)by_type[c] < threshold * (double)t->total)
            continue;
        size_t j = nc++;
        while (j > 0 && by_type[cand[j - 1]] < by_type[c]) {
            cand[j] = cand[j - 1];
            j--;
        }
        cand[j] = c;
    }
    /* first: leave out the classes one instance of which holds most
     * (at most 4 * max passes: classes inside bigger ones cost a pass
     * each); kept[c] = 1 for the others */
    uint8_t *kept = calloc(ntypes ? ntypes : 1, 1);
    if (!kept) {
        k = (size_t)-1;
        goto done;
    }
    size_t nkept = 0;
    for (size_t i = 0; i < nc && i < 4 * max; i++) {
        ml_class_suspect s;
        uint64_t biggest;
        ml_suspects_cover cover;
        ml_suspects_pass(t, type_of, cand[i], &w, &s, &biggest, &cover);
        if ((double)biggest < share * (double)s.retained)
            cand[nkept++] = cand[i], kept[cand[i]] = 1;
    }
    /* the nearest instance of a kept class above each node (preorder) */
    for (size_t i = 0; i < n; i++) {
        ml_node v = t->order[i], d = t->idom[v];
        near[v] = d == ML_NODE_NONE ? ML_NODE_NONE : kept[type_of[d]] ? d : near[d];
    }
    free(kept);
    w.near = near;
    /* then: a class whose bytes lie mostly below instances of other kept
     * classes, a few (<= ML_SUSPECTS_PER_HOLDER) below each, is a part of
     * them (the str attributes of leaked records); many below each are a
     * container's items and stay a suspect. A top instance has no
     * ancestor of its own class: what holds it is of another. */
    for (size_t i = 0; i < nkept && k < max; i++) {
        ml_class_suspect s;
        uint64_t biggest;
        ml_suspects_cover cover;
        ml_suspects_pass(t, type_of, cand[i], &w, &s, &biggest, &cover);
        if (cover.bytes && (double)cover.bytes >= share * (double)s.retained &&
            cover.count <= ML_SUSPECTS_PER_HOLDER * cover.holders)
            continue;
        ml_suspects_point(t, &w, share, &s);
        out[k++] = s;
    }
done:
    free(by_type);
    free(cand);
    free(w.under);
    free(w.mark);
    free(near);
    return k == (size_t)-1 ? -1 : (int)k;
}
