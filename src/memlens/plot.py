"""Memory over time: traced heap and RSS from a capture, as SVG or HTML.

The data come from the C timeline (analysis/timeline.h): the MEMORY samples
(every 10 ms), the MARK brackets of @memlens.profile calls, the exact peak
of the traced heap with the site that held most of it, and the collections
of the garbage collector (GC_START/GC_STOP: a mark per collection, styled by
generation, its pause as a band where it is wide enough to see). Both outputs are
self-contained (no network, no external script): the SVG is drawn here; the
HTML page (templates/plot.html) draws the same chart with a little inline
JavaScript that adds hover values and zoom on a time range.

Every string drawn comes from the capture (names, argv, marks): it goes into
the page only through memlens.escape, for its context (SVG text, JSON in
the page's script); the page's script puts it into the DOM as text.
"""
import json
import os
from importlib import resources

from memlens import escape, outfile
from memlens.fmt import human_bytes

MARK_ENTER, MARK_EXIT = 1, 2


def load(path):
    """The timeline dict of a capture (see memlens._engine.timeline)."""
    from memlens import reports
    return reports.timeline(path)


def brackets(tl):
    """Pair ENTER/EXIT marks (by label, nested) into [label, t0_us, t1_us]."""
    open_, out = {}, []
    for t, kind, label in tl["marks"]:
        if kind == MARK_ENTER:
            open_.setdefault(label, []).append(t)
        elif kind == MARK_EXIT and open_.get(label):
            out.append([label, open_[label].pop(), t])
    for label, starts in open_.items():
        out.extend([label, t0, tl["end_us"]] for t0 in starts)
    out.sort(key=lambda b: (b[1], b[2]))
    return out


# rss: the RSS breakdown drawn as stacked bands under the lines (docs/RSS.md)
BANDS = [("file_backed", "#c7c7c7"), ("thread_stacks", "#dbdb8d"), ("memlens_tables", "#f7b6d2"),
         ("c_heap_free", "#ff9896"), ("c_heap_untraced", "#c49c94"), ("native_traced", "#98df8a"),
         ("traced_c_heap", "#aec7e8"), ("pymalloc_free", "#ffbb78"), ("pymalloc_used", "#9edae5")]


def rss_bands(path):
    """{"t": [s], key: [bytes]} of the capture's RSS samples (None when it
    has none): the bands of the plot."""
    from memlens import rssparts
    data = rssparts.from_capture(path, max_points=1000)
    if not data["points"]:
        return None
    out = {"t": [b["time_s"] for b in data["points"]]}
    for key, _ in BANDS:
        out[key] = [max(b["parts"].get(key, 0), 0) for b in data["points"]]
    out["colors"] = [[key, color] for key, color in BANDS]
    return out


def chart_data(tl, bands=None):
    """Everything the HTML page needs, as plain JSON-able data."""
    peak = tl["peak"]
    site = None
    if peak["function"]:
        site = "%s:%d (%s)" % (os.path.basename(peak["file"]), peak["line"], peak["function"])
    meta = {}
    try:
        meta = json.loads(tl.get("meta") or "{}")
    except (ValueError, RecursionError):
        pass
    argv = meta.get("argv") if isinstance(meta, dict) else None
    title = " ".join(map(str, argv)) if isinstance(argv, list) else ""
    return {
        "t": [p[0] / 1e6 for p in tl["points"]],
        "rss": [p[1] for p in tl["points"]],
        # the highest traced heap in each sampling interval (exact, from the
        # events), so a peak between two samples shows in the line
        "heap": list(tl.get("heap_max") or [p[2] for p in tl["points"]]),
        "heap_sampled": [p[2] for p in tl["points"]],
        "brackets": [[b[0], b[1] / 1e6, b[2] / 1e6] for b in brackets(tl)],
        "peak": {"t": peak["time_us"] / 1e6, "heap": peak["heap"], "site": site,
                 "site_bytes": peak["site_bytes"]},
        "end": tl["end_us"] / 1e6,
        "title": title or "memlens capture",
        "bands": bands,
        "gcs": gc_marks(tl),
        "gcs_dropped": tl.get("gcs_dropped", 0),
    }


def gc_marks(tl):
    """The collections of a timeline as [start_s, pause_s, generation,
    collected, uncollectable, complete], in time order (the C timeline
    pairs the records and bounds the list)."""
    return [[g[0] / 1e6, (g[1] - g[0]) / 1e6, g[2], g[3], g[4], bool(g[5])]
            for g in tl.get("gcs") or []]


# gc: how each generation's mark is drawn (stroke dash pattern; "" = solid)
GC_COLOR = "#9467bd"
GC_DASH = {0: "1,3", 1: "4,3", 2: ""}


def gc_label(g):
    """The hover text of one collection mark (plain text)."""
    text = "collection, generation %d: pause %.3f ms, collected %d" % (g[2], g[1] * 1e3, g[3])
    if g[4]:
        text += ", uncollectable %d" % g[4]
    if not g[5]:
        text += " (incomplete: start or stop not recorded)"
    return text


def _nice_step(span, n):
    """A round step (1, 2, 5 x 10^k) giving about n ticks over span."""
    import math
    if span <= 0:
        return 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _byte_step(top, n):
    """Tick step for a byte axis: a round number of B/KiB/MiB/GiB."""
    unit = 1
    while top / unit >= 1024 * 2 and unit < 1024 ** 4:
        unit *= 1024
    return _nice_step(top / unit, n) * unit


def render_svg(data, width=960, height=480):
    """The chart as a standalone SVG document (str)."""
    left, right, top, bottom = 80, 20, 40, 50
    pw, ph = width - left - right, height - top - bottom
    t_end = max([data["end"]] + data["t"] + [1e-3])
    band_top = [sum(v) for v in zip(*[data["bands"][k] for k, _ in data["bands"]["colors"]])] \
        if data.get("bands") else []
    y_top = max(data["rss"] + data["heap"] + band_top + [data["peak"]["heap"], 1]) * 1.1

    def x(t):
        return left + pw * t / t_end

    def y(v):
        return top + ph * (1 - v / y_top)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (width, height, width, height),
           '<title>%s</title>' % escape.text(data["title"]),
           '<rect width="100%" height="100%" fill="white"/>']
    # brackets of @memlens.profile calls, as mprof plot draws them
    for i, (label, t0, t1) in enumerate(data["brackets"]):
        out.append('<rect class="bracket" x="%.2f" y="%d" width="%.2f" height="%d" fill="#2ca02c" '
                   'fill-opacity="0.12"><title>%s: %.3f s</title></rect>'
                   % (x(t0), top, max(x(t1) - x(t0), 1), ph, escape.text(label), t1 - t0))
        out.append('<text x="%.2f" y="%d" fill="#2ca02c">%s</text>'
                   % (x(t0) + 2, top + 12 + 12 * (i % 3), escape.text(label.split(" (")[0])))
    # axes and grid
    step = _byte_step(y_top, 5)
    v = 0
    while v <= y_top:
        out.append('<line x1="%d" x2="%d" y1="%.2f" y2="%.2f" stroke="#ddd"/>' % (left, left + pw, y(v), y(v)))
        out.append('<text x="%d" y="%.2f" text-anchor="end">%s</text>' % (left - 6, y(v) + 4, human_bytes(int(v))))
        v += step
    ts = _nice_step(t_end, 8)
    t = 0.0
    while t <= t_end + 1e-9:
        out.append('<line x1="%.2f" x2="%.2f" y1="%d" y2="%d" stroke="#999"/>' % (x(t), x(t), top + ph, top + ph + 5))
        out.append('<text x="%.2f" y="%d" text-anchor="middle">%g</text>' % (x(t), top + ph + 18, round(t, 6)))
        t += ts
    out.append('<text x="%d" y="%d" text-anchor="middle">time (s)</text>' % (left + pw // 2, height - 8))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (left, top, pw, ph))
    bands = data.get("bands")
    if bands:  # rss: stacked parts of the RSS, bottom up
        base = [0] * len(bands["t"])
        for key, color in bands["colors"]:
            upper = [b + v for b, v in zip(base, bands[key])]
            pts = ["%.2f,%.2f" % (x(tt), y(vv)) for tt, vv in zip(bands["t"], upper)]
            pts += ["%.2f,%.2f" % (x(tt), y(vv)) for tt, vv in reversed(list(zip(bands["t"], base)))]
            out.append('<polygon class="rss-band" fill="%s" fill-opacity="0.6" stroke="none" points="%s">'
                       '<title>%s</title></polygon>' % (color, " ".join(pts), escape.text(key)))
            base = upper
    for name, color in (("rss", "#ff7f0e"), ("heap", "#1f77b4")):
        pts = " ".join("%.2f,%.2f" % (x(tt), y(vv)) for tt, vv in zip(data["t"], data[name]))
        out.append('<polyline id="%s-line" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>'
                   % (name, color, pts))
    for g in data.get("gcs") or []:  # gc: one mark per collection, its pause as a band
        gx, gw = x(g[0]), x(g[0] + g[1]) - x(g[0])
        if gw >= 1:
            out.append('<rect class="gc-pause" x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" '
                       'fill-opacity="0.25"/>' % (gx, top, gw, ph, GC_COLOR))
        dash = GC_DASH[min(g[2], 2)]
        out.append('<line class="gc-mark" data-generation="%d" x1="%.2f" x2="%.2f" y1="%d" y2="%d" '
                   'stroke="%s"%s><title>%s</title></line>'
                   % (g[2], gx, gx, top, top + ph, GC_COLOR,
                      ' stroke-dasharray="%s"' % dash if dash else "", escape.text(gc_label(g))))
    peak = data["peak"]
    if peak["heap"]:
        label = "peak %s" % human_bytes(peak["heap"])
        if peak["site"]:
            label += " - top site %s: %s" % (peak["site"], human_bytes(peak["site_bytes"]))
        anchor = "end" if x(peak["t"]) > left + pw / 2 else "start"
        out.append('<circle id="peak" cx="%.2f" cy="%.2f" r="4" fill="#d62728"/>' % (x(peak["t"]), y(peak["heap"])))
        out.append('<text x="%.2f" y="%.2f" fill="#d62728" text-anchor="%s">%s</text>'
                   % (x(peak["t"]) + (-6 if anchor == "end" else 6), y(peak["heap"]) - 6, anchor, escape.text(label)))
    out.append('<text x="%d" y="20" font-size="14">%s</text>' % (left, escape.text(data["title"])))
    out.append('<text x="%d" y="20" text-anchor="end"><tspan fill="#1f77b4">&#9632; traced heap</tspan> '
               '<tspan fill="#ff7f0e">&#9632; RSS</tspan>%s</text>'
               % (left + pw, ' <tspan fill="%s">| collections</tspan>' % GC_COLOR if data.get("gcs") else ""))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_html(data):
    """The interactive page (str): data inlined as JSON, script inlined."""
    template = resources.files("memlens").joinpath("templates/plot.html").read_text("utf-8")
    return escape.fill(template, TITLE=escape.text(data["title"]), DATA=escape.script_json(data))


def render(tl, path_out, bands=None):
    """(chart data, page bytes) of a capture's timeline (load()), as SVG if
    path_out ends in .svg, else as HTML; bands: rss_bands() or None."""
    data = chart_data(tl, bands)
    text = render_svg(data) if path_out.lower().endswith(".svg") else render_html(data)
    return data, text.encode("utf-8")


def write(path_in, path_out, force=False):
    """Render the capture at path_in to path_out (.svg or .html), a new file
    (memlens.outfile.create: O_EXCL; force replaces a file or a link)."""
    data, page = render(load(path_in), path_out, rss_bands(path_in))
    outfile.write(path_out, page, force)
    return data
