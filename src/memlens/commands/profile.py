"""memlens profile SCRIPT: run a program and print the line tables of its
@profile / @memlens.profile functions (as `python -m memory_profiler`)."""
import argparse
import sys

from memlens.errors import UsageError


def add_parser(sub):
    p = sub.add_parser("profile", help="run a program, print line tables of @profile functions",
                       description="Run a Python program in this process with `profile` "
                       "available as a builtin decorator (as `python -m memory_profiler`); when "
                       "it ends, print the line-by-line table of every decorated function that "
                       "ran. Only decorated functions get line events.")
    p.add_argument("--json", action="store_true", help="rows as JSON instead of tables")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="write the tables to PATH instead of standard output")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a library module")
    p.add_argument("-c", dest="code", metavar="CODE", help="run a program passed as string")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]",
                   help="the program to run and its arguments")
    p.set_defaults(func=run)


def run(args):
    from memlens import profile
    argv = list(args.argv)
    if args.module and args.code is not None:
        raise UsageError("give -m MODULE or -c CODE, not both")
    if args.module:
        target, mode = args.module, "module"
    elif args.code is not None:
        target, mode = args.code, "code"
    elif argv:
        target, mode = argv.pop(0), "script"
    else:
        raise UsageError("nothing to run: give SCRIPT, -m MODULE or -c CODE")
    out = None
    if args.output:
        try:
            out = open(args.output, "w")
        except OSError as exc:
            raise UsageError("cannot write %s: %s" % (args.output, exc.strerror))
    try:
        return profile.run_program(target, argv, mode, out=out, as_json=args.json)
    finally:
        if out:
            out.close()
