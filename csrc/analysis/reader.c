/* reader.c: decodes a capture file (format/format.h) into events.
 *
 * Mirror image of capture/writer.c. Two sources of bytes:
 *  - a raw capture in a regular file is mapped and decoded in place (the
 *    fast path: the window is the whole file);
 *  - anything else is a stream read into a window of ML_READER_WINDOW bytes:
 *    a compressed container (inflated through analysis/zinflate.h, from a
 *    file or a pipe), or a raw capture from a pipe, FIFO or device.
 * Every read is bounds-checked against the end of the window. A record cut by
 * the end of the window is read again after a refill (which keeps the record
 * and grows the window when one record is bigger than half of it); cut by
 * the end of the input, it ends the stream cleanly (truncated). Anything else
 * that does not follow format.h is reported with the byte offset of its
 * record in the raw capture.
 * Definitions live in arrays indexed by id; their strings and line maps in an
 * arena that is freed with the reader. Threads are found by a hash of their
 * id, so a capture of a million distinct thread ids reads in linear time.
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
#include "analysis/zinflate.h"

#define ML_READER_ERRCAP 512
#define ML_ARENA_CHUNK (64u * 1024u)
#define ML_READER_WINDOW (1u << 20)  /* stream window (grows for a bigger record) */
#define ML_READER_ZIN (256u << 10)   /* compressed input buffer */

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
    uint32_t version;         /* the header's format version */
    /* the window: base[0] is byte base_off of the raw capture; for a mapped
     * file it is the whole file (base_off 0, eof 1) */
    const uint8_t *base;
    const uint8_t *end;
    const uint8_t *p;         /* next record */
    uint64_t base_off;
    int eof;                  /* nothing follows r->end */
    int mapped;               /* base is a mapping of the file */
    size_t map_size;
    /* stream sources */
    int fd;                   /* -1 for a mapping */
    int seekable;             /* the stream can be read again from the start */
    int container;            /* a compressed container (fd is past its magic) */
    ml_zinflate *z;
    int zend;                 /* the zlib stream ended */
    uint8_t *buf;             /* the window's memory */
    size_t cap;
    uint8_t *zin;             /* compressed bytes read from fd, not inflated yet */
    size_t zin_pos, zin_len;
    uint64_t file_size;       /* bytes of the file (0: unknown, a pipe) */
    uint64_t file_pos;        /* bytes of the file read so far (streams) */
    uint64_t records_off;     /* first record, after the header */
    uint64_t defs_upto;       /* definitions before this offset are registered */
    char *meta;               /* the header's JSON (a copy) */
    uint32_t meta_len;
    int (*check)(void *);     /* interrupt check (ml_reader_set_check) */
    void *check_arg;
    unsigned check_countdown;

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
    uint32_t *thread_slots;   /* hash of thread ids: position + 1, 0 = empty */
    uint32_t thread_mask;     /* slots - 1; slots is a power of two */

    ml_arena_chunk *arena;
    char err[ML_READER_ERRCAP];

    /* heap at exit: the decoded HOLDER hops and HELD seqs of the last event */
    const char *hops[ML_HOLDER_HOPS_MAX];
    size_t hop_lens[ML_HOLDER_HOPS_MAX];
    ml_seq held[ML_HELD_MAX]; /* also rss: ARENA_BLOCKS seqs; OWNERS: the buffers */
    ml_seq owner_seqs[ML_OWNERS_MAX]; /* OWNERS: the owners' blocks */
    ml_type_id owner_types[ML_OWNERS_MAX];

    /* nstacks: native stacks (addresses in the arena) and mappings */
    struct { const uint64_t *addrs; uint32_t n; } *nstacks; /* index 0 unused */
    uint32_t nnstacks, nstacks_cap;
    ml_mapping_info *mappings;
    uint32_t nmappings, mappings_cap;
    uint32_t next_nstack;     /* NATIVE_ALLOC: for the next ALLOC (decoding state) */
    ml_seq gc_seqs[ML_GCSEQS_MAX]; /* gcexit: of the last GARBAGE_AT_EXIT / UNCOLLECTABLE */
    uint64_t narenas;         /* rss: ARENA records so far */
};
_Static_assert(ML_ARENA_BLOCKS_MAX <= ML_HELD_MAX, "ARENA_BLOCKS seqs are decoded into held[]");
_Static_assert(ML_OWNERS_MAX <= ML_HELD_MAX, "OWNERS seqs are decoded into held[]");

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

/* ---- the source of bytes: a mapping, or a window over a stream ---- */

/* Stream: read up to n raw-capture bytes into out. Returns the count, 0 at
 * the end of the input, -1 with a message in r->err. */
static ssize_t
ml_reader_source_read(ml_reader *r, uint8_t *out, size_t n)
{
    if (!r->container) {
        for (;;) {
            ssize_t k = read(r->fd, out, n);
            if (k >= 0) {
                r->file_pos += (uint64_t)k;
                return k;
            }
            if (errno != EINTR) {
                snprintf(r->err, sizeof(r->err), "cannot read %s: %s", r->path, strerror(errno));
                return -1;
            }
        }
    }
    size_t total = 0;
    while (total < n && !r->zend) {
        if (r->zin_pos == r->zin_len) {
            ssize_t k;
            do
                k = read(r->fd, r->zin, ML_READER_ZIN);
            while (k < 0 && errno == EINTR);
            if (k < 0) {
                snprintf(r->err, sizeof(r->err), "cannot read %s: %s", r->path, strerror(errno));
                return -1;
            }
            if (k == 0) {
                r->zend = 1; /* a container cut short: reads as a truncated capture */
                break;
            }
            r->file_pos += (uint64_t)k;
            r->zin_pos = 0;
            r->zin_len = (size_t)k;
        }
        size_t used, made;
        int zr = ml_zinflate_run(r->z, r->zin + r->zin_pos, r->zin_len - r->zin_pos, &used,
                                 out + total, n - total, &made);
        r->zin_pos += used;
        total += made;
        if (zr < 0) {
            if (r->base_off + (uint64_t)(r->end - r->base) + total == 0) {
                snprintf(r->err, sizeof(r->err),
                         "%s: damaged compressed capture (not a zlib stream)", r->path);
                return -1;
            }
            r->zend = 1; /* damaged later on: keep what inflated, read as truncated */
        } else if (zr > 0) {
            r->zend = 1;
        }
        if (!used && !made && zr == 0 && r->zin_pos < r->zin_len)
            r->zend = 1; /* no progress with input left: treat as the end */
    }
    return (ssize_t)total;
}

/* Stream: keep [keep, end) at the start of the window, then read more after
 * it until the window is full or the input ends. The window doubles when the
 * kept part fills more than half of it (one record bigger than the window).
 * Returns 1 when bytes were added, 0 at the end of the input, -1 on a read
 * or memory error (message in r->err). Moves the window: pointers into it
 * are invalid afterwards (r->p is the kept part's start). */
static int
ml_reader_fill(ml_reader *r, const uint8_t *keep)
{
    if (r->eof || r->fd < 0)
        return 0;
    size_t kept = (size_t)(r->end - keep);
    r->base_off += (uint64_t)(keep - r->base);
    if (kept && keep != r->buf)
        memmove(r->buf, keep, kept);
    if (kept > r->cap / 2) {
        size_t ncap = r->cap * 2;
        uint8_t *nb = ncap > r->cap ? realloc(r->buf, ncap) : NULL;
        if (!nb) {
            snprintf(r->err, sizeof(r->err), "%s: out of memory for a record of %zu bytes",
                     r->path, kept);
            return -1;
        }
        r->buf = nb;
        r->cap = ncap;
    }
    r->base = r->p = r->buf;
    r->end = r->buf + kept;
    size_t added = 0;
    while (kept + added < r->cap) {
        ssize_t k = ml_reader_source_read(r, r->buf + kept + added, r->cap - kept - added);
        if (k < 0)
            return -1;
        if (k == 0) {
            r->eof = 1;
            break;
        }
        added += (size_t)k;
    }
    r->end = r->buf + kept + added;
    return added > 0;
}

/* Stream: make sure the window holds n bytes from r->p (which must be
 * r->base). 0, or -1 when the input ends first or on an error. */
static int
ml_reader_need(ml_reader *r, size_t n)
{
    while ((size_t)(r->end - r->p) < n) {
        int k = ml_reader_fill(r, r->p);
        if (k <= 0)
            return -1;
    }
    return 0;
}

/* Stream: back to the first byte of the raw capture. 0, or -1 with r->err. */
static int
ml_reader_restart(ml_reader *r)
{
    if (!r->seekable) {
        snprintf(r->err, sizeof(r->err), "%s: a pipe can be read only once", r->path);
        return -1;
    }
    off_t start = r->container ? ML_ZMAGIC_LEN : 0;
    if (lseek(r->fd, start, SEEK_SET) < 0 || (r->z && ml_zinflate_reset(r->z) < 0)) {
        snprintf(r->err, sizeof(r->err), "cannot read %s again: %s", r->path, strerror(errno));
        return -1;
    }
    r->file_pos = (uint64_t)start;
    r->zin_pos = r->zin_len = 0;
    r->zend = 0;
    r->eof = 0;
    r->base = r->p = r->end = r->buf;
    r->base_off = 0;
    return 0;
}

/* ---- the header ---- */

/* The keys of the metadata that memlens reads, and the JSON they must hold
 * (null allowed): the reports use them without checking their types. */
enum { ML_META_ANY, ML_META_STRING, ML_META_STRINGS };
static const struct {
    const char *key;
    int kind;
    const char *why;
} ml_reader_meta_keys[] = {
    {"python", ML_META_STRING, "its \"python\" is not a string"},
    {"script", ML_META_STRING, "its \"script\" is not a string"},
    {"module", ML_META_STRING, "its \"module\" is not a string"},
    {"argv", ML_META_STRINGS, "its \"argv\" is not a list of strings"},
};

/* A strict JSON syntax check of the header's metadata: one object, nesting at
 * most ML_READER_META_DEPTH deep (so no reader recurses without bound), and
 * the keys above of the types memlens expects. Returns NULL, or what is
 * wrong. */
static const char *
ml_reader_check_json(const uint8_t *s, size_t n)
{
    const uint8_t *p = s, *end = s + n;
    char stack[ML_READER_META_DEPTH]; /* '{' or '[' */
    int depth = 0;
    enum { VALUE, KEY, COLON, NEXT } want = VALUE;
    int key = -1;       /* the top-level key whose value comes next (index above) */
    int in_strings = -1; /* inside the list of that key: its index */
#define WS() while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++
    WS();
    if (p == end || *p != '{')
        return "its metadata is not a JSON object";
    for (;;) {
        WS();
        if (p == end)
            break;
        uint8_t c = *p;
        if (want == VALUE && depth == 1 && key >= 0) {
            int ok = c == 'n' || (ml_reader_meta_keys[key].kind == ML_META_STRING ? c == '"' : c == '[');
            if (!ok)
                return ml_reader_meta_keys[key].why;
            if (c == '[')
                in_strings = key;
            key = -1;
        } else if (want == VALUE && depth == 2 && in_strings >= 0 && c != '"') {
            if (c != ']')
                return ml_reader_meta_keys[in_strings].why;
        }
        if (depth == 1)
            in_strings = want == VALUE ? in_strings : -1;
        if (want == NEXT) {
            if (!depth)
                return "its metadata has bytes after the JSON object";
            if (c == ',') {
                p++;
                want = stack[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if (c != (stack[depth - 1] == '{' ? '}' : ']'))
                return "its metadata is not valid JSON";
            p++;
            depth--;
            want = NEXT;
            continue;
        }
        if (want == COLON) {
            if (c != ':')
                return "its metadata is not valid JSON";
            p++;
            want = VALUE;
            continue;
        }
        if (want == KEY && c != '"')
            return "its metadata is not valid JSON";
        if (c == '{' || c == '[') {
            if (depth == ML_READER_META_DEPTH)
                return "its metadata is nested too deep";
            stack[depth++] = (char)c;
            p++;
            WS();
            if (p < end && *p == (c == '{' ? '}' : ']')) {
                p++;
                depth--;
                want = NEXT;
            } else {
                want = c == '{' ? KEY : VALUE;
            }
            continue;
        }
        if (c == '"') {
            const uint8_t *str = p + 1;
            for (p++;; p++) {
                if (p == end)
                    return "its metadata is not valid JSON";
                if (*p == '"')
                    break;
                if (*p < 0x20)
                    return "its metadata is not valid JSON";
                if (*p == '\\') {
                    if (++p == end)
                        return "its metadata is not valid JSON";
                    if (*p == 'u') {
                        for (int i = 0; i < 4; i++) {
                            p++;
                            if (p == end || !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                                              (*p >= 'A' && *p <= 'F')))
                                return "its metadata is not valid JSON";
                        }
                    } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                        return "its metadata is not valid JSON";
                    }
                }
            }
            if (want == KEY && depth == 1) {
                key = -1;
                for (int i = 0; i < (int)(sizeof(ml_reader_meta_keys) / sizeof(ml_reader_meta_keys[0])); i++)
                    if ((size_t)(p - str) == strlen(ml_reader_meta_keys[i].key) &&
                        !memcmp(str, ml_reader_meta_keys[i].key, (size_t)(p - str)))
                        key = i;
            }
            p++;
            want = want == KEY ? COLON : NEXT;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            if (c == '-')
                p++;
            if (p == end || !(*p >= '0' && *p <= '9'))
                return "its metadata is not valid JSON";
            if (*p == '0')
                p++;
            else
                while (p < end && *p >= '0' && *p <= '9')
                    p++;
            if (p < end && *p == '.') {
                p++;
                if (p == end || !(*p >= '0' && *p <= '9'))
                    return "its metadata is not valid JSON";
                while (p < end && *p >= '0' && *p <= '9')
                    p++;
            }
            if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-'))
                    p++;
                if (p == end || !(*p >= '0' && *p <= '9'))
                    return "its metadata is not valid JSON";
                while (p < end && *p >= '0' && *p <= '9')
                    p++;
            }
            want = NEXT;
            continue;
        }
        static const char *const words[] = {"true", "false", "null"};
        int ok = 0;
        for (int i = 0; i < 3 && !ok; i++) {
            size_t k = strlen(words[i]);
            if ((size_t)(end - p) >= k && !memcmp(p, words[i], k)) {
                p += k;
                ok = 1;
            }
        }
        if (!ok)
            return "its metadata is not valid JSON";
        want = NEXT;
    }
#undef WS
    return depth || want != NEXT ? "its metadata is not valid JSON" : NULL;
}

/* Check the header at r->p (the window's start); fills r->records_off and
 * r->meta, or writes a message. */
static int
ml_reader_parse_header(ml_reader *r, const char *path, char *err, size_t errcap)
{
    /* the magic first, from the bytes open() read: endless or foreign input
     * (/dev/zero, a pipe of text) is refused before anything else is read */
    const uint8_t *b = r->p;
    size_t n = (size_t)(r->end - b);
    if (!r->mapped && r->container) {
        ml_reader_fill(r, r->p); /* the first inflated bytes */
        b = r->p;
        n = (size_t)(r->end - b);
        if (r->err[0]) {
            ml_reader_seterr(err, errcap, "%s", r->err);
            return -1;
        }
    }
    if (n == 0) {
        ml_reader_seterr(err, errcap, "%s: empty file, not a memlens capture", path);
        return -1;
    }
    size_t k = n < ML_MAGIC_LEN ? n : ML_MAGIC_LEN;
    if (memcmp(b, ML_MAGIC, k) != 0) {
        ml_reader_seterr(err, errcap, "%s: not a memlens capture (no MLENS header)", path);
        return -1;
    }
    if (!r->mapped && ml_reader_need(r, ML_HEADER_FIXED) < 0 && r->err[0]) {
        ml_reader_seterr(err, errcap, "%s", r->err);
        return -1;
    }
    b = r->p;
    n = (size_t)(r->end - b);
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
    r->version = version;
    uint32_t json_len = ml_u32le_get(b + 12);
    if (json_len > ML_READER_META_MAX) {
        ml_reader_seterr(err, errcap, "%s: corrupt capture header: its metadata of %u bytes is "
                         "over the limit of %u", path, json_len, (unsigned)ML_READER_META_MAX);
        return -1;
    }
    if (!r->mapped && ml_reader_need(r, ML_HEADER_FIXED + (size_t)json_len) < 0) {
        ml_reader_seterr(err, errcap, "%s: capture is cut short inside its header", path);
        return -1;
    }
    b = r->p;
    if (json_len > (size_t)(r->end - b) - ML_HEADER_FIXED) {
        ml_reader_seterr(err, errcap, "%s: capture is cut short inside its header", path);
        return -1;
    }
    const char *why = ml_reader_check_json(b + ML_HEADER_FIXED, json_len);
    if (why) {
        ml_reader_seterr(err, errcap, "%s: corrupt capture header: %s", path, why);
        return -1;
    }
    r->meta = malloc((size_t)json_len + 1);
    if (!r->meta) {
        ml_reader_seterr(err, errcap, "%s: out of memory", path);
        return -1;
    }
    memcpy(r->meta, b + ML_HEADER_FIXED, json_len);
    r->meta[json_len] = '\0';
    r->meta_len = json_len;
    r->records_off = ML_HEADER_FIXED + (uint64_t)json_len;
    return 0;
}

static ml_thread_state *ml_reader_thread_state(ml_reader *r, ml_thread_id id);

static void
ml_reader_reset_state(ml_reader *r)
{
    r->time_us = 0;
    r->last_seq = 0;
    r->next_nstack = 0;
    r->narenas = 0;
    memset(r->cache, 0, sizeof(r->cache));
    for (uint32_t i = 0; i < r->nthreads; i++)
        r->threads[i].context = 0;
    r->cur = &r->threads[0]; /* thread 0 exists from open on */
    r->done = r->truncated = r->failed = 0;
    memset(r->trailer, 0, sizeof(r->trailer));
    ml_live_clear(&r->live);
    r->err[0] = '\0';
    r->check_countdown = ML_READER_CHECK_EVERY;
    if (r->mapped) {
        r->p = r->base + r->records_off;
        return;
    }
    /* a stream: still inside the first window, or read again from the start */
    if (r->base_off <= r->records_off &&
        r->records_off <= r->base_off + (uint64_t)(r->end - r->base)) {
        r->p = r->base + (r->records_off - r->base_off);
        return;
    }
    if (ml_reader_restart(r) < 0 || ml_reader_need(r, (size_t)r->records_off) < 0) {
        if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "%s: the capture changed while it was read",
                     r->path);
        r->failed = 1;
        return;
    }
    r->p = r->base + r->records_off;
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
    r->fd = -1;
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
    r->seekable = S_ISREG(st.st_mode);
    r->file_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    /* The first bytes say which source: read them from the fd (a pipe cannot
     * give them back, so they become the start of the stream's window). */
    r->cap = ML_READER_WINDOW;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        e = ENOMEM;
        ml_reader_seterr(err, errcap, "%s: out of memory", path);
        goto close_fd;
    }
    size_t got = 0;
    while (got < ML_ZMAGIC_LEN) {
        ssize_t k = read(fd, r->buf + got, ML_ZMAGIC_LEN - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            e = errno;
            ml_reader_seterr(err, errcap, "cannot read %s: %s", path, strerror(e));
            goto close_fd;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    r->fd = fd;
    r->file_pos = got;
    r->base = r->p = r->buf;
    r->end = r->buf + got;
    if (got == ML_ZMAGIC_LEN && !memcmp(r->buf, ML_ZMAGIC, ML_ZMAGIC_LEN)) {
        r->container = 1;
        r->z = ml_zinflate_new();
        if (!r->z) {
            e = ENOSYS;
            ml_reader_seterr(err, errcap, "%s: a compressed capture, and zlib (libz.so.1) cannot "
                             "be loaded", path);
            goto free_reader;
        }
        r->end = r->buf; /* the magic is not part of the raw capture */
    } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
            r->mapped = 1;
            r->map_size = (size_t)st.st_size;
            r->base = r->p = m;
            r->end = r->base + st.st_size;
            r->eof = 1;
            free(r->buf);
            r->buf = NULL;
            r->cap = 0;
            close(fd);
            r->fd = -1;
        }
    }
    if (!r->mapped && !r->container && got < ML_ZMAGIC_LEN)
        r->eof = 1; /* the input ended inside the magic */
    if (!r->mapped && r->container) {
        r->zin = malloc(ML_READER_ZIN);
        if (!r->zin) {
            e = ENOMEM;
            ml_reader_seterr(err, errcap, "%s: out of memory", path);
            goto free_reader;
        }
    }
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
    if (r->mapped)
        munmap((void *)r->base, r->map_size);
    if (r->fd >= 0)
        close(r->fd);
    ml_zinflate_free(r->z);
    free(r->buf);
    free(r->zin);
    free(r->meta);
    ml_live_release(&r->live);
    free(r->codes);
    free(r->frames);
    free(r->types);
    free(r->threads);
    free(r->thread_slots);
    free(r->nstacks);
    free(r->mappings);
    ml_reader_arena_free(r->arena);
    free(r->path);
    free(r);
}

const char *
ml_reader_meta(const ml_reader *r, size_t *len)
{
    *len = r->meta_len;
    return r->meta;
}

void
ml_reader_rewind(ml_reader *r)
{
    ml_reader_reset_state(r);
}

void
ml_reader_set_check(ml_reader *r, int (*check)(void *arg), void *arg)
{
    r->check = check;
    r->check_arg = arg;
}

const char *ml_reader_error(const ml_reader *r) { return r->err; }
int ml_reader_truncated(const ml_reader *r) { return r->truncated; }
int ml_reader_is_stream(const ml_reader *r) { return !r->mapped; }

uint64_t
ml_reader_pos(const ml_reader *r)
{
    if (r->mapped)
        return (uint64_t)(r->p - r->base);
    /* a stream: bytes of the file read (compressed ones for a container) */
    return r->file_pos;
}

uint64_t ml_reader_size(const ml_reader *r) { return r->mapped ? r->map_size : r->file_size; }
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
    if (!r->thread_slots)
        return NULL;
    for (uint32_t i = (id * 0x9E3779B1u) & r->thread_mask;; i = (i + 1) & r->thread_mask) {
        uint32_t v = r->thread_slots[i];
        if (!v)
            return NULL;
        if (r->threads[v - 1].id == id) {
            if (os_tid)
                *os_tid = r->threads[v - 1].os_tid;
            return r->threads[v - 1].name;
        }
    }
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

int
ml_reader_live_find(const ml_reader *r, ml_seq seq, uint64_t *size, ml_frame_id *stack, ml_type_id *type,
                    ml_domain *domain)
{
    ml_live_block b;
    if (ml_live_find(&r->live, seq, &b) < 0)
        return -1;
    if (size)
        *size = b.size;
    if (stack)
        *stack = b.stack;
    if (type)
        *type = b.type;
    if (domain)
        *domain = b.domain;
    return 0;
}

/* gcexit */
int
ml_reader_live_get(const ml_reader *r, ml_seq seq, uint64_t *size, ml_frame_id *stack, ml_type_id *type)
{
    return ml_reader_live_find(r, seq, size, stack, type, NULL);
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
    /* Thread ids are small numbers given out in order, but a capture may
     * name any: an open-addressing hash (linear probing, load below 1/2)
     * keeps every lookup O(1). */
    if (r->cur && r->cur->id == id)
        return r->cur;
    uint32_t i = 0;
    if (r->thread_slots) {
        for (i = (id * 0x9E3779B1u) & r->thread_mask;; i = (i + 1) & r->thread_mask) {
            uint32_t v = r->thread_slots[i];
            if (!v)
                break;
            if (r->threads[v - 1].id == id)
                return &r->threads[v - 1];
        }
    }
    if (r->nthreads == UINT32_MAX / 4)
        return NULL;
    if (!r->thread_slots || (uint64_t)(r->nthreads + 1) * 2 > (uint64_t)r->thread_mask + 1) {
        uint32_t nslots = r->thread_slots ? (r->thread_mask + 1) * 2 : 64;
        uint32_t *ns = calloc(nslots, sizeof(*ns));
        if (!ns)
            return NULL;
        for (uint32_t k = 0; k < r->nthreads; k++) {
            uint32_t j = (r->threads[k].id * 0x9E3779B1u) & (nslots - 1);
            while (ns[j])
                j = (j + 1) & (nslots - 1);
            ns[j] = k + 1;
        }
        free(r->thread_slots);
        r->thread_slots = ns;
        r->thread_mask = nslots - 1;
        for (i = (id * 0x9E3779B1u) & r->thread_mask; r->thread_slots[i];
             i = (i + 1) & r->thread_mask)
            ;
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
    r->thread_slots[i] = r->nthreads;
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
        if ((len) > ML_READER_STR_MAX)                      \
            goto long_string;                               \
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
    const uint8_t *end, *rec, *p;
    char why[200];
    uint64_t a, b, c, d;
    const uint8_t *s1, *s2;
    uint64_t at = UINT64_MAX; /* the record's offset, when not rec's */

again:
    for (;;) {
        if (--r->check_countdown == 0) {
            r->check_countdown = ML_READER_CHECK_EVERY;
            if (r->check && r->check(r->check_arg)) {
                snprintf(r->err, sizeof(r->err), "interrupted");
                r->failed = 1;
                return -1;
            }
        }
        rec = p = r->p;
        end = r->end;
        if (p >= end) {
            if (!r->eof) {
                int k = ml_reader_fill(r, p);
                if (k < 0)
                    goto io_error;
                if (k > 0)
                    continue;
            }
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
            ev->nstack = r->next_nstack;
            r->next_nstack = 0;
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

        /* definitions: registered once, on the first pass over them */
        int fresh = r->base_off + (uint64_t)(rec - r->base) >= r->defs_upto;
        if (tag >= ML_TAG_V2_FIRST && tag < ML_TAG_FREE && r->version < 2)
            CORRUPT("record tag 0x%02x is not in format version %u", tag, (unsigned)r->version);
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
                r->defs_upto = r->base_off + (uint64_t)(p - r->base);
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
            if (n > ML_READER_RUNS_MAX)
                CORRUPT("CODE_DEF %llu with a line map of %llu runs (at most %u)",
                        (unsigned long long)a, (unsigned long long)n,
                        (unsigned)ML_READER_RUNS_MAX);
            if (n > (uint64_t)(end - p) / 2)
                goto cut; /* each run takes at least two bytes */
            /* check the whole map before anything is allocated for it, so a
             * map cut by the window costs nothing when it is read again */
            const uint8_t *map = p;
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
            }
            if (fresh) {
                uint32_t *offs = ml_reader_arena_alloc(&r->arena, (size_t)n * sizeof(*offs) + 1);
                int32_t *lines = ml_reader_arena_alloc(&r->arena, (size_t)n * sizeof(*lines) + 1);
                if (!offs || !lines)
                    CORRUPT("out of memory for a line map of %llu runs", (unsigned long long)n);
                const uint8_t *q = map;
                off = 0;
                line = (int64_t)first;
                for (uint64_t i = 0; i < n; i++) {
                    ml_reader_uv(&q, p, &d); /* checked above */
                    ml_reader_uv(&q, p, &b);
                    off += d;
                    line += ml_unzigzag(b);
                    offs[i] = (uint32_t)off;
                    lines[i] = (int32_t)line;
                }
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
                r->defs_upto = r->base_off + (uint64_t)(p - r->base);
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
                r->defs_upto = r->base_off + (uint64_t)(p - r->base);
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
                r->defs_upto = r->base_off + (uint64_t)(p - r->base);
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
        /* ---- rss: the RSS breakdown (0x17 RSS_SAMPLE, 0x18 ARENA, 0x19 ARENA_BLOCKS) ---- */
        case ML_TAG_RSS_SAMPLE: {
            uint64_t fields[ML_RSS_NFIELDS] = {0};
            GET_UV(a);
            if (a > ML_READER_TRAILER_MAX)
                CORRUPT("RSS_SAMPLE with %llu fields (at most %u)", (unsigned long long)a,
                        (unsigned)ML_READER_TRAILER_MAX);
            for (uint64_t i = 0; i < a; i++) {
                GET_UV(b);
                if (i < ML_RSS_NFIELDS)
                    fields[i] = b;
            }
            r->p = p;
            ev->kind = ML_EV_RSS;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            memcpy(ev->rss_fields, fields, sizeof(fields));
            return 1;
        }
        case ML_TAG_ARENA: {
            uint64_t f[6];
            for (int i = 0; i < 6; i++)
                GET_UV(f[i]);
            if (f[1] == 0 || f[1] > ((uint64_t)1 << 40) || f[0] > UINT64_MAX - f[1] || f[2] > f[1] ||
                f[3] > f[1] || f[4] > f[3] || f[5] > f[1])
                CORRUPT("ARENA of %llu bytes at %#llx (%llu resident, %llu of %llu pools used, %llu bytes used)",
                        (unsigned long long)f[1], (unsigned long long)f[0], (unsigned long long)f[2],
                        (unsigned long long)f[4], (unsigned long long)f[3], (unsigned long long)f[5]);
            r->p = p;
            ev->kind = ML_EV_ARENA;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->arena_index = r->narenas++;
            ev->arena_base = f[0];
            ev->arena_size = f[1];
            ev->arena_resident = f[2];
            ev->arena_pools = f[3];
            ev->arena_pools_used = f[4];
            ev->arena_used = f[5];
            return 1;
        }
        case ML_TAG_ARENA_BLOCKS: {
            GET_UV(a);
            GET_UV(b);
            if (a >= r->narenas)
                CORRUPT("ARENA_BLOCKS of arena %llu (%llu arenas so far)", (unsigned long long)a,
                        (unsigned long long)r->narenas);
            if (b > ML_ARENA_BLOCKS_MAX)
                CORRUPT("ARENA_BLOCKS with %llu blocks (at most %u)", (unsigned long long)b,
                        (unsigned)ML_ARENA_BLOCKS_MAX);
            ml_seq prev = 0;
            for (uint64_t i = 0; i < b; i++) {
                GET_UV(d);
                if (d == 0 || d > r->last_seq - prev)
                    CORRUPT("ARENA_BLOCKS block after %llu at distance %llu (%llu blocks so far)",
                            (unsigned long long)prev, (unsigned long long)d, (unsigned long long)r->last_seq);
                prev += d;
                r->held[i] = prev;
            }
            r->p = p;
            ev->kind = ML_EV_ARENA_BLOCKS;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->arena_index = a;
            ev->held = r->held;
            ev->nheld = (size_t)b;
            return 1;
        }
        /* ---- end rss ---- */
        /* ---- garbage collector (gc): GC_START, GC_STOP ---- */
        case ML_TAG_GC_START:
        case ML_TAG_GC_STOP:
            GET_UV(a);
            GET_UV(b);
            if (tag == ML_TAG_GC_START) {
                GET_UV(c);
                d = 0;
            } else {
                GET_UV(c);
                GET_UV(d);
            }
            if (a > ML_GC_GENERATION_MAX)
                CORRUPT("%s of generation %llu", tag == ML_TAG_GC_START ? "GC_START" : "GC_STOP",
                        (unsigned long long)a);
            if (tag == ML_TAG_GC_START && c > r->nframes)
                CORRUPT("GC_START with undefined stack %llu", (unsigned long long)c);
            r->p = p;
            ev->kind = tag == ML_TAG_GC_START ? ML_EV_GC_START : ML_EV_GC_STOP;
            ev->time_us = b;
            ev->thread = r->cur->id;
            ev->gc_generation = (unsigned)a;
            if (tag == ML_TAG_GC_START) {
                ev->stack = (ml_frame_id)c;
                ev->gc_collected = ev->gc_uncollectable = 0;
            } else {
                ev->gc_collected = c;
                ev->gc_uncollectable = d;
            }
            return 1;
        /* ---- end of gc ---- */
        /* ---- gcexit: GARBAGE_AT_EXIT, UNCOLLECTABLE ---- */
        case ML_TAG_GARBAGE_AT_EXIT:
        case ML_TAG_UNCOLLECTABLE: {
            const char *what = tag == ML_TAG_GARBAGE_AT_EXIT ? "GARBAGE_AT_EXIT" : "UNCOLLECTABLE";
            GET_UV(a);
            if (a > ML_GCSEQS_MAX)
                CORRUPT("%s with %llu blocks (at most %u)", what, (unsigned long long)a,
                        (unsigned)ML_GCSEQS_MAX);
            ml_seq prev = 0;
            for (uint64_t i = 0; i < a; i++) {
                GET_UV(d);
                if (d == 0 || d > r->last_seq - prev)
                    CORRUPT("%s block after %llu at distance %llu (%llu blocks so far)", what,
                            (unsigned long long)prev, (unsigned long long)d, (unsigned long long)r->last_seq);
                prev += d;
                r->gc_seqs[i] = prev;
            }
            r->p = p;
            ev->kind = tag == ML_TAG_GARBAGE_AT_EXIT ? ML_EV_GARBAGE_AT_EXIT : ML_EV_UNCOLLECTABLE;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->gc_seqs = r->gc_seqs;
            ev->n_gc_seqs = (size_t)a;
            return 1;
        }
        /* ---- end of gcexit ---- */
        /* ---- heap at exit (0x10..0x13, docs/FORMAT.md "Heap at exit") ---- */
        case ML_TAG_SNAPSHOT:
            GET_UV(a);
            b = c = 0;
            if (a > ML_SNAP_OWNERS)
                CORRUPT("SNAPSHOT of unknown kind %llu", (unsigned long long)a);
            if (a == ML_SNAP_END) {
                GET_UV(b);
                GET_UV(c);
            }
            r->p = p;
            ev->kind = ML_EV_SNAPSHOT;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->mark_kind = (unsigned)a;
            ev->snap_objects = b;
            ev->snap_us = c;
            return 1;
        case ML_TAG_OWNER: {
            GET_UV(a);
            GET_UV(b);
            GET_UV(c);
            if (a == 0 || a > r->last_seq || b > r->last_seq)
                CORRUPT("OWNER of block %llu by block %llu (%llu blocks so far)", (unsigned long long)a,
                        (unsigned long long)b, (unsigned long long)r->last_seq);
            if (c == 0 || c > r->ntypes)
                CORRUPT("OWNER with undefined type %llu", (unsigned long long)c);
            r->p = p;
            ev->kind = ML_EV_OWNER;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->seq = a;
            ev->owner_seq = b;
            ev->type = (ml_type_id)c;
            return 1;
        }
        case ML_TAG_OWNERS: {
            GET_UV(a);
            if (a == 0 || a > ML_OWNERS_MAX)
                CORRUPT("OWNERS with %llu entries (1 to %u)", (unsigned long long)a, (unsigned)ML_OWNERS_MAX);
            ml_seq prev = 0;
            for (uint64_t i = 0; i < a; i++) {
                GET_UV(b);
                GET_UV(c);
                GET_UV(d);
                int64_t delta = ml_unzigzag(b), dist = ml_unzigzag(c);
                /* seq = prev + delta in 1..last_seq; owner = seq - dist in 0..last_seq */
                if ((delta >= 0 ? (uint64_t)delta > r->last_seq - prev : (uint64_t)0 - (uint64_t)delta >= prev))
                    CORRUPT("OWNERS entry %llu: block after %llu at distance %lld (%llu blocks so far)",
                            (unsigned long long)i, (unsigned long long)prev, (long long)delta,
                            (unsigned long long)r->last_seq);
                ml_seq seq = prev + (uint64_t)delta;
                if (seq == 0 ||
                    (dist >= 0 ? (uint64_t)dist > seq : (uint64_t)0 - (uint64_t)dist > r->last_seq - seq))
                    CORRUPT("OWNERS entry %llu: block %llu owned at distance %lld (%llu blocks so far)",
                            (unsigned long long)i, (unsigned long long)seq, (long long)dist,
                            (unsigned long long)r->last_seq);
                if (d == 0 || d > r->ntypes)
                    CORRUPT("OWNERS entry %llu with undefined type %llu", (unsigned long long)i,
                            (unsigned long long)d);
                r->held[i] = seq;
                r->owner_seqs[i] = seq - (uint64_t)dist;
                r->owner_types[i] = (ml_type_id)d;
                prev = seq;
            }
            r->p = p;
            ev->kind = ML_EV_OWNERS;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->held = r->held;
            ev->nheld = (size_t)a;
            ev->owner_seqs = r->owner_seqs;
            ev->owner_types = r->owner_types;
            return 1;
        }
        case ML_TAG_HOLDER:
            GET_UV(a);
            GET_UV(b);
            if (a == 0 || a > UINT32_MAX)
                CORRUPT("HOLDER with id %llu", (unsigned long long)a);
            if (b > ML_HOLDER_HOPS_MAX)
                CORRUPT("HOLDER with %llu hops (at most %u)", (unsigned long long)b,
                        (unsigned)ML_HOLDER_HOPS_MAX);
            for (uint64_t i = 0; i < b; i++) {
                GET_STR(s1, d);
                r->hops[i] = (const char *)s1;
                r->hop_lens[i] = (size_t)d;
            }
            GET_UV(c);
            r->p = p;
            ev->kind = ML_EV_HOLDER;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->holder = (uint32_t)a;
            ev->hops = r->hops;
            ev->hop_lens = r->hop_lens;
            ev->nhops = (size_t)b;
            ev->retained = c;
            return 1;
        case ML_TAG_HELD: {
            GET_UV(a);
            GET_UV(b);
            if (a == 0 || a > UINT32_MAX)
                CORRUPT("HELD by holder %llu", (unsigned long long)a);
            if (b > ML_HELD_MAX)
                CORRUPT("HELD with %llu blocks (at most %u)", (unsigned long long)b, (unsigned)ML_HELD_MAX);
            ml_seq prev = 0;
            for (uint64_t i = 0; i < b; i++) {
                GET_UV(d);
                if (d == 0 || d > r->last_seq - prev)
                    CORRUPT("HELD block after %llu at distance %llu (%llu blocks so far)",
                            (unsigned long long)prev, (unsigned long long)d, (unsigned long long)r->last_seq);
                prev += d;
                r->held[i] = prev;
            }
            r->p = p;
            ev->kind = ML_EV_HELD;
            ev->time_us = r->time_us;
            ev->thread = r->cur->id;
            ev->holder = (uint32_t)a;
            ev->held = r->held;
            ev->nheld = (size_t)b;
            return 1;
        }
        /* ---- end of heap at exit ---- */
        /* ---- nstacks: native frames (0x14..0x16) ---- */
        case ML_TAG_NATIVE_STACK:
            GET_UV(a);
            GET_UV(b);
            if (b == 0 || b > ML_NSTACK_MAX)
                CORRUPT("NATIVE_STACK with %llu addresses (1 to %u)", (unsigned long long)b,
                        (unsigned)ML_NSTACK_MAX);
            {
                uint64_t addrs[ML_NSTACK_MAX];
                for (uint64_t i = 0; i < b; i++)
                    GET_UV(addrs[i]);
                if (fresh) {
                    if (a != (uint64_t)r->nnstacks + 1 || a >= UINT32_MAX)
                        CORRUPT("NATIVE_STACK %llu out of order (expected %llu)", (unsigned long long)a,
                                (unsigned long long)r->nnstacks + 1);
                    uint64_t *copy = ml_reader_arena_alloc(&r->arena, (size_t)b * sizeof(uint64_t));
                    if (!copy || ml_reader_grow((void **)&r->nstacks, &r->nstacks_cap, r->nnstacks + 1,
                                                sizeof(*r->nstacks)) < 0)
                        CORRUPT("out of memory for native stacks");
                    memcpy(copy, addrs, (size_t)b * sizeof(uint64_t));
                    r->nnstacks++;
                    r->nstacks[r->nnstacks].addrs = copy;
                    r->nstacks[r->nnstacks].n = (uint32_t)b;
                    r->defs_upto = r->base_off + (uint64_t)(p - r->base);
                }
            }
            r->p = p;
            continue;
        case ML_TAG_NATIVE_ALLOC:
            GET_UV(a);
            if (a == 0 || a > r->nnstacks)
                CORRUPT("NATIVE_ALLOC with undefined native stack %llu", (unsigned long long)a);
            r->next_nstack = (uint32_t)a;
            r->p = p;
            continue;
        case ML_TAG_MAPPING:
            GET_UV(a);
            GET_UV(b);
            GET_UV(c);
            GET_STR(s1, d);
            {
                uint64_t blen;
                GET_STR(s2, blen);
                if (b <= a)
                    CORRUPT("MAPPING from 0x%llx to 0x%llx", (unsigned long long)a, (unsigned long long)b);
                if (blen > ML_BUILD_ID_MAX)
                    CORRUPT("MAPPING with a build-id of %llu bytes (at most %u)", (unsigned long long)blen,
                            (unsigned)ML_BUILD_ID_MAX);
                if (fresh) {
                    if (ml_reader_grow((void **)&r->mappings, &r->mappings_cap, r->nmappings,
                                       sizeof(*r->mappings)) < 0)
                        CORRUPT("out of memory for mappings");
                    ml_mapping_info *m = &r->mappings[r->nmappings];
                    m->path = ml_reader_strdup(r, s1, d);
                    m->build_id = (const uint8_t *)ml_reader_strdup(r, s2, blen);
                    if (!m->path || !m->build_id)
                        CORRUPT("out of memory for mappings");
                    m->start = a;
                    m->end = b;
                    m->offset = c;
                    m->build_id_len = (size_t)blen;
                    r->nmappings++;
                    r->defs_upto = r->base_off + (uint64_t)(p - r->base);
                }
            }
            r->p = p;
            continue;
        /* ---- end of nstacks ---- */
        case ML_TAG_TRAILER: {
            uint64_t fields[ML_TRAILER_COUNT] = {0};
            GET_UV(a);
            if (a > ML_READER_TRAILER_MAX)
                CORRUPT("TRAILER with %llu counters (at most %u)", (unsigned long long)a,
                        (unsigned)ML_READER_TRAILER_MAX);
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
             * the file after its size was extended: treat as the end. A
             * stream's zeros are dropped window by window as they are
             * scanned (the window never grows for them). */
            if (tag != 0)
                CORRUPT("unknown record tag 0x%02x", tag);
            at = r->base_off + (uint64_t)(rec - r->base);
            const uint8_t *z = p;
            for (;;) {
                /* in steps of 16 MiB, with the interrupt check between: a
                 * sparse file can hold terabytes of zeros */
                const uint8_t *lim = (size_t)(end - z) > (16u << 20) ? z + (16u << 20) : end;
                while (z < lim && *z == 0)
                    z++;
                if (z < lim)
                    CORRUPT("unknown record tag 0x00");
                if (r->check && r->check(r->check_arg)) {
                    snprintf(r->err, sizeof(r->err), "interrupted");
                    goto io_error;
                }
                if (z < end)
                    continue;
                if (r->eof)
                    goto truncated;
                int k = ml_reader_fill(r, end);
                if (k < 0)
                    goto io_error;
                if (k == 0)
                    goto truncated;
                z = r->p;
                end = r->end;
            }
        }
        }
    }

cut:
    if (!r->eof) {
        /* the window ends inside the record: read it again after a refill */
        int k = ml_reader_fill(r, rec);
        if (k < 0)
            goto io_error;
        if (k > 0)
            goto again;
    }
truncated:
    r->truncated = 1;
    r->done = 1;
    return 0;
io_error:
    r->failed = 1;
    return -1;
long_string:
    snprintf(why, sizeof(why), "a string of more than %u bytes", (unsigned)ML_READER_STR_MAX);
    goto corrupt;
bad_varint:
    snprintf(why, sizeof(why), "a number longer than 10 bytes");
corrupt:
    snprintf(r->err, sizeof(r->err), "%s: corrupt capture at byte %llu: %s", r->path,
             (unsigned long long)(at != UINT64_MAX ? at : r->base_off + (uint64_t)(rec - r->base)),
             why);
    r->failed = 1;
    return -1;
}

/* ---- nstacks ---- */

const uint64_t *
ml_reader_native_stack(const ml_reader *r, uint32_t id, uint32_t *n)
{
    if (id == 0 || id > r->nnstacks) {
        *n = 0;
        return NULL;
    }
    *n = r->nstacks[id].n;
    return r->nstacks[id].addrs;
}

uint32_t ml_reader_nnative_stacks(const ml_reader *r) { return r->nnstacks; }

const ml_mapping_info *
ml_reader_mappings(const ml_reader *r, uint32_t *n)
{
    *n = r->nmappings;
    return r->mappings;
}
