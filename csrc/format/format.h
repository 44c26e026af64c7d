/* format.h: the memlens capture file, version 2: tags, byte layouts, varints.
 *
 * Layer: shared by the writer (capture/, runs inside allocator hooks) and the
 * reader (analysis/). Pure C: no Python API, no allocation. docs/FORMAT.md is
 * the prose version of this header, with worked examples; keep them in step.
 *
 * File = header, then a stream of records. Every record starts with one tag
 * byte. Integers are unsigned LEB128 varints ("uv") unless said otherwise;
 * "sv" is a zigzag-encoded signed varint; "str" is uv length + UTF-8 bytes.
 *
 *   header   "MLENS\0\r\n"  8 bytes magic
 *            u32 LE         format version (ML_FORMAT_VERSION)
 *            u32 LE         length N of the JSON metadata that follows
 *            N bytes        JSON object (python, pid, argv, start_time_us, options)
 *
 * Records (the reader keeps a "current thread", a "current time", and a
 * counter of ALLOC records, the allocation sequence number, seq, from 1):
 *
 *   0x01 TIME        uv dt_us           time advances by dt microseconds
 *   0x02 THREAD      uv thread          following events come from this thread
 *   0x03 THREAD_DEF  uv thread, uv os_tid, str name
 *   0x04 CODE_DEF    uv code (1, 2, ... in order), str filename, str name,
 *                    uv firstlineno, uv n, n x (uv offset_delta, sv line_delta)
 *                    the line map: from byte offset o (running sum of the
 *                    deltas, first relative to 0) the line is l (running sum of
 *                    line deltas, first relative to firstlineno); line 0 = none
 *   0x05 FRAME_DEF   uv frame (1, 2, ... in order), uv parent (0 = outermost),
 *                    uv code, uv offset  (byte offset of the instruction)
 *                    a frame id names a whole stack: itself and its parents
 *   0x06 TYPE_DEF    uv type (1, 2, ... in order), str name, uv flags
 *   0x07 MEMORY      uv rss_bytes, uv heap_bytes   (sample at current time)
 *   0x08 CONTEXT     uv stack       the current thread's Python stack is now
 *                                   `stack` (for FREE records that follow)
 *   0x09 REUSE       uv type        an object of `type` was created in a
 *                                   block that stayed allocated (free list)
 *   0x0A MARK        uv kind, str label   (ML_MARK_*: user-visible brackets)
 *   0x0B NOTE        uv kind, str text    (ML_NOTE_*: what the tracker lost)
 *   0x0C TRAILER     uv n, n x uv       clean end; counters (ML_TRAILER_*)
 *   0x0D FORK        uv child_pid      the process forked here
 *   0x17 RSS_SAMPLE  uv n, n x uv      (version 2, rss) where the RSS goes at
 *                    the current time: fields ML_RSS_* of capture/rsssample.h
 *                    (bytes, but the arena count); a reader ignores extra
 *                    fields and takes missing ones as 0
 *   0x18 ARENA       uv base, uv size, uv resident, uv pools, uv pools_used,
 *                    uv used   (version 2, rss) one live pymalloc arena at
 *                    the end of the capture (address, bytes, resident bytes,
 *                    pools, pools holding a block, bytes in allocated
 *                    blocks); arenas are numbered 0, 1, ... in file order
 *   0x19 ARENA_BLOCKS uv arena, uv n (<= ML_ARENA_BLOCKS_MAX), n x uv seq
 *                    delta (ascending, the first relative to 0): live
 *                    recorded blocks inside that arena (written for arenas
 *                    at most ML_ARENA_BLOCKS_PCT % used)
 *   (version 2, garbage collector: the current thread is the collecting one)
 *   0x0E GC_START    uv generation, uv t_us, uv stack
 *                    a collection of `generation` (0-2) starts at t_us
 *                    (microseconds since the start, exact: not the 10 ms
 *                    clock of TIME); stack: where the thread was (0 = none)
 *   0x0F GC_STOP     uv generation, uv t_us, uv collected, uv uncollectable
 *                    the collection ends. FREE records of the same thread
 *                    between GC_START and GC_STOP are the collector's
 *   0x40..0x7E FREE  block seq = last_seq - (tag - 0x40)   (frees of recent blocks)
 *   0x7F FREE        uv d: block seq = last_seq - 63 - d
 *   0x80..0xFF ALLOC tag = 1 DD SSSSS: DD domain (0 RAW, 1 MEM, 2 OBJ; 3 is
 *                    invalid), SSSSS slot. Slot 31: uv stack, uv type follow
 *                    and are stored in cache[ml_slot_of(stack, type)]; slot
 *                    s < 31: (stack, type) = cache[s]. Then uv size.
 *                    The block gets seq = ++last_seq, the current stack = stack.
 *
 * Ids: 0 means none (no Python stack; not an object of a known type).
 * The pair cache starts all zeros (stack 0, type 0) at the start of the file.
 */
#ifndef ML_FORMAT_H
#define ML_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ML_MAGIC "MLENS\0\r\n"
#define ML_MAGIC_LEN 8
/* The compressed container: this magic, then one zlib stream of a capture. */
#define ML_ZMAGIC "MLENSZ\0\n"
#define ML_ZMAGIC_LEN 8
#define ML_FORMAT_VERSION 2u
#define ML_HEADER_FIXED 16 /* magic + version + json length */

enum ml_tag {
    ML_TAG_TIME = 0x01,
    ML_TAG_THREAD = 0x02,
    ML_TAG_THREAD_DEF = 0x03,
    ML_TAG_CODE_DEF = 0x04,
    ML_TAG_FRAME_DEF = 0x05,
    ML_TAG_TYPE_DEF = 0x06,
    ML_TAG_MEMORY = 0x07,
    ML_TAG_CONTEXT = 0x08,
    ML_TAG_REUSE = 0x09,
    ML_TAG_MARK = 0x0A,
    ML_TAG_NOTE = 0x0B,
    ML_TAG_TRAILER = 0x0C,
    ML_TAG_FORK = 0x0D,
    /* Version 2 adds tags from 0x0E; in a version-1 file they are corrupt.
     * Assigned (each defined by the part that writes it, in docs/FORMAT.md):
     *   0x0E..0x0F  garbage collector (collections, pauses)
     *   0x10..0x13  heap at exit (buffer owners, holders, retained sizes)
     *   0x14..0x19  native memory and RSS breakdown
     *   0x1A..0x1B  cyclic garbage at exit, uncollectable (gcexit)
     *   0x1C        heap at exit: buffer owners in batches (OWNERS)
     *   0x1D..0x3F  free */
    ML_TAG_V2_FIRST = 0x0E,
    /* rss: the RSS breakdown */
    ML_TAG_RSS_SAMPLE = 0x17,
    ML_TAG_ARENA = 0x18,
    ML_TAG_ARENA_BLOCKS = 0x19,
    ML_TAG_GC_START = 0x0E, /* garbage collector (docs/FORMAT.md "GC records") */
    ML_TAG_GC_STOP = 0x0F,
    /* heap at exit (docs/FORMAT.md "Heap at exit"):
     *   0x10 SNAPSHOT  uv kind (ML_SNAP_*); kind 0 (end) adds
     *                  uv objects walked, uv duration_us
     *   0x11 OWNER     uv seq, uv owner_seq (0 = not recorded), uv type
     *                  the block seq is a buffer of the object in block
     *                  owner_seq; `type` (a TYPE_DEF with ML_TYPEF_BUFFER)
     *                  names it by owner: "list (items)"
     *   0x12 HOLDER    uv id (1, 2, ... in the snapshot), uv n, n x str hop,
     *                  uv retained (bytes; 0 = not measured)
     *                  a path from a named root: "module __main__", ".KEEP",
     *                  "(list)", "[i]"
     *   0x13 HELD      uv holder, uv n (<= ML_HELD_MAX), n x uv seq delta
     *                  (ascending seqs, the first relative to 0): blocks
     *                  that the holder's path reaches */
    ML_TAG_SNAPSHOT = 0x10,
    ML_TAG_OWNER = 0x11,
    ML_TAG_HOLDER = 0x12,
    ML_TAG_HELD = 0x13,
    /* nstacks: native frames (`memlens run --native-stacks`; docs/FORMAT.md
     * "Native stacks"):
     *   0x14 NATIVE_STACK  uv id (1, 2, ... in order), uv n (1..ML_NSTACK_MAX),
     *                      n x uv return address (innermost first)
     *   0x15 NATIVE_ALLOC  uv nstack (a defined NATIVE_STACK): the next ALLOC
     *                      record was made with these native frames
     *   0x16 MAPPING       uv start, uv end (> start), uv file offset, str path,
     *                      str build-id (raw bytes; empty: unknown)
     *                      an executable segment of a loaded object */
    ML_TAG_NATIVE_STACK = 0x14,
    ML_TAG_NATIVE_ALLOC = 0x15,
    ML_TAG_MAPPING = 0x16,
    /* gcexit: cyclic garbage (docs/FORMAT.md "Garbage at exit, uncollectable"):
     *   0x1A GARBAGE_AT_EXIT  uv n (<= ML_GCSEQS_MAX), n x uv seq delta
     *                         (ascending, the first relative to 0): live
     *                         blocks that a full collection at the end
     *                         would free (unreachable cycles and what only
     *                         they hold); several records make one set
     *   0x1B UNCOLLECTABLE    same layout: blocks of the objects the
     *                         collection that just stopped appended to
     *                         gc.garbage (written before its GC_STOP) */
    ML_TAG_GARBAGE_AT_EXIT = 0x1A,
    ML_TAG_UNCOLLECTABLE = 0x1B,
    /* heap at exit: OWNER records in a batch (docs/FORMAT.md "Heap at exit"):
     *   0x1C OWNERS  uv n (1..ML_OWNERS_MAX), n x (sv seq delta, sv owner
     *                distance, uv type): entry i is the OWNER of buffer
     *                seq_i = seq_(i-1) + delta (seq_0 = 0) by the object in
     *                block seq_i - distance (0 = not recorded), named `type`.
     *                Entries come in the walk's order, so both numbers are
     *                small: ~3 bytes an entry against ~10 for OWNER */
    ML_TAG_OWNERS = 0x1C,
    ML_TAG_FREE = 0x40,      /* 0x40..0x7E inline distance, 0x7F long form */
    ML_TAG_FREE_LONG = 0x7F,
    ML_TAG_ALLOC = 0x80,     /* 0x80..0xFF */
};

#define ML_FREE_INLINE_MAX 62 /* distances 0..62 fit in the tag */
#define ML_SLOT_EXPLICIT 31
#define ML_SLOTS 31

typedef enum { ML_DOMAIN_RAW = 0, ML_DOMAIN_MEM = 1, ML_DOMAIN_OBJ = 2 } ml_domain;

/* SNAPSHOT kinds: what started a heap snapshot; 0 ends it. */
enum ml_snap_kind {
    ML_SNAP_END = 0,
    ML_SNAP_EXIT = 1,
    ML_SNAP_CALL = 2,
    ML_SNAP_SIGNAL = 3,
    ML_SNAP_OWNERS = 4, /* at exit, buffer owners only (no HOLDER/HELD records) */
};
#define ML_HELD_MAX 4096u   /* seqs in one HELD record */
#define ML_OWNERS_MAX 4096u /* entries in one OWNERS record */
#define ML_GCSEQS_MAX 4096u /* gcexit: seqs in one GARBAGE_AT_EXIT or UNCOLLECTABLE record */
/* rss: seqs in one ARENA_BLOCKS record; arenas used at most this share
 * (percent) get their blocks written */
#define ML_ARENA_BLOCKS_MAX 4096u
#define ML_ARENA_BLOCKS_PCT 50u
#define ML_HOLDER_HOPS_MAX 64u /* hops in one HOLDER record */
#define ML_NSTACK_MAX 128u     /* nstacks: addresses in one NATIVE_STACK record */
#define ML_BUILD_ID_MAX 64u    /* nstacks: bytes of a MAPPING's build-id */

/* Type flags in TYPE_DEF. */
#define ML_TYPEF_METATYPE 1u /* instances are type objects */
#define ML_TYPEF_BUFFER 2u   /* not a Python type: a kind of buffer ("<dict keys>") */

enum ml_mark_kind { ML_MARK_ENTER = 1, ML_MARK_EXIT = 2, ML_MARK_LABEL = 3 };

enum ml_note_kind {
    ML_NOTE_WARNING = 1,      /* free text shown to the user */
    ML_NOTE_TRACER_LOST = 2,  /* 3.13: someone replaced the object-creation tracer */
};

/* rss: RSS_SAMPLE fields, in this order (capture/rsssample.h says how
 * each is measured; analysis/rss.h how they make the breakdown). */
enum ml_rss_field {
    ML_RSS_TOTAL = 0,       /* Rss of smaps_rollup */
    ML_RSS_ANON,            /* Anonymous of smaps_rollup */
    ML_RSS_STACKS,          /* resident thread stacks */
    ML_RSS_ARENAS,          /* resident bytes of pymalloc's arenas */
    ML_RSS_PYMALLOC_USED,   /* bytes in pymalloc's allocated blocks */
    ML_RSS_MALLOC_USED,     /* C allocator: bytes in use (uordblks + hblkhd) */
    ML_RSS_MALLOC_FREE,     /* C allocator: free bytes it keeps (fordblks) */
    ML_RSS_OWN,             /* memlens' own mmaps (event ring, block map) */
    ML_RSS_TRACED,          /* the traced heap (bytes of live recorded blocks) */
    ML_RSS_TRACED_SMALL,    /* of it, MEM/OBJ blocks of <= 512 bytes (pymalloc's) */
    ML_RSS_NATIVE,          /* native heap traced with --native (0 without it) */
    ML_RSS_ARENA_COUNT,     /* pymalloc arenas alive */
    ML_RSS_FILES,           /* resident code and libraries: file mappings, and the .bss of loaded objects */
    ML_RSS_OWN_STATIC,      /* of ML_RSS_FILES, memlens' engine's writable data and .bss */
    ML_RSS_ANON_OTHER,      /* "[heap]" and unnamed mappings but stacks and .bss (C heap, arenas, mmaps) */
    ML_RSS_NFIELDS
};

/* TRAILER counters, in this order; a reader ignores extra ones. */
enum ml_trailer_field {
    ML_TRAILER_ALLOCS = 0,        /* ALLOC records written */
    ML_TRAILER_FREES = 1,         /* FREE records written */
    ML_TRAILER_DROPPED = 2,       /* events dropped (out of engine memory) */
    ML_TRAILER_NOSTACK = 3,       /* allocations made without the GIL (no stack) */
    ML_TRAILER_TRUNCATED = 4,     /* stacks cut at max_frames */
    ML_TRAILER_COUNT
};

/* GC_START generations above this are corrupt (CPython has 0-2). */
#define ML_GC_GENERATION_MAX 15u

typedef uint32_t ml_code_id;
typedef uint32_t ml_frame_id; /* also names a stack */
typedef uint32_t ml_type_id;
typedef uint32_t ml_thread_id;
typedef uint64_t ml_seq;

/* The slot a (stack, type) pair takes in the pair cache. Writer and reader
 * must agree on this exactly. */
static inline unsigned
ml_slot_of(uint32_t stack, uint32_t type)
{
    uint32_t h = stack * 0x9E3779B1u ^ type * 0x85EBCA77u;
    return (h >> 16) % ML_SLOTS;
}

/* Encode v into out (at least 10 bytes); returns the bytes written. */
static inline size_t
ml_uv_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t ml_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t ml_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Decode a varint from [*p, end). Returns 0 and advances *p, or -1 when the
 * input ends inside the varint or it is longer than 10 bytes. */
static inline int
ml_uv_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    uint64_t r = 0;
    unsigned shift = 0;
    while (q < end) {
        uint8_t b = *q++;
        if (shift == 63 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *p = q;
            return 0;
        }
        shift += 7;
        if (shift > 63)
            return -1;
    }
    return -1;
}

static inline void
ml_u32le_put(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)v;
    out[1] = (uint8_t)(v >> 8);
    out[2] = (uint8_t)(v >> 16);
    out[3] = (uint8_t)(v >> 24);
}

static inline uint32_t
ml_u32le_get(const uint8_t *in)
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

#endif /* ML_FORMAT_H */
