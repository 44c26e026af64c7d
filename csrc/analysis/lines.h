/* lines.h: line-by-line memory of chosen functions, from a capture file.
 *
 * Layer: analysis. Pure C, no Python API; reads through analysis/reader.h.
 *
 * Attribution rule: an event (ALLOC with its stack, FREE with at_stack, the
 * thread's stack when the block was freed) is charged to every selected
 * function F that appears in the stack, at the line of the innermost frame of
 * F. So a line's figures include its callees, and a helper's bytes show both
 * on the helper's own lines (when selected) and on the caller's call line.
 *
 *   increment   = bytes allocated - bytes freed by events charged to the line
 *   allocated   = gross bytes allocated; allocations = their count
 *   heap        = traced heap (all live blocks) right after the line's last event
 *
 * Invariant: for each function, the increments of its lines sum to the
 * function's net (computed separately, event by event: ml_lines_func.net);
 * ml_lines_func.adds_up says whether that held.
 * Events without a Python stack (FREE with at_stack 0) are charged nowhere.
 *
 * Functions are told apart by (file, name, firstlineno): several code ids of
 * the same function (a module imported twice) make one function.
 * A function's `code_lines` are the source lines of its code object(s), from
 * the line maps of their CODE_DEFs: exactly the lines a table of the function
 * shows (a nested function's or a comprehension's lines belong to its own
 * code object, not to the enclosing one).
 * Bounds (hostile captures): time is linear in the events plus, per distinct
 * stack with events, its frames not shared with a known ancestor and its
 * selected functions; memory follows the stacks, functions and (function,
 * line) pairs that occur, never the values of line numbers or offsets.
 * One ml_lines is used by one thread at a time.
 */
#ifndef ML_LINES_H
#define ML_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"
#include "analysis/report.h"

typedef struct ml_lines ml_lines;

typedef struct {
    int32_t line;
    int64_t increment;
    uint64_t allocated, allocations;
    uint64_t freed, frees;
    int64_t heap;        /* traced heap after the line's last event */
    uint64_t last_time_us;
} ml_lines_row;

typedef struct {
    const char *file, *name; /* owned by the ml_lines */
    uint32_t firstlineno;
    int64_t net;             /* sum of signed bytes of the events charged to it */
    uint64_t allocated, allocations;
    int64_t rows_sum;        /* sum of its rows' increments */
    int adds_up;             /* rows_sum == net */
    size_t nrows;
    const ml_lines_row *rows; /* lines with at least one event, by line number;
                               * lines below 1 (none) share the row of line 0 */
    size_t ncode_lines;
    const int32_t *code_lines; /* the code objects' lines (> 0), ascending, unique */
} ml_lines_func;

/* A new empty selection; NULL when out of memory. */
ml_lines *ml_lines_new(void);
void ml_lines_free(ml_lines *l);

/* Select functions by name: `name` matches a code whose (qualified) name is
 * `name`, ends with "." + name, or, for 3.10 captures that hold plain names,
 * is the last dotted part of `name`. Returns 0, or -1 when out of memory. */
int ml_lines_select_name(ml_lines *l, const char *name);
/* Select by file: a code whose file is `path`, ends with "/" + path, or has
 * the same realpath(). With names too, a code must match both.
 * Returns 0, or -1 when out of memory. */
int ml_lines_select_file(ml_lines *l, const char *path);

/* Read the whole capture from its start and compute the table, telling pg
 * (may be NULL) the progress. Returns 0, or -1 with a one-line message in
 * err (corrupt record, out of memory, "interrupted" by pg). */
int ml_lines_run(ml_lines *l, ml_reader *r, const ml_progress *pg, char *err, size_t errcap);

/* Results, in order of first appearance; valid until ml_lines_free. */
size_t ml_lines_nfuncs(const ml_lines *l);
const ml_lines_func *ml_lines_func_at(const ml_lines *l, size_t i);
/* Events seen and events charged to no selected function. */
uint64_t ml_lines_events(const ml_lines *l);
uint64_t ml_lines_unattributed(const ml_lines *l);

#endif /* ML_LINES_H */
