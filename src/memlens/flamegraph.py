"""The flame graph page: one self-contained HTML file per capture.

The data come from the engine (C): the call tree of every view
(_engine.read_calltree: peak, end, allocated, temporary), the held bytes per
time bucket for the time slider (_engine.read_temporal, analysis/temporal.h)
and the heap/RSS series of `memlens plot` (_engine.timeline). This module
only packs them into the page's compact JSON (docs/FLAMEGRAPH.md, "Page
data") and fills templates/flamegraph.{html,js,css}; the page's own script
draws the graph on a canvas (no network, no CDN, no code of another project).

Every string comes from the capture: it goes into the page only as JSON
inside <script> (memlens.escape.script_json) and the page puts it into the
DOM as text.

    data = flamegraph.page_data(path)             # dict, the page's DATA
    html = flamegraph.render_html(path)           # str, the page
    flamegraph.write(path, "out.html", force=False)
    FlameGraph(path)                              # shown inline in a notebook
"""
import os
from importlib import resources

from memlens import escape, outfile, plot, reports

VIEWS = ("peak", "end", "allocated", "temporary")
BUCKETS = 128
SOURCE_MAX = 200  # characters of a source line kept in the page
# nodes holding less than this share of every view are merged into their caller
MERGE_BELOW = 1e-5
# the type of what small (node, type) rows hold once merged
OTHER_TYPES = "(small rows of other types)"
TIME_MERGE = 10
# steps of the time data kept per (node, type), biggest first (about 20 bytes each)
TIME_STEPS = 60000
# leak groups whose holder the page carries, biggest first (about 150 bytes each)
HOLDERS_MAX = 5000


def _calltree(path, views, temporary_n, progress):
    from memlens import calltree
    return calltree.read(path, views, temporary_n=temporary_n, progress=progress)


def _source(file, line):
    """The text of a source line for a frame's tooltip: only from a regular
    .py file (a capture names any path; a page must not carry lines of other
    files that happen to exist here)."""
    import linecache
    if line <= 0 or not file.endswith(".py") or not os.path.isfile(file):
        return ""
    return linecache.getline(file, line).strip()[:SOURCE_MAX]


class _Packer:
    """Strings, frames, nodes and types of the page, deduplicated."""

    def __init__(self):
        self.S, self.s_index = [], {}
        self.F, self.f_index = [], {}
        self.P, self.NF, self.n_index = [-1], [-1], {}
        self.types, self.t_index = [], {}
        self.native = set()  # nstacks: frames that are native
        self.page_native = []  # ... and their indexes in the page (_compact)

    def string(self, s):
        i = self.s_index.get(s)
        if i is None:
            i = self.s_index[s] = len(self.S)
            self.S.append(s)
        return i

    def frame(self, function, file, line, native=0):
        k = (function, file, line, native)
        i = self.f_index.get(k)
        if i is None:
            i = self.f_index[k] = len(self.F) // 3
            self.F += [self.string(function), self.string(file), line]
            if native:  # nstacks: a C function of a --native-stacks capture
                self.native.add(i)
        return i

    def node(self, parent, frame):
        k = (parent, frame)
        i = self.n_index.get(k)
        if i is None:
            i = self.n_index[k] = len(self.P)
            self.P.append(parent)
            self.NF.append(frame)
        return i

    def type(self, name):
        i = self.t_index.get(name)
        if i is None:
            i = self.t_index[name] = len(self.types)
            self.types.append(name)
        return i

    def tree(self, frames, nodes):
        """Map a tree's (frames, nodes) tables to the page's: node index list."""
        native = frames.get("native") or [0] * len(frames["function"])
        fmap = [self.frame(fn, fl, ln, nat)
                for fn, fl, ln, nat in zip(frames["function"], frames["file"], frames["line"], native)]
        out = [0] * len(nodes["parent"])
        for i, (parent, frame) in enumerate(zip(nodes["parent"], nodes["frame"])):
            if i:
                out[i] = self.node(out[parent], fmap[frame])
        return out


def _warnings(ct):
    """The capture's warnings, as every report gives them (truncated first)."""
    out = [reports.TRUNCATED_WARNING] if ct.get("truncated") else []
    try:
        out += reports._warnings(ct)
    except (KeyError, TypeError):
        pass
    return out


def _view_label(view, ct, temporary_n):
    if view == "peak":
        return "held at the peak (%.3f s)" % (ct.get("peak_time_us", 0) / 1e6)
    if view == "end":
        return "still allocated at the end"
    if view == "allocated":
        return "allocated in total"
    return "temporary: freed before %d more allocation%s on the thread" % (
        temporary_n, "" if temporary_n == 1 else "s")


def _keep(P, views, merge_below):
    """Nodes to keep: those holding at least merge_below of some view's
    total (closed under ancestors: a parent holds what its children hold)."""
    n = len(P)
    keep = bytearray(n)
    keep[0] = 1
    for rows in views.values():
        tot = [0] * n
        for node, _, _, b, _ in rows:
            tot[node] += b
        for i in range(n - 1, 0, -1):
            tot[P[i]] += tot[i]
        limit = max(tot[0] * merge_below, 1)
        for i in range(1, n):
            if tot[i] >= limit:
                keep[i] = 1
    return keep


def _compact(pk, views, steps, merge_below):
    """(S, F, P, NF, views, steps) with the small nodes merged into their
    nearest kept ancestor and everything renumbered; rows summed again."""
    P, NF = pk.P, pk.NF
    keep = _keep(P, views, merge_below) if merge_below > 0 else bytearray([1]) * len(P)
    target, new_index = [0] * len(P), {0: 0}
    nP, nNF, fmap, S, F, smap = [-1], [-1], {}, [], [], {}

    def string(i):
        if i not in smap:
            smap[i] = len(S)
            S.append(pk.S[i])
        return smap[i]

    for i in range(1, len(P)):
        if not keep[i]:
            target[i] = target[P[i]]
            continue
        f = NF[i]
        if f not in fmap:
            fmap[f] = len(F) // 3
            F.extend((string(pk.F[3 * f]), string(pk.F[3 * f + 1]), pk.F[3 * f + 2]))
            if f in pk.native:  # nstacks
                pk.page_native.append(fmap[f])
        target[i] = new_index[i] = len(nP)
        nP.append(new_index[P[i]])
        nNF.append(fmap[f])

    def budget(acc, limit):
        """Time steps: the (node, type) groups that reach limit at some
        bucket keep their own steps, biggest first, while their steps fit
        in TIME_STEPS; the others join the OTHER group of their nearest
        ancestor among the kept groups' nodes (or of the root)."""
        groups = {}
        for (a, b, c), (nb, nc) in sorted(acc.items()):
            g = groups.setdefault((a, b), [0, 0, 0])
            g[0] += 1
            g[1] += nb
            g[2] = max(g[2], g[1])
        kept, used = set(), 0
        for key, (n, _, top) in sorted(groups.items(), key=lambda kv: -kv[1][2]):
            if top < limit or used + n > TIME_STEPS:
                break
            kept.add(key)
            used += n
        knodes, up = {a for a, _ in kept} | {0}, {}

        def ancestor(a):
            seen = []
            while a not in knodes and a not in up:
                seen.append(a)
                a = nP[a]
            r = up.get(a, a)
            for x in seen:
                up[x] = r
            return r

        merged = {}
        for (a, b, c), v in acc.items():
            key = (a, b, c) if (a, b) in kept else (ancestor(a), other, c)
            m = merged.get(key)
            if m is None:
                merged[key] = list(v)
            else:
                m[0] += v[0]
                m[1] += v[1]
        return merged

    def regroup(rows, limit=0, held=False):
        """Rows summed by (node, type, thread or bucket). Then the (node,
        type) groups under limit bytes (for steps: whose held bytes never
        reach it) become the node's OTHER row: a node keeps one row per
        type only for the types that matter there."""
        acc = {}
        for a, b, c, nb, nc in rows:
            key = (target[a], b, c)
            v = acc.get(key)
            if v is None:
                acc[key] = [nb, nc]
            else:
                v[0] += nb
                v[1] += nc
        if held and limit > 0:
            acc = budget(acc, limit)
        elif limit > 0:
            size = {}
            for (a, b, c), (nb, nc) in sorted(acc.items()):
                size[(a, b)] = size.get((a, b), 0) + nb
            small = {k for k, v in size.items() if v < limit}
            if small:
                merged = {}
                for (a, b, c), v in acc.items():
                    key = (a, other, c) if (a, b) in small else (a, b, c)
                    m = merged.get(key)
                    if m is None:
                        merged[key] = list(v)
                    else:
                        m[0] += v[0]
                        m[1] += v[1]
                acc = merged
        out = []
        for (a, b, c), (nb, nc) in sorted(acc.items()):
            if nb or nc:
                out.extend((a, b, c, nb, nc))
        return out

    other = pk.type(OTHER_TYPES) if merge_below > 0 else -1
    totals = {v: sum(x[3] for x in r) for v, r in views.items()}
    out_views = {v: regroup(r, totals[v] * merge_below) for v, r in views.items()}
    # the time data are coarser: a (node, type) must reach TIME_MERGE times
    # the threshold of the peak view at some bucket to keep its own steps,
    # and at most TIME_STEPS steps are kept that way
    out_steps = regroup(steps, totals.get("peak", 0) * merge_below * TIME_MERGE, held=True)
    return S, F, nP, nNF, out_views, out_steps, fmap


def _holders(path, progress):
    """What holds each leak group (site, type), from the capture's heap at
    exit records (`memlens run --heap-at-exit`, --heap-on or
    memlens.snapshot_now()): for the tooltips of the "end"
    view, the HOLDERS_MAX biggest groups. [] without such records, whatever
    the capture's options say. Strings go into the page as JSON only
    (escape.script_json)."""
    data = reports.leaks(path, top=HOLDERS_MAX, progress=progress)
    if not data.get("heap_at_exit"):
        return []
    out = []
    for r in data["leaks"]:
        h = r.get("holder")
        if not h:
            continue
        out.append({"function": r["function"], "file": r["file"], "line": r["line"],
                    "type": r["type"], "count": r["count"], "held": h["count"],
                    "path": reports.holder_text(h), "retained": h.get("retained") or 0})
    return out


def page_data(path, view="peak", inverted=False, source=True, temporary_n=1, buckets=BUCKETS,
              merge_below=MERGE_BELOW, progress=None):
    """The page's DATA (dict of JSON-able values) for the capture at path.
    Nodes holding less than merge_below of every view's total are merged
    into their caller (0: keep all)."""
    if view not in VIEWS:
        raise ValueError("unknown view %r" % view)
    tree = _calltree(path, VIEWS, temporary_n, progress)
    ct = tree.raw
    tl = reports.timeline(path, progress=progress)
    tp = reports._read("read_temporal", path, progress, 2, buckets)
    pk = _Packer()
    ct_nodes = pk.tree(ct["frames"], ct["nodes"])
    ct_types = [pk.type(t) for t in ct["types"]]
    thread_names = [tree.thread_label(i) for i in range(len(tree.thread_ids))]
    views = {}
    for v in VIEWS:
        t = ct["views"][v]
        views[v] = [(ct_nodes[n], ct_types[ty], th, b, c)
                    for n, ty, th, b, c in zip(t["node"], t["type"], t["thread"], t["bytes"], t["count"])]
    tp_nodes = pk.tree(tp["frames"], tp["nodes"])
    tp_types = [pk.type(t) for t in tp["types"]]
    sp = tp["steps"]
    steps = [(tp_nodes[n], tp_types[ty], k, b, c)
             for n, ty, k, b, c in zip(sp["node"], sp["type"], sp["bucket"], sp["bytes"], sp["count"])]
    S, F, P, NF, rows, steps, _ = _compact(pk, views, steps, merge_below)
    w = tp["width_us"]
    temporal = {"edges": [b * w / 1e6 for b in range(len(tp["top"]) + 1)], "top": tp["top"],
                "top_t": [t / 1e6 for t in tp["top_time_us"]], "steps": steps}
    holders = _holders(path, progress)
    chart = plot.chart_data(tl)
    src = None
    if source:
        src = [_source(S[F[3 * i + 1]], F[3 * i + 2]) for i in range(len(F) // 3)]
    return {
        "title": chart["title"], "S": S, "F": F, "SRC": src, "P": P, "NF": NF,
        "types": pk.types, "threads": thread_names, "default_view": view,
        "views": {v: {"label": _view_label(v, ct, temporary_n), "rows": rows[v]} for v in VIEWS},
        "inverted": bool(inverted), "temporal": temporal, "chart": chart,
        "merge_below": merge_below, "merged_nodes": len(pk.P) - len(P), "warnings": _warnings(ct),
        "NATIVE": sorted(pk.page_native),  # nstacks: native frames (coloured apart)
        "holders": holders,
    }


def diff_data(before, after, view="peak", inverted=False, source=True, temporary_n=1,
              merge_below=MERGE_BELOW, progress=None):
    """The page's DATA for a differential flame graph: widths are AFTER's
    bytes, colours the change from BEFORE on the same call path (frames
    matched by function, file and line). No time ranges, no threads (the
    two captures' threads are not the same)."""
    if view not in VIEWS:
        raise ValueError("unknown view %r" % view)
    trees = [_calltree(p, VIEWS, temporary_n, progress).raw for p in (before, after)]
    tl = reports.timeline(after, progress=progress)
    pk = _Packer()
    views = {}
    for name, ct in zip(("base:", ""), trees):
        nodes = pk.tree(ct["frames"], ct["nodes"])
        types = [pk.type(t) for t in ct["types"]]
        for v in VIEWS:
            t = ct["views"][v]
            views[name + v] = [(nodes[n], types[ty], -1, b, c)
                               for n, ty, b, c in zip(t["node"], t["type"], t["bytes"], t["count"])]
    S, F, P, NF, rows, _, _ = _compact(pk, views, [], merge_below)
    chart = plot.chart_data(tl)
    src = [_source(S[F[3 * i + 1]], F[3 * i + 2]) for i in range(len(F) // 3)] if source else None
    return {
        "title": "%s -> %s" % (before, after), "S": S, "F": F, "SRC": src, "P": P, "NF": NF,
        "types": pk.types, "threads": [], "default_view": view, "diff": True,
        "views": {v: {"label": _view_label(v, trees[1], temporary_n), "rows": rows[v],
                      "base": rows["base:" + v]} for v in VIEWS},
        "inverted": bool(inverted), "temporal": None, "chart": chart,
        "merge_below": merge_below, "merged_nodes": len(pk.P) - len(P),
        "warnings": ["BEFORE: " + w for w in _warnings(trees[0])] + ["AFTER: " + w for w in _warnings(trees[1])],
        "NATIVE": sorted(pk.page_native),  # nstacks
    }


def _template(name):
    return resources.files("memlens").joinpath("templates/" + name).read_text("utf-8")


def render_page(data):
    """The page (str) for page_data()'s dict."""
    return escape.fill(_template("flamegraph.html"), TITLE=escape.text(data["title"]),
                       CSS=escape.Markup(_template("flamegraph.css")),
                       JS=escape.Markup(_template("flamegraph.js")), DATA=escape.script_json(data))


def render_html(path, view="peak", inverted=False, source=True, temporary_n=1, progress=False):
    """The flame graph page of the capture at path, as a str (for notebooks:
    IPython.display.HTML(render_html(path)))."""
    return render_page(page_data(path, view, inverted, source, temporary_n, progress=progress))


def iframe(page, height=900):
    """A page (render_page/render_html) wrapped for inline display in a
    notebook: an <iframe srcdoc> (its ids, style and script stay apart from
    the notebook's and from other outputs), scripts allowed, nothing else."""
    return ('<iframe srcdoc="%s" sandbox="allow-scripts" style="width: 100%%; height: %dpx; '
            'border: 1px solid #ddd"></iframe>' % (escape.attr(page), int(height)))


class FlameGraph:
    """The flame graph of a capture, shown inline by IPython/Jupyter:

        from memlens.flamegraph import FlameGraph
        FlameGraph("prog.mlens")            # the last expression of a cell
    """

    def __init__(self, path, **options):
        self.path, self.options = path, options

    def _repr_html_(self):
        return iframe(render_html(self.path, **self.options))


def write(path_in, path_out, force=False, **options):
    """Write the page of path_in to path_out (a new file: memlens.outfile);
    returns the page data."""
    data = page_data(path_in, **options)
    outfile.write(path_out, render_page(data).encode("utf-8"), force)
    return data


def summary_line(data):
    """What `memlens flamegraph` prints after writing the page."""
    peak = data["chart"]["peak"]
    return "%s stacks, %s frames; peak %s at %.3f s" % (
        "{:,}".format(len(data["P"]) - 1), "{:,}".format(len(data["F"]) // 3),
        "{:,} bytes".format(peak["heap"]), peak["t"])


__all__ = ["page_data", "render_page", "render_html", "iframe", "FlameGraph", "write", "VIEWS"]
