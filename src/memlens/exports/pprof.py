"""pprof: a gzipped profile.proto (github.com/google/pprof, proto/profile.proto),
encoded here without a protobuf library.

Sample types, in order: alloc_objects/count, alloc_space/bytes (the
`allocated` view), inuse_objects/count, inuse_space/bytes (the chosen view:
peak by default); the default sample type is inuse_space. One sample per
(stack, type, thread), its locations innermost first, labels "type" (the
object type) and "thread". Also the input of Grafana Pyroscope and Parca.
"""
import gzip

VIEWS = ("allocated",)

# profile.proto field numbers
_P_SAMPLE_TYPE, _P_SAMPLE, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 4, 5, 6
_P_TIME, _P_DURATION, _P_PERIOD_TYPE, _P_PERIOD, _P_DEFAULT_TYPE = 9, 10, 11, 12, 14
_VT_TYPE, _VT_UNIT = 1, 2
_S_LOCATION, _S_VALUE, _S_LABEL = 1, 2, 3
_L_KEY, _L_STR = 1, 2
_LOC_ID, _LOC_LINE = 1, 4
_LINE_FUNCTION, _LINE_LINE = 1, 2
_F_ID, _F_NAME, _F_SYSTEM_NAME, _F_FILENAME, _F_START_LINE = 1, 2, 3, 4, 5


def _varint(n):
    """A protobuf varint; negative int64 as its two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _int(field, n):
    return _key(field, 0) + _varint(n) if n else b""


def _bytes(field, data):
    return _key(field, 2) + _varint(len(data)) + data


def _packed(field, values):
    if not values:
        return b""
    return _bytes(field, b"".join(_varint(v) for v in values))


class _Strings:
    def __init__(self):
        self.table, self.index = [""], {"": 0}

    def __call__(self, s):
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.table)
            self.table.append(s)
        return i


def render(tree, view, threads, meta):
    strings = _Strings()
    out = bytearray()
    for name, unit in (("alloc_objects", "count"), ("alloc_space", "bytes"),
                       ("inuse_objects", "count"), ("inuse_space", "bytes")):
        out += _bytes(_P_SAMPLE_TYPE, _int(_VT_TYPE, strings(name)) + _int(_VT_UNIT, strings(unit)))
    # samples: (node, type, thread) -> [alloc count, alloc bytes, inuse count, inuse bytes]
    values = {}
    for slot, v in ((0, "allocated"), (2, view)):
        for node, t, th, b, c in tree.entries(v, threads):
            cell = values.setdefault((node, t, th), [0, 0, 0, 0])
            cell[slot] += c
            cell[slot + 1] += b
    functions, locations = {}, {}  # (name, file) -> id ; frame index -> id
    loc_msgs, func_msgs = [], []

    def location(node):
        fi = tree.frame_of[node]
        lid = locations.get(fi)
        if lid is None:
            func, file, line = tree.frames[fi]
            fid = functions.get((func, file))
            if fid is None:
                fid = functions[(func, file)] = len(functions) + 1
                func_msgs.append(_int(_F_ID, fid) + _int(_F_NAME, strings(func)) +
                                 _int(_F_SYSTEM_NAME, strings(func)) +
                                 _int(_F_FILENAME, strings(file)))
            lid = locations[fi] = len(locations) + 1
            loc_msgs.append(_int(_LOC_ID, lid) + _bytes(_LOC_LINE, _int(_LINE_FUNCTION, fid) +
                                                        _int(_LINE_LINE, max(line, 0))))
        return lid

    stack_cache = {}
    type_key, thread_key = strings("type"), strings("thread")
    for (node, t, th), vals in sorted(values.items(), key=lambda kv: -kv[1][3]):
        locs = stack_cache.get(node)
        if locs is None:
            locs, n = [], node
            while n > 0:
                locs.append(location(n))
                n = tree.parent[n]
            stack_cache[node] = locs
        label_t = _bytes(_S_LABEL, _int(_L_KEY, type_key) + _int(_L_STR, strings(tree.types[t])))
        label_th = _bytes(_S_LABEL, _int(_L_KEY, thread_key) +
                          _int(_L_STR, strings(tree.thread_label(th))))
        out += _bytes(_P_SAMPLE, _packed(_S_LOCATION, locs) + _packed(_S_VALUE, vals) +
                      label_t + label_th)
    for m in loc_msgs:
        out += _bytes(_P_LOCATION, m)
    for m in func_msgs:
        out += _bytes(_P_FUNCTION, m)
    out += _int(_P_TIME, int(meta.get("start_ns") or 0))
    out += _int(_P_DURATION, tree.raw["duration_us"] * 1000)
    out += _bytes(_P_PERIOD_TYPE, _int(_VT_TYPE, strings("space")) + _int(_VT_UNIT, strings("bytes")))
    out += _int(_P_PERIOD, 1)
    out += _int(_P_DEFAULT_TYPE, strings("inuse_space"))
    for s in strings.table:  # last: every string is interned by now
        out += _bytes(_P_STRINGS, s.encode("utf-8", "replace"))
    return gzip.compress(bytes(out), mtime=0)
