/* unwind.c: native caller chains, interned, and the mappings of the
 * loaded objects (see unwind.h). */
#define _GNU_SOURCE 1
#include "native/unwind.h"

#include <Python.h>
#include <elf.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#include "native/elf.h"

#define ML_TLS __thread __attribute__((tls_model("initial-exec")))
#define ML_UW_OBJECTS_MAX 4096

static atomic_int ml_uw_on;
static uintptr_t ml_uw_self_lo, ml_uw_self_hi;     /* memlens' engine */
static uintptr_t ml_uw_interp_lo, ml_uw_interp_hi; /* libpython / the executable */
static ML_TLS int ml_uw_busy;

/* ---- the tables (under ml_uw_mx) ---- */

typedef struct {
    uint64_t hash;
    size_t off; /* into ml_uw.pool */
    uint32_t n;
} ml_uw_entry;

typedef struct {
    uint64_t start, end, offset;
    char *path;
    uint8_t build_id[ML_BUILD_ID_MAX];
    size_t build_id_len;
} ml_uw_mapping;

static pthread_mutex_t ml_uw_mx = PTHREAD_MUTEX_INITIALIZER;
static struct {
    ml_uw_entry *e; /* index id - 1 */
    size_t n, cap;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t nslots;   /* a power of two, or 0 */
    uintptr_t *pool;
    size_t pool_len, pool_cap;
    ml_uw_mapping *maps;
    size_t nmaps, maps_cap;
    struct {
        uintptr_t base;
        char *name;
    } objs[ML_UW_OBJECTS_MAX]; /* objects whose mappings are known */
    size_t nobjs;
    /* what the capture of `gen` has had */
    uint64_t gen;
    int gen_set;
    size_t stacks_written, maps_written;
} ml_uw;

static void
ml_uw_atfork_child(void)
{
    pthread_mutex_init(&ml_uw_mx, NULL); /* another thread may have held it */
    ml_uw_busy = 0;
}

typedef struct {
    uintptr_t addr, lo, hi;
} ml_uw_find;

static int
ml_uw_find_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    ml_uw_find *f = arg;
    uintptr_t lo, hi;
    ml_elf_range(info, &lo, &hi);
    if (f->addr >= lo && f->addr < hi) {
        f->lo = lo;
        f->hi = hi;
        return 1;
    }
    return 0;
}

void
ml_unwind_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    ml_uw_find f = {(uintptr_t)&ml_unwind_init, 0, 0};
    dl_iterate_phdr(ml_uw_find_one, &f);
    ml_uw_self_lo = f.lo, ml_uw_self_hi = f.hi;
    ml_uw_find g = {(uintptr_t)&PyEval_EvalCode, 0, 0};
    dl_iterate_phdr(ml_uw_find_one, &g);
    ml_uw_interp_lo = g.lo, ml_uw_interp_hi = g.hi;
    pthread_atfork(NULL, NULL, ml_uw_atfork_child);
}

void ml_unwind_set_enabled(int on) { atomic_store(&ml_uw_on, on); }
int ml_unwind_enabled(void) { return atomic_load_explicit(&ml_uw_on, memory_order_relaxed); }

/* ---- unwinding ---- */

typedef struct {
    uintptr_t *out;
    int max, n, started; /* started: 0 before memlens' frames, 1 in them, 2 after */
} ml_uw_walk;

static _Unwind_Reason_Code
ml_uw_frame(struct _Unwind_Context *ctx, void *arg)
{
    ml_uw_walk *w = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (!ip)
        return _URC_END_OF_STACK;
    if (w->started < 2) { /* the unwinder's own frames, then memlens' (the hook) */
        int own = ip >= ml_uw_self_lo && ip < ml_uw_self_hi;
        if (own || !w->started) {
            w->started |= own;
            return _URC_NO_REASON;
        }
        w->started = 2;
    }
    if (ip >= ml_uw_interp_lo && ip < ml_uw_interp_hi)
        return _URC_END_OF_STACK; /* the Python stack takes over */
    w->out[w->n++] = ip;
    return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

int
ml_unwind_capture(uintptr_t *out, int max)
{
    if (ml_uw_busy || max <= 0)
        return 0;
    ml_uw_busy = 1;
    ml_uw_walk w = {out, max, 0, 0};
    _Unwind_Backtrace(ml_uw_frame, &w);
    ml_uw_busy = 0;
    return w.n;
}

/* ---- interning ---- */

static uint64_t
ml_uw_hash(const uintptr_t *a, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++) {
        h ^= a[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

static int
ml_uw_rehash(void)
{
    size_t ns = ml_uw.nslots ? ml_uw.nslots * 2 : 1024;
    uint32_t *s = calloc(ns, sizeof(uint32_t));
    if (!s)
        return -1;
    for (size_t i = 0; i < ml_uw.n; i++) {
        size_t j = ml_uw.e[i].hash & (ns - 1);
        while (s[j])
            j = (j + 1) & (ns - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(ml_uw.slots);
    ml_uw.slots = s;
    ml_uw.nslots = ns;
    return 0;
}

static uint32_t
ml_uw_intern_locked(const uintptr_t *a, size_t n)
{
    uint64_t h = ml_uw_hash(a, n);
    if ((ml_uw.n + 1) * 2 > ml_uw.nslots && ml_uw_rehash() < 0)
        return 0;
    size_t j = h & (ml_uw.nslots - 1);
    for (; ml_uw.slots[j]; j = (j + 1) & (ml_uw.nslots - 1)) {
        const ml_uw_entry *e = &ml_uw.e[ml_uw.slots[j] - 1];
        if (e->hash == h && e->n == n && !memcmp(ml_uw.pool + e->off, a, n * sizeof(uintptr_t)))
            return ml_uw.slots[j];
    }
    if (ml_uw.n >= UINT32_MAX - 1)
        return 0;
    if (ml_uw.n == ml_uw.cap) {
        size_t cap = ml_uw.cap ? ml_uw.cap * 2 : 1024;
        ml_uw_entry *e = realloc(ml_uw.e, cap * sizeof(*e));
        if (!e)
            return 0;
        ml_uw.e = e;
        ml_uw.cap = cap;
    }
    if (ml_uw.pool_len + n > ml_uw.pool_cap) {
        size_t cap = ml_uw.pool_cap ? ml_uw.pool_cap * 2 : 16384;
        while (cap < ml_uw.pool_len + n)
            cap *= 2;
        uintptr_t *p = realloc(ml_uw.pool, cap * sizeof(uintptr_t));
        if (!p)
            return 0;
        ml_uw.pool = p;
        ml_uw.pool_cap = cap;
    }
    memcpy(ml_uw.pool + ml_uw.pool_len, a, n * sizeof(uintptr_t));
    ml_uw.e[ml_uw.n] = (ml_uw_entry){h, ml_uw.pool_len, (uint32_t)n};
    ml_uw.pool_len += n;
    ml_uw.slots[j] = (uint32_t)++ml_uw.n;
    return (uint32_t)ml_uw.n;
}

uint32_t
ml_unwind_intern(const uintptr_t *a, size_t n)
{
    if (!n)
        return 0;
    pthread_mutex_lock(&ml_uw_mx);
    uint32_t id = ml_uw_intern_locked(a, n);
    pthread_mutex_unlock(&ml_uw_mx);
    return id;
}

uint32_t
ml_unwind_stack(void)
{
    if (!ml_unwind_enabled())
        return 0;
    uintptr_t a[ML_UNWIND_DEPTH];
    int n = ml_unwind_capture(a, ML_UNWIND_DEPTH);
    return n > 0 ? ml_unwind_intern(a, (size_t)n) : 0;
}

/* ---- mappings ---- */

/* The GNU build-id note of a loaded object, read in memory; 0 if none. */
static size_t
ml_uw_build_id(const struct dl_phdr_info *info, uint8_t *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            size_t name = (nh->n_namesz + 3u) & ~3u, desc = (nh->n_descsz + 3u) & ~3u;
            const uint8_t *q = p + sizeof(*nh);
            if (name > (size_t)(end - q) || desc > (size_t)(end - q - name))
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(q, "GNU", 4) &&
                nh->n_descsz <= ML_BUILD_ID_MAX) {
                memcpy(out, q + name, nh->n_descsz);
                return nh->n_descsz;
            }
            p = q + name + desc;
        }
    }
    return 0;
}

void
ml_unwind_add_object(const struct dl_phdr_info *info)
{
    if (!ml_unwind_enabled())
        return;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    char path[PATH_MAX];
    if (!name[0]) { /* the executable */
        ssize_t k = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (k <= 0)
            return;
        path[k] = 0;
    } else if (!strchr(name, '/')) {
        return; /* the vDSO: no file */
    } else if (name[0] != '/') {
        if (!realpath(name, path))
            return;
    } else {
        size_t l = strlen(name);
        if (l >= sizeof(path))
            return;
        memcpy(path, name, l + 1);
    }
    pthread_mutex_lock(&ml_uw_mx);
    for (size_t i = ml_uw.nobjs; i-- > 0;)
        if (ml_uw.objs[i].base == info->dlpi_addr && !strcmp(ml_uw.objs[i].name, path))
            goto out;
    if (ml_uw.nobjs == ML_UW_OBJECTS_MAX)
        goto out;
    char *copy = strdup(path);
    if (!copy)
        goto out;
    ml_uw.objs[ml_uw.nobjs].base = info->dlpi_addr;
    ml_uw.objs[ml_uw.nobjs].name = copy;
    ml_uw.nobjs++;
    uint8_t bid[ML_BUILD_ID_MAX];
    size_t bid_len = ml_uw_build_id(info, bid);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || !ph->p_memsz)
            continue;
        if (ml_uw.nmaps == ml_uw.maps_cap) {
            size_t cap = ml_uw.maps_cap ? ml_uw.maps_cap * 2 : 64;
            ml_uw_mapping *m = realloc(ml_uw.maps, cap * sizeof(*m));
            if (!m)
                goto out;
            ml_uw.maps = m;
            ml_uw.maps_cap = cap;
        }
        ml_uw_mapping *m = &ml_uw.maps[ml_uw.nmaps++];
        m->start = info->dlpi_addr + ph->p_vaddr;
        m->end = m->start + ph->p_memsz;
        m->offset = ph->p_offset;
        m->path = copy;
        memcpy(m->build_id, bid, bid_len);
        m->build_id_len = bid_len;
    }
out:
    pthread_mutex_unlock(&ml_uw_mx);
}

/* ---- into the capture ---- */

void
ml_unwind_write_upto(ml_writer *w, uint64_t generation, uint32_t id)
{
    pthread_mutex_lock(&ml_uw_mx);
    if (!ml_uw.gen_set || ml_uw.gen != generation) {
        ml_uw.gen = generation;
        ml_uw.gen_set = 1;
        ml_uw.stacks_written = ml_uw.maps_written = 0;
    }
    for (; ml_uw.maps_written < ml_uw.nmaps; ml_uw.maps_written++) {
        const ml_uw_mapping *m = &ml_uw.maps[ml_uw.maps_written];
        ml_writer_mapping(w, m->start, m->end, m->offset, m->path, strlen(m->path), m->build_id,
                          m->build_id_len);
    }
    for (; ml_uw.stacks_written < id && ml_uw.stacks_written < ml_uw.n; ml_uw.stacks_written++) {
        const ml_uw_entry *e = &ml_uw.e[ml_uw.stacks_written];
        ml_writer_native_stack(w, (uint32_t)ml_uw.stacks_written + 1, ml_uw.pool + e->off, e->n);
    }
    pthread_mutex_unlock(&ml_uw_mx);
}

void
ml_unwind_get_stats(ml_unwind_stats *out)
{
    pthread_mutex_lock(&ml_uw_mx);
    out->stacks = ml_uw.n;
    out->addresses = ml_uw.pool_len;
    out->mappings = ml_uw.nmaps;
    pthread_mutex_unlock(&ml_uw_mx);
}
