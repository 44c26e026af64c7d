"""memlens command line: one sub-command per module in memlens.commands.

Every sub-command module has ``add_parser(subparsers)`` and ``run(args)``.
Commands that run a program (``memlens run [OPTIONS] SCRIPT [ARGS...]``) set
``RAW_ARGV = True``: they get their argv untouched as ``args.argv``, since
everything after the program belongs to the program.
Bad input anywhere raises memlens.errors.UsageError (or calls parser.error):
the user gets one line and exit status 2, never a traceback.
"""
import argparse
import importlib
import os
import sys

from memlens.errors import UsageError

# Sub-commands, in the order `memlens --help` lists them.
COMMANDS = [
    "run",
    "summary",
    "types",
    "leaks",
    "lines",
    "timeline",
    "plot",
    "profile",
    "heap",
]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message):
        sys.stderr.write("%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))
        sys.exit(2)


def build_parser():
    parser = Parser(prog="memlens", description="Memory profiler and heap analyser for Python.")
    parser.add_argument("--version", action="version", version="memlens " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module("memlens.commands." + name).add_parser(sub)
    return parser


def _version():
    from memlens import __version__
    return __version__


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module("memlens.commands." + argv[0])
        if getattr(module, "RAW_ARGV", False):
            args = argparse.Namespace(command=argv[0], argv=argv[1:], func=module.run)
        else:
            args = parser.parse_args(argv)
    else:
        args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except UsageError as exc:
        sys.stderr.write("memlens %s: error: %s\n" % (args.command, exc))
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
                         % (args.command, type(exc).__name__, exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
