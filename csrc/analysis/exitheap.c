/* exitheap.c: the last heap snapshot of a capture (see exitheap.h). */
#include "analysis/exitheap.h"

#include <stdlib.h>
#include <string.h>

void
ml_exitheap_init(ml_exitheap *x)
{
    memset(x, 0, sizeof(*x));
}

static void
ml_exitheap_forget(ml_exitheap *x)
{
    ml_u64map_release(&x->owners);
    ml_u64map_release(&x->held);
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
        rc = ml_u64map_set(&x->owners, ev->seq, ev->type);
        break;
    case ML_EV_OWNERS:
        for (size_t i = 0; i < ev->nheld && rc == 0; i++)
            rc = ml_u64map_set(&x->owners, ev->held[i], ev->owner_types[i]);
        break;
    case ML_EV_HOLDER:
        rc = ml_exitheap_add_holder(x, ev);
        break;
    case ML_EV_HELD:
        if (ev->holder > x->nholders)
            break;
        for (size_t i = 0; i < ev->nheld && rc == 0; i++)
            rc = ml_u64map_set(&x->held, ev->held[i], ev->holder);
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
    int64_t t = ml_u64map_find(&x->owners, seq);
    return t >= 0 ? (uint32_t)t : type;
}

uint32_t
ml_exitheap_holder_of(const ml_exitheap *x, uint64_t seq)
{
    int64_t h = ml_u64map_find(&x->held, seq);
    return h >= 0 ? (uint32_t)h : 0;
}

const ml_exit_holder *
ml_exitheap_holder(const ml_exitheap *x, uint32_t id)
{
    return id && id <= x->nholders ? &x->holders[id] : NULL;
}
