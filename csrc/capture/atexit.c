/* atexit.c: the heap-at-exit pass (see atexit.h). */
#define _GNU_SOURCE 1
#include "capture/atexit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heap/holders.h"
#include "heap/owners.h"

typedef struct {
    uint32_t pattern;
    ml_seq seq;
} ml_held_pair;

typedef struct {
    const ml_atexit_env *env;
    ml_atexit_stats *st;
    ml_held_pair *pairs;
    size_t npairs, cap;
    int oom;
} ml_atexit_ctx;

static uint64_t
ml_atexit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The seq of the block that holds object o (0: not recorded). */
static ml_seq
ml_atexit_seq_of_object(const ml_atexit_env *env, PyObject *o)
{
    return env->seq_of(env->arg, (uintptr_t)o - ml_compat_preheader(Py_TYPE(o)));
}

static int
ml_atexit_owner(void *arg, PyObject *o, const ml_compat_buf *buf, ml_owners_of of_kind, PyTypeObject *of)
{
    ml_atexit_ctx *c = arg;
    const ml_atexit_env *env = c->env;
    ml_seq seq = env->seq_of(env->arg, buf->block);
    if (!seq)
        return 0; /* not recorded: allocated before the capture */
    size_t tlen, oflen = 0;
    const char *tname = env->type_name(env->arg, Py_TYPE(o), &tlen);
    const char *ofname = of ? env->type_name(env->arg, of, &oflen) : NULL;
    if (!tname)
        return -1;
    char label[512];
    size_t n = ml_owners_label(label, sizeof(label), tname, tlen, buf->role, of_kind, ofname, oflen);
    ml_type_id type = env->label(env->arg, label, n);
    if (!type)
        return -1;
    ml_writer_owner(env->w, seq, ml_atexit_seq_of_object(env, o), type);
    c->st->owners++;
    return 0;
}

static int
ml_atexit_add_pair(ml_atexit_ctx *c, uint32_t pattern, ml_seq seq)
{
    if (c->npairs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        ml_held_pair *np = realloc(c->pairs, cap * sizeof(*np));
        if (!np)
            return -1;
        c->pairs = np;
        c->cap = cap;
    }
    c->pairs[c->npairs++] = (ml_held_pair){pattern, seq};
    return 0;
}

/* An object reached by the path search: it and the buffers it owns are
 * held through its pattern. */
static int
ml_atexit_reached(void *arg, PyObject *o, uint32_t pattern)
{
    ml_atexit_ctx *c = arg;
    const ml_atexit_env *env = c->env;
    ml_seq seq = ml_atexit_seq_of_object(env, o);
    if (seq && ml_atexit_add_pair(c, pattern, seq) < 0)
        return -1;
    ml_compat_buf bufs[ML_COMPAT_MAX_BUFS];
    int n = ml_compat_owned_buffers(o, bufs);
    for (int i = 0; i < n; i++) {
        ml_seq b = env->seq_of(env->arg, bufs[i].block);
        if (b && ml_atexit_add_pair(c, pattern, b) < 0)
            return -1;
    }
    return 0;
}

static const char *
ml_atexit_name(void *arg, PyTypeObject *tp, size_t *len)
{
    const ml_atexit_env *env = arg;
    return env->type_name(env->arg, tp, len);
}

static int
ml_atexit_cmp_seq(const void *a, const void *b)
{
    ml_seq x = *(const ml_seq *)a, y = *(const ml_seq *)b;
    return x < y ? -1 : x > y;
}

/* HOLDER and HELD records: the pairs bucketed by pattern, seqs ascending. */
static int
ml_atexit_write_holders(ml_atexit_ctx *c, const ml_holders *h)
{
    uint32_t np = ml_holders_count(h);
    size_t *start = calloc((size_t)np + 2, sizeof(*start));
    ml_seq *seqs = malloc((c->npairs ? c->npairs : 1) * sizeof(*seqs));
    int rc = -1;
    if (!start || !seqs)
        goto free_all;
    for (size_t i = 0; i < c->npairs; i++)
        start[c->pairs[i].pattern + 1]++;
    for (uint32_t p = 1; p <= np + 1; p++)
        start[p] += start[p - 1];
    for (size_t i = 0; i < c->npairs; i++) /* start[p] moves to the end of bucket p */
        seqs[start[c->pairs[i].pattern]++] = c->pairs[i].seq;
    uint32_t id = 0;
    size_t from = 0;
    for (uint32_t p = 1; p <= np; p++) {
        size_t to = start[p];
        /* bucket p is [from, to): bucket p-1 ended where it began */
        from = p == 1 ? start[0] : start[p - 1];
        if (to <= from)
            continue;
        ml_seq *s = seqs + from;
        size_t n = to - from, k = 0;
        for (size_t i = 1; i < n; i++) {
            if (s[i] < s[i - 1]) {
                qsort(s, n, sizeof(*s), ml_atexit_cmp_seq);
                break;
            }
        }
        for (size_t i = 0; i < n; i++) /* a block reached twice (never: one walk) */
            if (!k || s[i] != s[k - 1])
                s[k++] = s[i];
        const char *hops[2 * ML_HOLDERS_DEPTH + 4];
        size_t lens[2 * ML_HOLDERS_DEPTH + 4];
        size_t nh = ml_holders_hops(h, p, hops, lens, sizeof(hops) / sizeof(hops[0]));
        ml_writer_holder(c->env->w, ++id, hops, lens, nh, 0);
        for (size_t i = 0; i < k; i += ML_HELD_MAX)
            ml_writer_held(c->env->w, id, s + i, k - i < ML_HELD_MAX ? k - i : ML_HELD_MAX);
        c->st->holders++;
        c->st->held += k;
    }
    rc = 0;
free_all:
    free(start);
    free(seqs);
    return rc;
}

int
ml_atexit_snapshot(const ml_atexit_env *env, unsigned kind, ml_atexit_stats *stats)
{
    ml_atexit_stats st = {0};
    ml_atexit_ctx c = {.env = env, .st = &st};
    uint64_t t0 = ml_atexit_now_us();
    int rc = -1;
    size_t objects = 0;
    ml_writer_snapshot(env->w, kind, 0, 0);
    if (ml_owners_walk(ml_atexit_owner, &c, &objects) < 0)
        goto end;
    st.objects = objects;
    ml_holders *h = ml_holders_new(ml_atexit_name, (void *)env);
    if (!h)
        goto end;
    if (ml_holders_walk(h, ml_atexit_reached, &c, NULL) == 0 && ml_atexit_write_holders(&c, h) == 0)
        rc = 0;
    ml_holders_free(h);
end:
    free(c.pairs);
    st.duration_us = ml_atexit_now_us() - t0;
    ml_writer_snapshot(env->w, ML_SNAP_END, st.objects, st.duration_us);
    if (stats)
        *stats = st;
    return rc;
}
