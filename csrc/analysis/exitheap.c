/* exitheap.c: the last heap snapshot of a capture (see exitheap.h). */
#include "analysis/exitheap.h"

#include <stdlib.h>
#include <string.h>

static size_t
ml_seqmap_home(const ml_seqmap *m, uint64_t key)
{
    return (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & m->mask;
}

int
ml_seqmap_put(ml_seqmap *m, uint64_t key, uint32_t val)
{
    if (!m->keys || (m->n + 1) * 2 > m->mask + 1) {
        size_t cap = m->keys ? (m->mask + 1) * 2 : 1024;
        ml_seqmap n = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(uint32_t)), cap - 1, m->n};
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return -1;
        }
        for (size_t i = 0; m->keys && i <= m->mask; i++) {
            if (!m->keys[i])
                continue;
            size_t j = ml_seqmap_home(&n, m->keys[i]);
            while (n.keys[j])
                j = (j + 1) & n.mask;
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
        }
        ml_seqmap_release(m);
        *m = n;
    }
    size_t i = ml_seqmap_home(m, key);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & m->mask;
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}

int
ml_seqmap_get(const ml_seqmap *m, uint64_t key, uint32_t *val)
{
    if (!m->keys || !key)
        return 0;
    for (size_t i = ml_seqmap_home(m, key); m->keys[i]; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) {
            *val = m->vals[i];
            return 1;
        }
    }
    return 0;
}

void
ml_seqmap_release(ml_seqmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

void
ml_exitheap_init(ml_exitheap *x)
{
    memset(x, 0, sizeof(*x));
}

static void
ml_exitheap_forget(ml_exitheap *x)
{
    ml_seqmap_release(&x->owners);
    ml_seqmap_release(&x->held);
    for (uint32_t i = 1; i <= x->nholders; i++)
        free(x->holders[i].text);
    x->nholders = 0;
}

void
ml_exitheap_release(ml_exitheap *x)
{
    ml_exitheap_forget(x);
    free(x->holders);
    memset(x, 0, sizeof(*x));
}

static int
ml_exitheap_add_holder(ml_exitheap *x, const ml_event *ev)
{
    /* ids count up from 1 in a snapshot; a corrupt order is ignored */
    if (ev->holder != x->nholders + 1)
        return 0;
    if (x->nholders + 2 > x->capholders) {
        uint32_t cap = x->capholders ? x->capholders * 2 : 64;
        ml_exit_holder *nh = realloc(x->holders, cap * sizeof(*nh));
        if (!nh)
            return -1;
        x->holders = nh;
        x->capholders = cap;
    }
    size_t len = 0;
    for (size_t i = 0; i < ev->nhops; i++)
        len += ev->hop_lens[i] + 1;
    char *text = malloc(len ? len : 1), *q = text;
    if (!text)
        return -1;
    for (size_t i = 0; i < ev->nhops; i++) {
        /* a NUL inside a hop would split it: made a '?' */
        for (size_t k = 0; k < ev->hop_lens[i]; k++)
            *q++ = ev->hops[i][k] ? ev->hops[i][k] : '?';
        *q++ = 0;
    }
    x->holders[++x->nholders] = (ml_exit_holder){text, ev->nhops, ev->retained};
    return 0;
}

int
ml_exitheap_event(ml_exitheap *x, const ml_event *ev)
{
    int rc = 0;
    switch (ev->kind) {
    case ML_EV_SNAPSHOT:
        if (ev->mark_kind != ML_SNAP_END) {
            ml_exitheap_forget(x);
            x->snapshots++;
            x->kind = ev->mark_kind;
            x->objects = x->duration_us = 0;
        } else {
            x->objects = ev->snap_objects;
            x->duration_us = ev->snap_us;
        }
        break;
    case ML_EV_OWNER:
        rc = ml_seqmap_put(&x->owners, ev->seq, ev->type);
        break;
    case ML_EV_HOLDER:
        rc = ml_exitheap_add_holder(x, ev);
        break;
    case ML_EV_HELD:
        if (ev->holder > x->nholders)
            break;
        for (size_t i = 0; i < ev->nheld && rc == 0; i++)
            rc = ml_seqmap_put(&x->held, ev->held[i], ev->holder);
        break;
    default:
        break;
    }
    if (rc < 0)
        x->oom = 1;
    return rc;
}

uint32_t
ml_exitheap_type(const ml_exitheap *x, uint64_t seq, uint32_t type)
{
    uint32_t t;
    return ml_seqmap_get(&x->owners, seq, &t) ? t : type;
}

uint32_t
ml_exitheap_holder_of(const ml_exitheap *x, uint64_t seq)
{
    uint32_t h;
    return ml_seqmap_get(&x->held, seq, &h) ? h : 0;
}

const ml_exit_holder *
ml_exitheap_holder(const ml_exitheap *x, uint32_t id)
{
    return id && id <= x->nholders ? &x->holders[id] : NULL;
}
