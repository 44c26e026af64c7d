/* zdeflate.h: zlib's deflate, loaded at run time, for compressing the
 * capture while the program runs.
 *
 * Layer: capture. memlens builds with only gcc and the Python headers, so it
 * does not link against zlib: it uses the one format/zlib.h loads at run
 * time. Where there is no such library, ml_zdeflate_new() fails and the
 * capture is written raw (the Python shell then compresses it at the end).
 *
 * Memory comes from libc malloc (zlib's default allocator), never PyMem.
 * Not thread-safe: one stream is used by one thread at a time (the writer
 * holds its I/O lock around every call).
 */
#ifndef ML_ZDEFLATE_H
#define ML_ZDEFLATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ml_zdeflate ml_zdeflate;

/* Where compressed bytes go: returns 0, or -1 when they could not be
 * written (the stream goes on; the caller counts the loss). */
typedef int (*ml_zdeflate_sink)(void *ctx, const uint8_t *p, size_t n);

/* A deflate stream (zlib format) at `level` (1 fastest .. 9 smallest).
 * NULL if zlib cannot be loaded or memory is short. */
ml_zdeflate *ml_zdeflate_new(int level, ml_zdeflate_sink sink, void *ctx);
/* Compress n bytes and hand the output to the sink. `sync`: end on a byte
 * boundary with everything so far decodable (Z_SYNC_FLUSH), so that a
 * process killed later leaves a readable prefix. Returns 0, or -1 if the
 * sink failed or zlib reported an error. */
int ml_zdeflate_write(ml_zdeflate *z, const uint8_t *p, size_t n, int sync);
/* End the stream (Z_FINISH) through the sink. Returns 0 or -1. */
int ml_zdeflate_finish(ml_zdeflate *z);
/* Free the stream (without writing anything). */
void ml_zdeflate_free(ml_zdeflate *z);

#endif /* ML_ZDEFLATE_H */
