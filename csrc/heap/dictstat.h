/* dictstat.h: dicts grouped by the kind of their keys and their size
 * (the "dict stat" table of INADA Naoki's footprint survey).
 *
 * Layer: heap analysis. GIL held; classifying a dict reads its entries
 * with PyDict_Next, which neither allocates nor calls into Python.
 */
#ifndef ML_DICTSTAT_H
#define ML_DICTSTAT_H

#include "compat/compat.h"
#include "heap/addrset.h"

typedef enum {
    ML_DICTKIND_SPLIT = 0,    /* key-sharing instance dict (keys in the class) */
    ML_DICTKIND_INTERNED = 1, /* every key an interned str */
    ML_DICTKIND_STR = 2,      /* every key a str, some not interned */
    ML_DICTKIND_GENERAL = 3,  /* some key not an exact str */
    ML_DICTKIND_EMPTY = 4,    /* no items (and not split) */
    ML_DICTKIND_COUNT
} ml_dictkind;

/* Stable name of a kind: "split", "str-interned", "str", "general", "empty". */
const char *ml_dictkind_name(ml_dictkind k);

/* Kind of dict `d`. Never calls into Python. */
ml_dictkind ml_dictkind_of(PyObject *d);

typedef struct {
    uint8_t kind;   /* ml_dictkind */
    uint64_t size;  /* bytes of one such dict, as sys.getsizeof */
    uint64_t count;
} ml_dictstat_row;

typedef struct {
    ml_dictstat_row *rows;
    size_t n, cap;
    ml_addrset index; /* (size << 3 | kind) -> row */
} ml_dictstat;

/* Empty table. Returns 0, or -1 when out of memory. */
int ml_dictstat_init(ml_dictstat *s);
void ml_dictstat_release(ml_dictstat *s);

/* Count one dict of `kind` and `size` bytes. Returns 0, or -1 when out of
 * memory (table unchanged). */
int ml_dictstat_add(ml_dictstat *s, ml_dictkind kind, size_t size);

#endif /* ML_DICTSTAT_H */
