/* elf.c: GOT slot rewriting of loaded ELF objects (see elf.h). */
#define _GNU_SOURCE 1
#include "native/elf.h"

#include <elf.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if __SIZEOF_POINTER__ == 8
#define ML_ELF_R_SYM(i) ELF64_R_SYM(i)
#else
#define ML_ELF_R_SYM(i) ELF32_R_SYM(i)
#endif

/* What the dynamic section says about an object's relocations. */
typedef struct {
    uintptr_t bias;
    const ElfW(Sym) *symtab;
    const char *strtab;
    size_t strsz;
    const ElfW(Rela) *rela, *jmprela;
    size_t relasz, jmprelsz;
    const ElfW(Rel) *rel, *jmprel;
    size_t relsz;
} ml_elf_dyn;

/* A d_ptr of the dynamic section: glibc has relocated most of them in
 * place (absolute), the vDSO and some loaders have not (relative). */
static uintptr_t
ml_elf_ptr(uintptr_t bias, uintptr_t v)
{
    return v < bias ? v + bias : v;
}

static int
ml_elf_read_dyn(const struct dl_phdr_info *info, ml_elf_dyn *d)
{
    memset(d, 0, sizeof(*d));
    d->bias = info->dlpi_addr;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!dyn)
        return -1;
    uintptr_t jmprel = 0;
    size_t pltrelsz = 0;
    long pltrel = 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        uintptr_t v = dyn->d_un.d_ptr;
        switch (dyn->d_tag) {
        case DT_SYMTAB: d->symtab = (const ElfW(Sym) *)ml_elf_ptr(d->bias, v); break;
        case DT_STRTAB: d->strtab = (const char *)ml_elf_ptr(d->bias, v); break;
        case DT_STRSZ: d->strsz = dyn->d_un.d_val; break;
        case DT_RELA: d->rela = (const ElfW(Rela) *)ml_elf_ptr(d->bias, v); break;
        case DT_RELASZ: d->relasz = dyn->d_un.d_val; break;
        case DT_REL: d->rel = (const ElfW(Rel) *)ml_elf_ptr(d->bias, v); break;
        case DT_RELSZ: d->relsz = dyn->d_un.d_val; break;
        case DT_JMPREL: jmprel = ml_elf_ptr(d->bias, v); break;
        case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
        case DT_PLTREL: pltrel = (long)dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (!d->symtab || !d->strtab)
        return -1;
    if (jmprel && pltrel == DT_RELA) {
        d->jmprela = (const ElfW(Rela) *)jmprel;
        d->jmprelsz = pltrelsz;
    } else if (jmprel) {
        d->jmprel = (const ElfW(Rel) *)jmprel;
        d->jmprelsz = pltrelsz;
    }
    return 0;
}

/* The hook that symbol index `sym` names, or NULL. */
static const ml_elf_hook *
ml_elf_match(const ml_elf_dyn *d, size_t sym, const ml_elf_hook *hooks, size_t n)
{
    if (!sym)
        return NULL;
    size_t off = d->symtab[sym].st_name;
    if (d->strsz && off >= d->strsz)
        return NULL;
    const char *name = d->strtab + off;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, hooks[i].name))
            return &hooks[i];
    return NULL;
}

/* Store `to` into the slot at `addr` of object info. A slot in a RELRO
 * page (read-only once relocated) is made writable for the store and
 * read-only again; one in an executable segment (text relocations) is
 * left alone. Returns 1 if stored, 0 if left, -1 on failure. */
static int
ml_elf_store(const struct dl_phdr_info *info, uintptr_t addr, void *to)
{
    int relro = 0, loaded = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (addr < a || addr + sizeof(void *) > a + ph->p_memsz)
            continue;
        if (ph->p_type == PT_LOAD) {
            if (ph->p_flags & PF_X)
                return 0;
            loaded = 1;
        } else if (ph->p_type == PT_GNU_RELRO) {
            relro = 1;
        }
    }
    if (!loaded)
        return 0;
    void **slot = (void **)addr;
    if (*slot == to)
        return 1;
    long page = sysconf(_SC_PAGESIZE);
    void *start = (void *)(addr & ~(uintptr_t)(page - 1));
    size_t len = (size_t)page * ((addr + sizeof(void *) - (uintptr_t)start + (size_t)page - 1) / (size_t)page);
    if (relro && mprotect(start, len, PROT_READ | PROT_WRITE) != 0)
        return -1;
    __atomic_store_n(slot, to, __ATOMIC_RELEASE);
    if (relro)
        (void)mprotect(start, len, PROT_READ);
    return 1;
}

int
ml_elf_patch(const struct dl_phdr_info *info, const ml_elf_hook *hooks, size_t n, uintptr_t *first)
{
    ml_elf_dyn d;
    if (first)
        *first = 0;
    if (ml_elf_read_dyn(info, &d) < 0)
        return -1;
    int count = 0;
    const ElfW(Rela) *ra[2] = {d.rela, d.jmprela};
    size_t rn[2] = {d.relasz / sizeof(ElfW(Rela)), d.jmprela ? d.jmprelsz / sizeof(ElfW(Rela)) : 0};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; ra[t] && i < rn[t]; i++) {
            const ml_elf_hook *h = ml_elf_match(&d, ML_ELF_R_SYM(ra[t][i].r_info), hooks, n);
            if (!h)
                continue;
            int r = ml_elf_store(info, d.bias + ra[t][i].r_offset, h->to);
            if (r < 0)
                return -1;
            if (r && first && !*first)
                *first = d.bias + ra[t][i].r_offset;
            count += r;
        }
    const ElfW(Rel) *rl[2] = {d.rel, d.jmprel};
    size_t ln[2] = {d.relsz / sizeof(ElfW(Rel)), d.jmprel ? d.jmprelsz / sizeof(ElfW(Rel)) : 0};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; rl[t] && i < ln[t]; i++) {
            const ml_elf_hook *h = ml_elf_match(&d, ML_ELF_R_SYM(rl[t][i].r_info), hooks, n);
            if (!h)
                continue;
            int r = ml_elf_store(info, d.bias + rl[t][i].r_offset, h->to);
            if (r < 0)
                return -1;
            if (r && first && !*first)
                *first = d.bias + rl[t][i].r_offset;
            count += r;
        }
    return count;
}

void
ml_elf_range(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t l = UINTPTR_MAX, h = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < l)
            l = a;
        if (a + ph->p_memsz > h)
            h = a + ph->p_memsz;
    }
    *lo = l == UINTPTR_MAX ? 0 : l;
    *hi = h;
}
