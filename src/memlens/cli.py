"""memlens command line: one sub-command per module in memlens.commands.

Every sub-command module has ``add_parser(subparsers)`` and ``run(args)``.
Commands that run a program (``memlens run [OPTIONS] SCRIPT [ARGS...]``) set
``RAW_ARGV = True``: they get their argv untouched as ``args.argv``, since
everything after the program belongs to the program.
Bad input anywhere raises memlens.errors.UsageError (or calls parser.error):
the user gets one line naming the command (`memlens leaks: error: ...`) and
exit status 2, never a traceback. `memlens` alone prints the help.

The report commands (those that only read a capture) write their stdout and
stderr through fmt.SafeStream: names, paths and argv from a capture can hold
terminal control sequences, and none of them reaches the terminal raw.
"""
import argparse
import importlib
import os
import sys

from memlens import fmt
from memlens.errors import UsageError

# Sub-commands, in the order `memlens --help` lists them.
COMMANDS = [
    "run",
    "summary",
    "types",
    "leaks",
    "gc",
    "why",
    "lines",
    "timeline",
    "rss",
    "plot",
    "profile",
    "heap",
    "flamegraph",
    "tree",
    "export",
    "compare",
]


class RawArgs:
    """What main() hands a RAW_ARGV command (no __dict__: see runner.Options)."""

    __slots__ = ("command", "argv", "func")

    def __init__(self, command, argv, func):
        self.command, self.argv, self.func = command, argv, func


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message):
        sys.stderr.write("%s: error: %s (see %s --help)\n" % (self.prog, fmt.safe(message), self.prog))
        sys.exit(2)


def build_parser(only=None):
    """The parser; with `only`, just that sub-command is imported (start-up
    time matters: `memlens run` pays it before the program starts)."""
    parser = Parser(prog="memlens", description="Memory profiler and heap analyser for Python.")
    parser.add_argument("--version", action="version", version="memlens " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in ([only] if only else COMMANDS):
        importlib.import_module("memlens.commands." + name).add_parser(sub)
    return parser


def _version():
    from memlens import __version__
    return __version__


def _parse(argv):
    """The namespace of a report command; unknown options are reported by the
    sub-command's own parser, so the error names it."""
    parser = build_parser(only=argv[0])
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[argv[0]].error("unrecognized arguments: %s" % " ".join(extra))
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    raw_argv = False
    if not argv:
        build_parser().print_help()
        return 0
    if argv[0] in COMMANDS:
        module = importlib.import_module("memlens.commands." + argv[0])
        raw_argv = getattr(module, "RAW_ARGV", False)
        if raw_argv:
            args = RawArgs(argv[0], argv[1:], module.run)
        else:
            args = _parse(argv)
    else:
        args = build_parser().parse_args(argv)
    if raw_argv:
        return _call(args)
    # a report: nothing from the capture reaches the terminal raw
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = fmt.SafeStream(sys.stdout), fmt.SafeStream(sys.stderr)
    try:
        return _call(args)
    finally:
        sys.stdout, sys.stderr = streams


def _call(args):
    """Run the command: bad input and memlens' own failures become one line."""
    try:
        return args.func(args) or 0
    except UsageError as exc:
        sys.stderr.write("memlens %s: error: %s\n" % (args.command, fmt.safe(exc)))
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("memlens %s: interrupted\n" % args.command)
        return 130
    except Exception as exc:  # a bug in memlens: one line, unless asked for more
        if os.environ.get("MEMLENS_DEBUG"):
            raise
        sys.stderr.write("memlens %s: internal error: %s: %s (set MEMLENS_DEBUG=1 for details)\n"
                         % (args.command, type(exc).__name__, fmt.safe(exc)))
        return 2


if __name__ == "__main__":
    sys.exit(main())
