/* zinflate.h: zlib's inflate, loaded at run time, for reading compressed
 * captures as a stream (no temporary file).
 *
 * Layer: analysis. Pure C, no Python API. Like capture/zdeflate.h, it uses
 * the zlib that format/zlib.h loads at run time (memlens does not link
 * against zlib). Where there is no such library (or MEMLENS_NO_ZLIB is set, the
 * tests' switch), ml_zinflate_available() is 0 and ml_zinflate_new() fails:
 * the Python shell then decompresses with its zlib module instead.
 *
 * Memory: the stream's state (about 44 KiB, libc malloc); output goes to the
 * caller's buffer, so a "zlib bomb" costs time linear in its output, never
 * memory. Not thread-safe: one stream per reader.
 */
#ifndef ML_ZINFLATE_H
#define ML_ZINFLATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ml_zinflate ml_zinflate;

/* 1 when zlib can be loaded, else 0. */
int ml_zinflate_available(void);
/* A stream for the zlib format (RFC 1950). NULL when zlib cannot be loaded
 * or memory is short. */
ml_zinflate *ml_zinflate_new(void);
/* Start a new stream (to read the data again from its first byte). 0 or -1. */
int ml_zinflate_reset(ml_zinflate *z);
/* Inflate from [in, in + inlen) into [out, out + outcap): *used and
 * *produced say how much of each was taken. Returns 0 (more may follow),
 * 1 (the stream ended), or -1 (not valid zlib data: a damaged stream). */
int ml_zinflate_run(ml_zinflate *z, const uint8_t *in, size_t inlen, size_t *used, uint8_t *out,
                    size_t outcap, size_t *produced);
/* Free the stream. */
void ml_zinflate_free(ml_zinflate *z);

#endif /* ML_ZINFLATE_H */
