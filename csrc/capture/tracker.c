/* tracker.c: the allocator hooks and the capture engine (see tracker.h).
 *
 * Hot path, for every allocation in RAW, MEM and OBJ:
 *   1. re-entrancy guard and the "enabled" flag (relaxed read: a hook that
 *      sees a stale "on" re-checks under the lock, so stop is exact);
 *   2. outside the lock: walk the Python frames into this thread's scratch;
 *   3. under the lock: classify the previous block (its header is written
 *      by now), intern the stack, update the live-block table, encode.
 * The lock (a spinlock, see ml_lock) is uncontended in practice: MEM and
 * OBJ run under the GIL; only RAW calls from threads without the GIL
 * (thread start/exit) and the sampler's buffer swap compete.
 *
 * Types: an OBJ block (and on 3.13 a MEM block, which may be a dict keys
 * table) allocated by one hook call is held "pending" and classified at
 * the next hook call made with the GIL (by then the interpreter has
 * written the object header); other MEM and RAW blocks are typed at once. On 3.13 the creation tracer
 * also reports each object: that types the pending block exactly and
 * counts objects reused from free lists (REUSE records).
 */
#define _GNU_SOURCE 1
#include "capture/tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "capture/blocks.h"
#include "capture/stacks.h"
#include "capture/types.h"
#include "capture/writer.h"
#include "compat/compat.h"

#define ML_TLS __thread __attribute__((tls_model("initial-exec")))
/* Helpers of the hook path: inlined into the hooks (they run per event). */
#define ML_HOT inline __attribute__((always_inline))
/* The "recording" flag; a stale read is harmless: every hook checks it
 * again under the lock before it records anything. */
#define ML_ENABLED() atomic_load_explicit(&ml_enabled, memory_order_relaxed)
/* Blocks allocated while the GC collects stay pending until it is done
 * (on 3.10/3.11 a collection runs inside the allocation, before the object
 * header is written); past this many, the oldest is classified anyway. */
#define ML_PENDING_MAX 32

typedef struct {
    ml_domain domain;
    PyMemAllocatorEx orig; /* the allocator we wrap */
} ml_hook_ctx;

/* Per-thread state (libc malloc; freed by the pthread key destructor). */
typedef struct ml_tstate {
    uint64_t generation;   /* capture it belongs to; id and context reset on change */
    ml_thread_id id;
    ml_frame_id context;   /* this thread's stack as the file knows it */
    ml_stack_cache cache;
    ml_rawframe *scratch;
    int scratch_cap;
} ml_tstate;

static ML_TLS int ml_busy;          /* re-entrancy guard, all domains */
static ML_TLS ml_tstate *ml_ts;

static atomic_int ml_enabled;       /* recording on */
static ml_hook_ctx ml_ctx[3];
static int ml_hooks_installed;
static pthread_key_t ml_ts_key;
static pthread_once_t ml_once = PTHREAD_ONCE_INIT;

/* The engine lock: a spinlock, since it is held for a few hundred
 * instructions and is uncontended but for RAW calls from threads without
 * the GIL and the sampler's buffer swap. A waiter yields after a while so a
 * preempted holder can run. */
static atomic_int ml_spin;

static inline void
ml_lock(void)
{
    for (unsigned i = 0; atomic_exchange_explicit(&ml_spin, 1, memory_order_acquire); i++) {
        while (atomic_load_explicit(&ml_spin, memory_order_relaxed)) {
            if (++i > 128)
                sched_yield();
#if defined(__x86_64__) || defined(__i386__)
            else
                __builtin_ia32_pause();
#endif
        }
    }
}

static inline void
ml_unlock(void)
{
    atomic_store_explicit(&ml_spin, 0, memory_order_release);
}

/* Everything below is protected by ml_lock(). */
static struct {
    int active;             /* between start and stop */
    ml_writer *w;           /* NULL: counters only */
    ml_blocks *blocks;
    ml_stacks *stacks;
    ml_types *types;
    uint64_t generation;
    ml_thread_id nthreads, last_thread;
    /* blocks allocated but not classified yet, oldest first */
    struct ml_pending {
        uintptr_t ptr;
        void *slot;         /* its live-block map entry (ml_blocks_peek), or NULL */
        size_t size;
        ml_domain domain;
        ml_frame_id stack;
        ml_tstate *owner;
    } pending[ML_PENDING_MAX];
    int npending;
    /* counters (read without the lock by ml_tracker_counters) */
    int64_t heap;
    uint64_t peak, allocated_bytes, allocations, frees;
    uint64_t nostack, truncated, reuses, dropped;
    /* options */
    int max_frames, follow_fork, sample_ms, zlevel;
    int no_hint; /* MEMLENS_NO_STACK_HINT: always walk the whole stack (tests) */
    PyCodeObject *stop_code;
    char *path, *meta;
    size_t meta_len;
    /* time and the sampler thread */
    struct timespec t0;
    uint64_t last_time_us;
    pthread_t sampler;
    int sampler_running;
    pthread_mutex_t sampler_mx; /* the sampler sleeps on sampler_cv with it */
    pthread_cond_t sampler_cv;
    int sampler_stop;
    int sampler_ready;          /* the sampler is in its loop (start waits for it) */
    int rss_fd;
    int tracer_installed, forked_child, prepare_locked;
} ml = {.sampler_mx = PTHREAD_MUTEX_INITIALIZER, .sampler_cv = PTHREAD_COND_INITIALIZER, .rss_fd = -1};

/* ---- per-thread state ---- */

static void
ml_tstate_destroy(void *arg)
{
    ml_tstate *t = arg;
    ml_lock();
    for (int i = 0; i < ml.npending; i++)
        if (ml.pending[i].owner == t)
            ml.pending[i].owner = NULL;
    ml_unlock();
    ml_stack_cache_release(&t->cache);
    free(t->scratch);
    free(t);
    ml_ts = NULL;
}

static ML_HOT ml_tstate *
ml_tstate_get(void)
{
    ml_tstate *t = ml_ts;
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    ml_ts = t;
    pthread_setspecific(ml_ts_key, t);
    return t;
}

/* Walk this thread's Python frames into t->scratch, with its previous
 * frame chain as the cache (see stacks.h): returns the new inner frames
 * above chain[*anchor], or -1 when the stack is too deep for the cache.
 * Needs the GIL; outside the lock. */
static ML_HOT int
ml_capture_frames(ml_tstate *t, PyThreadState *ts, int *anchor, const void **bottom)
{
    /* the common case first: the thread's stack has not changed (the
     * cache's ids are this capture's when its generation is) */
    ml_stack_cache *c = &t->cache;
    if (ts && c->n && c->generation == ml.generation &&
        ml_compat_chain_unchanged(ts, ml.stop_code, c->chain, c->n, c->bottom)) {
        *anchor = c->n - 1;
        *bottom = c->bottom;
        return 0;
    }
    *anchor = -1;
    *bottom = NULL;
    if (!ts || !ml.w || !ml.stacks)
        return 0;
    if (ml.no_hint)
        return -1;
    int cap = ml.max_frames * 2 + 16; /* room for shim frames */
    if (t->scratch_cap < cap) {
        ml_rawframe *s = realloc(t->scratch, (size_t)cap * sizeof(*s));
        if (!s)
            return 0;
        t->scratch = s;
        t->scratch_cap = cap;
    }
    int mine = c->generation == ml.generation; /* else its ids are another capture's */
    return ml_compat_walk_cached(ts, ml.stop_code, c->chain, mine ? c->n : 0, mine ? c->bottom : NULL, t->scratch,
                                 t->scratch_cap, anchor, bottom);
}

/* The stack id of what ml_capture_frames found (lock held, GIL held when
 * ts is set). Stacks too deep for the cache are walked again here, plainly,
 * keeping the innermost max_frames frames. */
static ML_HOT ml_frame_id
ml_intern_frames(ml_tstate *t, PyThreadState *ts, int n, int anchor, const void *bottom)
{
    ml_frame_id id = 0;
    if (!ts)
        return 0;
    const ml_stack_cache *c = &t->cache;
    if (n == 0 && anchor >= 0 && anchor == c->n - 1 && c->generation == ml.generation && c->chain[anchor].node)
        return c->chain[anchor].node; /* unchanged */
    if (n >= 0 && ml_stacks_intern_chain(ml.stacks, &t->cache, t->scratch, n, anchor, bottom, ml.max_frames, &id) == 0)
        return id;
    static ml_pyframe frames[4096]; /* under the lock; max_frames <= 4096 */
    int truncated = 0;
    int k = ml_compat_walk(ts, frames, ml.max_frames, ml.stop_code, &truncated);
    if (truncated)
        ml.truncated++;
    return ml_stacks_intern(ml.stacks, frames, k);
}

static uint64_t
ml_now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - ml.t0.tv_sec) * 1000000 + (now.tv_nsec - ml.t0.tv_nsec) / 1000;
    return us < 0 ? 0 : (uint64_t)us;
}

/* Make `t` the current thread of the file. */
static ML_HOT void
ml_switch_thread_unlocked(ml_tstate *t)
{
    if (t->generation != ml.generation || !t->id) {
        t->generation = ml.generation;
        t->id = ++ml.nthreads;
        t->context = 0;
        char name[32] = "";
        pthread_getname_np(pthread_self(), name, sizeof(name));
        ml_writer_thread_def(ml.w, t->id, (uint64_t)syscall(SYS_gettid), name, strlen(name));
    }
    if (ml.last_thread != t->id) {
        ml_writer_thread(ml.w, t->id);
        ml.last_thread = t->id;
    }
}

/* Write pending block i's ALLOC with its type and drop it from the queue.
 * GIL held. known_type: from the creation tracer (0 = read the header). */
static void
ml_resolve_one_unlocked(int i, ml_type_id known_type, int freeing)
{
    const struct ml_pending *pb = &ml.pending[i];
    ml_type_id type = known_type ? known_type
                                 : ml_types_classify(ml.types, (const void *)pb->ptr, pb->size, pb->domain, freeing);
    ml_tstate *owner = pb->owner;
    if (owner && owner->generation == ml.generation && owner->id) {
        if (ml.last_thread != owner->id) {
            ml_writer_thread(ml.w, owner->id);
            ml.last_thread = owner->id;
        }
        owner->context = pb->stack;
    }
    ml_seq seq = ml_writer_alloc(ml.w, pb->domain, pb->stack, type, pb->size);
    if (ml_blocks_put_at(ml.blocks, pb->ptr, pb->slot, seq, pb->size, ml_types_is_metatype(ml.types, type)) < 0)
        ml.dropped++; /* out of memory: its free will not be recorded */
    if (i != --ml.npending)
        memmove(&ml.pending[i], &ml.pending[i + 1], (size_t)(ml.npending - i) * sizeof(*pb));
}

/* Classify every pending block, unless a collection is under way (then
 * their headers may not be written yet). force: at stop and marks. */
static ML_HOT void
ml_resolve_pending_unlocked(PyThreadState *ts, int force)
{
    if (!ml.npending || (!force && ml_compat_gc_collecting(ts)))
        return;
    while (ml.npending)
        ml_resolve_one_unlocked(0, 0, 0);
}

static int
ml_pending_find(uintptr_t ptr)
{
    for (int i = ml.npending - 1; i >= 0; i--)
        if (ml.pending[i].ptr == ptr)
            return i;
    return -1;
}

static ML_HOT void
ml_count_alloc_unlocked(size_t size)
{
    ml.heap += (int64_t)size;
    ml.allocated_bytes += size;
    ml.allocations++;
    if (ml.heap > (int64_t)ml.peak)
        ml.peak = (uint64_t)ml.heap;
}

/* Record a new block. */
static inline PyThreadState *
ml_tstate_for(ml_domain domain)
{
    /* MEM and OBJ are called with the GIL held; RAW may not be */
    return domain == ML_DOMAIN_RAW ? ml_compat_tstate_with_gil() : ml_compat_tstate_gil_held();
}

static __attribute__((flatten)) void
ml_on_alloc(ml_domain domain, void *p, size_t size)
{
    ml_blocks *blocks = ml.blocks;
    PyThreadState *ts = ml_tstate_for(domain);
    /* with the GIL, the table cannot be freed before we use the slot */
    void *slot = blocks && ts ? ml_blocks_peek(blocks, (uintptr_t)p) : NULL;
    ml_tstate *t = ml_tstate_get();
    int anchor = -1;
    const void *bottom = NULL;
    int n = t ? ml_capture_frames(t, ts, &anchor, &bottom) : 0;
    ml_lock();
    if (!ml.active || !ML_ENABLED())
        goto unlock;
    /* RAW calls may come from a wrapper above us (tracemalloc's tables)
     * before the object header is written: only MEM/OBJ calls classify */
    if (ts && ml.w && domain != ML_DOMAIN_RAW)
        ml_resolve_pending_unlocked(ts, 0);
    ml_count_alloc_unlocked(size);
    if (!ml.w || !t) { /* counters only */
        if (ml_blocks_put(ml.blocks, (uintptr_t)p, 1, size, 0) < 0)
            ml.dropped++;
        goto unlock;
    }
    ml_frame_id stack = ml_intern_frames(t, ts, n, anchor, bottom);
    if (!ts)
        ml.nostack++;
    ml_switch_thread_unlocked(t);
    if (ts && (domain == ML_DOMAIN_OBJ || (domain == ML_DOMAIN_MEM && ML_COMPAT_MEM_HOLDS_DICT_KEYS))) {
        /* classified at the next hook call, when the header is written; it
         * enters the live-block map then (a free finds it here first) */
        if (ml.npending == ML_PENDING_MAX)
            ml_resolve_one_unlocked(0, 0, 0);
        ml.pending[ml.npending++] = (struct ml_pending){(uintptr_t)p, slot, size, domain, stack, t};
    } else {
        ml_type_id type = domain == ML_DOMAIN_RAW ? ML_KIND_RAW
                          : domain == ML_DOMAIN_MEM ? ML_KIND_MEM
                                                    : ML_KIND_OBJ;
        ml_seq seq = ml_writer_alloc(ml.w, domain, stack, type, size);
        t->context = stack;
        if (ml_blocks_put_at(ml.blocks, (uintptr_t)p, slot, seq, size, 0) < 0)
            ml.dropped++;
    }
unlock:
    ml_unlock();
}

/* Record the free of p (before the memory is released). */
static __attribute__((flatten)) void
ml_on_free(ml_domain domain, void *p)
{
    ml_blocks *blocks = ml.blocks;
    PyThreadState *ts = ml_tstate_for(domain);
    /* the block's entry is a cache miss: start loading it, walk the frames
     * meanwhile (with the GIL, so that no stop() frees the table) */
    void *slot = blocks && ts ? ml_blocks_peek(blocks, (uintptr_t)p) : NULL;
    ml_tstate *t = ml_tstate_get();
    int anchor = -1;
    const void *bottom = NULL;
    int n = t ? ml_capture_frames(t, ts, &anchor, &bottom) : 0;
    /* A block allocated before tracking started: nothing to record, but a
     * type object among such blocks is forgotten. The types table changes
     * only under the GIL, so with it the test needs no lock. */
    if (blocks && ts && !ml.npending && !ml_blocks_maybe_live((uintptr_t)p, slot)) {
        if (ml.types && ml.active && ml_types_may_be_type(ml.types, p)) {
            ml_lock();
            if (ml.types && ml.active)
                ml_types_type_freed(ml.types, p);
            ml_unlock();
        }
        return;
    }
    ml_lock();
    if (!ml.active || !ML_ENABLED())
        goto unlock;
    if (ml.w) {
        int i = ml.npending ? ml_pending_find((uintptr_t)p) : -1;
        if (i >= 0)
            ml_resolve_one_unlocked(i, 0, 1); /* freed before classified: read it now */
        if (ts && domain != ML_DOMAIN_RAW)
            ml_resolve_pending_unlocked(ts, 0);
    }
    ml_block e;
    if (!ml_blocks_take(ml.blocks, (uintptr_t)p, slot, &e)) {
        if (ml.types && ts)
            ml_types_type_freed(ml.types, p); /* maybe a type made before we started */
        goto unlock;
    }
    ml.heap -= (int64_t)e.size;
    ml.frees++;
    if (!ml.w || !t || !e.seq)
        goto unlock;
    if (e.flag)
        ml_types_type_freed(ml.types, p);
    ml_switch_thread_unlocked(t);
    if (ts) {
        ml_frame_id stack = ml_intern_frames(t, ts, n, anchor, bottom);
        if (stack != t->context) {
            ml_writer_context(ml.w, stack);
            t->context = stack;
        }
    }
    ml_writer_free(ml.w, e.seq);
unlock:
    ml_unlock();
}

/* A block about to be reallocated may still be pending: classify it now,
 * while its memory is valid (realloc may free it). */
static void
ml_before_realloc(void *old)
{
    ml_lock();
    if (ml.active && ml.w && ml.npending && ML_ENABLED()) {
        int i = ml_pending_find((uintptr_t)old);
        if (i >= 0)
            ml_resolve_one_unlocked(i, 0, 0);
    }
    ml_unlock();
}

/* ---- the hooks ---- */

static void *
ml_hook_malloc(void *ctx, size_t size)
{
    ml_hook_ctx *c = ctx;
    if (ml_busy || !ML_ENABLED())
        return c->orig.malloc(c->orig.ctx, size);
    ml_busy = 1;
    void *p = c->orig.malloc(c->orig.ctx, size);
    if (p)
        ml_on_alloc(c->domain, p, size);
    ml_busy = 0;
    return p;
}

static void *
ml_hook_calloc(void *ctx, size_t nelem, size_t elsize)
{
    ml_hook_ctx *c = ctx;
    if (ml_busy || !ML_ENABLED())
        return c->orig.calloc(c->orig.ctx, nelem, elsize);
    ml_busy = 1;
    void *p = c->orig.calloc(c->orig.ctx, nelem, elsize);
    if (p)
        ml_on_alloc(c->domain, p, nelem * elsize);
    ml_busy = 0;
    return p;
}

static void *
ml_hook_realloc(void *ctx, void *old, size_t size)
{
    ml_hook_ctx *c = ctx;
    if (ml_busy || !ML_ENABLED())
        return c->orig.realloc(c->orig.ctx, old, size);
    ml_busy = 1;
    if (old && c->domain != ML_DOMAIN_RAW && ml.npending) /* only MEM/OBJ blocks are pending */
        ml_before_realloc(old);
    void *p = c->orig.realloc(c->orig.ctx, old, size);
    if (p) {
        /* recorded as FREE of the old block + ALLOC of the new one, which is
         * classified by its contents like any new block */
        if (old)
            ml_on_free(c->domain, old);
        ml_on_alloc(c->domain, p, size);
    }
    ml_busy = 0;
    return p;
}

static void
ml_hook_free(void *ctx, void *p)
{
    ml_hook_ctx *c = ctx;
    if (p && !ml_busy && ML_ENABLED()) {
        ml_busy = 1;
        ml_on_free(c->domain, p);
        ml_busy = 0;
    }
    c->orig.free(c->orig.ctx, p);
}

/* 3.13 creation tracer: every object created, free-list reuse included. */
static void
ml_on_create(PyObject *op)
{
    if (ml_busy || !ML_ENABLED())
        return;
    ml_busy = 1;
    ml_lock();
    if (ml.active && ml.w && ML_ENABLED()) {
        PyTypeObject *tp = Py_TYPE(op);
        uintptr_t block = (uintptr_t)op - ml_compat_preheader(tp);
        int i = ml.npending ? ml_pending_find(block) : -1;
        if (i >= 0) {
            ml_resolve_one_unlocked(i, ml_types_of(ml.types, tp), 0);
        } else {
            ml_block b;
            if (!ml_blocks_get(ml.blocks, block, &b) || b.seq) {
                ml_writer_reuse(ml.w, ml_types_of(ml.types, tp));
                ml.reuses++;
            }
        }
    }
    ml_unlock();
    ml_busy = 0;
}

static void
ml_install_hooks(void)
{
    static const PyMemAllocatorDomain doms[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    for (int i = 0; i < 3; i++) {
        ml_ctx[i].domain = (ml_domain)i;
        PyMem_GetAllocator(doms[i], &ml_ctx[i].orig);
        PyMemAllocatorEx hook = {&ml_ctx[i], ml_hook_malloc, ml_hook_calloc, ml_hook_realloc, ml_hook_free};
        PyMem_SetAllocator(doms[i], &hook);
    }
    ml_hooks_installed = 1;
}

/* ---- sampler thread: time, RSS and heap every sample_ms, then flush ---- */

static uint64_t
ml_read_rss(void)
{
    char buf[128];
    if (ml.rss_fd < 0)
        return 0;
    ssize_t k = pread(ml.rss_fd, buf, sizeof(buf) - 1, 0);
    if (k <= 0)
        return 0;
    buf[k] = 0;
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void
ml_sample_unlocked(void)
{
    uint64_t now = ml_now_us();
    ml_writer_time(ml.w, now - ml.last_time_us);
    ml.last_time_us = now;
    ml_writer_memory(ml.w, ml_read_rss(), ml.heap < 0 ? 0 : (uint64_t)ml.heap);
}

static void *
ml_sampler_main(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the program */
    pthread_mutex_lock(&ml.sampler_mx);
    ml.sampler_ready = 1;
    pthread_cond_broadcast(&ml.sampler_cv);
    while (!ml.sampler_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)ml.sample_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&ml.sampler_cv, &ml.sampler_mx, &until);
        if (ml.sampler_stop)
            break;
        pthread_mutex_unlock(&ml.sampler_mx);
        ml_lock();
        ml_writer *w = ml.w;
        if (w) {
            ml_sample_unlocked();
            /* write the buffer while the program goes on into the other one */
            ml_writer_flush_begin(w);
        }
        ml_unlock();
        if (w)
            ml_writer_flush_end(w);
        pthread_mutex_lock(&ml.sampler_mx);
    }
    pthread_mutex_unlock(&ml.sampler_mx);
    return arg;
}

static void
ml_sampler_start(void)
{
    ml.sampler_stop = 0;
    ml.sampler_ready = 0;
    ml.sampler_running = pthread_create(&ml.sampler, NULL, ml_sampler_main, NULL) == 0;
    /* Return once the thread runs our loop: a thread still starting may be
     * inside the allocator (sanitizers allocate in their thread-start
     * wrappers), and a fork then would leave a child with that lock held. */
    pthread_mutex_lock(&ml.sampler_mx);
    while (ml.sampler_running && !ml.sampler_ready)
        pthread_cond_wait(&ml.sampler_cv, &ml.sampler_mx);
    pthread_mutex_unlock(&ml.sampler_mx);
}

static void
ml_sampler_join(void)
{
    if (!ml.sampler_running)
        return;
    pthread_mutex_lock(&ml.sampler_mx);
    ml.sampler_stop = 1;
    pthread_cond_signal(&ml.sampler_cv);
    pthread_mutex_unlock(&ml.sampler_mx);
    pthread_join(ml.sampler, NULL);
    ml.sampler_running = 0;
}

/* ---- fork ---- */

static void
ml_atfork_prepare(void)
{
    if (ml.active) {
        ml_lock();
        ml.prepare_locked = 1;
    }
}

static void
ml_atfork_parent(void)
{
    if (ml.prepare_locked) {
        ml.prepare_locked = 0;
        ml_unlock();
    }
}

static void
ml_atfork_child(void)
{
    /* Only this thread survives. Never write the parent's buffer: drop it.
     * Recording stays off until ml_tracker_after_fork_child (os.fork only). */
    atomic_store(&ml_spin, 0);
    pthread_mutex_init(&ml.sampler_mx, NULL);
    pthread_cond_init(&ml.sampler_cv, NULL);
    ml.prepare_locked = 0;
    if (!ml.active)
        return;
    atomic_store(&ml_enabled, 0);
    ml.sampler_running = 0;
    ml.forked_child = 1;
    if (ml.w) {
        ml_writer_abandon(ml.w);
        ml.w = NULL;
    }
}

static void
ml_init_once(void)
{
    pthread_key_create(&ml_ts_key, ml_tstate_destroy);
    pthread_atfork(ml_atfork_prepare, ml_atfork_parent, ml_atfork_child);
}

/* ---- lifecycle ---- */

static int
ml_open_capture_unlocked(const char *path, int force, const char *meta, size_t meta_len)
{
    ml.w = ml_writer_open(path, force, ml.zlevel, meta, meta_len);
    if (!ml.w)
        return -1;
    ml.generation++;
    ml.stacks = ml_stacks_new(ml.w, ml.generation);
    ml.types = ml_types_new(ml.w);
    if (!ml.stacks || !ml.types) {
        ml_stacks_free(ml.stacks, 1);
        ml_types_free(ml.types);
        ml_writer_close(ml.w);
        ml.w = NULL;
        ml.stacks = NULL;
        ml.types = NULL;
        errno = ENOMEM;
        return -1;
    }
    ml.last_thread = 0;
    ml.nthreads = 0;
    clock_gettime(CLOCK_MONOTONIC, &ml.t0);
    ml.last_time_us = 0;
    return 0;
}

static void
ml_reset_counters(void)
{
    ml.heap = 0;
    ml.peak = ml.allocated_bytes = ml.allocations = ml.frees = 0;
    ml.nostack = ml.truncated = ml.reuses = ml.dropped = 0;
    ml.npending = 0;
}

int
ml_tracker_start(const ml_tracker_options *opt)
{
    pthread_once(&ml_once, ml_init_once);
    if (ml.active) {
        errno = EBUSY;
        return -1;
    }
    ml_blocks *blocks = ml_blocks_new();
    if (!blocks) {
        errno = ENOMEM;
        return -1;
    }
    ml_lock();
    ml_reset_counters();
    ml.max_frames = opt->max_frames < 1 ? 1 : opt->max_frames > 4096 ? 4096 : opt->max_frames;
    ml.follow_fork = opt->follow_fork;
    ml.zlevel = opt->compress_level;
    ml.sample_ms = opt->sample_ms < 1 ? 10 : opt->sample_ms;
    ml.forked_child = 0;
    ml.no_hint = getenv("MEMLENS_NO_STACK_HINT") != NULL;
    ml.blocks = blocks;
    if (opt->path) {
        if (ml_open_capture_unlocked(opt->path, opt->force, opt->meta_json, opt->meta_len) < 0) {
            int e = errno;
            ml_blocks_free(blocks);
            ml.blocks = NULL;
            ml_unlock();
            errno = e;
            return -1;
        }
        free(ml.path);
        free(ml.meta);
        ml.path = strdup(opt->path);
        ml.meta = malloc(opt->meta_len + 1);
        if (ml.meta)
            memcpy(ml.meta, opt->meta_json, opt->meta_len);
        ml.meta_len = ml.meta ? opt->meta_len : 0;
        if (ml.rss_fd < 0)
            ml.rss_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    }
    ml.active = 1;
    ml_unlock();
    if (!ml_hooks_installed)
        ml_install_hooks();
    ml.tracer_installed = ml.w && ml_compat_have_reftracer() && ml_compat_reftracer_install(ml_on_create) == 0;
    atomic_store(&ml_enabled, 1);
    if (ml.w)
        ml_sampler_start();
    return 0;
}

static int
ml_finish_capture_unlocked(ml_tracker_stats *st)
{
    int rc = 0;
    if (ml.w) {
        ml_resolve_pending_unlocked(NULL, 1);
        ml_sample_unlocked();
        int lost = ml.tracer_installed && !ml_compat_reftracer_is_ours();
        if (lost) {
            static const char msg[] =
                "another tool (tracemalloc?) replaced memlens' object-creation tracer; objects reused "
                "from free lists after that point are not counted in `types`";
            ml_writer_note(ml.w, ML_NOTE_TRACER_LOST, msg, sizeof(msg) - 1);
        }
        uint64_t dropped = ml.dropped + ml_stacks_dropped(ml.stacks);
        uint64_t fields[ML_TRAILER_COUNT] = {
            [ML_TRAILER_ALLOCS] = ml.allocations, [ML_TRAILER_FREES] = ml.frees,
            [ML_TRAILER_DROPPED] = dropped, [ML_TRAILER_NOSTACK] = ml.nostack,
            [ML_TRAILER_TRUNCATED] = ml.truncated,
        };
        ml_writer_trailer(ml.w, fields, ML_TRAILER_COUNT);
        if (st) {
            st->tracer_lost = lost;
            st->bytes_written = ml_writer_bytes_written(ml.w);
            st->bytes_lost = ml_writer_bytes_lost(ml.w);
            st->compressed = ml_writer_compressed(ml.w);
        }
        rc = ml_writer_close(ml.w);
        ml.w = NULL;
    }
    if (st) {
        st->allocs = ml.allocations;
        st->frees = ml.frees;
        st->dropped = ml.dropped + (ml.stacks ? ml_stacks_dropped(ml.stacks) : 0);
        st->nostack = ml.nostack;
        st->truncated = ml.truncated;
        st->reuses = ml.reuses;
    }
    return rc;
}

int
ml_tracker_stop(ml_tracker_stats *st)
{
    if (st)
        memset(st, 0, sizeof(*st));
    if (!ml.active)
        return 0;
    atomic_store(&ml_enabled, 0);
    ml_sampler_join();
    if (ml.tracer_installed) {
        ml_compat_reftracer_uninstall();
        ml.tracer_installed = 0;
    }
    ml_lock();
    int rc = ml_finish_capture_unlocked(st);
    ml.active = 0;
    ml_stacks_free(ml.stacks, !ml.forked_child);
    ml_types_free(ml.types);
    ml_blocks_free(ml.blocks);
    ml.stacks = NULL;
    ml.types = NULL;
    ml.blocks = NULL;
    ml_unlock();
    return rc;
}

int ml_tracker_active(void) { return ml.active && !ml.forked_child; }

int
ml_tracker_after_fork_child(void)
{
    if (!ml.active || !ml.forked_child)
        return 0;
    if (!ml.follow_fork || !ml.path) {
        ml.active = 0; /* the child does not record; leave its copies alone */
        return 0;
    }
    /* a fresh capture "<path>.<pid>"; the metadata gains the parent's pid */
    char path[4096];
    snprintf(path, sizeof(path), "%s.%d", ml.path, (int)getpid());
    char head[96];
    int hl = snprintf(head, sizeof(head), "{\"forked_from_pid\": %d, \"pid_in_fork\": %d, ", (int)getppid(),
                      (int)getpid());
    size_t mlen = (size_t)hl + ml.meta_len;
    char *meta = malloc(mlen + 1);
    if (!meta)
        return -1;
    memcpy(meta, head, (size_t)hl);
    memcpy(meta + hl, ml.meta + 1, ml.meta_len - 1); /* drop the '{' */
    mlen = (size_t)hl + ml.meta_len - 1;
    ml_lock();
    /* the parent's tables describe the parent's file: start over (their
     * code references are the parent's too, so they are not dropped) */
    ml_stacks_free(ml.stacks, 0);
    ml_types_free(ml.types);
    ml.stacks = NULL;
    ml.types = NULL;
    ml_blocks_clear(ml.blocks);
    ml_reset_counters();
    int rc = ml_open_capture_unlocked(path, 1, meta, mlen);
    free(meta);
    if (rc < 0) {
        ml.active = 0;
        ml_unlock();
        return -1;
    }
    ml.forked_child = 0;
    ml_unlock();
    atomic_store(&ml_enabled, 1);
    ml_sampler_start();
    return 0;
}

void
ml_tracker_counters(ml_counters *out)
{
    out->heap = ml.heap;
    out->allocated_bytes = ml.allocated_bytes;
    out->allocations = ml.allocations;
    out->peak = ml.peak;
}

void
ml_tracker_reset_peak(void)
{
    ml_lock();
    ml.peak = ml.heap < 0 ? 0 : (uint64_t)ml.heap;
    ml_unlock();
}

void
ml_tracker_mark(unsigned kind, const char *label, size_t len)
{
    ml_tstate *t = ml_tstate_get();
    int was = ml_busy;
    ml_busy = 1;
    ml_lock();
    if (ml.active && ml.w && t && ML_ENABLED()) {
        ml_resolve_pending_unlocked(NULL, 1);
        ml_switch_thread_unlocked(t);
        uint64_t now = ml_now_us();
        ml_writer_time(ml.w, now - ml.last_time_us);
        ml.last_time_us = now;
        ml_writer_mark(ml.w, kind, label, len);
    }
    ml_unlock();
    ml_busy = was;
}

void
ml_tracker_flush(void)
{
    ml_lock();
    if (ml.w)
        ml_writer_flush(ml.w);
    ml_unlock();
}

void
ml_tracker_set_stop_code(PyCodeObject *code)
{
    Py_XINCREF(code);
    PyCodeObject *old = ml.stop_code;
    ml.stop_code = code;
    Py_XDECREF(old);
}
