/* zlib.h: zlib loaded at run time, for the compressed capture container.
 *
 * Layer: format (shared by capture/zdeflate.c, which compresses while the
 * program runs, and analysis/zinflate.c, which reads compressed captures).
 * Pure C, no Python API. memlens builds with only gcc and the Python
 * headers, so it does not link against zlib: it dlopen()s the libz.so.1
 * that CPython's own zlib module uses (its ABI is stable since zlib 1.0) and
 * declares the few symbols and the z_stream layout it needs here.
 *
 * Loaded once (thread-safe); MEMLENS_NO_ZLIB in the environment makes zlib
 * unavailable (the tests' switch for a system without libz). zlib's memory
 * comes from libc malloc (zalloc/zfree left NULL), never PyMem.
 */
#ifndef ML_ZLIB_H
#define ML_ZLIB_H

#include <stdint.h>

/* zlib.h's z_stream, as the zlib ABI fixes it. */
typedef struct {
    const uint8_t *next_in;
    unsigned avail_in;
    unsigned long total_in;
    uint8_t *next_out;
    unsigned avail_out;
    unsigned long total_out;
    const char *msg;
    void *state;
    void *zalloc, *zfree, *opaque; /* NULL: zlib uses malloc/free */
    int data_type;
    unsigned long adler, reserved;
} ml_z_stream;

enum {
    ML_Z_NO_FLUSH = 0,
    ML_Z_SYNC_FLUSH = 2,
    ML_Z_FINISH = 4,
    ML_Z_OK = 0,
    ML_Z_STREAM_END = 1,
    ML_Z_BUF_ERROR = -5,
};

/* The functions memlens uses; `version` is passed to the init functions
 * (zlib checks its major number). */
typedef struct {
    const char *(*version)(void);
    int (*deflate_init)(ml_z_stream *, int level, const char *version, int stream_size);
    int (*deflate)(ml_z_stream *, int flush);
    int (*deflate_end)(ml_z_stream *);
    int (*inflate_init)(ml_z_stream *, const char *version, int stream_size);
    int (*inflate)(ml_z_stream *, int flush);
    int (*inflate_reset)(ml_z_stream *);
    int (*inflate_end)(ml_z_stream *);
} ml_zlib_api;

/* zlib's functions, or NULL when libz cannot be loaded (or lacks one of
 * them, or MEMLENS_NO_ZLIB is set). */
const ml_zlib_api *ml_zlib_get(void);

#endif /* ML_ZLIB_H */
