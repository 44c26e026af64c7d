"""memlens lines CAPTURE: line-by-line memory of chosen functions.

A table shows exactly the lines of its function's code object (from the line
maps the capture holds, docs/LINES.md), never the source around it. A
--function name matches qualified names; when it matches functions both in
the user's files and in the standard library or site-packages, the user's
are meant and only they are shown (add --file to choose others).
"""
import re
import sys

from memlens import reports
from memlens.commands import _common
from memlens.errors import UsageError
from memlens.fmt import dump_json, human_count, safe

_LIBRARY = re.compile(r"(^<frozen |/lib/python3\.\d+/|/(site|dist)-packages/)")


def add_parser(sub):
    p = sub.add_parser("lines", help="line-by-line memory of functions, from a capture",
                       description="For each line of the chosen functions (all functions and the "
                       "module level of the main script when none is named): traced heap when "
                       "the line last ran, increment (bytes allocated minus freed while it ran, "
                       "callees included), gross bytes allocated, allocation count. A table "
                       "shows the lines of the function's own code object.")
    _common.add_capture(p)
    p.add_argument("--function", action="append", default=[], metavar="NAME",
                   help="function name, qualified (Cls.meth, outer.<locals>.inner) or not; "
                        "names in your own files win over the standard library's and "
                        "site-packages'; repeat for several")
    p.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="only functions of this source file (a path or a path suffix); "
                        "repeat for several")
    _common.add_top(p, 0, "tables: the functions that allocated the most bytes")
    p.add_argument("--json", action="store_true",
                   help="one JSON object; its `lines` rows are {function, file, line, "
                        "heap_bytes, increment_bytes, allocated_bytes, allocations, source}")
    p.set_defaults(func=run)


def _name_matches(sel, name):
    """The C selection rule (analysis/lines.h), to tell which --function
    matched nothing."""
    return (sel == name or name.endswith("." + sel) or
            ("." not in name and sel.endswith("." + name)))


def is_library(path):
    """A file of the standard library, of site-packages, or frozen."""
    return bool(_LIBRARY.search(path or ""))


def load(path, names=(), files=(), progress=None):
    """The C attribution (memlens._engine.lines) for the selection; the main
    script when nothing is chosen. Names alone that match functions both in
    user files and in library files keep the user files' ones."""
    names, files = list(names), list(files)
    if not names and not files:
        script = reports.meta(path).get("script")
        if not script:
            raise UsageError("the capture has no main script (it ran -m or -c): "
                             "choose functions with --function or --file")
        files = [script]
    result = reports._read("lines", path, progress, 1, names, [_resolve(f) for f in files])
    if names and not files:
        funcs = result["functions"]
        mine = sorted({f["file"] for f in funcs if not is_library(f["file"])})
        # every name that matched something matched in the user's files: the
        # library's functions of the same name are not what the user meant
        user_first = all(any(_name_matches(sel, f["function"]) and not is_library(f["file"])
                             for f in funcs)
                         for sel in names if any(_name_matches(sel, f["function"]) for f in funcs))
        if mine and user_first and any(is_library(f["file"]) for f in funcs):
            result = reports._read("lines", path, progress, 1, names, mine)
    return result


def _resolve(path):
    import os
    return os.path.realpath(path) if os.path.exists(path) else path


def _check_selection(result, names, files, path):
    """Every --function and --file must have matched a function that made
    an allocation or a free: a typo is bad input (exit status 2)."""
    funcs = result["functions"]
    for sel in names:
        if not any(_name_matches(sel, f["function"]) for f in funcs):
            raise UsageError("no function %r made an allocation or a free in %s" % (sel, path))
    if files and not funcs:
        raise UsageError("no function of %s made an allocation or a free in %s"
                         % (", ".join(files), path))


def rows(f):
    """A function's rows as dicts with the JSON field names."""
    return [dict(line=line, heap_bytes=heap, increment_bytes=inc, allocated_bytes=alloc,
                 allocations=n)
            for (line, inc, alloc, n, freed, frees, heap, t) in f["rows"]]


def run(args):
    from memlens.profile import print_table, source_line
    result = load(args.capture, args.function, args.file)
    if args.function or args.file:
        _check_selection(result, args.function, args.file, args.capture)
    funcs = result["functions"]
    if args.top:
        funcs = sorted(funcs, key=lambda f: -f["allocated"])[:args.top]
    if result.get("truncated"):
        sys.stderr.write("warning: %s\n" % reports.TRUNCATED_WARNING)
    if args.json:
        dump_json(reports.envelope(
            reports.capture_info(args.capture, result.get("truncated"),
                                 info=reports._meta_of(result)),
            events=result["events"], unattributed=result["unattributed"],
            functions=[{"function": f["function"], "file": f["file"],
                        "firstlineno": f["firstlineno"], "net_bytes": f["net"],
                        "allocated_bytes": f["allocated"], "allocations": f["allocations"],
                        "adds_up": f["adds_up"], "code_lines": f["code_lines"]} for f in funcs],
            lines=[dict(function=f["function"], file=f["file"], **r,
                        source=source_line(f["file"], r["line"]))
                   for f in funcs for r in rows(f)]))
        return 0
    if not funcs:
        print("No allocation or free was made by the main script in this capture.")
        return 0
    for f in funcs:
        table_rows = [dict(line=r["line"], heap=r["heap_bytes"], increment=r["increment_bytes"],
                           allocated=r["allocated_bytes"], allocations=r["allocations"])
                      for r in rows(f)]
        print_table(dict(f, rows=table_rows), sys.stdout)
    if result["unattributed"]:
        print("%s of %s events were made outside the chosen functions."
              % (human_count(result["unattributed"]), human_count(result["events"])))
    return 0
