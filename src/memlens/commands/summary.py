"""memlens summary: peak, totals and the sites holding memory, from a capture."""
import sys

from memlens import fmt, reports
from memlens.commands import _common

JSON_KEYS = ("peak_bytes", "peak_time_s", "allocated_bytes", "allocations", "frees", "end_bytes",
             "end_count", "duration_s", "top_peak", "top_allocated", "top_end", "gc")


def add_parser(sub):
    p = sub.add_parser("summary", help="peak heap, totals and top sites of a capture",
                       description="Duration, peak heap and when it happened, total allocated "
                                   "bytes and count, heap at the end, and the sites (innermost "
                                   "Python lines) holding the most memory at the peak, "
                                   "allocating the most, and still holding memory at the end.")
    _common.add_capture(p)
    _common.add_top(p, 10, "sites per list")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args):
    data = reports.summary(args.capture, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(reports.report_json(data, args.capture, JSON_KEYS))
    else:
        reports.print_summary(data, args.capture)
    return 0
