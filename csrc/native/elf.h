/* elf.h: find the loaded ELF objects and redirect their calls to chosen
 * functions by rewriting their relocated GOT slots (the PLT/GOT technique
 * of memray and heaptrack, see docs/NATIVE.md).
 *
 * Layer: native (capture side). Pure C and the dynamic loader's public
 * interface (dl_iterate_phdr); no Python, no allocation.
 *
 * A call from object O to an imported function f goes through a GOT slot
 * of O that the loader filled with f's address (JUMP_SLOT for calls through
 * the PLT, GLOB_DAT for -fno-plt calls and address-of, absolute data
 * relocations for tables of function pointers). Rewriting those slots of O
 * sends O's calls of f to a replacement; other objects are not changed.
 * Slots of a RELRO page are made writable first (mprotect) and left so.
 *
 * Threads: patching one slot is one aligned pointer store, so a thread
 * calling f meanwhile gets either the old or the new function.
 */
#ifndef ML_ELF_H
#define ML_ELF_H

#include <link.h>
#include <stddef.h>
#include <stdint.h>

/* One function to redirect: calls of `name` go to `to`. */
typedef struct {
    const char *name;
    void *to;
} ml_elf_hook;

/* Rewrite the slots of object `info` (from dl_iterate_phdr) that import
 * one of hooks[0..n). Returns the number of slots rewritten, or -1 when the
 * object has no dynamic section or a slot's page cannot be made writable
 * (the slots before it stay rewritten). *first (if not NULL) gets the
 * address of the first slot rewritten, 0 if none: reading it later tells
 * whether the object was loaded again since (its slot no longer holds the
 * hook). */
int ml_elf_patch(const struct dl_phdr_info *info, const ml_elf_hook *hooks, size_t n, uintptr_t *first);

/* The address range [*lo, *hi) of object info's loaded segments. */
void ml_elf_range(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi);

#endif /* ML_ELF_H */
