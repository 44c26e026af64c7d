/* zdeflate.c: zlib's deflate loaded at run time (see zdeflate.h). */
#include "capture/zdeflate.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

/* zlib.h's z_stream and constants, as the zlib ABI fixes them. */
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

enum { ML_Z_NO_FLUSH = 0, ML_Z_SYNC_FLUSH = 2, ML_Z_FINISH = 4, ML_Z_OK = 0, ML_Z_STREAM_END = 1,
       ML_Z_BUF_ERROR = -5 };

#define ML_ZOUT (64u << 10)

static struct {
    const char *(*version)(void);
    int (*init)(ml_z_stream *, int level, const char *version, int stream_size);
    int (*deflate)(ml_z_stream *, int flush);
    int (*end)(ml_z_stream *);
    int loaded; /* 1 ok, -1 unavailable */
} ml_zlib;
static pthread_once_t ml_zlib_once = PTHREAD_ONCE_INIT;

static void
ml_zlib_load(void)
{
    if (getenv("MEMLENS_NO_ZLIB")) { /* tests: the fallback of a system without libz */
        ml_zlib.loaded = -1;
        return;
    }
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libz.so", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        *(void **)&ml_zlib.version = dlsym(h, "zlibVersion");
        *(void **)&ml_zlib.init = dlsym(h, "deflateInit_");
        *(void **)&ml_zlib.deflate = dlsym(h, "deflate");
        *(void **)&ml_zlib.end = dlsym(h, "deflateEnd");
    }
    ml_zlib.loaded = ml_zlib.version && ml_zlib.init && ml_zlib.deflate && ml_zlib.end ? 1 : -1;
}

struct ml_zdeflate {
    ml_z_stream s;
    ml_zdeflate_sink sink;
    void *ctx;
    uint8_t out[ML_ZOUT];
};

ml_zdeflate *
ml_zdeflate_new(int level, ml_zdeflate_sink sink, void *ctx)
{
    pthread_once(&ml_zlib_once, ml_zlib_load);
    if (ml_zlib.loaded != 1)
        return NULL;
    ml_zdeflate *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    /* the version string is checked for its major number only */
    if (ml_zlib.init(&z->s, level, ml_zlib.version(), (int)sizeof(z->s)) != ML_Z_OK) {
        free(z);
        return NULL;
    }
    z->sink = sink;
    z->ctx = ctx;
    return z;
}

/* Run deflate with `flush` until the input is used and, for a flush, the
 * output drained. */
static int
ml_zdeflate_run(ml_zdeflate *z, int flush)
{
    int rc = 0;
    for (;;) {
        z->s.next_out = z->out;
        z->s.avail_out = ML_ZOUT;
        int zr = ml_zlib.deflate(&z->s, flush);
        if (zr != ML_Z_OK && zr != ML_Z_STREAM_END && zr != ML_Z_BUF_ERROR)
            return -1;
        size_t have = ML_ZOUT - z->s.avail_out;
        if (have && z->sink(z->ctx, z->out, have) < 0)
            rc = -1;
        if (flush == ML_Z_FINISH ? zr == ML_Z_STREAM_END : z->s.avail_out != 0)
            return rc;
    }
}

int
ml_zdeflate_write(ml_zdeflate *z, const uint8_t *p, size_t n, int sync)
{
    int rc = 0;
    while (n) {
        /* avail_in is 32 bits */
        unsigned chunk = n > (1u << 30) ? 1u << 30 : (unsigned)n;
        z->s.next_in = p;
        z->s.avail_in = chunk;
        if (ml_zdeflate_run(z, ML_Z_NO_FLUSH) < 0)
            rc = -1;
        p += chunk;
        n -= chunk;
    }
    if (sync && ml_zdeflate_run(z, ML_Z_SYNC_FLUSH) < 0)
        rc = -1;
    return rc;
}

int
ml_zdeflate_finish(ml_zdeflate *z)
{
    z->s.next_in = NULL;
    z->s.avail_in = 0;
    return ml_zdeflate_run(z, ML_Z_FINISH);
}

void
ml_zdeflate_free(ml_zdeflate *z)
{
    if (!z)
        return;
    ml_zlib.end(&z->s);
    free(z);
}
