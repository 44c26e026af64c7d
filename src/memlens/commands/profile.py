"""memlens profile SCRIPT: run a program and print the line tables of its
@profile / @memlens.profile functions (as `python -m memory_profiler`).

With --json (and no -o) standard output holds the JSON object only: the
program's own standard output goes to standard error.
"""
import argparse

from memlens import outfile, runner
from memlens.commands import _common
from memlens.errors import UsageError

USAGE = "memlens profile [--json] [-o FILE [-f]] (SCRIPT | -m MODULE | -c CODE) [ARGS...]"
VALUE_OPTIONS = ("-o", "--output")
RAW_ARGV = True  # everything after the program is the program's


def _options_parser():
    from memlens.cli import Parser
    p = Parser(prog="memlens profile", usage=USAGE,
               description="Run a Python program in this process with `profile` available as a "
               "builtin decorator (as `python -m memory_profiler`); when it ends, print the "
               "line-by-line table of every decorated function that ran. Only decorated "
               "functions get line events; the rest of the program runs at full speed.")
    p.add_argument("--json", action="store_true",
                   help="one JSON object instead of tables (without -o, the program's standard "
                        "output goes to standard error)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the tables to FILE, a new file, instead of standard output")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing -o FILE (a symbolic link is replaced, its target "
                        "never written)")
    return p


def add_parser(sub):
    p = sub.add_parser("profile", help="run a program, print line tables of @profile functions",
                       add_help=False, usage=USAGE)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args):
    from memlens.profile import run_program
    ns, program = runner.parse_command_line(args.argv, _options_parser(), VALUE_OPTIONS)
    out = reserved = None
    if ns.output:
        # created now (O_EXCL), so a bad path fails before the program runs;
        # opened again, and written, when it ends
        try:
            reserved = outfile.reserve(ns.output, ns.force)
        except OSError as exc:
            raise UsageError(outfile.message(ns.output, exc, ns.force)) from None
        out = outfile.ReservedText(reserved)
    elif ns.json:
        out = _common.json_stdout()
    try:
        return run_program(program, out=out, as_json=ns.json)
    except UsageError:
        if reserved is not None:
            outfile.discard(reserved)
        raise
    except OSError as exc:
        if reserved is None:
            raise
        raise UsageError(outfile.message(ns.output, exc, ns.force)) from None
    finally:
        if out:
            out.close()
