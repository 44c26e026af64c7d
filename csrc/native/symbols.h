/* symbols.h: native return addresses to function names, at report time
 * (`memlens run --native-stacks` captures; docs/NATIVE.md).
 *
 * Layer: native (analysis side). Pure C, libc only, no Python API.
 *
 * An address is found in the capture's MAPPINGs (the last one that holds
 * it), turned into an offset of the mapped file and then into the file's
 * own addresses (its PT_LOAD headers), and looked up in the file's .symtab,
 * or its .dynsym when it has none (function symbols only; the nearest one
 * at or below the address, within its size when it has one). Names are not
 * demangled.
 *
 * The paths come from the capture: hostile. A file is opened read-only and
 * non-blocking, must be a regular file, is read with pread within its size
 * and within ML_SYMBOLS_READ_MAX bytes per table; anything malformed (not
 * ELF of this machine's class, tables out of the file, a build-id other
 * than the capture's: the file changed since) leaves the file without
 * symbols: its addresses come back as "??" with the library name and the
 * file offset, never a crash. Each file is read once per ml_symbols.
 *
 * Threads: one ml_symbols per thread.
 */
#ifndef ML_NATIVE_SYMBOLS_H
#define ML_NATIVE_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/reader.h"

#define ML_SYMBOLS_READ_MAX (256u << 20) /* bytes of one symbol or string table */
#define ML_SYMBOLS_FILES_MAX 4096u       /* files one ml_symbols reads */

typedef struct ml_symbols ml_symbols;

ml_symbols *ml_symbols_new(void);
void ml_symbols_free(ml_symbols *s);

/* What an address is. */
typedef struct {
    const char *func;    /* function name, NULL when not found ("??") */
    const char *lib;     /* the mapping's file name without folders; NULL: in no mapping */
    const char *path;    /* the mapping's path */
    uint64_t offset;     /* of the address in the file */
} ml_symbol;

/* Look up return address `addr` (the address after a call: the call itself
 * is at addr - 1) among maps[0..nmaps). The strings live as long as s (and
 * the reader, for lib and path). Returns 0, or -1 when out of memory. */
int ml_symbols_lookup(ml_symbols *s, const ml_mapping_info *maps, uint32_t nmaps, uint64_t addr,
                      ml_symbol *out);

/* The symbols of one file, for tests: how many function symbols it gave
 * (0: none, or unreadable/malformed), -1 when out of memory. build_id may
 * be NULL (not checked). */
long ml_symbols_load_count(ml_symbols *s, const char *path, const uint8_t *build_id, size_t build_id_len);

#endif /* ML_NATIVE_SYMBOLS_H */
