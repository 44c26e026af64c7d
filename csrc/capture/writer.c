/* writer.c: the capture-file encoder. Mirror image of analysis/reader.c. */
#include "capture/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/zdeflate.h"

#define ML_WRITER_BUFSIZE (1u << 20)
#define ML_RECORD_MAX 64 /* the largest fixed-size record, with slack */

struct ml_writer {
    int fd;
    uint8_t *buf;          /* records go here */
    size_t len, cap;
    uint8_t *spare;        /* the other buffer; during a periodic flush, the one being written */
    size_t spare_len, spare_cap;
    pthread_mutex_t io;    /* held while a buffer is written: keeps writes in order */
    uint64_t written, lost;
    int failed;            /* a write failed: write nothing more, so the file
                            * stays a clean prefix (read as truncated) */
    ml_zdeflate *z;        /* compressing: records go through deflate */
    /* ml_writer_async: a thread of the writer's own writes full buffers */
    pthread_t athread;
    pthread_mutex_t amu;
    pthread_cond_t acv;
    int async;             /* the thread runs */
    int apending;          /* the spare buffer waits for it (spare_len bytes) */
    int astop;
    ml_seq last_seq;
    struct { uint32_t stack, type; } cache[ML_SLOTS];
};

static int
ml_writer_write_all(ml_writer *w, const uint8_t *p, size_t n)
{
    if (w->failed) {
        w->lost += n;
        return -1;
    }
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            w->lost += n;
            w->failed = 1;
            return -1;
        }
        p += k;
        n -= (size_t)k;
        w->written += (uint64_t)k;
    }
    return 0;
}

/* The deflate stream's sink: compressed bytes to the file. A failure
 * marks the writer failed; ml_writer_out counts what was lost. */
static int
ml_writer_zsink(void *ctx, const uint8_t *p, size_t n)
{
    ml_writer *w = ctx;
    if (w->failed)
        return -1;
    uint64_t lost = w->lost;
    int rc = ml_writer_write_all(w, p, n);
    w->lost = lost;
    return rc;
}

/* Records out to the file, through deflate when compressing; each call
 * ends on a sync point, so the file is readable up to here. */
static int
ml_writer_out(ml_writer *w, const uint8_t *p, size_t n)
{
    if (!w->z)
        return ml_writer_write_all(w, p, n);
    if (w->failed) {
        w->lost += n;
        return -1;
    }
    if (ml_zdeflate_write(w->z, p, n, 1) < 0) {
        w->failed = 1;
        w->lost += n;
        return -1;
    }
    return 0;
}

static void ml_writer_async_wait(ml_writer *w);

int
ml_writer_flush(ml_writer *w)
{
    int rc = 0;
    ml_writer_async_wait(w); /* the buffer before this one goes first */
    if (w->len && w->fd >= 0) {
        pthread_mutex_lock(&w->io);
        rc = ml_writer_out(w, w->buf, w->len);
        pthread_mutex_unlock(&w->io);
        w->len = 0;
    }
    return rc;
}

/* The filled buffer becomes the spare (spare_len bytes to write out) and
 * the records go on into the other one. */
static void
ml_writer_swap(ml_writer *w)
{
    uint8_t *b = w->buf;
    size_t cap = w->cap;
    w->buf = w->spare;
    w->cap = w->spare_cap;
    w->spare = b;
    w->spare_cap = cap;
    w->spare_len = w->len;
    w->len = 0;
}

void
ml_writer_flush_begin(ml_writer *w)
{
    ml_writer_async_wait(w);
    pthread_mutex_lock(&w->io);
    ml_writer_swap(w);
}

void
ml_writer_flush_end(ml_writer *w)
{
    if (w->spare_len)
        ml_writer_out(w, w->spare, w->spare_len);
    w->spare_len = 0;
    pthread_mutex_unlock(&w->io);
}

/* ---- ml_writer_async ---- */

/* Wait until the thread has written the buffer handed to it. */
static void
ml_writer_async_wait(ml_writer *w)
{
    if (!w->async)
        return;
    pthread_mutex_lock(&w->amu);
    while (w->apending)
        pthread_cond_wait(&w->acv, &w->amu);
    pthread_mutex_unlock(&w->amu);
}

static void *
ml_writer_async_main(void *arg)
{
    ml_writer *w = arg;
    pthread_mutex_lock(&w->amu);
    for (;;) {
        while (!w->apending && !w->astop)
            pthread_cond_wait(&w->acv, &w->amu);
        if (!w->apending)
            break; /* stopped, nothing left */
        pthread_mutex_unlock(&w->amu);
        pthread_mutex_lock(&w->io);
        ml_writer_out(w, w->spare, w->spare_len);
        pthread_mutex_unlock(&w->io);
        pthread_mutex_lock(&w->amu);
        w->spare_len = 0;
        w->apending = 0;
        pthread_cond_broadcast(&w->acv);
    }
    pthread_mutex_unlock(&w->amu);
    return NULL;
}

/* The full buffer to the thread (once it is done with the last one); the
 * records go on into the other. */
static int
ml_writer_async_hand(ml_writer *w)
{
    if (!w->len || w->fd < 0)
        return -1;
    pthread_mutex_lock(&w->amu);
    while (w->apending)
        pthread_cond_wait(&w->acv, &w->amu);
    ml_writer_swap(w);
    w->apending = 1;
    pthread_cond_broadcast(&w->acv);
    pthread_mutex_unlock(&w->amu);
    return 0;
}

int
ml_writer_async(ml_writer *w, int on)
{
    if (on) {
        if (w->async || w->fd < 0 || !w->spare)
            return w->async ? 0 : -1;
        pthread_mutex_init(&w->amu, NULL);
        pthread_cond_init(&w->acv, NULL);
        w->apending = w->astop = 0;
        /* signals belong to the program: the thread starts with all of them
         * blocked (it inherits the mask in force at its creation) */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int rc = pthread_create(&w->athread, NULL, ml_writer_async_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            pthread_cond_destroy(&w->acv);
            pthread_mutex_destroy(&w->amu);
            return -1;
        }
        w->async = 1;
        return 0;
    }
    if (!w->async)
        return 0;
    pthread_mutex_lock(&w->amu);
    w->astop = 1;
    pthread_cond_broadcast(&w->acv);
    pthread_mutex_unlock(&w->amu);
    pthread_join(w->athread, NULL); /* it writes what it was handed first */
    pthread_cond_destroy(&w->acv);
    pthread_mutex_destroy(&w->amu);
    w->async = 0;
    return 0;
}

/* Room for n more bytes in the buffer; flushes, or grows for a huge record. */
static uint8_t *
ml_writer_reserve(ml_writer *w, size_t n)
{
    if (w->len + n > w->cap && w->fd < 0) { /* in memory: grow */
        size_t cap = w->cap * 2 > w->len + n ? w->cap * 2 : w->len + n;
        uint8_t *nb = realloc(w->buf, cap);
        if (!nb)
            return NULL;
        w->buf = nb;
        w->cap = cap;
    }
    if (w->len + n > w->cap) {
        if (!w->async || ml_writer_async_hand(w) < 0)
            ml_writer_flush(w);
        if (n > w->cap) {
            uint8_t *nb = malloc(n);
            if (!nb)
                return NULL;
            free(w->buf);
            w->buf = nb;
            w->cap = n;
        }
    }
    return w->buf + w->len;
}

ml_writer *
ml_writer_open_fd(int fd, int zlevel, const char *json, size_t json_len)
{
    int e = ENOMEM;
    ml_writer *w = calloc(1, sizeof(*w));
    if (!w)
        goto fail;
    w->buf = malloc(ML_WRITER_BUFSIZE);
    w->spare = malloc(ML_WRITER_BUFSIZE);
    if (!w->buf || !w->spare)
        goto free_writer;
    w->cap = w->spare_cap = ML_WRITER_BUFSIZE;
    pthread_mutex_init(&w->io, NULL);
    w->fd = fd;
    if (zlevel > 0) {
        /* the container (FORMAT.md): its magic, then one zlib stream */
        w->z = ml_zdeflate_new(zlevel, ml_writer_zsink, w);
        if (w->z && ml_writer_write_all(w, (const uint8_t *)ML_ZMAGIC, ML_ZMAGIC_LEN) < 0) {
            e = errno;
            goto free_writer;
        }
    }
    uint8_t *p = ml_writer_reserve(w, ML_HEADER_FIXED + json_len);
    if (!p)
        goto free_writer;
    memcpy(p, ML_MAGIC, ML_MAGIC_LEN);
    ml_u32le_put(p + 8, ML_FORMAT_VERSION);
    ml_u32le_put(p + 12, (uint32_t)json_len);
    memcpy(p + ML_HEADER_FIXED, json, json_len);
    w->len += ML_HEADER_FIXED + json_len;
    if (ml_writer_flush(w) < 0) {
        e = errno;
        goto free_writer;
    }
    return w;
free_writer:
    ml_zdeflate_free(w->z);
    free(w->buf);
    free(w->spare);
    free(w);
fail:
    errno = e;
    return NULL;
}

/* The capture file's creation: one open() with O_EXCL, so nothing at
 * path (a file made since the caller looked, a symbolic link, dangling
 * or not) is ever written through or truncated. With force, a regular
 * file or a link at path is removed first (the link, never its target);
 * if something is put back in between, O_EXCL refuses it. Directories
 * (EISDIR) and special files (FIFOs, devices, sockets: EEXIST) are never
 * replaced. memlens/outfile.py follows the same rules for Python's files. */
static int
ml_writer_create(const char *path, int force)
{
    struct stat st;
    if (force && lstat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            errno = EISDIR;
            return -1;
        }
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
            errno = EEXIST;
            return -1;
        }
        if (unlink(path) < 0 && errno != ENOENT)
            return -1;
    }
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

ml_writer *
ml_writer_open(const char *path, int force, int zlevel, const char *json, size_t json_len)
{
    int fd = ml_writer_create(path, force);
    if (fd < 0)
        return NULL;
    ml_writer *w = ml_writer_open_fd(fd, zlevel, json, json_len);
    if (!w) {
        int e = errno;
        close(fd);
        unlink(path); /* made by this call (O_EXCL): leave nothing behind */
        errno = e;
    }
    return w;
}

ml_writer *
ml_writer_open_mem(void)
{
    ml_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cap = 1u << 16;
    w->buf = malloc(w->cap);
    if (!w->buf) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->io, NULL);
    w->fd = -1;
    return w;
}

void
ml_writer_move(ml_writer *from, ml_writer *to)
{
    if (!from->len)
        return;
    uint8_t *p = ml_writer_reserve(to, from->len);
    if (p) {
        memcpy(p, from->buf, from->len);
        to->len += from->len;
    } else {
        to->lost += from->len;
    }
    from->len = 0;
}

int
ml_writer_fd(const ml_writer *w)
{
    return w->fd;
}

int
ml_writer_compressed(const ml_writer *w)
{
    return w->z != NULL;
}

int
ml_writer_close(ml_writer *w)
{
    ml_writer_async(w, 0);
    ml_writer_flush(w);
    if (w->z && !w->failed && ml_zdeflate_finish(w->z) < 0)
        w->failed = 1;
    int rc = w->lost || w->failed ? -1 : 0;
    if (w->fd >= 0 && close(w->fd) < 0)
        rc = -1;
    ml_zdeflate_free(w->z);
    free(w->buf);
    free(w->spare);
    free(w);
    return rc;
}

void
ml_writer_abandon(ml_writer *w)
{
    /* In a forked child, from its atfork handler: the parent may have held
     * the I/O lock (and been inside deflate), and an allocator may still be
     * locked by its own fork handlers (AddressSanitizer's is: free() here
     * deadlocked). So nothing is touched but the descriptor: the buffers
     * stay as the child inherited them, copy-on-write pages it never writes. */
    if (w->fd >= 0)
        close(w->fd);
}

uint64_t ml_writer_bytes_written(const ml_writer *w) { return w->written + w->len + w->spare_len; }
uint64_t ml_writer_bytes_lost(const ml_writer *w) { return w->lost; }
size_t ml_writer_buffered(const ml_writer *w) { return w->len; }
ml_seq ml_writer_last_seq(const ml_writer *w) { return w->last_seq; }

/* Append helpers: callers reserve first. */
#define PUT_TAG(p, t) (*(p)++ = (uint8_t)(t))
#define PUT_UV(p, v) ((p) += ml_uv_put((p), (v)))

static void
ml_writer_put_str(uint8_t **pp, const char *s, size_t n)
{
    uint8_t *p = *pp;
    PUT_UV(p, n);
    memcpy(p, s, n);
    *pp = p + n;
}

/* uv n, then n ascending seqs as uv distances (the first from 0): the
 * seq lists of ARENA_BLOCKS, GARBAGE_AT_EXIT/UNCOLLECTABLE and HELD. */
static void
ml_writer_put_seqs(uint8_t **pp, const ml_seq *seqs, size_t n)
{
    uint8_t *p = *pp;
    PUT_UV(p, n);
    ml_seq prev = 0;
    for (size_t i = 0; i < n; i++) {
        PUT_UV(p, seqs[i] - prev);
        prev = seqs[i];
    }
    *pp = p;
}

#define SIMPLE_BEGIN(w, extra)                                   \
    uint8_t *p0 = ml_writer_reserve((w), ML_RECORD_MAX + (extra)); \
    if (!p0) {                                                   \
        (w)->lost += ML_RECORD_MAX + (extra);                    \
        return;                                                  \
    }                                                            \
    uint8_t *p = p0
#define SIMPLE_END(w) ((w)->len += (size_t)(p - p0))

void
ml_writer_time(ml_writer *w, uint64_t dt_us)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_TIME);
    PUT_UV(p, dt_us);
    SIMPLE_END(w);
}

void
ml_writer_thread(ml_writer *w, ml_thread_id t)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_THREAD);
    PUT_UV(p, t);
    SIMPLE_END(w);
}

void
ml_writer_thread_def(ml_writer *w, ml_thread_id t, uint64_t os_tid, const char *name, size_t name_len)
{
    SIMPLE_BEGIN(w, name_len);
    PUT_TAG(p, ML_TAG_THREAD_DEF);
    PUT_UV(p, t);
    PUT_UV(p, os_tid);
    ml_writer_put_str(&p, name, name_len);
    SIMPLE_END(w);
}

void
ml_writer_code_def(ml_writer *w, ml_code_id id, const char *file, size_t file_len,
                   const char *name, size_t name_len, uint32_t firstlineno,
                   const uint32_t *offsets, const int32_t *lines, size_t n)
{
    SIMPLE_BEGIN(w, file_len + name_len + n * 15);
    PUT_TAG(p, ML_TAG_CODE_DEF);
    PUT_UV(p, id);
    ml_writer_put_str(&p, file, file_len);
    ml_writer_put_str(&p, name, name_len);
    PUT_UV(p, firstlineno);
    PUT_UV(p, n);
    uint32_t prev_off = 0;
    int64_t prev_line = firstlineno;
    for (size_t i = 0; i < n; i++) {
        PUT_UV(p, offsets[i] - prev_off);
        /* line 0 (no line) is encoded as an absolute jump to 0 */
        PUT_UV(p, ml_zigzag((int64_t)lines[i] - prev_line));
        prev_off = offsets[i];
        prev_line = lines[i];
    }
    SIMPLE_END(w);
}

void
ml_writer_frame_def(ml_writer *w, ml_frame_id id, ml_frame_id parent, ml_code_id code, uint32_t offset)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_FRAME_DEF);
    PUT_UV(p, id);
    PUT_UV(p, parent);
    PUT_UV(p, code);
    PUT_UV(p, offset);
    SIMPLE_END(w);
}

void
ml_writer_type_def(ml_writer *w, ml_type_id id, const char *name, size_t name_len, uint32_t flags)
{
    SIMPLE_BEGIN(w, name_len);
    PUT_TAG(p, ML_TAG_TYPE_DEF);
    PUT_UV(p, id);
    ml_writer_put_str(&p, name, name_len);
    PUT_UV(p, flags);
    SIMPLE_END(w);
}

void
ml_writer_memory(ml_writer *w, uint64_t rss, uint64_t heap)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_MEMORY);
    PUT_UV(p, rss);
    PUT_UV(p, heap);
    SIMPLE_END(w);
}

void
ml_writer_context(ml_writer *w, ml_frame_id stack)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_CONTEXT);
    PUT_UV(p, stack);
    SIMPLE_END(w);
}

void
ml_writer_reuse(ml_writer *w, ml_type_id type)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_REUSE);
    PUT_UV(p, type);
    SIMPLE_END(w);
}

void
ml_writer_mark(ml_writer *w, unsigned kind, const char *label, size_t len)
{
    SIMPLE_BEGIN(w, len);
    PUT_TAG(p, ML_TAG_MARK);
    PUT_UV(p, kind);
    ml_writer_put_str(&p, label, len);
    SIMPLE_END(w);
}

void
ml_writer_note(ml_writer *w, unsigned kind, const char *text, size_t len)
{
    SIMPLE_BEGIN(w, len);
    PUT_TAG(p, ML_TAG_NOTE);
    PUT_UV(p, kind);
    ml_writer_put_str(&p, text, len);
    SIMPLE_END(w);
}

void
ml_writer_trailer(ml_writer *w, const uint64_t *fields, size_t n)
{
    SIMPLE_BEGIN(w, n * 10);
    PUT_TAG(p, ML_TAG_TRAILER);
    PUT_UV(p, n);
    for (size_t i = 0; i < n; i++)
        PUT_UV(p, fields[i]);
    SIMPLE_END(w);
}

/* rss: RSS_SAMPLE (format.h) */
void
ml_writer_rss(ml_writer *w, const uint64_t *fields, size_t n)
{
    SIMPLE_BEGIN(w, n * 10);
    PUT_TAG(p, ML_TAG_RSS_SAMPLE);
    PUT_UV(p, n);
    for (size_t i = 0; i < n; i++)
        PUT_UV(p, fields[i]);
    SIMPLE_END(w);
}

void
ml_writer_arena(ml_writer *w, uint64_t base, uint64_t size, uint64_t resident, uint64_t pools,
                uint64_t pools_used, uint64_t used)
{
    SIMPLE_BEGIN(w, 60);
    PUT_TAG(p, ML_TAG_ARENA);
    PUT_UV(p, base);
    PUT_UV(p, size);
    PUT_UV(p, resident);
    PUT_UV(p, pools);
    PUT_UV(p, pools_used);
    PUT_UV(p, used);
    SIMPLE_END(w);
}

void
ml_writer_arena_blocks(ml_writer *w, uint64_t arena, const ml_seq *seqs, size_t n)
{
    SIMPLE_BEGIN(w, 10 * n + 10);
    PUT_TAG(p, ML_TAG_ARENA_BLOCKS);
    PUT_UV(p, arena);
    ml_writer_put_seqs(&p, seqs, n);
    SIMPLE_END(w);
}

void
ml_writer_fork(ml_writer *w, uint64_t child_pid)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_FORK);
    PUT_UV(p, child_pid);
    SIMPLE_END(w);
}

void
ml_writer_gc_start(ml_writer *w, unsigned generation, uint64_t t_us, ml_frame_id stack)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_GC_START);
    PUT_UV(p, generation);
    PUT_UV(p, t_us);
    PUT_UV(p, stack);
    SIMPLE_END(w);
}

void
ml_writer_gc_stop(ml_writer *w, unsigned generation, uint64_t t_us, uint64_t collected,
                  uint64_t uncollectable)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_GC_STOP);
    PUT_UV(p, generation);
    PUT_UV(p, t_us);
    PUT_UV(p, collected);
    PUT_UV(p, uncollectable);
    SIMPLE_END(w);
}

ml_seq
ml_writer_alloc(ml_writer *w, ml_domain domain, ml_frame_id stack, ml_type_id type, uint64_t size)
{
    uint8_t *p0 = ml_writer_reserve(w, ML_RECORD_MAX);
    if (!p0) {
        w->lost += ML_RECORD_MAX;
        return ++w->last_seq;
    }
    uint8_t *p = p0;
    unsigned slot = ml_slot_of(stack, type);
    uint8_t tag = (uint8_t)(ML_TAG_ALLOC | (unsigned)domain << 5);
    if (w->cache[slot].stack == stack && w->cache[slot].type == type) {
        PUT_TAG(p, tag | slot);
    } else {
        PUT_TAG(p, tag | ML_SLOT_EXPLICIT);
        PUT_UV(p, stack);
        PUT_UV(p, type);
        w->cache[slot].stack = stack;
        w->cache[slot].type = type;
    }
    PUT_UV(p, size);
    w->len += (size_t)(p - p0);
    return ++w->last_seq;
}

void
ml_writer_free(ml_writer *w, ml_seq seq)
{
    SIMPLE_BEGIN(w, 0);
    uint64_t d = w->last_seq - seq;
    if (d <= ML_FREE_INLINE_MAX) {
        PUT_TAG(p, ML_TAG_FREE + d);
    } else {
        PUT_TAG(p, ML_TAG_FREE_LONG);
        PUT_UV(p, d - ML_FREE_INLINE_MAX - 1);
    }
    SIMPLE_END(w);
}

/* ---- heap at exit (0x10..0x13) ---- */

void
ml_writer_snapshot(ml_writer *w, unsigned kind, uint64_t objects, uint64_t duration_us)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_SNAPSHOT);
    PUT_UV(p, kind);
    if (kind == ML_SNAP_END) {
        PUT_UV(p, objects);
        PUT_UV(p, duration_us);
    }
    SIMPLE_END(w);
}

void
ml_writer_owner(ml_writer *w, ml_seq seq, ml_seq owner_seq, ml_type_id type)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_OWNER);
    PUT_UV(p, seq);
    PUT_UV(p, owner_seq);
    PUT_UV(p, type);
    SIMPLE_END(w);
}

void
ml_writer_owners(ml_writer *w, const ml_seq *seqs, const ml_seq *owner_seqs, const ml_type_id *types, size_t n)
{
    SIMPLE_BEGIN(w, 30 * n);
    PUT_TAG(p, ML_TAG_OWNERS);
    PUT_UV(p, n);
    ml_seq prev = 0;
    for (size_t i = 0; i < n; i++) {
        PUT_UV(p, ml_zigzag((int64_t)(seqs[i] - prev)));
        PUT_UV(p, ml_zigzag((int64_t)(seqs[i] - owner_seqs[i])));
        PUT_UV(p, types[i]);
        prev = seqs[i];
    }
    SIMPLE_END(w);
}

void
ml_writer_holder(ml_writer *w, uint32_t id, const char *const *hops, const size_t *lens, size_t n,
                 uint64_t retained)
{
    size_t extra = 10 * n;
    for (size_t i = 0; i < n; i++)
        extra += lens[i];
    SIMPLE_BEGIN(w, extra);
    PUT_TAG(p, ML_TAG_HOLDER);
    PUT_UV(p, id);
    PUT_UV(p, n);
    for (size_t i = 0; i < n; i++)
        ml_writer_put_str(&p, hops[i], lens[i]);
    PUT_UV(p, retained);
    SIMPLE_END(w);
}

/* gcexit */
void
ml_writer_gc_seqs(ml_writer *w, unsigned tag, const ml_seq *seqs, size_t n)
{
    SIMPLE_BEGIN(w, 10 * n);
    PUT_TAG(p, tag);
    ml_writer_put_seqs(&p, seqs, n);
    SIMPLE_END(w);
}

void
ml_writer_held(ml_writer *w, uint32_t holder, const ml_seq *seqs, size_t n)
{
    SIMPLE_BEGIN(w, 10 * n);
    PUT_TAG(p, ML_TAG_HELD);
    PUT_UV(p, holder);
    ml_writer_put_seqs(&p, seqs, n);
    SIMPLE_END(w);
}

/* ---- nstacks: native frames (format.h 0x14..0x16) ---- */

void
ml_writer_native_stack(ml_writer *w, uint32_t id, const uintptr_t *addrs, size_t n)
{
    SIMPLE_BEGIN(w, 10 * n);
    PUT_TAG(p, ML_TAG_NATIVE_STACK);
    PUT_UV(p, id);
    PUT_UV(p, n);
    for (size_t i = 0; i < n; i++)
        PUT_UV(p, addrs[i]);
    SIMPLE_END(w);
}

void
ml_writer_native_alloc(ml_writer *w, uint32_t nstack)
{
    SIMPLE_BEGIN(w, 0);
    PUT_TAG(p, ML_TAG_NATIVE_ALLOC);
    PUT_UV(p, nstack);
    SIMPLE_END(w);
}

void
ml_writer_mapping(ml_writer *w, uint64_t start, uint64_t end, uint64_t offset, const char *path,
                  size_t path_len, const uint8_t *build_id, size_t build_id_len)
{
    SIMPLE_BEGIN(w, path_len + build_id_len);
    PUT_TAG(p, ML_TAG_MAPPING);
    PUT_UV(p, start);
    PUT_UV(p, end);
    PUT_UV(p, offset);
    ml_writer_put_str(&p, path, path_len);
    ml_writer_put_str(&p, build_id_len ? (const char *)build_id : "", build_id_len);
    SIMPLE_END(w);
}
