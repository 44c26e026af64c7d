/* exitheap.h: the heap-at-exit records of a capture, as the reports use
 * them (format.h 0x10..0x13, docs/FORMAT.md "Heap at exit").
 *
 * Layer: analysis. Pure C, libc malloc, no Python API. Fed the events of
 * a reader in order, it keeps the last snapshot: each buffer's name by
 * owner (OWNER: seq -> type), each holder's path (HOLDER) and which
 * holder reaches each block (HELD: seq -> holder). A new SNAPSHOT start
 * forgets the previous one. Memory: a few words per owned or held block
 * of the last snapshot. Not thread-safe; one per report.
 */
#ifndef ML_EXITHEAP_H
#define ML_EXITHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/u64map.h"

typedef struct {
    char *text;        /* the hops, each NUL-terminated, one after the other */
    size_t nhops;
    uint64_t retained; /* 0 = not measured */
} ml_exit_holder;

typedef struct {
    ml_u64map owners;  /* buffer seq -> type named by owner */
    ml_u64map held;    /* block seq -> holder id */
    ml_exit_holder *holders; /* by id (index 0 unused) */
    uint32_t nholders, capholders;
    uint64_t snapshots;      /* SNAPSHOT starts seen */
    unsigned kind;           /* ML_SNAP_* of the last one */
    uint64_t objects, duration_us; /* its end record */
    int oom;
} ml_exitheap;

void ml_exitheap_init(ml_exitheap *x);
void ml_exitheap_release(ml_exitheap *x);
/* Take in one event (others are ignored). Returns 0, or -1 when out of
 * memory (x->oom set). */
int ml_exitheap_event(ml_exitheap *x, const ml_event *ev);
/* The type of block seq named by its owner, else `type`. */
uint32_t ml_exitheap_type(const ml_exitheap *x, uint64_t seq, uint32_t type);
/* The holder reaching block seq (0: none). */
uint32_t ml_exitheap_holder_of(const ml_exitheap *x, uint64_t seq);
/* Holder `id` (NULL for an unknown id). */
const ml_exit_holder *ml_exitheap_holder(const ml_exitheap *x, uint32_t id);


#endif /* ML_EXITHEAP_H */
