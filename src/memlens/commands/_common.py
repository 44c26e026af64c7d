"""Arguments shared by the report commands: one name and one meaning each.

    CAPTURE      the capture file (positional, `capture` in every command)
    --top N      rows (or tables) shown; 0 = all
    --json       one JSON object (docs/REPORTS.md, "JSON")
"""
import argparse
import os
import sys

CAPTURE_HELP = "capture file written by `memlens run`"


def add_capture(p):
    p.add_argument("capture", metavar="CAPTURE", help=CAPTURE_HELP)


def add_top(p, default, what="rows"):
    p.add_argument("--top", type=count_arg, default=default, metavar="N",
                   help="%s (default %s; 0 = all)" % (what, default or "all"))


def count_arg(text):
    """A count >= 0 for --top."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if n < 0:
        raise argparse.ArgumentTypeError("%r must be 0 or more" % text)
    if n > sys.maxsize:
        raise argparse.ArgumentTypeError("%r is too large (at most %d)" % (text, sys.maxsize))
    return n


def json_stdout():
    """For `memlens heap --json` and `memlens profile --json` without -o: the
    JSON must be all that standard output holds, so the program's own
    standard output (sys.stdout and file descriptor 1, inherited by its
    children) goes to standard error, and the returned stream writes to the
    original standard output. Call before the program starts."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.set_inheritable(saved, False)
    os.dup2(2, 1)
    return os.fdopen(saved, "w", encoding="utf-8", errors="surrogateescape")
