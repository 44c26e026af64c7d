"""memlens timeline CAPTURE: the memory series (time, RSS, traced heap)."""
import csv
import sys

from memlens import reports
from memlens.commands import _common
from memlens.fmt import dump_json, human_bytes, human_seconds, safe, table


def add_parser(sub):
    p = sub.add_parser("timeline", help="memory over time as CSV, JSON or a short text summary",
                       description="The samples the tracker took (every 10 ms, or run's "
                       "--interval): time, RSS and traced heap; with the exact peak and the "
                       "@memlens.profile brackets.")
    _common.add_capture(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true",
                     help="CSV: time_s,rss_bytes,heap_bytes,heap_max_bytes, one row per sample "
                          "(heap_max: the highest traced heap since the previous sample)")
    fmt.add_argument("--json", action="store_true",
                     help="one JSON object: the samples (same fields as the CSV), brackets, peak")
    p.set_defaults(func=run)


def run(args):
    tl = reports.timeline(args.capture)
    if tl["truncated"]:
        sys.stderr.write("warning: %s\n" % reports.TRUNCATED_WARNING)
    if args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["time_s", "rss_bytes", "heap_bytes", "heap_max_bytes"])
        for (t, rss, heap), top in zip(tl["points"], tl["heap_max"]):
            w.writerow(["%.6f" % (t / 1e6), rss, heap, top])
        return 0
    doc = reports.timeline_json(tl, args.capture)
    if args.json:
        dump_json(doc)
        return 0
    pts, peak = tl["points"], doc["peak"]
    print("%s samples over %s." % ("{:,}".format(len(pts)), human_seconds(doc["duration_s"])))
    if pts:
        print("Traced heap: max sampled %s; RSS: max %s."
              % (human_bytes(max(p[2] for p in pts)), human_bytes(max(p[1] for p in pts))))
    if peak["bytes"]:
        s = peak["site"]
        site = ("%s:%d (%s) held %s" % (safe(reports.display_path(s["file"])), s["line"],
                                        safe(s["function"]), human_bytes(s["bytes"]))
                if s else "no Python site")
        print("Exact peak of the traced heap: %s at %.3f s; top site %s."
              % (human_bytes(peak["bytes"]), peak["time_s"], site))
    if doc["brackets"]:
        print()
        table(["Function", "Start", "End", "Duration"],
              [[b["label"], "%.3f s" % b["start_s"], "%.3f s" % b["end_s"],
                human_seconds(b["end_s"] - b["start_s"])] for b in doc["brackets"]])
    return 0
