/* linemeter.c: per-line counter deltas of decorated functions (linemeter.h).
 *
 * The meters live in a small array searched linearly: there are as many as
 * decorated functions, a handful, and the search is cheaper than hashing.
 */
#include "capture/linemeter.h"

#include <stdlib.h>
#include <string.h>

#include "capture/tracker.h"

typedef struct {
    const void *thread;
    int32_t line;          /* line running: the def line until the first event */
    ml_counters last;      /* counters at the frame's last event */
    ml_counters start;
} ml_linemeter_frame;

struct ml_linemeter {
    const void *key;
    int32_t firstline;
    ml_linemeter_row *dense; /* indexed by line - firstline */
    size_t dense_cap;
    ml_linemeter_row *rows;  /* compacted for ml_linemeter_rows */
    ml_linemeter_frame *frames;
    size_t nframes, frames_cap;
    ml_linemeter_stats stats;
};

static ml_linemeter **ml_linemeter_all;
static size_t ml_linemeter_n, ml_linemeter_cap;

/* Allocations the interpreter made for our callbacks, taken out of every
 * counter read; `pending` is the argument of the callback running now, freed
 * by the interpreter when it returns. */
static ml_counters ml_linemeter_own;
static uint64_t ml_linemeter_pending;

static void
ml_linemeter_settle(void)
{
    ml_linemeter_own.heap -= (int64_t)ml_linemeter_pending;
    ml_linemeter_pending = 0;
}

void
ml_linemeter_noise(uint64_t bytes)
{
    ml_linemeter_settle();
    if (!bytes)
        return;
    ml_linemeter_own.heap += (int64_t)bytes;
    ml_linemeter_own.allocated_bytes += bytes;
    ml_linemeter_own.allocations++;
    ml_linemeter_pending = bytes;
}

static void
ml_linemeter_read(ml_counters *c)
{
    ml_tracker_counters(c);
    c->heap -= ml_linemeter_own.heap;
    c->allocated_bytes -= ml_linemeter_own.allocated_bytes;
    c->allocations -= ml_linemeter_own.allocations;
}

ml_linemeter *
ml_linemeter_find(const void *key)
{
    for (size_t i = 0; i < ml_linemeter_n; i++)
        if (ml_linemeter_all[i]->key == key)
            return ml_linemeter_all[i];
    return NULL;
}

ml_linemeter *
ml_linemeter_get(const void *key, int32_t firstline)
{
    ml_linemeter *m = ml_linemeter_find(key);
    if (m)
        return m;
    if (ml_linemeter_n == ml_linemeter_cap) {
        size_t ncap = ml_linemeter_cap ? ml_linemeter_cap * 2 : 16;
        ml_linemeter **na = realloc(ml_linemeter_all, ncap * sizeof(*na));
        if (!na)
            return NULL;
        ml_linemeter_all = na;
        ml_linemeter_cap = ncap;
    }
    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->key = key;
    m->firstline = firstline > 0 ? firstline : 1;
    ml_linemeter_all[ml_linemeter_n++] = m;
    return m;
}

static ml_linemeter_row *
ml_linemeter_row_of(ml_linemeter *m, int32_t line)
{
    if (line < m->firstline)
        line = m->firstline; /* a line before the def (none expected): the def line */
    size_t idx = (size_t)(line - m->firstline);
    if (idx >= m->dense_cap) {
        size_t ncap = m->dense_cap ? m->dense_cap : 64;
        while (ncap <= idx)
            ncap *= 2;
        ml_linemeter_row *nd = realloc(m->dense, ncap * sizeof(*nd));
        if (!nd)
            return NULL;
        memset(nd + m->dense_cap, 0, (ncap - m->dense_cap) * sizeof(*nd));
        m->dense = nd;
        m->dense_cap = ncap;
    }
    ml_linemeter_row *row = &m->dense[idx];
    row->line = line;
    return row;
}

static ml_linemeter_frame *
ml_linemeter_top(ml_linemeter *m, const void *thread)
{
    for (size_t i = m->nframes; i-- > 0;)
        if (m->frames[i].thread == thread)
            return &m->frames[i];
    return NULL;
}

/* Charge the counters since the frame's last event to its running line. */
static void
ml_linemeter_charge(ml_linemeter *m, ml_linemeter_frame *f, const ml_counters *now)
{
    ml_linemeter_row *row = ml_linemeter_row_of(m, f->line);
    int64_t inc = now->heap - f->last.heap;
    uint64_t bytes = now->allocated_bytes - f->last.allocated_bytes;
    uint64_t count = now->allocations - f->last.allocations;
    if (row) {
        row->increment += inc;
        row->allocated += bytes;
        row->allocations += count;
        row->heap = now->heap;
    }
    m->stats.allocated += bytes;
    m->stats.allocations += count;
    f->last = *now;
}

int
ml_linemeter_enter(ml_linemeter *m, const void *thread)
{
    if (m->nframes == m->frames_cap) {
        size_t ncap = m->frames_cap ? m->frames_cap * 2 : 8;
        ml_linemeter_frame *nf = realloc(m->frames, ncap * sizeof(*nf));
        if (!nf)
            return -1;
        m->frames = nf;
        m->frames_cap = ncap;
    }
    ml_linemeter_frame *f = &m->frames[m->nframes++];
    ml_linemeter_settle();
    f->thread = thread;
    f->line = m->firstline;
    ml_linemeter_read(&f->last);
    f->start = f->last;
    m->stats.calls++;
    return 0;
}

void
ml_linemeter_line(ml_linemeter *m, const void *thread, int32_t line)
{
    ml_counters now;
    ml_linemeter_read(&now);
    ml_linemeter_row *row = ml_linemeter_row_of(m, line);
    if (row)
        row->occurrences++;
    ml_linemeter_frame *f = ml_linemeter_top(m, thread);
    if (!f)
        return;
    ml_linemeter_charge(m, f, &now);
    f->line = line;
}

void
ml_linemeter_exit(ml_linemeter *m, const void *thread)
{
    ml_linemeter_frame *f = ml_linemeter_top(m, thread);
    if (!f)
        return;
    ml_counters now;
    ml_linemeter_settle();
    ml_linemeter_read(&now);
    ml_linemeter_charge(m, f, &now);
    m->stats.net += now.heap - f->start.heap;
    size_t i = (size_t)(f - m->frames);
    memmove(f, f + 1, (m->nframes - i - 1) * sizeof(*f));
    m->nframes--;
}

const ml_linemeter_row *
ml_linemeter_rows(ml_linemeter *m, size_t *n, ml_linemeter_stats *st)
{
    size_t k = 0;
    free(m->rows);
    m->rows = malloc((m->dense_cap ? m->dense_cap : 1) * sizeof(*m->rows));
    if (m->rows) {
        for (size_t i = 0; i < m->dense_cap; i++) {
            const ml_linemeter_row *r = &m->dense[i];
            if (r->occurrences || r->allocations || r->increment || i == 0)
                m->rows[k++] = *r;
        }
        /* the def line always has a row (calls start there) */
        if (k && m->rows[0].line == 0)
            m->rows[0].line = m->firstline;
    }
    if (k == 0 && m->rows && m->dense_cap == 0) {
        memset(m->rows, 0, sizeof(*m->rows));
        m->rows[0].line = m->firstline;
        k = 1;
    }
    *n = k;
    *st = m->stats;
    return m->rows;
}

void
ml_linemeter_reset_all(void)
{
    for (size_t i = 0; i < ml_linemeter_n; i++) {
        ml_linemeter *m = ml_linemeter_all[i];
        if (m->dense)
            memset(m->dense, 0, m->dense_cap * sizeof(*m->dense));
        memset(&m->stats, 0, sizeof(m->stats));
    }
}
