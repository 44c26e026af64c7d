"""memlens rss CAPTURE: where the resident memory went, at the RSS peak, at
the end and over time, and the arenas kept by few objects (docs/RSS.md)."""
import sys

from memlens import fmt, reports
from memlens import rssparts as rssmod
from memlens.commands import _common


def add_parser(sub):
    p = sub.add_parser("rss", help="where the RSS went: parts that add up to it",
                       description="The resident memory (RSS, as /proc/self/smaps_rollup "
                       "reports it) split into parts that add up to it: Python objects in "
                       "pymalloc's arenas, the arenas' free space, traced blocks in the C heap, "
                       "the C heap not traced and its free space, code and libraries, thread "
                       "stacks, memlens' own tables, and what is left (unexplained). At the "
                       "RSS peak, at the end, and over time (sampled every 10th memory sample). "
                       "Then the pymalloc arenas that are mostly empty at the end and the "
                       "(site, type) groups of the objects keeping them (\"my RSS never goes "
                       "down\").")
    _common.add_capture(p)
    _common.add_top(p, 10, "samples in the over-time table, and (site, type) groups in "
                    "\"arenas kept by few objects\"")
    p.add_argument("--arena-threshold", type=_percent, default=25, metavar="PCT",
                   help="an arena is mostly empty when at most PCT%% of it is in allocated "
                   "blocks (0-50, default 25)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object: peak, end, the series and the arenas (docs/REPORTS.md)")
    p.set_defaults(func=run)


def _percent(text):
    import argparse
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole percentage: %r" % text) from None
    if not 0 <= v <= 50:
        raise argparse.ArgumentTypeError("must be 0-50 (the capture lists the blocks of arenas "
                                         "at most 50%% used), not %d" % v)
    return v


def run(args):
    data = rssmod.from_capture(args.capture, arena_pct=args.arena_threshold, arena_top=args.top)
    if data["truncated"]:
        sys.stderr.write("warning: %s\n" % reports.TRUNCATED_WARNING)
    if args.json:
        fmt.dump_json(reports.envelope(
            reports.capture_info(args.capture, data["truncated"]),
            samples=data["samples"], peak=rssmod.to_json(data["peak"]),
            end=rssmod.to_json(data["end"]),
            points=[rssmod.to_json(b) for b in data["points"]], arenas=data["arenas"]))
        return 0
    rssmod.print_section(data)
    pts = data["points"]
    if len(pts) > 1:
        n = len(pts) if args.top == 0 else min(args.top, len(pts))
        pick = sorted({round(i * (len(pts) - 1) / max(n - 1, 1)) for i in range(n)})
        keys = [("pymalloc_used", "pymalloc used"), ("pymalloc_free", "pymalloc free"),
                ("traced_c_heap", "traced C heap"), ("native_traced", "native"),
                ("c_heap_untraced", "C untraced"),
                ("c_heap_free", "C free"), ("file_backed", "files"), ("unexplained", "unexplained")]
        print()
        print("Over time (%d of %s samples):" % (len(pick), "{:,}".format(data["samples"])))
        fmt.table(["Time", "RSS"] + [k[1] for k in keys],
                  [[fmt.human_seconds(pts[i]["time_s"]), fmt.human_bytes(pts[i]["rss"])]
                   + [fmt.human_bytes(pts[i]["parts"][k]) for k, _ in keys] for i in pick])
    print()
    rssmod.print_arenas(data["arenas"])
    return 0
