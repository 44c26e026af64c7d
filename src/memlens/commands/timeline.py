"""memlens timeline CAPTURE: the memory series (time, RSS, traced heap)."""
import csv
import os
import sys

from memlens.errors import UsageError
from memlens.fmt import dump_json, human_bytes, human_seconds, table


def add_parser(sub):
    p = sub.add_parser("timeline", help="memory over time as CSV, JSON or a short text summary",
                       description="The samples the tracker took every 10 ms: time, RSS and "
                       "traced heap; with the exact peak and the @memlens.profile brackets.")
    p.add_argument("capture", help="capture file written by `memlens run`")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true",
                     help="CSV: time_s,rss_bytes,heap_bytes,heap_max_bytes, one row per sample "
                          "(heap_max: the highest traced heap since the previous sample)")
    fmt.add_argument("--json", action="store_true", help="series, brackets and peak as JSON")
    p.set_defaults(func=run)


def run(args):
    from memlens import plot
    if not os.path.exists(args.capture):
        raise UsageError("no such capture file: %s" % args.capture)
    try:
        tl = plot.load(args.capture)
    except ValueError as exc:
        raise UsageError("%s: %s" % (args.capture, exc))
    if args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["time_s", "rss_bytes", "heap_bytes", "heap_max_bytes"])
        for (t, rss, heap), top in zip(tl["points"], tl["heap_max"]):
            w.writerow(["%.6f" % (t / 1e6), rss, heap, top])
        return 0
    brackets = plot.brackets(tl)
    if args.json:
        dump_json({"points": [{"time_s": t / 1e6, "rss": rss, "heap": heap, "heap_max": top}
                              for (t, rss, heap), top in zip(tl["points"], tl["heap_max"])],
                   "brackets": [{"label": l, "start_s": a / 1e6, "end_s": b / 1e6}
                                for l, a, b in brackets],
                   "peak": dict(tl["peak"], time_s=tl["peak"]["time_us"] / 1e6),
                   "end_s": tl["end_us"] / 1e6, "truncated": tl["truncated"]})
        return 0
    pts, peak = tl["points"], tl["peak"]
    print("%d samples over %s." % (len(pts), human_seconds(tl["end_us"] / 1e6)))
    if pts:
        print("Traced heap: max sampled %s; RSS: max %s."
              % (human_bytes(max(p[2] for p in pts)), human_bytes(max(p[1] for p in pts))))
    if peak["heap"]:
        site = ("%s:%d (%s) held %s" % (peak["file"], peak["line"], peak["function"],
                                        human_bytes(peak["site_bytes"]))
                if peak["function"] else "no Python site")
        print("Exact peak of the traced heap: %s at %.3f s; top site %s."
              % (human_bytes(peak["heap"]), peak["time_us"] / 1e6, site))
    if brackets:
        print()
        table(["Function", "Start", "End", "Duration"],
              [[l, "%.3f s" % (a / 1e6), "%.3f s" % (b / 1e6), human_seconds((b - a) / 1e6)]
               for l, a, b in brackets])
    return 0
