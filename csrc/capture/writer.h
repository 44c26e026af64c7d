/* writer.h: encodes capture records (format/format.h) into a file.
 *
 * Layer: capture. Runs inside allocator hooks: never calls the Python C API
 * and never allocates through PyMem; its memory comes from libc malloc.
 * Not thread-safe: the caller serialises all calls on one writer (the
 * tracker holds its lock). Records go to a buffer that is written out when
 * full and on ml_writer_flush(), so a killed process leaves a file that is
 * readable up to the last flush. After a failed write (disk full) nothing
 * more is written, so the file stays a readable prefix. Two buffers: the periodic flush
 * (ml_writer_flush_begin/_end) swaps them under the caller's lock and
 * writes the full one after the caller has released it, so the program
 * does not wait for the disk; an internal I/O lock keeps writes in order. A failed write() is never reported to the
 * hook caller: the writer counts the bytes it lost and goes on.
 */
#ifndef ML_WRITER_H
#define ML_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "format/format.h"

typedef struct ml_writer ml_writer;

/* Create `path` with O_EXCL|O_NOFOLLOW (never through a symbolic link; an
 * existing file gives EEXIST) and write the header with the JSON metadata.
 * force: a regular file or symbolic link at `path` is removed first (the
 * link, not its target); a directory still gives EISDIR, a special file
 * (FIFO, device, socket) EEXIST. zlevel 1-9: write the compressed container of
 * FORMAT.md instead (zlib stream, sync-flushed at every flush), when zlib
 * can be loaded (ml_writer_compressed says); 0: the raw capture. Returns
 * NULL with errno set on failure. */
ml_writer *ml_writer_open(const char *path, int force, int zlevel, const char *json, size_t json_len);
/* Same, onto an open file descriptor that the writer then owns. */
ml_writer *ml_writer_open_fd(int fd, int zlevel, const char *json, size_t json_len);
/* A writer that keeps its records in memory (no file, no header; the
 * buffer grows): definitions made outside the tracker's lock wait there
 * until ml_writer_move appends them to the file's writer. */
ml_writer *ml_writer_open_mem(void);
/* Append from's records to `to` and empty `from`. */
void ml_writer_move(ml_writer *from, ml_writer *to);
/* Bytes in the buffer, not written out yet. */
size_t ml_writer_buffered(const ml_writer *w);
/* 1 if the writer compresses (see ml_writer_open). */
int ml_writer_compressed(const ml_writer *w);
/* Write the buffer out. Returns 0, or -1 if bytes were lost (the writer goes on). */
int ml_writer_flush(ml_writer *w);
/* The periodic flush in two halves: _begin (caller's lock held) takes the
 * filled buffer out and starts on the other; _end (caller's lock released)
 * writes it. Every _begin must be followed by one _end. */
void ml_writer_flush_begin(ml_writer *w);
void ml_writer_flush_end(ml_writer *w);
/* The heap passes: while on, a full buffer is written (and compressed) by
 * a thread of the writer's own while the caller fills the other one, so
 * the pass's records cost the caller their encoding only; every flush
 * waits for the buffer before it, so the file stays in order. Off waits
 * for the thread and ends it. Returns 0, or -1 (writing stays inline)
 * when the thread cannot start or there is no file. */
int ml_writer_async(ml_writer *w, int on);
/* Flush (and end the compressed stream), close the file, free the writer.
 * Returns -1 if anything was ever lost. */
int ml_writer_close(ml_writer *w);
/* In a forked child: forget the writer without writing (the child must not
 * write its copy of the parent's buffer) and without freeing it (no
 * allocator calls in an atfork handler); only its file is closed. */
void ml_writer_abandon(ml_writer *w);
/* cycline: the file descriptor the writer writes to (-1: in memory). */
int ml_writer_fd(const ml_writer *w);
uint64_t ml_writer_bytes_written(const ml_writer *w);
uint64_t ml_writer_bytes_lost(const ml_writer *w);

/* Record emitters: one per record kind of format.h. */
void ml_writer_time(ml_writer *w, uint64_t dt_us);
void ml_writer_thread(ml_writer *w, ml_thread_id t);
void ml_writer_thread_def(ml_writer *w, ml_thread_id t, uint64_t os_tid, const char *name, size_t name_len);
/* CODE_DEF; the line map is n pairs (byte offset, line) in offset order. */
void ml_writer_code_def(ml_writer *w, ml_code_id id, const char *file, size_t file_len,
                        const char *name, size_t name_len, uint32_t firstlineno,
                        const uint32_t *offsets, const int32_t *lines, size_t n);
void ml_writer_frame_def(ml_writer *w, ml_frame_id id, ml_frame_id parent, ml_code_id code,
                         uint32_t offset);
void ml_writer_type_def(ml_writer *w, ml_type_id id, const char *name, size_t name_len, uint32_t flags);
void ml_writer_memory(ml_writer *w, uint64_t rss, uint64_t heap);
void ml_writer_context(ml_writer *w, ml_frame_id stack);
void ml_writer_reuse(ml_writer *w, ml_type_id type);
void ml_writer_mark(ml_writer *w, unsigned kind, const char *label, size_t len);
void ml_writer_note(ml_writer *w, unsigned kind, const char *text, size_t len);
void ml_writer_trailer(ml_writer *w, const uint64_t *fields, size_t n);
void ml_writer_fork(ml_writer *w, uint64_t child_pid);
/* rss: an RSS_SAMPLE record of n fields (ML_RSS_*) at the current time. */
void ml_writer_rss(ml_writer *w, const uint64_t *fields, size_t n);
/* rss: an ARENA record (a live pymalloc arena at the end), and the live
 * blocks in arena number `arena` (seqs ascending, n <= ML_ARENA_BLOCKS_MAX). */
void ml_writer_arena(ml_writer *w, uint64_t base, uint64_t size, uint64_t resident, uint64_t pools,
                     uint64_t pools_used, uint64_t used);
void ml_writer_arena_blocks(ml_writer *w, uint64_t arena, const ml_seq *seqs, size_t n);
/* GC_START / GC_STOP (t_us: exact microseconds since the start). */
void ml_writer_gc_start(ml_writer *w, unsigned generation, uint64_t t_us, ml_frame_id stack);
void ml_writer_gc_stop(ml_writer *w, unsigned generation, uint64_t t_us, uint64_t collected,
                       uint64_t uncollectable);
/* Heap at exit (format.h 0x10..0x13). */
void ml_writer_snapshot(ml_writer *w, unsigned kind, uint64_t objects, uint64_t duration_us);
void ml_writer_owner(ml_writer *w, ml_seq seq, ml_seq owner_seq, ml_type_id type);
/* OWNERS: n (1..ML_OWNERS_MAX) owners in one record, in the caller's order. */
void ml_writer_owners(ml_writer *w, const ml_seq *seqs, const ml_seq *owner_seqs, const ml_type_id *types,
                      size_t n);
void ml_writer_holder(ml_writer *w, uint32_t id, const char *const *hops, const size_t *lens, size_t n,
                      uint64_t retained);
/* seqs ascending, n <= ML_HELD_MAX */
void ml_writer_held(ml_writer *w, uint32_t holder, const ml_seq *seqs, size_t n);
/* gcexit: GARBAGE_AT_EXIT or UNCOLLECTABLE (tag), seqs ascending, n <= ML_GCSEQS_MAX */
void ml_writer_gc_seqs(ml_writer *w, unsigned tag, const ml_seq *seqs, size_t n);
/* ALLOC: returns the block's seq. */
/* nstacks: native frames (format.h 0x14..0x16) */
void ml_writer_native_stack(ml_writer *w, uint32_t id, const uintptr_t *addrs, size_t n);
void ml_writer_native_alloc(ml_writer *w, uint32_t nstack);
void ml_writer_mapping(ml_writer *w, uint64_t start, uint64_t end, uint64_t offset, const char *path,
                       size_t path_len, const uint8_t *build_id, size_t build_id_len);
ml_seq ml_writer_alloc(ml_writer *w, ml_domain domain, ml_frame_id stack, ml_type_id type, uint64_t size);
/* FREE of the block with sequence number seq (< = last seq). */
void ml_writer_free(ml_writer *w, ml_seq seq);
ml_seq ml_writer_last_seq(const ml_writer *w);

#endif /* ML_WRITER_H */
