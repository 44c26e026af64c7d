"""Why is it still alive: reference paths from named roots, retained sizes,
reference pictures, and objgraph's helpers with sizes.

    r = memlens.why(obj)           # shortest paths from named roots
    print(r)                       # one line per hop
    r.paths                        # data: [Path(root, objects, edges)]
    r.to_svg(), r.to_dot()         # pictures (shown inline in Jupyter)
    memlens.refs(obj), memlens.backrefs(obj)   # objgraph's show_refs/backrefs
    memlens.retained_size(obj)     # bytes freed if obj went away
    memlens.count("Lesson"), memlens.by_type("Lesson")
    memlens.get_leaking_objects(), memlens.find_backref_chain(obj, pred)

Every call walks the live heap once in C (csrc/graph/): the reference
graph (what tp_traverse shows, weak references excluded), the named roots
(module globals, the locals of every thread's frames, sys.modules; then
"held by C code" for an object whose reference count exceeds the
references the walk sees), and the answer. memlens' own frames are never
roots, and what results hold is kept in an engine holder no walk sees, so
a result kept in a variable never shows up in a later path or census.
Details: docs/WHY.md.
"""
import os
import sys
from collections import namedtuple

from memlens import _engine, pictures
from memlens.fmt import human_bytes, human_count, safe

__all__ = ["why", "refs", "backrefs", "retained_size", "count", "by_type",
           "get_leaking_objects", "find_backref_chain", "Why", "RefGraph", "Path", "Suspects",
           "ClassSuspect"]

#: memlens' own frames (this package) are never roots
_SKIP = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: One reference path: root (its name), objects (root object first, the
#: object asked about last) and edges (len(objects) - 1 names, ".attr",
#: "['key']", "[3]", "closure cell 'x'" ...).
Path = namedtuple("Path", "root objects edges")

_ROOT_LOCAL = 3


def _type_name(o):
    return _engine.type_name(type(o))


def _size(o):
    try:
        return _engine.object_size(o)[0] + _engine.object_size(o)[1]
    except Exception:  # a hostile __sizeof__: no size shown
        return None


def _describe(o):
    """'list, 88 B' (type, shallow size)."""
    size = _size(o)
    name = _type_name(o)
    return name if size is None else "%s, %s" % (name, human_bytes(size))


def _thread_names():
    threading = sys.modules.get("threading")
    if threading is None:
        return {}
    try:
        return {ident: t.name for ident, t in dict(threading._active).items()}
    except Exception:
        return {}


def _root_name(kind, name, thread, names):
    if kind == _ROOT_LOCAL:
        prefix = "thread %d," % thread
        if name.startswith(prefix) and thread in names:
            return "thread %s,%s" % (names[thread], name[len(prefix):])
    return name


def _is_ident(key):
    return key.isidentifier()


def _compact(objects, edges):
    """Read a raw path as a person would write it: an object's __dict__
    then ['x'] is .x; a module's globals dict (the root) then ['x'] is .x;
    a function's .__closure__ [i] .cell_contents is closure cell 'name'."""
    objs, names = [objects[0]], []
    i = 0
    while i < len(edges):
        e = edges[i]
        nxt = edges[i + 1] if i + 1 < len(edges) else None
        if (e == ".__dict__" and nxt and nxt.startswith("['") and nxt.endswith("']")
                and _is_ident(nxt[2:-2])):
            names.append("." + nxt[2:-2])
            objs.append(objects[i + 2])
            i += 2
            continue
        if (e == ".__closure__" and nxt and nxt.startswith("[") and i + 2 < len(edges)
                and edges[i + 2] == ".cell_contents"):
            try:
                var = objects[i].__code__.co_freevars[int(nxt[1:-1])]
                names.append("closure cell %r" % var)
            except Exception:
                names.append(".__closure__%s.cell_contents" % nxt)
            objs.append(objects[i + 3])
            i += 3
            continue
        if i == 0 and e.startswith("['") and e.endswith("']") and _is_ident(e[2:-2]) \
                and isinstance(objects[0], dict) and _module_dict(objects[0]):
            names.append("." + e[2:-2])
        else:
            names.append(e)
        objs.append(objects[i + 1])
        i += 1
    return objs, names


def _module_dict(d):
    name = d.get("__name__") if isinstance(d.get("__name__"), str) else None
    mod = sys.modules.get(name) if name else None
    return mod is not None and getattr(mod, "__dict__", None) is d


class Why:
    """The answer of why(obj): the shortest reference paths from roots.

    print() gives one line per hop; .paths is the data; .to_dot(),
    .to_svg() and Jupyter's display draw them."""

    __slots__ = ("_meta", "_hold", "_what", "_status")

    def __init__(self, meta, hold, what, status):
        self._meta, self._hold, self._what, self._status = meta, hold, what, status

    @property
    def paths(self):
        """[Path(root, objects, edges)], shortest first."""
        names = _thread_names()
        out = []
        for kind, name, thread, first, length, edges in self._meta or ():
            objs = [self._hold[k] for k in range(first, first + length)]
            objs, edges = _compact(objs, list(edges))
            out.append(Path(_root_name(kind, name, thread, names), objs, edges))
        return out

    def __len__(self):
        return len(self._meta or ())

    def __bool__(self):
        return True

    def format(self):
        paths = self.paths
        lines = []
        if not paths:
            lines.append("why is %s alive: %s" % (safe(self._what), self._status))
            return "\n".join(lines) + "\n"
        lines.append("why is %s alive: %d path%s from roots" % (
            safe(self._what), len(paths), "" if len(paths) == 1 else "s"))
        for n, p in enumerate(paths, 1):
            lines.append("path %d: %s  (%s)" % (n, safe(p.root), safe(_describe(p.objects[0]))))
            for edge, o in zip(p.edges, p.objects[1:]):
                lines.append("    %-30s %s" % (safe(edge), safe(_describe(o))))
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.format()

    def __repr__(self):
        return "<memlens.Why %s: %d paths>" % (self._what, len(self))

    def _picture(self):
        """One box per object (shared hops drawn once); a root's box
        carries the root's name."""
        nodes, edges, index, seen = [], [], {}, set()
        for p in self.paths:
            prev = None
            for k, o in enumerate(p.objects):
                key = id(o)
                if key not in index:
                    lines = _describe(o).split(", ", 1)
                    kind = "target" if k == len(p.objects) - 1 else "node"
                    if k == 0:
                        lines.insert(0, p.root)
                        kind = "root" if kind == "node" else kind
                    nodes.append(pictures.Node(lines, k, kind))
                    index[key] = len(nodes) - 1
                if prev is not None and (prev, index[key], p.edges[k - 1]) not in seen:
                    seen.add((prev, index[key], p.edges[k - 1]))
                    edges.append((prev, index[key], p.edges[k - 1]))
                prev = index[key]
        return nodes, edges

    def to_svg(self):
        nodes, edges = self._picture()
        if not nodes:
            nodes = [pictures.Node([self._what, self._status], 0, "target")]
        return pictures.svg(nodes, edges, title="why is %s alive" % self._what)

    def to_dot(self):
        nodes, edges = self._picture()
        return pictures.dot(nodes, edges, title="why is %s alive" % self._what)

    def _repr_svg_(self):
        return self.to_svg()


def _what(obj):
    return "%s at 0x%x" % (_type_name(obj), id(obj))


def why(obj, *, paths=3, max_depth=None):
    """The shortest reference paths from named roots to obj (up to `paths`,
    from different roots, at most max_depth references long).

    Roots: module globals, every thread's frame locals, sys.modules; then,
    only when none of those reaches obj, "held by C code" (an object with
    more references than the heap shows). Weak references are not paths."""
    if paths < 1:
        raise ValueError("paths must be at least 1")
    meta, hold = _engine.graph_why(obj, int(paths), int(max_depth or 0), _SKIP)
    if meta is None:
        status = "not in the heap graph (memlens' own object)"
    elif not meta:
        status = ("no path from a root: only the caller's own reference holds it"
                  if max_depth is None else "no path of at most %d references" % max_depth)
    else:
        status = ""
    return Why(meta, hold, _what(obj), status)


class RefGraph:
    """refs()/backrefs(): the objects around one object, with their sizes.
    print() lists the references; .to_svg(), .to_dot() and Jupyter draw it."""

    __slots__ = ("_nodes", "_edges", "_hold", "_backward", "_what")

    def __init__(self, nodes, edges, hold, backward, what):
        self._nodes, self._edges, self._hold = nodes, edges, hold
        self._backward, self._what = backward, what

    @property
    def objects(self):
        return [self._hold[i] for i in range(len(self._hold))]

    @property
    def edges(self):
        """[(from object index, to object index, edge name)] into .objects."""
        return [tuple(e) for e in self._edges]

    def _labels(self, i):
        size, omitted, root = self._nodes[i]
        o = self._hold[i]
        lines = [_type_name(o), human_bytes(size)]
        if root:
            lines.insert(0, root)
        if omitted:
            lines.append("+%d more not shown" % omitted)
        return lines

    def _picture(self):
        depth = {0: 0}
        for a, b, _ in self._edges:  # breadth first: parents come first
            near, far = (b, a) if self._backward else (a, b)
            if far not in depth:
                depth[far] = depth[near] + 1
        top = max(depth.values()) if depth else 0
        nodes = []
        for i in range(len(self._nodes)):
            layer = top - depth.get(i, 0) if self._backward else depth.get(i, 0)
            kind = "target" if i == 0 else ("root" if self._nodes[i][2] else
                                            ("cut" if self._nodes[i][1] else "node"))
            nodes.append(pictures.Node(self._labels(i), layer, kind))
        return nodes, [tuple(e) for e in self._edges]

    def _title(self):
        return "%s of %s" % ("referrers" if self._backward else "references", self._what)

    def to_svg(self):
        nodes, edges = self._picture()
        return pictures.svg(nodes, edges, title=self._title())

    def to_dot(self):
        nodes, edges = self._picture()
        return pictures.dot(nodes, edges, title=self._title())

    def _repr_svg_(self):
        return self.to_svg()

    def format(self):
        lines = ["%s (%d objects):" % (safe(self._title()), len(self._nodes))]
        for a, b, name in self._edges:
            lines.append("    %s %s -> %s" % (
                safe(_type_name(self._hold[a])), safe(name), safe(_type_name(self._hold[b]))))
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.format()

    def __repr__(self):
        return "<memlens.RefGraph %s: %d objects>" % (self._title(), len(self._nodes))


def _neighbourhood(obj, depth, max_items, backward):
    if depth < 0 or max_items < 1:
        raise ValueError("depth must be >= 0 and max_items >= 1")
    raw = _engine.graph_neighbourhood(obj, int(depth), bool(backward), int(max_items), _SKIP)
    if raw is None:
        raise ValueError("not in the heap graph (memlens' own object)")
    nodes, edges, hold = raw
    return RefGraph(nodes, edges, hold, backward, _what(obj))


def refs(obj, depth=3, max_items=10):
    """What obj refers to, `depth` references deep (objgraph's show_refs):
    at most max_items referents shown per object, the rest counted."""
    return _neighbourhood(obj, depth, max_items, False)


def backrefs(obj, depth=3, max_items=10):
    """What refers to obj, `depth` references up (objgraph's
    show_backrefs); roots are named on their boxes."""
    return _neighbourhood(obj, depth, max_items, True)


def retained_size(obj):
    """Bytes that would be freed if obj went away: the shallow sizes of
    every object obj dominates (every path from a root to it passes
    through obj), obj included."""
    size = _engine.graph_retained((obj,), _SKIP)[0]
    if size < 0:
        raise ValueError("not in the heap graph (memlens' own object)")
    return size


def _types_named(typename):
    """The live types a name means: the census name ('collections.OrderedDict',
    'app.models.User') or, as objgraph matches, the bare __name__ ('User')."""
    if isinstance(typename, type):
        return (typename,)
    rows = _engine.heap_snapshot(ids=False)["rows"]
    found = []
    for tp, what, _, _ in rows:
        if what != "objects" or tp in found:
            continue
        if _engine.type_name(tp) == typename or getattr(tp, "__name__", None) == typename:
            found.append(tp)
    return tuple(found)


def count(typename):
    """How many live objects have exactly this type (a class or a name)."""
    types = _types_named(typename)
    return _engine.graph_of_types(types, False) if types else 0


def by_type(typename):
    """The live objects of exactly this type (a class or a name), as a list."""
    types = _types_named(typename)
    return _engine.graph_of_types(types, True) if types else []


def get_leaking_objects():
    """GC objects nothing refers to and no root names (objgraph's
    get_leaking_objects): often reference-count bugs in C extensions, or
    objects only C code holds."""
    return _engine.graph_leaking(_SKIP)


def find_backref_chain(obj, predicate, max_depth=20):
    """The shortest chain [x, ..., obj] where predicate(x) is true and each
    object refers to the next (objgraph's find_backref_chain); [obj] when
    none is found within max_depth references."""
    raw = _engine.graph_backward(obj, int(max_depth), _SKIP)
    if raw is None:
        return [obj]
    parents, hold = raw
    for i in range(len(parents)):
        x = hold[i]
        if predicate(x):
            chain = []
            while i >= 0:
                chain.append(hold[i])
                i = parents[i]
            return chain
    return [obj]


for _own in (Why, RefGraph):
    _engine.heap_own_type(_own)
del _own


# ---- the whole heap: retained sizes, dominators, leak suspects ----

#: One of the objects retaining the most: name (as the census names it, a
#: module's globals as "dict of module NAME"), retained and shallow bytes,
#: share of the heap, the object, its accumulation point (the object below
#: it retaining most of what it retains) with name and retained bytes, and
#: holds: [(row name, count, bytes)] of what it retains, biggest first.
DominatorRow = namedtuple("DominatorRow", "name retained size share object accumulation "
                                          "accumulation_name accumulation_retained holds")


def _census_name(tp, what):
    from memlens.heap import _named_rows
    if what == "objects" and tp is dict:
        return "dict (no owner)"
    return _named_rows([(tp, what, 0, 0)])[0][0]


class Dominators(list):
    """DominatorRows, biggest retained first; print() for the text."""

    def __init__(self, rows, title):
        list.__init__(self, rows)
        self.title = title

    def as_list(self):
        return [{"name": r.name, "retained": r.retained, "size": r.size, "share": r.share,
                 "accumulation": r.accumulation_name,
                 "accumulation_retained": r.accumulation_retained,
                 "holds": [{"type": n, "count": c, "bytes": b} for n, c, b in r.holds]}
                for r in self]

    def format(self):
        lines = [self.title]
        for r in self:
            held = ", ".join("%s %s (%s)" % (human_count(c), safe(n), human_bytes(b))
                             for n, c, b in r.holds)
            lines.append("  %s retains %s (%.1f%%): %s" % (
                safe(r.name), human_bytes(r.retained), 100 * r.share, held))
            if r.accumulation is not r.object:
                lines.append("      accumulation point: %s retaining %s" % (
                    safe(r.accumulation_name), human_bytes(r.accumulation_retained)))
        if len(lines) == 1:
            lines.append("  (none)")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.format()


#: Eclipse MAT's second kind of leak suspect: many instances of one class
#: (name, as the census names it) that together retain `retained` bytes
#: (share of the heap); count instances, `top` of them not dominated by
#: another of the same class; accumulation: the nearest dominator most of
#: them share (None when they hang from different roots), its name and the
#: bytes of theirs under it (accumulation_bytes).
ClassSuspect = namedtuple("ClassSuspect", "name count top retained share accumulation "
                                          "accumulation_name accumulation_bytes")

#: classes retaining less than this share of the heap are never computed
#: (heap(retained=True) finds class suspects down to it)
CLASS_SUSPECT_FLOOR = 0.01


class Suspects(list):
    """leak_suspects(): the objects retaining >= threshold of the heap
    (DominatorRows, the list itself) and, in .classes, the classes whose
    instances together do (ClassSuspects), biggest first."""

    def __init__(self, rows, classes, threshold, total):
        list.__init__(self, rows)
        self.classes = classes
        self.threshold = threshold
        self.total = total

    def as_dict(self):
        return {"threshold": self.threshold,
                "objects": Dominators.as_list(self),
                "classes": [{"type": c.name, "count": c.count, "retained": c.retained,
                             "share": c.share, "accumulation": c.accumulation_name,
                             "accumulation_bytes": c.accumulation_bytes}
                            for c in self.classes]}

    def format(self):
        lines = [Dominators(self, "leak suspects: objects retaining >= %g%% of %s:" % (
            100 * self.threshold, human_bytes(self.total))).format().rstrip("\n")]
        lines.append("leak suspects: classes whose instances retain >= %g%% together:" % (
            100 * self.threshold))
        for c in self.classes:
            lines.append("  %s %s retain %s (%.1f%%)" % (
                human_count(c.count), safe(c.name), human_bytes(c.retained), 100 * c.share))
            if c.accumulation_name is None:
                lines.append("      accumulation point: none (held from different roots)")
            else:
                lines.append("      accumulation point: %s holding %s of it" % (
                    safe(c.accumulation_name), human_bytes(c.accumulation_bytes)))
        if not self.classes:
            lines.append("  (none)")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.format()


def _point_name(point, rootname):
    """An accumulation point's name: None (none), a module's globals as
    "dict of module NAME", else its census name."""
    if point is None:
        return None
    if rootname and rootname.startswith("module ") and point[1] == "dict of module":
        return "dict of " + rootname
    return _census_name(*point)


class Retained:
    """What heap(retained=True) adds to a Snapshot (memlens' own: no census
    sees it; its data is str -> int dicts, untracked tuples and an engine
    holder)."""

    __slots__ = ("_rows", "_top", "_hold", "_classes", "_chold", "total", "count", "edges",
                 "graph_bytes")

    def __init__(self, raw):
        rows = {}
        for tp, what, size in raw["rows"]:
            name = _census_name(tp, what)
            rows[name] = rows.get(name, 0) + size
        self._rows = rows
        top = []
        for tp, what, ret, size, rootname, acc_ret, (acc_tp, acc_what), holds in raw["top"]:
            name = _census_name(tp, what)
            if rootname and rootname.startswith("module ") and what == "dict of module":
                name = "dict of " + rootname
            top.append((name, ret, size, acc_ret, _census_name(acc_tp, acc_what),
                        tuple((_census_name(t, w), c, b) for t, w, c, b in holds)))
        self._top = tuple(top)
        _engine.graph_untrack(self._top)
        self._hold = raw["hold"]
        classes, self._chold = raw["classes"]
        self._classes = tuple(
            (_census_name(tp, what), count, top, ret, _point_name(point, rootname), share)
            for tp, what, count, top, ret, share, point, rootname in classes)
        _engine.graph_untrack(self._classes)
        self.total, self.count = raw["total"], raw["count"]
        self.edges, self.graph_bytes = raw["edges"], raw["graph_bytes"]

    def of(self, name):
        return self._rows.get(name, 0)

    def _row(self, i):
        name, ret, size, acc_ret, acc_name, holds = self._top[i]
        return DominatorRow(name, ret, size, ret / self.total if self.total else 0.0,
                            self._hold[2 * i], self._hold[2 * i + 1], acc_name, acc_ret,
                            [tuple(h) for h in holds])

    def dominators(self, top=10):
        n = len(self._top) if top is None else min(int(top), len(self._top))
        return Dominators([self._row(i) for i in range(n)],
                          "objects retaining the most (of %s):" % human_bytes(self.total))

    def suspects(self, threshold=0.10):
        threshold = float(threshold)
        if not CLASS_SUSPECT_FLOOR <= threshold <= 1.0:
            raise ValueError("threshold must be between %g and 1" % CLASS_SUSPECT_FLOOR)
        rows = [self._row(i) for i in range(len(self._top))
                if self.total and self._top[i][1] >= threshold * self.total]
        classes = [ClassSuspect(name, count, top, ret, ret / self.total,
                                None if pname is None else self._chold[i], pname,
                                share if pname is not None else 0)
                   for i, (name, count, top, ret, pname, share) in enumerate(self._classes)
                   if ret >= threshold * self.total]
        return Suspects(rows, classes, threshold, self.total)


def _heap_retained(top=50):
    return Retained(_engine.graph_heap(_SKIP, int(top), CLASS_SUSPECT_FLOOR))


def save_heapsnapshot(path, force=False):
    """Write the live heap now as a V8 .heapsnapshot (Chrome DevTools'
    Memory panel loads it): a new file (O_EXCL; force replaces). Returns
    {count, edges, total}."""
    from memlens import outfile
    with outfile.create(path, force) as f:
        try:
            return _engine.graph_heapsnapshot(f.fileno(), _SKIP)
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            raise


for _own in (Retained, Suspects):
    _engine.heap_own_type(_own)
del _own
