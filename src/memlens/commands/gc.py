"""memlens gc: the collector's collections, pauses and the garbage it freed."""
import sys

from memlens import fmt, reports
from memlens.commands import _common

JSON_KEYS = ("has_records", "duration_s", "collections", "incomplete", "generations", "pauses",
             "garbage_bytes", "garbage_blocks", "garbage_groups", "uncollectable", "longest",
             "garbage", "gc_garbage")


def add_parser(sub):
    p = sub.add_parser("gc", help="collections, pauses and cyclic garbage by site and type",
                       description="The cyclic garbage collector in a capture: collections per "
                                   "generation; pauses (count, total, share of the run, p50, "
                                   "p99, max, and the longest ones with the site that triggered "
                                   "them); and the garbage it freed (objects freed by the "
                                   "collector, not by reference counting) by allocation site and "
                                   "type.")
    _common.add_capture(p)
    _common.add_top(p, 10, "rows per list")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _site(s):
    return {"function": s["function"], "file": s["file"], "line": s["line"]}


def gc_report(path, top=10, progress=None):
    """`memlens gc --json`'s fields, with the capture facts (as reports.summary)."""
    raw = reports._read("read_gc", path, progress, 1, top)
    info = reports.meta(path)
    return {
        "has_records": raw["has_records"],
        "duration_s": raw["duration_us"] / 1e6,
        "collections": raw["collections"],
        "incomplete": raw["incomplete"],
        "generations": [{"generation": g["generation"], "collections": g["collections"],
                         "collected": g["collected"], "uncollectable": g["uncollectable"],
                         "pause_s": g["pause_us"] / 1e6} for g in raw["generations"]],
        "pauses": {"count": raw["pauses"], "total_s": raw["pause_total_us"] / 1e6,
                   "share": (raw["pause_total_us"] / raw["duration_us"]) if raw["duration_us"] else 0.0,
                   "p50_s": raw["pause_p50_us"] / 1e6, "p99_s": raw["pause_p99_us"] / 1e6,
                   "max_s": raw["pause_max_us"] / 1e6},
        "garbage_bytes": raw["freed_bytes"],
        "garbage_blocks": raw["freed_blocks"],
        "garbage_groups": raw["garbage_groups"],
        "uncollectable": raw["uncollectable"],
        "longest": [{"time_s": c["start_us"] / 1e6, "pause_s": c["pause_us"] / 1e6,
                     "generation": c["generation"], "collected": c["collected"],
                     "uncollectable": c["uncollectable"], "freed_bytes": c["freed_bytes"],
                     "freed_blocks": c["freed_blocks"], "site": _site(c["site"])}
                    for c in raw["longest"]],
        "garbage": [{"function": r["function"], "file": r["file"], "line": r["line"],
                     "type": r["type"], "count": r["count"], "bytes": r["bytes"]}
                    for r in raw["garbage"]],
        # gcexit: what collections put into gc.garbage (UNCOLLECTABLE records)
        "gc_garbage": _gc_garbage(raw),
        "truncated": raw["truncated"],
        "warnings": [],
        "python": info.get("python"),
        "argv": info.get("argv"),
    }


def _gc_garbage(raw):
    """gcexit: the objects collections appended to gc.garbage, by (site,
    type); None when the capture does not record them."""
    if not raw["uncollectable_recorded"]:
        return None
    return {"bytes": raw["uncollectable_bytes"], "blocks": raw["uncollectable_blocks"],
            "groups": raw["uncollectable_groups"],
            "rows": [{"function": r["function"], "file": r["file"], "line": r["line"],
                      "type": r["type"], "count": r["count"], "bytes": r["bytes"]}
                     for r in raw["uncollectable_rows"]]}


def _print_gc_garbage(data, out):
    g = data["gc_garbage"]
    if not g:
        return
    out.write("\nuncollectable (gc.garbage) by type and line: %s in %s blocks\n"
              % (fmt.human_bytes(g["bytes"]), fmt.human_count(g["blocks"])))
    fmt.table(["bytes", "blocks", "type", "function", "location"],
              [[fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), r["type"],
                r["function"], reports.location(r)] for r in g["rows"]],
              align="rrlll", out=out)


def _ms(s):
    return "%.3f ms" % (s * 1000)


def print_gc(data, out=None):
    out = out or sys.stdout
    if not data["has_records"]:
        out.write("no collections recorded in this capture (it was made before memlens recorded "
                  "them, with MEMLENS_NO_GC_RECORD set, or the program cleared gc.callbacks or "
                  "ran none: docs/GC.md)\n")
        return
    p = data["pauses"]
    out.write("collections: %s (%s incomplete)\n" % (fmt.human_count(data["collections"]),
                                                      fmt.human_count(data["incomplete"])))
    out.write("pauses: %s, total %s (%.2f%% of %s), p50 %s, p99 %s, max %s\n"
              % (fmt.human_count(p["count"]), _ms(p["total_s"]), 100 * p["share"],
                 fmt.human_seconds(data["duration_s"]), _ms(p["p50_s"]), _ms(p["p99_s"]),
                 _ms(p["max_s"])))
    out.write("freed by the collector: %s in %s blocks; uncollectable objects: %s\n\n"
              % (fmt.human_bytes(data["garbage_bytes"]), fmt.human_count(data["garbage_blocks"]),
                 fmt.human_count(data["uncollectable"])))
    fmt.table(["generation", "collections", "collected", "uncollectable", "pause"],
              [[g["generation"], fmt.human_count(g["collections"]), fmt.human_count(g["collected"]),
                fmt.human_count(g["uncollectable"]), _ms(g["pause_s"])]
               for g in data["generations"]], align="rrrrr", out=out)
    if data["longest"]:
        out.write("\nlongest pauses:\n")
        fmt.table(["time", "pause", "gen", "collected", "freed", "triggered at"],
                  [["%.3f s" % c["time_s"], _ms(c["pause_s"]), c["generation"],
                    fmt.human_count(c["collected"]), fmt.human_bytes(c["freed_bytes"]),
                    "%s %s" % (c["site"]["function"], reports.location(c["site"]))]
                   for c in data["longest"]], align="rrrrrl", out=out)
    if data["garbage"]:
        out.write("\ncyclic garbage freed by the collector, by allocation site and type:\n")
        fmt.table(["bytes", "blocks", "type", "function", "location"],
                  [[fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), r["type"],
                    r["function"], reports.location(r)] for r in data["garbage"]],
                  align="rrlll", out=out)
    _print_gc_garbage(data, out)  # gcexit


def run(args):
    data = gc_report(args.capture, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(reports.report_json(data, args.capture, JSON_KEYS))
    else:
        print_gc(data)
    return 0
