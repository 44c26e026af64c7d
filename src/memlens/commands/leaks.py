"""memlens leaks: what was still allocated when the program ended, and
which of it was cyclic garbage the collector had not freed yet."""
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
                                          ("end_bytes", "end_count", "groups", "leaks", "heap_at_exit",
                                           "owners_at_exit", "garbage_at_exit")))
    else:
        reports.print_leaks(data, stacks=args.stacks)
        print_garbage(data)
    return 0


# ---- gcexit: garbage at exit vs still referenced ----

def print_garbage(data, file=None):
    """The split of the groups into garbage not yet collected at exit
    (unreachable cycles, and what only they hold) and still referenced."""
    out = file or sys.stdout
    total = data.get("garbage_at_exit")
    rows = data["leaks"]
    if total is None or not rows:
        return
    if not total["blocks"]:
        print("\nNo garbage at exit: every block above was still referenced (a gc.collect() "
              "would have freed none).", file=out)
        return
    print("\nGarbage not yet collected at exit*: %s in %s blocks; still referenced: %s in %s blocks"
          % (fmt.human_bytes(total["bytes"]), fmt.human_count(total["blocks"]),
             fmt.human_bytes(data["end_bytes"] - total["bytes"]),
             fmt.human_count(data["end_count"] - total["blocks"])), file=out)
    split = [r for r in rows if r.get("garbage_blocks")]
    if split:
        fmt.table(["garbage bytes", "garbage blocks", "referenced blocks", "type", "function", "location"],
                  [[fmt.human_bytes(r["garbage_bytes"]), fmt.human_count(r["garbage_blocks"]),
                    fmt.human_count(r["count"] - r["garbage_blocks"]), r["type"], r["function"],
                    reports.location(r)] for r in split], align="rrrlll", out=out)
    print("* unreachable reference cycles (and what only they hold) that the collector had not "
          "freed when the program ended: a gc.collect() would have freed them. The other blocks "
          "were still referenced.", file=out)

