/* heapsnapshot.c: the V8 .heapsnapshot writer (see heapsnapshot.h). */
#include "graph/heapsnapshot.h"
#include "capture/tracker.h"
#include "graph/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ML_HS_NODE_FIELDS 7
#define ML_HS_SYNTHETIC 3 /* root, (held by C code), (unreachable) */

/* node types (meta node_types[0]) and edge types (edge_types[0]) */
enum { ML_HS_NODE_OBJECT = 3, ML_HS_NODE_SYNTHETIC = 9 };
enum { ML_HS_EDGE_ELEMENT = 1, ML_HS_EDGE_PROPERTY = 2, ML_HS_EDGE_INTERNAL = 3 };

/* ---- buffered output ---- */

typedef struct {
    int fd;
    char buf[1 << 16];
    size_t n;
    int failed;
} ml_hs_out;

static void
ml_hs_flush(ml_hs_out *o)
{
    size_t at = 0;
    while (!o->failed && at < o->n) {
        ssize_t w = write(o->fd, o->buf + at, o->n - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            o->failed = 1;
            break;
        }
        at += (size_t)w;
    }
    o->n = 0;
}

static void
ml_hs_put(ml_hs_out *o, const char *s, size_t len)
{
    if (o->n + len > sizeof(o->buf))
        ml_hs_flush(o);
    if (len > sizeof(o->buf)) {
        size_t save = o->n;
        (void)save;
        while (len) {
            size_t k = len < sizeof(o->buf) ? len : sizeof(o->buf);
            memcpy(o->buf, s, k);
            o->n = k;
            ml_hs_flush(o);
            s += k;
            len -= k;
        }
        return;
    }
    memcpy(o->buf + o->n, s, len);
    o->n += len;
}

static void
ml_hs_str(ml_hs_out *o, const char *s)
{
    ml_hs_put(o, s, strlen(s));
}

static void
ml_hs_num(ml_hs_out *o, uint64_t v, char sep)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    if (sep)
        tmp[--i] = sep;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ml_hs_put(o, tmp + i, sizeof(tmp) - i);
}

/* A JSON string literal: quotes, backslashes and control characters
 * escaped; bytes that are not UTF-8 become U+FFFD. */
static void
ml_hs_json(ml_hs_out *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    ml_hs_put(o, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                char e[2] = {'\\', (char)c};
                ml_hs_put(o, e, 2);
            } else if (c < 0x20 || c == 0x7f) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                ml_hs_put(o, e, 6);
            } else {
                ml_hs_put(o, (const char *)&c, 1);
            }
            i++;
            continue;
        }
        /* a valid UTF-8 sequence (no surrogates, no overlongs) passes */
        size_t k = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
        int ok = k && i + k <= len;
        for (size_t j = 1; ok && j < k; j++)
            ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
        if (ok && k == 3) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
        } else if (ok && k == 4) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
        }
        if (ok) {
            ml_hs_put(o, s + i, k);
            i += k;
        } else {
            ml_hs_put(o, "\\ufffd", 6);
            i++;
        }
    }
    ml_hs_put(o, "\"", 1);
}

/* ---- the string table: each distinct string once ---- */

typedef struct {
    char *arena;
    size_t used, cap;
    uint64_t *offs; /* string i at arena + offs[i], NUL-terminated */
    uint32_t *lens;
    size_t n, capn;
    uint32_t *slots; /* index + 1 */
    size_t mask;
} ml_hs_strings;

static uint64_t
ml_hs_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int
ml_hs_rehash(ml_hs_strings *t, size_t size)
{
    uint32_t *slots = calloc(size, sizeof(*slots));
    if (!slots)
        return -1;
    free(t->slots);
    t->slots = slots;
    t->mask = size - 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t h = ml_hs_hash(t->arena + t->offs[i], t->lens[i]) & t->mask;
        while (t->slots[h])
            h = (h + 1) & t->mask;
        t->slots[h] = (uint32_t)i + 1;
    }
    return 0;
}

/* Index of string s (added the first time), or -1 when out of memory. */
static int64_t
ml_hs_intern(ml_hs_strings *t, const char *s, size_t len)
{
    if (len > 1000)
        len = 1000;
    if (!t->slots || 2 * (t->n + 1) > t->mask + 1) {
        if (ml_hs_rehash(t, t->slots ? 2 * (t->mask + 1) : 1024) < 0)
            return -1;
    }
    size_t h = ml_hs_hash(s, len) & t->mask;
    uint32_t sl;
    while ((sl = t->slots[h])) {
        if (t->lens[sl - 1] == len && memcmp(t->arena + t->offs[sl - 1], s, len) == 0)
            return sl - 1;
        h = (h + 1) & t->mask;
    }
    if (t->n == t->capn) {
        size_t cap = t->capn ? 2 * t->capn : 1024;
        uint64_t *o = realloc(t->offs, cap * sizeof(*o));
        if (!o)
            return -1;
        t->offs = o;
        uint32_t *l = realloc(t->lens, cap * sizeof(*l));
        if (!l)
            return -1;
        t->lens = l;
        t->capn = cap;
    }
    if (t->used + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1 << 16;
        while (t->used + len + 1 > cap)
            cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a)
            return -1;
        t->arena = a;
        t->cap = cap;
    }
    memcpy(t->arena + t->used, s, len);
    t->arena[t->used + len] = 0;
    t->offs[t->n] = t->used;
    t->lens[t->n] = (uint32_t)len;
    t->used += len + 1;
    t->slots[h] = (uint32_t)t->n + 1;
    return (int64_t)t->n++;
}

static void
ml_hs_strings_release(ml_hs_strings *t)
{
    free(t->arena);
    free(t->offs);
    free(t->lens);
    free(t->slots);
}

/* ---- edges ---- */

typedef struct {
    ml_hs_out *out;
    ml_hs_strings *strings;
    int oom;
    uint64_t written;
} ml_hs;

static void
ml_hs_edge(ml_hs *w, unsigned type, uint64_t name_or_index, uint64_t to_node)
{
    if (w->written++)
        ml_hs_put(w->out, (w->written & 15) ? "," : ",\n", (w->written & 15) ? 1 : 2);
    ml_hs_num(w->out, type, ',');
    ml_hs_num(w->out, name_or_index, ',');
    ml_hs_num(w->out, to_node * ML_HS_NODE_FIELDS, 0);
}

static void
ml_hs_named_edge(ml_hs *w, unsigned type, const char *name, size_t len, uint64_t to_node)
{
    int64_t s = ml_hs_intern(w->strings, name, len);
    if (s < 0) {
        w->oom = 1;
        s = 0;
    }
    ml_hs_edge(w, type, (uint64_t)s, to_node);
}

/* An edge named as paths.c names it, typed from the name's shape. */
static void
ml_hs_edge_by_name(ml_hs *w, PyObject *src, PyObject *dst, uint64_t to_node)
{
    char buf[256];
    size_t len;
    if (PyDict_Check(src) && !PyDict_CheckExact(src) && PyDict_GET_SIZE(src) > 64)
        len = (size_t)snprintf(buf, sizeof(buf), "(item)"); /* naming would scan the dict per edge */
    else
        len = ml_paths_edge_name(src, dst, buf, sizeof(buf));
    if (len > 1 && buf[0] == '.')
        ml_hs_named_edge(w, ML_HS_EDGE_PROPERTY, buf + 1, len - 1, to_node);
    else
        ml_hs_named_edge(w, ML_HS_EDGE_INTERNAL, buf, len, to_node);
}

/* The edges of an exact dict: its successors are (key, value) of each
 * entry in order, minus objects the graph does not hold: walk both. */
static void
ml_hs_dict_edges(ml_hs *w, const ml_refgraph *g, PyObject *d, const ml_node *succ, size_t c)
{
    ml_compat_dict_entries e;
    ml_compat_dict_entries_of(d, &e);
    size_t k = 0;
    for (size_t i = 0; i < e.n && k < c; i++) {
        PyObject *v = e.values[i * e.vstride];
        if (!v)
            continue;
        PyObject *key = e.keys[i * e.kstride];
        if (k < c && ml_refgraph_object(g, succ[k]) == key)
            ml_hs_named_edge(w, ML_HS_EDGE_INTERNAL, "(key)", 5, succ[k++] + ML_HS_SYNTHETIC);
        if (k < c && ml_refgraph_object(g, succ[k]) == v) {
            if (PyUnicode_Check(key)) {
                char tmp[256];
                const char *s;
                size_t len = ml_compat_str_utf8(key, tmp, sizeof(tmp), &s);
                ml_hs_named_edge(w, ML_HS_EDGE_PROPERTY, s, len, succ[k++] + ML_HS_SYNTHETIC);
            } else {
                char buf[256];
                size_t len = ml_paths_key_name(key, buf, sizeof(buf));
                ml_hs_named_edge(w, ML_HS_EDGE_INTERNAL, buf, len, succ[k++] + ML_HS_SYNTHETIC);
            }
        }
    }
    for (; k < c; k++) /* the dict changed? never while the GIL is held: kept for safety */
        ml_hs_named_edge(w, ML_HS_EDGE_INTERNAL, "(item)", 6, succ[k] + ML_HS_SYNTHETIC);
}

static void
ml_hs_object_edges(ml_hs *w, const ml_refgraph *g, ml_node v, const ml_node *succ, size_t c)
{
    PyObject *o = ml_refgraph_object(g, v);
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyDict_Type) {
        ml_hs_dict_edges(w, g, o, succ, c);
        return;
    }
    if (tp == &PyList_Type || tp == &PyTuple_Type) {
        PyObject **items = tp == &PyTuple_Type ? ((PyTupleObject *)o)->ob_item : ((PyListObject *)o)->ob_item;
        size_t k = 0;
        for (Py_ssize_t i = 0; i < Py_SIZE(o) && k < c; i++) {
            if (ml_refgraph_object(g, succ[k]) == items[i])
                ml_hs_edge(w, ML_HS_EDGE_ELEMENT, (uint64_t)i, succ[k++] + ML_HS_SYNTHETIC);
        }
        for (; k < c; k++)
            ml_hs_named_edge(w, ML_HS_EDGE_INTERNAL, "(item)", 6, succ[k] + ML_HS_SYNTHETIC);
        return;
    }
    for (size_t k = 0; k < c; k++)
        ml_hs_edge_by_name(w, o, ml_refgraph_object(g, succ[k]), succ[k] + ML_HS_SYNTHETIC);
}

static const char ml_hs_meta[] =
    "{\"snapshot\":{\"meta\":{"
    "\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\",\"edge_count\",\"trace_node_id\",\"detachedness\"],"
    "\"node_types\":[[\"hidden\",\"array\",\"string\",\"object\",\"code\",\"closure\",\"regexp\",\"number\","
    "\"native\",\"synthetic\",\"concatenated string\",\"sliced string\",\"symbol\",\"bigint\",\"object shape\"],"
    "\"string\",\"number\",\"number\",\"number\",\"number\",\"number\"],"
    "\"edge_fields\":[\"type\",\"name_or_index\",\"to_node\"],"
    "\"edge_types\":[[\"context\",\"element\",\"property\",\"internal\",\"hidden\",\"shortcut\",\"weak\"],"
    "\"string_or_number\",\"node\"],"
    "\"trace_function_info_fields\":[\"function_id\",\"name\",\"script_name\",\"script_id\",\"line\",\"column\"],"
    "\"trace_node_fields\":[\"id\",\"function_info_index\",\"count\",\"size\",\"children\"],"
    "\"sample_fields\":[\"timestamp_us\",\"last_assigned_id\"],"
    "\"location_fields\":[\"object_index\",\"script_id\",\"line\",\"column\"]},";

int
ml_heapsnapshot_write(int fd, const ml_refgraph *g, const ml_roots *r, const ml_domtree *t)
{
    size_t n = ml_refgraph_count(g);
    ml_hs_out *out = malloc(sizeof(*out));
    ml_hs_strings strings;
    memset(&strings, 0, sizeof(strings));
    if (!out) {
        errno = ENOMEM;
        return -1;
    }
    out->fd = fd;
    out->n = 0;
    out->failed = 0;
    ml_hs w = {out, &strings, 0, 0};
    size_t nunreached = n - t->nreached;
    size_t nc = r->n - r->named;
    /* edges out of the object nodes, for the counts in the header */
    uint64_t nedges = r->named + 2 + nc + nunreached;
    for (size_t v = 0; v < n; v++) {
        size_t c;
        (void)ml_refgraph_succ(g, (ml_node)v, &c);
        if (!r->excluded[v])
            nedges += c;
    }
    /* string 0 is "" */
    int64_t s_empty = ml_hs_intern(&strings, "", 0);
    int64_t s_root = ml_hs_intern(&strings, "(root)", 6);
    int64_t s_c = ml_hs_intern(&strings, "(held by C code)", 16);
    int64_t s_un = ml_hs_intern(&strings, "(unreachable)", 13);
    if (s_empty < 0 || s_root < 0 || s_c < 0 || s_un < 0)
        goto oom;

    ml_hs_str(out, ml_hs_meta);
    ml_hs_str(out, "\"node_count\":");
    ml_hs_num(out, n + ML_HS_SYNTHETIC, ',');
    ml_hs_str(out, "\"edge_count\":");
    ml_hs_num(out, nedges, ',');
    ml_hs_str(out, "\"trace_function_count\":0},\n\"nodes\":[");
    /* synthetic nodes */
    uint64_t syn[3][2] = {{(uint64_t)s_root, r->named + 2}, {(uint64_t)s_c, nc}, {(uint64_t)s_un, nunreached}};
    for (int i = 0; i < 3; i++) {
        ml_hs_num(out, ML_HS_NODE_SYNTHETIC, ',');
        ml_hs_num(out, syn[i][0], ',');
        ml_hs_num(out, 2 * (uint64_t)i + 1, ',');
        ml_hs_str(out, "0,");
        ml_hs_num(out, syn[i][1], ',');
        ml_hs_str(out, "0,0,\n");
    }
    /* type -> string index, direct-mapped: naming a type reads it
     * through checked copies, too dear to do per object */
    struct {
        PyTypeObject *tp;
        int64_t s;
    } names[512];
    memset(names, 0, sizeof(names));
    for (size_t v = 0; v < n; v++) {
        PyObject *o = ml_refgraph_object(g, (ml_node)v);
        size_t len, c;
        PyTypeObject *tp = Py_TYPE(o);
        size_t h = ((uintptr_t)tp >> 4) & 511;
        if (names[h].tp != tp) {
            const char *name = ml_tracker_type_name(tp, &len);
            names[h].s = name ? ml_hs_intern(&strings, name, len) : -1;
            names[h].tp = tp;
        }
        int64_t s = names[h].s;
        if (s < 0)
            goto oom;
        uint64_t size = ml_refgraph_size(g, (ml_node)v);
        (void)ml_refgraph_succ(g, (ml_node)v, &c);
        ml_hs_num(out, ML_HS_NODE_OBJECT, ',');
        ml_hs_num(out, (uint64_t)s, ',');
        ml_hs_num(out, 2 * ((uint64_t)v + ML_HS_SYNTHETIC) + 1, ',');
        ml_hs_num(out, size > UINT32_MAX ? UINT32_MAX : size, ',');
        ml_hs_num(out, r->excluded[v] ? 0 : c, ',');
        ml_hs_str(out, v + 1 < n ? "0,0,\n" : "0,0");
    }
    ml_hs_str(out, "],\n\"edges\":[");
    /* the root's edges: named roots, then the two groups */
    for (size_t i = 0; i < r->named; i++) {
        char buf[1024];
        size_t len = ml_roots_name(r, i, buf, sizeof(buf));
        ml_hs_named_edge(&w, ML_HS_EDGE_PROPERTY, buf, len, r->roots[i].node + ML_HS_SYNTHETIC);
    }
    ml_hs_edge(&w, ML_HS_EDGE_ELEMENT, 1, 1);
    ml_hs_edge(&w, ML_HS_EDGE_ELEMENT, 2, 2);
    for (size_t i = r->named; i < r->n; i++)
        ml_hs_edge(&w, ML_HS_EDGE_ELEMENT, i - r->named + 1, r->roots[i].node + ML_HS_SYNTHETIC);
    for (size_t i = t->nreached; i < n; i++)
        ml_hs_edge(&w, ML_HS_EDGE_ELEMENT, i - t->nreached + 1, t->order[i] + ML_HS_SYNTHETIC);
    for (size_t v = 0; v < n; v++) {
        if (r->excluded[v])
            continue;
        size_t c;
        const ml_node *succ = ml_refgraph_succ(g, (ml_node)v, &c);
        ml_hs_object_edges(&w, g, (ml_node)v, succ, c);
        if (w.oom)
            goto oom;
    }
    ml_hs_str(out, "],\n\"trace_function_infos\":[],\"trace_tree\":[],\"samples\":[],\"locations\":[],\n\"strings\":[");
    for (size_t i = 0; i < strings.n; i++) {
        ml_hs_json(out, strings.arena + strings.offs[i], strings.lens[i]);
        ml_hs_put(out, i + 1 < strings.n ? ",\n" : "", i + 1 < strings.n ? 2 : 0);
    }
    ml_hs_str(out, "]}\n");
    ml_hs_flush(out);
    int failed = out->failed;
    free(out);
    ml_hs_strings_release(&strings);
    return failed ? -1 : 0;
oom:
    free(out);
    ml_hs_strings_release(&strings);
    errno = ENOMEM;
    return -1;
}
