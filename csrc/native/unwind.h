/* unwind.h: the native frames of an allocation (`memlens run
 * --native-stacks`), interned, and the loaded objects' mappings that let a
 * report symbolise them later, in another process.
 *
 * Layer: native (capture side). The unwinder is the one gcc ships in
 * libgcc_s (_Unwind_Backtrace, which reads .eh_frame: it needs no frame
 * pointers); no other library. The chain kept is the allocation's caller
 * chain: memlens' own frames (the hook) are skipped, and it is cut at the
 * first frame inside the object that holds the interpreter (libpython or
 * the python executable): from there on the Python stack, recorded
 * already, says where the program was. At most ML_UNWIND_DEPTH frames.
 *
 * Interning: each distinct chain gets an id (1, 2, ...) for the life of
 * the process. The tracker's consumer (lock held) calls
 * ml_unwind_write_upto before it writes a NATIVE_ALLOC record: the
 * MAPPING records of the objects known so far and the NATIVE_STACK records
 * up to that id that this capture has not had yet go into the file first
 * (a new capture, e.g. a forked child's, gets them all again).
 *
 * Threads: ml_unwind_capture and ml_unwind_intern run on any thread, with
 * or without the GIL, from inside the allocation hooks; a thread-local
 * guard makes a nested call (the unwinder allocating, a signal handler)
 * return 0 frames. The tables are under one mutex (reset in a forked
 * child). Nothing here calls back into the hooks.
 */
#ifndef ML_NATIVE_UNWIND_H
#define ML_NATIVE_UNWIND_H

#include <link.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/writer.h"

#define ML_UNWIND_DEPTH 64 /* frames kept per chain (innermost) */

/* Learn the address ranges of memlens' engine and of the interpreter's
 * object (call once, before the hooks record). */
void ml_unwind_init(void);
/* Turn the unwinding on or off (off: ml_unwind_stack returns 0). */
void ml_unwind_set_enabled(int on);
int ml_unwind_enabled(void);

/* The return addresses of the caller chain, innermost first, into
 * out[0..max). Returns the count (0: none, or unwinding nested). */
int ml_unwind_capture(uintptr_t *out, int max);
/* The id of chain a[0..n) (interned now if new); 0 when n is 0 or out of
 * memory. */
uint32_t ml_unwind_intern(const uintptr_t *a, size_t n);
/* Both: the id of the current caller chain, 0 if none or disabled. */
uint32_t ml_unwind_stack(void);

/* Remember the executable segments of a loaded object (from
 * dl_iterate_phdr), once per (address, name). */
void ml_unwind_add_object(const struct dl_phdr_info *info);

/* Write into w what capture `generation` lacks before a record names
 * native stack `id`: new MAPPINGs, then NATIVE_STACKs up to id. Called
 * with the tracker's lock held. */
void ml_unwind_write_upto(ml_writer *w, uint64_t generation, uint32_t id);

typedef struct {
    size_t stacks, addresses, mappings;
} ml_unwind_stats;
void ml_unwind_get_stats(ml_unwind_stats *out);

#endif /* ML_NATIVE_UNWIND_H */
