/* zdeflate.c: zlib's deflate loaded at run time (see zdeflate.h). */
#include "capture/zdeflate.h"

#include <stdlib.h>

#include "format/zlib.h"

#define ML_ZOUT (64u << 10)

struct ml_zdeflate {
    ml_z_stream s;
    ml_zdeflate_sink sink;
    void *ctx;
    uint8_t out[ML_ZOUT];
};

ml_zdeflate *
ml_zdeflate_new(int level, ml_zdeflate_sink sink, void *ctx)
{
    const ml_zlib_api *zl = ml_zlib_get();
    if (!zl)
        return NULL;
    ml_zdeflate *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    /* the version string is checked for its major number only */
    if (zl->deflate_init(&z->s, level, zl->version(), (int)sizeof(z->s)) != ML_Z_OK) {
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
        int zr = ml_zlib_get()->deflate(&z->s, flush);
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
    ml_zlib_get()->deflate_end(&z->s);
    free(z);
}
