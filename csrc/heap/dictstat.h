/* dictstat.h: dicts grouped by the kind of their keys and their size
 * (the "dict stat" table of INADA Naoki's footprint survey).
 *
 * Layer: heap analysis. GIL held; classifying a dict reads its entries
 * in place, which neither allocates nor calls into Python.
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

/* The kind of dict `d`, computed one key at a time by a walk that reads
 * the entries anyway (heap/walk.c): start with ml_dictkind_start(d), then
 * fold in the key of every item with ml_dictkind_key. By content rather
 * than layout: 3.10 downgrades dk_lookup after one lookup with a non-str
 * key, and 3.11+ keys of str subclasses use the general layout. Never
 * calls into Python. */
static inline ml_dictkind
ml_dictkind_start(PyObject *d)
{
    if (ml_compat_dict_is_split(d))
        return ML_DICTKIND_SPLIT;
    return PyDict_GET_SIZE(d) == 0 ? ML_DICTKIND_EMPTY : ML_DICTKIND_INTERNED;
}

static inline ml_dictkind
ml_dictkind_key(ml_dictkind kind, PyObject *key)
{
    if (kind != ML_DICTKIND_INTERNED && kind != ML_DICTKIND_STR)
        return kind;
    if (!PyUnicode_CheckExact(key))
        return ML_DICTKIND_GENERAL;
    return PyUnicode_CHECK_INTERNED(key) ? kind : ML_DICTKIND_STR;
}

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
