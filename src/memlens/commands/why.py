"""memlens why: what holds one leak group alive, from a capture's heap at exit."""
import sys

from memlens import fmt, reports
from memlens.commands import _common
from memlens.errors import UsageError


def add_parser(sub):
    p = sub.add_parser("why", help="what holds the blocks of one leak group (type or site)",
                       description="The paths from a named root (a module's global, a thread's frame "
                                   "local, or C code) that hold the "
                                   "blocks still allocated at the end, for the leak groups whose "
                                   "type is TYPE or whose site is SITE (FILE:LINE, or a function "
                                   "name). Needs a capture recorded with the heap at exit "
                                   "(`memlens run --heap-at-exit`).")
    _common.add_capture(p)
    p.add_argument("what", metavar="TYPE|SITE", help="a type name (as `memlens leaks` shows it), "
                                                     "FILE:LINE or a function name")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _matches(row, what):
    if row["type"] == what or row["function"] == what:
        return True
    if ":" in what:
        f, _, line = what.rpartition(":")
        if line.isdigit() and int(line) == row["line"] and row["file"] and (
                row["file"] == f or row["file"].endswith("/" + f)):
            return True
    return False


def run(args):
    data = reports.leaks(args.capture, top=0)
    reports.print_warnings(data, sys.stderr)
    if not data.get("heap_at_exit"):
        raise UsageError("%s has no holders (by default `memlens run` names the buffers at exit "
                         "but finds no holders): run the program again with "
                         "`memlens run --heap-at-exit`" % args.capture)
    rows = [r for r in data["leaks"] if _matches(r, args.what)]
    if not rows:
        raise UsageError("no leak group has the type or site %r (see `memlens leaks %s`)"
                         % (args.what, args.capture))
    if args.json:
        fmt.dump_json(reports.report_json(dict(data, matches=rows), args.capture,
                                          ("matches", "heap_at_exit")))
        return 0
    for r in rows:
        print(fmt.safe("%s %s (%s) made at %s():%s -- %s" % (
            fmt.human_count(r["count"]), r["type"], fmt.human_bytes(r["bytes"]), r["function"],
            r["line"], _held(r))))
    return 0


def _held(r):
    h = r.get("holder")
    if not h:
        return "not reached from any root (garbage not collected yet, or a cycle only C code holds)"
    text = "held by " + reports.holder_text(h)
    if h["count"] < r["count"]:
        text += " (%s of the %s blocks)" % (fmt.human_count(h["count"]), fmt.human_count(r["count"]))
    if h.get("retained"):
        text += " (retains %s)" % fmt.human_bytes(h["retained"])
    return text
