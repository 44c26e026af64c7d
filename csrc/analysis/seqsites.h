/* seqsites.h: the allocation sites of given blocks, by their ALLOC seqs, in
 * one streaming pass over a capture (memlens.cycles() under `memlens run`:
 * the line that made each piece of garbage that exists now).
 *
 * Layer: analysis. Pure C, libc malloc, no Python API (csrc/bind/gc.c
 * calls it with the seqs the tracker found for live objects; the capture is
 * the one still being written, flushed just before: a capture without its
 * TRAILER reads up to its last whole record, analysis/reader.h).
 *
 * Each seq comes with a label (the caller's: a (group, type) of cycles());
 * the result counts the seqs per (label, site), where the site is the
 * innermost frame of the stack that allocated the block (its code's file
 * and function, the frame's line), as `leaks` and `gc` name sites. A seq
 * whose ALLOC is not in the file (0: allocated before the capture, or
 * after the flush) has no site and is not counted.
 *
 * Cost: linear in the records up to the last seq asked for (the pass stops
 * there: seqs are numbered in file order); memory: the reader's (its live
 * block table) plus 16 bytes per seq.
 */
#ifndef ML_SEQSITES_H
#define ML_SEQSITES_H

#include <stddef.h>
#include <stdint.h>

#include "format/format.h"

#define ML_SEQSITES_NOLABEL UINT32_MAX /* a seq wanted for site_of only */

typedef struct {
    char *file, *function; /* NUL-terminated, owned by the result */
    int32_t line;          /* 0: none */
} ml_seqsite;

typedef struct {
    uint32_t label;
    uint32_t site;   /* index into sites */
    uint64_t count;  /* seqs of that label allocated there */
} ml_seqsite_row;

typedef struct {
    ml_seqsite *sites;
    size_t nsites;
    uint32_t *site_of;     /* per seq asked for: index into sites, UINT32_MAX = none */
    ml_seqsite_row *rows;  /* by label ascending, then count descending */
    size_t nrows;
    uint64_t found;        /* seqs whose ALLOC was read */
} ml_seqsites;

/* Read the capture at `path` for seqs[0..n) (any order, 0 = none) with
 * labels[0..n) (ML_SEQSITES_NOLABEL: in site_of only). Returns 0 with *out
 * filled, or -1 with a one-line message in err (unreadable or corrupt
 * capture, out of memory); *out is then empty. */
int ml_seqsites_find(const char *path, const ml_seq *seqs, const uint32_t *labels, size_t n,
                     ml_seqsites *out, char *err, size_t errcap);
void ml_seqsites_release(ml_seqsites *s);

#endif /* ML_SEQSITES_H */
