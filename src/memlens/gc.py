"""The garbage collector in the running process: memlens.cycles(),
memlens.gc_stats(), memlens.start_gc_recording().

The work is done by the engine (csrc/heap/cycles.c, csrc/capture/gcrec.c);
these are the API objects around its results. docs/GC.md is the manual.
"""
from memlens import escape, fmt


def _engine():
    from memlens import _engine
    return _engine


def _basename(path):
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _shorten(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


class CycleGroup:
    """Unreachable islands whose objects have the same set of types.

    types: [(type name, objects, bytes)], most objects first; islands: how
    many separate islands of garbage; objects, bytes: their totals;
    nodes/edges: one example cycle of the group, as (type name, label,
    address) nodes and (from, to) index pairs (a ring: each node refers to
    the next); sites: where the group's objects were allocated, [{type,
    function, file, line, count}], most objects first (under `memlens run`
    only: else []); node_sites: each node's {function, file, line}, or None.
    """

    def __init__(self, raw):
        self.types = [tuple(t) for t in raw["types"]]
        self.islands = raw["islands"]
        self.objects = raw["objects"]
        self.bytes = raw["bytes"]
        self.nodes = [tuple(n[:3]) for n in raw["nodes"]]
        self.node_sites = [n[3] if len(n) > 3 else None for n in raw["nodes"]]
        self.edges = [tuple(e) for e in raw["edges"]]
        self.sites = [dict(s) for s in raw.get("sites", [])]

    @property
    def key(self):
        """The sorted type names of the group."""
        return tuple(sorted(name for name, _, _ in self.types))

    def count(self, type_name):
        """Objects of the type named `type_name` in the group (0 if none)."""
        return sum(n for name, n, _ in self.types if name == type_name)

    def lines(self):
        """[(file, line, objects)]: the group's allocation lines, most
        objects first (every type of the group counted together)."""
        count = {}
        for s in self.sites:
            key = (s["file"], s["line"])
            count[key] = count.get(key, 0) + s["count"]
        return sorted(((f, ln, n) for (f, ln), n in count.items()), key=lambda r: (-r[2], r[0], r[1]))

    def _node_text(self, i, site=False):
        name, label, _addr = self.nodes[i]
        where = self.node_sites[i]
        text = "%s %s" % (name, label) if label else name
        if site and where:
            text += " @ %s:%d" % (_basename(where["file"]), where["line"])
        return text

    def to_dot(self):
        """The example cycle as a Graphviz digraph (text)."""
        def q(s):
            s = escape.printable(s)
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        lines = ["digraph cycle {", "  node [shape=box, fontname=monospace];"]
        for i in range(len(self.nodes)):
            lines.append("  n%d [label=%s];" % (i, q(self._node_text(i, site=True))))
        for a, b in self.edges:
            lines.append("  n%d -> n%d;" % (a, b))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_svg(self, size=360):
        """The example cycle as an SVG picture: its nodes on a ring, an arrow
        from each object to the one it refers to."""
        import math
        n = len(self.nodes)
        cx = cy = size / 2
        radius = 0 if n == 1 else size / 2 - 70
        pos = [(cx + radius * math.cos(2 * math.pi * i / n - math.pi / 2),
                cy + radius * math.sin(2 * math.pi * i / n - math.pi / 2)) for i in range(n)]
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'viewBox="0 0 %d %d" font-family="monospace" font-size="11">' % (size, size, size, size),
               '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
               'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z"/></marker></defs>']
        for a, b in self.edges:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            if a == b:  # a self reference: a loop above the node
                out.append('<path d="M%.1f,%.1f c-30,-45 30,-45 0,-12" fill="none" stroke="#555" '
                           'marker-end="url(#a)"/>' % (x1, y1 - 12))
                continue
            dx, dy = x2 - x1, y2 - y1
            dist = math.hypot(dx, dy) or 1
            sx, sy = x1 + dx / dist * 14, y1 + dy / dist * 14
            ex, ey = x2 - dx / dist * 14, y2 - dy / dist * 14
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" '
                       'marker-end="url(#a)"/>' % (sx, sy, ex, ey))
        for i, (x, y) in enumerate(pos):
            out.append('<circle cx="%.1f" cy="%.1f" r="12" fill="#fde2c8" stroke="#a65"/>' % (x, y))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>'
                       % (x, y + 26, escape.text(_shorten(self._node_text(i), 40))))
            where = self.node_sites[i]
            if where:
                out.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#666">%s</text>'
                           % (x, y + 39, escape.text(_shorten("%s:%d" % (
                               escape.printable(_basename(where["file"])), where["line"]), 40))))
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def __repr__(self):
        return "<CycleGroup %s: %d islands, %d objects, %d bytes>" % (
            "/".join(self.key), self.islands, self.objects, self.bytes)


class Cycles:
    """What memlens.cycles() returns: the groups, biggest first."""

    def __init__(self, raw, of=False):
        self.of = of  # the result of cycles(obj): one component, reachable or not
        self.examined = raw["examined"]
        self.objects = raw["objects"]
        self.bytes = raw["bytes"]
        self.groups = [CycleGroup(g) for g in raw["groups"]]
        # under `memlens run` the groups have their allocation lines; else
        # lines_note says why not
        self.lines = raw.get("lines", False)
        self.lines_note = raw.get("lines_note")

    def __iter__(self):
        return iter(self.groups)

    def __len__(self):
        return len(self.groups)

    def count(self, type_name):
        """Unreachable objects of the type named `type_name`, all groups."""
        return sum(g.count(type_name) for g in self.groups)

    def to_json(self):
        return {"objects": self.objects, "bytes": self.bytes, "examined": self.examined,
                "lines": self.lines, "lines_note": self.lines_note,
                "groups": [{"types": [{"type": t, "objects": n, "bytes": b} for t, n, b in g.types],
                            "islands": g.islands, "objects": g.objects, "bytes": g.bytes,
                            "sites": [dict(s) for s in g.sites]}
                           for g in self.groups]}

    def __str__(self):
        rows = [[fmt.human_count(g.islands), fmt.human_count(g.objects), fmt.human_bytes(g.bytes),
                 ", ".join("%s x%d" % (t, n) for t, n, _ in g.types)] for g in self.groups]
        if self.lines:
            for row, g in zip(rows, self.groups):
                row.append(_made_at(g))
        what = "cycles through the object" if self.of else "unreachable now"
        head = ("%s: %s objects, %s in %d groups (of %s objects examined)\n"
                % (what, fmt.human_count(self.objects), fmt.human_bytes(self.bytes),
                   len(self.groups), fmt.human_count(self.examined)))
        if self.lines_note:
            head += "(%s)\n" % fmt.safe(self.lines_note)
        if not rows:
            return head
        import io
        buf = io.StringIO()
        if self.lines:
            fmt.table(["islands", "objects", "bytes", "types", "made at"], rows, align="rrrll", out=buf)
        else:
            fmt.table(["islands", "objects", "bytes", "types"], rows, align="rrrl", out=buf)
        return head + buf.getvalue()

    __repr__ = __str__


_MADE_AT_TOP = 3  # lines shown per group in the text


def _made_at(group):
    """'made at file:line (N)' for a group's top lines (N only when the group
    comes from more than one line)."""
    lines = group.lines()
    if not lines:
        return "-"
    shown = ["%s:%d" % (fmt.short_path(f, 40), ln) + (" (%d)" % n if len(lines) > 1 else "")
             for f, ln, n in lines[:_MADE_AT_TOP]]
    more = " +%d more lines" % (len(lines) - _MADE_AT_TOP) if len(lines) > _MADE_AT_TOP else ""
    return "made at " + ", ".join(shown) + more


def cycles(obj=None):
    """The cyclic garbage that exists now, without collecting it: the objects
    the next full collection would find unreachable, grouped by the types in
    each island. With `obj`: the cycles obj is part of (its strongly
    connected component), garbage or not."""
    if obj is None:
        return Cycles(_engine().cycles())
    return Cycles(_engine().cycles(obj), of=True)


def start_gc_recording():
    """Record every collection from now on (memlens run does it already)."""
    _engine().gc_start_recording()


def stop_gc_recording():
    """End start_gc_recording(); gc.callbacks is left as the program has it."""
    _engine().gc_stop_recording()


def gc_stats():
    """Collections per generation, objects collected, and pauses (count,
    total, p50, p99, max, in seconds) since the recording began: under
    `memlens run`, or after start_gc_recording()."""
    raw = _engine().gc_stats()
    elapsed = raw["elapsed_ns"] / 1e9
    total = raw["pause_total_ns"] / 1e9
    return {
        "recording": raw["recording"],
        "generations": [{"generation": g["generation"], "collections": g["collections"],
                         "collected": g["collected"], "uncollectable": g["uncollectable"],
                         "pause_s": g["pause_ns"] / 1e9} for g in raw["generations"]],
        "pauses": raw["pauses"],
        "pause_total_s": total,
        "pause_p50_s": raw["pause_p50_ns"] / 1e9,
        "pause_p99_s": raw["pause_p99_ns"] / 1e9,
        "pause_max_s": raw["pause_max_ns"] / 1e9,
        "elapsed_s": elapsed,
        "pause_share": total / elapsed if elapsed else 0.0,
    }
