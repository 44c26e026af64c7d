/* test_format.c: unit tests of the capture format: varints, writer.c ->
 * reader.c round trips of every record kind, FREE distances, the pair cache,
 * the live-block table, the reports on a small capture, and robustness of
 * the reader against every prefix and random corruption of a file, stream
 * sources (compressed containers, pipes, windows), thread-id lookup, header
 * JSON, per-record limits, the interrupt check, and the writer's file
 * creation (O_EXCL, never through a link).
 *
 *   test_format TMPDIR      prints one line per failed check and a final
 *                           "N passed, N failed" (one test = one function)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/live.h"
#include "analysis/reader.h"
#include "analysis/report.h"
#include "capture/blocks.h"
#include "analysis/seqsites.h" /* cycline */
#include "capture/writer.h"
#include "capture/zdeflate.h"
#include "native/symbols.h"

static int n_passed, n_failed, cur_failed;
static const char *tmpdir;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            cur_failed = 1;                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

#define RUN(fn)                                      \
    do {                                             \
        cur_failed = 0;                              \
        fn();                                        \
        if (cur_failed) {                            \
            n_failed++;                              \
            fprintf(stderr, "FAIL %s\n", #fn);       \
        } else {                                     \
            n_passed++;                              \
        }                                            \
    } while (0)

static const char META[] = "{\"python\":\"3.12.1\",\"pid\":1}";

static char *
tmp_path(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/mltest-%d-%s", tmpdir, (int)getpid(), name);
    return p;
}

static void
write_bytes(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n && fwrite(data, 1, n, f) != n)
        exit(2);
    fclose(f);
}

static uint8_t *
read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    if (fread(b, 1, (size_t)len, f) != (size_t)len)
        exit(2);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A header + records buffer for hand-made (corrupt) files. */
typedef struct {
    uint8_t b[4096];
    size_t n;
} buf_t;

static void
buf_header(buf_t *b, uint32_t version)
{
    size_t m = strlen(META);
    memcpy(b->b, ML_MAGIC, ML_MAGIC_LEN);
    ml_u32le_put(b->b + 8, version);
    ml_u32le_put(b->b + 12, (uint32_t)m);
    memcpy(b->b + 16, META, m);
    b->n = 16 + m;
}

static void
buf_put(buf_t *b, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        b->b[b->n++] = (uint8_t)va_arg(ap, int);
    va_end(ap);
}

/* Read every event; returns the last ml_reader_next result (0 or -1). */
static int
drain(ml_reader *r, uint64_t *nevents)
{
    ml_event ev;
    int rc;
    uint64_t n = 0;
    while ((rc = ml_reader_next(r, &ev)) > 0)
        n++;
    if (nevents)
        *nevents = n;
    return rc;
}

/* ---- varints ---- */

static void
test_varint(void)
{
    static const uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, UINT32_MAX,
                                    (uint64_t)1 << 62, UINT64_MAX - 1, UINT64_MAX};
    static const size_t lens[] = {1, 1, 1, 2, 2, 2, 2, 3, 5, 9, 10, 10};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t b[16];
        size_t n = ml_uv_put(b, vals[i]);
        CHECK(n == lens[i]);
        const uint8_t *p = b;
        uint64_t v = 0;
        CHECK(ml_uv_get(&p, b + n, &v) == 0 && v == vals[i] && p == b + n);
        /* every cut of it fails and leaves the pointer */
        for (size_t k = 0; k < n; k++) {
            p = b;
            CHECK(ml_uv_get(&p, b + k, &v) == -1 && p == b);
        }
    }
    /* 11 bytes, and a 10th byte above 1, are refused */
    uint8_t longer[11];
    memset(longer, 0x80, 10);
    longer[10] = 0;
    const uint8_t *p = longer;
    uint64_t v;
    CHECK(ml_uv_get(&p, longer + 11, &v) == -1);
    uint8_t over[10];
    memset(over, 0xFF, 9);
    over[9] = 0x02;
    p = over;
    CHECK(ml_uv_get(&p, over + 10, &v) == -1);
    /* zigzag */
    static const int64_t s[] = {0, -1, 1, -2, 2, INT64_MAX, INT64_MIN, -1000000};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        CHECK(ml_unzigzag(ml_zigzag(s[i])) == s[i]);
    CHECK(ml_zigzag(-1) == 1 && ml_zigzag(1) == 2 && ml_zigzag(-2) == 3);
}

/* ---- round trip of every record kind ---- */

static void
test_roundtrip_all_records(void)
{
    const char *path = tmp_path("all.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    CHECK(w != NULL);
    if (!w)
        return;
    ml_writer_thread_def(w, 3, 777, "worker-3", 8);
    ml_writer_thread(w, 3);
    uint32_t offs[] = {0, 6, 40, 200};
    int32_t lines[] = {10, 12, 0, 9};
    ml_writer_code_def(w, 1, "/x/app.py", 9, "Cls.meth", 8, 10, offs, lines, 4);
    ml_writer_code_def(w, 2, "lib.py", 6, "helper", 6, 100, NULL, NULL, 0);
    ml_writer_frame_def(w, 1, 0, 1, 7);    /* line 12 */
    ml_writer_frame_def(w, 2, 1, 2, 0);    /* empty map: first line 100 */
    ml_writer_frame_def(w, 3, 1, 1, 45);   /* line 0: none */
    ml_writer_frame_def(w, 4, 3, 1, 5000); /* line 9 */
    ml_writer_type_def(w, 1, "dict", 4, 0);
    ml_writer_type_def(w, 2, "<buffer>", 8, ML_TYPEF_BUFFER);
    ml_writer_time(w, 1000);
    ml_seq s1 = ml_writer_alloc(w, ML_DOMAIN_OBJ, 2, 1, 232);
    ml_seq s2 = ml_writer_alloc(w, ML_DOMAIN_RAW, 0, 0, (uint64_t)1 << 40);
    ml_writer_time(w, 5);
    ml_writer_memory(w, 123456789, 999);
    ml_writer_context(w, 4);
    ml_writer_free(w, s1);
    ml_writer_reuse(w, 2);
    ml_writer_mark(w, ML_MARK_LABEL, "here", 4);
    ml_writer_note(w, ML_NOTE_TRACER_LOST, "tracer", 6);
    ml_writer_fork(w, 99999);
    ml_writer_thread(w, 0);
    ml_writer_free(w, s2);
    uint64_t fields[] = {2, 2, 7, 8, 9, 1234};
    ml_writer_trailer(w, fields, 6);
    CHECK(ml_writer_close(w) == 0);

    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    size_t mlen;
    const char *meta = ml_reader_meta(r, &mlen);
    CHECK(mlen == strlen(META) && !memcmp(meta, META, mlen));
    ml_event ev;
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_ALLOC && ev.seq == 1 && ev.size == 232 && ev.stack == 2 && ev.type == 1 &&
          ev.domain == ML_DOMAIN_OBJ && ev.time_us == 1000 && ev.thread == 3);
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_ALLOC && ev.seq == 2 && ev.size == (uint64_t)1 << 40 && ev.stack == 0 &&
          ev.type == 0 && ev.domain == ML_DOMAIN_RAW);
    CHECK(ml_reader_live_count(r) == 2 && ml_reader_live_bytes(r) == 232 + ((uint64_t)1 << 40));
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_MEMORY && ev.rss == 123456789 && ev.heap == 999 && ev.time_us == 1005);
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_FREE && ev.seq == 1 && ev.size == 232 && ev.stack == 2 && ev.type == 1 &&
          ev.at_stack == 4 && ev.domain == ML_DOMAIN_OBJ);
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_REUSE && ev.type == 2 && ev.stack == 4);
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_MARK && ev.mark_kind == ML_MARK_LABEL && ev.text_len == 4 &&
          !memcmp(ev.text, "here", 4));
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_NOTE && ev.mark_kind == ML_NOTE_TRACER_LOST && ev.text_len == 6 &&
          !memcmp(ev.text, "tracer", 6));
    CHECK(ml_reader_next(r, &ev) == 1);
    CHECK(ev.kind == ML_EV_FORK && ev.child_pid == 99999);
    CHECK(ml_reader_next(r, &ev) == 1);
    /* thread 0 never had an ALLOC or CONTEXT: its stack is unknown */
    CHECK(ev.kind == ML_EV_FREE && ev.seq == 2 && ev.thread == 0 && ev.at_stack == 0);
    CHECK(ml_reader_next(r, &ev) == 0);
    CHECK(!ml_reader_truncated(r));
    CHECK(ml_reader_next(r, &ev) == 0);
    CHECK(ml_reader_trailer(r, ML_TRAILER_ALLOCS) == 2 && ml_reader_trailer(r, ML_TRAILER_DROPPED) == 7 &&
          ml_reader_trailer(r, ML_TRAILER_TRUNCATED) == 9 && ml_reader_trailer(r, 5) == 0);
    CHECK(ml_reader_live_count(r) == 0 && ml_reader_live_bytes(r) == 0);
    CHECK(ml_reader_time(r) == 1005);
    /* definitions */
    CHECK(ml_reader_ncodes(r) == 2 && ml_reader_nframes(r) == 4 && ml_reader_ntypes(r) == 2);
    const ml_code_info *c = ml_reader_code(r, 1);
    CHECK(c && !strcmp(c->file, "/x/app.py") && !strcmp(c->name, "Cls.meth") && c->firstlineno == 10 &&
          c->nlines == 4 && c->offsets[3] == 200 && c->lines[1] == 12 && c->lines[2] == 0 &&
          c->lines[3] == 9);
    CHECK(ml_reader_code(r, 0) == NULL && ml_reader_code(r, 3) == NULL);
    CHECK(ml_reader_frame_line(r, 1) == 12);
    CHECK(ml_reader_frame_line(r, 2) == 100);
    CHECK(ml_reader_frame_line(r, 3) == 0);
    CHECK(ml_reader_frame_line(r, 4) == 9);
    CHECK(ml_reader_frame_line(r, 5) == 0);
    CHECK(ml_reader_code_line(r, 1, 0) == 10 && ml_reader_code_line(r, 1, 5) == 10 &&
          ml_reader_code_line(r, 1, 6) == 12 && ml_reader_code_line(r, 1, 39) == 12);
    const ml_frame_info *f = ml_reader_frame(r, 4);
    CHECK(f && f->parent == 3 && f->code == 1 && f->offset == 5000);
    CHECK(!strcmp(ml_reader_type_name(r, 2), "<buffer>") && ml_reader_type_flags(r, 2) == ML_TYPEF_BUFFER);
    CHECK(ml_reader_type_name(r, 0) == NULL && ml_reader_type_name(r, 3) == NULL);
    uint64_t tid = 0;
    const char *tname = ml_reader_thread_name(r, 3, &tid);
    CHECK(tname && !strcmp(tname, "worker-3") && tid == 777);
    /* rewind: the same stream again, definitions kept */
    ml_reader_rewind(r);
    CHECK(ml_reader_nframes(r) == 4);
    uint64_t n = 0;
    CHECK(drain(r, &n) == 0 && n == 9 && !ml_reader_truncated(r));
    ml_reader_free(r);
    unlink(path);
}

/* ---- FREE distances ---- */

static void
test_free_distances(void)
{
    const char *path = tmp_path("free.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    for (int i = 0; i < 300; i++)
        ml_writer_alloc(w, ML_DOMAIN_MEM, 0, 0, (uint64_t)i + 1);
    uint64_t before = ml_writer_bytes_written(w);
    ml_writer_free(w, 300 - 62); /* inline max: one byte 0x7E */
    CHECK(ml_writer_bytes_written(w) == before + 1);
    ml_writer_free(w, 300 - 63); /* long form, d - 63 = 0: 0x7F 0x00 */
    CHECK(ml_writer_bytes_written(w) == before + 3);
    ml_writer_free(w, 300 - 63 - 128); /* 0x7F, two-byte varint 128 */
    CHECK(ml_writer_bytes_written(w) == before + 6);
    static const ml_seq order[] = {300, 299, 1, 2, 100, 237, 236};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        ml_writer_free(w, order[i]);
    ml_writer_trailer(w, NULL, 0);
    ml_writer_close(w);

    size_t n;
    uint8_t *b = read_bytes(path, &n);
    const uint8_t *q = b + 16 + strlen(META);
    size_t skip = 0;
    /* each ALLOC: tag (the pair (0, 0) is in the fresh cache) + size */
    for (int i = 0; i < 300; i++)
        skip += 1 + (i + 1 < 128 ? 1 : 2);
    CHECK(q[skip] == 0x7E);
    CHECK(q[skip + 1] == 0x7F && q[skip + 2] == 0x00);
    CHECK(q[skip + 3] == 0x7F && q[skip + 4] == 0x80 && q[skip + 5] == 0x01);
    free(b);

    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    ml_event ev;
    for (int i = 0; i < 300; i++)
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ALLOC && ev.size == (uint64_t)i + 1);
    static const ml_seq expect[] = {238, 237, 109, 300, 299, 1, 2, 100};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_FREE && ev.seq == expect[i] &&
              ev.size == expect[i]);
    }
    /* 237 was freed above: freeing it again is corrupt; 236 is fine */
    CHECK(ml_reader_next(r, &ev) == -1);
    CHECK(strstr(ml_reader_error(r), "block 237, which is not allocated") != NULL);
    ml_reader_free(r);
    unlink(path);
}

/* ---- the pair cache ---- */

static void
test_pair_cache(void)
{
    /* find two (stack, type) pairs that share a slot */
    uint32_t a = 5, b = 0;
    for (uint32_t s = 6; s < 10000 && !b; s++)
        if (ml_slot_of(s, 1) == ml_slot_of(a, 1))
            b = s;
    CHECK(b != 0);
    const char *path = tmp_path("cache.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    ml_writer_code_def(w, 1, "f.py", 4, "f", 1, 1, NULL, NULL, 0);
    for (uint32_t i = 1; i <= b; i++)
        ml_writer_frame_def(w, i, 0, 1, i);
    ml_writer_type_def(w, 1, "int", 3, 0);
    uint64_t n0 = ml_writer_bytes_written(w);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, a, 1, 32); /* explicit: tag, a, 1, size */
    uint64_t n1 = ml_writer_bytes_written(w);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, a, 1, 32); /* cached: tag, size */
    uint64_t n2 = ml_writer_bytes_written(w);
    CHECK(n2 - n1 == 2);
    CHECK(n1 - n0 == 2 + ml_uv_put((uint8_t[10]){0}, a) + 1);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, b, 1, 32); /* evicts a */
    ml_writer_alloc(w, ML_DOMAIN_OBJ, a, 1, 32); /* explicit again */
    uint64_t n3 = ml_writer_bytes_written(w);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, a, 1, 32); /* cached */
    ml_writer_alloc(w, ML_DOMAIN_RAW, a, 1, 8);  /* the domain does not matter to the cache */
    CHECK(ml_writer_bytes_written(w) - n3 == 4);
    ml_writer_trailer(w, NULL, 0);
    ml_writer_close(w);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    static const struct { uint32_t stack; unsigned dom; } want[] = {
        {0, 2}, {0, 2}, {1, 2}, {0, 2}, {0, 2}, {0, 0}};
    ml_event ev;
    for (size_t i = 0; i < 6; i++) {
        uint32_t st = want[i].stack ? b : a;
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ALLOC && ev.stack == st &&
              ev.type == 1 && ev.domain == want[i].dom);
    }
    CHECK(ml_reader_next(r, &ev) == 0 && !ml_reader_truncated(r));
    ml_reader_free(r);
    unlink(path);
}

/* ---- hand-made corrupt files ---- */

static void
expect_corrupt(buf_t *b, const char *what, size_t offset)
{
    const char *path = tmp_path("corrupt.mlens");
    write_bytes(path, b->b, b->n);
    char err[512], at[64];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK(drain(r, NULL) == -1);
    snprintf(at, sizeof(at), "at byte %zu:", offset);
    int ok = strstr(ml_reader_error(r), what) && strstr(ml_reader_error(r), at);
    if (!ok)
        fprintf(stderr, "  got: %s (want '%s' %s)\n", ml_reader_error(r), what, at);
    CHECK(ok);
    ml_event ev;
    CHECK(ml_reader_next(r, &ev) == -1); /* sticky */
    ml_reader_free(r);
}

static void
test_corrupt_records(void)
{
    buf_t b;
    size_t h;
    buf_header(&b, 1);
    h = b.n;
    buf_put(&b, 4, 0xFF, 0, 0, 8); /* domain 3 */
    expect_corrupt(&b, "domain 3", h);

    b.n = h;
    buf_put(&b, 4, 0xDF, 1, 0, 8); /* undefined stack 1 */
    expect_corrupt(&b, "undefined stack 1", h);

    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 5, 8); /* undefined type 5 */
    expect_corrupt(&b, "undefined type 5", h);

    b.n = h;
    buf_put(&b, 3, 0xDF, 0, 0);    /* size missing: cut, not corrupt */
    buf_put(&b, 1, 8);
    buf_put(&b, 1, 0x41);          /* FREE distance 1 with one block */
    expect_corrupt(&b, "before the first allocation", h + 4);

    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 0, 8);
    buf_put(&b, 1, 0x40);
    buf_put(&b, 1, 0x40);          /* double free */
    expect_corrupt(&b, "not allocated", h + 5);

    b.n = h;
    buf_put(&b, 1, 0x0E);          /* a version-2 tag in a version-1 file */
    expect_corrupt(&b, "record tag 0x0e is not in format version 1", h);

    ml_u32le_put(b.b + 8, 2);      /* the same files as version 2 */
    b.n = h;
    buf_put(&b, 1, 0x3F);          /* unknown tag */
    expect_corrupt(&b, "unknown record tag 0x3f", h);
    ml_u32le_put(b.b + 8, 1);

    b.n = h;
    buf_put(&b, 2, 0x00, 0x01);    /* a zero tag that is not a zero tail */
    expect_corrupt(&b, "unknown record tag 0x00", h);

    b.n = h;
    buf_put(&b, 5, 0x05, 2, 0, 1, 0); /* FRAME_DEF 2 first */
    expect_corrupt(&b, "FRAME_DEF 2 out of order", h);

    b.n = h;
    buf_put(&b, 5, 0x05, 1, 0, 1, 0); /* FRAME_DEF with undefined code */
    expect_corrupt(&b, "undefined code 1", h);

    b.n = h;
    buf_put(&b, 4, 0x06, 2, 1, 'x'); /* TYPE_DEF out of order */
    buf_put(&b, 1, 0);
    expect_corrupt(&b, "TYPE_DEF 2 out of order", h);

    b.n = h;
    buf_put(&b, 2, 0x08, 3);       /* CONTEXT of an undefined stack */
    expect_corrupt(&b, "CONTEXT with undefined stack 3", h);

    b.n = h;
    buf_put(&b, 2, 0x09, 1);       /* REUSE of an undefined type */
    expect_corrupt(&b, "REUSE with undefined type 1", h);

    b.n = h;
    buf_put(&b, 1, 0x01);          /* TIME with an 11-byte varint */
    for (int i = 0; i < 10; i++)
        buf_put(&b, 1, 0x80);
    buf_put(&b, 1, 0x00);
    expect_corrupt(&b, "longer than 10 bytes", h);

    /* a zero-filled tail is a cut, not corruption */
    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 0, 8);
    for (int i = 0; i < 100; i++)
        buf_put(&b, 1, 0);
    const char *path = tmp_path("zeros.mlens");
    write_bytes(path, b.b, b.n);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    uint64_t n;
    CHECK(r && drain(r, &n) == 0 && n == 1 && ml_reader_truncated(r));
    ml_reader_free(r);
    unlink(path);
    unlink(tmp_path("corrupt.mlens"));
}

/* gcexit: GARBAGE_AT_EXIT (0x1A) and UNCOLLECTABLE (0x1B) */
static void
test_gcexit_records(void)
{
    buf_t b;
    size_t h;
    buf_header(&b, 1);
    h = b.n;
    buf_put(&b, 2, 0x1A, 0);       /* a version-2 tag in a version-1 file */
    expect_corrupt(&b, "record tag 0x1a is not in format version 1", h);

    ml_u32le_put(b.b + 8, 2);
    b.n = h;
    buf_put(&b, 3, 0x1A, 0x81, 0x20); /* 4097 blocks */
    expect_corrupt(&b, "GARBAGE_AT_EXIT with 4097 blocks (at most 4096)", h);

    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 0, 8);  /* seq 1 */
    buf_put(&b, 3, 0x1A, 1, 2);     /* seq 2: never allocated */
    expect_corrupt(&b, "GARBAGE_AT_EXIT block after 0 at distance 2 (1 blocks so far)", h + 4);

    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 0, 8);
    buf_put(&b, 4, 0xDF, 0, 0, 8);
    buf_put(&b, 4, 0x1B, 2, 1, 0);  /* seq 1 twice */
    expect_corrupt(&b, "UNCOLLECTABLE block after 1 at distance 0", h + 8);

    b.n = h;
    buf_put(&b, 3, 0x1B, 1, 1);     /* before any allocation */
    expect_corrupt(&b, "UNCOLLECTABLE block after 0 at distance 1 (0 blocks so far)", h);

    /* well formed: two blocks, an empty record and a set of both */
    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 0, 8);
    buf_put(&b, 4, 0xDF, 0, 0, 8);
    buf_put(&b, 2, 0x1A, 0);
    buf_put(&b, 4, 0x1B, 2, 1, 1);
    const char *path = tmp_path("gcexit.mlens");
    write_bytes(path, b.b, b.n);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (r) {
        ml_event ev;
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ALLOC);
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ALLOC);
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_GARBAGE_AT_EXIT && ev.n_gc_seqs == 0);
        CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_UNCOLLECTABLE && ev.n_gc_seqs == 2 &&
              ev.gc_seqs[0] == 1 && ev.gc_seqs[1] == 2);
        CHECK(ml_reader_next(r, &ev) == 0);
        ml_reader_free(r);
    }
    unlink(path);
    unlink(tmp_path("corrupt.mlens"));
}

static void
expect_open_error(const uint8_t *data, size_t n, const char *what, int want_errno)
{
    const char *path = tmp_path("hdr.mlens");
    write_bytes(path, data, n);
    char err[512] = "";
    errno = 12345;
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r == NULL);
    CHECK(errno == want_errno);
    int ok = strstr(err, what) != NULL && strstr(err, path) != NULL && !strchr(err, '\n');
    if (!ok)
        fprintf(stderr, "  got: %s (want '%s')\n", err, what);
    CHECK(ok);
    ml_reader_free(r);
    unlink(path);
}

static void
test_header_errors(void)
{
    char err[512];
    errno = 0;
    ml_reader *r = ml_reader_open(tmp_path("does-not-exist"), err, sizeof(err));
    CHECK(r == NULL && errno == ENOENT && strstr(err, "No such file") && strstr(err, "cannot open"));
    r = ml_reader_open(tmpdir, err, sizeof(err));
    CHECK(r == NULL && errno == EISDIR);

    expect_open_error((const uint8_t *)"", 0, "empty file", 0);
    expect_open_error((const uint8_t *)"hello world, not a capture", 26, "not a memlens capture", 0);
    expect_open_error((const uint8_t *)"MLEN", 4, "cut short inside its header", 0);
    buf_t b;
    buf_header(&b, 3);
    expect_open_error(b.b, b.n,
                      "capture format version 3 is newer than this memlens supports (2); "
                      "upgrade memlens", 0);
    buf_header(&b, 0);
    expect_open_error(b.b, b.n, "format version 0", 0);
    buf_header(&b, 1);
    expect_open_error(b.b, b.n - 3, "cut short inside its header", 0);
    expect_open_error(b.b, 12, "cut short inside its header", 0);
    /* a header alone is an empty, truncated capture */
    const char *path = tmp_path("hdronly.mlens");
    write_bytes(path, b.b, b.n);
    r = ml_reader_open(path, err, sizeof(err));
    uint64_t n = 1;
    CHECK(r && drain(r, &n) == 0 && n == 0 && ml_reader_truncated(r));
    ml_reader_free(r);
    unlink(path);
}

/* ---- a small file with every record kind, for prefixes and fuzzing ---- */

static uint8_t *
small_capture(size_t *n)
{
    const char *path = tmp_path("small.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    uint32_t offs[] = {0, 4};
    int32_t lines[] = {3, 4};
    ml_writer_thread_def(w, 1, 10, "main", 4);
    ml_writer_thread(w, 1);
    ml_writer_code_def(w, 1, "a.py", 4, "f", 1, 3, offs, lines, 2);
    ml_writer_code_def(w, 2, "a.py", 4, "g", 1, 9, offs, lines, 2);
    ml_writer_frame_def(w, 1, 0, 1, 4);
    ml_writer_frame_def(w, 2, 1, 2, 0);
    ml_writer_type_def(w, 1, "list", 4, 0);
    ml_writer_type_def(w, 2, "float", 5, 0);
    ml_seq s[80];
    for (int i = 0; i < 80; i++) {
        ml_writer_time(w, 3);
        s[i] = ml_writer_alloc(w, (ml_domain)(i % 3), (uint32_t)(i % 3), (uint32_t)(i % 3), 16 + (uint64_t)i * 40);
        if (i % 4 == 3)
            ml_writer_free(w, s[i - 2]);
        if (i == 70)
            ml_writer_free(w, s[0]); /* long distance */
        if (i == 40) {
            ml_writer_context(w, 2);
            ml_writer_reuse(w, 2);
            ml_writer_memory(w, 1 << 20, 5000);
            ml_writer_mark(w, 1, "m", 1);
            ml_writer_note(w, 1, "note", 4);
            ml_writer_fork(w, 7);
            ml_writer_thread(w, 2);
        }
    }
    uint64_t f[] = {80, 21, 0, 0, 0};
    ml_writer_trailer(w, f, 5);
    ml_writer_close(w);
    uint8_t *b = read_bytes(path, n);
    unlink(path);
    return b;
}

static void
run_reports(ml_reader *r)
{
    char err[512];
    ml_summary s;
    ml_types t;
    ml_leaks l;
    if (ml_report_summary(r, 5, NULL, &s, err, sizeof(err)) == 0)
        ml_summary_release(&s);
    if (ml_report_types(r, NULL, &t, err, sizeof(err)) == 0)
        ml_types_release(&t);
    if (ml_report_leaks(r, 5, NULL, &l, err, sizeof(err)) == 0)
        ml_leaks_release(&l);
}

static void
test_every_prefix(void)
{
    size_t n;
    uint8_t *full = small_capture(&n);
    const char *path = tmp_path("prefix.mlens");
    size_t header = 16 + strlen(META);
    uint64_t prev = 0, total = 0;
    for (size_t len = 0; len <= n; len++) {
        write_bytes(path, full, len);
        char err[512];
        ml_reader *r = ml_reader_open(path, err, sizeof(err));
        if (len < header) {
            CHECK(r == NULL);
            continue;
        }
        CHECK(r != NULL);
        if (!r)
            continue;
        uint64_t events = 0;
        int rc = drain(r, &events);
        CHECK(rc == 0);
        if (rc != 0)
            fprintf(stderr, "  prefix %zu: %s\n", len, ml_reader_error(r));
        CHECK(ml_reader_truncated(r) == (len != n));
        CHECK(events >= prev); /* a longer prefix never holds fewer events */
        prev = events;
        if (len == n)
            total = events;
        if (len % 7 == 0)
            run_reports(r);
        ml_reader_free(r);
    }
    CHECK(total == 80 + 21 + 5);
    free(full);
    unlink(path);
}

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void
test_fuzz(void)
{
    size_t n;
    uint8_t *full = small_capture(&n);
    uint8_t *copy = malloc(n);
    const char *path = tmp_path("fuzz.mlens");
    int iterations = getenv("ML_FUZZ_ITERATIONS") ? atoi(getenv("ML_FUZZ_ITERATIONS")) : 3000;
    int opened = 0, failed = 0, clean = 0;
    for (int it = 0; it < iterations; it++) {
        memcpy(copy, full, n);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rng() % n);
            copy[at] = (rng() & 1) ? (uint8_t)rng() : copy[at] ^ (uint8_t)(1u << (rng() % 8));
        }
        size_t len = (rng() % 8 == 0) ? (size_t)(rng() % n) : n;
        write_bytes(path, copy, len);
        char err[512];
        ml_reader *r = ml_reader_open(path, err, sizeof(err));
        if (!r) {
            CHECK(err[0] != '\0');
            continue;
        }
        opened++;
        int rc = drain(r, NULL);
        if (rc < 0) {
            failed++;
            CHECK(strstr(ml_reader_error(r), "corrupt capture at byte ") != NULL);
        } else {
            clean++;
        }
        run_reports(r);
        ml_reader_rewind(r);
        drain(r, NULL);
        ml_reader_free(r);
    }
    /* the fuzzer must reach the decoder, and find both outcomes */
    CHECK(opened > iterations / 2 && failed > 0 && clean > 0);
    free(full);
    free(copy);
    unlink(path);
}

/* ---- the live table ---- */

static void
test_live_table(void)
{
    ml_live t;
    CHECK(ml_live_init(&t) == 0);
    enum { N = 60000 };
    static uint8_t present[N + 1];
    static uint64_t sizes[N + 1];
    memset(present, 0, sizeof(present));
    char msg[256];
    ml_seq next = 1;
    uint64_t bytes = 0, count = 0;
    int sane = 1;
    for (int op = 0; op < 400000; op++) {
        uint64_t x = rng();
        if (next <= N && (x % 3 != 0 || count == 0)) {
            ml_live_block blk = {x % 100000, (uint32_t)(x >> 20) & 0xFFF, (uint32_t)(x >> 40) & 0xFF,
                                 (ml_domain)(x % 3)};
            CHECK(ml_live_insert(&t, next, &blk) == 0);
            present[next] = 1;
            sizes[next] = blk.size;
            bytes += blk.size;
            count++;
            next++;
        } else {
            /* remove a random seq: present or not */
            ml_seq s = 1 + (x >> 8) % (next > 1 ? next - 1 : 1);
            ml_live_block out;
            int rc = ml_live_remove(&t, s, &out);
            CHECK(rc == (present[s] ? 0 : -1));
            if (rc == 0) {
                CHECK(out.size == sizes[s]);
                present[s] = 0;
                bytes -= out.size;
                count--;
            }
        }
        if (op % 20000 == 0 && ml_live_check(&t, msg, sizeof(msg)) < 0) {
            fprintf(stderr, "  live table: %s\n", msg);
            sane = 0;
        }
    }
    CHECK(sane);
    CHECK(ml_live_check(&t, msg, sizeof(msg)) == 0);
    CHECK(t.count == count && t.bytes == bytes);
    ml_live_block out;
    for (ml_seq s = 1; s < next; s++)
        CHECK((ml_live_find(&t, s, &out) == 0) == present[s]);
    CHECK(ml_live_find(&t, 0, &out) == -1 && ml_live_remove(&t, 0, &out) == -1);
    ml_live_clear(&t);
    CHECK(t.count == 0 && ml_live_find(&t, 1, &out) == -1);
    ml_live_release(&t);
}

/* ---- reports on a capture with known numbers ---- */

static void
test_reports_small(void)
{
    const char *path = tmp_path("rep.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    uint32_t offs[] = {0, 2};
    int32_t la[] = {9, 10}, lb[] = {19, 20};
    ml_writer_code_def(w, 1, "app.py", 6, "load", 4, 9, offs, la, 2);
    ml_writer_code_def(w, 2, "app.py", 6, "keep", 4, 19, offs, lb, 2);
    ml_writer_frame_def(w, 1, 0, 1, 2); /* A: app.py:10 load */
    ml_writer_frame_def(w, 2, 0, 2, 2); /* B: app.py:20 keep */
    ml_writer_type_def(w, 1, "bytes", 5, 0);
    ml_writer_time(w, 10);
    ml_seq a1 = ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 1, 100);
    ml_seq a2 = ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 1, 100);
    ml_writer_time(w, 10);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 1, 100); /* peak 300 at event 3, t = 20 */
    ml_writer_free(w, a1);
    ml_writer_free(w, a2);
    ml_writer_alloc(w, ML_DOMAIN_MEM, 2, 0, 50);
    ml_writer_time(w, 5);
    ml_writer_trailer(w, NULL, 0);
    ml_writer_close(w);

    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    ml_summary s;
    CHECK(ml_report_summary(r, 10, NULL, &s, err, sizeof(err)) == 0);
    CHECK(s.peak_bytes == 300 && s.peak_event == 3 && s.peak_time_us == 20);
    CHECK(s.totals.allocations == 4 && s.totals.allocated_bytes == 350 && s.totals.frees == 2);
    CHECK(s.totals.end_bytes == 150 && s.totals.end_count == 2 && s.totals.duration_us == 25);
    CHECK(s.n_at_peak == 1 && s.at_peak[0].bytes == 300 && s.at_peak[0].count == 3 &&
          s.at_peak[0].line == 10 && s.at_peak[0].code == 1 && s.at_peak[0].stack == 1);
    CHECK(s.n_allocated == 2 && s.allocated[0].bytes == 300 && s.allocated[1].bytes == 50 &&
          s.allocated[1].line == 20);
    CHECK(s.n_at_end == 2 && s.at_end[0].bytes == 100 && s.at_end[1].bytes == 50);
    ml_summary_release(&s);

    ml_types t;
    CHECK(ml_report_types(r, NULL, &t, err, sizeof(err)) == 0);
    CHECK(t.nrows == 2);
    CHECK(t.rows[0].type == 0 && t.rows[0].allocs == 1 && t.rows[0].alive == 1 &&
          t.rows[0].alive_bytes == 50);
    CHECK(t.rows[1].type == 1 && t.rows[1].allocs == 3 && t.rows[1].frees == 2 &&
          t.rows[1].peak_alive == 3 && t.rows[1].alive == 1 && t.rows[1].alive_bytes == 100 &&
          t.rows[1].allocated_bytes == 300);
    ml_types_release(&t);

    ml_leaks l;
    CHECK(ml_report_leaks(r, 0, NULL, &l, err, sizeof(err)) == 0);
    CHECK(l.nrows == 2 && l.rows[0].bytes == 100 && l.rows[0].type == 1 && l.rows[0].line == 10 &&
          l.rows[1].bytes == 50 && l.rows[1].type == 0 && l.rows[1].line == 20);
    ml_leaks_release(&l);
    ml_reader_free(r);
    unlink(path);
}

/* The summary finds the live blocks at the peak in one pass (end + delta);
 * check it against the direct way: replay up to the peak event and take the
 * live table there. Each stack has its own code, so a site is a stack. */
typedef struct {
    uint64_t bytes[16], count[16];
} per_stack;

static int
add_live(void *arg, ml_seq seq, uint64_t size, ml_frame_id stack, ml_type_id type, ml_domain dom)
{
    per_stack *p = arg;
    (void)seq, (void)type, (void)dom;
    p->bytes[stack] += size;
    p->count[stack]++;
    return 0;
}

static void
test_peak_matches_replay(void)
{
    const char *path = tmp_path("peak.mlens");
    for (int round = 0; round < 30; round++) {
        ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
        char name[16];
        for (uint32_t c = 1; c <= 10; c++) {
            int n = snprintf(name, sizeof(name), "f%u", c);
            ml_writer_code_def(w, c, "p.py", 4, name, (size_t)n, c, NULL, NULL, 0);
            ml_writer_frame_def(w, c, 0, c, 0);
        }
        ml_seq live[4000];
        size_t nlive = 0;
        int nev = 200 + (int)(rng() % 2000);
        unsigned grow = 30 + (unsigned)(rng() % 60); /* % of allocations: phases differ */
        for (int i = 0; i < nev; i++) {
            if (i % 300 == 0)
                grow = 20 + (unsigned)(rng() % 70);
            if (nlive == 0 || (rng() % 100 < grow && nlive < 4000)) {
                uint32_t st = (uint32_t)(rng() % 11); /* 0 = no stack */
                live[nlive++] = ml_writer_alloc(w, ML_DOMAIN_MEM, st, 0, 1 + rng() % 5000);
            } else {
                size_t k = (size_t)(rng() % nlive);
                ml_writer_free(w, live[k]);
                live[k] = live[--nlive];
            }
        }
        ml_writer_trailer(w, NULL, 0);
        ml_writer_close(w);

        char err[512];
        ml_reader *r = ml_reader_open(path, err, sizeof(err));
        ml_summary s;
        CHECK(ml_report_summary(r, 0, NULL, &s, err, sizeof(err)) == 0);
        per_stack want;
        memset(&want, 0, sizeof(want));
        ml_reader_rewind(r);
        ml_event ev;
        for (uint64_t k = 0; k < s.peak_event; k++)
            CHECK(ml_reader_next(r, &ev) == 1);
        CHECK(ml_reader_live_bytes(r) == s.peak_bytes);
        ml_reader_live_foreach(r, add_live, &want);
        per_stack got;
        memset(&got, 0, sizeof(got));
        uint64_t total = 0;
        for (size_t i = 0; i < s.n_at_peak; i++) {
            got.bytes[s.at_peak[i].stack] += s.at_peak[i].bytes;
            got.count[s.at_peak[i].stack] += s.at_peak[i].count;
            total += s.at_peak[i].bytes;
            CHECK(s.at_peak[i].code == s.at_peak[i].stack);
        }
        CHECK(total == s.peak_bytes);
        CHECK(memcmp(&got, &want, sizeof(got)) == 0);
        ml_summary_release(&s);
        ml_reader_free(r);
    }
    unlink(path);
}

/* ---- stream sources: compressed containers, pipes, windows ---- */

/* zdeflate sink: append to a FILE */
static int
sink_file(void *ctx, const uint8_t *p, size_t n)
{
    return fwrite(p, 1, n, (FILE *)ctx) == n ? 0 : -1;
}

/* Write data as a compressed container (magic + one zlib stream). */
static int
write_container(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite(ML_ZMAGIC, 1, ML_ZMAGIC_LEN, f);
    ml_zdeflate *z = ml_zdeflate_new(1, sink_file, f);
    if (!z) {
        fclose(f);
        return -1;
    }
    int rc = ml_zdeflate_write(z, data, n, 0);
    rc |= ml_zdeflate_finish(z);
    ml_zdeflate_free(z);
    fclose(f);
    return rc;
}

/* A capture of about 3.4 MB: long strings (one bigger than the stream
 * window), a million events, and a tail of zeros that crosses windows. */
static uint8_t *
big_capture(size_t *n)
{
    const char *path = tmp_path("big.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    if (!w)
        return NULL;
    static char longname[3u << 20];
    memset(longname, 'x', sizeof(longname));
    uint32_t offs[] = {0, 4};
    int32_t lines[] = {3, 4};
    ml_writer_code_def(w, 1, longname, sizeof(longname), "f", 1, 3, offs, lines, 2);
    ml_writer_code_def(w, 2, "b.py", 4, longname, 100000, 9, offs, lines, 2);
    ml_writer_frame_def(w, 1, 0, 1, 4);
    ml_writer_frame_def(w, 2, 1, 2, 0);
    ml_writer_type_def(w, 1, "list", 4, 0);
    ml_seq s[64];
    for (int i = 0; i < 500000; i++) {
        if (i % 1000 == 0)
            ml_writer_time(w, 7);
        if (i % 100000 == 5) {
            ml_writer_thread(w, (ml_thread_id)(i / 100000 + 1));
            ml_writer_mark(w, ML_MARK_LABEL, longname, 2u << 20); /* 2 MiB label */
        }
        s[i % 64] = ml_writer_alloc(w, ML_DOMAIN_OBJ, (uint32_t)(i % 3), (uint32_t)(i % 2), 8 + (uint64_t)(i % 500));
        if (i % 64 == 63)
            for (int k = 0; k < 64; k += 2)
                ml_writer_free(w, s[k]);
    }
    uint64_t f[] = {500000, 0, 0, 0, 0};
    ml_writer_trailer(w, f, 5);
    ml_writer_close(w);
    uint8_t *b = read_bytes(path, n);
    unlink(path);
    return b;
}

/* Read every event of two readers side by side; 0 when they agree. */
static int
same_events(ml_reader *a, ml_reader *b, uint64_t *count)
{
    ml_event x, y;
    uint64_t k = 0;
    for (;;) {
        memset(&x, 0, sizeof(x));
        memset(&y, 0, sizeof(y));
        int ra = ml_reader_next(a, &x), rb = ml_reader_next(b, &y);
        if (ra != rb)
            return -1;
        if (ra <= 0)
            break;
        k++;
        if (x.kind != y.kind || x.time_us != y.time_us || x.thread != y.thread ||
            x.seq != y.seq || x.size != y.size || x.stack != y.stack || x.type != y.type ||
            x.at_stack != y.at_stack || x.text_len != y.text_len ||
            (x.text_len && memcmp(x.text, y.text, x.text_len)))
            return -1;
    }
    *count = k;
    return ml_reader_truncated(a) == ml_reader_truncated(b) ? 0 : -1;
}

static void
test_stream_matches_mapping(void)
{
    size_t n;
    uint8_t *full = big_capture(&n);
    CHECK(full != NULL);
    if (!full)
        return;
    const char *raw = tmp_path("big-raw.mlens"), *z = tmp_path("big-z.mlens");
    write_bytes(raw, full, n);
    CHECK(write_container(z, full, n) == 0);
    char err[512];
    ml_reader *a = ml_reader_open(raw, err, sizeof(err));
    ml_reader *b = ml_reader_open(z, err, sizeof(err));
    CHECK(a && b);
    if (a && b) {
        CHECK(!ml_reader_is_stream(a) && ml_reader_is_stream(b));
        uint64_t events = 0;
        CHECK(same_events(a, b, &events) == 0);
        CHECK(events > 500000 && !ml_reader_truncated(b));
        CHECK(ml_reader_ncodes(b) == 2 && strlen(ml_reader_code(b, 1)->file) == (3u << 20));
        /* a second pass over the stream reads it again from the start */
        ml_reader_rewind(a);
        ml_reader_rewind(b);
        uint64_t again = 0;
        CHECK(same_events(a, b, &again) == 0 && again == events);
        CHECK(ml_reader_ncodes(b) == 2); /* definitions kept, not doubled */
    }
    ml_reader_free(a);
    ml_reader_free(b);
    /* a container cut anywhere reads as truncated, never as corrupt */
    size_t zn;
    uint8_t *zb = read_bytes(z, &zn);
    for (size_t cut = zn / 3; zb && cut + 16 < zn; cut += zn / 3) { /* (not in the checksum) */
        write_bytes(z, zb, cut);
        ml_reader *c = ml_reader_open(z, err, sizeof(err));
        CHECK(c != NULL);
        if (c) {
            int rc = drain(c, NULL);
            CHECK(rc == 0 && ml_reader_truncated(c));
            if (rc)
                fprintf(stderr, "  cut at %zu of %zu: %s\n", cut, zn, ml_reader_error(c));
            ml_reader_free(c);
        }
    }
    free(zb);
    /* a raw capture from a pipe: one pass works, a second one says why not */
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        size_t off = 0;
        while (off < n) {
            ssize_t k = write(fds[1], full + off, n - off);
            if (k <= 0)
                _exit(1);
            off += (size_t)k;
        }
        _exit(0);
    }
    close(fds[1]);
    char dev[64];
    snprintf(dev, sizeof(dev), "/dev/fd/%d", fds[0]);
    ml_reader *p = ml_reader_open(dev, err, sizeof(err));
    CHECK(p != NULL);
    if (p) {
        uint64_t events = 0;
        CHECK(drain(p, &events) == 0 && events > 500000 && !ml_reader_truncated(p));
        ml_reader_rewind(p);
        CHECK(drain(p, NULL) < 0 && strstr(ml_reader_error(p), "read only once"));
        ml_reader_free(p);
    }
    close(fds[0]);
    waitpid(pid, NULL, 0);
    unlink(raw);
    unlink(z);
    free(full);
}

static void
test_stream_zero_tail(void)
{
    size_t n;
    uint8_t *small = small_capture(&n);
    /* drop the TRAILER (last 7 bytes) and add 3 MiB of zeros */
    size_t body = n - 7, total = body + (3u << 20);
    uint8_t *b = calloc(1, total + 1);
    memcpy(b, small, body);
    const char *z = tmp_path("zeros-z.mlens");
    char err[512];
    CHECK(write_container(z, b, total) == 0);
    ml_reader *r = ml_reader_open(z, err, sizeof(err));
    CHECK(r != NULL);
    if (r) {
        uint64_t events = 0;
        CHECK(drain(r, &events) == 0 && ml_reader_truncated(r) && events == 80 + 21 + 5);
        ml_reader_free(r);
    }
    /* zeros then a byte: corrupt, at the offset of the first zero */
    b[total] = 0x30;
    CHECK(write_container(z, b, total + 1) == 0);
    r = ml_reader_open(z, err, sizeof(err));
    CHECK(r != NULL);
    if (r) {
        CHECK(drain(r, NULL) < 0);
        char want[64];
        snprintf(want, sizeof(want), "corrupt capture at byte %zu:", body);
        CHECK(strstr(ml_reader_error(r), want) != NULL);
        ml_reader_free(r);
    }
    /* not a zlib stream at all */
    uint8_t junk[64];
    memcpy(junk, ML_ZMAGIC, ML_ZMAGIC_LEN);
    memset(junk + ML_ZMAGIC_LEN, 0xAB, sizeof(junk) - ML_ZMAGIC_LEN);
    write_bytes(z, junk, sizeof(junk));
    r = ml_reader_open(z, err, sizeof(err));
    CHECK(r == NULL && strstr(err, "damaged compressed capture"));
    ml_reader_free(r);
    unlink(z);
    free(b);
    free(small);
}

/* Endless or foreign input is refused from its first bytes. */
static void
test_devices(void)
{
    char err[512];
    ml_reader *r = ml_reader_open("/dev/zero", err, sizeof(err));
    CHECK(r == NULL && strstr(err, "not a memlens capture"));
    r = ml_reader_open("/dev/null", err, sizeof(err));
    CHECK(r == NULL && strstr(err, "empty file"));
}

static void
test_many_threads(void)
{
    /* a million distinct thread ids, scattered: each found by its hash */
    const char *path = tmp_path("threads.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    CHECK(w != NULL);
    if (!w)
        return;
    const uint32_t nthreads = 1000000;
    for (uint32_t i = 1; i <= nthreads; i++) {
        char name[32];
        int len = snprintf(name, sizeof(name), "t%u", i);
        ml_thread_id id = i * 2654435761u; /* distinct for distinct i */
        ml_writer_thread_def(w, id, i, name, (size_t)len);
        ml_writer_thread(w, id);
        ml_writer_alloc(w, ML_DOMAIN_RAW, 0, 0, i);
    }
    ml_writer_close(w);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (r) {
        ml_event ev;
        uint32_t k = 0, bad = 0;
        while (ml_reader_next(r, &ev) > 0) {
            k++;
            bad += ev.thread != k * 2654435761u || ev.size != k;
        }
        CHECK(k == nthreads && bad == 0);
        bad = 0;
        for (uint32_t i = 1; i <= nthreads; i += 997) {
            char name[32];
            snprintf(name, sizeof(name), "t%u", i);
            uint64_t os_tid = 0;
            const char *got = ml_reader_thread_name(r, i * 2654435761u, &os_tid);
            bad += !got || strcmp(got, name) || os_tid != i;
        }
        CHECK(bad == 0);
        CHECK(ml_reader_thread_name(r, 12345, NULL) == NULL);
        ml_reader_free(r);
    }
    unlink(path);
}

/* Header JSON: one object, nesting bounded. */
static void
test_header_json(void)
{
    static const struct {
        const char *json;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"{}", NULL},
        {" {\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"], \"b\": {}} ", NULL},
        {"[1,2]", "not a JSON object"},
        {"\"text\"", "not a JSON object"},
        {"", "not a JSON object"},
        {"{\"a\":1} x", "bytes after"},
        {"{\"a\":1,}", "not valid JSON"},
        {"{\"a\" 1}", "not valid JSON"},
        {"{\"a\":01}", "not valid JSON"},
        {"{\"a\":tru}", "not valid JSON"},
        {"{\"a\":\"\x01\"}", "not valid JSON"},
        {"{\"a\":[1 2]}", "not valid JSON"},
        {"{\"a\":1", "not valid JSON"},
        {"{\"argv\":[\"a\",\"b\"],\"script\":null,\"python\":\"3.12.1\",\"x\":[1]}", NULL},
        {"{\"argv\":[],\"o\":{\"argv\":5}}", NULL},
        {"{\"argv\":5}", "\"argv\" is not a list of strings"},
        {"{\"argv\":[\"a\",1]}", "\"argv\" is not a list of strings"},
        {"{\"argv\":[[\"a\"]]}", "\"argv\" is not a list of strings"},
        {"{\"script\":7}", "\"script\" is not a string"},
        {"{\"python\":[\"3\"]}", "\"python\" is not a string"},
    };
    char err[512];
    const char *path = tmp_path("json.mlens");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t m = strlen(cases[i].json);
        uint8_t *b = malloc(16 + m);
        memcpy(b, ML_MAGIC, ML_MAGIC_LEN);
        ml_u32le_put(b + 8, 1);
        ml_u32le_put(b + 12, (uint32_t)m);
        memcpy(b + 16, cases[i].json, m);
        write_bytes(path, b, 16 + m);
        free(b);
        ml_reader *r = ml_reader_open(path, err, sizeof(err));
        if (cases[i].error) {
            CHECK(r == NULL && strstr(err, "corrupt capture header") && strstr(err, cases[i].error));
            if (r || !strstr(err, cases[i].error))
                fprintf(stderr, "  json case %zu: %s\n", i, r ? "accepted" : err);
        } else {
            CHECK(r != NULL);
            size_t len;
            CHECK(r && ml_reader_meta(r, &len) && len == m);
        }
        ml_reader_free(r);
    }
    /* nesting: ML_READER_META_DEPTH levels are fine, one more is not; a
     * hundred thousand fail at once */
    for (int depth = ML_READER_META_DEPTH; depth <= 100000; depth += 100000 - ML_READER_META_DEPTH) {
        for (int extra = 0; extra <= 1; extra++) {
            int d = depth + extra;
            size_t m = 2 * (size_t)d + 8;
            uint8_t *b = malloc(16 + m);
            size_t k = 16;
            b[k++] = '{';
            b[k++] = '"';
            b[k++] = 'a';
            b[k++] = '"';
            b[k++] = ':';
            for (int j = 1; j < d; j++)
                b[k++] = '[';
            b[k++] = '1';
            for (int j = 1; j < d; j++)
                b[k++] = ']';
            b[k++] = '}';
            memcpy(b, ML_MAGIC, ML_MAGIC_LEN);
            ml_u32le_put(b + 8, 1);
            ml_u32le_put(b + 12, (uint32_t)(k - 16));
            write_bytes(path, b, k);
            free(b);
            ml_reader *r = ml_reader_open(path, err, sizeof(err));
            if (d <= ML_READER_META_DEPTH)
                CHECK(r != NULL);
            else
                CHECK(r == NULL && strstr(err, "nested too deep"));
            ml_reader_free(r);
        }
    }
    unlink(path);
}

/* What one record may claim is bounded (reader.h, ML_READER_*_MAX). */
static void
test_record_limits(void)
{
    char err[512];
    const char *path = tmp_path("limits.mlens");
    uint8_t v[10];
    struct {
        buf_t b;
        const char *want;
    } c[3];
    /* MARK with a 17 MiB label claimed (bytes absent: refused before the cut) */
    buf_header(&c[0].b, 1);
    buf_put(&c[0].b, 2, ML_TAG_MARK, 1);
    size_t k = ml_uv_put(v, (uint64_t)ML_READER_STR_MAX + 1);
    memcpy(c[0].b.b + c[0].b.n, v, k);
    c[0].b.n += k;
    c[0].want = "a string of more than";
    /* TRAILER with 257 counters */
    buf_header(&c[1].b, 1);
    buf_put(&c[1].b, 1, ML_TAG_TRAILER);
    k = ml_uv_put(v, ML_READER_TRAILER_MAX + 1);
    memcpy(c[1].b.b + c[1].b.n, v, k);
    c[1].b.n += k;
    c[1].want = "TRAILER with 257 counters";
    /* CODE_DEF with 2^24 + 1 runs */
    buf_header(&c[2].b, 1);
    buf_put(&c[2].b, 7, ML_TAG_CODE_DEF, 1, 1, 'a', 1, 'f', 1);
    k = ml_uv_put(v, (uint64_t)ML_READER_RUNS_MAX + 1);
    memcpy(c[2].b.b + c[2].b.n, v, k);
    c[2].b.n += k;
    c[2].want = "line map of 16777217 runs";
    for (int i = 0; i < 3; i++) {
        write_bytes(path, c[i].b.b, c[i].b.n);
        ml_reader *r = ml_reader_open(path, err, sizeof(err));
        CHECK(r != NULL);
        if (!r)
            continue;
        CHECK(drain(r, NULL) < 0 && strstr(ml_reader_error(r), c[i].want));
        if (!strstr(ml_reader_error(r), c[i].want))
            fprintf(stderr, "  limit case %d: %s\n", i, ml_reader_error(r));
        ml_reader_free(r);
    }
    unlink(path);
}

static int check_calls;

static int
stop_on_second_check(void *arg)
{
    (void)arg;
    return ++check_calls >= 2;
}

static void
test_interrupt_check(void)
{
    size_t n;
    uint8_t *full = big_capture(&n);
    const char *path = tmp_path("intr.mlens");
    write_bytes(path, full, n);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (r) {
        check_calls = 0;
        ml_reader_set_check(r, stop_on_second_check, NULL);
        uint64_t events = 0;
        CHECK(drain(r, &events) < 0 && !strcmp(ml_reader_error(r), "interrupted"));
        CHECK(check_calls == 2 && events < 2 * ML_READER_CHECK_EVERY);
        ml_reader_free(r);
    }
    unlink(path);
    free(full);
}

/* ml_writer_open creates its file with O_EXCL (issue 9): a link or a file
 * at the path is refused without force, and with force the link itself is
 * replaced (its target keeps its bytes); a FIFO or a directory never is. */
static char *
slurp(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

static void
test_writer_open_creates_only(void)
{
    const char *victim = tmp_path("victim"), *link = tmp_path("link.mlens");
    const char *fifo = tmp_path("fifo.mlens"), *dir = tmp_path("dir.mlens");
    FILE *f = fopen(victim, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("victim", f);
    fclose(f);
    CHECK(symlink(victim, link) == 0);
    errno = 0;
    CHECK(ml_writer_open(link, 0, 0, META, strlen(META)) == NULL && errno == EEXIST);
    CHECK(ml_writer_open(victim, 0, 0, META, strlen(META)) == NULL && errno == EEXIST);
    CHECK(strcmp(slurp(victim), "victim") == 0);
    ml_writer *w = ml_writer_open(link, 1, 0, META, strlen(META));
    CHECK(w != NULL);
    if (w)
        CHECK(ml_writer_close(w) == 0);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISREG(st.st_mode));
    CHECK(strcmp(slurp(victim), "victim") == 0);
    CHECK(memcmp(slurp(link), ML_MAGIC, ML_MAGIC_LEN) == 0);
    /* a dangling link: nothing is created at its target */
    unlink(link);
    unlink(victim);
    CHECK(symlink(victim, link) == 0);
    CHECK(ml_writer_open(link, 0, 0, META, strlen(META)) == NULL && errno == EEXIST);
    CHECK(access(victim, F_OK) < 0);
    CHECK(mkfifo(fifo, 0600) == 0 && mkdir(dir, 0700) == 0);
    CHECK(ml_writer_open(fifo, 1, 0, META, strlen(META)) == NULL && errno == EEXIST);
    CHECK(ml_writer_open(dir, 1, 0, META, strlen(META)) == NULL && errno == EISDIR);
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    unlink(link);
    unlink(fifo);
    rmdir(dir);
}

/* ---- nstacks: native stacks and mappings (0x14..0x16) ---- */

static void
test_native_stack_records(void)
{
    const char *path = tmp_path("nstacks.mlens");
    ml_writer *w = ml_writer_open(path, 1, 0, META, strlen(META));
    CHECK(w != NULL);
    if (!w)
        return;
    static const uint8_t bid[3] = {0xab, 0x00, 0xcd};
    ml_writer_mapping(w, 0x1000, 0x2000, 0x400, "/lib/a.so", 9, bid, 3);
    ml_writer_mapping(w, 0x5000, 0x6000, 0, "/lib/b.so", 9, NULL, 0);
    const uintptr_t a1[3] = {0x1100, 0x1200, 0x5010}, a2[1] = {0x1300};
    ml_writer_native_stack(w, 1, a1, 3);
    ml_writer_native_stack(w, 2, a2, 1);
    ml_writer_native_alloc(w, 2);
    ml_writer_alloc(w, ML_DOMAIN_RAW, 0, 0, 100); /* seq 1: native stack 2 */
    ml_writer_alloc(w, ML_DOMAIN_RAW, 0, 0, 200); /* seq 2: none */
    ml_writer_native_alloc(w, 1);
    ml_writer_alloc(w, ML_DOMAIN_RAW, 0, 0, 300); /* seq 3: native stack 1 */
    CHECK(ml_writer_close(w) == 0);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (!r)
        return;
    ml_event ev;
    CHECK(ml_reader_next(r, &ev) == 1 && ev.seq == 1 && ev.nstack == 2);
    CHECK(ml_reader_next(r, &ev) == 1 && ev.seq == 2 && ev.nstack == 0);
    CHECK(ml_reader_next(r, &ev) == 1 && ev.seq == 3 && ev.nstack == 1);
    CHECK(ml_reader_next(r, &ev) == 0);
    uint32_t n;
    const uint64_t *s1 = ml_reader_native_stack(r, 1, &n);
    CHECK(s1 && n == 3 && s1[0] == 0x1100 && s1[2] == 0x5010);
    CHECK(ml_reader_native_stack(r, 3, &n) == NULL && n == 0);
    const ml_mapping_info *m = ml_reader_mappings(r, &n);
    CHECK(n == 2 && m[0].start == 0x1000 && m[0].end == 0x2000 && m[0].offset == 0x400 &&
          !strcmp(m[0].path, "/lib/a.so") && m[0].build_id_len == 3 && m[0].build_id[2] == 0xcd &&
          m[1].build_id_len == 0);
    /* a rewind: the next ALLOC does not inherit a NATIVE_ALLOC */
    ml_reader_rewind(r);
    CHECK(ml_reader_next(r, &ev) == 1 && ev.nstack == 2 && ml_reader_nnative_stacks(r) == 2);
    ml_reader_free(r);
    unlink(path);
}

/* rss: corrupt ARENA / ARENA_BLOCKS records (docs/FORMAT.md "Arenas"),
 * and a good pair read back. */
static void
test_corrupt_arenas(void)
{
    buf_t b;
    size_t h;
    buf_header(&b, 1);
    h = b.n;
    buf_put(&b, 7, 0x18, 0, 1, 0, 0, 0, 0);     /* an ARENA in a version-1 file */
    expect_corrupt(&b, "record tag 0x18 is not in format version 1", h);
    ml_u32le_put(b.b + 8, 2);
    b.n = h;
    buf_put(&b, 7, 0x18, 0, 0, 0, 0, 0, 0);     /* size 0 */
    expect_corrupt(&b, "ARENA of 0 bytes", h);
    b.n = h;
    buf_put(&b, 7, 0x18, 0, 100, 101, 0, 0, 0); /* more resident than its size */
    expect_corrupt(&b, "ARENA of 100 bytes", h);
    b.n = h;
    buf_put(&b, 7, 0x18, 0, 100, 0, 4, 5, 0);   /* 5 of 4 pools used */
    expect_corrupt(&b, "5 of 4 pools used", h);
    b.n = h;
    buf_put(&b, 7, 0x18, 0, 100, 0, 4, 1, 101); /* more used than its size */
    expect_corrupt(&b, "101 bytes used", h);
    b.n = h;
    buf_put(&b, 3, 0x19, 0, 0);                 /* blocks of an arena not defined */
    expect_corrupt(&b, "ARENA_BLOCKS of arena 0 (0 arenas so far)", h);
    b.n = h;
    buf_put(&b, 4, 0xDF, 0, 0, 8);              /* block 1 */
    buf_put(&b, 7, 0x18, 0, 100, 0, 4, 1, 8);
    size_t at = b.n;
    buf_put(&b, 4, 0x19, 0, 1, 2);              /* block 2: not made yet */
    expect_corrupt(&b, "ARENA_BLOCKS block after 0 at distance 2", at);
    b.n = at;
    buf_put(&b, 5, 0x19, 0, 0x81, 0x20, 1);     /* 4097 blocks in one record */
    expect_corrupt(&b, "ARENA_BLOCKS with 4097 blocks", at);
    b.n = at;
    buf_put(&b, 4, 0x19, 0, 1, 1);
    const char *path = tmp_path("arenas.mlens");
    write_bytes(path, b.b, b.n);
    char err[512];
    ml_reader *r = ml_reader_open(path, err, sizeof(err));
    CHECK(r != NULL);
    if (!r)
        return;
    ml_event ev;
    CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ALLOC);
    CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ARENA && ev.arena_index == 0 && ev.arena_size == 100 &&
          ev.arena_pools == 4 && ev.arena_pools_used == 1 && ev.arena_used == 8);
    CHECK(ml_reader_next(r, &ev) == 1 && ev.kind == ML_EV_ARENA_BLOCKS && ev.arena_index == 0 && ev.nheld == 1 &&
          ev.held[0] == 1);
    CHECK(ml_reader_next(r, &ev) == 0);
    ml_reader_free(r);
    unlink(path);
}

static void
test_native_stack_corrupt(void)
{
    buf_t b;
    size_t h;
    buf_header(&b, 1);
    h = b.n;
    buf_put(&b, 4, 0x14, 1, 1, 5);  /* a version-2 record in a version-1 file */
    expect_corrupt(&b, "record tag 0x14 is not in format version 1", h);
    ml_u32le_put(b.b + 8, 2);
    b.n = h;
    buf_put(&b, 4, 0x14, 2, 1, 5);  /* NATIVE_STACK 2 first */
    expect_corrupt(&b, "NATIVE_STACK 2 out of order", h);
    b.n = h;
    buf_put(&b, 3, 0x14, 1, 0);     /* no addresses */
    expect_corrupt(&b, "NATIVE_STACK with 0 addresses", h);
    b.n = h;
    buf_put(&b, 4, 0x14, 1, 0x81, 0x01); /* 129 addresses */
    expect_corrupt(&b, "NATIVE_STACK with 129 addresses", h);
    b.n = h;
    buf_put(&b, 2, 0x15, 1);        /* NATIVE_ALLOC of an undefined stack */
    expect_corrupt(&b, "NATIVE_ALLOC with undefined native stack 1", h);
    b.n = h;
    buf_put(&b, 4, 0x14, 1, 1, 5);
    buf_put(&b, 2, 0x15, 0);        /* native stack 0 */
    expect_corrupt(&b, "NATIVE_ALLOC with undefined native stack 0", h + 4);
    b.n = h;
    buf_put(&b, 6, 0x16, 0x20, 0x10, 0, 0, 0); /* end before start */
    expect_corrupt(&b, "MAPPING from 0x20 to 0x10", h);
    b.n = h;
    buf_put(&b, 6, 0x16, 0x10, 0x20, 0, 0, 65); /* a 65-byte build-id */
    for (int i = 0; i < 65; i++)
        buf_put(&b, 1, 7);
    expect_corrupt(&b, "build-id of 65 bytes", h);
    unlink(tmp_path("corrupt.mlens"));
}

/* The symbolizer on hostile files: garbage, every truncation of a real
 * ELF file, a directory, a FIFO, a missing file: no symbols, no crash. */
static void
test_symbols_hostile(void)
{
    ml_symbols *s = ml_symbols_new();
    CHECK(s != NULL);
    if (!s)
        return;
    /* this test program itself has a .symtab: function symbols */
    long whole = ml_symbols_load_count(s, "/proc/self/exe", NULL, 0);
    CHECK(whole > 10);
    FILE *f = fopen("/proc/self/exe", "rb");
    CHECK(f != NULL);
    if (!f) {
        ml_symbols_free(s);
        return;
    }
    static uint8_t img[16 << 20];
    size_t n = fread(img, 1, sizeof(img), f);
    fclose(f);
    CHECK(n > 4096 && n < sizeof(img));
    char path[1024];
    snprintf(path, sizeof(path), "%s", tmp_path("elf.so"));
    /* truncations: a header cut short, the section headers missing... */
    size_t cuts[] = {0, 3, 16, 63, 64, 200, 4096, n / 2, n - 64, n - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char p[64];
        snprintf(p, sizeof(p), "elf-cut-%zu.so", i);
        const char *cp = tmp_path(p);
        write_bytes(cp, img, cuts[i]);
        long k = ml_symbols_load_count(s, cp, NULL, 0);
        CHECK(k >= 0 && k <= whole);
        if (cuts[i] < 4096)
            CHECK(k == 0);
        unlink(cp);
    }
    /* garbage after a valid ELF header (kept: the first 64 bytes) */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 64; i < 8192; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            img[i] = (uint8_t)x;
        }
        if (round & 1) { /* section headers pointing anywhere */
            uint64_t off = x % (n * 2);
            memcpy(img + 0x28, &off, 8);
        }
        write_bytes(path, img, 8192);
        ml_symbols *t = ml_symbols_new();
        CHECK(ml_symbols_load_count(t, path, NULL, 0) >= 0);
        ml_mapping_info m = {0x1000, 0x3000, 0, path, (const uint8_t *)"", 0};
        ml_symbol sym;
        CHECK(ml_symbols_lookup(t, &m, 1, 0x1800, &sym) == 0 && sym.lib && strstr(sym.lib, "elf.so") && !sym.func);
        ml_symbols_free(t);
    }
    /* not regular files, or missing */
    CHECK(ml_symbols_load_count(s, tmpdir, NULL, 0) == 0);
    CHECK(ml_symbols_load_count(s, "/dev/zero", NULL, 0) == 0);
    const char *fifo = tmp_path("fifo");
    unlink(fifo);
    if (mkfifo(fifo, 0600) == 0) {
        CHECK(ml_symbols_load_count(s, fifo, NULL, 0) == 0); /* does not block */
        unlink(fifo);
    }
    CHECK(ml_symbols_load_count(s, "/nonexistent/x.so", NULL, 0) == 0);
    /* a build-id that is not the file's: its symbols are not used */
    CHECK(ml_symbols_load_count(s, "/proc/self/exe", (const uint8_t *)"\1\2\3\4", 4) == 0);
    /* an address in no mapping */
    ml_symbol sym;
    CHECK(ml_symbols_lookup(s, NULL, 0, 0x1234, &sym) == 0 && !sym.func && !sym.lib);
    unlink(path);
    ml_symbols_free(s);
}

/* ---- heap at exit (0x10..0x13): corrupt records fail cleanly, counts
 * are checked before anything is read for them (bounded memory), a record
 * cut by the end of the file is a truncated capture ---- */
static void
test_heap_at_exit_corrupt(void)
{
    buf_t b;
    buf_header(&b, 2);
    buf_put(&b, 4, 0xDF, 0, 0, 8); /* one block: seq 1 */
    size_t h = b.n;
    buf_put(&b, 2, 0x10, 5);
    expect_corrupt(&b, "SNAPSHOT of unknown kind 5", h);
    b.n = h;
    buf_put(&b, 2, 0x1C, 0);
    expect_corrupt(&b, "OWNERS with 0 entries", h);
    b.n = h;
    buf_put(&b, 3, 0x1C, 0x81, 0x20); /* 4097 entries */
    expect_corrupt(&b, "OWNERS with 4097 entries", h);
    b.n = h;
    buf_put(&b, 5, 0x1C, 1, 4, 0, 1); /* seq 0 + 2: past the last block */
    expect_corrupt(&b, "block after 0 at distance 2", h);
    b.n = h;
    buf_put(&b, 5, 0x1C, 1, 2, 4, 1); /* seq 1 owned by block 1 - 2 */
    expect_corrupt(&b, "block 1 owned at distance 2", h);
    b.n = h;
    buf_put(&b, 5, 0x1C, 1, 2, 0, 1); /* no TYPE_DEF 1 */
    expect_corrupt(&b, "with undefined type 1", h);
    b.n = h;
    buf_put(&b, 4, 0x11, 0, 0, 1);
    expect_corrupt(&b, "OWNER of block 0", h);
    b.n = h;
    buf_put(&b, 4, 0x11, 2, 0, 1); /* block 2 not allocated yet */
    expect_corrupt(&b, "OWNER of block 2", h);
    b.n = h;
    buf_put(&b, 3, 0x12, 0, 0);
    expect_corrupt(&b, "HOLDER with id 0", h);
    b.n = h;
    buf_put(&b, 3, 0x12, 1, 65);
    expect_corrupt(&b, "HOLDER with 65 hops", h);
    b.n = h;
    buf_put(&b, 11, 0x12, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F); /* 2^62 - 1 hops */
    expect_corrupt(&b, "hops (at most 64)", h);
    b.n = h;
    buf_put(&b, 4, 0x13, 1, 0x81, 0x20); /* 4097 seqs */
    expect_corrupt(&b, "HELD with 4097 blocks", h);
    b.n = h;
    buf_put(&b, 11, 0x13, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F);
    expect_corrupt(&b, "(at most 4096)", h);
    b.n = h;
    buf_put(&b, 5, 0x13, 1, 2, 1, 0); /* seqs 1, 1: not ascending */
    expect_corrupt(&b, "HELD block after 1 at distance 0", h);
    b.n = h;
    buf_put(&b, 4, 0x13, 1, 1, 2); /* seq 2: past the last block */
    expect_corrupt(&b, "HELD block after 0 at distance 2", h);

    /* cut: a hop list or a seq list the file ends inside */
    const uint8_t cuts[2][6] = {{0x12, 1, 3, 1, 'a', 1}, {0x13, 1, 3, 1, 0, 0}};
    const size_t cutlen[2] = {6, 4};
    for (int k = 0; k < 2; k++) {
        b.n = h;
        memcpy(b.b + b.n, cuts[k], cutlen[k]);
        b.n += cutlen[k];
        const char *path = tmp_path("cut.mlens");
        write_bytes(path, b.b, b.n);
        char err[512];
        uint64_t n = 0;
        ml_reader *r = ml_reader_open(path, err, sizeof(err));
        CHECK(r && drain(r, &n) == 0 && n == 1 && ml_reader_truncated(r));
        if (r)
            ml_reader_free(r);
    }
}

/* native: the block map's mark (a native block, for memlens.rss()'s native
 * band) goes with the block: kept by get, returned once by take, cleared
 * when the address is put again; aligned, odd and big blocks alike. */
static void
test_blocks_mark(void)
{
    ml_blocks *t = ml_blocks_new();
    CHECK(t != NULL);
    if (!t)
        return;
    const uintptr_t base = (uintptr_t)0x7f1234560000ull;
    const struct { uintptr_t ptr; uint64_t size; } b[] = {
        {base, 48}, {base + 0x1008, 24}, {base + 0x100000, 50000003}, {base + 0x200000, 4096}};
    for (size_t i = 0; i < 4; i++)
        CHECK(ml_blocks_put(t, b[i].ptr, 100 + i, b[i].size) == 0);
    CHECK(ml_blocks_mark(t, base + 16) == 0); /* not live */
    for (size_t i = 0; i < 3; i++)
        CHECK(ml_blocks_mark(t, b[i].ptr) == 1);
    ml_block e;
    for (size_t i = 0; i < 4; i++) {
        memset(&e, 0xff, sizeof(e));
        CHECK(ml_blocks_get(t, b[i].ptr, &e) == 1 && e.seq == 100 + i && e.size == b[i].size &&
              e.mark == (i < 3));
    }
    for (size_t i = 0; i < 4; i++) {
        memset(&e, 0xff, sizeof(e));
        CHECK(ml_blocks_take(t, b[i].ptr, &e) == 1 && e.seq == 100 + i && e.size == b[i].size &&
              e.mark == (i < 3));
        CHECK(ml_blocks_take(t, b[i].ptr, &e) == 0 && ml_blocks_mark(t, b[i].ptr) == 0);
    }
    /* put again at a marked address (a free memlens did not see): unmarked */
    CHECK(ml_blocks_put(t, base, 7, 32) == 0 && ml_blocks_mark(t, base) == 1);
    CHECK(ml_blocks_put(t, base, 8, 32) == 0 && ml_blocks_get(t, base, &e) == 1 && e.seq == 8 && !e.mark);
    CHECK(ml_blocks_put(t, base + 0x1008, 9, 24) == 0 && ml_blocks_mark(t, base + 0x1008) == 1);
    CHECK(ml_blocks_put(t, base + 0x1008, 10, 24) == 0 && ml_blocks_take(t, base + 0x1008, &e) == 1 && !e.mark);
    ml_blocks_free(t);
}

/* ---- cycline: the sites of given seqs in a capture still being written ---- */

/* A capture with blocks 1, 2, 4 at app.py:10 (make) and 3 at app.py:20
 * (keep), flushed but not closed (no TRAILER): what cycles() reads back. */
static void
seqsites_check(int zlevel)
{
    const char *path = tmp_path(zlevel ? "sites.mlensz" : "sites.mlens");
    ml_writer *w = ml_writer_open(path, 1, zlevel, META, strlen(META));
    CHECK(w != NULL);
    if (!w)
        return;
    uint32_t offs[] = {0, 2};
    int32_t la[] = {9, 10}, lb[] = {19, 20};
    ml_writer_code_def(w, 1, "app.py", 6, "make", 4, 9, offs, la, 2);
    ml_writer_code_def(w, 2, "app.py", 6, "keep", 4, 19, offs, lb, 2);
    ml_writer_frame_def(w, 1, 0, 1, 2);
    ml_writer_frame_def(w, 2, 0, 2, 2);
    ml_writer_type_def(w, 1, "Node", 4, 0);
    ml_seq a1 = ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 1, 48);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 1, 48);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, 2, 1, 48);
    ml_writer_free(w, a1);
    ml_writer_alloc(w, ML_DOMAIN_OBJ, 1, 1, 48);
    ml_writer_flush(w);

    ml_seq seqs[] = {3, 2, 4, 0, 99, 2};
    uint32_t labels[] = {0, 0, 1, 0, 0, ML_SEQSITES_NOLABEL};
    ml_seqsites s;
    char err[512];
    CHECK(ml_seqsites_find(path, seqs, labels, 6, &s, err, sizeof(err)) == 0);
    CHECK(s.found == 4 && s.nsites == 2);
    uint32_t make = s.site_of[1], keep = s.site_of[0];
    CHECK(make < 2 && keep < 2 && make != keep);
    CHECK(!strcmp(s.sites[make].function, "make") && s.sites[make].line == 10 &&
          !strcmp(s.sites[make].file, "app.py"));
    CHECK(!strcmp(s.sites[keep].function, "keep") && s.sites[keep].line == 20);
    CHECK(s.site_of[2] == make && s.site_of[5] == make);
    CHECK(s.site_of[3] == UINT32_MAX && s.site_of[4] == UINT32_MAX); /* 0; after the flush */
    /* label 0: one at each line (3 and 2); label 1: seq 4; the unlabelled one in no row */
    CHECK(s.nrows == 3);
    CHECK(s.rows[0].label == 0 && s.rows[0].count == 1 && s.rows[1].label == 0 && s.rows[1].count == 1);
    CHECK(s.rows[0].site != s.rows[1].site);
    CHECK(s.rows[2].label == 1 && s.rows[2].site == make && s.rows[2].count == 1);
    ml_seqsites_release(&s);

    /* more of one label at one line comes first */
    ml_seq seqs2[] = {3, 1, 2, 4};
    uint32_t labels2[] = {7, 7, 7, 7};
    CHECK(ml_seqsites_find(path, seqs2, labels2, 4, &s, err, sizeof(err)) == 0);
    CHECK(s.nrows == 2 && s.rows[0].count == 3 && s.rows[0].site == s.site_of[1] &&
          s.rows[1].count == 1 && s.rows[1].site == s.site_of[0]);
    ml_seqsites_release(&s);
    ml_writer_close(w);
    unlink(path);
}

static void
test_seqsites(void)
{
    seqsites_check(0);
    seqsites_check(1); /* the compressed container, sync-flushed */

    /* cut inside the last record: read up to it; a corrupt record: the error */
    buf_t b;
    buf_header(&b, 2);
    size_t h = b.n;
    buf_put(&b, 4, 0xDF, 0, 0, 8); /* seq 1 */
    buf_put(&b, 2, 0xDF, 0);       /* seq 2, cut */
    const char *path = tmp_path("sites-cut.mlens");
    write_bytes(path, b.b, b.n);
    ml_seq seqs[] = {1, 2};
    uint32_t labels[] = {0, 0};
    ml_seqsites s;
    char err[512];
    CHECK(ml_seqsites_find(path, seqs, labels, 2, &s, err, sizeof(err)) == 0);
    CHECK(s.found == 1 && s.site_of[0] == 0 && s.site_of[1] == UINT32_MAX);
    CHECK(s.nsites == 1 && s.sites[0].line == 0 && !strcmp(s.sites[0].function, "<no Python stack>"));
    ml_seqsites_release(&s);
    b.n = h;
    buf_put(&b, 2, 0x05, 9); /* FRAME_DEF cut by garbage: corrupt */
    buf_put(&b, 4, 0xFF, 0xFF, 0xFF, 0xFF);
    write_bytes(path, b.b, b.n);
    err[0] = 0;
    int rc = ml_seqsites_find(path, seqs, labels, 2, &s, err, sizeof(err));
    CHECK(rc == -1 ? err[0] != 0 : s.found == 0);
    if (rc == 0)
        ml_seqsites_release(&s);
    CHECK(ml_seqsites_find(tmp_path("no-such-file"), seqs, labels, 2, &s, err, sizeof(err)) == -1 &&
          strstr(err, "cannot open"));
    unlink(path);
}
/* ---- end of cycline ---- */

int
main(int argc, char **argv)
{
    tmpdir = argc > 1 ? argv[1] : "/tmp";
    RUN(test_varint);
    RUN(test_roundtrip_all_records);
    RUN(test_free_distances);
    RUN(test_pair_cache);
    RUN(test_corrupt_records);
    RUN(test_gcexit_records);
    RUN(test_corrupt_arenas);
    RUN(test_header_errors);
    RUN(test_every_prefix);
    RUN(test_fuzz);
    RUN(test_live_table);
    RUN(test_reports_small);
    RUN(test_peak_matches_replay);
    RUN(test_stream_matches_mapping);
    RUN(test_stream_zero_tail);
    RUN(test_devices);
    RUN(test_many_threads);
    RUN(test_header_json);
    RUN(test_record_limits);
    RUN(test_interrupt_check);
    RUN(test_writer_open_creates_only);
    RUN(test_native_stack_records);
    RUN(test_native_stack_corrupt);
    RUN(test_symbols_hostile);
    RUN(test_heap_at_exit_corrupt);
    RUN(test_blocks_mark);
    RUN(test_seqsites); /* cycline */
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
