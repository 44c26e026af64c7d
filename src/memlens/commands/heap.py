"""`memlens heap`: run a program, then show what its heap holds when it ends.

    memlens heap [--json] [--dicts] [--diff] [-o FILE] (SCRIPT | -m MODULE | -c CODE) [ARGS...]

The program runs in this process as `python SCRIPT ARGS...` would run it
(same sys.argv, sys.path[0], __main__, output and exit status). When it
returns, raises or calls sys.exit, and before the interpreter tears down,
memlens walks the heap and prints the table; memlens then exits with the
program's status. --diff also takes a census just before the program
starts and shows the growth.
"""
import argparse
import os
import runpy
import sys
import traceback
import types

from memlens.errors import UsageError
from memlens.fmt import dump_json


def add_parser(subparsers):
    p = subparsers.add_parser(
        "heap",
        help="run a program and show its live heap by type when it ends",
        description="Run SCRIPT (or -m MODULE, or -c CODE) in this process and, when it "
                    "ends, print every live object counted by type: count, bytes, average, "
                    "share. Exits with the program's exit status.",
        usage="memlens heap [--json] [--dicts] [--diff] [-o FILE] [--limit N] "
              "(SCRIPT | -m MODULE | -c CODE) [ARGS...]",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--dicts", action="store_true", help="add the dicts table (key kind, size)")
    p.add_argument("--diff", action="store_true",
                   help="also show growth between the program's start and its end")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE instead of standard output")
    p.add_argument("--limit", type=int, default=30, metavar="N",
                   help="rows per table in text output (default 30; 0 = all)")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run library module as a script")
    p.add_argument("-c", dest="code", metavar="CODE", help="run program passed in as string")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]")
    p.set_defaults(func=run)
    return p


def _target(args):
    """(kind, what, argv) for the program to run, or UsageError."""
    if args.module is not None and args.code is not None:
        raise UsageError("give only one of -m MODULE and -c CODE")
    if args.module is not None:
        return "module", args.module, list(args.argv)
    if args.code is not None:
        return "code", args.code, list(args.argv)
    if not args.argv:
        raise UsageError("nothing to run: give SCRIPT, -m MODULE or -c CODE")
    script = args.argv[0]
    if not os.path.exists(script):
        raise UsageError("no such script: %s" % script)
    if os.path.isdir(script) and not os.path.exists(os.path.join(script, "__main__.py")):
        raise UsageError("%s is a directory without __main__.py" % script)
    return "script", script, list(args.argv[1:])


def _exit_status(exc):
    """The status `python` would exit with for SystemExit `exc`."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write("%s\n" % (code,))
    return 1


def _set_path0(entry):
    """sys.path[0] as `python` sets it (it replaces the entry of memlens's own
    launcher script)."""
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.insert(0, entry)


def _run_program(kind, what, argv):
    """Run the program like `python` does. Returns (status, keep) where
    keep holds the program's globals/exception alive until the census."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    keep = None
    status = 0
    try:
        if kind == "script":
            sys.argv = [what] + argv
            _set_path0(os.path.dirname(os.path.abspath(what)))
            try:
                keep = runpy.run_path(what, run_name="__main__")
            except SystemExit as exc:
                keep, status = exc, _exit_status(exc)
        elif kind == "module":
            sys.argv = ["-m"] + argv  # runpy puts the module's path in argv[0]
            _set_path0(os.getcwd())
            try:
                keep = runpy.run_module(what, run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                keep, status = exc, _exit_status(exc)
            except ImportError as exc:
                if getattr(exc, "name", None) == what or "No module named" in str(exc):
                    raise UsageError("no module named %s" % what)
                raise
        else:
            sys.argv = ["-c"] + argv
            _set_path0("")
            main = types.ModuleType("__main__")
            main.__dict__["__builtins__"] = __builtins__
            saved_main = sys.modules.get("__main__")
            sys.modules["__main__"] = main
            try:
                exec(compile(what, "<string>", "exec"), main.__dict__)
            except SystemExit as exc:
                keep, status = exc, _exit_status(exc)
            finally:
                keep = (keep, main)
                if saved_main is not None:
                    sys.modules["__main__"] = saved_main
    except UsageError:
        raise
    except SyntaxError as exc:
        traceback.print_exception(type(exc), exc, None)
        keep, status = exc, 1
    except BaseException as exc:  # the program failed: report like python
        if isinstance(exc, KeyboardInterrupt):
            status = 130
        else:
            status = 1
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        keep = exc
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return status, keep


def run(args):
    from memlens.heap import heap

    kind, what, argv = _target(args)
    limit = None if args.limit <= 0 else args.limit
    before = heap(ids=False) if args.diff else None
    status, keep = _run_program(kind, what, argv)
    sys.stdout.flush()
    after = heap(ids=False)
    del keep
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        if args.json:
            doc = after.as_dict(dicts=args.dicts)
            if before is not None:
                doc["growth"] = (after - before).as_list()
            dump_json(doc, out=out)
        else:
            out.write(after.format(limit=limit))
            if args.dicts:
                out.write("\n" + after.dicts().format(limit=limit))
            if before is not None:
                out.write("\n" + (after - before).format(limit=limit))
    finally:
        if args.output:
            out.close()
    return status
