"""memlens flamegraph CAPTURE [-o OUT.html]: the interactive flame graph page."""
import os
import sys

from memlens import outfile
from memlens.commands import _common
from memlens.errors import UsageError
from memlens.fmt import safe


def add_parser(sub):
    from memlens.flamegraph import VIEWS
    p = sub.add_parser("flamegraph", help="write an interactive flame graph page (HTML)",
                       description="Write a self-contained HTML page (no network) with the call "
                       "tree of the capture as a flame graph: every view embedded (peak, end, "
                       "allocated, temporary), types in every tooltip, a type filter, types as "
                       "frames, threads filter, search, inverted graph, types and sites tables, "
                       "and the heap and RSS over time, where dragging a range shows what was "
                       "held at the highest point of that range.")
    p.add_argument("capture", metavar="CAPTURE", nargs="?", help=_common.CAPTURE_HELP)
    p.add_argument("--diff", nargs=2, metavar=("BEFORE", "AFTER"),
                   help="a differential flame graph of two captures (instead of CAPTURE): widths "
                        "are AFTER's bytes, red where a call path grew since BEFORE, blue where "
                        "it shrank")
    p.add_argument("-o", "--output", metavar="OUT.html",
                   help="the page to write, a new file (default: CAPTURE's file name with .html, in the "
                        "current folder; AFTER's with --diff)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing output file (a symbolic link is replaced, its "
                        "target never written)")
    p.add_argument("--view", choices=VIEWS, default="peak",
                   help="the view shown first (all are in the page; default: peak)")
    p.add_argument("--inverted", action="store_true",
                   help="show the graph inverted first (allocating functions at the base)")
    p.add_argument("--no-source", dest="source", action="store_false",
                   help="leave the source lines of the frames out of the page")
    p.add_argument("--temporary-n", type=_count, default=1, metavar="N",
                   help="the temporary view counts blocks freed before N more allocations on "
                        "the same thread (default 1)")
    p.set_defaults(func=run)


def _count(text):
    n = _common.count_arg(text)
    if n < 1:
        import argparse
        raise argparse.ArgumentTypeError("%r must be 1 or more" % text)
    return n


def run(args):
    from memlens import flamegraph
    if bool(args.capture) == bool(args.diff):
        raise UsageError("give one CAPTURE, or --diff BEFORE AFTER")
    out = args.output
    if not out:
        base = os.path.basename(args.capture or args.diff[1])
        out = (base[:-6] if base.endswith(".mlens") else base) + ".html"
    if not out.lower().endswith((".html", ".htm")):
        raise UsageError("the output must end in .html: %s" % out)
    try:
        outfile.check(out, args.force)  # before reading the capture; write() decides
    except OSError as exc:
        raise UsageError(outfile.message(out, exc, args.force)) from None
    options = dict(view=args.view, inverted=args.inverted, source=args.source,
                   temporary_n=args.temporary_n)
    if args.diff:
        data = flamegraph.diff_data(args.diff[0], args.diff[1], **options)
    else:
        data = flamegraph.page_data(args.capture, **options)
    try:
        outfile.write(out, flamegraph.render_page(data).encode("utf-8"), args.force)
    except OSError as exc:
        raise UsageError(outfile.message(out, exc, args.force)) from None
    for w in data["warnings"]:
        sys.stderr.write("warning: %s\n" % safe(w))
    print("Wrote %s: %s." % (safe(out), flamegraph.summary_line(data)))
    return 0
