"""The measuring half of the pytest plugin (pytest_plugin.py): a test body
under a capture, its figures, the limits it broke, and the text of failures
and of the end table. Imported only when a test is measured.

Figures of one test (plain JSON data: they travel from xdist workers):
    peak        bytes allocated by the body and alive at once, at most
    allocated   bytes allocated by the body
    allocations blocks allocated by the body
    leaked      bytes allocated by the body and still allocated after it
    site        the line that allocated the most bytes ("file:line (function)"), or None
    type        the type that allocated the most bytes, or None
    site_left   the line holding the most of what the body left allocated, or None
    type_left   the type holding the most of it, or None
The sites and types of a test counted by the run's session come from the
engine's window of its body (_engine.window_begin/window_end); those of a
test with a capture of its own, from its capture (site_type()).
"""
import gc
import json
import os

from memlens.fmt import human_bytes, human_count, safe, table

_MAX_FRAMES = 64
_SHOW = 5  # stacks, types, sites shown in a failure message


class Limits:
    """The memlens markers of a test, checked. `error` is a one-line
    message when a marker is malformed (the test then fails with it)."""

    __slots__ = ("memory", "leaks", "allocations", "leaks_filter", "alive", "error")

    def __init__(self):
        self.memory = self.leaks = self.allocations = None
        self.leaks_filter = None
        self.alive = {}
        self.error = None

    @classmethod
    def of(cls, item):
        from memlens.integrations.pytest_plugin import parse_size
        lim = cls()
        try:
            m = item.get_closest_marker("limit_memory")
            if m:
                lim.memory = parse_size(_one_arg(m, "size"))
            m = item.get_closest_marker("limit_leaks")
            if m:
                size = m.args[0] if m.args else m.kwargs.get("location_limit", m.kwargs.get("size"))
                if size is None:
                    raise ValueError("limit_leaks needs a size, e.g. limit_leaks('1 MB')")
                lim.leaks = parse_size(size)
                lim.leaks_filter = m.kwargs.get("filter_fn")
                if lim.leaks_filter is not None and not callable(lim.leaks_filter):
                    raise ValueError("limit_leaks: filter_fn must be callable")
            m = item.get_closest_marker("limit_allocations")
            if m:
                n = _one_arg(m, "count")
                if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                    raise ValueError("limit_allocations takes a count of blocks, not %r" % (n,))
                lim.allocations = n
            m = item.get_closest_marker("limit_alive")
            if m:
                spec = _one_arg(m, "types")
                if not isinstance(spec, dict) or not spec:
                    raise ValueError("limit_alive takes a dict {type or type name: most alive}")
                for key, n in spec.items():
                    if not isinstance(key, (str, type)):
                        raise ValueError("limit_alive: %r is neither a class nor a type name" % (key,))
                    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                        raise ValueError("limit_alive: the limit of %r must be a count, not %r"
                                         % (key, n))
                lim.alive = dict(spec)
        except (ValueError, TypeError, IndexError) as e:
            lim.error = str(e)
        return lim

    @property
    def any(self):
        """A marker is given (the test runs under a capture of its own)."""
        return (self.memory is not None or self.leaks is not None or
                self.allocations is not None or bool(self.alive))

    @property
    def collect(self):
        """Leaks and alive objects are counted after a full collection."""
        return self.leaks is not None or bool(self.alive)


def _one_arg(marker, name):
    if marker.args:
        return marker.args[0]
    if len(marker.kwargs) == 1:
        return next(iter(marker.kwargs.values()))
    raise ValueError("%s needs one argument (%s)" % (marker.name, name))


# The run's counters: tests measured for the --memlens table alone (no
# marker, no --memlens-dir) share one tracker session of the process, with
# no capture file: the engine's counters (heap, peak, bytes and blocks
# allocated) read before and after each body give its figures. Starting and
# stopping a capture per test (a file, the sampler thread, the tables of
# stacks and types, the RSS figures) cost more than the test itself in
# suites of small tests. A test that needs a capture of its own (a marker,
# --memlens-dir) pauses the session; the next counted test restarts it.
_session = {"pid": None}


def session_start():
    """Start the run's counters session unless a capture runs (ours, or the
    process' own under `memlens run`)."""
    from memlens import _engine as eng
    if eng.active():
        return
    eng.start(None, False, "{}", 1, False, 10)
    _session["pid"] = os.getpid()


def session_stop():
    """Stop the counters session if this process started it."""
    from memlens import _engine as eng
    if _session["pid"] == os.getpid() and eng.active():
        eng.stop()
    _session["pid"] = None


class Run:
    """One test body, measured. begin() and end() run inside the test call
    (pytest_plugin._call); end() sets `figures` and `failures`. With a path
    the body runs under its own capture (written there); without one, under
    the run's counters session (figures only: no site, no type)."""

    __slots__ = ("nodeid", "path", "limits", "keep", "force", "figures", "failures", "pid",
                 "captured", "before", "c0", "c1", "window", "top")

    def __init__(self, nodeid, path, limits, keep, force=False):
        """keep: leave the capture file at path after end() (the plugin
        reads or removes it later); force: replace a file there."""
        self.nodeid, self.path, self.limits, self.keep = nodeid, path, limits, keep
        self.force = force
        self.figures = None
        self.failures = []
        self.pid = None
        self.captured = False
        self.before = None
        self.window = False
        self.top = None

    def begin(self, stop_code):
        from memlens import _engine as eng
        import array
        self.pid = os.getpid()
        if self.path is not None:
            session_stop()  # a capture of this test alone: the run's counters pause
        if self.limits.alive:
            from memlens.heap import heap
            gc.collect()
            self.before = heap(ids=True)
        if self.path is None:
            session_start()
        elif not eng.active():
            meta = json.dumps({"script": None, "argv": ["pytest", self.nodeid]})
            eng.start(self.path, self.force, meta, _MAX_FRAMES, False, 10,
                      stop_code=stop_code, exact=self.limits.collect)
            self.captured = True
        # else: a capture of the whole process runs (`memlens run -m pytest`):
        # the counters alone measure, without sites
        self.c0, self.c1 = array.array("q", bytes(32)), array.array("q", bytes(32))
        eng.reset_peak()
        eng.counters_into(self.c0)
        # counted by the run's session: the engine names the body's top
        # site and type (its window); opened last, so nothing of ours is in it
        self.window = self.path is None and _session["pid"] == self.pid
        if self.window:
            eng.window_begin()

    def end(self):
        from memlens import _engine as eng
        if os.getpid() != self.pid:
            return  # a child forked by the test: its parent measures
        eng.counters_into(self.c1)
        if self.limits.collect:
            gc.collect()
        after_heap = eng.counters()["heap"]
        if self.window:  # closed after the last counter read: its result is not the test's
            self.top = eng.window_end()
        if self.captured:
            eng.stop()
        after = None
        if self.limits.alive:
            from memlens.heap import heap
            after = heap(ids=True)
        try:
            self._analyse(after, after_heap)
        finally:
            if self.captured and not self.keep:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass

    # -- figures and limits --

    def _analyse(self, after, after_heap):
        from memlens import reports
        c0, c1, lim = self.c0, self.c1, self.limits
        # the figures from the counters (a new capture counts only the
        # blocks allocated since it started: the same numbers as the capture
        # file's reports); the sites and types at the peak are read from the
        # file only when needed (a broken limit, or the end table: site_type())
        fig = {"peak": max(c1[3] - c0[0], 0), "allocated": c1[1] - c0[1],
               "allocations": c1[2] - c0[2], "leaked": max(after_heap - c0[0], 0),
               "site": None, "type": None, "site_left": None, "type_left": None}
        top = self.top
        if top is not None:
            fig["site"], fig["type"] = top["site_allocated"], top["type_allocated"]
            fig["site_left"], fig["type_left"] = top["site_left"], top["type_left"]
        self.figures = fig
        data = tl = None
        broken = ((lim.memory is not None and fig["peak"] > lim.memory) or
                  (lim.allocations is not None and fig["allocations"] > lim.allocations))
        if self.captured and broken:
            data = reports.summary(self.path, top=_SHOW, progress=False)
            tl = reports.timeline(self.path, progress=False)
        if lim.memory is not None and fig["peak"] > lim.memory:
            self.failures.append(self._memory_failure(fig, data, tl))
        if lim.allocations is not None and fig["allocations"] > lim.allocations:
            self.failures.append(self._allocations_failure(fig, data))
        if lim.leaks is not None:
            text = self._leaks_failure(fig)
            if text:
                self.failures.append(text)
        if lim.alive:
            text = self._alive_failure(after)
            if text:
                self.failures.append(text)

    def _no_sites(self):
        return ("    (no sites: memlens was already recording this process, so the test "
                "was measured by the counters alone)")

    def _memory_failure(self, fig, data, tl):
        lines = ["memlens: the test allocated a peak of %s above its start; the limit is %s"
                 % (human_bytes(fig["peak"]), human_bytes(self.limits.memory))]
        if data is None:
            return "\n".join(lines + [self._no_sites()])
        lines.append("Top stacks at the peak:")
        lines.extend(_stack_lines(data["top_peak"]))
        if tl["top_types"]:
            lines.append("Top types at the peak:")
            lines.extend(_table_lines(["bytes", "blocks", "type"],
                                      [[human_bytes(t["bytes"]), human_count(t["blocks"]), t["type"]]
                                       for t in tl["top_types"][:_SHOW]]))
        return "\n".join(lines)

    def _allocations_failure(self, fig, data):
        lines = ["memlens: the test allocated %s blocks; the limit is %s"
                 % (human_count(fig["allocations"]), human_count(self.limits.allocations))]
        if data is None:
            return "\n".join(lines + [self._no_sites()])
        from memlens import reports
        lines.append("Top stacks by bytes allocated:")
        lines.extend(_stack_lines(data["top_allocated"]))
        types = reports.types(self.path, sort="allocs", top=_SHOW, progress=False)["types"]
        if types:
            lines.append("Top types by blocks allocated:")
            lines.extend(_table_lines(["blocks", "bytes", "type"],
                                      [[human_count(t["allocs"]), human_bytes(t["allocated_bytes"]),
                                        t["type"]] for t in types]))
        return "\n".join(lines)

    def _leaks_failure(self, fig):
        """limit_leaks, pytest-memray's semantics: per allocation stack (the
        whole stack, each frame with its line), the bytes allocated by the
        body and still allocated after it, after a full collection; stacks
        that filter_fn rejects are left out. The stacks are the nodes of the
        capture's call tree in its "end" view (the engine's)."""
        limit, keep = self.limits.leaks, self.limits.leaks_filter
        if not self.captured:
            if fig["leaked"] > limit:
                return "\n".join(["memlens: the test left %s allocated; the limit is %s"
                                  % (human_bytes(fig["leaked"]), human_bytes(limit)),
                                  self._no_sites()])
            return None
        from memlens import calltree
        tree = calltree.read(self.path, ("end",), progress=False)
        stacks = {}  # call-tree node -> its blocks still allocated
        for node, t, _thread, nbytes, count in tree.entries("end"):
            st = stacks.setdefault(node, {"bytes": 0, "count": 0, "types": {}})
            st["bytes"] += nbytes
            st["count"] += count
            st["types"][tree.types[t]] = st["types"].get(tree.types[t], 0) + nbytes
        over = []
        for node, st in stacks.items():
            if st["bytes"] <= limit and keep is None:
                continue
            frames = [{"function": f, "file": fn, "line": ln} for f, fn, ln in reversed(tree.path(node))]
            if keep is not None and not keep(Stack(frames)):
                continue
            if st["bytes"] > limit:
                over.append((st["bytes"], node, frames, st))
        if not over:
            return None
        over.sort(key=lambda x: (-x[0], x[1]))
        lines = ["memlens: %d allocation stack%s left more than %s allocated after the test:"
                 % (len(over), "" if len(over) == 1 else "s", human_bytes(limit))]
        for size, _, frames, st in over[:_SHOW]:
            types = ", ".join("%s %s" % (safe(t), human_bytes(b))
                              for t, b in sorted(st["types"].items(), key=lambda x: (-x[1], x[0]))[:3])
            lines.append("    %s in %s (%s)" % (human_bytes(size), _blocks(st["count"]), types))
            lines.extend("        " + _frame_text(f) for f in frames[:8])
            if not frames:
                lines.append("        <no Python stack>")
        if len(over) > _SHOW:
            lines.append("    ... and %d more stacks" % (len(over) - _SHOW))
        return "\n".join(lines)

    def _alive_failure(self, after):
        """limit_alive: objects made by the body (not in the snapshot taken
        before it) alive after it and a full collection, by type. A name
        matches the census name ('app.models.Session', 'dict') or, without a
        dot, the class name alone."""
        from memlens.heap import type_name
        wanted = self.limits.alive
        counts = {key: 0 for key in wanted}
        names = {}
        example = {}  # key -> one of its objects, to say what holds them
        for obj in after.new_objects(self.before):
            tp = type(obj)
            for key in wanted:
                if tp is key if isinstance(key, type) else _name_matches(key, tp, type_name):
                    counts[key] += 1
                    names.setdefault(key, set()).add(type_name(tp))
                    example.setdefault(key, obj)
        obj = None
        over = [(k, n) for k, n in counts.items() if n > wanted[k]]
        if not over:
            return None
        held = {key: _held_by(example[key]) for key, _ in over}
        example.clear()
        lines = []
        rows = None
        if self.captured:
            from memlens import reports
            rows = reports.leaks(self.path, progress=False)["leaks"]
        for key, n in over:
            label = type_name(key) if isinstance(key, type) else key
            lines.append("memlens: %s %s object%s made by the test %s alive after it; the limit is %s"
                         % (human_count(n), safe(label), "" if n == 1 else "s",
                            "is" if n == 1 else "are", human_count(wanted[key])))
            if held[key]:
                lines.append("    one of them is held by: %s" % held[key])
            if rows is None:
                lines.append(self._no_sites())
                continue
            sites = [r for r in rows if r["type"] in names.get(key, ())]
            if sites:
                lines.append("    allocated at:")
            for r in sites[:_SHOW]:
                lines.append("    %s %s %s at %s" % (human_count(r["count"]), safe(r["type"]),
                                                     "object" if r["count"] == 1 else "objects",
                                                     _site_text(r)))
                lines.extend("        " + _frame_text(f) for f in r["stack"][1:6])
        return "\n".join(lines)


def _held_by(obj):
    """The shortest reference path from a named root to obj, on one line
    ("module app.cache .ENTRIES [i]"), or None (memlens.why: docs/WHY.md)."""
    from memlens.why import why
    try:
        paths = why(obj, paths=1).paths
    except Exception:  # the report must not fail for the picture's sake
        return None
    if not paths:
        return None
    return " ".join([safe(paths[0].root)] + [safe(e) for e in paths[0].edges])


def _top(pairs):
    """The key with the most bytes of (key, bytes) pairs summed by key, or
    None (ties: the smallest key)."""
    sums = {}
    for key, n in pairs:
        sums[key] = sums.get(key, 0) + n
    best = min(sums.items(), key=lambda kv: (-kv[1], kv[0]), default=(None, 0))
    return best[0] if best[1] > 0 else None


def site_type(path):
    """The table's four names for a test's capture, as the session's window
    gives them: {site, type} by bytes allocated, {site_left, type_left} by
    bytes still allocated at its end."""
    from memlens import reports
    data = reports.summary(path, top=50, progress=False)
    types = reports.types(path, sort="bytes", top=1, progress=False)["types"]
    leaks = reports.leaks(path, progress=False)["leaks"]
    return {"site": _top((_site_text(r), r["bytes"]) for r in data["top_allocated"] if r["stack"]),
            "type": types[0]["type"] if types and types[0]["allocated_bytes"] else None,
            "site_left": _top((_site_text(r), r["bytes"]) for r in leaks if r["stack"]),
            "type_left": _top((r["type"], r["bytes"]) for r in leaks)}


def _name_matches(key, tp, type_name):
    name = type_name(tp)
    return name == key or ("." not in key and tp.__name__ == key)


class Frame:
    """One frame of a leak's stack for limit_leaks' filter_fn (innermost
    first), with the attribute names of pytest-memray's frames."""
    __slots__ = ("function", "filename", "lineno")

    def __init__(self, d):
        self.function, self.filename, self.lineno = d["function"], d["file"], d["line"]

    def __repr__(self):
        return "Frame(%r, %r, %d)" % (self.function, self.filename, self.lineno)


class Stack:
    """The allocation stack given to limit_leaks' filter_fn: `frames`,
    innermost first. filter_fn returns True to count the leak."""
    __slots__ = ("frames",)

    def __init__(self, frames):
        self.frames = tuple(Frame(f) for f in frames)


def _blocks(n):
    return "%s block%s" % (human_count(n), "" if n == 1 else "s")


def _site_text(row):
    return safe("%s:%d (%s)" % (row["file"], row["line"], row["function"]))


def _frame_text(f):
    return safe("%s:%d in %s" % (f["file"], f["line"], f["function"]))


def _stack_lines(rows):
    out = []
    for r in rows[:_SHOW]:
        out.append("    %s in %s" % (human_bytes(r["bytes"]), _blocks(r["count"])))
        out.extend("        " + _frame_text(f) for f in r["stack"][:8])
    return out


class _Text:
    """A file-like sink for fmt.table: the text, then its lines."""

    __slots__ = ("parts",)

    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)

    def lines(self):
        return "".join(self.parts).rstrip("\n").split("\n")


def _table_lines(headers, rows):
    out = _Text()
    table(headers, rows, align="rrl", out=out)
    return ["    " + line for line in out.lines()]


def increase(peak, previous):
    return ("memlens: the test's peak grew from %s to %s since the previous run "
            "(--memlens-fail-on-increase)" % (human_bytes(previous), human_bytes(peak)))


_SORT_KEYS = {"peak": "peak", "allocated": "allocated", "leaked": "leaked",
              "allocations": "allocations"}


def table_rows(results, top, sort):
    key = _SORT_KEYS[sort]
    items = sorted(results.items(), key=lambda kv: (-kv[1][key], kv[0]))
    return items[:top] if top else items


def table_text(results, top, sort):
    """The --memlens end table as lines. Its site and type columns rank by
    bytes allocated by the body, or with --memlens-sort leaked by bytes the
    body left allocated."""
    rows = table_rows(results, top, sort)
    left = sort == "leaked"
    skey, tkey = ("site_left", "type_left") if left else ("site", "type")
    out = _Text()
    out.write("memlens: %d test%s measured; the top %d by %s (test bodies only, fixtures "
              "excluded); site and type: the line and the type %s\n"
              % (len(results), "" if len(results) == 1 else "s", len(rows), sort,
                 "holding the most bytes left allocated" if left else "that allocated the most bytes"))
    table(["test", "peak", "allocated", "blocks", "leaked",
           "top site (left)" if left else "top site (allocated)",
           "top type (left)" if left else "top type (allocated)"],
          [[safe(nodeid), human_bytes(f["peak"]), human_bytes(f["allocated"]),
            human_count(f["allocations"]), human_bytes(f["leaked"]),
            safe(f.get(skey) or "-"), safe(f.get(tkey) or "-")] for nodeid, f in rows],
          align="lrrrrll", out=out)
    return out.lines()


def print_table(terminalreporter, results, top, sort):
    terminalreporter.write_sep("=", "memlens")
    for line in table_text(results, top, sort):
        terminalreporter.write_line(line)


# memlens never counts itself: a census taken by a measured test
# (memlens.heap()) skips the plugin's objects that live while it runs
# (heap.py's Snapshot does the same; the engine takes 8 such types in all)
def _own_types():
    from memlens.integrations.pytest_plugin import _own_type
    for tp in (Limits, Run):
        _own_type(tp)


_own_types()
