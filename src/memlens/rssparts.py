"""Where the resident memory goes: memlens.rss() in a running process, and
the breakdown a capture recorded (`memlens rss FILE`, the summary section).

The figures come from the engine (csrc/capture/rsssample.c measures,
csrc/analysis/rss.c makes the parts); this module only names and prints them.
See docs/RSS.md.
"""
import sys

from memlens import fmt

# The parts, in the engine's order, with what each is in a report.
PARTS = [
    ("pymalloc_used", "Python objects in pymalloc's arenas"),
    ("pymalloc_free", "pymalloc arenas: free space and fragmentation"),
    ("traced_c_heap", "traced blocks in the C heap (buffers, objects > 512 B, NumPy data)"),
    ("native_traced", "native heap traced with --native"),
    ("c_heap_untraced", "C heap in use, not traced (extensions, interpreter, memlens)"),
    ("c_heap_free", "C allocator: free and fragmented space"),
    ("file_backed", "code and libraries (file-backed and shared pages)"),
    ("thread_stacks", "thread stacks"),
    ("memlens_tables", "memlens' own tables (event ring, block map)"),
    ("unexplained", "unexplained"),
]


def _engine():
    from memlens import _engine
    return _engine


class Breakdown(dict):
    """One breakdown: `rss` (bytes, as /proc/self/smaps_rollup says), `parts`
    ({name: bytes}, adding up to `rss`), `fields` (the raw measurements)."""

    def __repr__(self):
        return "<memlens.rss RSS %s: %s>" % (
            fmt.human_bytes(self["rss"]),
            ", ".join("%s %s" % (k, fmt.human_bytes(v))
                      for k, v in self["parts"].items() if v))

    def __str__(self):
        return "\n".join(lines(self))


def _breakdown(sample):
    return Breakdown(rss=sample["fields"]["rss"], time_s=sample["time_s"],
                     parts=dict(sample["parts"]), fields=dict(sample["fields"]))


def rss():
    """Where this process' RSS goes now: a dict with `rss`, `parts` (adding
    up to it) and `fields`. With a capture running, the traced heap is
    split out of the C heap. Linux only (reads /proc/self)."""
    try:
        return _breakdown(_engine().rss_now())
    except OSError as exc:
        raise OSError("memlens.rss() needs /proc/self/smaps_rollup (Linux 4.14+): %s" % exc) from None


def lines(b, indent="  "):
    """Text lines of one breakdown: each part, its bytes and share."""
    total = b["rss"] or 1
    out = []
    width = max(len(label) for _, label in PARTS)
    for key, label in PARTS:
        v = b["parts"].get(key, 0)
        if not v and key in ("native_traced",):
            continue
        out.append("%s%s  %10s  %5.1f%%" % (indent, label.ljust(width), fmt.human_bytes(v),
                                            100.0 * v / total))
    out.append("%s%s  %10s" % (indent, "RSS (smaps_rollup)".ljust(width), fmt.human_bytes(b["rss"])))
    return out


def from_capture(path, max_points=2000, progress=None, arena_pct=25, arena_top=10):
    """The breakdown series of a capture: {"points": [...], "peak", "end",
    "samples", "truncated", "arenas"}, each sample a Breakdown (None when
    the capture has no RSS_SAMPLE records: made before format version 2 or
    too short). "arenas": the pymalloc arenas live at the end and the
    (site, type) groups in those used at most arena_pct % (at most
    arena_top groups, 0 = all); docs/RSS.md "Arenas kept by few objects"."""
    from memlens import reports
    return from_raw(reports._read("rss_report", path, progress, 1, max_points, arena_pct, arena_top))


def from_raw(raw):
    """from_capture's result, from the engine's rss_report dict (also what
    read_summary(..., rss_points=N) puts under "rss": one pass for both)."""
    return {"points": [_breakdown(p) for p in raw["points"]],
            "peak": _breakdown(raw["peak"]) if raw["peak"] else None,
            "end": _breakdown(raw["end"]) if raw["end"] else None,
            "samples": raw["samples"], "truncated": raw["truncated"],
            "arenas": raw["arenas"]}


def to_json(b):
    """A breakdown as the JSON of `memlens rss --json` (docs/REPORTS.md)."""
    if b is None:
        return None
    return {"time_s": b["time_s"], "rss_bytes": b["rss"],
            "parts": {k: b["parts"].get(k, 0) for k, _ in PARTS}, "fields": b["fields"]}


def print_section(data, file=None):
    """The "Where the RSS goes" section (summary and `memlens rss`)."""
    out = file or sys.stdout
    if data["peak"] is None:
        print("Where the RSS goes: no RSS samples in this capture.", file=out)
        return
    for title, b in (("at the RSS peak", data["peak"]), ("at the end", data["end"])):
        print("Where the RSS goes %s (%s):" % (title, fmt.human_seconds(b["time_s"])), file=out)
        for line in lines(b):
            print(line, file=out)


def print_arenas(a, file=None):
    """The "Arenas kept by few objects" section of `memlens rss`."""
    out = file or sys.stdout
    if not a["arenas"]:
        print("Arenas kept by few objects: no arena records in this capture "
              "(made before this version, or pymalloc is not the allocator).", file=out)
        return
    m = a["mostly_empty"]
    print("Arenas kept by few objects (used <= %d%%): %s of %s live pymalloc arenas at the end"
          % (a["threshold_pct"], "{:,}".format(m["arenas"]), "{:,}".format(a["arenas"])), file=out)
    if not m["arenas"]:
        return
    print("  they hold %s resident for %s used (%s in %s recorded blocks)"
          % (fmt.human_bytes(m["resident"]), fmt.human_bytes(m["used"]), fmt.human_bytes(m["bytes"]),
             "{:,}".format(m["blocks"])), file=out)
    if not a["groups"]:
        return
    fmt.table(["Blocks", "Bytes", "Arenas", "Type", "Site"],
              [["{:,}".format(g["blocks"]), fmt.human_bytes(g["bytes"]), "{:,}".format(g["arenas"]),
                g["type"], "%s:%d %s" % (fmt.short_path(g["file"]), g["line"], g["function"])]
               for g in a["groups"]], align="rrrll", out=out)
    if a["groups_total"] > len(a["groups"]):
        print("  ... %s more (site, type) groups" % "{:,}".format(a["groups_total"] - len(a["groups"])),
              file=out)
