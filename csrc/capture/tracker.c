/* tracker.c: the allocator hooks and the capture engine (see tracker.h).
 *
 * Two halves, so that the program's thread does as little as it can:
 *
 * The hooks (the program's threads, with the GIL): re-entrancy guard and
 * "enabled" flag; walk the Python frames (an unchanged stack costs one
 * position compare per frame, see stacks.h); classify the previous block
 * (its header is written by now); push one fixed-size event (ALLOC, FREE or
 * REUSE: address, size, stack id, type id, thread id) into the event ring
 * and return. The GIL makes them one producer: no lock is taken. Stack,
 * code, type and thread definitions they make go to a definitions buffer
 * that is moved into the file under the lock before the first event that
 * uses them enters the ring.
 *
 * The consumer (the sampler thread, or whoever holds the lock: a hook that
 * finds the ring full, a RAW call without the GIL, stop, marks and counter
 * reads): under the lock, takes events out of the ring in order, keeps the
 * live-block map and the heap counters, and encodes the records. Every
 * sample_ms it also writes the time, RSS and heap, and flushes the file
 * (compressing it) outside the lock. On a machine with a free core this
 * work runs beside the program; on one core it costs what it did inline.
 *
 * RAW calls made without the GIL (thread start and exit) and MEM/OBJ calls
 * without a thread state record synchronously under the lock, after
 * draining the ring, with no stack.
 *
 * Types: an OBJ block (and on 3.13 a MEM block, which may be a dict keys
 * table) allocated by one hook call is held "pending" and classified at
 * the next hook call made with the GIL (by then the interpreter has
 * written the object header); other MEM and RAW blocks are typed at once.
 * On 3.13 the creation tracer also reports each object: that types the
 * pending block exactly and counts objects reused from free lists (REUSE).
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
#include <sys/mman.h>
#include <sys/stat.h> /* cycline: ml_tracker_object_seqs */
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "capture/blocks.h"
#include "capture/numpybuf.h"
#include "capture/rsssample.h"
#include "capture/gcrec.h"
#include "capture/gcexit.h"
#include "capture/stacks.h"
#include "capture/types.h"
#include "capture/windows.h"
#include "capture/writer.h"
#include "compat/compat.h"
#include "compat/freelists.h"
#include "native/unwind.h" /* nstacks: native stacks written before their NATIVE_ALLOC */

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
/* gcrec: blocks of the recorders' calls kept out of the capture: an info
 * dict, its keys table, 3 keys and up to 3 values per phase, and on
 * 3.10/3.11 a phase str per call, for the two phases held at once */
#define ML_HIDDEN_MAX 24
/* rss: pymalloc serves MEM/OBJ requests up to this size (SMALL_REQUEST_THRESHOLD) */
#define ML_SMALL_MAX 512
/* rss: an RSS_SAMPLE record every this many MEMORY samples */
#define ML_RSS_EVERY 10

typedef struct {
    ml_domain domain;
    PyMemAllocatorEx orig; /* the allocator we wrap */
} ml_hook_ctx;

/* Per-thread state (libc malloc; freed by the pthread key destructor). */
typedef struct ml_tstate {
    uint64_t generation;   /* capture its id belongs to; a new id on change */
    ml_thread_id id;
    ml_stack_cache cache;
    ml_rawframe *scratch;
    int scratch_cap;
    int own;               /* ml_stack_of's *own for the cached chain (cache.n > 0) */
} ml_tstate;

static ML_TLS int ml_busy;          /* re-entrancy guard, all domains */
static ML_TLS ml_buffer_kind ml_buffer_now; /* rss: the RAW block being recorded is this owner's */
static ML_TLS ml_tstate *ml_ts;

static atomic_int ml_enabled;       /* recording on */
static atomic_int ml_rss_want;      /* rss: the sampler asks a hook for pymalloc's figures */
static ml_hook_ctx ml_ctx[3];
static int ml_hooks_installed;
static pthread_key_t ml_ts_key;
static pthread_once_t ml_once = PTHREAD_ONCE_INIT;

/* The engine lock: a spinlock, since it is held for short stretches (the
 * consumer drains at most ML_DRAIN_BATCH events per hold) and is
 * uncontended but for the rare times a hook needs it. A waiter yields after
 * a while so a preempted holder can run. */
static atomic_int ml_spin;
static atomic_int ml_spin_waiters; /* the sampler lets these go first */

static inline void
ml_lock(void)
{
    if (!atomic_exchange_explicit(&ml_spin, 1, memory_order_acquire))
        return;
    atomic_fetch_add_explicit(&ml_spin_waiters, 1, memory_order_relaxed);
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
    atomic_fetch_sub_explicit(&ml_spin_waiters, 1, memory_order_relaxed);
}

static inline void
ml_unlock(void)
{
    atomic_store_explicit(&ml_spin, 0, memory_order_release);
}

/* ---- the event ring: hooks (one at a time, under the GIL) push, the lock
 * holder pops ---- */

enum { ML_EV_ALLOC, ML_EV_FREE, ML_EV_REUSE, ML_EV_GC, ML_EV_NSTACK /* nstacks: type = the next ALLOC's native stack */,
       ML_EV_NATIVE_ALLOC /* native: an ALLOC of a native block (counted apart, for rss) */ };

typedef struct {
    uintptr_t ptr;        /* ALLOC, FREE */
    uint64_t size;        /* ALLOC */
    ml_frame_id stack;    /* ALLOC, FREE (the free's context) */
    ml_type_id type;      /* ALLOC, REUSE */
    ml_thread_id thread;  /* ALLOC, FREE */
    uint8_t kind;
    uint8_t domain;       /* ALLOC */
} ml_event;               /* 32 bytes */

#define ML_RING_CAP (1u << 18) /* 8 MiB of events: ~10 ms at the highest event rates */
#define ML_DRAIN_BATCH 4096    /* events per lock hold of the sampler */
#define ML_DRAIN_AHEAD 8       /* live-map entries are prefetched this many events ahead */

static struct {
    ml_event *ev;                          /* mmap'd once, kept */
    size_t cap, mask;                      /* ML_RING_CAP; tests: MEMLENS_RING_EVENTS */
    _Alignas(64) atomic_size_t head;       /* next slot to fill (producer) */
    size_t tail_seen;                      /* the producer's last look at tail */
    _Alignas(64) atomic_size_t tail;       /* next event to take (lock holder) */
} ml_ring;

/* Everything below is protected by ml_lock(), but for what the comments
 * say belongs to the hooks (GIL held). */
static struct {
    int active;             /* between start and stop */
    ml_writer *w;           /* NULL: counters only */
    ml_blocks *blocks;
    uint64_t generation;
    atomic_uint nthreads;
    /* the hooks' (GIL): */
    ml_stacks *stacks;
    uint64_t stack_gen;     /* ml_stacks_generation(stacks), read per event */
    ml_types *types;
    ml_writer *defs;        /* definitions not moved into w yet */
    /* blocks allocated but not classified yet, oldest first (GIL) */
    struct ml_pending {
        uintptr_t ptr;
        size_t size;
        ml_domain domain;
        ml_frame_id stack;
        ml_thread_id thread;
        ml_type_id type; /* 0: read the header when classified (3.13: the creation tracer's) */
        int reuse;       /* 3.13: an object taken from a free list during a collection (a REUSE) */
    } pending[ML_PENDING_MAX];
    int npending;
    uint64_t pending_bits; /* ml_pending_bit of each pending block: most frees skip the search */
    /* gcrec: blocks CPython made for the recorders' calls, kept out of the
     * capture (ml_hide_gc_call; GIL) */
    struct ml_pending hidden[ML_HIDDEN_MAX];
    int nhidden;
    int letting_go;       /* the recorders let go of what they hold: hidden blocks are freed */
    PyInterpreterState *interp; /* the one that started the capture */
    uint64_t truncated;
    uint64_t hook_drains;   /* times a hook found the ring full (lock held) */
    /* options */
    int max_frames, follow_fork, sample_ms, zlevel;
    int force; /* replace an existing file: the capture, and the children's */
    int no_hint; /* MEMLENS_NO_STACK_HINT: always walk the whole stack (tests) */
    PyCodeObject *stop_code;
    PyThreadState *owner_ts; /* the thread that runs the program inside stop_code */
    char *own_dir;           /* the profiler's package folder (its code is left out) */
    size_t own_dir_len;
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
    pid_t sampler_tid;          /* its kernel thread id */
    int sampler_paused;         /* stopped for an os.fork(), to start again after it */
    int sampler_held;           /* stopped for a heap pass (ml_heap_pass_begin) */
    uint64_t snapshots;         /* snapshots written into this capture (ml_tracker_snapshot) */
    int restart_pending;        /* ... once the os.fork() call has returned: */
    PyThreadState *fork_ts;     /* the forking thread, */
    const void *fork_frame, *fork_ip; /* the frame that called os.fork, at the call */
    int rss_fd;
    int tracer_installed, forked_child, prepare_locked;
    int freelists_off;          /* CPython's free lists are off (GIL) */
    ml_type_id buffer_types[ML_BUFFER_COUNT]; /* rss: buffer kinds met (GIL), 0 = not yet */
    unsigned rss_every;         /* rss: an RSS_SAMPLE every this many samples; 0 = none */
} ml __attribute__((aligned(64))) = {
    .sampler_mx = PTHREAD_MUTEX_INITIALIZER, .sampler_cv = PTHREAD_COND_INITIALIZER, .rss_fd = -1};

static void ml_fork_restart_maybe(PyThreadState *ts);

/* The consumer's state (lock held), on cache lines of its own: it changes
 * with every event while the hooks run on another core. */
static struct {
    /* counters (ml_tracker_counters reads them after catching up) */
    int64_t heap;
    int64_t heap_small;     /* rss: of it, MEM/OBJ blocks of <= ML_SMALL_MAX bytes (pymalloc's) */
    int64_t heap_native;    /* native: of it, native blocks (marked in the block map) */
    uint64_t peak, allocated_bytes, allocations, frees;
    uint64_t nostack, reuses, dropped;
    ml_thread_id last_thread;
    uint32_t next_nstack;   /* nstacks: native stack of the ring's next ALLOC */
    ml_frame_id *context;   /* each thread's stack as the file knows it, by thread id */
    size_t context_cap;
    char pad[64];           /* nothing of the hooks' shares its last line */
} mlc __attribute__((aligned(64)));

/* pytop: the counters-only session's windows (capture/windows.h): the top
 * site and type of a test body. Made by the first window, freed at stop
 * (lock held). NULL: none, and always NULL while a file is written. */
static ml_windows *ml_win;

/* ---- the consumer: events into the live-block map, counters and records
 * (lock held) ---- */

static ML_HOT void
ml_count_alloc_unlocked(size_t size)
{
    mlc.heap += (int64_t)size;
    mlc.allocated_bytes += size;
    mlc.allocations++;
    if (mlc.heap > (int64_t)mlc.peak)
        mlc.peak = (uint64_t)mlc.heap;
}

/* Make thread `id` the current thread of the file. */
static ML_HOT void
ml_switch_thread_unlocked(ml_thread_id id)
{
    if (mlc.last_thread != id) {
        ml_writer_thread(ml.w, id);
        mlc.last_thread = id;
    }
}

/* Where the file's stack of thread `id` is kept (NULL: out of memory). */
static ML_HOT ml_frame_id *
ml_context_of(ml_thread_id id)
{
    if (id < mlc.context_cap)
        return &mlc.context[id];
    size_t cap = mlc.context_cap ? mlc.context_cap : 16;
    while (cap <= id)
        cap *= 2;
    ml_frame_id *c = realloc(mlc.context, cap * sizeof(*c));
    if (!c)
        return NULL;
    memset(c + mlc.context_cap, 0, (cap - mlc.context_cap) * sizeof(*c));
    mlc.context = c;
    mlc.context_cap = cap;
    return &c[id];
}

static ML_HOT void
ml_record_alloc_unlocked(uintptr_t ptr, size_t size, ml_domain domain, ml_frame_id stack, ml_type_id type,
                         ml_thread_id thread, uint32_t nstack)
{
    ml_count_alloc_unlocked(size);
    if (domain != ML_DOMAIN_RAW && size <= ML_SMALL_MAX)
        mlc.heap_small += (int64_t)size;
    ml_switch_thread_unlocked(thread);
    if (__builtin_expect(nstack != 0, 0)) { /* nstacks: its definitions, then NATIVE_ALLOC */
        ml_unwind_write_upto(ml.w, ml.generation, nstack);
        ml_writer_native_alloc(ml.w, nstack);
    }
    ml_seq seq = ml_writer_alloc(ml.w, domain, stack, type, size);
    ml_frame_id *ctx = ml_context_of(thread);
    if (ctx)
        *ctx = stack;
    if (ml_blocks_put(ml.blocks, ptr, seq, size) < 0)
        mlc.dropped++; /* out of memory: its free will not be recorded */
}

/* native: the block just recorded at ptr is a native one: marked in the
 * map, so that its free, whichever hook sees it, takes it out of
 * heap_native (memlens.rss()'s native_traced). */
static void
ml_native_mark_unlocked(uintptr_t ptr, size_t size)
{
    if (ml_blocks_mark(ml.blocks, ptr))
        mlc.heap_native += (int64_t)size;
}

/* A free; blocks the map does not hold (allocated before the capture
 * started) leave no record. */
static ML_HOT void
ml_record_free_unlocked(uintptr_t ptr, ml_frame_id stack, ml_thread_id thread, ml_domain domain)
{
    ml_block e;
    if (!ml_blocks_take(ml.blocks, ptr, &e))
        return;
    mlc.heap -= (int64_t)e.size;
    if (__builtin_expect(e.mark, 0)) /* native */
        mlc.heap_native -= (int64_t)e.size;
    if (domain != ML_DOMAIN_RAW && e.size <= ML_SMALL_MAX)
        mlc.heap_small -= (int64_t)e.size;
    mlc.frees++;
    ml_switch_thread_unlocked(thread);
    ml_frame_id *ctx = ml_context_of(thread);
    if (ctx && *ctx != stack) {
        ml_writer_context(ml.w, stack);
        *ctx = stack;
    }
    ml_writer_free(ml.w, e.seq);
}

/* Take up to `limit` events out of the ring; returns how many. */
static size_t
ml_drain_unlocked(size_t limit)
{
    size_t tail = atomic_load_explicit(&ml_ring.tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&ml_ring.head, memory_order_acquire);
    if (head - tail > limit)
        head = tail + limit;
    if (head == tail || !ml.w) {
        atomic_store_explicit(&ml_ring.tail, head, memory_order_release);
        return head - tail;
    }
    for (size_t i = tail; i != head; i++) {
        if (i + ML_DRAIN_AHEAD < head) /* the map entries are the cache misses */
            ml_blocks_prefetch(ml.blocks, ml_ring.ev[(i + ML_DRAIN_AHEAD) & ml_ring.mask].ptr);
        const ml_event *ev = &ml_ring.ev[i & ml_ring.mask];
        switch (ev->kind) {
        case ML_EV_ALLOC:
            ml_record_alloc_unlocked(ev->ptr, ev->size, (ml_domain)ev->domain, ev->stack, ev->type, ev->thread,
                                     mlc.next_nstack);
            mlc.next_nstack = 0;
            break;
        case ML_EV_NATIVE_ALLOC: /* native */
            ml_record_alloc_unlocked(ev->ptr, ev->size, ML_DOMAIN_RAW, ev->stack, ev->type, ev->thread,
                                     mlc.next_nstack);
            mlc.next_nstack = 0;
            ml_native_mark_unlocked(ev->ptr, ev->size);
            break;
        case ML_EV_NSTACK: /* nstacks: pushed just before its ALLOC */
            mlc.next_nstack = ev->type;
            break;
        case ML_EV_FREE:
            ml_record_free_unlocked(ev->ptr, ev->stack, ev->thread, (ml_domain)ev->domain);
            break;
        case ML_EV_GC: /* gcrec: ptr = collected << 8 | generation << 1 | stop */
            ml_switch_thread_unlocked(ev->thread);
            if (ev->ptr & 1)
                ml_writer_gc_stop(ml.w, (unsigned)(ev->ptr >> 1 & 0x7F), ev->size, ev->ptr >> 8, ev->type);
            else
                ml_writer_gc_start(ml.w, (unsigned)(ev->ptr >> 1 & 0x7F), ev->size, ev->stack);
            break;
        default:
            ml_writer_reuse(ml.w, ev->type);
            mlc.reuses++;
        }
    }
    atomic_store_explicit(&ml_ring.tail, head, memory_order_release);
    return head - (size_t)tail;
}

static void
ml_drain_all_unlocked(void)
{
    while (ml_drain_unlocked(SIZE_MAX))
        ;
}

/* ---- the producer: the hooks' side (GIL held) ---- */

/* Move the definitions the hooks made into the file (lock held; only a
 * thread with the GIL may call it: the hooks write ml.defs without the lock). */
static void
ml_publish_defs_unlocked(void)
{
    if (ml.defs && ml.w)
        ml_writer_move(ml.defs, ml.w);
}

/* Bring the file up to date: definitions, then every event in the ring.
 * GIL held; the caller takes the lock. */
static void
ml_sync_unlocked(void)
{
    ml_publish_defs_unlocked();
    ml_drain_all_unlocked();
}

static ML_HOT void
ml_push(const ml_event *ev)
{
    /* what the event uses is defined in the file before it enters the ring */
    if (__builtin_expect(ml_writer_buffered(ml.defs) != 0, 0)) {
        ml_lock();
        ml_publish_defs_unlocked();
        ml_unlock();
    }
    size_t head = atomic_load_explicit(&ml_ring.head, memory_order_relaxed);
    if (__builtin_expect(head - ml_ring.tail_seen >= ml_ring.cap, 0)) {
        ml_ring.tail_seen = atomic_load_explicit(&ml_ring.tail, memory_order_acquire);
        if (head - ml_ring.tail_seen >= ml_ring.cap) { /* the consumer is behind: drain here */
            ml_lock();
            ml_drain_unlocked(SIZE_MAX);
            ml.hook_drains++;
            ml_unlock();
            ml_ring.tail_seen = atomic_load_explicit(&ml_ring.tail, memory_order_acquire);
        }
    }
    ml_ring.ev[head & ml_ring.mask] = *ev;
    atomic_store_explicit(&ml_ring.head, head + 1, memory_order_release);
}

static void
ml_tstate_destroy(void *arg)
{
    ml_tstate *t = arg;
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

/* This thread's id in the file, defined (THREAD_DEF) on first use in `w`:
 * ml.defs from a hook with the GIL, ml.w under the lock otherwise. */
static ML_HOT ml_thread_id
ml_thread_of(ml_tstate *t, ml_writer *w)
{
    if (__builtin_expect(t->generation != ml.generation || !t->id, 0)) {
        t->generation = ml.generation;
        t->id = atomic_fetch_add(&ml.nthreads, 1) + 1;
        char name[32] = "";
        pthread_getname_np(pthread_self(), name, sizeof(name));
        ml_writer_thread_def(w, t->id, (uint64_t)syscall(SYS_gettid), name, strlen(name));
    }
    return t->id;
}

/* Walk this thread's Python frames into t->scratch, with its previous
 * frame chain (`mine`: the chain's ids are this capture's) as the cache,
 * see stacks.h: returns the new inner frames above chain[*anchor], or -1
 * when the stack is too deep for the cache. GIL held. */
static int
ml_walk_frames(ml_tstate *t, PyThreadState *ts, int mine, int *anchor, const void **bottom)
{
    *anchor = -1;
    *bottom = NULL;
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
    const ml_stack_cache *c = &t->cache;
    return ml_compat_walk_cached(ts, ml.stop_code, c->chain, mine ? c->n : 0, mine ? c->bottom : NULL, t->scratch,
                                 t->scratch_cap, anchor, bottom);
}

/* 1 if an event of thread ts whose stack ended as `bottom` (the stop frame,
 * or NULL) is the profiler's own: on the thread that runs the program, an
 * event outside the program's entry frame (before it starts, after it
 * ends: exception report, joining threads, the summary). */
static ML_HOT int
ml_outside_program(PyThreadState *ts, const void *bottom)
{
    return ts == ml.owner_ts && !bottom && ml.stop_code;
}

/* The stack id of this thread's Python stack (GIL held), without the
 * profiler's own frames; *own is 1 when the event is the profiler's own
 * (its code is the innermost frame, or it is outside the program). Stacks
 * too deep for the cache are walked again here, plainly, keeping the
 * innermost max_frames frames. */
static ML_HOT ml_frame_id
ml_stack_of(ml_tstate *t, PyThreadState *ts, int *own)
{
    ml_stack_cache *c = &t->cache;
    int mine = c->generation == ml.stack_gen;
    /* the common case first: the thread's stack has not changed */
    if (mine && c->n && ml_compat_chain_unchanged(ts, ml.stop_code, c->chain, c->n, c->bottom)) {
        *own = t->own; /* as computed when the chain was cached: same frames, same thread */
        return c->chain[c->n - 1].node;
    }
    int anchor;
    const void *bottom;
    int n = ml_walk_frames(t, ts, mine, &anchor, &bottom);
    ml_frame_id id = 0;
    if (n == 0 && mine && anchor >= 0 && anchor == c->n - 1 && c->chain[anchor].node) {
        *own = t->own; /* other frames, the same stack: as cached */
        return c->chain[anchor].node;
    }
    if (n >= 0 && ml_stacks_intern_chain(ml.stacks, c, t->scratch, n, anchor, bottom, ml.max_frames, &id) == 0) {
        *own = t->own = (c->n && c->chain[c->n - 1].own) || ml_outside_program(ts, bottom);
        return id;
    }
    static ml_pyframe frames[4096]; /* under the GIL; max_frames <= 4096 */
    int truncated = 0;
    int k = ml_compat_walk(ts, frames, ml.max_frames, ml.stop_code, &truncated);
    if (truncated)
        ml.truncated++;
    id = ml_stacks_intern(ml.stacks, frames, k, own);
    if (!*own && ts == ml.owner_ts && ml.stop_code && !ml_compat_runs(ts, ml.stop_code))
        *own = 1;
    return id;
}

static uint64_t
ml_now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - ml.t0.tv_sec) * 1000000 + (now.tv_nsec - ml.t0.tv_nsec) / 1000;
    return us < 0 ? 0 : (uint64_t)us;
}

/* One of 64 bits for a block address (16-byte aligned; neighbours of a
 * pool get different bits). A free during a collection (when pending
 * blocks wait: ml_resolve_pending) tests it before searching the queue. */
static inline uint64_t
ml_pending_bit(uintptr_t ptr)
{
    return (uint64_t)1 << (((ptr >> 4) ^ (ptr >> 10)) & 63);
}

static inline void
ml_pending_rebit(void)
{
    uint64_t bits = 0;
    for (int i = 0; i < ml.npending; i++)
        bits |= ml_pending_bit(ml.pending[i].ptr);
    ml.pending_bits = bits;
}

/* Take entry i out of a list of blocks (the pending queue, the hidden
 * set), keeping the order. */
static void
ml_blocklist_drop(struct ml_pending *list, int *n, int i)
{
    if (i != --*n)
        memmove(&list[i], &list[i + 1], (size_t)(*n - i) * sizeof(*list));
}

static void
ml_pending_drop(int i)
{
    ml_blocklist_drop(ml.pending, &ml.npending, i);
    ml_pending_rebit();
}

/* Push pending block i's ALLOC with its type and drop it from the queue.
 * known_type: from the creation tracer (0 = read the header). */
static void
ml_resolve_one(int i, ml_type_id known_type, int freeing)
{
    const struct ml_pending *pb = &ml.pending[i];
    if (pb->reuse) {
        ml_event ev = {.kind = ML_EV_REUSE, .type = pb->type};
        ml_pending_drop(i);
        ml_push(&ev);
        return;
    }
    ml_event ev = {.kind = ML_EV_ALLOC, .ptr = pb->ptr, .size = pb->size, .domain = (uint8_t)pb->domain,
                   .stack = pb->stack, .thread = pb->thread};
    if (!known_type)
        known_type = pb->type;
    ev.type = known_type ? known_type
                         : ml_types_classify(ml.types, (const void *)pb->ptr, pb->size, pb->domain, freeing);
    /* a new capsule may be NumPy's default data handler (numpybuf.h); its
     * fields are set by now (PyCapsule_New allocates nothing after it) */
    if (__builtin_expect(ev.type == ml_types_capsule(ml.types), 0) && ev.type && !freeing)
        ml_numpybuf_capsule((PyObject *)(pb->ptr + ml_compat_preheader(&PyCapsule_Type)));
    ml_pending_drop(i);
    ml_push(&ev);
}

/* Classify every pending block, unless a collection is under way (then
 * their headers may not be written yet). force: at stop and marks. */
/* Queue block e to be typed at the next hook call (the oldest is typed
 * first when the queue is full). */
static ML_HOT void
ml_pending_push(struct ml_pending e)
{
    if (ml.npending == ML_PENDING_MAX)
        ml_resolve_one(0, 0, 0);
    ml.pending[ml.npending++] = e;
    ml.pending_bits |= ml_pending_bit(e.ptr);
}

static ML_HOT void
ml_resolve_pending(PyThreadState *ts, int force)
{
    if (!ml.npending || (!force && ml_compat_gc_collecting(ts)))
        return;
    while (ml.npending)
        ml_resolve_one(0, 0, 0);
}

static int
ml_pending_find(uintptr_t ptr)
{
    if (!(ml.pending_bits & ml_pending_bit(ptr)))
        return -1;
    for (int i = ml.npending - 1; i >= 0; i--)
        if (ml.pending[i].ptr == ptr)
            return i;
    return -1;
}

static inline PyThreadState *
ml_tstate_for(ml_domain domain)
{
    /* MEM and OBJ are called with the GIL held; RAW may not be */
    return domain == ML_DOMAIN_RAW ? ml_compat_tstate_with_gil() : ml_compat_tstate_gil_held();
}

/* 1 if ts (NULL: no thread state) belongs to the interpreter that started
 * the capture: its GIL makes the hooks one producer. 3.12+ subinterpreters
 * have GILs of their own, so their calls are not the producer's. */
static inline int
ml_is_producer(PyThreadState *ts)
{
    return ts && ts->interp == ml.interp;
}

/* ---- gcrec: the recorders' own blocks ----
 *
 * CPython makes an info dict (its keys table, its keys, its values) and a
 * phase str for every call of gc.callbacks, and only because memlens put its
 * recorders there: they are the profiler's, not the program's (a run with a
 * collection every 700 allocations would otherwise show thousands of dicts
 * and strs the program never made, charged to its lines). They are made
 * while the collector runs, so they are still pending when a recorder is
 * called: ml_hide_gc_call moves them from the queue to the hidden set. The
 * recorders hold them and let them go at known moments (gcrec.h); their
 * frees there are not recorded either (ml_hidden_take, tested only then).
 * Whatever is still alive after (someone else holds it) is recorded then,
 * with the stack of its allocation (ml_on_gc_let_go). */

static void
ml_hide_block(uintptr_t block)
{
    int i = ml_pending_find(block);
    if (i < 0 || ml.nhidden == ML_HIDDEN_MAX)
        return; /* made before the collection, or from a free list: recorded as usual */
    ml.hidden[ml.nhidden++] = ml.pending[i];
    ml_pending_drop(i);
}

static void
ml_hide_object(PyObject *o)
{
    ml_hide_block((uintptr_t)o - ml_compat_preheader(Py_TYPE(o)));
}

/* gcrec's hide sink: the blocks of one recorder call, the phase str and
 * the info dict with its keys table, keys and values (allocates nothing). */
static void
ml_hide_gc_call(PyObject *info, PyObject *phase_str)
{
    if (!ml.npending || !ml.active || !ml.w || !ML_ENABLED() || ml.forked_child ||
        !ml_is_producer(ml_compat_tstate_gil_held()))
        return;
    if (phase_str)
        ml_hide_object(phase_str);
    if (!info || !PyDict_CheckExact(info))
        return;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(info, &pos, &k, &v)) {
        ml_hide_object(k);
        ml_hide_object(v);
    }
    ml_hide_block((uintptr_t)((PyDictObject *)info)->ma_keys);
    ml_hide_object(info);
}

/* 1 if `block` is hidden: its free is not recorded; it leaves the set. A
 * hidden REUSE (3.13: the block was the program's before the free list
 * held it) leaves the set too, but its free is recorded. Called only while
 * the recorders let go (a few frees, a set of a dozen). */
static int
ml_hidden_take(uintptr_t block)
{
    for (int i = ml.nhidden - 1; i >= 0; i--)
        if (ml.hidden[i].ptr == block) {
            int reuse = ml.hidden[i].reuse;
            ml_blocklist_drop(ml.hidden, &ml.nhidden, i);
            return !reuse;
        }
    return 0;
}

/* OBJ block p is being freed: a type object's address may hold another
 * type soon, a code object's another code (and its frames' addresses other
 * frames): forget it (GIL held). */
static ML_HOT void
ml_forget_object(void *p)
{
    if (ml_types_may_be_type(ml.types, p))
        ml_types_type_freed(ml.types, p);
    if (ml_stacks_may_be_code(ml.stacks, p) && ml_stacks_code_freed(ml.stacks, p))
        ml.stack_gen = ml_stacks_generation(ml.stacks);
}

/* An allocation or free without a Python thread state (RAW without the GIL,
 * or MEM/OBJ at interpreter shutdown), from another interpreter, or
 * without a file (counters only): recorded under the lock after the ring,
 * with no stack. */
static void
ml_on_alloc_locked(ml_domain domain, void *p, size_t size, ml_tstate *t, PyThreadState *ts)
{
    ml_lock();
    if (!ml.active || !ML_ENABLED())
        goto unlock;
    ml_drain_all_unlocked();
    if (!ml.w || !t) { /* counters only */
        ml_count_alloc_unlocked(size);
        /* pytop: in a window its site and type (0: it waits to be typed) */
        uint64_t seq = ml_win ? ml_windows_alloc_unlocked(ml_win, ml.blocks, ts, (uintptr_t)p, size, domain,
                                                          &mlc.dropped)
                              : ML_WINDOWS_NO_SEQ;
        if (seq && ml_blocks_put(ml.blocks, (uintptr_t)p, seq, size) < 0)
            mlc.dropped++;
        goto unlock;
    }
    mlc.nostack++;
    ml_type_id type = domain == ML_DOMAIN_RAW ? ML_KIND_RAW : domain == ML_DOMAIN_MEM ? ML_KIND_MEM : ML_KIND_OBJ;
    if (ml_buffer_now && ml.buffer_types[ml_buffer_now]) /* a kind met before (no GIL: not defined here) */
        type = ml.buffer_types[ml_buffer_now];
    ml_record_alloc_unlocked((uintptr_t)p, size, domain, 0, type, ml_thread_of(t, ml.w), 0);
unlock:
    ml_unlock();
}

/* `mine`: this thread holds the GIL the hooks' state (pending blocks,
 * types) belongs to. */
static void
ml_on_free_locked(ml_domain domain, void *p, ml_tstate *t, int mine)
{
    if (mine && ml.npending && ML_ENABLED()) {
        int i = ml_pending_find((uintptr_t)p);
        if (i >= 0)
            ml_resolve_one(i, 0, 1);
    }
    if (mine && ml.letting_go && ml_hidden_take((uintptr_t)p)) /* gcrec: a block of its calls */
        return;
    ml_lock();
    if (!ml.active || !ML_ENABLED())
        goto unlock;
    ml_drain_all_unlocked();
    if (!ml.w || !t) {
        ml_block e;
        if (ml_win) /* pytop */
            ml_windows_before_free_unlocked(ml_win, ml.blocks, mine, (uintptr_t)p, domain, &mlc.dropped);
        if (ml_blocks_take(ml.blocks, (uintptr_t)p, &e)) {
            mlc.heap -= (int64_t)e.size;
            if (e.mark) /* native */
                mlc.heap_native -= (int64_t)e.size;
            mlc.frees++;
            if (ml_win)
                ml_windows_freed_unlocked(ml_win, e.seq, e.size);
        }
        goto unlock;
    }
    ml_record_free_unlocked((uintptr_t)p, 0, ml_thread_of(t, ml.w), domain);
unlock:
    ml_unlock();
    if (mine && domain == ML_DOMAIN_OBJ && ml.types && ml.stacks)
        ml_forget_object(p);
}

static void ml_on_free(ml_domain domain, void *p);

/* A block a free list held is freed by ml_freelists_off (the guard is
 * held, so the hooks do not see it): record it here. */
static void
ml_on_parked_free(void *block, int domain)
{
    ml_on_free(domain == ML_FREELISTS_MEM ? ML_DOMAIN_MEM : ML_DOMAIN_OBJ, block);
}

/* rss: the type id of a buffer owner's kind in this capture, defined on
 * first use (GIL held: the hooks' types table); "<raw>" when out of memory. */
static ml_type_id
ml_buffer_type(ml_buffer_kind kind)
{
    static const char *names[ML_BUFFER_COUNT] = {[ML_BUFFER_NUMPY] = "numpy.ndarray (data)"};
    if (!ml.buffer_types[kind]) {
        ml_type_id id = ml_types_add_kind(ml.types, names[kind], strlen(names[kind]));
        if (!id)
            return ML_KIND_RAW;
        ml.buffer_types[kind] = id;
    }
    return ml.buffer_types[kind];
}

/* gcrec's sink: a collection starts or stops on this thread (GIL held).
 * Its record goes through the ring, so it lands in the file in order with
 * the frees the collection makes (blocks allocated meanwhile stay pending,
 * as always during a collection). */
static void
ml_on_gc(int phase, unsigned generation, uint64_t collected, uint64_t uncollectable)
{
    if (!ml.active || !ml.w || !ML_ENABLED() || ml.forked_child)
        return;
    PyThreadState *ts = ml_compat_tstate_gil_held();
    ml_tstate *t = ml_tstate_get();
    if (!ml_is_producer(ts) || !t)
        return;
    int was = ml_busy;
    ml_busy = 1;
    if (phase == ML_GCREC_START && ml.npending > 1) {
        /* Blocks wait to be typed while a collection runs (its frees then
         * search them). At most one waited when it began: every hook call
         * outside a collection types them all, then adds its own (the
         * block whose allocation may have started the collection, its
         * header not written yet: left waiting). The others were made
         * since, by CPython for the callbacks (the info dict, its keys,
         * the call's arguments), and are whole objects by now. */
        while (ml.npending > 1)
            ml_resolve_one(1, 0, 0);
    }
    ml_event ev = {.kind = ML_EV_GC, .size = ml_now_us(), .thread = ml_thread_of(t, ml.defs)};
    if (collected > (UINT64_MAX >> 8))
        collected = UINT64_MAX >> 8;
    ev.ptr = (uintptr_t)(collected << 8 | (uint64_t)(generation & 0x7F) << 1 | (phase == ML_GCREC_STOP));
    ev.type = uncollectable > UINT32_MAX ? UINT32_MAX : (uint32_t)uncollectable;
    if (phase == ML_GCREC_START) {
        int own;
        ml_frame_id stack = ml_stack_of(t, ts, &own);
        ev.stack = own ? 0 : stack;
    }
    ml_push(&ev);
    ml_busy = was;
}

/* gcrec's let-go sink: the recorders let go of everything they hold
 * between begin = 1 and begin = 0. After, the hidden blocks still alive
 * (someone else holds them) go back to the queue, to be recorded as the
 * allocations they are (GIL held). */
static void
ml_on_gc_let_go(int begin)
{
    ml.letting_go = begin;
    if (begin)
        return;
    if (ml.active && ml.w && !ml.forked_child)
        for (int i = 0; i < ml.nhidden; i++)
            ml_pending_push(ml.hidden[i]);
    ml.nhidden = 0;
}

/* gcexit: gcrec's uncollectable sink, at a collection's stop before its
 * GC_STOP: the objects it appended to gc.garbage, as an UNCOLLECTABLE
 * record. The ring is drained first (the collection's frees, in order);
 * blocks still pending classification are not in the table yet and are
 * left out. */
static ml_seq ml_snap_seq_of(void *arg, uintptr_t block);
static const char *ml_snap_type_name(void *arg, PyTypeObject *tp, size_t *len);

static void
ml_on_gc_uncollectable(PyObject *const *objs, size_t n)
{
    if (!ml.active || !ml.w || !ml.blocks || !ML_ENABLED() || ml.forked_child)
        return;
    if (!ml_is_producer(ml_compat_tstate_gil_held()))
        return;
    int was = ml_busy;
    ml_busy = 1;
    ml_lock();
    ml_sync_unlocked();
    ml_atexit_env env = {.seq_of = ml_snap_seq_of, .type_name = ml_snap_type_name, .w = ml.w};
    ml_gcexit_stats st;
    ml_gcexit_uncollectable(&env, objs, n, &st);
    ml_unlock();
    ml_busy = was;
}

/* ml_on_alloc's rare duties (GIL held), in this order: a sampler stopped
 * for an os.fork() starts again; rss: pymalloc's figures the sampler asked
 * for; a full collection turned the free lists back on (freelists.h). */
static __attribute__((noinline, cold)) void
ml_on_alloc_duties(PyThreadState *ts, ml_domain domain)
{
    if (ml.restart_pending)
        ml_fork_restart_maybe(ts);
    if (atomic_load_explicit(&ml_rss_want, memory_order_relaxed)) {
        atomic_store_explicit(&ml_rss_want, 0, memory_order_relaxed);
        ml_tracker_pymalloc_stats(); /* rss: needs the GIL; the sampler uses the latest */
    }
    if (domain != ML_DOMAIN_RAW && ml.freelists_off && ml_freelists_stale(ml.interp) &&
        !ml_compat_gc_collecting(ts))
        ml_freelists_off(ml.interp, ml_on_parked_free);
}

/* Record a new block. */
static __attribute__((flatten)) void
ml_on_alloc(ml_domain domain, void *p, size_t size)
{
    PyThreadState *ts = ml_tstate_for(domain);
    ml_tstate *t = ml_tstate_get();
    if (!ml_is_producer(ts) || !t || !ml.w) {
        ml_on_alloc_locked(domain, p, size, t, ml_is_producer(ts) ? ts : NULL);
        return;
    }
    /* with the GIL: stop cannot run meanwhile, and no other hook either */
    if (!ml.active)
        return;
    /* one test on the common path for the three rare duties (perf) */
    if (__builtin_expect(ml.restart_pending | ml.freelists_off | atomic_load_explicit(&ml_rss_want, memory_order_relaxed),
                         0))
        ml_on_alloc_duties(ts, domain);
    /* RAW calls may come from a wrapper above us (tracemalloc's tables)
     * before the object header is written: only MEM/OBJ calls classify */
    if (domain != ML_DOMAIN_RAW)
        ml_resolve_pending(ts, 0);
    int own;
    ml_frame_id stack = ml_stack_of(t, ts, &own);
    if (own) /* the profiler's own allocation: not the program's */
        return;
    ml_thread_id thread = ml_thread_of(t, ml.defs);
    if (domain == ML_DOMAIN_OBJ || (domain == ML_DOMAIN_MEM && ML_COMPAT_MEM_HOLDS_DICT_KEYS)) {
        /* classified at the next hook call, when the header is written */
        ml_pending_push((struct ml_pending){(uintptr_t)p, size, domain, stack, thread});
        return;
    }
    ml_event ev = {.kind = ML_EV_ALLOC, .ptr = (uintptr_t)p, .size = size, .domain = (uint8_t)domain,
                   .stack = stack, .thread = thread,
                   .type = domain == ML_DOMAIN_RAW ? ML_KIND_RAW : ML_KIND_MEM};
    if (__builtin_expect(ml_buffer_now != 0, 0))
        ev.type = ml_buffer_type(ml_buffer_now);
    ml_push(&ev);
}

/* Record the free of p (before the memory is released). */
static __attribute__((flatten)) void
ml_on_free(ml_domain domain, void *p)
{
    PyThreadState *ts = ml_tstate_for(domain);
    ml_tstate *t = ml_tstate_get();
    if (!ml_is_producer(ts) || !t || !ml.w) {
        /* without a thread state, only a MEM/OBJ call holds the GIL */
        ml_on_free_locked(domain, p, t, ts ? ml_is_producer(ts) : domain != ML_DOMAIN_RAW);
        return;
    }
    if (!ml.active)
        return;
    if (__builtin_expect(ml.restart_pending, 0))
        ml_fork_restart_maybe(ts);
    if (ml.npending) {
        int i = ml_pending_find((uintptr_t)p);
        if (i >= 0)
            ml_resolve_one(i, 0, 1); /* freed before classified: read it now */
        if (domain != ML_DOMAIN_RAW)
            ml_resolve_pending(ts, 0);
    }
    if (__builtin_expect(ml.letting_go, 0) && ml_hidden_take((uintptr_t)p)) /* gcrec: a block of its calls */
        return;
    if (domain == ML_DOMAIN_OBJ) /* type and code objects live there */
        ml_forget_object(p);
    int own;
    ml_frame_id stack = ml_stack_of(t, ts, &own);
    /* a free made by the profiler's own code is still a free (the block may
     * be the program's), charged to no line */
    ml_event ev = {.kind = ML_EV_FREE, .ptr = (uintptr_t)p, .stack = own ? 0 : stack,
                   .thread = ml_thread_of(t, ml.defs), .domain = (uint8_t)domain};
    ml_push(&ev);
}

/* A block about to be reallocated may still be pending: classify it now,
 * while its memory is valid (realloc may free it). GIL held. */
static void
ml_before_realloc(void *old)
{
    if (ml.active && ml.w && ml.npending && ML_ENABLED() && ml_is_producer(ml_compat_tstate_gil_held())) {
        int i = ml_pending_find((uintptr_t)old);
        if (i >= 0)
            ml_resolve_one(i, 0, 0);
    }
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
    if (old && c->domain != ML_DOMAIN_RAW && ml_win && ml_is_producer(ml_compat_tstate_gil_held()))
        ml_windows_before_realloc(ml_win, (uintptr_t)old); /* pytop: a window's pending block */
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

/* 3.13 creation tracer: every object created, free-list reuse included.
 * GIL held. */
static void
ml_on_create(PyObject *op)
{
    if (ml_busy || !ML_ENABLED() || !ml.active || !ml.w)
        return;
    if (!ml_is_producer(ml_compat_tstate_gil_held())) /* a subinterpreter's object */
        return;
    ml_busy = 1;
    PyTypeObject *tp = Py_TYPE(op);
    uintptr_t block = (uintptr_t)op - ml_compat_preheader(tp);
    int i = ml.npending ? ml_pending_find(block) : -1;
    if (i >= 0) {
        ml_type_id type = ml_types_of(ml.types, tp);
        /* a capsule's fields are not set yet: it stays pending, read at the
         * next hook call (numpybuf.h) */
        if (type != ml_types_capsule(ml.types)) {
            if (ml_compat_gc_collecting(ml_compat_tstate_gil_held()))
                ml.pending[i].type = type; /* it waits like the others (gcrec: it may be hidden) */
            else
                ml_resolve_one(i, type, 0);
        }
    } else { /* not allocated just now: taken from a free list */
        ml_tstate *t = ml_tstate_get();
        int own = 0;
        if (t) /* unless the profiler's own code made it */
            (void)ml_stack_of(t, ml_compat_tstate_gil_held(), &own);
        if (!own && ml_compat_gc_collecting(ml_compat_tstate_gil_held())) {
            /* it waits like an allocation would (gcrec: it may be hidden) */
            ml_pending_push((struct ml_pending){.ptr = block, .domain = ML_DOMAIN_OBJ,
                                                .type = ml_types_of(ml.types, tp), .reuse = 1});
        } else if (!own) {
            ml_event ev = {.kind = ML_EV_REUSE, .type = ml_types_of(ml.types, tp)};
            ml_push(&ev);
        }
    }
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
    ml_writer_memory(ml.w, ml_read_rss(), mlc.heap < 0 ? 0 : (uint64_t)mlc.heap);
}

/* rss: the parts of an RSS sample read outside the lock (/proc, the
 * allocators); asks the next hook for pymalloc's figures. */
static int
ml_rss_take(ml_rss_sample *rs, int full)
{
    memset(rs, 0, sizeof(*rs));
    atomic_store_explicit(&ml_rss_want, 1, memory_order_relaxed);
    if (ml_rsssample_take(rs, full) < 0)
        return -1;
    rs->f[ML_RSS_OWN] = ml_tracker_own_bytes();
    return 0;
}

/* rss: the traced part and the record (lock held, after the ring). */
static void
ml_rss_write_unlocked(ml_rss_sample *rs)
{
    rs->f[ML_RSS_TRACED] = mlc.heap < 0 ? 0 : (uint64_t)mlc.heap;
    rs->f[ML_RSS_TRACED_SMALL] = mlc.heap_small < 0 ? 0 : (uint64_t)mlc.heap_small;
    rs->f[ML_RSS_NATIVE] = 0; /* --native: its traced native heap goes here */
    ml_writer_rss(ml.w, rs->f, ML_RSS_NFIELDS);
}

static ml_rss_sample ml_rss_end; /* rss: taken by stop before the lock */
static int ml_rss_end_ok;

/* rss: ARENA records for the live pymalloc arenas at the end, and
 * ARENA_BLOCKS for the live recorded blocks of those at most
 * ML_ARENA_BLOCKS_PCT % used (lock and GIL held, ring drained). */
static int ml_arenas_want; /* set by stop, which holds the GIL */

struct ml_arenas_out {
    uint64_t index;
    ml_seq *seqs;
    size_t cap;
};

static int
ml_seq_cmp(const void *a, const void *b)
{
    ml_seq x = *(const ml_seq *)a, y = *(const ml_seq *)b;
    return x < y ? -1 : x > y;
}

static int
ml_arena_write_one(void *arg, const ml_rss_arena *a, const ml_rss_pool *pools, size_t npools)
{
    struct ml_arenas_out *o = arg;
    uint64_t index = o->index++;
    ml_writer_arena(ml.w, a->base, a->size, a->resident, a->pools, a->pools_used, a->used);
    if (a->used * 100 > a->size * ML_ARENA_BLOCKS_PCT)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < npools; i++)
        for (uintptr_t b = pools[i].first; b + pools[i].block <= pools[i].end; b += pools[i].block) {
            ml_block e;
            if (!ml_blocks_get(ml.blocks, b, &e) || e.seq == 0)
                continue;
            if (n == o->cap) {
                size_t cap = o->cap ? o->cap * 2 : 4096;
                ml_seq *p = realloc(o->seqs, cap * sizeof(*p));
                if (!p)
                    return 1;
                o->seqs = p;
                o->cap = cap;
            }
            o->seqs[n++] = e.seq;
        }
    if (n)
        qsort(o->seqs, n, sizeof(*o->seqs), ml_seq_cmp);
    for (size_t k = 0; k < n; k += ML_ARENA_BLOCKS_MAX)
        ml_writer_arena_blocks(ml.w, index, o->seqs + k, n - k < ML_ARENA_BLOCKS_MAX ? n - k : ML_ARENA_BLOCKS_MAX);
    return 0;
}

static void
ml_arenas_write_unlocked(void)
{
    struct ml_arenas_out o = {0, NULL, 0};
    ml_rsssample_arenas(ml_arena_write_one, &o);
    free(o.seqs);
}

/* The consumer's loop: drain the ring as it fills (waking every
 * ML_BUSY_WAKE_US while events come, else at the next sample), and every
 * sample_ms write the time, RSS and heap and flush the file, compressing it
 * outside the lock while the program goes on. */
#define ML_BUSY_WAKE_US 500

static void *
ml_sampler_main(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the program */
    pthread_mutex_lock(&ml.sampler_mx);
    ml.sampler_ready = 1;
    ml.sampler_tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&ml.sampler_cv);
    uint64_t period = (uint64_t)ml.sample_ms * 1000, next_sample = ml_now_us() + period;
    unsigned rss_tick = 0;
    int busy = 0;
    while (!ml.sampler_stop) {
        uint64_t now = ml_now_us();
        uint64_t wait_us = next_sample > now ? next_sample - now : 0;
        if (busy && wait_us > ML_BUSY_WAKE_US)
            wait_us = ML_BUSY_WAKE_US;
        if (wait_us) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)(wait_us * 1000);
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&ml.sampler_cv, &ml.sampler_mx, &until);
        }
        if (ml.sampler_stop)
            break;
        pthread_mutex_unlock(&ml.sampler_mx);
        /* a batch per lock hold, so that a hook needing the lock waits little */
        size_t n = 0, k;
        do {
            while (atomic_load_explicit(&ml_spin_waiters, memory_order_relaxed))
                sched_yield();
            ml_lock();
            k = ml_drain_unlocked(ML_DRAIN_BATCH);
            ml_unlock();
            n += k;
        } while (k == ML_DRAIN_BATCH && n < ml_ring.cap);
        busy = n > 0;
        if (ml_now_us() >= next_sample) {
            ml_rss_sample rs;
            int rss_now = ml.rss_every && ++rss_tick % ml.rss_every == (ml.rss_every > 1) && ml_rss_take(&rs, 0) == 0;
            ml_lock();
            ml_writer *w = ml.w;
            if (w) {
                ml_drain_all_unlocked();
                ml_sample_unlocked();
                if (rss_now)
                    ml_rss_write_unlocked(&rs);
                ml_writer_flush_begin(w); /* the program goes on into the other buffer */
            }
            ml_unlock();
            if (w)
                ml_writer_flush_end(w);
            next_sample = ml_now_us() + period;
        }
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

/* Stop the sampler thread and wait until the kernel no longer counts it:
 * pthread_join returns when the thread has released its stack, a little
 * before the kernel reaps it, and os.fork() reads the process' thread
 * count from /proc/self/stat. Bounded: a thread always ends. */
static void
ml_sampler_join_reaped(void)
{
    pid_t tid = ml.sampler_tid;
    ml_sampler_join();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
    for (int i = 0; i < 1000000 && access(path, F_OK) == 0; i++)
        sched_yield();
}

void
ml_tracker_before_fork(void)
{
    if (!ml.active || ml.forked_child || !ml.sampler_running)
        return;
    ml_sampler_join_reaped();
    ml.sampler_paused = 1;
}

/* The after_in_parent hooks run before 3.13 counts the threads (3.12
 * counts before them): the sampler starts again at the first event after
 * the os.fork() call has returned (or on another thread, whose existence
 * python's own count sees anyway). Nothing is lost meanwhile: the events
 * wait in the ring, which a hook drains when it is full. */
void
ml_tracker_after_fork_parent(void)
{
    if (!ml.sampler_paused)
        return;
    ml.fork_ts = PyThreadState_Get();
    ml_compat_where(ml.fork_ts, &ml.fork_frame, &ml.fork_ip);
    ml.restart_pending = 1;
}

/* From the hooks (GIL held, ml_busy set): start the sampler again if the
 * os.fork() call it was stopped for is over. */
static void
ml_fork_restart_maybe(PyThreadState *ts)
{
    if (ts == ml.fork_ts && ml_compat_still_at(ts, ml.fork_frame, ml.fork_ip))
        return;
    ml.restart_pending = 0;
    ml.sampler_paused = 0;
    if (ml.active && ml.w && !ml.sampler_running)
        ml_sampler_start();
}

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
    ml.sampler_paused = ml.restart_pending = 0;
    atomic_store(&ml_spin_waiters, 0);
    /* the parent's events stay the parent's */
    atomic_store(&ml_ring.head, 0);
    atomic_store(&ml_ring.tail, 0);
    ml_ring.tail_seen = 0;
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
    ml.defs = ml_writer_open_mem();
    ml.stacks = ml.defs ? ml_stacks_new(ml.defs) : NULL;
    ml.types = ml.defs ? ml_types_new(ml.defs) : NULL;
    if (!ml.stacks || !ml.types) {
        ml_stacks_free(ml.stacks);
        ml_types_free(ml.types);
        if (ml.defs)
            ml_writer_close(ml.defs);
        ml_writer_close(ml.w);
        ml.w = ml.defs = NULL;
        ml.stacks = NULL;
        ml.types = NULL;
        errno = ENOMEM;
        return -1;
    }
    ml.stack_gen = ml_stacks_generation(ml.stacks);
    memset(ml.buffer_types, 0, sizeof(ml.buffer_types));
    if (ml.own_dir)
        (void)ml_stacks_set_own_dir(ml.stacks, ml.own_dir, ml.own_dir_len); /* no memory: nothing left out */
    ml_writer_move(ml.defs, ml.w); /* the buffer kinds, before anything uses them */
    mlc.last_thread = 0;
    atomic_store(&ml.nthreads, 0);
    if (mlc.context)
        memset(mlc.context, 0, mlc.context_cap * sizeof(*mlc.context));
    clock_gettime(CLOCK_MONOTONIC, &ml.t0);
    ml.last_time_us = 0;
    return 0;
}

static void
ml_reset_counters(void)
{
    mlc.heap = mlc.heap_small = mlc.heap_native = 0;
    mlc.peak = mlc.allocated_bytes = mlc.allocations = mlc.frees = 0;
    mlc.nostack = ml.truncated = mlc.reuses = mlc.dropped = ml.hook_drains = 0;
    ml.npending = 0;
    ml.pending_bits = 0;
    ml.nhidden = 0;
    ml.letting_go = 0;
    ml.snapshots = 0;
}

int
ml_tracker_start(const ml_tracker_options *opt)
{
    pthread_once(&ml_once, ml_init_once);
    if (ml.active) {
        errno = EBUSY;
        return -1;
    }
    if (!ml_ring.ev) {
        /* a tiny ring keeps the hooks draining it (tests of that path) */
        const char *env = getenv("MEMLENS_RING_EVENTS");
        size_t cap = env && atoi(env) >= 16 && atoi(env) <= (int)ML_RING_CAP ? (size_t)atoi(env) : ML_RING_CAP;
        while (cap & (cap - 1))
            cap &= cap - 1; /* a power of two */
        void *ev = mmap(NULL, cap * sizeof(ml_event), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (ev == MAP_FAILED) {
            errno = ENOMEM;
            return -1;
        }
        ml_ring.ev = ev;
        ml_ring.cap = cap;
        ml_ring.mask = cap - 1;
    }
    ml_blocks *blocks = ml_blocks_new();
    if (!blocks) {
        errno = ENOMEM;
        return -1;
    }
    ml_lock();
    ml_reset_counters();
    ml_windows_free(ml_win); /* pytop: a forked child's copy of its parent's */
    ml_win = NULL;
    ml.max_frames = opt->max_frames < 1 ? 1 : opt->max_frames > 4096 ? 4096 : opt->max_frames;
    ml.follow_fork = opt->follow_fork;
    ml.force = opt->force;
    ml.zlevel = opt->compress_level;
    ml.sample_ms = opt->sample_ms < 1 ? 10 : opt->sample_ms;
    ml.forked_child = 0;
    ml.no_hint = getenv("MEMLENS_NO_STACK_HINT") != NULL;
    const char *every = getenv("MEMLENS_RSS_EVERY"); /* benchmarks and tests; 0 = no RSS samples */
    ml.rss_every = every && atoi(every) >= 0 ? (unsigned)atoi(every) : ML_RSS_EVERY;
    ml.interp = PyThreadState_Get()->interp;
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
    /* collections as GC_START/GC_STOP (gcrec.h); none if gc.callbacks is gone.
     * gcrec keeps the callbacks' info dicts off the free lists, so this is
     * exact with the lists on too.
     * MEMLENS_NO_GC_RECORD: not at all (bench/bench_gc.py's A/B) */
    if (ml.w && !getenv("MEMLENS_NO_GC_RECORD") && ml_gcrec_attach(ml_on_gc, ml_hide_gc_call, ml_on_gc_let_go) == 0)
        ml_gcrec_attach_uncollectable(ml_on_gc_uncollectable); /* gcexit: UNCOLLECTABLE */
    atomic_store(&ml_enabled, 1);
    if (ml.w && opt->exact) { /* every object made and freed through the hooks (freelists.h) */
        int was = ml_busy;
        ml_busy = 1;
        ml_freelists_off(ml.interp, ml_on_parked_free);
        ml_busy = was;
        ml.freelists_off = 1;
    }
    if (ml.w) {
        if (!getenv("MEMLENS_NO_NUMPY_HOOK")) /* benchmarks: the A/B of the hook */
            ml_numpybuf_start(); /* rss: NumPy array data as its own kind */
        ml_tracker_pymalloc_stats(); /* rss: figures for the first RSS sample */
        ml_sampler_start();
    }
    return 0;
}

static int
ml_finish_capture_unlocked(ml_tracker_stats *st)
{
    int rc = 0;
    if (ml.w) {
        ml_sync_unlocked();
        ml_sample_unlocked();
        if (ml_rss_end_ok)
            ml_rss_write_unlocked(&ml_rss_end);
        if (ml_arenas_want && ml.blocks)
            ml_arenas_write_unlocked();
        int lost = ml.tracer_installed && !ml_compat_reftracer_is_ours();
        if (lost) {
            static const char msg[] =
                "another tool (tracemalloc?) replaced memlens' object-creation tracer; objects reused "
                "from free lists after that point are not counted in `types`";
            ml_writer_note(ml.w, ML_NOTE_TRACER_LOST, msg, sizeof(msg) - 1);
        }
        uint64_t dropped = mlc.dropped + ml_stacks_dropped(ml.stacks);
        uint64_t fields[ML_TRAILER_COUNT] = {
            [ML_TRAILER_ALLOCS] = mlc.allocations, [ML_TRAILER_FREES] = mlc.frees,
            [ML_TRAILER_DROPPED] = dropped, [ML_TRAILER_NOSTACK] = mlc.nostack,
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
        ml_writer_close(ml.defs);
        ml.w = ml.defs = NULL;
    }
    if (st) {
        st->allocs = mlc.allocations;
        st->frees = mlc.frees;
        st->dropped = mlc.dropped + (ml.stacks ? ml_stacks_dropped(ml.stacks) : 0);
        st->nostack = mlc.nostack;
        st->truncated = ml.truncated;
        st->reuses = mlc.reuses;
        st->hook_drains = ml.hook_drains;
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
    ml_gcrec_release(); /* the last info dict's frees, while they are recorded */
    atomic_store(&ml_enabled, 0);
    ml_gcrec_attach_uncollectable(NULL); /* gcexit */
    ml_gcrec_detach();
    if (ml.freelists_off) {
        ml_freelists_on(ml.interp);
        ml.freelists_off = 0;
    }
    ml_sampler_join();
    ml.sampler_paused = ml.restart_pending = 0;
    if (ml.tracer_installed) {
        ml_compat_reftracer_uninstall();
        ml.tracer_installed = 0;
    }
    int was = ml_busy;
    ml_busy = 1;
    if (ml.w && !ml.forked_child)
        ml_resolve_pending(NULL, 1);
    if (ml.w && !ml.forked_child && ml.rss_every) { /* rss: a breakdown at the end */
        ml_tracker_pymalloc_stats();
        ml_rss_end_ok = ml_rss_take(&ml_rss_end, 1) == 0;
        ml_arenas_want = 1;
    }
    ml_lock();
    int rc = ml_finish_capture_unlocked(st);
    ml_rss_end_ok = ml_arenas_want = 0;
    ml.active = 0;
    ml_stacks_free(ml.stacks);
    ml_types_free(ml.types);
    ml_blocks_free(ml.blocks);
    ml.stacks = NULL;
    ml.types = NULL;
    ml.blocks = NULL;
    ml_windows_free(ml_win); /* pytop */
    ml_win = NULL;
    ml_unlock();
    ml_busy = was;
    return rc;
}

int ml_tracker_active(void) { return ml.active && !ml.forked_child; }

const char *
ml_tracker_type_name(PyTypeObject *tp, size_t *len)
{
    static ml_typenames *census; /* names given outside the capture (GIL) */
    const char *name = ml.active && ml.types ? ml_types_known_name(ml.types, tp) : NULL;
    if (name) {
        *len = strlen(name);
        return name;
    }
    if (!census && !(census = ml_typenames_new()))
        return NULL;
    return ml_typenames_name(census, tp, len);
}

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
    /* the parent's tables describe the parent's file: start over */
    ml_stacks_free(ml.stacks);
    ml_types_free(ml.types);
    if (ml.defs)
        ml_writer_close(ml.defs);
    ml.stacks = NULL;
    ml.types = NULL;
    ml.defs = NULL;
    ml_blocks_clear(ml.blocks);
    ml_reset_counters();
    int rc = ml_open_capture_unlocked(path, ml.force, meta, mlen);
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

/* With a capture running, the ring holds events the counters have not
 * seen yet, and the pending blocks are not in the ring: bring both in
 * (GIL held: every caller is Python code or its monitoring callbacks). */
static void
ml_catch_up(int force)
{
    if (!ml.active || !ml.w || !ML_ENABLED() || ml.forked_child)
        return;
    int was = ml_busy;
    ml_busy = 1;
    ml_resolve_pending(force ? NULL : ml_compat_tstate_gil_held(), force);
    ml_lock();
    ml_sync_unlocked();
    ml_unlock();
    ml_busy = was;
}

void
ml_tracker_counters(ml_counters *out)
{
    ml_catch_up(0);
    out->heap = mlc.heap;
    out->allocated_bytes = mlc.allocated_bytes;
    out->allocations = mlc.allocations;
    out->peak = mlc.peak;
    out->heap_small = mlc.heap_small;
    out->heap_native = mlc.heap_native;
}

void
ml_tracker_reset_peak(void)
{
    ml_catch_up(0);
    ml_lock();
    mlc.peak = mlc.heap < 0 ? 0 : (uint64_t)mlc.heap;
    ml_unlock();
}

/* ---- pytop: windows of the counters-only session (capture/windows.h) ---- */

int
ml_tracker_window_begin(void)
{
    if (!ml.active || ml.w || ml.forked_child || !ML_ENABLED()) {
        errno = EBUSY;
        return -1;
    }
    int was = ml_busy;
    ml_busy = 1;
    int rc = 0;
    ml_lock();
    if (!ml_win)
        ml_win = ml_windows_new(ml.own_dir, ml.own_dir_len);
    if (!ml_win || ml_windows_begin(ml_win, ml.blocks, &mlc.dropped) < 0) {
        errno = ENOMEM;
        rc = -1;
    }
    ml_unlock();
    ml_busy = was;
    return rc;
}

int
ml_tracker_window_end(ml_windows_top *out)
{
    memset(out, 0, sizeof(*out));
    if (!ml_win || !ml.active || ml.forked_child)
        return 0;
    int was = ml_busy;
    ml_busy = 1;
    ml_lock();
    int rc = ml_windows_end(ml_win, ml.blocks, out, &mlc.dropped);
    ml_unlock();
    ml_busy = was;
    if (rc < 0)
        errno = ENOMEM;
    return rc;
}

void
ml_tracker_mark(unsigned kind, const char *label, size_t len)
{
    ml_tstate *t = ml_tstate_get();
    if (!t || !ml.active || !ml.w || !ML_ENABLED() || ml.forked_child)
        return;
    int was = ml_busy;
    ml_busy = 1;
    ml_thread_id id = ml_thread_of(t, ml.defs);
    ml_catch_up(1); /* with the GIL held, nothing enters the ring until we write */
    ml_lock();
    if (ml.w) {
        ml_switch_thread_unlocked(id);
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
    ml_catch_up(0);
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
    ml.owner_ts = code ? PyThreadState_Get() : NULL;
    /* the cached chains (and their own flags) were made with the old stop */
    if (ml.stacks)
        ml.stack_gen = ml_stacks_renew(ml.stacks);
    Py_XDECREF(old);
}

int
ml_tracker_set_own_dir(const char *dir, size_t len)
{
    char *d = malloc(len + 1);
    if (!d)
        return -1;
    memcpy(d, dir, len);
    d[len] = 0;
    free(ml.own_dir);
    ml.own_dir = d;
    ml.own_dir_len = len;
    return 0;
}

/* ---- native allocations (--native; see tracker.h and native/hooks.h) ---- */

/* The stack this thread had when it released the GIL (its frames stay put
 * while it runs without the GIL), for the capture of `generation`. */
static ML_TLS struct {
    uint64_t generation;
    ml_frame_id stack;
    int own, set;
} ml_nogil;

/* Publish a definition made by a hook now (GIL held, lock not held), so
 * that a thread without the GIL may write records that use it. */
static void
ml_publish_defs_now(void)
{
    if (ml_writer_buffered(ml.defs)) {
        ml_lock();
        ml_publish_defs_unlocked();
        ml_unlock();
    }
}

/* k's type id in this capture, defined now if it is not (GIL held, the
 * producer: ml.types is the hooks'). ML_KIND_RAW when out of memory. */
static ml_type_id
ml_native_kind_id(ml_native_kind *k)
{
    if (atomic_load_explicit(&k->generation, memory_order_acquire) == ml.generation)
        return k->id;
    char name[320];
    int n = snprintf(name, sizeof(name), "<native: %s>", k->name);
    if (n < 0)
        return ML_KIND_RAW;
    size_t len = (size_t)n < sizeof(name) ? (size_t)n : sizeof(name) - 1;
    ml_type_id id = ml.types ? ml_types_add_kind(ml.types, name, len) : 0;
    if (!id)
        return ML_KIND_RAW;
    ml_publish_defs_now(); /* before any thread can see the id */
    k->id = id;
    atomic_store_explicit(&k->generation, ml.generation, memory_order_release);
    return id;
}

/* Without the GIL (or from another interpreter): recorded at once under
 * the lock, after the ring, with the stack kept at the GIL's release. */
static void
ml_native_alloc_locked(void *p, size_t size, ml_native_kind *k, ml_tstate *t, uint32_t nstack)
{
    ml_lock();
    if (!ml.active || !ML_ENABLED())
        goto unlock;
    ml_drain_all_unlocked();
    if (!ml.w || !t) { /* counters only */
        ml_count_alloc_unlocked(size);
        if (ml_blocks_put(ml.blocks, (uintptr_t)p, 1, size) < 0)
            mlc.dropped++;
        else
            ml_native_mark_unlocked((uintptr_t)p, size);
        goto unlock;
    }
    ml_frame_id stack = 0;
    if (ml_nogil.set && ml_nogil.generation == ml.generation) {
        if (ml_nogil.own)
            goto unlock; /* the profiler's own */
        stack = ml_nogil.stack;
    }
    if (!stack)
        mlc.nostack++;
    ml_type_id type = atomic_load_explicit(&k->generation, memory_order_acquire) == ml.generation ? k->id
                                                                                                    : ML_KIND_RAW;
    ml_record_alloc_unlocked((uintptr_t)p, size, ML_DOMAIN_RAW, stack, type, ml_thread_of(t, ml.w), nstack);
    if (type != ML_KIND_RAW) /* typed <native: ...>, as a reader counts it */
        ml_native_mark_unlocked((uintptr_t)p, size);
unlock:
    ml_unlock();
}

void
ml_tracker_native_alloc(void *p, size_t size, ml_native_kind *k, uint32_t nstack)
{
    if (ml_busy || !ML_ENABLED())
        return;
    ml_busy = 1;
    PyThreadState *ts = ml_compat_tstate_with_gil();
    ml_tstate *t = ml_tstate_get();
    if (!ml_is_producer(ts) || !t || !ml.w) {
        ml_native_alloc_locked(p, size, k, t, nstack);
    } else if (ml.active) { /* with the GIL: as ml_on_alloc does for RAW */
        if (__builtin_expect(ml.restart_pending, 0))
            ml_fork_restart_maybe(ts);
        int own;
        ml_frame_id stack = ml_stack_of(t, ts, &own);
        if (!own) {
            ml_event ev = {.kind = ML_EV_NATIVE_ALLOC, .ptr = (uintptr_t)p, .size = size, .domain = ML_DOMAIN_RAW,
                           .stack = stack, .thread = ml_thread_of(t, ml.defs), .type = ml_native_kind_id(k)};
            if (ev.type == ML_KIND_RAW) /* no kind (out of memory): a plain RAW block */
                ev.kind = ML_EV_ALLOC;
            if (nstack) { /* nstacks: the consumer gives it to the ALLOC that follows */
                ml_event ns = {.kind = ML_EV_NSTACK, .type = nstack};
                ml_push(&ns);
            }
            ml_push(&ev);
        }
    }
    ml_busy = 0;
}

void
ml_tracker_native_free(void *p)
{
    if (ml_busy || !ML_ENABLED())
        return;
    ml_busy = 1;
    ml_on_free(ML_DOMAIN_RAW, p);
    ml_busy = 0;
}

int
ml_tracker_native_define(ml_native_kind *k)
{
    if (ml_busy || !ML_ENABLED() || !ml.active || !ml.w)
        return 0;
    if (atomic_load_explicit(&k->generation, memory_order_relaxed) == ml.generation)
        return 1;
    if (!ml_is_producer(ml_compat_tstate_with_gil()))
        return 0;
    ml_busy = 1;
    int ok = ml_native_kind_id(k) != ML_KIND_RAW;
    ml_busy = 0;
    return ok;
}

void
ml_tracker_native_gil_release(void)
{
    ml_nogil.set = 0;
    if (ml_busy || !ML_ENABLED() || !ml.active || !ml.w)
        return;
    PyThreadState *ts = ml_compat_tstate_with_gil();
    ml_tstate *t = ml_is_producer(ts) ? ml_tstate_get() : NULL;
    if (!t)
        return;
    ml_busy = 1;
    int own;
    ml_frame_id stack = ml_stack_of(t, ts, &own);
    ml_publish_defs_now(); /* the stack's FRAME_DEFs */
    ml_nogil.generation = ml.generation;
    ml_nogil.stack = stack;
    ml_nogil.own = own;
    ml_nogil.set = 1;
    ml_busy = 0;
}

void
ml_tracker_native_gil_acquired(void)
{
    ml_nogil.set = 0;
}

/* ---- rss: buffer owners and the profiler's own memory ---- */

void
ml_tracker_buffer_alloc(void *p, size_t size, ml_buffer_kind kind)
{
    if (!p || ml_busy || !ML_ENABLED())
        return;
    ml_busy = 1;
    ml_buffer_now = kind;
    ml_on_alloc(ML_DOMAIN_RAW, p, size);
    ml_buffer_now = 0;
    ml_busy = 0;
}

void
ml_tracker_buffer_free(void *p)
{
    if (!p || ml_busy || !ML_ENABLED())
        return;
    ml_busy = 1;
    ml_on_free(ML_DOMAIN_RAW, p);
    ml_busy = 0;
}

int
ml_tracker_quiet_begin(void)
{
    int was = ml_busy;
    ml_busy = 1;
    return was;
}

void
ml_tracker_quiet_end(int was)
{
    ml_busy = was;
}

void
ml_tracker_run_own(void (*fn)(void *), void *arg)
{
    int was = ml_busy;
    ml_busy = 1;
    fn(arg);
    ml_busy = was;
}

uint64_t
ml_tracker_own_bytes(void)
{
    uint64_t bytes = 0;
    if (ml_ring.ev) {
        unsigned char vec[(ML_RING_CAP * sizeof(ml_event) + 4095) / 4096];
        size_t len = ml_ring.cap * sizeof(ml_event);
        if (mincore(ml_ring.ev, len, vec) == 0)
            for (size_t i = 0; i < (len + 4095) / 4096; i++)
                bytes += (uint64_t)(vec[i] & 1) * 4096;
    }
    ml_lock();
    if (ml.blocks)
        bytes += ml_blocks_resident(ml.blocks);
    ml_unlock();
    return bytes;
}

void
ml_tracker_pymalloc_stats(void)
{
    /* CPython prints pymalloc's figures only when the OBJ allocator is
     * pymalloc itself: put it back for the call (GIL held, so no OBJ call
     * runs meanwhile; the hooks' state is untouched) */
    PyMemAllocatorEx cur;
    int swap = ml_hooks_installed;
    if (swap) {
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cur);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &ml_ctx[ML_DOMAIN_OBJ].orig);
    }
    int was = ml_busy;
    ml_busy = 1;
    ml_rsssample_pymalloc();
    ml_busy = was;
    if (swap)
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &cur);
}

/* ---- heap at exit (capture/atexit.h) ---- */

static ml_seq
ml_snap_seq_of(void *arg, uintptr_t block)
{
    ml_block b;
    return ml.blocks && ml_blocks_get(ml.blocks, block, &b) ? b.seq : 0;
}

static const char *
ml_snap_type_name(void *arg, PyTypeObject *tp, size_t *len)
{
    return ml_types_name(ml.types, tp, len);
}

/* A new buffer kind's TYPE_DEF goes to the definitions buffer: move it
 * into the file before the record that uses it. */
static ml_type_id
ml_snap_label(void *arg, const char *name, size_t len)
{
    ml_type_id id = ml_types_label(ml.types, name, len);
    ml_publish_defs_unlocked();
    return id;
}

/* The passes over the live heap (garbage at exit, snapshots): every block
 * allocated so far in the table, the records in order, the lock held and
 * the clock written. -1 (errno ENOENT) when no capture can take them; else
 * 0, and *was to give back to ml_busy after ml_unlock(). */
static int
ml_heap_pass_begin(int *was)
{
    if (!ml.active || !ml.w || !ml.types || !ml.blocks || !ML_ENABLED() || ml.forked_child) {
        errno = ENOENT;
        return -1;
    }
    ml_catch_up(1);
    *was = ml_busy;
    ml_busy = 1;
    /* the pass holds the lock for up to a second per million objects: the
     * sampler would spin on it all that time (as much CPU again as the
     * pass). It stops meanwhile; the writer flushes when its buffer fills. */
    ml.sampler_held = ml.sampler_running;
    ml_sampler_join();
    ml_lock();
    ml_sync_unlocked();
    uint64_t now = ml_now_us();
    ml_writer_time(ml.w, now - ml.last_time_us);
    ml.last_time_us = now;
    /* the pass's records are compressed beside it, on the core the sampler
     * leaves free (inline if no thread can start) */
    ml_writer_async(ml.w, 1);
    return 0;
}

static void
ml_heap_pass_end(int was)
{
    ml_writer_async(ml.w, 0);
    ml_unlock();
    if (ml.sampler_held)
        ml_sampler_start();
    ml.sampler_held = 0;
    ml_busy = was;
}

/* gcexit: GARBAGE_AT_EXIT (capture/gcexit.h) */
int
ml_tracker_garbage_at_exit(ml_gcexit_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    int was;
    if (ml_heap_pass_begin(&was) < 0)
        return -1;
    ml_atexit_env env = {.seq_of = ml_snap_seq_of, .type_name = ml_snap_type_name, .w = ml.w};
    int rc = ml_gcexit_garbage(&env, stats);
    ml_heap_pass_end(was);
    if (rc < 0)
        errno = rc == -2 ? EBUSY : ENOMEM;
    return rc < 0 ? -1 : 0;
}

int
ml_tracker_snapshot(unsigned kind, ml_atexit_stats *stats)
{
    if (stats)
        memset(stats, 0, sizeof(*stats));
    int was;
    if (ml_heap_pass_begin(&was) < 0)
        return -1;
    ml_atexit_env env = {.arg = NULL, .seq_of = ml_snap_seq_of, .type_name = ml_snap_type_name,
                         .label = ml_snap_label, .w = ml.w};
    int rc = 0;
    /* the owners-only pass at exit would make reports forget the holders
     * of a snapshot the program took (snapshot_now(), --heap-on): none then */
    if (kind != ML_SNAP_OWNERS || !ml.snapshots) {
        rc = ml_atexit_snapshot(&env, kind, stats);
        ml.snapshots++;
    }
    ml_heap_pass_end(was);
    if (rc < 0)
        errno = ENOMEM;
    return rc;
}

/* ---- cycline: the seqs of live objects (memlens.cycles() lines) ---- */

int
ml_tracker_object_seqs(PyObject *const *objs, size_t n, ml_seq *seqs, char *path, size_t pathcap)
{
    int was;
    if (ml_heap_pass_begin(&was) < 0)
        return -1;
    int fd = ml_writer_fd(ml.w);
    struct stat st;
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        errno = ESPIPE; /* reading a pipe back would take the reader's bytes */
        rc = -1;
    } else {
        for (size_t i = 0; i < n; i++) {
            ml_block b;
            uintptr_t block = (uintptr_t)objs[i] - ml_compat_preheader(Py_TYPE(objs[i]));
            seqs[i] = ml_blocks_get(ml.blocks, block, &b) ? b.seq : 0;
        }
        ml_writer_flush(ml.w);
        snprintf(path, pathcap, "/proc/self/fd/%d", fd);
    }
    ml_unlock();
    ml_busy = was;
    return rc;
}
