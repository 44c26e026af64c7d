/* symbols.c: ELF symbol tables of the files a capture's mappings name
 * (see symbols.h). */
#define _GNU_SOURCE 1
#include "native/symbols.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ML_SYM_NAME_MAX 1024 /* bytes of one name kept */

typedef struct {
    uint64_t value, size;
    uint32_t name; /* into names */
} ml_sym;

/* One file: its symbols by value, and its loadable segments. */
typedef struct {
    char *path;
    uint8_t build_id[ML_BUILD_ID_MAX];
    size_t build_id_len;
    int ok;
    ml_sym *syms;
    size_t nsyms;
    char *names;
    ElfW(Phdr) *loads; /* PT_LOAD headers */
    size_t nloads;
} ml_symfile;

struct ml_symbols {
    ml_symfile *files;
    size_t nfiles, cap;
};

ml_symbols *
ml_symbols_new(void)
{
    return calloc(1, sizeof(ml_symbols));
}

void
ml_symbols_free(ml_symbols *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        free(s->files[i].syms);
        free(s->files[i].names);
        free(s->files[i].loads);
    }
    free(s->files);
    free(s);
}

/* n bytes at offset off of the file (size fsize) into a new buffer; NULL
 * when out of the file, too big or unreadable. */
static void *
ml_sym_read(int fd, uint64_t fsize, uint64_t off, uint64_t n)
{
    if (n == 0 || n > ML_SYMBOLS_READ_MAX || off > fsize || n > fsize - off)
        return NULL;
    uint8_t *b = malloc((size_t)n);
    if (!b)
        return NULL;
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, b + got, (size_t)n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            free(b);
            return NULL;
        }
        got += (size_t)k;
    }
    return b;
}

static int
ml_sym_cmp(const void *a, const void *b)
{
    const ml_sym *x = a, *y = b;
    return x->value < y->value ? -1 : x->value > y->value;
}

/* The GNU build-id in a note area; 0 if none. */
static size_t
ml_sym_note_build_id(const uint8_t *p, size_t len, uint8_t *out)
{
    const uint8_t *end = p + len;
    while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        memcpy(&nh, p, sizeof(nh));
        size_t name = ((size_t)nh.n_namesz + 3u) & ~(size_t)3u, desc = ((size_t)nh.n_descsz + 3u) & ~(size_t)3u;
        const uint8_t *q = p + sizeof(nh);
        if (name > (size_t)(end - q) || desc > (size_t)(end - q) - name)
            break;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && !memcmp(q, "GNU", 4) && nh.n_descsz <= ML_BUILD_ID_MAX &&
            nh.n_descsz <= (size_t)(end - q) - name) {
            memcpy(out, q + name, nh.n_descsz);
            return nh.n_descsz;
        }
        p = q + name + desc;
    }
    return 0;
}

/* Read file f->path: 0 when done (f->ok says whether it gave symbols), -1
 * when out of memory. */
static int
ml_sym_load(ml_symfile *f)
{
    int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    struct stat st;
    ElfW(Ehdr) eh;
    ElfW(Shdr) *sh = NULL;
    uint8_t *symtab = NULL;
    char *strtab = NULL;
    int rc = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(eh))
        goto done;
    uint64_t fsize = (uint64_t)st.st_size;
    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
        goto done;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shnum == 0 || eh.e_phentsize != sizeof(ElfW(Phdr)))
        goto done;
    /* the loadable segments, and the build-id of the file */
    ElfW(Phdr) *ph = ml_sym_read(fd, fsize, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)));
    if (!ph)
        goto done;
    uint8_t bid[ML_BUILD_ID_MAX];
    size_t bid_len = 0;
    f->loads = malloc(eh.e_phnum * sizeof(ElfW(Phdr)));
    if (!f->loads) {
        free(ph);
        rc = -1;
        goto done;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD)
            f->loads[f->nloads++] = ph[i];
        else if (ph[i].p_type == PT_NOTE && !bid_len && ph[i].p_filesz <= 65536) {
            uint8_t *note = ml_sym_read(fd, fsize, ph[i].p_offset, ph[i].p_filesz);
            if (note)
                bid_len = ml_sym_note_build_id(note, ph[i].p_filesz, bid);
            free(note);
        }
    }
    free(ph);
    if (f->build_id_len && (bid_len != f->build_id_len || memcmp(bid, f->build_id, bid_len)))
        goto done; /* another file than the one that was loaded */
    sh = ml_sym_read(fd, fsize, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(ElfW(Shdr)));
    if (!sh)
        goto done;
    const ElfW(Shdr) *tab = NULL;
    for (unsigned i = 0; i < eh.e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB)
            tab = &sh[i];
    for (unsigned i = 0; !tab && i < eh.e_shnum; i++)
        if (sh[i].sh_type == SHT_DYNSYM)
            tab = &sh[i];
    if (!tab || tab->sh_entsize != sizeof(ElfW(Sym)) || tab->sh_link >= eh.e_shnum)
        goto done;
    const ElfW(Shdr) *str = &sh[tab->sh_link];
    symtab = ml_sym_read(fd, fsize, tab->sh_offset, tab->sh_size);
    strtab = ml_sym_read(fd, fsize, str->sh_offset, str->sh_size);
    if (!symtab || !strtab)
        goto done;
    size_t nsym = (size_t)(tab->sh_size / sizeof(ElfW(Sym))), strsz = (size_t)str->sh_size;
    f->syms = malloc((nsym ? nsym : 1) * sizeof(ml_sym));
    size_t ncap = 4096, nlen = 0;
    f->names = malloc(ncap);
    if (!f->syms || !f->names) {
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i < nsym; i++) {
        ElfW(Sym) sy;
        memcpy(&sy, symtab + i * sizeof(sy), sizeof(sy));
        int type = ELF64_ST_TYPE(sy.st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sy.st_shndx == SHN_UNDEF || !sy.st_value ||
            sy.st_name >= strsz)
            continue;
        const char *nm = strtab + sy.st_name;
        size_t l = strnlen(nm, strsz - sy.st_name);
        if (l > ML_SYM_NAME_MAX)
            l = ML_SYM_NAME_MAX;
        if (!l)
            continue;
        if (nlen + l + 1 > ncap) {
            while (nlen + l + 1 > ncap)
                ncap *= 2;
            char *nn = realloc(f->names, ncap);
            if (!nn) {
                rc = -1;
                goto done;
            }
            f->names = nn;
        }
        if (nlen > UINT32_MAX - l - 1)
            break;
        memcpy(f->names + nlen, nm, l);
        f->names[nlen + l] = 0;
        f->syms[f->nsyms++] = (ml_sym){sy.st_value, sy.st_size, (uint32_t)nlen};
        nlen += l + 1;
    }
    if (f->nsyms)
        qsort(f->syms, f->nsyms, sizeof(ml_sym), ml_sym_cmp);
    f->ok = f->nsyms > 0;
done:
    free(sh);
    free(symtab);
    free(strtab);
    close(fd);
    return rc;
}

/* The file of path/build-id, read now if it was not. NULL: out of memory. */
static ml_symfile *
ml_sym_file(ml_symbols *s, const char *path, const uint8_t *bid, size_t bid_len)
{
    if (bid_len > ML_BUILD_ID_MAX)
        bid_len = 0;
    for (size_t i = s->nfiles; i-- > 0;) {
        ml_symfile *f = &s->files[i];
        if (f->build_id_len == bid_len && (!bid_len || !memcmp(f->build_id, bid, bid_len)) && !strcmp(f->path, path))
            return f;
    }
    static ml_symfile none; /* past ML_SYMBOLS_FILES_MAX files: no symbols */
    if (s->nfiles >= ML_SYMBOLS_FILES_MAX)
        return &none;
    if (s->nfiles == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        ml_symfile *n = realloc(s->files, cap * sizeof(*n));
        if (!n)
            return NULL;
        s->files = n;
        s->cap = cap;
    }
    ml_symfile *f = &s->files[s->nfiles];
    memset(f, 0, sizeof(*f));
    f->path = strdup(path);
    if (!f->path)
        return NULL;
    if (bid_len)
        memcpy(f->build_id, bid, bid_len);
    f->build_id_len = bid_len;
    s->nfiles++;
    if (ml_sym_load(f) < 0)
        return NULL;
    return f;
}

long
ml_symbols_load_count(ml_symbols *s, const char *path, const uint8_t *build_id, size_t build_id_len)
{
    ml_symfile *f = ml_sym_file(s, path, build_id, build_id ? build_id_len : 0);
    if (!f)
        return -1;
    return f->ok ? (long)f->nsyms : 0;
}

static const char *
ml_sym_basename(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int
ml_symbols_lookup(ml_symbols *s, const ml_mapping_info *maps, uint32_t nmaps, uint64_t addr, ml_symbol *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t a = addr ? addr - 1 : 0; /* inside the call instruction */
    const ml_mapping_info *m = NULL;
    for (uint32_t i = nmaps; i-- > 0;)
        if (a >= maps[i].start && a < maps[i].end) {
            m = &maps[i];
            break;
        }
    if (!m)
        return 0;
    out->lib = ml_sym_basename(m->path);
    out->path = m->path;
    out->offset = a - m->start + m->offset;
    ml_symfile *f = ml_sym_file(s, m->path, m->build_id, m->build_id_len);
    if (!f)
        return -1;
    if (!f->ok)
        return 0;
    /* the file offset into the file's addresses */
    uint64_t v = 0;
    int found = 0;
    for (size_t i = 0; i < f->nloads && !found; i++) {
        const ElfW(Phdr) *ph = &f->loads[i];
        if (out->offset >= ph->p_offset && out->offset - ph->p_offset < ph->p_filesz) {
            v = ph->p_vaddr + (out->offset - ph->p_offset);
            found = 1;
        }
    }
    if (!found)
        return 0;
    size_t lo = 0, hi = f->nsyms; /* the last symbol with value <= v */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->syms[mid].value <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo)
        return 0;
    const ml_sym *sy = &f->syms[lo - 1];
    /* a sized symbol must hold v; several at one value: any of them with a size that does */
    for (size_t i = lo; i-- > 0 && f->syms[i].value == sy->value;)
        if (!f->syms[i].size || v - f->syms[i].value < f->syms[i].size) {
            out->func = f->names + f->syms[i].name;
            return 0;
        }
    return 0;
}
