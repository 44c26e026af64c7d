"""memlens summary: peak, totals and the sites holding memory, from a capture."""
import sys

from memlens import fmt, reports, rssparts
from memlens.commands import _common

JSON_KEYS = ("peak_bytes", "peak_time_s", "allocated_bytes", "allocations", "frees", "end_bytes",
             "end_count", "duration_s", "top_peak", "top_allocated", "top_end", "rss", "gc",
             "garbage_at_exit")


def add_parser(sub):
    p = sub.add_parser("summary", help="peak heap, totals and top sites of a capture",
                       description="Duration, peak heap and when it happened, total allocated "
                                   "bytes and count, heap at the end, and the sites (innermost "
                                   "Python lines) holding the most memory at the peak, "
                                   "allocating the most, and still holding memory at the end.")
    _common.add_capture(p)
    _common.add_top(p, 10, "sites per list")
    p.add_argument("--stacks", action="store_true",
                   help="after each table, the full stack of each site (the stack holding the "
                        "most of its bytes); the JSON always has it")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args):
    # rss: the RSS breakdown section, read in the same pass as the summary
    data = reports.summary(args.capture, top=args.top, rss_points=2)
    rss = data.pop("rss_series")
    reports.print_warnings(data, sys.stderr)
    data["rss"] = {"peak": rssparts.to_json(rss["peak"]), "end": rssparts.to_json(rss["end"])}
    if args.json:
        fmt.dump_json(reports.report_json(data, args.capture, JSON_KEYS))
    else:
        reports.print_summary(data, args.capture, stacks=args.stacks)
        if rss["peak"] is not None:
            print()
            rssparts.print_section(rss)
    return 0
