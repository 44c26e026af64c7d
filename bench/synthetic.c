/* synthetic.c: big synthetic captures for bench/bench_reader.py.
 *
 *   synthetic gen PATH N [FRAMES]  write a capture of about N events with writer.c
 *                             (FRAMES stack frames, each a distinct stack; default 20000)
 *   synthetic scan PATH       read it with reader.c; print "events seconds"
 *
 * The event mix imitates a Python program: a little more allocations than
 * frees (the heap grows to about 4% of N live blocks), most frees of recent
 * blocks (short-lived temporaries) and some of old ones, a hot set of stacks
 * and types, four threads, a TIME record every 64 events and a MEMORY sample
 * every 100,000. Deterministic (fixed seed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/reader.h"
#include "capture/writer.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#define NCODES 4000
static uint32_t NFRAMES = 20000;
#define NTYPES 200

static int
gen(const char *path, uint64_t n)
{
    const char *meta = "{\"python\":\"3.12.1\",\"argv\":[\"synthetic\"]}";
    ml_writer *w = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!w) {
        perror(path);
        return 1;
    }
    char file[64], name[64];
    for (uint32_t c = 1; c <= NCODES; c++) {
        uint32_t offs[8];
        int32_t lines[8];
        for (int k = 0; k < 8; k++) {
            offs[k] = (uint32_t)k * 16;
            lines[k] = (int32_t)(c * 10 + (uint32_t)k);
        }
        int fl = snprintf(file, sizeof(file), "/src/pkg/module%u.py", c / 20);
        int nl = snprintf(name, sizeof(name), "function_%u", c);
        ml_writer_code_def(w, c, file, (size_t)fl, name, (size_t)nl, c * 10, offs, lines, 8);
    }
    for (uint32_t f = 1; f <= NFRAMES; f++) {
        uint32_t parent = f > 50 ? (uint32_t)(rng() % (f - 1)) + 1 : 0;
        ml_writer_frame_def(w, f, parent, (uint32_t)(rng() % NCODES) + 1, (uint32_t)(rng() % 128));
    }
    for (uint32_t t = 1; t <= NTYPES; t++) {
        int nl = snprintf(name, sizeof(name), "type_%u", t);
        ml_writer_type_def(w, t, name, (size_t)nl, 0);
    }
    size_t cap = 1 << 20, nlive = 0;
    ml_seq *live = malloc(cap * sizeof(*live));
    unsigned thread = 0;
    for (uint64_t i = 0; i < n; i++) {
        if ((i & 63) == 0)
            ml_writer_time(w, 1 + rng() % 20);
        if (i % 100000 == 0)
            ml_writer_memory(w, 100000000 + i, nlive * 64);
        if (rng() % 10000 == 0) {
            thread = (thread + 1) % 4;
            ml_writer_thread(w, thread);
        }
        uint64_t x = rng();
        if (nlive == 0 || x % 100 < 52) {
            /* 90% of allocations from 200 hot stacks */
            uint32_t stack = (x >> 8) % 10 < 9 ? (uint32_t)((x >> 16) % 200) + 1
                                               : (uint32_t)((x >> 16) % NFRAMES) + 1;
            uint32_t type = (x >> 40) % 4 == 0 ? 0 : (uint32_t)((stack * 7) % NTYPES) + 1;
            uint64_t size = (x >> 48) % 8 == 0 ? 64 + (x >> 32) % 4000 : 16 + ((x >> 32) % 12) * 8;
            ml_domain dom = type ? ML_DOMAIN_OBJ : ((x >> 44) & 1 ? ML_DOMAIN_MEM : ML_DOMAIN_RAW);
            if (nlive == cap) {
                cap *= 2;
                live = realloc(live, cap * sizeof(*live));
            }
            live[nlive++] = ml_writer_alloc(w, dom, stack, type, size);
        } else {
            /* 85% of frees among the 16 most recent live blocks */
            size_t k = (x >> 8) % 100 < 85 ? (size_t)((x >> 16) % 16) : (size_t)((x >> 16) % nlive);
            if (k >= nlive)
                k = nlive - 1;
            size_t at = nlive - 1 - k;
            if ((x >> 24) % 10 == 0)
                ml_writer_context(w, (uint32_t)((x >> 32) % 200) + 1);
            ml_writer_free(w, live[at]);
            live[at] = live[--nlive];
        }
    }
    uint64_t fields[ML_TRAILER_COUNT] = {ml_writer_last_seq(w), 0, 0, 0, 0};
    ml_writer_trailer(w, fields, ML_TRAILER_COUNT);
    free(live);
    return ml_writer_close(w) < 0;
}

static int
scan(const char *path)
{
    char err[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ml_event ev;
    uint64_t n = 0;
    int rc;
    while ((rc = ml_reader_next(r, &ev)) > 0)
        n++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc < 0) {
        fprintf(stderr, "%s\n", ml_reader_error(r));
        return 1;
    }
    ml_reader_free(r);
    printf("%llu %.6f\n", (unsigned long long)n,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

int
main(int argc, char **argv)
{
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "gen")) {
        if (argc == 5)
            NFRAMES = (uint32_t)strtoul(argv[4], NULL, 10);
        return gen(argv[2], strtoull(argv[3], NULL, 10));
    }
    if (argc == 3 && !strcmp(argv[1], "scan"))
        return scan(argv[2]);
    fprintf(stderr, "usage: synthetic gen PATH N [FRAMES] | synthetic scan PATH\n");
    return 2;
}
