/* reader.h: streams the records of a capture file as events.
 *
 * Layer: analysis. Pure C, no Python API. Mirror image of capture/writer.c;
 * format/format.h is the spec. The reader keeps the definitions (codes,
 * frames, types, threads) and the table of live blocks, so that a FREE
 * event carries what the matching ALLOC had (size, stack, type).
 * One reader is used by one thread at a time.
 */
#ifndef ML_READER_H
#define ML_READER_H

#include <stddef.h>
#include <stdint.h>

#include "format/format.h"

typedef struct ml_reader ml_reader;

/* Limits on what one record may claim (docs/FORMAT.md, "Rules for readers"):
 * beyond them a capture is corrupt. They bound the memory a hostile file can
 * make the reader take for one record; no real capture comes near them. */
#define ML_READER_STR_MAX (16u << 20)   /* bytes of one string */
#define ML_READER_RUNS_MAX (1u << 24)   /* runs of one line map */
#define ML_READER_TRAILER_MAX 256u      /* counters of the TRAILER */
#define ML_READER_META_MAX (64u << 20)  /* bytes of the header's JSON */
#define ML_READER_META_DEPTH 64         /* nesting of the header's JSON */
#define ML_READER_CHECK_EVERY 65536u    /* records between two interrupt checks */

typedef enum {
    ML_EV_ALLOC = 1,
    ML_EV_FREE,
    ML_EV_REUSE,
    ML_EV_MEMORY,
    ML_EV_MARK,
    ML_EV_FORK,
    ML_EV_NOTE,
    /* rss: reader event kinds 50..59 */
    ML_EV_RSS = 50, /* RSS_SAMPLE: rss_fields */
    ML_EV_ARENA = 51, /* ARENA: arena_index (0, 1, ... in file order), arena_base..arena_used */
    ML_EV_ARENA_BLOCKS = 52, /* ARENA_BLOCKS: arena_index, held[nheld] (seqs, ascending) */
    /* garbage collector (GC_START / GC_STOP): time_us is the record's own
     * exact time; thread the collecting one; gc_generation, and at the
     * stop gc_collected, gc_uncollectable; at the start `stack` is where
     * the thread was (0 = unknown) */
    ML_EV_GC_START = 20,
    ML_EV_GC_STOP = 21,
    /* gcexit (GARBAGE_AT_EXIT, UNCOLLECTABLE): gc_seqs[n_gc_seqs], ascending */
    ML_EV_GARBAGE_AT_EXIT = 22,
    ML_EV_UNCOLLECTABLE = 23,
    /* heap at exit (format.h 0x10..0x13) */
    ML_EV_SNAPSHOT = 30, /* mark_kind = ML_SNAP_*; at the end: snap_objects, snap_us */
    ML_EV_OWNER = 31,    /* seq = the buffer, owner_seq, type = its name by owner;
                          * the live block (if live) now has that type */
    ML_EV_HOLDER = 32,   /* holder, hops[nhops] (hop_lens), retained */
    ML_EV_HELD = 33,     /* holder, held[nheld]: seqs, ascending */
    ML_EV_OWNERS = 34,   /* OWNERS: entry i is as an OWNER event of seq held[i],
                          * owner_seqs[i], owner_types[i] (i < nheld) */
    /* nstacks: kinds 40..49 reserved; NATIVE_STACK, NATIVE_ALLOC and MAPPING
     * make no event of their own: an ALLOC carries its native stack
     * (ev->nstack), ml_reader_native_stack / ml_reader_mappings give the rest */
} ml_event_kind;

typedef struct {
    ml_event_kind kind;
    uint64_t time_us;      /* since the start of the capture */
    ml_thread_id thread;
    /* ALLOC and FREE: the block */
    ml_domain domain;
    ml_seq seq;
    uint64_t size;
    ml_frame_id stack;     /* the stack that allocated the block */
    ml_type_id type;       /* also REUSE */
    ml_frame_id at_stack;  /* FREE: the thread's stack when it was freed (0 = unknown) */
    /* MEMORY */
    uint64_t rss, heap;
    /* MARK, NOTE: kind and text (valid until the next call) */
    unsigned mark_kind;
    const char *text;
    size_t text_len;
    uint64_t child_pid;    /* FORK */
    uint64_t rss_fields[ML_RSS_NFIELDS]; /* RSS: ML_RSS_* (missing ones 0) */
    /* GC_START, GC_STOP */
    unsigned gc_generation;
    uint64_t gc_collected, gc_uncollectable;
    /* heap at exit (ML_EV_SNAPSHOT..ML_EV_HELD; arrays valid until the next call) */
    ml_seq owner_seq;
    uint32_t holder;
    uint64_t retained;
    const char *const *hops;
    const size_t *hop_lens;
    size_t nhops;
    const ml_seq *held;
    size_t nheld;
    const ml_seq *owner_seqs;      /* OWNERS */
    const ml_type_id *owner_types;
    uint64_t snap_objects, snap_us;
    uint32_t nstack;       /* nstacks: ALLOC: its native stack (0 = none) */
    /* gcexit: GARBAGE_AT_EXIT, UNCOLLECTABLE (valid until the next call) */
    const ml_seq *gc_seqs;
    size_t n_gc_seqs;
    /* rss: ARENA, ARENA_BLOCKS (docs/FORMAT.md "Arenas") */
    uint64_t arena_index, arena_base, arena_size, arena_resident, arena_pools, arena_pools_used, arena_used;
} ml_event;

typedef struct {
    const char *file, *name;  /* NUL-terminated, owned by the reader */
    uint32_t firstlineno;
    size_t nlines;
    const uint32_t *offsets;  /* line map runs, as in CODE_DEF */
    const int32_t *lines;
} ml_code_info;

typedef struct {
    ml_frame_id parent;
    ml_code_id code;
    uint32_t offset;
} ml_frame_info;

/* Open a capture: a raw capture or a compressed container (docs/FORMAT.md),
 * from a regular file, a pipe, a FIFO or a device. A raw regular file is
 * mapped; anything else is read as a stream through a window of about 1 MiB
 * (a compressed one inflated on the fly: no temporary file, and memory that
 * does not grow with the capture's raw size). Only the first bytes are read
 * before the magic is checked, so foreign or endless input (/dev/zero) fails
 * at once. A pipe can be read once: a second pass (rewind) fails.
 * NULL with a one-line message in err (missing, unreadable, empty, not a
 * capture, newer format version, corrupt header: the metadata must be a JSON
 * object nested at most ML_READER_META_DEPTH deep, whose "python", "script"
 * and "module" are strings and "argv" a list of strings, or null); errno is then the OS
 * error, ENOSYS for a compressed capture when zlib cannot be loaded
 * (analysis/zinflate.h), or 0 when the file was read but is not a usable
 * capture. */
ml_reader *ml_reader_open(const char *path, char *err, size_t errcap);
void ml_reader_free(ml_reader *r);

/* The JSON metadata of the header, checked to be one JSON object
 * (NUL-terminated; len excludes the NUL). */
const char *ml_reader_meta(const ml_reader *r, size_t *len);

/* A check that ml_reader_next calls every ML_READER_CHECK_EVERY records
 * (csrc/bind/common.c: take the GIL and look for a pending Ctrl-C); when it returns
 * nonzero, ml_reader_next fails with the error "interrupted". */
void ml_reader_set_check(ml_reader *r, int (*check)(void *arg), void *arg);
/* 1 when the capture is read as a stream (compressed, or not a regular file). */
int ml_reader_is_stream(const ml_reader *r);

/* Next event: 1 with *ev filled, 0 at the end, -1 on a corrupt record (message
 * in ml_reader_error, naming the byte offset of the record; every later call
 * returns -1 again until a rewind). A file cut short (killed process) ends
 * with 0 and ml_reader_truncated() true. Fields of *ev that the event kind
 * does not use are left as they were. For REUSE, `stack` is the thread's
 * current stack (of its last ALLOC or CONTEXT). */
int ml_reader_next(ml_reader *r, ml_event *ev);
/* Go back to the first record (definitions are kept; live blocks cleared).
 * A stream is read again from its start (a pipe cannot be: the next
 * ml_reader_next then fails with a message). */
void ml_reader_rewind(ml_reader *r);
const char *ml_reader_error(const ml_reader *r);
int ml_reader_truncated(const ml_reader *r);   /* no TRAILER at the end */
/* Trailer counters (ML_TRAILER_*), 0 when absent. */
uint64_t ml_reader_trailer(const ml_reader *r, unsigned field);
/* Bytes of the file consumed so far and its size, for progress (compressed
 * bytes for a container; the size is 0 when unknown: a pipe). */
uint64_t ml_reader_pos(const ml_reader *r);
uint64_t ml_reader_size(const ml_reader *r);

/* Definitions seen so far (NULL / 0 for unknown ids). */
const ml_code_info *ml_reader_code(const ml_reader *r, ml_code_id id);
const ml_frame_info *ml_reader_frame(const ml_reader *r, ml_frame_id id);
const char *ml_reader_type_name(const ml_reader *r, ml_type_id id);
uint32_t ml_reader_type_flags(const ml_reader *r, ml_type_id id);
uint32_t ml_reader_ntypes(const ml_reader *r);
uint32_t ml_reader_nframes(const ml_reader *r);
uint32_t ml_reader_ncodes(const ml_reader *r);
/* Source line of a frame (0 = none). */
int32_t ml_reader_frame_line(const ml_reader *r, ml_frame_id id);
/* Source line at byte offset `offset` of a code: the line of the last line
 * map run starting at or before it; 0 before the first run; the code's first
 * line when its map is empty. */
int32_t ml_reader_code_line(const ml_reader *r, ml_code_id code, uint32_t offset);
/* Thread name from its THREAD_DEF (NULL if none seen); *os_tid if not NULL. */
const char *ml_reader_thread_name(const ml_reader *r, ml_thread_id id, uint64_t *os_tid);
/* The current time (microseconds since the start): the capture's duration
 * once the end is reached. */
uint64_t ml_reader_time(const ml_reader *r);

/* Live blocks at the current position: calls fn for each; stops early when
 * fn returns nonzero. */
typedef int (*ml_live_fn)(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack,
                          ml_type_id type, ml_domain domain);
void ml_reader_live_foreach(const ml_reader *r, ml_live_fn fn, void *arg);
/* gcexit: the live block seq's size, stack and type: 0, or -1 when it is
 * not live. */
int ml_reader_live_get(const ml_reader *r, ml_seq seq, uint64_t *size, ml_frame_id *stack,
                       ml_type_id *type);
uint64_t ml_reader_live_count(const ml_reader *r);
/* rss: the live block `seq` at the current position: 0 with the fields
 * filled (any pointer may be NULL), -1 when it is not live. */
int ml_reader_live_find(const ml_reader *r, ml_seq seq, uint64_t *size, ml_frame_id *stack, ml_type_id *type,
                        ml_domain *domain);
uint64_t ml_reader_live_bytes(const ml_reader *r);

/* ---- nstacks: native frames (--native-stacks; docs/FORMAT.md "Native stacks") ---- */

/* A MAPPING: an executable segment [start, end) of a loaded object, from
 * byte `offset` of the file at `path` (as the capture says: hostile). */
typedef struct {
    uint64_t start, end, offset;
    const char *path;
    const uint8_t *build_id; /* build_id_len bytes (0: unknown) */
    size_t build_id_len;
} ml_mapping_info;

/* The addresses of native stack `id` (innermost first), NULL / *n = 0 when
 * it is not defined (yet). */
const uint64_t *ml_reader_native_stack(const ml_reader *r, uint32_t id, uint32_t *n);
uint32_t ml_reader_nnative_stacks(const ml_reader *r);
/* The mappings seen so far, in file order (a later one of the same
 * addresses replaces an earlier one: search from the end). */
const ml_mapping_info *ml_reader_mappings(const ml_reader *r, uint32_t *n);

#endif /* ML_READER_H */
