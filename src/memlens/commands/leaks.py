"""memlens leaks: what was still allocated when the program ended."""
import sys

from memlens import fmt, reports
from memlens.commands import _common


def add_parser(sub):
    p = sub.add_parser("leaks", help="blocks still allocated at the end, by site and type",
                       description="The blocks still allocated when the program ended, grouped "
                                   "by site (innermost Python line) and object type, biggest "
                                   "first.")
    _common.add_capture(p)
    _common.add_top(p, 20)
    p.add_argument("--stacks", action="store_true",
                   help="after each table, the full stack of each site (the stack holding the "
                        "most of its bytes); the JSON always has it")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args):
    data = reports.leaks(args.capture, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(reports.report_json(data, args.capture,
                                          ("end_bytes", "end_count", "groups", "leaks", "heap_at_exit")))
    else:
        reports.print_leaks(data, stacks=args.stacks)
    return 0
