/* seqsites.c: the allocation sites of given seqs (see seqsites.h). */
#include "analysis/seqsites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/reader.h"

#define ML_SEQSITES_NONE UINT32_MAX

/* One seq asked for: where it is in the caller's arrays, and once read the
 * (code, line) of its site. */
typedef struct {
    ml_seq seq;
    uint32_t index;
    uint32_t label;
    ml_code_id code;   /* 0 with found: allocated without a Python stack */
    int32_t line;
    int found;
    uint32_t site;
} ml_seqsites_item;

static int
ml_seqsites_by_seq(const void *pa, const void *pb)
{
    const ml_seqsites_item *a = pa, *b = pb;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int
ml_seqsites_by_site(const void *pa, const void *pb)
{
    const ml_seqsites_item *a = pa, *b = pb;
    if (a->found != b->found)
        return a->found ? -1 : 1;
    if (a->code != b->code)
        return a->code < b->code ? -1 : 1;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int
ml_seqsites_by_label_site(const void *pa, const void *pb)
{
    const ml_seqsites_item *a = pa, *b = pb;
    if (a->label != b->label)
        return a->label < b->label ? -1 : 1;
    return a->site < b->site ? -1 : a->site > b->site;
}

static int
ml_seqsites_row_cmp(const void *pa, const void *pb)
{
    const ml_seqsite_row *a = pa, *b = pb;
    if (a->label != b->label)
        return a->label < b->label ? -1 : 1;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return a->site < b->site ? -1 : a->site > b->site;
}

/* The pass: each item's site from its ALLOC (items sorted by seq). */
static int
ml_seqsites_read(ml_reader *r, ml_seqsites_item *items, size_t n, uint64_t *found, char *err,
                 size_t errcap)
{
    size_t k = 0;
    while (k < n && !items[k].seq)
        k++;
    ml_event ev;
    memset(&ev, 0, sizeof(ev));
    while (k < n) {
        int rc = ml_reader_next(r, &ev);
        if (rc < 0) {
            snprintf(err, errcap, "%s", ml_reader_error(r));
            return -1;
        }
        if (rc == 0)
            break; /* the flushed end: later seqs are not in the file */
        if (ev.kind != ML_EV_ALLOC)
            continue;
        while (k < n && items[k].seq < ev.seq)
            k++; /* not an ALLOC of this file (cannot be: seqs number the ALLOCs) */
        for (; k < n && items[k].seq == ev.seq; k++) {
            const ml_frame_info *f = ev.stack ? ml_reader_frame(r, ev.stack) : NULL;
            items[k].found = 1;
            items[k].code = f ? f->code : 0;
            items[k].line = f ? ml_reader_frame_line(r, ev.stack) : 0;
            (*found)++;
        }
    }
    return 0;
}

static char *
ml_seqsites_strdup(const char *s)
{
    return strdup(s ? s : "");
}

int
ml_seqsites_find(const char *path, const ml_seq *seqs, const uint32_t *labels, size_t n,
                 ml_seqsites *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    ml_seqsites_item *items = calloc(n + 1, sizeof(*items));
    out->site_of = malloc((n + 1) * sizeof(*out->site_of));
    if (!items || !out->site_of) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].seq = seqs[i];
        items[i].index = (uint32_t)i;
        items[i].label = labels[i];
        items[i].site = ML_SEQSITES_NONE;
        out->site_of[i] = ML_SEQSITES_NONE;
    }
    qsort(items, n, sizeof(*items), ml_seqsites_by_seq);
    ml_reader *r = ml_reader_open(path, err, errcap);
    if (!r)
        goto fail;
    int rc = ml_seqsites_read(r, items, n, &out->found, err, errcap);
    if (rc == 0) {
        /* the sites: distinct (code, line), their names read while the
         * reader still has its definitions */
        qsort(items, n, sizeof(*items), ml_seqsites_by_site);
        size_t nfound = 0;
        while (nfound < n && items[nfound].found)
            nfound++;
        out->sites = calloc(nfound + 1, sizeof(*out->sites));
        if (!out->sites) {
            snprintf(err, errcap, "out of memory");
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < nfound; i++) {
            if (!i || items[i].code != items[i - 1].code || items[i].line != items[i - 1].line) {
                const ml_code_info *c = items[i].code ? ml_reader_code(r, items[i].code) : NULL;
                ml_seqsite *s = &out->sites[out->nsites++];
                s->file = ml_seqsites_strdup(c ? c->file : "");
                s->function = ml_seqsites_strdup(c ? c->name : "<no Python stack>");
                s->line = items[i].line;
                if (!s->file || !s->function) {
                    snprintf(err, errcap, "out of memory");
                    rc = -1;
                }
            }
            items[i].site = (uint32_t)(out->nsites - 1);
            out->site_of[items[i].index] = items[i].site;
        }
        /* the rows: (label, site) counts */
        if (rc == 0) {
            qsort(items, nfound, sizeof(*items), ml_seqsites_by_label_site);
            out->rows = malloc((nfound + 1) * sizeof(*out->rows));
            if (!out->rows) {
                snprintf(err, errcap, "out of memory");
                rc = -1;
            }
            for (size_t i = 0; rc == 0 && i < nfound; i++) {
                if (items[i].label == ML_SEQSITES_NOLABEL)
                    continue;
                ml_seqsite_row *last = out->nrows ? &out->rows[out->nrows - 1] : NULL;
                if (last && last->label == items[i].label && last->site == items[i].site) {
                    last->count++;
                    continue;
                }
                out->rows[out->nrows++] = (ml_seqsite_row){items[i].label, items[i].site, 1};
            }
            if (rc == 0 && out->nrows)
                qsort(out->rows, out->nrows, sizeof(*out->rows), ml_seqsites_row_cmp);
        }
    }
    ml_reader_free(r);
    free(items);
    if (rc < 0) {
        ml_seqsites_release(out);
        return -1;
    }
    return 0;
fail:
    free(items);
    ml_seqsites_release(out);
    return -1;
}

void
ml_seqsites_release(ml_seqsites *s)
{
    for (size_t i = 0; i < s->nsites; i++) {
        free(s->sites[i].file);
        free(s->sites[i].function);
    }
    free(s->sites);
    free(s->site_of);
    free(s->rows);
    memset(s, 0, sizeof(*s));
}
