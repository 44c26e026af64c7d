"""memlens lines CAPTURE: line-by-line memory of chosen functions."""
import json
import os
import sys

from memlens.errors import UsageError
from memlens.fmt import dump_json, human_count


def add_parser(sub):
    p = sub.add_parser("lines", help="line-by-line memory of functions, from a capture",
                       description="For each line of the chosen functions (all functions and the "
                       "module level of the main script when none is named): traced heap when "
                       "the line last ran, increment (bytes allocated minus freed while it ran, "
                       "callees included), gross bytes allocated, allocation count.")
    p.add_argument("capture", help="capture file written by `memlens run`")
    p.add_argument("--function", "-f", action="append", default=[], metavar="NAME",
                   help="function (qualified) name; repeat for several")
    p.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="only functions of this source file")
    p.add_argument("--json", action="store_true",
                   help="rows as JSON: {function, file, line, heap, increment, allocated, "
                   "allocations, source}")
    p.set_defaults(func=run)


def load(path, names=(), files=()):
    """Run the C attribution; returns the engine's dict (see lines(path...))."""
    from memlens import _engine
    if not os.path.exists(path):
        raise UsageError("no such capture file: %s" % path)
    names, files = list(names), list(files)
    from memlens import capfile
    raw = capfile.raw_path(path)
    try:
        if not names and not files:
            # default: the main script, named in the header metadata
            meta = json.loads(_engine.timeline_meta(raw) or "{}")
            script = meta.get("script")
            if not script:
                raise UsageError("the capture has no main script (it ran -m or -c): "
                                 "choose functions with --function or --file")
            files = [script]
        return _engine.lines(raw, names, [_resolve(f) for f in files])
    except ValueError as exc:
        raise UsageError("%s: %s" % (path, capfile.display(str(exc), raw, path)))


def _resolve(path):
    return os.path.realpath(path) if os.path.exists(path) else path


def run(args):
    from memlens.profile import print_table, source_line
    result = load(args.capture, args.function, args.file)
    funcs = result["functions"]
    if args.json:
        dump_json([dict(function=f["function"], file=f["file"], line=line, heap=heap,
                        increment=inc, allocated=alloc, allocations=n,
                        source=source_line(f["file"], line))
                   for f in funcs
                   for (line, inc, alloc, n, freed, frees, heap, t) in f["rows"]])
        return 0
    if not funcs:
        what = ", ".join(args.function + args.file) or "the main script"
        print("No allocation or free was made by %s in this capture." % what)
        return 0
    for f in funcs:
        rows = [dict(line=line, heap=heap, increment=inc, allocated=alloc, allocations=n)
                for (line, inc, alloc, n, freed, frees, heap, t) in f["rows"]]
        print_table(dict(f, rows=rows), sys.stdout)
    if result["unattributed"]:
        print("%s of %s events were made outside the chosen functions."
              % (human_count(result["unattributed"]), human_count(result["events"])))
    if result.get("truncated"):
        print("The capture was cut short (no trailer): figures stop where it ends.")
    return 0
