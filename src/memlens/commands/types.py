"""memlens types: allocations, frees and alive objects per type (the COUNT_ALLOCS table)."""
import sys

from memlens import fmt, reports
from memlens.commands import _common


def add_parser(sub):
    p = sub.add_parser("types", help="objects allocated, freed and alive per type",
                       description="For each object type: objects allocated, freed, the most "
                                   "alive at any time, alive at the end, their bytes at the "
                                   "end and the bytes allocated in total (what CPython's "
                                   "COUNT_ALLOCS build printed), on a stock interpreter.")
    _common.add_capture(p)
    p.add_argument("--sort", choices=sorted(reports.TYPE_SORTS), default="allocs",
                   help="allocs (default), alive (at the end), peak (most alive at once), "
                        "bytes (allocated in total)")
    _common.add_top(p, 25)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args):
    data = reports.types(args.capture, sort=args.sort, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(reports.report_json(data, args.capture,
                                          ("ntypes", "allocations", "reuses", "types")))
    else:
        reports.print_types(data, args.sort)
    return 0
