"""memlens leaks: what was still allocated when the program ended."""
import sys

from memlens import fmt, reports
from memlens.commands import _common


def add_parser(sub):
    p = sub.add_parser("leaks", help="blocks still allocated at the end, by site and type",
                       description="The blocks still allocated when the program ended, grouped "
                                   "by site (innermost Python line) and object type, biggest "
                                   "first.")
    p.add_argument("file", help="capture file written by `memlens run`")
    p.add_argument("--top", type=_common.count_arg, default=20, metavar="N",
                   help="rows (default 20; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args):
    data = reports.leaks(args.file, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(data["leaks"])
    else:
        reports.print_leaks(data)
    return 0
