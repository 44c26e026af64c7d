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
    p.add_argument("file", help="capture file written by `memlens run`")
    p.add_argument("--sort", choices=sorted(reports.TYPE_SORTS), default="allocs",
                   help="allocs (default), alive (at the end), peak (most alive at once), "
                        "bytes (allocated in total)")
    p.add_argument("--top", type=_common.count_arg, default=25, metavar="N",
                   help="rows (default 25; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args):
    data = reports.types(args.file, sort=args.sort, top=args.top)
    reports.print_warnings(data, sys.stderr)
    if args.json:
        fmt.dump_json(data["types"])
    else:
        reports.print_types(data, args.sort)
    return 0
