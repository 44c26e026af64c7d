/* gen_golden.c: writes the golden capture files of format v1 with writer.c.
 *
 * Format v2 only added record tags, so a v1 file is what writer.c writes
 * for a scenario without them, with the header's version field set to 1
 * (set_version below); the bytes of every record are unchanged.
 *
 *   gen_golden DIR   ->  DIR/v1-basic.mlens, DIR/v1-truncated.mlens,
 *                        DIR/v1-basic.expected.json, DIR/v2-native.mlens,
 *                        DIR/v2-rss.mlens (rss), DIR/v2-gc.mlens (gc),
 *                        DIR/v2-gc-exit.mlens (gcexit)
 *                        DIR/v2-heap-at-exit.mlens (heap at exit)
 *                        DIR/v2-owners.mlens (heap at exit: owners only)
 *                        DIR/v2-arenas.mlens (rss: arenas)
 *
 * The scenario below uses every record kind once or more. The expected JSON
 * is written from what this program asked the writer to record (not from
 * reading the file back), so tests can check the reader against it.
 * tests/c/run.sh regenerates the files into a temporary directory and
 * compares them byte for byte with tests/golden: a change of the encoder
 * that changes the bytes of format v1 fails there. Never edit the golden
 * files by hand; a new format version gets new golden files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/writer.h"

static FILE *js;
static int first_event = 1;
static uint64_t now_us;
static unsigned cur_thread;
static unsigned context[8]; /* per thread: the current stack */
static struct { uint64_t size; unsigned stack, type, domain; int live; } blocks[256];
static ml_writer *w;

static void
ev_begin(const char *kind)
{
    fprintf(js, "%s\n    {\"kind\": \"%s\", \"time_us\": %llu, \"thread\": %u", first_event ? "" : ",",
            kind, (unsigned long long)now_us, cur_thread);
    first_event = 0;
}

static void
g_time(uint64_t dt)
{
    ml_writer_time(w, dt);
    now_us += dt;
}

static void
g_thread(unsigned t)
{
    ml_writer_thread(w, t);
    cur_thread = t;
}

static ml_seq
g_alloc(ml_domain dom, unsigned stack, unsigned type, uint64_t size)
{
    ml_seq s = ml_writer_alloc(w, dom, stack, type, size);
    blocks[s].size = size;
    blocks[s].stack = stack;
    blocks[s].type = type;
    blocks[s].domain = dom;
    blocks[s].live = 1;
    context[cur_thread] = stack;
    ev_begin("alloc");
    fprintf(js, ", \"domain\": %u, \"seq\": %llu, \"size\": %llu, \"stack\": %u, \"type\": %u}", dom,
            (unsigned long long)s, (unsigned long long)size, stack, type);
    return s;
}

static void
g_free(ml_seq s)
{
    ml_writer_free(w, s);
    blocks[s].live = 0;
    ev_begin("free");
    fprintf(js,
            ", \"domain\": %u, \"seq\": %llu, \"size\": %llu, \"stack\": %u, \"type\": %u, "
            "\"at_stack\": %u}",
            blocks[s].domain, (unsigned long long)s, (unsigned long long)blocks[s].size,
            blocks[s].stack, blocks[s].type, context[cur_thread]);
}

static void
g_context(unsigned stack)
{
    ml_writer_context(w, stack);
    context[cur_thread] = stack;
}

static void
g_reuse(unsigned type)
{
    ml_writer_reuse(w, type);
    ev_begin("reuse");
    fprintf(js, ", \"type\": %u, \"stack\": %u}", type, context[cur_thread]);
}

static void
g_memory(uint64_t rss, uint64_t heap)
{
    ml_writer_memory(w, rss, heap);
    ev_begin("memory");
    fprintf(js, ", \"rss\": %llu, \"heap\": %llu}", (unsigned long long)rss, (unsigned long long)heap);
}

static void
g_text(int mark, unsigned kind, const char *text)
{
    if (mark)
        ml_writer_mark(w, kind, text, strlen(text));
    else
        ml_writer_note(w, kind, text, strlen(text));
    ev_begin(mark ? "mark" : "note");
    fprintf(js, ", \"%s\": %u, \"text\": \"%s\"}", mark ? "mark_kind" : "note_kind", kind, text);
}

static void
g_fork(uint64_t pid)
{
    ml_writer_fork(w, pid);
    ev_begin("fork");
    fprintf(js, ", \"child_pid\": %llu}", (unsigned long long)pid);
}

/* Write `version` into the header of the (uncompressed) capture at path. */
static int
set_version(const char *path, uint32_t version)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return -1;
    unsigned char v[4] = {(unsigned char)version, (unsigned char)(version >> 8),
                          (unsigned char)(version >> 16), (unsigned char)(version >> 24)};
    int rc = fseek(f, 8, SEEK_SET) == 0 && fwrite(v, 1, 4, f) == 4 ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* v2-native.mlens (docs/FORMAT.md, "Native allocations"): native blocks
 * are RAW allocations typed by a buffer kind "<native: FILE>"; one at a
 * Python line, one with no stack (a thread without Python frames), and a
 * free. tests/test_native.py encodes the same with capfile.py. */
static int
gen_v2_native(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v2-native.mlens", dir);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"demo.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{\"native\":true}}";
    ml_writer *nw = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!nw)
        return -1;
    ml_writer_thread_def(nw, 1, 4242, "MainThread", 10);
    ml_writer_thread(nw, 1);
    static const uint32_t off[] = {0, 10};
    static const int32_t line[] = {1, 3};
    ml_writer_code_def(nw, 1, "demo.py", 7, "<module>", 8, 1, off, line, 2);
    ml_writer_frame_def(nw, 1, 0, 1, 12); /* <module> at line 3 */
    ml_writer_type_def(nw, 1, "<native: libdemo.so.1>", 22, ML_TYPEF_BUFFER);
    ml_writer_type_def(nw, 2, "<native: unknown>", 17, ML_TYPEF_BUFFER);
    ml_writer_time(nw, 100);
    ml_writer_alloc(nw, ML_DOMAIN_RAW, 1, 1, 1000001); /* seq 1: at line 3 */
    ml_writer_alloc(nw, ML_DOMAIN_RAW, 0, 2, 4096);    /* seq 2: no Python stack */
    ml_writer_free(nw, 1);
    uint64_t fields[ML_TRAILER_COUNT] = {2, 1, 0, 1, 0};
    ml_writer_trailer(nw, fields, ML_TRAILER_COUNT);
    return ml_writer_close(nw);
}

/* rss: DIR/v2-rss.mlens, a version-2 file with two RSS_SAMPLE records
 * of the first 12 and 11 fields of format.h's ML_RSS_* (a reader takes
 * the others as 0); tests/test_rss.py checks the reader
 * and tests/capfile.py against it. Returns 0, or -1. */
static int
gen_v2_rss(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v2-rss.mlens", dir);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"rss.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{}}";
    ml_writer *rw = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!rw)
        return -1;
    ml_writer_thread_def(rw, 1, 4242, "MainThread", 10);
    ml_writer_thread(rw, 1);
    ml_writer_type_def(rw, 1, "numpy.ndarray (data)", 20, ML_TYPEF_BUFFER);
    ml_writer_time(rw, 1000);
    ml_writer_alloc(rw, ML_DOMAIN_RAW, 0, 1, 800000);
    ml_writer_memory(rw, 40000000, 800000);
    /* rss, anon, stacks, arenas, pymalloc used, malloc used, malloc free,
     * own, traced, traced small, native, arena count */
    const uint64_t a[12] = {40000000, 30000000, 200000, 8388608, 6000000, 12000000,
                                        1500000, 300000, 900000, 100000, 0, 8};
    ml_writer_rss(rw, a, 12);
    ml_writer_time(rw, 99000);
    const uint64_t b[11] = {35000000, 25000000, 200000, 4194304, 3000000, 11000000,
                                            2500000, 300000, 800000, 0, 0};
    ml_writer_rss(rw, b, 11); /* fields 11.. absent: the reader takes them as 0 */
    uint64_t fields[ML_TRAILER_COUNT] = {1, 0, 0, 0, 0};
    ml_writer_trailer(rw, fields, ML_TRAILER_COUNT);
    return ml_writer_close(rw) < 0 ? -1 : 0;
}

/* ---- v2-gc: the garbage collector's records (docs/FORMAT.md "GC
 * records"). Two objects and a buffer; a full collection on thread 1 frees
 * one object and the buffer, while thread 2 frees the other object (not the
 * collector's). tests/test_gc.py holds the same scenario through capfile. */
static int
gen_v2_gc(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v2-gc.mlens", dir);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"demo.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{}}";
    ml_writer *g = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!g)
        return -1;
    ml_writer_thread_def(g, 1, 4242, "MainThread", 10);
    ml_writer_thread(g, 1);
    static const uint32_t off[] = {0, 10};
    static const int32_t line[] = {1, 3};
    ml_writer_code_def(g, 1, "demo.py", 7, "<module>", 8, 1, off, line, 2);
    ml_writer_frame_def(g, 1, 0, 1, 12);               /* <module> at line 3 */
    ml_writer_type_def(g, 1, "Node", 4, 0);
    ml_writer_type_def(g, 2, "<PyMem buffer>", 14, ML_TYPEF_BUFFER);
    ml_writer_time(g, 100);
    ml_writer_alloc(g, ML_DOMAIN_OBJ, 1, 1, 56);      /* seq 1 */
    ml_writer_alloc(g, ML_DOMAIN_OBJ, 1, 1, 56);      /* seq 2 */
    ml_writer_alloc(g, ML_DOMAIN_MEM, 1, 2, 32);      /* seq 3 */
    ml_writer_gc_start(g, 2, 150, 1);                 /* full collection at 150 us */
    ml_writer_free(g, 1);
    ml_writer_free(g, 3);
    ml_writer_thread_def(g, 2, 4243, "worker", 6);
    ml_writer_thread(g, 2);
    ml_writer_free(g, 2);                             /* another thread's free */
    ml_writer_thread(g, 1);
    ml_writer_gc_stop(g, 2, 400, 2, 0);               /* 250 us pause, 2 collected */
    ml_writer_gc_start(g, 0, 500, 0);
    ml_writer_gc_stop(g, 0, 520, 0, 1);               /* 20 us, 1 uncollectable */
    uint64_t fields[ML_TRAILER_COUNT] = {3, 3, 0, 0, 0};
    ml_writer_trailer(g, fields, ML_TRAILER_COUNT);
    return ml_writer_close(g);
}

/* ---- nstacks: v2-native-stacks.mlens (docs/FORMAT.md "Native stacks"):
 * two mappings (one with a build-id), two native stacks, three native
 * blocks at line 3: two with native stack 1 (innermost first: 0x1100 in
 * libdemo.so, then 0x1200, then 0x5010 in libother.so), one with native
 * stack 2, and one block without. tests/test_native_stacks.py encodes the
 * same with capfile.py. */
static int
gen_v2_native_stacks(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v2-native-stacks.mlens", dir);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"demo.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{\"native\":true,\"native_stacks\":true}}";
    ml_writer *nw = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!nw)
        return -1;
    ml_writer_thread_def(nw, 1, 4242, "MainThread", 10);
    ml_writer_thread(nw, 1);
    static const uint32_t off[] = {0, 10};
    static const int32_t line[] = {1, 3};
    ml_writer_code_def(nw, 1, "demo.py", 7, "<module>", 8, 1, off, line, 2);
    ml_writer_frame_def(nw, 1, 0, 1, 12); /* <module> at line 3 */
    ml_writer_type_def(nw, 1, "<native: libdemo.so>", 20, ML_TYPEF_BUFFER);
    static const uint8_t bid[4] = {0xde, 0xad, 0xbe, 0xef};
    ml_writer_mapping(nw, 0x1000, 0x2000, 0x1000, "/nonexistent/libdemo.so", 23, bid, 4);
    ml_writer_mapping(nw, 0x5000, 0x6000, 0x0, "/nonexistent/libother.so", 24, NULL, 0);
    static const uintptr_t s1[3] = {0x1100, 0x1200, 0x5010}, s2[2] = {0x1300, 0x5010};
    ml_writer_native_stack(nw, 1, s1, 3);
    ml_writer_time(nw, 100);
    ml_writer_native_alloc(nw, 1);
    ml_writer_alloc(nw, ML_DOMAIN_RAW, 1, 1, 1000); /* seq 1 */
    ml_writer_native_alloc(nw, 1);
    ml_writer_alloc(nw, ML_DOMAIN_RAW, 1, 1, 2000); /* seq 2 */
    ml_writer_native_stack(nw, 2, s2, 2);
    ml_writer_native_alloc(nw, 2);
    ml_writer_alloc(nw, ML_DOMAIN_RAW, 1, 1, 4000); /* seq 3 */
    ml_writer_alloc(nw, ML_DOMAIN_RAW, 1, 1, 8000); /* seq 4: no native stack */
    uint64_t fields[ML_TRAILER_COUNT] = {4, 0, 0, 0, 0};
    ml_writer_trailer(nw, fields, ML_TRAILER_COUNT);
    return ml_writer_close(nw);
}

/* ---- v2-gc-exit (gcexit): GARBAGE_AT_EXIT and UNCOLLECTABLE (docs/FORMAT.md
 * "Garbage at exit, uncollectable"). Three Nodes (two at line 3, one at
 * line 1) and a buffer; a full collection puts Node seq 2 and the buffer
 * into gc.garbage; at the end Node seq 1 and the buffer are garbage, in
 * two records. tests/test_gc_exit.py holds the same scenario through
 * capfile. */
static int
gen_v2_gc_exit(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v2-gc-exit.mlens", dir);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"demo.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{}}";
    ml_writer *g = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!g)
        return -1;
    ml_writer_thread_def(g, 1, 4242, "MainThread", 10);
    ml_writer_thread(g, 1);
    static const uint32_t off[] = {0, 10};
    static const int32_t line[] = {1, 3};
    ml_writer_code_def(g, 1, "demo.py", 7, "<module>", 8, 1, off, line, 2);
    ml_writer_frame_def(g, 1, 0, 1, 12);               /* <module> at line 3 */
    ml_writer_frame_def(g, 2, 0, 1, 2);                /* <module> at line 1 */
    ml_writer_type_def(g, 1, "Node", 4, 0);
    ml_writer_type_def(g, 2, "<PyMem buffer>", 14, ML_TYPEF_BUFFER);
    ml_writer_time(g, 100);
    ml_writer_alloc(g, ML_DOMAIN_OBJ, 1, 1, 56);      /* seq 1 */
    ml_writer_alloc(g, ML_DOMAIN_OBJ, 1, 1, 56);      /* seq 2 */
    ml_writer_alloc(g, ML_DOMAIN_MEM, 1, 2, 32);      /* seq 3 */
    ml_writer_alloc(g, ML_DOMAIN_OBJ, 2, 1, 64);      /* seq 4, line 1 */
    ml_writer_gc_start(g, 2, 150, 1);
    static const ml_seq saved[] = {2, 3};
    ml_writer_gc_seqs(g, ML_TAG_UNCOLLECTABLE, saved, 2);
    ml_writer_gc_stop(g, 2, 300, 2, 2);               /* DEBUG_SAVEALL: 2 into gc.garbage */
    ml_writer_time(g, 400);
    static const ml_seq g1[] = {1}, g2[] = {3};
    ml_writer_gc_seqs(g, ML_TAG_GARBAGE_AT_EXIT, g1, 1);
    ml_writer_gc_seqs(g, ML_TAG_GARBAGE_AT_EXIT, g2, 1);
    uint64_t fields[ML_TRAILER_COUNT] = {4, 0, 0, 0, 0};
    ml_writer_trailer(g, fields, ML_TRAILER_COUNT);
    return ml_writer_close(g);
}

/* ---- v2-heap-at-exit: a heap-at-exit snapshot (docs/FORMAT.md "Heap at
 * exit"). A list KEEP (seq 1) with its item array (seq 2, named "list
 * (items)" by its OWNER), two Records in it (seqs 3, 4) and one Record
 * only C code holds (seq 5). tests/test_heap_at_exit.py holds the same
 * scenario through capfile. */
/* The blocks both heap-at-exit scenarios start with, in file `name`:
 * KEEP (seq 1), its items (2), three Records (3-5). NULL on failure. */
static ml_writer *
gen_v2_heap_blocks(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"demo.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{}}";
    ml_writer *x = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!x)
        return NULL;
    ml_writer_thread_def(x, 1, 4242, "MainThread", 10);
    ml_writer_thread(x, 1);
    static const uint32_t off[] = {0, 10};
    static const int32_t line[] = {1, 5};
    ml_writer_code_def(x, 1, "demo.py", 7, "build", 5, 1, off, line, 2);
    ml_writer_frame_def(x, 1, 0, 1, 12);               /* build() at line 5 */
    ml_writer_type_def(x, 1, "list", 4, 0);
    ml_writer_type_def(x, 2, "<PyMem buffer>", 14, ML_TYPEF_BUFFER);
    ml_writer_type_def(x, 3, "Record", 6, 0);
    ml_writer_time(x, 100);
    ml_writer_alloc(x, ML_DOMAIN_OBJ, 1, 1, 56);      /* seq 1: KEEP */
    ml_writer_alloc(x, ML_DOMAIN_MEM, 1, 2, 64);      /* seq 2: its items */
    ml_writer_alloc(x, ML_DOMAIN_OBJ, 1, 3, 48);      /* seqs 3, 4: in KEEP */
    ml_writer_alloc(x, ML_DOMAIN_OBJ, 1, 3, 48);
    ml_writer_alloc(x, ML_DOMAIN_OBJ, 1, 3, 48);      /* seq 5: C code's */
    ml_writer_time(x, 900);
    return x;
}

static int
gen_v2_heap_at_exit(const char *dir)
{
    ml_writer *x = gen_v2_heap_blocks(dir, "v2-heap-at-exit.mlens");
    if (!x)
        return -1;
    ml_writer_snapshot(x, ML_SNAP_EXIT, 0, 0);
    ml_writer_type_def(x, 4, "list (items)", 12, ML_TYPEF_BUFFER);
    ml_writer_owner(x, 2, 1, 4);
    static const char *const keep[] = {"module __main__", ".KEEP", "(list)", "[i]"};
    static const size_t keep_lens[] = {15, 5, 6, 3};
    static const char *const c_code[] = {"held by C code"};
    static const size_t c_lens[] = {14};
    static const ml_seq h1[] = {1, 2}, h2[] = {3, 4}, h3[] = {5};
    ml_writer_holder(x, 1, keep, keep_lens, 2, 216); /* KEEP retains itself, its items, 2 Records */
    ml_writer_held(x, 1, h1, 2);
    ml_writer_holder(x, 2, keep, keep_lens, 4, 216);
    ml_writer_held(x, 2, h2, 2);
    ml_writer_holder(x, 3, c_code, c_lens, 1, 48);
    ml_writer_held(x, 3, h3, 1);
    ml_writer_snapshot(x, ML_SNAP_END, 5, 1234);
    uint64_t fields[ML_TRAILER_COUNT] = {5, 0, 0, 0, 0};
    ml_writer_trailer(x, fields, ML_TRAILER_COUNT);
    return ml_writer_close(x);
}

/* ---- v2-owners: the default pass at exit (SNAPSHOT kind 4), buffer
 * owners in one OWNERS record, in walk order (docs/FORMAT.md "Heap at
 * exit"): the blocks of v2-heap-at-exit; block 4 is named a buffer of
 * block 5, then block 2 of block 1 (seq deltas +4, -2; owner distances -1,
 * +1). tests/test_heap_at_exit.py builds the same file with capfile. */
static int
gen_v2_owners(const char *dir)
{
    ml_writer *x = gen_v2_heap_blocks(dir, "v2-owners.mlens");
    if (!x)
        return -1;
    ml_writer_snapshot(x, ML_SNAP_OWNERS, 0, 0);
    ml_writer_type_def(x, 4, "list (items)", 12, ML_TYPEF_BUFFER);
    ml_writer_type_def(x, 5, "Record (values)", 15, ML_TYPEF_BUFFER);
    static const ml_seq seqs[] = {4, 2}, owners[] = {5, 1};
    static const ml_type_id types[] = {5, 4};
    ml_writer_owners(x, seqs, owners, types, 2);
    ml_writer_snapshot(x, ML_SNAP_END, 5, 321);
    uint64_t fields[ML_TRAILER_COUNT] = {5, 0, 0, 0, 0};
    ml_writer_trailer(x, fields, ML_TRAILER_COUNT);
    return ml_writer_close(x);
}

/* ---- rss: v2-arenas, ARENA and ARENA_BLOCKS (docs/FORMAT.md "Arenas").
 * Four Pin blocks made at prog.py line 9 and a tuple at line 13; the
 * second Pin is freed. Arena 0 (1 MiB, 0.1% used) holds Pins 1 and 3 and
 * the tuple; arena 1 (86% used) holds Pin 4. tests/test_arenas.py builds
 * the same file with capfile and checks the report by hand. */
static int
gen_v2_arenas(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v2-arenas.mlens", dir);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"prog.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{}}";
    ml_writer *a = ml_writer_open(path, 1, 0, meta, strlen(meta));
    if (!a)
        return -1;
    ml_writer_thread_def(a, 1, 4242, "MainThread", 10);
    ml_writer_thread(a, 1);
    static const uint32_t off[] = {0, 10, 20};
    static const int32_t line[] = {1, 9, 13};
    ml_writer_code_def(a, 1, "prog.py", 7, "make", 4, 1, off, line, 3);
    ml_writer_frame_def(a, 1, 0, 1, 12); /* make() at line 9 */
    ml_writer_frame_def(a, 2, 0, 1, 22); /* make() at line 13 */
    ml_writer_type_def(a, 1, "Pin", 3, 0);
    ml_writer_type_def(a, 2, "tuple", 5, 0);
    ml_writer_time(a, 100);
    ml_writer_alloc(a, ML_DOMAIN_OBJ, 1, 1, 40); /* seq 1 */
    ml_writer_alloc(a, ML_DOMAIN_OBJ, 1, 1, 40); /* seq 2 */
    ml_writer_alloc(a, ML_DOMAIN_OBJ, 1, 1, 40); /* seq 3 */
    ml_writer_alloc(a, ML_DOMAIN_OBJ, 1, 1, 40); /* seq 4 */
    ml_writer_alloc(a, ML_DOMAIN_OBJ, 2, 2, 56); /* seq 5 */
    ml_writer_free(a, 2);
    ml_writer_arena(a, 0x7f0000000000ull, 1048576, 1048576, 63, 3, 1056);
    ml_writer_arena(a, 0x7f0000100000ull, 1048576, 1048576, 63, 63, 900000);
    static const ml_seq in0[] = {1, 3, 5};
    ml_writer_arena_blocks(a, 0, in0, 3);
    uint64_t fields[ML_TRAILER_COUNT] = {5, 1, 0, 0, 0};
    ml_writer_trailer(a, fields, ML_TRAILER_COUNT);
    return ml_writer_close(a) < 0 ? -1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_golden DIR\n");
        return 2;
    }
    char path[4096], jpath[4096], tpath[4096];
    snprintf(path, sizeof(path), "%s/v1-basic.mlens", argv[1]);
    snprintf(tpath, sizeof(tpath), "%s/v1-truncated.mlens", argv[1]);
    snprintf(jpath, sizeof(jpath), "%s/v1-basic.expected.json", argv[1]);
    const char *meta = "{\"python\":\"3.12.1\",\"pid\":1234,\"argv\":[\"demo.py\"],"
                       "\"start_time_us\":1700000000000000,\"options\":{}}";
    w = ml_writer_open(path, 1, 0, meta, strlen(meta));
    js = fopen(jpath, "w");
    if (!w || !js) {
        perror("gen_golden");
        return 1;
    }
    if (gen_v2_rss(argv[1]) < 0) {
        perror("gen_golden: v2-rss");
        return 1;
    }
    if (gen_v2_arenas(argv[1]) < 0) {
        perror("gen_golden: v2-arenas");
        return 1;
    }
    fprintf(js, "{\n  \"version\": 1,\n  \"meta\": %s,\n  \"events\": [", meta);

    /* definitions: two codes of demo.py, a two-frame stack, three types */
    ml_writer_thread_def(w, 1, 4242, "MainThread", 10);
    g_thread(1);
    static const uint32_t off1[] = {0, 10, 20};
    static const int32_t line1[] = {1, 3, 5};
    ml_writer_code_def(w, 1, "demo.py", 7, "<module>", 8, 1, off1, line1, 3);
    static const uint32_t off2[] = {0, 8, 16};
    static const int32_t line2[] = {7, 8, 0}; /* from offset 16: no line */
    ml_writer_code_def(w, 2, "demo.py", 7, "make", 4, 7, off2, line2, 3);
    ml_writer_frame_def(w, 1, 0, 1, 12); /* <module> at line 3 */
    ml_writer_frame_def(w, 2, 1, 2, 10); /* make at line 8, called from line 3 */
    ml_writer_type_def(w, 1, "list", 4, 0);
    ml_writer_type_def(w, 2, "type", 4, ML_TYPEF_METATYPE);
    ml_writer_type_def(w, 3, "<dict keys>", 11, ML_TYPEF_BUFFER);

    g_time(100);
    g_alloc(ML_DOMAIN_OBJ, 2, 1, 56);   /* seq 1: explicit pair */
    g_alloc(ML_DOMAIN_OBJ, 2, 1, 56);   /* seq 2: the pair from the cache */
    g_alloc(ML_DOMAIN_MEM, 2, 0, 1000); /* seq 3 */
    g_alloc(ML_DOMAIN_RAW, 0, 0, 4096); /* seq 4: no Python stack */
    g_time(50);
    g_memory(10485760, 5208);
    g_context(1);
    g_free(3);                          /* inline distance 1 */
    g_reuse(1);
    g_text(1, ML_MARK_ENTER, "phase 1");
    g_text(0, ML_NOTE_WARNING, "something was lost");
    for (int i = 0; i < 70; i++)        /* seqs 5..74 */
        g_alloc(ML_DOMAIN_MEM, 1, 3, 24 + (uint64_t)i);
    g_free(2);                          /* distance 72: long form */
    g_time(300);
    g_fork(4321);
    ml_writer_thread_def(w, 2, 4243, "worker", 6);
    g_thread(2);
    ml_seq last = g_alloc(ML_DOMAIN_OBJ, 1, 2, 900); /* seq 75 */
    g_free(last);                       /* distance 0 */
    g_thread(1);
    g_free(74);                         /* distance 1 */
    ml_writer_flush(w);
    uint64_t cut_at = ml_writer_bytes_written(w);
    ml_writer_thread(w, 2);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 2, 1u << 20); /* seq 76, 3-byte size */
    ml_writer_thread(w, 1);
    uint64_t fields[ML_TRAILER_COUNT] = {76, 4, 0, 0, 0};
    /* the basic file has the last alloc too; describe it */
    cur_thread = 2;
    ev_begin("alloc");
    fprintf(js, ", \"domain\": 2, \"seq\": 76, \"size\": %u, \"stack\": 1, \"type\": 2}", 1u << 20);
    cur_thread = 1;
    ml_writer_trailer(w, fields, ML_TRAILER_COUNT);
    if (ml_writer_close(w) < 0) {
        perror("gen_golden: write");
        return 1;
    }
    if (set_version(path, 1) < 0) {
        perror("gen_golden: version");
        return 1;
    }
    /* The truncated file: everything up to the THREAD 2 record, then the
     * first two bytes of the 4-byte ALLOC of seq 76 (cut inside its size). */
    FILE *in = fopen(path, "rb"), *out = fopen(tpath, "wb");
    if (!in || !out) {
        perror("gen_golden");
        return 1;
    }
    size_t keep = (size_t)cut_at + 2 /* THREAD 2 */ + 2 /* tag, 1st size byte */;
    for (size_t i = 0; i < keep; i++) {
        int c = fgetc(in);
        if (c == EOF)
            return 1;
        fputc(c, out);
    }
    fclose(in);
    fclose(out);
    fprintf(js, "\n  ],\n");
    fprintf(js, "  \"trailer\": [76, 4, 0, 0, 0],\n");
    fprintf(js, "  \"truncated_file\": {\"size\": %zu, \"events_dropped_at_end\": 1},\n", keep);
    fprintf(js,
            "  \"codes\": [\n"
            "    {\"file\": \"demo.py\", \"name\": \"<module>\", \"firstlineno\": 1, "
            "\"linemap\": [[0, 1], [10, 3], [20, 5]]},\n"
            "    {\"file\": \"demo.py\", \"name\": \"make\", \"firstlineno\": 7, "
            "\"linemap\": [[0, 7], [8, 8], [16, 0]]}\n  ],\n"
            "  \"frames\": [\n"
            "    {\"parent\": 0, \"code\": 1, \"offset\": 12, \"line\": 3},\n"
            "    {\"parent\": 1, \"code\": 2, \"offset\": 10, \"line\": 8}\n  ],\n"
            "  \"types\": [\n"
            "    {\"name\": \"list\", \"flags\": 0},\n"
            "    {\"name\": \"type\", \"flags\": 1},\n"
            "    {\"name\": \"<dict keys>\", \"flags\": 2}\n  ]\n}\n");
    fclose(js);
    if (gen_v2_native(argv[1]) < 0) {
        perror("gen_golden: v2-native");
        return 1;
    }
    if (gen_v2_gc(argv[1]) < 0) {
        perror("gen_golden: v2-gc");
        return 1;
    }
    if (gen_v2_native_stacks(argv[1]) < 0) {
        perror("gen_golden: v2-native-stacks");
        return 1;
    }
    if (gen_v2_gc_exit(argv[1]) < 0) {
        perror("gen_golden: v2-gc-exit");
        return 1;
    }
    if (gen_v2_heap_at_exit(argv[1]) < 0) {
        perror("gen_golden: v2-heap-at-exit");
        return 1;
    }
    if (gen_v2_owners(argv[1]) < 0) {
        perror("gen_golden: v2-owners");
        return 1;
    }
    return 0;
}
