/* zinflate.c: zlib's inflate loaded at run time (see zinflate.h). */
#include "analysis/zinflate.h"

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
} ml_zi_stream;

enum { ML_ZI_NO_FLUSH = 0, ML_ZI_OK = 0, ML_ZI_STREAM_END = 1, ML_ZI_BUF_ERROR = -5 };

static struct {
    const char *(*version)(void);
    int (*init)(ml_zi_stream *, const char *version, int stream_size);
    int (*inflate)(ml_zi_stream *, int flush);
    int (*reset)(ml_zi_stream *);
    int (*end)(ml_zi_stream *);
    int loaded; /* 1 ok, -1 unavailable */
} ml_zinflate_lib;
static pthread_once_t ml_zinflate_once = PTHREAD_ONCE_INIT;

static void
ml_zinflate_load(void)
{
    if (getenv("MEMLENS_NO_ZLIB")) { /* tests: the fallback of a system without libz */
        ml_zinflate_lib.loaded = -1;
        return;
    }
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libz.so", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        *(void **)&ml_zinflate_lib.version = dlsym(h, "zlibVersion");
        *(void **)&ml_zinflate_lib.init = dlsym(h, "inflateInit_");
        *(void **)&ml_zinflate_lib.inflate = dlsym(h, "inflate");
        *(void **)&ml_zinflate_lib.reset = dlsym(h, "inflateReset");
        *(void **)&ml_zinflate_lib.end = dlsym(h, "inflateEnd");
    }
    ml_zinflate_lib.loaded = ml_zinflate_lib.version && ml_zinflate_lib.init &&
                                     ml_zinflate_lib.inflate && ml_zinflate_lib.reset &&
                                     ml_zinflate_lib.end
                                 ? 1
                                 : -1;
}

struct ml_zinflate {
    ml_zi_stream s;
};

int
ml_zinflate_available(void)
{
    pthread_once(&ml_zinflate_once, ml_zinflate_load);
    return ml_zinflate_lib.loaded == 1;
}

ml_zinflate *
ml_zinflate_new(void)
{
    if (!ml_zinflate_available())
        return NULL;
    ml_zinflate *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    /* the version string is checked for its major number only */
    if (ml_zinflate_lib.init(&z->s, ml_zinflate_lib.version(), (int)sizeof(z->s)) != ML_ZI_OK) {
        free(z);
        return NULL;
    }
    return z;
}

int
ml_zinflate_reset(ml_zinflate *z)
{
    return ml_zinflate_lib.reset(&z->s) == ML_ZI_OK ? 0 : -1;
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
    int zr = ml_zinflate_lib.inflate(&z->s, ML_ZI_NO_FLUSH);
    *used = ain - z->s.avail_in;
    *produced = aout - z->s.avail_out;
    if (zr == ML_ZI_STREAM_END)
        return 1;
    if (zr == ML_ZI_OK || zr == ML_ZI_BUF_ERROR)
        return 0;
    return -1; /* Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR, Z_STREAM_ERROR */
}

void
ml_zinflate_free(ml_zinflate *z)
{
    if (!z)
        return;
    ml_zinflate_lib.end(&z->s);
    free(z);
}
