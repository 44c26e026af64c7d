"""The call tree of a capture as a Python object (the engine builds it: see
memlens._engine.read_calltree and docs/TREE.md).

    tree = memlens.calltree.read("cap.mlens", ("peak", "allocated"))
    for path, type_name, thread, nbytes, count in tree.stacks("peak"):
        ...

Nodes are integers (0 = the root); a node's frame is (function, file, line).
Values are self values per (node, type, thread); totals() adds each node's
descendants.
"""
from memlens import reports

VIEWS = ("peak", "end", "allocated", "temporary", "range", "range_new")
RANGE_VIEWS = ("range", "range_new")


def read(path, views=("peak",), temporary_n=1, t0_us=None, t1_us=None, progress=None):
    """The CallTree of a capture for `views` (one pass for all of them).
    Errors as every report: UsageError with one line."""
    show = None
    if progress is None:
        show = reports._terminal_progress(1)
    elif progress:
        show = progress
    if isinstance(views, str):
        views = (views,)
    try:
        raw = reports._call(reports._engine().read_calltree, path, tuple(views),
                            temporary_n=temporary_n, t0_us=t0_us, t1_us=t1_us, progress=show)
    finally:
        if isinstance(show, reports._Progress):
            show.close()
    return CallTree(raw)


class CallTree:
    """The engine's dict with helpers; `raw` is the dict itself (the JSON of
    the flame graph page and of `memlens tree --json` come from it)."""

    def __init__(self, raw):
        self.raw = raw
        self.parent = raw["nodes"]["parent"]
        self.frame_of = raw["nodes"]["frame"]
        fr = raw["frames"]
        self.frames = list(zip(fr["function"], fr["file"], fr["line"]))
        # nstacks: 1 per native frame (function, library file name, 0); absent
        # without --native-stacks
        self.native_frames = fr.get("native") or [0] * len(self.frames)
        self.types = raw["types"]
        self.thread_ids = raw["threads"]["id"]
        self.thread_names = raw["threads"]["name"]

    @property
    def views(self):
        return list(self.raw["views"])

    def __len__(self):
        return len(self.parent)

    def frame(self, node):
        """(function, file, line) of a node (None for the root)."""
        i = self.frame_of[node]
        return self.frames[i] if i >= 0 else None

    def is_native(self, node):
        """True for a native frame (a C function of a --native-stacks capture)."""
        i = self.frame_of[node]
        return i >= 0 and bool(self.native_frames[i])

    def path(self, node):
        """The frames from the outermost to the node: [(function, file, line), ...]."""
        out = []
        while node > 0:
            out.append(self.frames[self.frame_of[node]])
            node = self.parent[node]
        out.reverse()
        return out

    def thread_label(self, index):
        name = self.thread_names[index]
        tid = self.thread_ids[index]
        return "%s (%d)" % (name, tid) if name else "thread %d" % tid

    def thread_index(self, spec):
        """Thread indexes matching a --thread argument: a capture thread id or a name."""
        out = [i for i, (tid, name) in enumerate(zip(self.thread_ids, self.thread_names))
               if str(tid) == spec or name == spec]
        return set(out)

    def entries(self, view, threads=None):
        """(node, type index, thread index, bytes, count) of a view; threads:
        None or a set of thread indexes to keep."""
        v = self.raw["views"][view]
        for e in zip(v["node"], v["type"], v["thread"], v["bytes"], v["count"]):
            if threads is None or e[2] in threads:
                yield e

    def stacks(self, view, threads=None):
        """(path, type name, thread index, bytes, count) per entry; path as path()."""
        cache = {}
        for node, t, th, b, c in self.entries(view, threads):
            p = cache.get(node)
            if p is None:
                p = cache[node] = self.path(node)
            yield p, self.types[t], th, b, c

    def totals(self, view, threads=None):
        """(bytes, count): two lists indexed by node, each node's value plus its
        descendants' (parents always have smaller indexes than children)."""
        n = len(self.parent)
        nb, nc = [0] * n, [0] * n
        for node, _t, _th, b, c in self.entries(view, threads):
            nb[node] += b
            nc[node] += c
        for node in range(n - 1, 0, -1):
            p = self.parent[node]
            nb[p] += nb[node]
            nc[p] += nc[node]
        return nb, nc
