/* zinflate.c: zlib's inflate loaded at run time (see zinflate.h). */
#include "analysis/zinflate.h"

#include <stdlib.h>

#include "format/zlib.h"

struct ml_zinflate {
    ml_z_stream s;
};

int
ml_zinflate_available(void)
{
    return ml_zlib_get() != NULL;
}

ml_zinflate *
ml_zinflate_new(void)
{
    const ml_zlib_api *zl = ml_zlib_get();
    if (!zl)
        return NULL;
    ml_zinflate *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    /* the version string is checked for its major number only */
    if (zl->inflate_init(&z->s, zl->version(), (int)sizeof(z->s)) != ML_Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

int
ml_zinflate_reset(ml_zinflate *z)
{
    return ml_zlib_get()->inflate_reset(&z->s) == ML_Z_OK ? 0 : -1;
}

int
ml_zinflate_run(ml_zinflate *z, const uint8_t *in, size_t inlen, size_t *used, uint8_t *out,
                size_t outcap, size_t *produced)
{
    /* avail_in/avail_out are 32 bits: the caller's buffers are far smaller
     * in practice, and a partial step is allowed by the contract */
    unsigned ain = inlen > (1u << 30) ? 1u << 30 : (unsigned)inlen;
    unsigned aout = outcap > (1u << 30) ? 1u << 30 : (unsigned)outcap;
    z->s.next_in = in;
    z->s.avail_in = ain;
    z->s.next_out = out;
    z->s.avail_out = aout;
    int zr = ml_zlib_get()->inflate(&z->s, ML_Z_NO_FLUSH);
    *used = ain - z->s.avail_in;
    *produced = aout - z->s.avail_out;
    if (zr == ML_Z_STREAM_END)
        return 1;
    if (zr == ML_Z_OK || zr == ML_Z_BUF_ERROR)
        return 0;
    return -1; /* Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR, Z_STREAM_ERROR */
}

void
ml_zinflate_free(ml_zinflate *z)
{
    if (!z)
        return;
    ml_zlib_get()->inflate_end(&z->s);
    free(z);
}
