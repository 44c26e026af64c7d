/* rsssample.c: one breakdown of the RSS (see rsssample.h). */
#define _GNU_SOURCE 1
#include "capture/rsssample.h"

#include <dlfcn.h>
#include <link.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat/compat.h"

/* ---- pymalloc's arenas, known from the arena allocator hook ---- */

static struct {
    pthread_mutex_t mx; /* the hook (GIL) adds and removes, the sampler reads */
    PyObjectArenaAllocator orig;
    struct ml_rss_arena {
        void *p;
        size_t size;
    } *a;
    size_t n, cap;
    int installed;
    /* from the last ml_rsssample_pymalloc */
    atomic_uint_fast64_t used, count, arena_size;
} ml_rss = {.mx = PTHREAD_MUTEX_INITIALIZER};

static void *
ml_rss_arena_alloc(void *ctx, size_t size)
{
    void *p = ml_rss.orig.alloc(ctx, size);
    if (!p)
        return p;
    pthread_mutex_lock(&ml_rss.mx);
    if (ml_rss.n == ml_rss.cap) {
        size_t cap = ml_rss.cap ? ml_rss.cap * 2 : 64;
        struct ml_rss_arena *a = realloc(ml_rss.a, cap * sizeof(*a));
        if (a) {
            ml_rss.a = a;
            ml_rss.cap = cap;
        }
    }
    if (ml_rss.n < ml_rss.cap) /* else: counted as wholly resident */
        ml_rss.a[ml_rss.n++] = (struct ml_rss_arena){p, size};
    pthread_mutex_unlock(&ml_rss.mx);
    return p;
}

static void
ml_rss_arena_free(void *ctx, void *p, size_t size)
{
    pthread_mutex_lock(&ml_rss.mx);
    for (size_t i = ml_rss.n; i-- > 0;)
        if (ml_rss.a[i].p == p) {
            ml_rss.a[i] = ml_rss.a[--ml_rss.n];
            break;
        }
    pthread_mutex_unlock(&ml_rss.mx);
    ml_rss.orig.free(ctx, p, size);
}

int
ml_rsssample_setup(void)
{
    if (ml_rss.installed)
        return 0;
    PyObject_GetArenaAllocator(&ml_rss.orig);
    PyObjectArenaAllocator hook = {ml_rss.orig.ctx, ml_rss_arena_alloc, ml_rss_arena_free};
    PyObject_SetArenaAllocator(&hook);
    ml_rss.installed = 1;
    return 0;
}

/* The number after '=' on the line of `text` that starts with `key`,
 * digits only (pymalloc prints "1,234,567"); 0 when absent. */
static uint64_t
ml_rss_stat(const char *text, const char *key)
{
    const char *l = strstr(text, key);
    if (!l)
        return 0;
    const char *eq = strchr(l, '=');
    const char *nl = strchr(l, '\n');
    if (!eq || (nl && eq > nl))
        return 0;
    uint64_t v = 0;
    for (const char *q = eq + 1; *q && *q != '\n'; q++)
        if (*q >= '0' && *q <= '9')
            v = v * 10 + (uint64_t)(*q - '0');
    return v;
}

void
ml_rsssample_pymalloc(void)
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    if (!f)
        return;
    int any = ml_compat_pymalloc_stats(f);
    long n = ftell(f);
    fclose(f);
    if (!any || n <= 0) { /* pymalloc is not the allocator (PYTHONMALLOC=malloc) */
        atomic_store(&ml_rss.used, 0);
        atomic_store(&ml_rss.count, 0);
        return;
    }
    buf[n < (long)sizeof(buf) ? n : (long)sizeof(buf) - 1] = 0;
    atomic_store(&ml_rss.used, ml_rss_stat(buf, "# bytes in allocated blocks"));
    atomic_store(&ml_rss.count, ml_rss_stat(buf, "# arenas allocated current"));
    /* "N arenas * S bytes/arena = ...": S */
    const char *s = strstr(buf, " bytes/arena");
    const char *star = s ? s : NULL;
    while (star && star > buf && *star != '*')
        star--;
    uint64_t size = 0;
    if (star && *star == '*')
        size = strtoull(star + 1, NULL, 10);
    atomic_store(&ml_rss.arena_size, size);
}

/* Resident bytes of pymalloc's arenas: mincore on the known ones, the
 * others (made before the hook) counted whole. */
static uint64_t
ml_rss_arenas_resident(uint64_t count, uint64_t arena_size)
{
    unsigned char vec[1024];
    uint64_t bytes = 0, known = 0;
    long page = sysconf(_SC_PAGESIZE);
    pthread_mutex_lock(&ml_rss.mx);
    for (size_t i = 0; i < ml_rss.n; i++) {
        size_t len = ml_rss.a[i].size, pages = (len + (size_t)page - 1) / (size_t)page;
        known++;
        if (pages > sizeof(vec) || mincore(ml_rss.a[i].p, len, vec) != 0) {
            bytes += len;
            continue;
        }
        for (size_t k = 0; k < pages; k++)
            bytes += (uint64_t)(vec[k] & 1) * (uint64_t)page;
    }
    pthread_mutex_unlock(&ml_rss.mx);
    if (count > known)
        bytes += (count - known) * arena_size;
    return bytes;
}

int
ml_rsssample_arenas(ml_rss_arena_fn fn, void *arg)
{
    const size_t page = 4096;
    int visited = 0;
    pthread_mutex_lock(&ml_rss.mx);
    size_t n = ml_rss.n;
    struct ml_rss_arena *copy = n ? malloc(n * sizeof(*copy)) : NULL;
    if (n && !copy) {
        pthread_mutex_unlock(&ml_rss.mx);
        return -1;
    }
    if (n)
        memcpy(copy, ml_rss.a, n * sizeof(*copy));
    pthread_mutex_unlock(&ml_rss.mx);
    ml_rss_pool *pools = NULL;
    unsigned char *vec = NULL;
    size_t pcap = 0, vcap = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t base = (uintptr_t)copy[i].p;
        size_t size = copy[i].size, psize = ml_compat_pymalloc_pool_size(size);
        size_t pages = (size + page - 1) / page;
        if (pages > vcap) {
            unsigned char *v = realloc(vec, pages);
            if (!v)
                break;
            vec = v;
            vcap = pages;
        }
        if (size / psize + 1 > pcap) {
            ml_rss_pool *p = realloc(pools, (size / psize + 1) * sizeof(*p));
            if (!p)
                break;
            pools = p;
            pcap = size / psize + 1;
        }
        if (mincore((void *)base, size, vec) != 0)
            memset(vec, 1, pages);
        ml_rss_arena a = {.base = base, .size = size};
        for (size_t k = 0; k < pages; k++)
            a.resident += (uint64_t)(vec[k] & 1) * page;
        size_t np = 0;
        /* pools start at the first pool-aligned address (obmalloc's new_arena) */
        uintptr_t pool = (base + psize - 1) & ~(uintptr_t)(psize - 1);
        for (; pool + psize <= base + size; pool += psize) {
            a.pools++;
            uint32_t count, block, first, end;
            if (!(vec[(pool - base) / page] & 1) ||
                ml_compat_pymalloc_pool((const void *)pool, psize, &count, &block, &first, &end) < 0)
                continue;
            a.pools_used++;
            a.used += (uint64_t)count * block;
            pools[np++] = (ml_rss_pool){pool + first, pool + end, block};
        }
        visited++;
        if (fn(arg, &a, pools, np))
            break;
    }
    free(vec);
    free(pools);
    free(copy);
    return visited;
}

/* Rss and Anonymous of smaps_rollup, in bytes; -1 when unreadable. */
static int
ml_rss_rollup(uint64_t *rss, uint64_t *anon)
{
    char buf[4096];
    int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0)
        return -1;
    buf[k] = 0;
    char *r = strstr(buf, "\nRss:"), *a = strstr(buf, "\nAnonymous:");
    if (!r || !a)
        return -1;
    *rss = strtoull(r + 5, NULL, 10) * 1024;
    *anon = strtoull(a + 11, NULL, 10) * 1024;
    return 0;
}

/* One pass over /proc/self/smaps, resident bytes of:
 *   stacks  "[stack]", and every private rw unnamed mapping that starts
 *           where a PROT_NONE unnamed mapping (a guard page) ends;
 *   files   every mapping of a file (with the pages of its data that
 *           were written: they are anonymous but belong to the library);
 *   other   "[heap]" and the other unnamed mappings: the C heap, pymalloc's
 *           arenas, memlens' own mmaps, libraries' .bss, other mmaps. */
static void
ml_rss_smaps(uint64_t *stacks, uint64_t *files, uint64_t *other)
{
    *stacks = *files = *other = 0;
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f)
        return;
    char line[512];
    unsigned long prev_end = 0, start, end;
    int prev_guard = 0;
    uint64_t *counting = NULL;
    while (fgets(line, sizeof(line), f)) {
        char perms[8], path[256] = "", dev[16];
        unsigned long off, inode;
        char *dash = strchr(line, '-'), *space = strchr(line, ' ');
        if (dash && space && dash < space &&
            sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &start, &end, perms, &off, dev, &inode, path) >= 6) {
            int unnamed = inode == 0 && path[0] == 0;
            if (strcmp(path, "[stack]") == 0 || (unnamed && strncmp(perms, "rw-p", 4) == 0 && prev_end == start && prev_guard))
                counting = stacks;
            else if (inode != 0)
                counting = files;
            else if (unnamed || strcmp(path, "[heap]") == 0)
                counting = other;
            else
                counting = NULL; /* [vdso], [vvar], shared memory: left to "unexplained" */
            prev_guard = unnamed && strncmp(perms, "---p", 4) == 0;
            prev_end = end;
            continue;
        }
        if (counting && strncmp(line, "Rss:", 4) == 0)
            *counting += strtoull(line + 4, NULL, 10) * 1024;
    }
    fclose(f);
}

/* Resident bytes of [p, p + len) by mincore (page-aligned p). */
static uint64_t
ml_rss_resident(uintptr_t p, size_t len)
{
    unsigned char vec[4096]; /* on the stack: the sampler and memlens.rss() may run at once */
    const size_t page = 4096;
    uint64_t bytes = 0;
    while (len) {
        size_t chunk = len < sizeof(vec) * page ? len : sizeof(vec) * page;
        if (mincore((void *)p, chunk, vec) == 0)
            for (size_t i = 0; i < (chunk + page - 1) / page; i++)
                bytes += (uint64_t)(vec[i] & 1) * page;
        p += chunk;
        len -= chunk;
    }
    return bytes;
}

/* Loaded objects' .bss (the part of a writable PT_LOAD segment past its
 * file bytes: unnamed memory in smaps), and memlens' engine's writable
 * data and .bss (its own tables). */
struct ml_rss_objs {
    uint64_t bss, own;
};

static int
ml_rss_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct ml_rss_objs *o = arg;
    const uintptr_t page = 4096;
    int mine = info->dlpi_name && strstr(info->dlpi_name, "/memlens/_engine") != NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t file_end = (start + ph->p_filesz + page - 1) & ~(page - 1);
        uintptr_t mem_end = (start + ph->p_memsz + page - 1) & ~(page - 1);
        if (mem_end > file_end)
            o->bss += ml_rss_resident(file_end, mem_end - file_end);
        if (mine)
            o->own += ml_rss_resident(start & ~(page - 1), mem_end - (start & ~(page - 1)));
    }
    (void)size;
    return 0;
}

/* glibc's mallinfo2 (2.33+), else mallinfo; found at run time. */
struct ml_mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct ml_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

static void
ml_rss_malloc(uint64_t *used, uint64_t *freeb)
{
    static int looked;
    static struct ml_mallinfo2 (*mi2)(void);
    static struct ml_mallinfo (*mi)(void);
    if (!looked) {
        *(void **)&mi2 = dlsym(RTLD_DEFAULT, "mallinfo2");
        if (!mi2)
            *(void **)&mi = dlsym(RTLD_DEFAULT, "mallinfo");
        looked = 1;
    }
    *used = *freeb = 0;
    if (mi2) {
        struct ml_mallinfo2 m = mi2();
        *used = (uint64_t)m.uordblks + m.hblkhd;
        *freeb = m.fordblks;
    } else if (mi) {
        struct ml_mallinfo m = mi(); /* wraps past 2 GiB */
        *used = (uint64_t)(unsigned)m.uordblks + (unsigned)m.hblkhd;
        *freeb = (unsigned)m.fordblks;
    }
}

int
ml_rsssample_take(ml_rss_sample *s, int full)
{
    /* the last full scan of smaps (the sampler's: one thread at a time) */
    static struct {
        int valid;
        uint64_t stacks, files, own, other, rest; /* rest: RSS in none of them ([vdso]...) */
    } last;
    uint64_t rss, anon;
    if (ml_rss_rollup(&rss, &anon) < 0)
        return -1;
    s->f[ML_RSS_TOTAL] = rss;
    s->f[ML_RSS_ANON] = anon;
    static unsigned calls; /* the sampler's: a full scan every 10th */
    if (full || calls++ % 10 == 0 || !last.valid) {
        uint64_t files, other;
        ml_rss_smaps(&s->f[ML_RSS_STACKS], &files, &other);
        struct ml_rss_objs objs = {0, 0};
        dl_iterate_phdr(ml_rss_phdr, &objs);
        s->f[ML_RSS_FILES] = files + objs.bss; /* .bss: the libraries' */
        s->f[ML_RSS_OWN_STATIC] = objs.own;
        s->f[ML_RSS_ANON_OTHER] = other > objs.bss ? other - objs.bss : 0;
        uint64_t known = s->f[ML_RSS_STACKS] + s->f[ML_RSS_FILES] + s->f[ML_RSS_ANON_OTHER];
        if (!full) {
            last.valid = 1;
            last.stacks = s->f[ML_RSS_STACKS];
            last.files = s->f[ML_RSS_FILES];
            last.own = s->f[ML_RSS_OWN_STATIC];
            last.other = s->f[ML_RSS_ANON_OTHER];
            last.rest = rss > known ? rss - known : 0;
        }
    } else {
        /* between full scans, stacks and libraries are taken as they were
         * and the change of the RSS goes to the unnamed mappings */
        s->f[ML_RSS_STACKS] = last.stacks;
        s->f[ML_RSS_FILES] = last.files;
        s->f[ML_RSS_OWN_STATIC] = last.own;
        uint64_t fixed = last.stacks + last.files + last.rest;
        s->f[ML_RSS_ANON_OTHER] = rss > fixed ? rss - fixed : 0;
    }
    uint64_t count = atomic_load(&ml_rss.count);
    s->f[ML_RSS_ARENA_COUNT] = count;
    s->f[ML_RSS_ARENAS] = count ? ml_rss_arenas_resident(count, atomic_load(&ml_rss.arena_size)) : 0;
    s->f[ML_RSS_PYMALLOC_USED] = atomic_load(&ml_rss.used);
    ml_rss_malloc(&s->f[ML_RSS_MALLOC_USED], &s->f[ML_RSS_MALLOC_FREE]);
    return 0;
}
