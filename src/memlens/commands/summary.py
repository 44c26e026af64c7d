"""memlens summary: peak, totals and the sites holding memory, from a capture."""
import sys

from memlens import fmt, reports
from memlens.commands import _common


def add_parser(sub):
    p = sub.add_parser("summary", help="peak heap, totals and top sites of a capture",
                       description="Duration, peak heap and when it happened, total allocated "
                                   "bytes and count, heap at the end, and the sites (innermost "
                                   "Python lines) holding the most memory at the peak, "
                                   "allocating the most, and still holding memory at the end.")
    p.add_argument("file", help="capture file written by `memlens run`")
    p.add_argument("--top", type=_common.count_arg, default=10, metavar="N",
                   help="sites per list (default 10; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args):
    data = reports.summary(args.file, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(data)
    else:
        reports.print_summary(data, args.file)
    return 0
