/* gcexit.c: sets of objects as block seqs in the capture (see gcexit.h). */
#define _GNU_SOURCE 1
#include "capture/gcexit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heap/cycles.h"

typedef struct {
    const ml_atexit_env *env;
    ml_seq *seqs;
    size_t n, cap;
} ml_gcexit_set;

static uint64_t
ml_gcexit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
ml_gcexit_push(ml_gcexit_set *s, ml_seq seq)
{
    if (!seq)
        return 0; /* not recorded */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        ml_seq *n = realloc(s->seqs, cap * sizeof(*n));
        if (!n)
            return -1;
        s->seqs = n;
        s->cap = cap;
    }
    s->seqs[s->n++] = seq;
    return 0;
}

/* The object's block and its buffers' blocks. */
static int
ml_gcexit_add(void *arg, PyObject *o)
{
    ml_gcexit_set *s = arg;
    const ml_atexit_env *env = s->env;
    if (ml_gcexit_push(s, env->seq_of(env->arg, (uintptr_t)o - ml_compat_preheader(Py_TYPE(o)))) < 0)
        return -1;
    ml_compat_buf bufs[ML_COMPAT_MAX_BUFS];
    int nb = ml_compat_owned_buffers(o, bufs);
    for (int i = 0; i < nb; i++)
        if (ml_gcexit_push(s, env->seq_of(env->arg, bufs[i].block)) < 0)
            return -1;
    return 0;
}

static int
ml_gcexit_cmp(const void *a, const void *b)
{
    ml_seq x = *(const ml_seq *)a, y = *(const ml_seq *)b;
    return x < y ? -1 : x > y;
}

/* Sort, drop repeats, write records of `tag`; returns the blocks written. */
static uint64_t
ml_gcexit_write(ml_gcexit_set *s, unsigned tag)
{
    if (s->n) /* seqs is NULL when nothing was added */
        qsort(s->seqs, s->n, sizeof(*s->seqs), ml_gcexit_cmp);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!k || s->seqs[i] != s->seqs[k - 1])
            s->seqs[k++] = s->seqs[i];
    /* at least one record: an empty one says the set was computed and is empty */
    size_t i = 0;
    do {
        ml_writer_gc_seqs(s->env->w, tag, s->seqs + i, k - i < ML_GCSEQS_MAX ? k - i : ML_GCSEQS_MAX);
        i += ML_GCSEQS_MAX;
    } while (i < k);
    return k;
}

int
ml_gcexit_garbage(const ml_atexit_env *env, ml_gcexit_stats *stats)
{
    uint64_t t0 = ml_gcexit_now_us();
    ml_gcexit_set s = {.env = env};
    memset(stats, 0, sizeof(*stats));
    int rc = ml_cycles_unreachable(ml_gcexit_add, &s, &stats->objects);
    if (rc == 0)
        stats->blocks = ml_gcexit_write(&s, ML_TAG_GARBAGE_AT_EXIT);
    free(s.seqs);
    stats->duration_us = ml_gcexit_now_us() - t0;
    return rc;
}

int
ml_gcexit_uncollectable(const ml_atexit_env *env, PyObject *const *objs, size_t n,
                        ml_gcexit_stats *stats)
{
    uint64_t t0 = ml_gcexit_now_us();
    ml_gcexit_set s = {.env = env};
    memset(stats, 0, sizeof(*stats));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ml_gcexit_add(&s, objs[i]);
    if (rc == 0) {
        stats->objects = n;
        stats->blocks = ml_gcexit_write(&s, ML_TAG_UNCOLLECTABLE);
    }
    free(s.seqs);
    stats->duration_us = ml_gcexit_now_us() - t0;
    return rc;
}
