/* zlib.c: zlib loaded at run time (see zlib.h). */
#include "format/zlib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

static ml_zlib_api ml_zlib_fns;
static int ml_zlib_loaded; /* 1 ok, -1 unavailable */
static pthread_once_t ml_zlib_once = PTHREAD_ONCE_INIT;

static void
ml_zlib_load(void)
{
    ml_zlib_loaded = -1;
    if (getenv("MEMLENS_NO_ZLIB"))
        return;
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libz.so", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    ml_zlib_api *f = &ml_zlib_fns;
    *(void **)&f->version = dlsym(h, "zlibVersion");
    *(void **)&f->deflate_init = dlsym(h, "deflateInit_");
    *(void **)&f->deflate = dlsym(h, "deflate");
    *(void **)&f->deflate_end = dlsym(h, "deflateEnd");
    *(void **)&f->inflate_init = dlsym(h, "inflateInit_");
    *(void **)&f->inflate = dlsym(h, "inflate");
    *(void **)&f->inflate_reset = dlsym(h, "inflateReset");
    *(void **)&f->inflate_end = dlsym(h, "inflateEnd");
    if (f->version && f->deflate_init && f->deflate && f->deflate_end && f->inflate_init &&
        f->inflate && f->inflate_reset && f->inflate_end)
        ml_zlib_loaded = 1;
}

const ml_zlib_api *
ml_zlib_get(void)
{
    pthread_once(&ml_zlib_once, ml_zlib_load);
    return ml_zlib_loaded == 1 ? &ml_zlib_fns : NULL;
}
