/* reader.c: decodes a capture file (format/format.h) into events.
 *
 * Mirror image of capture/writer.c. The file is mapped (or read whole when it
 * cannot be mapped: pipes, odd filesystems) and decoded in place. Every read
 * is bounds-checked against the end of the file: a record cut by the end of
 * the file ends the stream cleanly (truncated), anything else that does not
 * follow format.h is reported with the byte offset of its record.
 * Definitions live in arrays indexed by id; their strings and line maps in an
 * arena that is freed with the reader.
 */
#include "analysis/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/live.h"

#define ML_READER_ERRCAP 512
#define ML_ARENA_CHUNK (64u * 1024u)
#define ML_THREAD_DIRECT 4096

/* ---- arena: strings and line maps of the definitions ---- */

typedef struct ml_arena_chunk {
    struct ml_arena_chunk *next;
    size_t used, cap;
    _Alignas(8) uint8_t data[];
} ml_arena_chunk;

static void *
ml_reader_arena_alloc(ml_arena_chunk **head, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    ml_arena_chunk *c = *head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ML_ARENA_CHUNK ? n : ML_ARENA_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        /* keep a partly used chunk at the head when the new one is a big
         * one-off, so small allocations continue to fill it */
        if (*head && cap > ML_ARENA_CHUNK) {
            c->next = (*head)->next;
            (*head)->next = c;
        } else {
            c->next = *head;
            *head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void
ml_reader_arena_free(ml_arena_chunk *c)
{
    while (c) {
        ml_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* ---- the reader ---- */

typedef struct {
    ml_thread_id id;
    ml_frame_id context;  /* the thread's current stack */
    uint64_t os_tid;
    const char *name;     /* arena, or NULL before its THREAD_DEF */
} ml_thread_state;

typedef struct {
    const char *name;
    uint32_t flags;
} ml_type_def;

struct ml_reader {
    char *path;
    const uint8_t *base;      /* the whole file */
    size_t size;
    int mapped;               /* base is a mapping (else malloc'd) */
    const uint8_t *records;   /* first record, after the header */
    const uint8_t *end;
    const uint8_t *p;         /* next record */
    const uint8_t *defs_upto; /* definitions before this point are registered */
    uint32_t meta_len;

    /* decoding state, reset by rewind */
    uint64_t time_us;
    ml_seq last_seq;
    struct { uint32_t stack, type; } cache[ML_SLOTS];
    ml_thread_state *cur;     /* the current thread */
    int done, truncated, failed;
    uint64_t trailer[ML_TRAILER_COUNT];
    ml_live live;

    /* definitions (index 0 unused: id 0 means none) */
    ml_code_info *codes;
    uint32_t ncodes, codes_cap;
    ml_frame_info *frames;
    uint32_t nframes, frames_cap;
    ml_type_def *types;
    uint32_t ntypes, types_cap;
    ml_thread_state *threads;
    uint32_t nthreads, threads_cap;
    uint32_t thread_index[ML_THREAD_DIRECT]; /* id -> position + 1, 0 = none */

    ml_arena_chunk *arena;
    char err[ML_READER_ERRCAP];
};

static void
ml_reader_seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Read a whole non-mappable file into memory. */
static int
ml_reader_slurp(int fd, uint8_t **out, size_t *outlen)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -1;
    for (;;) {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                goto free_buf;
            buf = nb;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            goto free_buf;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    *out = buf;
    *outlen = len;
    return 0;
free_buf: {
        int e = errno;
        free(buf);
        errno = e;
    }
    return -1;
}

/* Check the header; fills r->records and r->meta_len, or writes a message. */
static int
ml_reader_parse_header(ml_reader *r, const char *path, char *err, size_t errcap)
{
    const uint8_t *b = r->base;
    size_t n = r->size;
    if (n == 0) {
        ml_reader_seterr(err, errcap, "%s: empty file, not a memlens capture", path);
        return -1;
    }
    size_t k = n < ML_MAGIC_LEN ? n : ML_MAGIC_LEN;
    if (memcmp(b, ML_MAGIC, k) != 0) {
        ml_reader_seterr(err, errcap, "%s: not a memlens capture (no MLENS header)", path);
        return -1;
    }
    if (n < ML_HEADER_FIXED) {
        ml_reader_seterr(err, errcap, "%s: capture is cut short inside its header", path);
        return -1;
    }
    uint32_t version = ml_u32le_get(b + 8);
    if (version > ML_FORMAT_VERSION) {
        ml_reader_seterr(err, errcap,
                         "%s: capture format version %u is newer than this memlens supports "
                         "(%u); upgrade memlens", path, version, ML_FORMAT_VERSION);
        return -1;
    }
    if (version == 0) {
        ml_reader_seterr(err, errcap, "%s: not a valid memlens capture (format version 0)", path);
        return -1;
    }
    uint32_t json_len = ml_u32le_get(b + 12);
    if (json_len > n - ML_HEADER_FIXED) {
        ml_reader_seterr(err, errcap, "%s: capture is cut short inside its header", path);
        return -1;
    }
    r->meta_len = json_len;
    r->records = b + ML_HEADER_FIXED + json_len;
    r->end = b + n;
    return 0;
}

static ml_thread_state *ml_reader_thread_state(ml_reader *r, ml_thread_id id);

static void
ml_reader_reset_state(ml_reader *r)
{
    r->p = r->records;
    r->time_us = 0;
    r->last_seq = 0;
    memset(r->cache, 0, sizeof(r->cache));
    for (uint32_t i = 0; i < r->nthreads; i++)
        r->threads[i].context = 0;
    r->cur = &r->threads[0]; /* thread 0 exists from open on */
    r->done = r->truncated = r->failed = 0;
    memset(r->trailer, 0, sizeof(r->trailer));
    ml_live_clear(&r->live);
    r->err[0] = '\0';
}

ml_reader *
ml_reader_open(const char *path, char *err, size_t errcap)
{
    ml_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        ml_reader_seterr(err, errcap, "%s: out of memory", path);
        errno = ENOMEM;
        return NULL;
    }
    int e = 0;
    r->path = strdup(path);
    if (!r->path || ml_live_init(&r->live) < 0) {
        e = ENOMEM;
        ml_reader_seterr(err, errcap, "%s: out of memory", path);
        goto free_reader;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        ml_reader_seterr(err, errcap, "cannot open %s: %s", path, strerror(e));
        goto free_reader;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        e = errno;
        ml_reader_seterr(err, errcap, "cannot read %s: %s", path, strerror(e));
        goto close_fd;
    }
    if (S_ISDIR(st.st_mode)) {
        e = EISDIR;
        ml_reader_seterr(err, errcap, "cannot read %s: %s", path, strerror(e));
        goto close_fd;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
            r->base = m;
            r->size = (size_t)st.st_size;
            r->mapped = 1;
        }
    }
    if (!r->base && !(S_ISREG(st.st_mode) && st.st_size == 0)) {
        uint8_t *buf;
        size_t len;
        if (ml_reader_slurp(fd, &buf, &len) < 0) {
            e = errno;
            ml_reader_seterr(err, errcap, "cannot read %s: %s", path, strerror(e));
            goto close_fd;
        }
        r->base = buf;
        r->size = len;
    }
    close(fd);
    fd = -1;
    if (ml_reader_parse_header(r, path, err, errcap) < 0) {
        e = 0;
        goto free_reader;
    }
    if (!ml_reader_thread_state(r, 0)) {
        e = ENOMEM;
        ml_reader_seterr(err, errcap, "%s: out of memory", path);
        goto free_reader;
    }
    ml_reader_reset_state(r);
    return r;

close_fd:
    close(fd);
free_reader:
    ml_reader_free(r);
    errno = e;
    return NULL;
}

void
ml_reader_free(ml_reader *r)
{
    if (!r)
        return;
    if (r->base) {
        if (r->mapped)
            munmap((void *)r->base, r->size);
        else
            free((void *)r->base);
    }
    ml_live_release(&r->live);
    free(r->codes);
    free(r->frames);
    free(r->types);
    free(r->threads);
    ml_reader_arena_free(r->arena);
    free(r->path);
    free(r);
}

const char *
ml_reader_meta(const ml_reader *r, size_t *len)
{
    *len = r->meta_len;
    return (const char *)r->base + ML_HEADER_FIXED;
}

void
ml_reader_rewind(ml_reader *r)
{
    ml_reader_reset_state(r);
}

const char *ml_reader_error(const ml_reader *r) { return r->err; }
int ml_reader_truncated(const ml_reader *r) { return r->truncated; }
uint64_t ml_reader_pos(const ml_reader *r) { return (uint64_t)(r->p - r->base); }
uint64_t ml_reader_size(const ml_reader *r) { return r->size; }
uint64_t ml_reader_live_count(const ml_reader *r) { return r->live.count; }
uint64_t ml_reader_live_bytes(const ml_reader *r) { return r->live.bytes; }
uint32_t ml_reader_ntypes(const ml_reader *r) { return r->ntypes; }
uint32_t ml_reader_nframes(const ml_reader *r) { return r->nframes; }
uint32_t ml_reader_ncodes(const ml_reader *r) { return r->ncodes; }
uint64_t ml_reader_time(const ml_reader *r) { return r->time_us; }

uint64_t
ml_reader_trailer(const ml_reader *r, unsigned field)
{
    return field < ML_TRAILER_COUNT ? r->trailer[field] : 0;
}

const ml_code_info *
ml_reader_code(const ml_reader *r, ml_code_id id)
{
    return id >= 1 && id <= r->ncodes ? &r->codes[id] : NULL;
}

const ml_frame_info *
ml_reader_frame(const ml_reader *r, ml_frame_id id)
{
    return id >= 1 && id <= r->nframes ? &r->frames[id] : NULL;
}

const char *
ml_reader_type_name(const ml_reader *r, ml_type_id id)
{
    return id >= 1 && id <= r->ntypes ? r->types[id].name : NULL;
}

uint32_t
ml_reader_type_flags(const ml_reader *r, ml_type_id id)
{
    return id >= 1 && id <= r->ntypes ? r->types[id].flags : 0;
}

const char *
ml_reader_thread_name(const ml_reader *r, ml_thread_id id, uint64_t *os_tid)
{
    /* not on a hot path: a scan is fine */
    for (uint32_t i = 0; i < r->nthreads; i++) {
        if (r->threads[i].id == id) {
            if (os_tid)
                *os_tid = r->threads[i].os_tid;
            return r->threads[i].name;
        }
    }
    return NULL;
}

int32_t
ml_reader_code_line(const ml_reader *r, ml_code_id code, uint32_t offset)
{
    const ml_code_info *c = ml_reader_code(r, code);
    if (!c)
        return 0;
    if (c->nlines == 0)
        return (int32_t)c->firstlineno;
    /* the last run starting at or before offset */
    size_t lo = 0, hi = c->nlines;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->offsets[mid] <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : c->lines[lo - 1];
}

int32_t
ml_reader_frame_line(const ml_reader *r, ml_frame_id id)
{
    const ml_frame_info *f = ml_reader_frame(r, id);
    return f ? ml_reader_code_line(r, f->code, f->offset) : 0;
}

typedef struct {
    ml_live_fn fn;
    void *arg;
} ml_reader_visit;

static int
ml_reader_visit_one(void *arg, ml_seq seq, const ml_live_block *b)
{
    ml_reader_visit *v = arg;
    return v->fn(v->arg, seq, b->size, b->stack, b->type, b->domain);
}

void
ml_reader_live_foreach(const ml_reader *r, ml_live_fn fn, void *arg)
{
    ml_reader_visit v = {fn, arg};
    ml_live_foreach(&r->live, ml_reader_visit_one, &v);
}

/* ---- decoding ---- */

/* Grow an id-indexed array so that index `need` exists. */
static int
ml_reader_grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need < *cap)
        return 0;
    uint64_t ncap = *cap ? (uint64_t)*cap * 2 : 64;
    while (ncap <= need)
        ncap *= 2;
    if (ncap > UINT32_MAX)
        ncap = UINT32_MAX;
    if (ncap <= need)
        return -1;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n)
        return -1;
    memset((char *)n + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = n;
    *cap = (uint32_t)ncap;
    return 0;
}

static ml_thread_state *
ml_reader_thread_state(ml_reader *r, ml_thread_id id)
{
    /* Thread ids are small numbers given out in order: ids below
     * ML_THREAD_DIRECT are found through a direct index, others by a scan. */
    if (r->cur && r->cur->id == id)
        return r->cur;
    if (id < ML_THREAD_DIRECT) {
        if (r->thread_index[id])
            return &r->threads[r->thread_index[id] - 1];
    } else {
        for (uint32_t i = 0; i < r->nthreads; i++)
            if (r->threads[i].id == id)
                return &r->threads[i];
    }
    if (r->nthreads == r->threads_cap) {
        ptrdiff_t cur = r->cur ? r->cur - r->threads : -1;
        uint32_t ncap = r->threads_cap ? r->threads_cap * 2 : 8;
        ml_thread_state *n = realloc(r->threads, ncap * sizeof(*n));
        if (!n)
            return NULL;
        r->threads = n;
        r->threads_cap = ncap;
        if (cur >= 0)
            r->cur = &r->threads[cur];
    }
    ml_thread_state *t = &r->threads[r->nthreads++];
    memset(t, 0, sizeof(*t));
    t->id = id;
    if (id < ML_THREAD_DIRECT)
        r->thread_index[id] = r->nthreads;
    return t;
}

static char *
ml_reader_strdup(ml_reader *r, const uint8_t *s, uint64_t n)
{
    char *d = ml_reader_arena_alloc(&r->arena, (size_t)n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, (size_t)n);
    d[n] = '\0';
    return d;
}

/* Varint with the two failure kinds told apart: 1 = the input ends inside it
 * (a cut file), -1 = longer than 10 bytes (corrupt). */
static inline int
ml_reader_uv(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *v = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t x = 0;
    unsigned shift = 0;
    while (p < end) {
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return -1;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            *pp = p;
            return 0;
        }
        shift += 7;
        if (shift > 63)
            return -1;
    }
    return 1;
}

/* Inside ml_reader_next: read a varint or leave through cut / bad_varint. */
#define GET_UV(var)                                         \
    do {                                                    \
        int rc_ = ml_reader_uv(&p, end, &(var));            \
        if (rc_ > 0)                                        \
            goto cut;                                       \
        if (rc_ < 0)                                        \
            goto bad_varint;                                \
    } while (0)
#define GET_STR(ptr, len)                                   \
    do {                                                    \
        GET_UV(len);                                        \
        if ((len) > (uint64_t)(end - p))                    \
            goto cut;                                       \
        (ptr) = p;                                          \
        p += (len);                                         \
    } while (0)
#define CORRUPT(...)                                        \
    do {                                                    \
        snprintf(why, sizeof(why), __VA_ARGS__);            \
        goto corrupt;                                       \
    } while (0)

int
ml_reader_next(ml_reader *r, ml_event *ev)
{
    if (r->failed)
        return -1;
    if (r->done)
        return 0;
    const uint8_t *end = r->end;
    const uint8_t *rec, *p;
    char why[200];
    uint64_t a, b, c, d;
    const uint8_t *s1, *s2;

    for (;;) {
        rec = p = r->p;
        if (p >= end) {
            r->truncated = 1; /* no TRAILER */
            r->done = 1;
            return 0;
        }
        unsigned tag = *p++;

        if (tag >= ML_TAG_ALLOC) {
            unsigned dom = (tag >> 5) & 3, slot = tag & 31;
            uint32_t stack, type;
            if (dom > ML_DOMAIN_OBJ)
                CORRUPT("ALLOC with domain 3 (tag 0x%02x)", tag);
            if (slot == ML_SLOT_EXPLICIT) {
                GET_UV(a);
                GET_UV(b);
                if (a > r->nframes)
                    CORRUPT("ALLOC with undefined stack %llu", (unsigned long long)a);
                if (b > r->ntypes)
                    CORRUPT("ALLOC with undefined type %llu", (unsigned long long)b);
                stack = (uint32_t)a;
                type = (uint32_t)b;
            } else {
                stack = r->cache[slot].stack;
                type = r->cache[slot].type;
            }
            GET_UV(c);
            if (c > ML_LIVE_SIZE_MAX)
                CORRUPT("ALLOC of an impossible size %llu", (unsigned long long)c);
            if (slot == ML_SLOT_EXPLICIT) {
                unsigned k = ml_slot_of(stack, type);
                r->cache[k].stack = stack;
                r->cache[k].type = type;
            }
            ml_live_block blk = {c, stack, type, (ml_domain)dom};
            ml_seq seq = r->last_seq + 1;
            if (ml_live_insert(&r->live, seq, &blk) < 0)
                CORRUPT("out of memory for %llu live blocks",
                        (unsigned long long)r->live.count + 1);
            r->last_seq = seq;
            r->cur->context = stack;
            r->p = p;
            ev->kind = ML_EV_ALLOC;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->domain = (ml_domain)dom;
            ev->seq = seq;
            ev->size = c;
            ev->stack = stack;
            ev->type = type;
            ev->at_stack = stack;
            return 1;
        }

        if (tag >= ML_TAG_FREE) {
            if (tag == ML_TAG_FREE_LONG) {
                GET_UV(a);
                if (a > UINT64_MAX - ML_FREE_INLINE_MAX - 1)
                    CORRUPT("FREE with an impossible distance");
                d = a + ML_FREE_INLINE_MAX + 1;
            } else {
                d = tag - ML_TAG_FREE;
            }
            if (d >= r->last_seq)
                CORRUPT("FREE at distance %llu reaches before the first allocation (%llu "
                        "blocks so far)", (unsigned long long)d, (unsigned long long)r->last_seq);
            ml_seq seq = r->last_seq - d;
            ml_live_block blk;
            if (ml_live_remove(&r->live, seq, &blk) < 0)
                CORRUPT("FREE of block %llu, which is not allocated (freed twice?)",
                        (unsigned long long)seq);
            r->p = p;
            ev->kind = ML_EV_FREE;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->domain = blk.domain;
            ev->seq = seq;
            ev->size = blk.size;
            ev->stack = blk.stack;
            ev->type = blk.type;
            ev->at_stack = r->cur->context;
            return 1;
        }

        int fresh = rec >= r->defs_upto; /* definitions: not yet registered */
        switch (tag) {
        case ML_TAG_TIME:
            GET_UV(a);
            r->time_us += a;
            r->p = p;
            continue;
        case ML_TAG_THREAD: {
            GET_UV(a);
            if (a > UINT32_MAX)
                CORRUPT("THREAD with an impossible id %llu", (unsigned long long)a);
            ml_thread_state *t = ml_reader_thread_state(r, (ml_thread_id)a);
            if (!t)
                CORRUPT("out of memory for threads");
            r->cur = t;
            r->p = p;
            continue;
        }
        case ML_TAG_THREAD_DEF: {
            GET_UV(a);
            GET_UV(b);
            GET_STR(s1, c);
            if (a > UINT32_MAX)
                CORRUPT("THREAD_DEF with an impossible id %llu", (unsigned long long)a);
            if (fresh) {
                ml_thread_state *t = ml_reader_thread_state(r, (ml_thread_id)a);
                char *name = ml_reader_strdup(r, s1, c);
                if (!t || !name)
                    CORRUPT("out of memory for threads");
                t->os_tid = b;
                t->name = name;
                r->defs_upto = p;
            }
            r->p = p;
            continue;
        }
        case ML_TAG_CODE_DEF: {
            uint64_t flen, nlen, first, n;
            GET_UV(a);
            GET_STR(s1, flen);
            GET_STR(s2, nlen);
            GET_UV(first);
            GET_UV(n);
            if (fresh && a != (uint64_t)r->ncodes + 1)
                CORRUPT("CODE_DEF %llu out of order (expected %llu)", (unsigned long long)a,
                        (unsigned long long)r->ncodes + 1);
            if (first > INT32_MAX)
                CORRUPT("CODE_DEF with first line %llu", (unsigned long long)first);
            if (n > (uint64_t)(end - p) / 2)
                goto cut; /* each run takes at least two bytes */
            uint32_t *offs = NULL;
            int32_t *lines = NULL;
            if (fresh) {
                offs = ml_reader_arena_alloc(&r->arena, (size_t)n * sizeof(*offs) + 1);
                lines = ml_reader_arena_alloc(&r->arena, (size_t)n * sizeof(*lines) + 1);
                if (!offs || !lines)
                    CORRUPT("out of memory for a line map of %llu runs", (unsigned long long)n);
            }
            uint64_t off = 0;
            int64_t line = (int64_t)first;
            for (uint64_t i = 0; i < n; i++) {
                GET_UV(d);
                GET_UV(b);
                off += d;
                if (d > UINT32_MAX || off > UINT32_MAX)
                    CORRUPT("CODE_DEF %llu: line map offset out of range", (unsigned long long)a);
                int64_t dl = ml_unzigzag(b);
                if (dl > (int64_t)INT32_MAX - line || dl < (int64_t)INT32_MIN - line)
                    CORRUPT("CODE_DEF %llu: line map line out of range", (unsigned long long)a);
                line += dl;
                if (fresh) {
                    offs[i] = (uint32_t)off;
                    lines[i] = (int32_t)line;
                }
            }
            if (fresh) {
                if (ml_reader_grow((void **)&r->codes, &r->codes_cap, r->ncodes + 1,
                                   sizeof(*r->codes)) < 0)
                    CORRUPT("out of memory for code definitions");
                ml_code_info *ci = &r->codes[r->ncodes + 1];
                char *file = ml_reader_strdup(r, s1, flen);
                char *name = ml_reader_strdup(r, s2, nlen);
                if (!file || !name)
                    CORRUPT("out of memory for code definitions");
                ci->file = file;
                ci->name = name;
                ci->firstlineno = (uint32_t)first;
                ci->nlines = (size_t)n;
                ci->offsets = offs;
                ci->lines = lines;
                r->ncodes++;
                r->defs_upto = p;
            }
            r->p = p;
            continue;
        }
        case ML_TAG_FRAME_DEF:
            GET_UV(a);
            GET_UV(b);
            GET_UV(c);
            GET_UV(d);
            if (fresh) {
                if (a != (uint64_t)r->nframes + 1 || a >= UINT32_MAX)
                    CORRUPT("FRAME_DEF %llu out of order (expected %llu)", (unsigned long long)a,
                            (unsigned long long)r->nframes + 1);
                if (b >= a)
                    CORRUPT("FRAME_DEF %llu with undefined parent %llu", (unsigned long long)a,
                            (unsigned long long)b);
                if (c == 0 || c > r->ncodes)
                    CORRUPT("FRAME_DEF %llu with undefined code %llu", (unsigned long long)a,
                            (unsigned long long)c);
                if (d > UINT32_MAX)
                    CORRUPT("FRAME_DEF %llu with offset %llu", (unsigned long long)a,
                            (unsigned long long)d);
                if (ml_reader_grow((void **)&r->frames, &r->frames_cap, r->nframes + 1,
                                   sizeof(*r->frames)) < 0)
                    CORRUPT("out of memory for frame definitions");
                ml_frame_info *f = &r->frames[++r->nframes];
                f->parent = (ml_frame_id)b;
                f->code = (ml_code_id)c;
                f->offset = (uint32_t)d;
                r->defs_upto = p;
            }
            r->p = p;
            continue;
        case ML_TAG_TYPE_DEF:
            GET_UV(a);
            GET_STR(s1, b);
            GET_UV(c);
            if (fresh) {
                if (a != (uint64_t)r->ntypes + 1 || a >= UINT32_MAX)
                    CORRUPT("TYPE_DEF %llu out of order (expected %llu)", (unsigned long long)a,
                            (unsigned long long)r->ntypes + 1);
                if (c > UINT32_MAX)
                    CORRUPT("TYPE_DEF %llu with flags %llu", (unsigned long long)a,
                            (unsigned long long)c);
                if (ml_reader_grow((void **)&r->types, &r->types_cap, r->ntypes + 1,
                                   sizeof(*r->types)) < 0)
                    CORRUPT("out of memory for type definitions");
                char *name = ml_reader_strdup(r, s1, b);
                if (!name)
                    CORRUPT("out of memory for type definitions");
                ml_type_def *t = &r->types[++r->ntypes];
                t->name = name;
                t->flags = (uint32_t)c;
                r->defs_upto = p;
            }
            r->p = p;
            continue;
        case ML_TAG_MEMORY:
            GET_UV(a);
            GET_UV(b);
            r->p = p;
            ev->kind = ML_EV_MEMORY;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->rss = a;
            ev->heap = b;
            return 1;
        case ML_TAG_CONTEXT:
            GET_UV(a);
            if (a > r->nframes)
                CORRUPT("CONTEXT with undefined stack %llu", (unsigned long long)a);
            r->cur->context = (ml_frame_id)a;
            r->p = p;
            continue;
        case ML_TAG_REUSE:
            GET_UV(a);
            if (a > r->ntypes)
                CORRUPT("REUSE with undefined type %llu", (unsigned long long)a);
            r->p = p;
            ev->kind = ML_EV_REUSE;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->type = (ml_type_id)a;
            ev->stack = r->cur->context;
            ev->at_stack = r->cur->context;
            ev->size = 0;
            ev->seq = 0;
            return 1;
        case ML_TAG_MARK:
        case ML_TAG_NOTE:
            GET_UV(a);
            GET_STR(s1, b);
            if (a > UINT32_MAX)
                CORRUPT("%s with kind %llu", tag == ML_TAG_MARK ? "MARK" : "NOTE",
                        (unsigned long long)a);
            r->p = p;
            ev->kind = tag == ML_TAG_MARK ? ML_EV_MARK : ML_EV_NOTE;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->mark_kind = (unsigned)a;
            ev->text = (const char *)s1;
            ev->text_len = (size_t)b;
            return 1;
        case ML_TAG_FORK:
            GET_UV(a);
            r->p = p;
            ev->kind = ML_EV_FORK;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->child_pid = a;
            return 1;
        case ML_TAG_TRAILER: {
            uint64_t fields[ML_TRAILER_COUNT] = {0};
            GET_UV(a);
            for (uint64_t i = 0; i < a; i++) {
                GET_UV(b);
                if (i < ML_TRAILER_COUNT)
                    fields[i] = b;
            }
            memcpy(r->trailer, fields, sizeof(fields));
            r->p = p;
            r->done = 1;
            return 0;
        }
        default: {
            /* A tail of zeros is what a filesystem leaves when a crash cut
             * the file after its size was extended: treat as the end. */
            const uint8_t *z = rec;
            while (z < end && *z == 0)
                z++;
            if (tag == 0 && z == end)
                goto cut;
            CORRUPT("unknown record tag 0x%02x", tag);
        }
        }
    }

cut:
    r->truncated = 1;
    r->done = 1;
    return 0;
bad_varint:
    snprintf(why, sizeof(why), "a number longer than 10 bytes");
corrupt:
    snprintf(r->err, sizeof(r->err), "%s: corrupt capture at byte %llu: %s", r->path,
             (unsigned long long)(rec - r->base), why);
    r->failed = 1;
    return -1;
}
