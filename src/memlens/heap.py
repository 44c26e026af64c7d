"""Live-heap analysis: what is in the heap right now, and what grew.

    snap = memlens.heap()          # every live object, by type (C walk)
    print(snap)                    # type, count, bytes, average, share
    print(snap.dicts())            # dicts by key kind and size
    later = memlens.heap()
    print(later - snap)            # growth per type
    for obj in later.new_objects(snap, type=MyClass): ...
    memlens.deep_size(obj)         # bytes reachable from obj

The walk is C (csrc/heap/): it holds the GIL, calls no Python code and
creates no Python object per visited object. This module only names types
and formats tables. How it works and how it differs from sys.getsizeof,
pympler and guppy3: docs/HEAP.md.
"""
import builtins
import gc
import types as _types
from collections import namedtuple

from memlens import _engine
from memlens.fmt import human_bytes, human_count, table

__all__ = ["heap", "deep_size", "Snapshot", "SnapshotDiff", "DeepSize", "TypeRow", "DictRow",
           "DEFAULT_STOP"]

#: One row of a snapshot: a type name (or "dict of X"), objects, bytes.
TypeRow = namedtuple("TypeRow", "type count bytes")
#: One row of the dict table: key kind, bytes of one dict, dicts, bytes.
DictRow = namedtuple("DictRow", "kind size count bytes")

#: deep_size does not cross into these (shared program structure, not data).
DEFAULT_STOP = (_types.ModuleType, type, _types.FunctionType, _types.CodeType)

_DICT_KIND_ORDER = {"split": 0, "str-interned": 1, "str": 2, "general": 3, "empty": 4}
_DICT_KIND_HELP = ("split = key-sharing instance dict (keys kept by the class); "
                   "str-interned = all keys interned str; str = all keys str; "
                   "general = some other key; empty = no items")


def type_name(tp):
    """Module-qualified name: 'int', 'collections.OrderedDict', 'app.models.User'.

    One rule with `memlens types` (C, csrc/capture/types.h): two different
    types never get the same name ('datetime.datetime (Python class)' for
    the pure-Python class beside the C one), and inside `memlens run` a type
    is named as the capture names it."""
    return _engine.type_name(tp)


def _named_rows(rows):
    """[(type, what, count, bytes)] -> [(name, count, bytes)], in one call:
    no Python function or generator runs once per row (on 3.10, code run
    1,024 times grows by its opcache, a block a census between two
    snapshots would count as the program's)."""
    name = _engine.type_name
    return [(name(tp) if what == "objects" else "dict of " + name(tp) if what == "dict of class"
             else what if what in ("dict of module", "dict of type") else "dict (no owner)", count, size)
            for tp, what, count, size in rows]


def _merge(pairs):
    """[(name, count, bytes)] -> ({name: count}, {name: bytes}) (same-named
    types merge). Two dicts of str -> int: the GC never tracks them (see
    Snapshot)."""
    counts, sizes = {}, {}
    for name, count, size in pairs:
        counts[name] = counts.get(name, 0) + count
        sizes[name] = sizes.get(name, 0) + size
    return counts, sizes


def _rows(counts, sizes):
    """TypeRows of merged counts and bytes, biggest total bytes first."""
    rows = [TypeRow(name, c, sizes[name]) for name, c in counts.items()]
    rows.sort(key=lambda r: (-r.bytes, -r.count, r.type))
    return rows


def _share(part, whole):
    return "%.2f%%" % (100.0 * part / whole) if whole else "-"


_DICT_KINDS = tuple(_DICT_KIND_ORDER)


class Snapshot:
    """The live heap at one moment, by type. Built by memlens.heap().

    memlens never counts itself: no census, diff, deep size or new_objects
    includes a Snapshot, SnapshotDiff or DeepSize, nor what only they hold.
    The walk skips instances of these types (_engine.heap_own_type), and
    their data lives only in containers the GC never tracks (dicts of str
    or int -> int, bytes, the engine's id buffer), so none of it is on the
    GC lists either. Keep it that way: no list, tuple or object attribute
    here."""

    __slots__ = ("_counts", "_bytes", "_dicts", "_ids", "total_count", "total_bytes",
                 "sizeof_calls", "sizeof_errors", "sizeof_clamped", "gc_collecting", "_retained")

    def __init__(self, raw):
        #: heap(retained=True): a memlens.why.Retained (own type), else None
        self._retained = None
        self._counts, self._bytes = _merge(_named_rows(raw["rows"]))
        #: the dict table: (size << 3 | kind index) -> dicts
        self._dicts = {size << 3 | _DICT_KINDS.index(kind): count
                       for kind, size, count in raw["dicts"]}
        self._ids = raw["ids"]
        #: objects and bytes in the heap
        self.total_count = raw["count"]
        self.total_bytes = raw["bytes"]
        #: __sizeof__ calls made for types C cannot size, and how many of
        #: them raised (fixed size used) or returned a lie (clamped)
        self.sizeof_calls = raw["sizeof_calls"]
        self.sizeof_errors = raw["sizeof_errors"]
        self.sizeof_clamped = raw["sizeof_clamped"]
        #: True if the cyclic GC was collecting (objects on its private
        #: lists were not seen): happens only when called from a finalizer
        self.gc_collecting = bool(raw["gc_collecting"])

    def __getstate__(self):
        # the ids live in an engine buffer: pickled and copied as bytes
        # (heap_new_objects reads either)
        state = {name: getattr(self, name) for name in self.__slots__}
        if state["_ids"] is not None:
            state["_ids"] = bytes(memoryview(state["_ids"]))
        state["_retained"] = None  # holds live objects: not copied
        return state

    def __setstate__(self, state):
        for name in self.__slots__:
            setattr(self, name, state[name])

    # ---- data ----

    def by_type(self):
        """Rows (TypeRow), biggest total bytes first."""
        return _rows(self._counts, self._bytes)

    def dicts(self):
        """The dict table (DictTable): dicts by key kind and size, biggest first."""
        return DictTable([DictRow(_DICT_KINDS[key & 7], key >> 3, count, (key >> 3) * count)
                          for key, count in self._dicts.items()])

    def count_of(self, name):
        """Objects counted under a row name ('str', 'dict of app.User', ...)."""
        return self._counts.get(name, 0)

    def bytes_of(self, name):
        return self._bytes.get(name, 0)

    def as_dict(self, dicts=False):
        out = {
            "total_bytes": self.total_bytes,
            "total_count": self.total_count,
            "types": [{"type": r.type, "count": r.count, "bytes": r.bytes} for r in self.by_type()],
        }
        if self._retained is not None:
            for row in out["types"]:
                row["retained"] = self._retained.of(row["type"])
            out["dominators"] = self.dominators().as_list()
            out["suspects"] = self.leak_suspects().as_dict()
        if dicts:
            out["dicts"] = self.dicts().as_list()
        return out

    # ---- retained sizes (heap(retained=True); docs/WHY.md) ----

    def _need_retained(self):
        if self._retained is None:
            raise ValueError("take the snapshot with memlens.heap(retained=True)")
        return self._retained

    def retained_of(self, name):
        """Bytes the objects of a row retain together (Eclipse MAT's
        retained heap of a class: what freeing them all would free)."""
        return self._need_retained().of(name)

    def dominators(self, top=10):
        """The objects that retain the most (the top of the dominator
        tree), biggest first, named as the census names them."""
        return self._need_retained().dominators(top)

    def leak_suspects(self, threshold=0.10):
        """Eclipse MAT's leak suspects (a memlens.why.Suspects): each object
        retaining at least `threshold` (0.01..1) of the heap, with its
        accumulation point, and in .classes each class whose instances
        together retain that much, with the nearest dominator most of them
        share."""
        return self._need_retained().suspects(threshold)

    def save(self, path, force=False):
        """Write the live heap *now* as a Chrome DevTools .heapsnapshot
        (Memory panel > Load). A census keeps counts, not the objects: the
        file is of the heap at the time of this call. Returns a dict
        (count, edges, total)."""
        from memlens.why import save_heapsnapshot
        return save_heapsnapshot(path, force=force)

    def to_json(self, dicts=False):
        """JSON text: total_bytes, total_count, types [{type, count, bytes}]
        (and dicts [{kind, size, count, bytes}] with dicts=True)."""
        import json  # here, not at import: `import memlens` stays cheap for `memlens run`
        return json.dumps(self.as_dict(dicts=dicts), indent=2)

    # ---- diffs ----

    def diff(self, before):
        """Growth since `before` (a SnapshotDiff)."""
        if not isinstance(before, Snapshot):
            raise TypeError("can only diff two memlens heap snapshots")
        return SnapshotDiff(self, before)

    def __sub__(self, before):
        if not isinstance(before, Snapshot):
            return NotImplemented
        return SnapshotDiff(self, before)

    def new_objects(self, before, type=None):
        """Yield the objects in this snapshot that were not in `before` and
        are still alive. `type`: a class, or a row name such as 'str' or
        'app.models.User' (exact type, not subclasses).

        Identity is the object's address: an object freed before this
        snapshot whose address was reused by a new object of the same type
        cannot be told apart from a survivor (docs/HEAP.md)."""
        if self._ids is None or before._ids is None:
            raise ValueError("new_objects needs snapshots taken with ids=True")
        if type is not None and not isinstance(type, (str, builtins.type)):
            raise TypeError("type must be a class or a type name")
        tp = type if isinstance(type, builtins.type) else None
        found = _engine.heap_new_objects(self._ids, before._ids, tp)
        if isinstance(type, str):
            found = [o for o in found if type_name(builtins.type(o)) == type]
        yield from found

    # ---- text ----

    def format(self, limit=30):
        """The table as text: type, count, bytes, average, share."""
        rows = self.by_type()
        shown = rows if limit is None else rows[:limit]
        lines = []
        out = _Lines(lines)
        out.write("memlens heap: %s objects, %s\n" % (human_count(self.total_count),
                                                      human_bytes(self.total_bytes)))
        ret = self._retained
        table(["type", "count", "bytes", "average", "share"] + (["retained"] if ret else []),
              [[r.type, human_count(r.count), human_bytes(r.bytes),
                human_bytes(r.bytes / r.count) if r.count else "-",
                _share(r.bytes, self.total_bytes)] + ([human_bytes(ret.of(r.type))] if ret else [])
               for r in shown], out=out)
        if len(shown) < len(rows):
            rest = rows[len(shown):]
            out.write("... %s more types: %s objects, %s\n" % (
                human_count(len(rest)), human_count(sum(r.count for r in rest)),
                human_bytes(sum(r.bytes for r in rest))))
        if self.sizeof_errors or self.sizeof_clamped:
            out.write("note: %d __sizeof__ calls raised and %d returned impossible sizes; "
                      "fixed sizes used for them\n" % (self.sizeof_errors, self.sizeof_clamped))
        if self.gc_collecting:
            out.write("note: taken while the GC was collecting; objects it was examining are missing\n")
        return "".join(lines)

    def __str__(self):
        return self.format()

    def __repr__(self):
        return "<memlens.Snapshot %d objects, %d bytes, %d types>" % (
            self.total_count, self.total_bytes, len(self._counts))


class _Lines:
    def __init__(self, lines):
        self.lines = lines

    def write(self, s):
        self.lines.append(s)


class DictTable(list):
    """Rows of DictRow: the seed-000 "dict stat" table."""

    @property
    def total_bytes(self):
        return sum(r.bytes for r in self)

    def sorted(self):
        return sorted(self, key=lambda r: (-r.bytes, _DICT_KIND_ORDER.get(r.kind, 9), r.size))

    def as_list(self):
        return [{"kind": r.kind, "size": r.size, "count": r.count, "bytes": r.bytes}
                for r in self.sorted()]

    def format(self, limit=30):
        rows = self.sorted()
        total = self.total_bytes
        shown = rows if limit is None else rows[:limit]
        lines = []
        out = _Lines(lines)
        out.write("dicts: %s, %s\n" % (human_count(sum(r.count for r in rows)), human_bytes(total)))
        table(["kind", "size", "count", "bytes", "share"],
              [[r.kind, human_count(r.size), human_count(r.count), human_bytes(r.bytes),
                _share(r.bytes, total)] for r in shown], out=out)
        if len(shown) < len(rows):
            out.write("... %d more rows\n" % (len(rows) - len(shown)))
        out.write("kinds: %s\n" % _DICT_KIND_HELP)
        return "".join(lines)

    def __str__(self):
        return self.format()


class SnapshotDiff:
    """Growth per type between two snapshots (after - before). Holds only
    the two snapshots (never counted: see Snapshot); rows are computed
    when asked for."""

    __slots__ = ("after", "before", "count", "bytes")

    def __init__(self, after, before):
        self.after = after
        self.before = before
        self.count = after.total_count - before.total_count
        self.bytes = after.total_bytes - before.total_bytes

    @property
    def rows(self):
        """TypeRow deltas of the types that changed, biggest change first."""
        after, before = self.after, self.before
        rows = []
        for name in set(after._counts) | set(before._counts):
            c1, b1 = after._counts.get(name, 0), after._bytes.get(name, 0)
            c0, b0 = before._counts.get(name, 0), before._bytes.get(name, 0)
            if c1 != c0 or b1 != b0:
                rows.append(TypeRow(name, c1 - c0, b1 - b0))
        # by the size of the change: a type that shrank by more than others
        # grew comes first, whatever --limit cuts
        rows.sort(key=lambda r: (-abs(r.bytes), -abs(r.count), r.type))
        return rows

    def by_type(self):
        """TypeRow deltas, biggest change in bytes (growth or shrinkage) first."""
        return self.rows

    def new_objects(self, type=None):
        return self.after.new_objects(self.before, type=type)

    def as_list(self):
        return [{"type": r.type, "count": r.count, "bytes": r.bytes} for r in self.rows]

    def to_json(self):
        import json
        return json.dumps({"count": self.count, "bytes": self.bytes, "growth": self.as_list()},
                          indent=2)

    def format(self, limit=30):
        every = self.rows
        rows = every if limit is None else every[:limit]
        lines = []
        out = _Lines(lines)
        out.write("memlens heap growth: %s objects, %s\n" % (
            human_count(self.count, signed=True), human_bytes(self.bytes, signed=True)))
        table(["type", "count", "bytes"],
              [[r.type, human_count(r.count, signed=True), human_bytes(r.bytes, signed=True)]
               for r in rows], out=out)
        if len(rows) < len(every):
            out.write("... %d more types changed\n" % (len(every) - len(rows)))
        return "".join(lines)

    def __str__(self):
        return self.format()


def heap(ids=True, collect=False, retained=False):
    """Snapshot of every live object, by type.

    retained=True also builds the reference graph and its dominator tree
    (C; docs/WHY.md): a "retained" column per type, snap.dominators(top=N)
    and snap.leak_suspects().

    ids: also remember every object's address (8 bytes each) so that
    snap.new_objects(before) can find what is new. collect: run
    gc.collect() first (off by default: a census should not change what
    it counts)."""
    if collect:
        gc.collect()
    # the engine is called alone on this line: a frame calling into C does
    # not show its value stack, and memlens.runner's census leaves out
    # memlens' objects on its frames' stacks only when it can see them
    raw = _engine.heap_snapshot(ids=bool(ids))
    snap = Snapshot(raw)
    if retained:
        from memlens.why import _heap_retained
        snap._retained = _heap_retained()
    return snap


class DeepSize(int):
    """deep_size(..., detail=True): an int (the bytes) with a breakdown."""

    def __new__(cls, raw):
        self = int.__new__(cls, raw["bytes"])
        self.count = raw["count"]
        self.sizeof_errors = raw["sizeof_errors"]
        self.sizeof_clamped = raw["sizeof_clamped"]
        # dicts of str -> int only: see Snapshot
        self._counts, self._bytes = _merge(_named_rows([(tp, "objects", c, b) for tp, c, b in raw["rows"]]))
        # an int subclass has a __dict__ (no __slots__): with only ints and
        # those in it, the GC need not track it, so no census reaches them
        _engine.heap_untrack_dict(self.__dict__)
        return self

    def by_type(self):
        return _rows(self._counts, self._bytes)

    def format(self, limit=30):
        rows = self.by_type()
        lines = []
        out = _Lines(lines)
        total = int(self)
        out.write("deep size: %s in %s objects\n" % (human_bytes(total), human_count(self.count)))
        table(["type", "count", "bytes", "share"],
              [[r.type, human_count(r.count), human_bytes(r.bytes), _share(r.bytes, total)]
               for r in (rows if limit is None else rows[:limit])], out=out)
        return "".join(lines)

    def __str__(self):
        return self.format()

    def __repr__(self):
        return "DeepSize(%d bytes, %d objects)" % (int(self), self.count)


# memlens never counts itself (see Snapshot)
for _own in (Snapshot, SnapshotDiff, DeepSize):
    _engine.heap_own_type(_own)
del _own


def deep_size(obj, *more, detail=False, stop=DEFAULT_STOP, align=0):
    """Bytes reachable from the objects, each object counted once.

    Does not cross into instances of `stop` (modules, classes, functions,
    code objects by default; pass stop=() to follow everything). The
    objects passed are always counted. align=8 rounds each object up to 8
    bytes as pympler.asizeof does. detail=True returns a DeepSize (an int
    with .count and .by_type())."""
    stop = tuple(stop)
    for t in stop:
        if not isinstance(t, type):
            raise TypeError("stop must contain types, not %r" % (t,))
    raw = _engine.deep_size((obj,) + more, stop, int(align))
    return DeepSize(raw) if detail else raw["bytes"]
